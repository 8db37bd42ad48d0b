/*
 * telegram.c: the Telegram channel. Bot API long polling (getUpdates) and sendMessage over
 * libcurl's multi interface on the daemon's one event loop (the pattern of curl's hiper.c,
 * as in the proxy). The base URL is configuration, so tests point it at a fake server.
 *
 * In: a message from a configured chat becomes its group's message; in a group chat only if
 * it carries the group's trigger; a message from any other chat is ignored and recorded. The
 * update offset is committed with the message, so a restart neither loses nor repeats one.
 * Out: every outgoing message of a group with a chat goes to that chat, in order, one at a
 * time; what was delivered is recorded, so a restart resumes after it. (A crash between
 * Telegram's answer and that record can send one message twice: the one case left.)
 *
 * Progress (issue 12): a run that is still going TG_PROGRESS_AFTER_S after its first text
 * shows that text (what the agent says between tool calls) in one message of its own, sent
 * then and edited (editMessageText) at most every TG_PROGRESS_EVERY_S as more comes; the
 * reply itself is sent as usual, and once it is, that run's progress is not touched again.
 * Short runs send nothing extra. "/stop" from a group's chat stops its run (longrun.c).
 *
 * The bot token is read from the environment and only ever put into request URLs.
 */

/* libcurl is loaded only when the channel is on (dlopen below): its dependency tree (TLS,
 * Kerberos, LDAP, ...) is ~4.5 MB of resident library pages the daemon otherwise does without. */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <strings.h>

#include "daemon.h"
#include "dbuf.h"
#include "json-util.h"
#include "log.h"

static struct {
	CURLcode (*global_init)(long);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
	CURLMcode (*multi_add_handle)(CURLM *, CURL *);
	CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
	CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
	CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
	CURLMsg *(*multi_info_read)(CURLM *, int *);
	CURLMcode (*multi_cleanup)(CURLM *);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	void (*easy_reset)(CURL *);
	void (*easy_cleanup)(CURL *);
	const char *(*easy_strerror)(CURLcode);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
} cu;

/* curl.h defines some of these as macros of themselves. */
#undef curl_multi_setopt
#undef curl_easy_setopt
#undef curl_easy_getinfo
#define curl_global_init         cu.global_init
#define curl_multi_init          cu.multi_init
#define curl_multi_setopt        cu.multi_setopt
#define curl_multi_add_handle    cu.multi_add_handle
#define curl_multi_remove_handle cu.multi_remove_handle
#define curl_multi_socket_action cu.multi_socket_action
#define curl_multi_assign        cu.multi_assign
#define curl_multi_info_read     cu.multi_info_read
#define curl_multi_cleanup       cu.multi_cleanup
#define curl_easy_init           cu.easy_init
#define curl_easy_setopt         cu.easy_setopt
#define curl_easy_getinfo        cu.easy_getinfo
#define curl_easy_reset          cu.easy_reset
#define curl_easy_cleanup        cu.easy_cleanup
#define curl_easy_strerror       cu.easy_strerror
#define curl_slist_append        cu.slist_append
#define curl_slist_free_all      cu.slist_free_all

static int
load_curl(void)
{
	void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return -ENOENT;
	static const struct {
		const char *name;
		size_t off;
	} syms[] = {
#define SYM(field, name) {name, offsetof(__typeof__(cu), field)}
	    SYM(global_init, "curl_global_init"),
	    SYM(multi_init, "curl_multi_init"),
	    SYM(multi_setopt, "curl_multi_setopt"),
	    SYM(multi_add_handle, "curl_multi_add_handle"),
	    SYM(multi_remove_handle, "curl_multi_remove_handle"),
	    SYM(multi_socket_action, "curl_multi_socket_action"),
	    SYM(multi_assign, "curl_multi_assign"),
	    SYM(multi_info_read, "curl_multi_info_read"),
	    SYM(multi_cleanup, "curl_multi_cleanup"),
	    SYM(easy_init, "curl_easy_init"),
	    SYM(easy_setopt, "curl_easy_setopt"),
	    SYM(easy_getinfo, "curl_easy_getinfo"),
	    SYM(easy_reset, "curl_easy_reset"),
	    SYM(easy_cleanup, "curl_easy_cleanup"),
	    SYM(easy_strerror, "curl_easy_strerror"),
	    SYM(slist_append, "curl_slist_append"),
	    SYM(slist_free_all, "curl_slist_free_all"),
#undef SYM
	};
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		void *f = dlsym(h, syms[i].name);
		if (!f)
			return -ENOENT;
		memcpy((char *)&cu + syms[i].off, &f, sizeof(f));
	}
	return 0;
}

