/*
 * discord.c: the Discord channel, `clawbox-channel discord`. The Gateway over ws.c: GET
 * /gateway/bot names the socket; HELLO (op 10) sets the heartbeat, the first one after a
 * random part of the interval (jitter, as Discord asks) and then every interval; IDENTIFY
 * (op 2) with the intents GUILD_MESSAGES, DIRECT_MESSAGES and MESSAGE_CONTENT; READY gives
 * the session and the URL to resume on. Every dispatch's sequence number is kept, so after a
 * dropped socket, a RECONNECT (op 7) or a heartbeat that got no ACK (a zombie connection)
 * the channel RESUMEs (op 6) and Discord replays what it missed. INVALID_SESSION (op 9) that
 * cannot be resumed starts a new session after 1-5 s.
 *
 * In: MESSAGE_CREATE in a DM, or in a guild channel when it mentions the bot; other bots'
 * messages and our own are dropped. ext_id is the message's id (a snowflake: unique), so a
 * replayed one is taken once. The cursor sent with each message is "SESSION SEQ URL BOT APP": a
 * channel restarted within Discord's resume window resumes there and loses nothing.
 * Attachments (up to CHANPROTO_FDS_MAX a message) are fetched from their "url", only from
 * Discord's CDN ("cdn_url") and without the bot token (the CDN's URLs are signed), each
 * bounded by "file_max", and go to the daemon as memfds; one past the bound or that cannot be
 * fetched is named in the text instead. Messages wait in order (bounded) while a message
 * before them is fetching, so the cursor never passes a message not yet reported.
 *
 * Out: POST /channels/{id}/messages (the first piece answering the message it replies to),
 * PATCH for edits (streamed progress), POST /channels/{id}/typing, queued (bounded) and one
 * at a time, in order; replies split at Discord's 2,000 characters; a 429 waits the
 * retry_after its body gives. Each message carries a nonce made of the daemon's ref and the
 * piece's number with "enforce_nonce": a retry after a lost answer, or the same reply again
 * after a crash, is one message to Discord as long as it comes within the few minutes
 * Discord keeps nonces; past them a reply can show twice. send_file: the file goes with the
 * reply's last piece as multipart/form-data (curl_mime, via chan-http): "payload_json" and
 * "files[0]".
 *
 * The bot token is the channel's secret (token_file or token_env). Config: "api_url"
 * (default https://discord.com/api/v10), "cdn_url" (default https://cdn.discordapp.com/),
 * "file_max" (bytes, default and at most CHANPROTO_FILE_MAX), "ca_file" (tests).
 */
#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chan-http.h"
#include "chanlib.h"
#include "discord.h"
#include "json-util.h"
#include "macro.h"
#include "textsplit.h"
#include "ws.h"

#define DC_API_DEFAULT "https://discord.com/api/v10"
#define DC_CDN_DEFAULT "https://cdn.discordapp.com/"
#define DC_IN_MAX      64 /* messages waiting, in order, for one before them to be fetched */
#define DC_NOTES_MAX   600
#define DC_TEXT_MAX    2000
#define DC_OUT_MAX     64
#define DC_TOKEN_MAX   256
#define DC_TRIES_MAX   5
#define DC_BACKOFF_MAX 60
#define DC_INTENTS                                                                                 \
	((1 << 9) | (1 << 12) | (1 << 15)) /* GUILD_MESSAGES, DIRECT_MESSAGES, MESSAGE_CONTENT */
#define DC_QUERY "?v=10&encoding=json"

/* ---- the channel ---- */

struct dc_op {
	enum { DC_POST, DC_PATCH } kind;
	int64_t ref;
	char chat[32];
	char target[32]; /* PATCH: the message; POST: the one it answers ("": none) */
	char *text;
	size_t len, off, piece;
	char first_id[32];
	int tries;
	int n_piece;        /* the piece's number, in its nonce */
	json_t *components; /* an approval's buttons (owned), or NULL */
	char *data;         /* send_file: the file's bytes (owned), with its last piece */
	size_t data_len;
	char fname[256], ftype[128];
};

/* A message waiting for its attachments (or for one before it that is). */
struct dc_pend {
	struct dc_in in; /* owns in.j: the attachments' names point into it */
	char cur[800];
	size_t next; /* the index in in.attachments to look at next */
	struct chan_attachment att[CHANPROTO_FDS_MAX];
	size_t n_att;
	char notes[DC_NOTES_MAX]; /* what was not fetched, said after the text */
};

#define DC_PRESSES_MAX 8 /* presses whose verdict is awaited */

struct dc_press {
	long long approval;
	char approver[40];
	char token[520]; /* the interaction's: its follow-up is posted with it */
	char app[32];    /* the application it is for */
};

