/*
 * model.c: see model.h. Request bodies for both APIs from canonical messages, and decoders
 * that rebuild canonical content from either API's reply, streamed (SSE) or whole.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbuf.h"
#include "json-util.h"
#include "model.h"
#include "sse.h"

int
model_provider_parse(const char *s, enum model_provider *ret)
{
	if (strcmp(s, "anthropic") == 0)
		*ret = MODEL_ANTHROPIC;
	else if (strcmp(s, "openai") == 0)
		*ret = MODEL_OPENAI;
	else
		return -EINVAL;
	return 0;
}

const char *
model_provider_name(enum model_provider p)
{
	return p == MODEL_OPENAI ? "openai" : "anthropic";
}

const char *
model_request_path(enum model_provider p)
{
	return p == MODEL_OPENAI ? "/v1/chat/completions" : "/v1/messages";
}

uint64_t
model_usage_context(const struct model_usage *u)
{
	return u->input_tokens + u->cache_write_tokens + u->cache_read_tokens;
}

void
model_usage_add(struct model_usage *sum, const struct model_usage *u)
{
	sum->input_tokens += u->input_tokens;
	sum->output_tokens += u->output_tokens;
	sum->cache_write_tokens += u->cache_write_tokens;
	sum->cache_read_tokens += u->cache_read_tokens;
}

void
model_reply_done(struct model_reply *r)
{
	if (r->content)
		json_decref(r->content);
	r->content = NULL;
}

/* ---- requests ---- */

/* One canonical block as Anthropic wants it, or NULL to leave it out (empty text, which the
 * API refuses). */
static json_t *
anthropic_block(json_t *b)
{
	const char *type = json_get_str(b, "type");
	if (!type)
		return NULL;
	if (strcmp(type, "text") == 0) {
		const char *t = json_get_str(b, "text");
		return t && *t ? json_pack("{s:s,s:s}", "type", "text", "text", t) : NULL;
	}
	if (strcmp(type, "tool_use") == 0) {
		json_t *input = json_object_get(b, "input");
		/* "o" takes the reference: a borrowed input is increfed, a new one handed over. */
		return json_pack("{s:s,s:s,s:s,s:o}", "type", "tool_use", "id",
		                 json_get_str(b, "id") ? json_get_str(b, "id") : "", "name",
		                 json_get_str(b, "name") ? json_get_str(b, "name") : "", "input",
		                 json_is_object(input) ? json_incref(input) : json_object());
	}
	if (strcmp(type, "tool_result") == 0) {
		const char *c = json_get_str(b, "content");
		return json_pack("{s:s,s:s,s:s,s:b}", "type", "tool_result", "tool_use_id",
		                 json_get_str(b, "tool_use_id") ? json_get_str(b, "tool_use_id")
		                                                : "",
		                 "content", c && *c ? c : "(no output)", "is_error",
		                 json_is_true(json_object_get(b, "is_error")));
	}
	return NULL;
}

