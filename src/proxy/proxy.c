/*
 * proxy.c: the egress proxy's connections, on one libevent loop (see proxy.h).
 *
 * A connection's life: HEAD (http-parser reads the request line and headers, within limits)
 * -> decide (host normalized, allowlist) -> RESOLVE (evdns; every address through the SSRF
 * guard) -> CONNECT (to the checked address) -> either TUNNEL (CONNECT: bytes both ways) or
 * FORWARD (one rebuilt request out, the response back) -> closed, with one audit line.
 *
 * What the sandbox sends is never trusted for anything but its own request: the host it names
 * is normalized before any comparison, the Host header is rewritten to the URI's authority,
 * hop-by-hop and Proxy-* headers are dropped, and nothing after the first message is read.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <http_parser.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "addr.h"
#include "audit.h"
#include "fd-util.h"
#include "hostname.h"
#include "macro.h"
#include "proxy-wire.h"
#include "proxy.h"
#include "request.h"
#include "conn.h"
#include "confine.h"
#include "model-fence.h"
#include "meter.h"
#include "rules.h"
#include "intercept.h"
#include "services.h"

void
proxy_config_init(struct proxy_config *c)
{
	memset(c, 0, sizeof(*c));
	c->sandbox_id = "-";
	c->sandbox_fd = -1;
	c->audit_fd = -1;
	c->control_fd = -1;
	egress_policy_init(&c->egress);
	c->max_connections = 64;
	c->max_head_bytes = 16 * 1024;
	c->max_body_bytes = 64ULL << 20;
	c->max_total_bytes = 4ULL << 30;
	c->max_bytes_out = 1ULL << 30;
	c->max_bytes_in = 4ULL << 30;
	c->max_requests = 10000;
	c->head_timeout_s = 30;
	c->idle_timeout_s = 300;
}

/* ---- bookkeeping ---- */

double
conn_ms_since(const struct timespec *t0)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) * 1e3 + (double)(now.tv_nsec - t0->tv_nsec) / 1e6;
}

static void
conn_audit(struct conn *c)
{
	struct audit_entry e = {
	    .sandbox = c->px->cfg->sandbox_id,
	    .method = c->req.method[0] ? c->req.method : NULL,
	    .host = c->req.host[0] ? c->req.host : NULL,
	    .port = c->req.port,
	    .address = c->address,
	    .decision = c->decision ? c->decision : "error",
	    .reason = c->reason,
	    .bytes_in = c->bytes_in,
	    .bytes_out = c->bytes_out,
	    .duration_ms = conn_ms_since(&c->start),
	};
	(void)audit_write(c->px->cfg->audit_fd, &e);
}

static void
maybe_quit(struct proxy *px)
{
	if (px->sandbox_gone && px->n_conns == 0)
		event_base_loopbreak(px->base);
}

void
conn_free(struct conn *c)
{
	struct proxy *px = c->px;
	struct meter *m = px->cfg->meter;
	if (m && c->mcall) { /* cut short: charged what it proved (meter_call_end) */
		meter_call_end(m, c->mcall);
		c->mcall = NULL;
	}
	conn_audit(c);
	if (m && m->dirty && meter_write(m, px->cfg->audit_fd) == 0)
		m->dirty = false;
	if (c->dns_req)
		evdns_getaddrinfo_cancel(c->dns_req); /* its callback frees nothing of ours */
	upstream_cancel(c->xfer);
	if (c->client)
		bufferevent_free(c->client);
	if (c->upstream)
		bufferevent_free(c->upstream);
	if (c->body)
		evbuffer_free(c->body);
	leak_stream_done(&c->leak);
	hold_conn_free(c);
	tunnel_free(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		px->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
	px->n_conns--;
	maybe_quit(px);
}

/* Closing: once our last bytes are out, half-close and read (and drop) whatever the client
 * still sends until it closes too, for at most two seconds. Closing a socket with unread data
 * would make the kernel send a reset, and the client could lose our error response. */
static void
closing_read(struct bufferevent *bev, void *arg)
{
	(void)arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	evbuffer_drain(in, evbuffer_get_length(in));
}

static void
closing_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	conn_free(arg); /* EOF, error or the two seconds */
}

static void
close_when_flushed(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	struct timeval linger = {.tv_sec = 2};
	SSL *ssl = bufferevent_openssl_get_ssl(bev); /* an intercepted client: end TLS cleanly */
	if (ssl)
		SSL_shutdown(ssl);
	shutdown(bufferevent_getfd(bev), SHUT_WR);
	bufferevent_setcb(bev, closing_read, NULL, closing_event, c);
	bufferevent_set_timeouts(bev, &linger, NULL);
	bufferevent_enable(bev, EV_READ);
}

static void
conn_close_after_flush(struct conn *c)
{
	c->state = ST_CLOSING;
	if (c->upstream) {
		bufferevent_free(c->upstream);
		c->upstream = NULL;
	}
	bufferevent_setcb(c->client, closing_read, close_when_flushed, closing_event, c);
	bufferevent_enable(c->client, EV_READ | EV_WRITE);
	close_when_flushed(c->client, c);
}

