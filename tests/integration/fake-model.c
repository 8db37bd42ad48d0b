/*
 * fake-model.c: a model API for tests, on loopback, speaking the real wire protocols:
 * Anthropic Messages (POST /v1/messages), OpenAI Chat Completions (POST
 * /v1/chat/completions), streamed (SSE) or whole, as the request asks, and OpenAI Responses
 * (POST /v1/responses, streamed only: what Codex speaks).
 *
 * It plays a scenario file (tests/data/scenarios/NAME.json): a list of turns, one per request,
 * each saying what the model replies and what the request must contain:
 *
 *   {"turns": [
 *     {"expect": {"contains": ["..."], "last_contains": ["..."], "not_contains": ["..."],
 *                 "tools": true},
 *      "reply": {"text": "...", "tool_calls": [{"id", "name", "input": {...}} or
 *                {"id", "name", "arguments": "raw text"}], "stop_reason": "...",
 *                "usage": {"input_tokens": N, "output_tokens": N, ...}},
 *      "status": 429, "headers": {"retry-after": "0"}, "raw": "a body sent as is",
 *      "truncate": true,     (a stream that stops before its end marker)
 *      "delay_ms": N,        (the reply comes after N ms)
 *      "malformed": true}    (a stream event that is not JSON)
 *   ], "default": {...}}   (a turn for every request past the list)
 * A reply {"echo": true} answers "echo: " and the first text of the last user message.
 *
 * "contains" looks at every string of the request (system, messages, tool results),
 * "last_contains" at the messages after the last assistant message (the new prompt or the
 * tool results). Every request is logged as a JSON line to --log: {"n", "at_us" (when it
 * came, wall clock), "path", "stream", "ok", "failures": [...], "request": {...}}; a test then
 * asserts that every line is ok.
 * --key VALUE: the credential header the proxy must have added (x-api-key for Anthropic,
 * "Authorization: Bearer" for OpenAI). --forbid TEXT: a string no request may contain
 * anywhere (a secret that must not leak into tool results).
 *
 * Usage: fake-model --scenario FILE --log FILE --port-file FILE [--key K] [--forbid S]...
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <time.h>

static json_t *turns;
static json_t *scenario_json;
static size_t next_turn;
static FILE *logf;
static const char *key;
static const char *forbid[8];
static size_t n_forbid;
static unsigned n_requests;

/* Every string in j, joined with newlines. */
static void
collect_strings(json_t *j, struct evbuffer *out)
{
	size_t i;
	const char *k;
	json_t *v;
	if (json_is_string(j)) {
		evbuffer_add(out, json_string_value(j), json_string_length(j));
		evbuffer_add(out, "\n", 1);
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v) collect_strings(v, out);
	} else if (json_is_object(j)) {
		json_object_foreach(j, k, v) collect_strings(v, out);
	}
}

static char *
strings_of(json_t *j)
{
	struct evbuffer *b = evbuffer_new();
	collect_strings(j, b);
	evbuffer_add(b, "", 1);
	char *s = strdup((char *)evbuffer_pullup(b, -1));
	evbuffer_free(b);
	return s;
}

/* The messages after the last assistant message. */
static char *
last_strings(json_t *body)
{
	/* Responses: "input" items, the model's own being assistant messages and calls. */
	json_t *msgs = json_object_get(body, "messages") ?: json_object_get(body, "input");
	size_t n = json_array_size(msgs), start = 0;
	for (size_t i = n; i-- > 0;) {
		json_t *m = json_array_get(msgs, i);
		const char *role = json_string_value(json_object_get(m, "role"));
		const char *type = json_string_value(json_object_get(m, "type"));
		if ((role && strcmp(role, "assistant") == 0) ||
		    (type && strcmp(type, "function_call") == 0)) {
			start = i + 1;
			break;
		}
	}
	json_t *tail = json_array();
	for (size_t i = start; i < n; i++)
		json_array_append(tail, json_array_get(msgs, i));
	char *s = strings_of(tail);
	json_decref(tail);
	return s;
}

