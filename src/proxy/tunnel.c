/*
 * tunnel.c: an established CONNECT tunnel, handed to the kernel. Two pipes and splice(2) each
 * way, so the bytes never pass through the proxy's memory: the 200 answer and any bytes the
 * client sent early are written into the pipes first, so order holds. Backpressure by EAGAIN
 * (stop reading a side whose pipe the other side cannot drain); the idle timeout counts
 * traffic either way; the traffic limit still applies.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"

#define SPLICE_CHUNK (1 << 20)

static bool splice_pump(struct conn *c, struct splice_dir *d);

static void
splice_fail(struct conn *c, const char *why)
{
	if (why && !c->reason[0])
		snprintf(c->reason, sizeof(c->reason), "%s", why);
	conn_free(c);
}

static double
since_traffic_s(const struct conn *c)
{
	return conn_ms_since(&c->last_traffic) / 1e3;
}

/* Moves what is in the pipe to its destination; re-arms reading when it is empty. Returns
 * false when the connection was freed (ended or failed): c must not be touched then. */
static bool
splice_pump(struct conn *c, struct splice_dir *d)
{
	while (d->in_pipe > 0) {
		ssize_t n = splice(d->pipe[0], NULL, d->to, NULL, d->in_pipe,
		                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			d->in_pipe -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EAGAIN) {
			event_add(d->wr, NULL); /* wait until the destination can take more */
			event_del(d->rd);
			return true;
		}
		splice_fail(c, NULL); /* the peer went away */
		return false;
	}
	event_del(d->wr);
	if (d->eof) {
		shutdown(d->to, SHUT_WR);
		d->done = true;
		if (c->tunnel[0].done && c->tunnel[1].done) {
			conn_free(c);
			return false;
		}
		return true;
	}
	struct timeval idle = {.tv_sec = c->px->cfg->idle_timeout_s};
	event_add(d->rd, &idle);
	return true;
}

static void
splice_readable(evutil_socket_t fd, short what, void *arg)
{
	struct splice_dir *d = arg;
	struct conn *c = d->c;
	(void)fd;
	if (what & EV_TIMEOUT) {
		/* Idle means no traffic either way, not just this way. */
		if (since_traffic_s(c) >= c->px->cfg->idle_timeout_s) {
			snprintf(c->reason, sizeof(c->reason), "idle for %u s",
			         c->px->cfg->idle_timeout_s);
			conn_free(c);
			return;
		}
		struct timeval idle = {.tv_sec = c->px->cfg->idle_timeout_s};
		event_add(d->rd, &idle);
		return;
	}
	ssize_t n = splice(d->from, NULL, d->pipe[1], NULL, SPLICE_CHUNK,
	                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		d->eof = true; /* end of stream (or an error: end it the same way) */
		event_del(d->rd);
	} else {
		d->in_pipe += (size_t)n;
		clock_gettime(CLOCK_MONOTONIC, &c->last_traffic);
		if (!conn_count_bytes(c, (size_t)n, d->from_client)) {
			splice_fail(c, c->cap_hit);
			return;
		}
	}
	(void)splice_pump(c, d);
}

static void
splice_writable(evutil_socket_t fd, short what, void *arg)
{
	struct splice_dir *d = arg;
	(void)fd;
	(void)what;
	(void)splice_pump(d->c, d);
}

/* Hands an established CONNECT tunnel to the kernel: two pipes, splice(2) both ways. The
 * 200 answer and any bytes the client sent early go first, through the same pipes. Returns
 * false (nothing changed) where that is not possible; the bufferevent relay then carries it. */
bool
tunnel_splice_start(struct conn *c)
{
	static const char ok_line[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	struct evbuffer *early = bufferevent_get_input(c->client);
	size_t early_len = evbuffer_get_length(early);
	if (early_len > 32 * 1024)
		return false;

	struct splice_dir *t = calloc(2, sizeof(*t));
	if (!t)
		return false;
	t[0].pipe[0] = t[0].pipe[1] = t[1].pipe[0] = t[1].pipe[1] = -1;
	if (pipe2(t[0].pipe, O_NONBLOCK | O_CLOEXEC) < 0 ||
	    pipe2(t[1].pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
		for (int i = 0; i < 2; i++)
			for (int k = 0; k < 2; k++)
				if (t[i].pipe[k] >= 0)
					close(t[i].pipe[k]);
		free(t);
		return false;
	}
	int cfd = bufferevent_getfd(c->client), ufd = bufferevent_getfd(c->upstream);
	/* [0]: client -> upstream, [1]: upstream -> client. */
	t[0] = (struct splice_dir){.c = c,
	                           .from = cfd,
	                           .to = ufd,
	                           .from_client = true,
	                           .pipe = {t[0].pipe[0], t[0].pipe[1]}};
	t[1] = (struct splice_dir){
	    .c = c, .from = ufd, .to = cfd, .pipe = {t[1].pipe[0], t[1].pipe[1]}};
	(void)fcntl(t[0].pipe[1], F_SETPIPE_SZ, SPLICE_CHUNK);
	(void)fcntl(t[1].pipe[1], F_SETPIPE_SZ, SPLICE_CHUNK);

	/* Small writes into empty pipes: they fit (a pipe holds at least 64 KiB). */
	if (write(t[1].pipe[1], ok_line, sizeof(ok_line) - 1) != (ssize_t)sizeof(ok_line) - 1)
		goto fail;
	t[1].in_pipe = sizeof(ok_line) - 1;
	if (early_len) {
		const void *data = evbuffer_pullup(early, -1);
		if (write(t[0].pipe[1], data, early_len) != (ssize_t)early_len)
			goto fail;
		t[0].in_pipe = early_len;
		conn_count_bytes(c, early_len, true);
	}
	for (int i = 0; i < 2; i++) {
		t[i].rd =
		    event_new(c->px->base, t[i].from, EV_READ | EV_PERSIST, splice_readable, &t[i]);
		t[i].wr =
		    event_new(c->px->base, t[i].to, EV_WRITE | EV_PERSIST, splice_writable, &t[i]);
		if (!t[i].rd || !t[i].wr)
			goto fail;
	}
	/* The sockets are the tunnel's now: detach them from their bufferevents. */
	bufferevent_setfd(c->client, -1);
	bufferevent_setfd(c->upstream, -1);
	bufferevent_free(c->client);
	bufferevent_free(c->upstream);
	c->client = c->upstream = NULL;
	c->tunnel = t;
	c->tunnel_fds[0] = cfd;
	c->tunnel_fds[1] = ufd;
	c->decision = "allow";
	clock_gettime(CLOCK_MONOTONIC, &c->last_traffic);
	if (splice_pump(c, &t[1]))
		(void)splice_pump(c, &t[0]);
	return true;
fail:
	for (int i = 0; i < 2; i++) {
		if (t[i].rd)
			event_free(t[i].rd);
		if (t[i].wr)
			event_free(t[i].wr);
		close(t[i].pipe[0]);
		close(t[i].pipe[1]);
	}
	free(t);
	return false;
}

void
tunnel_free(struct conn *c)
{
	if (!c->tunnel)
		return;
	for (int i = 0; i < 2; i++) {
		struct splice_dir *d = &c->tunnel[i];
		if (d->rd)
			event_free(d->rd);
		if (d->wr)
			event_free(d->wr);
		close(d->pipe[0]);
		close(d->pipe[1]);
	}
	close(c->tunnel_fds[0]);
	close(c->tunnel_fds[1]);
	free(c->tunnel);
	c->tunnel = NULL;
}
