/*
 * rest.h: HTTP calls to a service's web API (Slack's Web API, Discord's REST) with libcurl's
 * multi interface on the channel's libevent loop (the pattern of curl's hiper.c). Each call
 * is one easy handle, answered once through its callback; bodies are bounded; the service's
 * Retry-After is handed back so the caller can honour a 429.
 */
#ifndef CLAWBOX_REST_H
#define CLAWBOX_REST_H

#include <event2/event.h>
#include <stddef.h>

#define REST_BODY_MAX  (4u << 20)
#define REST_MAX_CALLS 16

struct rest;

struct rest_answer {
	int http;           /* 0: no answer (err says why) */
	const char *err;    /* NULL, or curl's reason */
	const char *body;   /* NUL-terminated; "" when none */
	size_t len;
	double retry_after; /* seconds from the Retry-After header; -1: none */
};

typedef void (*rest_done_fn)(const struct rest_answer *a, void *arg);

/* ca_file: NULL for the system store. Returns an owned rest, or NULL (out of memory). */
struct rest *rest_new(struct event_base *base, const char *ca_file);
void rest_free(struct rest *r); /* pending calls are dropped unanswered; NULL is fine */

/* Starts method url with the headers (NULL-terminated "Name: value" lines, copied) and body
 * (JSON, copied; NULL: none). done is called once, from the loop, never from inside this
 * call. 0, -EBUSY with REST_MAX_CALLS pending, -ENOMEM. */
int rest_call(struct rest *r, const char *method, const char *url, const char *const *headers,
              const char *body, long timeout_s, rest_done_fn done, void *arg);

#endif
