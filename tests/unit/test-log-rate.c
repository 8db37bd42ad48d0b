/*
 * test-log-rate.c: the daemon's log under a flood stays small (log_set_rate_limit): a repeated line
 * is counted, not written, and past LOG_RATE_MAX lines in a second the rest are counted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "tap.h"

static char out[1 << 16];

/* What fn wrote on stderr. */
static size_t
capture(void (*fn)(void))
{
	int fd = memfd_create("log", MFD_CLOEXEC), saved = dup(STDERR_FILENO);
	if (fd < 0 || saved < 0)
		return 0;
	dup2(fd, STDERR_FILENO);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	ssize_t n = pread(fd, out, sizeof(out) - 1, 0);
	close(fd);
	out[n > 0 ? n : 0] = '\0';
	return n > 0 ? (size_t)n : 0;
}

static size_t
lines(void)
{
	size_t n = 0;
	for (const char *p = out; (p = strchr(p, '\n')); p++)
		n++;
	return n;
}

/* At the start of a second, so that the test's lines fall in one. */
static void
second_start(void)
{
	time_t t = time(NULL);
	while (time(NULL) == t)
		usleep(1000);
}

static void
repeated(void)
{
	for (int i = 0; i < 100000; i++)
		log_warn("accept: Too many open files");
	log_warn("something else");
}

static void
distinct(void)
{
	second_start();
	for (int i = 0; i < 1000; i++)
		log_warn("line %d", i);
	second_start();
	log_warn("after the flood");
}

static void
unlimited(void)
{
	for (int i = 0; i < 3; i++)
		log_warn("same");
}

int
main(void)
{
	log_set_prefix("t");
	capture(unlimited);
	ok(lines() == 3, "without the limit every line is written (%zu)", lines());
	log_set_rate_limit(true);
	size_t n = capture(repeated);
	ok(lines() == 3 && strstr(out, "t: warning: accept: Too many open files\n") &&
	       strstr(out, "(last message repeated 99999 times)") && strstr(out, "something else"),
	   "100,000 repeated lines: one line, a count, the next line (%zu bytes)", n);
	n = capture(distinct);
	ok(lines() <= LOG_RATE_MAX + 3 && strstr(out, "line 0\n") &&
	       strstr(out, "lines left out") && strstr(out, "after the flood"),
	   "1,000 lines in a second: at most %d written, the rest counted (%zu lines)",
	   LOG_RATE_MAX, lines());
	return tap_done();
}
