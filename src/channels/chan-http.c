/*
 * chan-http.c: libcurl's multi interface on the channel's libevent loop (chan-http.h). One
 * multi handle per process (a channel process is one channel), created at the first
 * request; curl tells us which sockets to watch and when to time out, libevent tells curl
 * when they are ready.
 */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chan-http.h"
#include "dbuf.h"
#include "macro.h"

struct chan_http {
	CURL *easy;
	struct curl_slist *headers;
	curl_mime *mime;
	char *body;
	struct dbuf in;
	chan_http_done_fn *done;
	chan_curl_done_fn *curl_done; /* a caller's own handle (chan_curl_start): not ours */
	void *arg;
	double retry_after; /* the answer's Retry-After, -1: none */
	struct chan_http *next;
};

static struct {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct chan_http *all;
	double retry_after; /* of the answer being handed to its done callback */
} hx;

struct watched {
	struct event *ev;
};

static void
xfer_free(struct chan_http *h)
{
	for (struct chan_http **p = &hx.all; *p; p = &(*p)->next)
		if (*p == h) {
			*p = h->next;
			break;
		}
	curl_multi_remove_handle(hx.multi, h->easy);
	if (!h->curl_done)
		curl_easy_cleanup(h->easy);
	curl_slist_free_all(h->headers);
	curl_mime_free(h->mime);
	free(h->body);
	dbuf_done(&h->in);
	free(h);
}

static void
check_done(void)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(hx.multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct chan_http *h;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&h);
		long status = 0;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
		CURLcode rc = msg->data.result;
		if (h->curl_done) {
			chan_curl_done_fn *cdone = h->curl_done;
			void *carg = h->arg;
			CURL *easy = h->easy;
			xfer_free(h);
			cdone(carg, easy, rc);
			continue;
		}
		chan_http_done_fn *done = h->done;
		void *arg = h->arg;
		char err[CURL_ERROR_SIZE];
		snprintf(err, sizeof(err), "%s", curl_easy_strerror(rc));
		/* The callback may start the next request: this one is gone first. */
		struct dbuf in = h->in;
		dbuf_init(&h->in, 0);
		double retry_after = h->retry_after;
		xfer_free(h);
		hx.retry_after = retry_after;
		done(arg, status, dbuf_str(&in), in.len, rc == CURLE_OK ? NULL : err);
		hx.retry_after = -1;
		dbuf_done(&in);
	}
}

static void
on_socket(evutil_socket_t fd, short kind, void *arg)
{
	(void)arg;
	int running;
	int action =
	    (kind & EV_READ ? CURL_CSELECT_IN : 0) | (kind & EV_WRITE ? CURL_CSELECT_OUT : 0);
	curl_multi_socket_action(hx.multi, fd, action, &running);
	check_done();
}

static void
on_timeout(evutil_socket_t fd, short kind, void *arg)
{
	(void)fd;
	(void)kind;
	(void)arg;
	int running;
	curl_multi_socket_action(hx.multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done();
}

static int
socket_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct watched *w = socketp;
	(void)e;
	(void)userp;
	if (what == CURL_POLL_REMOVE) {
		if (w) {
			event_free(w->ev);
			free(w);
			curl_multi_assign(hx.multi, s, NULL);
		}
		return 0;
	}
	if (!w) {
		w = calloc(1, sizeof(*w));
		if (!w)
			return -1;
		curl_multi_assign(hx.multi, s, w);
	} else {
		event_free(w->ev);
	}
	short kind = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
	             (what & CURL_POLL_OUT ? EV_WRITE : 0);
	w->ev = event_new(hx.base, s, kind, on_socket, NULL);
	return w->ev && event_add(w->ev, NULL) == 0 ? 0 : -1;
}

static int
timer_cb(CURLM *m, long ms, void *userp)
{
	(void)m;
	(void)userp;
	if (ms < 0) {
		evtimer_del(hx.timer);
		return 0;
	}
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	evtimer_add(hx.timer, &tv);
	return 0;
}

static size_t
write_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct chan_http *h = arg;
	return dbuf_append(&h->in, buf, size * n) < 0 ? 0 : size * n; /* 0 aborts: too large */
}

/* Retry-After in seconds, as Slack and Discord send it (RFC 9110 also allows a date; a
 * value we cannot read is none). */
static size_t
header_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct chan_http *h = arg;
	size_t len = size * n;
	static const char name[] = "retry-after:";
	if (len > sizeof(name) && len < 64 && strncasecmp(buf, name, sizeof(name) - 1) == 0) {
		char v[64], *end;
		memcpy(v, buf + sizeof(name) - 1, len - (sizeof(name) - 1));
		v[len - (sizeof(name) - 1)] = '\0';
		double s = strtod(v, &end);
		if (end != v && s >= 0 && s <= 3600)
			h->retry_after = s;
	}
	return len;
}

double
chan_http_retry_after(void)
{
	return hx.retry_after;
}

