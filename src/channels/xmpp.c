/*
 * xmpp.c: the XMPP channel (`clawbox-channel xmpp`), one-to-one chat and group chat (MUC,
 * XEP-0045) by libstrophe, which does the XML stream, TLS, SASL and stream management.
 *
 * One loop: libstrophe has no way to hand its sockets to another loop, but it tells us each
 * socket it makes (the sockopt callback), so libevent watches that fd and runs
 * xmpp_run_once(ctx, 0) when it is readable; a timer runs it too, every XMPP_TICK_MS (fast
 * while connecting: a non-blocking connect waits for writability, which we do not watch),
 * for libstrophe's own timers (keepalives, stream-management acks) and for data OpenSSL has
 * already read off the socket (readable no more, but not yet parsed). Neither ever blocks:
 * the timeout given is 0.
 *
 * In: a chat message's chat is the sender's bare JID; a room's is the room's JID, its
 * sender the occupant ("room@service/nick"), mention true when the body names our nick.
 * Ignored: our own echoes in rooms, room history (delayed delivery, XEP-0203, in a room; we
 * also ask for none when joining), errors, messages without a body. A delayed chat message
 * is one the server kept while we were offline: it is read. Which chats reach a group is the
 * daemon's decision (the chats of the channel's config); all are reported, so it can record
 * the others. XMPP has no cursor: mail for an offline bot waits on the server (offline
 * messages) and comes once; room history is never read again.
 *
 * Out: a reply to a configured room goes as groupchat, anything else as chat, split at
 * "max_chars" (default 4000) on a character boundary. "sent" means the server's stream took
 * it (libstrophe's stream management resends what was not acknowledged when the stream
 * resumes); a reply while disconnected fails with retry.
 *
 * Files out (send_file): XEP-0363 HTTP File Upload. The upload service is found when we
 * connect (disco#items of our server, then disco#info of each item for the feature); a slot
 * is asked for by IQ, the bytes PUT to its URL by libcurl (chan-http, with only the headers
 * the XEP allows through), then the GET URL sent as the body of a message with an XEP-0066
 * out-of-band element (the text, if any, in a message of its own before it). No service:
 * send_file fails, not to retry.
 *
 * Files in: a message with an XEP-0066 URL is reported once the file is fetched (at most
 * "file_max" bytes, default and ceiling CHANPROTO_FILE_MAX), as an attachment memfd. Only
 * URLs under a prefix of "file_urls" are fetched (default: https://<our server's domain>/):
 * anyone may send us a URL, and the channel must not fetch what a stranger points it at. A
 * file that cannot be fetched leaves the message without attachment (its text has the URL).
 *
 * Edits (the daemon's progress notes) are Last Message Corrections (XEP-0308), typing is a
 * chat state (XEP-0085). A correction or chat state that comes in is not a new message.
 *
 * Reconnect: on a lost or failed connection, again after 1, 2, 4 ... 60 s.
 * TLS: mandatory (XMPP_CONN_FLAG_MANDATORY_TLS); "ca_file" names the CA to check it with.
 */
#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <strophe.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chan-http.h"
#include "chanlib.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"

#define XMPP_TICK_MS         500
#define XMPP_CONNECT_TICK_MS 20
#define XMPP_BACKOFF_MAX_S   60
#define XMPP_ROOMS_MAX       32
#define XMPP_CHARS_DEFAULT   4000
#define XMPP_SECRET_MAX      1024
#define XMPP_NS_MUC          "http://jabber.org/protocol/muc"
#define XMPP_NS_DELAY        "urn:xmpp:delay"
#define XMPP_NS_SID          "urn:xmpp:sid:0"
#define XMPP_NS_UPLOAD       "urn:xmpp:http:upload:0"
#define XMPP_NS_OOB          "jabber:x:oob"
#define XMPP_NS_DISCO_ITEMS  "http://jabber.org/protocol/disco#items"
#define XMPP_NS_DISCO_INFO   "http://jabber.org/protocol/disco#info"
#define XMPP_FILE_URLS_MAX   8
#define XMPP_URL_MAX         2048
#define XMPP_APPROVALS_MAX   64 /* approvals shown and not yet answered, remembered */

struct xmppch {
	struct chan *c;
	xmpp_ctx_t *ctx;
	xmpp_conn_t *conn;
	char *jid, *host, *ca_file, *nick;
	char password[XMPP_SECRET_MAX];
	unsigned short port;
	char *rooms[XMPP_ROOMS_MAX];
	size_t n_rooms;
	size_t max_chars;
	bool online, stopping;
	unsigned backoff_s;
	struct event *sock_ev, *tick, *retry;
	int sock;
	/* Approvals shown (ring): an answer names one of these, in the chat it was shown in. */
	struct {
		int64_t id;
		char chat[CHANPROTO_ID_MAX + 1];
	} approvals[XMPP_APPROVALS_MAX];
	size_t approvals_next;
	char upload_jid[CHANPROTO_ID_MAX + 1]; /* the XEP-0363 service, "" until found */
	struct xmpp_upload *waiting; /* uploads whose slot has not come: the connection's */
	uint64_t file_max;
	char *file_urls[XMPP_FILE_URLS_MAX]; /* prefixes of the URLs we fetch files from */
	size_t n_file_urls;
};

static void connect_now(struct xmppch *x);
static void fail_waiting(struct xmppch *x);
static char *send_text(struct xmppch *x, const char *chat, const char *text);
static void send_with_child(struct xmppch *x, const char *chat, const char *text, const char *name,
                            const char *ns, const char *attr, const char *value, char **ret_id);
