/*
 * ws.h: a WebSocket client (RFC 6455) for the channels that keep a socket open to their
 * service (Slack Socket Mode, the Discord Gateway). TLS is libevent's OpenSSL bufferevent,
 * the peer's certificate checked against the system store (or a CA file, for tests) and its
 * name; the upgrade answer is read by http-parser; wslay does all of the framing, masking,
 * ping answers and the close handshake. Only wss:// URLs: a channel's token never travels
 * in the clear.
 *
 * Lifecycle: ws_connect() starts connecting and returns at once; on_open comes when the
 * upgrade is done, on_text for each complete text message (at most WS_MSG_MAX bytes: a
 * larger one fails the connection with 1009), on_close exactly once when the connection is
 * over, whatever the reason (closed by either side, dropped, a TLS or handshake failure, no
 * answer to our pings). ws_free() may be called from any callback: the struct is released
 * when the callback returns. After on_close nothing else is called.
 */
#ifndef CLAWBOX_WS_H
#define CLAWBOX_WS_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#define WS_MSG_MAX (1u << 20) /* an inbound message; Discord's READY is the largest */
#define WS_OUT_MAX (1u << 20) /* bytes queued for the socket before ws_send fails */
#define WS_URL_MAX 2048

struct ws;

struct ws_callbacks {
	void (*on_open)(struct ws *w, void *arg);
	void (*on_text)(struct ws *w, const char *text, size_t len, void *arg);
	/* code: the close code received (1000...), or 1006 when the connection just ended;
	 * why: a short reason for the log (never NULL). */
	void (*on_close)(struct ws *w, int code, const char *why, void *arg);
};

struct ws_options {
	const char *ca_file; /* NULL: the system store */
	int ping_every_s;    /* 0: no pings of ours; else ping when idle that long, and fail
	                      * the connection when nothing comes for twice that */
};

/* Starts connecting to url (wss://host[:port][/path][?query]). Returns an owned ws, or NULL
 * with *ret_err set (-EINVAL: not a wss URL; -ENOMEM). */
struct ws *ws_connect(struct event_base *base, const char *url, const struct ws_options *o,
                      const struct ws_callbacks *cb, void *arg, int *ret_err);

/* Queues one text message. 0, -ENOTCONN before on_open or after a close began, -E2BIG past
 * WS_OUT_MAX queued, -ENOMEM. */
int ws_send_text(struct ws *w, const char *text, size_t len);

/* Starts the close handshake with code (1000: normal); on_close follows. A connection that
 * is not open yet is dropped at once (on_close is still called, from the loop). */
void ws_close(struct ws *w, uint16_t code, const char *reason);

/* Drops the connection without a close frame, as a network failure would; on_close
 * follows from the loop. */
void ws_abort(struct ws *w, const char *why);

/* Frees w and its connection without calling on_close. NULL is fine. */
void ws_free(struct ws *w);

#endif
