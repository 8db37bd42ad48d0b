/*
 * guest-runs.c: what the guest's init does once the VM is up: it takes run requests from the
 * host over the mux and makes each one a fresh sandbox with the same code as on the host.
 *
 * Each run is a child (a "runner") that calls sandbox_run() and writes its result on a pipe;
 * the init keeps the loop: the command's stdout and stderr (pipes) are mux streams to the
 * host, and with "net" the sandbox's proxy connections (spec.proxy_sock) become streams that
 * the host hands to its egress proxy. The status goes back only after both output streams
 * ended, so the host has all of the output when it learns the status.
 *
 * The host is trusted here (it made this VM); what it asks is still checked for shape.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dbuf.h"
#include "fd-util.h"
#include "guest-runs.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "mux.h"
#include "sandbox.h"

#define RUNS_MAX   16
#define RESULT_MAX 4096

struct run {
	uint32_t id, out_id, err_id;
	pid_t pid;
	int status_fd; /* the runner's result, then EOF; -1 once read */
	int proxy_fd;  /* the sandbox's proxy connections; -1: none (or the sandbox is gone) */
	int host_fd;   /* listening: the host socket's stand-in (-1: none) */
	char host_path[64];
	struct dbuf result;
};

struct guest {
	struct mux mux;
	struct run *runs[RUNS_MAX];
	size_t n_runs;
	uint32_t next_conn; /* odd: the guest's ids */
	bool poweroff;
};

static void
send_json(struct mux *m, uint32_t id, json_t *j)
{
	_cleanup_free_ char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (s)
		(void)mux_send(m, 'J', id, s, strlen(s));
}

/* The host's share tag, mounted once at /mnt/TAG (later runs find it there). Writable as far
 * as qemu lets it be (a read-only export refuses every write); each sandbox's bind of it is
 * read-only unless its mount is :rw. */
static int
mount_share(const char *tag, char *at, size_t size)
{
	if (!*tag || strlen(tag) > 16 || strchr(tag, '/') || tag[0] == '.')
		return -EINVAL;
	snprintf(at, size, "/mnt/%s", tag);
	(void)mkdir(at, 0755);
	struct stat a, b;
	if (stat(at, &a) == 0 && stat("/mnt", &b) == 0 && a.st_dev != b.st_dev)
		return 0;
	if (mount(tag, at, "9p", MS_NOSUID | MS_NODEV,
	          "trans=virtio,version=9p2000.L,msize=262144") < 0)
		return NEG_ERRNO();
	return 0;
}

/* In the runner: the sandbox the request describes. */
static int
spec_from_request(json_t *j, struct sandbox_spec *spec, char ***ret_argv, char *why, size_t size)
{
	json_t *argvj = json_object_get(j, "argv");
	size_t argc = json_array_size(argvj);
	if (argc == 0 || argc > SANDBOX_MAX_ARGS)
		return snprintf(why, size, "the request has no command"), -EINVAL;
	char **argv = calloc(argc + 1, sizeof(char *));
	if (!argv)
		return -ENOMEM;
	for (size_t i = 0; i < argc; i++) {
		argv[i] = (char *)json_string_value(json_array_get(argvj, i));
		if (!argv[i]) {
			free(argv);
			return snprintf(why, size, "the command is not all strings"), -EINVAL;
		}
	}
	*ret_argv = argv;
	spec->argv = argv;
	/* The 9p shares show their files as qemu's sandbox sees them: owned by uid 1000. */
	spec->outside_id = SANDBOX_UID;
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(j, "env"), i, e)
	{
		if (json_is_string(e))
			(void)sandbox_spec_set_env(spec, json_string_value(e));
	}
	/* The host's mounts: one 9p export each, passed on to the sandbox as an ordinary mount
	 * (read-only stays read-only at both layers). */
	json_array_foreach(json_object_get(j, "mounts"), i, e)
	{
		const char *tag = json_get_str(e, "tag"), *target = json_get_str(e, "target"),
		           *sub = json_get_str(e, "sub");
		bool rw = json_is_true(json_object_get(e, "rw"));
		char at[64], arg[2 * SANDBOX_PATH_MAX + 96];
		const char *bad = NULL;
		if (!target)
			return snprintf(why, size, "a mount without a target"), -EINVAL;
		if (json_is_true(json_object_get(e, "socket"))) {
			const char *gp = json_get_str(e, "guest_path");
			snprintf(arg, sizeof(arg), "%s:%s:ro", gp ? gp : "", target);
			if (!gp || sandbox_spec_add_mount(spec, arg, &bad) < 0)
				return snprintf(why, size, "cannot share %.200s", target), -EINVAL;
			continue;
		}
		if (json_get_str(e, "guest")) {
			/* The agent binary: this VM's own clawbox, which is its init. */
			snprintf(arg, sizeof(arg), "/init:%s:ro", target);
			if (sandbox_spec_add_mount(spec, arg, &bad) < 0)
				return snprintf(why, size, "cannot share %.200s", target), -EINVAL;
			continue;
		}
		if (!tag)
			return snprintf(why, size, "a mount without a share"), -EINVAL;
		/* The host resolved sub inside the share; it still may not climb out of it. */
		if (sub && (sub[0] == '/' || strcmp(sub, "..") == 0 ||
		            strncmp(sub, "../", 3) == 0 || strstr(sub, "/../") ||
		            (strlen(sub) >= 3 && strcmp(sub + strlen(sub) - 3, "/..") == 0)))
			return snprintf(why, size, "a mount that leaves its share"), -EINVAL;
		int r = mount_share(tag, at, sizeof(at));
		if (r < 0)
			return snprintf(why, size, "cannot mount the share %.16s: %s", tag,
			                strerror(-r)),
			       r;
		snprintf(arg, sizeof(arg), "%s%s%s:%s:%s", at, sub && *sub ? "/" : "",
		         sub ? sub : "", target, rw ? "rw" : "ro");
		if (sandbox_spec_add_mount(spec, arg, &bad) < 0)
			return snprintf(why, size, "cannot share %.200s: %s", target,
			                bad ? bad : "too many mounts"),
			       -EINVAL;
	}
	if (json_get_str(j, "workdir"))
		spec->workdir = strdup(json_get_str(j, "workdir"));
	if (json_get_u64(j, "memory"))
		spec->memory_bytes = json_get_u64(j, "memory");
	if (json_get_u64(j, "pids"))
		spec->pids_max = json_get_u64(j, "pids");
	spec->cpus_milli = json_get_u64(j, "cpus_milli");
	spec->timeout_ms = json_get_u64(j, "timeout_ms");
	return 0;
}

