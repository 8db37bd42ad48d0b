/*
 * matrix-sync.h: what the Matrix channel takes from a /sync answer (client-server API,
 * GET /_matrix/client/v3/sync), as plain events, with no I/O: so that the one piece that
 * reads the homeserver's (untrusted) JSON is small, bounded and fuzzed
 * (tests/fuzz/fuzz-matrix-sync.c).
 *
 * Taken: m.room.message events of joined rooms' timelines (text, notices, emotes and the
 * file kinds), in the answer's order, and invitations of us (rooms.invite). Left out: our
 * own messages (servers echo them back), edits (m.replace: the original was taken), events
 * with fields missing or of the wrong kind, ids past CHANPROTO_ID_MAX. At most
 * MX_SYNC_EVENTS_MAX events; the rest are counted in skipped.
 */
#ifndef CLAWBOX_MATRIX_SYNC_H
#define CLAWBOX_MATRIX_SYNC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MX_SYNC_EVENTS_MAX 2048
#define MX_SYNC_BATCH_MAX  1024 /* the since token's length */

enum mx_event_kind {
	MX_MESSAGE,
	MX_INVITE,
};

/* Strings point into the parsed answer (struct mx_sync's root): valid until mx_sync_done. */
struct mx_event {
	enum mx_event_kind kind;
	const char *room;
	const char *event_id; /* invites: NULL (an invite's state event may carry none) */
	const char *sender;
	const char *body;    /* "" for invites */
	const char *msgtype; /* "m.text", "m.notice", "m.emote", "m.file", "m.image", ... */
	const char *thread;  /* the m.thread root, or NULL */
	bool mention;        /* m.mentions.user_ids names us, or the body does */
	/* m.file, m.image, m.audio, m.video: the mxc:// URL, its name and declared type/size. */
	const char *media_url;
	const char *file_name;
	const char *file_type; /* NULL: not declared */
	int64_t file_size;     /* -1: not declared */
};

struct mx_sync {
	json_t *root; /* owned */
	const char *next_batch;
	struct mx_event *ev; /* owned */
	size_t n;
	size_t skipped; /* past MX_SYNC_EVENTS_MAX */
};

/* Parses len bytes of a /sync answer for the user self ("@bot:server"). 0 and *ret filled
 * (release with mx_sync_done); -EBADMSG if it is not JSON, has no usable next_batch, or
 * rooms is not an object; -ENOMEM. */
int mx_sync_parse(const char *body, size_t len, const char *self, struct mx_sync *ret);
void mx_sync_done(struct mx_sync *s);

/* "mxc://SERVER/ID" split into its two parts (each checked: [A-Za-z0-9._:-], bounded). 0, or
 * -EINVAL. */
int mx_media_split(const char *url, char *server, size_t server_size, char *id, size_t id_size);

#endif
