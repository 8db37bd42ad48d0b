/*
 * child.c: the sandbox side of setup, from clone3() to the init loop. Runs as pid 1 of the new
 * pid namespace, in fresh user, mount, net, uts, ipc (and then cgroup and time) namespaces.
 *
 * Reads as a flat list of named steps; the first that fails sends one report to the launcher
 * ("mount /proc: Permission denied") and exits 125. The launcher writes our uid/gid maps before
 * we start ('g' on the sync socket); our cgroups are made while we build the file system, and
 * we join them ('c', with the files to join by) before the command is started.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <grp.h>
#include <poll.h>

#include "fd-util.h"
#include "internal.h"
#include "log.h"
#include "macro.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

void
sandbox_child_fail(struct sandbox_ctx *ctx, int status, int err, const char *fmt, ...)
{
	struct sandbox_report rep = {.status = status, .err = err};
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rep.msg, sizeof(rep.msg), fmt, ap);
	va_end(ap);
	/* One write below PIPE_BUF: the launcher reads it whole or not at all. */
	(void)write_all(ctx->report_fd, &rep, sizeof(rep));
	_exit(status);
}

static int
step_sources(struct sandbox_ctx *ctx)
{
	/* Before the identity changes: the sources were checked with the caller's own
	 * credentials, so they are opened with them too. */
	return mounts_open_sources(ctx);
}

static int
step_identity(struct sandbox_ctx *ctx)
{
	/* As root the launcher left setgroups allowed so that we can drop root's supplementary
	 * groups here (group root would otherwise still open root:root 0640 files). As a normal
	 * user setgroups is denied and the user's own groups stay, as with any of their
	 * processes. */
	if (ctx->as_root && setgroups(0, NULL) < 0)
		return NEG_ERRNO();
	/* Becoming the mapped uid keeps this namespace's capabilities (uid 0 is unmapped, so no
	 * "root lost" fix-up applies) and lets us create files on our tmpfs mounts. */
	if (setresgid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID) < 0)
		return NEG_ERRNO();
	if (setresuid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID) < 0)
		return NEG_ERRNO();
	/* A credential change clears the parent-death signal: set it again. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		return NEG_ERRNO();
	/* The launcher holds the other end of the sync socket until it returns: a hang-up
	 * means it died in the window before the line above. */
	struct pollfd pfd = {.fd = ctx->sync_fd, .events = POLLIN};
	if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR)))
		_exit(SANDBOX_EXIT_SETUP);
	return 0;
}

static int
step_timens(struct sandbox_ctx *ctx)
{
	(void)ctx;
	/* A time namespace where the kernel has one: it applies to our children. */
	if (unshare(CLONE_NEWTIME) < 0 && errno != EINVAL && errno != ENOSYS)
		return NEG_ERRNO();
	return 0;
}

static int
step_cgroup(struct sandbox_ctx *ctx)
{
	int fds[SEND_FDS_MAX];
	size_t n = 0;
	char c = 0;

	/* The watchdog made our cgroups while we built the file system; the launcher sends
	 * 'c' with the files to join them by (see cgroup_open_join_fds), or 'r' when limits are
	 * rlimits instead. Nothing of the command exists yet. */
	int r = recv_fds(ctx->sync_fd, &c, fds, SEND_FDS_MAX, &n);
	if (r < 0 || (c != 'c' && c != 'r'))
		_exit(SANDBOX_EXIT_SETUP); /* the launcher failed and says why itself */
	ctx->rlimit_fallback = c == 'r';
	r = cgroup_join_fds(fds, n);
	if (r < 0)
		return r;
	if (!ctx->rlimit_fallback && n == 0)
		return -EBADMSG;
	close(ctx->sync_fd);
	ctx->sync_fd = -1;
	/* Made now, so that its root is the sandbox's own cgroup. */
	if (unshare(CLONE_NEWCGROUP) < 0)
		return NEG_ERRNO();
	return 0;
}

static int
step_hostname(struct sandbox_ctx *ctx)
{
	(void)ctx;
	if (sethostname(SANDBOX_HOSTNAME, strlen(SANDBOX_HOSTNAME)) < 0)
		return NEG_ERRNO();
	if (setdomainname("", 0) < 0)
		return NEG_ERRNO();
	return 0;
}

static int
step_loopback(struct sandbox_ctx *ctx)
{
	(void)ctx;
	/* The network namespace is empty but for a down "lo"; bring it up, so local servers
	 * inside the sandbox work. There is no other device and no route out. */
	_cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return NEG_ERRNO();
	struct ifreq ifr = {0};
	memcpy(ifr.ifr_name, "lo", 3);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return NEG_ERRNO();
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		return NEG_ERRNO();
	return 0;
}

