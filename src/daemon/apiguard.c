/*
 * apiguard.c: see apiguard.h. libevent 2.1's evhttp tells nobody when it accepts or closes a
 * connection; its one seam is evhttp_set_bevcb, called for each accepted connection just
 * before it gets its socket. So each connection is noted there, its socket (and inode, and the
 * client's address) looked at once the loop turn's accepts are done, and a socket evhttp has
 * closed since is recognised by its inode no longer matching. A connection is closed by
 * shutting its socket down, never by freeing what evhttp owns: evhttp reads the end of the
 * stream and frees it in its own time. Whether a client has sent anything is the kernel's
 * count (TCP_INFO), so an idle connection is what goes first.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "apiguard.h"
#include "daemon.h"
#include "log.h"
#include "text.h"

/* ---- the request's headers ---- */

static bool
is_loopback(const char *host)
{
	return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0;
}

static bool
is_wildcard(const char *host)
{
	return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
}

bool
api_host_ok(const struct daemon *d, struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
	if (!h)
		return false;
	char name[128];
	const char *port;
	if (h[0] == '[') { /* [::1]:7878 */
		const char *close = strchr(h, ']');
		if (!close || (size_t)(close - h - 1) >= sizeof(name))
			return false;
		memcpy(name, h + 1, (size_t)(close - h - 1));
		name[close - h - 1] = '\0';
		port = close[1] == ':' ? close + 2 : close[1] ? NULL : "";
	} else {
		const char *colon = strchr(h, ':');
		size_t n = colon ? (size_t)(colon - h) : strlen(h);
		if (n >= sizeof(name))
			return false;
		memcpy(name, h, n);
		name[n] = '\0';
		port = colon ? colon + 1 : "";
	}
	if (!port)
		return false;
	char want_port[8];
	snprintf(want_port, sizeof(want_port), "%u", d->cfg.listen_port);
	/* A missing port is let through: rebinding is about the name, and a browser always
	 * sends the port it connected to unless it is 80. A wrong one is refused. */
	if (port[0] && strcmp(port, want_port) != 0)
		return false;
	const char *own = d->cfg.listen_host;
	if (strcasecmp(name, own) == 0)
		return true;
	/* A name other than localhost could be rebound to us by whoever owns its DNS. */
	if (strcasecmp(name, "localhost") == 0)
		return is_loopback(own) || is_wildcard(own);
	/* Listening everywhere, any address literal of this machine reaches us; a literal
	 * cannot be rebound. */
	if (is_wildcard(own)) {
		unsigned char buf[16];
		return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
	}
	return false;
}

bool
api_origin_ok(const struct daemon *d, struct evhttp_request *req, const char *origin)
{
	if (strcmp(origin, d->origin) == 0)
		return true;
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
	return h && api_host_ok(d, req) && strncmp(origin, "http://", 7) == 0 &&
	       strcasecmp(origin + 7, h) == 0;
}

bool
api_from_browser(struct evhttp_request *req)
{
	const struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	return evhttp_find_header(h, "Origin") || evhttp_find_header(h, "Sec-Fetch-Site");
}

int
api_headers_check(struct evhttp_request *req, char *why, size_t size)
{
	const struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const struct evkeyval *kv;
	const char *length = NULL;
	unsigned hosts = 0, auths = 0, encodings = 0;
	TAILQ_FOREACH(kv, h, next)
	{
		/* evhttp keeps "Transfer-Encoding " as a name of its own: a proxy in front
		 * might have read it as the real one. */
		if (!kv->key[0] || strpbrk(kv->key, " \t\r\n"))
			return snprintf(why, size, "a header name with white space in it"), -EINVAL;
		if (strcasecmp(kv->key, "Content-Length") == 0) {
			if (length && strcmp(length, kv->value) != 0)
				return snprintf(why, size, "two different Content-Length headers"),
				       -EINVAL;
			length = kv->value;
		} else if (strcasecmp(kv->key, "Host") == 0) {
			hosts++;
		} else if (strcasecmp(kv->key, "Authorization") == 0) {
			auths++;
		} else if (strcasecmp(kv->key, "Transfer-Encoding") == 0) {
			encodings++;
		}
	}
	if (hosts > 1)
		return snprintf(why, size, "more than one Host header"), -EINVAL;
	if (auths > 1)
		return snprintf(why, size, "more than one Authorization header"), -EINVAL;
	if (encodings > 1 || (encodings && length))
		return snprintf(why, size, "Transfer-Encoding with Content-Length, or twice"),
		       -EINVAL;
	return 0;
}