static void send_file(struct xmppch *x, const json_t *frame, int fd);
static void disco(struct xmppch *x, const char *to, const char *ns, xmpp_handler h);
static int on_disco_items(xmpp_conn_t *conn, xmpp_stanza_t *st, void *arg);

static void
run_strophe(struct xmppch *x)
{
	/* A few turns: each reads at most one buffer; what TLS holds needs no readable fd. */
	for (int i = 0; i < 8; i++)
		xmpp_run_once(x->ctx, 0);
}

static void
tick_later(struct xmppch *x)
{
	unsigned ms =
	    x->conn && xmpp_conn_is_connecting(x->conn) ? XMPP_CONNECT_TICK_MS : XMPP_TICK_MS;
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	evtimer_add(x->tick, &tv);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct xmppch *x = arg;
	(void)fd;
	(void)what;
	run_strophe(x);
	tick_later(x);
}

static void
on_sock(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	run_strophe(arg);
}

static void
unwatch(struct xmppch *x)
{
	if (x->sock_ev)
		event_free(x->sock_ev);
	x->sock_ev = NULL;
	x->sock = -1;
}

/* The sockopt callback gets no userdata: the one connection of this process is here. */
static struct xmppch *xmpp_self;

/* libstrophe made a socket: watch it. */
static int
on_sockopt(xmpp_conn_t *conn, void *sockp)
{
	struct xmppch *self = xmpp_self;
	int fd = *(int *)sockp;
	unwatch(self);
	self->sock = fd;
	self->sock_ev = event_new(chan_base(self->c), fd, EV_READ | EV_PERSIST, on_sock, self);
	if (!self->sock_ev || event_add(self->sock_ev, NULL) < 0)
		return -1;
	return xmpp_sockopt_cb_keepalive(conn, sockp);
}

static bool
is_room(struct xmppch *x, const char *bare)
{
	for (size_t i = 0; i < x->n_rooms; i++)
		if (strcasecmp(x->rooms[i], bare) == 0)
			return true;
	return false;
}

/* Whether body names nick as a word ("nick: hi", "@nick", "hi nick"). */
static bool
names(const char *body, const char *nick)
{
	size_t n = strlen(nick);
	for (const char *p = body; n && (p = strcasestr(p, nick)); p++) {
		bool start = p == body || !isalnum((unsigned char)p[-1]);
		bool end = !isalnum((unsigned char)p[n]);
		if (start && end)
			return true;
	}
	return false;
}

/* "approve 12", "run 12", "deny 12" (any case, spaces around), in a one-to-one chat where
 * approval 12 was shown: the answer goes to the daemon, which checks that this JID may
 * approve. Only one-to-one: there the JID is the server's word for who wrote; in a room a
 * nick is anyone's to take. Returns whether body was such an answer. */
static bool
approval_answer(struct xmppch *x, const char *bare, const char *body)
{
	static const char *const words[] = {"approve", "run", "deny"};
	while (*body == ' ' || *body == '\n' || *body == '\t')
		body++;
	for (size_t w = 0; w < ARRAY_SIZE(words); w++) {
		size_t n = strlen(words[w]);
		if (strncasecmp(body, words[w], n) != 0 || body[n] != ' ')
			continue;
		char *end;
		long long id = strtoll(body + n + 1, &end, 10);
		while (*end == ' ' || *end == '\n' || *end == '\t')
			end++;
		if (end == body + n + 1 || *end || id <= 0)
			return false;
		for (size_t i = 0; i < XMPP_APPROVALS_MAX; i++)
			if (x->approvals[i].id == id &&
			    (strcmp(x->approvals[i].chat, "*") == 0 ||
			     strcasecmp(x->approvals[i].chat, bare) == 0)) {
				char approver[CHANPROTO_ID_MAX + 8];
				snprintf(approver, sizeof(approver), "xmpp:%s", bare);
				chan_approval_answer(x->c, id, words[w], approver);
				return true;
			}
		return false; /* not one shown here: an ordinary message */
	}
	return false;
}

/* ---- files in: an XEP-0066 URL fetched, the message reported with it ---- */

/* A message held while its file comes: copies of what chan_message() is given. */
struct xmpp_fetch {
	struct xmppch *x;
	char *chat, *kind, *sender, *sender_name, *text, *ext_id;
	char name[CHANPROTO_ID_MAX + 1];
	bool mention;
};

static void
fetch_free(struct xmpp_fetch *f)
{
	free(f->chat);
	free(f->kind);
	free(f->sender);
	free(f->sender_name);
	free(f->text);
	free(f->ext_id);
	free(f);
}

/* Whether url is under one of the prefixes we fetch from. */
static bool
url_allowed(const struct xmppch *x, const char *url)
{
	for (size_t i = 0; i < x->n_file_urls; i++)
		if (strncmp(url, x->file_urls[i], strlen(x->file_urls[i])) == 0)
			return true;
	return false;
}

/* The file's name: the URL's last path segment (no query), "file" when it has none. */
static void
url_file_name(const char *url, char *name, size_t size)
{
	const char *q = url + strcspn(url, "?#");
	const char *s = q;
	while (s > url && s[-1] != '/')
		s--;
	size_t n = (size_t)(q - s);
	if (n == 0 || (n <= 2 && s[0] == '.'))
		snprintf(name, size, "file");
	else
		snprintf(name, size, "%.*s", (int)(n < size - 1 ? n : size - 1), s);
}

