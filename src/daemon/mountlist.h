/*
 * mountlist.h: the mount allowlist, a file of its own that no sandbox ever sees
 * (~/.config/clawbox/mount-allowlist.json or serve --mount-allowlist):
 *
 *   {"roots": [{"path": "/home/ana/projects", "writable": true}, {"path": "/srv/photos"}],
 *    "blocked": ["secrets"]}
 *
 * A group's requested mount (config: "mounts": [{"host", "path", "rw"}]) is resolved with
 * realpath at each run, must lie under an allowed root, may be writable only if that root
 * is (the most specific root containing it decides), and no component of it below the root may be a blocked name: the built-in list
 * (.ssh, .gnupg, .aws, .env, id_rsa, credentials, ...) plus the file's own. No file means no
 * extra mounts at all.
 */
#ifndef CLAWBOX_MOUNTLIST_H
#define CLAWBOX_MOUNTLIST_H

#include <stdbool.h>
#include <stddef.h>

#define MOUNTLIST_MAX_ROOTS   64
#define MOUNTLIST_MAX_BLOCKED 128

struct mountlist {
	bool present; /* the file exists */
	struct {
		char *path; /* resolved */
		bool writable;
	} roots[MOUNTLIST_MAX_ROOTS];
	size_t n_roots;
	char *blocked[MOUNTLIST_MAX_BLOCKED];
	size_t n_blocked;
};

/* Loads path (missing: an empty list, present = false). 0, or -EINVAL with why. */
int mountlist_load(const char *path, struct mountlist *ret, char *why, size_t why_size);
void mountlist_done(struct mountlist *m);

/* Checks a requested mount of host (as configured) for writing or not. 0 and the resolved
 * path in resolved (PATH_MAX), or -EPERM / -ENOENT with why. */
int mountlist_check(const struct mountlist *m, const char *host, bool rw, char *resolved, char *why,
                    size_t why_size);

#endif
