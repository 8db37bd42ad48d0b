/*
 * tls-bench: what TLS interception costs. The same HTTPS GET, each on a fresh connection
 * with a full handshake, made four ways, interleaved: directly to the server; through
 * clawbox-proxy as a plain CONNECT tunnel (end-to-end TLS); through clawbox-proxy to a
 * service host, intercepted (TLS to the proxy with the clawbox CA's certificate, the proxy's
 * own TLS to the server); and through mitmproxy (mitmdump, regular mode on a TCP port), the
 * peer doing the same job. Then 100 MiB through each. Drives clawbox-proxy as a sandbox's
 * init does (one socket per connection over its SEQPACKET socket).
 *
 * usage: tls-bench PROXY CADIR TESTCA SVC_PORT TUNNEL_PORT MITM_PORT|0 MITM_CA RUNS MIB
 * Prints lines "NAME MEDIAN_MS P95_MS" and "NAME-transfer MIB MB/s".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
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
	struct iovec iov = {&c, 1};
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr m = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof(u.b)};
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

static int
tcp(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("connect");
		exit(1);
	}
	return fd;
}

static int ctl = -1;

static int
via_proxy(void)
{
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		exit(1);
	pass_fd(ctl, sp[1]);
	close(sp[1]);
	return sp[0];
}

/* CONNECT 127.0.0.1:port on fd; reads the answer's head. */
static void
connect_through(int fd, int port)
{
	char req[128], buf[512];
	snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
	         port, port);
	if (write(fd, req, strlen(req)) < 0)
		exit(1);
	size_t got = 0;
	while (got < sizeof(buf) - 1) {
		ssize_t n = read(fd, buf + got, 1);
		if (n <= 0) {
			fprintf(stderr, "CONNECT: no answer\n");
			exit(1);
		}
		got += (size_t)n;
		if (got >= 4 && memcmp(buf + got - 4, "\r\n\r\n", 4) == 0)
			break;
	}
	if (strncmp(buf, "HTTP/1.1 200", 12) != 0 && strncmp(buf, "HTTP/1.0 200", 12) != 0) {
		buf[got] = 0;
		fprintf(stderr, "CONNECT refused: %s\n", buf);
		exit(1);
	}
}

/* TLS on fd (trusting ctx's CAs, the name 127.0.0.1), GET path, read to the end. Bytes. */
static size_t
https_get(SSL_CTX *ctx, int fd, const char *path)
{
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1");
	if (SSL_connect(ssl) != 1) {
		ERR_print_errors_fp(stderr);
		exit(1);
	}
	char req[256];
	snprintf(req, sizeof(req),
	         "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
	SSL_write(ssl, req, (int)strlen(req));
	static char buf[1 << 16];
	size_t total = 0;
	for (;;) {
		int n = SSL_read(ssl, buf, sizeof(buf));
		if (n <= 0)
			break;
		total += (size_t)n;
	}
	SSL_free(ssl);
	close(fd);
	return total;
}

static SSL_CTX *
client_ctx(const char *ca)
{
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_options(c, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF); /* a full handshake each time */
	if (SSL_CTX_load_verify_file(c, ca) != 1) {
		fprintf(stderr, "cannot load %s\n", ca);
		exit(1);
	}
	return c;
}

enum { DIRECT, TUNNEL, INTERCEPT, MITM, N_MODES };
static const char *const names[] = {"direct", "tunnel", "intercepted", "mitmproxy"};

int
main(int argc, char **argv)
{
	if (argc != 10)
		return 2;
	const char *proxy = argv[1], *cadir = argv[2], *testca = argv[3], *mitm_ca = argv[7];
	int svc_port = atoi(argv[4]), tun_port = atoi(argv[5]), mitm_port = atoi(argv[6]);
	int runs = atoi(argv[8]), mib = atoi(argv[9]);
	int n_modes = mitm_port ? N_MODES : MITM;
	char svc[512], a1[64], a2[64], cafile[512];
	snprintf(svc, sizeof(svc),
	         "{\"name\":\"bench\",\"hosts\":[\"127.0.0.1:%d\"],\"secret_env\":\"BENCH_SECRET\","
	         "\"placeholder\":\"clawbox-placeholder-bench-00000000000000000000000000000000\"}",
	         svc_port);
	snprintf(a1, sizeof(a1), "127.0.0.1:%d", svc_port);
	snprintf(a2, sizeof(a2), "127.0.0.1:%d", tun_port);
	snprintf(cafile, sizeof(cafile), "%s/ca.crt", cadir);
	setenv("BENCH_SECRET", "bench-secret-0123456789", 1);

	int sp[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(sp[1], 3);
		execl(proxy, proxy, "--allow", a1, "--allow", a2, "--service", svc, "--ca-dir",
		      cadir, "--fetch-ca-file", testca, (char *)NULL);
		_exit(127);
	}
	close(sp[1]);
	ctl = sp[0];

	SSL_CTX *test = client_ctx(testca), *ours = client_ctx(cafile);
	SSL_CTX *mitm = mitm_port ? client_ctx(mitm_ca) : NULL;
	double *t[N_MODES];
	for (int m = 0; m < N_MODES; m++)
		t[m] = calloc((size_t)runs, sizeof(double));
	for (int i = -10; i < runs; i++) {
		for (int m = 0; m < n_modes; m++) {
			double t0 = now_ms();
			int fd;
			switch (m) {
			case DIRECT:
				https_get(test, tcp(svc_port), "/small");
				break;
			case TUNNEL:
				fd = via_proxy();
				connect_through(fd, tun_port);
				https_get(test, fd, "/small");
				break;
			case INTERCEPT:
				fd = via_proxy();
				connect_through(fd, svc_port);
				https_get(ours, fd, "/small");
				break;
			case MITM:
				fd = tcp(mitm_port);
				connect_through(fd, svc_port);
				https_get(mitm, fd, "/small");
				break;
			}
			if (i >= 0)
				t[m][i] = now_ms() - t0;
		}
	}
	for (int m = 0; m < n_modes; m++) {
		qsort(t[m], (size_t)runs, sizeof(double), cmp);
		printf("%s %.3f %.3f\n", names[m], t[m][runs / 2], t[m][runs * 95 / 100]);
	}
	char big[64];
	snprintf(big, sizeof(big), "/big/%d", mib);
	for (int m = 0; m < n_modes; m++) {
		double t0 = now_ms();
		size_t got = 0;
		int fd;
		switch (m) {
		case DIRECT:
			got = https_get(test, tcp(svc_port), big);
			break;
		case TUNNEL:
			fd = via_proxy();
			connect_through(fd, tun_port);
			got = https_get(test, fd, big);
			break;
		case INTERCEPT:
			fd = via_proxy();
			connect_through(fd, svc_port);
			got = https_get(ours, fd, big);
			break;
		case MITM:
			fd = tcp(mitm_port);
			connect_through(fd, svc_port);
			got = https_get(mitm, fd, big);
			break;
		}
		double ms = now_ms() - t0;
		printf("%s-transfer %.1f %.0f\n", names[m], (double)got / (1 << 20),
		       (double)got / 1e6 / (ms / 1e3));
	}
	close(ctl);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	return 0;
}
