/*
 * matrix.c: the Matrix channel, `clawbox-channel matrix`: the client-server API over
 * chan-http.h (libcurl's multi interface on the channel's one libevent loop).
 *
 * In: /sync long polling with a filter (m.room.message only, no presence, no state). The
 * since token is the channel's cursor: the last message reported from a /sync answer carries
 * that answer's next_batch, and the daemon stores the two in one transaction, so a restart
 * syncs from after the last stored message and reads nothing twice; a message reported twice
 * after a crash mid-answer is one the daemon dedupes by its event id. An answer's events are
 * reported one at a time, in order (an attachment is downloaded before the next is
 * reported), and the next /sync starts only once the whole answer is reported. The very
 * first sync (no cursor) is history: its messages are not answered.
 * Messages of every room are reported (the daemon drops and records those of rooms no group
 * is for); attachments (m.file, m.image, m.audio, m.video) are downloaded, size-capped, only
 * for configured rooms. Invitations: to a configured room, joined; to any other, rejected
 * (leave) and reported as a message of that room, so the daemon records it.
 *
 * Out: one request in flight at a time, in the daemon's order. A reply is PUT
 * /rooms/R/send/m.room.message/TXN with TXN made from the daemon's ref ("clawbox.REF.PART"),
 * so a retried send (after a lost answer, or a restart of the channel or the daemon) is
 * deduplicated by the homeserver rather than doubled; the spec keeps that promise per access
 * token (device) and for a while, not forever: the window left. Long replies are split at
 * MX_TEXT_MAX bytes (at a line break or a space where there is one). A send_file is uploaded
 * (POST /_matrix/media/v3/upload) and sent as an m.file (m.image, ...) event after the
 * text. Edits (streamed progress) are m.replace events carrying m.new_content; typing is
 * PUT /rooms/R/typing/USER. A 429 M_LIMIT_EXCEEDED pauses the queue for its retry_after_ms and
 * the same request goes again; other failures are retried with backoff, then reported.
 *
 * The access token (token_file or token_env, chanlib) is only ever put in the Authorization
 * header.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chan-http.h"
#include "chanlib.h"
#include "dbuf.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "matrix-sync.h"

#define MX_POLL_MS_DEFAULT 30000
#define MX_TEXT_MAX        16000 /* bytes of body per event: well inside the 64 KiB PDU bound */
#define MX_SYNC_BODY_MAX   (8u << 20)
#define MX_RETRY_AFTER_MAX 120000 /* ms: longer asks are capped */
#define MX_SEND_TRIES      6
#define MX_QUEUE_MAX       256
#define MX_URL_MAX         2048

enum mx_out_kind {
	MX_OUT_REPLY, /* a part of a reply */
	MX_OUT_EDIT,
	MX_OUT_TYPING,
	MX_OUT_JOIN,
	MX_OUT_LEAVE,
	MX_OUT_UPLOAD, /* a send_file's bytes, to the media repository; the next item sends it */
};

struct mx_out {
	struct mx_out *next;
	enum mx_out_kind kind;
	int64_t ref; /* the daemon's (replies and edits) */
	bool last;   /* the reply's last part: then it is reported sent */
	char *url;   /* owned */
	char *body;  /* owned JSON (uploads: the file's bytes) */
	size_t body_len;
	char ext_id[CHANPROTO_ID_MAX + 1]; /* edits: the event edited; replies: the first part's */
	int tries;
	/* uploads: what the m.file event that follows says of it */
	char file_name[CHANPROTO_FILE_NAME_MAX + 1];
	char file_type[128];
	uint64_t file_size;
};

struct mx {
	struct chan *c;
	char hs[512];
	char auth[1100];
	char user[CHANPROTO_ID_MAX + 1];
	char since[MX_SYNC_BATCH_MAX + 1];
	char filter[1024]; /* URL-escaped */
	char nonce[17];    /* this process's, for txn ids of refs that are not stable */
	long poll_ms;
	uint64_t file_max;
	/* in */
	struct chan_http *sync_req;
	struct event *sync_timer;
	struct mx_sync batch;
	size_t at;        /* the next event of batch to report */
	size_t cursor_at; /* the event that carries batch.next_batch, or SIZE_MAX */
	bool initial;     /* batch is the first sync's: history */
	struct chan_http *media_req;
	int sync_failures;
	bool connected;
	/* out */
	struct mx_out *head, **tail;
	size_t queued;
	struct chan_http *out_req;
	struct event *out_timer; /* a pause (429, backoff) */
};

static void sync_start(struct mx *m);
static void batch_next(struct mx *m);
static void out_next(struct mx *m);

