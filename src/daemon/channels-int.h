/*
 * channels-int.h: what channels.c (the processes: start, restart, cut off, list) and
 * channels-io.c (their frames: messages in, replies, progress and approvals out) share: the
 * state of each channel process, kept by channels.c in one table. Not for other files.
 */
#ifndef CLAWBOX_CHANNELS_INT_H
#define CLAWBOX_CHANNELS_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "channel-proto.h"
#include "daemon.h"
#include "dbuf.h"

#define CH_BACKOFF_MAX_S    60
#define CH_STABLE_S         60 /* a channel up this long restarts after 1 s again */
#define CH_PROGRESS_AFTER_S 3
#define CH_PROGRESS_EVERY_S 3
#define CH_TYPING_EVERY_S   4
#define CH_RETRY_S          5  /* a failed reply with retry: tried again after */
#define CH_UNKNOWN_AUDITS   20 /* unknown-chat audit rows per channel per window */
#define CH_UNKNOWN_WINDOW_S 600
#define CH_EPHEMERAL_REF    ((int64_t)1 << 50) /* refs past it are not message ids */
#define CH_PENDING_MAX      32
#define CH_ATTACH_NOTE      160
/* A channel answers every reply (sent or failed) and every edit; one that does not for this
 * long is stuck: a reply cuts it off (its restart sends it again), an edit is let go. */
#define CH_RECEIPT_WAIT_S 600
#define CH_EDIT_WAIT_S    120

enum pending_kind { PEND_NONE, PEND_PROGRESS, PEND_APPROVAL };

struct slot {                              /* one group's run as this channel shows it */
	int64_t reply_to;                  /* the message the run answers; 0: none */
	int64_t over;                      /* a run whose reply went out */
	struct dbuf text;                  /* what the run said so far (capped) */
	time_t first, sent, typing;        /* its first text; the last send or edit; typing */
	bool dirty;                        /* text not yet shown */
	bool busy;                         /* a send or edit in flight */
	char ext_id[CHANPROTO_ID_MAX + 1]; /* the progress message, once sent */
	char chat[CHANPROTO_ID_MAX + 1];   /* where the run's message came from, or the first */
	char thread[CHANPROTO_ID_MAX + 1]; /* its thread ("": none) */
};

struct pending {
	int64_t ref;
	enum pending_kind kind;
	size_t slot;
	int64_t run; /* PEND_PROGRESS: the slot's reply_to when it was sent */
	time_t at;
};

struct chproc {
	struct daemon *d;
	const struct channel_config *cfg;
	pid_t pid;
	int sock;
	struct event *rx, *restart;
	const char *state; /* connecting, connected, error, restarting, stopped */
	char last_error[CHANPROTO_DETAIL_MAX + 1];
	time_t since, started;
	unsigned restarts, backoff_s;
	char cursor_key[64], delivered_key[64];
	int64_t delivered, sending; /* the outbox mark; the reply in flight (0: none) */
	time_t sending_at;
	time_t retry_at; /* a failed reply is sent again from then */
	unsigned retry_s;
	struct slot *slots; /* by index in cfg.groups */
	struct pending pending[CH_PENDING_MAX];
	int64_t next_ref;
	unsigned unknown_audits, unknown_dropped;
	time_t unknown_window;
};

struct chtab {
	struct chproc p[CONFIG_MAX_CHANNELS];
	size_t n;
	struct event *tick;
	char exe[PATH_MAX];
	time_t started;
};
extern struct chtab ch_tab; /* channels.c's */

/* channels-io.c */
/* The group chat delivers into here, or NULL (not configured). */
const char *ch_chat_group(const struct chproc *p, const char *chat);
/* The group's first chat here, or NULL. */
const char *ch_group_chat(const struct chproc *p, const char *group);
/* A frame (owned: freed here) with fds to the channel; never waits: -EAGAIN when its
 * socket is full, -ENOTCONN when it is down. */
int ch_send_frame(struct chproc *p, json_t *frame, const int *fds, size_t n_fds);
void ch_mark_delivered(struct chproc *p, int64_t id);
/* Whether the process is there to talk to. */
bool ch_up(const struct chproc *p);
/* The next outgoing message, if none is in flight; the progress messages due. */
void ch_send_next(struct chproc *p);
void ch_progress_next(struct chproc *p);
/* A checked frame from the channel, to its handler: 0, or -errno with why (a cut-off). */
int ch_frame(struct chproc *p, struct chanproto_frame *f, char *why, size_t size);

/* channels.c */
/* The channel broke a rule: audited, killed, restarted. */
void ch_cut_off(struct chproc *p, const char *fmt, ...) _printf_(2, 3);

#endif
