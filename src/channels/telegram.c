/*
 * telegram.c: the Telegram channel, `clawbox-channel telegram`: the Bot API over HTTP
 * (chan-http.h), long polling getUpdates. The base URL is configuration, so tests point it
 * at a fake server (tests/integration/fake-telegram.c).
 *
 * In: each update that is a message goes to the daemon in order, with the offset after it
 * as its cursor (the daemon stores both at once: a restart neither loses nor repeats one);
 * a message's document or photo (getFile, at most CHANPROTO_FILE_MAX) comes with it as an
 * attachment, for configured chats only. A private chat is addressed to us (mention); in a
 * group chat the group's trigger decides, in the daemon. A callback query on one of our
 * approval buttons ("ap:ID:approve|run|deny") is an approval_answer from "telegram:USER_ID";
 * the daemon's verdict comes back as "answered" and answerCallbackQuery tells the person.
 *
 * Out: a reply is split at Telegram's 4096 characters (UTF-16 code units, as Telegram counts
 * them), preferring a line break or a space; it is reported sent with the first part's
 * message id once every part is. A reply that crashes part-way is sent again whole by the
 * next process (Telegram has no idempotency key: the one case of a repeat). send_file is
 * sendDocument (multipart); edits are editMessageText; typing is sendChatAction; approval
 * buttons are an inline keyboard.
 *
 * A token Telegram refuses (401, 404 on getUpdates) is state "error" with Telegram's words,
 * retried once a minute; other failures are "connecting", retried after 1 s, then 10 s.
 * The token is read from the config's token_env or token_file and only ever put into
 * request URLs, never logged.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chan-http.h"
#include "chanlib.h"
#include "dbuf.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "telegram.h"

#define TG_POLL_TIMEOUT_S 25
#define TG_TEXT_MAX       4096 /* Telegram's limit, in UTF-16 code units */
#define TG_CAPTION_MAX    1024
#define TG_PARTS_MAX      64 /* parts of one reply: CHANPROTO_TEXT_MAX / ~1000 at worst */
#define TG_CALLBACKS_MAX  16
#define TG_EMPTY_POLL_MS  250 /* an empty answer sooner than this: the next poll waits */
#define TG_PART_TRIES     5   /* a part refused for now (429, 5xx) is tried this often */

struct tg_reply { /* a reply going out part by part */
	int64_t ref;
	char chat[CHANPROTO_ID_MAX + 1];
	char *text; /* owned */
	size_t off, len;
	long long first_id;
	char reply_to[CHANPROTO_ID_MAX + 1], thread[CHANPROTO_ID_MAX + 1];
	size_t part_off; /* where the part in flight began */
	int tries;       /* of that part */
	struct tg_reply *next;
};

struct tg {
	struct chan *c;
	char base[512];
	char token[256];
	bool on;
	long long offset;
	json_t *queue; /* updates of the last poll not yet reported */
	size_t next;   /* the next of them */
	bool polling, busy_update;
	struct timespec poll_began;
	int failures;
	struct event *retry;
	struct event *part_retry; /* a part Telegram refused for now, sent again */
	struct tg_reply *replies; /* in order; the first is going out */
	struct {
		char id[128];
		int64_t approval;
		char approver[64];
		long long chat, message; /* the buttons' message */
	} callbacks[TG_CALLBACKS_MAX];   /* answers waiting for the daemon's verdict */
	size_t callback_next;
};

static void poll_start(struct tg *t);
static void take_next_update(struct tg *t);

static int
method_url(struct tg *t, const char *method, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/bot%s/%s", t->base, t->token, method);
	return n > 0 && (size_t)n < size ? 0 : -ENAMETOOLONG;
}

/* POST a JSON body to a Bot API method. */
static int
call(struct tg *t, const char *method, json_t *body, chan_http_done_fn *done, void *arg,
     long timeout_s)
{
	_cleanup_json_ json_t *b = body;
	char url[1024];
	_cleanup_free_ char *s = b ? json_dumps(b, JSON_COMPACT) : NULL;
	if (!s || method_url(t, method, url, sizeof(url)) < 0)
		return -ENOMEM;
	struct chan_http_req r = {
	    .url = url, .body = s, .body_len = strlen(s), .timeout_s = timeout_s};
	return chan_http_start(t->c, &r, done, arg, NULL);
}