#define TG_POLL_TIMEOUT_S 25
#define TG_BODY_MAX       (4u << 20)
#define TG_TEXT_MAX       4000 /* Telegram's limit is 4096 characters */

struct tg_xfer {
	CURL *easy;
	struct dbuf body;
	struct curl_slist *headers;
	char *post;
	void (*done)(struct tg_xfer *x, int http, const char *err);
	bool busy;
};

static struct {
	struct daemon *d;
	CURLM *multi;
	struct event *timer; /* curl's */
	struct event *tick;  /* the outbox and retries */
	char token[256];
	long long offset;
	int64_t delivered;
	int64_t sending;
	struct tg_xfer poll, send;
	int poll_failures;
	time_t poll_after;
	/* Progress of each group's run in progress: by index in cfg.groups. */
	struct tg_progress {
		int64_t reply_to;    /* the message the run answers; 0: none */
		int64_t over;        /* the run whose reply (or another message) went out */
		struct dbuf text;    /* what the run said so far (capped) */
		time_t first, sent;  /* its first text; the last send or edit */
		bool dirty;          /* text not yet sent */
		long long tg_msg_id; /* the progress message in the chat, once sent */
	} progress[CONFIG_MAX_GROUPS];
	struct tg_xfer edit;
	int editing;         /* the progress slot tg.edit is for */
	int64_t editing_for; /* and the run then in it */
} tg;

#define TG_PROGRESS_AFTER_S 3
#define TG_PROGRESS_EVERY_S 3

/* ---- curl on libevent ---- */

struct watched {
	struct event *ev;
};

static void
check_done(void)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(tg.multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct tg_xfer *x;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		long http = 0;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &http);
		CURLcode rc = msg->data.result;
		curl_multi_remove_handle(tg.multi, x->easy);
		x->busy = false;
		x->done(x, (int)http, rc == CURLE_OK ? NULL : curl_easy_strerror(rc));
	}
}

static void
on_socket(evutil_socket_t fd, short kind, void *arg)
{
	(void)arg;
	int running;
	int action =
	    (kind & EV_READ ? CURL_CSELECT_IN : 0) | (kind & EV_WRITE ? CURL_CSELECT_OUT : 0);
	curl_multi_socket_action(tg.multi, fd, action, &running);
	check_done();
}

static void
on_timeout(evutil_socket_t fd, short kind, void *arg)
{
	(void)fd;
	(void)kind;
	(void)arg;
	int running;
	curl_multi_socket_action(tg.multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done();
}

static int
socket_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct watched *w = socketp;
	(void)e;
	(void)userp;
	if (what == CURL_POLL_REMOVE) {
		if (w) {
			event_free(w->ev);
			free(w);
			curl_multi_assign(tg.multi, s, NULL);
		}
		return 0;
	}
	if (!w) {
		w = calloc(1, sizeof(*w));
		if (!w)
			return -1;
		curl_multi_assign(tg.multi, s, w);
	} else {
		event_free(w->ev);
	}
	short kind = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
	             (what & CURL_POLL_OUT ? EV_WRITE : 0);
	w->ev = event_new(tg.d->base, s, kind, on_socket, NULL);
	return w->ev && event_add(w->ev, NULL) == 0 ? 0 : -1;
}

