/*
 * channels.c: the daemon's channel processes (channel-proto.h). Each configured channel
 * (channels-config.c) is a process, `clawbox-channel KIND`, that this file starts with its
 * end of a SOCK_SEQPACKET socketpair on fd 3, no capability and no-new-privs, supervises and
 * restarts with backoff (1 s, doubling to 60 s; back to 1 s once it has run a minute). The
 * channel holds its token and its service's connection; the daemon holds the store, the
 * groups and the decisions. What crosses the socket is channels-io.c's business.
 *
 * Every frame a channel sends is untrusted input: chanproto_recv() holds it to its row, and
 * channels-io.c's handlers re-check what the row cannot know. A channel delivers only into
 * the chats configured for it; it answers only refs it was given; it speaks only for users
 * of its own kind ("KIND:ID"); its attachments are only sealed memfds up to the bound. A
 * frame that breaks any of this cuts the channel off: audited, killed, restarted. The
 * daemon lives on.
 */
#include <errno.h>
#include <event2/http.h>
#include <stdarg.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "channel-proto.h"
#include "channels-int.h"
#include "channels.h"
#include "daemon.h"
#include "fd-util.h"
#include "json-util.h"
#include "log.h"

struct chtab ch_tab;

/* ---- the process ---- */

static void schedule_restart(struct chproc *p);

/* The channel is down (it closed its socket, or we cut it off): no more frames from it,
 * the process killed, a restart planned. */
static void
take_down(struct chproc *p, const char *why)
{
	if (p->rx) {
		event_free(p->rx);
		p->rx = NULL;
	}
	if (p->sock >= 0) {
		close(p->sock);
		p->sock = -1;
	}
	if (p->pid > 0)
		kill(p->pid, SIGKILL);
	p->sending = 0; /* sent again to the next process */
	for (size_t i = 0; i < CH_PENDING_MAX; i++)
		p->pending[i].kind = PEND_NONE;
	for (size_t i = 0; i < p->d->cfg.n_groups; i++) {
		p->slots[i].busy = false;
		if (p->slots[i].reply_to != p->slots[i].over && p->slots[i].text.len)
			p->slots[i].dirty = true;
	}
	/* What the channel said of its error is kept: it says more than that it ended. */
	if (why && !(strcmp(p->state, "error") == 0 && p->last_error[0]))
		snprintf(p->last_error, sizeof(p->last_error), "%s", why);
	if (p->d->stopping) {
		p->state = "stopped";
		return;
	}
	p->state = "restarting";
	p->since = time(NULL);
	schedule_restart(p);
}

