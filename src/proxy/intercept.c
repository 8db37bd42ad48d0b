/*
 * intercept.c: see intercept.h. Also the leak checks every request passes (plain HTTP,
 * intercepted HTTPS, the target of every CONNECT), since both need the same view of which
 * service a destination belongs to.
 *
 * The take-over: the proxy writes the tunnel's "200" itself (nothing else has been written to
 * the client yet, and a client sends its ClientHello only after reading it), then hands the
 * socket to an OpenSSL bufferevent as the server. From there the connection runs through the
 * same states as a plain forwarded request (proxy.c), with TLS bufferevents on both sides.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ca.h"
#include "conn.h"
#include "intercept.h"
#include "rules.h"
#include "services.h"

#define SYSTEM_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

#define SESSION_CACHE_MAX 64

struct intercept {
	struct ca *ca;
	SSL_CTX *server;     /* towards the sandbox */
	SSL_CTX *server_sni; /* the same, choosing the certificate by SNI (transparent) */
	SSL_CTX *client;     /* towards the real service, verifying it */
	/* The last TLS session of each service host:port, to resume: a full handshake with
	 * certificate verification costs more than half a millisecond, on every request (the
	 * proxy makes one connection per request). Only a session that was verified for that
	 * very name is resumed, and only with the server that holds its key. */
	struct {
		char key[HOST_MAX + 8];
		SSL_SESSION *sess;
	} sessions[SESSION_CACHE_MAX];
	size_t n_sessions, next_evict;
};

static int conn_index = -1; /* the SSL ex_data slot of an SSL's connection */

static void
session_key(const struct conn *c, char *buf, size_t size)
{
	snprintf(buf, size, "%s:%u", c->tunnel_host, c->tunnel_port);
}

/* OpenSSL's new-session callback (TLS 1.3 tickets arrive after the handshake). */
static int
session_new(SSL *ssl, SSL_SESSION *sess)
{
	struct conn *c = SSL_get_ex_data(ssl, conn_index);
	struct intercept *ic = c ? c->px->icpt : NULL;
	if (!ic)
		return 0;
	char key[HOST_MAX + 8];
	session_key(c, key, sizeof(key));
	size_t slot = ic->n_sessions;
	for (size_t i = 0; i < ic->n_sessions; i++)
		if (strcmp(ic->sessions[i].key, key) == 0)
			slot = i;
	if (slot == ic->n_sessions) {
		if (ic->n_sessions < SESSION_CACHE_MAX)
			ic->n_sessions++;
		else
			slot = ic->next_evict++ % SESSION_CACHE_MAX;
	}
	/* A copy: freeing the connection without a TLS shutdown (the server closes first)
	 * marks the connection's own session not resumable. */
	SSL_SESSION *copy = SSL_SESSION_dup(sess);
	if (!copy)
		return 0;
	SSL_SESSION_free(ic->sessions[slot].sess);
	snprintf(ic->sessions[slot].key, sizeof(ic->sessions[slot].key), "%s", key);
	ic->sessions[slot].sess = copy;
	return 0; /* the original stays OpenSSL's */
}

static SSL_SESSION *
session_find(struct intercept *ic, const struct conn *c)
{
	char key[HOST_MAX + 8];
	session_key(c, key, sizeof(key));
	for (size_t i = 0; i < ic->n_sessions; i++)
		if (strcmp(ic->sessions[i].key, key) == 0)
			return ic->sessions[i].sess;
	return NULL;
}

static int sni_chosen(SSL *ssl, int *alert, void *arg);

