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

const char *
log_get_prefix(void)
{
	return log_prefix;
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

/* Whether a line with this key (its message and fields) may be written now. When a flood ends
 * it says what was held back: *ret_dropped lines left out in an earlier second, and
 * *ret_repeated repeats of the previous line (0 each when there is nothing to say); the caller
 * writes those notes as lines of their own, in the process's format. */
static bool
log_rate_ok(const char *key, size_t len, unsigned *ret_dropped, unsigned *ret_repeated)
{
	static char last[256];
	static size_t last_len;
	static unsigned repeated, dropped, in_second;
	static time_t second;
	time_t now = time(NULL);
	size_t cmp = len < sizeof(last) ? len : sizeof(last);
	bool same = last_len == cmp && memcmp(last, key, cmp) == 0;
	*ret_dropped = *ret_repeated = 0;
	if (now != second) {
		second = now;
		in_second = 0;
		*ret_dropped = dropped;
		dropped = 0;
	}
	if (same && *ret_dropped == 0 && repeated < 1000000) {
		repeated++;
		return false;
	}
	*ret_repeated = repeated;
	repeated = 0;
	memcpy(last, key, cmp);
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

static void log_emit(const char *level, const char *text_level, const char *const *fields,
                     const char *msg, size_t mlen);

/* level: the JSON name ("info"); text_level: what the text line shows before the message
 * ("warning: "). */
static void
log_write(const char *level, const char *text_level, const char *const *fields, const char *fmt,
          va_list ap)
{
	char msg[LOG_LINE_MAX];
	int m = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (m < 0)
		return;
	size_t mlen = (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1;
	if (log_limit_on && (strcmp(level, "warning") == 0 || strcmp(level, "error") == 0)) {
		/* Floods are of complaints (a failing accept in a loop): the limit holds warnings
		 * and errors only, so that every info line (one per message received, bounded by
		 * the queue caps) is written. It compares the message and its fields, not the
		 * stamped line (a stamp never repeats) nor the message alone. */
		char key[LOG_LINE_MAX], note[96];
		size_t k = 0;
		unsigned dropped, repeated;
		append(key, sizeof(key), &k, "%.*s", (int)mlen, msg);
		for (size_t i = 0; fields && fields[i] && fields[i + 1]; i += 2)
			append(key, sizeof(key), &k, " %s=%s", fields[i], fields[i + 1]);
		bool ok = log_rate_ok(key, k, &dropped, &repeated);
		if (dropped) {
			int n = snprintf(note, sizeof(note), "(%u lines left out)", dropped);
			log_emit("info", "", NULL, note, (size_t)n);
		}
		if (repeated) {
			int n = snprintf(note, sizeof(note), "(last message repeated %u times)",
			                 repeated);
			log_emit("info", "", NULL, note, (size_t)n);
		}
		if (!ok)
			return;
	}
	log_emit(level, text_level, fields, msg, mlen);
}

/* Writes one line of msg (mlen bytes) and its fields in the process's format. */
static void
log_emit(const char *level, const char *text_level, const char *const *fields, const char *msg,
         size_t mlen)
{
	char line[2 * LOG_LINE_MAX];
	size_t n = 0;
	char stamp[40] = "";
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
