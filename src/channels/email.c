/*
 * email.c: the email channel (`clawbox-channel email`). Mail in over IMAP, replies out over
 * SMTP, both by libcurl on the channel's one loop (chan_curl_start); MIME by GMime
 * (email-msg.c).
 *
 * In: every poll_s seconds (libcurl has no IMAP IDLE, and no other well-kept library offers
 * it on a libevent loop, so we poll) STATUS gives the folder's UIDVALIDITY, UID SEARCH the
 * mail past the cursor, and each new mail is fetched by UID (curl checks UIDVALIDITY on that
 * URL, so a folder rebuilt between the two is not misread). The cursor is "UIDVALIDITY:UID"
 * of the last mail reported; the daemon stores it with the message, so a restart fetches
 * from the next UID on and reads nothing twice. Without a cursor (the first start), or when
 * UIDVALIDITY changed (the folder was rebuilt: its UIDs mean nothing now), the mail not yet
 * \Seen is read: fetching sets \Seen, so that too is read once.
 *
 * Who: the chat is the sender's address. The daemon delivers only the chats configured for
 * the channel; others are dropped and recorded there. A From header is not authentication:
 * anyone can write any From. With "require_auth_pass" the receiving server's
 * Authentication-Results (its "authserv_id") must say dkim or spf passed for the From
 * domain, or the mail is dropped here (and logged).
 *
 * Out: a reply becomes a mail to the chat's address, threaded under the mail it answers
 * (In-Reply-To, References, "Re:" subject): the one its reply_to names, else the newest
 * from that address. This process remembers recent mail; older (a restart since) is found
 * on the server again (by UID, or UID SEARCH FROM the address) and its header fetched. Its
 * Message-ID is derived from the daemon's ref and the text, so a reply sent again after a crash
 * (SMTP has no way to ask whether a mail was taken) carries the same Message-ID and mail clients
 * show it once. Files (send_file) go as an attachment. Email has no edits, typing or buttons.
 *
 * TLS always: imap:// and smtp:// use STARTTLS and fail without it; imaps:// and smtps://
 * are TLS from the start. The password never travels in the clear.
 */
#include <curl/curl.h>
#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chan-http.h"
#include "chanlib.h"
#include "dbuf.h"
#include "email-msg.h"
#include "json-util.h"
#include "log.h"
#include "parse.h"

#define EMAIL_POLL_DEFAULT_S 30
#define EMAIL_BATCH          32          /* mails fetched per poll; more: poll again at once */
#define EMAIL_MSG_MAX        (10u << 20) /* a mail past this is not read (max_message_bytes) */
#define EMAIL_CACHE          64          /* recent mails kept for threading replies */
#define EMAIL_OUT_MAX        64          /* replies queued */
#define EMAIL_SECRET_MAX     1024

struct seen_mail {
	char ext_id[48];
	uint64_t seq; /* order of arrival: the newest of a chat is the one a reply answers */
	char *chat, *message_id, *references, *subject;
};

struct outgoing {
	int64_t ref;
	char *chat, *text, *reply_to;
	void *file;
	size_t file_size;
	char *file_name, *file_type;
	struct outgoing *next;
};

enum imap_step { IMAP_IDLE, IMAP_STATUS, IMAP_SEARCH, IMAP_FETCH, IMAP_FIND, IMAP_HEADER };

struct email {
	struct chan *c;
	/* config */
	char *imap_url, *smtp_url, *folder, *address, *name, *username, *ca_file, *authserv_id;
	char password[EMAIL_SECRET_MAX];
	bool smtp_auth, require_auth;
	unsigned poll_s;
	size_t msg_max, att_max;
	/* IMAP: one operation at a time */
	CURL *imap;
	enum imap_step step;
	struct dbuf in;
	struct event *poll_timer;
	uint64_t validity, last_uid; /* the cursor; validity 0: none yet */
	uint64_t cur_validity;       /* this poll's STATUS */
	uint64_t uids[EMAIL_BATCH];
	size_t n_uids, next_uid;
	bool more, connected;
	/* SMTP: one mail at a time, the rest queued */
	CURL *smtp;
	struct curl_slist *rcpt;
	char *out_mail;
	size_t out_len, out_pos;
	char out_id[EMAIL_ID_MAX];
	struct outgoing *queue, *sending;
	size_t n_queued;
	struct seen_mail cache[EMAIL_CACHE];
	size_t cache_next;
};

static void imap_next(struct email *e);
static void smtp_next(struct email *e);

/* ---- small helpers ---- */

