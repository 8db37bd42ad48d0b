/*
 * log.c: the one place that writes diagnostics. Each message is formatted into a bounded
 * buffer and written with a single write(2), so that lines from the launcher, the sandbox init
 * and the command never interleave mid-line.
 */
#include <stdarg.h>
#include <stdio.h>
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