/* ---- helpers ---- */

static char *
esc(const char *s)
{
	return curl_easy_escape(NULL, s, 0);
}

static void
after_ms(struct event *ev, long ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	evtimer_add(ev, &tv);
}

/* A 429's wait: the body's retry_after_ms (capped), else 5 s. */
static long
retry_after(const char *body, size_t len)
{
	_cleanup_json_ json_t *j = json_loadb(body, len, 0, NULL);
	json_t *ms = json_object_get(j, "retry_after_ms");
	if (!json_is_integer(ms) || json_integer_value(ms) < 0)
		return 5000;
	json_int_t v = json_integer_value(ms);
	return v > MX_RETRY_AFTER_MAX ? MX_RETRY_AFTER_MAX : (long)v;
}

/* "M_FORBIDDEN: You are not in this room" from an error answer, or the status. */
static void
error_text(long status, const char *body, size_t len, const char *err, char *out, size_t size)
{
	if (err) {
		snprintf(out, size, "%s", err);
		return;
	}
	_cleanup_json_ json_t *j = json_loadb(body, len, 0, NULL);
	const char *code = json_get_str(j, "errcode"), *msg = json_get_str(j, "error");
	if (code)
		snprintf(out, size, "HTTP %ld %.64s: %.200s", status, code, msg ? msg : "");
	else
		snprintf(out, size, "HTTP %ld", status);
}

static int url_fmt(struct mx *m, char **ret, const char *path_fmt, ...) _printf_(3, 4);

