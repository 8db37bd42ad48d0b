/*
 * ws.c: the WebSocket client of ws.h. Three layers, each a library's: libevent's OpenSSL
 * bufferevent carries TLS (the certificate is verified against the system store or the
 * channel's CA file, and its name against the URL's host), http-parser reads the 101 answer
 * to our upgrade request, and wslay's event API frames, masks, answers pings and runs the
 * close handshake. What is ours is the glue: the handshake's key and its check, the bounds
 * (one message <= WS_MSG_MAX, the send queue <= WS_OUT_MAX, the handshake <= 16 KiB and 30
 * s), our own pings when the line is quiet, and calling on_close exactly once.
 *
 * Callbacks may free the ws (a channel that reconnects drops the old one from on_text or
 * on_close): every entry from libevent holds a reference (depth) and the struct is released
 * when the outermost one returns.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

#include "macro.h"
#include "ws.h"

#define WS_HANDSHAKE_MAX (16u << 10)
#define WS_HANDSHAKE_S   30
#define WS_CLOSE_WAIT_S  5
#define WS_GUID          "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum ws_state { WS_CONNECTING, WS_UPGRADING, WS_OPEN, WS_CLOSING, WS_DONE };

struct ws {
	struct event_base *base;
	struct bufferevent *bev;
	SSL_CTX *ctx;
	wslay_event_context_ptr wsl;
	struct event *timer; /* handshake deadline, then our pings, then the close wait */
	struct event *later; /* a close decided outside the loop's callbacks */
	struct ws_callbacks cb;
	void *arg;
	enum ws_state state;
	int ping_every_s;
	bool heard;  /* something arrived since the last ping tick */
	bool pinged; /* a ping of ours is unanswered */
	int depth;   /* callbacks of ours on the stack */
	bool freed;  /* ws_free() was called inside one */
	int later_code;
	char later_why[128];
	/* the upgrade */
	char host[256];
	char port[8];
	char target[WS_URL_MAX];
	char accept[32]; /* the Sec-WebSocket-Accept we expect */
	http_parser hp;
	size_t hs_bytes;
	char hdr_name[32];
	bool hdr_in_value;
	int hdr_which; /* 1: Sec-WebSocket-Accept, 2: Upgrade */
	char got_accept[64];
	char got_upgrade[32];
	bool hs_done;
};

static struct evdns_base *ws_dns;
static struct event_base *ws_dns_base;

static void ws_destroy(struct ws *w);

static void
enter(struct ws *w)
{
	w->depth++;
}

/* false: w is gone, the caller returns at once. */
static bool
leave(struct ws *w)
{
	if (--w->depth == 0 && w->freed) {
		ws_destroy(w);
		return false;
	}
	return true;
}

static void
finish(struct ws *w, int code, const char *why)
{
	if (w->state == WS_DONE)
		return;
	w->state = WS_DONE;
	evtimer_del(w->timer);
	if (w->bev)
		bufferevent_disable(w->bev, EV_READ | EV_WRITE);
	if (w->cb.on_close)
		w->cb.on_close(w, code, why, w->arg);
}

static void
later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ws *w = arg;
	(void)fd;
	(void)what;
	enter(w);
	finish(w, w->later_code, w->later_why);
	leave(w);
}

static void
finish_later(struct ws *w, int code, const char *why)
{
	if (w->state == WS_DONE)
		return;
	w->later_code = code;
	snprintf(w->later_why, sizeof(w->later_why), "%s", why);
	if (w->bev)
		bufferevent_disable(w->bev, EV_READ | EV_WRITE);
	struct timeval now = {0, 0};
	evtimer_add(w->later, &now);
}

/* ---- wslay's side ---- */

static ssize_t
wsl_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *arg)
{
	struct ws *w = arg;
	(void)flags;
	int n = evbuffer_remove(bufferevent_get_input(w->bev), buf, len);
	if (n <= 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	return n;
}

static ssize_t
wsl_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *arg)
{
	struct ws *w = arg;
	(void)flags;
	struct evbuffer *out = bufferevent_get_output(w->bev);
	if (evbuffer_get_length(out) >= WS_OUT_MAX || evbuffer_add(out, data, len) < 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	return (ssize_t)len;
}

static int
wsl_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *arg)
{
	(void)arg;
	if (RAND_bytes(buf, (int)len) != 1) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return 0;
}