struct intercept *
intercept_new(const char *ca_dir, const char *ca_file, const char **why)
{
	struct intercept *ic = calloc(1, sizeof(*ic));
	if (!ic)
		return NULL;
	if (ca_load(ca_dir, &ic->ca, why) < 0) {
		free(ic);
		return NULL;
	}
	ic->server = SSL_CTX_new(TLS_server_method());
	ic->server_sni = SSL_CTX_new(TLS_server_method());
	ic->client = SSL_CTX_new(TLS_client_method());
	if (!ic->server || !ic->server_sni || !ic->client) {
		*why = "cannot make TLS contexts";
		intercept_free(ic);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ic->server, TLS1_2_VERSION);
	SSL_CTX_set_min_proto_version(ic->client, TLS1_2_VERSION);
	/* Every byte is decrypted and encrypted again here: AES-128-GCM first (about a third
	 * cheaper than AES-256 with AES-NI), the rest of OpenSSL's TLS 1.3 suites after it. */
	static const char suites[] =
	    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
	SSL_CTX_set_ciphersuites(ic->server, suites);
	SSL_CTX_set_min_proto_version(ic->server_sni, TLS1_2_VERSION);
	SSL_CTX_set_ciphersuites(ic->server_sni, suites);
	SSL_CTX_set_options(ic->server_sni, SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_tlsext_servername_callback(ic->server_sni, sni_chosen);
	SSL_CTX_set_ciphersuites(ic->client, suites);
	SSL_CTX_set_options(ic->server, SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* No ALPN: the client falls back to HTTP/1.1, which is what the request reader reads. */
	SSL_CTX_set_verify(ic->client, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_session_cache_mode(ic->client,
	                               SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ic->client, session_new);
	if (conn_index < 0)
		conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	/* Loaded now, whole, not looked up lazily: the proxy gives up file access later. */
	if (SSL_CTX_load_verify_file(ic->client, ca_file ? ca_file : SYSTEM_BUNDLE) != 1) {
		*why = "cannot load the CAs to verify services with";
		intercept_free(ic);
		return NULL;
	}
	return ic;
}

void
intercept_free(struct intercept *ic)
{
	if (!ic)
		return;
	for (size_t i = 0; i < ic->n_sessions; i++)
		SSL_SESSION_free(ic->sessions[i].sess);
	SSL_CTX_free(ic->server);
	SSL_CTX_free(ic->server_sni);
	SSL_CTX_free(ic->client);
	ca_free(ic->ca);
	free(ic);
}

/* ---- leak checks ---- */

static int
destination(struct conn *c)
{
	if (c->svc >= 0)
		return c->svc;
	if (c->req.kind == HOST_NAME && strcmp(c->req.host, UPSTREAM_NAME) == 0)
		return LEAK_OWNER_MODEL;
	return LEAK_OWNER_NONE;
}

static void
refuse_leak(struct conn *c, const struct leak_pattern *p, const char *where)
{
	/* The service's name and the form, never the value. */
	char what[48];
	if (strcmp(p->form, "placeholder") == 0)
		snprintf(what, sizeof(what), "the placeholder");
	else
		snprintf(what, sizeof(what), "the secret (%s)", p->form);
	conn_refuse(c, 403, "deny", "leak attempt: %s of %s %s in the %s to %s", what,
	            p->owner == LEAK_OWNER_MODEL ? "the" : "service", p->label, where,
	            c->req.host[0] ? c->req.host : "?");
}

bool
conn_head_clean(struct conn *c)
{
	const struct services *s = c->px->cfg->services;
	if (!s || s->leaks.n == 0)
		return true;
	if (!c->intercepted)
		c->svc = services_match(s, c->req.host, c->req.kind, c->req.port);
	const struct leak_pattern *hit = services_scan_head(s, destination(c), &c->req);
	if (hit) {
		refuse_leak(c, hit, "request head");
		return false;
	}
	return true;
}

bool
conn_body_clean(struct conn *c, const char *data, size_t len)
{
	const struct services *s = c->px->cfg->services;
	if (c->state == ST_CLOSING)
		return false;
	if (!s || s->leaks.n == 0)
		return true;
	const struct leak_pattern *hit = NULL;
	int r = leak_stream_feed(&c->leak, &s->leaks, destination(c), data, len, &hit);
	if (r < 0) {
		conn_refuse(c, 502, "error", "out of memory scanning the body");
		return false;
	}
	if (r > 0) {
		refuse_leak(c, hit, "body");
		return false;
	}
	return true;
}

/* ---- the sandbox's side ---- */

static void
tls_client_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		/* The handshake is done; the request follows. A transparent connection's
		 * destination is known only now (its SNI): look it up meanwhile. */
		if (c->transparent && !c->addr_ready && !c->dns_req)
			conn_resolve(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		conn_refuse(c, 400, "deny", "no complete request head within %u s",
		            c->px->cfg->head_timeout_s);
		return;
	}
	unsigned long e = bufferevent_get_openssl_error(c->client);
	if (c->reason[0]) { /* sni_chosen() said why */
		c->decision = "deny";
		conn_free(c);
		return;
	}
	snprintf(c->reason, sizeof(c->reason), "%s%s",
	         c->req.head_bytes == 0 ? "intercepted: the client ended the TLS session: "
	                                : "intercepted: the client went away: ",
	         e ? ERR_reason_error_string(e) : "closed");
	c->decision = "error";
	conn_free(c);
}

void
intercept_start(struct conn *c)
{
	struct proxy *px = c->px;
	struct intercept *ic = px->icpt;
	if (!ic) {
		conn_refuse(c, 502, "error", "service %s: no interception CA loaded",
		            px->cfg->services->v[c->svc].name);
		return;
	}
	X509 *cert = ca_cert_for(ic->ca, c->req.host, c->req.kind);
	SSL *ssl = cert ? SSL_new(ic->server) : NULL;
	if (!ssl || SSL_use_certificate(ssl, cert) != 1 ||
	    SSL_use_PrivateKey(ssl, ca_leaf_key(ic->ca)) != 1) {
		SSL_free(ssl);
		conn_refuse(c, 502, "error", "cannot make a certificate for %s", c->req.host);
		return;
	}
	/* The request reader stopped at the end of the CONNECT head: anything after it is the
	 * client not waiting for our answer, which no TLS client does. */
	int fd = bufferevent_getfd(c->client);
	/* http-parser ends a CONNECT message before its head's last line feed: that is no data. */
	struct evbuffer *in = bufferevent_get_input(c->client);
	while (evbuffer_get_length(in) > 0 && evbuffer_get_length(in) <= 2 &&
	       (*evbuffer_pullup(in, 1) == '\n' || *evbuffer_pullup(in, 1) == '\r'))
		evbuffer_drain(in, 1);
	if (evbuffer_get_length(in) != 0 ||
	    evbuffer_get_length(bufferevent_get_output(c->client)) != 0) {
		SSL_free(ssl);
		conn_refuse(c, 400, "deny", "data before the tunnel was established");
		return;
	}
	static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (dupfd < 0 || send(fd, ok, sizeof(ok) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(ok) - 1) {
		if (dupfd >= 0)
			close(dupfd);
		SSL_free(ssl);
		snprintf(c->reason, sizeof(c->reason), "client went away");
		conn_free(c);
		return;
	}
	bufferevent_free(c->client); /* closes fd; dupfd is the same socket */
	c->client = bufferevent_openssl_socket_new(px->base, dupfd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                           BEV_OPT_CLOSE_ON_FREE);
	if (!c->client) {
		close(dupfd);
		SSL_free(ssl);
		snprintf(c->reason, sizeof(c->reason), "out of memory");
		conn_free(c);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(c->client, 1);

	/* The tunnel's destination stays the destination: the request inside may name nothing
	 * else (its Host header is rewritten to it, as for plain HTTP). */
	snprintf(c->tunnel_host, sizeof(c->tunnel_host), "%s", c->req.host);
	c->tunnel_kind = c->req.kind;
	c->tunnel_port = c->req.port;
	c->intercepted = true;
	c->addr_ready = true; /* checked for the CONNECT */
	c->state = ST_HEAD;
	if (c->body) {
		evbuffer_free(c->body);
		c->body = NULL;
	}
	void (*sink)(void *, const char *, size_t) = c->req.on_body;
	request_init(&c->req, px->cfg->max_head_bytes, px->cfg->max_body_bytes);
	c->req.on_body = sink;
	c->req.body_ctx = c;
	struct timeval t = {.tv_sec = px->cfg->head_timeout_s};
	bufferevent_set_timeouts(c->client, &t, NULL);
	bufferevent_setcb(c->client, client_read, NULL, tls_client_event, c);
	bufferevent_enable(c->client, EV_READ);
}

/* ---- the service's side ---- */

static void
service_connected(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	if (what & BEV_EVENT_CONNECTED) {
		c->state = ST_FORWARD;
		send_request_head(c);
		c->decision = "allow";
		snprintf(c->reason, sizeof(c->reason), "intercepted for service %s",
		         c->px->cfg->services->v[c->svc].name);
		start_relay(c);
		return;
	}
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	if (v != X509_V_OK) {
		conn_refuse(c, 502, "error", "%s: its certificate is not trusted (%s)", c->address,
		            X509_verify_cert_error_string(v));
		return;
	}
	unsigned long e = bufferevent_get_openssl_error(bev);
	conn_refuse(c, 502, "error", "cannot connect to %s: %s", c->address,
	            e ? ERR_reason_error_string(e)
	              : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static void intercept_connect(struct conn *c);
static void intercept_go(struct conn *c);

void
intercept_decide(struct conn *c)
{
	struct request *r = &c->req;
	r->is_connect = r->parser.method == HTTP_CONNECT;
	snprintf(r->method, sizeof(r->method), "%s", http_method_str(r->parser.method));
	snprintf(r->host, sizeof(r->host), "%s", c->tunnel_host);
	r->kind = c->tunnel_kind;
	r->port = c->tunnel_port;
	const char *url = r->arena + r->url;
	if (r->is_connect || r->arena_used == 0 || url[0] != '/') {
		conn_refuse(c, 400, "deny", "intercepted: expected an origin-form request");
		return;
	}
	if (strlen(url) >= sizeof(r->path)) {
		conn_refuse(c, 414, "deny", "URL too long");
		return;
	}
	snprintf(r->path, sizeof(r->path), "%s", url);
	if (!conn_head_clean(c))
		return;
	if (!conn_egress_start(c)) /* a transparent one was never decided as a CONNECT */
		return;
	/* The egress verdict at request level: here the request is visible, so a tainted run's
	 * body or query to the service's host is judged as a plain one's would be. */
	bool has_input = strchr(r->path, '?') || r->chunked ||
	                 (r->parser.content_length > 0 && r->parser.content_length != ULLONG_MAX);
	if (!egress_gate(c, true, has_input, intercept_go))
		return;
	intercept_go(c);
}

/* The request may go: an allow entry's rules, the secret, then the connection. */
static void
intercept_go(struct conn *c)
{
	struct request *r = &c->req;
	struct proxy *px = c->px;
	/* An allow entry for the service's host judges the request inside as it would a plain
	 * one: methods, paths, caps (rules.h). Without one, the service's naming it suffices. */
	struct rule_verdict v = {0};
	if (allowlist_match(&px->cfg->allow, r->host, r->kind, r->port) &&
	    rules_judge(&px->cfg->allow, r->method, r->host, r->kind, r->port, r->path, &v) < 0) {
		conn_refuse(c, 403, "deny", "%s", v.reason);
		return;
	}
	if (v.max_body && v.max_body < r->max_body) {
		if (r->parser.content_length != ULLONG_MAX &&
		    r->parser.content_length > v.max_body) {
			conn_refuse(c, 413, "deny",
			            "the request body is over this host's max_body");
			return;
		}
		r->max_body = v.max_body;
	}
	c->max_response = v.max_response;
	c->swap = true; /* over TLS, verified */
	if (services_rewrite_query(px->cfg->services, c->svc, r) < 0) {
		conn_refuse(c, 414, "deny", "URL too long with the secret in it");
		return;
	}
	if (!c->continued && request_expects_continue(r))
		evbuffer_add_printf(bufferevent_get_output(c->client),
		                    "HTTP/1.1 100 Continue\r\n\r\n");
	if (!c->body)
		c->body = evbuffer_new();
	if (!c->body) {
		conn_refuse(c, 502, "error", "out of memory");
		return;
	}
	c->state = ST_CONNECT; /* the body waits in c->body */
	if (!c->addr_ready) {
		c->connect_pending = true; /* intercept_address_ready() goes on */
		return;
	}
	intercept_connect(c);
}

/* The request is judged and its destination's address checked: TLS to the real server. */
static void
intercept_connect(struct conn *c)
{
	struct request *r = &c->req;
	struct proxy *px = c->px;
	SSL *ssl = SSL_new(px->icpt->client);
	if (!ssl) {
		conn_refuse(c, 502, "error", "out of memory");
		return;
	}
	/* The real server must prove the name the sandbox asked for. */
	X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
	if (r->kind == HOST_NAME) {
		SSL_set_tlsext_host_name(ssl, r->host);
		X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		X509_VERIFY_PARAM_set1_host(param, r->host, 0);
	} else {
		X509_VERIFY_PARAM_set1_ip_asc(param, r->host);
	}
	SSL_set_ex_data(ssl, conn_index, c);
	c->state = ST_CONNECT;
	c->upstream = bufferevent_openssl_socket_new(px->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
	                                             BEV_OPT_CLOSE_ON_FREE);
	if (!c->upstream) {
		SSL_free(ssl);
		conn_refuse(c, 502, "error", "out of memory");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(c->upstream, 1);
	struct timeval t = {.tv_sec = px->cfg->head_timeout_s};
	bufferevent_set_timeouts(c->upstream, &t, &t);
	bufferevent_setcb(c->upstream, NULL, NULL, service_connected, c);
	/* The address the SSRF guard checked for the CONNECT: no second lookup. */
	if (bufferevent_socket_connect(c->upstream, (struct sockaddr *)&c->addr, (int)c->addr_len) <
	    0) {
		conn_refuse(c, 502, "error", "cannot connect to %s", c->address);
		return;
	}
	/* After the connect: libevent's SSL_clear() there would drop it. The handshake starts
	 * once the socket is connected, with this session offered. */
	SSL_SESSION *sess = session_find(px->icpt, c);
	if (sess)
		SSL_set_session(ssl, sess);
}

void
intercept_address_ready(struct conn *c)
{
	c->addr_ready = true;
	if (c->connect_pending) {
		c->connect_pending = false;
		intercept_connect(c);
	}
}

/* ---- transparent: HTTPS to a service's name, without a proxy ---- */

/* OpenSSL's servername callback: the ClientHello's SNI, parsed by OpenSSL, is the only
 * destination this connection may have, and it must be a service's host on port 443. */
static int
sni_chosen(SSL *ssl, int *alert, void *arg)
{
	(void)arg;
	struct conn *c = SSL_get_ex_data(ssl, conn_index);
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	const char *why = NULL;
	char host[HOST_MAX];
	enum host_kind kind;
	*alert = SSL_AD_UNRECOGNIZED_NAME;
	if (!c)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	if (!name || host_normalize(name, strlen(name), host, &kind, &why) < 0 ||
	    kind != HOST_NAME) {
		snprintf(c->reason, sizeof(c->reason),
		         "transparent TLS without a usable server name (SNI)");
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	snprintf(c->req.host, sizeof(c->req.host), "%s", host);
	c->req.kind = HOST_NAME;
	c->req.port = 443;
	c->svc = services_match(c->px->cfg->services, host, HOST_NAME, 443);
	if (c->svc < 0) {
		snprintf(c->reason, sizeof(c->reason),
		         "transparent TLS to %s, which is no service's host", host);
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	X509 *cert = ca_cert_for(c->px->icpt->ca, host, HOST_NAME);
	if (!cert || SSL_use_certificate(ssl, cert) != 1 ||
	    SSL_use_PrivateKey(ssl, ca_leaf_key(c->px->icpt->ca)) != 1) {
		*alert = SSL_AD_INTERNAL_ERROR;
		snprintf(c->reason, sizeof(c->reason), "cannot make a certificate for %s", host);
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	snprintf(c->tunnel_host, sizeof(c->tunnel_host), "%s", host);
	c->tunnel_kind = HOST_NAME;
	c->tunnel_port = 443;
	return SSL_TLSEXT_ERR_OK;
}

void
intercept_transparent(struct conn *c)
{
	struct proxy *px = c->px;
	if (!px->icpt) {
		snprintf(c->reason, sizeof(c->reason), "TLS without a CONNECT, and no service");
		c->decision = "deny";
		conn_free(c);
		return;
	}
	SSL *ssl = SSL_new(px->icpt->server_sni);
	if (!ssl) {
		snprintf(c->reason, sizeof(c->reason), "out of memory");
		conn_free(c);
		return;
	}
	SSL_set_ex_data(ssl, conn_index, c);
	/* TLS as a filter over the socket's bufferevent, which may have read the ClientHello
	 * already: the filter reads from its input first. */
	struct bufferevent *under = c->client;
	struct bufferevent *tls = bufferevent_openssl_filter_new(
	    px->base, under, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (!tls) {
		SSL_free(ssl);
		snprintf(c->reason, sizeof(c->reason), "out of memory");
		conn_free(c);
		return;
	}
	c->client = tls;
	bufferevent_openssl_set_allow_dirty_shutdown(c->client, 1);
	c->intercepted = true;
	c->transparent = true;
	c->state = ST_HEAD;
	void (*sink)(void *, const char *, size_t) = c->req.on_body;
	request_init(&c->req, px->cfg->max_head_bytes, px->cfg->max_body_bytes);
	c->req.on_body = sink;
	c->req.body_ctx = c;
	snprintf(c->req.host, sizeof(c->req.host), "%s", "");
	struct timeval t = {.tv_sec = px->cfg->head_timeout_s};
	bufferevent_set_timeouts(c->client, &t, NULL);
	bufferevent_setcb(c->client, client_read, NULL, tls_client_event, c);
	bufferevent_enable(c->client, EV_READ);
	/* What the socket already read waits in its input: let the filter take it now. */
	bufferevent_trigger(under, EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
}