static int
step_proxy_listener(struct sandbox_ctx *ctx)
{
	if (ctx->proxy_fd < 0)
		return 0;
	/* The sandbox's only way out: a port on its own loopback whose connections init hands,
	 * as they are, to the egress proxy outside (see init.c). */
	_cleanup_close_ int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return NEG_ERRNO();
	struct sockaddr_in sin = {
	    .sin_family = AF_INET,
	    .sin_port = htons(SANDBOX_PROXY_PORT),
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	if (bind(s, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(s, 128) < 0)
		return NEG_ERRNO();
	ctx->proxy_listen_fd = TAKE_FD(s);
	if (!ctx->spec->internal_names || !ctx->spec->internal_names[0])
		return 0;
	/* And port 80, for clients that use no proxy and reach http://NAME.clawbox.internal/
	 * through /etc/hosts: the proxy reads the Host header of what arrives here. */
	_cleanup_close_ int h = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (h < 0)
		return NEG_ERRNO();
	sin.sin_port = htons(80);
	if (bind(h, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(h, 128) < 0)
		return NEG_ERRNO();
	ctx->proxy_http_fd = TAKE_FD(h);
	if (!ctx->spec->internal_https)
		return 0;
	_cleanup_close_ int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (t < 0)
		return NEG_ERRNO();
	sin.sin_port = htons(443);
	if (bind(t, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(t, 128) < 0)
		return NEG_ERRNO();
	ctx->proxy_https_fd = TAKE_FD(t);
	return 0;
}

static int
step_mounts(struct sandbox_ctx *ctx)
{
	return mounts_build(ctx);
}

static const struct {
	const char *name;
	int (*run)(struct sandbox_ctx *ctx);
} setup_steps[] = {
    /* clang-format off */
	{ "open mount sources",    step_sources },
	{ "set identity",          step_identity },
	{ "create time namespace", step_timens },
	{ "set hostname",          step_hostname },
	{ "bring up loopback",     step_loopback },
	{ "listen for the proxy",  step_proxy_listener },
	{ "build file system",     step_mounts },
	{ "join cgroup",           step_cgroup },
    /* clang-format on */
};

/* Closes every descriptor but 0-2 and those in keep (sorted ascending). */
static void
close_all_but(const int *keep, size_t n)
{
	unsigned from = 3;
	for (size_t i = 0; i < n; i++) {
		if ((unsigned)keep[i] > from)
			(void)close_range(from, (unsigned)keep[i] - 1, 0);
		from = (unsigned)keep[i] + 1;
	}
	(void)close_range(from, ~0U, 0);
}

void
sandbox_child_main(struct sandbox_ctx *ctx)
{
	char go = 0;

	/* If the launcher dies, so do we (and with pid 1, the whole sandbox). The sync read
	 * below covers the window before this took effect: EOF means it is gone. */
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);

	/* Ours to keep: the sync socket, the report pipe, (--net proxy) the proxy's socket and
	 * the launcher's idmapped mount trees. */
	int keep[3 + SANDBOX_MAX_MOUNTS] = {ctx->sync_fd, ctx->report_fd};
	size_t n_keep = 2;
	if (ctx->proxy_fd >= 0)
		keep[n_keep++] = ctx->proxy_fd;
	for (size_t i = 0; i < ctx->spec->n_mounts; i++)
		if (ctx->sources[i].tree_fd >= 0)
			keep[n_keep++] = ctx->sources[i].tree_fd;
	for (size_t i = 0; i < n_keep; i++) /* sorted, for close_all_but */
		for (size_t j = i + 1; j < n_keep; j++)
			if (keep[j] < keep[i]) {
				int t = keep[i];
				keep[i] = keep[j];
				keep[j] = t;
			}
	close_all_but(keep, n_keep);

	/* 'g': our uid/gid maps are written. EOF: the launcher failed, and says why itself. */
	if (read_full(ctx->sync_fd, &go, 1) != 1 || go != 'g')
		_exit(SANDBOX_EXIT_SETUP);

	for (size_t i = 0; i < ARRAY_SIZE(setup_steps); i++) {
		ctx->err_detail[0] = '\0';
		int r = setup_steps[i].run(ctx);
		log_debug("sandbox: %s: %s", setup_steps[i].name, r < 0 ? strerror(-r) : "done");
		if (r < 0)
			sandbox_child_fail(ctx, SANDBOX_EXIT_SETUP, -r, "%s%s%s: %s",
			                   setup_steps[i].name, ctx->err_detail[0] ? ": " : "",
			                   ctx->err_detail, strerror(-r));
	}
	sandbox_init_main(ctx);
}
