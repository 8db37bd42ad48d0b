/*
 * test-sse.c: the SSE parser on the streams both model APIs send, split at every byte, and on
 * the edge cases of the event-stream rules.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "sse.h"
#include "tap.h"

struct seen {
	char text[4096];
	size_t len;
	int n;
	int stop_after;
};

static bool
collect(void *ctx, const struct sse_event *ev)
{
	struct seen *s = ctx;
	size_t room = sizeof(s->text) - s->len;
	/* Newlines in data are shown as \\n, so that TAP lines stay one line each. */
	char data[1024];
	size_t o = 0;
	for (size_t i = 0; i < ev->data_len && o + 3 < sizeof(data); i++) {
		if (ev->data[i] == '\n') {
			data[o++] = '\\';
			data[o++] = 'n';
		} else {
			data[o++] = ev->data[i];
		}
	}
	data[o] = '\0';
	int k = snprintf(s->text + s->len, room, "[%s|%s|%s]", ev->type, data, ev->id);
	if (k > 0 && (size_t)k < room)
		s->len += (size_t)k;
	s->n++;
	return !(s->stop_after && s->n >= s->stop_after);
}

static struct sse_parser *p;

/* Feeds in one piece, and byte by byte: both must give the same events. */
static void
check_stream(const char *name, const char *in, size_t in_len, const char *want)
{
	struct seen whole = {0}, bytes = {0};
	sse_init(p, collect, &whole);
	int r1 = sse_feed(p, in, in_len);
	sse_end(p);
	sse_init(p, collect, &bytes);
	int r2 = 0;
	for (size_t i = 0; i < in_len && r2 == 0; i++)
		r2 = sse_feed(p, in + i, 1);
	ok(r1 == 0 && strcmp(whole.text, want) == 0, "%s: %s (got %s)", name, want, whole.text);
	ok(r2 == 0 && strcmp(bytes.text, want) == 0, "%s, fed byte by byte", name);
}

#define STREAM(name, lit, want) check_stream(name, lit, sizeof(lit) - 1, want)

int
main(void)
{
	p = malloc(sizeof(*p));
	if (!p)
		return 1;

	STREAM("anthropic",
	       "event: message_start\ndata: {\"type\":\"message_start\"}\n\n"
	       "event: ping\ndata: {\"type\": \"ping\"}\n\n"
	       "event: content_block_delta\ndata: {\"delta\":{\"text\":\"Hi\"}}\n\n",
	       "[message_start|{\"type\":\"message_start\"}|][ping|{\"type\": \"ping\"}|]"
	       "[content_block_delta|{\"delta\":{\"text\":\"Hi\"}}|]");
	STREAM("openai", "data: {\"choices\":[]}\n\ndata: [DONE]\n\n",
	       "[message|{\"choices\":[]}|][message|[DONE]|]");
	STREAM("CRLF line ends", "event: a\r\ndata: 1\r\n\r\n", "[a|1|]");
	STREAM("CR line ends", "event: a\rdata: 1\r\r", "[a|1|]");
	STREAM("multi-line data joined with LF", "data: one\ndata: two\ndata:three\n\n",
	       "[message|one\\ntwo\\nthree|]");
	STREAM("comments and keep-alives ignored", ": keep-alive\n\n:x\ndata: d\n\n",
	       "[message|d|]");
	STREAM("only one space after the colon is dropped", "data:  two spaces\n\n",
	       "[message| two spaces|]");
	STREAM("a field with no colon", "data\n\n", "[message||]");
	STREAM("an event without data is not dispatched", "event: lonely\n\ndata: x\n\n",
	       "[message|x|]");
	STREAM("the type resets after each event", "event: a\ndata: 1\n\ndata: 2\n\n",
	       "[a|1|][message|2|]");
	STREAM("id persists across events", "id: 7\ndata: a\n\ndata: b\n\n",
	       "[message|a|7][message|b|7]");
	STREAM("retry and unknown fields ignored", "retry: 10\nfoo: bar\ndata: z\n\n",
	       "[message|z|]");
	STREAM("a leading BOM is dropped",
	       "\xEF\xBB\xBF"
	       "data: b\n\n",
	       "[message|b|]");
	STREAM("a BOM anywhere else is data", "data: \xEF\xBB\xBF\n\n", "[message|\xEF\xBB\xBF|]");
	STREAM("a partial BOM at the start is kept",
	       "\xEF"
	       "data: c\n\n",
	       "");
	STREAM("no blank line at the end: nothing", "data: pending\n", "");
	STREAM("empty data line", "data:\n\n", "[message||]");

	/* A truncated stream's last event is dropped (sse_end), never half-delivered. */
	struct seen s = {0};
	sse_init(p, collect, &s);
	sse_feed(p, "data: full\n\ndata: half", 22);
	sse_end(p);
	ok(s.n == 1 && strcmp(s.text, "[message|full|]") == 0,
	   "truncated stream: only whole events");

	/* Limits are errors, not truncations. */
	size_t big = SSE_LINE_MAX + 10;
	char *huge = malloc(big);
	memset(huge, 'x', big);
	memcpy(huge, "data: ", 6);
	sse_init(p, collect, &s);
	ok(sse_feed(p, huge, big) == -EMSGSIZE, "an over-long line is -EMSGSIZE");
	sse_init(p, collect, &s);
	int r = 0;
	char chunk[1024];
	memset(chunk, 'y', sizeof(chunk));
	memcpy(chunk, "data: ", 6);
	chunk[sizeof(chunk) - 1] = '\n';
	for (int i = 0; i < 2000 && r == 0; i++)
		r = sse_feed(p, chunk, sizeof(chunk));
	ok(r == -EMSGSIZE, "over-long joined data is -EMSGSIZE");
	char longtype[SSE_TYPE_MAX + 20] = "event: ";
	memset(longtype + 7, 't', SSE_TYPE_MAX + 5);
	longtype[sizeof(longtype) - 1] = '\n';
	sse_init(p, collect, &s);
	ok(sse_feed(p, longtype, sizeof(longtype)) == -EMSGSIZE, "an over-long type is -EMSGSIZE");
	free(huge);

	struct seen stop = {.stop_after = 1};
	sse_init(p, collect, &stop);
	r = sse_feed(p, "data: 1\n\ndata: 2\n\n", 18);
	ok(r == -ECANCELED && stop.n == 1, "on_event returning false stops the stream");

	free(p);
	return tap_done();
}
