/*
 * test-http.c: the agent's HTTP client against a real server on loopback (a child of the
 * test answering one canned response per connection): what it sends (absolute URI through
 * a proxy, origin form to the daemon, Connection: close, the body), the three body framings,
 * a body cut short, a head too large, a peer that is not HTTP, nobody listening, a peer that
 * never answers, and Retry-After.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http.h"
#include "tap.h"

struct got {
	char body[4096];
	size_t len;
	int status;
	double retry_after;
};

static int
on_head(void *ctx, const struct http_response *r)
{
	struct got *g = ctx;
	g->status = r->status;
	g->retry_after = r->retry_after;
	return 0;
}

static int
on_body(void *ctx, const char *buf, size_t len)
{
	struct got *g = ctx;
	if (g->len + len >= sizeof(g->body))
		return -EFBIG;
	memcpy(g->body + g->len, buf, len);
	g->len += len;
	g->body[g->len] = '\0';
	return 0;
}

/* A server that reads one request into req_file's pipe and writes answer, then closes
 * (answer NULL: never answers). Returns its port; *ret_pid its pid. */
static unsigned
serve(const char *answer, size_t answer_len, int req_pipe, pid_t *ret_pid)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 4) < 0 ||
	    getsockname(s, (struct sockaddr *)&a, &al) < 0)
		exit(2);
	pid_t p = fork();
	if (p == 0) {
		int c = accept(s, NULL, NULL);
		char buf[8192];
		ssize_t n = 0, k;
		/* The request: its head, and a body of Content-Length bytes if any. */
		while ((k = read(c, buf + n, sizeof(buf) - 1 - (size_t)n)) > 0) {
			n += k;
			buf[n] = '\0';
			char *end = strstr(buf, "\r\n\r\n");
			if (!end)
				continue;
			char *cl = strcasestr(buf, "content-length:");
			long want = cl ? strtol(cl + 15, NULL, 10) : 0;
			if (n - (end + 4 - buf) >= want)
				break;
		}
		if (req_pipe >= 0 && n > 0 && write(req_pipe, buf, (size_t)n) < 0)
			_exit(3);
		if (!answer) {
			pause();
			_exit(0);
		}
		for (size_t o = 0; o < answer_len;) {
			ssize_t w = write(c, answer + o, answer_len - o);
			if (w <= 0)
				break;
			o += (size_t)w;
		}
		_exit(0);
	}
	close(s);
	*ret_pid = p;
	return ntohs(a.sin_port);
}

static int
exchange(const char *answer, size_t len, struct http_request *req, struct got *g, char *seen,
         size_t seen_size)
{
	int fds[2];
	if (pipe(fds) < 0)
		return -errno;
	pid_t pid;
	struct http_proxy px = {.host = "127.0.0.1"};
	px.port = serve(answer, len, fds[1], &pid);
	close(fds[1]);
	memset(g, 0, sizeof(*g));
	struct http_handler h = {.on_head = on_head, .on_body = on_body, .ctx = g};
	if (!req->deadline_ms)
		req->deadline_ms = http_now_ms() + 5000;
	int r = http_exchange(&px, req, &h);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	ssize_t n = read(fds[0], seen, seen_size - 1);
	seen[n > 0 ? n : 0] = '\0';
	close(fds[0]);
	return r;
}