void
ch_cut_off(struct chproc *p, const char *fmt, ...)
{
	char why[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	char text[480];
	snprintf(text, sizeof(text), "channel %s cut off: %s", p->cfg->name, why);
	log_warn("%s", text);
	(void)store_audit(p->d->store, "-", "channel", "deny", text);
	take_down(p, why);
}

static void
on_rx(evutil_socket_t fd, short what, void *arg)
{
	struct chproc *p = arg;
	(void)what;
	for (int n = 0; n < 32 && p->sock == fd; n++) {
		struct chanproto_frame f = {0};
		char why[320] = "";
		int r = chanproto_recv(fd, CHANPROTO_TO_DAEMON, &f, why, sizeof(why));
		if (r == -EAGAIN)
			return;
		if (r == -EPIPE || r == -ECONNRESET) {
			log_warn("channel %s: its process ended; restarting it", p->cfg->name);
			take_down(p, "the channel's process ended");
			return;
		}
		if (r < 0) {
			ch_cut_off(p, "%s", r == -EBADMSG || r == -EMSGSIZE ? why : strerror(-r));
			return;
		}
		r = ch_frame(p, &f, why, sizeof(why));
		chanproto_frame_done(&f);
		if (r < 0) {
			ch_cut_off(p, "%s", why[0] ? why : "a frame it may not send");
			return;
		}
	}
}

static int
spawn(struct chproc *p)
{
	struct daemon *d = p->d;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return NEG_ERRNO();
	_cleanup_close_ int mine = sv[0], theirs = sv[1];
	int fl = fcntl(mine, F_GETFL);
	if (fl < 0 || fcntl(mine, F_SETFL, fl | O_NONBLOCK) < 0)
		return NEG_ERRNO();
	/* The channel's environment: the basics, where TLS finds its CAs, and the one
	 * variable its config names for its token (passed on, never read here). */
	const char *const pass[] = {
	    "PATH",           "HOME",
	    "LANG",           "TZ",
	    "SSL_CERT_FILE",  "SSL_CERT_DIR",
	    "CURL_CA_BUNDLE", p->cfg->token_env[0] ? p->cfg->token_env : "PATH"};
	char *envp[16];
	size_t n = 0;
	for (char **e = environ; *e && n + 1 < ARRAY_SIZE(envp); e++)
		for (size_t i = 0; i < ARRAY_SIZE(pass); i++) {
			size_t len = strlen(pass[i]);
			if (strncmp(*e, pass[i], len) == 0 && (*e)[len] == '=') {
				envp[n++] = *e;
				break;
			}
		}
	envp[n] = NULL;
	const char *argv[] = {ch_tab.exe, p->cfg->kind, NULL};
	_cleanup_close_ int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		return NEG_ERRNO();
	int fds[4] = {devnull, devnull, STDERR_FILENO, theirs};
	pid_t pid = daemon_spawn_fds(argv, envp, fds, 4, -1, true);
	if (pid < 0)
		return (int)pid;
	p->pid = pid;
	p->sock = TAKE_FD(mine);
	p->started = time(NULL);
	p->rx = event_new(d->base, p->sock, EV_READ | EV_PERSIST, on_rx, p);
	if (!p->rx || event_add(p->rx, NULL) < 0) {
		take_down(p, "out of memory");
		return -ENOMEM;
	}
	/* The start frame: its config as written, its cursor, its chats. */
	char cursor[CHANPROTO_CURSOR_MAX + 1];
	bool have_cursor = store_kv_get(d->store, p->cursor_key, cursor, sizeof(cursor)) == 0;
	json_t *chats = json_object();
	for (size_t i = 0; i < p->cfg->n_chats; i++)
		json_object_set_new(chats, p->cfg->chats[i].chat,
		                    json_string(p->cfg->chats[i].group));
	json_t *f = json_pack("{s:s,s:s,s:o,s:o,s:o}", "t", "start", "name", p->cfg->name, "config",
	                      json_loads(p->cfg->config, 0, NULL), "cursor",
	                      have_cursor ? json_string(cursor) : json_null(), "chats", chats);
	int r = ch_send_frame(p, f, NULL, 0);
	if (r < 0) {
		take_down(p, "its start frame could not be sent");
		return r;
	}
	p->state = "connecting";
	p->since = time(NULL);
	log_info("channel %s: started (%s, pid %d)", p->cfg->name, p->cfg->kind, (int)pid);
	return 0;
}

static void
on_restart(evutil_socket_t fd, short what, void *arg)
{
	struct chproc *p = arg;
	(void)fd;
	(void)what;
	if (p->d->stopping)
		return;
	if (p->pid > 0) { /* the last one not reaped yet */
		struct timeval tv = {0, 100 * 1000};
		evtimer_add(p->restart, &tv);
		return;
	}
	p->restarts++;
	int r = spawn(p);
	if (r < 0 && p->sock < 0 && p->state[0] != 'r') {
		snprintf(p->last_error, sizeof(p->last_error), "cannot start: %s", strerror(-r));
		p->state = "restarting";
		schedule_restart(p);
	}
}

static void
schedule_restart(struct chproc *p)
{
	/* A channel that ran a while starts again at once-ish; one that keeps dying waits
	 * longer each time, up to a minute. */
	if (p->started && time(NULL) - p->started >= CH_STABLE_S)
		p->backoff_s = 0;
	p->backoff_s = p->backoff_s ? p->backoff_s * 2 : 1;
	if (p->backoff_s > CH_BACKOFF_MAX_S)
		p->backoff_s = CH_BACKOFF_MAX_S;
	struct timeval tv = {p->backoff_s, 0};
	evtimer_add(p->restart, &tv);
}

bool
channels_reaped(struct daemon *d, pid_t pid, int status)
{
	(void)d;
	for (size_t k = 0; k < ch_tab.n; k++) {
		struct chproc *p = &ch_tab.p[k];
		if (p->pid != pid)
			continue;
		p->pid = -1;
		char what[96] = "";
		if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL)
			snprintf(what, sizeof(what),
			         "the channel's process was killed by signal %d", WTERMSIG(status));
		else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
			snprintf(what, sizeof(what), "the channel's process exited with status %d",
			         WEXITSTATUS(status));
		if (what[0]) {
			log_warn("channel %s: %s", p->cfg->name, what);
			/* Said more precisely than "it ended", unless a cut-off said why. */
			if (!p->last_error[0] ||
			    strcmp(p->last_error, "the channel's process ended") == 0)
				snprintf(p->last_error, sizeof(p->last_error), "%s", what);
		}
		if (p->sock >= 0) /* it died before its socket said so */
			take_down(p, "the channel's process ended");
		return true;
	}
	return false;
}

