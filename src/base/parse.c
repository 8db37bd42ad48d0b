/*
 * parse.c: number parsing for command-line options. Hand-rolled rather than strtoul because
 * strtoul accepts leading white space, a sign and "0x", and saturates silently.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "parse.h"

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Parses the leading digits of s; *end points past them. */
static int
parse_digits(const char *s, uint64_t max, uint64_t *ret, const char **end)
{
	uint64_t v = 0;
	const char *p = s;

	if (!is_digit(*p))
		return -EINVAL;
	for (; is_digit(*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (max - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*ret = v;
	*end = p;
	return 0;
}

int
parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
	const char *end;
	uint64_t v;
	int r;

	if (!s)
		return -EINVAL;
	r = parse_digits(s, max, &v, &end);
	if (r < 0)
		return r;
	if (*end != '\0')
		return -EINVAL;
	*ret = v;
	return 0;
}

int
parse_size(const char *s, uint64_t *ret)
{
	static const char suffixes[] = "KMGT";
	const uint64_t max = UINT64_MAX >> 1;
	const char *end;
	uint64_t v, mult = 1;
	int r;

	if (!s)
		return -EINVAL;
	r = parse_digits(s, max, &v, &end);
	if (r < 0)
		return r;
	if (*end) {
		char c = *end;
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		const char *pos = c ? strchr(suffixes, c) : NULL;
		if (pos) {
			mult = 1024;
			for (const char *q = suffixes; q < pos; q++)
				mult *= 1024;
			end++;
		}
		/* Accept "B", "iB" after a unit and a bare "B" after a number. */
		if (pos && (end[0] == 'i' || end[0] == 'I') && (end[1] == 'B' || end[1] == 'b'))
			end += 2;
		else if (end[0] == 'B' || end[0] == 'b')
			end++;
		if (*end)
			return -EINVAL;
	}
	if (v == 0)
		return -ERANGE;
	if (v > max / mult)
		return -ERANGE;
	*ret = v * mult;
	return 0;
}

int
parse_milli(const char *s, uint64_t max_milli, uint64_t *ret)
{
	const char *end;
	uint64_t whole, frac = 0;
	int r;

	if (!s)
		return -EINVAL;
	r = parse_digits(s, UINT64_MAX / 1000, &whole, &end);
	if (r < 0)
		return r;
	if (*end == '.') {
		unsigned n = 0;
		end++;
		if (!is_digit(*end))
			return -EINVAL;
		for (; is_digit(*end); end++, n++) {
			if (n >= 3)
				return -EINVAL; /* finer than a thousandth is not meaningful here */
			frac = frac * 10 + (uint64_t)(*end - '0');
		}
		for (; n < 3; n++)
			frac *= 10;
	}
	if (*end)
		return -EINVAL;
	if (whole > (max_milli - frac) / 1000)
		return -ERANGE;
	*ret = whole * 1000 + frac;
	return 0;
}
