/*
 * tap.h: a minimal TAP producer for the unit tests. ok(cond, fmt, ...) prints one line;
 * tap_done() prints the plan and returns the exit status.
 */
#ifndef CLAWBOX_TAP_H
#define CLAWBOX_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static int tap_n, tap_failed;

static void __attribute__((format(printf, 2, 3))) ok(int cond, const char *fmt, ...)
{
	va_list ap;
	printf("%s %d - ", cond ? "ok" : "not ok", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (!cond)
		tap_failed++;
}

static int
tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

/* Removes a folder the test made (rm -rf, without a shell). */
static void __attribute__((unused)) tap_rmrf(const char *dir)
{
	pid_t p = fork();
	if (p == 0) {
		execl("/bin/rm", "rm", "-rf", "--", dir, (char *)NULL);
		_exit(127);
	}
	if (p > 0)
		(void)waitpid(p, NULL, 0);
}

#endif