static void
fetch_done(void *arg, long status, const char *body, size_t len, const char *err)
{
	struct xmpp_fetch *f = arg;
	int fd = -1;
	if (!err && status == 200)
		fd = chanproto_memfd(f->name, body, len);
	if (fd < 0)
		log_warn("a file from %s could not be fetched: %s", f->chat,
		         err      ? err
		         : status ? "HTTP error"
		                  : "too large");
	struct chan_attachment a = {.name = f->name, .fd = fd, .size = fd >= 0 ? len : 0};
	struct chan_message m = {
	    .chat = f->chat,
	    .chat_kind = f->kind,
	    .sender = f->sender,
	    .sender_name = f->sender_name,
	    .text = f->text,
	    .mention = f->mention,
	    .ext_id = f->ext_id,
	    .attachments = fd >= 0 ? &a : NULL,
	    .n_attachments = fd >= 0 ? 1 : 0,
	};
	int r = chan_message(f->x->c, &m);
	if (r < 0 && r != -EPIPE)
		log_warn("a message from %s not reported: %s", f->chat, strerror(-r));
	if (fd >= 0)
		close(fd);
	fetch_free(f);
}

/* m with the file at url: reported when it has come (or failed). 0, or -errno (then the
 * caller reports m without it). */
static int
fetch_then_report(struct xmppch *x, const struct chan_message *m, const char *url)
{
	if (strlen(url) >= XMPP_URL_MAX || !url_allowed(x, url))
		return -EPERM;
	struct xmpp_fetch *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->x = x;
	f->mention = m->mention;
	f->chat = strdup(m->chat);
	f->kind = strdup(m->chat_kind);
	f->sender = strdup(m->sender);
	f->sender_name = m->sender_name ? strdup(m->sender_name) : NULL;
	f->text = strdup(m->text);
	f->ext_id = strdup(m->ext_id);
	url_file_name(url, f->name, sizeof(f->name));
	struct chan_http_req r = {
	    .url = url, .timeout_s = 120, .max_body = x->file_max, .ca_file = x->ca_file};
	if (!f->chat || !f->kind || !f->sender || !f->text || !f->ext_id ||
	    (m->sender_name && !f->sender_name) ||
	    chan_http_start(x->c, &r, fetch_done, f, NULL) < 0) {
		fetch_free(f);
		return -ENOMEM;
	}
	return 0;
}

static int
on_message(xmpp_conn_t *conn, xmpp_stanza_t *st, void *arg)
{
	struct xmppch *x = arg;
	(void)conn;
	const char *type = xmpp_stanza_get_type(st);
	const char *from = xmpp_stanza_get_from(st);
	if (!from || (type && strcmp(type, "error") == 0))
		return 1;
	bool group = type && strcmp(type, "groupchat") == 0;
	/* In a room, a delayed message is history (answered when it was said); in a chat it
	 * is one the server kept while we were away (offline messages): that one is news. */
	if (group && xmpp_stanza_get_child_by_name_and_ns(st, "delay", XMPP_NS_DELAY))
		return 1;
	/* A correction of a message already read (and answered): not a new one. Ours, edited
	 * progress notes, come back this way from rooms too. */
	if (xmpp_stanza_get_child_by_name_and_ns(st, "replace", "urn:xmpp:message-correct:0"))
		return 1;
	char *body = xmpp_message_get_body(st);
	if (!body || !*body) {
		xmpp_free(x->ctx, body);
		return 1;
	}
	char *bare = xmpp_jid_bare(x->ctx, from);
	char *res = xmpp_jid_resource(x->ctx, from);
	if (group && (!is_room(x, bare) || !res || strcmp(res, x->nick) == 0))
		goto out; /* our own echo, the room's own notes, or a room we are not in */
	if (!group && approval_answer(x, bare, body))
		goto out; /* an answer to an approval, not a message for the agent */
	/* The id the service gives it: the room's stanza-id, else the sender's id. */
	const char *ext = NULL;
	xmpp_stanza_t *sid = xmpp_stanza_get_child_by_name_and_ns(st, "stanza-id", XMPP_NS_SID);
	if (sid && xmpp_stanza_get_attribute(sid, "id"))
		ext = xmpp_stanza_get_attribute(sid, "id");
	if (!ext)
		ext = xmpp_stanza_get_id(st);
	char *gen = NULL;
	if (!ext)
		ext = gen = xmpp_uuid_gen(x->ctx);
	char ext_id[CHANPROTO_ID_MAX + 1];
	snprintf(ext_id, sizeof(ext_id), "%.*s", CHANPROTO_ID_MAX, ext ? ext : "?");
	if (strlen(from) <= CHANPROTO_ID_MAX && strlen(bare) <= CHANPROTO_ID_MAX) {
		struct chan_message m = {
		    .chat = bare,
		    .chat_kind = group ? "group" : "private",
		    .sender = group ? from : bare,
		    .sender_name = group ? res : NULL,
		    .text = body,
		    .mention = !group || names(body, x->nick),
		    .ext_id = ext_id,
		};
		xmpp_stanza_t *oob = xmpp_stanza_get_child_by_name_and_ns(st, "x", XMPP_NS_OOB);
		xmpp_stanza_t *ou = oob ? xmpp_stanza_get_child_by_name(oob, "url") : NULL;
		char *url = ou ? xmpp_stanza_get_text(ou) : NULL;
		int r = url ? fetch_then_report(x, &m, url) : -ENOENT;
		if (r == -EPERM)
			log_warn("a file from %s not fetched: not under file_urls", bare);
		if (r < 0)
			r = chan_message(x->c, &m);
		if (r < 0 && r != -EPIPE)
			log_warn("a message from %s not reported: %s", bare, strerror(-r));
		xmpp_free(x->ctx, url);
	}
	xmpp_free(x->ctx, gen);
out:
	xmpp_free(x->ctx, body);
	xmpp_free(x->ctx, bare);
	xmpp_free(x->ctx, res);
	return 1;
}

