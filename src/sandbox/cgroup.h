/*
 * cgroup.h: one cgroup (v1: one per controller hierarchy; v2: one directory) per sandbox, with
 * memory, pids and cpu limits. Detects the layout rather than assuming it: these machines carry
 * the controllers on v1 beside an empty v2 mount; many others are pure v2.
 */
#ifndef CLAWBOX_CGROUP_H
#define CLAWBOX_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum cgroup_mode {
	CGROUP_NONE,
	CGROUP_V1,
	CGROUP_V2,
};

enum cgroup_controller {
	CG_MEMORY,
	CG_PIDS,
	CG_CPU,
	_CG_MAX,
};

/* cgroup paths are short ("/sys/fs/cgroup/memory/clawbox-run-PID"; a delegated v2 one a few
 * hundred bytes): the struct is copied into every process of a sandbox, so it stays small. */
#define CG_PATH_MAX 512

struct cgroup {
	enum cgroup_mode mode;
	char path[_CG_MAX][CG_PATH_MAX];   /* v1: one per controller; v2: path[0] only */
	char parent[_CG_MAX][CG_PATH_MAX]; /* v2: parent[0], where the controllers must be on */
	bool wanted[_CG_MAX];              /* planned */
	bool used[_CG_MAX];                /* created */
	uint64_t memory, pids, cpus_milli;
};

/* Which layout the host has. */
enum cgroup_mode cgroup_detect(void);
const char *cgroup_mode_name(enum cgroup_mode mode);

/* Decides where the sandbox's cgroup(s) named `name` go and with which limits (cpus_milli 0:
 * no CPU limit), without creating anything. -EOPNOTSUPP when the host has no usable
 * hierarchy, -EACCES when nothing was delegated to this user (callers may fall back to
 * rlimits). Split from cgroup_make() so that another process can do the (slow) creation
 * while this one goes on. */
int cgroup_plan(struct cgroup *cg, const char *name, uint64_t memory, uint64_t pids,
                uint64_t cpus_milli);

/* Creates the planned cgroup(s) and writes the limits. On failure nothing is left behind. */
int cgroup_make(struct cgroup *cg);

/* Opens the files through which a process joins the cgroup(s) itself: v1's `tasks` (v2:
 * `cgroup.procs`), one per hierarchy, written into fds[] (close-on-exec); returns how many.
 * Why the process moves itself, with files we opened: on v1 a thread that moves itself (writes
 * "0") skips the global cgroup_threadgroup_rwsem, whose write side otherwise waits for an RCU
 * grace period when cold (10-30 ms measured here, against 0.04 ms); and v1 checks permission
 * against the credentials of whoever opened the file, so the sandbox can join after it has
 * given up the caller's identity. */
int cgroup_open_join_fds(const struct cgroup *cg, int *fds, size_t max);

/* Joins through fds from cgroup_open_join_fds(), and closes them. */
int cgroup_join_fds(const int *fds, size_t n);

/* Whether the kernel's OOM killer killed anything in the memory cgroup (read before
 * cgroup_destroy()). */
bool cgroup_oom_killed(const struct cgroup *cg);

/* Kills whatever is still in the cgroup(s), removes them and their shared parent when that is
 * empty. Bounded: gives up after about two seconds. Safe to call on an unused struct. */
int cgroup_destroy(struct cgroup *cg);

#endif
