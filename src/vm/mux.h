/*
 * mux.h: many byte streams over one, the virtio-serial port between a microVM and its host.
 *
 * A frame is a 12-byte header {u32 id, u8 type, u8 0, u8 0, u8 0, u32 len} (little-endian)
 * and len bytes, at most MUX_FRAME_MAX. The types:
 *   'J'  a JSON control message (the run requests, "ready", a run's status); handled by the
 *        caller's on_frame, as is 'N' and anything the mux does not know
 *   'N'  the guest opened connection id (the payload: the u32 run id it belongs to)
 *   'D'  bytes of stream id        'F'  its sender will send no more (half-close)
 *   'A'  u32 n: the receiver has written n more bytes of stream id (credit back)
 *   'X'  stream id is gone, from either side; nothing more of it is sent
 *
 * A stream is a mux_conn: data read from its rfd goes to the peer, the peer's data is written
 * to its wfd. Flow control is per stream: a sender has MUX_WINDOW bytes of credit and the
 * receiver gives it back as it writes, so no buffer grows past the window however slow a
 * reader is; a peer that sends past its credit loses that stream ('X'). The host treats the
 * guest as untrusted: a malformed frame breaks the mux (the caller ends the VM).
 *
 * Ids: the host numbers what it opens with even ids, the guest with odd ones.
 *
 * The caller ignores SIGPIPE: a reader that went away is a stream's error, not the process's end.
 *
 * One thread, one poll loop: the caller asks for the mux's pollfds, adds its own, polls, and
 * hands the results back to mux_dispatch().
 */
#ifndef CLAWBOX_MUX_H
#define CLAWBOX_MUX_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbuf.h"

#define MUX_HEADER     12
#define MUX_FRAME_MAX  (64u * 1024)
#define MUX_WINDOW     (256u * 1024)
#define MUX_CONNS_MAX  128
#define MUX_QUEUE_HIGH (1u << 20) /* stop reading streams while this much waits for the port */
#define MUX_QUEUE_MAX  (8u << 20)

struct mux_conn {
	uint32_t id;
	int rfd, wfd;     /* -1: none; the same fd for a socket */
	bool own;         /* ours to close; set O_NONBLOCK on */
	uint32_t credit;  /* bytes we may still send the peer */
	uint32_t written; /* written to wfd since our last 'A' */
	bool sent_eof;    /* rfd said EOF and the peer was told */
	bool got_eof;     /* the peer said 'F' */
	bool shut;        /* wfd was shut down after got_eof */
	struct dbuf out;  /* the peer's bytes not yet written to wfd, at most MUX_WINDOW */
	void *user;
};

struct mux;
/* Frames the mux does not handle itself ('J', 'N', others). A negative return breaks the mux. */
typedef int (*mux_frame_fn)(struct mux *m, uint8_t type, uint32_t id, const char *data, size_t len);
/* Called when a stream ends (both ways done, an error, or 'X'), before its fds are closed. */
typedef void (*mux_gone_fn)(struct mux *m, struct mux_conn *c);

struct mux {
	int port;
	struct dbuf in;  /* bytes read from the port, not yet a whole frame */
	struct dbuf out; /* frames waiting for the port */
	struct mux_conn *conns[MUX_CONNS_MAX];
	size_t n_conns;
	mux_frame_fn on_frame;
	mux_gone_fn on_gone;
	void *user;
	int broken; /* 0, or why the port is unusable (-errno; -EPROTO: the peer spoke nonsense) */
};

/* port: the stream to the peer, made non-blocking here; the mux does not own it. */
void mux_init(struct mux *m, int port, mux_frame_fn on_frame, void *user);
/* Drops every stream (closing the fds it owns) and frees the buffers. */
void mux_done(struct mux *m);

/* Queues a frame. -E2BIG past MUX_FRAME_MAX or a full queue (the mux is then broken). */
int mux_send(struct mux *m, uint8_t type, uint32_t id, const void *data, size_t len);

/* A new stream. own: the mux closes rfd and wfd when it ends. NULL when MUX_CONNS_MAX are open
 * or id is taken (the fds are then closed if own). A stream with no rfd has told the peer
 * its EOF already; one with no wfd ignores the peer's data. */
struct mux_conn *mux_add(struct mux *m, uint32_t id, int rfd, int wfd, bool own);
struct mux_conn *mux_find(const struct mux *m, uint32_t id);
/* Ends a stream now; tell: send 'X' so that the peer ends its side too. */
void mux_drop(struct mux *m, struct mux_conn *c, bool tell);

/* Fills p (at most max entries, the port first) with what the mux waits for; returns how many. */
size_t mux_pollfds(const struct mux *m, struct pollfd *p, size_t max);
/* Acts on the poll results for the first n entries (as mux_pollfds filled them). Returns 0, or
 * m->broken once the port is gone or spoke nonsense. */
int mux_dispatch(struct mux *m, const struct pollfd *p, size_t n);
/* Writes what is queued for the port, blocking up to timeout_ms; 0 when all of it went. */
int mux_flush(struct mux *m, int timeout_ms);

#endif