static void
send_presence(struct xmppch *x, const char *to, bool muc)
{
	xmpp_stanza_t *p = xmpp_presence_new(x->ctx);
	if (to)
		xmpp_stanza_set_to(p, to);
	if (muc) {
		xmpp_stanza_t *mx = xmpp_stanza_new(x->ctx);
		xmpp_stanza_set_name(mx, "x");
		xmpp_stanza_set_ns(mx, XMPP_NS_MUC);
		xmpp_stanza_t *h = xmpp_stanza_new(x->ctx);
		xmpp_stanza_set_name(h, "history");
		xmpp_stanza_set_attribute(h, "maxstanzas", "0"); /* no history: it was answered */
		xmpp_stanza_add_child_ex(mx, h, 0);
		xmpp_stanza_add_child_ex(p, mx, 0);
	}
	xmpp_send(x->conn, p);
	xmpp_stanza_release(p);
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	connect_now(arg);
}

static void
on_conn(xmpp_conn_t *conn, xmpp_conn_event_t status, int error, xmpp_stream_error_t *se, void *arg)
{
	struct xmppch *x = arg;
	(void)se;
	if (status == XMPP_CONN_CONNECT) {
		x->online = true;
		x->backoff_s = 0;
		xmpp_handler_add(conn, on_message, NULL, "message", NULL, x);
		send_presence(x, NULL, false);
		for (size_t i = 0; i < x->n_rooms; i++) {
			char to[600];
			snprintf(to, sizeof(to), "%s/%s", x->rooms[i], x->nick);
			send_presence(x, to, true);
		}
		x->upload_jid[0] = '\0';
		char *domain = xmpp_jid_domain(x->ctx, x->jid);
		if (domain)
			disco(x, domain, XMPP_NS_DISCO_ITEMS, on_disco_items);
		xmpp_free(x->ctx, domain);
		chan_status(x->c, "connected", NULL);
		return;
	}
	if (status == XMPP_CONN_RAW_CONNECT)
		return;
	/* Lost or refused: say so, and again later. */
	x->online = false;
	unwatch(x);
	fail_waiting(x);
	if (x->stopping)
		return;
	char d[160];
	snprintf(d, sizeof(d), "%s%s%s",
	         status == XMPP_CONN_FAIL ? "connection failed" : "disconnected", error ? ": " : "",
	         error ? strerror(error) : "");
	chan_status(x->c, "error", d);
	x->backoff_s = x->backoff_s ? x->backoff_s * 2 : 1;
	if (x->backoff_s > XMPP_BACKOFF_MAX_S)
		x->backoff_s = XMPP_BACKOFF_MAX_S;
	log_warn("%s; again in %u s", d, x->backoff_s);
	struct timeval tv = {.tv_sec = x->backoff_s};
	evtimer_add(x->retry, &tv);
}

static void
connect_now(struct xmppch *x)
{
	if (x->conn)
		xmpp_conn_release(x->conn); /* outside its callbacks: from our timer */
	x->conn = xmpp_conn_new(x->ctx);
	xmpp_conn_set_flags(x->conn, XMPP_CONN_FLAG_MANDATORY_TLS);
	xmpp_conn_set_jid(x->conn, x->jid);
	xmpp_conn_set_pass(x->conn, x->password);
	if (x->ca_file)
		xmpp_conn_set_cafile(x->conn, x->ca_file);
	xmpp_conn_set_sockopt_callback(x->conn, on_sockopt);
	chan_status(x->c, "connecting", NULL);
	if (xmpp_connect_client(x->conn, x->host, x->port, on_conn, x) != XMPP_EOK)
		on_conn(x->conn, XMPP_CONN_FAIL, 0, NULL, x);
	tick_later(x);
}

/* text to chat, one stanza per max_chars bytes (cut on a character boundary); the last
 * one's id (xmpp_free it). */
static char *
send_text(struct xmppch *x, const char *chat, const char *text)
{
	bool group = is_room(x, chat);
	char *id = NULL;
	size_t len = strlen(text ? text : "");
	const char *p = text ? text : "";
	do { /* one stanza per max_chars bytes, cut on a character boundary */
		size_t n = chanproto_cut(p, len, x->max_chars);
		char *part = strndup(p, n);
		xmpp_free(x->ctx, id);
		id = xmpp_uuid_gen(x->ctx);
		xmpp_stanza_t *m = xmpp_message_new(x->ctx, group ? "groupchat" : "chat", chat, id);
		xmpp_message_set_body(m, part ? part : "");
		xmpp_send(x->conn, m);
		xmpp_stanza_release(m);
		free(part);
		p += n;
		len -= n;
	} while (len > 0);
	run_strophe(x); /* out now, not at the next tick */
	return id;
}

static void
xmppch_reply(struct chan *c, const json_t *frame, int file_fd)
{
	struct xmppch *x = chan_data(c);
	int64_t ref = json_integer_value(json_object_get(frame, "ref"));
	const char *chat = json_get_str(frame, "chat");
	const char *text = json_get_str(frame, "text");
	if (!x->online) {
		chan_failed(c, ref, "not connected to the XMPP server", true);
		return;
	}
	if (!chat || !strchr(chat, '@') || strchr(chat, '/')) {
		chan_failed(c, ref, "not a bare JID", false);
		return;
	}
	if (file_fd >= 0 && json_object_get(frame, "file")) {
		send_file(x, frame, file_fd);
		return;
	}
	char *id = send_text(x, chat, text);
	chan_sent(c, ref, id ? id : "?");
	xmpp_free(x->ctx, id);
}

