/*
 * leak.h: the leak scanner. Every secret the proxy holds (each service's, the model key) and
 * every placeholder is a pattern owned by the service it belongs to; a request is scanned for
 * the patterns its destination does not own, in the URL, the headers and the body. A secret is
 * looked for raw and in the encodings a program would use to smuggle it: base64 and base64url
 * (at each of the three alignments it can have inside a longer encoded string), hex (both
 * cases) and percent-encoding. Bodies are scanned as they stream: a stream keeps the last
 * (longest pattern - 1) bytes, so a pattern split across chunks is still found.
 *
 * What it cannot see: a tunnelled (not intercepted) host's TLS, and a secret transformed any
 * other way (reversed, encrypted, split over requests). It catches carelessness and the
 * obvious exfiltration, not a determined adversary holding the secret; the secret is kept out
 * of the sandbox in the first place (placeholders), which is the real protection.
 *
 * No I/O; the fuzzer drives it directly. Ownership: the set copies what it is given.
 */
#ifndef CLAWBOX_LEAK_H
#define CLAWBOX_LEAK_H

#include <stdbool.h>
#include <stddef.h>

#define LEAK_PATTERNS_MAX 512
#define LEAK_SECRET_MAX   4096
#define LEAK_MIN_ENCODED  8 /* shorter secrets are looked for raw only (encodings too short) */

struct leak_pattern {
	char *bytes;
	size_t len;
	int owner;        /* the owning service's index; LEAK_OWNER_MODEL for the model key */
	const char *form; /* "raw", "base64", "hex", "placeholder", ...: static */
	char label[64];   /* the service's name, for the audit: never the value */
};

#define LEAK_OWNER_MODEL (-2)
#define LEAK_OWNER_NONE  (-1) /* a destination owning nothing */

struct leak_set {
	struct leak_pattern p[LEAK_PATTERNS_MAX];
	size_t n;
	size_t max_len;
};

void leak_set_init(struct leak_set *s);
void leak_set_done(struct leak_set *s);

/* Adds a secret in all its forms. -E2BIG when full, -EINVAL if empty or too long. */
int leak_set_add_secret(struct leak_set *s, int owner, const char *label, const void *secret,
                        size_t len);
/* Adds one literal (a placeholder) as is. */
int leak_set_add_literal(struct leak_set *s, int owner, const char *label, const char *form,
                         const void *text, size_t len);

/* The first pattern not owned by dest found in data, or NULL. To the model upstream
 * (LEAK_OWNER_MODEL) placeholders may go: only secrets count there. */
const struct leak_pattern *leak_scan(const struct leak_set *s, int dest, const void *data,
                                     size_t len);

/* A body being scanned chunk by chunk. */
struct leak_stream {
	char *tail; /* the last max_len - 1 bytes seen (allocated on first use) */
	size_t tail_len;
};

/* Scans the next chunk, patterns spanning the previous chunks included. -ENOMEM, 0 clean,
 * 1 with *ret_hit set. */
int leak_stream_feed(struct leak_stream *st, const struct leak_set *s, int dest, const void *data,
                     size_t len, const struct leak_pattern **ret_hit);
void leak_stream_done(struct leak_stream *st);

#endif