static int
url_fmt(struct mx *m, char **ret, const char *path_fmt, ...)
{
	char path[MX_URL_MAX];
	va_list ap;
	va_start(ap, path_fmt);
	int n = vsnprintf(path, sizeof(path), path_fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	char *u;
	if (asprintf(&u, "%s%s", m->hs, path) < 0)
		return -ENOMEM;
	*ret = u;
	return 0;
}

/* ---- in: /sync ---- */

static void
set_connected(struct mx *m, bool on, const char *detail)
{
	if (on == m->connected && on)
		return;
	m->connected = on;
	chan_status(m->c, on ? "connected" : "error", detail);
}

static void
sync_later(struct mx *m, long ms)
{
	after_ms(m->sync_timer, ms);
}

static void
sync_done(void *arg, long status, const char *body, size_t len, const char *err)
{
	struct mx *m = arg;
	m->sync_req = NULL;
	char why[300];
	if (err || status != 200) {
		error_text(status, body, len, err, why, sizeof(why));
		long wait;
		if (status == 429) {
			wait = retry_after(body, len);
		} else {
			/* 1, 2, 4 ... 30 s; a refused token is said as an error at once. */
			m->sync_failures++;
			wait = 1000L << (m->sync_failures < 5 ? m->sync_failures - 1 : 5);
			if (wait > 30000)
				wait = 30000;
			if (status == 401 || status == 403 || m->sync_failures == 3)
				set_connected(m, false, why);
			if (m->sync_failures % 10 == 1)
				log_warn("sync failed (%s); retrying in %ld s", why, wait / 1000);
		}
		sync_later(m, wait);
		return;
	}
	m->sync_failures = 0;
	int r = mx_sync_parse(body, len, m->user, &m->batch);
	if (r < 0) {
		log_warn("a /sync answer that is not one (%s); retrying", strerror(-r));
		sync_later(m, 5000);
		return;
	}
	set_connected(m, true, NULL);
	if (m->batch.skipped)
		log_warn("%zu events of one /sync answer past %d were skipped", m->batch.skipped,
		         MX_SYNC_EVENTS_MAX);
	m->initial = !m->since[0];
	m->at = 0;
	/* The cursor goes with the last event that will be reported. */
	m->cursor_at = SIZE_MAX;
	for (size_t i = m->batch.n; i-- > 0;) {
		const struct mx_event *e = &m->batch.ev[i];
		bool reported =
		    e->kind == MX_MESSAGE ? !m->initial : !chan_chat_group(m->c, e->room);
		if (reported) {
			m->cursor_at = i;
			break;
		}
	}
	batch_next(m);
}

/* The whole answer is reported: sync from its next_batch on. */
static void
batch_end(struct mx *m)
{
	snprintf(m->since, sizeof(m->since), "%s", m->batch.next_batch);
	mx_sync_done(&m->batch);
	sync_start(m);
}

static void
report(struct mx *m, const struct mx_event *e, const char *text, const struct chan_attachment *att)
{
	struct chan_message msg = {
	    .chat = e->room,
	    .chat_kind = "room",
	    .sender = e->sender,
	    .sender_name = e->sender,
	    .text = text,
	    .mention = e->mention,
	    .thread = e->thread,
	    .ext_id = e->event_id,
	    .cursor = m->at == m->cursor_at ? m->batch.next_batch : NULL,
	    .attachments = att,
	    .n_attachments = att ? 1 : 0,
	};
	int r = chan_message(m->c, &msg);
	if (r < 0 && r != -EPIPE)
		log_error("a message of %s not reported: %s", e->room, strerror(-r));
}

static void
media_done(void *arg, long status, const char *body, size_t len, const char *err)
{
	struct mx *m = arg;
	m->media_req = NULL;
	const struct mx_event *e = &m->batch.ev[m->at];
	char why[300];
	if (!err && status == 200) {
		_cleanup_close_ int fd = chanproto_memfd(e->file_name, body, len);
		if (fd >= 0) {
			struct chan_attachment a = {
			    .name = e->file_name, .type = e->file_type, .fd = fd, .size = len};
			report(m, e, e->body, &a);
			m->at++;
			batch_next(m);
			return;
		}
		snprintf(why, sizeof(why), "%s", strerror(-fd));
	} else {
		error_text(status, body, len, err, why, sizeof(why));
	}
	_cleanup_free_ char *text = NULL;
	if (asprintf(&text, "%s\n(an attachment that could not be fetched: %s)", e->body, why) < 0)
		text = NULL;
	report(m, e, text ? text : e->body, NULL);
	m->at++;
	batch_next(m);
}

/* Starts the download of e's file: 0, or -errno (then e is reported without it, saying so). */
static int
media_start(struct mx *m, const struct mx_event *e, char *why, size_t why_size)
{
	char server[256], id[256];
	if (mx_media_split(e->media_url, server, sizeof(server), id, sizeof(id)) < 0) {
		snprintf(why, why_size, "not a media URL");
		return -EINVAL;
	}
	if (e->file_size > 0 && (uint64_t)e->file_size > m->file_max) {
		snprintf(why, why_size, "%lld bytes, past the channel's %llu",
		         (long long)e->file_size, (unsigned long long)m->file_max);
		return -EFBIG;
	}
	_cleanup_free_ char *url = NULL;
	int r = url_fmt(m, &url, "/_matrix/client/v1/media/download/%s/%s", server, id);
	if (r < 0) {
		snprintf(why, why_size, "%s", strerror(-r));
		return r;
	}
	const char *hdr[] = {m->auth, NULL};
	struct chan_http_req req = {
	    .url = url, .headers = hdr, .timeout_s = 120, .max_body = m->file_max};
	r = chan_http_start(m->c, &req, media_done, m, &m->media_req);
	if (r < 0)
		snprintf(why, why_size, "%s", strerror(-r));
	return r;
}

static struct mx_out *out_push(struct mx *m, enum mx_out_kind kind, int64_t ref, char *url,
                               char *body);

static void
take_invite(struct mx *m, const struct mx_event *e)
{
	_cleanup_free_ char *room = esc(e->room);
	char *url = NULL;
	bool ours = chan_chat_group(m->c, e->room) != NULL;
	/* Joining is the one thing an invite can make us do: only rooms the config names. */
	if (!room ||
	    url_fmt(m, &url,
	            ours ? "/_matrix/client/v3/join/%s" : "/_matrix/client/v3/rooms/%s/leave",
	            room) < 0)
		return;
	if (!out_push(m, ours ? MX_OUT_JOIN : MX_OUT_LEAVE, 0, url, strdup("{}")))
		return;
	out_next(m);
	log_info("%s: invited by %s; %s", e->room, e->sender,
	         ours ? "joining" : "no group is for this room: refused");
	if (!ours) {
		char ext[CHANPROTO_ID_MAX + 1];
		snprintf(ext, sizeof(ext), "invite:%.200s", e->room);
		struct mx_event inv = *e;
		inv.event_id = ext;
		report(m, &inv, "(an invitation to this room, refused)", NULL);
	}
}

/* Reports the answer's events from m->at on, pausing for a download. */
static void
batch_next(struct mx *m)
{
	while (m->at < m->batch.n) {
		const struct mx_event *e = &m->batch.ev[m->at];
		if (e->kind == MX_INVITE) {
			take_invite(m, e);
		} else if (!m->initial) {
			if (e->media_url && chan_chat_group(m->c, e->room)) {
				char why[300];
				if (media_start(m, e, why, sizeof(why)) == 0)
					return; /* media_done goes on */
				_cleanup_free_ char *text = NULL;
				if (asprintf(&text, "%s\n(an attachment that was not fetched: %s)",
				             e->body, why) < 0)
					text = NULL;
				report(m, e, text ? text : e->body, NULL);
			} else {
				report(m, e, e->body, NULL);
			}
		}
		m->at++;
	}
	batch_end(m);
}

static void
sync_start(struct mx *m)
{
	if (m->sync_req)
		return;
	_cleanup_free_ char *since = m->since[0] ? esc(m->since) : NULL;
	char *url = NULL;
	/* The first sync is for its next_batch only: no waiting. */
	int r = url_fmt(m, &url, "/_matrix/client/v3/sync?timeout=%ld&filter=%s%s%s",
	                m->since[0] ? m->poll_ms : 0L, m->filter, since ? "&since=" : "",
	                since ? since : "");
	_cleanup_free_ char *u = url;
	const char *hdr[] = {m->auth, NULL};
	struct chan_http_req req = {.url = u,
	                            .headers = hdr,
	                            .timeout_s = m->poll_ms / 1000 + 30,
	                            .max_body = MX_SYNC_BODY_MAX};
	if (r < 0 || chan_http_start(m->c, &req, sync_done, m, &m->sync_req) < 0)
		sync_later(m, 5000);
}

static void
on_sync_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	sync_start(arg);
}