static json_t *
anthropic_messages(json_t *messages)
{
	json_t *out = json_array();
	json_t *last = NULL; /* borrowed: the last message of out */
	size_t i;
	json_t *m;
	if (!out)
		return NULL;
	json_array_foreach(messages, i, m)
	{
		const char *role = json_get_str(m, "role");
		json_t *content = json_object_get(m, "content");
		if (!role || !json_is_array(content))
			continue;
		/* The API wants user and assistant to alternate: runs of one role merge (a new
		 * prompt after a turn that ended in tool results, a summary before a prompt). */
		json_t *target;
		if (last && strcmp(json_get_str(last, "role"), role) == 0) {
			target = json_object_get(last, "content");
		} else {
			last = json_pack("{s:s,s:[]}", "role", role, "content");
			if (!last || json_array_append_new(out, last) < 0)
				goto fail;
			target = json_object_get(last, "content");
		}
		size_t j;
		json_t *b;
		json_array_foreach(content, j, b)
		{
			json_t *nb = anthropic_block(b);
			if (nb && json_array_append_new(target, nb) < 0)
				goto fail;
		}
	}
	/* A message left with no blocks (only empty text) is refused by the API. */
	json_array_foreach(out, i, m)
	{
		json_t *c = json_object_get(m, "content");
		if (json_array_size(c) == 0)
			json_array_append_new(
			    c, json_pack("{s:s,s:s}", "type", "text", "text", "..."));
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

static json_t *
anthropic_tools(json_t *tools)
{
	json_t *out = json_array();
	size_t i;
	json_t *t;
	json_array_foreach(tools, i, t)
	{
		json_array_append_new(
		    out, json_pack("{s:O,s:O,s:O}", "name", json_object_get(t, "name"),
		                   "description", json_object_get(t, "description"), "input_schema",
		                   json_object_get(t, "input_schema")));
	}
	return out;
}

/* The text blocks of a canonical message, joined. */
static char *
joined_text(json_t *content)
{
	struct dbuf b;
	dbuf_init(&b, MODEL_REPLY_MAX);
	size_t i;
	json_t *blk;
	json_array_foreach(content, i, blk)
	{
		const char *type = json_get_str(blk, "type");
		const char *t = json_get_str(blk, "text");
		if (type && strcmp(type, "text") == 0 && t) {
			if (b.len)
				(void)dbuf_puts(&b, "\n\n");
			(void)dbuf_puts(&b, t);
		}
	}
	return dbuf_take(&b);
}

static json_t *
openai_messages(const char *system, json_t *messages)
{
	json_t *out = json_array();
	size_t i;
	json_t *m;
	if (system && *system)
		json_array_append_new(out,
		                      json_pack("{s:s,s:s}", "role", "system", "content", system));
	json_array_foreach(messages, i, m)
	{
		const char *role = json_get_str(m, "role");
		json_t *content = json_object_get(m, "content");
		if (!role || !json_is_array(content))
			continue;
		size_t j;
		json_t *b;
		if (strcmp(role, "assistant") == 0) {
			_cleanup_free_ char *text = joined_text(content);
			json_t *calls = json_array();
			json_array_foreach(content, j, b)
			{
				const char *type = json_get_str(b, "type");
				if (!type || strcmp(type, "tool_use") != 0)
					continue;
				json_t *input = json_object_get(b, "input");
				const char *raw = json_get_str(b, "invalid_input");
				char *args = raw ? strdup(raw)
				             : json_is_object(input)
				                 ? json_dumps(input, JSON_COMPACT)
				                 : strdup("{}");
				json_array_append_new(
				    calls,
				    json_pack("{s:s,s:s,s:{s:s,s:s}}", "id",
				              json_get_str(b, "id") ? json_get_str(b, "id") : "",
				              "type", "function", "function", "name",
				              json_get_str(b, "name") ? json_get_str(b, "name")
				                                      : "",
				              "arguments", args ? args : "{}"));
				free(args);
			}
			json_t *msg = json_pack("{s:s}", "role", "assistant");
			json_object_set_new(msg, "content",
			                    text && *text ? json_string(text) : json_null());
			if (json_array_size(calls))
				json_object_set_new(msg, "tool_calls", calls);
			else
				json_decref(calls);
			json_array_append_new(out, msg);
			continue;
		}
		/* user: tool results become role "tool" messages, which must directly follow the
		 * assistant message that called them; the text comes after. */
		json_array_foreach(content, j, b)
		{
			const char *type = json_get_str(b, "type");
			if (!type || strcmp(type, "tool_result") != 0)
				continue;
			const char *c = json_get_str(b, "content");
			json_array_append_new(
			    out, json_pack("{s:s,s:s,s:s}", "role", "tool", "tool_call_id",
			                   json_get_str(b, "tool_use_id")
			                       ? json_get_str(b, "tool_use_id")
			                       : "",
			                   "content", c && *c ? c : "(no output)"));
		}
		_cleanup_free_ char *text = joined_text(content);
		if (text && *text)
			json_array_append_new(
			    out, json_pack("{s:s,s:s}", "role", "user", "content", text));
	}
	return out;
}

static json_t *
openai_tools(json_t *tools)
{
	json_t *out = json_array();
	size_t i;
	json_t *t;
	json_array_foreach(tools, i, t)
	{
		json_array_append_new(out,
		                      json_pack("{s:s,s:{s:O,s:O,s:O}}", "type", "function",
		                                "function", "name", json_object_get(t, "name"),
		                                "description", json_object_get(t, "description"),
		                                "parameters", json_object_get(t, "input_schema")));
	}
	return out;
}

char *
model_request_body(const struct model_request *req)
{
	_cleanup_json_ json_t *body = json_object();
	if (!body)
		return NULL;
	json_object_set_new(body, "model", json_string(req->model));
	bool tools = req->tools && json_array_size(req->tools) > 0;
	if (req->provider == MODEL_ANTHROPIC) {
		json_object_set_new(body, "max_tokens", json_integer((json_int_t)req->max_tokens));
		if (req->system && *req->system)
			json_object_set_new(body, "system", json_string(req->system));
		json_object_set_new(body, "messages", anthropic_messages(req->messages));
		if (tools)
			json_object_set_new(body, "tools", anthropic_tools(req->tools));
		if (req->stream)
			json_object_set_new(body, "stream", json_true());
	} else {
		const char *field = req->max_tokens_field ? req->max_tokens_field : "max_tokens";
		json_object_set_new(body, field, json_integer((json_int_t)req->max_tokens));
		json_object_set_new(body, "messages", openai_messages(req->system, req->messages));
		if (tools)
			json_object_set_new(body, "tools", openai_tools(req->tools));
		if (req->stream) {
			json_object_set_new(body, "stream", json_true());
			json_object_set_new(body, "stream_options",
			                    json_pack("{s:b}", "include_usage", 1));
		}
	}
	if (!json_object_get(body, "messages"))
		return NULL;
	return json_dumps(body, JSON_COMPACT);
}

/* ---- replies ---- */

struct partial_block {
	int kind; /* 0 unused, 1 text, 2 tool_use, 3 other (kept out) */
	char id[256];
	char name[128];
	struct dbuf text; /* text, or a tool's argument JSON as it streams */
};

struct model_decoder {
	enum model_provider provider;
	bool stream;
	model_text_fn on_text;
	void *ctx;
	struct sse_parser *sse;
	struct dbuf whole; /* a non-streamed body */
	struct partial_block blocks[MODEL_BLOCKS_MAX];
	size_t n_blocks;
	struct model_usage usage;
	char stop_reason[64];
	bool ended; /* message_stop / [DONE] seen */
	bool retryable;
	int error;
	char why[512];
};

static int fail(struct model_decoder *d, int err, const char *fmt, ...) _printf_(3, 4);
static int
fail(struct model_decoder *d, int err, const char *fmt, ...)
{
	if (!d->error) {
		va_list ap;
		va_start(ap, fmt);
		d->error = err;
		vsnprintf(d->why, sizeof(d->why), fmt, ap);
		va_end(ap);
	}
	return err;
}

static struct partial_block *
block_at(struct model_decoder *d, size_t index, int kind)
{
	if (index >= MODEL_BLOCKS_MAX)
		return NULL;
	while (d->n_blocks <= index) {
		struct partial_block *b = &d->blocks[d->n_blocks++];
		memset(b, 0, sizeof(*b));
		dbuf_init(&b->text, MODEL_TOOL_INPUT_MAX);
	}
	struct partial_block *b = &d->blocks[index];
	if (kind && !b->kind)
		b->kind = kind;
	return b;
}

static int
append_text(struct model_decoder *d, struct partial_block *b, const char *s, size_t len, bool echo)
{
	if (dbuf_append(&b->text, s, len) < 0)
		return fail(d, -EMSGSIZE, "the model's reply is larger than the limit");
	if (echo && d->on_text && len)
		d->on_text(d->ctx, s, len);
	return 0;
}

static void
set_stop(struct model_decoder *d, const char *s)
{
	if (s)
		snprintf(d->stop_reason, sizeof(d->stop_reason), "%s", s);
}

static void
anthropic_usage(struct model_usage *u, json_t *j)
{
	if (!json_is_object(j))
		return;
	/* message_start carries input counts, message_delta the (cumulative) output count and,
	 * in newer versions, the input counts again: take what is there. */
	if (json_object_get(j, "input_tokens"))
		u->input_tokens = json_get_u64(j, "input_tokens");
	if (json_object_get(j, "cache_creation_input_tokens"))
		u->cache_write_tokens = json_get_u64(j, "cache_creation_input_tokens");
	if (json_object_get(j, "cache_read_input_tokens"))
		u->cache_read_tokens = json_get_u64(j, "cache_read_input_tokens");
	if (json_object_get(j, "output_tokens"))
		u->output_tokens = json_get_u64(j, "output_tokens");
}

static void
openai_usage(struct model_usage *u, json_t *j)
{
	if (!json_is_object(j))
		return;
	uint64_t prompt = json_get_u64(j, "prompt_tokens");
	uint64_t cached =
	    json_get_u64(json_object_get(j, "prompt_tokens_details"), "cached_tokens");
	u->cache_read_tokens = cached <= prompt ? cached : prompt;
	u->input_tokens = prompt - u->cache_read_tokens;
	u->output_tokens = json_get_u64(j, "completion_tokens");
}

static int
anthropic_event(struct model_decoder *d, json_t *ev)
{
	const char *type = json_get_str(ev, "type");
	if (!type)
		return fail(d, -EPROTO, "a stream event without a type");
	size_t index = (size_t)json_get_u64(ev, "index");
	if (strcmp(type, "message_start") == 0) {
		anthropic_usage(&d->usage,
		                json_object_get(json_object_get(ev, "message"), "usage"));
	} else if (strcmp(type, "content_block_start") == 0) {
		json_t *cb = json_object_get(ev, "content_block");
		const char *bt = json_get_str(cb, "type");
		int kind = bt && strcmp(bt, "text") == 0       ? 1
		           : bt && strcmp(bt, "tool_use") == 0 ? 2
		                                               : 3;
		struct partial_block *b = block_at(d, index, kind);
		if (!b)
			return fail(d, -EMSGSIZE, "too many content blocks in one reply");
		if (kind == 2) {
			snprintf(b->id, sizeof(b->id), "%s", json_get_str(cb, "id") ?: "");
			snprintf(b->name, sizeof(b->name), "%s", json_get_str(cb, "name") ?: "");
		} else if (kind == 1 && json_get_str(cb, "text")) {
			const char *t = json_get_str(cb, "text");
			return append_text(d, b, t, strlen(t), true);
		}
	} else if (strcmp(type, "content_block_delta") == 0) {
		json_t *delta = json_object_get(ev, "delta");
		const char *dt = json_get_str(delta, "type");
		struct partial_block *b = block_at(d, index, 0);
		if (!b)
			return fail(d, -EMSGSIZE, "too many content blocks in one reply");
		if (dt && strcmp(dt, "text_delta") == 0 && b->kind != 2) {
			const char *t = json_get_str(delta, "text");
			b->kind = b->kind ? b->kind : 1;
			if (t && b->kind == 1)
				return append_text(d, b, t, strlen(t), true);
		} else if (dt && strcmp(dt, "input_json_delta") == 0 && b->kind == 2) {
			const char *t = json_get_str(delta, "partial_json");
			if (t)
				return append_text(d, b, t, strlen(t), false);
		}
		/* thinking_delta, signature_delta, citations_delta, ...: not ours */
	} else if (strcmp(type, "message_delta") == 0) {
		set_stop(d, json_get_str(json_object_get(ev, "delta"), "stop_reason"));
		anthropic_usage(&d->usage, json_object_get(ev, "usage"));
	} else if (strcmp(type, "message_stop") == 0) {
		d->ended = true;
	} else if (strcmp(type, "error") == 0) {
		json_t *err = json_object_get(ev, "error");
		const char *et = json_get_str(err, "type");
		d->retryable =
		    et && (strcmp(et, "overloaded_error") == 0 || strcmp(et, "api_error") == 0 ||
		           strcmp(et, "rate_limit_error") == 0);
		char msg[400];
		snprintf(msg, sizeof(msg), "%s: %s", et ? et : "error",
		         json_get_str(err, "message") ?: "(no message)");
		return fail(d, -EREMOTEIO, "the model API reported an error mid-stream: %s", msg);
	}
	/* ping, content_block_stop, and event types added later: nothing to do */
	return 0;
}

static int
openai_chunk(struct model_decoder *d, json_t *chunk)
{
	json_t *err = json_object_get(chunk, "error");
	if (err) {
		char msg[400];
		snprintf(msg, sizeof(msg), "%s",
		         json_get_str(err, "message") ?: json_string_value(err) ?: "(no message)");
		return fail(d, -EREMOTEIO, "the model API reported an error mid-stream: %s", msg);
	}
	if (json_object_get(chunk, "usage") && !json_is_null(json_object_get(chunk, "usage")))
		openai_usage(&d->usage, json_object_get(chunk, "usage"));
	json_t *choice = json_array_get(json_object_get(chunk, "choices"), 0);
	if (!choice)
		return 0;
	json_t *delta = json_object_get(choice, "delta");
	const char *text = json_get_str(delta, "content");
	int r;
	if (text && *text) {
		/* All text goes to block 0, tool calls to 1 + their index. */
		struct partial_block *b = block_at(d, 0, 1);
		if ((r = append_text(d, b, text, strlen(text), true)) < 0)
			return r;
	}
	size_t i;
	json_t *call;
	json_array_foreach(json_object_get(delta, "tool_calls"), i, call)
	{
		size_t index = (size_t)json_get_u64(call, "index");
		block_at(d, 0, 0);
		struct partial_block *b = block_at(d, index + 1, 2);
		if (!b || b->kind != 2)
			return fail(d, -EMSGSIZE, "too many tool calls in one reply");
		json_t *fn = json_object_get(call, "function");
		if (json_get_str(call, "id") && !b->id[0])
			snprintf(b->id, sizeof(b->id), "%s", json_get_str(call, "id"));
		if (json_get_str(fn, "name") && !b->name[0])
			snprintf(b->name, sizeof(b->name), "%s", json_get_str(fn, "name"));
		const char *args = json_get_str(fn, "arguments");
		if (args && (r = append_text(d, b, args, strlen(args), false)) < 0)
			return r;
	}
	const char *finish = json_get_str(choice, "finish_reason");
	if (finish)
		set_stop(d, finish);
	return 0;
}

static bool
on_sse(void *ctx, const struct sse_event *ev)
{
	struct model_decoder *d = ctx;
	if (d->ended)
		return true; /* anything after the end marker is ignored */
	if (d->provider == MODEL_OPENAI && ev->data_len == 6 &&
	    memcmp(ev->data, "[DONE]", 6) == 0) {
		d->ended = true;
		return true;
	}
	json_error_t jerr;
	_cleanup_json_ json_t *j = json_loadb(ev->data, ev->data_len, 0, &jerr);
	if (!json_is_object(j)) {
		fail(d, -EPROTO, "the model's stream holds malformed JSON: %s", jerr.text);
		return false;
	}
	int r = d->provider == MODEL_ANTHROPIC ? anthropic_event(d, j) : openai_chunk(d, j);
	return r >= 0;
}

struct model_decoder *
model_decoder_new(enum model_provider p, bool stream, model_text_fn on_text, void *ctx)
{
	struct model_decoder *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->provider = p;
	d->stream = stream;
	d->on_text = on_text;
	d->ctx = ctx;
	dbuf_init(&d->whole, MODEL_REPLY_MAX);
	if (stream) {
		d->sse = malloc(sizeof(*d->sse));
		if (!d->sse) {
			free(d);
			return NULL;
		}
		sse_init(d->sse, on_sse, d);
	}
	return d;
}

void
model_decoder_free(struct model_decoder *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n_blocks; i++)
		dbuf_done(&d->blocks[i].text);
	dbuf_done(&d->whole);
	free(d->sse);
	free(d);
}

int
model_decoder_feed(struct model_decoder *d, const char *buf, size_t len)
{
	if (d->error)
		return d->error;
	if (!d->stream) {
		if (dbuf_append(&d->whole, buf, len) < 0)
			return fail(d, -EMSGSIZE, "the model's reply is larger than the limit");
		return 0;
	}
	int r = sse_feed(d->sse, buf, len);
	if (d->error)
		return d->error;
	if (r == -EMSGSIZE)
		return fail(d, r, "an event in the model's stream is larger than the limit");
	return r;
}

/* A whole (non-streamed) reply into the partial blocks, as if it had streamed. */
static int
decode_whole(struct model_decoder *d)
{
	json_error_t jerr;
	_cleanup_json_ json_t *j = json_loadb(d->whole.p ? d->whole.p : "", d->whole.len, 0, &jerr);
	if (!json_is_object(j))
		return fail(d, -EPROTO, "the model's reply is not valid JSON: %s", jerr.text);
	size_t i;
	json_t *b;
	if (d->provider == MODEL_ANTHROPIC) {
		if (!json_is_array(json_object_get(j, "content")))
			return fail(d, -EPROTO, "the model's reply has no content");
		json_array_foreach(json_object_get(j, "content"), i, b)
		{
			const char *type = json_get_str(b, "type");
			int kind = type && strcmp(type, "text") == 0       ? 1
			           : type && strcmp(type, "tool_use") == 0 ? 2
			                                                   : 3;
			struct partial_block *pb = block_at(d, i, kind);
			if (!pb)
				return fail(d, -EMSGSIZE, "too many content blocks in one reply");
			if (kind == 1 && json_get_str(b, "text")) {
				int r = append_text(d, pb, json_get_str(b, "text"),
				                    strlen(json_get_str(b, "text")), true);
				if (r < 0)
					return r;
			} else if (kind == 2) {
				snprintf(pb->id, sizeof(pb->id), "%s", json_get_str(b, "id") ?: "");
				snprintf(pb->name, sizeof(pb->name), "%s",
				         json_get_str(b, "name") ?: "");
				json_t *input = json_object_get(b, "input");
				_cleanup_free_ char *in =
				    input ? json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY)
				          : strdup("{}");
				if (in && append_text(d, pb, in, strlen(in), false) < 0)
					return d->error;
			}
		}
		set_stop(d, json_get_str(j, "stop_reason"));
		anthropic_usage(&d->usage, json_object_get(j, "usage"));
	} else {
		json_t *choice = json_array_get(json_object_get(j, "choices"), 0);
		json_t *msg = json_object_get(choice, "message");
		if (!json_is_object(msg))
			return fail(d, -EPROTO, "the model's reply has no message");
		/* Same shape as a chunk's delta. */
		_cleanup_json_ json_t *chunk =
		    json_pack("{s:[{s:O,s:O}]}", "choices", "delta", msg, "finish_reason",
		              json_object_get(choice, "finish_reason") ?: json_null());
		json_t *calls = json_object_get(msg, "tool_calls");
		json_array_foreach(calls, i, b)
		{
			if (json_is_object(b))
				json_object_set_new(b, "index", json_integer((json_int_t)i));
		}
		int r = openai_chunk(d, chunk);
		if (r < 0)
			return r;
		openai_usage(&d->usage, json_object_get(j, "usage"));
	}
	d->ended = true;
	return 0;
}