static char *
cfg_dup(struct chan *c, const char *key, const char *def)
{
	const char *v = chan_config_str(c, key, def);
	return v ? strdup(v) : NULL;
}

static void
set_state(struct email *e, bool ok, const char *detail)
{
	if (ok == e->connected && ok)
		return;
	e->connected = ok;
	chan_status(e->c, ok ? "connected" : "error", detail);
}

static size_t
in_write(char *buf, size_t size, size_t n, void *arg)
{
	struct email *e = arg;
	return dbuf_append(&e->in, buf, size * n) < 0 ? 0 : size * n; /* 0: too large, abort */
}

/* The settings every IMAP transfer shares. */
static void
imap_setup(struct email *e, const char *url, const char *request)
{
	CURL *x = e->imap;
	curl_easy_reset(x);
	curl_easy_setopt(x, CURLOPT_URL, url);
	curl_easy_setopt(x, CURLOPT_PROTOCOLS_STR, "imap,imaps");
	curl_easy_setopt(x, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
	curl_easy_setopt(x, CURLOPT_USERNAME, e->username);
	curl_easy_setopt(x, CURLOPT_PASSWORD, e->password);
	if (e->ca_file)
		curl_easy_setopt(x, CURLOPT_CAINFO, e->ca_file);
	curl_easy_setopt(x, CURLOPT_PROXY, "");
	curl_easy_setopt(x, CURLOPT_CONNECTTIMEOUT, 15L);
	curl_easy_setopt(x, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(x, CURLOPT_WRITEFUNCTION, in_write);
	curl_easy_setopt(x, CURLOPT_WRITEDATA, e);
	if (request)
		curl_easy_setopt(x, CURLOPT_CUSTOMREQUEST, request);
	dbuf_reset(&e->in);
}

/* The number after key in s ("UIDVALIDITY 17"), or -EINVAL. */
static int
number_after(const char *s, const char *key, uint64_t *ret)
{
	const char *p = strstr(s, key);
	if (!p)
		return -EINVAL;
	p += strlen(key);
	char digits[24];
	size_t n = 0;
	while (n + 1 < sizeof(digits) && p[n] >= '0' && p[n] <= '9') {
		digits[n] = p[n];
		n++;
	}
	digits[n] = '\0';
	return parse_u64(digits, UINT32_MAX, ret);
}

/* ---- the threading cache ---- */

static void
cache_free(struct seen_mail *s)
{
	free(s->chat);
	free(s->message_id);
	free(s->references);
	free(s->subject);
	memset(s, 0, sizeof(*s));
}

static void
cache_put(struct email *e, const char *ext_id, const struct email_in *m)
{
	struct seen_mail *s = &e->cache[e->cache_next++ % EMAIL_CACHE];
	cache_free(s);
	snprintf(s->ext_id, sizeof(s->ext_id), "%s", ext_id);
	s->seq = e->cache_next;
	s->chat = strdup(m->from_addr);
	s->message_id = m->message_id ? strdup(m->message_id) : NULL;
	s->references = strdup(m->references ? m->references : "");
	s->subject = strdup(m->subject ? m->subject : "");
}

/* The mail a reply answers: the one named (reply_to), else the newest from its chat. */
static struct seen_mail *
cache_get(struct email *e, const char *ext_id, const char *chat)
{
	struct seen_mail *best = NULL;
	for (size_t i = 0; i < EMAIL_CACHE; i++) {
		struct seen_mail *s = &e->cache[i];
		if (!s->ext_id[0])
			continue;
		if (ext_id && strcmp(s->ext_id, ext_id) == 0)
			return s;
		if (!ext_id && s->chat && strcmp(s->chat, chat) == 0 &&
		    (!best || s->seq > best->seq))
			best = s;
	}
	return best;
}

/* ---- IMAP: poll, search, fetch ---- */

static void
poll_later(struct email *e, unsigned s)
{
	struct timeval tv = {.tv_sec = s};
	evtimer_add(e->poll_timer, &tv);
}

static void
imap_fail(struct email *e, const char *what, CURLcode rc)
{
	char d[256];
	snprintf(d, sizeof(d), "IMAP %s: %s", what, curl_easy_strerror(rc));
	log_warn("%s", d);
	set_state(e, false, d);
	e->step = IMAP_IDLE;
	poll_later(e, e->poll_s);
}

/* One fetched mail: read, checked, reported with the cursor after it. */
static void
report_mail(struct email *e, uint64_t uid)
{
	char ext_id[48];
	snprintf(ext_id, sizeof(ext_id), "%llu:%llu", (unsigned long long)e->cur_validity,
	         (unsigned long long)uid);
	/* The cursor moves past this mail whatever becomes of it: a mail we drop is dropped
	 * once, not on every poll. */
	e->validity = e->cur_validity;
	e->last_uid = uid;
	struct email_in m;
	int r = email_in_parse_files(dbuf_str(&e->in), e->in.len, e->authserv_id, e->att_max, &m);
	if (r < 0) {
		log_warn("mail %s: unreadable (%s), skipped", ext_id, strerror(-r));
		return;
	}
	if (!m.from_addr) {
		log_warn("mail %s: no sender address, skipped", ext_id);
	} else if (e->require_auth && !m.auth_pass) {
		/* A forged From is the cheapest attack on a mail bot: without the receiving
		 * server's word that it is real, the mail reaches nobody. */
		log_fields("warning",
		           (const char *const[]){"from", m.from_addr, "mail", ext_id, NULL},
		           "mail dropped: no dkim=pass or spf=pass from %s for the sender's domain",
		           e->authserv_id);
	} else {
		cache_put(e, ext_id, &m);
		struct dbuf text;
		dbuf_init(&text, CHANPROTO_TEXT_MAX);
		if (m.subject[0])
			dbuf_printf(&text, "Subject: %s\n\n", m.subject);
		dbuf_append_capped(&text, m.text, strlen(m.text));
		if (m.truncated)
			dbuf_puts(&text, "\n[the rest of this mail was cut]");
		if (m.att_dropped)
			dbuf_printf(
			    &text,
			    "\n[%zu attachment(s) not kept: more than %d, or over %zu bytes]",
			    m.att_dropped, EMAIL_ATT_MAX, e->att_max);
		/* Files go as sealed memfds; the daemon puts them in the group's inbox. */
		struct chan_attachment atts[EMAIL_ATT_MAX];
		size_t n_atts = 0;
		/* None for a chat no group is for: the daemon drops (and records) it. */
		size_t keep = chan_chat_group(e->c, m.from_addr) ? m.n_att : 0;
		for (size_t i = 0; i < keep; i++) {
			int fd = chanproto_memfd(m.att[i].name, m.att[i].data, m.att[i].size);
			if (fd < 0) {
				log_warn("mail %s: attachment %zu not kept: %s", ext_id, i,
				         strerror(-fd));
				continue;
			}
			atts[n_atts++] = (struct chan_attachment){
			    .name = m.att[i].name,
			    .type = m.att[i].type,
			    .fd = fd,
			    .size = m.att[i].size,
			};
		}
		struct chan_message cm = {
		    .chat = m.from_addr,
		    .chat_kind = "private",
		    .sender = m.from_addr,
		    .sender_name = m.from_name,
		    .text = dbuf_str(&text),
		    .mention = true,
		    .ext_id = ext_id,
		    .cursor = ext_id, /* "UIDVALIDITY:UID" */
		    .attachments = atts,
		    .n_attachments = n_atts,
		};
		r = chan_message(e->c, &cm);
		for (size_t i = 0; i < n_atts; i++)
			close(atts[i].fd);
		if (r < 0)
			log_warn("mail %s not reported: %s", ext_id, strerror(-r));
		dbuf_done(&text);
	}
	email_in_done(&m);
}

static void
imap_done(void *arg, CURL *easy, CURLcode rc)
{
	struct email *e = arg;
	(void)easy;
	switch (e->step) {
	case IMAP_STATUS: {
		uint64_t v = 0;
		if (rc != CURLE_OK)
			return imap_fail(e, "STATUS", rc);
		if (number_after(dbuf_str(&e->in), "UIDVALIDITY ", &v) < 0 || v == 0) {
			e->step = IMAP_IDLE;
			set_state(e, false, "IMAP STATUS: no UIDVALIDITY in the answer");
			return poll_later(e, e->poll_s);
		}
		set_state(e, true, NULL);
		if (e->validity && e->validity != v)
			log_warn(
			    "the folder's UIDVALIDITY changed (%llu to %llu): reading its unseen "
			    "mail",
			    (unsigned long long)e->validity, (unsigned long long)v);
		e->cur_validity = v;
		e->step = IMAP_SEARCH;
		char url[1024], req[64];
		snprintf(url, sizeof(url), "%s/%s", e->imap_url, e->folder);
		if (e->validity == v)
			snprintf(req, sizeof(req), "UID SEARCH UID %llu:*",
			         (unsigned long long)e->last_uid + 1);
		else
			snprintf(req, sizeof(req), "UID SEARCH UNSEEN");
		imap_setup(e, url, req);
		break;
	}
	case IMAP_SEARCH: {
		if (rc != CURLE_OK)
			return imap_fail(e, "SEARCH", rc);
		/* "* SEARCH 4 7 9", among other untagged answers ("* 5 EXISTS" when mail came
		 * meanwhile): only that line's numbers. "n:*" always includes the highest UID,
		 * even one below n, so what is not past the cursor is left out. */
		e->n_uids = e->next_uid = 0;
		e->more = false;
		const char *p = strstr(dbuf_str(&e->in), "* SEARCH");
		const char *eol = p ? p + strcspn(p, "\r\n") : NULL;
		uint64_t floor = e->validity == e->cur_validity ? e->last_uid : 0;
		for (p = p ? p + 8 : NULL; p && p < eol;) {
			char *end;
			unsigned long long u = strtoull(p, &end, 10);
			if (end == p)
				break;
			p = end;
			if (u <= floor || u > UINT32_MAX)
				continue;
			if (e->n_uids == EMAIL_BATCH) {
				e->more = true;
				break;
			}
			e->uids[e->n_uids++] = u;
		}
		/* Servers answer in ascending order; the cursor relies on it, so make sure, and
		 * fetch each once. */
		for (size_t i = 1; i < e->n_uids; i++)
			for (size_t j = i; j > 0 && e->uids[j - 1] > e->uids[j]; j--) {
				uint64_t t = e->uids[j];
				e->uids[j] = e->uids[j - 1];
				e->uids[j - 1] = t;
			}
		size_t k = 0;
		for (size_t i = 0; i < e->n_uids; i++)
			if (k == 0 || e->uids[i] != e->uids[k - 1])
				e->uids[k++] = e->uids[i];
		e->n_uids = k;
		e->step = IMAP_FETCH;
		return imap_next(e);
	}
	case IMAP_FETCH:
		if (rc == CURLE_WRITE_ERROR) {
			log_warn("mail %llu:%llu is larger than %zu bytes: not read",
			         (unsigned long long)e->cur_validity,
			         (unsigned long long)e->uids[e->next_uid - 1], e->msg_max);
			e->validity = e->cur_validity;
			e->last_uid = e->uids[e->next_uid - 1];
		} else if (rc != CURLE_OK) {
			return imap_fail(e, "FETCH", rc);
		} else {
			report_mail(e, e->uids[e->next_uid - 1]);
		}
		return imap_next(e);
	default:
		return;
	}
	if (chan_curl_start(e->c, e->imap, imap_done, e) < 0)
		imap_fail(e, "start", CURLE_OUT_OF_MEMORY);
}

/* The next mail of this poll's batch, or the end of the poll. */
static void
imap_next(struct email *e)
{
	if (e->next_uid >= e->n_uids) {
		e->step = IMAP_IDLE;
		poll_later(e, e->more ? 0 : e->poll_s);
		smtp_next(e); /* a reply may wait for the lane (a header fetch) */
		return;
	}
	uint64_t uid = e->uids[e->next_uid++];
	char url[1024];
	snprintf(url, sizeof(url), "%s/%s;UIDVALIDITY=%llu/;UID=%llu", e->imap_url, e->folder,
	         (unsigned long long)e->cur_validity, (unsigned long long)uid);
	imap_setup(e, url, NULL);
	e->in.max = e->msg_max;
	if (chan_curl_start(e->c, e->imap, imap_done, e) < 0)
		imap_fail(e, "start", CURLE_OUT_OF_MEMORY);
}

static void
on_poll(evutil_socket_t fd, short what, void *arg)
{
	struct email *e = arg;
	(void)fd;
	(void)what;
	if (e->step != IMAP_IDLE) { /* a header fetch for a reply has the lane: soon */
		poll_later(e, 1);
		return;
	}
	char req[256];
	snprintf(req, sizeof(req), "STATUS \"%s\" (UIDVALIDITY UIDNEXT)", e->folder);
	imap_setup(e, e->imap_url, req);
	/* A new connection each poll: on one that has the folder selected, servers (Dovecot)
	 * answer STATUS and SEARCH from the view they had, and new mail showed up polls late
	 * (5 s at poll_s 1, measured); a fresh SELECT sees the folder as it is. */
	curl_easy_setopt(e->imap, CURLOPT_FRESH_CONNECT, 1L);
	e->in.max = 64 * 1024;
	e->step = IMAP_STATUS;
	if (chan_curl_start(e->c, e->imap, imap_done, e) < 0)
		imap_fail(e, "start", CURLE_OUT_OF_MEMORY);
}

/* ---- SMTP: replies ---- */

static void
outgoing_free(struct outgoing *o)
{
	if (!o)
		return;
	free(o->chat);
	free(o->text);
	free(o->reply_to);
	free(o->file);
	free(o->file_name);
	free(o->file_type);
	free(o);
}

static size_t
out_read(char *buf, size_t size, size_t n, void *arg)
{
	struct email *e = arg;
	size_t left = e->out_len - e->out_pos, want = size * n;
	size_t k = left < want ? left : want;
	memcpy(buf, e->out_mail + e->out_pos, k);
	e->out_pos += k;
	return k;
}

static void
smtp_done(void *arg, CURL *easy, CURLcode rc)
{
	struct email *e = arg;
	(void)easy;
	struct outgoing *o = e->sending;
	e->sending = NULL;
	free(e->out_mail);
	e->out_mail = NULL;
	curl_slist_free_all(e->rcpt);
	e->rcpt = NULL;
	if (rc == CURLE_OK) {
		chan_sent(e->c, o->ref, e->out_id);
	} else {
		long code = 0;
		curl_easy_getinfo(e->smtp, CURLINFO_RESPONSE_CODE, &code);
		char err[256];
		snprintf(err, sizeof(err), "SMTP: %s (%ld)", curl_easy_strerror(rc), code);
		log_warn("reply %lld to %s not sent: %s", (long long)o->ref, o->chat, err);
		/* 5xx: the server refused this mail for good; anything else may pass later. */
		chan_failed(e->c, o->ref, err, !(code >= 500 && code < 600));
	}
	outgoing_free(o);
	smtp_next(e);
}

/* "clawbox.REF.HASH@domain": the same reply, sent again, has the same id. */
static void
reply_message_id(struct email *e, const struct outgoing *o, char *out, size_t size)
{
	GChecksum *ck = g_checksum_new(G_CHECKSUM_SHA256);
	g_checksum_update(ck, (const guchar *)o->chat, (gssize)strlen(o->chat));
	g_checksum_update(ck, (const guchar *)"\n", 1);
	g_checksum_update(ck, (const guchar *)o->text, (gssize)strlen(o->text));
	snprintf(out, size, "clawbox.%lld.%.16s@%s", (long long)o->ref, g_checksum_get_string(ck),
	         email_addr_domain(e->address));
	g_checksum_free(ck);
}

static void
smtp_send(struct email *e, struct outgoing *o, const struct seen_mail *orig)
{
	e->sending = o;
	reply_message_id(e, o, e->out_id, sizeof(e->out_id));
	struct email_reply r = {
	    .from_addr = e->address,
	    .from_name = e->name,
	    .to_addr = o->chat,
	    .subject = orig ? orig->subject : NULL,
	    .in_reply_to = orig ? orig->message_id : NULL,
	    .references = orig ? orig->references : NULL,
	    .message_id = e->out_id,
	    .text = o->text,
	    .file_data = o->file,
	    .file_size = o->file_size,
	    .file_name = o->file_name,
	    .file_type = o->file_type,
	};
	int err = email_reply_build(&r, &e->out_mail, &e->out_len);
	if (err < 0) {
		e->sending = NULL;
		chan_failed(e->c, o->ref,
		            err == -EINVAL ? "not a mail address or id" : strerror(-err), false);
		outgoing_free(o);
		return smtp_next(e);
	}
	e->out_pos = 0;
	char from[EMAIL_ID_MAX + 3], to[EMAIL_ID_MAX + 3];
	snprintf(from, sizeof(from), "<%s>", e->address);
	snprintf(to, sizeof(to), "<%s>", o->chat);
	e->rcpt = curl_slist_append(NULL, to);
	CURL *x = e->smtp;
	curl_easy_reset(x);
	curl_easy_setopt(x, CURLOPT_URL, e->smtp_url);
	curl_easy_setopt(x, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(x, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
	if (e->smtp_auth) {
		curl_easy_setopt(x, CURLOPT_USERNAME, e->username);
		curl_easy_setopt(x, CURLOPT_PASSWORD, e->password);
	}
	if (e->ca_file)
		curl_easy_setopt(x, CURLOPT_CAINFO, e->ca_file);
	curl_easy_setopt(x, CURLOPT_PROXY, "");
	curl_easy_setopt(x, CURLOPT_CONNECTTIMEOUT, 15L);
	curl_easy_setopt(x, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(x, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt(x, CURLOPT_MAIL_RCPT, e->rcpt);
	curl_easy_setopt(x, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(x, CURLOPT_READFUNCTION, out_read);
	curl_easy_setopt(x, CURLOPT_READDATA, e);
	curl_easy_setopt(x, CURLOPT_INFILESIZE_LARGE, (curl_off_t)e->out_len);
	if (!e->rcpt || chan_curl_start(e->c, x, smtp_done, e) < 0)
		smtp_done(e, x, CURLE_OUT_OF_MEMORY);
}

/* The original of a reply not in the cache: its header fetched again by UID (ext_id
 * "UIDVALIDITY:UID"), while the IMAP lane is free. */
static void
header_done(void *arg, CURL *easy, CURLcode rc)
{
	struct email *e = arg;
	(void)easy;
	e->step = IMAP_IDLE;
	struct outgoing *o = e->queue;
	e->queue = o->next;
	e->n_queued--;
	struct email_in m;
	struct seen_mail s = {0};
	bool have = rc == CURLE_OK && email_in_parse(dbuf_str(&e->in), e->in.len, NULL, &m) == 0;
	if (have) {
		s.message_id = m.message_id;
		s.references = m.references;
		s.subject = m.subject;
	} else {
		log_warn("the mail reply %lld answers is not found: it starts a new thread",
		         (long long)o->ref);
	}
	smtp_send(e, o, have ? &s : NULL);
	if (have)
		email_in_done(&m);
}

/* Fetches the header of mail UID of this folder for the reply at the queue's head. */
static void
fetch_header(struct email *e, uint64_t validity, uint64_t uid)
{
	char url[1024];
	snprintf(url, sizeof(url), "%s/%s;UIDVALIDITY=%llu/;UID=%llu;SECTION=HEADER", e->imap_url,
	         e->folder, (unsigned long long)validity, (unsigned long long)uid);
	imap_setup(e, url, NULL);
	e->in.max = 256 * 1024;
	e->step = IMAP_HEADER;
	if (chan_curl_start(e->c, e->imap, header_done, e) < 0)
		header_done(e, e->imap, CURLE_OUT_OF_MEMORY);
}

/* "* SEARCH 3 9 12": the newest mail from the chat's address, whose header comes next. */
static void
find_done(void *arg, CURL *easy, CURLcode rc)
{
	struct email *e = arg;
	(void)easy;
	uint64_t newest = 0;
	const char *p = rc == CURLE_OK ? strstr(dbuf_str(&e->in), "* SEARCH") : NULL;
	const char *eol = p ? p + strcspn(p, "\r\n") : NULL;
	for (p = p ? p + 8 : NULL; p && p < eol;) {
		char *end;
		unsigned long long u = strtoull(p, &end, 10);
		if (end == p)
			break;
		p = end;
		if (u > newest && u <= UINT32_MAX)
			newest = u;
	}
	if (newest) {
		fetch_header(e, e->cur_validity, newest);
		return;
	}
	header_done(e, easy, CURLE_REMOTE_FILE_NOT_FOUND);
}

/* An address that can go inside an IMAP quoted string as it is. */
static bool
search_safe(const char *addr)
{
	return *addr && strlen(addr) < 320 && !strpbrk(addr, "\"\\\r\n ");
}

static void
smtp_next(struct email *e)
{
	if (e->sending || !e->queue)
		return;
	struct outgoing *o = e->queue;
	struct seen_mail *orig = cache_get(e, o->reply_to, o->chat);
	if (!orig && e->cur_validity) {
		/* Not among the recent (a restart since): ask the server, when the lane is free
		 * (imap_next calls again then). */
		if (e->step != IMAP_IDLE)
			return;
		unsigned long long v, u;
		char tail;
		if (o->reply_to && sscanf(o->reply_to, "%llu:%llu%c", &v, &u, &tail) == 2 &&
		    v == e->cur_validity) {
			fetch_header(e, v, u);
			return;
		}
		if (!o->reply_to && search_safe(o->chat)) {
			char url[1024], req[400];
			snprintf(url, sizeof(url), "%s/%s", e->imap_url, e->folder);
			snprintf(req, sizeof(req), "UID SEARCH FROM \"%s\"", o->chat);
			imap_setup(e, url, req);
			e->in.max = 256 * 1024;
			e->step = IMAP_FIND;
			if (chan_curl_start(e->c, e->imap, find_done, e) < 0)
				header_done(e, e->imap, CURLE_OUT_OF_MEMORY);
			return;
		}
	}
	e->queue = o->next;
	e->n_queued--;
	smtp_send(e, o, orig);
}

/* A file to attach: the memfd's bytes (at most CHANPROTO_FILE_MAX, checked by chanlib). */
static int
read_file_fd(int fd, size_t size, void **ret)
{
	if (size == 0) {
		*ret = malloc(1);
		return *ret ? 0 : -ENOMEM;
	}
	void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		return NEG_ERRNO();
	void *copy = malloc(size);
	if (copy)
		memcpy(copy, map, size);
	munmap(map, size);
	if (!copy)
		return -ENOMEM;
	*ret = copy;
	return 0;
}

static void
email_reply(struct chan *c, const json_t *frame, int file_fd)
{
	struct email *e = chan_data(c);
	int64_t ref = json_integer_value(json_object_get(frame, "ref"));
	const char *chat = json_get_str(frame, "chat");
	/* The daemon's progress note of a long run ("(working) ..."), meant to be edited as the
	 * run goes and replaced by the reply: mail cannot be edited, so it would be a mail of
	 * its own each time. Taken, not sent. */
	const char *t = json_get_str(frame, "text");
	if (t && strncmp(t, "(working) ", 10) == 0 && !json_object_get(frame, "file")) {
		chan_sent(c, ref, "progress-not-mailed");
		return;
	}
	if (e->n_queued >= EMAIL_OUT_MAX) {
		chan_failed(c, ref, "too many mails waiting to be sent", true);
		return;
	}
	struct outgoing *o = calloc(1, sizeof(*o));
	if (!o) {
		chan_failed(c, ref, "out of memory", true);
		return;
	}
	o->ref = ref;
	o->chat = strdup(chat ? chat : "");
	o->text = strdup(json_get_str(frame, "text") ? json_get_str(frame, "text") : "");
	const char *rt = json_get_str(frame, "reply_to");
	o->reply_to = rt ? strdup(rt) : NULL;
	const json_t *file = json_object_get(frame, "file");
	if (file && file_fd >= 0) {
		struct stat st;
		size_t size = (size_t)json_get_u64(file, "size");
		if (fstat(file_fd, &st) < 0 || (size_t)st.st_size < size ||
		    read_file_fd(file_fd, size, &o->file) < 0) {
			chan_failed(c, ref, "the file could not be read", false);
			outgoing_free(o);
			return;
		}
		o->file_size = size;
		o->file_name =
		    strdup(json_get_str(file, "name") ? json_get_str(file, "name") : "file");
		const char *type = json_get_str(file, "type");
		o->file_type = type ? strdup(type) : NULL;
	}
	if (!o->chat || !o->text || (rt && !o->reply_to)) {
		chan_failed(c, ref, "out of memory", true);
		outgoing_free(o);
		return;
	}
	struct outgoing **tail = &e->queue;
	while (*tail)
		tail = &(*tail)->next;
	*tail = o;
	e->n_queued++;
	smtp_next(e);
}

/* An edit of a progress note (the only thing the daemon edits): mail has no edits, and the
 * reply itself comes as a mail of its own. Acknowledged so the daemon does not wait. */
static void
email_edit(struct chan *c, const json_t *frame)
{
	chan_sent(c, json_integer_value(json_object_get(frame, "ref")),
	          json_get_str(frame, "ext_id") ? json_get_str(frame, "ext_id") : "-");
}

/* ---- start and stop ---- */

static int
parse_cursor(struct email *e, const char *cursor)
{
	if (!cursor)
		return 0;
	char v[24], u[24];
	const char *colon = strchr(cursor, ':');
	if (!colon || (size_t)(colon - cursor) >= sizeof(v) || strlen(colon + 1) >= sizeof(u))
		return -EINVAL;
	snprintf(v, sizeof(v), "%.*s", (int)(colon - cursor), cursor);
	snprintf(u, sizeof(u), "%s", colon + 1);
	if (parse_u64(v, UINT32_MAX, &e->validity) < 0 ||
	    parse_u64(u, UINT32_MAX, &e->last_uid) < 0)
		return -EINVAL;
	e->cur_validity = e->validity;
	return 0;
}

static bool
folder_ok(const char *f)
{
	if (!*f || strlen(f) > 200)
		return false;
	for (; *f; f++)
		if (!(g_ascii_isalnum(*f) || strchr("._-/", *f)))
			return false;
	return true;
}

static int
email_start(struct chan *c, const json_t *config)
{
	struct email *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	chan_set_data(c, e);
	e->c = c;
	dbuf_init(&e->in, 64 * 1024);
	e->imap_url = cfg_dup(c, "imap_url", NULL);
	e->smtp_url = cfg_dup(c, "smtp_url", NULL);
	e->folder = cfg_dup(c, "folder", "INBOX");
	e->address = cfg_dup(c, "address", NULL);
	e->name = cfg_dup(c, "from_name", NULL);
	e->username = cfg_dup(c, "username", e->address);
	e->ca_file = cfg_dup(c, "ca_file", NULL);
	e->authserv_id = cfg_dup(c, "authserv_id", NULL);
	e->require_auth = json_is_true(json_object_get(config, "require_auth_pass"));
	e->smtp_auth = !json_is_false(json_object_get(config, "smtp_auth"));
	json_t *p = json_object_get(config, "poll_s");
	e->poll_s = p ? (unsigned)json_integer_value(p) : EMAIL_POLL_DEFAULT_S;
	json_t *mx = json_object_get(config, "max_message_bytes");
	e->msg_max = mx ? (size_t)json_integer_value(mx) : EMAIL_MSG_MAX;
	json_t *ax = json_object_get(config, "max_attachment_bytes");
	e->att_max = ax ? (size_t)json_integer_value(ax) : EMAIL_MSG_MAX;

	const char *bad = NULL;
	char why[256];
	if (!e->imap_url || !e->smtp_url || !e->address)
		bad = "imap_url, smtp_url and address are required";
	else if (!strchr(e->address, '@') || strpbrk(e->address, " <>\r\n"))
		bad = "address is not a mail address";
	else if (!folder_ok(e->folder))
		bad = "folder: letters, digits and ._-/ only";
	else if (p && (!json_is_integer(p) || e->poll_s < 1 || e->poll_s > 3600))
		bad = "poll_s: a whole number of seconds, 1 to 3600";
	else if (mx && (!json_is_integer(mx) || e->msg_max < 1024 || e->msg_max > (64u << 20)))
		bad = "max_message_bytes: 1024 to 64 MiB";
	else if (ax && (!json_is_integer(ax) || json_integer_value(ax) < 0 ||
	                e->att_max > CHANPROTO_FILE_MAX))
		bad = "max_attachment_bytes: 0 (none kept) to 20 MiB";
	else if (e->require_auth && (!e->authserv_id || !*e->authserv_id))
		bad = "require_auth_pass needs authserv_id: the receiving server's name in its "
		      "Authentication-Results headers";
	else if (parse_cursor(e, chan_cursor(c)) < 0)
		bad = "the stored cursor is not UIDVALIDITY:UID";
	else if (chan_secret(c, e->password, sizeof(e->password), why, sizeof(why)) < 0)
		bad = why;
	if (bad) {
		chan_status(c, "error", bad);
		log_error("%s", bad);
		return -EINVAL;
	}
	/* no trailing slash: paths are added as "/FOLDER" */
	size_t ul = strlen(e->imap_url);
	while (ul && e->imap_url[ul - 1] == '/')
		e->imap_url[--ul] = '\0';
	e->imap = curl_easy_init();
	e->smtp = curl_easy_init();
	e->poll_timer = evtimer_new(chan_base(c), on_poll, e);
	if (!e->imap || !e->smtp || !e->poll_timer)
		return -ENOMEM;
	chan_status(c, "connecting", NULL);
	poll_later(e, 0);
	return 0;
}

static void
email_stop(struct chan *c)
{
	struct email *e = chan_data(c);
	if (!e)
		return;
	if (e->imap)
		chan_curl_cancel(e->imap);
	if (e->smtp)
		chan_curl_cancel(e->smtp);
	chan_http_shutdown();
	if (e->imap)
		curl_easy_cleanup(e->imap);
	if (e->smtp)
		curl_easy_cleanup(e->smtp);
	if (e->poll_timer)
		event_free(e->poll_timer);
	curl_slist_free_all(e->rcpt);
	free(e->out_mail);
	outgoing_free(e->sending);
	while (e->queue) {
		struct outgoing *o = e->queue;
		e->queue = o->next;
		outgoing_free(o);
	}
	for (size_t i = 0; i < EMAIL_CACHE; i++)
		cache_free(&e->cache[i]);
	dbuf_done(&e->in);
	explicit_bzero(e->password, sizeof(e->password));
	free(e->imap_url);
	free(e->smtp_url);
	free(e->folder);
	free(e->address);
	free(e->name);
	free(e->username);
	free(e->ca_file);
	free(e->authserv_id);
	free(e);
	chan_set_data(c, NULL);
}

const struct chan_kind chan_kind_email = {
    .name = "email",
    .start = email_start,
    .reply = email_reply,
    .edit = email_edit,
    .stop = email_stop,
};