static struct {
	struct chan *c;
	char token[DC_TOKEN_MAX];
	char auth[DC_TOKEN_MAX + 32];
	const char *api, *ca_file, *cdn;
	uint64_t file_max;
	struct dc_pend *in_q[DC_IN_MAX];
	size_t in_head, in_n;
	struct chan_http *fetch; /* the attachment being fetched, or NULL */
	char gateway[512];       /* from /gateway/bot */
	char resume_url[512];    /* from READY */
	char session[128];
	int64_t seq;
	char bot_id[32];
	char app_id[32];
	struct dc_press press[DC_PRESSES_MAX];
	size_t n_press;
	struct ws *ws;
	bool resuming; /* this connection RESUMEs */
	int64_t interval_ms;
	bool acked; /* the last heartbeat's ACK came */
	struct event *beat, *again, *reidentify;
	int backoff_s;
	bool fatal;
	struct dc_op *out[DC_OUT_MAX];
	size_t out_head, out_n;
	bool sending;
	struct event *out_wait;
} dc;

static void connect_now(void);
static void out_next(void);
static void take_press(const struct dc_in *in);

/* Snowflakes are decimal: what goes into a URL path is checked to be one. */
static bool
snowflake(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 20)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static void
send_json(json_t *j)
{
	_cleanup_free_ char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (s)
		(void)ws_send_text(dc.ws, s, strlen(s));
	json_decref(j);
}

static void
send_heartbeat(void)
{
	send_json(json_pack("{s:i,s:o}", "op", DC_OP_HEARTBEAT, "d",
	                    dc.seq >= 0 ? json_integer(dc.seq) : json_null()));
	dc.acked = false;
}

static void
send_hello_answer(void)
{
	if (dc.resuming && dc.session[0]) {
		send_json(json_pack("{s:i,s:{s:s,s:s,s:I}}", "op", DC_OP_RESUME, "d", "token",
		                    dc.token, "session_id", dc.session, "seq", (json_int_t)dc.seq));
		return;
	}
	send_json(json_pack("{s:i,s:{s:s,s:i,s:{s:s,s:s,s:s}}}", "op", DC_OP_IDENTIFY, "d", "token",
	                    dc.token, "intents", DC_INTENTS, "properties", "os", "linux", "browser",
	                    "clawbox", "device", "clawbox"));
}

static void
reconnect_later(const char *why)
{
	evtimer_del(dc.beat);
	if (dc.fatal || evtimer_pending(dc.again, NULL))
		return;
	struct timeval t = {dc.backoff_s, 0};
	evtimer_add(dc.again, &t);
	char detail[240];
	snprintf(detail, sizeof(detail), "%s; again in %d s", why, dc.backoff_s);
	(void)chan_status(dc.c, "connecting", detail);
	dc.backoff_s = dc.backoff_s * 2 > DC_BACKOFF_MAX ? DC_BACKOFF_MAX : dc.backoff_s * 2;
}

/* Drops this connection to resume on a new one (never with 1000 or 1001: Discord would end
 * the session). */
static void
drop_and_resume(const char *why)
{
	struct ws *w = TAKE_PTR(dc.ws);
	ws_free(w);
	dc.backoff_s = 1;
	reconnect_later(why);
}

static void
on_beat(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (!dc.ws)
		return;
	if (!dc.acked) {
		drop_and_resume("no heartbeat ACK: a zombie connection");
		return;
	}
	send_heartbeat();
	struct timeval t = {dc.interval_ms / 1000, (dc.interval_ms % 1000) * 1000};
	evtimer_add(dc.beat, &t);
}

static void
on_again(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	connect_now();
}

static void
on_reidentify(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (dc.ws)
		send_hello_answer();
}

static void
cursor(char *buf, size_t size)
{
	/* The bot's and the application's ids too: a RESUME gets no READY to learn them from. */
	snprintf(buf, size, "%s %lld %s %s %s", dc.session, (long long)dc.seq, dc.resume_url,
	         dc.bot_id[0] ? dc.bot_id : "-", dc.app_id[0] ? dc.app_id : "-");
}

/* Says after the text that attachment name was not fetched (tried: or could not be), and why. */
static void
note(struct dc_pend *p, bool tried, const char *name, const char *why)
{
	size_t n = strlen(p->notes);
	snprintf(p->notes + n, sizeof(p->notes) - n, "\n(an attachment that %s: %s, %s)",
	         tried ? "could not be fetched" : "was not fetched", name, why);
}

static void
pend_free(struct dc_pend *p)
{
	for (size_t i = 0; i < p->n_att; i++)
		close(p->att[i].fd);
	dc_in_done(&p->in);
	free(p);
}

