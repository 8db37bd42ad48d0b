/*
 * slack.c: the Slack channel, `clawbox-channel slack`. Socket Mode, so no public URL is
 * needed: apps.connections.open (with the app-level token) hands out a wss URL, the socket
 * (ws.c) says "hello" and then delivers envelopes; each is acknowledged by its envelope_id.
 * Replies go out through the Web API (chat.postMessage, with the bot token), progress as
 * chat.update of the message the reply became.
 *
 * In: events_api envelopes carrying a `message` (a DM, or a channel the bot is in) or an
 * `app_mention`. Both kinds of one message share channel and ts, so ext_id "CHANNEL:TS"
 * makes the daemon take it once; a DM or a text with "<@BOT>" is a mention, and the
 * daemon's trigger rule decides the rest. An envelope is acked only when the daemon says
 * "stored": a crash or a dropped socket before that leaves it unacked and Slack delivers it
 * again (retry_attempt > 0), which the dedupe answers once. Edits, bot messages (our own
 * included) and other subtypes are acked and dropped.
 *
 * Out: reply and edit frames are queued (bounded) and sent one at a time, in order; a reply
 * longer than Slack's 4,000 characters goes out as several messages; a 429 waits the
 * Retry-After it carries; other failures are retried with backoff and then reported failed.
 * Slack has no typing indicator for bots in Socket Mode (only the old RTM API had one), so
 * typing frames are ignored. A crash between Slack's answer to chat.postMessage and the
 * "sent" receipt can post a reply twice: the Web API has no idempotency key to prevent it.
 *
 * Files: a message's files[] are fetched (the bot token goes only to URLs under the
 * config's "files_url", Slack's files host by default; at most "file_max" bytes each) before
 * the message goes to the daemon, as attachment memfds; one not fetched is named in the
 * text. send_file is an op of the same queue in three steps: files.getUploadURLExternal,
 * the bytes POSTed to the pre-signed upload URL (https only, no token), and
 * files.completeUploadExternal into the chat and thread, the text as its comment.
 *
 * Connection: a "disconnect" envelope (Slack refreshes sockets every few hours) opens the
 * next connection at once; a dropped or failed one reconnects with backoff (1 s doubling to
 * 60 s). Tokens: the channel's secret (token_file or token_env) holds both, separated by
 * white space and told apart by prefix: the app-level token (xapp-) for Socket Mode and the
 * bot token (xoxb-) for the Web API. Config: "api_url" (default https://slack.com/api),
 * "ca_file" (a CA to trust instead of the system's: tests).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chan-http.h"
#include "dbuf.h"
#include "chanlib.h"
#include "json-util.h"
#include "macro.h"
#include "slack.h"
#include "textsplit.h"
#include "ws.h"

#define SLACK_API_DEFAULT   "https://slack.com/api"
#define SLACK_FILES_DEFAULT "https://files.slack.com/"
#define SLACK_TEXT_MAX      4000 /* characters: Slack asks for at most this much per message */
#define SLACK_PENDING_MAX   64   /* envelopes waiting for "stored" */
#define SLACK_OUT_MAX       64   /* replies and edits queued */
#define SLACK_TOKEN_MAX     256
#define SLACK_TRIES_MAX     5
#define SLACK_BACKOFF_MAX   60

/* ---- the channel ---- */

struct slack_op {
	bool edit;      /* chat.update of the message thread names */
	bool ephemeral; /* chat.postEphemeral to user: an approval's verdict (no receipt) */
	json_t *blocks; /* an approval's buttons, or NULL */
	char user[72];
	int64_t ref;
	char chat[CHANPROTO_ID_MAX + 1];
	char thread[CHANPROTO_ID_MAX + 1]; /* reply: "" none; edit: the message's ts */
	char *text;
	size_t len, off; /* off: how much is out already */
	size_t piece;    /* the length of the piece in flight */
	char first_ts[64];
	int tries;
	/* send_file: three steps, each retried on its own (the bytes are kept until done) */
	char *data;
	size_t data_len;
	int step; /* 0 getUploadURLExternal, 1 the bytes to upload_url, 2 completeUploadExternal */
	char name[128];
	char file_id[64];
	char *upload_url;
};

struct pending {
	char ext_id[160];
	char envelope_id[136];
};

#define SLACK_PRESSES_MAX 8 /* presses whose verdict is awaited */

struct press {
	long long approval;
	char approver[80];
	char chat[72];
};

