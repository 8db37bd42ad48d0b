/*
 * chanlib.c: the loop every channel process runs (chanlib.h). It reads the daemon's frames
 * from fd 3, checks them with channel-proto.c (the daemon is trusted, but a check costs
 * nothing and keeps the kinds' callbacks simple), keeps the start frame, and dispatches the
 * rest to the kind's callbacks from a table. What the kind reports goes out the same way.
 *
 * Sends block (briefly, with a bound) when the socket is full: the daemon reads its
 * channels on every loop turn, so a full socket is a daemon busy for a moment, and a
 * channel has nothing better to do than wait for it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chanlib.h"
#include "fd-util.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"

#define CHAN_SEND_WAIT_MS 10000

struct chan {
	const struct chan_kind *kind;
	struct event_base *base;
	struct event *rx;
	int sock;
	json_t *start; /* the start frame */
	void *data;
	int status;
	bool started;
};

struct event_base *
chan_base(struct chan *c)
{
	return c->base;
}

const char *
chan_name(const struct chan *c)
{
	return json_get_str(c->start, "name");
}

const json_t *
chan_config(const struct chan *c)
{
	return json_object_get(c->start, "config");
}

const char *
chan_cursor(const struct chan *c)
{
	return json_get_str(c->start, "cursor");
}

const char *
chan_chat_group(const struct chan *c, const char *chat)
{
	return chat ? json_get_str(json_object_get(c->start, "chats"), chat) : NULL;
}

void
chan_set_data(struct chan *c, void *data)
{
	c->data = data;
}

void *
chan_data(const struct chan *c)
{
	return c->data;
}

const char *
chan_config_str(const struct chan *c, const char *key, const char *def)
{
	const char *v = json_get_str(chan_config(c), key);
	return v ? v : def;
}

void
chan_exit(struct chan *c, int status)
{
	c->status = status;
	event_base_loopbreak(c->base);
}

static int
send_frame(struct chan *c, json_t *frame, const int *fds, size_t n_fds)
{
	char why[256];
	if (!frame)
		return -ENOMEM;
	for (;;) {
		int r = chanproto_send(c->sock, CHANPROTO_TO_DAEMON, frame, fds, n_fds, why,
		                       sizeof(why));
		if (r == -EAGAIN) {
			struct pollfd p = {.fd = c->sock, .events = POLLOUT};
			if (poll(&p, 1, CHAN_SEND_WAIT_MS) > 0)
				continue;
			log_error("the daemon has not read a frame for %d s",
			          CHAN_SEND_WAIT_MS / 1000);
		} else if (r == -EBADMSG || r == -EMSGSIZE) {
			log_error("not sent: %s", why); /* a bug of ours: say where */
		} else if (r == -EPIPE) {
			chan_exit(c, 0);
		}
		json_decref(frame);
		return r;
	}
}

int
chan_status(struct chan *c, const char *state, const char *detail)
{
	json_t *f = json_pack("{s:s,s:s}", "t", "status", "state", state);
	if (f && detail) {
		char d[CHANPROTO_DETAIL_MAX + 1];
		size_t n = chanproto_cut(detail, strlen(detail), CHANPROTO_DETAIL_MAX);
		snprintf(d, sizeof(d), "%.*s", (int)n, detail);
		json_object_set_new(f, "detail", json_string(d));
	}
	return send_frame(c, f, NULL, 0);
}

static json_t *
str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

json_t *
chan_message_frame(const struct chan_message *m, int *fds)
{
	if (m->n_attachments > CHANPROTO_FDS_MAX)
		return NULL;
	size_t len = chanproto_cut(m->text, strlen(m->text), CHANPROTO_TEXT_MAX);
	json_t *f = json_pack("{s:s,s:s,s:s,s:s%,s:b,s:s,s:o,s:o}", "t", "message", "chat", m->chat,
	                      "sender", m->sender, "text", m->text, len, "mention", m->mention,
	                      "ext_id", m->ext_id, "thread", str_or_null(m->thread), "cursor",
	                      str_or_null(m->cursor));
	if (f && m->chat_kind)
		json_object_set_new(f, "chat_kind", json_string(m->chat_kind));
	if (f && m->sender_name)
		json_object_set_new(f, "sender_name", json_string(m->sender_name));
	if (f && m->n_attachments) {
		json_t *a = json_array();
		for (size_t i = 0; i < m->n_attachments; i++) {
			const struct chan_attachment *at = &m->attachments[i];
			json_t *o =
			    json_pack("{s:s,s:I}", "name", at->name, "size", (json_int_t)at->size);
			if (o && at->type)
				json_object_set_new(o, "type", json_string(at->type));
			json_array_append_new(a, o);
			fds[i] = at->fd;
		}
		json_object_set_new(f, "attachments", a);
	}
	return f;
}