static void
ignore_done(void *arg, long status, const char *body, size_t len, const char *err)
{
	(void)arg;
	(void)status;
	(void)body;
	(void)len;
	(void)err;
}

/* Telegram's own words for a failure: its "description", else the transport's. */
static void
describe(long status, const char *body, size_t len, const char *err, char *buf, size_t size)
{
	_cleanup_json_ json_t *j = body && len ? json_loadb(body, len, 0, NULL) : NULL;
	const char *d = json_get_str(j, "description");
	if (err)
		snprintf(buf, size, "%s", err);
	else
		snprintf(buf, size, "%s (HTTP %ld)", d ? d : "no description", status);
}

/* ---- in ---- */

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	poll_start(arg);
}

static void
retry_in(struct tg *t, int seconds)
{
	struct timeval tv = {seconds, 0};
	evtimer_add(t->retry, &tv);
}

/* One message update reported: its attachment (if any) in fd. */
static void
report(struct tg *t, const struct tg_update *u, int fd, uint64_t fsize)
{
	struct chan_attachment a = {.name = u->file_name,
	                            .type = u->file_type[0] ? u->file_type : NULL,
	                            .fd = fd,
	                            .size = fsize};
	struct chan_message msg = {
	    .chat = u->chat,
	    .chat_kind = u->chat_kind,
	    .sender = u->sender,
	    .sender_name = u->sender_name,
	    .text = u->text,
	    .mention = u->mention,
	    .ext_id = u->ext_id,
	    .cursor = u->cursor,
	    .thread = u->thread[0] ? u->thread : NULL,
	    .attachments = fd >= 0 ? &a : NULL,
	    .n_attachments = fd >= 0 ? 1 : 0,
	};
	int r = chan_message(t->c, &msg);
	if (r < 0 && r != -EPIPE)
		log_error("an update could not be reported: %s", strerror(-r));
}

struct download {
	struct tg *t;
	json_t *uj; /* the update, kept: u points into it */
	struct tg_update u;
};

static void
download_free(struct download *dl)
{
	json_decref(dl->uj);
	free(dl);
}

static void
file_done(void *arg, long status, const char *body, size_t len, const char *err)
{
	struct download *dl = arg;
	struct tg *t = dl->t;
	int fd = -1;
	if (!err && status == 200)
		fd = chanproto_memfd(dl->u.file_name, body, len);
	if (fd < 0)
		log_warn("an attachment could not be fetched: %s", err ? err : "HTTP error");
	report(t, &dl->u, fd, fd >= 0 ? len : 0);
	if (fd >= 0)
		close(fd);
	download_free(dl);
	t->busy_update = false;
	take_next_update(t);
}

static void
getfile_done(void *arg, long status, const char *body, size_t len, const char *err)
{
	struct download *dl = arg;
	struct tg *t = dl->t;
	_cleanup_json_ json_t *j = !err && status == 200 ? json_loadb(body, len, 0, NULL) : NULL;
	const char *path = json_get_str(json_object_get(j, "result"), "file_path");
	char url[1024];
	/* The file path is Telegram's; it is only ever put after our own prefix. */
	if (path && !strstr(path, "..") && path[0] != '/' &&
	    snprintf(url, sizeof(url), "%s/file/bot%s/%s", t->base, t->token, path) <
	        (int)sizeof(url)) {
		struct chan_http_req r = {
		    .url = url, .timeout_s = 120, .max_body = CHANPROTO_FILE_MAX};
		if (chan_http_start(t->c, &r, file_done, dl, NULL) == 0)
			return;
	}
	log_warn("an attachment could not be found: %s", err ? err : "getFile refused");
	report(t, &dl->u, -1, 0);
	download_free(dl);
	t->busy_update = false;
	take_next_update(t);
}

static void
on_callback(struct tg *t, const struct tg_update *u)
{
	if (u->kind == TG_BAD_BUTTON) {
		(void)call(t, "answerCallbackQuery",
		           json_pack("{s:s,s:s}", "callback_query_id", u->callback_id, "text",
		                     "This button is not one of clawbox's."),
		           ignore_done, NULL, 30);
		return;
	}
	size_t k = t->callback_next++ % TG_CALLBACKS_MAX;
	snprintf(t->callbacks[k].id, sizeof(t->callbacks[k].id), "%s", u->callback_id);
	t->callbacks[k].approval = u->approval;
	t->callbacks[k].chat = u->cb_chat;
	t->callbacks[k].message = u->cb_message;
	snprintf(t->callbacks[k].approver, sizeof(t->callbacks[k].approver), "%s", u->approver);
	(void)chan_approval_answer(t->c, u->approval, u->answer, u->approver);
}

