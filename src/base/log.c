/*
 * log.c: the one place that writes diagnostics. Each message is formatted into a bounded
 * buffer and written with a single write(2), so that lines from the launcher, the sandbox init
 * and the command never interleave mid-line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const char *log_prefix = "clawbox";
static bool log_debug_on;
static struct timespec log_t0;

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

static void
log_write(const char *level, const char *fmt, va_list ap)
{
	char line[1024];
	int n = snprintf(line, sizeof(line), "%s: %s", log_prefix, level);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m < 0)
		return;
	size_t len = (size_t)n + (size_t)m;
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2; /* truncated: still end the line */
	if (log_limit_on && !log_rate_ok(line, len))
		return;
	line[len++] = '\n';
	ssize_t _unused_ r = write(STDERR_FILENO, line, len);
}

void
log_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_write("", fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_write("warning: ", fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_write("", fmt, ap);
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
	log_write(level, fmt, ap);
	va_end(ap);
}

void
die(int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_write("", fmt, ap);
	va_end(ap);
	_exit(status);
}