int
chan_message(struct chan *c, const struct chan_message *m)
{
	int fds[CHANPROTO_FDS_MAX];
	if (m->n_attachments > CHANPROTO_FDS_MAX)
		return -E2BIG;
	return send_frame(c, chan_message_frame(m, fds), fds, m->n_attachments);
}

int
chan_sent(struct chan *c, int64_t ref, const char *ext_id)
{
	return send_frame(
	    c, json_pack("{s:s,s:I,s:s}", "t", "sent", "ref", (json_int_t)ref, "ext_id", ext_id),
	    NULL, 0);
}

int
chan_failed(struct chan *c, int64_t ref, const char *error, bool retry)
{
	char e[CHANPROTO_DETAIL_MAX + 1];
	size_t n = chanproto_cut(error, strlen(error), CHANPROTO_DETAIL_MAX);
	snprintf(e, sizeof(e), "%.*s", (int)n, error);
	return send_frame(c,
	                  json_pack("{s:s,s:I,s:s,s:b}", "t", "failed", "ref", (json_int_t)ref,
	                            "error", e, "retry", retry),
	                  NULL, 0);
}

int
chan_approval_answer(struct chan *c, int64_t approval, const char *answer, const char *approver)
{
	return send_frame(c,
	                  json_pack("{s:s,s:I,s:s,s:s}", "t", "approval_answer", "approval",
	                            (json_int_t)approval, "answer", answer, "approver", approver),
	                  NULL, 0);
}

int
chan_secret(struct chan *c, char *buf, size_t size, char *why, size_t why_size)
{
	const char *file = chan_config_str(c, "token_file", NULL);
	const char *env = chan_config_str(c, "token_env", NULL);
	size_t len;
	if (file) {
		_cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0) {
			int r = NEG_ERRNO();
			snprintf(why, why_size, "token_file %s: %s", file, strerror(-r));
			return r;
		}
		/* A secret others can read is not one: refuse it rather than use it. */
		if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077)) {
			snprintf(why, why_size,
			         "token_file %s: expected a regular file of ours, mode 0600", file);
			return -EPERM;
		}
		ssize_t n = read_full(fd, buf, size);
		if (n < 0) {
			snprintf(why, why_size, "token_file %s: %s", file, strerror((int)-n));
			return (int)n;
		}
		if ((size_t)n >= size) {
			snprintf(why, why_size, "token_file %s: longer than %zu bytes", file, size);
			return -ENAMETOOLONG;
		}
		buf[n] = '\0';
		len = (size_t)n;
	} else if (env) {
		const char *v = getenv(env);
		if (!v || !*v) {
			snprintf(why, why_size, "%s is not set", env);
			return -ENOENT;
		}
		if (strlen(v) >= size) {
			snprintf(why, why_size, "%s: longer than %zu bytes", env, size);
			return -ENAMETOOLONG;
		}
		snprintf(buf, size, "%s", v);
		len = strlen(buf);
	} else {
		snprintf(why, why_size, "neither token_file nor token_env is set");
		return -ENOENT;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	if (len == 0) {
		snprintf(why, why_size, "the token is empty");
		return -ENOENT;
	}
	return 0;
}

/* ---- the daemon's frames ---- */