/* The runner: fds 0-2 are the command's stdio, 3 the result pipe, 4 (if net) the proxy
 * socket; nothing else of the init's. */
static _noreturn_ void
runner(json_t *j, bool net)
{
	struct sandbox_spec spec;
	struct sandbox_result res = {.status = SANDBOX_EXIT_SETUP};
	char **argv = NULL;
	signal(SIGPIPE, SIG_DFL);
	sandbox_spec_init(&spec);
	if (spec_from_request(j, &spec, &argv, res.message, sizeof(res.message)) == 0) {
		if (net)
			spec.proxy_sock = 4;
		(void)sandbox_run(&spec, &res);
	}
	_cleanup_json_ json_t *ans =
	    json_pack("{s:i,s:s}", "status", res.status, "message", res.message);
	_cleanup_free_ char *line = ans ? json_dumps(ans, JSON_COMPACT) : NULL;
	if (line)
		(void)write_all(3, line, strlen(line));
	_exit(0);
}

static void
refuse(struct guest *g, uint32_t id, const char *why)
{
	_cleanup_json_ json_t *j =
	    json_pack("{s:i,s:s}", "status", SANDBOX_EXIT_SETUP, "message", why);
	send_json(&g->mux, id, j);
}

/* A request's socket mount ({"socket": true}): a listening socket here, at host_path, that the
 * sandbox gets in its place; its connections go to the host's ('N' with 'h'). The mount entry
 * learns the path as "guest_path" for the runner. -ENOENT: the request has none. */
static int
host_stand_in(json_t *j, uint32_t id, char *path, size_t size)
{
	size_t i;
	json_t *m, *found = NULL;
	json_array_foreach(json_object_get(j, "mounts"), i, m)
	{
		if (!json_is_true(json_object_get(m, "socket")))
			continue;
		if (found)
			return -EINVAL;
		found = m;
	}
	if (!found)
		return -ENOENT;
	char dir[48];
	snprintf(dir, sizeof(dir), "/run/host-sockets/%u", id);
	(void)mkdir("/run/host-sockets", 0711);
	if (mkdir(dir, 0711) < 0 && errno != EEXIST)
		return -EINVAL;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s", dir);
	snprintf(path, size, "%s", sa.sun_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	(void)unlink(sa.sun_path);
	/* The sandbox's user is uid 1000 here (spec.outside_id): it has to connect to it. */
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0 ||
	    chown(sa.sun_path, SANDBOX_UID, SANDBOX_UID) < 0 || chmod(sa.sun_path, 0600) < 0) {
		if (fd >= 0)
			close(fd);
		(void)unlink(sa.sun_path);
		(void)rmdir(dir);
		return -EINVAL;
	}
	json_object_set_new(found, "guest_path", json_string(sa.sun_path));
	return fd;
}

static void
drop_stand_in(int fd, const char *path)
{
	if (fd < 0)
		return;
	close(fd);
	(void)unlink(path);
	char dir[64];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		(void)rmdir(dir);
	}
}

