/*
 * sse.c: see sse.h.
 */
#include <errno.h>
#include <string.h>

#include "sse.h"

void
sse_init(struct sse_parser *p, sse_event_fn on_event, void *ctx)
{
	p->on_event = on_event;
	p->ctx = ctx;
	p->started = false;
	p->bom_seen = 0;
	p->last_was_cr = false;
	p->line_len = 0;
	p->data_len = 0;
	p->has_data = false;
	p->type[0] = '\0';
	p->id[0] = '\0';
}

static int
dispatch(struct sse_parser *p)
{
	bool had = p->has_data;
	p->has_data = false;
	if (!had) {
		p->type[0] = '\0';
		return 0;
	}
	/* The last data line's '\n' is not part of the data. */
	size_t len = p->data_len > 0 ? p->data_len - 1 : 0;
	p->data[len] = '\0';
	struct sse_event ev = {
	    .type = p->type[0] ? p->type : "message",
	    .data = p->data,
	    .data_len = len,
	    .id = p->id,
	};
	p->data_len = 0;
	bool go_on = p->on_event(p->ctx, &ev);
	p->type[0] = '\0';
	return go_on ? 0 : -ECANCELED;
}

static int
field(struct sse_parser *p, const char *name, size_t name_len, const char *value, size_t len)
{
	if (name_len == 4 && memcmp(name, "data", 4) == 0) {
		if (p->data_len + len + 1 >= SSE_DATA_MAX)
			return -EMSGSIZE;
		memcpy(p->data + p->data_len, value, len);
		p->data_len += len;
		p->data[p->data_len++] = '\n';
		p->has_data = true;
	} else if (name_len == 5 && memcmp(name, "event", 5) == 0) {
		if (len >= SSE_TYPE_MAX)
			return -EMSGSIZE;
		memcpy(p->type, value, len);
		p->type[len] = '\0';
	} else if (name_len == 2 && memcmp(name, "id", 2) == 0) {
		if (len >= SSE_ID_MAX)
			return -EMSGSIZE;
		if (!memchr(value, '\0', len)) {
			memcpy(p->id, value, len);
			p->id[len] = '\0';
		}
	}
	/* "retry" and anything else: ignored. */
	return 0;
}

static int
line(struct sse_parser *p)
{
	const char *l = p->line;
	size_t len = p->line_len;
	p->line_len = 0;
	if (len == 0)
		return dispatch(p);
	if (l[0] == ':')
		return 0; /* a comment (keep-alives are sent like this) */
	const char *colon = memchr(l, ':', len);
	if (!colon)
		return field(p, l, len, "", 0);
	size_t name_len = (size_t)(colon - l);
	const char *value = colon + 1;
	size_t value_len = len - name_len - 1;
	if (value_len > 0 && value[0] == ' ') {
		value++;
		value_len--;
	}
	return field(p, l, name_len, value, value_len);
}

/* One character of a line (not CR or LF). */
static int
put(struct sse_parser *p, char c)
{
	if (p->line_len + 1 >= SSE_LINE_MAX)
		return -EMSGSIZE;
	p->line[p->line_len++] = c;
	return 0;
}

int
sse_feed(struct sse_parser *p, const char *buf, size_t len)
{
	static const char bom[3] = {'\xEF', '\xBB', '\xBF'};
	for (size_t i = 0; i < len; i++) {
		char c = buf[i];
		if (!p->started) {
			/* A UTF-8 BOM may open the stream, and only there, in any number of feeds.
			 */
			if (c == bom[p->bom_seen]) {
				if (++p->bom_seen == 3)
					p->started = true;
				continue;
			}
			p->started = true;
			for (unsigned k = 0; k < p->bom_seen; k++) /* not a BOM after all */
				if (put(p, bom[k]) < 0)
					return -EMSGSIZE;
		}
		if (c == '\n' && p->last_was_cr) { /* the LF of a CRLF */
			p->last_was_cr = false;
			continue;
		}
		p->last_was_cr = c == '\r';
		if (c == '\r' || c == '\n') {
			int r = line(p);
			if (r < 0)
				return r;
			continue;
		}
		if (put(p, c) < 0)
			return -EMSGSIZE;
	}
	return 0;
}

void
sse_end(struct sse_parser *p)
{
	p->line_len = 0;
	p->data_len = 0;
	p->has_data = false;
	p->type[0] = '\0';
}
