/*
 * model.h: the two model APIs, as data. The agent keeps its conversation in one canonical
 * form (Anthropic's content blocks), and this module turns it into either API's request body
 * and turns either API's reply (streamed or not) back into canonical blocks.
 *
 * Canonical message: {"role": "user"|"assistant", "content": [block...]}, block one of
 *   {"type": "text", "text": S}
 *   {"type": "tool_use", "id": S, "name": S, "input": {...}}
 *        plus "invalid_input": S when the model's arguments were not a JSON object
 *        (OpenAI sends them as a string); the tool then fails with is_error
 *   {"type": "tool_result", "tool_use_id": S, "content": S, "is_error": B}
 * Tools: [{"name", "description", "input_schema"}].
 *
 * No I/O here: the decoders are fed bytes, so tests and fuzzers drive them directly.
 */
#ifndef CLAWBOX_MODEL_H
#define CLAWBOX_MODEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum model_provider {
	MODEL_ANTHROPIC, /* POST /v1/messages (also Ollama, llama.cpp) */
	MODEL_OPENAI,    /* POST /v1/chat/completions */
};

#define MODEL_REPLY_MAX      (16u << 20) /* a whole non-streamed reply, or an error body */
#define MODEL_BLOCKS_MAX     128         /* content blocks or tool calls in one reply */
#define MODEL_TOOL_INPUT_MAX (1u << 20)

/* "anthropic" / "openai". -EINVAL otherwise. */
int model_provider_parse(const char *s, enum model_provider *ret);
const char *model_provider_name(enum model_provider p);
const char *model_request_path(enum model_provider p);

struct model_usage {
	uint64_t input_tokens; /* not counting cached input */
	uint64_t output_tokens;
	uint64_t cache_write_tokens;
	uint64_t cache_read_tokens;
};

/* Input tokens of the whole context the model saw (input + cache write + cache read). */
uint64_t model_usage_context(const struct model_usage *u);
void model_usage_add(struct model_usage *sum, const struct model_usage *u);

struct model_request {
	enum model_provider provider;
	const char *model;
	uint64_t max_tokens;
	const char
	    *max_tokens_field; /* OpenAI: "max_tokens" (default) or "max_completion_tokens" */
	const char *system;
	json_t *messages; /* borrowed, canonical */
	json_t *tools;    /* borrowed, canonical; NULL or [] for none */
	bool stream;
};

/* The request body as a JSON string (owned by the caller), or NULL (out of memory). */
char *model_request_body(const struct model_request *req);

/* Normalized stop reasons. The raw one is kept in model_reply.raw_stop. */
#define MODEL_STOP_END        "end_turn"
#define MODEL_STOP_TOOL_USE   "tool_use"
#define MODEL_STOP_MAX_TOKENS "max_tokens"
#define MODEL_STOP_REFUSAL    "refusal"
#define MODEL_STOP_PAUSE      "pause_turn"

struct model_reply {
	json_t *content; /* canonical blocks, owned */
	char stop_reason[32];
	char raw_stop[64];
	struct model_usage usage;
};

void model_reply_done(struct model_reply *r);

struct model_decoder;

/* on_text gets text as it arrives (streamed or, for a whole reply, at the end). */
typedef void (*model_text_fn)(void *ctx, const char *text, size_t len);

struct model_decoder *model_decoder_new(enum model_provider p, bool stream, model_text_fn on_text,
                                        void *ctx);
void model_decoder_free(struct model_decoder *d);

/* Feeds body bytes. 0, or an error that ends the reply (then model_decoder_error says why):
 * -EPROTO malformed, -EMSGSIZE past a limit, -EREMOTEIO an error event from the model. */
int model_decoder_feed(struct model_decoder *d, const char *buf, size_t len);

/* The body ended. Fills *ret (ownership moves to the caller) and returns 0, or -EPIPE when
 * the stream ended before its end marker, or the error feed returned. */
int model_decoder_finish(struct model_decoder *d, struct model_reply *ret);

/* A one-line reason for the last error ("" if none), and whether the model said to try again
 * (an overloaded_error event). */
const char *model_decoder_error(const struct model_decoder *d);
bool model_decoder_retryable(const struct model_decoder *d);

/* From an error response body of either API: its message, into buf (empty if none). */
void model_error_message(const char *body, size_t len, char *buf, size_t size);

#endif
