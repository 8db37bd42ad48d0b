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

#include "chanlib.h"
#include "json-util.h"
#include "log.h"

#define XMPP_TICK_MS         500
#define XMPP_CONNECT_TICK_MS 20
#define XMPP_BACKOFF_MAX_S   60
#define XMPP_ROOMS_MAX       32
#define XMPP_CHARS_DEFAULT   4000
#define XMPP_SECRET_MAX      1024
#define XMPP_NS_MUC          "http://jabber.org/protocol/muc"
#define XMPP_NS_DELAY        "urn:xmpp:delay"
#define XMPP_NS_SID          "urn:xmpp:sid:0"
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
};

static void connect_now(struct xmppch *x);

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
		int r = chan_message(x->c, &m);
		if (r < 0 && r != -EPIPE)
			log_warn("a message from %s not reported: %s", bare, strerror(-r));
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
		chan_status(x->c, "connected", NULL);
		return;
	}
	if (status == XMPP_CONN_RAW_CONNECT)
		return;
	/* Lost or refused: say so, and again later. */
	x->online = false;
	unwatch(x);
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

static void
xmppch_reply(struct chan *c, const json_t *frame, int file_fd)
{
	struct xmppch *x = chan_data(c);
	(void)file_fd;
	int64_t ref = json_integer_value(json_object_get(frame, "ref"));
	const char *chat = json_get_str(frame, "chat");
	const char *text = json_get_str(frame, "text");
	if (json_object_get(frame, "file")) {
		chan_failed(c, ref, "files are not sent over XMPP yet", false);
		return;
	}
	if (!x->online) {
		chan_failed(c, ref, "not connected to the XMPP server", true);
		return;
	}
	if (!chat || !strchr(chat, '@') || strchr(chat, '/')) {
		chan_failed(c, ref, "not a bare JID", false);
		return;
	}
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
	else if (chan_secret(c, x->password, sizeof(x->password), why, sizeof(why)) < 0)
		bad = why;
	for (size_t i = 0; !bad && rooms && i < json_array_size(rooms); i++) {
		const char *r = json_string_value(json_array_get(rooms, i));
		if (!r || !strchr(r, '@') || strchr(r, '/') || strlen(r) > CHANPROTO_ID_MAX)
			bad = "rooms: each a bare room JID (room@conference.server)";
		else
			x->rooms[x->n_rooms++] = strdup(r);
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