static void
check_list(json_t *expect, const char *field, const char *hay, bool want, json_t *failures)
{
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(expect, field), i, v)
	{
		const char *needle = json_string_value(v);
		if (needle && (strstr(hay, needle) != NULL) != want) {
			char msg[512];
			snprintf(msg, sizeof(msg), "%s: %.400s", field, needle);
			json_array_append_new(failures, json_string(msg));
		}
	}
}

static bool
has_id(json_t *ids, const char *id)
{
	size_t i;
	json_t *v;
	json_array_foreach(ids, i, v) if (id && strcmp(json_string_value(v), id) == 0) return true;
	return false;
}

/* What the real APIs refuse: a tool call whose result does not come next, a result without its
 * call, roles out of order. */
static void
check_structure(json_t *body, bool anthropic, json_t *failures)
{
	json_t *msgs = json_object_get(body, "messages");
	json_t *pending = json_array(); /* ids of tool calls awaiting results */
	const char *prev_role = "";
	size_t i;
	json_t *m;
	json_array_foreach(msgs, i, m)
	{
		const char *role = json_string_value(json_object_get(m, "role"));
		if (!role) {
			json_array_append_new(failures, json_string("a message without a role"));
			break;
		}
		if (anthropic) {
			if (strcmp(role, prev_role) == 0 || (i == 0 && strcmp(role, "user") != 0))
				json_array_append_new(
				    failures, json_sprintf("roles out of order at message %zu", i));
			json_t *content = json_object_get(m, "content");
			size_t j, results = 0;
			json_t *b;
			json_array_foreach(content, j, b)
			{
				const char *type = json_string_value(json_object_get(b, "type"));
				if (type && strcmp(type, "tool_result") == 0) {
					results++;
					if (!has_id(pending, json_string_value(json_object_get(
					                         b, "tool_use_id"))))
						json_array_append_new(
						    failures,
						    json_sprintf("a tool_result without its "
						                 "tool_use at message %zu",
						                 i));
				}
				if (type && strcmp(type, "text") == 0 &&
				    !*json_string_value(json_object_get(b, "text")))
					json_array_append_new(
					    failures,
					    json_sprintf("an empty text block at message %zu", i));
			}
			if (json_array_size(pending) && results != json_array_size(pending))
				json_array_append_new(
				    failures,
				    json_sprintf("tool_use without tool_result before message %zu",
				                 i));
			json_array_clear(pending);
			if (strcmp(role, "assistant") == 0)
				json_array_foreach(content, j, b)
				{
					const char *type =
					    json_string_value(json_object_get(b, "type"));
					if (type && strcmp(type, "tool_use") == 0)
						json_array_append(pending,
						                  json_object_get(b, "id"));
				}
		} else {
			if (strcmp(role, "tool") == 0) {
				const char *id =
				    json_string_value(json_object_get(m, "tool_call_id"));
				if (!has_id(pending, id))
					json_array_append_new(
					    failures,
					    json_sprintf(
					        "a tool message without its call at message %zu",
					        i));
				for (size_t k = 0; k < json_array_size(pending); k++)
					if (id &&
					    strcmp(json_string_value(json_array_get(pending, k)),
					           id) == 0)
						json_array_remove(pending, k);
			} else {
				if (json_array_size(pending))
					json_array_append_new(
					    failures,
					    json_sprintf(
					        "tool_calls without results before message %zu",
					        i));
				json_array_clear(pending);
				size_t j;
				json_t *c;
				json_array_foreach(json_object_get(m, "tool_calls"), j, c)
				    json_array_append(pending, json_object_get(c, "id"));
			}
		}
		prev_role = role;
	}
	if (json_array_size(pending))
		json_array_append_new(failures,
		                      json_string("the request ends with unanswered tool calls"));
	json_decref(pending);
}

static void
add_sse(struct evbuffer *b, bool anthropic, json_t *data)
{
	char *s = json_dumps(data, JSON_COMPACT);
	if (anthropic)
		evbuffer_add_printf(b, "event: %s\n",
		                    json_string_value(json_object_get(data, "type")));
	evbuffer_add_printf(b, "data: %s\n\n", s);
	free(s);
	json_decref(data);
}

static json_t *
usage_of(json_t *reply)
{
	json_t *u = json_object_get(reply, "usage");
	return u ? json_incref(u) : json_pack("{s:i,s:i}", "input_tokens", 10, "output_tokens", 5);
}