/* Refuses the request with an HTTP error the client can show, and audits why. */
void __attribute__((format(printf, 4, 5)))
conn_refuse(struct conn *c, int status, const char *decision, const char *fmt, ...)
{
	static const struct {
		int status;
		const char *text;
	} texts[] = {
	    {400, "Bad Request"},        {403, "Forbidden"},
	    {405, "Method Not Allowed"}, {413, "Payload Too Large"},
	    {414, "URI Too Long"},       {429, "Too Many Requests"},
	    {431, "Request Header Fields Too Large"},
	    {502, "Bad Gateway"},        {503, "Service Unavailable"},
	    {504, "Gateway Timeout"},
	};
	const char *text = "Error";
	for (size_t i = 0; i < ARRAY_SIZE(texts); i++)
		if (texts[i].status == status)
			text = texts[i].text;

	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
	c->decision = decision;

	/* An error response only if nothing of one reached the client yet (a tunnel's 200 was). */
	if (c->bytes_out == 0 && c->state != ST_TUNNEL) {
		/* The reason goes where clients show it (npm, pip and the SDKs print only the
		 * status and headers): one line, never a control character from the request. */
		char why[sizeof(c->reason)], body[256];
		snprintf(why, sizeof(why), "%s", c->reason);
		for (char *p = why; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		int n = snprintf(body, sizeof(body), "clawbox proxy: %s\n", why);
		evbuffer_add_printf(bufferevent_get_output(c->client),
		                    "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n%s"
		                    "X-Clawbox-Refused: %s\r\n"
		                    "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
		                    status, text,
		                    c->unreachable ? PROXY_HDR_UNREACHABLE ": 1\r\n" : "", why, n,
		                    body);
	}
	conn_close_after_flush(c);
}

/* ---- the request body ---- */

/* The request's decoded body goes to the upstream (or waits in c->body until it is connected),
 * re-framed: chunked stays chunked, anything else carries its Content-Length. */
static void
body_sink(void *ctx, const char *at, size_t len)
{
	struct conn *c = ctx;
	if (!conn_body_clean(c, at, len))
		return; /* refused: nothing more goes out */
	if (c->held || c->approved) { /* read in full for the approver, sent as it was shown */
		if (c->held)
			hold_body(c, at, len);
		return;
	}
	if (c->state == ST_UPSTREAM_BODY) { /* libcurl frames it itself */
		evbuffer_add(c->body, at, len);
		return;
	}
	struct evbuffer *out =
	    c->upstream && c->state == ST_FORWARD ? bufferevent_get_output(c->upstream) : c->body;
	if (c->req.chunked)
		evbuffer_add_printf(out, "%zx\r\n", len);
	evbuffer_add(out, at, len);
	if (c->req.chunked)
		evbuffer_add(out, "\r\n", 2);
}

/* The request is read whole: a chunked body re-framed by body_sink gets its last chunk,
 * once, where its chunks went (without it the server waits for more, and a client such as
 * git, which posts large packs chunked, hangs until a timeout). Held and approved bodies go
 * out with a Content-Length, and libcurl frames its own. */
static void
body_end(struct conn *c)
{
	if (!c->req.chunked || c->chunks_ended || c->held || c->approved ||
	    c->state == ST_UPSTREAM_BODY || c->state == ST_CLOSING || c->req.is_connect)
		return;
	c->chunks_ended = true;
	struct evbuffer *out =
	    c->upstream && c->state == ST_FORWARD ? bufferevent_get_output(c->upstream) : c->body;
	evbuffer_add(out, "0\r\n\r\n", 5);
}

/* ---- upstream ---- */

static void relay_read(struct bufferevent *bev, void *arg);
static void relay_write(struct bufferevent *bev, void *arg);
static void relay_event(struct bufferevent *bev, short what, void *arg);

bool
conn_count_bytes(struct conn *c, size_t n, bool from_client)
{
	struct proxy *px = c->px;
	const struct proxy_config *cfg = px->cfg;
	if (from_client) {
		c->bytes_in += n;
		px->sent_bytes += n;
	} else {
		c->bytes_out += n;
		px->received_bytes += n;
		if (n && c->taints) /* before the agent can read it */
			hold_response_seen(c);
	}
	px->total_bytes += n;
	if (c->egress_metered && cfg->meter &&
	    !meter_egress(cfg->meter, n, c->cap_why, sizeof(c->cap_why)))
		c->cap_hit = c->cap_why;
	else if (px->total_bytes > cfg->max_total_bytes)
		c->cap_hit = "the sandbox's traffic limit is reached";
	else if (px->sent_bytes > cfg->max_bytes_out)
		c->cap_hit = "the run's cap on bytes sent out (max-bytes-out) is reached";
	else if (px->received_bytes > cfg->max_bytes_in)
		c->cap_hit = "the run's cap on bytes received (max-bytes-in) is reached";
	else if (!from_client && c->max_response && c->bytes_out > c->max_response)
		c->cap_hit = "the response is over this host's max_response";
	else
		return true;
	return false;
}

void
start_relay(struct conn *c)
{
	struct timeval idle = {.tv_sec = c->px->cfg->idle_timeout_s};
	/* libevent reads 16 KiB per call by default: bulk transfers want fewer, larger calls. */
	bufferevent_set_max_single_read(c->upstream, RELAY_HIGH_WATER / 4);
	bufferevent_set_max_single_read(c->client, RELAY_HIGH_WATER / 4);
	bufferevent_set_max_single_write(c->upstream, RELAY_HIGH_WATER);
	bufferevent_set_max_single_write(c->client, RELAY_HIGH_WATER);
	bufferevent_setcb(c->upstream, relay_read, relay_write, relay_event, c);
	bufferevent_set_timeouts(c->upstream, &idle, &idle);
	bufferevent_set_timeouts(c->client, &idle, &idle);
	bufferevent_enable(c->upstream, EV_READ | EV_WRITE);
	if (c->state == ST_TUNNEL) {
		bufferevent_setcb(c->client, relay_read, relay_write, relay_event, c);
		/* Bytes the client sent right after its CONNECT head belong to the tunnel. */
		struct evbuffer *in = bufferevent_get_input(c->client);
		size_t n = evbuffer_get_length(in);
		if (n) {
			conn_count_bytes(c, n, true);
			evbuffer_add_buffer(bufferevent_get_output(c->upstream), in);
		}
		bufferevent_enable(c->client, EV_READ | EV_WRITE);
	} else {
		/* FORWARD: the body parsed so far went out with the head; the rest follows. */
		bufferevent_setcb(c->client, client_read, relay_write, relay_event, c);
		bufferevent_enable(c->client, c->req.message_done ? EV_WRITE : EV_READ | EV_WRITE);
		client_read(c->client, c);
	}
}

void
send_request_head(struct conn *c)
{
	struct request *r = &c->req;
	struct evbuffer *out = bufferevent_get_output(c->upstream);
	evbuffer_add_printf(out, "%s %s HTTP/1.1\r\n", r->method, r->path);
	/* Host is the URI's authority, whatever the client's Host header said: a different one
	 * could reach another virtual host on the same (allowed) server. */
	const char *open = r->kind == HOST_IPV6 ? "[" : "",
	           *close = r->kind == HOST_IPV6 ? "]" : "";
	if (r->port == (c->intercepted ? 443 : 80))
		evbuffer_add_printf(out, "Host: %s%s%s\r\n", open, r->host, close);
	else
		evbuffer_add_printf(out, "Host: %s%s%s:%u\r\n", open, r->host, close, r->port);
	/* A service's host gets its secret in place of the placeholder (services.h). */
	if (c->px->cfg->services)
		services_write_headers(c->px->cfg->services, c->swap ? c->svc : -1, r, out);
	else
		for (size_t i = 0; i < r->n_headers; i++)
			if (!request_hop_by_hop(request_header_name(r, i)))
				evbuffer_add_printf(out, "%s: %s\r\n", request_header_name(r, i),
				                    request_header_value(r, i));
	if (c->approved) { /* held: the whole body is in c->body, as the approver saw it */
		if (evbuffer_get_length(c->body))
			evbuffer_add_printf(out, "Content-Length: %zu\r\n",
			                    evbuffer_get_length(c->body));
	} else if (r->chunked)
		evbuffer_add_printf(out, "Transfer-Encoding: chunked\r\n");
	else if (r->parser.content_length != ULLONG_MAX && r->parser.content_length > 0)
		evbuffer_add_printf(out, "Content-Length: %llu\r\n",
		                    (unsigned long long)(r->body_bytes + r->parser.content_length));
	else if (r->body_bytes > 0)
		evbuffer_add_printf(out, "Content-Length: %llu\r\n",
		                    (unsigned long long)r->body_bytes);
	evbuffer_add_printf(out, "Connection: close\r\n\r\n");
	evbuffer_add_buffer(out, c->body);
}

static void
upstream_connected(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		if (c->req.is_connect) {
			c->state = ST_TUNNEL;
			if (tunnel_splice_start(c))
				return;
			if (!c->forwarded)
				evbuffer_add_printf(bufferevent_get_output(c->client),
				                    "HTTP/1.1 200 Connection established\r\n\r\n");
		} else {
			c->state = ST_FORWARD;
			send_request_head(c);
		}
		c->decision = "allow";
		start_relay(c);
		return;
	}
	conn_refuse(c, 502, "error", "cannot connect to %s: %s", c->address,
	            evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static void start_fetch(struct conn *c);

static void
connect_checked(struct conn *c)
{
	if (c->req.https) {
		start_fetch(c);
		return;
	}
	if (c->svc >= 0 && c->req.is_connect) {
		intercept_start(c); /* a service's host: HTTPS is opened, not tunnelled */
		return;
	}
	if (c->intercepted) {
		intercept_address_ready(c); /* a transparent one's address, checked */
		return;
	}
	c->state = ST_CONNECT;
	c->upstream = bufferevent_socket_new(c->px->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!c->upstream) {
		conn_refuse(c, 502, "error", "out of memory");
		return;
	}
	struct timeval t = {.tv_sec = c->px->cfg->head_timeout_s};
	bufferevent_set_timeouts(c->upstream, &t, &t);
	bufferevent_setcb(c->upstream, NULL, NULL, upstream_connected, c);
	/* The very address that was checked: no second lookup, no rebinding window. */
	if (bufferevent_socket_connect(c->upstream, (struct sockaddr *)&c->addr, (int)c->addr_len) <
	    0)
		conn_refuse(c, 502, "error", "cannot connect to %s", c->address);
}

/* The SSRF guard: every address must pass, or an --allow must name it exactly. */
static bool
address_allowed(struct conn *c, struct sockaddr *sa, char *text, size_t text_size)
{
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)sa)->sin_port = htons(c->req.port);
	else
		((struct sockaddr_in6 *)sa)->sin6_port = htons(c->req.port);
	const void *raw = sa->sa_family == AF_INET
	                      ? (const void *)&((struct sockaddr_in *)sa)->sin_addr
	                      : (const void *)&((struct sockaddr_in6 *)sa)->sin6_addr;
	inet_ntop(sa->sa_family, raw, text, (socklen_t)text_size);
	enum addr_class cls = addr_classify_for_host(sa);
	if (cls == ADDR_PUBLIC || allowlist_names_address(&c->px->cfg->allow, sa) ||
	    egress_names_address(&c->px->cfg->egress, sa))
		return true;
	conn_refuse(c, 403, "deny", "%s resolves to %s, a %s address", c->req.host, text,
	            addr_class_name(cls));
	return false;
}

