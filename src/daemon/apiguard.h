/*
 * apiguard.h: what the HTTP API checks before a request reaches a handler, and how it keeps
 * its connections within bounds (apiguard.c). The API is on loopback, but a web page the user
 * visits can still reach loopback through the browser (DNS rebinding), a local program can
 * open connections until the daemon runs out of descriptors, and a client can send requests
 * two parsers would read differently.
 */
#ifndef CLAWBOX_APIGUARD_H
#define CLAWBOX_APIGUARD_H

#include <event2/http.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct daemon;

/* The request's Host is the daemon's own listen address (or a localhost form of it). */
bool api_host_ok(const struct daemon *d, struct evhttp_request *req);

/* An Origin is the daemon's own: http:// and the request's (checked) Host, or d->origin. */
bool api_origin_ok(const struct daemon *d, struct evhttp_request *req, const char *origin);

/* Whether the request came from a browser: it carries Origin or Sec-Fetch-Site, which a
 * browser sends on its own (on every POST, on every request) and page script cannot remove.
 * Tells the web app's approver from the CLI's (api.c). */
bool api_from_browser(struct evhttp_request *req);

/* 0, or -EINVAL with why when the request's headers could be read two ways: a header name
 * with white space in it, two different Content-Length values, Transfer-Encoding beside
 * Content-Length, two Host or two Authorization headers. */
int api_headers_check(struct evhttp_request *req, char *why, size_t why_size);

/* A client's free text made safe to store and show: C0/C1 controls and DEL dropped, invalid
 * UTF-8 replaced; a name keeps no newline or tab either. Owned by the caller; NULL on ENOMEM. */
char *api_clean_text(const char *in, size_t len, bool name);

/* Keeps the API's connections under the caps (d->cfg.limits, or derived from the file
 * limit), per client address and in all, by closing the oldest connections that have sent
 * nothing yet (else the newest); pauses accepting for a moment when accept fails (EMFILE)
 * instead of spinning. 0 or -errno. */
int api_guard_start(struct daemon *d, struct evhttp_bound_socket *bound);
void api_guard_stop(void);
/* For /metrics: connections open now and those closed by the caps so far. */
void api_guard_stats(unsigned *open, uint64_t *evicted);

#endif
