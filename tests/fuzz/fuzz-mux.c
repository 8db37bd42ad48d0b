/*
 * fuzz-mux.c: the host's mux against arbitrary bytes from the guest (the less trusted side of
 * the microVM's port), checking what it promises: no stream's buffer past its window, no
 * credit past it, no more streams than the maximum, and a port that breaks rather than
 * misreads. libFuzzer entry point; tests/fuzz/replay.c replays the saved corpus in
 * `make check`.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mux.h"

static int
on_frame(struct mux *m, uint8_t type, uint32_t id, const char *data, size_t len)
{
	(void)data;
	/* As the host does: a connection the guest opens becomes a stream of ours. */
	if (type == 'N' && len == 4) {
		int sp[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
			return -EIO;
		close(sp[1]);
		if (!mux_add(m, id, sp[0], sp[0], true))
			return mux_send(m, 'X', id, NULL, 0) < 0 ? m->broken : 0;
	}
	return 0;
}

static void
check(const struct mux *m)
{
	if (m->n_conns > MUX_CONNS_MAX || m->in.len > MUX_HEADER + MUX_FRAME_MAX + 64 * 1024)
		__builtin_trap();
	for (size_t i = 0; i < m->n_conns; i++)
		if (m->conns[i]->out.len > MUX_WINDOW || m->conns[i]->credit > MUX_WINDOW)
			__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	signal(SIGPIPE, SIG_IGN);
	if (size > 60 * 1024)
		size = 60 * 1024; /* what the socket holds without a reader */
	int sp[2], out[2], in[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return 0;
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(in, O_CLOEXEC) < 0)
		__builtin_trap();
	struct mux m;
	mux_init(&m, sp[0], on_frame, NULL);
	/* The streams a run has: its stdout (ours to write) and its stdin (ours to read). */
	(void)mux_add(&m, 4, -1, out[1], true);
	(void)mux_add(&m, 2, in[0], -1, true);
	if (write(in[1], "typed\n", 6) != 6)
		__builtin_trap();
	close(in[1]);
	size_t put = 0;
	while (put < size) {
		ssize_t n = write(sp[1], data + put, size - put);
		if (n <= 0)
			break;
		put += (size_t)n;
	}
	shutdown(sp[1], SHUT_WR);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	for (int round = 0; round < 64 && !m.broken; round++) {
		struct pollfd p[MUX_CONNS_MAX + 1];
		size_t n = mux_pollfds(&m, p, MUX_CONNS_MAX + 1);
		if (poll(p, n, 0) < 0)
			break;
		(void)mux_dispatch(&m, p, n);
		check(&m);
		char sink[65536];
		while (read(out[0], sink, sizeof(sink)) > 0)
			;
	}
	check(&m);
	mux_done(&m);
	close(sp[0]);
	close(sp[1]);
	close(out[0]);
	return 0;
}
