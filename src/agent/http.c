/*
 * http.c: see http.h. Blocking I/O with poll() deadlines: the agent does one thing at a time
 * (talk to the model, or run a tool), so its event loop is this wait.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dbuf.h"
#include "fd-util.h"
#include "http.h"
#include "macro.h"
#include "parse.h"
#include "proxy-wire.h"

int64_t
http_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
http_proxy_parse(const char *s, struct http_proxy *ret)
{
	struct http_proxy p = {0};
	uint64_t port;
	if (strncmp(s, "http://", 7) == 0)
		s += 7;
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s || (size_t)(colon - s) >= sizeof(p.host))
		return -EINVAL;
	memcpy(p.host, s, (size_t)(colon - s));
	char portbuf[8];
	size_t plen = strcspn(colon + 1, "/");
	if (plen == 0 || plen >= sizeof(portbuf))
		return -EINVAL;
	memcpy(portbuf, colon + 1, plen);
	portbuf[plen] = '\0';
	if (parse_u64(portbuf, 65535, &port) < 0 || port == 0)
		return -EINVAL;
	struct in_addr a;
	if (inet_pton(AF_INET, p.host, &a) != 1)
		return -EINVAL; /* numeric only: the sandbox has no resolver to ask */
	p.port = (unsigned)port;
	*ret = p;
	return 0;
}

/* Waits for fd to become ready for events, at most until the earlier of the deadline and
 * idle_ms from now. */
static int
wait_fd(int fd, short events, const struct http_request *req)
{
	for (;;) {
		int64_t now = http_now_ms();
		int64_t left = req->deadline_ms - now;
		if (left <= 0)
			return -ETIMEDOUT;
		if (req->idle_ms && left > req->idle_ms)
			left = req->idle_ms;
		struct pollfd pfd = {.fd = fd, .events = events};
		int n = poll(&pfd, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return NEG_ERRNO();
		if (n == 0)
			return -ETIMEDOUT;
		return 0;
	}
}

static int
connect_proxy(const struct http_proxy *proxy, const struct http_request *req)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)proxy->port)};
	if (inet_pton(AF_INET, proxy->host, &sa.sin_addr) != 1)
		return -EINVAL;
	_cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return NEG_ERRNO();
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EINPROGRESS)
			return NEG_ERRNO();
		int r = wait_fd(fd, POLLOUT, req);
		if (r < 0)
			return r;
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			return NEG_ERRNO();
		if (err)
			return -err;
	}
	return TAKE_FD(fd);
}

static int
send_all(int fd, const char *buf, size_t len, const struct http_request *req)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			int r = wait_fd(fd, POLLOUT, req);
			if (r < 0)
				return r;
			continue;
		}
		if (n < 0)
			return NEG_ERRNO();
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Builds the request head. Header lines from the caller are trusted (our own code), but a CR
 * or LF in one would split the request, so they are refused anyway. */
static int
build_head(const struct http_request *req, struct dbuf *out)
{
	const char *u = req->url;
	if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)
		return -EINVAL;
	if (strlen(u) > HTTP_URL_MAX || strpbrk(u, " \r\n\t"))
		return -EINVAL;
	const char *host = strstr(u, "://") + 3;
	size_t host_len = strcspn(host, "/?#");
	if (host_len == 0)
		return -EINVAL;
	const char *target = u;
	if (req->origin_form) {
		target = host + host_len;
		if (!*target)
			target = "/";
	}
	int r = dbuf_printf(out, "%s %s HTTP/1.1\r\nHost: %.*s\r\nConnection: close\r\n",
	                    req->method, target, (int)host_len, host);
	for (size_t i = 0; r >= 0 && i < HTTP_MAX_HEADERS && req->headers[i]; i++) {
		if (strpbrk(req->headers[i], "\r\n"))
			return -EINVAL;
		r = dbuf_printf(out, "%s\r\n", req->headers[i]);
	}
	if (r >= 0 && req->body)
		r = dbuf_printf(out, "Content-Length: %zu\r\n", req->body_len);
	if (r >= 0)
		r = dbuf_puts(out, "\r\n");
	return r;
}

struct exchange {
	const struct http_handler *h;
	struct http_response resp;
	char field[64];
	size_t field_len;
	bool field_done;
	int which; /* 1 content-type, 2 location, 3 retry-after, 4 PROXY_HDR_UNREACHABLE */
	struct dbuf value;
	size_t head_bytes;
	bool head_done, complete;
	int error;
};