static void
whoami_done(void *arg, long status, const char *body, size_t len, const char *err)
{
	struct mx *m = arg;
	m->sync_req = NULL;
	_cleanup_json_ json_t *j = err || status != 200 ? NULL : json_loadb(body, len, 0, NULL);
	const char *user = json_get_str(j, "user_id");
	if (!user || !*user || strlen(user) > CHANPROTO_ID_MAX) {
		char why[300];
		error_text(status, body, len, err, why, sizeof(why));
		if (status == 401 || status == 403 || ++m->sync_failures == 3)
			set_connected(m, false, why);
		/* A refused token is asked about again each minute (it may be renewed in its
		 * file, which a restart reads); anything else sooner. */
		bool refused = status == 401 || status == 403;
		log_warn("whoami failed (%s); retrying", why);
		after_ms(m->out_timer, refused ? 60000 : 5000); /* out_timer: see on_out_timer */
		return;
	}
	m->sync_failures = 0;
	snprintf(m->user, sizeof(m->user), "%s", user);
	log_info("signed in as %s at %s", m->user, m->hs);
	sync_start(m);
	out_next(m);
}

static void
whoami_start(struct mx *m)
{
	_cleanup_free_ char *url = NULL;
	const char *hdr[] = {m->auth, NULL};
	if (url_fmt(m, &url, "/_matrix/client/v3/account/whoami") < 0)
		return;
	struct chan_http_req req = {.url = url, .headers = hdr, .timeout_s = 30};
	if (chan_http_start(m->c, &req, whoami_done, m, &m->sync_req) < 0)
		after_ms(m->out_timer, 5000);
}

/* ---- out ---- */

static void
out_free(struct mx_out *o)
{
	if (!o)
		return;
	free(o->url);
	free(o->body);
	free(o);
}

/* Queues a request; takes url and body (freed on failure too). The caller finishes the
 * item's fields, then calls out_next(). NULL: out of memory, or the queue is full. */
static struct mx_out *
out_push(struct mx *m, enum mx_out_kind kind, int64_t ref, char *url, char *body)
{
	struct mx_out *o = m->queued < MX_QUEUE_MAX ? calloc(1, sizeof(*o)) : NULL;
	if (!o || !url || !body) {
		free(url);
		free(body);
		free(o);
		return NULL;
	}
	o->kind = kind;
	o->ref = ref;
	o->url = url;
	o->body = body;
	o->body_len = strlen(body);
	*m->tail = o;
	m->tail = &o->next;
	m->queued++;
	return o;
}

static void
out_pop(struct mx *m)
{
	struct mx_out *o = m->head;
	m->head = o->next;
	if (!m->head)
		m->tail = &m->head;
	m->queued--;
	out_free(o);
}

/* The head failed for good: a reply's other parts go with it. */
static void
out_fail(struct mx *m, const char *why, bool retry)
{
	struct mx_out *o = m->head;
	int64_t ref = o->ref;
	enum mx_out_kind kind = o->kind;
	bool reply = kind == MX_OUT_REPLY || kind == MX_OUT_UPLOAD;
	if (reply || kind == MX_OUT_EDIT)
		chan_failed(m->c, ref, why, retry);
	else if (kind == MX_OUT_JOIN)
		log_warn("joining failed: %s", why);
	out_pop(m);
	while (reply && m->head && m->head->ref == ref &&
	       (m->head->kind == MX_OUT_REPLY || m->head->kind == MX_OUT_UPLOAD))
		out_pop(m);
}