char *
api_clean_text(const char *in, size_t len, bool name)
{
	char *out = malloc(len + 1);
	if (!out)
		return NULL;
	size_t n = text_sanitize(in, len, out);
	if (name) {
		size_t k = 0;
		for (size_t i = 0; i < n; i++)
			if (out[i] != '\n' && out[i] != '\t')
				out[k++] = out[i];
		n = k;
	}
	out[n] = '\0';
	return out;
}

/* ---- connections ---- */

struct conn {
	struct bufferevent *pending; /* until its socket is known (referenced till then) */
	int fd;
	dev_t dev;
	ino_t ino; /* what fd was when we saw it: evhttp closes it without telling us */
	uint64_t seq;
	unsigned char peer[17]; /* family, then the address */
};

static struct {
	struct daemon *d;
	struct conn *conns; /* oldest first; some may have been closed since (pruned lazily) */
	size_t n, cap;
	unsigned max_total, max_client;
	uint64_t seq, evicted;
	struct event *check, *resume;
	struct evconnlistener *listener;
	unsigned accepted_this_turn; /* the listener accepts until the backlog is empty */
	bool held;                   /* disabled until check_caps has looked at a burst */
	bool backing_off;            /* disabled for a second after an accept error */
} g;

/* A burst from the backlog is taken at most this many at a time, so that the caps act before
 * the descriptors run out. */
#define ACCEPT_BURST 32

/* The entry's socket is still the one we saw. */
static bool
conn_alive(const struct conn *c)
{
	struct stat st;
	return c->fd >= 0 && fstat(c->fd, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino;
}

static void
prune(void)
{
	size_t k = 0;
	for (size_t i = 0; i < g.n; i++)
		if (g.conns[i].pending || conn_alive(&g.conns[i]))
			g.conns[k++] = g.conns[i];
	g.n = k;
}

/* The client has sent nothing at all (an idle connection costs the attacker nothing). */
static bool
conn_silent(const struct conn *c)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return false;
	return len >= offsetof(struct tcp_info, tcpi_bytes_received) +
	                   sizeof(ti.tcpi_bytes_received)
	           ? ti.tcpi_bytes_received == 0
	           : false;
}

/* Shuts the connection down: evhttp reads the end of the stream and frees it itself. */
static void
conn_close(size_t i)
{
	(void)shutdown(g.conns[i].fd, SHUT_RDWR);
	g.evicted++;
	memmove(&g.conns[i], &g.conns[i + 1], (g.n - i - 1) * sizeof(g.conns[0]));
	g.n--;
}

/* Which connection to let go so that fresh (an index) may stay: the oldest one that has sent
 * nothing (of fresh's address, or of all), else fresh itself. */
static size_t
victim(size_t fresh, bool by_peer)
{
	for (size_t i = 0; i < g.n; i++) {
		const struct conn *c = &g.conns[i];
		if (i == fresh || c->pending ||
		    (by_peer && memcmp(c->peer, g.conns[fresh].peer, sizeof(c->peer)) != 0))
			continue;
		if (conn_silent(c))
			return i;
	}
	return fresh;
}

static int
learn(struct conn *c)
{
	struct bufferevent *bev = TAKE_PTR(c->pending);
	c->fd = bufferevent_getfd(bev);
	bufferevent_decref(bev);
	struct stat st;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (c->fd < 0 || fstat(c->fd, &st) < 0 ||
	    getpeername(c->fd, (struct sockaddr *)&ss, &len) < 0)
		return -ENOTCONN;
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	memset(c->peer, 0, sizeof(c->peer));
	c->peer[0] = (unsigned char)ss.ss_family;
	if (ss.ss_family == AF_INET)
		memcpy(c->peer + 1, &((struct sockaddr_in *)&ss)->sin_addr, 4);
	else if (ss.ss_family == AF_INET6)
		memcpy(c->peer + 1, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
	return 0;
}

/* After the accepts of one loop turn, when evhttp has given each its socket. */
static void
check_caps(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	size_t first_new = g.n;
	for (size_t i = 0; i < g.n; i++)
		if (g.conns[i].pending && first_new == g.n)
			first_new = i;
	for (size_t i = first_new; i < g.n;) {
		if (learn(&g.conns[i]) < 0) {
			memmove(&g.conns[i], &g.conns[i + 1], (g.n - i - 1) * sizeof(g.conns[0]));
			g.n--;
		} else {
			i++;
		}
	}
	g.accepted_this_turn = 0;
	if (g.held) {
		g.held = false;
		if (!g.backing_off)
			evconnlistener_enable(g.listener);
	}
	/* Counted with the dead only while under every cap; exact before anyone is closed. */
	if (g.n > g.max_client) {
		size_t keep = g.n - first_new;
		prune();
		first_new = g.n > keep ? g.n - keep : 0;
	}
	for (size_t i = first_new; i < g.n; i++) {
		unsigned same = 0;
		for (size_t k = 0; k < g.n; k++)
			same +=
			    memcmp(g.conns[k].peer, g.conns[i].peer, sizeof(g.conns[i].peer)) == 0;
		size_t v = same > g.max_client ? victim(i, true) : g.n;
		if (v == g.n && g.n > g.max_total)
			v = victim(i, false);
		if (v < g.n) {
			conn_close(v);
			if (v <= i)
				i--; /* what was at i moved down, or i itself went */
		}
	}
}

static struct bufferevent *
new_bev(struct event_base *base, void *arg)
{
	(void)arg;
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!bev)
		return NULL;
	if (g.n == g.cap) {
		size_t cap = g.cap ? 2 * g.cap : 64;
		struct conn *c = cap < (1u << 22) ? realloc(g.conns, cap * sizeof(*c)) : NULL;
		if (!c)
			return bev; /* served, uncounted */
		g.conns = c;
		g.cap = cap;
	}
	/* Our reference keeps it (and its socket) until check_caps has looked at it, should
	 * evhttp give up on the connection first. */
	bufferevent_incref(bev);
	g.conns[g.n++] = (struct conn){.pending = bev, .fd = -1, .seq = ++g.seq};
	event_active(g.check, 0, 0);
	if (++g.accepted_this_turn >= ACCEPT_BURST && !g.held) {
		/* libevent stops its accept loop when its callback disabled the listener. */
		evconnlistener_disable(g.listener);
		g.held = true;
	}
	return bev;
}

