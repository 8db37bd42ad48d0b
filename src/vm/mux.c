/*
 * mux.c: the streams of a microVM over its one virtio-serial port (see mux.h for the frames).
 * Both ends run it: the host's `clawbox run --vm` and the guest's init. Nothing here blocks
 * but a write to a descriptor the mux does not own (the host's own stdout, say), which is
 * written as its owner left it.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "macro.h"
#include "mux.h"

#define PORT_READ (64u * 1024)

static void
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

void
mux_init(struct mux *m, int port, mux_frame_fn on_frame, void *user)
{
	memset(m, 0, sizeof(*m));
	m->port = port;
	m->on_frame = on_frame;
	m->user = user;
	dbuf_init(&m->in, MUX_HEADER + MUX_FRAME_MAX + PORT_READ);
	dbuf_init(&m->out, MUX_QUEUE_MAX);
	set_nonblock(port);
}

void
mux_done(struct mux *m)
{
	while (m->n_conns > 0)
		mux_drop(m, m->conns[m->n_conns - 1], false);
	dbuf_done(&m->in);
	dbuf_done(&m->out);
}

int
mux_send(struct mux *m, uint8_t type, uint32_t id, const void *data, size_t len)
{
	if (len > MUX_FRAME_MAX)
		return -E2BIG;
	uint8_t h[MUX_HEADER] = {0};
	uint32_t v = htole32(id);
	memcpy(h, &v, 4);
	h[4] = type;
	v = htole32((uint32_t)len);
	memcpy(h + 8, &v, 4);
	if (m->out.len + sizeof(h) + len > m->out.max) {
		/* Only a peer that stopped reading gets here: the streams stop at MUX_QUEUE_HIGH.
		 */
		m->broken = -ENOBUFS;
		return -E2BIG;
	}
	int r = dbuf_append(&m->out, h, sizeof(h));
	if (r >= 0 && len > 0)
		r = dbuf_append(&m->out, data, len);
	if (r < 0)
		m->broken = r;
	return r;
}

struct mux_conn *
mux_find(const struct mux *m, uint32_t id)
{
	for (size_t i = 0; i < m->n_conns; i++)
		if (m->conns[i]->id == id)
			return m->conns[i];
	return NULL;
}

struct mux_conn *
mux_add(struct mux *m, uint32_t id, int rfd, int wfd, bool own)
{
	struct mux_conn *c = NULL;
	if (m->n_conns < MUX_CONNS_MAX && !mux_find(m, id))
		c = calloc(1, sizeof(*c));
	if (!c) {
		if (own && rfd >= 0)
			close(rfd);
		if (own && wfd >= 0 && wfd != rfd)
			close(wfd);
		return NULL;
	}
	c->id = id;
	c->rfd = rfd;
	c->wfd = wfd;
	c->own = own;
	c->credit = MUX_WINDOW;
	dbuf_init(&c->out, MUX_WINDOW);
	if (own) {
		if (rfd >= 0)
			set_nonblock(rfd);
		if (wfd >= 0)
			set_nonblock(wfd);
	}
	/* A stream with one direction only: the other one is over from the start. */
	if (rfd < 0) {
		c->sent_eof = true;
		(void)mux_send(m, 'F', id, NULL, 0);
	}
	if (wfd < 0)
		c->got_eof = c->shut = true;
	m->conns[m->n_conns++] = c;
	return c;
}

void
mux_drop(struct mux *m, struct mux_conn *c, bool tell)
{
	size_t i = 0;
	while (i < m->n_conns && m->conns[i] != c)
		i++;
	if (i == m->n_conns)
		return;
	m->conns[i] = m->conns[--m->n_conns];
	if (tell)
		(void)mux_send(m, 'X', c->id, NULL, 0);
	if (m->on_gone)
		m->on_gone(m, c);
	if (c->own && c->rfd >= 0)
		close(c->rfd);
	if (c->own && c->wfd >= 0 && c->wfd != c->rfd)
		close(c->wfd);
	dbuf_done(&c->out);
	free(c);
}

/* After each change: shut the write side once the peer's EOF is written out, and end the
 * stream when both directions are over. */
static void
maybe_finish(struct mux *m, struct mux_conn *c)
{
	if (c->got_eof && !c->shut && c->out.len == 0) {
		c->shut = true;
		if (c->wfd == c->rfd)
			(void)shutdown(c->wfd, SHUT_WR);
		else if (c->own) {
			close(c->wfd);
			c->wfd = -1;
		}
	}
	if (c->sent_eof && c->shut && c->out.len == 0)
		mux_drop(m, c, false);
}

static bool
conn_reads(const struct mux *m, const struct mux_conn *c)
{
	return c->rfd >= 0 && !c->sent_eof && c->credit > 0 && m->out.len < MUX_QUEUE_HIGH;
}

size_t
mux_pollfds(const struct mux *m, struct pollfd *p, size_t max)
{
	size_t n = 0;
	if (max == 0 || m->broken)
		return 0;
	p[n++] =
	    (struct pollfd){.fd = m->port, .events = (short)(POLLIN | (m->out.len ? POLLOUT : 0))};
	for (size_t i = 0; i < m->n_conns && n < max; i++) {
		const struct mux_conn *c = m->conns[i];
		bool rd = conn_reads(m, c), wr = c->wfd >= 0 && c->out.len > 0;
		if (rd && wr && c->rfd == c->wfd) {
			p[n++] = (struct pollfd){.fd = c->rfd, .events = POLLIN | POLLOUT};
			continue;
		}
		if (rd)
			p[n++] = (struct pollfd){.fd = c->rfd, .events = POLLIN};
		if (wr && n < max)
			p[n++] = (struct pollfd){.fd = c->wfd, .events = POLLOUT};
	}
	return n;
}

