/*
 * conn.h: the proxy's connection state, shared by proxy.c (requests, relaying, the upstream
 * glue) and tunnel.c (spliced CONNECT tunnels). Internal to src/proxy.
 */
#ifndef CLAWBOX_PROXY_CONN_H
#define CLAWBOX_PROXY_CONN_H

#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "proxy.h"
#include "request.h"
#include "upstream.h"
#include "leak.h"

#define RELAY_HIGH_WATER (1 << 20) /* pause reading a side whose peer has this much queued */

struct proxy {
	const struct proxy_config *cfg;
	struct event_base *base;
	struct evdns_base *dns;
	struct upstream *upstream; /* NULL: none configured */
	struct upstream *fetcher;  /* https:// fetches for clients without TLS */
	struct upstream_config fetch_cfg;
	struct intercept *icpt; /* NULL: no service, or no CA */
	struct event *sandbox_ev, *sigterm_ev, *sigint_ev;
	unsigned n_conns;
	struct conn *conns; /* all open connections, so that none ends without its audit line */
	uint64_t total_bytes;
	uint64_t sent_bytes, received_bytes; /* from the sandbox, to it: the per-run caps */
	unsigned n_requests;
	bool sandbox_gone;
	/* hold.c: the control channel, what the run has read, the asks so far. */
	int control_fd;
	struct event *control_ev;
	struct egress_taint taint;
	uint64_t next_ask_id;
};

#define HOLD_MAX         4         /* requests of a run held at once (CONTRACTS 1) */
#define HOLD_BODY_MAX    (1 << 20) /* a held request's body, read in full */
#define HOLD_PREVIEW_MAX 512       /* bytes of it the approver sees */
#define HOLD_PATH_MAX    1024

enum conn_state {
	ST_HEAD,
	ST_RESOLVE,
	ST_CONNECT,
	ST_TUNNEL,
	ST_FORWARD,
	ST_UPSTREAM_BODY, /* the credentialed upstream: collecting the request body */
	ST_UPSTREAM,      /* the credentialed upstream: libcurl has the request */
	ST_HELD,          /* waiting for an approver's answer (hold.c) */
	ST_CLOSING,
};

/* One direction of a spliced tunnel: from -> pipe -> to, never through user space. */
struct splice_dir {
	struct conn *c;
	int from, to;
	int pipe[2];
	size_t in_pipe;
	bool eof, done, from_client;
	struct event *rd, *wr;
};

struct conn {
	struct proxy *px;
	struct splice_dir *tunnel;  /* [2], when the CONNECT tunnel is spliced */
	struct upstream_xfer *xfer; /* the credentialed upstream's transfer */
	bool xfer_paused;
	bool forwarded; /* made to an allowed host loopback port inside: a tunnel, no 200 line */
	bool fetching; /* c->xfer is an https:// fetch, not the model upstream */
	bool unreachable; /* the upstream could not be connected to (PROXY_HDR_UNREACHABLE) */
	int tunnel_fds[2];
	struct timespec last_traffic;
	struct conn *prev, *next;
	enum conn_state state;
	struct bufferevent *client, *upstream;
	struct evdns_getaddrinfo_request *dns_req;

	struct request req;
	struct evbuffer *body; /* the forwarded body, until the upstream is connected */

	char address[INET6_ADDRSTRLEN + 8];
	struct sockaddr_storage addr;
	socklen_t addr_len;

	uint64_t bytes_in, bytes_out;
	uint64_t max_response; /* the allow entry's cap on what comes back; 0: none */
	const char *cap_hit;   /* set when conn_count_bytes() said no: which cap */
	char cap_why[200];     /* cap_hit's text when it is the budget's */
	/* The budget (meter.h): the model call's reservation; whether the connection's bytes
	 * are egress (everything but the model API's). */
	struct meter_call *mcall;
	bool egress_metered;
	struct timespec start;

	/* Services (services.h): the destination's service, or -1; an intercepted tunnel's
	 * destination (the request inside is read into req again); the body's leak scan. */
	int svc;
	bool intercepted;
	bool swap;         /* the secret of c->svc goes into this request (TLS, or a named port) */
	bool chunks_ended; /* a chunked body's last chunk ("0\r\n\r\n") is written */
	bool transparent;  /* intercepted from its SNI (init's port 443), not a CONNECT */
	bool addr_ready;   /* c->addr is resolved and checked */
	bool connect_pending; /* the request inside waits for addr_ready */
	char tunnel_host[HOST_MAX];
	enum host_kind tunnel_kind;
	uint16_t tunnel_port;
	struct leak_stream leak;

	/* Egress (egress.h, hold.c): a response to it taints the run; the hold. */
	bool taints;
	bool held, asked, approved, continued;
	bool egress_ok; /* allowed by an egress rule or an approver, not (only) --allow */
	uint64_t ask_id;
	void (*release)(struct conn *c); /* goes on once approved */
	struct evp_md_ctx_st *sha;
	uint64_t held_bytes;
	char preview_raw[HOLD_PREVIEW_MAX];
	size_t preview_raw_len;
	char held_why[EGRESS_WHY_MAX];

	const char *decision;
	char reason[EGRESS_WHY_MAX + 160];
};

/* Ends the connection: audit line, then everything it holds is freed. */
void conn_free(struct conn *c);

/* Refuses with an HTTP error the client can show (if no response byte went out yet), audits
 * why, and closes once it is flushed. */
void conn_refuse(struct conn *c, int status, const char *decision, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Reads the client's request (head, then body); the relay of a forwarded request; its head
 * written to c->upstream (with the service's secret, if any). proxy.c. */
void client_read(struct bufferevent *bev, void *arg);
void start_relay(struct conn *c);
/* Resolves c->req.host; the addresses go through the SSRF guard, then connect_checked(). */
void conn_resolve(struct conn *c);
void send_request_head(struct conn *c);

/* The connection is not the model API's: its bytes count as the budget's egress from now
 * on. false when the budget is spent (then it is refused). */
bool conn_egress_start(struct conn *c);

/* Counts n bytes of traffic; false (c->cap_hit says which) once a cap is passed. */
bool conn_count_bytes(struct conn *c, size_t n, bool from_client);

double conn_ms_since(const struct timespec *t0);

/* hold.c: see there. hold_request() holds c (verdict ask, why) and asks the daemon once its
 * body is in; release(c) goes on if an approver allows it, else c is refused. */
int hold_init(struct proxy *px);
void hold_done(struct proxy *px);
void hold_request(struct conn *c, const char *why, void (*release)(struct conn *));
void hold_body(struct conn *c, const char *at, size_t len);
void hold_body_done(struct conn *c);
void hold_control_lost(struct proxy *px, const char *why);
void hold_conn_free(struct conn *c);
/* A response from c's host reached the sandbox: the run is tainted by it. */
void hold_response_seen(struct conn *c);
void hold_taint(struct proxy *px, const char *cause, const char *host);
/* The egress verdict on c's request (egress.h), applied: false when c was refused or held
 * (then release goes on with it later), true when it goes on now. */
bool egress_gate(struct conn *c, bool allowed, bool has_input, void (*release)(struct conn *));

/* tunnel.c: hands an established CONNECT tunnel to splice(2); false: not possible, the
 * bufferevent relay carries it. tunnel_free() releases what the splice held. */
bool tunnel_splice_start(struct conn *c);
void tunnel_free(struct conn *c);

#endif
