/*
 * exec.c: the command's own last steps: descriptors closed, new session, rlimits, working
 * folder, landlock, exec. Capabilities, no_new_privs and seccomp were set by init before the
 * fork and are inherited (see init.c: the filter is loaded once per sandbox, not twice). A failure
 * here is reported to the launcher: 125 for setup, 126 for a command that exists but cannot run,
 * 127 for one that is not found.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "macro.h"

#define NOFILE_MAX 4096

static void
fail(struct sandbox_ctx *ctx, const char *what, int err)
{
	sandbox_child_fail(ctx, SANDBOX_EXIT_SETUP, err, "%s: %s", what, strerror(err));
}

static void
reset_signals(void)
{
	sigset_t none;
	sigemptyset(&none);
	for (int sig = 1; sig < NSIG; sig++)
		(void)signal(sig, SIG_DFL);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
}

static int
set_limit(int resource, rlim_t value)
{
	struct rlimit rl;
	if (getrlimit(resource, &rl) < 0)
		return NEG_ERRNO();
	/* Never above the current hard limit: root here lacks CAP_SYS_RESOURCE. */
	if (rl.rlim_max != RLIM_INFINITY && value > rl.rlim_max)
		value = rl.rlim_max;
	rl.rlim_cur = rl.rlim_max = value;
	return setrlimit(resource, &rl) < 0 ? NEG_ERRNO() : 0;
}

static void
apply_rlimits(struct sandbox_ctx *ctx)
{
	const struct sandbox_spec *spec = ctx->spec;
	int r = set_limit(RLIMIT_CORE, 0);
	if (r >= 0)
		r = set_limit(RLIMIT_NOFILE, NOFILE_MAX);
	if (r >= 0 && ctx->rlimit_fallback) {
		/* Without a cgroup: memory as address space, processes per uid. Coarser than a
		 * cgroup (the launcher warned), but a bomb still stops. */
		r = set_limit(RLIMIT_AS, (rlim_t)spec->memory_bytes);
		if (r >= 0)
			r = set_limit(RLIMIT_NPROC, (rlim_t)spec->pids_max);
	}
	if (r < 0)
		fail(ctx, "set resource limits", -r);
}

/* Looks cmd up in the sandbox's PATH (not ours: init's environment is empty) and execs. */
_noreturn_ static void
exec_search(struct sandbox_ctx *ctx, char *const argv[], char *const envp[])
{
	const char *cmd = argv[0];
	const char *path = SANDBOX_PATH_ENV;
	int err = ENOENT;
	bool denied = false;

	if (strchr(cmd, '/')) {
		execve(cmd, argv, envp);
		err = errno;
	} else {
		for (size_t i = 0; envp[i]; i++)
			if (strncmp(envp[i], "PATH=", 5) == 0)
				path = envp[i] + 5;
		while (*path) {
			const char *end = strchrnul(path, ':');
			char full[SANDBOX_PATH_MAX + 256];
			size_t dlen = (size_t)(end - path);
			if (dlen > 0 && dlen < SANDBOX_PATH_MAX &&
			    (size_t)snprintf(full, sizeof(full), "%.*s/%s", (int)dlen, path, cmd) <
			        sizeof(full)) {
				execve(full, argv, envp);
				if (errno == EACCES)
					denied = true;
				else if (errno != ENOENT && errno != ENOTDIR)
					err = errno;
			}
			path = *end ? end + 1 : end;
		}
		if (denied && err == ENOENT)
			err = EACCES;
	}
	if (err == ENOENT || err == ENOTDIR)
		sandbox_child_fail(ctx, SANDBOX_EXIT_NOTFOUND, err, "%s: command not found", cmd);
	sandbox_child_fail(ctx, SANDBOX_EXIT_NOEXEC, err, "%s: cannot execute: %s", cmd,
	                   strerror(err));
}

void
sandbox_exec_command(struct sandbox_ctx *ctx)
{
	const struct sandbox_spec *spec = ctx->spec;
	int r;

	reset_signals();
	/* Everything but 0-2 goes at exec; the report pipe is already close-on-exec. */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		fail(ctx, "close descriptors", errno);
	/* A new session has no controlling terminal: nothing to push keystrokes into. */
	if (setsid() < 0)
		fail(ctx, "setsid", errno);
	apply_rlimits(ctx);

	const char *wd = spec->workdir ? spec->workdir : SANDBOX_HOME;
	if (chdir(wd) < 0)
		sandbox_child_fail(ctx, SANDBOX_EXIT_SETUP, errno, "working folder %s: %s", wd,
		                   strerror(errno));

	r = landlock_apply(spec);
	if (r < 0)
		fail(ctx, "landlock", -r);

	log_debug("command: exec %s", ctx->argv[0]);
	exec_search(ctx, ctx->argv, spec->env);
}
