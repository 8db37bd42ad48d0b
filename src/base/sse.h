/*
 * sse.h: a Server-Sent Events (text/event-stream) parser, as both model APIs stream with it
 * (Anthropic Messages: typed events; OpenAI Chat Completions: data-only, ending in [DONE]).
 *
 * Follows the WHATWG event-stream rules: lines end in CR, LF or CRLF (also split across
 * feeds); a leading BOM is dropped; ':' starts a comment; "data" lines of one event are joined
 * with '\n'; a blank line dispatches; an event without data is not dispatched; "event" sets the
 * type (default "message"); "id" without NUL is kept; "retry" and unknown fields are ignored.
 *
 * No allocation: an event's type and data are limited (SSE_DATA_MAX), and a stream that
 * exceeds a limit is an error, not a truncation. Ownership: what on_event gets is valid only
 * during the call.
 */
#ifndef CLAWBOX_SSE_H
#define CLAWBOX_SSE_H

#include <stdbool.h>
#include <stddef.h>

#define SSE_LINE_MAX (1 << 20) /* one field line */
#define SSE_DATA_MAX (1 << 20) /* one event's joined data */
#define SSE_TYPE_MAX 64
#define SSE_ID_MAX   256

struct sse_event {
	const char *type; /* "message" unless an event field said otherwise */
	const char *data;
	size_t data_len;
	const char *id; /* the last id seen, or "" */
};

/* Return false to stop: sse_feed() then returns -ECANCELED. */
typedef bool (*sse_event_fn)(void *ctx, const struct sse_event *ev);

struct sse_parser {
	sse_event_fn on_event;
	void *ctx;
	bool started;      /* past a possible BOM */
	unsigned bom_seen; /* bytes of the BOM matched so far (it may arrive split) */
	bool last_was_cr;
	char line[SSE_LINE_MAX];
	size_t line_len;
	char data[SSE_DATA_MAX];
	size_t data_len;
	bool has_data;
	char type[SSE_TYPE_MAX];
	char id[SSE_ID_MAX];
};

/* The struct is large (two 1 MiB buffers): allocate it, do not put it on a stack. */
void sse_init(struct sse_parser *p, sse_event_fn on_event, void *ctx);

/* Feeds bytes; events are dispatched as they complete. 0, -EMSGSIZE past a limit,
 * -ECANCELED when on_event asked to stop. */
int sse_feed(struct sse_parser *p, const char *buf, size_t len);

/* The stream ended: a pending event without its blank line is dropped, as the spec says. */
void sse_end(struct sse_parser *p);

#endif