struct slack {
	struct chan *c;
	char app_token[SLACK_TOKEN_MAX], bot_token[SLACK_TOKEN_MAX];
	char auth_app[SLACK_TOKEN_MAX + 32], auth_bot[SLACK_TOKEN_MAX + 32];
	const char *api, *ca_file;
	const char *files_url; /* the prefix of every file URL the bot token may go to */
	uint64_t file_max;     /* bytes of a file fetched */
	char bot_user[64];
	struct ws *ws;       /* the connection in use */
	struct ws *old;      /* the one a "disconnect" retired, until the next says hello */
	bool opening;        /* apps.connections.open in flight */
	bool upgraded;       /* sl.ws got through TLS and the upgrade */
	struct event *again; /* reconnect after backoff */
	int backoff_s;
	struct pending pend[SLACK_PENDING_MAX];
	struct slack_op *out[SLACK_OUT_MAX];
	size_t out_head, out_n;
	bool sending;
	struct event *out_wait; /* a 429's Retry-After, or a retry's backoff */
	struct press press[SLACK_PRESSES_MAX];
	size_t n_press;
};

static struct slack sl;

static void connect_now(void);
static void out_next(void);
struct slack_op;
static int file_step_done(struct slack_op *op, const json_t *j);
static int file_step_start(struct slack_op *op);
static char *escape(const char *text, size_t len);
struct incoming;
static void in_next_file(struct incoming *im);

static void
api_url(const char *method, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s", sl.api, method);
}

/* state: "connecting" (a retry will likely do), or "error" (it needs the user: a token
 * Slack refuses), shown until the retry works. */
static void
reconnect_later(const char *state, const char *why)
{
	if (sl.again && !evtimer_pending(sl.again, NULL)) {
		struct timeval t = {sl.backoff_s, 0};
		evtimer_add(sl.again, &t);
		char detail[200];
		snprintf(detail, sizeof(detail), "%s; again in %d s", why, sl.backoff_s);
		(void)chan_status(sl.c, state, detail);
		sl.backoff_s =
		    sl.backoff_s * 2 > SLACK_BACKOFF_MAX ? SLACK_BACKOFF_MAX : sl.backoff_s * 2;
	}
}

static void
on_again(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	connect_now();
}

/* Acks every envelope of ext_id on the socket in use (an envelope is acked by id, on any of
 * the app's connections). */
static void
ack(const char *envelope_id)
{
	char buf[200];
	int n = snprintf(buf, sizeof(buf), "{\"envelope_id\":\"%s\"}", envelope_id);
	struct ws *w = sl.ws ? sl.ws : sl.old;
	if (w && n > 0 && (size_t)n < sizeof(buf))
		(void)ws_send_text(w, buf, (size_t)n);
}

static void
slack_stored(struct chan *c, const char *ext_id)
{
	(void)c;
	for (size_t i = 0; i < SLACK_PENDING_MAX; i++)
		if (sl.pend[i].ext_id[0] && strcmp(sl.pend[i].ext_id, ext_id) == 0) {
			ack(sl.pend[i].envelope_id);
			sl.pend[i].ext_id[0] = '\0';
		}
}

static bool
pend_add(const char *ext_id, const char *envelope_id)
{
	for (size_t i = 0; i < SLACK_PENDING_MAX; i++)
		if (!sl.pend[i].ext_id[0]) {
			snprintf(sl.pend[i].ext_id, sizeof(sl.pend[i].ext_id), "%s", ext_id);
			snprintf(sl.pend[i].envelope_id, sizeof(sl.pend[i].envelope_id), "%s",
			         envelope_id);
			return true;
		}
	return false;
}

static void
on_open(struct ws *w, void *arg)
{
	(void)arg;
	if (w == sl.ws)
		sl.upgraded = true;
}

/* ---- files in ---- */

/* A message on its way to the daemon: its files are fetched one by one first (the envelope
 * stays unacked meanwhile, so a crash loses nothing). */
struct incoming {
	struct slack_in in;
	size_t next; /* the index in files[] to look at next */
	struct chan_attachment att[CHANPROTO_FDS_MAX];
	char names[CHANPROTO_FDS_MAX][128], types[CHANPROTO_FDS_MAX][128];
	size_t n_att;
	struct dbuf notes; /* files not fetched, said in the text */
};

static void
in_report(struct incoming *im)
{
	_cleanup_free_ char *text = NULL;
	if (im->notes.len > 0 &&
	    asprintf(&text, "%s%.*s", im->in.text, (int)im->notes.len, im->notes.p) < 0)
		text = NULL;
	struct chan_message m = {
	    .chat = im->in.chat,
	    .chat_kind = im->in.chat_kind,
	    .sender = im->in.user,
	    .text = text ? text : im->in.text,
	    .mention = im->in.mention,
	    .thread = im->in.thread,
	    .ext_id = im->in.ext_id,
	    .attachments = im->n_att ? im->att : NULL,
	    .n_attachments = im->n_att,
	};
	if (chan_message(sl.c, &m) < 0)
		slack_stored(sl.c, im->in.ext_id); /* a message the protocol refuses: drop it */
	for (size_t i = 0; i < im->n_att; i++)
		close(im->att[i].fd);
	dbuf_done(&im->notes);
	slack_in_done(&im->in);
	free(im);
}

