/*
 * fuzz-leak.c: the leak scanner (src/proxy/leak.c) against arbitrary secrets and bodies. The
 * input is: one byte of secret length, the secret, one byte of chunk size, then the body.
 * Besides the sanitizers' checks it holds the scanner to its promise: scanning the body in
 * chunks (each the same size, the overlap carrying patterns across) finds a leak exactly when
 * scanning the whole body at once does. libFuzzer entry point; replay.c runs the saved corpus
 * in `make check`.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "leak.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct leak_set set;
	if (size < 3)
		return 0;
	size_t slen = (size_t)data[0] % 64 + 1;
	if (size < 2 + slen)
		return 0;
	const uint8_t *secret = data + 1;
	size_t chunk = (size_t)data[1 + slen] % 32 + 1;
	const uint8_t *body = data + 2 + slen;
	size_t blen = size - 2 - slen;

	leak_set_init(&set);
	if (leak_set_add_secret(&set, 0, "fuzz", secret, slen) < 0)
		abort();
	/* A pattern the destination owns never counts. */
	(void)leak_set_add_literal(&set, 1, "own", "placeholder", "clawbox-placeholder-x", 21);

	bool whole = leak_scan(&set, 1, body, blen) != NULL;
	struct leak_stream st = {0};
	bool streamed = false;
	for (size_t off = 0; off < blen && !streamed; off += chunk) {
		size_t n = blen - off < chunk ? blen - off : chunk;
		const struct leak_pattern *hit = NULL;
		int r = leak_stream_feed(&st, &set, 1, body + off, n, &hit);
		if (r < 0)
			abort();
		streamed = r > 0;
		if (streamed && (!hit || hit->owner == 1))
			abort();
	}
	leak_stream_done(&st);
	if (streamed != whole)
		abort(); /* a pattern across a chunk boundary was missed, or one was invented */
	/* The raw secret in the body is always found. */
	if (memmem(body, blen, secret, slen) && !whole)
		abort();
	leak_set_done(&set);
	return 0;
}