#define ANSWER(s) s, sizeof(s) - 1

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	struct got g;
	char seen[8192];
	struct http_request req = {.method = "POST",
	                           .url = "http://model.clawbox.internal/v1/messages",
	                           .headers = {"x-test: 1", NULL},
	                           .body = "{\"a\":1}",
	                           .body_len = 7};
	int r = exchange(ANSWER("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), &req, &g,
	                 seen, sizeof(seen));
	ok(r == 0 && g.status == 200 && strcmp(g.body, "hello") == 0,
	   "Content-Length body (%d, %d, %s)", r, g.status, g.body);
	ok(strncmp(seen, "POST http://model.clawbox.internal/v1/messages HTTP/1.1\r\n", 56) == 0,
	   "through the proxy: the request line has the absolute URI");
	ok(strcasestr(seen, "\r\nx-test: 1\r\n") && strcasestr(seen, "connection: close") &&
	       strstr(seen, "\r\n\r\n{\"a\":1}"),
	   "extra headers, Connection: close and the body are sent");

	req.origin_form = true;
	req.url = "http://127.0.0.1:1/api/v1/x?y=1";
	r = exchange(ANSWER("HTTP/1.1 204 No Content\r\n\r\n"), &req, &g, seen, sizeof(seen));
	ok(r == 0 && g.status == 204 && strncmp(seen, "POST /api/v1/x?y=1 HTTP/1.1\r\n", 29) == 0,
	   "origin form to a server itself (%d)", r);
	req.origin_form = false;
	req.url = "http://model.clawbox.internal/v1/messages";

	r = exchange(ANSWER("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
	                    "2\r\nde\r\n0\r\n\r\n"),
	             &req, &g, seen, sizeof(seen));
	ok(r == 0 && strcmp(g.body, "abcde") == 0, "chunked body (%d, %s)", r, g.body);
	r = exchange(ANSWER("HTTP/1.1 200 OK\r\n\r\nuntil close"), &req, &g, seen, sizeof(seen));
	ok(r == 0 && strcmp(g.body, "until close") == 0, "close-delimited body (%d)", r);
	r = exchange(ANSWER("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"), &req, &g, seen,
	             sizeof(seen));
	ok(r == -EPIPE && strcmp(g.body, "short") == 0,
	   "a Content-Length body cut short: -EPIPE after what came (%d)", r);
	r = exchange(ANSWER("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"), &req,
	             &g, seen, sizeof(seen));
	ok(r == -EPIPE, "a chunked body cut short: -EPIPE (%d)", r);
	r = exchange(ANSWER("SSH-2.0-OpenSSH_9.2\r\n"), &req, &g, seen, sizeof(seen));
	ok(r == -EPROTO, "a peer that is not HTTP: -EPROTO (%d)", r);
	r = exchange(ANSWER(""), &req, &g, seen, sizeof(seen));
	ok(r == -ECONNRESET, "closed before any head: -ECONNRESET (%d)", r);

	static char huge[HTTP_HEAD_MAX + 4096];
	int n = snprintf(huge, sizeof(huge), "HTTP/1.1 200 OK\r\nX-Big: ");
	memset(huge + n, 'a', sizeof(huge) - (size_t)n - 8);
	memcpy(huge + sizeof(huge) - 8, "\r\n\r\nok\r\n", 8);
	r = exchange(huge, sizeof(huge), &req, &g, seen, sizeof(seen));
	ok(r == -EMSGSIZE, "a head past HTTP_HEAD_MAX: -EMSGSIZE (%d)", r);

	r = exchange(ANSWER("HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n"),
	             &req, &g, seen, sizeof(seen));
	ok(r == 0 && g.status == 429 && g.retry_after == 7, "Retry-After in seconds read (%g)",
	   g.retry_after);
	r = exchange(ANSWER("HTTP/1.1 503 No\r\nContent-Length: 0\r\n\r\n"), &req, &g, seen,
	             sizeof(seen));
	ok(r == 0 && g.retry_after < 0, "no Retry-After: -1 (%g)", g.retry_after);

	req.deadline_ms = http_now_ms() + 300;
	int64_t t0 = http_now_ms();
	r = exchange(NULL, 0, &req, &g, seen, sizeof(seen));
	ok(r == -ETIMEDOUT && http_now_ms() - t0 < 3000,
	   "a server that never answers: -ETIMEDOUT by the deadline (%d)", r);
	req.deadline_ms = 0;

	/* Nobody listening: a port we bound and closed. */
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	bind(s, (struct sockaddr *)&a, sizeof(a));
	getsockname(s, (struct sockaddr *)&a, &al);
	close(s);
	struct http_proxy px = {.host = "127.0.0.1", .port = ntohs(a.sin_port)};
	struct http_handler h = {.on_head = on_head, .on_body = on_body, .ctx = &g};
	req.deadline_ms = http_now_ms() + 2000;
	ok(http_exchange(&px, &req, &h) == -ECONNREFUSED, "nobody listening: -ECONNREFUSED");

	struct http_proxy parsed;
	ok(http_proxy_parse("http://127.0.0.1:3128", &parsed) == 0 && parsed.port == 3128 &&
	       strcmp(parsed.host, "127.0.0.1") == 0,
	   "HTTP_PROXY parsed");
	ok(http_proxy_parse("127.0.0.1:8", &parsed) == 0 && parsed.port == 8, "HOST:PORT parsed");
	ok(http_proxy_parse("http://127.0.0.1", &parsed) < 0 &&
	       http_proxy_parse("http://127.0.0.1:99999", &parsed) < 0 &&
	       http_proxy_parse("", &parsed) < 0,
	   "no port, a port out of range, nothing: refused");
	return tap_done();
}