static void
in_note(struct incoming *im, const char *name, const char *why)
{
	char line[300];
	snprintf(line, sizeof(line), "\n(a file that could not be fetched: %.100s: %s)", name, why);
	(void)dbuf_puts(&im->notes, line);
}

static void
in_file_done(void *arg, long status, const char *body, size_t len, const char *err)
{
	struct incoming *im = arg;
	size_t k = im->n_att;
	int fd = !err && status == 200 ? chanproto_memfd(im->names[k], body, len) : -1;
	if (fd >= 0) {
		im->att[k] = (struct chan_attachment){.name = im->names[k],
		                                      .type = im->types[k][0] ? im->types[k] : NULL,
		                                      .fd = fd,
		                                      .size = len};
		im->n_att++;
	} else {
		in_note(im, im->names[k], err ?: status ? "HTTP error" : "no answer");
	}
	in_next_file(im);
}

/* The bot token goes only to the files host the config names (Slack's own by default),
 * over https: an event naming another URL gets no download, and no token. */
static void
in_next_file(struct incoming *im)
{
	const json_t *files = im->in.files;
	while (im->next < json_array_size(files) && im->n_att < CHANPROTO_FDS_MAX) {
		const json_t *f = json_array_get(files, im->next++);
		const char *name = json_get_str(f, "name") ?: "file";
		const char *url = json_get_str(f, "url_private_download");
		const char *type = json_get_str(f, "mimetype") ?: "";
		json_int_t size = json_integer_value(json_object_get(f, "size"));
		size_t k = im->n_att;
		if (!url || strncmp(url, sl.files_url, strlen(sl.files_url)) != 0) {
			in_note(im, name, "not on Slack's files host");
			continue;
		}
		if (size < 0 || (uint64_t)size > sl.file_max) {
			char why[100];
			snprintf(why, sizeof(why), "%lld bytes, past the channel's %llu",
			         (long long)size, (unsigned long long)sl.file_max);
			in_note(im, name, why);
			continue;
		}
		snprintf(im->names[k], sizeof(im->names[k]), "%s", name);
		snprintf(im->types[k], sizeof(im->types[k]), "%s", strlen(type) < 128 ? type : "");
		const char *headers[] = {sl.auth_bot, NULL};
		struct chan_http_req r = {.url = url,
		                          .headers = headers,
		                          .timeout_s = 120,
		                          .max_body = sl.file_max,
		                          .ca_file = sl.ca_file};
		if (chan_http_start(sl.c, &r, in_file_done, im, NULL) == 0)
			return;
		in_note(im, name, "cannot start the download");
	}
	if (im->next < json_array_size(files))
		in_note(im, "the rest", "more files than a message can carry");
	im->next = json_array_size(files);
	in_report(im);
}

static void
on_text(struct ws *w, const char *text, size_t len, void *arg)
{
	(void)arg;
	struct slack_in in;
	if (slack_in_parse(text, len, sl.bot_user, &in) < 0)
		return; /* not JSON: nothing to ack */
	switch (in.kind) {
	case SLACK_IN_HELLO:
		if (w == sl.ws) {
			sl.backoff_s = 1;
			ws_free(TAKE_PTR(sl.old)); /* the retired one has nothing left for us */
			(void)chan_status(sl.c, "connected", NULL);
		}
		break;
	case SLACK_IN_DISCONNECT:
		/* Slack sends this a little before it closes: the next connection is opened now,
		 * and this one kept (acks still go out on it) until the next says hello. */
		if (w == sl.ws && !sl.opening) {
			ws_free(sl.old);
			sl.old = TAKE_PTR(sl.ws);
			connect_now();
		}
		break;
	case SLACK_IN_MESSAGE: {
		if (!in.envelope_id)
			break;
		if (!pend_add(in.ext_id, in.envelope_id))
			break; /* too many unanswered: unacked, Slack sends it again later */
		struct incoming *im = calloc(1, sizeof(*im));
		if (!im) {
			slack_in_done(&in);
			return; /* unacked: Slack sends it again */
		}
		im->in = in; /* owns the frame now */
		dbuf_init(&im->notes, 2048);
		in_next_file(im);
		return;
	}
	case SLACK_IN_APPROVAL: {
		/* Slack wants the ack within 3 s; the press is the daemon's to judge (is this
		 * user an approver of the group?), its verdict comes back as "answered". */
		if (in.envelope_id)
			ack(in.envelope_id);
		char approver[80];
		snprintf(approver, sizeof(approver), "slack:%s", in.user);
		struct press *p = &sl.press[sl.n_press++ % SLACK_PRESSES_MAX];
		p->approval = in.approval;
		snprintf(p->approver, sizeof(p->approver), "%s", approver);
		snprintf(p->chat, sizeof(p->chat), "%s", in.chat);
		(void)chan_approval_answer(sl.c, in.approval, in.answer, approver);
		break;
	}
	case SLACK_IN_IGNORE:
		if (in.envelope_id)
			ack(in.envelope_id);
		break;
	}
	slack_in_done(&in);
}

