/*
 * macro.h: the small helpers every file uses: cleanup attributes with explicit hand-off
 * (systemd's _cleanup_ / TAKE_PTR / TAKE_FD), array sizes, and the errno convention.
 *
 * Error convention for the whole project: functions return int, 0 (or a positive count) on
 * success and -errno on failure. libc's -1/errno is converted at once with NEG_ERRNO().
 */
#ifndef CLAWBOX_MACRO_H
#define CLAWBOX_MACRO_H

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _unused_       __attribute__((unused))
#define _noreturn_     __attribute__((noreturn))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

/* -errno of the last failed libc call; never 0, so a caller cannot mistake it for success. */
#define NEG_ERRNO() (errno > 0 ? -errno : -EIO)

static inline void
freep(void *p)
{
	free(*(void **)p);
}

static inline void
closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

#define _cleanup_free_  _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)

#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _taken = (p);                                                        \
		(p) = NULL;                                                                        \
		_taken;                                                                            \
	})

#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _taken = (fd);                                                                 \
		(fd) = -1;                                                                         \
		_taken;                                                                            \
	})

#endif
