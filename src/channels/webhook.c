/*
 * webhook.c: the webhook channel, `clawbox-channel webhook`, for automations (Home
 * Assistant, n8n, cron jobs elsewhere): an HTTP endpoint per configured hook, into the
 * hook's group, and a callback URL per hook for the replies.
 *
 * In: evhttp on the channel's own loop, listening on the configured address, which must be
 * a loopback one (to reach it from elsewhere, put a TLS reverse proxy in front: this
 * process does no TLS, and a webhook is a door). Bodies past "body_max" are refused by
 * evhttp (413) before we see them; the route, then the secret or the HMAC, then the body
 * are checked by webhook-req.c. An accepted message is answered only once the daemon has
 * stored it ("stored"): 202 means it is kept; no answer in WH_STORE_WAIT_S is a 503, which
 * a caller retries, and its "id" (if it gave one) makes the retry the same message.
 * Attachments come base64 in the body (webhook-req.h), each at most "file_max" bytes
 * (default WH_FILE_MAX_DEF; "body_max" must leave room for them), and go to the daemon as
 * memfds as every channel's do.
 *
 * Out: a reply for a hook is POSTed to its "callback" as JSON {"hook", "ref", "text",
 * "reply_to", "thread"}, signed like the inbound side (X-Hub-Signature-256 over the body,
 * the same secret) and with X-Clawbox-Delivery: the same value on every try of one reply,
 * so a receiver can drop a repeat. Tries: at once, then after 1, 2, 4, 8 and 16 s on
 * network errors, 429 and 5xx; another status fails at once. One delivery in flight, in
 * the daemon's order; at most WH_QUEUE_MAX waiting. A send_file reply carries the file in
 * the same JSON, "attachments": [{"name", "type", "data": BASE64}], if it is at most
 * file_max bytes (else it fails at once, not retried: it would not get smaller).
 *
 * One secret per channel (token_file or token_env, chanlib): hooks that must not share one
 * go in webhook channels of their own.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chan-http.h"
#include "chanlib.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "webhook-req.h"

#define WH_HOOKS_MAX    64
#define WH_BODY_MAX_DEF (64 * 1024)
#define WH_FILE_MAX_DEF (1u << 20)
/* The base64 length of n bytes. */
#define WH_B64_LEN(n)   (((size_t)(n) + 2) / 3 * 4)
#define WH_PENDING_MAX  64
#define WH_STORE_WAIT_S 10
#define WH_QUEUE_MAX    256
#define WH_TRIES        6
#define WH_EXT_ID_MAX   (WH_HOOK_ID_MAX + WH_KEY_MAX + 2)

/* A request waiting for the daemon's "stored". */
struct wh_pending {
	struct wh_pending *next;
	struct wh *w;
	struct evhttp_request *req; /* ours until answered (evhttp keeps it if the peer goes) */
	struct event *timer;
	char ext_id[WH_EXT_ID_MAX + 1];
};

struct wh_out {
	struct wh_out *next;
	int64_t ref;
	const struct wh_hook *hook;
	char *body; /* owned JSON */
	char sig[WH_SIG_SIZE];
	int tries;
};

struct wh {
	struct chan *c;
	char secret[512];
	size_t file_max;
	struct wh_hook hooks[WH_HOOKS_MAX];
	size_t n_hooks;
	struct evhttp *http;
	struct wh_pending *pending;
	size_t n_pending;
	struct wh_out *head, **tail;
	size_t queued;
	struct chan_http *out_req;
	struct event *out_timer;
};

static void out_next(struct wh *w);

/* ---- in ---- */

static void
answer(struct evhttp_request *req, int status, const char *reason, json_t *body)
{
	struct evbuffer *b = evbuffer_new();
	_cleanup_free_ char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (b && s) {
		evbuffer_add(b, s, strlen(s));
		evbuffer_add(b, "\n", 1);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
		                  "application/json");
	}
	evhttp_send_reply(req, status, reason, b);
	if (b)
		evbuffer_free(b);
}

static void
answer_error(struct evhttp_request *req, int status, const char *reason, const char *why)
{
	answer(req, status, reason, json_pack("{s:b,s:s}", "ok", 0, "error", why));
}

static void
pending_free(struct wh *w, struct wh_pending *p)
{
	for (struct wh_pending **pp = &w->pending; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	w->n_pending--;
	event_free(p->timer);
	free(p);
}

static void
on_store_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct wh_pending *p = arg;
	(void)fd;
	(void)what;
	answer_error(p->req, 503, "Service Unavailable",
	             "the daemon did not confirm the message in time; send it again (with the "
	             "same \"id\" it is stored once)");
	pending_free(p->w, p);
}

