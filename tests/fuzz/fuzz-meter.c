/*
 * fuzz-meter.c: the proxy meter's response reader (src/proxy/meter.c) against arbitrary
 * responses. The input is: one byte choosing the API (% 3) and whether the request asked for a
 * stream, one byte of chunk size, then the response as the client gets it (status line,
 * headers, body). Besides the sanitizers' checks it holds the meter to its bookkeeping: after
 * the call ends nothing stays held, and no response is charged more input than it could
 * report or the request's estimate. libFuzzer entry point; replay.c runs the saved corpus in
 * `make check`.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct meter m;
	static const char *const paths[] = {"/v1/messages", "/v1/chat/completions",
	                                    "/v1/responses"};
	if (size < 2)
		return 0;
	char why[256], req[128];
	meter_init(&m);
	if (meter_parse(&m,
	                "{\"tokens\": 1000000, \"tool_calls\": 100, \"cost_usd\": 10, "
	                "\"prices\": {\"m\": {\"input\": 3, \"output\": 15}}}",
	                why, sizeof(why)) < 0)
		abort();
	int n = snprintf(req, sizeof(req), "{\"model\":\"m\",\"max_tokens\":100%s}",
	                 data[0] & 4 ? ",\"stream\":true" : "");
	struct meter_call *mc;
	char *body = NULL;
	size_t blen;
	if (meter_call_begin(&m, paths[data[0] % 3], req, (size_t)n, &mc, &body, &blen, why,
	                     sizeof(why)) < 0)
		abort();
	free(body);
	size_t chunk = (size_t)data[1] % 64 + 1;
	for (size_t off = 2; off < size; off += chunk)
		meter_call_feed(mc, data + off, size - off < chunk ? size - off : chunk);
	meter_call_end(&m, mc);
	if (m.held_tokens || m.held_input || m.held_output)
		abort(); /* a reservation outlived its call */
	if (m.cost < 0)
		abort();
	return 0;
}
