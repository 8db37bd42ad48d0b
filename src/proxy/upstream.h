/*
 * upstream.h: the credentialed upstream (the model API). Inside the sandbox it is the
 * plain-HTTP name UPSTREAM_NAME; the proxy forwards such requests to the configured HTTPS (or,
 * for a local model server the operator named, HTTP) base URL with libcurl, removes any key
 * header the sandbox sent, adds the real key, and streams the response back as it arrives.
 * Redirects are never followed: the key goes to the configured origin only.
 *
 * The key lives in this process alone: read from the proxy's environment or a file, never from
 * the command line (visible in /proc), never passed into a sandbox.
 */
#ifndef CLAWBOX_UPSTREAM_H
#define CLAWBOX_UPSTREAM_H

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UPSTREAM_NAME    "model.clawbox.internal"
#define UPSTREAM_KEY_MAX 4096

struct upstream_config {
	const char *base_url;       /* "https://api.anthropic.com"; NULL: none configured */
	char header_name[64];       /* "x-api-key", or "Authorization" */
	char header_prefix[32];     /* "" or "Bearer " */
	char key[UPSTREAM_KEY_MAX]; /* the secret */
	const char *ca_file;        /* trust these CAs instead of the system's (private servers) */
	/* A fetcher (upstream_fetch) has no base_url, header or key: only ca_file counts. */
};

/* Parses "NAME" or "NAME: PREFIX" (e.g. "Authorization: Bearer"). -EINVAL on a bad one. */
int upstream_set_header(struct upstream_config *u, const char *spec);

/* Reads the key from the environment variable (then unsets it) or from a file that only its
 * owner may read. Trailing newlines are dropped. -errno, with *ret_why. */
int upstream_load_key(struct upstream_config *u, const char *env, const char *file,
                      const char **ret_why);

struct upstream;
struct request;

/* One curl multi handle on the proxy's event loop. */
struct upstream *upstream_new(struct event_base *base, const struct upstream_config *cfg);
void upstream_free(struct upstream *up);

/* What the proxy learns of a forwarded request's progress. */
struct upstream_callbacks {
	/* Response bytes for the client (status line and headers first, then the body). Return
	 * false to pause: upstream_resume() when the client has drained. */
	bool (*data)(void *ctx, const void *buf, size_t len);
	/* The transfer ended: ok, or an error before any response byte (then why). */
	void (*done)(void *ctx, bool ok, const char *why);
	/* Optional, called just before done() when the upstream could not be connected to at
	 * all (refused, unresolvable): see PROXY_HDR_UNREACHABLE. */
	void (*unreachable)(void *ctx);
};

struct upstream_xfer;

/* Starts forwarding req (head already parsed, body complete in body/body_len, copied) to the
 * base URL + req->path. Returns NULL on failure. */
struct upstream_xfer *upstream_start(struct upstream *up, const struct request *req,
                                     const void *body, size_t body_len,
                                     const struct upstream_callbacks *cb, void *ctx);
/* Fetches https://HOST[:PORT]PATH of req (a GET or HEAD the proxy has allowed) for a client
 * without TLS, connecting to address only (the one the SSRF guard checked: no second lookup).
 * No credential is added but what headers carries: NULL sends req's own headers; a
 * CRLF-separated block replaces them (a service's, its placeholder swapped for the secret).
 * Redirects are passed back, not followed. The certificate is checked against the system's
 * CAs, or up->cfg->ca_file. NULL on failure. */
struct upstream_xfer *upstream_fetch(struct upstream *up, const struct request *req,
                                     const char *headers, const char *address,
                                     const struct upstream_callbacks *cb, void *ctx);
void upstream_resume(struct upstream_xfer *x);
/* Cancels (no more callbacks) and frees. */
void upstream_cancel(struct upstream_xfer *x);

#endif