static void
on_close(struct ws *w, int code, const char *why, void *arg)
{
	(void)arg;
	char detail[200];
	snprintf(detail, sizeof(detail), "the socket closed (%d: %s)", code, why);
	if (w == sl.old) {
		ws_free(TAKE_PTR(sl.old));
		return;
	}
	bool current = w == sl.ws;
	ws_free(w);
	if (current) {
		sl.ws = NULL;
		/* A socket that never got through TLS (a certificate that does not check out)
		 * needs the user, not a retry: shown as an error. */
		reconnect_later(
		    !sl.upgraded && strncmp(why, "TLS", 3) == 0 ? "error" : "connecting", detail);
	}
}

static const struct ws_callbacks ws_cbs = {
    .on_open = on_open,
    .on_text = on_text,
    .on_close = on_close,
};

static void
opened(void *arg, long status, const char *body, size_t len, const char *err)
{
	(void)arg;
	sl.opening = false;
	_cleanup_json_ json_t *j = err ? NULL : json_loadb(body, len, 0, NULL);
	const char *url = json_get_str(j, "url");
	if (status != 200 || !json_is_true(json_object_get(j, "ok")) || !url) {
		char why[200];
		const char *e = err ?: json_get_str(j, "error") ?: "no URL";
		snprintf(why, sizeof(why), "apps.connections.open: %s", e);
		bool refused = json_get_str(j, "error") &&
		               (strcmp(e, "invalid_auth") == 0 || strcmp(e, "not_authed") == 0 ||
		                strcmp(e, "account_inactive") == 0);
		if (refused)
			sl.backoff_s = SLACK_BACKOFF_MAX; /* a bad token stays bad a while */
		reconnect_later(refused ? "error" : "connecting", why);
		return;
	}
	struct ws_options o = {.ca_file = sl.ca_file, .ping_every_s = 30};
	int r;
	sl.upgraded = false;
	sl.ws = ws_connect(chan_base(sl.c), url, &o, &ws_cbs, NULL, &r);
	if (!sl.ws)
		reconnect_later("error", r == -EINVAL ? "Slack gave a URL that is not wss://"
		                                      : "out of memory");
}

static void
connect_now(void)
{
	if (sl.opening || sl.ws)
		return;
	char url[600];
	api_url("apps.connections.open", url, sizeof(url));
	const char *headers[] = {sl.auth_app, NULL};
	struct chan_http_req r = {
	    .method = "POST", .url = url, .headers = headers, .ca_file = sl.ca_file};
	if (chan_http_start(sl.c, &r, opened, NULL, NULL) < 0) {
		reconnect_later("connecting", "cannot start apps.connections.open");
		return;
	}
	sl.opening = true;
}

static void
authed(void *arg, long status, const char *body, size_t len, const char *err)
{
	(void)arg;
	_cleanup_json_ json_t *j = err ? NULL : json_loadb(body, len, 0, NULL);
	const char *user = json_get_str(j, "user_id");
	if (status == 200 && json_is_true(json_object_get(j, "ok")) && user &&
	    strlen(user) < sizeof(sl.bot_user))
		snprintf(sl.bot_user, sizeof(sl.bot_user), "%s", user);
	else
		(void)chan_status(sl.c, "error",
		                  "auth.test refused the bot token: mentions cannot be told apart");
	connect_now();
}

/* ---- out ---- */

static void
op_free(struct slack_op *op)
{
	if (op) {
		json_decref(op->blocks);
		free(op->data);
		free(op->upload_url);
		free(op->text);
		free(op);
	}
}

static void
out_pop(void)
{
	op_free(sl.out[sl.out_head]);
	sl.out[sl.out_head] = NULL;
	sl.out_head = (sl.out_head + 1) % SLACK_OUT_MAX;
	sl.out_n--;
}

static void
out_wait(double s)
{
	struct timeval t = {(time_t)s, (suseconds_t)((s - (double)(time_t)s) * 1e6)};
	evtimer_add(sl.out_wait, &t);
}