static void
expire_waits(struct chproc *p)
{
	time_t now = time(NULL);
	if (ch_up(p) && p->sending && now - p->sending_at > CH_RECEIPT_WAIT_S) {
		ch_cut_off(p, "no receipt for message %lld in %d s", (long long)p->sending,
		           CH_RECEIPT_WAIT_S);
		return;
	}
	for (size_t i = 0; i < CH_PENDING_MAX; i++) {
		struct pending *pe = &p->pending[i];
		if (pe->kind == PEND_NONE || now - pe->at <= CH_EDIT_WAIT_S)
			continue;
		if (pe->kind == PEND_PROGRESS)
			p->slots[pe->slot].busy = false;
		pe->kind = PEND_NONE;
	}
}

void
channels_kick(struct daemon *d, const char *group)
{
	(void)d;
	for (size_t k = 0; k < ch_tab.n; k++)
		if (ch_group_chat(&ch_tab.p[k], group))
			ch_send_next(&ch_tab.p[k]);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	for (size_t k = 0; k < ch_tab.n; k++) {
		expire_waits(&ch_tab.p[k]);
		ch_send_next(&ch_tab.p[k]);
		ch_progress_next(&ch_tab.p[k]);
	}
}

int
channels_start(struct daemon *d)
{
	ch_tab.started = time(NULL);
	if (d->cfg.n_channels == 0)
		return 0;
	const char *exe = getenv("CLAWBOX_CHANNEL_EXE"); /* tests: a channel of their own */
	if (exe && *exe)
		snprintf(ch_tab.exe, sizeof(ch_tab.exe), "%s", exe);
	else
		snprintf(ch_tab.exe, sizeof(ch_tab.exe), "%s-channel", d->clawbox);
	if (access(ch_tab.exe, X_OK) < 0) {
		log_error("channels: %s is not there (make builds it beside clawbox)", ch_tab.exe);
		return -ENOENT;
	}
	for (size_t k = 0; k < d->cfg.n_channels; k++) {
		struct chproc *p = &ch_tab.p[ch_tab.n++];
		*p = (struct chproc){.d = d,
		                     .cfg = &d->cfg.channels[k],
		                     .pid = -1,
		                     .sock = -1,
		                     .state = "connecting"};
		snprintf(p->cursor_key, sizeof(p->cursor_key), "%s.offset", p->cfg->name);
		snprintf(p->delivered_key, sizeof(p->delivered_key), "%s.delivered", p->cfg->name);
		p->slots = calloc(d->cfg.n_groups ? d->cfg.n_groups : 1, sizeof(*p->slots));
		p->restart = evtimer_new(d->base, on_restart, p);
		if (!p->slots || !p->restart)
			return -ENOMEM;
		for (size_t i = 0; i < d->cfg.n_groups; i++)
			dbuf_init(&p->slots[i].text, CHANPROTO_TEXT_MAX);
		char v[32];
		if (store_kv_get(d->store, p->delivered_key, v, sizeof(v)) == 0) {
			p->delivered = strtoll(v, NULL, 10);
		} else {
			/* A new channel: what was said before is not sent to it now. */
			int64_t last = store_last_id(d->store);
			ch_mark_delivered(p, last > 0 ? last : 0);
		}
		int r = spawn(p);
		if (r < 0 && p->sock < 0 && strcmp(p->state, "restarting") != 0) {
			log_warn("channel %s: cannot start: %s; trying again", p->cfg->name,
			         strerror(-r));
			p->state = "restarting";
			schedule_restart(p);
		}
	}
	ch_tab.tick = event_new(d->base, -1, EV_PERSIST, on_tick, NULL);
	struct timeval t = {.tv_usec = 250 * 1000};
	if (!ch_tab.tick || event_add(ch_tab.tick, &t) < 0)
		return -ENOMEM;
	return 0;
}

