/*
 * services.h: credentials bound to hosts. A service is given to the proxy as one JSON object
 * (clawbox run --service, which adds the per-run "placeholder" it put in the sandbox):
 *
 *   {"name": "github", "hosts": ["api.github.com", "github.com"],
 *    "secret_env": "GITHUB_TOKEN" | "secret_file": "/path/0600",
 *    "header": "Authorization: Bearer", "placeholder_env": "GITHUB_TOKEN",
 *    "query": true | "access_token", "placeholder": "clawbox-placeholder-github-..."}
 *
 * On a request to one of its hosts (allowed by being named here; HTTPS is intercepted) the
 * placeholder is replaced by the secret in every header value, inside Basic credentials too
 * (git sends https://x:PLACEHOLDER@host/ that way), and in the URL query if "query" says so
 * (true: anywhere in it; a string: in that parameter only). If "header" is set and the
 * request carries no such header, the proxy adds it ("Authorization: Bearer SECRET"), so a
 * program that was given nothing still reaches the service as itself.
 *
 * The secret is read here, on the host side, from the proxy's environment (then unset) or a
 * 0600 file; it never enters a sandbox and never appears on a command line.
 */
#ifndef CLAWBOX_SERVICES_H
#define CLAWBOX_SERVICES_H

#include <event2/buffer.h>
#include <stdbool.h>
#include <stddef.h>

#include "allowlist.h"
#include "leak.h"
#include "request.h"

#define SERVICES_MAX            16
#define SERVICE_NAME_MAX        32
#define SERVICE_PLACEHOLDER_MAX 96

struct service {
	char name[SERVICE_NAME_MAX + 1];
	struct allowlist *hosts;       /* allocated: an allowlist is large */
	struct allowlist *plain_hosts; /* those of hosts that name a port */
	char *secret;
	size_t secret_len;
	char header_name[64];   /* "" : none added */
	char header_prefix[32]; /* "Bearer " */
	char placeholder[SERVICE_PLACEHOLDER_MAX + 1];
	char secret_env[128]; /* "" : from a file */
	bool query_any;
	char query_param[64]; /* "" with query_any false: never in the URL */
};

struct services {
	struct service v[SERVICES_MAX];
	size_t n;
	struct leak_set leaks; /* every secret and placeholder, owned by its service's index */
};

void services_init(struct services *s);
void services_done(struct services *s);

/* Parses one JSON spec and loads its secret. -errno with *ret_why (a static string). */
int services_add(struct services *s, const char *json, const char **ret_why);

/* Unsets the services' secret_env variables (after the last services_add). */
void services_forget_env(struct services *s);

/* Adds the model key as a secret no service owns (it goes to the model upstream only). */
int services_add_model_key(struct services *s, const char *key);

/* The index of the service whose hosts name host:port, or -1. */
int services_match(const struct services *s, const char *host, enum host_kind kind, uint16_t port);

/* Whether plain HTTP to host:port may carry service svc's secret: only where the service named
 * that port ("127.0.0.1:8080", a local server). Elsewhere (a name alone: 443 and 80) the
 * secret goes over TLS only, and plain HTTP keeps the placeholder. */
bool services_plain_ok(const struct services *s, int svc, const char *host, enum host_kind kind,
                       uint16_t port);

/* Scans the request's target, path and every header for leaks to a destination owned by dest
 * (a service index or LEAK_OWNER_NONE). The hit, or NULL. */
const struct leak_pattern *services_scan_head(const struct services *s, int dest,
                                              const struct request *r);

/* Rewrites r->path's query for service svc (placeholder -> secret where the service says so).
 * -E2BIG if the result would not fit. */
int services_rewrite_query(const struct services *s, int svc, struct request *r);

/* Writes the request's end-to-end headers to out, for service svc (-1: as they are), with the
 * placeholder swapped and the service's header added if absent. */
void services_write_headers(const struct services *s, int svc, const struct request *r,
                            struct evbuffer *out);

#endif