static void
out_done(void *arg, long status, const char *body, size_t len, const char *err)
{
	(void)arg;
	struct slack_op *op = sl.out[sl.out_head];
	sl.sending = false;
	if (status == 429) {
		double s = chan_http_retry_after();
		out_wait(s >= 0 ? s : 1); /* the same call again once Slack says */
		return;
	}
	/* The upload URL answers plain text ("OK - N"), not JSON: its status says it all. */
	bool raw = op->data && op->step == 1;
	_cleanup_json_ json_t *j = err || raw ? NULL : json_loadb(body, len, 0, NULL);
	if (raw && !err && status == 200) {
		op->tries = 0;
		op->step = 2;
		out_next();
		return;
	}
	if (status != 200 || !j) {
		if (++op->tries >= SLACK_TRIES_MAX) {
			char why[200];
			snprintf(why, sizeof(why), "Slack did not take it (%s)",
			         err
			             ?: status ? "HTTP error"
			                       : "no answer");
			if (op->ref > 0)
				(void)chan_failed(sl.c, op->ref, why, true);
			out_pop();
			out_next();
			return;
		}
		out_wait(1 << op->tries);
		return;
	}
	if (!json_is_true(json_object_get(j, "ok"))) {
		char why[200];
		snprintf(why, sizeof(why), "Slack refused it: %.100s",
		         json_get_str(j, "error") ?: "no reason");
		if (op->ref > 0)
			(void)chan_failed(sl.c, op->ref, why, false);
		out_pop();
		out_next();
		return;
	}
	if (op->data && file_step_done(op, j) < 0) {
		(void)chan_failed(sl.c, op->ref, "Slack's answer has no upload URL or file id",
		                  false);
		out_pop();
		out_next();
		return;
	}
	if (op->data && op->step < 3) {
		op->tries = 0;
		out_next(); /* the next step of the upload */
		return;
	}
	const char *ts = json_get_str(j, "ts");
	if (!op->first_ts[0] && ts && strlen(ts) < sizeof(op->first_ts))
		snprintf(op->first_ts, sizeof(op->first_ts), "%s", ts);
	op->tries = 0;
	op->off += op->piece;
	if (!op->edit && !op->data && op->off < op->len) {
		out_next(); /* the next piece of a long reply */
		return;
	}
	if (op->ref > 0)
		(void)chan_sent(sl.c, op->ref,
		                op->data          ? op->file_id
		                : op->first_ts[0] ? op->first_ts
		                                  : op->thread);
	out_pop();
	out_next();
}

/* A file step's JSON answer (ok already checked): what the next step needs. */
static int
file_step_done(struct slack_op *op, const json_t *j)
{
	if (op->step == 0) {
		const char *url = json_get_str(j, "upload_url");
		const char *id = json_get_str(j, "file_id");
		/* The bytes go only over https (the URL is pre-signed: no token goes with them). */
		if (!url || !id || strncmp(url, "https://", 8) != 0 || !*id ||
		    strlen(id) >= sizeof(op->file_id) || !(op->upload_url = strdup(url)))
			return -EBADMSG;
		snprintf(op->file_id, sizeof(op->file_id), "%s", id);
		op->step = 1;
		return 0;
	}
	op->step = 3; /* completeUploadExternal said ok: the file is in the chat */
	return 0;
}

/* Starts the current step of a send_file: 0, or -errno. */
static int
file_step_start(struct slack_op *op)
{
	char url[600];
	const char *headers[] = {sl.auth_bot, NULL};
	if (op->step == 1) {
		struct chan_http_req r = {.method = "POST",
		                          .url = op->upload_url,
		                          .body = op->data,
		                          .body_len = op->data_len,
		                          .content_type = "application/octet-stream",
		                          .timeout_s = 120,
		                          .ca_file = sl.ca_file};
		return chan_http_start(sl.c, &r, out_done, NULL, NULL);
	}
	_cleanup_free_ char *s = NULL;
	const char *ctype = "application/json; charset=utf-8";
	if (op->step == 0) {
		/* getUploadURLExternal takes form arguments, not JSON. */
		_cleanup_free_ char *name = curl_easy_escape(NULL, op->name, 0);
		if (!name || asprintf(&s, "filename=%s&length=%zu", name, op->data_len) < 0)
			return -ENOMEM;
		ctype = "application/x-www-form-urlencoded";
		api_url("files.getUploadURLExternal", url, sizeof(url));
	} else {
		_cleanup_free_ char *comment = op->len ? escape(op->text, op->len) : NULL;
		_cleanup_json_ json_t *body =
		    json_pack("{s:[{s:s,s:s}],s:s}", "files", "id", op->file_id, "title", op->name,
		              "channel_id", op->chat);
		if (!body)
			return -ENOMEM;
		if (op->thread[0])
			json_object_set_new(body, "thread_ts", json_string(op->thread));
		if (comment)
			json_object_set_new(body, "initial_comment", json_string(comment));
		if (!(s = json_dumps(body, JSON_COMPACT)))
			return -ENOMEM;
		api_url("files.completeUploadExternal", url, sizeof(url));
	}
	struct chan_http_req r = {.method = "POST",
	                          .url = url,
	                          .headers = headers,
	                          .body = s,
	                          .body_len = strlen(s),
	                          .content_type = ctype,
	                          .ca_file = sl.ca_file};
	return chan_http_start(sl.c, &r, out_done, NULL, NULL);
}

