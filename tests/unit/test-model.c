/*
 * test-model.c: request bodies for both APIs from canonical messages, and the decoders on
 * streamed and whole replies of both APIs, fed in one piece and byte by byte: text, tool
 * calls with arguments split anywhere, usage, stop reasons (known, unknown), error events,
 * malformed and truncated streams.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "model.h"
#include "tap.h"

struct text {
	char buf[4096];
	size_t len;
};

static void
collect(void *ctx, const char *s, size_t n)
{
	struct text *t = ctx;
	if (t->len + n < sizeof(t->buf)) {
		memcpy(t->buf + t->len, s, n);
		t->len += n;
		t->buf[t->len] = '\0';
	}
}

/* Decodes body (in pieces of `step` bytes; 0: whole) into *ret; returns the finish status. */
static int
decode(enum model_provider p, bool stream, const char *body, size_t step, struct model_reply *ret,
       struct text *t, char *why, size_t why_size)
{
	memset(t, 0, sizeof(*t));
	struct model_decoder *d = model_decoder_new(p, stream, collect, t);
	size_t len = strlen(body);
	int r = 0;
	if (step == 0)
		step = len ? len : 1;
	for (size_t off = 0; off < len && r == 0; off += step)
		r = model_decoder_feed(d, body + off, len - off < step ? len - off : step);
	if (r == 0)
		r = model_decoder_finish(d, ret);
	snprintf(why, why_size, "%s", model_decoder_error(d));
	model_decoder_free(d);
	return r;
}

