/*
 * request.h: one HTTP/1.1 proxy request read from the sandbox, incrementally and within hard
 * limits: the request line and headers (http-parser does the parsing), the target split and
 * normalized (hostname.h), then the body handed to a sink as it is decoded. It reads exactly
 * one message and says where it ended; what follows is not its business.
 *
 * No I/O and no allocation: the proxy feeds it bytes, the fuzzer feeds it anything.
 */
#ifndef CLAWBOX_REQUEST_H
#define CLAWBOX_REQUEST_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hostname.h"

#define REQUEST_HEADERS_MAX 100
#define REQUEST_HEAD_MAX    (16 * 1024) /* the most max_head may be */
#define REQUEST_PATH_MAX    8192

enum request_status {
	REQ_MORE,  /* everything consumed; feed more */
	REQ_HEAD,  /* the head is complete: decide on it, then go on feeding for the body */
	REQ_DONE,  /* the message is complete; bytes after *ret_used are not part of it */
	REQ_ERROR, /* error_status and error say what */
};

struct request {
	http_parser parser;
	unsigned max_head;
	uint64_t max_body;

	/* The body, decoded (chunked framing removed), as it arrives. */
	void (*on_body)(void *ctx, const char *data, size_t len);
	void *body_ctx;

	/* Request line and headers, NUL-separated in one bounded arena. */
	char arena[REQUEST_HEAD_MAX + 256];
	size_t arena_used;
	size_t url;
	struct {
		size_t name, value;
	} headers[REQUEST_HEADERS_MAX];
	size_t n_headers;
	bool in_value;

	size_t head_bytes;
	uint64_t body_bytes;
	bool chunked;
	bool head_done, message_done;

	/* Set by the caller before feeding: the connection came to the sandbox's port 80 (or
	 * through CONNECT NAME.clawbox.internal:80), so the target may be origin form ("/path"),
	 * when the Host header must name a *.clawbox.internal host (an absolute URL is read as
	 * any proxy request is). */
	bool origin_form;

	int error_status; /* an HTTP status for the client */
	const char *error;
	char error_buf[128];

	/* After request_target(): */
	bool is_connect;
	bool https; /* an absolute https:// URL: the proxy fetches it (GET/HEAD) with TLS */
	char method[24];
	char host[HOST_MAX];
	enum host_kind kind;
	uint16_t port;
	char path[REQUEST_PATH_MAX]; /* origin form, for forwarding; "" for CONNECT */
};

/* max_head is capped at REQUEST_HEAD_MAX. */
void request_init(struct request *r, unsigned max_head, uint64_t max_body);

/* Feeds len bytes; *ret_used says how many belong to this message. */
enum request_status request_feed(struct request *r, const char *data, size_t len, size_t *ret_used);

/* Splits the target (absolute URL, or host:port for CONNECT) and normalizes the host.
 * 0, or -EINVAL with error_status 400 and error set. */
int request_target(struct request *r);

const char *request_header_name(const struct request *r, size_t i);
const char *request_header_value(const struct request *r, size_t i);

/* Headers about this hop or about the proxy, never passed on (Host, the framing headers and
 * Expect included: the proxy writes its own, and answers 100-continue itself). */
bool request_expects_continue(const struct request *r);

bool request_hop_by_hop(const char *name);

#endif