/* Slack reads <...> in a message's text as markup: <!channel> and <!everyone> notify a
 * whole channel, <@U..> pings someone, <URL|label> disguises a link. What the agent says is
 * shown as written, never as markup: &, < and > escaped, as Slack's docs say. */
static char *
escape(const char *text, size_t len)
{
	struct dbuf b;
	dbuf_init(&b, 5 * len + 1);
	for (size_t i = 0; i < len; i++) {
		const char *e = text[i] == '&'   ? "&amp;"
		                : text[i] == '<' ? "&lt;"
		                : text[i] == '>' ? "&gt;"
		                                 : NULL;
		if ((e ? dbuf_puts(&b, e) : dbuf_append(&b, text + i, 1)) < 0) {
			dbuf_done(&b);
			return NULL;
		}
	}
	return dbuf_take(&b);
}

static void
out_next(void)
{
	if (sl.sending || sl.out_n == 0 || evtimer_pending(sl.out_wait, NULL))
		return;
	struct slack_op *op = sl.out[sl.out_head];
	if (op->data) {
		if (file_step_start(op) < 0) {
			out_wait(1);
			return;
		}
		sl.sending = true;
		return;
	}
	_cleanup_json_ json_t *body = json_object();
	char url[600];
	size_t piece, start = op->edit ? 0 : op->off;
	if (op->edit) {
		/* An edit replaces the first message of a reply: what fits of the new text. */
		piece = textsplit_next(op->text, op->len, SLACK_TEXT_MAX);
		api_url("chat.update", url, sizeof(url));
		json_object_set_new(body, "ts", json_string(op->thread));
	} else {
		piece = textsplit_next(op->text + op->off, op->len - op->off, SLACK_TEXT_MAX);
		api_url(op->ephemeral ? "chat.postEphemeral" : "chat.postMessage", url,
		        sizeof(url));
		if (op->thread[0])
			json_object_set_new(body, "thread_ts", json_string(op->thread));
		if (op->ephemeral)
			json_object_set_new(body, "user", json_string(op->user));
		if (op->blocks)
			json_object_set_new(body, "blocks", json_incref(op->blocks));
	}
	json_object_set_new(body, "channel", json_string(op->chat));
	_cleanup_free_ char *shown = escape(op->text + start, piece);
	if (!shown) {
		out_wait(1);
		return;
	}
	json_object_set_new(body, "text", json_string(shown));
	_cleanup_free_ char *s = json_dumps(body, JSON_COMPACT);
	const char *headers[] = {sl.auth_bot, NULL};
	struct chan_http_req r = {.method = "POST",
	                          .url = url,
	                          .headers = headers,
	                          .body = s,
	                          .body_len = s ? strlen(s) : 0,
	                          .content_type = "application/json; charset=utf-8",
	                          .ca_file = sl.ca_file};
	if (!s || chan_http_start(sl.c, &r, out_done, NULL, NULL) < 0) {
		out_wait(1);
		return;
	}
	sl.sending = true;
	op->piece = op->edit ? op->len : piece; /* an edit is done in one call */
}

static void
on_out_wait(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	out_next();
}

static void
queue(struct slack_op *op)
{
	if (sl.out_n >= SLACK_OUT_MAX) {
		(void)chan_failed(sl.c, op->ref, "too many replies waiting for Slack", true);
		op_free(op);
		return;
	}
	sl.out[(sl.out_head + sl.out_n) % SLACK_OUT_MAX] = op;
	sl.out_n++;
	out_next();
}

static struct slack_op *
op_new(const json_t *frame, bool edit)
{
	struct slack_op *op = calloc(1, sizeof(*op));
	const char *text = json_get_str(frame, "text") ?: "";
	if (!op || !(op->text = strdup(text))) {
		free(op);
		return NULL;
	}
	op->edit = edit;
	op->len = strlen(text);
	op->ref = (int64_t)json_integer_value(json_object_get(frame, "ref"));
	snprintf(op->chat, sizeof(op->chat), "%s", json_get_str(frame, "chat") ?: "");
	snprintf(op->thread, sizeof(op->thread), "%s",
	         json_get_str(frame, edit ? "ext_id" : "thread") ?: "");
	return op;
}

