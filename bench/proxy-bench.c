/*
 * proxy-bench: latency added by the egress proxy, and tunnel throughput. Drives
 * clawbox-proxy the way a sandbox's init does: one end of a socketpair per request, passed
 * over the proxy's SEQPACKET socket (SCM_RIGHTS).
 *
 * usage: proxy-bench PROXY PORT RUNS MIB     (an HTTP server, bench's httpd, on 127.0.0.1:PORT)
 * Prints: "direct MEDIAN P95", "proxied MEDIAN P95" (ms), "tunnel MIB MB/s".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double
now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void
pass_fd(int sock, int fd)
{
	char c = 'c';
	struct iovec iov = { &c, 1 };
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
			    .msg_controllen = sizeof(u.b) };
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &fd, sizeof(int));
	if (sendmsg(sock, &m, 0) != 1) {
		perror("sendmsg");
		exit(1);
	}
}

/* Sends req on fd and reads to EOF; returns the bytes read. */
static size_t
exchange(int fd, const char *req)
{
	static char buf[1 << 16];
	size_t total = 0;
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
		exit(1);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		total += (size_t)n;
	}
	close(fd);
	return total;
}

static int
proxied_fd(int ctl)
{
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		exit(1);
	pass_fd(ctl, sp[1]);
	close(sp[1]);
	return sp[0];
}

static int
direct_fd(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("connect");
		exit(1);
	}
	return fd;
}

int
main(int argc, char **argv)
{
	if (argc != 5)
		return 2;
	const char *proxy = argv[1];
	int port = atoi(argv[2]), runs = atoi(argv[3]), mib = atoi(argv[4]);
	char allow[64], req[256], direct_req[256];
	snprintf(allow, sizeof(allow), "127.0.0.1:%d", port);

	int ctl[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0)
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(ctl[1], 3);
		execl(proxy, proxy, "--allow", allow, (char *)NULL);
		_exit(127);
	}
	close(ctl[1]);

	snprintf(direct_req, sizeof(direct_req),
		 "GET /small HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/small HTTP/1.1\r\n\r\n", port);
	double *d = calloc((size_t)runs, sizeof(double)), *p = calloc((size_t)runs, sizeof(double));
	for (int i = -20; i < runs; i++) {
		double t0 = now_ms();
		exchange(direct_fd(port), direct_req);
		double t1 = now_ms();
		exchange(proxied_fd(ctl[0]), req);
		double t2 = now_ms();
		if (i >= 0) {
			d[i] = t1 - t0;
			p[i] = t2 - t1;
		}
	}
	qsort(d, (size_t)runs, sizeof(double), cmp);
	qsort(p, (size_t)runs, sizeof(double), cmp);
	printf("direct %.3f %.3f\n", d[runs / 2], d[runs * 95 / 100]);
	printf("proxied %.3f %.3f\n", p[runs / 2], p[runs * 95 / 100]);

	/* Throughput, directly and through a CONNECT tunnel: a GET of MIB MiB. */
	{
		char dget[256];
		snprintf(dget, sizeof(dget),
			 "GET /big/%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", mib);
		double s0 = now_ms();
		size_t dgot = exchange(direct_fd(port), dget);
		double dms = now_ms() - s0;
		printf("direct-transfer %.1f %.0f\n", (double)dgot / (1 << 20),
		       (double)dgot / 1e6 / (dms / 1e3));
	}
	int fd = proxied_fd(ctl[0]);
	char connect_req[256], get[256];
	snprintf(connect_req, sizeof(connect_req), "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", port);
	snprintf(get, sizeof(get), "GET /big/%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		 mib);
	char line[128];
	if (write(fd, connect_req, strlen(connect_req)) < 0 ||
	    read(fd, line, sizeof(line)) <= 0) /* "HTTP/1.1 200 Connection established" */
		return 1;
	double t0 = now_ms();
	size_t got = exchange(fd, get);
	double ms = now_ms() - t0;
	printf("tunnel %.1f %.0f\n", (double)got / (1 << 20), (double)got / 1e6 / (ms / 1e3));

	close(ctl[0]);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	return 0;
}