/* An upload is done: the m.file event queued after it gets the content URI. 0, or -EBADMSG
 * when the answer has none. */
static int
upload_done(struct mx *m, struct mx_out *o, const json_t *answer)
{
	const char *uri = json_get_str(answer, "content_uri");
	struct mx_out *ev = o->next;
	if (!uri || strncmp(uri, "mxc://", 6) != 0 || strlen(uri) > CHANPROTO_ID_MAX || !ev ||
	    ev->ref != o->ref)
		return -EBADMSG;
	const char *msgtype = strncmp(o->file_type, "image/", 6) == 0   ? "m.image"
	                      : strncmp(o->file_type, "audio/", 6) == 0 ? "m.audio"
	                      : strncmp(o->file_type, "video/", 6) == 0 ? "m.video"
	                                                                : "m.file";
	_cleanup_json_ json_t *content =
	    json_pack("{s:s,s:s,s:s,s:s,s:{s:I,s:s}}", "msgtype", msgtype, "body", o->file_name,
	              "filename", o->file_name, "url", uri, "info", "size",
	              (json_int_t)o->file_size, "mimetype", o->file_type);
	char *body = content ? json_dumps(content, JSON_COMPACT) : NULL;
	if (!body)
		return -ENOMEM;
	(void)m;
	free(ev->body);
	ev->body = body;
	ev->body_len = strlen(body);
	return 0;
}

static void
out_done(void *arg, long status, const char *body, size_t len, const char *err)
{
	struct mx *m = arg;
	m->out_req = NULL;
	struct mx_out *o = m->head;
	char why[300];
	if (!err && status == 200) {
		_cleanup_json_ json_t *j = json_loadb(body, len, 0, NULL);
		const char *id = json_get_str(j, "event_id");
		if (o->kind == MX_OUT_REPLY) {
			if (!o->ext_id[0] && id && strlen(id) <= CHANPROTO_ID_MAX)
				snprintf(o->ext_id, sizeof(o->ext_id), "%s", id);
			if (o->last)
				chan_sent(m->c, o->ref, o->ext_id[0] ? o->ext_id : "-");
			else if (o->next && o->next->ref == o->ref)
				memcpy(o->next->ext_id, o->ext_id, sizeof(o->ext_id));
		} else if (o->kind == MX_OUT_EDIT) {
			chan_sent(m->c, o->ref, o->ext_id);
		} else if (o->kind == MX_OUT_UPLOAD && upload_done(m, o, j) < 0) {
			out_fail(m, "the media repository's answer has no content_uri", true);
			out_next(m);
			return;
		}
		out_pop(m);
		out_next(m);
		return;
	}
	error_text(status, body, len, err, why, sizeof(why));
	if (status == 429) {
		/* The homeserver's word on when to come back; the same txn id goes again. */
		long ms = retry_after(body, len);
		log_info("rate limited: sending again in %ld ms", ms);
		after_ms(m->out_timer, ms);
		return;
	}
	bool transient = err || status >= 500 || status == 0;
	if (transient && ++o->tries < MX_SEND_TRIES && o->kind != MX_OUT_TYPING) {
		after_ms(m->out_timer, 1000L << (o->tries - 1));
		return;
	}
	out_fail(m, why, transient);
	out_next(m);
}

static void
out_next(struct mx *m)
{
	if (m->out_req || !m->head || !m->user[0] || evtimer_pending(m->out_timer, NULL))
		return;
	struct mx_out *o = m->head;
	const char *hdr[] = {m->auth, NULL};
	bool put = o->kind == MX_OUT_REPLY || o->kind == MX_OUT_EDIT || o->kind == MX_OUT_TYPING;
	bool upload = o->kind == MX_OUT_UPLOAD;
	struct chan_http_req req = {.method = put ? "PUT" : "POST",
	                            .url = o->url,
	                            .headers = hdr,
	                            .body = o->body,
	                            .body_len = o->body_len,
	                            .content_type = upload ? o->file_type : NULL,
	                            .timeout_s = upload ? 120 : 30,
	                            .max_body = 64 * 1024};
	int r = chan_http_start(m->c, &req, out_done, m, &m->out_req);
	if (r < 0) {
		out_fail(m, strerror(-r), true);
		out_next(m);
	}
}

static void
on_out_timer(evutil_socket_t fd, short what, void *arg)
{
	struct mx *m = arg;
	(void)fd;
	(void)what;
	if (!m->user[0]) { /* still signing in */
		whoami_start(m);
		return;
	}
	out_next(m);
}