static void
take_next_update(struct tg *t)
{
	while (!t->busy_update && t->next < json_array_size(t->queue)) {
		json_t *uj = json_array_get(t->queue, t->next++);
		struct tg_update u;
		if (tg_update_parse(uj, &u) < 0)
			continue;
		if (u.update_id + 1 > t->offset)
			t->offset = u.update_id + 1;
		if (u.kind == TG_CALLBACK || u.kind == TG_BAD_BUTTON) {
			on_callback(t, &u);
			continue;
		}
		if (u.kind != TG_MESSAGE)
			continue; /* nothing to report (its offset moves on) */
		/* Files of chats no group is for are not fetched, nor ones past the bound. */
		if (u.file_id && chan_chat_group(t->c, u.chat) &&
		    u.file_size <= CHANPROTO_FILE_MAX) {
			struct download *dl = calloc(1, sizeof(*dl));
			if (dl) {
				dl->t = t;
				dl->uj = json_incref(uj);
				dl->u = u;
				if (call(t, "getFile", json_pack("{s:s}", "file_id", u.file_id),
				         getfile_done, dl, 30) == 0) {
					t->busy_update = true;
					return;
				}
				download_free(dl);
			}
		}
		report(t, &u, -1, 0);
	}
	if (!t->busy_update && t->next >= json_array_size(t->queue)) {
		json_decref(t->queue);
		t->queue = NULL;
		t->next = 0;
		poll_start(t);
	}
}

static void
poll_done(void *arg, long status, const char *body, size_t len, const char *err)
{
	struct tg *t = arg;
	t->polling = false;
	_cleanup_json_ json_t *j = !err ? json_loadb(body, len, 0, NULL) : NULL;
	if (err || status != 200 || !json_is_true(json_object_get(j, "ok")) ||
	    !json_is_array(json_object_get(j, "result"))) {
		char why[300];
		describe(status, body, len, err, why, sizeof(why));
		/* A token Telegram does not know is not a network blip: say so, and ask
		 * again only now and then. */
		bool refused = status == 401 || status == 404;
		char detail[400];
		snprintf(detail, sizeof(detail), "getUpdates: %s%s", why,
		         refused ? ": the bot token is refused" : "");
		/* The daemon logs an "error" state; a blip only now and then, here. */
		if (!refused && t->failures % 10 == 0)
			log_warn("%s; retrying", detail);
		t->failures++;
		(void)chan_status(t->c, refused ? "error" : "connecting", detail);
		retry_in(t, refused ? 60 : t->failures < 5 ? 1 : 10);
		return;
	}
	if (t->failures || !t->on) {
		t->on = true;
		(void)chan_status(t->c, "connected", NULL);
	}
	t->failures = 0;
	/* Telegram holds an empty poll for its timeout; a server that answers at once with
	 * nothing (a proxy in the way, a test's fake) is asked again after a pause, not in a
	 * loop. */
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long ms = (now.tv_sec - t->poll_began.tv_sec) * 1000 +
	          (now.tv_nsec - t->poll_began.tv_nsec) / 1000000;
	if (json_array_size(json_object_get(j, "result")) == 0 && ms < TG_EMPTY_POLL_MS) {
		struct timeval tv = {0, (TG_EMPTY_POLL_MS - ms) * 1000};
		evtimer_add(t->retry, &tv);
		return;
	}
	t->queue = json_incref(json_object_get(j, "result"));
	t->next = 0;
	take_next_update(t);
}

static void
poll_start(struct tg *t)
{
	if (t->polling || t->queue)
		return;
	json_t *body = json_pack("{s:I,s:i,s:[ss]}", "offset", (json_int_t)t->offset, "timeout",
	                         TG_POLL_TIMEOUT_S, "allowed_updates", "message", "callback_query");
	if (call(t, "getUpdates", body, poll_done, t, TG_POLL_TIMEOUT_S + 15) < 0) {
		retry_in(t, 5);
		return;
	}
	t->polling = true;
	clock_gettime(CLOCK_MONOTONIC, &t->poll_began);
}

/* ---- out ---- */

/* The length of the next part of s (len bytes): at most TG_TEXT_MAX UTF-16 code units,
 * cut at the last line break, else the last space, in its second half. */