static void
wh_stored(struct chan *c, const char *ext_id)
{
	struct wh *w = chan_data(c);
	struct wh_pending *p = w->pending;
	while (p) {
		struct wh_pending *next = p->next;
		if (strcmp(p->ext_id, ext_id) == 0) {
			answer(p->req, 202, "Accepted",
			       json_pack("{s:b,s:s}", "ok", 1, "id", ext_id));
			pending_free(w, p);
		}
		p = next;
	}
}

static int
new_key(char *out, size_t size)
{
	unsigned char r[12];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return -EIO;
	static const char hex[] = "0123456789abcdef";
	if (size < 2 * sizeof(r) + 1)
		return -ENOBUFS;
	for (size_t i = 0; i < sizeof(r); i++) {
		out[2 * i] = hex[r[i] >> 4];
		out[2 * i + 1] = hex[r[i] & 15];
	}
	out[2 * sizeof(r)] = '\0';
	return 0;
}

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct wh *w = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	char peer[64] = "?";
	const char *addr = NULL;
	ev_uint16_t port = 0;
	evhttp_connection_get_peer(evhttp_request_get_connection(req), (char **)&addr, &port);
	if (addr)
		snprintf(peer, sizeof(peer), "%s", addr);
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
		answer_error(req, 405, "Method Not Allowed", "hooks take POST");
		return;
	}
	if (!path || (uri && evhttp_uri_get_query(uri))) {
		answer_error(req, 404, "Not Found", "not a hook: POST /hook/ID");
		return;
	}
	if (w->n_pending >= WH_PENDING_MAX) {
		answer_error(req, 503, "Service Unavailable", "too many requests waiting");
		return;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
	const char *sig = evhttp_find_header(evhttp_request_get_input_headers(req), WH_SIG_HEADER);
	struct wh_msg m;
	char why[256];
	int r = wh_parse(w->hooks, w->n_hooks, w->secret, path, sig, body, len, w->file_max, &m,
	                 why, sizeof(why));
	if (r < 0) {
		int status = r == WH_NOT_FOUND ? 404
		             : r == WH_DENIED  ? 401
		             : r == WH_BAD     ? 400
		                               : 500;
		/* The path may hold a secret (a wrong one): only the hook's part is logged. */
		char hook[WH_HOOK_ID_MAX + 1] = "";
		if (path && strncmp(path, "/hook/", 6) == 0)
			snprintf(hook, sizeof(hook), "%.*s", (int)strcspn(path + 6, "/"), path + 6);
		log_warn("a request from %s for hook \"%s\" refused (%d): %s", peer, hook, status,
		         why);
		answer_error(req, status,
		             status == 404   ? "Not Found"
		             : status == 401 ? "Unauthorized"
		             : status == 400 ? "Bad Request"
		                             : "Internal Server Error",
		             why);
		return;
	}
	if (!chan_chat_group(w->c, m.hook->id)) {
		/* A hook of the channel's config that no group's chats name: nowhere to go. */
		log_warn("a request for hook \"%s\", which no group is for, refused", m.hook->id);
		wh_msg_done(&m);
		answer_error(req, 404, "Not Found", "no group is for this hook");
		return;
	}
	struct wh_pending *p = calloc(1, sizeof(*p));
	char key[WH_KEY_MAX + 1];
	struct chan_attachment att[WH_FILES_MAX];
	size_t n_att = 0;
	if (!p || (!m.key[0] && new_key(key, sizeof(key)) < 0)) {
		free(p);
		wh_msg_done(&m);
		answer_error(req, 500, "Internal Server Error", "out of memory");
		return;
	}
	for (; n_att < m.n_files; n_att++) {
		const struct wh_file *f = &m.files[n_att];
		att[n_att] =
		    (struct chan_attachment){.name = f->name,
		                             .type = f->type[0] ? f->type : NULL,
		                             .fd = chanproto_memfd(f->name, f->data, f->len),
		                             .size = f->len};
		if (att[n_att].fd < 0)
			break;
	}
	if (n_att < m.n_files) {
		for (size_t i = 0; i < n_att; i++)
			close(att[i].fd);
		free(p);
		wh_msg_done(&m);
		answer_error(req, 500, "Internal Server Error",
		             "the attachments could not be kept");
		return;
	}
	/* The caller's id, under the hook's name: one hook cannot dedupe away another's. */
	snprintf(p->ext_id, sizeof(p->ext_id), "%s:%s", m.hook->id, m.key[0] ? m.key : key);
	struct chan_message msg = {
	    .chat = m.hook->id,
	    .chat_kind = "hook",
	    /* Who proved something is the hook (its secret); the name is the caller's word. */
	    .sender = m.hook->id,
	    .sender_name = m.sender,
	    .text = m.text,
	    .mention = true, /* a hook is addressed to the agent, there is no chatter */
	    .thread = m.thread[0] ? m.thread : NULL,
	    .ext_id = p->ext_id,
	    .attachments = n_att ? att : NULL,
	    .n_attachments = n_att,
	};
	r = chan_message(w->c, &msg);
	/* The frame has sent its own copies of the descriptors. */
	for (size_t i = 0; i < n_att; i++)
		close(att[i].fd);
	wh_msg_done(&m);
	if (r < 0) {
		free(p);
		answer_error(req, 503, "Service Unavailable", "the daemon is not taking messages");
		return;
	}
	p->w = w;
	p->req = req;
	p->timer = evtimer_new(chan_base(w->c), on_store_timeout, p);
	struct timeval tv = {.tv_sec = WH_STORE_WAIT_S};
	if (!p->timer || evtimer_add(p->timer, &tv) < 0) {
		if (p->timer)
			event_free(p->timer);
		free(p);
		answer_error(req, 500, "Internal Server Error", "out of memory");
		return;
	}
	p->next = w->pending;
	w->pending = p;
	w->n_pending++;
}

