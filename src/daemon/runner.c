/*
 * runner.c: the per-group FIFO queues and the invocations. A group has at most one run at a
 * time and the daemon at most max_concurrent; messages that arrive while their group's agent
 * runs wait in the store for the next run, one run per message, in order. A run is a spawned
 * `clawbox ask --json` for that group (its folder, its allowlist, its limits), its prompt on
 * an anonymous file as stdin, its events read from a pipe; the reply is stored in the same
 * transaction that marks the message answered.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "envs.h"
#include "daemon.h"
#include "dbuf.h"
#include "fd-util.h"
#include "idmap.h"
#include "approvals.h"
#include "hostact.h"
#include "json-util.h"
#include "log.h"
#include "quota.h"
#include "taint.h"
#include "tasks.h"
#include "egress.h"
#include "text.h"

#define EVENT_LINE_MAX (40u << 20)
#define ARGV_MAX       (100 + 2 * CONFIG_MAX_ALLOW + 2 * CONFIG_MAX_MOUNTS + 2 * CONFIG_MAX_SERVICES + \
                        2 * CONFIG_ENGINE_MAX_ARGS + 2 * TAINT_START_MAX)

struct run {
	struct daemon *d;
	struct run *next;
	pid_t pid;
	char group[CONFIG_GROUP_ID_MAX];
	int64_t message;
	struct bufferevent *out, *err;
	struct dbuf reply;
	bool reply_cut;
	struct store_usage usage;
	char status[16];
	char why[600];
	char last_err[600]; /* ask's last line on stderr: why it failed, when no done event says */
	char notes[1024];   /* what the host left out of the run (a refused mount), for the user */
	bool exited, out_done, err_done;
	int exit_status;
	int64_t started_ms;
	/* Host actions: a socket for this run alone, mounted into its sandbox. */
	struct evconnlistener *ipc;
	char sock_path[PATH_MAX];
	struct ipc_conn *conns;
	unsigned requests;
	unsigned refused[4];       /* ipc_refuse()'s counts, by enum ipc_refusal */
	uint64_t file_budget;      /* send_file bytes left, HOSTACT_FILES_PER_RUN_MAX at start */
	char audit_path[PATH_MAX]; /* the run's egress audit, read into the store at its end */
	json_t *tools;             /* its tool calls and results, for the web app's timeline */
	char last_tool[128];       /* its last tool call's summary (clawbox runs, the web app) */
	bool stopped;              /* by runner_stop: /stop, clawbox stop, the API, the page */
	char run_id[33];           /* random: what approval grants of this run are bound to */
	struct egress_chan *egress; /* its proxy's control channel (egress.h) */
};

struct ipc_conn {
	struct run *run;
	struct bufferevent *bev;
	struct ipc_conn *next;
	bool held; /* a request waits for an approver (approvals.h); nothing more is read */
};

static unsigned run_counter;

#define IPC_CONNS_MAX  8 /* host-action connections open at once, per run */
#define IPC_DRAIN_SECS 5 /* a closing connection's last answer may take this long to leave */

/* Refusals that are not a decision on a request (hostact_handle audits each of those, at most
 * HOSTACT_PER_RUN_MAX a run): a line that is not a request, one too long, a request past the
 * run's cap, a connection past IPC_CONNS_MAX. The first of each kind in a run is audited; the
 * rest are counted, into one row when the run ends. A flood of them costs a counter each, not
 * a write each (60,000 empty lines were 60,000 fsync'd rows that stalled every group). */
enum ipc_refusal {
	IPC_NOT_REQUEST,
	IPC_TOO_LARGE,
	IPC_PAST_CAP,
	IPC_TOO_MANY_CONNS,
	IPC_REFUSAL_KINDS
};
static const char *const ipc_refusal_text[IPC_REFUSAL_KINDS] = {
    [IPC_NOT_REQUEST] = "a request is one line of JSON: {\"tool\": NAME, \"input\": {...}}",
    [IPC_TOO_LARGE] = "a request is at most 64 KiB",
    [IPC_PAST_CAP] = "too many host actions in one run",
    [IPC_TOO_MANY_CONNS] = "too many host-action connections open at once",
};
_Static_assert(IPC_REFUSAL_KINDS == ARRAY_SIZE(((struct run *)0)->refused), "run.refused");

static void
ipc_refuse(struct run *r, enum ipc_refusal kind)
{
	if (r->refused[kind]++ == 0)
		(void)store_audit(r->d->store, r->group, "host_action", "deny",
		                  ipc_refusal_text[kind]);
}

/* The one row for the refusals that were only counted. */
static void
ipc_audit_refused(struct run *r)
{
	unsigned more[IPC_REFUSAL_KINDS], total = 0;
	for (int k = 0; k < IPC_REFUSAL_KINDS; k++) {
		more[k] = r->refused[k] > 1 ? r->refused[k] - 1 : 0;
		total += more[k];
	}
	if (!total)
		return;
	char text[256];
	snprintf(text, sizeof(text),
	         "refused %u more: %u not a request, %u too large, %u past the cap, %u "
	         "connections",
	         total, more[IPC_NOT_REQUEST], more[IPC_TOO_LARGE], more[IPC_PAST_CAP],
	         more[IPC_TOO_MANY_CONNS]);
	(void)store_audit(r->d->store, r->group, "host_action", "deny", text);
	memset(r->refused, 0, sizeof(r->refused));
}