static void
wsl_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *m, void *arg)
{
	struct ws *w = arg;
	(void)ctx;
	w->heard = true;
	if (m->opcode == WSLAY_PONG)
		w->pinged = false;
	else if (m->opcode == WSLAY_TEXT_FRAME && w->state == WS_OPEN && w->cb.on_text)
		w->cb.on_text(w, (const char *)m->msg, m->msg_length, w->arg);
	/* Binary frames: neither service sends them with the JSON encoding we ask for. A close
	 * is answered by wslay itself; pump() sees the handshake end. */
}

/* Sends what wslay has queued; ends the connection once both directions are done. */
static void
pump(struct ws *w)
{
	if (w->state != WS_OPEN && w->state != WS_CLOSING)
		return;
	if (wslay_event_want_write(w->wsl) && wslay_event_send(w->wsl) < 0) {
		finish(w, 1006, "the connection failed while sending");
		return;
	}
	if (wslay_event_get_close_received(w->wsl) || wslay_event_get_close_sent(w->wsl)) {
		if (w->state == WS_OPEN) {
			w->state = WS_CLOSING;
			struct timeval t = {WS_CLOSE_WAIT_S, 0};
			evtimer_add(w->timer, &t);
		}
	}
	if (!wslay_event_want_read(w->wsl) && !wslay_event_want_write(w->wsl) &&
	    evbuffer_get_length(bufferevent_get_output(w->bev)) == 0) {
		int code = wslay_event_get_status_code_received(w->wsl);
		finish(w, code, code == 1000 ? "closed" : "closed by the peer");
	}
}

/* ---- the upgrade ---- */

static int
hp_field(http_parser *p, const char *at, size_t len)
{
	struct ws *w = p->data;
	if (w->hdr_in_value) {
		w->hdr_name[0] = '\0';
		w->hdr_in_value = false;
	}
	size_t have = strlen(w->hdr_name);
	if (have + len >= sizeof(w->hdr_name))
		len = sizeof(w->hdr_name) - 1 - have; /* a long name is none of ours */
	memcpy(w->hdr_name + have, at, len);
	w->hdr_name[have + len] = '\0';
	return 0;
}

static int
hp_value(http_parser *p, const char *at, size_t len)
{
	struct ws *w = p->data;
	if (!w->hdr_in_value) {
		w->hdr_in_value = true;
		w->hdr_which = strcasecmp(w->hdr_name, "Sec-WebSocket-Accept") == 0 ? 1
		               : strcasecmp(w->hdr_name, "Upgrade") == 0            ? 2
		                                                                    : 0;
	}
	char *dst = w->hdr_which == 1 ? w->got_accept : w->hdr_which == 2 ? w->got_upgrade : NULL;
	size_t cap = w->hdr_which == 1 ? sizeof(w->got_accept) : sizeof(w->got_upgrade);
	if (!dst)
		return 0;
	size_t have = strlen(dst);
	if (have + len >= cap)
		return 1; /* longer than any right answer */
	memcpy(dst + have, at, len);
	dst[have + len] = '\0';
	return 0;
}

static int
hp_headers_done(http_parser *p)
{
	struct ws *w = p->data;
	w->hs_done = true;
	return 1; /* no body */
}

static const http_parser_settings hp_settings = {
    .on_header_field = hp_field,
    .on_header_value = hp_value,
    .on_headers_complete = hp_headers_done,
};

static int
open_wslay(struct ws *w)
{
	static const struct wslay_event_callbacks cbs = {
	    .recv_callback = wsl_recv,
	    .send_callback = wsl_send,
	    .genmask_callback = wsl_genmask,
	    .on_msg_recv_callback = wsl_msg,
	};
	if (wslay_event_context_client_init(&w->wsl, &cbs, w) != 0)
		return -ENOMEM;
	wslay_event_config_set_max_recv_msg_length(w->wsl, WS_MSG_MAX);
	return 0;
}

