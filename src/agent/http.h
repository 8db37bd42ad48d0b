/*
 * http.h: the agent's HTTP/1.1 client. It speaks plain HTTP to the egress proxy on the
 * sandbox's loopback and nothing else: requests carry an absolute URI
 * ("POST http://model.clawbox.internal/v1/messages"), the proxy adds credentials and TLS. No
 * TLS here, and no libcurl (the agent starts on every invocation: docs/ARCHITECTURE.md).
 *
 * Responses are parsed by http-parser (chunked, content-length or close-delimited bodies) and
 * handed over as they arrive, so a streamed reply can be printed while it streams. One
 * request per connection ("Connection: close"): the agent makes few, and a fresh connection is
 * never in a half-used state after an error.
 */
#ifndef CLAWBOX_HTTP_H
#define CLAWBOX_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_HEAD_MAX    (64 * 1024) /* status line and headers of a response */
#define HTTP_MAX_HEADERS 32          /* extra request headers */
#define HTTP_URL_MAX     8192

struct http_proxy {    /* the proxy, or with origin_form the server itself */
	char host[64]; /* a numeric address: "127.0.0.1" */
	unsigned port;
};

/* Fills *ret from "http://HOST:PORT" (or "HOST:PORT") as HTTP_PROXY holds it. -EINVAL. */
int http_proxy_parse(const char *s, struct http_proxy *ret);

struct http_response {
	int status;
	char content_type[128];
	char location[2048];
	double retry_after; /* seconds from a Retry-After header in seconds form; -1 if none */
	bool unreachable;   /* the proxy's PROXY_HDR_UNREACHABLE: the upstream is not there */
};

struct http_handler {
	/* The head is complete. Return < 0 to abort with that error. */
	int (*on_head)(void *ctx, const struct http_response *resp);
	/* Body bytes, as they arrive. Return < 0 to abort with that error. */
	int (*on_body)(void *ctx, const char *buf, size_t len);
	void *ctx;
};

struct http_request {
	const char *method;                        /* "GET", "POST" */
	const char *url;                           /* absolute: http://host[:port]/path */
	const char *headers[HTTP_MAX_HEADERS + 1]; /* "Name: value", NULL-terminated */
	const char *body;                          /* NULL: none */
	size_t body_len;
	int64_t deadline_ms; /* CLOCK_MONOTONIC; the whole exchange must end by then */
	bool origin_form;    /* talking to the server itself (the daemon), not to a proxy */
	unsigned idle_ms;    /* no byte for this long is an error (0: only the deadline) */
};

/* Sends req through the proxy and streams the response to h. Returns 0 when the response
 * ended normally, -ETIMEDOUT, -ECONNREFUSED (no proxy), -EPROTO (not HTTP), -EMSGSIZE (head
 * too large), -ECONNRESET (closed before the head), or a handler's error. A body cut short is
 * only detectable by its framing: -EPIPE when Content-Length or chunking says more was due. */
int http_exchange(const struct http_proxy *proxy, const struct http_request *req,
                  const struct http_handler *h);

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t http_now_ms(void);

#endif