static void
ipc_conn_free(struct ipc_conn *c)
{
	if (c->held) /* its request is denied: nobody waits for the answer */
		approvals_forget(c->run->d, c);
	for (struct ipc_conn **p = &c->run->conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	bufferevent_free(c->bev);
	free(c);
}

static void
ipc_reply(struct ipc_conn *c, json_t *resp)
{
	char *s = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
	if (resp)
		json_decref(resp);
	if (!s)
		return;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	evbuffer_add(out, s, strlen(s));
	evbuffer_add(out, "\n", 1);
	free(s);
}

static void
ipc_drained(struct bufferevent *bev, void *arg)
{
	(void)bev;
	ipc_conn_free(arg);
}

static void ipc_event(struct bufferevent *bev, short what, void *arg);
static void ipc_answered(void *ctx, json_t *answer);

/* After a violation: nothing more is read; the connection goes once its answers are out (or
 * IPC_DRAIN_SECS later, if the peer does not read them), and with it its slot. */
static void
ipc_close_after_reply(struct ipc_conn *c)
{
	bufferevent_disable(c->bev, EV_READ);
	struct evbuffer *in = bufferevent_get_input(c->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		ipc_conn_free(c);
		return;
	}
	struct timeval drain = {IPC_DRAIN_SECS, 0};
	bufferevent_setcb(c->bev, NULL, ipc_drained, ipc_event, c);
	bufferevent_set_timeouts(c->bev, NULL, &drain);
}

/* One JSON line per request, one per answer. The run's group is ours, not the request's.
 * The audit rows of every line read in this turn are written in one transaction, committed
 * before any answer is sent: an answer never reports a decision a crash could still undo. */
static void
ipc_read(struct bufferevent *bev, void *arg)
{
	struct ipc_conn *c = arg;
	struct run *r = c->run;
	struct evbuffer *in = bufferevent_get_input(bev);
	/* At most the run's cap of decided requests, and the one violation that ends the turn. */
	json_t *answers[HOSTACT_PER_RUN_MAX + 1];
	size_t n = 0, len;
	bool violation = false;
	char *line;
	if (c->held)
		return;
	store_audit_batch_begin(r->d->store);
	while (!violation && !c->held && (line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF))) {
		enum ipc_refusal kind = IPC_TOO_LARGE;
		json_t *resp = NULL;
		bool decided = false;
		if (len <= HOSTACT_REQUEST_MAX) {
			_cleanup_json_ json_t *req = json_loadb(line, len, 0, NULL);
			if (!json_is_object(req)) {
				kind = IPC_NOT_REQUEST;
			} else if (r->requests >= HOSTACT_PER_RUN_MAX) {
				kind = IPC_PAST_CAP;
			} else {
				r->requests++;
				enum approval_gate gate =
				    approvals_gate(r->d, r->group, r->run_id, req, &r->file_budget,
				                   ipc_answered, c, &resp);
				if (gate == APPROVAL_RUN)
					resp = hostact_handle(r->d, r->group, req, &r->file_budget);
				c->held = gate == APPROVAL_HELD;
				decided = true;
			}
		}
		free(line);
		if (c->held) /* its answer comes later, through ipc_answered() */
			break;
		if (!decided) {
			ipc_refuse(r, kind);
			resp = json_pack("{s:b,s:s}", "ok", 0, "error", ipc_refusal_text[kind]);
			violation = true;
		}
		answers[n++] = resp;
	}
	if (!violation && evbuffer_get_length(in) > HOSTACT_REQUEST_MAX) {
		/* No end of line in sight: a request too large, holding the connection. */
		ipc_refuse(r, IPC_TOO_LARGE);
		answers[n++] = json_pack("{s:b,s:s}", "ok", 0, "error",
		                         ipc_refusal_text[IPC_TOO_LARGE]);
		violation = true;
	}
	if (store_audit_batch_commit(r->d->store) < 0) {
		log_error("[%s] cannot record host actions: %s", r->group, store_error(r->d->store));
		for (size_t i = 0; i < n; i++) {
			json_decref(answers[i]);
			answers[i] = json_pack("{s:b,s:s}", "ok", 0, "error",
			                       "the host action could not be recorded");
		}
	}
	for (size_t i = 0; i < n; i++)
		ipc_reply(c, answers[i]);
	if (violation)
		ipc_close_after_reply(c);
}

/* A held request's answer: sent, and the lines that came after it are read. */
static void
ipc_answered(void *ctx, json_t *answer)
{
	struct ipc_conn *c = ctx;
	c->held = false;
	ipc_reply(c, answer);
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		ipc_read(c->bev, c);
}

static void
ipc_event(struct bufferevent *bev, short what, void *arg)
{
	/* A peer that wrote its request and shut its side still gets the answer. */
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_WRITING) &&
	    evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		ipc_close_after_reply(arg);
	else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		ipc_conn_free(arg);
}

static void
ipc_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct run *r = arg;
	(void)l;
	(void)sa;
	(void)len;
	/* A run has no use for many connections; each costs the daemon a descriptor. */
	unsigned open = 0;
	for (struct ipc_conn *o = r->conns; o; o = o->next)
		open++;
	if (open >= IPC_CONNS_MAX) {
		ipc_refuse(r, IPC_TOO_MANY_CONNS);
		close(fd);
		return;
	}
	struct ipc_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->run = r;
	c->bev = bufferevent_socket_new(r->d->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev) {
		free(c);
		close(fd);
		return;
	}
	bufferevent_setcb(c->bev, ipc_read, NULL, ipc_event, c);
	/* While a request is held, what follows it waits unread: at most this much of it. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, 2 * HOSTACT_REQUEST_MAX);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->next = r->conns;
	r->conns = c;
}

/* The run's socket in DATA/run/, bound through /proc/self/fd so that a long data folder does
 * not overflow sun_path. */
static int
ipc_open(struct run *r)
{
	struct daemon *d = r->d;
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/run", d->cfg.data_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return NEG_ERRNO();
	_cleanup_close_ int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return NEG_ERRNO();
	unsigned n = ++run_counter;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%u.sock", dirfd, n);
	snprintf(r->sock_path, sizeof(r->sock_path), "%s/%u.sock", dir, n);
	unlink(r->sock_path); /* one left by a daemon that was killed */
	r->ipc = evconnlistener_new_bind(d->base, ipc_accept, r,
	                                 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 4,
	                                 (struct sockaddr *)&sa, sizeof(sa));
	if (!r->ipc)
		return NEG_ERRNO();
	/* Only the sandbox's user may connect (65533 outside when we are root). */
	if (chmod(r->sock_path, 0600) < 0 ||
	    (geteuid() == 0 && chown(r->sock_path, 65533, 65533) < 0))
		return NEG_ERRNO();
	return 0;
}

static void
ipc_close(struct run *r)
{
	while (r->conns)
		ipc_conn_free(r->conns);
	ipc_audit_refused(r);
	if (r->ipc) {
		evconnlistener_free(r->ipc);
		r->ipc = NULL;
		unlink(r->sock_path);
	}
}