static size_t
part_len(const char *s, size_t len)
{
	size_t units = 0, i = 0, nl = 0, sp = 0;
	while (i < len) {
		unsigned char ch = (unsigned char)s[i];
		size_t n = ch < 0x80 ? 1 : ch < 0xE0 ? 2 : ch < 0xF0 ? 3 : 4;
		size_t u = n == 4 ? 2 : 1;
		if (units + u > TG_TEXT_MAX)
			break;
		units += u;
		i += n;
		if (ch == '\n')
			nl = i;
		else if (ch == ' ')
			sp = i;
	}
	if (i >= len)
		return len;
	if (nl > i / 2)
		return nl;
	if (sp > i / 2)
		return sp;
	return i;
}

static void reply_next(struct tg *t);

static void
reply_pop(struct tg *t)
{
	struct tg_reply *r = t->replies;
	t->replies = r->next;
	free(r->text);
	free(r);
}

static bool
retryable(long status, const char *err)
{
	return err || status == 0 || status == 429 || status >= 500;
}

static void
part_done(void *arg, long status, const char *body, size_t len, const char *err)
{
	struct tg *t = arg;
	struct tg_reply *r = t->replies;
	if (!r)
		return;
	if (err || status != 200) {
		/* Refused for now (Telegram's flood limit is a message a second in a chat, 20 a
		 * minute in a group): the same part again after its retry_after, so that a reply
		 * in parts is not sent again from its start. */
		_cleanup_json_ json_t *ej = body && len ? json_loadb(body, len, 0, NULL) : NULL;
		json_int_t after = json_integer_value(
		    json_object_get(json_object_get(ej, "parameters"), "retry_after"));
		if (retryable(status, err) && ++r->tries < TG_PART_TRIES) {
			struct timeval tv = {after > 0 && after <= 60 ? (time_t)after : r->tries,
			                     0};
			r->off = r->part_off;
			evtimer_add(t->part_retry, &tv);
			return;
		}
		char why[300], text[360];
		describe(status, body, len, err, why, sizeof(why));
		snprintf(text, sizeof(text), "sendMessage refused: %s", why);
		(void)chan_failed(t->c, r->ref, text, retryable(status, err));
		reply_pop(t);
		reply_next(t);
		return;
	}
	r->tries = 0;
	_cleanup_json_ json_t *j = json_loadb(body, len, 0, NULL);
	json_t *id = json_object_get(json_object_get(j, "result"), "message_id");
	if (!r->first_id && json_is_integer(id))
		r->first_id = (long long)json_integer_value(id);
	if (r->off < r->len) {
		reply_next(t);
		return;
	}
	char ext[32];
	snprintf(ext, sizeof(ext), "%lld", r->first_id);
	(void)chan_sent(t->c, r->ref, ext);
	reply_pop(t);
	reply_next(t);
}

/* The first reply's next part goes out. */
static void
reply_next(struct tg *t)
{
	struct tg_reply *r = t->replies;
	if (!r)
		return;
	r->part_off = r->off;
	size_t n = part_len(r->text + r->off, r->len - r->off);
	json_t *body = json_pack("{s:s,s:s%}", "chat_id", r->chat, "text", r->text + r->off, n);
	/* chat ids are numbers to Telegram: sent as one when they are one. */
	char *end;
	long long num = strtoll(r->chat, &end, 10);
	if (body && *r->chat && !*end)
		json_object_set_new(body, "chat_id", json_integer(num));
	/* The message answered is "CHAT:MESSAGE_ID" (our ext_id): quoted by the first part, if
	 * it is in this chat (allow_sending_without_reply: its deletion does not lose ours). */
	const char *colon = strrchr(r->reply_to, ':');
	if (body && colon && r->off == 0 &&
	    strncmp(r->reply_to, r->chat, (size_t)(colon - r->reply_to)) == 0 &&
	    strlen(r->chat) == (size_t)(colon - r->reply_to))
		json_object_set_new(body, "reply_parameters",
		                    json_pack("{s:I,s:b}", "message_id",
		                              (json_int_t)strtoll(colon + 1, NULL, 10),
		                              "allow_sending_without_reply", 1));
	if (body && r->thread[0])
		json_object_set_new(body, "message_thread_id",
		                    json_integer(strtoll(r->thread, NULL, 10)));
	r->off += n;
	while (r->off < r->len && (r->text[r->off] == '\n' || r->text[r->off] == ' '))
		r->off++;
	if (call(t, "sendMessage", body, part_done, t, 30) < 0) {
		(void)chan_failed(t->c, r->ref, "out of memory", true);
		reply_pop(t);
	}
}

