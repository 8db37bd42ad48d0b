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

#define STORE_SCHEMA_VERSION 5
#define STORE_TEXT_MAX       (1u << 20) /* one message */
#define STORE_LIST_MAX       1000       /* rows in one listing */

struct store;
struct sqlite3;

struct store_usage {
	uint64_t input, output, cache_write, cache_read;
	const char *model; /* the model the run called, or NULL (borrowed) */
	double cost_usd;   /* estimated from the configuration's prices, when cost_known */
	bool cost_known;
};

int store_open(const char *path, struct store **ret);
void store_close(struct store *s);
const char *store_error(const struct store *s);
/* The connection, for a daemon module that keeps its own tables (approvals.c): they are made
 * with CREATE TABLE IF NOT EXISTS, outside the numbered migrations. */
struct sqlite3 *store_db(struct store *s);

int store_group_ensure(struct store *s, const char *group);

/* An incoming message, queued. *ret_id is its id. -E2BIG past STORE_TEXT_MAX (also for
 * store_message_out). */
int store_message_in(struct store *s, const char *group, const char *sender, const char *text,
                     int64_t *ret_id);

/* [{"id", "direction", "text", "sender", "time"}] of group with id > after, oldest first. */
int store_messages_after(struct store *s, const char *group, int64_t after, json_t **ret);

/* The oldest queued incoming message of group (it stays queued until store_finish: the caller
 * runs one message per group at a time). 0 and *ret_id / *ret_text (owned), or -ENOENT. */
int store_take_next(struct store *s, const char *group, int64_t *ret_id, char **ret_text);

/* Groups with queued messages, oldest message first: ["main", ...]. */
int store_queued_groups(struct store *s, json_t **ret);

/* In one transaction: the reply stored as an outgoing message, the incoming one marked
 * answered (or failed), the usage recorded. -EALREADY, with nothing written, when the
 * message is no longer queued: a message is answered once. */
int store_finish(struct store *s, int64_t in_id, const char *group, const char *reply, bool failed,
                 const struct store_usage *usage);

/* store_finish, and a record of the run that produced the reply (the "runs" table: the agent's
 * sessions), in the same transaction. */
struct store_run {
	int64_t started_ms, ended_ms; /* unix time in milliseconds */
	int exit_status;
};
int store_finish_run(struct store *s, int64_t in_id, const char *group, const char *reply,
                     bool failed, const struct store_usage *usage, const struct store_run *run);

/* At start: runs that were in progress when the daemon died go back to the queue. Returns how
 * many. */
int store_requeue_running(struct store *s);
/* One running message back to the queue (its run was cut short through no fault of its own). */
int store_requeue(struct store *s, int64_t in_id);

/* An audit batch: store_audit rows between store_audit_batch_begin and _commit are kept and
 * written in one transaction, one fsync for all of them (host actions: the decisions read in
 * one event-loop turn; a run's egress), every STORE_AUDIT_BATCH_MAX rows and at the commit.
 * Other writes meanwhile commit as usual, their own transactions included.
 * store_audit_batch_commit: 0, or -EIO (the rows kept since the last write are lost). */
#define STORE_AUDIT_BATCH_MAX 512
void store_audit_batch_begin(struct store *s);
int store_audit_batch_commit(struct store *s);

/* An audit entry: who (group), what (action), the decision and why. */
int store_audit(struct store *s, const char *group, const char *action, const char *decision,
                const char *reason);
/* [{"id", "time", "group", "action", "decision", "reason"}] with id > after. */
int store_audit_after(struct store *s, int64_t after, json_t **ret);

/* An outgoing message not answering any (a host action's send_message). */
int store_message_out(struct store *s, const char *group, const char *sender, const char *text,
                      int64_t *ret_id);

/* Tasks: kind "cron" (spec: the expression), "every" (seconds), "at" (unix time). next_run is
 * a unix time. Status: active, paused, cancelled, done. */
int store_task_add(struct store *s, const char *group, const char *prompt, const char *kind,
                   const char *spec, int64_t next_run, const char *created_by, int64_t *ret_id);
/* [{"id", "group", "prompt", "kind", "spec", "next_run", "status"}], of group or (NULL) all,
 * cancelled ones left out. */
int store_tasks(struct store *s, const char *group, json_t **ret);
/* One task as above; -ENOENT. */
int store_task_get(struct store *s, int64_t id, json_t **ret);
int store_task_update(struct store *s, int64_t id, const char *status, int64_t next_run);
/* Active tasks due at now: [{"id", "group", "prompt", "kind", "spec"}]. */
int store_due_tasks(struct store *s, int64_t now, json_t **ret);
/* In one transaction: the task's prompt queued as a message of its group, a run recorded,
 * the task moved on (status, next_run). */
int store_task_fire(struct store *s, int64_t task, const char *group, const char *prompt,
                    const char *status, int64_t next_run, int64_t *ret_message);
/* The task's run history, newest first: [{"id", "message_id", "started", "ended", "status"}]. */
int store_task_runs(struct store *s, int64_t task, json_t **ret);

/* [{"group", "runs", "input", "output", "cache_write", "cache_read"}], one per group. */
int store_usage_by_group(struct store *s, json_t **ret);