/* Is path equal to or below dir? */
static bool
path_within(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return n && strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* A group mount the allowlist refused: said to the user (in the reply, with the reason) and
 * to the agent (one line of its system prompt, the path inside only: the host's layout is
 * not the agent's business), so that neither wonders where the folder went. */
static void
mount_refused(char *notes, size_t size, char *agent_note, size_t agent_size, const char *host,
              const char *inside, const char *why)
{
	size_t n = strlen(notes), a = strlen(agent_note);
	snprintf(notes + n, size - n, "%smount %s (%s) left out: %s", n ? "; " : "", inside, host,
	         why);
	if (!a)
		snprintf(agent_note, agent_size,
		         "The host left out folders this group's configuration mounts "
		         "(its mount allowlist refused them):");
	a = strlen(agent_note);
	snprintf(agent_note + a, agent_size - a, " %s", inside);
}

/* The proxy's audit of the run (one JSON line per request) into the daemon's audit, as
 * action "egress": what each group's agent tried to reach, and what the proxy decided. The
 * file was written by a proxy that the sandbox fed: each line is parsed, and bounded. */
static void
egress_to_audit(struct daemon *d, const struct run *r)
{
	FILE *f = fopen(r->audit_path, "re");
	if (!f)
		return;
	char line[8192];
	unsigned n = 0;
	store_audit_batch_begin(d->store); /* up to 1,000 rows: one fsync, not one each */
	_cleanup_json_ json_t *kept = json_array(); /* the run's own list, for its transcript */
	while (fgets(line, sizeof(line), f) && n++ < 1000) {
		_cleanup_json_ json_t *e = json_loads(line, 0, NULL);
		if (json_object_get(e, "meter")) {
			n--; /* the meter's totals (budget_read_meter), not a row of the 1,000 */
			continue;
		}
		if (!json_is_object(e))
			continue;
		char what[600];
		snprintf(what, sizeof(what), "%.16s %.255s:%lld%s%.300s",
		         json_get_str(e, "method") ?: "?", json_get_str(e, "host") ?: "?",
		         (long long)json_integer_value(json_object_get(e, "port")),
		         json_get_str(e, "reason") ? ": " : "", json_get_str(e, "reason") ?: "");
		const char *decision = json_get_str(e, "decision") ?: "error";
		if (strcmp(decision, "allow") != 0 && strcmp(decision, "deny") != 0 &&
		    strcmp(decision, "taint") != 0) /* the proxy's taint lines keep their kind */
			decision = "error";
		(void)store_audit(d->store, r->group, "egress", decision, what);
		if (kept && json_array_size(kept) < 200)
			json_array_append_new(kept, json_pack("{s:s,s:s}", "decision",
			                                      strcmp(decision, "allow") == 0 ||
			                                              strcmp(decision, "deny") == 0
			                                          ? decision
			                                          : "error",
			                                      "reason", what));
	}
	if (store_audit_batch_commit(d->store) < 0)
		log_error("[%s] cannot record the run's egress: %s", r->group, store_error(d->store));
	fclose(f);
	char key[48], *j = kept && json_array_size(kept) ? json_dumps(kept, JSON_COMPACT) : NULL;
	snprintf(key, sizeof(key), "run-egress:%lld", (long long)r->message);
	if (j)
		(void)store_kv_set(d->store, key, j);
	free(j);
	unlink(r->audit_path);
}

static bool
group_running(struct daemon *d, const char *group)
{
	for (struct run *r = d->runs; r; r = r->next)
		if (strcmp(r->group, group) == 0)
			return true;
	return false;
}

/* The folder of a group under the data folder, made if missing. The sandbox's writable mounts
 * are idmapped to their owner when root launches it; only where the file system cannot do
 * that does the folder have to belong to the sandbox's uid outside (65533), and where the
 * folder above it does (a data folder from before, or the VM's shared one): a root-owned
 * folder in a share of 65533's would be nobody's to the sandbox. */
/* idmap_supported, remembered per file system: the answer is the file system's (its type and
 * mount), and asking costs a child in a user namespace that the daemon must wait for. Asked
 * twice a run, that wait was most of the daemon's time with 100 runs at once on 2 cores (the
 * child queued for a CPU behind the runs) and held /healthz back (test-scale.sh). */
static int
idmap_supported_cached(const char *path)
{
	static struct {
		dev_t dev;
		int answer;
	} seen[8];
	static size_t n;
	struct stat st;
	if (stat(path, &st) < 0)
		return NEG_ERRNO();
	for (size_t i = 0; i < n; i++)
		if (seen[i].dev == st.st_dev)
			return seen[i].answer;
	int r = idmap_supported(path);
	if (r >= 0 && n < ARRAY_SIZE(seen))
		seen[n++] = (typeof(seen[0])){st.st_dev, r};
	return r;
}

static int
group_dir(struct daemon *d, const char *kind, const char *group, char *buf, size_t size)
{
	char parent[PATH_MAX];
	snprintf(parent, sizeof(parent), "%s/%s", d->cfg.data_dir, kind);
	if (mkdir(parent, 0700) < 0 && errno != EEXIST)
		return NEG_ERRNO();
	if (snprintf(buf, size, "%s/%s", parent, group) >= (int)size)
		return -ENAMETOOLONG;
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return NEG_ERRNO();
	struct stat st;
	bool shared = stat(parent, &st) == 0 && st.st_uid == 65533;
	if (geteuid() == 0 && (shared || idmap_supported_cached(buf) != 1) &&
	    chown(buf, 65533, 65533) < 0)
		return NEG_ERRNO();
	return 0;
}

int
daemon_group_dir(struct daemon *d, const char *group, char *buf, size_t size)
{
	return group_dir(d, "groups", group, buf, size);
}

/* vm-client.h's VM_EXIT_TEMPFAIL: the VM died under the run (the service boots another). */
#define EXIT_VM_DIED 75

/* Whether message may run again after the VM died under it: twice, not forever (an agent that
 * could crash the guest's kernel would otherwise have it boot for ever). */
static bool
may_retry(struct daemon *d, int64_t message)
{
	for (size_t i = 0; i < ARRAY_SIZE(d->vm_retries); i++)
		if (d->vm_retries[i].message == message)
			return ++d->vm_retries[i].tries <= 2;
	size_t i = d->vm_retry_next++ % ARRAY_SIZE(d->vm_retries);
	d->vm_retries[i].message = message;
	d->vm_retries[i].tries = 1;
	return true;
}

/* A reply the store refused (disk full) used to leave its message queued, to run again at
 * once: 191-199 runs in 8 s. Now it runs again after 1, 2, 4 ... s (capped), STORE_RETRY_MAX
 * runs in all; then the message is marked failed, with the reason, once the store takes a
 * write again (tried every 2 s). Its group's later messages wait meanwhile: a queue is in
 * order. */
#define STORE_RETRY_MAX   5
#define STORE_RETRY_CAP_S 30

static int64_t
monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct store_retry *
store_retry_of(struct daemon *d, int64_t message)
{
	for (size_t i = 0; i < ARRAY_SIZE(d->store_retries); i++)
		if (d->store_retries[i].message == message)
			return &d->store_retries[i];
	return NULL;
}

static void
retry_fire(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	runner_kick(arg);
}

/* The timer set for the soonest retry still waiting. */
static void
retry_arm(struct daemon *d)
{
	int64_t soonest = 0, now = monotonic_ms();
	for (size_t i = 0; i < ARRAY_SIZE(d->store_retries); i++) {
		const struct store_retry *t = &d->store_retries[i];
		if (t->message && (!soonest || t->not_before < soonest))
			soonest = t->not_before;
	}
	if (!soonest || d->stopping)
		return;
	if (!d->retry_timer && !(d->retry_timer = evtimer_new(d->base, retry_fire, d)))
		return;
	int64_t wait = soonest > now ? soonest - now : 0;
	struct timeval tv = {.tv_sec = wait / 1000, .tv_usec = (wait % 1000) * 1000};
	evtimer_add(d->retry_timer, &tv);
}

/* The reply to message could not be stored: when it may run again. */
static void
store_retry_note(struct daemon *d, int64_t message, const char *why)
{
	struct store_retry *t = store_retry_of(d, message);
	if (!t) {
		t = &d->store_retries[d->store_retry_next++ % ARRAY_SIZE(d->store_retries)];
		memset(t, 0, sizeof(*t));
		t->message = message;
	}
	t->runs++;
	t->given_up = t->runs >= STORE_RETRY_MAX;
	int64_t delay_s = (int64_t)1 << (t->runs - 1 < 5 ? t->runs - 1 : 5);
	if (delay_s > STORE_RETRY_CAP_S)
		delay_s = STORE_RETRY_CAP_S;
	/* One given up is not run again: only its mark waits for the store. */
	t->not_before = monotonic_ms() + (t->given_up ? 0 : delay_s * 1000);
	snprintf(t->why, sizeof(t->why), "%s", why);
	retry_arm(d);
}

/* Whether message, next in its group's queue, may run now. One given up is marked failed
 * here, when the store takes it; until then its group waits (its queue is in order). */
static bool
store_retry_gate(struct daemon *d, const char *group, int64_t message)
{
	struct store_retry *t = store_retry_of(d, message);
	if (!t)
		return true;
	if (monotonic_ms() < t->not_before) {
		retry_arm(d);
		return false;
	}
	if (!t->given_up)
		return true;
	char reply[400];
	snprintf(reply, sizeof(reply),
	         "[clawbox: the reply could not be stored after %u runs (%s); the message was "
	         "not run again]",
	         t->runs, t->why);
	int e = store_finish(d->store, message, group, reply, true, NULL);
	if (e < 0 && e != -EALREADY) {
		t->not_before = monotonic_ms() + 2000;
		retry_arm(d);
		return false;
	}
	log_warn("[%s] message %lld failed: its reply could not be stored after %u runs (%s)",
	         group, (long long)message, t->runs, t->why);
	(void)store_audit(d->store, group, "store", "failed", reply);
	stream_notify(d, group);
	t->message = 0;
	return false;
}

static void
unlink_run(struct daemon *d, struct run *r)
{
	for (struct run **p = &d->runs; *p; p = &(*p)->next)
		if (*p == r) {
			*p = r->next;
			break;
		}
	d->running--;
	taint_run_end(d, r->run_id); /* before the socket goes: nothing asks after this */
	ipc_close(r);
	egress_chan_free(r->egress);
	bufferevent_free(r->out);
	bufferevent_free(r->err);
	dbuf_done(&r->reply);
	if (r->tools)
		json_decref(r->tools);
	free(r);
}

/* The run's tool timeline kept with its message (kv "run-tools:ID"), read by api-views.c. */
static void
tools_keep(struct run *r)
{
	if (!r->tools)
		return;
	char key[48];
	snprintf(key, sizeof(key), "run-tools:%lld", (long long)r->message);
	char *j = json_dumps(r->tools, JSON_COMPACT);
	if (j && store_kv_set(r->d->store, key, j) < 0)
		log_warn("[%s] cannot keep the tool timeline: %s", r->group,
		         store_error(r->d->store));
	free(j);
}

/* A tool_call or tool_result event: streamed to the group's listeners and kept (bounded). */
static void
on_tool_event(struct run *r, json_t *ev)
{
	/* PREVIEW_MAX: events.h's EVENTS_PREVIEW_MAX */
	enum { TOOLS_MAX = 256, SUMMARY_MAX = 400, PREVIEW_MAX = 400 };
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	const char *summary = json_get_str(ev, "summary") ?: "";
	char cut[SUMMARY_MAX + 1];
	size_t n = text_sanitize(summary, strnlen(summary, SUMMARY_MAX), cut);
	cut[n] = '\0';
	json_t *t =
	    json_pack("{s:s,s:s,s:s,s:I,s:I}", "type", json_get_str(ev, "type"), "id",
	              json_get_str(ev, "id") ?: "", "name", json_get_str(ev, "name") ?: "",
	              "reply_to", (json_int_t)r->message, "t_ms", (json_int_t)(ms - r->started_ms));
	if (!t)
		return;
	if (strcmp(json_get_str(ev, "type"), "tool_call") == 0) {
		json_object_set_new(t, "summary", json_string(cut));
		/* clawbox runs and the page show what it last did: the call's summary */
		snprintf(r->last_tool, sizeof(r->last_tool), "%s",
		         cut[0] ? cut : json_get_str(t, "name"));
	} else {
		json_object_set(t, "is_error", json_object_get(ev, "is_error") ?: json_false());
		json_object_set_new(t, "bytes",
		                    json_integer((json_int_t)json_get_u64(ev, "bytes")));
		/* The agent is not trusted to have bounded or cleaned its preview: it is cut
		 * again (between letters) and sanitized here, and the page sets it as text. */
		const char *pv = json_get_str(ev, "preview");
		if (pv) {
			char clean[PREVIEW_MAX + 1];
			size_t len = json_string_length(json_object_get(ev, "preview"));
			size_t k = text_utf8_prefix(pv, len, PREVIEW_MAX);
			/* more: the result went on past the preview (dropped escapes aside) */
			bool more = json_get_u64(ev, "bytes") > k;
			k = text_sanitize_escapes(pv, k, clean);
			json_object_set_new(t, "preview", json_stringn(clean, k));
			json_object_set_new(t, "preview_cut", json_boolean(more));
		}
	}
	stream_event(r->d, r->group, "tool", t);
	if (!r->tools)
		r->tools = json_array();
	if (r->tools && json_array_size(r->tools) < TOOLS_MAX)
		json_array_append(r->tools, t);
	json_decref(t);
}

static void
log_run_finished(const struct run *r, bool ok, int64_t ms)
{
	char id[24], dur[24], code[16];
	snprintf(id, sizeof(id), "%lld", (long long)r->message);
	snprintf(dur, sizeof(dur), "%lld", (long long)ms);
	snprintf(code, sizeof(code), "%d", r->exit_status);
	const char *const f[] = {"group",  r->group, "message", id, "duration_ms", dur,
	                         "exit",   code,     "status",  ok ? "answered" : "failed",
	                         NULL};
	log_fields("info", f, "run finished");
}

/* No model can be reached: every queued message of the group is answered with what to set,
 * and no sandbox is started for nothing. */
static int
answer_without_model(struct daemon *d, const char *group)
{
	char hint[1024];
	snprintf(hint, sizeof(hint),
	         "[clawbox: no model configured: set model.base_url (a local Ollama or llama.cpp "
	         "server) or model.api_key_file in %s, or %s in the daemon's environment, then "
	         "restart it]",
	         d->config_path ? d->config_path : "the configuration",
	         config_key_env(&d->cfg.model));
	int64_t id;
	for (unsigned i = 0; i < 1000; i++) {
		_cleanup_free_ char *text = NULL;
		if (store_take_next(d->store, group, &id, &text) < 0)
			break;
		if (store_finish(d->store, id, group, hint, true, NULL) < 0) {
			log_error("[%s] cannot store the reply to message %lld: %s", group,
			          (long long)id, store_error(d->store));
			break;
		}
	}
	stream_notify(d, group);
	return -ENOKEY;
}

static void
finish(struct run *r)
{
	struct daemon *d = r->d;
	if (!r->exited || !r->out_done || !r->err_done)
		return;
	if (d->cfg.vm.on && r->exit_status == EXIT_VM_DIED && !d->stopping &&
	    may_retry(d, r->message) && store_requeue(d->store, r->message) >= 0) {
		log_warn("[%s] the VM died under message %lld: queued again", r->group,
		         (long long)r->message);
		(void)store_audit(d->store, r->group, "vm", "retry", "the VM died under the run");
		unlink_run(d, r);
		runner_kick(d);
		return;
	}
	bool ok = strcmp(r->status, "answered") == 0 && r->exit_status == 0;
	if (r->stopped)
		ok = false;
	/* The spend is the proxy's count, not the agent's claim; the agent's only when the
	 * proxy metered nothing (no model call went through it). */
	struct budget_spend spend;
	budget_read_meter(r->audit_path, &spend);
	if (spend.metered) {
		r->usage = spend.usage;
		r->usage.model = spend.model[0] ? spend.model : NULL;
		r->usage.cost_usd = spend.cost_usd;
		r->usage.cost_known = spend.cost_known;
	} else {
		spend.usage = r->usage;
	}
	if (spend.stop[0]) {
		/* The proxy refused a model call (or cut a connection) for the budget: the chat
		 * says so in the host's words, not in the agent's. */
		if (!ok)
			snprintf(r->why, sizeof(r->why), "the run was stopped at the group's daily "
			         "budget: %.400s", spend.stop);
		else
			(void)dbuf_printf(&r->reply, "%s[clawbox: the group's daily budget stopped "
			                  "part of the run: %.400s]",
			                  r->reply.len ? "\n\n" : "", spend.stop);
		(void)store_audit(d->store, r->group, "budget", "deny", spend.stop);
	}
	if (!ok) {
		/* The user gets a reply either way: what the agent said, and why it stopped. */
		if (!r->why[0] && r->last_err[0])
			snprintf(r->why, sizeof(r->why), "%s", r->last_err);
		if (!r->why[0])
			snprintf(r->why, sizeof(r->why),
			         "the agent ended without an answer (status %d)", r->exit_status);
		if (r->stopped)
			snprintf(r->why, sizeof(r->why), "stopped by the user");
		(void)dbuf_printf(&r->reply, "%s[clawbox: %s]", r->reply.len ? "\n\n" : "", r->why);
		d->runs_failed++;
	}
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct store_run rec = {
	    .started_ms = r->started_ms,
	    .ended_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000,
	    .exit_status = r->exit_status,
	};
	if (r->notes[0]) /* the user sees what was left out, not only the log */
		(void)dbuf_printf(&r->reply, "%s[clawbox: %s]", r->reply.len ? "\n\n" : "",
		                  r->notes);
	log_run_finished(r, ok, rec.ended_ms - rec.started_ms);
	int e = store_finish_run(d->store, r->message, r->group, dbuf_str(&r->reply), !ok,
	                         &r->usage, &rec);
	budget_record(d, r->group, &spend);
	if (e >= 0)
		budget_task_outcome(d, r->message, !ok);
	if (e == -EALREADY) {
		/* Answered already (the store refuses a second answer): nothing to retry. */
		log_warn("[%s] message %lld was answered already; this run's reply is dropped",
		         r->group, (long long)r->message);
	} else if (e < 0) {
		log_error("[%s] cannot store the reply to message %lld: %s", r->group,
		          (long long)r->message, store_error(d->store));
		store_retry_note(d, r->message, store_error(d->store));
	} else {
		struct store_retry *t = store_retry_of(d, r->message);
		if (t)
			t->message = 0;
	}
	uint64_t used;
	const struct group_config *g = config_group(&d->cfg, r->group);
	if (g && quota_group_usage(d, g, true, &used) == 0 && used > g->folder_quota) {
		char u[32], q[32];
		quota_format(used, u, sizeof(u));
		quota_format(g->folder_quota, q, sizeof(q));
		log_warn("[%s] its folder uses %s of its %s quota: its messages are refused until "
		         "files are deleted",
		         r->group, u, q);
	}
	tools_keep(r);
	stream_notify(d, r->group);
	egress_to_audit(d, r);
	unlink_run(d, r);
	runner_kick(d);
}

static void
on_event_line(struct run *r, const char *line, size_t len)
{
	_cleanup_json_ json_t *ev = json_loadb(line, len, 0, NULL);
	const char *type = json_get_str(ev, "type");
	if (!type)
		return;
	if (strcmp(type, "text") == 0) {
		json_t *t = json_object_get(ev, "text");
		if (dbuf_append_capped(&r->reply, json_string_value(t), json_string_length(t)))
			r->reply_cut = true;
		stream_delta(r->d, r->group, r->message, json_string_value(t),
		             json_string_length(t));
		channels_progress(r->d, r->group, r->message, json_string_value(t),
		                  json_string_length(t));
	} else if (strcmp(type, "done") == 0) {
		json_t *u = json_object_get(ev, "usage");
		r->usage.input = json_get_u64(u, "input_tokens");
		r->usage.output = json_get_u64(u, "output_tokens");
		r->usage.cache_write = json_get_u64(u, "cache_write_tokens");
		r->usage.cache_read = json_get_u64(u, "cache_read_tokens");
		snprintf(r->status, sizeof(r->status), "%s", json_get_str(ev, "status") ?: "");
		snprintf(r->why, sizeof(r->why), "%s", json_get_str(ev, "message") ?: "");
	} else if (strcmp(type, "tool_call") == 0 || strcmp(type, "tool_result") == 0) {
		on_tool_event(r, ev);
	}
}

static void
read_out(struct bufferevent *bev, void *arg)
{
	struct run *r = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line;
	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF))) {
		on_event_line(r, line, len);
		free(line);
	}
	if (evbuffer_get_length(in) > EVENT_LINE_MAX) /* no end of line in sight */
		evbuffer_drain(in, evbuffer_get_length(in));
}