static void
resolved(int err, struct evutil_addrinfo *res, void *arg)
{
	struct conn *c = arg;
	c->dns_req = NULL;
	if (err == EVUTIL_EAI_CANCEL)
		return; /* the connection is being freed */
	if (err || !res) {
		conn_refuse(c, 502, "error", "cannot resolve %s: %s", c->req.host,
		            evutil_gai_strerror(err));
		if (res)
			evutil_freeaddrinfo(res);
		return;
	}
	bool chosen = false;
	for (struct evutil_addrinfo *ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		char text[INET6_ADDRSTRLEN];
		if (!address_allowed(c, ai->ai_addr, text, sizeof(text))) {
			evutil_freeaddrinfo(res);
			return;
		}
		if (!chosen) {
			memcpy(&c->addr, ai->ai_addr, ai->ai_addrlen);
			c->addr_len = (socklen_t)ai->ai_addrlen;
			snprintf(c->address, sizeof(c->address), "%s", text);
			chosen = true;
		}
	}
	evutil_freeaddrinfo(res);
	if (!chosen) {
		conn_refuse(c, 502, "error", "%s has no usable address", c->req.host);
		return;
	}
	connect_checked(c);
}

/* ---- the credentialed upstream ---- */

static bool
xfer_data(void *ctx, const void *buf, size_t len)
{
	struct conn *c = ctx;
	struct evbuffer *out = bufferevent_get_output(c->client);
	if (evbuffer_get_length(out) >= RELAY_HIGH_WATER) {
		c->xfer_paused = true; /* resumed from upstream_client_drained */
		return false;
	}
	if (!conn_count_bytes(c, len, false)) {
		/* Over a cap: pause the transfer and end the connection from the event loop, not
		 * from inside libcurl's callback (upstream_client_event says why). */
		c->xfer_paused = true;
		bufferevent_trigger_event(c->client, BEV_EVENT_ERROR, BEV_TRIG_DEFER_CALLBACKS);
		return false;
	}
	meter_call_feed(c->mcall, buf, len);
	evbuffer_add(out, buf, len);
	return true;
}

