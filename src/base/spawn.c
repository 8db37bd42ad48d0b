/*
 * spawn.c: see spawn.h.
 */
#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "spawn.h"

int
spawn_wait(const char *const *argv)
{
	pid_t pid = fork();
	if (pid < 0)
		return NEG_ERRNO();
	if (pid == 0) {
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return NEG_ERRNO();
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EINVAL;
}
