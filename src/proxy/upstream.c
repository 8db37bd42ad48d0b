/*
 * upstream.c: see upstream.h. libcurl's multi-socket interface on the proxy's libevent loop
 * (the pattern of curl's own hiper.c example): curl says which sockets to watch and when to
 * time out, libevent tells curl when they are ready.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd-util.h"
#include "macro.h"
#include "request.h"
#include "upstream.h"

struct upstream {
	struct event_base *base;
	const struct upstream_config *cfg;
	CURLM *multi;
	struct event *timer;
	int running;
};

struct upstream_xfer {
	struct upstream *up;
	CURL *easy;
	struct curl_slist *headers;
	struct curl_slist *resolve;
	char *body;
	const struct upstream_callbacks *cb;
	void *ctx;
	bool in_interim; /* inside a 1xx response's headers: not passed on */
	bool sent_any;
	char errbuf[CURL_ERROR_SIZE];
};

struct watched {
	struct event *ev;
};

/* ---- configuration ---- */

int
upstream_set_header(struct upstream_config *u, const char *spec)
{
	const char *colon = strchr(spec, ':');
	size_t name_len = colon ? (size_t)(colon - spec) : strlen(spec);
	if (name_len == 0 || name_len >= sizeof(u->header_name))
		return -EINVAL;
	for (size_t i = 0; i < name_len; i++) {
		char c = spec[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return -EINVAL;
	}
	memcpy(u->header_name, spec, name_len);
	u->header_name[name_len] = '\0';
	u->header_prefix[0] = '\0';
	if (colon) {
		const char *p = colon + 1;
		while (*p == ' ')
			p++;
		if (strlen(p) + 2 > sizeof(u->header_prefix) || strpbrk(p, "\r\n"))
			return -EINVAL;
		if (*p)
			snprintf(u->header_prefix, sizeof(u->header_prefix), "%s ", p);
	}
	return 0;
}

static int
take_key(struct upstream_config *u, const char *value, size_t len, const char **why)
{
	while (len > 0 &&
	       (value[len - 1] == '\n' || value[len - 1] == '\r' || value[len - 1] == ' '))
		len--;
	if (len == 0) {
		*why = "the key is empty";
		return -EINVAL;
	}
	if (len >= sizeof(u->key)) {
		*why = "the key is too long";
		return -E2BIG;
	}
	/* A line break in a header value would let the key's source inject headers. */
	for (size_t i = 0; i < len; i++)
		if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0') {
			*why = "the key contains a line break or NUL";
			return -EINVAL;
		}
	memcpy(u->key, value, len);
	u->key[len] = '\0';
	return 0;
}

int
upstream_load_key(struct upstream_config *u, const char *env, const char *file, const char **why)
{
	if (env) {
		const char *v = getenv(env);
		if (!v) {
			*why = "the key's environment variable is not set";
			return -ENOENT;
		}
		int r = take_key(u, v, strlen(v), why);
		unsetenv(env); /* nothing we start later inherits it */
		return r;
	}
	if (!file) {
		*why = "no key given";
		return -EINVAL;
	}
	_cleanup_close_ int fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		*why = "cannot open the key file";
		return NEG_ERRNO();
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & 077) || st.st_uid != geteuid()) {
		*why = "the key file must be a regular file of ours that only we can read (0600)";
		return -EPERM;
	}
	char buf[UPSTREAM_KEY_MAX];
	ssize_t n = read_full(fd, buf, sizeof(buf));
	if (n < 0) {
		*why = "cannot read the key file";
		return (int)n;
	}
	int r = take_key(u, buf, (size_t)n, why);
	memset(buf, 0, sizeof(buf));
	return r;
}

/* ---- curl on the event loop ---- */

static void
finish_done(struct upstream *up)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(up->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct upstream_xfer *x = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		CURLcode rc = msg->data.result;
		curl_multi_remove_handle(up->multi, x->easy);
		const char *why =
		    rc == CURLE_OK ? NULL : (x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
		char whybuf[CURL_ERROR_SIZE];
		snprintf(whybuf, sizeof(whybuf), "%s", why ? why : "");
		const struct upstream_callbacks *cb = x->cb;
		void *ctx = x->ctx;
		upstream_cancel(x); /* frees; the callback below may free the connection */
		if (cb->unreachable &&
		    (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST))
			cb->unreachable(ctx);
		cb->done(ctx, rc == CURLE_OK, why ? whybuf : NULL);
	}
}

static void
on_socket_event(evutil_socket_t fd, short kind, void *arg)
{
	struct upstream *up = arg;
	int action =
	    (kind & EV_READ ? CURL_CSELECT_IN : 0) | (kind & EV_WRITE ? CURL_CSELECT_OUT : 0);
	curl_multi_socket_action(up->multi, fd, action, &up->running);
	finish_done(up);
}

static void
on_timeout(evutil_socket_t fd, short kind, void *arg)
{
	struct upstream *up = arg;
	(void)fd;
	(void)kind;
	curl_multi_socket_action(up->multi, CURL_SOCKET_TIMEOUT, 0, &up->running);
	finish_done(up);
}