static const char *
stop_of(json_t *reply, bool anthropic)
{
	const char *s = json_string_value(json_object_get(reply, "stop_reason"));
	if (s)
		return s;
	bool tools = json_array_size(json_object_get(reply, "tool_calls")) > 0;
	return anthropic ? (tools ? "tool_use" : "end_turn") : (tools ? "tool_calls" : "stop");
}

static char *
arguments_of(json_t *call)
{
	const char *raw = json_string_value(json_object_get(call, "arguments"));
	if (raw)
		return strdup(raw);
	json_t *in = json_object_get(call, "input");
	return json_dumps(in ? in : json_object(), JSON_COMPACT);
}

/* An Anthropic stream: text in small deltas, tool input in pieces. */
static void
anthropic_stream(struct evbuffer *b, json_t *reply, json_t *turn)
{
	json_t *usage = usage_of(reply);
	add_sse(b, true,
	        json_pack("{s:s,s:{s:s,s:s,s:s,s:[],s:s,s:n,s:O}}", "type", "message_start",
	                  "message", "id", "msg_fake", "type", "message", "role", "assistant",
	                  "content", "model", "fake", "stop_reason", "usage", usage));
	add_sse(b, true, json_pack("{s:s}", "type", "ping"));
	int index = 0;
	const char *text = json_string_value(json_object_get(reply, "text"));
	if (text) {
		add_sse(b, true,
		        json_pack("{s:s,s:i,s:{s:s,s:s}}", "type", "content_block_start", "index",
		                  index, "content_block", "type", "text", "text", ""));
		size_t len = strlen(text);
		for (size_t off = 0; off < len;) {
			size_t n = len - off < 7 ? len - off : 7;
			/* Never split a UTF-8 sequence: the real API sends whole characters. */
			while (off + n < len && (text[off + n] & 0xC0) == 0x80)
				n++;
			add_sse(b, true,
			        json_pack("{s:s,s:i,s:{s:s,s:s%}}", "type", "content_block_delta",
			                  "index", index, "delta", "type", "text_delta", "text",
			                  text + off, n));
			off += n;
		}
		if (json_is_true(json_object_get(turn, "malformed"))) {
			evbuffer_add_printf(
			    b, "event: content_block_delta\ndata: {\"type\": nope\n\n");
			json_decref(usage);
			return;
		}
		add_sse(b, true,
		        json_pack("{s:s,s:i}", "type", "content_block_stop", "index", index));
		index++;
	}
	size_t i;
	json_t *call;
	json_array_foreach(json_object_get(reply, "tool_calls"), i, call)
	{
		add_sse(b, true,
		        json_pack("{s:s,s:i,s:{s:s,s:O,s:O,s:{}}}", "type", "content_block_start",
		                  "index", index, "content_block", "type", "tool_use", "id",
		                  json_object_get(call, "id"), "name",
		                  json_object_get(call, "name"), "input"));
		char *args = arguments_of(call);
		size_t len = strlen(args);
		for (size_t off = 0; off < len; off += 11) {
			size_t n = len - off < 11 ? len - off : 11;
			add_sse(b, true,
			        json_pack("{s:s,s:i,s:{s:s,s:s%}}", "type", "content_block_delta",
			                  "index", index, "delta", "type", "input_json_delta",
			                  "partial_json", args + off, n));
		}
		free(args);
		add_sse(b, true,
		        json_pack("{s:s,s:i}", "type", "content_block_stop", "index", index));
		index++;
	}
	if (json_is_true(json_object_get(turn, "truncate"))) {
		json_decref(usage);
		return;
	}
	add_sse(b, true,
	        json_pack("{s:s,s:{s:s,s:n},s:{s:O}}", "type", "message_delta", "delta",
	                  "stop_reason", stop_of(reply, true), "stop_sequence", "usage",
	                  "output_tokens", json_object_get(usage, "output_tokens")));
	add_sse(b, true, json_pack("{s:s}", "type", "message_stop"));
	json_decref(usage);
}