static void
report(struct dc_pend *p)
{
	const struct dc_in *in = &p->in;
	_cleanup_free_ char *text = NULL;
	if (p->notes[0] && asprintf(&text, "%s%s", in->text, p->notes) < 0)
		text = NULL;
	struct chan_message m = {
	    .chat = in->chat,
	    .chat_kind = in->direct ? "private" : "channel",
	    .sender = in->sender,
	    .sender_name = in->sender_name,
	    .text = text ? text : in->text,
	    .mention = in->mention,
	    .ext_id = in->id,
	    .cursor = p->cur,
	    .attachments = p->n_att ? p->att : NULL,
	    .n_attachments = p->n_att,
	};
	(void)chan_message(dc.c, &m);
}

static void in_next(void);

static void
fetched(void *arg, long status, const char *body, size_t len, const char *err)
{
	struct dc_pend *p = arg;
	json_t *a = json_array_get(p->in.attachments, p->next);
	const char *name = json_get_str(a, "filename");
	dc.fetch = NULL;
	int fd = !err && status == 200 ? chanproto_memfd(name, body, len) : -1;
	if (fd >= 0) {
		const char *type = json_get_str(a, "content_type");
		if (type && strlen(type) > 127)
			type = NULL; /* not a media type: the daemon goes by the name */
		p->att[p->n_att++] =
		    (struct chan_attachment){.name = name, .type = type, .fd = fd, .size = len};
	} else {
		char why[160];
		if (err || status == 200)
			snprintf(why, sizeof(why), "%s", err ?: "no memory");
		else
			snprintf(why, sizeof(why), "HTTP %ld", status);
		note(p, true, name, why);
	}
	p->next++;
	in_next();
}

/* Starts fetching p's next attachment: true, or false when none is left to fetch (those that
 * cannot be are noted). */
static bool
fetch_next(struct dc_pend *p)
{
	for (; p->next < json_array_size(p->in.attachments); p->next++) {
		json_t *a = json_array_get(p->in.attachments, p->next);
		const char *name = json_get_str(a, "filename"), *url = json_get_str(a, "url");
		json_t *size = json_object_get(a, "size");
		char why[160];
		if (!name || !*name || strlen(name) > 255 || strchr(name, '\n'))
			continue; /* not an attachment we can name: Discord always sends one */
		if (p->n_att >= CHANPROTO_FDS_MAX) {
			note(p, false, name, "past the attachments one message can carry");
			continue;
		}
		if (!url || strncmp(url, dc.cdn, strlen(dc.cdn)) != 0 || strlen(url) > 2048) {
			note(p, false, name, "not on Discord's CDN");
			continue;
		}
		if (!json_is_integer(size) || json_integer_value(size) < 0 ||
		    (uint64_t)json_integer_value(size) > dc.file_max) {
			snprintf(why, sizeof(why), "%lld bytes, past the channel's %llu",
			         (long long)json_integer_value(size),
			         (unsigned long long)dc.file_max);
			note(p, false, name, why);
			continue;
		}
		/* No Authorization: the CDN's URLs are signed, and the token goes only to the API.
		 */
		struct chan_http_req r = {
		    .url = url, .timeout_s = 120, .max_body = dc.file_max, .ca_file = dc.ca_file};
		if (chan_http_start(dc.c, &r, fetched, p, &dc.fetch) == 0)
			return true;
		note(p, true, name, "cannot start the download");
	}
	return false;
}

/* Reports the waiting messages in order, each once its attachments are fetched. */
static void
in_next(void)
{
	while (dc.in_n && !dc.fetch) {
		struct dc_pend *p = dc.in_q[dc.in_head];
		if (fetch_next(p))
			return;
		report(p);
		pend_free(p);
		dc.in_q[dc.in_head] = NULL;
		dc.in_head = (dc.in_head + 1) % DC_IN_MAX;
		dc.in_n--;
	}
}

/* Takes in (and its JSON) into the queue of messages to report. */
static void
take_message(struct dc_in *in)
{
	struct dc_pend *p = dc.in_n < DC_IN_MAX ? calloc(1, sizeof(*p)) : NULL;
	if (!p) {
		/* Nowhere to wait: reported now, without its files, rather than lost. */
		struct dc_pend now = {.in = *in};
		cursor(now.cur, sizeof(now.cur));
		if (json_array_size(in->attachments))
			note(&now, false, "all", "too many messages waiting for theirs");
		report(&now);
		return;
	}
	p->in = *in;
	in->j = NULL; /* p owns it now */
	cursor(p->cur, sizeof(p->cur));
	dc.in_q[(dc.in_head + dc.in_n) % DC_IN_MAX] = p;
	dc.in_n++;
	in_next();
}