/* ---- out ---- */

static void
out_pop(struct wh *w)
{
	struct wh_out *o = w->head;
	w->head = o->next;
	if (!w->head)
		w->tail = &w->head;
	w->queued--;
	free(o->body);
	free(o);
}

static void
out_done(void *arg, long status, const char *body, size_t len, const char *err)
{
	struct wh *w = arg;
	(void)body;
	(void)len;
	w->out_req = NULL;
	struct wh_out *o = w->head;
	if (!err && status >= 200 && status < 300) {
		char ext[64];
		snprintf(ext, sizeof(ext), "callback.%lld", (long long)o->ref);
		chan_sent(w->c, o->ref, ext);
		out_pop(w);
		out_next(w);
		return;
	}
	char why[300];
	if (err)
		snprintf(why, sizeof(why), "callback of hook %s: %s", o->hook->id, err);
	else
		snprintf(why, sizeof(why), "callback of hook %s: HTTP %ld", o->hook->id, status);
	bool transient = err || status == 0 || status == 429 || status >= 500;
	if (transient && ++o->tries < WH_TRIES) {
		log_info("%s; trying again in %d s", why, 1 << (o->tries - 1));
		struct timeval tv = {.tv_sec = 1 << (o->tries - 1)};
		evtimer_add(w->out_timer, &tv);
		return;
	}
	log_warn("%s; given up after %d tries", why, o->tries + (transient ? 0 : 1));
	chan_failed(w->c, o->ref, why, false);
	out_pop(w);
	out_next(w);
}

static void
out_next(struct wh *w)
{
	if (w->out_req || !w->head || evtimer_pending(w->out_timer, NULL))
		return;
	struct wh_out *o = w->head;
	char sig[sizeof(WH_SIG_HEADER) + WH_SIG_SIZE + 4], delivery[128];
	snprintf(sig, sizeof(sig), "%s: %s", WH_SIG_HEADER, o->sig);
	snprintf(delivery, sizeof(delivery), "X-Clawbox-Delivery: %s.%lld", chan_name(w->c),
	         (long long)o->ref);
	const char *hdr[] = {sig, delivery, NULL};
	struct chan_http_req req = {.method = "POST",
	                            .url = o->hook->callback,
	                            .headers = hdr,
	                            .body = o->body,
	                            .body_len = strlen(o->body),
	                            .timeout_s = 30,
	                            .max_body = 64 * 1024};
	int r = chan_http_start(w->c, &req, out_done, w, &w->out_req);
	if (r < 0) {
		chan_failed(w->c, o->ref, strerror(-r), true);
		out_pop(w);
		out_next(w);
	}
}

static void
on_out_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	out_next(arg);
}

static const struct wh_hook *
hook_of(struct wh *w, const char *id)
{
	for (size_t i = 0; id && i < w->n_hooks; i++)
		if (strcmp(w->hooks[i].id, id) == 0)
			return &w->hooks[i];
	return NULL;
}

