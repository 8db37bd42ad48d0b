/*
 * log.c: the one place that writes diagnostics. Each message is formatted into a bounded
 * buffer and written with a single write(2), so that lines from the launcher, the sandbox init
 * and the command never interleave mid-line. A long-lived process may ask for timestamps or
 * for JSON lines (log_set_format); every other keeps the plain "prefix: message".
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "text.h"

#define LOG_LINE_MAX 1024

static const char *log_prefix = "clawbox";
static bool log_debug_on;
static struct timespec log_t0;
static enum log_format log_format = LOG_TEXT;

void
log_set_prefix(const char *prefix)
{
	log_prefix = prefix;
}

void
log_set_debug(bool on)
{
	log_debug_on = on;
	clock_gettime(CLOCK_MONOTONIC, &log_t0);
}

bool
log_debug_enabled(void)
{
	return log_debug_on;
}

static bool log_limit_on;

void
log_set_rate_limit(bool on)
{
	log_limit_on = on;
}

/* Whether line (without its newline) may be written now; writes the summary of what was
 * held back when the flood ends. */
static bool
log_rate_ok(const char *line, size_t len)
{
	static char last[256];
	static size_t last_len;
	static unsigned repeated, dropped, in_second;
	static time_t second;
	char note[128];
	int n = 0;
	time_t now = time(NULL);
	size_t cmp = len < sizeof(last) ? len : sizeof(last);
	bool same = last_len == cmp && memcmp(last, line, cmp) == 0;
	if (now != second) {
		second = now;
		in_second = 0;
		if (dropped)
			n = snprintf(note, sizeof(note), "%s: (%u lines left out)\n", log_prefix,
			             dropped);
		dropped = 0;
	}
	if (same && n == 0 && repeated < 1000000) {
		repeated++;
		return false;
	}
	if (repeated && n == 0)
		n = snprintf(note, sizeof(note), "%s: (last message repeated %u times)\n",
		             log_prefix, repeated);
	else if (repeated && n > 0 && (size_t)n < sizeof(note))
		n += snprintf(note + n, sizeof(note) - (size_t)n,
		              "%s: (last message repeated %u times)\n", log_prefix, repeated);
	repeated = 0;
	if (n > 0) {
		ssize_t _unused_ r = write(STDERR_FILENO, note, strnlen(note, sizeof(note)));
	}
	memcpy(last, line, cmp);
	last_len = cmp;
	if (++in_second > LOG_RATE_MAX) {
		dropped++;
		return false;
	}
	return true;
}

/* Appends s to buf (size, used *n) as the inside of a JSON string; stops LOG_JSON_ROOM short
 * of the end, so that what closes the line always fits: a cut line is still valid JSON. */
#define LOG_JSON_ROOM 64
static void
json_escape(char *buf, size_t size, size_t *n, const char *s, size_t len)
{
	char clean[LOG_LINE_MAX];
	if (len > sizeof(clean))
		len = sizeof(clean);
	len = text_sanitize(s, len, clean); /* valid UTF-8, no controls but \n and \t */
	for (size_t i = 0; i < len && *n + 2 + LOG_JSON_ROOM < size; i++) {
		char c = clean[i];
		if (c == '"' || c == '\\') {
			buf[(*n)++] = '\\';
			buf[(*n)++] = c;
		} else if (c == '\n' || c == '\t') {
			buf[(*n)++] = '\\';
			buf[(*n)++] = c == '\n' ? 'n' : 't';
		} else {
			buf[(*n)++] = c;
		}
	}
}

static void
append(char *buf, size_t size, size_t *n, const char *fmt, ...) _printf_(4, 5);
static void
append(char *buf, size_t size, size_t *n, const char *fmt, ...)
{
	if (*n >= size)
		return;
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + *n, size - *n, fmt, ap);
	va_end(ap);
	if (m > 0)
		*n += (size_t)m < size - *n ? (size_t)m : size - *n - 1;
}

static bool
is_number(const char *v)
{
	size_t len = strlen(v), digits = strspn(v + (*v == '-'), "0123456789");
	return len > 0 && len <= 18 && digits == len - (*v == '-') && digits > 0 &&
	       (v[*v == '-'] != '0' || digits == 1);
}

/* level: the JSON name ("info"); text_level: what the text line shows before the message
 * ("warning: "). */
static void
log_write(const char *level, const char *text_level, const char *const *fields, const char *fmt,
          va_list ap)
{
	char msg[LOG_LINE_MAX], line[2 * LOG_LINE_MAX];
	int m = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (m < 0)
		return;
	size_t mlen = (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1, n = 0;
	char stamp[40] = "";
	if (log_limit_on && !log_rate_ok(msg, mlen))
		return; /* the rate limit compares messages, not stamped lines */
	if (log_format != LOG_TEXT) {
		struct timespec now;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &now);
		size_t k = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S",
		                    gmtime_r(&now.tv_sec, &tm));
		snprintf(stamp + k, sizeof(stamp) - k, ".%03dZ", (int)(now.tv_nsec / 1000000));
	}
	if (log_format == LOG_JSON) {
		append(line, sizeof(line), &n, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"", stamp,
		       level);
		json_escape(line, sizeof(line), &n, msg, mlen);
		append(line, sizeof(line), &n, "\"");
		for (size_t i = 0; fields && fields[i] && fields[i + 1]; i += 2) {
			if (n + 2 * LOG_JSON_ROOM > sizeof(line))
				break; /* no room: the fields left are dropped, the line stays JSON */
			append(line, sizeof(line), &n, ",\"%.24s\":", fields[i]);
			if (is_number(fields[i + 1])) { /* at most 18 digits: fits the room */
				append(line, sizeof(line), &n, "%s", fields[i + 1]);
				continue;
			}
			append(line, sizeof(line), &n, "\"");
			json_escape(line, sizeof(line), &n, fields[i + 1], strlen(fields[i + 1]));
			append(line, sizeof(line), &n, "\"");
		}
		append(line, sizeof(line), &n, "}");
	} else {
		append(line, sizeof(line), &n, "%s%s%s: %s%.*s", stamp, stamp[0] ? " " : "",
		       log_prefix, text_level, (int)mlen, msg);
		for (size_t i = 0; fields && fields[i] && fields[i + 1]; i += 2)
			append(line, sizeof(line), &n, " %s=%s", fields[i], fields[i + 1]);
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2; /* truncated: still end the line */
	line[n++] = '\n';
	ssize_t _unused_ r = write(STDERR_FILENO, line, n);
}

void
log_set_format(enum log_format format)
{
	log_format = format;
}

void
log_fields(const char *level, const char *const *fields, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_write(level,
	          strcmp(level, "warning") == 0 ? "warning: " : "", fields, fmt, ap);
	va_end(ap);
}

void
log_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_write("error", "", NULL, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_write("warning", "warning: ", NULL, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_write("info", "", NULL, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	if (!log_debug_on)
		return;
	/* Milliseconds since debugging was switched on: shows where set-up time goes. */
	struct timespec now;
	char level[48];
	clock_gettime(CLOCK_MONOTONIC, &now);
	double ms = (double)(now.tv_sec - log_t0.tv_sec) * 1e3 +
	            (double)(now.tv_nsec - log_t0.tv_nsec) / 1e6;
	snprintf(level, sizeof(level), "debug: +%.3fms [%d] ", ms, (int)getpid());
	va_list ap;
	va_start(ap, fmt);
	log_write("debug", level, NULL, fmt, ap);
	va_end(ap);
}

void
die(int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_write("error", "", NULL, fmt, ap);
	va_end(ap);
	_exit(status);
}