static void
on_text(struct ws *w, const char *text, size_t len, void *arg)
{
	(void)w;
	(void)arg;
	struct dc_in in;
	if (dc_in_parse(text, len, dc.bot_id, &in) < 0)
		return;
	if (in.seq >= 0)
		dc.seq = in.seq;
	switch (in.op) {
	case DC_OP_HELLO: {
		dc.interval_ms = in.heartbeat_ms;
		dc.acked = true;
		unsigned char r = 0;
		(void)RAND_bytes(&r, 1);
		int64_t first =
		    dc.interval_ms * r / 256; /* jitter: the first beat at a random part */
		struct timeval t = {first / 1000, (first % 1000) * 1000};
		evtimer_add(dc.beat, &t);
		send_hello_answer();
		break;
	}
	case DC_OP_HEARTBEAT:
		send_heartbeat();
		break;
	case DC_OP_HEARTBEAT_ACK:
		dc.acked = true;
		break;
	case DC_OP_RECONNECT:
		dc_in_done(&in);
		drop_and_resume("Discord asked for a reconnect");
		return;
	case DC_OP_INVALID_SESSION:
		if (in.resumable) {
			dc.resuming = true;
			send_hello_answer();
		} else {
			/* A new session after 1-5 s, on this connection (Discord's advice). */
			dc.session[0] = '\0';
			dc.resume_url[0] = '\0';
			dc.seq = -1;
			dc.resuming = false;
			unsigned char r = 0;
			(void)RAND_bytes(&r, 1);
			struct timeval t = {1 + r % 4, (r * 3906) % 1000000};
			evtimer_add(dc.reidentify, &t);
		}
		break;
	case DC_OP_DISPATCH:
		if (in.ev == DC_EV_READY) {
			snprintf(dc.session, sizeof(dc.session), "%s", in.session_id);
			snprintf(dc.resume_url, sizeof(dc.resume_url), "%s", in.resume_url);
			snprintf(dc.bot_id, sizeof(dc.bot_id), "%s", in.user_id);
			snprintf(dc.app_id, sizeof(dc.app_id), "%s", in.app_id ?: "");
			dc.backoff_s = 1;
			(void)chan_status(dc.c, "connected", NULL);
		} else if (in.ev == DC_EV_RESUMED) {
			dc.backoff_s = 1;
			(void)chan_status(dc.c, "connected", "resumed");
		} else if (in.ev == DC_EV_MESSAGE) {
			take_message(&in);
		} else if (in.ev == DC_EV_INTERACTION) {
			take_press(&in);
		}
		break;
	}
	dc_in_done(&in);
}

static void
on_close(struct ws *w, int code, const char *why, void *arg)
{
	(void)arg;
	char detail[240];
	snprintf(detail, sizeof(detail), "the Gateway closed (%d: %s)", code, why);
	ws_free(w);
	dc.ws = NULL;
	/* 4004: the token; 4010-4014: shard, version, intents. Trying again cannot help. */
	if (code == 4004 || (code >= 4010 && code <= 4014)) {
		dc.fatal = true;
		evtimer_del(dc.beat);
		(void)chan_status(dc.c, "error", detail);
		return;
	}
	/* 4007 (bad seq), 4009 (session timed out): a new session. */
	if (code == 4007 || code == 4009) {
		dc.session[0] = '\0';
		dc.seq = -1;
	}
	reconnect_later(detail);
}

static const struct ws_callbacks ws_cbs = {.on_text = on_text, .on_close = on_close};

static void
open_socket(const char *base)
{
	char url[600];
	snprintf(url, sizeof(url), "%s%s" DC_QUERY, base, base[strlen(base) - 1] == '/' ? "" : "/");
	struct ws_options o = {.ca_file = dc.ca_file}; /* heartbeats keep it alive */
	int r;
	dc.resuming = dc.session[0] && base == dc.resume_url;
	dc.ws = ws_connect(chan_base(dc.c), url, &o, &ws_cbs, NULL, &r);
	if (!dc.ws)
		reconnect_later(r == -EINVAL ? "the Gateway's URL is not wss" : "out of memory");
}

static void
got_gateway(void *arg, long status, const char *body, size_t len, const char *err)
{
	(void)arg;
	_cleanup_json_ json_t *j = err ? NULL : json_loadb(body, len, 0, NULL);
	const char *url = json_get_str(j, "url");
	if (status == 401) {
		dc.fatal = true;
		(void)chan_status(dc.c, "error", "Discord refused the bot token (HTTP 401)");
		return;
	}
	if (status != 200 || !url || strlen(url) >= sizeof(dc.gateway)) {
		char why[200];
		snprintf(why, sizeof(why), "GET /gateway/bot: %s",
		         err
		             ?: status ? "no gateway URL"
		                       : "no answer");
		reconnect_later(why);
		return;
	}
	snprintf(dc.gateway, sizeof(dc.gateway), "%s", url);
	open_socket(dc.gateway);
}