static void
conn_read(struct mux *m, struct mux_conn *c)
{
	char buf[MUX_FRAME_MAX];
	size_t want = c->credit < sizeof(buf) ? c->credit : sizeof(buf);
	ssize_t n = read(c->rfd, buf, want);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		mux_drop(m, c, true);
		return;
	}
	if (n == 0) {
		c->sent_eof = true;
		(void)mux_send(m, 'F', c->id, NULL, 0);
		maybe_finish(m, c);
		return;
	}
	c->credit -= (uint32_t)n;
	(void)mux_send(m, 'D', c->id, buf, (size_t)n);
}

static void
conn_write(struct mux *m, struct mux_conn *c)
{
	ssize_t n = write(c->wfd, c->out.p, c->out.len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		mux_drop(m, c, true);
		return;
	}
	memmove(c->out.p, c->out.p + n, c->out.len - (size_t)n);
	c->out.len -= (size_t)n;
	c->written += (uint32_t)n;
	/* Credit back in quarters of the window, and whenever the buffer empties. */
	if (c->written >= MUX_WINDOW / 4 || c->out.len == 0) {
		uint32_t v = htole32(c->written);
		(void)mux_send(m, 'A', c->id, &v, sizeof(v));
		c->written = 0;
	}
	maybe_finish(m, c);
}

/* One frame from the peer. */
static int
handle_frame(struct mux *m, uint8_t type, uint32_t id, const char *data, size_t len)
{
	struct mux_conn *c = NULL;
	if (type == 'D' || type == 'F' || type == 'A' || type == 'X') {
		c = mux_find(m, id);
		if (!c)
			return 0; /* ended here meanwhile: its late frames mean nothing */
	}
	switch (type) {
	case 'D':
		if (c->got_eof || c->wfd < 0) {
			if (!c->got_eof)
				return 0;     /* a stream we do not write: dropped */
			mux_drop(m, c, true); /* data after its EOF */
			return 0;
		}
		/* Past its credit, the peer loses the stream, not our memory. */
		if (dbuf_append(&c->out, data, len) < 0)
			mux_drop(m, c, true);
		return 0;
	case 'F':
		c->got_eof = true;
		maybe_finish(m, c);
		return 0;
	case 'A': {
		uint32_t v;
		if (len != sizeof(v))
			return -EPROTO;
		memcpy(&v, data, sizeof(v));
		uint64_t credit = (uint64_t)c->credit + le32toh(v);
		c->credit = credit > MUX_WINDOW ? MUX_WINDOW : (uint32_t)credit;
		return 0;
	}
	case 'X':
		mux_drop(m, c, false);
		return 0;
	default:
		return m->on_frame ? m->on_frame(m, type, id, data, len) : 0;
	}
}

static int
port_read(struct mux *m)
{
	char buf[PORT_READ];
	ssize_t n = read(m->port, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0)
		return m->broken = n < 0 ? NEG_ERRNO() : -EPIPE;
	if (dbuf_append(&m->in, buf, (size_t)n) < 0)
		return m->broken = -EPROTO;
	size_t used = 0;
	while (m->in.len - used >= MUX_HEADER) {
		const uint8_t *h = (const uint8_t *)m->in.p + used;
		uint32_t id, len;
		memcpy(&id, h, 4);
		memcpy(&len, h + 8, 4);
		id = le32toh(id);
		len = le32toh(len);
		if (len > MUX_FRAME_MAX || h[5] || h[6] || h[7])
			return m->broken = -EPROTO;
		if (m->in.len - used < MUX_HEADER + len)
			break;
		int r = handle_frame(m, h[4], id, (const char *)h + MUX_HEADER, len);
		if (r < 0)
			return m->broken = r;
		used += MUX_HEADER + len;
	}
	memmove(m->in.p, m->in.p + used, m->in.len - used);
	m->in.len -= used;
	return 0;
}

static int
port_write(struct mux *m)
{
	while (m->out.len > 0) {
		ssize_t n = write(m->port, m->out.p, m->out.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return m->broken = n < 0 ? NEG_ERRNO() : -EIO;
		memmove(m->out.p, m->out.p + n, m->out.len - (size_t)n);
		m->out.len -= (size_t)n;
	}
	return 0;
}

int
mux_dispatch(struct mux *m, const struct pollfd *p, size_t n)
{
	if (m->broken || n == 0)
		return m->broken;
	/* The streams first, found again by fd: a frame below may end one of them. */
	for (size_t i = 1; i < n; i++) {
		if (!p[i].revents)
			continue;
		for (size_t k = 0; k < m->n_conns; k++) {
			struct mux_conn *c = m->conns[k];
			if (c->rfd == p[i].fd && (p[i].events & POLLIN) &&
			    (p[i].revents & (POLLIN | POLLHUP | POLLERR)) && conn_reads(m, c)) {
				conn_read(m, c);
				break;
			}
			if (c->wfd == p[i].fd && (p[i].events & POLLOUT) && c->out.len > 0 &&
			    (p[i].revents & (POLLOUT | POLLHUP | POLLERR))) {
				conn_write(m, c);
				break;
			}
		}
	}
	if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
		(void)port_read(m);
	/* What the streams and frames queued goes out now rather than a poll later. */
	if (!m->broken)
		(void)port_write(m);
	return m->broken;
}

int
mux_flush(struct mux *m, int timeout_ms)
{
	while (!m->broken && m->out.len > 0) {
		struct pollfd p = {.fd = m->port, .events = POLLOUT};
		int r = poll(&p, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -ETIMEDOUT;
		(void)port_write(m);
	}
	return m->broken;
}