/* A message to chat with one child element of namespace ns (and a body, when text). */
static void
send_with_child(struct xmppch *x, const char *chat, const char *text, const char *name,
                const char *ns, const char *attr, const char *value, char **ret_id)
{
	char *id = xmpp_uuid_gen(x->ctx);
	xmpp_stanza_t *m =
	    xmpp_message_new(x->ctx, is_room(x, chat) ? "groupchat" : "chat", chat, id);
	if (text)
		xmpp_message_set_body(m, text);
	xmpp_stanza_t *el = xmpp_stanza_new(x->ctx);
	xmpp_stanza_set_name(el, name);
	xmpp_stanza_set_ns(el, ns);
	if (attr)
		xmpp_stanza_set_attribute(el, attr, value);
	xmpp_stanza_add_child_ex(m, el, 0);
	xmpp_send(x->conn, m);
	xmpp_stanza_release(m);
	run_strophe(x);
	if (ret_id)
		*ret_id = id;
	else
		xmpp_free(x->ctx, id);
}

/* ---- files out: XEP-0363 ---- */

/* The upload service: disco#info of each of our server's items; the first with the
 * feature is it. */
static int
on_disco_info(xmpp_conn_t *conn, xmpp_stanza_t *st, void *arg)
{
	struct xmppch *x = arg;
	(void)conn;
	const char *from = xmpp_stanza_get_from(st);
	xmpp_stanza_t *q = xmpp_stanza_get_child_by_name_and_ns(st, "query", XMPP_NS_DISCO_INFO);
	if (x->upload_jid[0] || !from || !q || strlen(from) > CHANPROTO_ID_MAX)
		return 0;
	for (xmpp_stanza_t *c = xmpp_stanza_get_children(q); c; c = xmpp_stanza_get_next(c)) {
		const char *name = xmpp_stanza_get_name(c);
		const char *var = xmpp_stanza_get_attribute(c, "var");
		if (name && strcmp(name, "feature") == 0 && var &&
		    strcmp(var, XMPP_NS_UPLOAD) == 0) {
			snprintf(x->upload_jid, sizeof(x->upload_jid), "%s", from);
			log_info("file upload service: %s", from);
			break;
		}
	}
	return 0;
}

static void
disco(struct xmppch *x, const char *to, const char *ns, xmpp_handler h)
{
	char *id = xmpp_uuid_gen(x->ctx);
	xmpp_stanza_t *iq = xmpp_iq_new(x->ctx, "get", id);
	xmpp_stanza_set_to(iq, to);
	xmpp_stanza_t *q = xmpp_stanza_new(x->ctx);
	xmpp_stanza_set_name(q, "query");
	xmpp_stanza_set_ns(q, ns);
	xmpp_stanza_add_child_ex(iq, q, 0);
	xmpp_id_handler_add(x->conn, h, id, x);
	xmpp_send(x->conn, iq);
	xmpp_stanza_release(iq);
	xmpp_free(x->ctx, id);
}

static int
on_disco_items(xmpp_conn_t *conn, xmpp_stanza_t *st, void *arg)
{
	struct xmppch *x = arg;
	(void)conn;
	xmpp_stanza_t *q = xmpp_stanza_get_child_by_name_and_ns(st, "query", XMPP_NS_DISCO_ITEMS);
	for (xmpp_stanza_t *c = q ? xmpp_stanza_get_children(q) : NULL; c;
	     c = xmpp_stanza_get_next(c)) {
		const char *name = xmpp_stanza_get_name(c),
		           *jid = xmpp_stanza_get_attribute(c, "jid");
		if (name && strcmp(name, "item") == 0 && jid)
			disco(x, jid, XMPP_NS_DISCO_INFO, on_disco_info);
	}
	return 0;
}

/* One send_file under way: the bytes, and where they go. */
struct xmpp_upload {
	struct xmppch *x;
	struct xmpp_upload *next; /* in x->waiting, while its slot has not come */
	int64_t ref;
	char chat[CHANPROTO_ID_MAX + 1];
	char *text, *data, *get_url;
	size_t size;
};

static void
upload_free(struct xmpp_upload *u)
{
	free(u->text);
	free(u->data);
	free(u->get_url);
	free(u);
}

static void
upload_fail(struct xmpp_upload *u, const char *why, bool retry)
{
	log_warn("a file to %s not sent: %s", u->chat, why);
	chan_failed(u->x->c, u->ref, why, retry);
	upload_free(u);
}

/* The connection is gone, and the slots it asked for with it: those sends fail (retry). */
static void
fail_waiting(struct xmppch *x)
{
	while (x->waiting) {
		struct xmpp_upload *u = x->waiting;
		x->waiting = u->next;
		upload_fail(u, "the connection was lost before the upload slot came", true);
	}
}

