/*
 * stream.c: live events of a group for clients (`clawbox chat`, the web page), as
 * Server-Sent Events over one chunked HTTP response: "message" for each new message in or
 * out (from the store, so nothing is missed between a client's GET and its stream: it gives
 * the last id it has), "delta" for the text of the group's running reply as the model
 * streams it. New messages are picked up by a short timer while anyone listens, rather than
 * by every writer of the store calling in.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "json-util.h"
#include "log.h"

#define STREAM_MAX     64  /* listeners at once */
#define STREAM_POLL_MS 200 /* how soon a new message is seen */
#define STREAM_PING_S  15  /* a comment line keeps proxies and clients from timing out */
/* A listener that stops reading gets nothing more once this much waits for
 * it; messages resume from where it left off when it drains, deltas are
 * lost (they are previews), and the server write timeout closes it if it
 * never drains. */
#define STREAM_UNREAD_MAX (4u << 20)

struct sub {
	struct daemon *d;
	struct evhttp_request *req;
	char group[CONFIG_GROUP_ID_MAX];
	int64_t last;
	time_t last_send;
	struct sub *next;
};

static struct sub *subs;
static unsigned n_subs;
static struct event *timer;

/* Bytes queued for s that its client has not taken yet (beyond the kernel's buffers). */
static size_t
unread(const struct sub *s)
{
	struct evhttp_connection *c = evhttp_request_get_connection(s->req);
	struct bufferevent *bev = c ? evhttp_connection_get_bufferevent(c) : NULL;
	return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

static bool
stalled(const struct sub *s)
{
	return unread(s) > STREAM_UNREAD_MAX;
}

/* Whether the event was queued for s. */
static bool
send_event(struct sub *s, const char *type, json_t *data)
{
	if (stalled(s))
		return false;
	char *j = json_dumps(data, JSON_COMPACT);
	if (!j)
		return false;
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(b, "event: %s\ndata: %s\n\n", type, j);
	evhttp_send_reply_chunk(s->req, b);
	evbuffer_free(b);
	free(j);
	s->last_send = time(NULL);
	return true;
}

static void
unsubscribe(struct sub *s)
{
	for (struct sub **p = &subs; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			break;
		}
	n_subs--;
	free(s);
	if (!subs && timer)
		event_del(timer);
}

static void
on_close(struct evhttp_connection *conn, void *arg)
{
	(void)conn;
	unsubscribe(arg);
}

/* New messages of s's group since it last heard. */
static void
catch_up(struct sub *s)
{
	if (stalled(s))
		return; /* nothing would be sent: spare the store */
	_cleanup_json_ json_t *msgs = NULL;
	if (store_messages_after(s->d->store, s->group, s->last, &msgs) < 0)
		return;
	size_t i;
	json_t *m;
	json_array_foreach(msgs, i, m)
	{
		if (!send_event(s, "message", m))
			return;
		s->last = (int64_t)json_integer_value(json_object_get(m, "id"));
	}
}

static void
tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	time_t now = time(NULL);
	for (struct sub *s = subs; s; s = s->next) {
		catch_up(s);
		if (now - s->last_send >= STREAM_PING_S && !stalled(s)) {
			struct evbuffer *b = evbuffer_new();
			evbuffer_add_printf(b, ": ping\n\n");
			evhttp_send_reply_chunk(s->req, b);
			evbuffer_free(b);
			s->last_send = now;
		}
	}
}

int
stream_open(struct daemon *d, struct evhttp_request *req, const char *group, int64_t after)
{
	if (n_subs >= STREAM_MAX)
		return -EBUSY;
	if (!timer) {
		timer = event_new(d->base, -1, EV_PERSIST, tick, NULL);
		if (!timer)
			return -ENOMEM;
	}
	struct sub *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->d = d;
	s->req = req;
	s->last = after;
	snprintf(s->group, sizeof(s->group), "%s", group);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "text/event-stream");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply_start(req, 200, "OK");
	evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_close, s);
	s->next = subs;
	subs = s;
	n_subs++;
	struct timeval poll = {.tv_usec = STREAM_POLL_MS * 1000};
	if (!event_pending(timer, EV_TIMEOUT, NULL))
		event_add(timer, &poll);
	catch_up(s);
	return 0;
}

void
stream_delta(struct daemon *d, const char *group, int64_t reply_to, const char *text, size_t len)
{
	(void)d;
	json_t *ev = NULL;
	for (struct sub *s = subs; s; s = s->next) {
		if (strcmp(s->group, group) != 0)
			continue;
		if (!ev)
			ev = json_pack("{s:I,s:s%}", "reply_to", (json_int_t)reply_to, "text", text,
			               len);
		if (ev)
			send_event(s, "delta", ev);
	}
	if (ev)
		json_decref(ev);
}

void
stream_event(struct daemon *d, const char *group, const char *type, json_t *data)
{
	(void)d;
	for (struct sub *s = subs; s; s = s->next)
		if (strcmp(s->group, group) == 0)
			send_event(s, type, data);
}

void
stream_notify(struct daemon *d, const char *group)
{
	/* The channels too: a reply goes out as soon as it is stored, not at their tick. */
	channels_kick(d, group);
	for (struct sub *s = subs; s; s = s->next)
		if (strcmp(s->group, group) == 0)
			catch_up(s);
}

void
stream_stats(unsigned *listeners, size_t *unread_bytes)
{
	*listeners = n_subs;
	*unread_bytes = 0;
	for (struct sub *s = subs; s; s = s->next)
		*unread_bytes += unread(s);
}

void
stream_close_all(struct daemon *d)
{
	(void)d;
	while (subs) {
		struct sub *s = subs;
		evhttp_connection_set_closecb(evhttp_request_get_connection(s->req), NULL, NULL);
		evhttp_send_reply_end(s->req);
		unsubscribe(s);
	}
	if (timer) {
		event_free(timer);
		timer = NULL;
	}
}
