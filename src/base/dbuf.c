/*
 * dbuf.c: see dbuf.h. Growth doubles, capped at the maximum, so a buffer never holds much
 * more memory than its limit allows.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbuf.h"

void
dbuf_init(struct dbuf *b, size_t max)
{
	b->p = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void
dbuf_done(struct dbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

void
dbuf_reset(struct dbuf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

static int
dbuf_reserve(struct dbuf *b, size_t need)
{
	if (need > b->max)
		return -E2BIG;
	if (need + 1 <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need + 1)
		cap *= 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	char *p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

int
dbuf_append(struct dbuf *b, const void *data, size_t len)
{
	if (len > b->max - b->len)
		return -E2BIG;
	int r = dbuf_reserve(b, b->len + len);
	if (r < 0)
		return r;
	if (len)
		memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
	return 0;
}

int
dbuf_puts(struct dbuf *b, const char *s)
{
	return dbuf_append(b, s, strlen(s));
}

int
dbuf_printf(struct dbuf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n < sizeof(small))
		return dbuf_append(b, small, (size_t)n);
	if ((size_t)n > b->max - b->len)
		return -E2BIG;
	int r = dbuf_reserve(b, b->len + (size_t)n);
	if (r < 0)
		return r;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

size_t
dbuf_append_capped(struct dbuf *b, const void *data, size_t len)
{
	size_t room = b->max - b->len;
	size_t take = len < room ? len : room;
	if (take && dbuf_append(b, data, take) < 0)
		return len;
	return len - take;
}

const char *
dbuf_str(const struct dbuf *b)
{
	return b->p ? b->p : "";
}

char *
dbuf_take(struct dbuf *b)
{
	char *p = b->p ? b->p : strdup("");
	b->p = NULL;
	b->len = b->cap = 0;
	return p;
}