/* The PUT is done: the GET URL goes to the chat, as body and out-of-band data. */
static void
put_done(void *arg, long status, const char *body, size_t len, const char *err)
{
	struct xmpp_upload *u = arg;
	struct xmppch *x = u->x;
	(void)body;
	(void)len;
	if (err || (status != 200 && status != 201)) {
		upload_fail(u, err ? err : "the upload service refused the file", true);
		return;
	}
	if (!x->online) {
		upload_fail(u, "not connected to the XMPP server", true);
		return;
	}
	if (u->text && *u->text)
		xmpp_free(x->ctx, send_text(x, u->chat, u->text));
	char *id = xmpp_uuid_gen(x->ctx);
	xmpp_stanza_t *m =
	    xmpp_message_new(x->ctx, is_room(x, u->chat) ? "groupchat" : "chat", u->chat, id);
	xmpp_message_set_body(m, u->get_url);
	xmpp_stanza_t *oob = xmpp_stanza_new(x->ctx), *el = xmpp_stanza_new(x->ctx),
	              *t = xmpp_stanza_new(x->ctx);
	xmpp_stanza_set_name(oob, "x");
	xmpp_stanza_set_ns(oob, XMPP_NS_OOB);
	xmpp_stanza_set_name(el, "url");
	xmpp_stanza_set_text(t, u->get_url);
	xmpp_stanza_add_child_ex(el, t, 0);
	xmpp_stanza_add_child_ex(oob, el, 0);
	xmpp_stanza_add_child_ex(m, oob, 0);
	xmpp_send(x->conn, m);
	xmpp_stanza_release(m);
	run_strophe(x);
	chan_sent(x->c, u->ref, id);
	xmpp_free(x->ctx, id);
	upload_free(u);
}

/* The slot: PUT the bytes to its put URL with the headers it names (only those XEP-0363
 * allows: Authorization, Cookie, Expires). */
static int
on_slot(xmpp_conn_t *conn, xmpp_stanza_t *st, void *arg)
{
	struct xmpp_upload *u = arg;
	struct xmppch *x = u->x;
	(void)conn;
	for (struct xmpp_upload **p = &x->waiting; *p; p = &(*p)->next)
		if (*p == u) {
			*p = u->next;
			break;
		}
	xmpp_stanza_t *slot = xmpp_stanza_get_child_by_name_and_ns(st, "slot", XMPP_NS_UPLOAD);
	xmpp_stanza_t *put = slot ? xmpp_stanza_get_child_by_name(slot, "put") : NULL;
	xmpp_stanza_t *get = slot ? xmpp_stanza_get_child_by_name(slot, "get") : NULL;
	const char *put_url = put ? xmpp_stanza_get_attribute(put, "url") : NULL;
	const char *get_url = get ? xmpp_stanza_get_attribute(get, "url") : NULL;
	const char *type = xmpp_stanza_get_type(st);
	if (!type || strcmp(type, "result") != 0 || !put_url || !get_url ||
	    strlen(put_url) >= XMPP_URL_MAX || strlen(get_url) >= XMPP_URL_MAX ||
	    (strncmp(get_url, "https://", 8) != 0 && strncmp(get_url, "http://", 7) != 0)) {
		upload_fail(u, "the upload service gave no slot (too large?)", false);
		return 0;
	}
	char hdr[3][XMPP_URL_MAX];
	const char *headers[4] = {NULL};
	size_t n = 0;
	for (xmpp_stanza_t *h = xmpp_stanza_get_children(put); h && n < 3;
	     h = xmpp_stanza_get_next(h)) {
		const char *hn = xmpp_stanza_get_attribute(h, "name");
		const char *el = xmpp_stanza_get_name(h);
		if (!el || strcmp(el, "header") != 0 || !hn ||
		    (strcasecmp(hn, "Authorization") != 0 && strcasecmp(hn, "Cookie") != 0 &&
		     strcasecmp(hn, "Expires") != 0))
			continue;
		_cleanup_free_ char *v = NULL;
		char *xv = xmpp_stanza_get_text(h);
		v = xv ? strdup(xv) : NULL;
		xmpp_free(x->ctx, xv);
		if (!v || strpbrk(v, "\r\n") ||
		    snprintf(hdr[n], sizeof(hdr[n]), "%s: %s", hn, v) >= (int)sizeof(hdr[n]))
			continue;
		headers[n] = hdr[n];
		n++;
	}
	u->get_url = strdup(get_url);
	struct chan_http_req r = {.method = "PUT",
	                          .url = put_url,
	                          .headers = headers,
	                          .body = u->data,
	                          .body_len = u->size,
	                          .content_type = "application/octet-stream",
	                          .timeout_s = 120,
	                          .ca_file = x->ca_file};
	if (!u->get_url || chan_http_start(x->c, &r, put_done, u, NULL) < 0)
		upload_fail(u, "the upload could not start", true);
	return 0;
}

/* send_file: the memfd's bytes, a slot for them. */
static void
send_file(struct xmppch *x, const json_t *frame, int fd)
{
	int64_t ref = json_integer_value(json_object_get(frame, "ref"));
	const json_t *file = json_object_get(frame, "file");
	const char *name = json_get_str(file, "name");
	uint64_t size = json_get_u64(file, "size");
	struct stat st;
	if (!x->upload_jid[0]) {
		chan_failed(x->c, ref, "the XMPP server has no file upload service (XEP-0363)",
		            false);
		return;
	}
	struct xmpp_upload *u = calloc(1, sizeof(*u));
	if (!u) {
		chan_failed(x->c, ref, "out of memory", true);
		return;
	}
	u->x = x;
	u->ref = ref;
	u->size = size;
	snprintf(u->chat, sizeof(u->chat), "%s", json_get_str(frame, "chat"));
	const char *text = json_get_str(frame, "text");
	u->text = text ? strdup(text) : NULL;
	if (!name || fstat(fd, &st) < 0 || (uint64_t)st.st_size != size ||
	    size > CHANPROTO_FILE_MAX || !(u->data = malloc(size ? size : 1)) ||
	    pread(fd, u->data, size, 0) != (ssize_t)size) {
		upload_fail(u, "the file to send could not be read", false);
		return;
	}
	char *id = xmpp_uuid_gen(x->ctx);
	char sz[32];
	snprintf(sz, sizeof(sz), "%llu", (unsigned long long)size);
	xmpp_stanza_t *iq = xmpp_iq_new(x->ctx, "get", id);
	xmpp_stanza_set_to(iq, x->upload_jid);
	xmpp_stanza_t *rq = xmpp_stanza_new(x->ctx);
	xmpp_stanza_set_name(rq, "request");
	xmpp_stanza_set_ns(rq, XMPP_NS_UPLOAD);
	xmpp_stanza_set_attribute(rq, "filename", name);
	xmpp_stanza_set_attribute(rq, "size", sz);
	xmpp_stanza_set_attribute(rq, "content-type", "application/octet-stream");
	xmpp_stanza_add_child_ex(iq, rq, 0);
	xmpp_id_handler_add(x->conn, on_slot, id, u);
	u->next = x->waiting;
	x->waiting = u;
	xmpp_send(x->conn, iq);
	xmpp_stanza_release(iq);
	xmpp_free(x->ctx, id);
	run_strophe(x);
}