static int
timer_cb(CURLM *m, long ms, void *userp)
{
	(void)m;
	(void)userp;
	if (ms < 0) {
		evtimer_del(tg.timer);
		return 0;
	}
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	evtimer_add(tg.timer, &tv);
	return 0;
}

static size_t
write_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct tg_xfer *x = arg;
	return dbuf_append(&x->body, buf, size * n) < 0 ? 0 : size * n; /* 0 aborts: too large */
}

static int
xfer_start(struct tg_xfer *x, const char *method, const char *json_body, long timeout_s)
{
	char url[1024];
	snprintf(url, sizeof(url), "%s/bot%s/%s", tg.d->cfg.telegram.base_url, tg.token, method);
	dbuf_reset(&x->body);
	free(x->post);
	x->post = json_body ? strdup(json_body) : NULL;
	curl_easy_reset(x->easy);
	curl_easy_setopt(x->easy, CURLOPT_URL, url);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->easy, CURLOPT_PROXY, "");
	curl_easy_setopt(x->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(x->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT, 15L);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
	if (x->post) {
		curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
		curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->post);
	}
	if (curl_multi_add_handle(tg.multi, x->easy) != CURLM_OK)
		return -EIO;
	x->busy = true;
	return 0;
}

/* ---- in ---- */

static const char *
chat_group(long long chat)
{
	for (size_t i = 0; i < tg.d->cfg.telegram.n_chats; i++)
		if (tg.d->cfg.telegram.chats[i].chat == chat)
			return tg.d->cfg.telegram.chats[i].group;
	return NULL;
}

static bool
has_trigger(const char *text, const char *trigger)
{
	size_t n = strlen(trigger);
	for (const char *p = text; *p; p++)
		if (strncasecmp(p, trigger, n) == 0)
			return true;
	return false;
}

static void
take_update(json_t *u)
{
	struct daemon *d = tg.d;
	long long id = (long long)json_integer_value(json_object_get(u, "update_id"));
	json_t *m = json_object_get(u, "message");
	json_t *chat = json_object_get(m, "chat");
	const char *text = json_get_str(m, "text");
	long long chat_id = (long long)json_integer_value(json_object_get(chat, "id"));
	const char *type = json_get_str(chat, "type") ?: "";
	json_t *from = json_object_get(m, "from");
	const char *name = json_get_str(from, "username") ?: json_get_str(from, "first_name") ?: "";
	char offset[32], sender[96], why[160];
	snprintf(offset, sizeof(offset), "%lld", id + 1);
	snprintf(sender, sizeof(sender), "telegram:%.64s", name);
	const char *group = m && text ? chat_group(chat_id) : NULL;
	if (m && text && !group) {
		snprintf(why, sizeof(why), "a message from chat %lld, which no group is for",
		         chat_id);
		(void)store_audit(d->store, "-", "telegram", "deny", why);
	}
	/* "/stop" stops the group's run, trigger or not; it is not a message for the agent. */
	if (group && longrun_is_stop(text)) {
		longrun_stop_reply(d, NULL, group, "telegram:stop");
		group = NULL;
	}
	if (group && strcmp(type, "private") != 0) {
		const struct group_config *g = config_group(&d->cfg, group);
		if (g && g->trigger[0] && !has_trigger(text, g->trigger))
			group = NULL; /* group chatter not meant for the agent */
	}
	if (group && strlen(text) > DAEMON_TEXT_MAX)
		group = NULL;
	char chat_text[32];
	snprintf(chat_text, sizeof(chat_text), "%lld", chat_id);
	struct store_chat seen = {.channel = "telegram",
	                          .chat_id = chat_text,
	                          .group = chat_group(chat_id),
	                          .kind = type};
	if (store_channel_in_chat(d->store, group, sender, text, "telegram.offset", offset,
	                          m && chat ? &seen : NULL) < 0) {
		log_error("telegram: cannot store an update: %s", store_error(d->store));
		return;
	}
	if (group) {
		char bytes[24];
		snprintf(bytes, sizeof(bytes), "%zu", strlen(text));
		const char *const f[] = {"group", group, "chat", chat_text, "bytes", bytes,
		                         "from",  "telegram", NULL};
		log_fields("info", f, "message received");
	}
	tg.offset = id + 1;
}

