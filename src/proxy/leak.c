/*
 * leak.c: see leak.h. Matching is memmem(3) per pattern: a few dozen patterns over request
 * heads and (outbound) bodies, which are small next to responses (never scanned).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leak.h"
#include "macro.h"

void
leak_set_init(struct leak_set *s)
{
	memset(s, 0, sizeof(*s));
}

void
leak_set_done(struct leak_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		explicit_bzero(s->p[i].bytes, s->p[i].len);
		free(s->p[i].bytes);
	}
	s->n = 0;
}

/* Takes ownership of bytes (freed on failure). Identical patterns are kept once. */
static int
add(struct leak_set *s, int owner, const char *label, const char *form, char *bytes, size_t len)
{
	if (len == 0) {
		free(bytes);
		return 0;
	}
	for (size_t i = 0; i < s->n; i++)
		if (s->p[i].owner == owner && s->p[i].len == len &&
		    memcmp(s->p[i].bytes, bytes, len) == 0) {
			free(bytes);
			return 0;
		}
	if (s->n >= LEAK_PATTERNS_MAX) {
		free(bytes);
		return -E2BIG;
	}
	struct leak_pattern *p = &s->p[s->n++];
	p->bytes = bytes;
	p->len = len;
	p->owner = owner;
	p->form = form;
	snprintf(p->label, sizeof(p->label), "%s", label);
	if (len > s->max_len)
		s->max_len = len;
	return 0;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The part of base64(shift zero bytes + secret) that depends on the secret alone: what
 * appears wherever the secret sits at that alignment inside a longer encoded string. */
static int
add_base64(struct leak_set *s, int owner, const char *label, const unsigned char *sec, size_t n,
           size_t shift, bool url)
{
	size_t total = shift + n, bits = total * 8;
	size_t first = (shift * 8 + 5) / 6, end = bits / 6; /* whole characters of the secret */
	if (end <= first)
		return 0;
	char *out = malloc(end - first);
	if (!out)
		return -ENOMEM;
	for (size_t i = first; i < end; i++) {
		unsigned v = 0;
		for (size_t b = i * 6; b < i * 6 + 6; b++) {
			size_t byte = b / 8;
			unsigned bit = byte < shift ? 0 : (sec[byte - shift] >> (7 - b % 8)) & 1;
			v = v << 1 | bit;
		}
		char ch = b64[v];
		if (url && ch == '+')
			ch = '-';
		else if (url && ch == '/')
			ch = '_';
		out[i - first] = ch;
	}
	return add(s, owner, label, url ? "base64url" : "base64", out, end - first);
}

static bool
unreserved(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

int
leak_set_add_literal(struct leak_set *s, int owner, const char *label, const char *form,
                     const void *text, size_t len)
{
	if (len == 0 || len > LEAK_SECRET_MAX)
		return -EINVAL;
	char *copy = malloc(len);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, text, len);
	return add(s, owner, label, form, copy, len);
}

int
leak_set_add_secret(struct leak_set *s, int owner, const char *label, const void *secret, size_t n)
{
	const unsigned char *sec = secret;
	int r = leak_set_add_literal(s, owner, label, "raw", secret, n);
	if (r < 0 || n < LEAK_MIN_ENCODED)
		return r;
	for (size_t shift = 0; shift < 3 && r >= 0; shift++) {
		r = add_base64(s, owner, label, sec, n, shift, false);
		if (r >= 0)
			r = add_base64(s, owner, label, sec, n, shift, true);
	}
	static const char hex_lo[] = "0123456789abcdef", hex_up[] = "0123456789ABCDEF";
	for (int up = 0; up < 2 && r >= 0; up++) {
		const char *digits = up ? hex_up : hex_lo;
		char *h = malloc(2 * n);
		if (!h)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++) {
			h[2 * i] = digits[sec[i] >> 4];
			h[2 * i + 1] = digits[sec[i] & 15];
		}
		r = add(s, owner, label, "hex", h, 2 * n);
	}
	/* Percent-encoded: what encodeURIComponent and friends give (reserved bytes only, both
	 * cases), and every byte encoded. */
	for (int mode = 0; mode < 3 && r >= 0; mode++) {
		const char *digits = mode == 1 ? hex_lo : hex_up;
		char *p = malloc(3 * n);
		size_t k = 0;
		if (!p)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++) {
			if (mode < 2 && unreserved(sec[i])) {
				p[k++] = (char)sec[i];
				continue;
			}
			p[k++] = '%';
			p[k++] = digits[sec[i] >> 4];
			p[k++] = digits[sec[i] & 15];
		}
		r = add(s, owner, label, "percent-encoded", p, k);
	}
	return r;
}

const struct leak_pattern *
leak_scan(const struct leak_set *s, int dest, const void *data, size_t len)
{
	for (size_t i = 0; i < s->n; i++) {
		const struct leak_pattern *p = &s->p[i];
		if (p->owner == dest || p->len > len)
			continue;
		/* The model sees what the agent saw, placeholders included (a tool's output of
		 * `env`): one is no secret, and refusing it would end the conversation for good,
		 * since it stays in the transcript. Secrets are refused there as anywhere. */
		if (dest == LEAK_OWNER_MODEL && p->form[0] == 'p' &&
		    strcmp(p->form, "placeholder") == 0)
			continue;
		if (memmem(data, len, p->bytes, p->len))
			return p;
	}
	return NULL;
}

int
leak_stream_feed(struct leak_stream *st, const struct leak_set *s, int dest, const void *data,
                 size_t len, const struct leak_pattern **ret_hit)
{
	if (s->n == 0 || s->max_len == 0 || len == 0)
		return 0;
	size_t keep = s->max_len - 1;
	const struct leak_pattern *hit = NULL;
	if (keep > 0 && !st->tail) {
		st->tail = malloc(keep);
		if (!st->tail)
			return -ENOMEM;
	}
	/* The seam: the kept tail and the chunk's first keep bytes, so a pattern that began in
	 * an earlier chunk is seen whole. Patterns wholly in the chunk are found below. */
	if (st->tail_len > 0) {
		size_t head = len < keep ? len : keep;
		_cleanup_free_ char *seam = malloc(st->tail_len + head);
		if (!seam)
			return -ENOMEM;
		memcpy(seam, st->tail, st->tail_len);
		memcpy(seam + st->tail_len, data, head);
		hit = leak_scan(s, dest, seam, st->tail_len + head);
	}
	if (!hit)
		hit = leak_scan(s, dest, data, len);
	if (keep > 0) {
		/* New tail: the last keep bytes of tail + chunk. */
		if (len >= keep) {
			memcpy(st->tail, (const char *)data + len - keep, keep);
			st->tail_len = keep;
		} else {
			size_t old = st->tail_len + len > keep ? keep - len : st->tail_len;
			memmove(st->tail, st->tail + st->tail_len - old, old);
			memcpy(st->tail + old, data, len);
			st->tail_len = old + len;
		}
	}
	if (hit) {
		*ret_hit = hit;
		return 1;
	}
	return 0;
}

void
leak_stream_done(struct leak_stream *st)
{
	free(st->tail);
	st->tail = NULL;
	st->tail_len = 0;
}
