/*
 * egress.c: see egress.h. Frames are parsed by jansson (duplicate keys refused) and each field
 * checked before use: the proxy is ours, but it parses what the sandbox sends, so the daemon
 * treats what it says as a report, bounded, never as a command.
 */
#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "approvals.h"
#include "daemon.h"
#include "egress.h"
#include "json-util.h"
#include "taint.h"

/* One ask held by approvals.c: its context, so that the answer finds its id. */
struct egress_ask {
	struct egress_ask *next;
	struct egress_chan *ch;
	json_int_t id;
};

struct egress_chan {
	struct daemon *d;
	char group[CONFIG_GROUP_ID_MAX], run[40];
	int fd;
	struct event *ev;
	struct egress_ask *asks; /* held now */
	unsigned n_asks, n_taints, taints_over;
};

static void
send_answer(struct egress_chan *ch, json_int_t id, bool allow, const char *reason)
{
	if (ch->fd < 0)
		return;
	json_t *o = json_pack("{s:s,s:I,s:s,s:s}", "t", "egress_answer", "id", id, "verdict",
	                      allow ? "allow" : "deny", "reason", reason ? reason : "");
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	/* A failed send leaves the request held in the proxy until the channel closes, which
	 * denies it there: never a grant. */
	if (text && strlen(text) <= EGRESS_FRAME_MAX)
		(void)!send(ch->fd, text, strlen(text), MSG_DONTWAIT | MSG_NOSIGNAL);
	free(text);
}

static void
ask_unlink(struct egress_ask *a)
{
	for (struct egress_ask **p = &a->ch->asks; *p; p = &(*p)->next)
		if (*p == a) {
			*p = a->next;
			break;
		}
}

static void
ask_done(void *ctx, json_t *answer)
{
	struct egress_ask *a = ctx;
	bool ok = json_is_true(json_object_get(answer, "ok"));
	send_answer(a->ch, a->id, ok,
	            json_get_str(answer, ok ? "reason" : "error") ?: (ok ? "approved" : "denied"));
	json_decref(answer);
	ask_unlink(a);
	free(a);
}

/* Stops reading: what is held is denied here, and the proxy, seeing the end, denies too. */
static void
chan_cut(struct egress_chan *ch, const char *why)
{
	if (why) {
		char text[256];
		snprintf(text, sizeof(text), "the egress control channel of run %.32s was cut: %s",
		         ch->run, why);
		(void)store_audit(ch->d->store, ch->group, "egress", "deny", text);
	}
	while (ch->asks) {
		struct egress_ask *a = ch->asks;
		ch->asks = a->next;
		approvals_forget(ch->d, a);
		free(a);
	}
	if (ch->ev)
		event_free(ch->ev);
	ch->ev = NULL;
	if (ch->fd >= 0)
		close(ch->fd);
	ch->fd = -1;
}

/* A string member of at most max bytes whose every byte passes ok (NULL: any), or NULL. */
static const char *
field(json_t *o, const char *key, size_t min, size_t max, const char *ok)
{
	json_t *v = json_object_get(o, key);
	const char *s = json_string_value(v);
	if (!s || json_string_length(v) < min || json_string_length(v) > max ||
	    strlen(s) != json_string_length(v))
		return NULL;
	if (ok)
		for (const char *p = s; *p; p++)
			if (!strchr(ok, *p))
				return NULL;
	return s;
}

