/*
 * log.c: the one place that writes diagnostics. Each message is formatted into a bounded
 * buffer and written with a single write(2), so that lines from the launcher, the sandbox init
 * and the command never interleave mid-line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "log.h"

static const char *log_prefix = "clawbox";
static bool log_debug_on;

void
log_set_prefix(const char *prefix)
{
	log_prefix = prefix;
}

void
log_set_debug(bool on)
{
	log_debug_on = on;
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
log_debug(const char *fmt, ...)
{
	if (!log_debug_on)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_write("debug: ", fmt, ap);
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
