/*
 * store.h: the daemon's state in one SQLite file (WAL): groups, messages in and out, runs of
 * the agent, the audit of decisions, token usage. Versioned migrations (PRAGMA user_version)
 * run at open. Every state change that matters is committed before it is acted on: a message
 * is stored before its 202, and a reply is stored in the same transaction that marks its
 * message answered, so a crash can neither lose a message nor answer it twice.
 *
 * Results that are lists come back as jansson arrays (a new reference, see json-util.h).
 * Functions return 0 or -errno (-EIO for an SQLite error, which store_error() describes).
 */
#ifndef CLAWBOX_STORE_H
#define CLAWBOX_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION 1
#define STORE_TEXT_MAX       (1u << 20) /* one message */
#define STORE_LIST_MAX       1000       /* rows in one listing */

struct store;

struct store_usage {
	uint64_t input, output, cache_write, cache_read;
};

int store_open(const char *path, struct store **ret);
void store_close(struct store *s);
const char *store_error(const struct store *s);

int store_group_ensure(struct store *s, const char *group);

/* An incoming message, queued. *ret_id is its id. */
int store_message_in(struct store *s, const char *group, const char *sender, const char *text,
                     int64_t *ret_id);

/* [{"id", "direction", "text", "sender", "time"}] of group with id > after, oldest first. */
int store_messages_after(struct store *s, const char *group, int64_t after, json_t **ret);

/* The oldest queued incoming message of group, marked running. 0 and *ret_id / *ret_text
 * (owned), or -ENOENT when none is queued. */
int store_take_next(struct store *s, const char *group, int64_t *ret_id, char **ret_text);

/* Groups with queued messages, oldest message first: ["main", ...]. */
int store_queued_groups(struct store *s, json_t **ret);

/* In one transaction: the reply stored as an outgoing message, the incoming one marked
 * answered (or failed), the usage recorded. */
int store_finish(struct store *s, int64_t in_id, const char *group, const char *reply, bool failed,
                 const struct store_usage *usage);

/* At start: runs that were in progress when the daemon died go back to the queue. Returns how
 * many. */
int store_requeue_running(struct store *s);

/* An audit entry: who (group), what (action), the decision and why. */
int store_audit(struct store *s, const char *group, const char *action, const char *decision,
                const char *reason);
/* [{"id", "time", "group", "action", "decision", "reason"}] with id > after. */
int store_audit_after(struct store *s, int64_t after, json_t **ret);

/* Counts for /metrics. */
struct store_counts {
	int64_t messages_in, messages_out, queued, running, failed;
	struct store_usage usage;
};
int store_counts(struct store *s, struct store_counts *ret);

#endif
