/*
 * envs.h: a group's environment, the packages from Debian (apt), npm and PyPI its sandboxes
 * see. The set is recorded in the store (kv "env:GROUP"); the host builds it into a read-only
 * layer under DATA/envs/GROUP/ in a sandbox of its own (tools/env-build.sh, egress only to the
 * configured registries), and every later run of that group gets the layer (ask --layer).
 *
 * Layout: DATA/envs/GROUP/.build-N (one per build), `current` a symlink to the last good one,
 * swapped by rename(2) so a run sees the old layer or the new one, never half of either; the
 * layer before it is kept (a run that started on it may still use it), older ones removed.
 */
#ifndef CLAWBOX_ENVS_H
#define CLAWBOX_ENVS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define ENVS_NAME_MAX 100 /* one package name, without its "apt:" kind */

struct daemon;

/* Whether spec is "apt:NAME", "npm:NAME" (or "npm:@SCOPE/NAME") or "pip:NAME" with a name
 * that no tool could take for an option or a path: letters, digits and . _ + -, not starting
 * with - or . (npm's one scope slash aside). */
bool envs_package_ok(const char *spec);

/* The group's environment as the API shows it (a new reference). */
json_t *envs_view(struct daemon *d, const char *group);

/* Adds and removes packages (JSON arrays of strings; either may be NULL), records the new set
 * and starts a build unless nothing changed. who ("user", "agent") goes to the audit. 0;
 * -EINVAL (a bad name) or -E2BIG (past the package quota) with why filled in. */
int envs_change(struct daemon *d, const char *group, const char *who, json_t *add, json_t *remove,
                char *why, size_t why_size);

/* The group's current layer (resolved: a build folder) into buf; -ENOENT when it has none. */
int envs_layer(struct daemon *d, const char *group, char *buf, size_t size);

/* A reaped child: true if it was an environment build (then it is finished here). */
bool envs_reaped(struct daemon *d, pid_t pid, int status);

#endif