/* send_file's file as the callback's "attachments" (a new reference), or NULL with why. */
static json_t *
file_json(struct wh *w, const json_t *f, int fd, char *why, size_t why_size)
{
	const json_t *file = json_object_get(f, "file");
	const char *name = json_get_str(file, "name") ?: "file";
	const char *type = json_get_str(file, "type");
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size < 0) {
		snprintf(why, why_size, "the file to send could not be read");
		return NULL;
	}
	if ((uint64_t)st.st_size > w->file_max) {
		snprintf(why, why_size,
		         "the file (%lld bytes) is larger than this channel's "
		         "file_max (%zu bytes)",
		         (long long)st.st_size, w->file_max);
		return NULL;
	}
	size_t size = (size_t)st.st_size;
	_cleanup_free_ char *data = malloc(size ? size : 1);
	if (!data || pread(fd, data, size, 0) != (ssize_t)size) {
		snprintf(why, why_size, "the file to send could not be read");
		return NULL;
	}
	_cleanup_free_ char *b64 = wh_base64(data, size);
	json_t *a =
	    b64 ? json_pack("[{s:s,s:s?,s:s}]", "name", name, "type", type, "data", b64) : NULL;
	if (!a)
		snprintf(why, why_size, "out of memory");
	return a;
}

static void
wh_reply(struct chan *c, const json_t *f, int file_fd)
{
	struct wh *w = chan_data(c);
	int64_t ref = json_integer_value(json_object_get(f, "ref"));
	const struct wh_hook *h = hook_of(w, json_get_str(f, "chat"));
	if (!h || !h->callback) {
		chan_failed(c, ref, h ? "this hook has no callback URL" : "no such hook", false);
		return;
	}
	if (w->queued >= WH_QUEUE_MAX) {
		chan_failed(c, ref, "too many callbacks waiting", true);
		return;
	}
	json_t *reply_to = json_object_get(f, "reply_to"), *thread = json_object_get(f, "thread");
	_cleanup_json_ json_t *body =
	    json_pack("{s:s,s:I,s:s,s:O,s:O}", "hook", h->id, "ref", (json_int_t)ref, "text",
	              json_get_str(f, "text") ?: "", "reply_to", reply_to ? reply_to : json_null(),
	              "thread", thread ? thread : json_null());
	if (body && file_fd >= 0) {
		char why[200];
		json_t *a = file_json(w, f, file_fd, why, sizeof(why));
		if (!a) {
			chan_failed(c, ref, why, false);
			return;
		}
		json_object_set_new(body, "attachments", a);
	}
	struct wh_out *o = calloc(1, sizeof(*o));
	if (!o || !body || !(o->body = json_dumps(body, JSON_COMPACT))) {
		free(o);
		chan_failed(c, ref, "out of memory", true);
		return;
	}
	o->ref = ref;
	o->hook = h;
	wh_sign(w->secret, o->body, strlen(o->body), o->sig);
	*w->tail = o;
	w->tail = &o->next;
	w->queued++;
	out_next(w);
}

/* ---- life ---- */

static bool
is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