static void
xfer_unreachable(void *ctx)
{
	struct conn *c = ctx;
	c->unreachable = true;
}

static void
xfer_done(void *ctx, bool ok, const char *why)
{
	struct conn *c = ctx;
	bool sent = c->bytes_out > 0;
	const char *what = c->fetching ? "https fetch" : "model upstream";
	c->xfer = NULL; /* upstream.c frees it */
	if (c->mcall) {
		meter_call_end(c->px->cfg->meter, c->mcall);
		c->mcall = NULL;
	}
	if (!ok && !sent) {
		conn_refuse(c, 502, "error", "%s: %s", what, why ? why : "failed");
		return;
	}
	c->decision = "allow";
	if (!ok)
		snprintf(c->reason, sizeof(c->reason), "%s: %s", what, why ? why : "failed");
	conn_close_after_flush(c);
}

static const struct upstream_callbacks xfer_callbacks = {
    .data = xfer_data,
    .done = xfer_done,
    .unreachable = xfer_unreachable,
};

static void
upstream_client_drained(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	(void)bev;
	if (c->xfer && c->xfer_paused) {
		c->xfer_paused = false;
		upstream_resume(c->xfer);
	}
}

static void
upstream_client_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	struct conn *c = arg;
	if (c->cap_hit) {
		c->decision = "deny";
		snprintf(c->reason, sizeof(c->reason), "%s", c->cap_hit);
	} else {
		snprintf(c->reason, sizeof(c->reason), "client went away during the model request");
	}
	conn_free(c);
}

/* Streams a libcurl transfer's response to the client, with the relay's limits. */
static void
follow_xfer(struct conn *c)
{
	struct timeval idle = {.tv_sec = c->px->cfg->idle_timeout_s};
	bufferevent_set_timeouts(c->client, NULL, &idle);
	bufferevent_setwatermark(c->client, EV_WRITE, RELAY_HIGH_WATER / 2, 0);
	bufferevent_setcb(c->client, NULL, upstream_client_drained, upstream_client_event, c);
	bufferevent_enable(c->client, EV_WRITE);
}

/* A model call the budget does not allow: 429 with the error in the shape both APIs use
 * ({"type": "error", "error": {"type", "message"}} is Anthropic's and carries OpenAI's
 * error.message), and x-should-retry: false, which the SDKs honour: a retry would find the
 * budget as spent. */
static void
refuse_budget(struct conn *c, const char *why)
{
	json_t *e = json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "type",
	                      "budget_exceeded", "message", why);
	char *body = e ? json_dumps(e, JSON_COMPACT) : NULL;
	json_decref(e);
	char hdr[sizeof(c->reason)];
	snprintf(hdr, sizeof(hdr), "%s", why);
	for (char *p = hdr; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	evbuffer_add_printf(bufferevent_get_output(c->client),
	                    "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
	                    "X-Clawbox-Refused: %s\r\nx-should-retry: false\r\n"
	                    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	                    hdr, body ? strlen(body) : 0, body ? body : "");
	free(body);
	c->decision = "deny";
	snprintf(c->reason, sizeof(c->reason), "%s", why);
	conn_close_after_flush(c);
}

