/*
 * child.c: the sandbox side of setup, from clone3() to the init loop. Runs as pid 1 of the new
 * pid namespace, in fresh user, mount, net, uts, ipc (and then cgroup and time) namespaces.
 *
 * Reads as a flat list of named steps; the first that fails sends one report to the launcher
 * ("mount /proc: Permission denied") and exits 125. The launcher writes our uid/gid maps
 * before we start ('g' on the sync pipe) and puts us in our cgroups while we build the file
 * system ('c'); the command is forked only after both.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
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
	/* A credential change clears the parent-death signal: set it again. Should the
	 * launcher already be gone, the read of 'c' in step_cgroup sees EOF and we exit. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		return NEG_ERRNO();
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
	char c = 0;
	/* The launcher moves us into our cgroups while the steps above run (the cgroups are
	 * still being made when we start, and on v1 the move itself can wait for an RCU grace
	 * period): 'c' when we are in, 'r' when limits are rlimits instead. Nothing of the
	 * command exists yet; it starts only after this. */
	if (read_full(ctx->sync_fd, &c, 1) != 1 || (c != 'c' && c != 'r'))
		_exit(SANDBOX_EXIT_SETUP); /* the launcher failed and says why itself */
	ctx->rlimit_fallback = c == 'r';
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
step_mounts(struct sandbox_ctx *ctx)
{
	return mounts_build(ctx);
}

static const struct {
	const char *name;
	int (*run)(struct sandbox_ctx *ctx);
} setup_steps[] = {
    {"open mount sources", step_sources},   {"set identity", step_identity},
    {"create time namespace", step_timens}, {"set hostname", step_hostname},
    {"bring up loopback", step_loopback},   {"build file system", step_mounts},
    {"join cgroup", step_cgroup},
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

	int keep[2] = {ctx->sync_fd, ctx->report_fd};
	if (keep[0] > keep[1]) {
		int t = keep[0];
		keep[0] = keep[1];
		keep[1] = t;
	}
	close_all_but(keep, 2);

	/* 'g': our uid/gid maps are written. */
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