static void
connect_now(void)
{
	if (dc.ws || dc.fatal)
		return;
	if (dc.session[0] && dc.resume_url[0]) {
		open_socket(dc.resume_url);
		return;
	}
	if (dc.gateway[0]) {
		open_socket(dc.gateway);
		return;
	}
	char url[600];
	snprintf(url, sizeof(url), "%s/gateway/bot", dc.api);
	const char *headers[] = {dc.auth, NULL};
	struct chan_http_req r = {.url = url, .headers = headers, .ca_file = dc.ca_file};
	if (chan_http_start(dc.c, &r, got_gateway, NULL, NULL) < 0)
		reconnect_later("cannot ask for the Gateway");
}

/* ---- out ---- */

static void
op_free(struct dc_op *op)
{
	if (op) {
		json_decref(op->components);
		free(op->text);
		free(op->data);
		free(op);
	}
}

static void
out_pop(void)
{
	op_free(dc.out[dc.out_head]);
	dc.out[dc.out_head] = NULL;
	dc.out_head = (dc.out_head + 1) % DC_OUT_MAX;
	dc.out_n--;
}

static void
out_wait(double s)
{
	struct timeval t = {(time_t)s, (suseconds_t)((s - (double)(time_t)s) * 1e6)};
	evtimer_add(dc.out_wait, &t);
}

static void
out_done(void *arg, long status, const char *body, size_t len, const char *err)
{
	(void)arg;
	struct dc_op *op = dc.out[dc.out_head];
	dc.sending = false;
	_cleanup_json_ json_t *j = err ? NULL : json_loadb(body, len, 0, NULL);
	if (status == 429) {
		/* The body's retry_after (seconds, fractional) is the one to honour. */
		json_t *ra = json_object_get(j, "retry_after");
		double s = json_is_number(ra) ? json_number_value(ra) : chan_http_retry_after();
		out_wait(s >= 0 && s < 3600 ? s : 1);
		return;
	}
	if (status == 0 || status >= 500) {
		if (++op->tries >= DC_TRIES_MAX) {
			(void)chan_failed(dc.c, op->ref, err ?: "Discord did not take it", true);
			out_pop();
			out_next();
			return;
		}
		out_wait(1 << op->tries);
		return;
	}
	if (status < 200 || status > 299) {
		char why[240];
		snprintf(why, sizeof(why), "Discord refused it (HTTP %ld): %.120s", status,
		         json_get_str(j, "message") ?: "");
		(void)chan_failed(dc.c, op->ref, why, false);
		out_pop();
		out_next();
		return;
	}
	const char *id = json_get_str(j, "id");
	if (!op->first_id[0] && id && strlen(id) < sizeof(op->first_id))
		snprintf(op->first_id, sizeof(op->first_id), "%s", id);
	op->tries = 0;
	op->off += op->piece;
	op->n_piece++;
	if (op->kind == DC_POST && op->off < op->len) {
		out_next();
		return;
	}
	(void)chan_sent(dc.c, op->ref, op->first_id[0] ? op->first_id : op->target);
	out_pop();
	out_next();
}