static json_t *
anthropic_whole(json_t *reply)
{
	json_t *content = json_array();
	const char *text = json_string_value(json_object_get(reply, "text"));
	if (text)
		json_array_append_new(content,
		                      json_pack("{s:s,s:s}", "type", "text", "text", text));
	size_t i;
	json_t *call;
	json_array_foreach(json_object_get(reply, "tool_calls"), i, call)
	{
		json_t *in = json_object_get(call, "input");
		json_array_append_new(content, json_pack("{s:s,s:O,s:O,s:O}", "type", "tool_use",
		                                         "id", json_object_get(call, "id"), "name",
		                                         json_object_get(call, "name"), "input",
		                                         in ? in : json_object()));
	}
	return json_pack("{s:s,s:s,s:s,s:o,s:s,s:s,s:n,s:o}", "id", "msg_fake", "type", "message",
	                 "role", "assistant", "content", content, "model", "fake", "stop_reason",
	                 stop_of(reply, true), "stop_sequence", "usage", usage_of(reply));
}

static json_t *
openai_usage(json_t *reply)
{
	json_t *u = usage_of(reply);
	json_int_t in = json_integer_value(json_object_get(u, "input_tokens")) +
	                json_integer_value(json_object_get(u, "cache_read_input_tokens"));
	json_t *o =
	    json_pack("{s:I,s:O,s:{s:O}}", "prompt_tokens", in, "completion_tokens",
	              json_object_get(u, "output_tokens"), "prompt_tokens_details", "cached_tokens",
	              json_object_get(u, "cache_read_input_tokens") ?: json_integer(0));
	json_decref(u);
	return o;
}

static void
openai_stream(struct evbuffer *b, json_t *reply, json_t *turn)
{
	add_sse(b, false,
	        json_pack("{s:s,s:s,s:[{s:i,s:{s:s,s:s},s:n}]}", "id", "c1", "object",
	                  "chat.completion.chunk", "choices", "index", 0, "delta", "role",
	                  "assistant", "content", "", "finish_reason"));
	const char *text = json_string_value(json_object_get(reply, "text"));
	size_t len = text ? strlen(text) : 0;
	for (size_t off = 0; off < len;) {
		size_t n = len - off < 7 ? len - off : 7;
		while (off + n < len && (text[off + n] & 0xC0) == 0x80)
			n++;
		add_sse(b, false,
		        json_pack("{s:s,s:[{s:i,s:{s:s%},s:n}]}", "object", "chat.completion.chunk",
		                  "choices", "index", 0, "delta", "content", text + off, n,
		                  "finish_reason"));
		off += n;
	}
	if (json_is_true(json_object_get(turn, "malformed"))) {
		evbuffer_add_printf(b, "data: {\"choices\": [nope\n\n");
		return;
	}
	size_t i;
	json_t *call;
	json_array_foreach(json_object_get(reply, "tool_calls"), i, call)
	{
		char *args = arguments_of(call);
		add_sse(b, false,
		        json_pack("{s:[{s:i,s:{s:[{s:i,s:O,s:s,s:{s:O,s:s}}]},s:n}]}", "choices",
		                  "index", 0, "delta", "tool_calls", "index", (int)i, "id",
		                  json_object_get(call, "id"), "type", "function", "function",
		                  "name", json_object_get(call, "name"), "arguments", "",
		                  "finish_reason"));
		size_t alen = strlen(args);
		for (size_t off = 0; off < alen; off += 9) {
			size_t n = alen - off < 9 ? alen - off : 9;
			add_sse(b, false,
			        json_pack("{s:[{s:i,s:{s:[{s:i,s:{s:s%}}]},s:n}]}", "choices",
			                  "index", 0, "delta", "tool_calls", "index", (int)i,
			                  "function", "arguments", args + off, n, "finish_reason"));
		}
		free(args);
	}
	if (json_is_true(json_object_get(turn, "truncate")))
		return;
	add_sse(b, false,
	        json_pack("{s:[{s:i,s:{},s:s}]}", "choices", "index", 0, "delta", "finish_reason",
	                  stop_of(reply, false)));
	add_sse(b, false, json_pack("{s:[],s:o}", "choices", "usage", openai_usage(reply)));
	evbuffer_add_printf(b, "data: [DONE]\n\n");
}

