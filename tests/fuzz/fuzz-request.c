/*
 * fuzz-request.c: the proxy's request reader (request.c) and host normalization (hostname.c)
 * against arbitrary bytes, the way the sandbox may send them: split at an arbitrary point,
 * head, target, body. libFuzzer entry point; tests/fuzz/replay.c runs the saved corpus
 * without libFuzzer in `make check`.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "allowlist.h"
#include "request.h"

static void
sink(void *ctx, const char *data, size_t len)
{
	/* Touch every byte so that the sanitizers see each one. */
	volatile unsigned char *acc = ctx;
	for (size_t i = 0; i < len; i++)
		*acc ^= (unsigned char)data[i];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct request r;
	unsigned char acc = 0;
	size_t split = size ? data[0] % (size + 1) : 0;

	request_init(&r, 4096, 1 << 16);
	r.on_body = sink;
	r.body_ctx = &acc;
	r.origin_form = size > 1 && (data[1] & 1); /* as on the sandbox's port 80 */
	const char *p = (const char *)data;
	size_t pieces[2] = { split, size - split };
	for (int k = 0; k < 2; k++) {
		size_t left = pieces[k];
		while (left > 0) {
			size_t used = 0;
			enum request_status st = request_feed(&r, p, left, &used);
			if (used > left)
				__builtin_trap();
			p += used;
			left -= used;
			if (st == REQ_HEAD && request_target(&r) == 0) {
				struct allowlist a = { 0 };
				const char *why;
				(void)allowlist_add(&a, "*.example.org", &why);
				(void)allowlist_match(&a, r.host, r.kind, r.port);
			}
			if (st == REQ_ERROR || st == REQ_DONE)
				return 0;
			if (st == REQ_MORE && used == 0)
				break;
		}
	}
	/* Host normalization on the raw input too. */
	char out[HOST_MAX];
	enum host_kind kind;
	const char *why;
	(void)host_normalize((const char *)data, size < 1000 ? size : 1000, out, &kind, &why);
	return 0;
}