/* Small named values. store_kv_get: 0, or -ENOENT. */
int store_kv_get(struct store *s, const char *key, char *buf, size_t size);
int store_kv_set(struct store *s, const char *key, const char *value);

/* A channel's incoming message (group NULL: an update that is not one, only the offset moves)
 * and the channel's new offset, in one transaction: a restart neither loses nor repeats it. */
int store_channel_in(struct store *s, const char *group, const char *sender, const char *text,
                     const char *offset_key, const char *offset);
/* As store_channel_in, also recording the chat it came from (the "chats" table: every chat a
 * channel has seen, with its group, "" for none). */
struct store_chat {
	const char *channel, *chat_id, *group, *kind;
};
int store_channel_in_chat(struct store *s, const char *group, const char *sender, const char *text,
                          const char *offset_key, const char *offset,
                          const struct store_chat *chat);

/* A channel process's message (channels.c), exactly once: in one transaction, its ext_id
 * remembered for the channel, the chat recorded, the message queued for group (NULL: not
 * for any group, only recorded) and the channel's cursor (cursor_key = cursor, both may be
 * NULL) set. 0 and *ret_id (0 without a group); 1 when (channel, ext_id) was seen before:
 * nothing is stored but the cursor; -errno. */
struct store_channel_msg {
	const char *channel, *ext_id;
	const char *chat, *chat_kind, *chat_group; /* chat NULL: not recorded */
	const char *thread;                        /* may be NULL */
	const char *group, *sender, *text;
	const char *cursor_key, *cursor;
};
int store_channel_message(struct store *s, const struct store_channel_msg *m, int64_t *ret_id);
/* Where message message_id came from through channel: its ext_id, chat and thread ("" for
 * none), for the reply to go back there. 0, -ENOENT (not from that channel), -errno. */
struct store_origin {
	char ext_id[260], chat[260], thread[260];
};
int store_channel_origin(struct store *s, const char *channel, int64_t message_id,
                         struct store_origin *ret);

/* [{"channel", "chat_id", "group", "kind", "first_seen", "last_seen", "messages"}], newest
 * first; group "" for a chat no group is for. */
int store_chats(struct store *s, json_t **ret);
/* The group's runs, newest first: [{"id", "message_id", "started_ms", "ended_ms", "status",
 * "exit_status"}]. */
int store_runs(struct store *s, const char *group, json_t **ret);

/* Outgoing messages with id > after, oldest first (at most 100): [{"id", "group", "text",
 * "reply_to"}] (reply_to: the message it answers, or null). */
int store_out_after(struct store *s, int64_t after, json_t **ret);
/* The newest message id (0 if none), or -1. */
int64_t store_last_id(struct store *s);

/* Counts for /metrics. */
struct store_counts {
	int64_t messages_in, messages_out, queued, running, failed;
	struct store_usage usage;
};
int store_counts(struct store *s, struct store_counts *ret);

/* Limits (no schema change). Queued 'in' messages of group, or of all groups with NULL
 * (a run's message counts: it stays queued until answered). */
int store_queued_count(struct store *s, const char *group, int64_t *ret);
/* The sender of group's oldest queued message: while the group's one run lasts, that run's
 * ("task:N" for a task's run). -ENOENT when nothing is queued. */
int store_oldest_queued_sender(struct store *s, const char *group, char *buf, size_t size);
/* Tasks of group that may still fire (active or paused). */
int store_task_count(struct store *s, const char *group, int64_t *ret);
/* Whether a firing of task is still queued or running. */
int store_task_pending(struct store *s, int64_t task, bool *ret);
/* A firing not queued: a task_runs row with status why ("coalesced", "paused"), and the
 * task's next run. */
int store_task_skip(struct store *s, int64_t task, const char *why, const char *status,
                    int64_t next_run);
/* How many firings of task were skipped for why. */
int store_task_skips(struct store *s, int64_t task, const char *why, int64_t *ret);
/* Up to limit (<= STORE_LIST_MAX) tasks not cancelled with id > after, of group or all. */
int store_tasks_page(struct store *s, const char *group, int64_t after, int64_t limit,
                     json_t **ret);
/* Cancels every active or paused task of group: how many, or -errno. */
int store_tasks_cancel_group(struct store *s, const char *group);

/* The web app's views. Usage per day (UTC) and group since a unix time: [{"day", "group",
 * "runs", "input", "output", "cache_write", "cache_read"}], oldest day first. */
int store_usage_by_day(struct store *s, int64_t since, json_t **ret);
/* Runs of group (NULL or "": all) answering message (0: any) with id < before, newest first,
 * at most limit: as store_runs plus "group", the tokens ("input", "output"), the prompt's
 * first 200 bytes and the size of its kept tool timeline ("tool_bytes", kv "run-tools:ID"). */
int store_runs_view(struct store *s, const char *group, int64_t message, int64_t before,
                    int64_t limit, json_t **ret);
/* Audit entries matching every filter that is set ("" strings match all), newest first. */
struct store_audit_filter {
	int64_t after, since, until, limit;
	const char *group, *kind, *decision;
};
int store_audit_query(struct store *s, const struct store_audit_filter *f, json_t **ret);

#endif