static void
on_part_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	reply_next(arg);
}

static json_t *
chat_value(const char *chat)
{
	char *end;
	long long num = strtoll(chat, &end, 10);
	return *chat && !*end ? json_integer(num) : json_string(chat);
}

struct doc_send {
	struct tg *t;
	int64_t ref;
};

static void
doc_done(void *arg, long status, const char *body, size_t len, const char *err)
{
	struct doc_send *ds = arg;
	struct tg *t = ds->t;
	if (err || status != 200) {
		char why[300], text[360];
		describe(status, body, len, err, why, sizeof(why));
		snprintf(text, sizeof(text), "sendDocument refused: %s", why);
		(void)chan_failed(t->c, ds->ref, text, retryable(status, err));
	} else {
		_cleanup_json_ json_t *j = json_loadb(body, len, 0, NULL);
		char ext[32];
		snprintf(ext, sizeof(ext), "%lld",
		         (long long)json_integer_value(
		             json_object_get(json_object_get(j, "result"), "message_id")));
		(void)chan_sent(t->c, ds->ref, ext);
	}
	free(ds);
}

/* send_file: the memfd's bytes as a document, the text as its caption (or, past a caption's
 * length, as a message of its own first: the receipt is the document's). */
static void
send_document(struct tg *t, const json_t *f, int fd)
{
	int64_t ref = (int64_t)json_integer_value(json_object_get(f, "ref"));
	const json_t *file = json_object_get(f, "file");
	uint64_t size = json_get_u64(file, "size");
	struct stat st;
	_cleanup_free_ char *data = NULL;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != size || size > CHANPROTO_FILE_MAX ||
	    !(data = malloc(size ? size : 1)) || pread(fd, data, size, 0) != (ssize_t)size) {
		(void)chan_failed(t->c, ref, "the file to send could not be read", false);
		return;
	}
	const char *text = json_get_str(f, "text") ?: "";
	const char *chat = json_get_str(f, "chat");
	char caption[TG_CAPTION_MAX * 4 + 1] = "";
	if (strlen(text) <= TG_CAPTION_MAX) {
		snprintf(caption, sizeof(caption), "%s", text);
	} else {
		/* Too long for a caption: the text goes first as a message of its own (unconfirmed;
		 * the receipt is the document's). */
		json_t *body = json_pack("{s:o,s:s%}", "chat_id", chat_value(chat), "text", text,
		                         part_len(text, strlen(text)));
		(void)call(t, "sendMessage", body, ignore_done, NULL, 30);
	}
	struct doc_send *ds = calloc(1, sizeof(*ds));
	if (!ds) {
		(void)chan_failed(t->c, ref, "out of memory", true);
		return;
	}
	ds->t = t;
	ds->ref = ref;
	struct chan_http_part parts[3] = {
	    {.name = "chat_id", .value = chat},
	    {.name = "document",
	     .data = data,
	     .len = size,
	     .filename = json_get_str(file, "name"),
	     .type = json_get_str(file, "type")},
	    {.name = "caption", .value = caption},
	};
	char url[1024];
	struct chan_http_req req = {
	    .url = url, .parts = parts, .n_parts = caption[0] ? 3 : 2, .timeout_s = 120};
	if (method_url(t, "sendDocument", url, sizeof(url)) < 0 ||
	    chan_http_start(t->c, &req, doc_done, ds, NULL) < 0) {
		free(ds);
		(void)chan_failed(t->c, ref, "out of memory", true);
	}
}