static void
out_next(void)
{
	if (dc.sending || dc.out_n == 0 || evtimer_pending(dc.out_wait, NULL))
		return;
	struct dc_op *op = dc.out[dc.out_head];
	char url[600];
	_cleanup_json_ json_t *body = json_object();
	size_t start = op->kind == DC_PATCH ? 0 : op->off;
	size_t piece = textsplit_next(op->text + start, op->len - start, DC_TEXT_MAX);
	if (piece > 0 || !op->data) /* a file may go without text */
		json_object_set_new(body, "content", json_stringn(op->text + start, piece));
	/* No pings from what the agent writes: "@everyone", "<@id>" and "<@&role>" show as
	 * text (allowed_mentions with nothing to parse). */
	json_object_set_new(body, "allowed_mentions", json_pack("{s:[]}", "parse"));
	if (op->components && start == 0)
		json_object_set_new(body, "components", json_incref(op->components));
	if (op->kind == DC_PATCH) {
		snprintf(url, sizeof(url), "%s/channels/%s/messages/%s", dc.api, op->chat,
		         op->target);
	} else {
		snprintf(url, sizeof(url), "%s/channels/%s/messages", dc.api, op->chat);
		char nonce[26]; /* Discord's bound: 25 */
		snprintf(nonce, sizeof(nonce), "cb%lld.%d", (long long)op->ref, op->n_piece);
		json_object_set_new(body, "nonce", json_string(nonce));
		json_object_set_new(body, "enforce_nonce", json_true());
		if (start == 0 && op->target[0])
			json_object_set_new(body, "message_reference",
			                    json_pack("{s:s,s:b}", "message_id", op->target,
			                              "fail_if_not_exists", 0));
	}
	bool with_file = op->data && start + piece >= op->len;
	if (with_file)
		json_object_set_new(body, "attachments",
		                    json_pack("[{s:i,s:s}]", "id", 0, "filename", op->fname));
	_cleanup_free_ char *s = json_dumps(body, JSON_COMPACT);
	const char *headers[] = {dc.auth, NULL};
	struct chan_http_req r = {.method = op->kind == DC_PATCH ? "PATCH" : "POST",
	                          .url = url,
	                          .headers = headers,
	                          .body = s,
	                          .body_len = s ? strlen(s) : 0,
	                          .ca_file = dc.ca_file};
	/* A file: the same JSON as "payload_json", the bytes as "files[0]" (curl_mime). */
	struct chan_http_part parts[2] = {
	    {.name = "payload_json", .value = s},
	    {.name = "files[0]",
	     .data = op->data,
	     .len = op->data_len,
	     .filename = op->fname,
	     .type = op->ftype[0] ? op->ftype : NULL},
	};
	if (with_file) {
		r.body = NULL;
		r.body_len = 0;
		r.parts = parts;
		r.n_parts = 2;
		r.timeout_s = 120;
	}
	if (!s || chan_http_start(dc.c, &r, out_done, NULL, NULL) < 0) {
		out_wait(1);
		return;
	}
	dc.sending = true;
	op->piece = op->kind == DC_PATCH ? op->len : piece;
}

static void
on_out_wait(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	out_next();
}

/* send_file's bytes (the frame's "file" says their size, name and type) into op: 0 or -errno. */
static int
read_file(struct dc_op *op, const json_t *frame, int fd)
{
	const json_t *file = json_object_get(frame, "file");
	uint64_t size = json_get_u64(file, "size");
	const char *name = json_get_str(file, "name");
	struct stat st;
	if (!name || !*name || fstat(fd, &st) < 0 || (uint64_t)st.st_size != size ||
	    size > CHANPROTO_FILE_MAX)
		return -EINVAL;
	if (!(op->data = malloc(size ? size : 1)))
		return -ENOMEM;
	if (pread(fd, op->data, size, 0) != (ssize_t)size)
		return -EIO;
	op->data_len = size;
	snprintf(op->fname, sizeof(op->fname), "%s", name);
	snprintf(op->ftype, sizeof(op->ftype), "%s", json_get_str(file, "type") ?: "");
	return 0;
}

/* Queues a reply, an edit or (with components, owned) an approval; file_fd >= 0: a
 * send_file, its bytes read now (the fd is chanlib's). */
static void
queue(const json_t *frame, bool edit, json_t *components, int file_fd)
{
	int64_t ref = (int64_t)json_integer_value(json_object_get(frame, "ref"));
	const char *chat = json_get_str(frame, "chat");
	const char *target = json_get_str(frame, edit ? "ext_id" : "reply_to");
	const char *text = json_get_str(frame, "text") ?: "";
	if (!snowflake(chat) || (edit && !snowflake(target)) || (!*text && file_fd < 0)) {
		(void)chan_failed(dc.c, ref, "not a Discord channel or message id, or no text",
		                  false);
		json_decref(components);
		return;
	}
	if (dc.out_n >= DC_OUT_MAX) {
		(void)chan_failed(dc.c, ref, "too many replies waiting for Discord", true);
		json_decref(components);
		return;
	}
	struct dc_op *op = calloc(1, sizeof(*op));
	if (!op || !(op->text = strdup(text))) {
		free(op);
		(void)chan_failed(dc.c, ref, "out of memory", true);
		json_decref(components);
		return;
	}
	op->components = components;
	if (file_fd >= 0 && read_file(op, frame, file_fd) < 0) {
		(void)chan_failed(dc.c, ref, "the file to send could not be read", false);
		op_free(op);
		return;
	}
	op->kind = edit ? DC_PATCH : DC_POST;
	op->ref = ref;
	op->len = strlen(text);
	if (components) /* one message: the buttons go with its first and only piece */
		op->len = textsplit_next(text, op->len, DC_TEXT_MAX);
	snprintf(op->chat, sizeof(op->chat), "%s", chat);
	if (snowflake(target))
		snprintf(op->target, sizeof(op->target), "%s", target);
	dc.out[(dc.out_head + dc.out_n) % DC_OUT_MAX] = op;
	dc.out_n++;
	out_next();
}

