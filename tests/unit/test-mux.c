/*
 * test-mux.c: the microVM's streams over one port, between two muxes on a socketpair: data
 * arrives whole and in order, half-closes pass, a slow reader holds memory to the window, and
 * a peer that breaks the rules loses its stream or the port, never our memory.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fd-util.h"
#include "macro.h"
#include "mux.h"
#include "tap.h"

static char last_json[256];
static uint32_t last_id;

static int
on_frame(struct mux *m, uint8_t type, uint32_t id, const char *data, size_t len)
{
	(void)m;
	if (type == 'J') {
		last_id = id;
		snprintf(last_json, sizeof(last_json), "%.*s", (int)len, data);
	}
	return 0;
}

/* Polls both muxes (and, if given, reads sink into got) for ms milliseconds. */
static void
pump(struct mux *a, struct mux *b, int sink, char *got, size_t *got_len, size_t got_max, int ms)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p[2 * (MUX_CONNS_MAX + 1) + 1];
		size_t na = mux_pollfds(a, p, MUX_CONNS_MAX + 1);
		size_t nb = mux_pollfds(b, p + na, MUX_CONNS_MAX + 1);
		size_t n = na + nb;
		if (sink >= 0)
			p[n++] = (struct pollfd){.fd = sink, .events = POLLIN};
		(void)poll(p, n, 10);
		mux_dispatch(a, p, na);
		mux_dispatch(b, p + na, nb);
		if (sink >= 0 && (p[n - 1].revents & POLLIN) && *got_len < got_max) {
			ssize_t r = read(sink, got + *got_len, got_max - *got_len);
			if (r > 0)
				*got_len += (size_t)r;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > ms)
			return;
	}
}

/* write_all() on a descriptor the mux made non-blocking. */
static void
write_blocking(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EAGAIN) {
			struct pollfd w = {.fd = fd, .events = POLLOUT};
			(void)poll(&w, 1, 100);
			continue;
		}
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

static void
raw_frame(int fd, uint8_t type, uint32_t id, const void *data, uint32_t len, uint8_t pad)
{
	uint8_t h[MUX_HEADER] = {0};
	uint32_t v = htole32(id);
	memcpy(h, &v, 4);
	h[4] = type;
	h[5] = pad;
	v = htole32(len);
	memcpy(h + 8, &v, 4);
	write_blocking(fd, h, sizeof(h));
	if (len)
		write_blocking(fd, data, len);
}

