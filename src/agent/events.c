/*
 * events.c: see events.h. Each JSON event is one write() of one line, so a reader never sees
 * half an event even when the agent is killed.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "events.h"
#include "fd-util.h"
#include "json-util.h"
#include "text.h"

static bool json_mode;
static bool text_pending_newline;

void
events_set_json(bool json)
{
	json_mode = json;
}

static void
emit(json_t *ev)
{
	if (!ev)
		return;
	char *s = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	if (!s)
		return;
	size_t len = strlen(s);
	s[len] = '\n'; /* replaces the NUL; written with its length */
	(void)write_all(1, s, len + 1);
	free(s);
}

void
events_text(const char *text, size_t len)
{
	if (json_mode) {
		emit(json_pack("{s:s,s:s%}", "type", "text", "text", text, len));
		return;
	}
	(void)write_all(1, text, len);
	text_pending_newline = len && text[len - 1] != '\n';
}

static void plain_line(const char *fmt, ...) _printf_(1, 2);
static void
plain_line(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf) - 1)
		n = sizeof(buf) - 2;
	buf[n] = '\n';
	(void)write_all(2, buf, (size_t)n + 1);
}

void
events_tool_call(const char *id, const char *name, const char *summary)
{
	if (json_mode)
		emit(json_pack("{s:s,s:s,s:s,s:s}", "type", "tool_call", "id", id, "name", name,
		               "summary", summary));
	else
		plain_line("-> %s", summary);
}

void
events_tool_result(const char *id, const char *name, bool is_error, const char *text, size_t bytes)
{
	if (json_mode) {
		json_t *ev =
		    json_pack("{s:s,s:s,s:s,s:b,s:I}", "type", "tool_result", "id", id, "name",
		              name, "is_error", is_error, "bytes", (json_int_t)bytes);
		/* Cut between letters, so it stays valid UTF-8; were it not, jansson refuses
		 * it and the event goes without a preview rather than not at all. */
		size_t n = text_utf8_prefix(text, bytes, EVENTS_PREVIEW_MAX);
		if (ev)
			(void)json_object_set_new(ev, "preview", json_stringn(text, n));
		emit(ev);
	} else {
		plain_line("   %s (%zu bytes)", is_error ? "failed" : "ok", bytes);
	}
}

static json_t *
usage_json(const struct model_usage *u)
{
	return json_pack("{s:I,s:I,s:I,s:I}", "input_tokens", (json_int_t)u->input_tokens,
	                 "output_tokens", (json_int_t)u->output_tokens, "cache_write_tokens",
	                 (json_int_t)u->cache_write_tokens, "cache_read_tokens",
	                 (json_int_t)u->cache_read_tokens);
}

void
events_usage(unsigned turn, const struct model_usage *u)
{
	if (json_mode) {
		json_t *ev = usage_json(u);
		json_object_set_new(ev, "type", json_string("usage"));
		json_object_set_new(ev, "turn", json_integer(turn));
		emit(ev);
	} else {
		plain_line("   turn %u: %llu input, %llu output, %llu cache write, %llu cache read "
		           "tokens",
		           turn, (unsigned long long)u->input_tokens,
		           (unsigned long long)u->output_tokens,
		           (unsigned long long)u->cache_write_tokens,
		           (unsigned long long)u->cache_read_tokens);
	}
}

void
events_notice(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (json_mode)
		emit(json_pack("{s:s,s:s}", "type", "notice", "text", buf));
	else
		plain_line("clawbox agent: %s", buf);
}

void
events_done(const char *status, const char *message, const char *stop_reason, unsigned turns,
            const struct model_usage *total)
{
	struct rusage ru;
	long rss = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
	if (json_mode) {
		emit(json_pack("{s:s,s:s,s:s,s:s,s:i,s:o,s:I}", "type", "done", "status", status,
		               "message", message ? message : "", "stop_reason",
		               stop_reason ? stop_reason : "", "turns", (int)turns, "usage",
		               usage_json(total), "peak_rss_kb", (json_int_t)rss));
		return;
	}
	if (text_pending_newline)
		(void)write_all(1, "\n", 1);
	if (message && *message)
		plain_line("clawbox agent: %s", message);
}