/* The whole request is in: hand it to libcurl, which adds the key. */
static void
start_upstream(struct conn *c)
{
	size_t len = evbuffer_get_length(c->body);
	const void *body = len ? (const void *)evbuffer_pullup(c->body, -1) : "";
	char why[RULES_REASON_MAX];
	if (model_fence_body(&c->px->cfg->model_fence, &c->req, body, len, why, sizeof(why)) < 0) {
		conn_refuse(c, 403, "deny", "%s", why);
		return;
	}
	/* The budget's reservation (meter.h): refused here, the call never reaches the model. */
	_cleanup_free_ char *metered = NULL;
	struct meter *m = c->px->cfg->meter;
	if (m && meter_is_call(c->req.method, c->req.path)) {
		size_t mlen = 0;
		int r = meter_call_begin(m, c->req.path, body, len, &c->mcall, &metered, &mlen, why,
		                         sizeof(why));
		if (r == -EDQUOT) {
			refuse_budget(c, why);
			return;
		}
		if (r < 0) {
			conn_refuse(c, 502, "error", "model upstream: out of memory");
			return;
		}
		if (metered) {
			body = metered;
			len = mlen;
		}
	}
	c->state = ST_UPSTREAM;
	snprintf(c->address, sizeof(c->address), "%s", "model upstream");
	c->xfer = upstream_start(c->px->upstream, &c->req, body, len, &xfer_callbacks, c);
	if (!c->xfer) {
		conn_refuse(c, 502, "error", "model upstream: cannot start the request");
		return;
	}
	follow_xfer(c);
}

/* An allowed https:// GET or HEAD, its address checked: libcurl fetches it with TLS from that
 * address, for a client that has no TLS of its own. */
static void
start_fetch(struct conn *c)
{
	c->state = ST_UPSTREAM;
	c->fetching = true;
	/* To a service's host: its placeholder becomes the secret here too, over the TLS that
	 * libcurl verifies (the fetch is the only way a client without TLS reaches https). */
	char *headers = NULL;
	struct evbuffer *hb = c->swap ? evbuffer_new() : NULL;
	if (hb) {
		services_write_headers(c->px->cfg->services, c->svc, &c->req, hb);
		size_t n = evbuffer_get_length(hb);
		headers = malloc(n + 1);
		if (headers) {
			evbuffer_copyout(hb, headers, n);
			headers[n] = '\0';
		}
		explicit_bzero(evbuffer_pullup(hb, -1), n);
		evbuffer_free(hb);
		if (!headers) {
			conn_refuse(c, 502, "error", "out of memory");
			return;
		}
	}
	c->xfer = upstream_fetch(c->px->fetcher, &c->req, headers, c->address, &xfer_callbacks, c);
	if (headers) {
		explicit_bzero(headers, strlen(headers));
		free(headers);
	}
	if (!c->xfer) {
		conn_refuse(c, 502, "error", "https fetch: cannot start the request");
		return;
	}
	follow_xfer(c);
}

/* ---- deciding ---- */

bool
conn_egress_start(struct conn *c)
{
	struct meter *m = c->px->cfg->meter;
	if (!m || c->egress_metered)
		return true;
	/* From here its bytes are egress: the head read so far too. */
	c->egress_metered = true;
	if (meter_egress(m, c->bytes_in + c->bytes_out, c->cap_why, sizeof(c->cap_why)))
		return true;
	conn_refuse(c, 429, "deny", "%s", c->cap_why);
	return false;
}

static void decide_go(struct conn *c);

static void
decide(struct conn *c)
{
	struct request *r = &c->req;
	if (++c->px->n_requests > c->px->cfg->max_requests) {
		conn_refuse(c, 429, "deny", "the run's cap of %u requests (max-requests) is reached",
		            c->px->cfg->max_requests);
		return;
	}
	if (request_target(r) < 0) {
		conn_refuse(c, r->error_status, "deny", "%s", r->error);
		return;
	}
	/* Before anything is resolved or connected: secrets and placeholders bound elsewhere. */
	if (!conn_head_clean(c))
		return;
	if (r->kind == HOST_NAME && strcmp(r->host, UPSTREAM_NAME) == 0) {
		/* Our own name for the model API: the only way to it, and the only traffic that
		 * gets the key. Configured by the operator, so it needs no --allow entry. */
		if (!c->px->upstream) {
			conn_refuse(c, 502, "deny", "no model upstream is configured");
			return;
		}
		if (r->is_connect && r->port == 80) {
			/* A client whose proxy agent tunnels plain http (undici): the tunnel
			 * carries one plain request, read and judged like any other. */
			evbuffer_add_printf(bufferevent_get_output(c->client),
			                    "HTTP/1.1 200 Connection established\r\n\r\n");
			request_init(r, c->px->cfg->max_head_bytes, c->px->cfg->max_body_bytes);
			r->on_body = body_sink;
			r->body_ctx = c;
			r->origin_form = true;
			struct timeval t = {.tv_sec = c->px->cfg->head_timeout_s};
			bufferevent_set_timeouts(c->client, &t, NULL);
			return;
		}
		if (r->is_connect || r->port != 80) {
			conn_refuse(c, 400, "deny", "use http://%s/ (the proxy adds TLS)",
			            UPSTREAM_NAME);
			return;
		}
		char why[RULES_REASON_MAX];
		if (model_fence_head(&c->px->cfg->model_fence, r, why, sizeof(why)) < 0) {
			conn_refuse(c, 403, "deny", "%s", why);
			return;
		}
		c->body = evbuffer_new();
		if (!c->body) {
			conn_refuse(c, 502, "error", "out of memory");
			return;
		}
		if (request_expects_continue(r))
			evbuffer_add_printf(bufferevent_get_output(c->client),
			                    "HTTP/1.1 100 Continue\r\n\r\n");
		c->state = ST_UPSTREAM_BODY;
		if (c->req.message_done)
			start_upstream(c);
		return;
	}
	if (!conn_egress_start(c))
		return;
	if (r->https &&
	    ((strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) || r->chunked ||
	     (r->parser.content_length > 0 && r->parser.content_length != ULLONG_MAX))) {
		conn_refuse(c, 405, "deny",
		            "https:// URLs are fetched for GET and HEAD only; use "
		            "CONNECT for anything else");
		return;
	}
	/* The group's egress verdict (egress.h), before anything is resolved: ask holds the
	 * request here (a held name is never looked up); a CONNECT to a service's host is judged
	 * request by request inside (intercept_decide), so it carries no input of its own. */
	bool has_input = (r->is_connect && c->svc < 0) || strchr(r->path, '?') || r->chunked ||
	                 (r->parser.content_length > 0 && r->parser.content_length != ULLONG_MAX);
	bool allowed =
	    c->svc >= 0 || allowlist_match(&c->px->cfg->allow, r->host, r->kind, r->port);
	if (!egress_gate(c, allowed, has_input, decide_go))
		return;
	decide_go(c);
}

