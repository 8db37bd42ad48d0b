/*
 * client.c: see client.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "dbuf.h"
#include "json-util.h"

struct call {
	struct model_decoder *dec;
	struct http_response resp;
	struct dbuf errbody;
	model_text_fn on_text;
	void *ctx;
	bool streamed;
};

static void
pass_text(void *ctx, const char *text, size_t len)
{
	struct call *c = ctx;
	c->streamed = true;
	if (c->on_text)
		c->on_text(c->ctx, text, len);
}

static int
call_head(void *ctx, const struct http_response *resp)
{
	struct call *c = ctx;
	c->resp = *resp;
	return 0;
}

static int
call_body(void *ctx, const char *buf, size_t len)
{
	struct call *c = ctx;
	if (c->resp.status != 200) {
		(void)dbuf_append_capped(&c->errbody, buf, len);
		return 0;
	}
	return model_decoder_feed(c->dec, buf, len);
}

static void
classify_status(struct model_call_error *err, int status, const char *detail)
{
	const char *what;
	err->http_status = status;
	switch (status) {
	case 400:
		what = "the model API refused the request";
		break;
	case 401:
		what = "the model API refused the key (check ANTHROPIC_API_KEY / OPENAI_API_KEY or "
		       "the key file)";
		break;
	case 403:
		what = "the model API or the egress proxy refused access";
		break;
	case 404:
		what = "the model API has no such endpoint or model (check the base URL and model)";
		break;
	case 408:
	case 500:
	case 503:
	case 504:
		what = "the model API failed";
		err->retryable = true;
		break;
	case 502:
		what = "the model API is unreachable";
		err->retryable = true;
		break;
	case 429:
		/* The proxy's budget (meter.h): final, a retry would find it as spent. */
		if (strncmp(detail, "budget:", 7) == 0) {
			snprintf(err->message, sizeof(err->message), "%.480s", detail);
			return;
		}
		what = "the model API is rate-limiting us";
		err->retryable = true;
		break;
	case 529:
		what = "the model API is overloaded";
		err->retryable = true;
		break;
	default:
		what = "the model API answered with an error";
		err->retryable = status >= 500;
	}
	snprintf(err->message, sizeof(err->message), "%s (HTTP %d%s%.400s)", what, status,
	         detail[0] ? ": " : "", detail);
}

int
model_call(const struct model_client *mc, const char *system, json_t *messages, json_t *tools,
           int64_t deadline_ms, model_text_fn on_text, void *ctx, struct model_reply *ret,
           struct model_call_error *err)
{
	memset(err, 0, sizeof(*err));
	err->retry_after = -1;
	struct model_request mreq = {
	    .provider = mc->provider,
	    .model = mc->model,
	    .max_tokens = mc->max_tokens,
	    .max_tokens_field = mc->max_tokens_field,
	    .system = system,
	    .messages = messages,
	    .tools = tools,
	    .stream = mc->stream,
	};
	_cleanup_free_ char *body = model_request_body(&mreq);
	if (!body) {
		snprintf(err->message, sizeof(err->message),
		         "cannot build the request: out of memory");
		return -ENOMEM;
	}
	char url[512];
	snprintf(url, sizeof(url), "%s%s", mc->base_url ? mc->base_url : MODEL_BASE_URL,
	         model_request_path(mc->provider));

	struct call c = {.on_text = on_text, .ctx = ctx};
	dbuf_init(&c.errbody, 64 * 1024);
	c.dec = model_decoder_new(mc->provider, mc->stream, pass_text, &c);
	if (!c.dec) {
		dbuf_done(&c.errbody);
		snprintf(err->message, sizeof(err->message), "out of memory");
		return -ENOMEM;
	}
	struct http_request req = {
	    .method = "POST",
	    .url = url,
	    .headers = {"Content-Type: application/json",
	                "Accept: application/json, text/event-stream",
	                mc->provider == MODEL_ANTHROPIC ? "anthropic-version: 2023-06-01" : NULL},
	    .body = body,
	    .body_len = strlen(body),
	    .deadline_ms = deadline_ms,
	    .idle_ms = mc->idle_ms,
	};
	struct http_handler h = {.on_head = call_head, .on_body = call_body, .ctx = &c};
	int r = http_exchange(&mc->proxy, &req, &h);
	err->streamed = c.streamed;

	if (c.resp.status && c.resp.status != 200 && (r >= 0 || r == -EPIPE)) {
		char detail[480];
		model_error_message(dbuf_str(&c.errbody), c.errbody.len, detail, sizeof(detail));
		classify_status(err, c.resp.status, detail);
		err->retry_after = c.resp.retry_after;
		/* Nothing listens there, or the name does not resolve: a local model server that
		 * is not running. A retry in seconds would find it the same. */
		if (c.resp.status == 502 && c.resp.unreachable)
			err->retryable = false;
		r = -EREMOTEIO;
	} else if (r == -ECONNREFUSED) {
		snprintf(err->message, sizeof(err->message),
		         "no egress proxy at %s:%u: the sandbox was started without the model "
		         "upstream",
		         mc->proxy.host, mc->proxy.port);
	} else if (r == -ETIMEDOUT) {
		snprintf(err->message, sizeof(err->message), "the model did not answer in time");
		err->retryable = !c.streamed;
	} else if (r < 0 && r != -EPIPE && model_decoder_error(c.dec)[0]) {
		snprintf(err->message, sizeof(err->message), "%s", model_decoder_error(c.dec));
		err->retryable = model_decoder_retryable(c.dec) && !c.streamed;
	} else if (r < 0 && r != -EPIPE) {
		snprintf(err->message, sizeof(err->message), "talking to the model failed: %s",
		         r == -ECONNRESET ? "the connection closed before a response"
		                          : strerror(-r));
		err->retryable = r == -ECONNRESET;
	} else {
		/* A whole response, or one cut short (-EPIPE): the decoder knows whether its
		 * stream had ended properly. */
		r = model_decoder_finish(c.dec, ret);
		if (r < 0) {
			snprintf(err->message, sizeof(err->message), "%s",
			         model_decoder_error(c.dec));
			err->retryable = model_decoder_retryable(c.dec) && !c.streamed;
		}
	}
	model_decoder_free(c.dec);
	dbuf_done(&c.errbody);
	return r;
}