static void
resume_accepting(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	g.backing_off = false;
	if (!g.held)
		evconnlistener_enable(g.listener);
}

/* accept() failed (EMFILE, ENFILE, ENOBUFS...): libevent would try again at once, forever.
 * Waiting a moment lets runs and connections end; pending clients wait in the backlog. */
static void
accept_failed(struct evconnlistener *l, void *arg)
{
	(void)arg;
	int e = EVUTIL_SOCKET_ERROR();
	log_warn("the API cannot accept a connection: %s; pausing for a second", strerror(e));
	evconnlistener_disable(l);
	g.backing_off = true;
	struct timeval second = {.tv_sec = 1};
	evtimer_add(g.resume, &second);
}

/* libevent's own warnings, through our log (and its rate limit). */
static void
libevent_log(int severity, const char *msg)
{
	if (severity >= EVENT_LOG_WARN)
		log_warn("libevent: %s", msg);
}

int
api_guard_start(struct daemon *d, struct evhttp_bound_socket *bound)
{
	g.d = d;
	event_set_log_callback(libevent_log);
	g.check = event_new(d->base, -1, 0, check_caps, NULL);
	g.resume = evtimer_new(d->base, resume_accepting, NULL);
	g.listener = evhttp_bound_socket_get_listener(bound);
	if (!g.check || !g.resume || !g.listener)
		return -ENOMEM;
	/* Room kept for runs: each holds pipes, a host-action socket and its connections. */
	struct rlimit rl;
	unsigned soft = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	                        rl.rlim_cur < 1000000
	                    ? (unsigned)rl.rlim_cur
	                    : 1000000;
	unsigned reserve = 64 + 32 * d->cfg.max_concurrent;
	unsigned room = soft > reserve + 16 ? soft - reserve : 16;
	g.max_total = d->cfg.limits.connections ? d->cfg.limits.connections : 1024;
	if (g.max_total > room) {
		if (d->cfg.limits.connections)
			log_warn("limits.connections %u: only %u fit the file limit of %u (with "
			         "room for runs)",
			         g.max_total, room, soft);
		g.max_total = room;
	}
	g.max_client = d->cfg.limits.connections_per_client
	                   ? d->cfg.limits.connections_per_client
	                   : (g.max_total / 2 > 2 ? g.max_total / 2 : 2);
	if (g.max_client > g.max_total)
		g.max_client = g.max_total;
	evhttp_set_bevcb(d->http, new_bev, NULL);
	evconnlistener_set_error_cb(g.listener, accept_failed);
	return 0;
}

void
api_guard_stop(void)
{
	for (size_t i = 0; i < g.n; i++)
		if (g.conns[i].pending)
			bufferevent_decref(g.conns[i].pending);
	free(g.conns);
	g.conns = NULL;
	g.n = g.cap = 0;
	if (g.check)
		event_free(g.check);
	if (g.resume)
		event_free(g.resume);
	g.check = g.resume = NULL;
}

void
api_guard_stats(unsigned *open, uint64_t *evicted)
{
	prune();
	*open = (unsigned)g.n;
	*evicted = g.evicted;
}