/* The request may go (by the allowlist, an egress rule or an approver): its entry's rules,
 * then the address. */
static void
decide_go(struct conn *c)
{
	struct request *r = &c->req;
	/* A service's hosts are allowed by being named in it. An allow entry for the same host
	 * still adds its rules (methods, paths, caps) to plain HTTP; a CONNECT to a service host
	 * is intercepted, and the request inside is judged (intercept_decide). The name is judged
	 * before anything else happens to it: a refused name is never looked up (a DNS query for
	 * SECRET.attacker.example would itself be the leak). */
	struct rule_verdict v = {0};
	bool in_allow = allowlist_match(&c->px->cfg->allow, r->host, r->kind, r->port);
	bool judged = in_allow ? c->svc < 0 || !r->is_connect : c->svc < 0 && !c->egress_ok;
	if (judged && rules_judge(&c->px->cfg->allow, r->method, r->host, r->kind, r->port,
	                          r->is_connect ? NULL : r->path, &v) < 0) {
		conn_refuse(c, 403, "deny", "%s", v.reason);
		return;
	}
	if (v.max_body && v.max_body < r->max_body) {
		if (r->parser.content_length != ULLONG_MAX && r->parser.content_length > v.max_body) {
			conn_refuse(c, 413, "deny", "the request body is over this host's max_body");
			return;
		}
		r->max_body = v.max_body;
	}
	c->max_response = v.max_response;
	/* The secret never crosses the network in clear text unless the service named the
	 * port (a local server): plain HTTP to api.github.com keeps its placeholder. */
	c->swap = c->svc >= 0 && !r->is_connect &&
	          (r->https ||
	           services_plain_ok(c->px->cfg->services, c->svc, r->host, r->kind, r->port));
	if (c->swap && services_rewrite_query(c->px->cfg->services, c->svc, r) < 0) {
		conn_refuse(c, 414, "deny", "URL too long with the secret in it");
		return;
	}
	/* The client may wait for leave to send its body: give it here, where the request is
	 * known to be allowed (an error can still follow it), rather than pass Expect on. */
	if (!r->is_connect && !c->continued && request_expects_continue(r))
		evbuffer_add_printf(bufferevent_get_output(c->client),
		                    "HTTP/1.1 100 Continue\r\n\r\n");
	if (!c->body)
		c->body = evbuffer_new();
	if (!c->body) {
		conn_refuse(c, 502, "error", "out of memory");
		return;
	}
	/* Address literals skip DNS but not the guard. */
	if (c->req.kind != HOST_NAME) {
		struct sockaddr_storage ss = {0};
		char text[INET6_ADDRSTRLEN];
		if (c->req.kind == HOST_IPV4) {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;
			in->sin_family = AF_INET;
			inet_pton(AF_INET, c->req.host, &in->sin_addr);
			c->addr_len = sizeof(*in);
		} else {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
			in6->sin6_family = AF_INET6;
			inet_pton(AF_INET6, c->req.host, &in6->sin6_addr);
			c->addr_len = sizeof(*in6);
		}
		if (!address_allowed(c, (struct sockaddr *)&ss, text, sizeof(text)))
			return;
		memcpy(&c->addr, &ss, c->addr_len);
		snprintf(c->address, sizeof(c->address), "%s", text);
		connect_checked(c);
		return;
	}
	c->state = ST_RESOLVE;
	conn_resolve(c);
}

void
conn_resolve(struct conn *c)
{
	struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	c->dns_req = evdns_getaddrinfo(c->px->dns, c->req.host, NULL, &hints, resolved, c);
}

/* Feeds what the client sent to the request parser: the head, then, while the request is
 * decided and connected, the rest of the message (a forwarded request's body goes to c->body,
 * bounded; a CONNECT message ends with its head). Nothing after the first message is parsed or
 * passed on: for CONNECT it is tunnel data, for anything else it is dropped. */
void
client_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (!c->req.message_done && evbuffer_get_length(in) > 0) {
		if (c->state == ST_TUNNEL || c->state == ST_CLOSING || c->state == ST_UPSTREAM)
			return;
		size_t avail = evbuffer_get_length(in);
		size_t take = avail > 65536 ? 65536 : avail, used = 0;
		const char *data = (const char *)evbuffer_pullup(in, (ev_ssize_t)take);
		enum request_status st = request_feed(&c->req, data, take, &used);
		evbuffer_drain(in, used);
		if (!conn_count_bytes(c, used, true)) {
			conn_refuse(c, 502, "deny", "%s", c->cap_hit);
			return;
		}
		if (st == REQ_ERROR) {
			conn_refuse(c, c->req.error_status, "deny", "%s", c->req.error);
			return;
		}
		if (st == REQ_HEAD) {
			bufferevent_set_timeouts(c->client, NULL, NULL);
			if (c->intercepted)
				intercept_decide(c);
			else
				decide(c);
		}
	}
	if (c->req.message_done)
		body_end(c);
	if (c->req.message_done && c->state == ST_UPSTREAM_BODY)
		start_upstream(c);
	if (c->req.message_done && c->state == ST_HELD)
		hold_body_done(c);
	if (c->req.message_done && c->state != ST_TUNNEL && c->state != ST_CLOSING &&
	    !c->req.is_connect) {
		evbuffer_drain(in, evbuffer_get_length(in));
		bufferevent_disable(bev, EV_READ);
	}
}

