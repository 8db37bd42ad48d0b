/*
 * tool-bash.c: the bash tool. /bin/sh -c COMMAND in its own process group, stdin from
 * /dev/null, stdout and stderr into one pipe read with a cap; on timeout the whole group is
 * killed. When the shell exits, output still in flight is read for a moment, then anything it
 * left running in its group is killed too: a tool call does not leave work behind.
 *
 * Except when asked to: with "run_in_background": true the command starts in a session of its
 * own (so the group kill of later calls never reaches it), stdin /dev/null, stdout and stderr
 * into /tmp/clawbox-bg/N.log, and the call returns at once with the job's number, pid and log
 * path. Such a job (a database, a dev server) lives until it exits or the run ends: the agent
 * is the sandbox's command, and when it exits the sandbox's pid 1 exits and the kernel kills
 * everything left in the pid namespace. At most BG_MAX jobs run at a time; the sandbox's pids
 * and memory limits bound what they start. The agent reaps them here, at each bash call.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http.h"
#include "json-util.h"
#include "tools.h"

#define AFTER_EXIT_MS 200 /* how long output is still read after the shell exited */
#define BG_MAX        8   /* background jobs alive at once */
#define BG_DIR        "/tmp/clawbox-bg"
#define BG_SETTLE_MS  300 /* a job that fails at once is reported as failed, not started */

static pid_t bg_pids[BG_MAX]; /* 0: a free slot */
static unsigned bg_started;   /* jobs started in this process: the log files' numbers */

/* Reaps background jobs that ended; returns how many are still running. */
static int
bg_reap(void)
{
	int alive = 0;
	for (int i = 0; i < BG_MAX; i++) {
		if (!bg_pids[i])
			continue;
		int st;
		pid_t r = waitpid(bg_pids[i], &st, WNOHANG);
		if (r == bg_pids[i] || (r < 0 && errno == ECHILD))
			bg_pids[i] = 0;
		else
			alive++;
	}
	return alive;
}

static void
tool_bash_background(const char *cmd, struct tool_output *out)
{
	if (bg_reap() >= BG_MAX) {
		tool_output_error(out,
		                  "error: %d background jobs are running already (the limit); "
		                  "end one (kill PID) first",
		                  BG_MAX);
		return;
	}
	if (mkdir(BG_DIR, 0700) < 0 && errno != EEXIST) {
		tool_output_error(out, "error: cannot make %s: %s", BG_DIR, strerror(errno));
		return;
	}
	char log[64];
	int fd = -1;
	for (int tries = 0; fd < 0 && tries < 1000; tries++) {
		snprintf(log, sizeof(log), BG_DIR "/%u.log", ++bg_started);
		fd = open(log, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST) {
			tool_output_error(out, "error: cannot make %s: %s", log, strerror(errno));
			return;
		}
	}
	if (fd < 0) {
		tool_output_error(out, "error: no free log file name in %s", BG_DIR);
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(fd);
		tool_output_error(out, "error: cannot start the shell: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		setsid();
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null < 0 || dup2(null, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		signal(SIGPIPE, SIG_DFL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(fd);
	for (int i = 0; i < BG_MAX; i++)
		if (!bg_pids[i]) {
			bg_pids[i] = pid;
			break;
		}

	/* A command that fails at once (not found, bad option) is an error the agent should
	 * see now, not a job it believes is running. */
	int status;
	int64_t until = http_now_ms() + BG_SETTLE_MS;
	while (http_now_ms() < until) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			bg_reap();
			tool_output_printf(out, "background job %u (pid %d) ended at once",
			                   bg_started, (int)pid);
			if (WIFSIGNALED(status))
				tool_output_printf(out, " (killed by signal %d)", WTERMSIG(status));
			else
				tool_output_printf(out, " (exit status %d)", WEXITSTATUS(status));
			tool_output_printf(out, "; its output is in %s", log);
			out->is_error = WIFSIGNALED(status) || WEXITSTATUS(status) != 0;
			return;
		}
		poll(NULL, 0, 20);
	}
	tool_output_printf(out,
	                   "started background job %u (pid %d); its stdout and stderr go to %s. "
	                   "It runs until it exits or the run ends (stop it with kill %d).",
	                   bg_started, (int)pid, log, (int)pid);
}

void
tool_bash(const struct tool_env *env, json_t *input, struct tool_output *out)
{
	const char *cmd = json_get_str(input, "command");
	uint64_t timeout =
	    json_object_get(input, "timeout") ? json_get_u64(input, "timeout") : TOOL_BASH_TIMEOUT;
	json_t *bg = json_object_get(input, "run_in_background");
	if (bg && json_is_true(bg)) {
		tool_bash_background(cmd, out);
		return;
	}
	int64_t deadline = http_now_ms() + (int64_t)timeout * 1000;
	bool by_invocation = false;
	if (env->deadline_ms && env->deadline_ms < deadline) {
		deadline = env->deadline_ms;
		by_invocation = true;
	}

	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		tool_output_error(out, "error: cannot make a pipe: %s", strerror(errno));
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		tool_output_error(out, "error: cannot start the shell: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		setpgid(0, 0);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null < 0 || dup2(null, 0) < 0 || dup2(pipefd[1], 1) < 0 ||
		    dup2(pipefd[1], 2) < 0)
			_exit(126);
		signal(SIGPIPE, SIG_DFL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid); /* also here: no race with the child's own call */
	close(pipefd[1]);
	fcntl(pipefd[0], F_SETFL, O_NONBLOCK);

	int status = 0;
	bool exited = false, timed_out = false, eof = false;
	int64_t drain_until = 0;
	char buf[16384];
	while (!eof) {
		int64_t now = http_now_ms();
		if (!exited && now >= deadline) {
			timed_out = true;
			break;
		}
		if (exited && now >= drain_until)
			break;
		int64_t wait = (exited ? drain_until : deadline) - now;
		if (wait > 50 && !exited)
			wait =
			    50; /* also notice the shell's exit while its children hold the pipe */
		struct pollfd pfd = {.fd = pipefd[0], .events = POLLIN};
		int n = poll(&pfd, 1, (int)wait);
		if (n > 0) {
			ssize_t got = read(pipefd[0], buf, sizeof(buf));
			if (got > 0)
				tool_output_add(out, buf, (size_t)got);
			else if (got == 0)
				eof = true;
		}
		if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
			exited = true;
			drain_until = http_now_ms() + AFTER_EXIT_MS;
		}
	}
	close(pipefd[0]);
	kill(-pid, SIGKILL); /* whatever is left of the group */
	if (!exited)
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;

	if (timed_out) {
		if (by_invocation)
			tool_output_printf(out,
			                   "\n[killed: the invocation's time limit was reached]");
		else
			tool_output_printf(out,
			                   "\n[timed out after %llu s; the command and its "
			                   "process group were killed]",
			                   (unsigned long long)timeout);
		out->is_error = true;
	} else if (WIFSIGNALED(status)) {
		tool_output_printf(out, "\n[killed by signal %d]", WTERMSIG(status));
		out->is_error = true;
	} else if (WEXITSTATUS(status) != 0) {
		tool_output_printf(out, "\n[exit status %d]", WEXITSTATUS(status));
		out->is_error = true;
	} else if (out->buf.len == 0) {
		tool_output_printf(out, "(no output)");
	}
}
