/*
 * chanlib.h: the channel side of the channel protocol (src/ipc/channel-proto.h), for each
 * src/channels/KIND.c. A channel is one process, `clawbox-channel KIND`, started by the
 * daemon with its end of a SOCK_SEQPACKET socketpair on fd 3. chan_main() runs it: one
 * libevent loop, the daemon's "start" frame first (the channel's config, its cursor, its
 * chats), then the kind's callbacks for each frame the daemon sends, until the daemon closes
 * the socket (the process then exits 0) or the kind calls chan_exit().
 *
 * A kind is one row, struct chan_kind, that src/cmd/channel-main.c lists. It talks to its
 * service (chan-http.h does HTTP on the same loop) and reports through chan_status(),
 * chan_message(), chan_sent(), chan_failed() and chan_approval_answer(). Every frame sent is
 * checked by channel-proto.c first, so a malformed one is an error here (-EBADMSG), not a
 * cut-off channel.
 *
 * Exactly-once, the channel's half: report a message with the cursor that comes after it;
 * the daemon stores both in one transaction and answers "stored" (kind->stored). A channel
 * acknowledges to its service (where the service wants that) only then. A reply is reported
 * sent (chan_sent, with the service's message id) only once the service has taken it.
 * Every reply, edit and approval is answered, chan_sent() or chan_failed() with its ref
 * (retry true: the daemon sends it again later): the daemon sends a channel's replies one at
 * a time, and one left unanswered for 10 minutes cuts the channel off.
 *
 * Secrets: chan_secret() reads the config's "token_file" (a file of ours, mode 0600 or
 * stricter) or "token_env" (a variable the daemon passed through); the daemon never opens
 * the file and never reads the variable.
 */
#ifndef CLAWBOX_CHANLIB_H
#define CLAWBOX_CHANLIB_H

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "channel-proto.h"

struct chan;

/* One kind of channel. Callbacks get frames the daemon sent, already checked against their
 * row in channel-proto.c (fields there have the kinds and bounds it says). JSON is
 * borrowed. Any callback may be NULL (the frame is then ignored; for reply that fails it:
 * "not supported"). */
struct chan_kind {
	const char *name; /* "telegram" */
	/* Once, with the start frame's "config": 0, or -errno (the process exits 1, after the
	 * kind has said why with chan_status(c, "error", ...)). */
	int (*start)(struct chan *c, const json_t *config);
	/* "reply": text to chat; file_fd >= 0 (owned by chanlib: dup it to keep it) with
	 * frame "file" for send_file. Answer with chan_sent() or chan_failed(). */
	void (*reply)(struct chan *c, const json_t *frame, int file_fd);
	/* "edit": a message the channel reported sent (its ext_id) gets new text. */
	void (*edit)(struct chan *c, const json_t *frame);
	void (*typing)(struct chan *c, const json_t *frame);
	/* "approval": buttons for approval request "approval" in chat. */
	void (*approval)(struct chan *c, const json_t *frame);
	/* "answered": the daemon's verdict on an approval_answer this channel sent. */
	void (*answered)(struct chan *c, const json_t *frame);
	/* "stored": the daemon has the message with this ext_id (and its cursor). */
	void (*stored)(struct chan *c, const char *ext_id);
	/* Before exit: stop transfers, free the kind's state. */
	void (*stop)(struct chan *c);
};

/* Runs the channel on fd 3 (CHANPROTO_CHANNEL_FD) until the daemon goes or chan_exit().
 * The process's exit status: 0 when the daemon closed the socket, else non-zero. Logs go
 * to stderr (the daemon keeps them with its own), prefixed "channel NAME:". */
int chan_main(const struct chan_kind *kind);

struct event_base *chan_base(struct chan *c);
/* The start frame's "name" (the config's channel name), "config", "cursor" (NULL: none). */
const char *chan_name(const struct chan *c);
const json_t *chan_config(const struct chan *c);
const char *chan_cursor(const struct chan *c);
/* The group the daemon delivers chat into, or NULL: a chat not configured (its messages
 * are still reported, so the daemon can record them, but nothing is downloaded for them). */
const char *chan_chat_group(const struct chan *c, const char *chat);
/* The kind's own state. */
void chan_set_data(struct chan *c, void *data);
void *chan_data(const struct chan *c);

/* Reports: 0, or -errno (-EBADMSG: a frame its row refuses; -EPIPE: the daemon is gone,
 * and the loop is ending). */
int chan_status(struct chan *c, const char *state, const char *detail);

struct chan_attachment {
	const char *name, *type; /* type may be NULL */
	int fd; /* borrowed: a sealed memfd of size bytes, made by chanproto_memfd() (the daemon
	         * cuts off a channel that sends any other descriptor) */
	uint64_t size;
};
struct chan_message {
	const char *chat, *chat_kind; /* chat_kind: "private", "group", ... or NULL */
	const char *sender, *sender_name;
	const char *text;
	bool mention; /* addressed to us: a direct chat, or a mention by the service's means */
	const char *thread; /* NULL: none */
	const char *ext_id; /* the service's id for it: the daemon dedupes by it */
	const char *cursor; /* the resume point after it, NULL: unchanged */
	const struct chan_attachment *attachments;
	size_t n_attachments; /* at most CHANPROTO_FDS_MAX */
};
/* text longer than CHANPROTO_TEXT_MAX is cut on a character boundary. */
int chan_message(struct chan *c, const struct chan_message *m);
/* The frame chan_message() sends (a new reference, NULL when memory is short or there are
 * too many attachments), the attachments' descriptors into fds[] in order. */
json_t *chan_message_frame(const struct chan_message *m, int *fds);
int chan_sent(struct chan *c, int64_t ref, const char *ext_id);
int chan_failed(struct chan *c, int64_t ref, const char *error, bool retry);
int chan_approval_answer(struct chan *c, int64_t approval, const char *answer,
                         const char *approver);

/* The channel's secret: config "token_file" (must be a regular file we own, not readable
 * by group or others) or "token_env", trailing newline dropped. 0, -ENOENT (neither set,
 * or the variable empty), -EPERM (a file too open), -ENAMETOOLONG (past size), -errno; why
 * says what is wrong (never the secret). */
int chan_secret(struct chan *c, char *buf, size_t size, char *why, size_t why_size);

/* Ends the loop; chan_main returns status. */
void chan_exit(struct chan *c, int status);

/* The config's string key, or def. */
const char *chan_config_str(const struct chan *c, const char *key, const char *def);

#endif
