/*
 * taint.h: what a run has read changes what it may send. A run is tainted once untrusted
 * content has entered it: a message from a sender who is not one of its group's owners, a
 * mount the operator marked "untrusted", the group's memory file as a tainted run left it,
 * a task that a tainted run scheduled, or (reported by the run's proxy over its control
 * channel) a response from a host not marked trusted. A tainted run's host actions get the policy's
 * "when_tainted" verdicts (policy.h), held for an approver who is told why ("tainted: CAUSE").
 *
 * The daemon keeps each live run's causes here, bounded (TAINT_CAUSES_MAX a run, each at
 * most TAINT_CAUSE_MAX bytes; more are counted, not kept), audits each new cause once (action
 * "taint:KIND", decision "tainted"), and when the run ends keeps them with its message (kv
 * "run-taint:MESSAGE", shown in GET /api/v1/runs). Everything here is decided from host
 * state: the store's record of who sent the message, the operator's configuration, the
 * memory file's digest as the daemon computed it.
 */
#ifndef CLAWBOX_TAINT_H
#define CLAWBOX_TAINT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct daemon;

#define TAINT_CAUSES_MAX 16       /* causes kept (and audited) per run; more are counted */
#define TAINT_CAUSE_MAX  200      /* bytes of one cause kept */
#define TAINT_START_MAX  (2 + 16) /* causes known at start: sender, memory, one per mount */
#define TAINT_OWNERS_MAX 32
#define TAINT_OWNER_MAX  96

/* A group's "owners": the senders whose messages do not taint its runs. "api" stands for
 * everything the HTTP API takes in without a channel sender (the CLI, the web page, scripts
 * holding the token); a channel sender is "KIND:ID" as the channel stores it ("telegram:42").
 * Default (not set): ["api"]. */
struct group_owners {
	bool set;
	bool api;
	char ids[TAINT_OWNERS_MAX][TAINT_OWNER_MAX];
	size_t n;
};

/* Parses a group's "owners" (NULL: the default) into out; where is "groups[N]". 0, or
 * -EINVAL with one line naming the key in why. */
int taint_parse_owners(json_t *owners, const char *where, struct group_owners *out, char *why,
                       size_t size);
/* Whether sender (a message's stored sender: "", free text from the API, "KIND:ID" from a
 * channel or an API client relaying one, "task:N" from the scheduler) is an owner. */
bool taint_sender_is_owner(const struct group_owners *o, const char *sender);
/* The owners as JSON (a new reference): {"owners": [...], "default": bool}. */
json_t *taint_owners_json(const struct group_owners *o);

/* Causes known before a run starts, each passed to `clawbox ask --tainted CAUSE`. */
struct taint_start {
	struct {
		char kind[8]; /* sender | mount | memory | task */
		char cause[TAINT_CAUSE_MAX];
	} c[TAINT_START_MAX];
	size_t n;
	char memory_sha[65]; /* the group's memory file at start ("" unknown) */
};

/* The causes of the run that will answer message (from the store's record of its sender and
 * the group's memory file). Mount causes are added by the caller with taint_start_add(). */
void taint_start_collect(struct daemon *d, const char *group, int64_t message,
                         struct taint_start *out);
void taint_start_add(struct taint_start *s, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The run run_id (answering message of group) started with the causes in s (may be NULL):
 * recorded and each audited. 0, or -ENOMEM (then the run is not tracked: the caller must not
 * start it, or host actions would read as untainted). */
int taint_run_begin(struct daemon *d, const char *group, const char *run_id, int64_t message,
                    const struct taint_start *s);
/* The run ended: its causes kept with its message, the count of those past the cap audited,
 * and, when a tainted run changed the group's memory file, the next runs of the group start
 * tainted ("memory written by tainted run MESSAGE") until the file is changed by someone
 * else. */
void taint_run_end(struct daemon *d, const char *run_id);

/* Marks run run_id of group tainted by cause (kind: "egress", "sender", "mount",
 * "memory"); audited once per cause (kind "taint"); bounded per run. A run_id not live, or
 * of another group, is ignored. */
void taint_note(struct daemon *d, const char *group, const char *run_id, const char *kind,
                const char *cause);
bool taint_run_tainted(struct daemon *d, const char *run_id);
/* "tainted: FIRST CAUSE (and N more)" for an approver, into buf; "" when not tainted. */
void taint_describe(struct daemon *d, const char *run_id, char *buf, size_t size);
/* The run's causes as a JSON array (a new reference; [] when not tainted or not live). */
json_t *taint_run_causes(struct daemon *d, const char *run_id);
/* A finished run's causes, from the store: a new reference, [] when it was not tainted. */
json_t *taint_message_causes(struct daemon *d, int64_t message);

#endif