/* Reads the answer to the upgrade; leaves what follows it in the input for wslay. */
static void
read_upgrade(struct ws *w)
{
	struct evbuffer *in = bufferevent_get_input(w->bev);
	char buf[4096];
	int n;
	while (!w->hs_done && (n = evbuffer_remove(in, buf, sizeof(buf))) > 0) {
		w->hs_bytes += (size_t)n;
		size_t used = http_parser_execute(&w->hp, &hp_settings, buf, (size_t)n);
		if (w->hs_done) {
			if ((size_t)n > used)
				evbuffer_prepend(in, buf + used, (size_t)n - used);
			break;
		}
		if (HTTP_PARSER_ERRNO(&w->hp) != HPE_OK || used != (size_t)n) {
			finish(w, 1006, "the service's answer to the upgrade is not HTTP");
			return;
		}
		if (w->hs_bytes > WS_HANDSHAKE_MAX) {
			finish(w, 1006, "the service's answer to the upgrade is too long");
			return;
		}
	}
	if (!w->hs_done)
		return;
	if (w->hp.status_code != 101) {
		char why[64];
		snprintf(why, sizeof(why), "the service refused the upgrade (HTTP %u)",
		         w->hp.status_code);
		finish(w, 1006, why);
		return;
	}
	/* RFC 6455 4.1: the answer must be ours (the key's digest), or it is no WebSocket. */
	if (!w->hp.upgrade || strcasecmp(w->got_upgrade, "websocket") != 0 ||
	    strcmp(w->got_accept, w->accept) != 0) {
		finish(w, 1006, "the service's upgrade answer does not check out");
		return;
	}
	if (open_wslay(w) < 0) {
		finish(w, 1006, "out of memory");
		return;
	}
	w->state = WS_OPEN;
	evtimer_del(w->timer);
	if (w->ping_every_s > 0) {
		struct timeval t = {w->ping_every_s, 0};
		evtimer_add(w->timer, &t);
	}
	if (w->cb.on_open)
		w->cb.on_open(w, w->arg);
	if (w->freed || w->state != WS_OPEN)
		return;
	if (evbuffer_get_length(in) > 0 && wslay_event_recv(w->wsl) < 0) {
		finish(w, 1006, "the connection failed while reading");
		return;
	}
	pump(w);
}

static int
send_upgrade(struct ws *w)
{
	unsigned char key[16], digest[SHA_DIGEST_LENGTH];
	char key64[32], both[64];
	if (RAND_bytes(key, sizeof(key)) != 1)
		return -EIO;
	EVP_EncodeBlock((unsigned char *)key64, key, sizeof(key));
	snprintf(both, sizeof(both), "%s%s", key64, WS_GUID);
	SHA1((const unsigned char *)both, strlen(both), digest);
	EVP_EncodeBlock((unsigned char *)w->accept, digest, sizeof(digest));
	bool default_port = strcmp(w->port, "443") == 0;
	return evbuffer_add_printf(bufferevent_get_output(w->bev),
	                           "GET %s HTTP/1.1\r\nHost: %s%s%s\r\nUpgrade: websocket\r\n"
	                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
	                           "Sec-WebSocket-Version: 13\r\nUser-Agent: clawbox\r\n\r\n",
	                           w->target, w->host, default_port ? "" : ":",
	                           default_port ? "" : w->port, key64) < 0
	           ? -ENOMEM
	           : 0;
}

/* ---- libevent's side ---- */