/* ---- relaying ---- */

static void
relay_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct bufferevent *peer = bev == c->client ? c->upstream : c->client;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = evbuffer_get_length(in);
	if (!conn_count_bytes(c, n, bev == c->client)) {
		snprintf(c->reason, sizeof(c->reason), "%s", c->cap_hit);
		c->decision = "deny";
		conn_free(c);
		return;
	}
	evbuffer_add_buffer(bufferevent_get_output(peer), in);
	if (evbuffer_get_length(bufferevent_get_output(peer)) >= RELAY_HIGH_WATER) {
		/* Backpressure: stop reading until the peer has drained (relay_write). */
		bufferevent_disable(bev, EV_READ);
		bufferevent_setwatermark(peer, EV_WRITE, RELAY_HIGH_WATER / 2, 0);
	}
}

static void
relay_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct bufferevent *peer = bev == c->client ? c->upstream : c->client;
	if (c->state == ST_CLOSING) {
		close_when_flushed(bev, c);
		return;
	}
	if (peer && !(c->state == ST_FORWARD && peer == c->client && c->req.message_done)) {
		bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
		bufferevent_enable(peer, EV_READ);
	}
}

static void
relay_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	if (what & BEV_EVENT_TIMEOUT) {
		snprintf(c->reason, sizeof(c->reason), "idle for %u s", c->px->cfg->idle_timeout_s);
		conn_free(c);
		return;
	}
	if (bev == c->upstream && (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) {
		/* The server is done: what it sent still goes to the client, then we close. */
		struct evbuffer *in = bufferevent_get_input(bev);
		if (evbuffer_get_length(in)) {
			conn_count_bytes(c, evbuffer_get_length(in), false);
			evbuffer_add_buffer(bufferevent_get_output(c->client), in);
		}
		conn_close_after_flush(c);
		return;
	}
	conn_free(c); /* the client went away */
}

/* ---- new connections from the sandbox ---- */

static void
head_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	(void)bev;
	if (what & BEV_EVENT_TIMEOUT) {
		conn_refuse(c, 400, "deny", "no complete request head within %u s",
		            c->px->cfg->head_timeout_s);
		return;
	}
	snprintf(c->reason, sizeof(c->reason), "client closed before a request");
	conn_free(c);
}

/* Where a connection from the sandbox was made to (its local address there): port 80 is for
 * clients without a proxy (http://model.clawbox.internal/ through its /etc/hosts), origin-form
 * requests (returns true); any other port of 127.0.0.1 or ::1 but the proxy's own is an
 * allowed host loopback destination init listens on for clients that ignore HTTP_PROXY (see
 * spec.h's forwards): ret gets "127.0.0.1:PORT" or "[::1]:PORT". The sandbox cannot pick the
 * address: init accepted the connection on a listener of its own. */
static bool
forwarded_destination(const struct sockaddr_storage *local, char *ret, size_t size)
{
	if (local->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)local;
		unsigned port = ntohs(in->sin_port);
		if (port == 80)
			return true;
		if (in->sin_addr.s_addr == htonl(INADDR_LOOPBACK) && port != PROXY_SANDBOX_PORT)
			snprintf(ret, size, "127.0.0.1:%u", port);
	} else if (local->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)local;
		if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			snprintf(ret, size, "[::1]:%u", ntohs(in6->sin6_port));
	}
	return false;
}

static void
conn_new(struct proxy *px, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->px = px;
	c->svc = -1;
	px->n_conns++;
	c->next = px->conns;
	if (c->next)
		c->next->prev = c;
	px->conns = c;
	clock_gettime(CLOCK_MONOTONIC, &c->start);
	evutil_make_socket_nonblocking(fd);
	c->client = bufferevent_socket_new(px->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->client) {
		close(fd);
		snprintf(c->reason, sizeof(c->reason), "out of memory");
		conn_free(c);
		return;
	}
	request_init(&c->req, px->cfg->max_head_bytes, px->cfg->max_body_bytes);
	c->req.on_body = body_sink;
	c->req.body_ctx = c;
	/* Which port of the sandbox's it was made to: 80 is for clients without a proxy
	 * (http://model.clawbox.internal/ through its /etc/hosts), origin-form requests. */
	struct sockaddr_storage local = {0};
	socklen_t local_len = sizeof(local);
	char forward[64] = "";
	if (getsockname(fd, (struct sockaddr *)&local, &local_len) == 0)
		c->req.origin_form = forwarded_destination(&local, forward, sizeof(forward));
	if (px->n_conns > px->cfg->max_connections) {
		conn_refuse(c, 503, "deny", "more than %u connections at once",
		            px->cfg->max_connections);
		return;
	}
	/* 443: HTTPS from a client that uses no proxy, to a service's name (services.h): the
	 * proxy is the TLS server, the SNI names the destination. */
	if (local.ss_family == AF_INET &&
	    ntohs(((const struct sockaddr_in *)&local)->sin_port) == 443) {
		intercept_transparent(c);
		return;
	}
	struct timeval t = {.tv_sec = px->cfg->head_timeout_s};
	bufferevent_set_timeouts(c->client, &t, NULL);
	bufferevent_setcb(c->client, client_read, NULL, head_event, c);
	bufferevent_enable(c->client, EV_READ);
	if (forward[0]) {
		/* The request is the address itself: judged as a CONNECT to it would be (the
		 * allowlist, its rules, the SSRF guard), its bytes tunnelled as they come. */
		c->forwarded = true;
		char head[96];
		int n = snprintf(head, sizeof(head), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n",
		                 forward, forward);
		size_t used = 0;
		if (request_feed(&c->req, head, (size_t)n, &used) != REQ_HEAD) {
			conn_refuse(c, 400, "deny", "%s", c->req.error ? c->req.error : "bad forward");
			return;
		}
		/* A CONNECT has no body: its message ends with its head. http-parser would say so
		 * only on the next byte fed, and that byte is the client's, the tunnel's first. */
		c->req.message_done = true;
		bufferevent_set_timeouts(c->client, NULL, NULL);
		decide(c);
	}
}