int
main(void)
{
	signal(SIGPIPE,
	       SIG_IGN); /* as the mux's users do: a closed reader is an error, not death */
	int sp[2];
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp);
	struct mux host, guest;
	mux_init(&host, sp[0], on_frame, NULL);
	mux_init(&guest, sp[1], on_frame, NULL);

	/* A one-way stream: 1 MiB from a pipe in the guest to a pipe on the host. */
	size_t big = 1u << 20;
	char *data = malloc(big), *got = malloc(big + 1);
	for (size_t i = 0; i < big; i++)
		data[i] = (char)(i * 7 + i / 251);
	int src[2], dst[2];
	if (pipe2(src, O_CLOEXEC) < 0 || pipe2(dst, O_CLOEXEC) < 0)
		return 1;
	fcntl(src[1], F_SETFL, O_NONBLOCK);
	ok(mux_add(&guest, 1, src[0], -1, true) != NULL, "a guest stream from a pipe");
	ok(mux_add(&host, 1, -1, dst[1], true) != NULL, "its host end, into a pipe");
	size_t sent = 0, got_len = 0;
	while (sent < big) {
		ssize_t w = write(src[1], data + sent, big - sent);
		if (w > 0)
			sent += (size_t)w;
		pump(&host, &guest, dst[0], got, &got_len, big + 1, 5);
	}
	close(src[1]);
	pump(&host, &guest, dst[0], got, &got_len, big + 1, 300);
	ok(got_len == big && memcmp(got, data, big) == 0, "1 MiB arrives whole and in order (%zu)",
	   got_len);
	ok(host.n_conns == 0 && guest.n_conns == 0, "both ends drop the stream after its EOF");
	close(dst[0]);

	/* A socket both ways, with half-closes. */
	int g[2], h[2];
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, g);
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, h);
	mux_add(&guest, 3, g[0], g[0], true);
	mux_add(&host, 3, h[0], h[0], true);
	write_all(g[1], "hello", 5);
	shutdown(g[1], SHUT_WR);
	char buf[64];
	size_t n = 0;
	pump(&host, &guest, h[1], buf, &n, sizeof(buf), 200);
	ok(n == 5 && memcmp(buf, "hello", 5) == 0, "the guest side's bytes reach the host side");
	ok(read(h[1], buf, 1) == 0, "and its half-close");
	write_all(h[1], "world!", 6);
	close(h[1]);
	n = 0;
	pump(&host, &guest, g[1], buf, &n, sizeof(buf), 200);
	ok(n == 6 && memcmp(buf, "world!", 6) == 0, "the answer comes back");
	ok(read(g[1], buf, 1) == 0, "then the close");
	ok(host.n_conns == 0 && guest.n_conns == 0, "and the stream is gone at both ends");
	close(g[1]);

	/* A reader that does not read: what waits is bounded by the window. */
	int slow[2], fast[2];
	if (pipe2(slow, O_CLOEXEC) < 0)
		return 1;
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fast);
	struct mux_conn *gc = mux_add(&guest, 5, fast[0], -1, true);
	struct mux_conn *hc = mux_add(&host, 5, -1, slow[1], true);
	fcntl(fast[1], F_SETFL, O_NONBLOCK);
	size_t pushed = 0;
	for (int i = 0; i < 200; i++) {
		ssize_t w = write(fast[1], data, 65536);
		if (w > 0)
			pushed += (size_t)w;
		pump(&host, &guest, -1, NULL, NULL, 0, 2);
	}
	ok(hc->out.len <= MUX_WINDOW && gc->credit == 0,
	   "a stalled reader: %zu bytes wait on the host (window %u), the guest has no credit",
	   hc->out.len, MUX_WINDOW);
	ok(guest.out.len == 0 && pushed < 4u << 20,
	   "nothing queues in the guest's port, the writer is held back (%zu pushed)", pushed);
	close(fast[1]);
	size_t drained = 0;
	fcntl(slow[0], F_SETFL, O_NONBLOCK);
	for (int i = 0; i < 400 && (host.n_conns || guest.n_conns); i++) {
		ssize_t r;
		while ((r = read(slow[0], got, big)) > 0)
			drained += (size_t)r;
		pump(&host, &guest, -1, NULL, NULL, 0, 2);
	}
	while (1) {
		ssize_t r = read(slow[0], got, big);
		if (r <= 0)
			break;
		drained += (size_t)r;
	}
	ok(drained == pushed, "once it reads, all of it arrives (%zu of %zu)", drained, pushed);
	close(slow[0]);

	/* Control messages reach the caller. */
	mux_send(&guest, 'J', 7, "{\"ready\":true}", 14);
	pump(&host, &guest, -1, NULL, NULL, 0, 50);
	ok(last_id == 7 && strcmp(last_json, "{\"ready\":true}") == 0,
	   "a 'J' frame reaches on_frame");

	/* A guest that ignores its credit loses the stream, not the host's memory. */
	int q[2];
	if (pipe2(q, O_CLOEXEC) < 0)
		return 1;
	hc = mux_add(&host, 9, -1, q[1], true);
	for (int i = 0; i < 6; i++) {
		raw_frame(sp[1], 'D', 9, data, MUX_FRAME_MAX, 0);
		pump(&host, &guest, -1, NULL, NULL, 0, 5);
	}
	pump(&host, &guest, -1, NULL, NULL, 0, 50);
	ok(mux_find(&host, 9) == NULL && !host.broken,
	   "past its credit: the stream is dropped, the port still works");
	close(q[0]);
	raw_frame(sp[1], 'D', 12345, "x", 1, 0);
	pump(&host, &guest, -1, NULL, NULL, 0, 20);
	ok(!host.broken, "data for a stream that is not there is ignored");
	raw_frame(sp[1], 'A', 12345, "xy", 2, 0);
	raw_frame(sp[1], 'D', 1, data, MUX_FRAME_MAX + 1, 0);
	pump(&host, &guest, -1, NULL, NULL, 0, 20);
	ok(host.broken == -EPROTO, "an oversized frame breaks the port (%d)", host.broken);

	struct mux other;
	int sp2[2];
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp2);
	mux_init(&other, sp2[0], on_frame, NULL);
	raw_frame(sp2[1], 'J', 1, "{}", 2, 1);
	struct pollfd p[1];
	mux_pollfds(&other, p, 1);
	poll(p, 1, 100);
	ok(mux_dispatch(&other, p, 1) == -EPROTO, "so does a header with its padding set");
	mux_done(&other);
	close(sp2[1]);
	close(sp2[0]);
	mux_add(&guest, 11, -1, -1, false);
	close(sp[0]);
	for (int i = 0; i < 20 && !guest.broken; i++) {
		struct pollfd gp[MUX_CONNS_MAX + 1];
		size_t gn = mux_pollfds(&guest, gp, ARRAY_SIZE(gp));
		poll(gp, gn, 10);
		mux_dispatch(&guest, gp, gn);
	}
	ok(guest.broken == -EPIPE || guest.broken == -ECONNRESET,
	   "the peer's end closing breaks the port, not as nonsense (%d)", guest.broken);

	mux_done(&host);
	mux_done(&guest);
	close(sp[1]);
	free(data);
	free(got);
	return tap_done();
}
