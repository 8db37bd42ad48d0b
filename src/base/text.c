/*
 * text.c: see text.h.
 */
#include <stdbool.h>
#include <stdint.h>

#include "text.h"

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0 if it is not one. Overlong
 * forms, surrogates and values past U+10FFFF are invalid. */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		len = 2, cp = c & 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		len = 3, cp = c & 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3F);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

size_t
text_sanitize(const char *in, size_t len, char *out)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		unsigned char c = p[i];
		if (c < 0x80) {
			if (c >= 0x20 ? c != 0x7F : (c == '\n' || c == '\t'))
				out[o++] = (char)c;
			i++;
			continue;
		}
		size_t n = utf8_len(p + i, len - i);
		if (n == 0) {
			out[o++] = '?';
			i++;
			continue;
		}
		bool c1 = n == 2 && c == 0xC2 && p[i + 1] <= 0x9F;
		if (!c1)
			for (size_t k = 0; k < n; k++)
				out[o++] = (char)p[i + k];
		i += n;
	}
	return o;
}

size_t
text_sanitize_escapes(const char *in, size_t len, char *out)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t o = 0, i = 0, run = 0; /* run: where the bytes between sequences started */
	while (i < len) {
		if (p[i] != 0x1b) {
			i++;
			continue;
		}
		o += text_sanitize(in + run, i - run, out + o);
		i++;
		if (i < len && p[i] == '[') { /* CSI: parameters, intermediates, a final byte */
			for (i++; i < len && (p[i] < 0x40 || p[i] > 0x7e); i++)
				;
			i += i < len;
		} else if (i < len && p[i] == ']') { /* OSC: up to BEL or ST (ESC \) */
			for (i++; i < len && p[i] != 0x07 && p[i] != 0x1b; i++)
				;
			if (i < len && p[i] == 0x1b)
				i += 1 + (i + 1 < len && p[i + 1] == '\\');
			else
				i += i < len;
		} else { /* ESC, intermediates (ESC ( B), a final byte */
			for (; i < len && p[i] >= 0x20 && p[i] <= 0x2f; i++)
				;
			i += i < len;
		}
		run = i;
	}
	return o + text_sanitize(in + run, len - run, out + o);
}

size_t
text_utf8_repair(const char *in, size_t len, char *out, size_t *ret_bad)
{
	static const char fffd[] = "\xEF\xBF\xBD";
	const unsigned char *p = (const unsigned char *)in;
	size_t o = 0, bad = 0;
	for (size_t i = 0; i < len;) {
		size_t n = p[i] ? utf8_len(p + i, len - i) : 0;
		if (n == 0) {
			if (out)
				for (size_t k = 0; k < 3; k++)
					out[o + k] = fffd[k];
			o += 3;
			bad++;
			i++;
			continue;
		}
		if (out)
			for (size_t k = 0; k < n; k++)
				out[o + k] = (char)p[i + k];
		o += n;
		i += n;
	}
	*ret_bad = bad;
	return o;
}

size_t
text_utf8_prefix(const char *s, size_t len, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	if (len <= max)
		return len;
	/* The cut is before p[n]: it splits a sequence when p[n] continues one. */
	for (size_t n = max, back = 0; n > 0 && back <= 3; n--, back++)
		if ((p[n] & 0xC0) != 0x80)
			return n;
	return max;
}