static void
on_read(struct bufferevent *bev, void *arg)
{
	struct ws *w = arg;
	(void)bev;
	enter(w);
	w->heard = true;
	if (w->state == WS_UPGRADING) {
		read_upgrade(w);
	} else if (w->state == WS_OPEN || w->state == WS_CLOSING) {
		if (wslay_event_recv(w->wsl) < 0)
			finish(w, 1006, "the connection failed while reading");
		else if (!w->freed)
			pump(w);
	}
	leave(w);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
	struct ws *w = arg;
	(void)bev;
	enter(w);
	pump(w); /* the output drained: more to send, or a finished close */
	leave(w);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct ws *w = arg;
	enter(w);
	if (what & BEV_EVENT_CONNECTED) {
		w->state = WS_UPGRADING;
		http_parser_init(&w->hp, HTTP_RESPONSE);
		w->hp.data = w;
		if (send_upgrade(w) < 0)
			finish(w, 1006, "cannot write the upgrade request");
	} else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		char why[160];
		unsigned long e = bufferevent_get_openssl_error(bev);
		if (e) {
			char s[120];
			ERR_error_string_n(e, s, sizeof(s));
			snprintf(why, sizeof(why), "TLS: %s", s);
		} else if (what & BEV_EVENT_ERROR) {
			int dns = bufferevent_socket_get_dns_error(bev);
			snprintf(why, sizeof(why), "%s",
			         dns ? evutil_gai_strerror(dns) : "the connection failed");
		} else {
			snprintf(why, sizeof(why), "the service dropped the connection");
		}
		int code = w->wsl && wslay_event_get_close_received(w->wsl)
		               ? wslay_event_get_status_code_received(w->wsl)
		               : 1006;
		finish(w, code, why);
	}
	leave(w);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct ws *w = arg;
	(void)fd;
	(void)what;
	enter(w);
	if (w->state == WS_CONNECTING || w->state == WS_UPGRADING) {
		finish(w, 1006, "no WebSocket after 30 s");
	} else if (w->state == WS_CLOSING) {
		finish(w, wslay_event_get_status_code_received(w->wsl), "closed (no answer)");
	} else if (w->state == WS_OPEN) {
		if (!w->heard && w->pinged) {
			finish(w, 1006, "no answer to a ping");
		} else {
			if (!w->heard) {
				struct wslay_event_msg m = {.opcode = WSLAY_PING};
				wslay_event_queue_msg(w->wsl, &m);
				w->pinged = true;
				pump(w);
			}
			w->heard = false;
			if (!w->freed && w->state == WS_OPEN) {
				struct timeval t = {w->ping_every_s, 0};
				evtimer_add(w->timer, &t);
			}
		}
	}
	leave(w);
}

/* ---- the API ---- */

static int
parse_url(struct ws *w, const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL;
	int r = -EINVAL;
	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    strcasecmp(scheme, "wss") != 0 ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
		port = NULL;
	(void)curl_url_get(u, CURLUPART_PATH, &path, 0);
	if (curl_url_get(u, CURLUPART_QUERY, &query, 0) != CURLUE_OK)
		query = NULL;
	/* An IPv6 literal comes back bracketed: the connect wants it bare. */
	size_t hl = strlen(host);
	const char *h = host;
	if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		h = host + 1;
	}
	if (strlen(h) >= sizeof(w->host) ||
	    (size_t)snprintf(w->target, sizeof(w->target), "%s%s%s", path && *path ? path : "/",
	                     query ? "?" : "", query ? query : "") >= sizeof(w->target))
		goto out;
	snprintf(w->host, sizeof(w->host), "%s", h);
	snprintf(w->port, sizeof(w->port), "%s", port ? port : "443");
	r = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(u);
	return r;
}

static int
tls_setup(struct ws *w, const char *ca_file, SSL **ret_ssl)
{
	w->ctx = SSL_CTX_new(TLS_client_method());
	if (!w->ctx)
		return -ENOMEM;
	SSL_CTX_set_min_proto_version(w->ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(w->ctx, SSL_VERIFY_PEER, NULL);
	if ((ca_file ? SSL_CTX_load_verify_file(w->ctx, ca_file)
	             : SSL_CTX_set_default_verify_paths(w->ctx)) != 1)
		return -ENOENT;
	SSL *ssl = SSL_new(w->ctx);
	if (!ssl)
		return -ENOMEM;
	/* The name checked is the URL's host: an address literal against the certificate's IP
	 * entries, a name against its DNS entries (and sent as SNI). */
	struct in6_addr a;
	bool literal =
	    inet_pton(AF_INET, w->host, &a) == 1 || inet_pton(AF_INET6, w->host, &a) == 1;
	if (literal
	        ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), w->host) != 1
	        : SSL_set_tlsext_host_name(ssl, w->host) != 1 || SSL_set1_host(ssl, w->host) != 1) {
		SSL_free(ssl);
		return -EINVAL;
	}
	*ret_ssl = ssl;
	return 0;
}

