/*
 * chan-http.h: HTTP for channels, on the channel's one libevent loop: libcurl's multi
 * interface driven by libevent (the pattern of curl's hiper.c, as in the proxy). One
 * request is one chan_http_start(); its done callback runs once, from the loop, with the
 * status and the body (bounded by max_body). No redirects, no proxy from the environment,
 * http and https only: a channel talks to the one address its config names.
 */
#ifndef CLAWBOX_CHAN_HTTP_H
#define CLAWBOX_CHAN_HTTP_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "chanlib.h"

#define CHAN_HTTP_BODY_MAX (4u << 20) /* the default bound of an answer's body */

/* A multipart/form-data part: a value, or data with a file name (an upload). */
struct chan_http_part {
	const char *name;
	const char *value; /* a plain field; or: */
	const void *data;  /* a file's contents */
	size_t len;
	const char *filename; /* with data */
	const char *type;     /* with data, may be NULL */
};

struct chan_http_req {
	const char *method; /* NULL: GET, or POST when there is a body or parts */
	const char *url;
	const char *const *headers; /* "Name: value", NULL-terminated; may be NULL */
	const char *body;           /* JSON or form text; copied */
	size_t body_len;
	const char *content_type; /* of body; default application/json */
	const struct chan_http_part *parts;
	size_t n_parts;
	long timeout_s;      /* 0: 30 */
	size_t max_body;     /* 0: CHAN_HTTP_BODY_MAX; past it the transfer fails */
	const char *ca_file; /* NULL: the system store (a test's CA otherwise) */
};

struct chan_http;

/* status: the HTTP status (0 if there was none); err: NULL, or curl's description of the
 * failure (no answer, body too large, timeout). body is NUL-terminated, borrowed. */
typedef void chan_http_done_fn(void *arg, long status, const char *body, size_t len,
                               const char *err);

/* Starts a request on c's loop. 0 and *ret (may be NULL: not wanted), or -errno. The
 * handle lives until done has run or chan_http_cancel(). */
int chan_http_start(struct chan *c, const struct chan_http_req *r, chan_http_done_fn *done,
                    void *arg, struct chan_http **ret);
/* Inside a done callback: that answer's Retry-After header in seconds (how Slack says how
 * long a 429 lasts), or -1 when it had none. */
double chan_http_retry_after(void);
/* Stops a request in flight; done is not called. NULL is fine. */
void chan_http_cancel(struct chan_http *h);
/* Any other protocol libcurl speaks (IMAP, SMTP for the email channel) on the same multi
 * handle and loop: the caller sets easy up (URL, protocols, callbacks) and keeps owning it;
 * done runs once, from the loop, with curl's result, after which easy is the caller's again
 * (to reuse, with its connection, or to clean up). CURLOPT_PRIVATE is chan-http's. 0, or
 * -errno (easy not added). */
typedef void chan_curl_done_fn(void *arg, CURL *easy, CURLcode rc);
int chan_curl_start(struct chan *c, CURL *easy, chan_curl_done_fn *done, void *arg);
/* Takes easy off the loop before it is done (done is not called); unknown handles are
 * ignored. */
void chan_curl_cancel(CURL *easy);

/* Stops every request (at exit). */
void chan_http_shutdown(void);

#endif