static void start_poll(void);

static void
poll_done(struct tg_xfer *x, int http, const char *err)
{
	_cleanup_json_ json_t *j =
	    err ? NULL : json_loadb(dbuf_str(&x->body), x->body.len, 0, NULL);
	if (err || http != 200 || !json_is_true(json_object_get(j, "ok"))) {
		if (tg.poll_failures++ % 10 == 0)
			log_warn("telegram: getUpdates failed (%s); retrying",
			         err ? err : json_get_str(j, "description") ?: "HTTP error");
		tg.poll_after = time(NULL) + (tg.poll_failures < 5 ? 1 : 10);
		return; /* the tick starts it again */
	}
	tg.poll_failures = 0;
	size_t i;
	json_t *u;
	json_array_foreach(json_object_get(j, "result"), i, u) take_update(u);
	if (json_array_size(json_object_get(j, "result")))
		runner_kick(tg.d);
	start_poll();
}

static void
start_poll(void)
{
	if (tg.poll.busy || tg.d->stopping)
		return;
	char body[160];
	snprintf(body, sizeof(body),
	         "{\"offset\":%lld,\"timeout\":%d,\"allowed_updates\":[\"message\"]}", tg.offset,
	         TG_POLL_TIMEOUT_S);
	if (xfer_start(&tg.poll, "getUpdates", body, TG_POLL_TIMEOUT_S + 15) < 0)
		tg.poll_after = time(NULL) + 5;
}

/* ---- out ---- */

static void send_next(void);

static void
mark_delivered(int64_t id)
{
	char v[32];
	snprintf(v, sizeof(v), "%lld", (long long)id);
	tg.delivered = id;
	if (store_kv_set(tg.d->store, "telegram.delivered", v) < 0)
		log_error("telegram: cannot record a delivery: %s", store_error(tg.d->store));
}

static void
send_done(struct tg_xfer *x, int http, const char *err)
{
	if (err || http >= 500 || http == 429 || http == 0) {
		return; /* kept: the tick tries again */
	}
	if (http != 200) {
		_cleanup_json_ json_t *j = json_loadb(dbuf_str(&x->body), x->body.len, 0, NULL);
		char why[300];
		snprintf(why, sizeof(why), "sendMessage refused (HTTP %d): %.200s", http,
		         json_get_str(j, "description") ?: "");
		(void)store_audit(tg.d->store, "-", "telegram", "error", why);
	}
	mark_delivered(tg.sending);
	send_next();
}

static long long
group_chat(const char *group)
{
	for (size_t i = 0; i < tg.d->cfg.telegram.n_chats; i++)
		if (strcmp(tg.d->cfg.telegram.chats[i].group, group) == 0)
			return tg.d->cfg.telegram.chats[i].chat;
	return 0;
}

static long long group_chat(const char *group);

static struct tg_progress *
progress_of(const char *group)
{
	for (size_t i = 0; tg.d && i < tg.d->cfg.n_groups; i++)
		if (strcmp(tg.d->cfg.groups[i].id, group) == 0)
			return &tg.progress[i];
	return NULL;
}

/* Message out_id of the group goes out now: if it came after the message the progress is
 * for, it is that run's reply (or something the run sent), and its progress message is left
 * as it is. A later run's progress is not touched (replies may be delivered late). */
static void
progress_over(const char *group, int64_t out_id)
{
	struct tg_progress *p = progress_of(group);
	if (p && p->reply_to > 0 && p->reply_to < out_id) {
		p->dirty = false;
		p->over = p->reply_to;
	}
}

