/*
 * dbuf.h: a growable byte buffer with a hard maximum (curl's dynbuf): every append past the
 * maximum fails with -E2BIG and leaves the buffer as it was. The contents are always
 * NUL-terminated, so a text buffer can be used as a C string.
 *
 * Ownership: the buffer owns p; dbuf_done() frees it, dbuf_take() hands it to the caller.
 */
#ifndef CLAWBOX_DBUF_H
#define CLAWBOX_DBUF_H

#include <stdarg.h>
#include <stddef.h>

#include "macro.h"

struct dbuf {
	char *p; /* NULL until the first append */
	size_t len;
	size_t cap;
	size_t max; /* bytes of content, not counting the NUL */
};

void dbuf_init(struct dbuf *b, size_t max);
void dbuf_done(struct dbuf *b);
void dbuf_reset(struct dbuf *b); /* empty, keeps the memory */

/* 0, or -E2BIG past the maximum, -ENOMEM. */
int dbuf_append(struct dbuf *b, const void *data, size_t len);
int dbuf_puts(struct dbuf *b, const char *s);
int dbuf_printf(struct dbuf *b, const char *fmt, ...) _printf_(2, 3);

/* Appends as much of data as fits; returns how many bytes were dropped (0: all fit). */
size_t dbuf_append_capped(struct dbuf *b, const void *data, size_t len);

/* The contents ("" when empty); valid until the next append. */
const char *dbuf_str(const struct dbuf *b);

/* Hands the contents (NUL-terminated, possibly "" freshly allocated) to the caller and resets
 * the buffer. NULL on allocation failure. */
char *dbuf_take(struct dbuf *b);

static inline void
dbuf_donep(struct dbuf *b)
{
	dbuf_done(b);
}
#define _cleanup_dbuf_ _cleanup_(dbuf_donep)

#endif