static const char anthropic_stream[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":25,"
    "\"cache_creation_input_tokens\":3,\"cache_read_input_tokens\":7,\"output_tokens\":1}}}\n\n"
    "event: ping\ndata: {\"type\": \"ping\"}\n\n"
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
    "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
    "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n"
    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
    "\"delta\":{\"type\":\"text_delta\",\"text\":\"lo \\u00e9\"}}\r\n\r\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: future_event\ndata: {\"type\":\"future_event\",\"x\":1}\n\n"
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,"
    "\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"bash\","
    "\"input\":{}}}\n\n"
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,"
    "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"comm\"}}\n\n"
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,"
    "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"and\\\": \\\"ls\\\"}\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
    "\"tool_use\"},\"usage\":{\"output_tokens\":42}}\n\n"
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

static const char openai_stream[] =
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
    "\"finish_reason\":null}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \\u00e9\"}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\","
    "\"type\":\"function\",\"function\":{\"name\":\"bash\",\"arguments\":\"\"}}]}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
    "{\"arguments\":\"{\\\"comm\"}}]}}]}\n\n"
    ": a comment line\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
    "{\"arguments\":\"and\\\": \\\"ls\\\"}\"}}]}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":35,\"completion_tokens\":42,"
    "\"prompt_tokens_details\":{\"cached_tokens\":7}}}\n\n"
    "data: [DONE]\n\n";

static void
check_reply(const char *what, int r, struct model_reply *rep, struct text *t)
{
	ok(r == 0, "%s: decoded (%d)", what, r);
	if (r != 0)
		return;
	ok(strcmp(t->buf, "Hello \xc3\xa9") == 0, "%s: text streamed as it came: '%s'", what,
	   t->buf);
	json_t *b0 = json_array_get(rep->content, 0), *b1 = json_array_get(rep->content, 1);
	ok(json_array_size(rep->content) == 2, "%s: a text block and a tool_use block", what);
	ok(strcmp(json_get_str(b0, "text") ?: "", "Hello \xc3\xa9") == 0, "%s: the text block",
	   what);
	ok(strcmp(json_get_str(b1, "type") ?: "", "tool_use") == 0 &&
	       strcmp(json_get_str(b1, "name") ?: "", "bash") == 0 && json_get_str(b1, "id") &&
	       strcmp(json_get_str(json_object_get(b1, "input"), "command") ?: "", "ls") == 0,
	   "%s: the tool call with its arguments joined", what);
	ok(strcmp(rep->stop_reason, MODEL_STOP_TOOL_USE) == 0, "%s: stop reason normalized (%s)",
	   what, rep->stop_reason);
	ok(rep->usage.output_tokens == 42 && rep->usage.cache_read_tokens == 7 &&
	       model_usage_context(&rep->usage) == 35,
	   "%s: usage (in %llu, out %llu, cache read %llu)", what,
	   (unsigned long long)rep->usage.input_tokens,
	   (unsigned long long)rep->usage.output_tokens,
	   (unsigned long long)rep->usage.cache_read_tokens);
}

static void
test_streams(void)
{
	struct model_reply rep;
	struct text t;
	char why[512];
	for (int p = 0; p < 2; p++) {
		enum model_provider prov = p ? MODEL_OPENAI : MODEL_ANTHROPIC;
		const char *body = p ? openai_stream : anthropic_stream;
		for (size_t step = 0; step <= 1; step++) {
			char what[64];
			snprintf(what, sizeof(what), "%s stream%s", model_provider_name(prov),
			         step ? ", byte by byte" : "");
			int r = decode(prov, true, body, step, &rep, &t, why, sizeof(why));
			check_reply(what, r, &rep, &t);
			if (r == 0)
				model_reply_done(&rep);
		}
		/* Every proper prefix of the stream is a truncated one. */
		size_t len = strlen(body), bad = 0;
		for (size_t cut = 1; cut < len; cut += 7) {
			char *prefix = strndup(body, cut);
			int r = decode(prov, true, prefix, 0, &rep, &t, why, sizeof(why));
			if (r == 0) {
				model_reply_done(&rep);
				bad++;
			}
			free(prefix);
		}
		ok(bad == 0, "%s: every cut-short stream is an error (%zu accepted)",
		   model_provider_name(prov), bad);
	}
	/* The end marker is what makes a stream complete. */
	int r = decode(MODEL_ANTHROPIC, true,
	               "event: message_stop\ndata: {\"type\":\"message_stop\"}\n", 0, &rep, &t, why,
	               sizeof(why));
	ok(r == -EPIPE && strstr(why, "message_stop"),
	   "a stream whose last event has no blank line is cut short: %s", why);
}

static void
test_errors(void)
{
	struct model_reply rep;
	struct text t;
	char why[512];
	int r = decode(
	    MODEL_ANTHROPIC, true,
	    "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
	    "\"message\":\"Overloaded\"}}\n\n",
	    0, &rep, &t, why, sizeof(why));
	ok(r == -EREMOTEIO && strstr(why, "overloaded_error: Overloaded"), "an error event: %s",
	   why);
	r = decode(MODEL_ANTHROPIC, true, "data: {not json}\n\n", 0, &rep, &t, why, sizeof(why));
	ok(r == -EPROTO && strstr(why, "malformed JSON"), "malformed JSON in a stream: %s", why);
	r = decode(MODEL_OPENAI, true, "data: [1,2]\n\n", 0, &rep, &t, why, sizeof(why));
	ok(r == -EPROTO, "an event that is not an object");
	r = decode(MODEL_ANTHROPIC, false, "{\"content\": [", 0, &rep, &t, why, sizeof(why));
	ok(r == -EPROTO && strstr(why, "not valid JSON"), "a whole reply that is not JSON: %s",
	   why);
	r = decode(MODEL_OPENAI, false, "{\"choices\": []}", 0, &rep, &t, why, sizeof(why));
	ok(r == -EPROTO && strstr(why, "no message"), "a whole reply without a message: %s", why);

	/* 200 content blocks: past the limit, an error, not a crash. */
	size_t size = 200 * 160 + 64, o = 0;
	char *big = malloc(size);
	for (int i = 0; i < 200; i++)
		o += (size_t)snprintf(big + o, size - o,
		                      "data: {\"type\":\"content_block_start\",\"index\":%d,"
		                      "\"content_block\":{\"type\":\"text\",\"text\":\"x\"}}\n\n",
		                      i);
	r = decode(MODEL_ANTHROPIC, true, big, 0, &rep, &t, why, sizeof(why));
	ok(r == -EMSGSIZE, "too many content blocks: %s", why);
	free(big);

	char msg[128];
	const char *body =
	    "{\"type\":\"error\",\"error\":{\"type\":\"x\",\"message\":\"bad key\"}}";
	model_error_message(body, strlen(body), msg, sizeof(msg));
	ok(strcmp(msg, "bad key") == 0, "Anthropic error body: '%s'", msg);
	model_error_message("{\"error\":\"model not found\"}", 27, msg, sizeof(msg));
	ok(strcmp(msg, "model not found") == 0, "llama.cpp/Ollama error body: '%s'", msg);
	model_error_message("Bad Gateway\r\nmore", 17, msg, sizeof(msg));
	ok(strcmp(msg, "Bad Gateway") == 0, "a plain-text body: its first line: '%s'", msg);
}

static void
test_whole_and_stops(void)
{
	struct model_reply rep;
	struct text t;
	char why[512];
	int r = decode(
	    MODEL_ANTHROPIC, false,
	    "{\"content\":[{\"type\":\"text\",\"text\":\"Hello \\u00e9\"},{\"type\":\"thinking\","
	    "\"thinking\":\"hmm\"},{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"bash\",\"input\":"
	    "{\"command\":\"ls\"}}],\"stop_reason\":\"tool_use\",\"usage\":{\"input_tokens\":28,"
	    "\"cache_read_input_tokens\":7,\"output_tokens\":42}}",
	    0, &rep, &t, why, sizeof(why));
	/* The thinking block is dropped, so the tool call is the second block. */
	check_reply("anthropic whole", r, &rep, &t);
	if (r == 0)
		model_reply_done(&rep);
	r = decode(
	    MODEL_OPENAI, false,
	    "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"Hello \\u00e9\","
	    "\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"bash\","
	    "\"arguments\":\"{\\\"command\\\":\\\"ls\\\"}\"}}]},\"finish_reason\":\"tool_calls\"}],"
	    "\"usage\":{\"prompt_tokens\":35,\"completion_tokens\":42,\"prompt_tokens_details\":"
	    "{\"cached_tokens\":7}}}",
	    0, &rep, &t, why, sizeof(why));
	check_reply("openai whole", r, &rep, &t);
	if (r == 0)
		model_reply_done(&rep);

	static const struct {
		enum model_provider p;
		const char *raw, *want;
	} stops[] = {
	    {MODEL_ANTHROPIC, "end_turn", MODEL_STOP_END},
	    {MODEL_ANTHROPIC, "stop_sequence", MODEL_STOP_END},
	    {MODEL_ANTHROPIC, "max_tokens", MODEL_STOP_MAX_TOKENS},
	    {MODEL_ANTHROPIC, "pause_turn", MODEL_STOP_PAUSE},
	    {MODEL_ANTHROPIC, "refusal", MODEL_STOP_REFUSAL},
	    {MODEL_ANTHROPIC, "something_new", "something_new"},
	    {MODEL_OPENAI, "stop", MODEL_STOP_END},
	    {MODEL_OPENAI, "length", MODEL_STOP_MAX_TOKENS},
	    {MODEL_OPENAI, "content_filter", MODEL_STOP_REFUSAL},
	    {MODEL_OPENAI, "tool_calls", MODEL_STOP_TOOL_USE},
	};
	for (size_t i = 0; i < sizeof(stops) / sizeof(stops[0]); i++) {
		char body[512];
		if (stops[i].p == MODEL_ANTHROPIC)
			snprintf(body, sizeof(body),
			         "{\"content\":[{\"type\":\"text\",\"text\":\"x\"}],\"stop_"
			         "reason\":\"%s\"}",
			         stops[i].raw);
		else
			snprintf(body, sizeof(body),
			         "{\"choices\":[{\"message\":{\"content\":\"x\"},\"finish_reason\":"
			         "\"%s\"}]}",
			         stops[i].raw);
		r = decode(stops[i].p, false, body, 0, &rep, &t, why, sizeof(why));
		ok(r == 0 && strcmp(rep.stop_reason, stops[i].want) == 0 &&
		       strcmp(rep.raw_stop, stops[i].raw) == 0,
		   "%s stop reason %s -> %s", model_provider_name(stops[i].p), stops[i].raw,
		   r == 0 ? rep.stop_reason : why);
		if (r == 0)
			model_reply_done(&rep);
	}

	/* Arguments that are not a JSON object are kept as text for the tool to refuse. */
	r = decode(MODEL_OPENAI, false,
	           "{\"choices\":[{\"message\":{\"tool_calls\":[{\"function\":{\"name\":\"bash\","
	           "\"arguments\":\"[1,\"}}]},\"finish_reason\":\"tool_calls\"}]}",
	           0, &rep, &t, why, sizeof(why));
	json_t *b = r == 0 ? json_array_get(rep.content, 0) : NULL;
	ok(b && strcmp(json_get_str(b, "invalid_input") ?: "", "[1,") == 0 &&
	       json_is_object(json_object_get(b, "input")) && json_get_str(b, "id"),
	   "malformed arguments are kept as invalid_input, with an id made up when none came");
	if (r == 0)
		model_reply_done(&rep);
}

static void
test_requests(void)
{
	_cleanup_json_ json_t *messages = json_loads(
	    "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]},"
	    "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"\"},{\"type\":"
	    "\"tool_use\","
	    "\"id\":\"t1\",\"name\":\"bash\",\"input\":{\"command\":\"ls\"}}],\"usage\":{\"input_"
	    "tokens\":1}},"
	    "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\","
	    "\"content\":\"a.txt\",\"is_error\":false}]},"
	    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"and now?\"}]}]",
	    0, NULL);
	_cleanup_json_ json_t *tools = json_loads(
	    "[{\"name\":\"bash\",\"description\":\"d\",\"input_schema\":{\"type\":\"object\"}}]", 0,
	    NULL);
	struct model_request req = {.provider = MODEL_ANTHROPIC,
	                            .model = "m",
	                            .max_tokens = 100,
	                            .system = "sys",
	                            .messages = messages,
	                            .tools = tools,
	                            .stream = true};
	_cleanup_free_ char *a = model_request_body(&req);
	_cleanup_json_ json_t *ja = json_loads(a ? a : "", 0, NULL);
	json_t *am = json_object_get(ja, "messages");
	ok(ja && json_array_size(am) == 3,
	   "anthropic: consecutive user messages merge (3 messages)");
	ok(json_array_size(json_object_get(json_array_get(am, 1), "content")) == 1,
	   "anthropic: the empty text block is left out");
	ok(json_array_size(json_object_get(json_array_get(am, 2), "content")) == 2,
	   "anthropic: the tool result and the new prompt share one user message");
	ok(strcmp(json_get_str(ja, "system") ?: "", "sys") == 0 &&
	       json_integer_value(json_object_get(ja, "max_tokens")) == 100 &&
	       json_is_true(json_object_get(ja, "stream")) &&
	       json_get_str(json_array_get(json_object_get(ja, "tools"), 0), "name"),
	   "anthropic: system, max_tokens, stream, tools");
	ok(!strstr(a ? a : "", "usage"), "anthropic: our own fields are not sent");

	req.provider = MODEL_OPENAI;
	req.max_tokens_field = "max_completion_tokens";
	_cleanup_free_ char *o = model_request_body(&req);
	_cleanup_json_ json_t *jo = json_loads(o ? o : "", 0, NULL);
	json_t *om = json_object_get(jo, "messages");
	ok(json_array_size(om) == 5, "openai: system, user, assistant, tool, user");
	json_t *asst = json_array_get(om, 2);
	ok(json_is_null(json_object_get(asst, "content")) &&
	       strcmp(json_get_str(
	                  json_object_get(json_array_get(json_object_get(asst, "tool_calls"), 0),
	                                  "function"),
	                  "arguments")
	                  ?: "",
	              "{\"command\":\"ls\"}") == 0,
	   "openai: tool_calls with string arguments");
	ok(strcmp(json_get_str(json_array_get(om, 3), "role") ?: "", "tool") == 0 &&
	       strcmp(json_get_str(json_array_get(om, 3), "tool_call_id") ?: "", "t1") == 0,
	   "openai: a tool message answers the call");
	ok(json_integer_value(json_object_get(jo, "max_completion_tokens")) == 100 &&
	       !json_object_get(jo, "max_tokens") &&
	       json_is_true(
	           json_object_get(json_object_get(jo, "stream_options"), "include_usage")),
	   "openai: the max-tokens field asked for, usage in the stream");
	ok(strcmp(json_get_str(
	              json_object_get(json_array_get(json_object_get(jo, "tools"), 0), "function"),
	              "name")
	              ?: "",
	          "bash") == 0,
	   "openai: tools as functions");
}

int
main(void)
{
	test_streams();
	test_errors();
	test_whole_and_stops();
	test_requests();
	return tap_done();
}
