/*
 * test-proxy-meter.c: the proxy's budget meter (meter.c): the cost arithmetic and price
 * matching, the reservation before a call (refused, or sent with its output cap lowered),
 * and the reconciliation from whole and streamed responses of both APIs, a cut stream
 * included, tool calls and egress bytes.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "meter.h"
#include "tap.h"

static bool
near(double a, double b)
{
	return a - b < 1e-9 && b - a < 1e-9;
}

static struct meter *
meter_with(const char *json)
{
	static struct meter m;
	char why[256] = "";
	meter_init(&m);
	int r = meter_parse(&m, json, why, sizeof(why));
	ok(r == 0, "--budget %.60s parses (%s)", json, why);
	return &m;
}

static void
feed(struct meter_call *mc, const char *s)
{
	/* in pieces of 7 bytes: the head and the events arrive split */
	for (size_t n = strlen(s), i = 0; i < n; i += 7)
		meter_call_feed(mc, s + i, n - i < 7 ? n - i : 7);
}

/* A request of exactly n bytes (n < sizeof(big)) asking for max_tokens out. */
static char big[4096];
static const char *
request_of(size_t n, int max_tokens)
{
	int head = snprintf(big, sizeof(big), "{\"model\":\"m\",\"max_tokens\":%d,\"messages\":[\"",
	                    max_tokens);
	memset(big + head, 'x', n - (size_t)head - 3);
	memcpy(big + n - 3, "\"]}", 4);
	return big;
}

static const char whole_anthropic[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
    "{\"content\":[{\"type\":\"text\",\"text\":\"hi\"},{\"type\":\"tool_use\",\"id\":\"a\"},"
    "{\"type\":\"tool_use\",\"id\":\"b\"}],\"usage\":{\"input_tokens\":1000,\"output_tokens\":"
    "200,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":50}}";