static void
read_err(struct bufferevent *bev, void *arg)
{
	struct run *r = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line;
	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF))) {
		char clean[1024];
		size_t n = text_sanitize(line, len < sizeof(clean) ? len : sizeof(clean), clean);
		log_warn("[%s] %.*s", r->group, (int)n, clean);
		static const char prefix[] = "clawbox ask: ";
		const char *msg = clean;
		if (n >= sizeof(prefix) - 1 && memcmp(clean, prefix, sizeof(prefix) - 1) == 0) {
			msg += sizeof(prefix) - 1;
			n -= sizeof(prefix) - 1;
		}
		snprintf(r->last_err, sizeof(r->last_err), "%.*s", (int)n, msg);
		free(line);
	}
	if (evbuffer_get_length(in) > 64 * 1024)
		evbuffer_drain(in, evbuffer_get_length(in));
}

static void
pipe_event(struct bufferevent *bev, short what, void *arg)
{
	struct run *r = arg;
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (bev == r->out) {
		read_out(bev, r);
		r->out_done = true;
	} else {
		read_err(bev, r);
		r->err_done = true;
	}
	bufferevent_disable(bev, EV_READ);
	finish(r);
}

/* In a child before exec: no capability left in any set, the bounding set emptied, and
 * no-new-privs, so nothing it execs gains one back. 0, or -1 (the child then exits). */