static void
tg_reply(struct chan *c, const json_t *f, int fd)
{
	struct tg *t = chan_data(c);
	int64_t ref = (int64_t)json_integer_value(json_object_get(f, "ref"));
	if (!t->token[0]) {
		(void)chan_failed(c, ref, "the channel has no token", true);
		return;
	}
	if (fd >= 0) {
		send_document(t, f, fd);
		return;
	}
	struct tg_reply *r = calloc(1, sizeof(*r));
	const char *text = json_get_str(f, "text");
	if (!r || !(r->text = strdup(text && *text ? text : "(no text)"))) {
		free(r);
		(void)chan_failed(c, ref, "out of memory", true);
		return;
	}
	r->ref = ref;
	r->len = strlen(r->text);
	snprintf(r->chat, sizeof(r->chat), "%s", json_get_str(f, "chat"));
	snprintf(r->reply_to, sizeof(r->reply_to), "%s", json_get_str(f, "reply_to") ?: "");
	snprintf(r->thread, sizeof(r->thread), "%s", json_get_str(f, "thread") ?: "");
	struct tg_reply **tail = &t->replies;
	while (*tail)
		tail = &(*tail)->next;
	*tail = r;
	if (t->replies == r)
		reply_next(t);
}

struct edit_send {
	struct tg *t;
	int64_t ref;
	char ext[CHANPROTO_ID_MAX + 1];
};

static void
edit_done(void *arg, long status, const char *body, size_t len, const char *err)
{
	struct edit_send *es = arg;
	if (err || status != 200) {
		char why[300], text[360];
		describe(status, body, len, err, why, sizeof(why));
		snprintf(text, sizeof(text), "editMessageText refused: %s", why);
		(void)chan_failed(es->t->c, es->ref, text, retryable(status, err));
	} else {
		/* An edit keeps its message's id; a new message (the buttons) has Telegram's. */
		_cleanup_json_ json_t *j = json_loadb(body, len, 0, NULL);
		json_t *id = json_object_get(json_object_get(j, "result"), "message_id");
		char ext[32];
		snprintf(ext, sizeof(ext), "%lld", (long long)json_integer_value(id));
		(void)chan_sent(es->t->c, es->ref, es->ext[0] ? es->ext : ext);
	}
	free(es);
}

static void
tg_edit(struct chan *c, const json_t *f)
{
	struct tg *t = chan_data(c);
	int64_t ref = (int64_t)json_integer_value(json_object_get(f, "ref"));
	const char *ext = json_get_str(f, "ext_id"), *text = json_get_str(f, "text");
	struct edit_send *es = calloc(1, sizeof(*es));
	if (!es) {
		(void)chan_failed(c, ref, "out of memory", true);
		return;
	}
	es->t = t;
	es->ref = ref;
	snprintf(es->ext, sizeof(es->ext), "%s", ext);
	/* An edit is one message: cut, not split. */
	json_t *body = json_pack("{s:o,s:I,s:s%}", "chat_id", chat_value(json_get_str(f, "chat")),
	                         "message_id", (json_int_t)strtoll(ext, NULL, 10), "text", text,
	                         part_len(text, strlen(text)));
	if (call(t, "editMessageText", body, edit_done, es, 30) < 0) {
		free(es);
		(void)chan_failed(c, ref, "out of memory", true);
	}
}

static void
tg_typing(struct chan *c, const json_t *f)
{
	struct tg *t = chan_data(c);
	if (t->token[0])
		(void)call(t, "sendChatAction",
		           json_pack("{s:o,s:s}", "chat_id", chat_value(json_get_str(f, "chat")),
		                     "action", "typing"),
		           ignore_done, NULL, 30);
}

static void
tg_approval(struct chan *c, const json_t *f)
{
	struct tg *t = chan_data(c);
	int64_t ref = (int64_t)json_integer_value(json_object_get(f, "ref"));
	long long id = (long long)json_integer_value(json_object_get(f, "approval"));
	static const struct {
		const char *answer, *label;
	} labels[] = {{"approve", "Approve"}, {"run", "Approve for this run"}, {"deny", "Deny"}};
	json_t *row = json_array();
	size_t i;
	json_t *b;
	json_array_foreach(json_object_get(f, "buttons"), i, b)
	{
		for (size_t k = 0; k < ARRAY_SIZE(labels); k++) {
			if (strcmp(json_string_value(b), labels[k].answer) != 0)
				continue;
			char data[64];
			snprintf(data, sizeof(data), "ap:%lld:%s", id, labels[k].answer);
			json_array_append_new(row, json_pack("{s:s,s:s}", "text", labels[k].label,
			                                     "callback_data", data));
		}
	}
	const char *text = json_get_str(f, "text");
	struct edit_send *es = calloc(1, sizeof(*es));
	json_t *body = json_pack(
	    "{s:o,s:s%,s:{s:[o]}}", "chat_id", chat_value(json_get_str(f, "chat")), "text", text,
	    part_len(text, strlen(text)), "reply_markup", "inline_keyboard", row);
	if (!es || !body) {
		free(es);
		json_decref(body);
		(void)chan_failed(c, ref, "out of memory", true);
		return;
	}
	es->t = t;
	es->ref = ref;
	if (call(t, "sendMessage", body, edit_done, es, 30) < 0) {
		free(es);
		(void)chan_failed(c, ref, "out of memory", true);
	}
}