/* An edit (the daemon's progress note as the run goes): a Last Message Correction
 * (XEP-0308) of the message we sent as ext_id; clients without it show it as a new one. */
static void
xmppch_edit(struct chan *c, const json_t *frame)
{
	struct xmppch *x = chan_data(c);
	int64_t ref = json_integer_value(json_object_get(frame, "ref"));
	const char *chat = json_get_str(frame, "chat"), *ext = json_get_str(frame, "ext_id");
	const char *text = json_get_str(frame, "text");
	if (!x->online || !chat || !ext || !text || !strchr(chat, '@') || strchr(chat, '/')) {
		chan_failed(c, ref, x->online ? "not an edit of a chat's message" : "not connected",
		            x->online ? false : true);
		return;
	}
	char *part = strndup(text, chanproto_cut(text, strlen(text), x->max_chars));
	send_with_child(x, chat, part ? part : "", "replace", "urn:xmpp:message-correct:0", "id",
	                ext, NULL);
	free(part);
	chan_sent(c, ref, ext); /* the message keeps its id: later edits replace it again */
}

/* Typing: a chat state (XEP-0085), which clients show as "is typing". */
static void
xmppch_typing(struct chan *c, const json_t *frame)
{
	struct xmppch *x = chan_data(c);
	const char *chat = json_get_str(frame, "chat");
	if (x->online && chat && strchr(chat, '@') && !strchr(chat, '/'))
		send_with_child(x, chat, NULL, "composing", "http://jabber.org/protocol/chatstates",
		                NULL, NULL, NULL);
}

/* An approval: its text and how to answer, as a message; in a room it says to answer in
 * a one-to-one chat (only there is the JID the server's word). */
static void
xmppch_approval(struct chan *c, const json_t *frame)
{
	struct xmppch *x = chan_data(c);
	int64_t ref = json_integer_value(json_object_get(frame, "ref"));
	int64_t id = json_integer_value(json_object_get(frame, "approval"));
	const char *chat = json_get_str(frame, "chat"), *text = json_get_str(frame, "text");
	if (!x->online || !chat || !strchr(chat, '@') || strchr(chat, '/')) {
		chan_failed(c, ref, x->online ? "not a bare JID" : "not connected",
		            x->online ? false : true);
		return;
	}
	char how[160] = "";
	size_t n = 0;
	const json_t *b;
	size_t i;
	json_array_foreach(json_object_get(frame, "buttons"), i, b)
	{
		n += (size_t)snprintf(how + n, sizeof(how) - n, "%s\"%s %lld\"", n ? ", " : "",
		                      json_string_value(b), (long long)id);
		if (n >= sizeof(how))
			break;
	}
	bool room = is_room(x, chat);
	char *msg = NULL;
	if (asprintf(&msg, "%s\n\nAnswer %s%s.", text ? text : "", how,
	             room ? " in a one-to-one chat with me" : "") < 0) {
		chan_failed(c, ref, "out of memory", true);
		return;
	}
	/* Remembered for the chat it may be answered in: the room's people answer one-to-one,
	 * so there any chat may (the daemon decides who is an approver). */
	x->approvals[x->approvals_next % XMPP_APPROVALS_MAX].id = id;
	snprintf(x->approvals[x->approvals_next % XMPP_APPROVALS_MAX].chat, CHANPROTO_ID_MAX + 1,
	         "%s", room ? "*" : chat);
	x->approvals_next++;
	char *sent_id = NULL;
	send_with_child(x, chat, msg, "no-store", "urn:xmpp:hints", NULL, NULL, &sent_id);
	free(msg);
	chan_sent(c, ref, sent_id ? sent_id : "?");
	xmpp_free(x->ctx, sent_id);
}

/* The daemon's verdict on an answer: the person who answered is told. */
static void
xmppch_answered(struct chan *c, const json_t *frame)
{
	struct xmppch *x = chan_data(c);
	const char *approver = json_get_str(frame, "approver"), *text = json_get_str(frame, "text");
	if (!x->online || !approver || strncmp(approver, "xmpp:", 5) != 0 || !text)
		return;
	send_with_child(x, approver + 5, text, "no-store", "urn:xmpp:hints", NULL, NULL, NULL);
}