static int
drop_privileges(void)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && geteuid() == 0)
			return -1;
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2] = {{0}};
	return (int)syscall(SYS_capset, &hdr, data);
}

/* vfork: the child only sets up its descriptors and execs, so no page table of the daemon is
 * copied for it. A function of its own, so that nothing of the caller's frame lives across
 * the vfork. */
__attribute__((noinline)) pid_t
daemon_spawn_fds(const char **argv, char **envp, const int *fds, size_t n, int keep,
                 bool unprivileged)
{
	if (n > 4)
		return -EINVAL;
	pid_t parent = getpid();
	pid_t pid = vfork();
	if (pid < 0)
		return NEG_ERRNO();
	if (pid == 0) {
		/* ask (and with it the sandbox), or the VM service, dies with the daemon: a
		 * restart finds no orphan and queues the message again. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(125);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		/* In order, each onto its number: a source below its target is never one a
		 * later dup2 overwrites (0-2 are the daemon's own stdio, a socket is above). An
		 * fd already in place keeps its close-on-exec flag through dup2: cleared. */
		for (size_t i = 0; i < n; i++)
			if ((fds[i] == (int)i ? fcntl((int)i, F_SETFD, 0) : dup2(fds[i], (int)i)) < 0)
				_exit(125);
		/* The one more descriptor the child gets (the proxy's control channel), in the
		 * child's own table only: vfork shares memory, not descriptors. */
		if (keep >= 0 && fcntl(keep, F_SETFD, 0) < 0)
			_exit(125);
		/* Runs are batch work and the daemon is their control plane: with 100 runs on 2
		 * cores at the daemon's own priority, /healthz waited ~500 ms at p99 for a CPU
		 * (test-scale.sh). Best effort: a run at the daemon's priority still works. */
		daemon_slice_default(); /* before the nice: it sets the nice it reads */
		(void)!nice(DAEMON_RUN_NICE);
		if (unprivileged && drop_privileges() < 0)
			_exit(125);
		execve(argv[0], (char *const *)argv, envp);
		_exit(127);
	}
	return pid;
}

pid_t
daemon_spawn_keep(const char **argv, char **envp, int in, int out, int err, int keep)
{
	const int fds[3] = {in, out, err};
	return daemon_spawn_fds(argv, envp, fds, 3, keep, false);
}

pid_t
daemon_spawn(const char **argv, char **envp, int in, int out, int err)
{
	return daemon_spawn_keep(argv, envp, in, out, err, -1);
}

