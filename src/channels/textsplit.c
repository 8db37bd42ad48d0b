/*
 * textsplit.c: cutting a reply into pieces a service takes (textsplit.h). Limits are in
 * characters (code points), as the services count them; a cut never splits a character, and
 * prefers a line break, then a space, so a piece reads as a whole.
 */
#include <stdbool.h>

#include "textsplit.h"

static bool
is_cont(unsigned char c)
{
	return (c & 0xC0) == 0x80;
}

size_t
textsplit_next(const char *text, size_t len, size_t max)
{
	size_t chars = 0, i = 0;
	while (i < len && chars < max) {
		i++;
		while (i < len && is_cont((unsigned char)text[i]))
			i++;
		chars++;
	}
	if (i >= len || max == 0)
		return len;
	/* i: the end of max characters. Look back for a better place, but not too far. */
	for (const char *want = "\n "; *want; want++)
		for (size_t j = i; j > i / 2; j--)
			if (text[j - 1] == *want)
				return j;
	return i;
}