static const char stream_anthropic[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":"
    "{\"input_tokens\":300,\"output_tokens\":1}}}\n\n"
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
    "\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"bash\"}}\n\n"
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":"
    "{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n"
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":"
    "42}}\n\n"
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

static const char stream_chat[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
    "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
    "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"function\":"
    "{\"name\":\"bash\"}}]}}]}\n\n"
    "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
    "{\"arguments\":\"{}\"}}]}}]}\n\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":500,\"completion_tokens\":20,"
    "\"prompt_tokens_details\":{\"cached_tokens\":100}}}\n\n"
    "data: [DONE]\n\n";

static const char whole_responses[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"
    "{\"output\":[{\"type\":\"function_call\"},{\"type\":\"message\"}],\"usage\":"
    "{\"input_tokens\":70,\"output_tokens\":30,\"input_tokens_details\":{\"cached_tokens\":"
    "0}}}";

int
main(void)
{
	char why[256];
	char *body;
	size_t blen;
	struct meter_call *mc;

	/* The arithmetic: USD per million tokens. */
	struct meter_prices p = {.input = 3, .output = 15, .cache_write = 3.75, .cache_read = 0.3};
	struct meter_usage u = {
	    .input = 1000000, .output = 1000, .cache_write = 2000, .cache_read = 10000};
	ok(near(meter_cost(&p, &u), 3 + 0.015 + 0.0075 + 0.003), "cost: %f", meter_cost(&p, &u));

	struct meter *m = meter_with("{\"prices\": {\"claude-haiku-4-5\": {\"input\": 1, "
	                             "\"output\": 5}, \"claude\": {\"input\": 100}, "
	                             "\"gpt-4o\": {\"input\": 2.5, \"output\": 10}}}");
	ok(meter_price(m, "claude-haiku-4-5-20251001") == &m->prices[0].p,
	   "a dated model takes its family's price");
	ok(meter_price(m, "gpt-4o") == &m->prices[2].p, "an exact name");
	ok(meter_price(m, "gpt-4o2") == NULL, "no price without a '-' after the prefix");
	ok(meter_price(m, "claude-x") == &m->prices[1].p, "the longest prefix wins");

	char bad[256];
	struct meter mb;
	meter_init(&mb);
	ok(meter_parse(&mb, "{\"tokens\": -1}", bad, sizeof(bad)) == -EINVAL &&
	       strstr(bad, "tokens"),
	   "a negative limit is refused, naming the key (%s)", bad);
	meter_init(&mb);
	ok(meter_parse(&mb, "{\"dollars\": 1}", bad, sizeof(bad)) == -EINVAL, "an unknown key");
	meter_init(&mb);
	ok(meter_parse(&mb, "{\"prices\": {\"m\": {\"input\": \"1\"}}}", bad, sizeof(bad)) ==
	       -EINVAL,
	   "a price that is not a number");

	ok(meter_is_call("POST", "/v1/messages?beta=true") &&
	       meter_is_call("POST", "/v1/responses") &&
	       !meter_is_call("POST", "/v1/messages/count_tokens") &&
	       !meter_is_call("GET", "/v1/models"),
	   "which requests are metered calls");

	/* Tokens: 2000 left. A 400-byte request reserves 100 input tokens; its max_tokens of
	 * 8192 goes out lowered to the 1900 left. */
	m = meter_with("{\"tokens\": 2000}");
	char req[401];
	snprintf(req, sizeof(req), "%s", request_of(400, 8192));
	json_t *parsed = json_loads(big, 0, NULL);
	ok(strlen(req) == 400 && parsed, "a 400-byte request");
	json_decref(parsed);
	int r = meter_call_begin(m, "/v1/messages", req, 400, &mc, &body, &blen, why, sizeof(why));
	ok(r == 0 && mc && body, "reserved, with a rewritten body (%d %s)", r, r ? why : "");
	json_t *j = body ? json_loadb(body, blen, 0, NULL) : NULL;
	ok(json_integer_value(json_object_get(j, "max_tokens")) == 1900,
	   "max_tokens lowered to what is left: %lld",
	   (long long)json_integer_value(json_object_get(j, "max_tokens")));
	json_decref(j);
	free(body);
	ok(m->held_tokens == 2000, "all 2000 held while it runs");
	/* A second call meanwhile finds nothing left. */
	struct meter_call *mc2;
	r = meter_call_begin(m, "/v1/messages", req, 400, &mc2, &body, &blen, why, sizeof(why));
	ok(r == -EDQUOT && strncmp(why, "budget: ", 8) == 0 && !mc2,
	   "a concurrent call is refused: %s", why);
	feed(mc, whole_anthropic);
	meter_call_end(m, mc);
	ok(m->used.input == 1000 && m->used.output == 200 && m->used.cache_write == 100 &&
	       m->used.cache_read == 50 && m->held_tokens == 0,
	   "reconciled from the usage of a whole answer");
	ok(m->tool_calls == 2, "two tool_use blocks counted: %llu",
	   (unsigned long long)m->tool_calls);
	ok(m->cost_unknown, "no price: its cost is unknown");
	r = meter_call_begin(m, "/v1/messages", req, 400, &mc, &body, &blen, why, sizeof(why));
	j = body ? json_loadb(body, blen, 0, NULL) : NULL;
	ok(r == 0 && json_integer_value(json_object_get(j, "max_tokens")) == 550,
	   "1350 spent, 650 left: 100 in, at most 550 out");
	json_decref(j);
	free(body);
	meter_call_end(m, mc); /* no response at all: nothing charged */
	ok(m->used.input == 1000 && m->held_tokens == 0, "a call without a response costs nothing");
	const char *large = request_of(2800, 10);
	r = meter_call_begin(m, "/v1/messages", large, 2800, &mc, &body, &blen, why, sizeof(why));
	ok(r == -EDQUOT && strstr(why, "about 700 input tokens") && strstr(why, "leave 650"),
	   "a call whose input alone would pass is refused: %s", why);
	ok(strncmp(m->stop, "budget: ", 8) == 0, "the first refusal is the meter's stop reason");

	/* Cost: $0.01 left at $1/$5 per Mtok. */
	m = meter_with("{\"cost_usd\": 0.01, \"prices\": {\"m\": {\"input\": 1, \"output\": 5}}}");
	r = meter_call_begin(m, "/v1/messages", req, 400, &mc, &body, &blen, why, sizeof(why));
	j = body ? json_loadb(body, blen, 0, NULL) : NULL;
	/* (0.01 - 100 * 1e-6) / 5e-6 = 1980 */
	ok(r == 0 && json_integer_value(json_object_get(j, "max_tokens")) == 1980,
	   "the cost left caps the output: %lld",
	   (long long)json_integer_value(json_object_get(j, "max_tokens")));
	json_decref(j);
	free(body);
	feed(mc, stream_anthropic);
	meter_call_end(m, mc);
	ok(m->used.input == 300 && m->used.output == 42 && m->tool_calls == 1,
	   "a streamed answer: input from message_start, output from message_delta, one tool");
	ok(near(m->cost, (300 * 1.0 + 42 * 5.0) / 1e6) && !m->cost_unknown, "its cost: %.6f",
	   m->cost);
	snprintf(req, sizeof(req), "{\"model\":\"other\",\"max_tokens\":10}");
	r = meter_call_begin(m, "/v1/messages", req, strlen(req), &mc, &body, &blen, why,
	                     sizeof(why));
	ok(r == -EDQUOT && strstr(why, "no price"),
	   "a model without a price, under a cost "
	   "budget: %s",
	   why);

	/* Tool calls: one left. */
	m = meter_with("{\"tool_calls\": 1}");
	snprintf(req, sizeof(req), "{\"model\":\"g\",\"stream\":true,\"messages\":[]}");
	r = meter_call_begin(m, "/v1/chat/completions", req, strlen(req), &mc, &body, &blen, why,
	                     sizeof(why));
	j = body ? json_loadb(body, blen, 0, NULL) : NULL;
	ok(r == 0 &&
	       json_is_true(json_object_get(json_object_get(j, "stream_options"), "include_usage")),
	   "a chat stream is asked for its usage");
	ok(json_object_get(j, "max_tokens") == NULL, "no token limit: no cap is added");
	json_decref(j);
	free(body);
	feed(mc, stream_chat);
	meter_call_end(m, mc);
	ok(m->used.input == 400 && m->used.cache_read == 100 && m->used.output == 20,
	   "chat usage: the cached part of the prompt apart");
	ok(m->tool_calls == 1, "one tool call, over two chunks");
	r = meter_call_begin(m, "/v1/chat/completions", req, strlen(req), &mc, &body, &blen, why,
	                     sizeof(why));
	ok(r == -EDQUOT && strstr(why, "tool calls"), "the next call is refused: %s", why);

	/* Responses API, whole. */
	m = meter_with("{}");
	snprintf(req, sizeof(req), "{\"model\":\"g\",\"input\":\"x\"}");
	r = meter_call_begin(m, "/v1/responses", req, strlen(req), &mc, &body, &blen, why,
	                     sizeof(why));
	ok(r == 0 && !body, "no limit: the body goes as it is");
	feed(mc, whole_responses);
	meter_call_end(m, mc);
	ok(m->used.input == 70 && m->used.output == 30 && m->tool_calls == 1,
	   "responses: usage and a function_call");

	/* A stream cut before its usage: the input estimate and a token per delta, not the
	 * reservation. */
	m = meter_with("{\"tokens\": 100000}");
	snprintf(req, sizeof(req), "{\"model\":\"m\",\"max_tokens\":8000,\"stream\":true}");
	r = meter_call_begin(m, "/v1/messages", req, strlen(req), &mc, &body, &blen, why,
	                     sizeof(why));
	uint64_t est = mc ? mc->est_input : 0;
	feed(mc, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
	         "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":"
	         "{\"text\":\"a\"}}\n\nevent: content_block_delta\ndata: {\"type\":"
	         "\"content_block_delta\",\"delta\":{\"text\":\"b\"}}\n\nevent: content_bl");
	meter_call_end(m, mc);
	ok(r == 0 && m->used.input == est && m->used.output == 2 && m->held_tokens == 0,
	   "cut: charged %llu in, %llu out (what it proved)", (unsigned long long)m->used.input,
	   (unsigned long long)m->used.output);
	r = meter_call_begin(m, "/v1/messages", req, strlen(req), &mc, &body, &blen, why,
	                     sizeof(why));
	feed(mc, "HTTP/1.1 529 Overloaded\r\nContent-Type: application/json\r\n\r\n{\"usage\":"
	         "{\"input_tokens\":9999}}");
	uint64_t before = m->used.input;
	meter_call_end(m, mc);
	ok(m->used.input == before, "an error status is charged nothing");
	r = meter_call_begin(m, "/v1/messages", req, strlen(req), &mc, &body, &blen, why,
	                     sizeof(why));
	feed(mc, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n\x1f\x8b");
	meter_call_end(m, mc);
	ok(m->used.input == before + est, "a body it cannot read: the input estimate");

	/* Egress. */
	m = meter_with("{\"egress_bytes\": 1000}");
	ok(meter_egress(m, 600, why, sizeof(why)) && meter_egress(m, 400, why, sizeof(why)),
	   "1000 bytes of egress pass");
	ok(!meter_egress(m, 1, why, sizeof(why)) && strncmp(why, "budget: ", 8) == 0,
	   "the next byte does not: %s", why);
	return tap_done();
}