static void
slack_reply(struct chan *c, const json_t *frame, int file_fd)
{
	int64_t ref = (int64_t)json_integer_value(json_object_get(frame, "ref"));
	struct slack_op *op = op_new(frame, false);
	if (op && file_fd >= 0) {
		/* send_file: the memfd's bytes (chanlib checked its size against the frame's) */
		const json_t *file = json_object_get(frame, "file");
		struct stat st;
		if (fstat(file_fd, &st) < 0 || (uint64_t)st.st_size > CHANPROTO_FILE_MAX ||
		    !(op->data = malloc(st.st_size ? (size_t)st.st_size : 1)) ||
		    pread(file_fd, op->data, (size_t)st.st_size, 0) != st.st_size) {
			(void)chan_failed(c, ref, "the file to send could not be read", false);
			op_free(op);
			return;
		}
		op->data_len = (size_t)st.st_size;
		snprintf(op->name, sizeof(op->name), "%s", json_get_str(file, "name") ?: "file");
		queue(op);
		return;
	}
	if (!op || op->len == 0) {
		(void)chan_failed(c, ref, op ? "an empty reply" : "out of memory", false);
		op_free(op);
		return;
	}
	queue(op);
}

static void
slack_edit(struct chan *c, const json_t *frame)
{
	struct slack_op *op = op_new(frame, true);
	if (!op || op->len == 0 || !op->thread[0]) {
		(void)chan_failed(c, (int64_t)json_integer_value(json_object_get(frame, "ref")),
		                  "an edit needs text and the message's ts", false);
		op_free(op);
		return;
	}
	queue(op);
}

/* Approval buttons: a section with the text, then one button per answer offered, each
 * action_id "ap:ID:ANSWER" (what a press sends back). Text and buttons in one message. */
static void
slack_approval(struct chan *c, const json_t *frame)
{
	static const struct {
		const char *answer, *label, *style;
	} look[] = {{"approve", "Approve", "primary"},
	            {"run", "Approve for this run", NULL},
	            {"deny", "Deny", "danger"}};
	struct slack_op *op = op_new(frame, false);
	long long id = (long long)json_integer_value(json_object_get(frame, "approval"));
	json_t *buttons = json_array(), *b;
	size_t i;
	json_array_foreach(json_object_get(frame, "buttons"), i, b)
	{
		for (size_t k = 0; k < ARRAY_SIZE(look); k++) {
			if (strcmp(json_string_value(b) ?: "", look[k].answer) != 0)
				continue;
			char action[48];
			snprintf(action, sizeof(action), "ap:%lld:%s", id, look[k].answer);
			json_t *e = json_pack("{s:s,s:{s:s,s:s},s:s,s:s}", "type", "button", "text",
			                      "type", "plain_text", "text", look[k].label,
			                      "action_id", action, "value", action);
			if (e && look[k].style)
				json_object_set_new(e, "style", json_string(look[k].style));
			json_array_append_new(buttons, e);
		}
	}
	size_t shown =
	    op ? textsplit_next(op->text, op->len, 2900) : 0; /* a section's bound: 3000 */
	if (op)
		op->blocks = json_pack("[{s:s,s:{s:s,s:s%}},{s:s,s:o}]", "type", "section", "text",
		                       "type", "plain_text", "text", op->text, shown, "type",
		                       "actions", "elements", buttons);
	else
		json_decref(buttons);
	if (!op || !op->blocks || op->len == 0) {
		(void)chan_failed(c, (int64_t)json_integer_value(json_object_get(frame, "ref")),
		                  "cannot make the approval's message", false);
		op_free(op);
		return;
	}
	op->len = shown; /* one message: the text is in the blocks and as its fallback */
	queue(op);
}

/* The daemon's verdict on a press: told to the one who pressed, in that chat, only to them. */
static void
slack_answered(struct chan *c, const json_t *frame)
{
	(void)c;
	const char *approver = json_get_str(frame, "approver") ?: "";
	const char *text = json_get_str(frame, "text") ?: "";
	long long id = (long long)json_integer_value(json_object_get(frame, "approval"));
	const char *chat = NULL;
	for (size_t i = 0; i < SLACK_PRESSES_MAX; i++)
		if (sl.press[i].approval == id && strcmp(sl.press[i].approver, approver) == 0)
			chat = sl.press[i].chat;
	if (!chat || strncmp(approver, "slack:", 6) != 0 || !*text)
		return;
	struct slack_op *op = calloc(1, sizeof(*op));
	if (!op || !(op->text = strdup(text))) {
		free(op);
		return;
	}
	op->ephemeral = true;
	op->len = strlen(text);
	snprintf(op->chat, sizeof(op->chat), "%s", chat);
	snprintf(op->user, sizeof(op->user), "%s", approver + 6);
	queue(op);
}