/* The daemon's verdict on an answer: the person who pressed the button is told. */
static void
tg_answered(struct chan *c, const json_t *f)
{
	struct tg *t = chan_data(c);
	int64_t approval = (int64_t)json_integer_value(json_object_get(f, "approval"));
	const char *approver = json_get_str(f, "approver"), *text = json_get_str(f, "text");
	for (size_t k = 0; k < TG_CALLBACKS_MAX; k++) {
		if (!t->callbacks[k].id[0] || t->callbacks[k].approval != approval ||
		    strcmp(t->callbacks[k].approver, approver) != 0)
			continue;
		char shown[200];
		snprintf(shown, sizeof(shown), "%.199s", text);
		(void)call(t, "answerCallbackQuery",
		           json_pack("{s:s,s:s,s:b}", "callback_query_id", t->callbacks[k].id,
		                     "text", shown, "show_alert",
		                     !json_is_true(json_object_get(f, "ok"))),
		           ignore_done, NULL, 30);
		/* Answered: its buttons go, so nobody presses them for nothing. */
		if (json_is_true(json_object_get(f, "ok")) && t->callbacks[k].message)
			(void)call(t, "editMessageReplyMarkup",
			           json_pack("{s:I,s:I,s:{s:[]}}", "chat_id",
			                     (json_int_t)t->callbacks[k].chat, "message_id",
			                     (json_int_t)t->callbacks[k].message, "reply_markup",
			                     "inline_keyboard"),
			           ignore_done, NULL, 30);
		t->callbacks[k].id[0] = '\0';
	}
}

/* ---- the row ---- */

static int
tg_start(struct chan *c, const json_t *config)
{
	static const char *const keys[] = {"token_env", "token_file", "base_url", NULL};
	struct tg *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->c = c;
	chan_set_data(c, t);
	t->retry = evtimer_new(chan_base(c), on_retry, t);
	t->part_retry = evtimer_new(chan_base(c), on_part_retry, t);
	if (!t->retry || !t->part_retry)
		return -ENOMEM;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)config, k, v)
	{
		bool known = false;
		for (size_t i = 0; keys[i]; i++)
			known |= strcmp(k, keys[i]) == 0;
		if (!known) {
			char why[128];
			snprintf(why, sizeof(why), "unknown key \"%.64s\" in its config", k);
			(void)chan_status(c, "error", why);
			return -EINVAL;
		}
	}
	snprintf(t->base, sizeof(t->base), "%s",
	         chan_config_str(c, "base_url", "https://api.telegram.org"));
	const char *cursor = chan_cursor(c);
	if (cursor)
		t->offset = strtoll(cursor, NULL, 10);
	char why[256];
	if (chan_secret(c, t->token, sizeof(t->token), why, sizeof(why)) < 0 ||
	    strpbrk(t->token, "/?# \r\n")) {
		if (!why[0] || t->token[0])
			snprintf(why, sizeof(why), "the token is not a bot token");
		memset(t->token, 0, sizeof(t->token));
		/* Not an exit: a restart would not set the variable. It waits, saying why (the
		 * daemon logs it). */
		(void)chan_status(c, "error", why);
		return 0;
	}
	(void)chan_status(c, "connecting", NULL);
	log_info("polling %s", t->base);
	poll_start(t);
	return 0;
}

static void
tg_stop(struct chan *c)
{
	struct tg *t = chan_data(c);
	chan_http_shutdown();
	if (!t)
		return;
	while (t->replies)
		reply_pop(t);
	json_decref(t->queue);
	if (t->retry)
		event_free(t->retry);
	if (t->part_retry)
		event_free(t->part_retry);
	memset(t->token, 0, sizeof(t->token));
	free(t);
}

const struct chan_kind chan_kind_telegram = {
    .name = "telegram",
    .start = tg_start,
    .reply = tg_reply,
    .edit = tg_edit,
    .typing = tg_typing,
    .approval = tg_approval,
    .answered = tg_answered,
    .stop = tg_stop,
};
