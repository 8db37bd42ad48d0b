/*
 * launch.c: the host side of `clawbox run`. Resolves and checks what the spec names, creates
 * the cgroups, starts the child in its new namespaces with clone3(), writes its uid/gid maps
 * and lets it go, then waits in one poll() loop for: the child's exit (pidfd), signals to pass
 * on (signalfd), the deadline (timerfd) and failure reports (a pipe).
 *
 * Teardown belongs to a small watchdog process forked before the child: it removes the
 * cgroups when the launcher says it is done, and also when the launcher dies without saying so
 * (SIGKILL). The sandbox itself dies with the launcher through PR_SET_PDEATHSIG on its pid 1.
 * So after `clawbox run` returns, or is killed, nothing of the sandbox is left.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <linux/sched.h>

#include "fd-util.h"
#include "idmap.h"
#include "internal.h"
#include "log.h"
#include "macro.h"

static const int forwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH};

/* ---- the caller's argv/environment, wiped in the sandbox init ---- */

static char *mem_start, *mem_end;

void
sandbox_note_process_memory(int argc, char **argv)
{
	extern char **environ;
	if (argc < 1)
		return;
	mem_start = argv[0];
	mem_end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;
	for (char **e = environ; e && *e; e++)
		if (*e + strlen(*e) + 1 > mem_end)
			mem_end = *e + strlen(*e) + 1;
}

static void
scrub_process_memory(void)
{
	extern char **environ;
	/* The kernel shows this range as /proc/PID/cmdline and environ. In the child it is
	 * our own copy; zeroing it leaves nothing of the caller there. */
	for (char **e = environ; e && *e; e++)
		memset(*e, 0, strlen(*e));
	environ = NULL;
	if (mem_start && mem_end > mem_start) {
		memset(mem_start, 0, (size_t)(mem_end - mem_start));
		memcpy(mem_start, "clawbox-init", (size_t)(mem_end - mem_start) > 13 ? 13 : 0);
	}
	(void)prctl(PR_SET_NAME, "clawbox-init");
}

/* ---- resolution on the host ---- */

static int
resolve_source(const char *given, bool want_dir, struct resolved_source *ret, char *why,
               size_t why_size)
{
	char *real = realpath(given, NULL);
	if (!real) {
		int r = NEG_ERRNO();
		snprintf(why, why_size, "mount source %s: %s", given, strerror(-r));
		return r;
	}
	struct stat st;
	int r = 0;
	if (stat(real, &st) < 0) {
		r = NEG_ERRNO();
		snprintf(why, why_size, "mount source %s: %s", given, strerror(-r));
	} else if (!S_ISDIR(st.st_mode) &&
	           (want_dir || !(S_ISREG(st.st_mode) || S_ISSOCK(st.st_mode)))) {
		/* A unix socket may be shared too: the daemon's host-action socket is. */
		r = want_dir ? -ENOTDIR : -EINVAL;
		snprintf(why, why_size, "%s %s: %s", want_dir ? "--rootfs" : "mount source", given,
		         want_dir ? "not a folder" : "not a folder, regular file or socket");
	} else {
		ret->path = TAKE_PTR(real);
		ret->dev = st.st_dev;
		ret->ino = st.st_ino;
		ret->is_dir = S_ISDIR(st.st_mode);
		ret->fd = -1;
		ret->tree_fd = -1;
	}
	free(real);
	return r;
}

/* As root, each writable mount becomes an idmapped copy: the folder owner's files are the
 * sandbox user's inside, and what the sandbox creates there belongs to the owner on the host.
 * Without it a root-owned folder is read-only to the sandbox (it runs as an unprivileged uid
 * outside) and git sees every mounted repository as someone else's. Nothing more is granted
 * than the mount already gave: a writable mount lets the sandbox act as the owner of the tree
 * anyway (it could chmod the owner's files), and the mapping has only that one uid and gid, so
 * no file can be created as anyone else. Read-only mounts stay plain binds: there the owner's
 * private files stay unreadable. Where the file system cannot idmap, the plain bind is kept and
 * one line says so. */