void
channels_stop(struct daemon *d)
{
	(void)d;
	for (size_t k = 0; k < ch_tab.n; k++) {
		struct chproc *p = &ch_tab.p[k];
		if (p->rx)
			event_free(p->rx);
		p->rx = NULL;
		if (p->sock >= 0)
			close(p->sock); /* the channel sees EOF and exits */
		p->sock = -1;
		if (p->restart)
			event_free(p->restart);
		p->restart = NULL;
	}
	/* A moment for each to go on its own, then the rest are killed; all are reaped. */
	for (int tries = 0; tries < 20; tries++) {
		bool left = false;
		for (size_t k = 0; k < ch_tab.n; k++) {
			struct chproc *p = &ch_tab.p[k];
			if (p->pid > 0 && waitpid(p->pid, NULL, WNOHANG) == p->pid)
				p->pid = -1;
			left |= p->pid > 0;
		}
		if (!left)
			break;
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	for (size_t k = 0; k < ch_tab.n; k++) {
		struct chproc *p = &ch_tab.p[k];
		if (p->pid > 0) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, NULL, 0);
			p->pid = -1;
		}
		for (size_t i = 0; p->slots && i < d->cfg.n_groups; i++)
			dbuf_done(&p->slots[i].text);
		free(p->slots);
		p->slots = NULL;
		p->state = "stopped";
	}
	if (ch_tab.tick)
		event_free(ch_tab.tick);
	ch_tab.tick = NULL;
	ch_tab.n = 0;
}

json_t *
channels_list(struct daemon *d)
{
	(void)d;
	json_t *out = json_array();
	/* The web page and the API are a channel too: the daemon's own, always there. */
	json_array_append_new(out,
	                      json_pack("{s:s,s:s,s:s,s:n,s:I,s:i,s:[]}", "name", "web", "kind",
	                                "web", "state", "connected", "last_error", "since",
	                                (json_int_t)ch_tab.started, "restarts", 0, "chats"));
	for (size_t k = 0; k < ch_tab.n; k++) {
		struct chproc *p = &ch_tab.p[k];
		json_t *chats = json_array();
		for (size_t i = 0; i < p->cfg->n_chats; i++)
			json_array_append_new(chats, json_string(p->cfg->chats[i].chat));
		json_array_append_new(
		    out, json_pack("{s:s,s:s,s:s,s:o,s:I,s:I,s:o}", "name", p->cfg->name, "kind",
		                   p->cfg->kind, "state", p->state, "last_error",
		                   p->last_error[0] ? json_string(p->last_error) : json_null(),
		                   "since", (json_int_t)p->since, "restarts",
		                   (json_int_t)p->restarts, "chats", chats));
	}
	return out;
}

bool
channels_route(struct daemon *d, struct evhttp_request *req, const char *path)
{
	if (strcmp(path, "/api/v1/channels") != 0)
		return false;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		api_send_json(req, 405, json_pack("{s:s}", "error", "GET only"));
		return true;
	}
	api_send_json(req, 200, json_pack("{s:o}", "channels", channels_list(d)));
	return true;
}