/* One Responses stream event: "event: TYPE" and the data, with its sequence number. */
static void
add_responses_sse(struct evbuffer *b, json_t *data, int *seq)
{
	json_object_set_new(data, "sequence_number", json_integer((*seq)++));
	char *s = json_dumps(data, JSON_COMPACT);
	evbuffer_add_printf(b, "event: %s\ndata: %s\n\n",
	                    json_string_value(json_object_get(data, "type")), s);
	free(s);
	json_decref(data);
}

/* An OpenAI Responses stream, as published: response.created, for the text a message item
 * (output_item.added, output_text.delta in pieces, output_item.done), one function_call item
 * per tool call (output_item.done), response.completed with the usage. */
static void
responses_stream(struct evbuffer *b, json_t *reply)
{
	int seq = 0;
	json_t *output = json_array();
	add_responses_sse(b,
	                  json_pack("{s:s,s:{s:s,s:s,s:s,s:[]}}", "type", "response.created",
	                            "response", "id", "resp_fake", "object", "response", "status",
	                            "in_progress", "output"),
	                  &seq);
	const char *text = json_string_value(json_object_get(reply, "text"));
	int idx = 0;
	if (text && *text) {
		add_responses_sse(b,
		                  json_pack("{s:s,s:i,s:{s:s,s:s,s:s,s:s,s:[]}}", "type",
		                            "response.output_item.added", "output_index", idx, "item",
		                            "id", "msg_fake", "type", "message", "role", "assistant",
		                            "status", "in_progress", "content"),
		                  &seq);
		size_t len = strlen(text);
		for (size_t off = 0; off < len;) {
			size_t n = len - off < 7 ? len - off : 7;
			while (off + n < len && (text[off + n] & 0xC0) == 0x80)
				n++;
			add_responses_sse(b,
			                  json_pack("{s:s,s:s,s:i,s:i,s:s%}", "type",
			                            "response.output_text.delta", "item_id", "msg_fake",
			                            "output_index", idx, "content_index", 0, "delta",
			                            text + off, n),
			                  &seq);
			off += n;
		}
		json_t *item = json_pack("{s:s,s:s,s:s,s:s,s:[{s:s,s:s,s:[]}]}", "id", "msg_fake",
		                         "type", "message", "role", "assistant", "status", "completed",
		                         "content", "type", "output_text", "text", text, "annotations");
		json_array_append(output, item);
		add_responses_sse(b,
		                  json_pack("{s:s,s:i,s:o}", "type", "response.output_item.done",
		                            "output_index", idx++, "item", item),
		                  &seq);
	}
	size_t i;
	json_t *call;
	json_array_foreach(json_object_get(reply, "tool_calls"), i, call)
	{
		char *args = arguments_of(call);
		char fid[80];
		snprintf(fid, sizeof(fid), "fc_%s", json_string_value(json_object_get(call, "id")));
		json_t *item = json_pack("{s:s,s:s,s:O,s:O,s:s,s:s}", "id", fid, "type",
		                         "function_call", "call_id", json_object_get(call, "id"),
		                         "name", json_object_get(call, "name"), "arguments", args,
		                         "status", "completed");
		free(args);
		if (json_object_get(call, "namespace")) /* a tool of a namespace (MCP servers) */
			json_object_set(item, "namespace", json_object_get(call, "namespace"));
		json_array_append(output, item);
		add_responses_sse(b,
		                  json_pack("{s:s,s:i,s:O}", "type", "response.output_item.added",
		                            "output_index", idx, "item", item),
		                  &seq);
		add_responses_sse(b,
		                  json_pack("{s:s,s:i,s:o}", "type", "response.output_item.done",
		                            "output_index", idx++, "item", item),
		                  &seq);
	}
	json_t *u = usage_of(reply);
	json_int_t in = json_integer_value(json_object_get(u, "input_tokens")) +
	                json_integer_value(json_object_get(u, "cache_read_input_tokens"));
	json_int_t out = json_integer_value(json_object_get(u, "output_tokens"));
	json_t *usage = json_pack(
	    "{s:I,s:{s:I},s:I,s:{s:i},s:I}", "input_tokens", in, "input_tokens_details",
	    "cached_tokens", json_integer_value(json_object_get(u, "cache_read_input_tokens")),
	    "output_tokens", out, "output_tokens_details", "reasoning_tokens", 0, "total_tokens",
	    in + out);
	json_decref(u);
	add_responses_sse(b,
	                  json_pack("{s:s,s:{s:s,s:s,s:s,s:o,s:o}}", "type", "response.completed",
	                            "response", "id", "resp_fake", "object", "response", "status",
	                            "completed", "output", output, "usage", usage),
	                  &seq);
}