struct ws *
ws_connect(struct event_base *base, const char *url, const struct ws_options *o,
           const struct ws_callbacks *cb, void *arg, int *ret_err)
{
	struct ws *w = calloc(1, sizeof(*w));
	SSL *ssl = NULL;
	int r = -ENOMEM;
	if (!w)
		goto fail;
	w->base = base;
	w->cb = *cb;
	w->arg = arg;
	w->ping_every_s = o ? o->ping_every_s : 0;
	if (!url || strlen(url) >= WS_URL_MAX || (r = parse_url(w, url)) < 0)
		goto fail;
	if ((r = tls_setup(w, o ? o->ca_file : NULL, &ssl)) < 0)
		goto fail;
	r = -ENOMEM;
	if (ws_dns_base != base) {
		/* One resolver per loop, kept for the process's life (reconnects reuse it). */
		ws_dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
		ws_dns_base = ws_dns ? base : NULL;
	}
	w->timer = evtimer_new(base, on_timer, w);
	w->later = evtimer_new(base, later_cb, w);
	w->bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
	                                        BEV_OPT_CLOSE_ON_FREE);
	if (!w->timer || !w->later || !w->bev)
		goto fail;
	ssl = NULL; /* the bufferevent's now */
	bufferevent_openssl_set_allow_dirty_shutdown(w->bev, 1);
	bufferevent_setcb(w->bev, on_read, on_write, on_event, w);
	bufferevent_enable(w->bev, EV_READ | EV_WRITE);
	struct timeval t = {WS_HANDSHAKE_S, 0};
	evtimer_add(w->timer, &t);
	if (bufferevent_socket_connect_hostname(w->bev, ws_dns, AF_UNSPEC, w->host,
	                                        (int)strtol(w->port, NULL, 10)) < 0)
		finish_later(w, 1006, "cannot connect");
	return w;
fail:
	SSL_free(ssl);
	ws_destroy(w);
	*ret_err = r;
	return NULL;
}

int
ws_send_text(struct ws *w, const char *text, size_t len)
{
	if (!w || w->state != WS_OPEN)
		return -ENOTCONN;
	if (evbuffer_get_length(bufferevent_get_output(w->bev)) + len > WS_OUT_MAX)
		return -E2BIG;
	struct wslay_event_msg m = {
	    .opcode = WSLAY_TEXT_FRAME, .msg = (const uint8_t *)text, .msg_length = len};
	int r = wslay_event_queue_msg(w->wsl, &m);
	if (r == WSLAY_ERR_NO_MORE_MSG)
		return -ENOTCONN;
	if (r != 0)
		return -ENOMEM;
	enter(w);
	pump(w);
	leave(w); /* the caller holds w: depth was not 0 only inside a callback */
	return 0;
}

void
ws_close(struct ws *w, uint16_t code, const char *reason)
{
	if (!w || w->state == WS_DONE)
		return;
	if (w->state != WS_OPEN) {
		finish_later(w, code, reason ? reason : "closed");
		return;
	}
	size_t rl = reason ? strlen(reason) : 0;
	(void)wslay_event_queue_close(w->wsl, code, (const uint8_t *)reason, rl > 120 ? 120 : rl);
	enter(w);
	pump(w);
	leave(w);
}

void
ws_abort(struct ws *w, const char *why)
{
	if (w)
		finish_later(w, 1006, why);
}

static void
ws_destroy(struct ws *w)
{
	if (!w)
		return;
	if (w->bev)
		bufferevent_free(w->bev);
	if (w->wsl)
		wslay_event_context_free(w->wsl);
	if (w->timer)
		event_free(w->timer);
	if (w->later)
		event_free(w->later);
	SSL_CTX_free(w->ctx);
	free(w);
}

void
ws_free(struct ws *w)
{
	if (!w)
		return;
	w->cb.on_close = NULL;
	w->cb.on_text = NULL;
	w->cb.on_open = NULL;
	if (w->depth > 0) {
		w->freed = true;
		w->state = WS_DONE;
		evtimer_del(w->timer);
		evtimer_del(w->later);
		if (w->bev)
			bufferevent_disable(w->bev, EV_READ | EV_WRITE);
		return;
	}
	ws_destroy(w);
}