static int
socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct upstream *up = userp;
	struct watched *w = socketp;
	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (w) {
			event_free(w->ev);
			free(w);
			curl_multi_assign(up->multi, s, NULL);
		}
		return 0;
	}
	if (!w) {
		w = calloc(1, sizeof(*w));
		if (!w)
			return -1;
		curl_multi_assign(up->multi, s, w);
	} else {
		event_free(w->ev);
	}
	short kind = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
	             (what & CURL_POLL_OUT ? EV_WRITE : 0);
	w->ev = event_new(up->base, s, kind, on_socket_event, up);
	if (!w->ev)
		return -1;
	event_add(w->ev, NULL);
	return 0;
}

static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct upstream *up = userp;
	(void)multi;
	if (timeout_ms < 0) {
		evtimer_del(up->timer);
		return 0;
	}
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	evtimer_add(up->timer, &tv);
	return 0;
}

struct upstream *
upstream_new(struct event_base *base, const struct upstream_config *cfg)
{
	struct upstream *up = calloc(1, sizeof(*up));
	if (!up)
		return NULL;
	up->base = base;
	up->cfg = cfg;
	up->multi = curl_multi_init();
	up->timer = evtimer_new(base, on_timeout, up);
	if (!up->multi || !up->timer) {
		upstream_free(up);
		return NULL;
	}
	curl_multi_setopt(up->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(up->multi, CURLMOPT_SOCKETDATA, up);
	curl_multi_setopt(up->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(up->multi, CURLMOPT_TIMERDATA, up);
	return up;
}

void
upstream_free(struct upstream *up)
{
	if (!up)
		return;
	if (up->multi)
		curl_multi_cleanup(up->multi);
	if (up->timer)
		event_free(up->timer);
	free(up);
}

/* ---- one transfer ---- */

static bool
credential_header(const struct upstream_config *cfg, const char *name)
{
	static const char *const always[] = {"authorization", "x-api-key", "api-key",
	                                     "proxy-authorization"};
	if (strcasecmp(name, cfg->header_name) == 0)
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(always); i++)
		if (strcasecmp(name, always[i]) == 0)
			return true;
	return false;
}

/* Response headers: the status line and headers go to the client, re-framed for a body that
 * ends when the connection closes (curl has already undone any chunking). */
static size_t
header_cb(char *line, size_t size, size_t n, void *arg)
{
	struct upstream_xfer *x = arg;
	size_t len = size * n;
	if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		const char *sp = memchr(line, ' ', len);
		x->in_interim = sp && sp[1] == '1'; /* 1xx: not ours to pass on */
		if (x->in_interim)
			return len;
	} else if (x->in_interim) {
		if (len <= 2)
			x->in_interim = false;
		return len;
	}
	static const char *const dropped[] = {
	    "transfer-encoding:", "content-length:", "connection:", "keep-alive:"};
	for (size_t i = 0; i < ARRAY_SIZE(dropped); i++)
		if (len >= strlen(dropped[i]) &&
		    strncasecmp(line, dropped[i], strlen(dropped[i])) == 0)
			return len;
	if (len <= 2) { /* the blank line ending the headers */
		static const char tail[] = "Connection: close\r\n\r\n";
		x->sent_any = true;
		x->cb->data(x->ctx, tail, sizeof(tail) - 1);
		return len;
	}
	x->sent_any = true;
	x->cb->data(x->ctx, line, len);
	return len;
}

static size_t
write_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct upstream_xfer *x = arg;
	size_t len = size * n;
	if (!x->cb->data(x->ctx, buf, len))
		return CURL_WRITEFUNC_PAUSE; /* curl keeps it and offers it again after resume */
	x->sent_any = true;
	return len;
}

/* Appends each "NAME: VALUE" line of block (CRLF-separated) to *list but Expect. */
static bool
append_block(struct curl_slist **list, const char *block)
{
	while (*block) {
		const char *end = strstr(block, "\r\n");
		size_t len = end ? (size_t)(end - block) : strlen(block);
		char line[REQUEST_HEAD_MAX + 8];
		if (len >= sizeof(line))
			return false;
		memcpy(line, block, len);
		line[len] = '\0';
		block += len + (end ? 2 : 0);
		if (len == 0 || strncasecmp(line, "expect:", 7) == 0)
			continue;
		struct curl_slist *l = curl_slist_append(*list, line);
		explicit_bzero(line, len);
		if (!l)
			return false;
		*list = l;
	}
	return true;
}

/* One transfer: url, with the sandbox's headers (less framing, and less any credential when
 * key_header is set, which then replaces them), or with headers (a CRLF-separated block the
 * caller made: a service's, its placeholder swapped) instead; streamed back through cb.
 * resolve pins the address ("HOST:PORT:ADDRESS") or is NULL. */