static json_t *
openai_whole(json_t *reply)
{
	json_t *msg = json_pack("{s:s}", "role", "assistant");
	const char *text = json_string_value(json_object_get(reply, "text"));
	json_object_set_new(msg, "content", text ? json_string(text) : json_null());
	json_t *calls = json_array();
	size_t i;
	json_t *call;
	json_array_foreach(json_object_get(reply, "tool_calls"), i, call)
	{
		char *args = arguments_of(call);
		json_array_append_new(
		    calls, json_pack("{s:O,s:s,s:{s:O,s:s}}", "id", json_object_get(call, "id"),
		                     "type", "function", "function", "name",
		                     json_object_get(call, "name"), "arguments", args));
		free(args);
	}
	if (json_array_size(calls))
		json_object_set_new(msg, "tool_calls", calls);
	else
		json_decref(calls);
	return json_pack("{s:s,s:s,s:[{s:i,s:o,s:s}],s:o}", "id", "c1", "object", "chat.completion",
	                 "choices", "index", 0, "message", msg, "finish_reason",
	                 stop_of(reply, false), "usage", openai_usage(reply));
}

static inline void
echo_free(json_t **j)
{
	if (*j)
		json_decref(*j);
}
#define _cleanup_echo_ __attribute__((cleanup(echo_free)))

/* The text of the first text block of the last user message. */
static char *
first_user_text(json_t *body)
{
	json_t *msgs = json_object_get(body, "messages");
	for (size_t i = json_array_size(msgs); i-- > 0;) {
		json_t *m = json_array_get(msgs, i);
		if (strcmp(json_string_value(json_object_get(m, "role")) ?: "", "user") != 0)
			continue;
		json_t *c = json_object_get(m, "content");
		if (json_is_string(c))
			return strdup(json_string_value(c));
		size_t k;
		json_t *b;
		json_array_foreach(c, k, b)
		{
			const char *t = json_string_value(json_object_get(b, "text"));
			if (t)
				return strdup(t);
		}
	}
	return NULL;
}

static void
send_json(struct evhttp_request *req, int status, json_t *body)
{
	struct evbuffer *b = evbuffer_new();
	char *s = json_dumps(body, JSON_COMPACT);
	evbuffer_add(b, s, strlen(s));
	free(s);
	json_decref(body);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "application/json");
	evhttp_send_reply(req, status, status == 200 ? "OK" : "Error", b);
	evbuffer_free(b);
}

struct later {
	struct evhttp_request *req;
	json_t *turn, *reply;
	bool anthropic, stream, responses;
};
static struct event_base *the_base;
static void respond(struct evhttp_request *req, json_t *turn, json_t *reply, const char *raw,
                    bool anthropic, bool stream, bool responses);
static void answer_later(evutil_socket_t fd, short what, void *arg);