/* ask's environment: what it needs and the model key, nothing else of the daemon's (the
 * Telegram token, for one, is not the run's business). The sandbox builds its own from an
 * allowlist anyway; this keeps the rest out of ask and its proxy too. */
void
daemon_environment(const struct daemon *d, bool model_key, char **envp, size_t max)
{
	const char *const pass[] = {"PATH", "HOME", "LANG", "TZ",
	                            model_key ? config_key_env(&d->cfg.model) : "PATH"};
	size_t n = 0;
	for (char **e = environ; *e && n + 1 < max; e++) {
		for (size_t i = 0; i < ARRAY_SIZE(pass); i++) {
			size_t len = strlen(pass[i]);
			if (strncmp(*e, pass[i], len) == 0 && (*e)[len] == '=') {
				envp[n++] = *e;
				break;
			}
		}
	}
	envp[n] = NULL;
}

/* The group's services' secret_env variables join ask's environment: its proxy reads them
 * (and unsets them); the sandbox's environment never has them. */
static void
add_service_env(const struct group_config *g, char **envp, size_t max)
{
	size_t n = 0;
	while (envp[n])
		n++;
	for (size_t i = 0; i < g->n_services && n + 1 < max; i++) {
		json_t *o = json_loads(g->services[i], 0, NULL);
		const char *name = json_string_value(json_object_get(o, "secret_env"));
		size_t len = name ? strlen(name) : 0;
		for (char **e = environ; len && *e; e++)
			if (strncmp(*e, name, len) == 0 && (*e)[len] == '=') {
				envp[n++] = *e;
				break;
			}
		json_decref(o);
	}
	envp[n] = NULL;
}

/* The prompt as an anonymous file: the child's stdin, never on a command line. */
static int
prompt_file(const char *text)
{
	int fd = memfd_create("prompt", MFD_CLOEXEC);
	if (fd < 0)
		return NEG_ERRNO();
	int r = write_all(fd, text, strlen(text));
	if (r >= 0 && lseek(fd, 0, SEEK_SET) < 0)
		r = NEG_ERRNO();
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/* CLAWBOX_TEST_SPAWN_EMFILE=N: the first N starts fail as if out of descriptors, so that a
 * test sees the message wait instead of failing. */
static bool
test_spawn_fails(void)
{
	static long left = -1;
	if (left < 0) {
		const char *v = getenv("CLAWBOX_TEST_SPAWN_EMFILE");
		left = v && *v ? strtol(v, NULL, 10) : 0;
		if (left < 0)
			left = 0;
	}
	return left > 0 && left-- > 0;
}

/* Out of descriptors, memory or processes for a moment: the message waits, not fails. */
static bool
transient(int e)
{
	return e == -EMFILE || e == -ENFILE || e == -ENOMEM || e == -EAGAIN || e == -ENOBUFS;
}

static void
retry_kick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct daemon *d = arg;
	d->retry_pending = false;
	runner_kick(d);
}

/* The message stays queued (store_take_next marks nothing); the queues are looked at again
 * in a second, whatever else happens meanwhile. */
static int
start_later(struct daemon *d, const char *group, int e)
{
	log_warn("[%s] cannot start the agent now (%s): the message stays queued", group,
	         strerror(-e));
	struct timeval second = {.tv_sec = 1};
	if (!d->retry_pending &&
	    event_base_once(d->base, -1, EV_TIMEOUT, retry_kick, d, &second) == 0)
		d->retry_pending = true;
	return -EAGAIN;
}