static void
sandbox_readable(evutil_socket_t fd, short what, void *arg)
{
	struct proxy *px = arg;
	(void)what;
	int fds[SEND_FDS_MAX];
	size_t n = 0;
	char tag;
	int r = recv_fds(fd, &tag, fds, SEND_FDS_MAX, &n);
	if (r == -EAGAIN || r == -EINTR)
		return;
	if (r < 0) {
		/* The sandbox is gone: finish what is open, then quit. */
		event_del(px->sandbox_ev);
		px->sandbox_gone = true;
		maybe_quit(px);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (tag == 'c')
			conn_new(px, fds[i]);
		else
			close(fds[i]);
	}
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopbreak(((struct proxy *)arg)->base);
}

/* The proxy parses what the sandbox sends; if that ever went wrong, it must not be root. */
static int
drop_privileges(unsigned id)
{
	if (setgroups(0, NULL) < 0 || setresgid(id, id, id) < 0 || setresuid(id, id, id) < 0)
		return NEG_ERRNO();
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return NEG_ERRNO();
	/* The uid change cleared the parent-death signal the launcher set: set it again. (If the
	 * launcher died in between, the sandbox socket's EOF ends us all the same.) */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
		return NEG_ERRNO();
	return 0;
}

int
proxy_run(const struct proxy_config *cfg)
{
	struct proxy px = {.cfg = cfg};
	int r = 0;

	signal(SIGPIPE, SIG_IGN);
	(void)addr_load_host_addresses();
	px.base = event_base_new();
	if (!px.base)
		return -ENOMEM;
	if (cfg->hosts_file) {
		/* Only this file: no name servers at all. */
		px.dns = evdns_base_new(px.base, 0);
		if (px.dns && evdns_base_load_hosts(px.dns, cfg->hosts_file) != 0)
			r = -ENOENT;
	} else {
		px.dns = evdns_base_new(px.base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
		if (px.dns)
			(void)evdns_base_load_hosts(px.dns, NULL);
	}
	if (!px.dns && r == 0)
		r = -ENOMEM;
	if (r == 0 && cfg->upstream && cfg->upstream->base_url) {
		px.upstream = upstream_new(px.base, cfg->upstream);
		if (!px.upstream)
			r = -ENOMEM;
	}
	if (r == 0) {
		px.fetch_cfg.ca_file = cfg->fetch_ca_file;
		px.fetcher = upstream_new(px.base, &px.fetch_cfg);
		if (!px.fetcher)
			r = -ENOMEM;
	}
	if (r == 0 && cfg->services && cfg->services->n > 0 && cfg->ca_dir) {
		const char *why = NULL;
		px.icpt = intercept_new(cfg->ca_dir, cfg->fetch_ca_file, &why);
		if (!px.icpt) {
			fprintf(stderr, "clawbox-proxy: the interception CA in %s: %s\n", cfg->ca_dir,
			        why ? why : "cannot load");
			r = -EINVAL;
		}
	}
	if (r == 0)
		r = hold_init(&px);
	if (r == 0 && cfg->drop_to_id)
		r = drop_privileges(cfg->drop_to_id);
	if (r == 0) {
		/* Everything opened by name at start is open: from here on the proxy reads only
		 * the trust store and resolver files, writes nothing, executes nothing. */
		const char *extra[3] = {0};
		size_t n = 0;
		if (cfg->fetch_ca_file)
			extra[n++] = cfg->fetch_ca_file;
		if (cfg->upstream && cfg->upstream->ca_file)
			extra[n++] = cfg->upstream->ca_file;
		r = proxy_confine(extra);
	}
	if (r == 0) {
		evutil_make_socket_nonblocking(cfg->sandbox_fd);
		px.sandbox_ev = event_new(px.base, cfg->sandbox_fd, EV_READ | EV_PERSIST,
		                          sandbox_readable, &px);
		px.sigterm_ev = evsignal_new(px.base, SIGTERM, on_signal, &px);
		px.sigint_ev = evsignal_new(px.base, SIGINT, on_signal, &px);
		if (!px.sandbox_ev || !px.sigterm_ev || !px.sigint_ev)
			r = -ENOMEM;
	}
	if (r == 0) {
		event_add(px.sandbox_ev, NULL);
		event_add(px.sigterm_ev, NULL);
		event_add(px.sigint_ev, NULL);
		if (event_base_dispatch(px.base) < 0)
			r = -EIO;
	}
	while (px.conns) {
		if (!px.conns->reason[0])
			snprintf(px.conns->reason, sizeof(px.conns->reason), "proxy stopped");
		px.sandbox_gone = false; /* no loopbreak from inside the teardown */
		conn_free(px.conns);
	}
	if (px.sandbox_ev)
		event_free(px.sandbox_ev);
	if (px.sigterm_ev)
		event_free(px.sigterm_ev);
	if (px.sigint_ev)
		event_free(px.sigint_ev);
	if (px.dns)
		evdns_base_free(px.dns, 0);
	upstream_free(px.upstream);
	upstream_free(px.fetcher);
	intercept_free(px.icpt);
	hold_done(&px);
	event_base_free(px.base);
	return r;
}