static const char upper[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
static const char hexdig[] = "0123456789abcdef";
static const char hostch[] = "abcdefghijklmnopqrstuvwxyz0123456789.-_:[]";

/* The proxy's request, checked field by field: -EINVAL (with why) when anything is off. */
static int
on_ask(struct egress_chan *ch, json_t *o, const char **why)
{
	static const char *const keys[] = {"t",    "id",  "method",    "host",        "port",
	                                   "path", "why", "body_size", "body_sha256", "preview"};
	if (json_object_size(o) != sizeof(keys) / sizeof(keys[0]))
		return *why = "egress_ask: expected exactly its fields", -EINVAL;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!json_object_get(o, keys[i]))
			return *why = "egress_ask: a field is missing", -EINVAL;
	json_t *idv = json_object_get(o, "id"), *pv = json_object_get(o, "port"),
	       *sv = json_object_get(o, "body_size");
	struct approval_egress e = {
	    .method = field(o, "method", 1, 16, upper),
	    .host = field(o, "host", 1, 255, hostch),
	    .path = field(o, "path", 0, 1024, NULL),
	    .why = field(o, "why", 1, 200, NULL),
	    .preview = field(o, "preview", 0, APPROVAL_PREVIEW_MAX, NULL),
	    .body_sha256 = field(o, "body_sha256", 64, 64, hexdig),
	};
	if (!json_is_integer(idv) || json_integer_value(idv) < 1 || !json_is_integer(pv) ||
	    json_integer_value(pv) < 1 || json_integer_value(pv) > 65535 || !json_is_integer(sv) ||
	    json_integer_value(sv) < 0 || json_integer_value(sv) > (1 << 20) || !e.method ||
	    !e.host || !e.path || !e.why || !e.preview || !e.body_sha256)
		return *why = "egress_ask: a field is malformed", -EINVAL;
	for (const char *p = e.path; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return *why = "egress_ask: the path is not printable ASCII", -EINVAL;
	for (const char *p = e.why; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return *why = "egress_ask: why has a control character", -EINVAL;
	if (e.path[0] && e.path[0] != '/')
		return *why = "egress_ask: the path is not in origin form", -EINVAL;
	e.port = (unsigned)json_integer_value(pv);
	e.body_size = (uint64_t)json_integer_value(sv);
	json_int_t id = json_integer_value(idv);
	if (++ch->n_asks > EGRESS_ASKS_MAX) {
		if (ch->n_asks == EGRESS_ASKS_MAX + 1)
			(void)store_audit(
			    ch->d->store, ch->group, "egress", "deny",
			    "the run asked for egress approvals more than 256 times: the "
			    "rest are denied unasked");
		send_answer(ch, id, false, "too many approval requests from this run");
		return 0;
	}
	struct egress_ask *a = calloc(1, sizeof(*a));
	if (!a) {
		send_answer(ch, id, false, "out of memory");
		return 0;
	}
	a->ch = ch;
	a->id = id;
	json_t *answer = NULL;
	switch (approvals_gate_egress(ch->d, ch->group, ch->run, &e, ask_done, a, &answer)) {
	case APPROVAL_RUN:
		send_answer(ch, id, true, "allowed by an approver's grant");
		free(a);
		break;
	case APPROVAL_REFUSED:
		send_answer(ch, id, false, json_get_str(answer, "error") ?: "refused");
		json_decref(answer);
		free(a);
		break;
	case APPROVAL_HELD:
		a->next = ch->asks;
		ch->asks = a;
		break;
	}
	return 0;
}

static int
on_taint(struct egress_chan *ch, json_t *o, const char **why)
{
	const char *cause = field(o, "cause", 1, 200, NULL);
	if (json_object_size(o) != 2 || !cause)
		return *why = "taint: expected {\"t\", \"cause\"}", -EINVAL;
	for (const char *p = cause; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return *why = "taint: the cause has a control character", -EINVAL;
	if (ch->n_taints >= EGRESS_TAINTS_MAX) {
		ch->taints_over++;
		return 0;
	}
	ch->n_taints++;
	taint_note(ch->d, ch->group, ch->run, "egress", cause);
	return 0;
}

static const struct {
	const char *t;
	int (*handler)(struct egress_chan *ch, json_t *o, const char **why);
} frames[] = {
    {"egress_ask", on_ask},
    {"taint", on_taint},
};

static void
chan_readable(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct egress_chan *ch = arg;
	char buf[EGRESS_FRAME_MAX + 1];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		chan_cut(ch, NULL); /* the proxy ended: what it held it denied itself */
		return;
	}
	if ((size_t)n > EGRESS_FRAME_MAX) {
		chan_cut(ch, "a frame over 16 KiB");
		return;
	}
	_cleanup_json_ json_t *o = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
	const char *t = json_get_str(o, "t"), *why = "an unknown frame";
	for (size_t i = 0; t && i < sizeof(frames) / sizeof(frames[0]); i++)
		if (strcmp(frames[i].t, t) == 0) {
			if (frames[i].handler(ch, o, &why) == 0)
				return;
			break;
		}
	chan_cut(ch, why);
}

int
egress_chan_open(struct daemon *d, const char *group, const char *run_id, struct egress_chan **ret,
                 int *ret_child_fd)
{
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) < 0)
		return -errno;
	struct egress_chan *ch = calloc(1, sizeof(*ch));
	if (!ch) {
		close(sp[0]);
		close(sp[1]);
		return -ENOMEM;
	}
	ch->d = d;
	ch->fd = sp[0];
	snprintf(ch->group, sizeof(ch->group), "%s", group);
	snprintf(ch->run, sizeof(ch->run), "%s", run_id);
	ch->ev = event_new(d->base, sp[0], EV_READ | EV_PERSIST, chan_readable, ch);
	if (!ch->ev || event_add(ch->ev, NULL) < 0) {
		chan_cut(ch, NULL);
		free(ch);
		close(sp[1]);
		return -ENOMEM;
	}
	*ret = ch;
	*ret_child_fd = sp[1];
	return 0;
}

void
egress_chan_free(struct egress_chan *c)
{
	if (!c)
		return;
	if (c->taints_over) {
		char text[160];
		snprintf(text, sizeof(text), "run %.32s: %u more taint causes not recorded", c->run,
		         c->taints_over);
		(void)store_audit(c->d->store, c->group, "taint", "taint", text);
	}
	chan_cut(c, NULL);
	free(c);
}
