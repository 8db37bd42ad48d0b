/*
 * fuzz-tool-args.c: tool-call arguments as a model may send them, against the agent's
 * handling: the input's first byte picks a tool name (or an unknown one) and how the
 * arguments arrive, the rest is the arguments' text. It goes through the real path: an OpenAI
 * reply whose tool call carries the text as its "arguments" string, or an Anthropic stream
 * whose input_json_delta pieces carry it, decoded; then the schema check. Neither may crash,
 * and a call the check accepts must hold a JSON object whose members the schema knows.
 * libFuzzer entry point; tests/fuzz/replay.c replays the saved corpus in `make check`.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "model.h"
#include "tools.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {"bash", "read", "write", "edit", "glob", "grep",
                                    "web_fetch", "no_such_tool"};

static void
check_calls(struct model_reply *rep)
{
	size_t i;
	json_t *b;
	json_array_foreach(rep->content, i, b)
	{
		if (strcmp(json_get_str(b, "type") ?: "", "tool_use") != 0)
			continue;
		json_t *input = json_object_get(b, "input");
		const char *invalid = json_get_str(b, "invalid_input");
		if (!json_is_object(input) || !json_get_str(b, "id"))
			__builtin_trap(); /* the agent and the transcript rely on both */
		char why[256];
		if (tools_check(json_get_str(b, "name"), input, invalid, why, sizeof(why)) == 0 &&
		    invalid)
			__builtin_trap(); /* arguments that were not an object must be refused */
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	const char *name = names[data[0] % 8];
	bool stream = data[0] & 8;
	_cleanup_free_ char *args = strndup((const char *)data + 1, size - 1);
	if (!args)
		return 0;
	size_t alen = strlen(args); /* up to the first NUL */

	/* Straight to the check, as a parsed value. */
	json_t *parsed = json_loads(args, JSON_DECODE_ANY, NULL);
	char why[256];
	(void)tools_check(name, parsed, parsed ? NULL : args, why, sizeof(why));
	if (parsed)
		json_decref(parsed);

	/* Through a decoder, as a model's reply carries it. */
	struct model_reply rep;
	struct model_decoder *d;
	int r;
	if (!stream) {
		_cleanup_json_ json_t *reply = json_pack(
		    "{s:[{s:{s:[{s:s,s:s,s:{s:s,s:s}}]},s:s}]}", "choices", "message", "tool_calls", "id",
		    "c1", "type", "function", "function", "name", name, "arguments", args,
		    "finish_reason", "tool_calls");
		_cleanup_free_ char *body = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
		if (!body)
			return 0; /* not UTF-8: a JSON reply cannot carry it */
		d = model_decoder_new(MODEL_OPENAI, false, NULL, NULL);
		r = d ? model_decoder_feed(d, body, strlen(body)) : -1;
	} else {
		d = model_decoder_new(MODEL_ANTHROPIC, true, NULL, NULL);
		char head[256];
		snprintf(head, sizeof(head),
		         "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
		         "{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"%s\",\"input\":{}}}\n\n",
		         name);
		r = d ? model_decoder_feed(d, head, strlen(head)) : -1;
		/* The arguments in pieces of 7 bytes, each one JSON string. */
		for (size_t off = 0; r == 0 && off < alen; off += 7) {
			_cleanup_json_ json_t *ev = json_pack(
			    "{s:s,s:i,s:{s:s,s:s%}}", "type", "content_block_delta", "index", 0, "delta",
			    "type", "input_json_delta", "partial_json", args + off,
			    alen - off < 7 ? alen - off : 7);
			_cleanup_free_ char *s = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
			if (!s)
				continue; /* a piece that splits a UTF-8 sequence */
			r = model_decoder_feed(d, "data: ", 6);
			if (r == 0)
				r = model_decoder_feed(d, s, strlen(s));
			if (r == 0)
				r = model_decoder_feed(d, "\n\n", 2);
		}
		static const char tail[] = "data: {\"type\":\"message_stop\"}\n\n";
		if (r == 0)
			r = model_decoder_feed(d, tail, sizeof(tail) - 1);
	}
	if (d && r == 0 && model_decoder_finish(d, &rep) == 0) {
		check_calls(&rep);
		model_reply_done(&rep);
	}
	model_decoder_free(d);
	return 0;
}