static int
start_run(struct daemon *d, const char *group)
{
	const struct group_config *g = config_group(&d->cfg, group);
	if (!g)
		return -ENOENT;
	if (!config_model_configured(&d->cfg.model))
		return answer_without_model(d, group);

	int64_t id;
	_cleanup_free_ char *text = NULL;
	int e = store_take_next(d->store, group, &id, &text);
	if (e < 0)
		return e;
	if (!store_retry_gate(d, group, id))
		return -EAGAIN;
	char over[300];
	uint64_t tokens_left = UINT64_MAX;
	_cleanup_free_ char *proxy_budget = NULL;
	bool quota_ok = quota_may_run(d, g, over, sizeof(over));
	if (!quota_ok ||
	    !budget_may_run(d, g, &tokens_left, &proxy_budget, over, sizeof(over))) {
		/* Every message queued for the group meanwhile, not one per kick. */
		char reply[320];
		snprintf(reply, sizeof(reply), "[clawbox: %s]", over);
		log_warn("[%s] message %lld refused: %s", group, (long long)id, over);
		(void)store_audit(d->store, group, quota_ok ? "budget" : "quota", "deny", over);
		for (unsigned n = 0; e == 0 && n < STORE_LIST_MAX; n++) {
			if (store_finish(d->store, id, group, reply, true, NULL) < 0)
				break;
			budget_task_outcome(d, id, true);
			free(text);
			text = NULL;
			e = store_take_next(d->store, group, &id, &text);
		}
		stream_notify(d, group);
		return -EDQUOT;
	}

	/* What tainted the run before it starts (taint.h): its message's sender, the group's
	 * memory file, and below its untrusted mounts. */
	struct taint_start taint;
	taint_start_collect(d, group, id, &taint);
	char ws[PATH_MAX], session[PATH_MAX], memory[PATH_MAX + 32], mem_size[32], max_tokens[32];
	const char *argv[ARGV_MAX];
	size_t n = 0;
	if ((e = group_dir(d, "groups", group, ws, sizeof(ws))) < 0 ||
	    (e = group_dir(d, "sessions", group, session, sizeof(session))) < 0) {
		log_error("[%s] cannot make its folders: %s", group, strerror(-e));
		(void)store_finish(d->store, id, group, "[clawbox: the group's folder is unusable]",
		                   true, NULL);
		return e;
	}
	argv[n++] = d->clawbox;
	argv[n++] = "ask";
	argv[n++] = "--json";
	argv[n++] = "--workspace";
	argv[n++] = ws;
	argv[n++] = "--rw";
	argv[n++] = "--inside";
	argv[n++] = "/workspace/group";
	argv[n++] = "--proxy-checked"; /* at start, per group (serve-main.c) */
	if (d->cfg.vm.on) {
		argv[n++] = "--vm-service";
		argv[n++] = d->vm_socket;
	}
	argv[n++] = "--session";
	argv[n++] = session;
	argv[n++] = "--provider";
	argv[n++] = d->cfg.model.provider;
	if (d->cfg.model.model[0]) {
		argv[n++] = "--model";
		argv[n++] = d->cfg.model.model;
	}
	if (d->cfg.model.base_url[0]) {
		argv[n++] = "--base-url";
		argv[n++] = d->cfg.model.base_url;
	}
	if (d->cfg.model.max_tokens) {
		snprintf(max_tokens, sizeof(max_tokens), "%llu",
		         (unsigned long long)d->cfg.model.max_tokens);
		argv[n++] = "--max-tokens";
		argv[n++] = max_tokens;
	}
	if (d->cfg.model.api_key_env[0]) {
		argv[n++] = "--key-env";
		argv[n++] = d->cfg.model.api_key_env;
	}
	if (d->cfg.model.api_key_file[0]) {
		argv[n++] = "--key-file";
		argv[n++] = d->cfg.model.api_key_file;
	}
	for (size_t i = 0; i < g->n_mcp_servers; i++) {
		argv[n++] = "--mcp-server";
		argv[n++] = g->mcp_servers[i];
	}
	if (strcmp(g->engine, "clawbox") != 0 && g->engine[0]) { /* issue 13: another agent */
		argv[n++] = "--engine";
		argv[n++] = g->engine;
		if (g->engine_model[0]) {
			argv[n++] = "--model"; /* the last --model is the one */
			argv[n++] = g->engine_model;
		}
		if (g->engine_allowed[0]) {
			argv[n++] = "--allowed-tools";
			argv[n++] = g->engine_allowed;
		}
		for (size_t i = 0; i < g->n_engine_args; i++) {
			argv[n++] = "--engine-arg";
			argv[n++] = g->engine_args[i];
		}
	}
	for (size_t i = 0; i < g->n_allow; i++) {
		argv[n++] = "--allow";
		argv[n++] = g->allow[i];
	}
	if (d->cfg.hosts_file[0]) { /* tests and air-gapped installs: no DNS servers */
		argv[n++] = "--hosts";
		argv[n++] = d->cfg.hosts_file;
	}
	char ca_dir[PATH_MAX];
	for (size_t i = 0; i < g->n_services; i++) {
		argv[n++] = "--service";
		argv[n++] = g->services[i];
	}
	if (g->n_services > 0) {
		/* The interception CA is the installation's: DATA/ca, outside every sandbox. */
		snprintf(ca_dir, sizeof(ca_dir), "%s/ca", d->cfg.data_dir);
		argv[n++] = "--ca-dir";
		argv[n++] = ca_dir;
	}
	char max_requests[24];
	n += config_egress_argv(&d->cfg, g, max_requests, sizeof(max_requests), argv + n,
	                        "--proxy-max-");
	if (g->memory_bytes) {
		snprintf(mem_size, sizeof(mem_size), "%lluK",
		         (unsigned long long)(g->memory_bytes >> 10));
		argv[n++] = "--memory";
		argv[n++] = mem_size;
	}
	char mount_args[CONFIG_MAX_MOUNTS][PATH_MAX + 300], notes[1024] = "", agent_note[1024] = "";
	for (size_t i = 0; i < g->n_mounts; i++) {
		char real[PATH_MAX], why[PATH_MAX + 128];
		/* Resolved and checked at every run: folders change between runs. */
		int c = mountlist_check(&d->mounts, g->mounts[i].host, g->mounts[i].rw, real, why,
		                        sizeof(why));
		if (c == 0 &&
		    (path_within(real, d->cfg.data_dir) || path_within(d->cfg.data_dir, real) ||
		     path_within(real, d->config_dir) || path_within(d->config_dir, real))) {
			snprintf(why, sizeof(why), "%s: the daemon's own data or configuration",
			         real);
			c = -EPERM;
		}
		(void)store_audit(d->store, group, "mount", c == 0 ? "allow" : "deny",
		                  c == 0 ? real : why);
		if (c < 0) {
			log_warn("[%s] mount %s left out: %s", group, g->mounts[i].host, why);
			mount_refused(notes, sizeof(notes), agent_note, sizeof(agent_note),
			              g->mounts[i].host, g->mounts[i].inside, why);
			continue;
		}
		snprintf(mount_args[i], sizeof(mount_args[i]), "%s:%s:%s", real,
		         g->mounts[i].inside, g->mounts[i].rw ? "rw" : "ro");
		if (g->mounts[i].untrusted)
			taint_start_add(&taint, "mount", "untrusted mount %.100s (%.80s)",
			                g->mounts[i].inside, g->mounts[i].host);
		argv[n++] = "--mount";
		argv[n++] = mount_args[i];
	}
	/* "home": "persist": the sandbox's home is DATA/homes/GROUP, kept between runs (tool
	 * caches, agent state). Whatever a run plants there (~/.bashrc, ~/.profile) the next
	 * run of this group finds: the README says so. Other groups never see it. */
	char home_arg[PATH_MAX + 32], max_time[32];
	if (g->home_persist) {
		char home[PATH_MAX];
		if ((e = group_dir(d, "homes", group, home, sizeof(home))) < 0) {
			log_error("[%s] cannot make its home folder: %s", group, strerror(-e));
			(void)store_finish(d->store, id, group,
			                   "[clawbox: the group's home folder is unusable]", true,
			                   NULL);
			return e;
		}
		snprintf(home_arg, sizeof(home_arg), "%s:/home/user:rw", home); /* SANDBOX_HOME */
		argv[n++] = "--mount";
		argv[n++] = home_arg;
	}
	if (g->max_time) {
		snprintf(max_time, sizeof(max_time), "%llu", (unsigned long long)g->max_time);
		argv[n++] = "--max-time";
		argv[n++] = max_time;
	}
	snprintf(memory, sizeof(memory), "%s/global/AGENTS.md", d->cfg.data_dir);
	struct stat st;
	/* Its own shared memory or none: without the option ask would read the memory file of
	 * whoever started the daemon (~/.config/clawbox/AGENTS.md). */
	argv[n++] = "--global-memory";
	argv[n++] = stat(memory, &st) == 0 && S_ISREG(st.st_mode) ? memory : "";
	char layer[PATH_MAX];
	if (!d->cfg.vm.on && envs_layer(d, group, layer, sizeof(layer)) == 0) {
		argv[n++] = "--layer"; /* the group's packages (envs.c), as built when it starts */
		argv[n++] = layer;
	}
	if (agent_note[0]) {
		argv[n++] = "--note";
		argv[n++] = agent_note;
	}
	for (size_t k = 0; k < taint.n; k++) { /* the proxy's side of the same taint */
		argv[n++] = "--tainted";
		argv[n++] = taint.c[k].cause;
	}
	argv[n++] = "-";
	argv[n] = NULL;

	struct run *r = calloc(1, sizeof(*r));
	if (!r)
		return start_later(d, group, -ENOMEM);
	r->d = d;
	r->file_budget = HOSTACT_FILES_PER_RUN_MAX;
	unsigned char rnd[16];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		free(r);
		return start_later(d, group, -EAGAIN);
	}
	for (size_t k = 0; k < sizeof(rnd); k++)
		snprintf(r->run_id + 2 * k, 3, "%02x", rnd[k]);
	snprintf(r->notes, sizeof(r->notes), "%s", notes);
	if ((e = ipc_open(r)) < 0) {
		ipc_close(r);
		free(r);
		if (transient(e))
			return start_later(d, group, e);
		log_error("[%s] cannot make its host-action socket: %s", group, strerror(-e));
		(void)store_finish(d->store, id, group, "[clawbox: the agent could not be started]",
		                   true, NULL);
		return e;
	}
	snprintf(r->audit_path, sizeof(r->audit_path), "%.*s.egress",
	         (int)(strlen(r->sock_path) - 5), r->sock_path);
	argv[n - 1] = "--audit"; /* replaces the "-" put last above */
	argv[n++] = r->audit_path;
	argv[n++] = "--host-socket";
	argv[n++] = r->sock_path;
	/* The proxy's control channel: approvals of egress, taint (egress.h). */
	int control = -1;
	char control_text[16];
	if ((e = egress_chan_open(d, group, r->run_id, &r->egress, &control)) < 0) {
		ipc_close(r);
		free(r);
		return start_later(d, group, e); /* out of descriptors or memory: for now */
	}
	snprintf(control_text, sizeof(control_text), "%d", control);
	argv[n++] = "--proxy-control-fd";
	argv[n++] = control_text;
	char tokens[24];
	if (tokens_left != UINT64_MAX) { /* what the day's budget leaves for this run */
		snprintf(tokens, sizeof(tokens), "%llu", (unsigned long long)tokens_left);
		argv[n++] = "--max-total-tokens";
		argv[n++] = tokens;
	}
	if (proxy_budget) { /* enforced outside the agent: its proxy's meter (budget.h) */
		argv[n++] = "--proxy-budget";
		argv[n++] = proxy_budget;
	}
	char tools[512];
	const struct group_config *gc = config_group(&d->cfg, group);
	if (gc && gc->policy.tools_set) { /* the offering; host actions are checked here too */
		policy_tools_csv(&gc->policy, tools, sizeof(tools));
		argv[n++] = "--tools";
		argv[n++] = tools;
	}
	argv[n++] = "-";
	argv[n] = NULL;

	int in = prompt_file(text);
	int out[2] = {-1, -1}, err[2] = {-1, -1};
	if (in < 0 || pipe2(out, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    pipe2(err, O_CLOEXEC | O_NONBLOCK) < 0) {
		e = in < 0 ? in : NEG_ERRNO();
		goto fail;
	}
	/* Tracked before the run can ask for anything: an untracked run would read as clean. */
	if ((e = taint_run_begin(d, group, r->run_id, id, &taint)) < 0)
		goto fail;
	char *envp[8 + CONFIG_MAX_SERVICES];
	daemon_environment(d, true, envp, 8);
	add_service_env(g, envp, ARRAY_SIZE(envp));
	pid_t pid = test_spawn_fails() ? -EMFILE
	                               : daemon_spawn_keep(argv, envp, in, out[1], err[1], control);
	if (pid < 0) {
		e = (int)pid;
		goto fail;
	}
	close(control);
	control = -1;
	close(in);
	close(out[1]);
	close(err[1]);

	r->pid = pid;
	struct timespec started;
	clock_gettime(CLOCK_REALTIME, &started);
	r->started_ms = (int64_t)started.tv_sec * 1000 + started.tv_nsec / 1000000;
	r->message = id;
	snprintf(r->group, sizeof(r->group), "%s", group);
	dbuf_init(&r->reply, DAEMON_REPLY_MAX);
	r->out = bufferevent_socket_new(d->base, out[0], BEV_OPT_CLOSE_ON_FREE);
	r->err = bufferevent_socket_new(d->base, err[0], BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(r->out, read_out, NULL, pipe_event, r);
	bufferevent_setcb(r->err, read_err, NULL, pipe_event, r);
	bufferevent_enable(r->out, EV_READ);
	bufferevent_enable(r->err, EV_READ);
	r->next = d->runs;
	d->runs = r;
	d->running++;
	d->runs_started++;
	char idtext[24], pidtext[16];
	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	snprintf(pidtext, sizeof(pidtext), "%d", (int)pid);
	const char *const f[] = {"group", group, "message", idtext, "pid", pidtext, NULL};
	log_fields("info", f, "run started");
	return 0;
fail:
	taint_run_end(d, r->run_id);
	ipc_close(r);
	egress_chan_free(r->egress);
	if (control >= 0)
		close(control);
	free(r);
	if (in >= 0)
		close(in);
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
	}
	if (transient(e))
		return start_later(d, group, e);
	log_error("[%s] cannot start the agent: %s", group, strerror(-e));
	(void)store_finish(d->store, id, group, "[clawbox: the agent could not be started]", true,
	                   NULL);
	return e;
}

