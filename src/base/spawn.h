/*
 * spawn.h: run a program and wait for it (argv only: never a shell).
 */
#ifndef CLAWBOX_SPAWN_H
#define CLAWBOX_SPAWN_H

/* Runs argv[0] (a path) with argv, inheriting stdio, and waits. Returns 0 when it exited 0,
 * -EINVAL when it failed or could not be executed, -errno when it could not be started. */
int spawn_wait(const char *const *argv);

#endif
