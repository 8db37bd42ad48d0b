/*
 * init.c: pid 1 of the sandbox. Starts the command, forwards the signals the launcher passes
 * on, reaps every orphan, and exits with the command's status (128+N if it died of signal N).
 * When pid 1 exits the kernel kills everything left in the pid namespace, so a command's
 * stray background processes never outlive it.
 *
 * Before waiting it gives up what the command gives up (capabilities, new privileges, the
 * seccomp allowlist) and becomes non-dumpable: the command, running as the same uid, can
 * then neither ptrace it nor read its /proc/1/{environ,mem,exe}. Its memory holds none of the
 * caller's environment anyway: the launcher's argv and environment strings were wiped.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "macro.h"
#include "seccomp-bpf.h"

/* Signals passed on to the command's process group. */
static const int forwarded[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH };

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

	pid_t cmd = fork();
	if (cmd < 0)
		sandbox_child_fail(ctx, SANDBOX_EXIT_SETUP, errno, "init: fork: %s",
				   strerror(errno));
	if (cmd == 0) {
		close(sfd);
		sandbox_exec_command(ctx);
	}
	/* Only the command reports from here on; ours is closed so its exec ends the pipe. */
	close(ctx->report_fd);

	(void)prctl(PR_SET_DUMPABLE, 0);
	if (caps_drop_all() < 0 || set_no_new_privs() < 0 || seccomp_install() < 0) {
		kill(cmd, SIGKILL);
		_exit(SANDBOX_EXIT_SETUP);
	}

	for (;;) {
		struct signalfd_siginfo si;
		ssize_t n = read(sfd, &si, sizeof(si));
		if (n < 0 && errno == EINTR)
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