static void
on_request(struct evhttp_request *req, void *arg)
{
	(void)arg;
	const char *uri = evhttp_request_get_uri(req);
	/* The path without its query: Claude Code asks for /v1/messages?beta=true. */
	size_t plen = strcspn(uri, "?");
	bool anthropic = plen == 12 && strncmp(uri, "/v1/messages", plen) == 0;
	bool responses = plen == 13 && strncmp(uri, "/v1/responses", plen) == 0;
	bool openai = responses || (plen == 20 && strncmp(uri, "/v1/chat/completions", plen) == 0);
	json_t *failures = json_array();
	_cleanup_echo_ json_t *echo = NULL;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	json_error_t jerr;
	json_t *body = json_loadb((char *)evbuffer_pullup(in, -1), len, 0, &jerr);
	n_requests++;

	if (!anthropic && !openai)
		json_array_append_new(failures, json_sprintf("unknown path %s", uri));
	if (!json_is_object(body))
		json_array_append_new(failures,
		                      json_sprintf("request body is not JSON: %s", jerr.text));
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	if (key) {
		const char *got = anthropic ? evhttp_find_header(h, "x-api-key")
		                            : evhttp_find_header(h, "Authorization");
		char want[512];
		snprintf(want, sizeof(want), "%s%s", anthropic ? "" : "Bearer ", key);
		if (!got || strcmp(got, want) != 0)
			json_array_append_new(failures,
			                      json_string("the key header is missing or wrong"));
	}
	if (anthropic && !evhttp_find_header(h, "anthropic-version"))
		json_array_append_new(failures, json_string("no anthropic-version header"));
	if (json_is_object(body) && !responses)
		check_structure(body, anthropic, failures);
	char *all = strings_of(body), *last = last_strings(body);
	for (size_t i = 0; i < n_forbid; i++)
		if (strstr(all, forbid[i]) ||
		    memmem(evbuffer_pullup(in, -1), len, forbid[i], strlen(forbid[i])))
			json_array_append_new(
			    failures,
			    json_sprintf("the request contains forbidden text %s", forbid[i]));
	json_t *turn = json_array_get(turns, next_turn);
	if (turn)
		next_turn++;
	else if ((turn = json_object_get(scenario_json, "default")))
		; /* every request past the list gets this one */
	else
		json_array_append_new(failures, json_string("a request beyond the scenario"));
	json_t *expect = json_object_get(turn, "expect");
	check_list(expect, "contains", all, true, failures);
	check_list(expect, "not_contains", all, false, failures);
	check_list(expect, "last_contains", last, true, failures);
	if (json_is_true(json_object_get(expect, "tools")) &&
	    json_array_size(json_object_get(body, "tools")) == 0)
		json_array_append_new(failures, json_string("no tools offered"));
	bool stream = json_is_true(json_object_get(body, "stream"));

	json_t *entry = json_pack("{s:i,s:s,s:b,s:b,s:O,s:O}", "n", n_requests, "path", uri,
	                          "stream", stream, "ok", json_array_size(failures) == 0,
	                          "failures", failures, "request", body ? body : json_null());
	/* When it came, on the wall clock: bench-daemon.sh times message in -> model request. */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	json_object_set_new(entry, "at_us",
	                    json_integer((json_int_t)now.tv_sec * 1000000 + now.tv_nsec / 1000));
	char *line = json_dumps(entry, JSON_COMPACT);
	fprintf(logf, "%s\n", line);
	fflush(logf);
	free(line);
	json_decref(entry);
	free(all);
	free(last);

	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
	if (!turn || (!anthropic && !openai)) {
		send_json(req, 500,
		          json_pack("{s:{s:s,s:s}}", "error", "type", "api_error", "message",
		                    "the fake model has no reply for this request"));
		goto out;
	}
	const char *hk;
	json_t *hv;
	json_object_foreach(json_object_get(turn, "headers"), hk, hv)
	    evhttp_add_header(oh, hk, json_string_value(hv));
	int status = (int)json_integer_value(json_object_get(turn, "status"));
	const char *raw = json_string_value(json_object_get(turn, "raw"));
	if (status && status != 200) {
		json_t *err = json_object_get(turn, "error");
		send_json(req, status,
		          err ? json_incref(err)
		              : json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "type",
		                          status == 529 ? "overloaded_error" : "api_error",
		                          "message",
		                          status == 401 ? "invalid x-api-key" : "fake failure"));
		goto out;
	}
	json_t *reply = json_object_get(turn, "reply");
	if (json_is_true(json_object_get(reply, "echo"))) {
		/* The reply names the prompt it answers: tests check which reply went where. */
		echo = json_deep_copy(reply);
		char *prompt = first_user_text(body);
		json_object_set_new(echo, "text", json_sprintf("echo: %s", prompt ? prompt : ""));
		free(prompt);
		reply = echo;
	}
	json_int_t delay = json_integer_value(json_object_get(turn, "delay_ms"));
	if (delay > 0) {
		/* Answered later, from a timer: a model that takes its time. */
		struct later *l = calloc(1, sizeof(*l));
		l->req = req;
		l->turn = turn;
		l->reply = json_incref(reply);
		l->anthropic = anthropic;
		l->stream = stream;
		l->responses = responses;
		struct timeval tv = {.tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000};
		event_base_once(the_base, -1, EV_TIMEOUT, answer_later, l, &tv);
		goto out;
	}
	respond(req, turn, reply, raw, anthropic, stream || responses, responses);
