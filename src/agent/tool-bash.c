/*
 * tool-bash.c: the bash tool. /bin/sh -c COMMAND in its own process group, stdin from
 * /dev/null, stdout and stderr into one pipe read with a cap; on timeout the whole group is
 * killed. When the shell exits, output still in flight is read for a moment, then anything it
 * left running in its group is killed too: a tool call does not leave work behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http.h"
#include "json-util.h"
#include "tools.h"

#define AFTER_EXIT_MS 200 /* how long output is still read after the shell exited */

void
tool_bash(const struct tool_env *env, json_t *input, struct tool_output *out)
{
	const char *cmd = json_get_str(input, "command");
	uint64_t timeout =
	    json_object_get(input, "timeout") ? json_get_u64(input, "timeout") : TOOL_BASH_TIMEOUT;
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