/* The daemon's refs for replies are its message ids, the same after any restart: their txn
 * ids are the ref alone, so a resend is deduplicated. Its other refs (progress messages,
 * edits) count up from CH_EPHEMERAL_REF afresh with each daemon start: their txn ids carry
 * this process's nonce too, or a new progress message could be taken for an old one. */
#define MX_STABLE_REF_MAX ((int64_t)1 << 50)

static void
txn_id(const struct mx *m, const char *what, int64_t ref, int part, char *out, size_t size)
{
	if (ref > 0 && ref < MX_STABLE_REF_MAX)
		snprintf(out, size, "clawbox.%s%lld.%d", what, (long long)ref, part);
	else
		snprintf(out, size, "clawbox.%s.%s%lld.%d", m->nonce, what, (long long)ref, part);
}

/* PUT /rooms/ROOM/send/m.room.message/TXN */
static int
send_url(struct mx *m, const char *room, const char *txn, char **ret)
{
	_cleanup_free_ char *r = esc(room), *t = esc(txn);
	if (!r || !t)
		return -ENOMEM;
	return url_fmt(m, ret, "/_matrix/client/v3/rooms/%s/send/m.room.message/%s", r, t);
}

/* Where a part of n bytes of s (more follows) ends: after the last line break in its second
 * half, else after the last space there, else at n. */
static size_t
split_point(const char *s, size_t n)
{
	for (const char *sep = "\n "; *sep; sep++)
		for (size_t k = n; k > n / 2; k--)
			if (s[k - 1] == *sep)
				return k;
	return n;
}

/* A send_file's file (the daemon's sealed memfd copy) as an upload, then the event that
 * shows it, queued after the reply's text. 0, or -errno with why. */
