/*
 * rest.c: libcurl's multi interface on libevent for rest.h. curl tells us which sockets to
 * watch (socket_cb) and when to wake it (timer_cb); each finished transfer is answered from
 * check_done(), after it is off the multi handle, so a callback may start the next call.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dbuf.h"
#include "macro.h"
#include "rest.h"

struct rest_call {
	struct rest *r;
	CURL *easy;
	struct curl_slist *headers;
	char *body;
	struct dbuf answer;
	double retry_after;
	rest_done_fn done;
	void *arg;
};

struct rest {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	char *ca_file;
	int pending;
	struct rest_call *calls[REST_MAX_CALLS]; /* the pending ones, for rest_free */
};

struct watched {
	struct event *ev;
	struct rest *r;
};

static void
call_free(struct rest_call *c)
{
	if (!c)
		return;
	curl_easy_cleanup(c->easy);
	curl_slist_free_all(c->headers);
	free(c->body);
	dbuf_done(&c->answer);
	free(c);
}

static void
check_done(struct rest *r)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(r->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct rest_call *c;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
		long http = 0;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &http);
		CURLcode rc = msg->data.result;
		curl_multi_remove_handle(r->multi, c->easy);
		r->pending--;
		for (size_t i = 0; i < REST_MAX_CALLS; i++)
			if (r->calls[i] == c)
				r->calls[i] = NULL;
		struct rest_answer a = {
		    .http = rc == CURLE_OK ? (int)http : 0,
		    .err = rc == CURLE_OK ? NULL : curl_easy_strerror(rc),
		    .body = dbuf_str(&c->answer),
		    .len = c->answer.len,
		    .retry_after = c->retry_after,
		};
		c->done(&a, c->arg);
		call_free(c);
	}
}

static void
on_socket(evutil_socket_t fd, short kind, void *arg)
{
	struct watched *w = arg;
	struct rest *r = w->r;
	int running;
	int action =
	    (kind & EV_READ ? CURL_CSELECT_IN : 0) | (kind & EV_WRITE ? CURL_CSELECT_OUT : 0);
	curl_multi_socket_action(r->multi, fd, action, &running);
	check_done(r);
}

static void
on_timeout(evutil_socket_t fd, short kind, void *arg)
{
	struct rest *r = arg;
	(void)fd;
	(void)kind;
	int running;
	curl_multi_socket_action(r->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(r);
}

static int
socket_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct rest *r = userp;
	struct watched *w = socketp;
	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (w) {
			event_free(w->ev);
			free(w);
			curl_multi_assign(r->multi, s, NULL);
		}
		return 0;
	}
	if (!w) {
		w = calloc(1, sizeof(*w));
		if (!w)
			return -1;
		w->r = r;
		curl_multi_assign(r->multi, s, w);
	} else {
		event_free(w->ev);
	}
	short kind = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
	             (what & CURL_POLL_OUT ? EV_WRITE : 0);
	w->ev = event_new(r->base, s, kind, on_socket, w);
	return w->ev && event_add(w->ev, NULL) == 0 ? 0 : -1;
}

static int
timer_cb(CURLM *m, long ms, void *userp)
{
	struct rest *r = userp;
	(void)m;
	if (ms < 0) {
		evtimer_del(r->timer);
		return 0;
	}
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	evtimer_add(r->timer, &tv);
	return 0;
}

static size_t
write_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct rest_call *c = arg;
	return dbuf_append(&c->answer, buf, size * n) < 0 ? 0 : size * n; /* 0 aborts: too large */
}

/* Retry-After: seconds (RFC 9110 also allows a date; neither service sends one). */
static size_t
header_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct rest_call *c = arg;
	size_t len = size * n;
	static const char name[] = "retry-after:";
	if (len > sizeof(name) && strncasecmp(buf, name, sizeof(name) - 1) == 0) {
		char v[32];
		size_t vl = len - (sizeof(name) - 1);
		if (vl >= sizeof(v))
			vl = sizeof(v) - 1;
		memcpy(v, buf + sizeof(name) - 1, vl);
		v[vl] = '\0';
		char *end;
		double s = strtod(v, &end);
		if (end != v && s >= 0 && s < 86400)
			c->retry_after = s;
	}
	return len;
}

struct rest *
rest_new(struct event_base *base, const char *ca_file)
{
	static bool inited;
	if (!inited && curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		return NULL;
	inited = true;
	struct rest *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->base = base;
	r->multi = curl_multi_init();
	r->timer = evtimer_new(base, on_timeout, r);
	r->ca_file = ca_file ? strdup(ca_file) : NULL;
	if (!r->multi || !r->timer || (ca_file && !r->ca_file)) {
		rest_free(r);
		return NULL;
	}
	curl_multi_setopt(r->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(r->multi, CURLMOPT_SOCKETDATA, r);
	curl_multi_setopt(r->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(r->multi, CURLMOPT_TIMERDATA, r);
	return r;
}

void
rest_free(struct rest *r)
{
	if (!r)
		return;
	if (r->multi) {
		for (size_t i = 0; i < REST_MAX_CALLS; i++) {
			if (!r->calls[i])
				continue;
			curl_multi_remove_handle(r->multi, r->calls[i]->easy);
			call_free(r->calls[i]);
		}
		curl_multi_cleanup(r->multi);
	}
	if (r->timer)
		event_free(r->timer);
	free(r->ca_file);
	free(r);
}

int
rest_call(struct rest *r, const char *method, const char *url, const char *const *headers,
          const char *body, long timeout_s, rest_done_fn done, void *arg)
{
	if (r->pending >= REST_MAX_CALLS)
		return -EBUSY;
	struct rest_call *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->r = r;
	c->done = done;
	c->arg = arg;
	c->retry_after = -1;
	dbuf_init(&c->answer, REST_BODY_MAX);
	c->easy = curl_easy_init();
	c->body = body ? strdup(body) : NULL;
	for (size_t i = 0; headers && headers[i]; i++) {
		struct curl_slist *l = curl_slist_append(c->headers, headers[i]);
		if (!l)
			goto nomem;
		c->headers = l;
	}
	if (body) {
		struct curl_slist *l = curl_slist_append(c->headers, "Content-Type: application/json");
		if (!l)
			goto nomem;
		c->headers = l;
	}
	if (!c->easy || (body && !c->body))
		goto nomem;
	curl_easy_setopt(c->easy, CURLOPT_URL, url);
	curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
	curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->easy, CURLOPT_PROXY, "");
	curl_easy_setopt(c->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c->easy, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT, 15L);
	curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(c->easy, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c->easy, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
	if (r->ca_file)
		curl_easy_setopt(c->easy, CURLOPT_CAINFO, r->ca_file);
	if (c->body)
		curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->body);
	else if (strcmp(method, "POST") == 0)
		curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, "");
	if (curl_multi_add_handle(r->multi, c->easy) != CURLM_OK)
		goto nomem;
	r->pending++;
	for (size_t i = 0; i < REST_MAX_CALLS; i++)
		if (!r->calls[i]) {
			r->calls[i] = c;
			break;
		}
	return 0;
nomem:
	call_free(c);
	return -ENOMEM;
}