/* Runs started in one turn of the loop. Starting one is a store commit and a spawn, a few ms
 * on a loaded machine: 100 at once in one callback held every API request behind them (the
 * /healthz p99 of test-scale.sh was ~500 ms); a few a turn, at the loop's lowest priority,
 * and the API is answered between turns. */
#define STARTS_PER_TURN 2

static void kick_turn(evutil_socket_t fd, short what, void *arg);

/* runner_kick: the starts happen in the loop's next turns, after the requests waiting. */
void
runner_kick(struct daemon *d)
{
	if (d->stopping)
		return;
	if (!d->kick_event) {
		d->kick_event = event_new(d->base, -1, 0, kick_turn, d);
		if (!d->kick_event || event_priority_set(d->kick_event, DAEMON_PRIO_RUNS) < 0) {
			log_error("cannot schedule runs: out of memory");
			return;
		}
	}
	event_active(d->kick_event, EV_TIMEOUT, 0);
}

static void
kick_turn(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct daemon *d = arg;
	unsigned started = 0;
	if (d->stopping)
		return;
	_cleanup_json_ json_t *groups = NULL;
	if (store_queued_groups(d->store, &groups) < 0) {
		log_error("cannot read the queues: %s", store_error(d->store));
		return;
	}
	size_t i;
	json_t *g;
	json_array_foreach(groups, i, g)
	{
		if (d->running >= d->cfg.max_concurrent)
			break;
		const char *group = json_string_value(g);
		if (group_paused(d, group))
			continue; /* its messages wait for `clawbox resume` */
		if (group_running(d, group))
			continue;
		if (started == STARTS_PER_TURN) {
			event_active(d->kick_event, EV_TIMEOUT, 0); /* the rest next turn */
			break;
		}
		started++;
		if (start_run(d, group) == -EAGAIN)
			break; /* the others would not start either; retried in a second */
	}
}

void
runner_reap(struct daemon *d)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (vm_service_reaped(d, pid, status) || envs_reaped(d, pid, status) ||
		    channels_reaped(d, pid, status))
			continue;
		for (struct run *r = d->runs; r; r = r->next) {
			if (r->pid != pid)
				continue;
			r->exited = true;
			r->exit_status =
			    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
			finish(r);
			break;
		}
	}
}

void
runner_stop_all(struct daemon *d)
{
	d->stopping = true;
	if (d->kick_event) {
		event_free(d->kick_event);
		d->kick_event = NULL;
	}
	if (d->retry_timer) {
		event_free(d->retry_timer);
		d->retry_timer = NULL;
	}
	for (struct run *r = d->runs; r; r = r->next)
		kill(r->pid, SIGTERM);
}

json_t *
runner_list(struct daemon *d)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	json_t *arr = json_array();
	for (struct run *r = d->runs; r && arr; r = r->next)
		json_array_append_new(
		    arr,
		    json_pack("{s:s,s:I,s:I,s:I,s:s,s:I,s:b,s:b,s:o}", "group", r->group,
		              "message_id", (json_int_t)r->message, "started_ms",
		              (json_int_t)r->started_ms, "elapsed_s",
		              (json_int_t)((now_ms - r->started_ms) / 1000), "last_tool",
		              r->last_tool, "tool_events",
		              (json_int_t)(r->tools ? json_array_size(r->tools) : 0), "stopping",
		              r->stopped, "tainted", taint_run_tainted(d, r->run_id), "taint",
		              taint_run_causes(d, r->run_id)));
	return arr;
}

/* SIGTERM to the run (ask ends its sandbox and exits at once). */
static int
stop_run(struct run *r)
{
	r->stopped = true;
	return kill(r->pid, SIGTERM) < 0 ? NEG_ERRNO() : 0;
}

int
runner_stop(struct daemon *d, int64_t message)
{
	for (struct run *r = d->runs; r; r = r->next)
		if (r->message == message && !r->exited)
			return stop_run(r);
	return -ENOENT;
}

int
runner_stop_group(struct daemon *d, const char *group)
{
	for (struct run *r = d->runs; r; r = r->next)
		if (strcmp(r->group, group) == 0 && !r->exited)
			return stop_run(r);
	return -ENOENT;
}