static void
on_start(struct chan *c, struct chanproto_frame *f)
{
	if (c->started) {
		log_error("a second start frame");
		chan_exit(c, 1);
		return;
	}
	c->started = true;
	c->start = json_incref(f->j);
	static char prefix[96]; /* log.c keeps the pointer */
	snprintf(prefix, sizeof(prefix), "channel %s", chan_name(c));
	log_set_prefix(prefix);
	int r = c->kind->start ? c->kind->start(c, chan_config(c)) : 0;
	if (r < 0)
		chan_exit(c, 1);
}

static void
on_reply(struct chan *c, struct chanproto_frame *f)
{
	if (c->kind->reply)
		c->kind->reply(c, f->j, f->n_fds ? f->fds[0] : -1);
	else
		chan_failed(c, json_integer_value(json_object_get(f->j, "ref")),
		            "this channel does not send replies", false);
}

static void
on_edit(struct chan *c, struct chanproto_frame *f)
{
	if (c->kind->edit)
		c->kind->edit(c, f->j);
}

static void
on_typing(struct chan *c, struct chanproto_frame *f)
{
	if (c->kind->typing)
		c->kind->typing(c, f->j);
}

static void
on_approval(struct chan *c, struct chanproto_frame *f)
{
	if (c->kind->approval)
		c->kind->approval(c, f->j);
	else
		chan_failed(c, json_integer_value(json_object_get(f->j, "ref")),
		            "this channel has no buttons", false);
}

static void
on_answered(struct chan *c, struct chanproto_frame *f)
{
	if (c->kind->answered)
		c->kind->answered(c, f->j);
}

static void
on_stored(struct chan *c, struct chanproto_frame *f)
{
	if (c->kind->stored)
		c->kind->stored(c, json_get_str(f->j, "ext_id"));
}

static void (*const handlers[CHANPROTO_N_TYPES])(struct chan *, struct chanproto_frame *) = {
    [CHANPROTO_START] = on_start,       [CHANPROTO_STORED] = on_stored,
    [CHANPROTO_REPLY] = on_reply,       [CHANPROTO_EDIT] = on_edit,
    [CHANPROTO_TYPING] = on_typing,     [CHANPROTO_APPROVAL] = on_approval,
    [CHANPROTO_ANSWERED] = on_answered,
};

static void
on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct chan *c = arg;
	(void)what;
	for (int i = 0; i < 64; i++) { /* a turn's worth; the rest on the next */
		struct chanproto_frame f = {0};
		char why[256];
		int r = chanproto_recv(fd, CHANPROTO_TO_CHANNEL, &f, why, sizeof(why));
		if (r == -EAGAIN)
			return;
		if (r == -EPIPE) { /* the daemon closed our end: it stops us */
			chan_exit(c, 0);
			return;
		}
		if (r < 0) {
			log_error("a frame from the daemon refused: %s",
			          r == -EBADMSG || r == -EMSGSIZE ? why : strerror(-r));
			chan_exit(c, 1);
			return;
		}
		if (!c->started && f.type != CHANPROTO_START) {
			log_error("a %s frame before start", chanproto_name(f.type));
			chanproto_frame_done(&f);
			chan_exit(c, 1);
			return;
		}
		if (handlers[f.type])
			handlers[f.type](c, &f);
		chanproto_frame_done(&f);
		if (event_base_got_break(c->base))
			return;
	}
}

int
chan_main(const struct chan_kind *kind)
{
	struct chan c = {.kind = kind, .sock = CHANPROTO_CHANNEL_FD, .status = 1};
	log_set_prefix(kind->name);
	int fl = fcntl(c.sock, F_GETFL);
	if (fl < 0 || fcntl(c.sock, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(c.sock, F_SETFD, FD_CLOEXEC) < 0) {
		log_error("fd 3 is not open: this runs as the daemon's child (clawbox serve)");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	c.base = event_base_new();
	c.rx = c.base ? event_new(c.base, c.sock, EV_READ | EV_PERSIST, on_readable, &c) : NULL;
	if (!c.rx || event_add(c.rx, NULL) < 0) {
		log_error("out of memory");
		return 1;
	}
	c.status = 0;
	event_base_dispatch(c.base);
	if (kind->stop && c.started)
		kind->stop(&c);
	event_free(c.rx);
	event_base_free(c.base);
	json_decref(c.start);
	return c.status;
}