out:
	if (body)
		json_decref(body);
	json_decref(failures);
}

static void
respond(struct evhttp_request *req, json_t *turn, json_t *reply, const char *raw, bool anthropic,
        bool stream, bool responses)
{
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
	struct evbuffer *b = evbuffer_new();
	if (raw) {
		evbuffer_add(b, raw, strlen(raw));
		evhttp_add_header(oh, "Content-Type",
		                  stream ? "text/event-stream" : "application/json");
		evhttp_send_reply(req, 200, "OK", b);
	} else if (stream) {
		if (anthropic)
			anthropic_stream(b, reply, turn);
		else if (responses)
			responses_stream(b, reply);
		else
			openai_stream(b, reply, turn);
		evhttp_add_header(oh, "Content-Type", "text/event-stream");
		/* Sent in pieces, as a real stream arrives. */
		evhttp_send_reply_start(req, 200, "OK");
		while (evbuffer_get_length(b)) {
			struct evbuffer *piece = evbuffer_new();
			evbuffer_remove_buffer(b, piece, 100);
			evhttp_send_reply_chunk(req, piece);
			evbuffer_free(piece);
		}
		evhttp_send_reply_end(req);
	} else {
		evbuffer_free(b);
		b = NULL;
		send_json(req, 200, anthropic ? anthropic_whole(reply) : openai_whole(reply));
	}
	if (b)
		evbuffer_free(b);
}

static void
answer_later(evutil_socket_t fd, short what, void *arg)
{
	struct later *l = arg;
	(void)fd;
	(void)what;
	respond(l->req, l->turn, l->reply, NULL, l->anthropic, l->stream || l->responses,
	        l->responses);
	json_decref(l->reply);
	free(l);
}

int
main(int argc, char **argv)
{
	const char *scenario = NULL, *log_path = NULL, *port_file = NULL;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--scenario") == 0)
			scenario = argv[i + 1];
		else if (strcmp(argv[i], "--log") == 0)
			log_path = argv[i + 1];
		else if (strcmp(argv[i], "--port-file") == 0)
			port_file = argv[i + 1];
		else if (strcmp(argv[i], "--key") == 0)
			key = argv[i + 1];
		else if (strcmp(argv[i], "--forbid") == 0 && n_forbid < 8)
			forbid[n_forbid++] = argv[i + 1];
	}
	if (!scenario || !log_path || !port_file) {
		fprintf(stderr, "usage: fake-model --scenario FILE --log FILE --port-file FILE "
		                "[--key K] [--forbid TEXT]...\n");
		return 2;
	}
	json_error_t jerr;
	json_t *sc = json_load_file(scenario, 0, &jerr);
	if (!sc || !json_is_array(json_object_get(sc, "turns"))) {
		fprintf(stderr, "fake-model: %s: %s (line %d)\n", scenario,
		        sc ? "no \"turns\" array" : jerr.text, jerr.line);
		return 2;
	}
	turns = json_object_get(sc, "turns");
	scenario_json = sc;
	logf = fopen(log_path, "a");
	if (!logf)
		return perror(log_path), 2;
	struct event_base *base = event_base_new();
	the_base = base;
	struct evhttp *http = evhttp_new(base);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_POST);
	evhttp_set_gencb(http, on_request, NULL);
	evhttp_set_max_body_size(http, 64 << 20);
	struct evhttp_bound_socket *s = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
	if (!s)
		return fprintf(stderr, "fake-model: cannot listen\n"), 2;
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&sa, &sl);
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
	FILE *pf = fopen(tmp, "w");
	if (!pf)
		return perror(tmp), 2;
	fprintf(pf, "%d\n", ntohs(sa.sin_port));
	fclose(pf);
	rename(tmp, port_file);
	event_base_dispatch(base);
	return 0;
}