void
telegram_progress(struct daemon *d, const char *group, int64_t reply_to, const char *text,
                  size_t len)
{
	(void)d;
	struct tg_progress *p = tg.multi ? progress_of(group) : NULL;
	if (!p || !group_chat(group) || reply_to <= 0 || reply_to == p->over)
		return;
	if (p->reply_to != reply_to) { /* a new run */
		dbuf_reset(&p->text);
		p->reply_to = reply_to;
		p->first = time(NULL);
		p->sent = 0;
		p->tg_msg_id = 0;
	}
	(void)dbuf_append_capped(&p->text, text, len);
	p->dirty = true;
}

static void
edit_done(struct tg_xfer *x, int http, const char *err)
{
	struct tg_progress *p = &tg.progress[tg.editing];
	if (err || http != 200)
		return; /* the next tick tries again, if it is still wanted */
	_cleanup_json_ json_t *j = json_loadb(dbuf_str(&x->body), x->body.len, 0, NULL);
	json_t *id = json_object_get(json_object_get(j, "result"), "message_id");
	if (p->reply_to == tg.editing_for && !p->tg_msg_id && json_is_integer(id))
		p->tg_msg_id = (long long)json_integer_value(id);
}

/* At most one progress send or edit in flight, for the slot that waited longest. */
static void
progress_next(void)
{
	if (tg.edit.busy || tg.d->stopping)
		return;
	time_t now = time(NULL);
	for (size_t i = 0; i < tg.d->cfg.n_groups; i++) {
		struct tg_progress *p = &tg.progress[i];
		if (!p->dirty || p->reply_to <= 0 || p->reply_to == p->over ||
		    now - p->first < TG_PROGRESS_AFTER_S || now - p->sent < TG_PROGRESS_EVERY_S)
			continue;
		long long chat = group_chat(tg.d->cfg.groups[i].id);
		const char *t = dbuf_str(&p->text);
		size_t len = p->text.len > TG_TEXT_MAX - 16 ? TG_TEXT_MAX - 16 : p->text.len;
		while (len > 0 && len < p->text.len && (t[len] & 0xC0) == 0x80)
			len--;
		char shown[TG_TEXT_MAX];
		snprintf(shown, sizeof(shown), "(working) %.*s", (int)len, t);
		_cleanup_json_ json_t *body =
		    p->tg_msg_id
		        ? json_pack("{s:I,s:I,s:s}", "chat_id", (json_int_t)chat, "message_id",
		                    (json_int_t)p->tg_msg_id, "text", shown)
		        : json_pack("{s:I,s:s}", "chat_id", (json_int_t)chat, "text", shown);
		_cleanup_free_ char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
		if (!s)
			return;
		/* Without its message id (a send that failed) the next try sends again. */
		tg.editing = (int)i;
		tg.editing_for = p->reply_to;
		p->dirty = false;
		p->sent = now;
		if (xfer_start(&tg.edit, p->tg_msg_id ? "editMessageText" : "sendMessage", s, 30) <
		    0)
			p->dirty = true;
		return;
	}
}

static void
send_next(void)
{
	if (tg.send.busy || tg.d->stopping)
		return;
	_cleanup_json_ json_t *out = NULL;
	if (store_out_after(tg.d->store, tg.delivered, &out) < 0)
		return;
	size_t i;
	json_t *m;
	json_array_foreach(out, i, m)
	{
		int64_t id = (int64_t)json_integer_value(json_object_get(m, "id"));
		long long chat = group_chat(json_get_str(m, "group") ?: "");
		if (!chat) {
			mark_delivered(id); /* a group without a chat: nothing to deliver */
			continue;
		}
		json_t *t = json_object_get(m, "text");
		size_t len = json_string_length(t);
		if (len > TG_TEXT_MAX) /* cut on a character boundary */
			for (len = TG_TEXT_MAX;
			     len > 0 && (json_string_value(t)[len] & 0xC0) == 0x80;)
				len--;
		_cleanup_json_ json_t *body = json_pack("{s:I,s:s%}", "chat_id", (json_int_t)chat,
		                                        "text", json_string_value(t), len);
		_cleanup_free_ char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
		tg.sending = id;
		progress_over(json_get_str(m, "group") ?: "", id);
		if (!s || xfer_start(&tg.send, "sendMessage", s, 30) < 0)
			return;
		return; /* one at a time, in order */
	}
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (!tg.poll.busy && time(NULL) >= tg.poll_after)
		start_poll();
	send_next();
	progress_next();
}