static struct upstream_xfer *
xfer_begin(struct upstream *up, const struct request *req, const char *headers,
           const void *body, size_t body_len, const char *url, const char *key_header,
           const char *resolve, const char *protocols, const struct upstream_callbacks *cb,
           void *ctx)
{
	const struct upstream_config *cfg = up->cfg;
	struct upstream_xfer *x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->up = up;
	x->cb = cb;
	x->ctx = ctx;
	x->easy = curl_easy_init();
	x->body = malloc(body_len + 1);
	if (!x->easy || !x->body)
		goto fail;
	memcpy(x->body, body, body_len);

	if (headers && !append_block(&x->headers, headers))
		goto fail;
	/* The sandbox's headers but its framing and (to the model) any credential; then ours. */
	for (size_t i = 0; !headers && i < req->n_headers; i++) {
		const char *name = request_header_name(req, i);
		/* To the model, no Accept-Encoding: the answer comes back as it is, so that the
		 * meter reads its usage (meter.h); a compressed one would be charged blind. */
		if (request_hop_by_hop(name) || (key_header && credential_header(cfg, name)) ||
		    (key_header && strcasecmp(name, "accept-encoding") == 0) ||
		    strcasecmp(name, "expect") == 0)
			continue;
		char line[REQUEST_HEAD_MAX + 8];
		snprintf(line, sizeof(line), "%s: %s", name, request_header_value(req, i));
		struct curl_slist *l = curl_slist_append(x->headers, line);
		if (!l)
			goto fail;
		x->headers = l;
	}
	struct curl_slist *l;
	if (key_header) {
		l = curl_slist_append(x->headers, key_header);
		if (!l)
			goto fail;
		x->headers = l;
	}
	l = curl_slist_append(x->headers, "Expect:"); /* no 100-continue round trip */
	if (!l)
		goto fail;
	x->headers = l;
	if (resolve) {
		x->resolve = curl_slist_append(NULL, resolve);
		if (!x->resolve)
			goto fail;
	}

	CURL *e = x->easy;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROXY, "");          /* never the environment's proxies */
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L); /* each hop is the client's, and checked */
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, protocols);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 300L);
	if (x->resolve)
		curl_easy_setopt(e, CURLOPT_RESOLVE, x->resolve);
	if (cfg->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, cfg->ca_file);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	if (strcmp(req->method, "GET") == 0 && body_len == 0) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(req->method, "HEAD") == 0) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	}
	if (curl_multi_add_handle(up->multi, e) != CURLM_OK)
		goto fail;
	return x;
fail:
	upstream_cancel(x);
	return NULL;
}

struct upstream_xfer *
upstream_start(struct upstream *up, const struct request *req, const void *body, size_t body_len,
               const struct upstream_callbacks *cb, void *ctx)
{
	const struct upstream_config *cfg = up->cfg;
	char url[REQUEST_PATH_MAX + 1024];
	size_t base_len = strlen(cfg->base_url);
	while (base_len > 0 && cfg->base_url[base_len - 1] == '/')
		base_len--;
	if ((size_t)snprintf(url, sizeof(url), "%.*s%s", (int)base_len, cfg->base_url, req->path) >=
	    sizeof(url))
		return NULL;
	char auth[sizeof(cfg->header_name) + sizeof(cfg->header_prefix) + UPSTREAM_KEY_MAX + 4];
	/* A local server configured without a key gets none, but still no credential of the
	 * sandbox's: the empty value below is filtered out by libcurl ("Name:" removes it). */
	if (cfg->key[0])
		snprintf(auth, sizeof(auth), "%s: %s%s", cfg->header_name, cfg->header_prefix,
		         cfg->key);
	else
		snprintf(auth, sizeof(auth), "%s:", cfg->header_name);
	struct upstream_xfer *x =
	    xfer_begin(up, req, NULL, body, body_len, url, auth, NULL, "http,https", cb, ctx);
	memset(auth, 0, sizeof(auth));
	return x;
}

struct upstream_xfer *
upstream_fetch(struct upstream *up, const struct request *req, const char *headers,
               const char *address, const struct upstream_callbacks *cb, void *ctx)
{
	char url[REQUEST_PATH_MAX + 1024], resolve[HOST_MAX + INET6_ADDRSTRLEN + 16];
	bool v6 = strchr(address, ':') != NULL;
	if ((size_t)snprintf(url, sizeof(url), "https://%s:%u%s", req->host, req->port,
	                     req->path) >= sizeof(url))
		return NULL;
	/* The host as the URL names it (for SNI and the certificate check), the address the
	 * guard checked for the connection. An address literal needs no pin. */
	const char *pin = NULL;
	if (req->kind == HOST_NAME) {
		snprintf(resolve, sizeof(resolve), "%s:%u:%s%s%s", req->host, req->port,
		         v6 ? "[" : "", address, v6 ? "]" : "");
		pin = resolve;
	}
	return xfer_begin(up, req, headers, "", 0, url, NULL, pin, "https", cb, ctx);
}

void
upstream_resume(struct upstream_xfer *x)
{
	if (x)
		curl_easy_pause(x->easy, CURLPAUSE_CONT);
}

void
upstream_cancel(struct upstream_xfer *x)
{
	if (!x)
		return;
	if (x->easy) {
		curl_multi_remove_handle(x->up->multi, x->easy);
		curl_easy_cleanup(x->easy);
	}
	curl_slist_free_all(x->headers); /* held the key; so does this process, for its life */
	curl_slist_free_all(x->resolve);
	free(x->body);
	free(x);
}