/* The secret: both tokens, told apart by prefix. */
static int
take_tokens(const char *secret)
{
	char buf[2 * SLACK_TOKEN_MAX + 8];
	snprintf(buf, sizeof(buf), "%s", secret);
	for (char *save, *t = strtok_r(buf, " \t\r\n", &save); t;
	     t = strtok_r(NULL, " \t\r\n", &save)) {
		if (strlen(t) >= SLACK_TOKEN_MAX)
			return -ENAMETOOLONG;
		if (strncmp(t, "xapp-", 5) == 0)
			snprintf(sl.app_token, sizeof(sl.app_token), "%s", t);
		else if (strncmp(t, "xoxb-", 5) == 0)
			snprintf(sl.bot_token, sizeof(sl.bot_token), "%s", t);
	}
	explicit_bzero(buf, sizeof(buf));
	return sl.app_token[0] && sl.bot_token[0] ? 0 : -ENOENT;
}

static int
slack_start(struct chan *c, const json_t *config)
{
	sl.c = c;
	sl.backoff_s = 1;
	sl.api = chan_config_str(c, "api_url", SLACK_API_DEFAULT);
	sl.ca_file = chan_config_str(c, "ca_file", NULL);
	sl.files_url = chan_config_str(c, "files_url", SLACK_FILES_DEFAULT);
	json_t *fmax = json_object_get(config, "file_max");
	sl.file_max = json_is_integer(fmax) && json_integer_value(fmax) > 0 &&
	                      (uint64_t)json_integer_value(fmax) < CHANPROTO_FILE_MAX
	                  ? (uint64_t)json_integer_value(fmax)
	                  : CHANPROTO_FILE_MAX;
	char secret[2 * SLACK_TOKEN_MAX + 8], why[200];
	int r = chan_secret(c, secret, sizeof(secret), why, sizeof(why));
	if (r >= 0 && (r = take_tokens(secret)) < 0)
		snprintf(why, sizeof(why),
		         "the secret must hold an app-level token (xapp-...) and a "
		         "bot token (xoxb-...)");
	explicit_bzero(secret, sizeof(secret));
	if (r < 0) {
		(void)chan_status(c, "error", why);
		return r;
	}
	if (strncmp(sl.api, "https://", 8) != 0 || strncmp(sl.files_url, "https://", 8) != 0 ||
	    strlen(sl.files_url) < 9 || sl.files_url[strlen(sl.files_url) - 1] != '/') {
		/* the bot token goes in every call, and with every file fetched */
		(void)chan_status(c, "error",
		                  "api_url and files_url must be https:// (files_url ending in /)");
		return -EINVAL;
	}
	snprintf(sl.auth_app, sizeof(sl.auth_app), "Authorization: Bearer %s", sl.app_token);
	snprintf(sl.auth_bot, sizeof(sl.auth_bot), "Authorization: Bearer %s", sl.bot_token);
	sl.again = evtimer_new(chan_base(c), on_again, NULL);
	sl.out_wait = evtimer_new(chan_base(c), on_out_wait, NULL);
	if (!sl.again || !sl.out_wait)
		return -ENOMEM;
	(void)chan_status(c, "connecting", NULL);
	char url[600];
	api_url("auth.test", url, sizeof(url));
	const char *headers[] = {sl.auth_bot, NULL};
	struct chan_http_req req = {
	    .method = "POST", .url = url, .headers = headers, .ca_file = sl.ca_file};
	if (chan_http_start(c, &req, authed, NULL, NULL) < 0)
		connect_now();
	return 0;
}

static void
slack_stop(struct chan *c)
{
	(void)c;
	ws_free(TAKE_PTR(sl.ws));
	ws_free(TAKE_PTR(sl.old));
	while (sl.out_n)
		out_pop();
	if (sl.again)
		event_free(sl.again);
	if (sl.out_wait)
		event_free(sl.out_wait);
	explicit_bzero(&sl, sizeof(sl));
}

const struct chan_kind chan_kind_slack = {
    .name = "slack",
    .start = slack_start,
    .reply = slack_reply,
    .edit = slack_edit,
    .stored = slack_stored,
    .approval = slack_approval,
    .answered = slack_answered,
    .stop = slack_stop,
};