static int
xmppch_start(struct chan *c, const json_t *config)
{
	struct xmppch *x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	chan_set_data(c, x);
	xmpp_self = x;
	x->c = c;
	x->sock = -1;
	const char *jid = json_get_str(config, "jid");
	const char *bad = NULL;
	char why[256];
	json_t *rooms = json_object_get(config, "rooms");
	json_t *port = json_object_get(config, "port");
	json_t *mc = json_object_get(config, "max_chars");
	json_t *fmax = json_object_get(config, "file_max");
	json_t *furls = json_object_get(config, "file_urls");
	if (!jid || !strchr(jid, '@') || strlen(jid) > CHANPROTO_ID_MAX)
		bad = "jid: the bot's JID (name@server) is required";
	else if (rooms && (!json_is_array(rooms) || json_array_size(rooms) > XMPP_ROOMS_MAX))
		bad = "rooms: a list of at most 32 room JIDs";
	else if (port && (!json_is_integer(port) || json_integer_value(port) < 1 ||
	                  json_integer_value(port) > 65535))
		bad = "port: 1 to 65535";
	else if (mc && (!json_is_integer(mc) || json_integer_value(mc) < 64 ||
	                json_integer_value(mc) > 65536))
		bad = "max_chars: 64 to 65536";
	else if (fmax && (!json_is_integer(fmax) || json_integer_value(fmax) < 1 ||
	                  json_integer_value(fmax) > CHANPROTO_FILE_MAX))
		bad = "file_max: 1 to 20971520 bytes";
	else if (furls && (!json_is_array(furls) || json_array_size(furls) > XMPP_FILE_URLS_MAX))
		bad = "file_urls: a list of at most 8 URL prefixes";
	else if (chan_secret(c, x->password, sizeof(x->password), why, sizeof(why)) < 0)
		bad = why;
	for (size_t i = 0; !bad && rooms && i < json_array_size(rooms); i++) {
		const char *r = json_string_value(json_array_get(rooms, i));
		if (!r || !strchr(r, '@') || strchr(r, '/') || strlen(r) > CHANPROTO_ID_MAX)
			bad = "rooms: each a bare room JID (room@conference.server)";
		else
			x->rooms[x->n_rooms++] = strdup(r);
	}
	for (size_t i = 0; !bad && furls && i < json_array_size(furls); i++) {
		const char *u = json_string_value(json_array_get(furls, i));
		/* A prefix to the end of the host at least: "https://host/" (no "https://ho"). */
		const char *h = u && strncmp(u, "https://", 8) == 0  ? u + 8
		                : u && strncmp(u, "http://", 7) == 0 ? u + 7
		                                                     : NULL;
		if (!h || !strchr(h, '/') || strchr(h, '/') == h || strlen(u) >= XMPP_URL_MAX)
			bad = "file_urls: each an http(s) URL prefix with its host and a /";
		else
			x->file_urls[x->n_file_urls++] = strdup(u);
	}
	if (bad) {
		chan_status(c, "error", bad);
		log_error("%s", bad);
		return -EINVAL;
	}
	x->jid = strdup(jid);
	const char *host = json_get_str(config, "host");
	x->host = host ? strdup(host) : NULL;
	x->port = port ? (unsigned short)json_integer_value(port) : 0;
	const char *ca = json_get_str(config, "ca_file");
	x->ca_file = ca ? strdup(ca) : NULL;
	const char *nick = json_get_str(config, "nick");
	x->nick = nick ? strdup(nick) : strndup(jid, (size_t)(strchr(jid, '@') - jid));
	x->max_chars = mc ? (size_t)json_integer_value(mc) : XMPP_CHARS_DEFAULT;
	x->file_max = fmax ? (uint64_t)json_integer_value(fmax) : CHANPROTO_FILE_MAX;
	if (!furls) { /* by default: files from our own server */
		const char *dom = strchr(jid, '@') + 1;
		if (asprintf(&x->file_urls[0], "https://%.*s/", (int)strcspn(dom, "/"), dom) < 0)
			return -ENOMEM;
		x->n_file_urls = 1;
	}

	xmpp_initialize();
	x->ctx = xmpp_ctx_new(NULL, log_debug_enabled() ? xmpp_get_default_logger(XMPP_LEVEL_DEBUG)
	                                                : NULL);
	x->tick = evtimer_new(chan_base(c), on_tick, x);
	x->retry = evtimer_new(chan_base(c), on_retry, x);
	if (!x->ctx || !x->tick || !x->retry || !x->jid || !x->nick)
		return -ENOMEM;
	connect_now(x);
	return 0;
}

static void
xmppch_stop(struct chan *c)
{
	struct xmppch *x = chan_data(c);
	if (!x)
		return;
	x->stopping = true;
	if (x->conn) {
		if (x->online) { /* a clean close: the server stores what comes next (offline) */
			xmpp_disconnect(x->conn);
			for (int i = 0; i < 50 && !xmpp_conn_is_disconnected(x->conn); i++)
				xmpp_run_once(x->ctx, 20);
		}
		xmpp_conn_release(x->conn);
	}
	unwatch(x);
	fail_waiting(x);
	chan_http_shutdown(); /* uploads and fetches under way: their callbacks never run */
	if (x->tick)
		event_free(x->tick);
	if (x->retry)
		event_free(x->retry);
	if (x->ctx)
		xmpp_ctx_free(x->ctx);
	xmpp_shutdown();
	explicit_bzero(x->password, sizeof(x->password));
	for (size_t i = 0; i < x->n_rooms; i++)
		free(x->rooms[i]);
	for (size_t i = 0; i < x->n_file_urls; i++)
		free(x->file_urls[i]);
	free(x->jid);
	free(x->host);
	free(x->ca_file);
	free(x->nick);
	free(x);
	xmpp_self = NULL;
	chan_set_data(c, NULL);
}

const struct chan_kind chan_kind_xmpp = {
    .name = "xmpp",
    .start = xmppch_start,
    .reply = xmppch_reply,
    .edit = xmppch_edit,
    .typing = xmppch_typing,
    .approval = xmppch_approval,
    .answered = xmppch_answered,
    .stop = xmppch_stop,
};
