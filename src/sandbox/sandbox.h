/*
 * sandbox.h: run one command in a fresh, ephemeral sandbox (the `clawbox run` contract in
 * docs/ARCHITECTURE.md and DESIGN.md).
 */
#ifndef CLAWBOX_SANDBOX_H
#define CLAWBOX_SANDBOX_H

#include <sys/types.h>

#include "spec.h"

/* Exit statuses of the contract. */
#define SANDBOX_EXIT_TIMEOUT  124
#define SANDBOX_EXIT_SETUP    125
#define SANDBOX_EXIT_NOEXEC   126
#define SANDBOX_EXIT_NOTFOUND 127

#define SANDBOX_MSG_MAX 480

struct sandbox_result {
	int status;                    /* what `clawbox run` exits with */
	char message[SANDBOX_MSG_MAX]; /* one line for stderr, or "" */
};

/* Runs spec->argv in a new sandbox, waits for it, removes every trace of it and fills *ret.
 * Returns 0 when the command ran (ret->status is its status, 124 on timeout), or -errno when
 * the sandbox could not be set up or the command not started (ret->status 125, 126 or 127 and
 * ret->message says why). Nothing is printed except debug lines under spec->debug. */
int sandbox_run(const struct sandbox_spec *spec, struct sandbox_result *ret);

/* The egress proxy as sandbox_run() starts it, for a caller that hands it connections itself
 * (the microVM's host): argv runs with sock as its fd 3 and dies with the caller. Returns its
 * pid or -errno. sandbox_proxy_stop() lets it finish (SIGTERM, two seconds) and reaps it. */
pid_t sandbox_proxy_start(char *const *argv, int sock, int control);
void sandbox_proxy_stop(pid_t pid);

/* Remember where the process's argv and environment strings are, so that the sandbox init,
 * which is a clone of this process, can wipe them: nothing of the caller's environment may be
 * readable from inside. Call first thing in main(). */
void sandbox_note_process_memory(int argc, char **argv);

#endif