static int
xfer_init(struct tg_xfer *x, void (*done)(struct tg_xfer *, int, const char *))
{
	x->easy = curl_easy_init();
	dbuf_init(&x->body, TG_BODY_MAX);
	x->done = done;
	x->headers = curl_slist_append(NULL, "Content-Type: application/json");
	return x->easy && x->headers ? 0 : -ENOMEM;
}

int
telegram_start(struct daemon *d)
{
	if (!d->cfg.telegram.on)
		return 0;
	const char *token = getenv(d->cfg.telegram.token_env);
	if (!token || !*token || strlen(token) >= sizeof(tg.token) || strpbrk(token, "/?# \r\n")) {
		log_warn("telegram: %s is not set (or not a bot token); the channel is off",
		         d->cfg.telegram.token_env);
		return 0;
	}
	tg.d = d;
	snprintf(tg.token, sizeof(tg.token), "%s", token);
	char v[32];
	if (store_kv_get(d->store, "telegram.offset", v, sizeof(v)) == 0)
		tg.offset = strtoll(v, NULL, 10);
	if (store_kv_get(d->store, "telegram.delivered", v, sizeof(v)) == 0) {
		tg.delivered = strtoll(v, NULL, 10);
	} else {
		/* First start with Telegram: what was said before is not sent to it now. */
		int64_t last = store_last_id(d->store);
		mark_delivered(last > 0 ? last : 0);
	}
	if (load_curl() < 0) {
		log_error("telegram: libcurl (libcurl.so.4) cannot be loaded");
		return -ENOENT;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		return -EIO;
	tg.multi = curl_multi_init();
	tg.timer = evtimer_new(d->base, on_timeout, NULL);
	tg.tick = event_new(d->base, -1, EV_PERSIST, on_tick, NULL);
	if (!tg.multi || !tg.timer || !tg.tick || xfer_init(&tg.poll, poll_done) < 0 ||
	    xfer_init(&tg.send, send_done) < 0 || xfer_init(&tg.edit, edit_done) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < CONFIG_MAX_GROUPS; i++)
		dbuf_init(&tg.progress[i].text, TG_TEXT_MAX);
	curl_multi_setopt(tg.multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(tg.multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	struct timeval t = {.tv_usec = 250 * 1000};
	event_add(tg.tick, &t);
	start_poll();
	log_info("telegram: polling %s for %zu chat%s", d->cfg.telegram.base_url,
	         d->cfg.telegram.n_chats, d->cfg.telegram.n_chats == 1 ? "" : "s");
	return 0;
}

void
telegram_stop(struct daemon *d)
{
	(void)d;
	if (!tg.multi)
		return;
	struct tg_xfer *xs[] = {&tg.poll, &tg.send, &tg.edit};
	for (size_t i = 0; i < 3; i++) {
		if (xs[i]->busy)
			curl_multi_remove_handle(tg.multi, xs[i]->easy);
		curl_easy_cleanup(xs[i]->easy);
		curl_slist_free_all(xs[i]->headers);
		dbuf_done(&xs[i]->body);
		free(xs[i]->post);
	}
	for (size_t i = 0; i < CONFIG_MAX_GROUPS; i++)
		dbuf_done(&tg.progress[i].text);
	curl_multi_cleanup(tg.multi);
	event_free(tg.timer);
	event_free(tg.tick);
	memset(tg.token, 0, sizeof(tg.token));
	tg.multi = NULL;
}