static void
dc_reply(struct chan *c, const json_t *frame, int file_fd)
{
	(void)c;
	queue(frame, false, NULL, file_fd);
}

static void
dc_edit(struct chan *c, const json_t *frame)
{
	(void)c;
	queue(frame, true, NULL, -1);
}

/* Approval buttons: one action row, a button per answer offered, custom_id "ap:ID:ANSWER"
 * (what a press sends back in its INTERACTION_CREATE). */
static void
dc_approval(struct chan *c, const json_t *frame)
{
	(void)c;
	static const struct {
		const char *answer, *label;
		int style; /* 3 green, 1 blurple, 4 red */
	} look[] = {
	    {"approve", "Approve", 3}, {"run", "Approve for this run", 1}, {"deny", "Deny", 4}};
	long long id = (long long)json_integer_value(json_object_get(frame, "approval"));
	json_t *buttons = json_array(), *b;
	size_t i;
	json_array_foreach(json_object_get(frame, "buttons"), i, b)
	{
		for (size_t k = 0; k < ARRAY_SIZE(look); k++) {
			if (strcmp(json_string_value(b) ?: "", look[k].answer) != 0)
				continue;
			char custom[48];
			snprintf(custom, sizeof(custom), "ap:%lld:%s", id, look[k].answer);
			json_array_append_new(buttons,
			                      json_pack("{s:i,s:i,s:s,s:s}", "type", 2, "style",
			                                look[k].style, "label", look[k].label,
			                                "custom_id", custom));
		}
	}
	queue(frame, false, json_pack("[{s:i,s:o}]", "type", 1, "components", buttons), -1);
}

static void
acked_press(void *arg, long status, const char *body, size_t len, const char *err)
{
	(void)arg;
	(void)body;
	(void)len;
	if (err || status < 200 || status > 299)
		(void)chan_status(dc.c, "connected", "an interaction could not be acknowledged");
}

/* A press: acknowledged to Discord at once (it wants an answer within 3 s; type 6 keeps the
 * message as it is), judged by the daemon (is this user an approver of the group?), whose
 * verdict comes back as "answered". */
static void
take_press(const struct dc_in *in)
{
	char url[1200], approver[40];
	snprintf(url, sizeof(url), "%s/interactions/%s/%s/callback", dc.api, in->interaction_id,
	         in->interaction_token);
	struct chan_http_req r = {.method = "POST",
	                          .url = url,
	                          .body = "{\"type\":6}",
	                          .body_len = 10,
	                          .ca_file = dc.ca_file};
	if (!snowflake(in->interaction_id) ||
	    strspn(in->interaction_token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                                  "0123456789-_.") != strlen(in->interaction_token))
		return; /* not something to put in a URL path */
	(void)chan_http_start(dc.c, &r, acked_press, NULL, NULL);
	snprintf(approver, sizeof(approver), "discord:%s", in->sender);
	struct dc_press *p = &dc.press[dc.n_press++ % DC_PRESSES_MAX];
	p->approval = in->approval;
	snprintf(p->approver, sizeof(p->approver), "%s", approver);
	snprintf(p->token, sizeof(p->token), "%s", in->interaction_token);
	snprintf(p->app, sizeof(p->app), "%s", in->app_id ? in->app_id : dc.app_id);
	(void)chan_approval_answer(dc.c, in->approval, in->answer, approver);
}

/* The daemon's verdict, told to the one who pressed only: an ephemeral follow-up message of
 * their interaction (flags 64). */
static void
dc_answered(struct chan *c, const json_t *frame)
{
	const char *approver = json_get_str(frame, "approver") ?: "";
	long long id = (long long)json_integer_value(json_object_get(frame, "approval"));
	const struct dc_press *p = NULL;
	for (size_t i = 0; i < DC_PRESSES_MAX; i++)
		if (dc.press[i].approval == id && strcmp(dc.press[i].approver, approver) == 0)
			p = &dc.press[i];
	if (!p || !snowflake(p->app))
		return;
	char url[1200];
	snprintf(url, sizeof(url), "%s/webhooks/%s/%s", dc.api, p->app, p->token);
	_cleanup_json_ json_t *body =
	    json_pack("{s:s,s:i}", "content", json_get_str(frame, "text") ?: "", "flags", 64);
	_cleanup_free_ char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	struct chan_http_req r = {.method = "POST",
	                          .url = url,
	                          .body = s,
	                          .body_len = s ? strlen(s) : 0,
	                          .ca_file = dc.ca_file};
	if (s)
		(void)chan_http_start(c, &r, acked_press, NULL, NULL);
}

