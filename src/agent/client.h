/*
 * client.h: one call to the model through the egress proxy: the request body from model.c,
 * the exchange from http.c, the reply from a model decoder. HTTP errors are classified here
 * (what to tell the user, whether a retry can help, how long the server asked us to wait);
 * retrying is the caller's decision.
 */
#ifndef CLAWBOX_CLIENT_H
#define CLAWBOX_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "http.h"
#include "model.h"

#define MODEL_BASE_URL "http://model.clawbox.internal" /* the proxy's name for the model API */

struct model_client {
	enum model_provider provider;
	const char *model;
	uint64_t max_tokens;
	const char *max_tokens_field; /* OpenAI only; NULL: max_tokens */
	struct http_proxy proxy;
	const char *base_url; /* MODEL_BASE_URL unless testing */
	bool stream;
	unsigned idle_ms; /* no byte from the model for this long is an error */
};

struct model_call_error {
	int http_status; /* 0 when there was no HTTP response */
	bool retryable;
	double retry_after; /* seconds the server asked for, or -1 */
	bool streamed;      /* some text was already passed on */
	char message[640];
};

/* One attempt. 0 and *ret filled (the caller owns ret->content), or -errno with *err. */
int model_call(const struct model_client *c, const char *system, json_t *messages, json_t *tools,
               int64_t deadline_ms, model_text_fn on_text, void *ctx, struct model_reply *ret,
               struct model_call_error *err);

#endif