static int
queue_file(struct mx *m, const json_t *f, int file_fd, int64_t ref, const char *room, char *why,
           size_t why_size)
{
	const json_t *file = json_object_get(f, "file");
	const char *name = json_get_str(file, "name") ?: "file";
	const char *type = json_get_str(file, "type") ?: "application/octet-stream";
	struct stat st;
	if (fstat(file_fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < 0 ||
	    (uint64_t)st.st_size > CHANPROTO_FILE_MAX || strlen(type) >= 128 ||
	    strpbrk(type, "\r\n")) {
		snprintf(why, why_size, "the file to send is not one");
		return -EINVAL;
	}
	size_t size = (size_t)st.st_size;
	char *data = malloc(size + 1);
	ssize_t n = data ? pread(file_fd, data, size, 0) : -1;
	if (n < 0 || (size_t)n != size) {
		free(data);
		snprintf(why, why_size, "the file to send cannot be read");
		return -EIO;
	}
	data[size] = '\0';
	_cleanup_free_ char *fname = esc(name);
	char *up_url = NULL, *ev_url = NULL, txn[96];
	if (!fname || url_fmt(m, &up_url, "/_matrix/media/v3/upload?filename=%s", fname) < 0) {
		free(data);
		snprintf(why, why_size, "out of memory");
		return -ENOMEM;
	}
	struct mx_out *up = out_push(m, MX_OUT_UPLOAD, ref, up_url, data);
	if (up) {
		up->body_len = size;
		snprintf(up->file_name, sizeof(up->file_name), "%s", name);
		snprintf(up->file_type, sizeof(up->file_type), "%s", type);
		up->file_size = size;
	}
	txn_id(m, "f", ref, 0, txn, sizeof(txn));
	struct mx_out *ev = up && send_url(m, room, txn, &ev_url) == 0
	                        ? out_push(m, MX_OUT_REPLY, ref, ev_url, strdup("{}"))
	                        : NULL;
	if (!ev) {
		snprintf(why, why_size, "the channel's send queue is full");
		return -ENOBUFS;
	}
	ev->last = true;
	return 0;
}

static void
mx_reply(struct chan *c, const json_t *f, int file_fd)
{
	struct mx *m = chan_data(c);
	int64_t ref = json_integer_value(json_object_get(f, "ref"));
	const char *room = json_get_str(f, "chat");
	const char *text = json_get_str(f, "text") ?: "";
	const char *thread = json_get_str(f, "thread");
	const char *reply_to = json_get_str(f, "reply_to");
	if (!room || !chan_chat_group(c, room)) {
		chan_failed(c, ref, "no group is for this room", false);
		return;
	}
	size_t len = strlen(text), off = 0;
	int part = 0;
	struct mx_out *o = NULL;
	while (off < len || (len == 0 && part == 0 && file_fd < 0)) {
		size_t n = chanproto_cut(text + off, len - off, MX_TEXT_MAX);
		if (n == 0 && len - off > 0)
			n = len - off; /* cannot happen with valid UTF-8; no endless loop */
		if (off + n < len)     /* not the last part: end it at a line break or a space */
			n = split_point(text + off, n);
		_cleanup_json_ json_t *content =
		    json_pack("{s:s,s:s%}", "msgtype", "m.text", "body", text + off, n);
		json_t *rel = NULL;
		if (thread) /* a thread reply, with the fallback for clients without threads */
			rel = json_pack("{s:s,s:s,s:b}", "rel_type", "m.thread", "event_id", thread,
			                "is_falling_back", !reply_to);
		if (reply_to && part == 0) {
			if (!rel)
				rel = json_object();
			json_object_set_new(rel, "m.in_reply_to",
			                    json_pack("{s:s}", "event_id", reply_to));
		}
		if (rel)
			json_object_set_new(content, "m.relates_to", rel);
		char txn[64];
		txn_id(m, "", ref, part, txn, sizeof(txn));
		char *url = NULL;
		char *body = content ? json_dumps(content, JSON_COMPACT) : NULL;
		if (send_url(m, room, txn, &url) < 0 ||
		    !(o = out_push(m, MX_OUT_REPLY, ref, url, body))) {
			/* Parts already queued go out; the reply is reported failed (and so
			 * retried whole: the same txn ids, so nothing is doubled). */
			chan_failed(c, ref, "the channel's send queue is full", true);
			out_next(m);
			return;
		}
		off += n;
		part++;
	}
	if (file_fd >= 0) {
		char why[160];
		if (queue_file(m, f, file_fd, ref, room, why, sizeof(why)) < 0) {
			chan_failed(c, ref, why, false);
			out_next(m);
			return;
		}
	} else {
		o->last = true; /* the last part is the one reported sent */
	}
	out_next(m);
}

static void
mx_edit(struct chan *c, const json_t *f)
{
	struct mx *m = chan_data(c);
	int64_t ref = json_integer_value(json_object_get(f, "ref"));
	const char *room = json_get_str(f, "chat");
	const char *ext_id = json_get_str(f, "ext_id");
	const char *text = json_get_str(f, "text") ?: "";
	if (!room || !ext_id || !chan_chat_group(c, room)) {
		chan_failed(c, ref, "no group is for this room", false);
		return;
	}
	size_t n = chanproto_cut(text, strlen(text), MX_TEXT_MAX);
	/* An edit not yet sent is replaced by a newer one of the same event: only the last
	 * text matters (and it is the one a 429 would otherwise make wait in line). */
	for (struct mx_out *o = m->head; o; o = o->next) {
		if (o->kind != MX_OUT_EDIT || strcmp(o->ext_id, ext_id) != 0 || o->tries ||
		    (o == m->head && m->out_req))
			continue;
		_cleanup_json_ json_t *content =
		    json_pack("{s:s,s:s+%,s:{s:s,s:s%},s:{s:s,s:s}}", "msgtype", "m.text", "body",
		              "* ", text, n, "m.new_content", "msgtype", "m.text", "body", text, n,
		              "m.relates_to", "rel_type", "m.replace", "event_id", ext_id);
		char *body = content ? json_dumps(content, JSON_COMPACT) : NULL;
		if (!body)
			break;
		chan_sent(c, o->ref, ext_id); /* superseded: its text is in the newer one */
		free(o->body);
		o->body = body;
		o->ref = ref;
		return;
	}
	_cleanup_json_ json_t *content =
	    json_pack("{s:s,s:s+%,s:{s:s,s:s%},s:{s:s,s:s}}", "msgtype", "m.text", "body", "* ",
	              text, n, "m.new_content", "msgtype", "m.text", "body", text, n,
	              "m.relates_to", "rel_type", "m.replace", "event_id", ext_id);
	char txn[64];
	txn_id(m, "e", ref, 0, txn, sizeof(txn));
	char *url = NULL;
	char *body = content ? json_dumps(content, JSON_COMPACT) : NULL;
	struct mx_out *o = NULL;
	if (send_url(m, room, txn, &url) < 0 || !(o = out_push(m, MX_OUT_EDIT, ref, url, body))) {
		chan_failed(c, ref, "the channel's send queue is full", true);
		return;
	}
	snprintf(o->ext_id, sizeof(o->ext_id), "%s", ext_id);
	out_next(m);
}

static void
mx_typing(struct chan *c, const json_t *f)
{
	struct mx *m = chan_data(c);
	const char *room = json_get_str(f, "chat");
	if (!room || !chan_chat_group(c, room) || !m->user[0])
		return;
	_cleanup_free_ char *r = esc(room), *u = esc(m->user);
	char *url = NULL;
	if (!r || !u || url_fmt(m, &url, "/_matrix/client/v3/rooms/%s/typing/%s", r, u) < 0)
		return;
	if (out_push(m, MX_OUT_TYPING, 0, url, strdup("{\"typing\":true,\"timeout\":20000}")))
		out_next(m);
}

/* ---- life ---- */

static int
mx_start(struct chan *c, const json_t *config)
{
	struct mx *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	chan_set_data(c, m);
	m->c = c;
	m->tail = &m->head;
	const char *hs = json_get_str(config, "homeserver");
	if (!hs || (strncmp(hs, "http://", 7) != 0 && strncmp(hs, "https://", 8) != 0) ||
	    strlen(hs) >= sizeof(m->hs)) {
		chan_status(c, "error", "\"homeserver\" must be an http:// or https:// URL");
		return -EINVAL;
	}
	snprintf(m->hs, sizeof(m->hs), "%s", hs);
	for (size_t n = strlen(m->hs); n > 0 && m->hs[n - 1] == '/';)
		m->hs[--n] = '\0';
	char token[1024], why[256];
	int r = chan_secret(c, token, sizeof(token), why, sizeof(why));
	if (r < 0 || strpbrk(token, "\r\n ")) {
		chan_status(c, "error", r < 0 ? why : "the access token has spaces or newlines");
		explicit_bzero(token, sizeof(token));
		return r < 0 ? r : -EINVAL;
	}
	snprintf(m->auth, sizeof(m->auth), "Authorization: Bearer %s", token);
	explicit_bzero(token, sizeof(token));
	json_t *poll = json_object_get(config, "poll_timeout_ms");
	m->poll_ms = json_is_integer(poll) && json_integer_value(poll) >= 0 &&
	                     json_integer_value(poll) <= 120000
	                 ? (long)json_integer_value(poll)
	                 : MX_POLL_MS_DEFAULT;
	json_t *fmax = json_object_get(config, "file_max");
	m->file_max = json_is_integer(fmax) && json_integer_value(fmax) > 0 &&
	                      (uint64_t)json_integer_value(fmax) < CHANPROTO_FILE_MAX
	                  ? (uint64_t)json_integer_value(fmax)
	                  : CHANPROTO_FILE_MAX;
	/* Only messages, a bounded timeline per room, none of the rest: what we act on. */
	_cleanup_free_ char *filter = esc(
	    "{\"presence\":{\"types\":[]},\"account_data\":{\"types\":[]},\"room\":{\"timeline\":"
	    "{\"types\":[\"m.room.message\"],\"limit\":50},\"state\":{\"types\":[]},"
	    "\"ephemeral\":{\"types\":[]},\"account_data\":{\"types\":[]}}}");
	if (!filter || strlen(filter) >= sizeof(m->filter)) {
		chan_status(c, "error", "the sync filter does not fit (a bug)");
		return -ENOMEM;
	}
	snprintf(m->filter, sizeof(m->filter), "%s", filter);
	const char *cursor = chan_cursor(c);
	if (cursor && strlen(cursor) < sizeof(m->since))
		snprintf(m->since, sizeof(m->since), "%s", cursor);
	unsigned char rnd[8];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -EIO;
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(m->nonce + 2 * i, 3, "%02x", rnd[i]);
	m->sync_timer = evtimer_new(chan_base(c), on_sync_timer, m);
	m->out_timer = evtimer_new(chan_base(c), on_out_timer, m);
	if (!m->sync_timer || !m->out_timer)
		return -ENOMEM;
	chan_status(c, "connecting", m->hs);
	whoami_start(m);
	return 0;
}

static void
mx_stop(struct chan *c)
{
	struct mx *m = chan_data(c);
	if (!m)
		return;
	chan_http_cancel(m->sync_req);
	chan_http_cancel(m->media_req);
	chan_http_cancel(m->out_req);
	chan_http_shutdown();
	while (m->head)
		out_pop(m);
	mx_sync_done(&m->batch);
	if (m->sync_timer)
		event_free(m->sync_timer);
	if (m->out_timer)
		event_free(m->out_timer);
	explicit_bzero(m->auth, sizeof(m->auth));
	free(m);
	chan_set_data(c, NULL);
}

const struct chan_kind chan_kind_matrix = {
    .name = "matrix",
    .start = mx_start,
    .reply = mx_reply,
    .edit = mx_edit,
    .typing = mx_typing,
    .stop = mx_stop,
};