/* The sandbox connected to the stand-in: relayed to the host's socket. */
static void
take_host_connection(struct guest *g, struct run *r)
{
	int c = accept4(r->host_fd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return;
	uint32_t id = g->next_conn;
	g->next_conn += 2;
	char payload[5];
	uint32_t run = htole32(r->id);
	memcpy(payload, &run, 4);
	payload[4] = 'h';
	if (mux_send(&g->mux, 'N', id, payload, sizeof(payload)) < 0) {
		close(c);
		return;
	}
	if (!mux_add(&g->mux, id, c, c, true))
		(void)mux_send(&g->mux, 'X', id, NULL, 0);
}

static void
start_run(struct guest *g, uint32_t id, json_t *j)
{
	uint32_t out_id = (uint32_t)json_get_u64(j, "stdout"),
	         err_id = (uint32_t)json_get_u64(j, "stderr"),
	         in_id = (uint32_t)json_get_u64(j, "stdin"); /* 0: nothing to read */
	bool net = json_is_true(json_object_get(j, "net"));
	if (g->n_runs >= RUNS_MAX)
		return refuse(g, id, "the VM runs as many sandboxes as it can");
	for (size_t i = 0; i < g->n_runs; i++)
		if (g->runs[i]->id == id)
			return refuse(g, id, "that run id is in use");
	if (out_id % 2 || err_id % 2 || in_id % 2 || !out_id || !err_id || out_id == err_id ||
	    in_id == out_id || in_id == err_id || mux_find(&g->mux, out_id) ||
	    mux_find(&g->mux, err_id) || (in_id && mux_find(&g->mux, in_id)))
		return refuse(g, id, "bad stream ids");

	char host_path[64] = "";
	int host_fd = host_stand_in(j, id, host_path, sizeof(host_path));
	if (host_fd == -EINVAL)
		return refuse(g, id, "cannot relay the run's unix socket");
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, st[2] = {-1, -1},
	    px[2] = {-1, -1};
	bool ok = pipe2(out, O_CLOEXEC) == 0 && pipe2(err, O_CLOEXEC) == 0 &&
	          pipe2(st, O_CLOEXEC) == 0 && (!in_id || pipe2(in, O_CLOEXEC) == 0) &&
	          (!net || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, px) == 0);
	struct run *r = ok ? calloc(1, sizeof(*r)) : NULL;
	pid_t pid = r ? fork() : -1;
	if (pid == 0) {
		/* Up high first, so that no dup2() below lands on a descriptor still needed. */
		int keep[5] = {in_id ? in[0] : open("/dev/null", O_RDONLY | O_CLOEXEC), out[1],
		               err[1], st[1], px[1]};
		for (int i = 0; i < 5; i++)
			if (keep[i] >= 0)
				keep[i] = fcntl(keep[i], F_DUPFD_CLOEXEC, 100);
		for (int i = 0; i < 5; i++)
			if (keep[i] >= 0)
				(void)dup2(keep[i], i);
		/* The result pipe and the proxy socket are the runner's, not the command's. */
		(void)fcntl(3, F_SETFD, FD_CLOEXEC);
		(void)fcntl(4, F_SETFD, FD_CLOEXEC);
		(void)close_range(5, ~0U, 0);
		runner(j, net);
	}
	int fds[] = {in[0], out[1], err[1], st[1], px[1]};
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (pid < 0) {
		int more[] = {in[1], out[0], err[0], st[0], px[0]};
		for (size_t i = 0; i < ARRAY_SIZE(more); i++)
			if (more[i] >= 0)
				close(more[i]);
		free(r);
		drop_stand_in(host_fd, host_path);
		return refuse(g, id, "cannot start the run in the VM");
	}
	r->id = id;
	r->out_id = out_id;
	r->err_id = err_id;
	r->pid = pid;
	r->status_fd = st[0];
	r->proxy_fd = px[0];
	r->host_fd = host_fd;
	snprintf(r->host_path, sizeof(r->host_path), "%s", host_path);
	dbuf_init(&r->result, RESULT_MAX);
	if (in_id)
		(void)mux_add(&g->mux, in_id, -1, in[1], true);
	(void)mux_add(&g->mux, out_id, out[0], -1, true);
	(void)mux_add(&g->mux, err_id, err[0], -1, true);
	g->runs[g->n_runs++] = r;
}