static void
typed(void *arg, long status, const char *body, size_t len, const char *err)
{
	(void)arg;
	(void)status;
	(void)body;
	(void)len;
	(void)err; /* a typing indicator that did not show is no loss */
}

static void
dc_typing(struct chan *c, const json_t *frame)
{
	const char *chat = json_get_str(frame, "chat");
	if (!snowflake(chat))
		return;
	char url[600];
	snprintf(url, sizeof(url), "%s/channels/%s/typing", dc.api, chat);
	const char *headers[] = {dc.auth, NULL};
	struct chan_http_req r = {.method = "POST",
	                          .url = url,
	                          .headers = headers,
	                          .body = "",
	                          .body_len = 0,
	                          .ca_file = dc.ca_file};
	(void)chan_http_start(c, &r, typed, NULL, NULL);
}

/* The cursor of the last stored message: "SESSION SEQ URL BOT APP", to resume after a restart. */
static void
take_cursor(const char *cur)
{
	char session[128], url[512], bot[32], app[32];
	long long seq;
	if (!cur || sscanf(cur, "%127s %lld %511s %31s %31s", session, &seq, url, bot, app) != 5 ||
	    seq < 0 || strncmp(url, "wss://", 6) != 0 || !snowflake(bot))
		return; /* no session to resume: a new one (READY says who we are) */
	snprintf(dc.bot_id, sizeof(dc.bot_id), "%s", bot);
	if (snowflake(app))
		snprintf(dc.app_id, sizeof(dc.app_id), "%s", app);
	snprintf(dc.session, sizeof(dc.session), "%s", session);
	snprintf(dc.resume_url, sizeof(dc.resume_url), "%s", url);
	dc.seq = seq;
}

static int
dc_start(struct chan *c, const json_t *config)
{
	dc.c = c;
	dc.seq = -1;
	dc.backoff_s = 1;
	dc.api = chan_config_str(c, "api_url", DC_API_DEFAULT);
	dc.ca_file = chan_config_str(c, "ca_file", NULL);
	dc.cdn = chan_config_str(c, "cdn_url", DC_CDN_DEFAULT);
	json_t *fmax = json_object_get(config, "file_max");
	dc.file_max = json_is_integer(fmax) && json_integer_value(fmax) > 0 &&
	                      (uint64_t)json_integer_value(fmax) < CHANPROTO_FILE_MAX
	                  ? (uint64_t)json_integer_value(fmax)
	                  : CHANPROTO_FILE_MAX;
	char why[200];
	int r = chan_secret(c, dc.token, sizeof(dc.token), why, sizeof(why));
	if (r < 0) {
		(void)chan_status(c, "error", why);
		return r;
	}
	if (strncmp(dc.api, "https://", 8) != 0) { /* the token goes in every call */
		(void)chan_status(c, "error", "api_url must be https://");
		return -EINVAL;
	}
	if (strncmp(dc.cdn, "https://", 8) != 0) { /* what the agent is given comes from it */
		(void)chan_status(c, "error", "cdn_url must be https://");
		return -EINVAL;
	}
	snprintf(dc.auth, sizeof(dc.auth), "Authorization: Bot %s", dc.token);
	take_cursor(chan_cursor(c));
	dc.beat = evtimer_new(chan_base(c), on_beat, NULL);
	dc.again = evtimer_new(chan_base(c), on_again, NULL);
	dc.reidentify = evtimer_new(chan_base(c), on_reidentify, NULL);
	dc.out_wait = evtimer_new(chan_base(c), on_out_wait, NULL);
	if (!dc.beat || !dc.again || !dc.reidentify || !dc.out_wait)
		return -ENOMEM;
	(void)chan_status(c, "connecting", NULL);
	connect_now();
	return 0;
}

static void
dc_stop(struct chan *c)
{
	(void)c;
	ws_free(TAKE_PTR(dc.ws));
	while (dc.out_n)
		out_pop();
	chan_http_cancel(TAKE_PTR(dc.fetch));
	for (; dc.in_n; dc.in_n--, dc.in_head = (dc.in_head + 1) % DC_IN_MAX)
		pend_free(dc.in_q[dc.in_head]);
	struct event *evs[] = {dc.beat, dc.again, dc.reidentify, dc.out_wait};
	for (size_t i = 0; i < ARRAY_SIZE(evs); i++)
		if (evs[i])
			event_free(evs[i]);
	explicit_bzero(&dc, sizeof(dc));
}

const struct chan_kind chan_kind_discord = {
    .name = "discord",
    .start = dc_start,
    .reply = dc_reply,
    .edit = dc_edit,
    .typing = dc_typing,
    .approval = dc_approval,
    .answered = dc_answered,
    .stop = dc_stop,
};
