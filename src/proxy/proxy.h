/*
 * proxy.h: the egress proxy, the sandbox's only way out. One process per sandbox (for now;
 * the daemon will share one), outside the sandbox, on one libevent loop.
 *
 * Connections arrive as file descriptors: the sandbox's init accepts them on the sandbox's own
 * loopback and passes each over a unix socket (SCM_RIGHTS), so the proxy talks to the sandbox's
 * TCP socket directly. Each connection carries one request: an absolute-URI HTTP request
 * (forwarded as exactly one normalized message) or a CONNECT tunnel. Every request is checked
 * against the allowlist by its normalized host and port; every address its host resolves to is
 * checked by the SSRF guard, and the connection goes to that same checked address.
 */
#ifndef CLAWBOX_PROXY_H
#define CLAWBOX_PROXY_H

#include <stdint.h>

#define PROXY_HOST_ID 65532 /* not the sandboxes' 65533: nothing shared with them */

#include "allowlist.h"
#include "egress.h"
#include "model-fence.h"
#include "meter.h"
#include "services.h"
#include "upstream.h"

struct proxy_config {
	struct allowlist allow;
	struct egress_policy egress;            /* --egress: verdicts per host (egress.h) */
	const struct egress_taint *start_taint; /* --tainted: the run starts tainted; or NULL */
	int control_fd; /* SOCK_SEQPACKET to the daemon (hold.c), or -1: asks are denials */
	/* Taint is tracked and changes verdicts (egress.h) only with --egress, --tainted or
	 * --control-fd, which the daemon always gives: a plain `clawbox run --allow H` keeps
	 * the allowlist's meaning, every request to H allowed. */
	bool taint_verdicts;
	const char *sandbox_id;
	int sandbox_fd;         /* SOCK_SEQPACKET: 'c' + one connection fd per message */
	int audit_fd;           /* O_APPEND file, or -1 */
	const char *hosts_file; /* resolve from this file only (tests, air-gapped setups) */
	const struct upstream_config *upstream; /* the credentialed model API, or NULL */
	struct model_fence model_fence;          /* what may be asked of it (model-fence.h) */
	const char *fetch_ca_file; /* CAs for https:// fetches and intercepted services (default:
	                            * the system's) */
	const struct services *services; /* credentials bound to hosts, or NULL */
	const char *ca_dir;              /* the interception CA (ca.h), needed with services */
	struct meter *meter; /* the run's budget and spend (meter.h), or NULL: none kept */
	/* Launched by root: once the key, the audit file and the resolver configuration are
	 * loaded, become this uid:gid (no groups, no_new_privs). 0: stay. */
	unsigned drop_to_id;

	/* Limits: over one, the client gets a clear HTTP error and the audit says why. */
	unsigned max_connections; /* at once */
	unsigned max_head_bytes;  /* request line and headers */
	uint64_t max_body_bytes;  /* a forwarded request's body */
	uint64_t max_total_bytes; /* in and out, over the proxy's life */
	uint64_t max_bytes_out;   /* from the sandbox, over the run */
	uint64_t max_bytes_in;    /* to the sandbox, over the run */
	unsigned max_requests;    /* requests and tunnels, over the run */
	unsigned head_timeout_s;  /* to receive the request head */
	unsigned idle_timeout_s;  /* a tunnel or response with no traffic either way */
};

void proxy_config_init(struct proxy_config *c);

/* Runs until SIGTERM/SIGINT, or until the sandbox socket closes and no connection is left.
 * Returns 0 or -errno. */
int proxy_run(const struct proxy_config *c);

#endif
