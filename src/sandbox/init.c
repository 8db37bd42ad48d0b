/*
 * init.c: pid 1 of the sandbox. Starts the command, forwards the signals the launcher passes
 * on, reaps every orphan, and exits with the command's status (128+N if it died of signal N).
 * When pid 1 exits the kernel kills everything left in the pid namespace, so a command's
 * stray background processes never outlive it.
 *
 * Before it forks the command it gives up every privilege (capabilities, new privileges, the
 * seccomp allowlist) and becomes non-dumpable: the command inherits the first three, and,
 * running as the same uid, can neither ptrace init nor read its /proc/1/{environ,mem,exe}. Its
 * memory holds none of the caller's environment anyway: the launcher's argv and environment strings
 * were wiped.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fd-util.h"
#include "internal.h"
#include "macro.h"
#include "seccomp-bpf.h"

/* Signals passed on to the command's process group. */
static const int forwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH};

/* Passes every pending connection on the proxy port to the egress proxy, as it is: the proxy
 * reads and writes the sandbox's socket itself, so init copies no data and parses nothing.
 * If the proxy is gone the connection is closed, and the client sees it fail. */
static void
hand_over_connections(struct sandbox_ctx *ctx, int listen_fd)
{
	for (int i = 0; i < 64; i++) {
		int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			return; /* EAGAIN: none left (the listener is non-blocking) */
		(void)send_fds(ctx->proxy_fd, 'c', &c, 1);
		close(c);
	}
}

static int
status_to_exit(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return SANDBOX_EXIT_SETUP;
}

void
sandbox_init_main(struct sandbox_ctx *ctx)
{
	sigset_t mask;
	int r;

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
		sigaddset(&mask, forwarded[i]);
	/* Blocked before the fork, so no SIGCHLD can be missed. */
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		sandbox_child_fail(ctx, SANDBOX_EXIT_SETUP, errno, "init: block signals: %s",
		                   strerror(errno));
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0)
		sandbox_child_fail(ctx, SANDBOX_EXIT_SETUP, errno, "init: signalfd: %s",
		                   strerror(errno));

	/* Privileges go here, once, before the fork: the command inherits all of it, and
	 * the seccomp program is loaded (and JIT-compiled) a single time. Everything the
	 * command still does before exec (setsid, rlimits, chdir, landlock, close_range,
	 * execve) is on the allowlist. */
	(void)prctl(PR_SET_DUMPABLE, 0);
	r = caps_drop_all();
	if (r < 0)
		sandbox_child_fail(ctx, SANDBOX_EXIT_SETUP, -r, "drop capabilities: %s",
		                   strerror(-r));
	r = set_no_new_privs();
	if (r < 0)
		sandbox_child_fail(ctx, SANDBOX_EXIT_SETUP, -r, "set no_new_privs: %s",
		                   strerror(-r));
	r = seccomp_install();
	if (r < 0)
		sandbox_child_fail(ctx, SANDBOX_EXIT_SETUP, -r, "seccomp: %s", strerror(-r));

	/* vfork, as posix_spawn does: no page tables to copy and no copy-on-write faults, and
	 * we have nothing to do until the command has exec'd anyway. What the child runs
	 * before exec (exec.c) only makes system calls and writes its own stack; it never
	 * returns, it execs or _exits. */
	pid_t cmd = vfork();
	/* Kernels before 6.3 refuse CLONE_VM into a new time namespace (EINVAL): Debian 12's
	 * 6.1, for one (found in the microVM guest). A plain fork works there. */
	if (cmd < 0 && errno == EINVAL)
		cmd = fork();
	if (cmd < 0)
		sandbox_child_fail(ctx, SANDBOX_EXIT_SETUP, errno, "init: fork: %s",
		                   strerror(errno));
	if (cmd == 0)
		sandbox_exec_command(ctx); /* closes sfd with everything else at exec */
	/* Only the command reports from here on; ours is closed so its exec ends the pipe. */
	close(ctx->report_fd);

	struct pollfd fds[4] = {
	    {.fd = sfd, .events = POLLIN},
	    {.fd = ctx->proxy_listen_fd, .events = POLLIN}, /* -1: ignored */
	    {.fd = ctx->proxy_http_fd, .events = POLLIN},   /* port 80: the proxy tells them apart */
	    {.fd = ctx->proxy_https_fd, .events = POLLIN},  /* 443: so does TLS's first byte */
	};
	for (;;) {
		if (poll(fds, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(SANDBOX_EXIT_SETUP);
		}
		if (fds[1].revents & POLLIN)
			hand_over_connections(ctx, ctx->proxy_listen_fd);
		if (fds[2].revents & POLLIN)
			hand_over_connections(ctx, ctx->proxy_http_fd);
		if (fds[3].revents & POLLIN)
			hand_over_connections(ctx, ctx->proxy_https_fd);
		if (!(fds[0].revents & POLLIN))
			continue;

		struct signalfd_siginfo si;
		ssize_t n = read(sfd, &si, sizeof(si));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n != (ssize_t)sizeof(si))
			_exit(SANDBOX_EXIT_SETUP);

		if (si.ssi_signo != SIGCHLD) {
			/* The command made itself a session and group leader; a signal that
			 * races ahead of that goes to the process alone. */
			if (kill(-cmd, (int)si.ssi_signo) < 0)
				(void)kill(cmd, (int)si.ssi_signo);
			continue;
		}
		for (;;) {
			int status;
			pid_t pid = waitpid(-1, &status, WNOHANG);
			if (pid <= 0)
				break;
			if (pid == cmd)
				_exit(status_to_exit(status));
		}
	}
}