static void
idmap_writable_mounts(struct sandbox_ctx *ctx)
{
	const struct sandbox_spec *spec = ctx->spec;
	struct {
		uid_t uid;
		gid_t gid;
		int fd;
	} ns[SANDBOX_MAX_MOUNTS];
	size_t n_ns = 0;

	for (size_t i = 0; i < spec->n_mounts; i++) {
		struct resolved_source *s = &ctx->sources[i];
		if (!spec->mounts[i].writable)
			continue;
		struct open_how how = {
		    .flags = O_PATH | O_CLOEXEC,
		    .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
		};
		_cleanup_close_ int fd =
		    (int)syscall(SYS_openat2, AT_FDCWD, s->path, &how, sizeof(how));
		struct stat st;
		/* Checked again by the child for the plain bind; here the tree is made from
		 * this very inode, so it cannot be swapped afterwards. */
		if (fd < 0 || fstat(fd, &st) < 0 || st.st_dev != s->dev || st.st_ino != s->ino)
			continue; /* the child reports it */
		if (st.st_uid == ctx->outside_uid)
			continue; /* already the sandbox's: nothing to map */
		int r = 0, userns = -1;
		for (size_t j = 0; j < n_ns && userns < 0; j++)
			if (ns[j].uid == st.st_uid && ns[j].gid == st.st_gid)
				userns = ns[j].fd;
		if (userns < 0) {
			r = idmap_userns_open(st.st_uid, st.st_gid, ctx->outside_uid,
			                      ctx->outside_gid);
			if (r >= 0) {
				ns[n_ns].uid = st.st_uid;
				ns[n_ns].gid = st.st_gid;
				ns[n_ns++].fd = userns = r;
			}
		}
		if (r >= 0)
			r = idmap_clone_tree(fd, userns, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
		if (r >= 0) {
			s->tree_fd = r;
			continue;
		}
		if (spec->warn) {
			char msg[SANDBOX_MSG_MAX];
			snprintf(msg, sizeof(msg),
			         "%s: %s, so the sandbox writes there as uid %u: chown -R %u %s to "
			         "let it",
			         s->path,
			         r == -EINVAL || r == -EOPNOTSUPP
			             ? "its file system (or one mounted in it) cannot map its "
			               "owner to the sandbox's user"
			             : strerror(-r),
			         (unsigned)ctx->outside_uid, (unsigned)ctx->outside_uid, s->path);
			spec->warn(msg);
		}
	}
	for (size_t j = 0; j < n_ns; j++)
		close(ns[j].fd);
}

/* ---- the watchdog: cgroup creation in parallel, teardown that survives the launcher ---- */

struct watchdog {
	pid_t pid;
	int done_fd;   /* ours to close: EOF tells the watchdog to tear down */
	int result_fd; /* the watchdog's cgroup_make() result, an int32 */
};

static int
watchdog_start(struct cgroup *cg, struct watchdog *ret)
{
	int done[2], result[2];
	if (pipe2(done, O_CLOEXEC) < 0)
		return NEG_ERRNO();
	if (pipe2(result, O_CLOEXEC) < 0) {
		int r = NEG_ERRNO();
		close(done[0]);
		close(done[1]);
		return r;
	}
	pid_t pid = fork();
	if (pid < 0) {
		int r = NEG_ERRNO();
		close(done[0]);
		close(done[1]);
		close(result[0]);
		close(result[1]);
		return r;
	}
	if (pid == 0) {
		/* Terminal signals are meant for the launcher, which forwards them; we only
		 * wait for it to finish or die. */
		signal(SIGINT, SIG_IGN);
		signal(SIGQUIT, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* Nothing of the launcher's: above all not the sync socket, whose hang-up tells
		 * the sandbox that the launcher died. */
		int keep_lo = done[0] < result[1] ? done[0] : result[1];
		int keep_hi = done[0] < result[1] ? result[1] : done[0];
		(void)close_range(0, (unsigned)keep_lo - 1, 0);
		(void)close_range((unsigned)keep_lo + 1, (unsigned)keep_hi - 1, 0);
		(void)close_range((unsigned)keep_hi + 1, ~0U, 0);

		/* Made here, while the sandbox builds its file system: on cgroup v1 creating a
		 * memory cgroup costs about as much as creating all the namespaces. */
		int32_t r = cgroup_make(cg);
		if (r < 0)
			_exit(0); /* cgroup_make() removed what it had made */
		/* The launcher may have died since it forked us (SIGKILL): then nobody reads
		 * the result, and nobody else would remove what we just made. */
		if (write_all(result[1], &r, sizeof(r)) < 0) {
			(void)cgroup_destroy(cg);
			_exit(0);
		}
		close(result[1]);
		char c;
		while (read(done[0], &c, 1) < 0 && errno == EINTR)
			;
		(void)cgroup_destroy(cg);
		_exit(0);
	}
	close(done[0]);
	close(result[1]);
	ret->pid = pid;
	ret->done_fd = done[1];
	ret->result_fd = result[0];
	return 0;
}

/* The watchdog's cgroup_make() result: 0 or -errno. */
static int
watchdog_result(struct watchdog *w)
{
	int32_t r = 0;
	ssize_t n = read_full(w->result_fd, &r, sizeof(r));
	if (n != (ssize_t)sizeof(r))
		return n < 0 ? (int)n : -EPIPE;
	return r;
}

/* Normal teardown, done here rather than by the watchdog (which would cost two more wake-ups
 * on the way out): the sandbox has exited, so remove the cgroups, then stop the watchdog,
 * whose only job left was the case where we die first. When this returns nothing is left. */
static void
watchdog_finish(struct watchdog *w, struct cgroup *cg)
{
	if (w->pid <= 0)
		return;
	/* Its result first: the cgroups may still be being made if we are leaving early. */
	(void)watchdog_result(w);
	for (int c = 0; c < _CG_MAX; c++)
		cg->used[c] = cg->wanted[c];
	(void)cgroup_destroy(cg);
	log_debug("launcher: cgroups removed");
	/* Only now: SIGKILLed halfway through the removal, we leave the rest to it (stopping
	 * it first once left a cgroup behind whenever our SIGKILL fell in between). */
	(void)kill(w->pid, SIGKILL);
	close(w->done_fd);
	close(w->result_fd);
	while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR)
		;
	w->pid = -1;
	log_debug("launcher: watchdog stopped");
}

/* ---- the egress proxy ---- */

/* Starts spec->proxy_argv with sock as its fd 3 (and control, if >= 0, as its fd 4). It dies
 * with us (SIGTERM), and we stop it when the sandbox has exited. */
pid_t
sandbox_proxy_start(char *const *argv, int sock, int control)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return NEG_ERRNO();
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
			_exit(1);
		/* Both moved above 4 first, so that neither lands on the other; dup2() clears
		 * close-on-exec on the copies. */
		int s = fcntl(sock, F_DUPFD_CLOEXEC, 5);
		int k = control >= 0 ? fcntl(control, F_DUPFD_CLOEXEC, 5) : -1;
		if (s < 0 || (control >= 0 && k < 0) || dup2(s, 3) < 0 ||
		    (k >= 0 && dup2(k, 4) < 0))
			_exit(1);
		(void)close_range(k >= 0 ? 5 : 4, ~0U, 0);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

void
sandbox_proxy_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	/* SIGTERM lets it finish its audit lines; it has two seconds. Its exit is waited for on
	 * a pidfd, not polled: a sleep's granularity would be paid by every invocation. */
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	(void)kill(pid, SIGTERM);
	if (pidfd >= 0) {
		struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
		int n;
		while ((n = poll(&pfd, 1, 2000)) < 0 && errno == EINTR)
			;
		close(pidfd);
		if (n > 0 && waitpid(pid, NULL, 0) == pid)
			return;
	} else {
		for (int i = 0; i < 2000; i++) {
			if (waitpid(pid, NULL, WNOHANG) == pid)
				return;
			struct timespec ts = {0, 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	(void)kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/* ---- the child ---- */

static int
write_proc_file(pid_t pid, const char *name, const char *content)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	return write_file_at(AT_FDCWD, path, content, 0);
}

static int
write_id_maps(const struct sandbox_ctx *ctx, pid_t pid)
{
	char map[64];
	int r;

	/* Unprivileged, gid_map may only be written after setgroups is denied. As root we keep
	 * setgroups so that the child can drop root's supplementary groups. */
	if (!ctx->as_root) {
		r = write_proc_file(pid, "setgroups", "deny");
		if (r < 0)
			return r;
	}
	snprintf(map, sizeof(map), "%d %u 1\n", SANDBOX_UID, (unsigned)ctx->outside_uid);
	r = write_proc_file(pid, "uid_map", map);
	if (r < 0)
		return r;
	snprintf(map, sizeof(map), "%d %u 1\n", SANDBOX_UID, (unsigned)ctx->outside_gid);
	return write_proc_file(pid, "gid_map", map);
}

static pid_t
clone_child(struct sandbox_ctx *ctx, int *ret_pidfd)
{
	int pidfd = -1;
	struct clone_args args = {
	    .flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS |
	             CLONE_NEWIPC | CLONE_PIDFD,
	    .pidfd = (uint64_t)(uintptr_t)&pidfd,
	    .exit_signal = SIGCHLD,
	};
	long pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid < 0)
		return NEG_ERRNO();
	if (pid == 0) {
		scrub_process_memory();
		sandbox_child_main(ctx);
	}
	*ret_pidfd = pidfd;
	return (pid_t)pid;
}

/* ---- waiting ---- */

struct waiter {
	int pidfd, sigfd, timerfd, reportfd;
	bool timed_out;
	bool command_started; /* the report pipe hung up: the command exec'd (or exited) */
	int aborted_by;       /* a terminating signal that ended the set-up */
	bool have_report;
	struct sandbox_report report;
};

static void
read_report(struct waiter *w)
{
	struct sandbox_report rep;
	ssize_t n = read(w->reportfd, &rep, sizeof(rep));
	if (n == (ssize_t)sizeof(rep) && !w->have_report) {
		rep.msg[sizeof(rep.msg) - 1] = '\0';
		w->report = rep;
		w->have_report = true;
	}
}

static int
wait_child(struct waiter *w, pid_t pid, int *ret_status)
{
	for (;;) {
		struct pollfd fds[4] = {
		    {.fd = w->pidfd, .events = POLLIN},
		    {.fd = w->sigfd, .events = POLLIN},
		    {.fd = w->timerfd, .events = POLLIN},
		    {.fd = w->reportfd, .events = POLLIN},
		};
		if (poll(fds, ARRAY_SIZE(fds), -1) < 0) {
			if (errno == EINTR)
				continue;
			return NEG_ERRNO();
		}
		if (fds[3].revents & POLLIN)
			read_report(w);
		if (fds[3].revents & (POLLHUP | POLLERR)) {
			w->reportfd = -1; /* poll ignores negative fds */
			w->command_started = true;
		}
		if (fds[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(w->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				int sig = (int)si.ssi_signo;
				bool terminating = sig == SIGINT || sig == SIGTERM ||
				                   sig == SIGHUP || sig == SIGQUIT;
				/* Before the command runs there is nobody to pass it to: init
				 * ignores it (a pid-namespace init has no handler yet), so a set-up
				 * that is stuck would never end. End it instead. */
				if (terminating && !w->command_started) {
					w->aborted_by = sig;
					sig = SIGKILL;
				}
				(void)syscall(SYS_pidfd_send_signal, w->pidfd, sig, NULL, 0);
			}
		}
		if (fds[2].revents & POLLIN) {
			uint64_t ticks;
			if (read(w->timerfd, &ticks, sizeof(ticks)) == (ssize_t)sizeof(ticks)) {
				w->timed_out = true;
				(void)syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
			}
		}
		if (fds[0].revents & POLLIN) {
			siginfo_t si = {0};
			if (waitid(P_PIDFD, (id_t)w->pidfd, &si, WEXITED) < 0)
				return NEG_ERRNO();
			(void)pid;
			if (w->reportfd >= 0)
				read_report(w); /* written before the exit, so it is there now */
			*ret_status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
			return 0;
		}
	}
}

/* ---- the whole run ---- */

/* 33554432 -> "32M": the unit the limit was most likely given in (as --memory takes it). */
static void
format_mem_limit(uint64_t bytes, char *buf, size_t size)
{
	static const char units[] = "KMGT";
	int u = -1;
	while (u < 3 && bytes >= 1024 && bytes % 1024 == 0) {
		bytes /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, size, "%" PRIu64, bytes);
	else
		snprintf(buf, size, "%" PRIu64 "%c", bytes, units[u]);
}

static void
argv_free(char **argv)
{
	for (char **a = argv; a && *a; a++)
		free(*a);
	free(argv);
}

static char **
argv_copy(char *const *argv)
{
	size_t n = 0;
	while (argv[n])
		n++;
	char **copy = calloc(n + 1, sizeof(char *));
	if (!copy)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		copy[i] = strdup(argv[i]);
		if (!copy[i]) {
			argv_free(copy);
			return NULL;
		}
	}
	return copy;
}

/* Where the limits come from: a cgroup made by the watchdog, or (a normal user without a
 * delegated cgroup) rlimits. Returns 0 with *use_cgroup set, or -errno when the sandbox
 * must not start (root without working cgroups: limits are not optional there). */
static int
choose_limits(struct sandbox_ctx *ctx, int plan_result, bool *use_cgroup,
              struct sandbox_result *ret)
{
	const struct sandbox_spec *spec = ctx->spec;

	*use_cgroup = plan_result >= 0;
	if (plan_result >= 0)
		return 0;
	if (ctx->as_root) {
		snprintf(ret->message, sizeof(ret->message), "cannot create cgroup (%s): %s",
		         cgroup_mode_name(cgroup_detect()), strerror(-plan_result));
		return plan_result;
	}
	ctx->rlimit_fallback = true;
	if (spec->warn) {
		char msg[SANDBOX_MSG_MAX];
		snprintf(msg, sizeof(msg),
		         "no delegated cgroup (%s); limiting memory and processes with rlimits "
		         "instead, and CPU not at all",
		         strerror(-plan_result));
		spec->warn(msg);
	}
	return 0;
}

int
sandbox_run(const struct sandbox_spec *spec, struct sandbox_result *ret)
{
	struct sandbox_ctx ctx = {
	    .spec = spec, .sync_fd = -1, .report_fd = -1, .proxy_fd = -1, .proxy_listen_fd = -1,
	    .proxy_http_fd = -1, .proxy_https_fd = -1};
	_cleanup_close_ int proxy_sock = -1;
	pid_t proxy_pid = -1;
	struct watchdog wd = {.pid = -1, .done_fd = -1, .result_fd = -1};
	_cleanup_close_ int sync_w = -1, report_r = -1, pidfd = -1, sigfd = -1, timerfd = -1;
	sigset_t mask, oldmask;
	bool mask_changed = false, pipe_changed = false, use_cgroup = false;
	pid_t pid = -1;
	int r;

	memset(ret, 0, sizeof(*ret));
	ret->status = SANDBOX_EXIT_SETUP;
	ctx.argv = argv_copy(spec->argv);
	if (!ctx.argv) {
		snprintf(ret->message, sizeof(ret->message), "out of memory");
		return -ENOMEM;
	}

	ctx.as_root = geteuid() == 0;
	uid_t host_id = spec->outside_id ? spec->outside_id : CLAWBOX_SANDBOX_HOST_ID;
	ctx.outside_uid = ctx.as_root ? host_id : geteuid();
	ctx.outside_gid = ctx.as_root ? host_id : getegid();

	for (size_t i = 0; i < SANDBOX_MAX_MOUNTS; i++)
		ctx.sources[i].tree_fd = -1;
	for (size_t i = 0; i < spec->n_mounts; i++) {
		r = resolve_source(spec->mounts[i].source, false, &ctx.sources[i], ret->message,
		                   sizeof(ret->message));
		if (r < 0)
			goto out;
	}
	if (spec->rootfs) {
		r = resolve_source(spec->rootfs, true, &ctx.rootfs, ret->message,
		                   sizeof(ret->message));
		if (r < 0)
			goto out;
	}
	if (spec->layer) {
		r = resolve_source(spec->layer, true, &ctx.layer, ret->message,
		                   sizeof(ret->message));
		if (r < 0)
			goto out;
	}

	if (ctx.as_root)
		idmap_writable_mounts(&ctx);

	char cg_name[64];
	snprintf(cg_name, sizeof(cg_name), "clawbox-run-%d", (int)getpid());
	r = choose_limits(
	    &ctx,
	    cgroup_plan(&ctx.cg, cg_name, spec->memory_bytes, spec->pids_max, spec->cpus_milli),
	    &use_cgroup, ret);
	if (r < 0)
		goto out;
	if (log_debug_enabled()) {
		int abi = landlock_abi();
		log_debug("landlock ABI %d%s", abi,
		          abi > 0 ? "" : " (none: the kernel has no landlock, going on)");
	}

	int sp[2], rp[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		r = NEG_ERRNO();
		goto out;
	}
	ctx.sync_fd = sp[0];
	sync_w = sp[1];
	if (pipe2(rp, O_CLOEXEC) < 0) {
		r = NEG_ERRNO();
		close(ctx.sync_fd);
		goto out;
	}
	report_r = rp[0];
	ctx.report_fd = rp[1];
	if (spec->proxy_sock >= 0) {
		ctx.proxy_fd = fcntl(spec->proxy_sock, F_DUPFD_CLOEXEC, 3);
		if (ctx.proxy_fd < 0) {
			r = NEG_ERRNO();
			close(ctx.sync_fd);
			close(ctx.report_fd);
			goto out;
		}
	} else if (spec->proxy_argv) {
		int pp[2];
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pp) < 0) {
			r = NEG_ERRNO();
			close(ctx.sync_fd);
			close(ctx.report_fd);
			snprintf(ret->message, sizeof(ret->message), "proxy socket: %s",
			         strerror(-r));
			goto out;
		}
		ctx.proxy_fd = pp[0];
		proxy_sock = pp[1];
	}

	/* A child that dies early closes its pipes: our writes then fail with EPIPE rather than
	 * kill us (the command gets default dispositions back before its exec). */
	struct sigaction ign = {.sa_handler = SIG_IGN}, old_pipe;
	sigaction(SIGPIPE, &ign, &old_pipe);
	pipe_changed = true;

	/* Block the signals we pass on before the child exists, so none slips by. */
	sigemptyset(&mask);
	for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
		sigaddset(&mask, forwarded[i]);
	sigprocmask(SIG_BLOCK, &mask, &oldmask);
	mask_changed = true;
	sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
	timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	if (sigfd < 0 || timerfd < 0) {
		r = NEG_ERRNO();
		close(ctx.sync_fd);
		close(ctx.report_fd);
		goto out;
	}

	pid = clone_child(&ctx, &pidfd);
	for (size_t i = 0; i < spec->n_mounts; i++)
		if (ctx.sources[i].tree_fd >= 0)
			close(TAKE_FD(ctx.sources[i].tree_fd)); /* the child has its copies */
	close(ctx.sync_fd);
	close(ctx.report_fd);
	if (ctx.proxy_fd >= 0)
		close(ctx.proxy_fd);
	if (pid < 0) {
		r = (int)pid;
		snprintf(ret->message, sizeof(ret->message), "clone3: %s", strerror(-r));
		goto out;
	}
	log_debug("launcher: sandbox started as pid %d", (int)pid);

	/* 'g': maps written, the child builds its file system. Meanwhile the watchdog makes
	 * the cgroups; then 'c' carries the files the child joins them by (it moves itself,
	 * see cgroup_open_join_fds), or 'r' says limits are rlimits. Our end of the socket
	 * stays open until we return: the child treats its hang-up as our death. */
	const char *step = "write uid/gid maps";
	r = write_id_maps(&ctx, pid);
	if (r >= 0)
		r = send_fds(sync_w, 'g', NULL, 0);
	if (r >= 0 && spec->proxy_argv) {
		step = "start the egress proxy";
		proxy_pid =
		    sandbox_proxy_start(spec->proxy_argv, proxy_sock, spec->proxy_control_fd);
		r = proxy_pid < 0 ? (int)proxy_pid : 0;
		close(TAKE_FD(proxy_sock));
	}
	if (r >= 0 && spec->timeout_ms) {
		step = "set the timeout";
		struct itimerspec its = {
		    .it_value = {.tv_sec = (time_t)(spec->timeout_ms / 1000),
		                 .tv_nsec = (long)(spec->timeout_ms % 1000) * 1000000L},
		};
		if (timerfd_settime(timerfd, 0, &its, NULL) < 0)
			r = NEG_ERRNO();
	}
	if (r >= 0 && use_cgroup) {
		step = "start the watchdog";
		r = watchdog_start(&ctx.cg, &wd);
		if (r >= 0) {
			step = "create cgroup";
			r = watchdog_result(&wd);
		}
		int fds[SEND_FDS_MAX];
		if (r >= 0) {
			step = "open cgroup";
			r = cgroup_open_join_fds(&ctx.cg, fds, SEND_FDS_MAX);
		}
		if (r >= 0) {
			step = "hand over cgroup";
			int n = r;
			r = send_fds(sync_w, 'c', fds, (size_t)n);
			for (int i = 0; i < n; i++)
				close(fds[i]);
		}
	} else if (r >= 0) {
		r = send_fds(sync_w, 'r', NULL, 0);
	}
	if (r < 0) {
		/* The child may have failed first (its exit is what broke our write): then its
		 * report says why, not our symptom of it. */
		(void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
		(void)waitid(P_PIDFD, (id_t)pidfd, &(siginfo_t){0}, WEXITED);
		struct waiter late = {.reportfd = report_r};
		read_report(&late);
		if (late.have_report) {
			ret->status = late.report.status;
			memcpy(ret->message, late.report.msg, sizeof(ret->message));
		} else {
			snprintf(ret->message, sizeof(ret->message), "%s: %s", step, strerror(-r));
		}
		goto out;
	}
	log_debug("launcher: limits handed over (%s: %s)",
	          ctx.rlimit_fallback ? "rlimits" : "cgroups", use_cgroup ? ctx.cg.path[0] : "-");

	struct waiter w = {
	    .pidfd = pidfd, .sigfd = sigfd, .timerfd = timerfd, .reportfd = report_r};
	int status = 0;
	r = wait_child(&w, pid, &status);
	log_debug("launcher: sandbox exited");
	if (r < 0) {
		snprintf(ret->message, sizeof(ret->message), "wait: %s", strerror(-r));
	} else if (w.aborted_by) {
		ret->status = 128 + w.aborted_by;
		snprintf(ret->message, sizeof(ret->message), "set-up interrupted by signal %d",
		         w.aborted_by);
	} else if (w.timed_out) {
		ret->status = SANDBOX_EXIT_TIMEOUT;
		snprintf(ret->message, sizeof(ret->message), "timed out after %.3g s",
		         (double)spec->timeout_ms / 1000.0);
	} else if (w.have_report) {
		ret->status = w.report.status;
		memcpy(ret->message, w.report.msg, sizeof(ret->message));
		r = -(w.report.err > 0 ? w.report.err : EIO);
	} else {
		ret->status = status;
		/* 137 alone does not say why; the memory cgroup does. */
		if (status == 128 + SIGKILL && use_cgroup && cgroup_oom_killed(&ctx.cg)) {
			char limit[32];
			format_mem_limit(spec->memory_bytes, limit, sizeof(limit));
			snprintf(ret->message, sizeof(ret->message), "out of memory (limit %s)",
			         limit);
		}
	}

out:
	sandbox_proxy_stop(proxy_pid);
	if (mask_changed)
		sigprocmask(SIG_SETMASK, &oldmask, NULL);
	if (pipe_changed)
		sigaction(SIGPIPE, &old_pipe, NULL);
	watchdog_finish(&wd, &ctx.cg);
	argv_free(ctx.argv);
	for (size_t i = 0; i < spec->n_mounts; i++) {
		free(ctx.sources[i].path);
		if (ctx.sources[i].tree_fd >= 0)
			close(ctx.sources[i].tree_fd);
	}
	free(ctx.rootfs.path);
	free(ctx.layer.path);
	return r;
}