static const char *
normalize_stop(enum model_provider p, const char *raw)
{
	if (p == MODEL_OPENAI) {
		if (strcmp(raw, "stop") == 0)
			return MODEL_STOP_END;
		if (strcmp(raw, "tool_calls") == 0 || strcmp(raw, "function_call") == 0)
			return MODEL_STOP_TOOL_USE;
		if (strcmp(raw, "length") == 0)
			return MODEL_STOP_MAX_TOKENS;
		if (strcmp(raw, "content_filter") == 0)
			return MODEL_STOP_REFUSAL;
		return raw;
	}
	if (strcmp(raw, "stop_sequence") == 0)
		return MODEL_STOP_END;
	return raw; /* end_turn, tool_use, max_tokens, pause_turn, refusal, and the unknown */
}

int
model_decoder_finish(struct model_decoder *d, struct model_reply *ret)
{
	if (d->error)
		return d->error;
	if (d->stream) {
		sse_end(d->sse);
		if (d->error)
			return d->error;
		/* A cut stream is a connection error: worth another try, as long as none of
		 * its text was shown (the caller knows; model_decoder_retryable()). */
		if (!d->ended) {
			d->retryable = true;
			return fail(d, -EPIPE, "the model's stream ended before its end (%s)",
			            d->provider == MODEL_ANTHROPIC ? "no message_stop"
			                                           : "no [DONE]");
		}
	} else {
		int r = decode_whole(d);
		if (r < 0)
			return r;
	}

	_cleanup_json_ json_t *content = json_array();
	for (size_t i = 0; i < d->n_blocks; i++) {
		struct partial_block *b = &d->blocks[i];
		if (b->kind == 1 && b->text.len) {
			json_array_append_new(content, json_pack("{s:s,s:s%}", "type", "text",
			                                         "text", b->text.p, b->text.len));
		} else if (b->kind == 2) {
			json_t *blk = json_pack("{s:s,s:s,s:s}", "type", "tool_use", "id", b->id,
			                        "name", b->name);
			if (!blk)
				return fail(d, -EPROTO, "a tool call with a malformed id or name");
			json_error_t jerr;
			json_t *input = b->text.len ? json_loadb(b->text.p, b->text.len, 0, &jerr)
			                            : json_object();
			if (json_is_object(input)) {
				json_object_set_new(blk, "input", input);
			} else {
				/* Kept, so that the tool answers with an error the model can act on
				 * and the transcript stays whole. */
				if (input)
					json_decref(input);
				json_object_set_new(blk, "input", json_object());
				json_object_set_new(blk, "invalid_input",
				                    json_stringn(b->text.p, b->text.len));
			}
			if (!b->id[0]) /* some local servers send none; the pairing needs one */
				json_object_set_new(blk, "id", json_sprintf("call_%zu", i));
			json_array_append_new(content, blk);
		}
	}
	if (!d->stream && d->on_text) {
		/* Whole replies print their text at the end. */
	}
	memset(ret, 0, sizeof(*ret));
	ret->content = TAKE_PTR(content);
	snprintf(ret->raw_stop, sizeof(ret->raw_stop), "%s",
	         d->stop_reason[0] ? d->stop_reason : "(none)");
	snprintf(ret->stop_reason, sizeof(ret->stop_reason), "%s",
	         d->stop_reason[0] ? normalize_stop(d->provider, d->stop_reason) : MODEL_STOP_END);
	ret->usage = d->usage;
	return 0;
}

const char *
model_decoder_error(const struct model_decoder *d)
{
	return d->why;
}

bool
model_decoder_retryable(const struct model_decoder *d)
{
	return d->retryable;
}

void
model_error_message(const char *body, size_t len, char *buf, size_t size)
{
	buf[0] = '\0';
	_cleanup_json_ json_t *j = json_loadb(body, len, 0, NULL);
	json_t *err = json_object_get(j, "error");
	const char *msg = json_get_str(err, "message");
	if (!msg)
		msg = json_string_value(err); /* {"error": "..."} (llama.cpp, Ollama) */
	if (!msg)
		msg = json_get_str(j, "message");
	if (msg) {
		snprintf(buf, size, "%s", msg);
		return;
	}
	/* Not JSON: the first line of the body, if it is text. */
	size_t n = 0;
	while (n < len && n + 1 < size && body[n] != '\n' && body[n] != '\r' &&
	       (unsigned char)body[n] >= 0x20)
		n++;
	memcpy(buf, body, n);
	buf[n] = '\0';
}