static int
finish_header(struct exchange *x)
{
	if (x->which) {
		const char *v = dbuf_str(&x->value);
		while (*v == ' ' || *v == '\t')
			v++;
		if (x->which == 1)
			snprintf(x->resp.content_type, sizeof(x->resp.content_type), "%s", v);
		else if (x->which == 2)
			snprintf(x->resp.location, sizeof(x->resp.location), "%s", v);
		else if (x->which == 4)
			x->resp.unreachable = true;
		else {
			uint64_t secs;
			char tmp[32];
			snprintf(tmp, sizeof(tmp), "%s", v);
			tmp[strcspn(tmp, " \t")] = '\0';
			if (parse_u64(tmp, 86400, &secs) == 0)
				x->resp.retry_after = (double)secs;
		}
	}
	x->which = 0;
	x->field_len = 0;
	x->field_done = false;
	dbuf_reset(&x->value);
	return 0;
}

static int
on_header_field(http_parser *p, const char *at, size_t len)
{
	struct exchange *x = p->data;
	if (x->field_done)
		finish_header(x);
	if ((x->head_bytes += len) > HTTP_HEAD_MAX)
		return x->error = -EMSGSIZE, 1;
	size_t take = len;
	if (x->field_len + take >= sizeof(x->field))
		take = sizeof(x->field) - 1 - x->field_len; /* long names are none of ours */
	memcpy(x->field + x->field_len, at, take);
	x->field_len += take;
	x->field[x->field_len] = '\0';
	return 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t len)
{
	struct exchange *x = p->data;
	if ((x->head_bytes += len) > HTTP_HEAD_MAX)
		return x->error = -EMSGSIZE, 1;
	if (!x->field_done) {
		x->field_done = true;
		x->which = strcasecmp(x->field, "content-type") == 0  ? 1
		           : strcasecmp(x->field, "location") == 0    ? 2
		           : strcasecmp(x->field, "retry-after") == 0 ? 3
		           : strcasecmp(x->field, PROXY_HDR_UNREACHABLE) == 0 ? 4
		                                                      : 0;
	}
	if (x->which)
		(void)dbuf_append_capped(&x->value, at, len);
	return 0;
}

static int
on_headers_complete(http_parser *p)
{
	struct exchange *x = p->data;
	if (x->field_done)
		finish_header(x);
	x->resp.status = (int)p->status_code;
	x->head_done = true;
	if (x->h->on_head) {
		int r = x->h->on_head(x->h->ctx, &x->resp);
		if (r < 0)
			return x->error = r, -1;
	}
	return 0;
}

static int
on_body(http_parser *p, const char *at, size_t len)
{
	struct exchange *x = p->data;
	if (x->h->on_body) {
		int r = x->h->on_body(x->h->ctx, at, len);
		if (r < 0)
			return x->error = r, 1;
	}
	return 0;
}

static int
on_message_complete(http_parser *p)
{
	struct exchange *x = p->data;
	x->complete = true;
	return 0;
}

int
http_exchange(const struct http_proxy *proxy, const struct http_request *req,
              const struct http_handler *h)
{
	_cleanup_dbuf_ struct dbuf head;
	dbuf_init(&head, HTTP_URL_MAX + 16 * 1024);
	int r = build_head(req, &head);
	if (r < 0)
		return r == -E2BIG ? -EINVAL : r;

	_cleanup_close_ int fd = connect_proxy(proxy, req);
	if (fd < 0)
		return fd;
	r = send_all(fd, head.p, head.len, req);
	if (r >= 0 && req->body)
		r = send_all(fd, req->body, req->body_len, req);
	if (r < 0)
		return r;

	struct exchange x = {.h = h, .resp = {.retry_after = -1}};
	dbuf_init(&x.value, 2048);
	http_parser parser;
	http_parser_init(&parser, HTTP_RESPONSE);
	parser.data = &x;
	http_parser_settings settings = {
	    .on_header_field = on_header_field,
	    .on_header_value = on_header_value,
	    .on_headers_complete = on_headers_complete,
	    .on_body = on_body,
	    .on_message_complete = on_message_complete,
	};
	char buf[16384];
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			r = wait_fd(fd, POLLIN, req);
			if (r < 0)
				break;
			continue;
		}
		if (n < 0) {
			r = NEG_ERRNO();
			break;
		}
		size_t done = http_parser_execute(&parser, &settings, buf, (size_t)n);
		if (x.error) {
			r = x.error;
			break;
		}
		if (x.complete) {
			r = 0; /* bytes after the end are ignored */
			break;
		}
		if (n == 0) { /* EOF, which ends a close-delimited body */
			r = !x.head_done ? -ECONNRESET : -EPIPE;
			break;
		}
		if (HTTP_PARSER_ERRNO(&parser) != HPE_OK || done != (size_t)n) {
			r = -EPROTO;
			break;
		}
	}
	dbuf_done(&x.value);
	return r;
}
