/*
 * channel-proto.h: the one definition of what crosses between the daemon and a channel
 * process (`clawbox-channel KIND`). Both sides use it: the channel (src/channels/chanlib.c)
 * to speak, the daemon (src/daemon/channels.c) to check, like any untrusted input, every
 * frame a channel sends.
 *
 * Transport: a SOCK_SEQPACKET socketpair, the channel's end on its fd 3
 * (CHANPROTO_CHANNEL_FD). One datagram is one JSON object of at most CHANPROTO_FRAME_MAX
 * bytes whose "t" names its type; attachments travel beside it as descriptors (SCM_RIGHTS:
 * a memfd each, at most CHANPROTO_FILE_MAX bytes, at most CHANPROTO_FDS_MAX per frame).
 *
 * Every type has a row in a table of fields (channel-proto.c): name, JSON kind, whether it
 * is required, a maximum length. chanproto_check() holds a frame to its row: unknown types,
 * unknown or missing fields, wrong kinds, strings past their bound or not valid UTF-8 (or
 * holding NUL), frames going the wrong way and descriptors not matching the frame's files
 * are all refused, with a reason. What a frame means (is this chat configured, is this ref
 * one we gave out) is the receiver's business.
 *
 * daemon -> channel:
 *   start    {"name", "config": {...}, "cursor": str|null, "chats": {"CHAT": "group"}}
 *   stored   {"ext_id"}                       a message is stored (or dropped, recorded)
 *   reply    {"ref", "chat", "thread"?, "text", "reply_to"?, "file"?: {"name","size","type"}}
 *            (+1 fd with "file"). ref: the outgoing message's id, or past 2^50 for the
 *            daemon's own (progress, approvals); reply_to: the ext_id of the message it
 *            answers when that came through this channel (then chat and thread are its)
 *   edit     {"ref", "chat", "ext_id", "text"}
 *   typing   {"chat"}
 *   approval {"ref", "chat", "approval", "text", "buttons": ["approve"|"run"|"deny"]}
 *   answered {"approval", "approver", "ok", "text"}   the verdict on an approval_answer,
 *            for the channel to tell the person who pressed the button
 * channel -> daemon:
 *   status   {"state": "connecting"|"connected"|"error", "detail"?}
 *   message  {"chat", "chat_kind"?, "sender", "sender_name"?, "text", "mention"?, "thread"?,
 *             "ext_id", "cursor"?, "attachments"?: [{"name","size","type"}]} (+1 fd each)
 *   sent     {"ref", "ext_id"}                a reply, edit or approval went out
 *   failed   {"ref", "error", "retry"}
 *   approval_answer {"approval", "answer": "approve"|"deny"|"run", "approver": "KIND:USER"}
 *
 * Ownership: as json-util.h says; a decoded frame owns its JSON and its descriptors until
 * chanproto_frame_done().
 */
#ifndef CLAWBOX_CHANNEL_PROTO_H
#define CLAWBOX_CHANNEL_PROTO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHANPROTO_CHANNEL_FD 3
#define CHANPROTO_FRAME_MAX  (64 * 1024)
#define CHANPROTO_FDS_MAX    4
#define CHANPROTO_FILE_MAX   (20u << 20)
/* Text in one frame: the frame's bound less room for the other fields. Longer replies are
 * cut by the daemon (chanproto_cut()); the channel splits at its service's own limit. */
#define CHANPROTO_TEXT_MAX      (48 * 1024)
#define CHANPROTO_ID_MAX        256  /* chat, sender, thread, ext_id, approver */
#define CHANPROTO_CURSOR_MAX    4096 /* a channel's opaque resume point */
#define CHANPROTO_NAME_MAX      64   /* a channel's name */
#define CHANPROTO_DETAIL_MAX    512  /* status detail, failed error */
#define CHANPROTO_FILE_NAME_MAX 255

enum chanproto_type {
	/* daemon -> channel */
	CHANPROTO_START,
	CHANPROTO_STORED,
	CHANPROTO_REPLY,
	CHANPROTO_EDIT,
	CHANPROTO_TYPING,
	CHANPROTO_APPROVAL,
	CHANPROTO_ANSWERED,
	/* channel -> daemon */
	CHANPROTO_STATUS,
	CHANPROTO_MESSAGE,
	CHANPROTO_SENT,
	CHANPROTO_FAILED,
	CHANPROTO_APPROVAL_ANSWER,
	CHANPROTO_N_TYPES,
};

enum chanproto_dir {
	CHANPROTO_TO_CHANNEL,
	CHANPROTO_TO_DAEMON,
};

struct chanproto_frame {
	enum chanproto_type type;
	json_t *j; /* owned */
	int fds[CHANPROTO_FDS_MAX];
	size_t n_fds;
};

/* The type's wire name ("start", ...), or "?" */
const char *chanproto_name(enum chanproto_type t);

/* Holds j to its type's row, for a frame travelling dir with n_fds descriptors. 0 and
 * *ret_type, or -EBADMSG with the reason in why. */
int chanproto_check(const json_t *j, enum chanproto_dir dir, size_t n_fds,
                    enum chanproto_type *ret_type, char *why, size_t why_size);

/* Parses and checks one datagram (len bytes). 0 and *ret (owned) and *ret_type; -EBADMSG
 * (not JSON, or chanproto_check's reasons) or -EMSGSIZE (past CHANPROTO_FRAME_MAX), with
 * the reason in why. */
int chanproto_decode(const void *buf, size_t len, enum chanproto_dir dir, size_t n_fds,
                     json_t **ret, enum chanproto_type *ret_type, char *why, size_t why_size);

/* Checks (as the receiver will) and sends frame with fds (borrowed: the caller closes
 * them). 0; -EBADMSG if the frame breaks its row (why says how); -EMSGSIZE past the bound;
 * -EAGAIN if the socket is full (nonblocking); -EPIPE when the peer is gone; -errno. */
int chanproto_send(int sock, enum chanproto_dir dir, const json_t *frame, const int *fds,
                   size_t n_fds, char *why, size_t why_size);

/* Receives and decodes one datagram into *ret. 0; -EAGAIN (nothing waiting, nonblocking);
 * -EPIPE (the peer closed); -EMSGSIZE (a datagram or its descriptors past the bounds);
 * -EBADMSG (why says why). On any error the descriptors that came are closed. */
int chanproto_recv(int sock, enum chanproto_dir dir, struct chanproto_frame *ret, char *why,
                   size_t why_size);

void chanproto_frame_done(struct chanproto_frame *f);

/* The length of s's first max bytes cut back to a UTF-8 character boundary (s is valid
 * UTF-8). */
size_t chanproto_cut(const char *s, size_t len, size_t max);

/* A memfd named name holding len bytes of data, sealed against change, at offset 0; or
 * -errno. For attachments. */
int chanproto_memfd(const char *name, const void *data, size_t len);

#endif