static int
on_frame(struct mux *m, uint8_t type, uint32_t id, const char *data, size_t len)
{
	struct guest *g = m->user;
	if (type != 'J')
		return 0;
	_cleanup_json_ json_t *j = json_loadb(data, len, 0, NULL);
	if (json_is_true(json_object_get(j, "poweroff"))) {
		g->poweroff = true;
	} else if (json_is_integer(json_object_get(j, "cancel"))) {
		/* The runner's sandbox_run() passes SIGTERM on to the command; its status follows.
		 */
		uint32_t run = (uint32_t)json_integer_value(json_object_get(j, "cancel"));
		for (size_t i = 0; i < g->n_runs; i++)
			if (g->runs[i]->id == run && g->runs[i]->status_fd >= 0)
				(void)kill(g->runs[i]->pid, SIGTERM);
	} else if (json_object_get(j, "argv"))
		start_run(g, id, j);
	return 0;
}

/* The sandbox's new proxy connections: each a stream, announced with 'N' first. */
static void
take_connections(struct guest *g, struct run *r)
{
	int fds[SEND_FDS_MAX];
	size_t n = 0;
	char tag;
	int rc = recv_fds(r->proxy_fd, &tag, fds, SEND_FDS_MAX, &n);
	if (rc == -EAGAIN || rc == -EINTR)
		return;
	if (rc < 0) {
		close(r->proxy_fd);
		r->proxy_fd = -1;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t id = g->next_conn;
		g->next_conn += 2;
		uint32_t run = htole32(r->id);
		if (tag != 'c' || mux_send(&g->mux, 'N', id, &run, sizeof(run)) < 0) {
			close(fds[i]);
			continue;
		}
		/* Past MUX_CONNS_MAX: closed here (the client sees it fail), gone on the host. */
		if (!mux_add(&g->mux, id, fds[i], fds[i], true))
			(void)mux_send(&g->mux, 'X', id, NULL, 0);
	}
}

/* A run whose runner reported and whose output streams ended: its status goes to the host. */
static bool
finish_run(struct guest *g, struct run *r)
{
	if (r->status_fd >= 0 || mux_find(&g->mux, r->out_id) || mux_find(&g->mux, r->err_id))
		return false;
	_cleanup_json_ json_t *res =
	    json_loadb(r->result.p ? r->result.p : "", r->result.len, 0, NULL);
	if (!json_is_integer(json_object_get(res, "status")))
		refuse(g, r->id, "the run in the VM ended without a result");
	else
		send_json(&g->mux, r->id, res);
	if (r->proxy_fd >= 0)
		close(r->proxy_fd);
	drop_stand_in(r->host_fd, r->host_path);
	dbuf_done(&r->result);
	return true;
}

static void
read_result(struct run *r)
{
	char buf[1024];
	ssize_t n = read(r->status_fd, buf, sizeof(buf));
	if (n > 0) {
		(void)dbuf_append_capped(&r->result, buf, (size_t)n);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	close(r->status_fd);
	r->status_fd = -1;
}

int
guest_serve(int port, const char *kernel_release)
{
	struct guest g = {.next_conn = 1};
	mux_init(&g.mux, port, on_frame, &g);
	signal(SIGPIPE, SIG_IGN);
	_cleanup_json_ json_t *ready = json_pack("{s:b,s:s}", "ready", 1, "kernel", kernel_release);
	send_json(&g.mux, 0, ready);
	while (!g.mux.broken && !(g.poweroff && g.n_runs == 0)) {
		struct pollfd p[MUX_CONNS_MAX + 1 + 3 * RUNS_MAX];
		size_t nm = mux_pollfds(&g.mux, p, MUX_CONNS_MAX + 1), n = nm;
		for (size_t i = 0; i < g.n_runs; i++) {
			struct run *r = g.runs[i];
			p[n++] = (struct pollfd){.fd = r->status_fd, .events = POLLIN};
			p[n++] = (struct pollfd){.fd = r->proxy_fd, .events = POLLIN};
			p[n++] = (struct pollfd){.fd = r->host_fd, .events = POLLIN};
		}
		/* Orphans of the sandboxes end up with us, pid 1: a second is soon enough. */
		int k = poll(p, n, 1000);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (k < 0)
			continue;
		size_t n_before = g.n_runs;
		for (size_t i = 0; i < n_before; i++) {
			struct run *r = g.runs[i];
			if (r->status_fd >= 0 && p[nm + 3 * i].revents)
				read_result(r);
			if (r->proxy_fd >= 0 && p[nm + 3 * i + 1].revents)
				take_connections(&g, r);
			if (r->host_fd >= 0 && p[nm + 3 * i + 2].revents)
				take_host_connection(&g, r);
		}
		(void)mux_dispatch(&g.mux, p, nm);
		for (size_t i = 0; i < g.n_runs;) {
			if (finish_run(&g, g.runs[i])) {
				free(g.runs[i]);
				g.runs[i] = g.runs[--g.n_runs];
			} else {
				i++;
			}
		}
		(void)mux_flush(&g.mux, 0);
	}
	(void)mux_flush(&g.mux, 2000);
	int r = g.poweroff ? 0 : g.mux.broken;
	mux_done(&g.mux);
	return r;
}