static int
config_hooks(struct wh *w, const json_t *config, char *why, size_t why_size)
{
	const json_t *hooks = json_object_get(config, "hooks");
	size_t i;
	json_t *h;
	if (!json_is_array(hooks) || json_array_size(hooks) == 0 ||
	    json_array_size(hooks) > WH_HOOKS_MAX) {
		snprintf(why, why_size, "\"hooks\" must be a list of 1 to %d hooks", WH_HOOKS_MAX);
		return -EINVAL;
	}
	json_array_foreach(hooks, i, h)
	{
		const char *id = json_get_str(h, "id");
		const char *auth = json_get_str(h, "auth") ?: "hmac";
		const char *cb = json_get_str(h, "callback");
		size_t n = id ? strlen(id) : 0;
		if (!n || n > WH_HOOK_ID_MAX ||
		    strspn(id, "abcdefghijklmnopqrstuvwxyz"
		               "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != n) {
			snprintf(why, why_size, "hook %zu: \"id\" must be 1 to %d of [A-Za-z0-9_-]",
			         i, WH_HOOK_ID_MAX);
			return -EINVAL;
		}
		if (hook_of(w, id)) {
			snprintf(why, why_size, "hook \"%s\" is listed twice", id);
			return -EINVAL;
		}
		if (strcmp(auth, "hmac") != 0 && strcmp(auth, "path") != 0) {
			snprintf(why, why_size, "hook \"%s\": \"auth\" is \"hmac\" or \"path\"",
			         id);
			return -EINVAL;
		}
		if (cb && strncmp(cb, "http://", 7) != 0 && strncmp(cb, "https://", 8) != 0) {
			snprintf(why, why_size, "hook \"%s\": \"callback\" must be an http(s) URL",
			         id);
			return -EINVAL;
		}
		struct wh_hook *k = &w->hooks[w->n_hooks];
		snprintf(k->id, sizeof(k->id), "%s", id);
		k->auth = strcmp(auth, "path") == 0 ? WH_AUTH_PATH : WH_AUTH_HMAC;
		if (cb && !(k->callback = strdup(cb)))
			return -ENOMEM;
		w->n_hooks++;
	}
	return 0;
}

static int
wh_start(struct chan *c, const json_t *config)
{
	struct wh *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	chan_set_data(c, w);
	w->c = c;
	w->tail = &w->head;
	char why[300];
	int r = config_hooks(w, config, why, sizeof(why));
	if (r < 0) {
		chan_status(c, "error", why);
		return r;
	}
	r = chan_secret(c, w->secret, sizeof(w->secret), why, sizeof(why));
	if (r < 0) {
		chan_status(c, "error", why);
		return r;
	}
	const char *listen = json_get_str(config, "listen");
	struct sockaddr_storage ss;
	int ss_len = sizeof(ss);
	if (!listen || evutil_parse_sockaddr_port(listen, (struct sockaddr *)&ss, &ss_len) < 0 ||
	    !is_loopback((struct sockaddr *)&ss)) {
		chan_status(
		    c, "error",
		    "\"listen\" must be a loopback address and port (127.0.0.1:PORT or "
		    "[::1]:PORT); put a TLS reverse proxy in front to reach it from elsewhere");
		return -EINVAL;
	}
	json_t *fmax = json_object_get(config, "file_max");
	w->file_max = json_is_integer(fmax) && json_integer_value(fmax) >= 0 &&
	                      (uint64_t)json_integer_value(fmax) <= CHANPROTO_FILE_MAX
	                  ? (size_t)json_integer_value(fmax)
	                  : WH_FILE_MAX_DEF;
	/* A body holds the text and up to WH_FILES_MAX files in base64, and no more. */
	json_t *bmax = json_object_get(config, "body_max");
	size_t body_max =
	    json_is_integer(bmax) && json_integer_value(bmax) > 0 &&
	            (uint64_t)json_integer_value(bmax) <=
	                CHANPROTO_TEXT_MAX + 4096 + WH_FILES_MAX * WH_B64_LEN(w->file_max)
	        ? (size_t)json_integer_value(bmax)
	        : WH_BODY_MAX_DEF;
	w->out_timer = evtimer_new(chan_base(c), on_out_timer, w);
	w->http = evhttp_new(chan_base(c));
	if (!w->out_timer || !w->http)
		return -ENOMEM;
	evhttp_set_max_body_size(w->http, body_max);
	evhttp_set_max_headers_size(w->http, 16 * 1024);
	evhttp_set_timeout(w->http, 30);
	evhttp_set_allowed_methods(w->http, EVHTTP_REQ_POST | EVHTTP_REQ_GET | EVHTTP_REQ_PUT |
	                                        EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
	evhttp_set_gencb(w->http, on_request, w);
	struct evconnlistener *l = evconnlistener_new_bind(
	    chan_base(c), NULL, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 64,
	    (struct sockaddr *)&ss, ss_len);
	if (!l || !evhttp_bind_listener(w->http, l)) {
		int e = errno;
		if (l)
			evconnlistener_free(l);
		snprintf(why, sizeof(why), "cannot listen on %s: %s", listen, strerror(e));
		chan_status(c, "error", why);
		return e ? -e : -EIO;
	}
	log_info("listening on %s for %zu hook%s", listen, w->n_hooks, w->n_hooks == 1 ? "" : "s");
	chan_status(c, "connected", listen);
	return 0;
}

static void
wh_stop(struct chan *c)
{
	struct wh *w = chan_data(c);
	if (!w)
		return;
	while (w->pending) {
		answer_error(w->pending->req, 503, "Service Unavailable",
		             "the channel is stopping");
		pending_free(w, w->pending);
	}
	chan_http_cancel(w->out_req);
	chan_http_shutdown();
	while (w->head)
		out_pop(w);
	if (w->http)
		evhttp_free(w->http);
	if (w->out_timer)
		event_free(w->out_timer);
	for (size_t i = 0; i < w->n_hooks; i++)
		free(w->hooks[i].callback);
	explicit_bzero(w->secret, sizeof(w->secret));
	free(w);
	chan_set_data(c, NULL);
}

const struct chan_kind chan_kind_webhook = {
    .name = "webhook",
    .start = wh_start,
    .reply = wh_reply,
    .stored = wh_stored,
    .stop = wh_stop,
};
