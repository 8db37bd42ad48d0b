/*
 * fuzz-sse.c: the SSE parser against arbitrary bytes, fed in pieces whose sizes the input
 * chooses (the first byte), checking what every event it dispatches promises. libFuzzer
 * entry point; tests/fuzz/replay.c replays the saved corpus in `make check`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"

static bool
check_event(void *ctx, const struct sse_event *ev)
{
	(void)ctx;
	/* Data is NUL-terminated at data_len, within the limit; type and id are strings. */
	if (ev->data_len >= SSE_DATA_MAX || ev->data[ev->data_len] != '\0' ||
	    strlen(ev->type) >= SSE_TYPE_MAX || strlen(ev->id) >= SSE_ID_MAX || !ev->type[0])
		__builtin_trap();
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sse_parser *p;
	if (!p && !(p = malloc(sizeof(*p))))
		return 0;
	sse_init(p, check_event, NULL);
	size_t step = size ? (size_t)data[0] % 17 + 1 : 1;
	for (size_t i = 0; i < size; i += step) {
		size_t n = size - i < step ? size - i : step;
		if (sse_feed(p, (const char *)data + i, n) < 0)
			break;
	}
	sse_end(p);
	return 0;
}