static int
setup(struct event_base *base)
{
	if (hx.multi)
		return 0;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		return -EIO;
	hx.base = base;
	hx.multi = curl_multi_init();
	hx.timer = evtimer_new(base, on_timeout, NULL);
	if (!hx.multi || !hx.timer)
		return -ENOMEM;
	curl_multi_setopt(hx.multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(hx.multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	return 0;
}

int
chan_http_start(struct chan *c, const struct chan_http_req *r, chan_http_done_fn *done, void *arg,
                struct chan_http **ret)
{
	int e = setup(chan_base(c));
	if (e < 0)
		return e;
	struct chan_http *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	dbuf_init(&h->in, r->max_body ? r->max_body : CHAN_HTTP_BODY_MAX);
	h->done = done;
	h->arg = arg;
	h->retry_after = -1;
	h->easy = curl_easy_init();
	if (!h->easy)
		goto nomem;
	CURL *x = h->easy;
	curl_easy_setopt(x, CURLOPT_URL, r->url);
	curl_easy_setopt(x, CURLOPT_PRIVATE, h);
	curl_easy_setopt(x, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x, CURLOPT_PROXY, "");
	curl_easy_setopt(x, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(x, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(x, CURLOPT_TIMEOUT, r->timeout_s > 0 ? r->timeout_s : 30L);
	curl_easy_setopt(x, CURLOPT_CONNECTTIMEOUT, 15L);
	curl_easy_setopt(x, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(x, CURLOPT_WRITEDATA, h);
	curl_easy_setopt(x, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(x, CURLOPT_HEADERDATA, h);
	if (r->ca_file)
		curl_easy_setopt(x, CURLOPT_CAINFO, r->ca_file);
	for (size_t i = 0; r->headers && r->headers[i]; i++)
		if (!(h->headers = curl_slist_append(h->headers, r->headers[i])))
			goto nomem;
	if (r->body) {
		h->body = malloc(r->body_len + 1);
		if (!h->body)
			goto nomem;
		memcpy(h->body, r->body, r->body_len);
		h->body[r->body_len] = '\0';
		char ct[160];
		snprintf(ct, sizeof(ct), "Content-Type: %s",
		         r->content_type ? r->content_type : "application/json");
		if (!(h->headers = curl_slist_append(h->headers, ct)))
			goto nomem;
		curl_easy_setopt(x, CURLOPT_POSTFIELDS, h->body);
		curl_easy_setopt(x, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
	} else if (r->n_parts) {
		h->mime = curl_mime_init(x);
		for (size_t i = 0; h->mime && i < r->n_parts; i++) {
			const struct chan_http_part *p = &r->parts[i];
			curl_mimepart *mp = curl_mime_addpart(h->mime);
			if (!mp || curl_mime_name(mp, p->name) != CURLE_OK)
				goto nomem;
			if (p->value) {
				if (curl_mime_data(mp, p->value, CURL_ZERO_TERMINATED) != CURLE_OK)
					goto nomem;
			} else if (curl_mime_data(mp, p->data, p->len) != CURLE_OK ||
			           curl_mime_filename(mp, p->filename) != CURLE_OK ||
			           (p->type && curl_mime_type(mp, p->type) != CURLE_OK)) {
				goto nomem;
			}
		}
		if (!h->mime)
			goto nomem;
		curl_easy_setopt(x, CURLOPT_MIMEPOST, h->mime);
	}
	if (h->headers)
		curl_easy_setopt(x, CURLOPT_HTTPHEADER, h->headers);
	if (r->method)
		curl_easy_setopt(x, CURLOPT_CUSTOMREQUEST, r->method);
	if (curl_multi_add_handle(hx.multi, x) != CURLM_OK)
		goto nomem;
	h->next = hx.all;
	hx.all = h;
	if (ret)
		*ret = h;
	return 0;
nomem:
	curl_easy_cleanup(h->easy);
	curl_slist_free_all(h->headers);
	curl_mime_free(h->mime);
	free(h->body);
	dbuf_done(&h->in);
	free(h);
	return -ENOMEM;
}

void
chan_http_cancel(struct chan_http *h)
{
	if (h)
		xfer_free(h);
}

void
chan_http_shutdown(void)
{
	while (hx.all)
		xfer_free(hx.all);
	if (hx.multi)
		curl_multi_cleanup(hx.multi);
	if (hx.timer)
		event_free(hx.timer);
	hx.multi = NULL;
	hx.timer = NULL;
}

int
chan_curl_start(struct chan *c, CURL *easy, chan_curl_done_fn *done, void *arg)
{
	int e = setup(chan_base(c));
	if (e < 0)
		return e;
	struct chan_http *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	dbuf_init(&h->in, 0);
	h->easy = easy;
	h->curl_done = done;
	h->arg = arg;
	curl_easy_setopt(easy, CURLOPT_PRIVATE, h);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	if (curl_multi_add_handle(hx.multi, easy) != CURLM_OK) {
		free(h);
		return -ENOMEM;
	}
	h->next = hx.all;
	hx.all = h;
	return 0;
}

void
chan_curl_cancel(CURL *easy)
{
	for (struct chan_http *h = hx.all; h; h = h->next)
		if (h->easy == easy) {
			xfer_free(h);
			return;
		}
}
