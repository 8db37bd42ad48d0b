/*
 * cgroup.c: per-sandbox cgroups on v1 or v2.
 *
 * v1 (these machines): <hierarchy>/<name> in the memory, pids and (with --cpus) cpu
 * hierarchies; the launcher moves the child in before it runs anything. No shared parent: a
 * memory cgroup is expensive to make and to remove, and one per run is enough.
 * v2: as root, /sys/fs/cgroup/<name> with the controllers enabled at the root; as
 * a normal user, under the nearest ancestor of our own cgroup that was delegated to us (owned
 * by us, memory and pids enabled for its children), as systemd does for user@UID.service.
 * Either way the sandbox's first process moves itself in (cgroup_join_fds) before it starts
 * the command, through files the launcher opened.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>

#include "cgroup.h"
#include "fd-util.h"
#include "macro.h"

#define CG_ROOT "/sys/fs/cgroup"

static const char *const v1_hierarchy[_CG_MAX] = {
    [CG_MEMORY] = CG_ROOT "/memory",
    [CG_PIDS] = CG_ROOT "/pids",
    [CG_CPU] = CG_ROOT "/cpu",
};

enum cgroup_mode
cgroup_detect(void)
{
	struct statfs sfs;

	if (statfs(CG_ROOT, &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC)
		return CGROUP_V2;
	if (statfs(v1_hierarchy[CG_MEMORY], &sfs) == 0 && sfs.f_type == CGROUP_SUPER_MAGIC &&
	    statfs(v1_hierarchy[CG_PIDS], &sfs) == 0 && sfs.f_type == CGROUP_SUPER_MAGIC)
		return CGROUP_V1;
	return CGROUP_NONE;
}

const char *
cgroup_mode_name(enum cgroup_mode mode)
{
	switch (mode) {
	case CGROUP_V1:
		return "v1";
	case CGROUP_V2:
		return "v2";
	default:
		return "none";
	}
}

static int
join_path(char *out, size_t size, const char *a, const char *b)
{
	size_t alen = strlen(a);
	bool slash = alen && a[alen - 1] == '/'; /* the v2 root's parent ends in one */
	if ((size_t)snprintf(out, size, "%s%s%s", a, slash ? "" : "/", b) >= size)
		return -ENAMETOOLONG;
	return 0;
}

static int
write_attr(const char *dir, const char *attr, const char *value)
{
	char path[PATH_MAX];
	int r = join_path(path, sizeof(path), dir, attr);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return NEG_ERRNO();
	return write_all(fd, value, strlen(value));
}

static int
write_attr_u64(const char *dir, const char *attr, uint64_t v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return write_attr(dir, attr, buf);
}

/* Creates path; a leftover of the same name from a crashed run is removed first. */
static int
make_leaf(const char *path)
{
	if (mkdir(path, 0755) == 0)
		return 0;
	if (errno != EEXIST)
		return NEG_ERRNO();
	if (rmdir(path) < 0 || mkdir(path, 0755) < 0)
		return NEG_ERRNO();
	return 0;
}

static int
v1_plan(struct cgroup *cg, const char *name)
{
	int r;

	for (int c = 0; c < _CG_MAX; c++) {
		if (c == CG_CPU && cg->cpus_milli == 0)
			continue;
		r = join_path(cg->path[c], sizeof(cg->path[c]), v1_hierarchy[c], name);
		if (r < 0)
			return r;
		if (access(v1_hierarchy[c], W_OK) < 0)
			return NEG_ERRNO();
		cg->wanted[c] = true;
	}
	return 0;
}

static int
v1_make(struct cgroup *cg)
{
	int r = 0;

	for (int c = 0; c < _CG_MAX; c++) {
		if (!cg->wanted[c])
			continue;
		r = make_leaf(cg->path[c]);
		if (r < 0)
			return r;
		cg->used[c] = true;
	}

	r = write_attr_u64(cg->path[CG_MEMORY], "memory.limit_in_bytes", cg->memory);
	if (r < 0)
		return r;
	/* With swap accounting, memory+swap gets the same cap, so the limit cannot be dodged
	 * by swapping; without it, ask the kernel not to swap this group. */
	if (write_attr_u64(cg->path[CG_MEMORY], "memory.memsw.limit_in_bytes", cg->memory) < 0)
		(void)write_attr(cg->path[CG_MEMORY], "memory.swappiness", "0");
	r = write_attr_u64(cg->path[CG_PIDS], "pids.max", cg->pids);
	if (r < 0)
		return r;
	if (cg->used[CG_CPU]) {
		r = write_attr(cg->path[CG_CPU], "cpu.cfs_period_us", "100000");
		if (r < 0)
			return r;
		r = write_attr_u64(cg->path[CG_CPU], "cpu.cfs_quota_us", cg->cpus_milli * 100);
		if (r < 0)
			return r;
	}
	return 0;
}

static bool
controllers_enabled(const char *dir)
{
	char path[PATH_MAX], buf[512];
	if (join_path(path, sizeof(path), dir, "cgroup.subtree_control") < 0)
		return false;
	if (read_file_at(AT_FDCWD, path, buf, sizeof(buf)) < 0)
		return false;
	return strstr(buf, "memory") && strstr(buf, "pids");
}

/* The v2 directory under which this process may create limited children. */
static int
v2_find_parent(char *ret, size_t size)
{
	if (geteuid() == 0)
		return join_path(ret, size, CG_ROOT, "");

	char self[4096];
	ssize_t n = read_file_at(AT_FDCWD, "/proc/self/cgroup", self, sizeof(self));
	if (n < 0)
		return (int)n;
	char *line = strstr(self, "0::/");
	if (!line)
		return -ENOENT;
	line += 3;
	line[strcspn(line, "\n")] = '\0';

	char dir[PATH_MAX];
	if ((size_t)snprintf(dir, sizeof(dir), "%s%s", CG_ROOT, line) >= sizeof(dir))
		return -ENAMETOOLONG;
	for (;;) {
		struct stat st;
		if (stat(dir, &st) == 0 && st.st_uid == geteuid() && access(dir, W_OK) == 0 &&
		    controllers_enabled(dir)) {
			if ((size_t)snprintf(ret, size, "%s", dir) >= size)
				return -ENAMETOOLONG;
			return 0;
		}
		char *slash = strrchr(dir, '/');
		if (!slash || (size_t)(slash - dir) <= strlen(CG_ROOT))
			return -EACCES;
		*slash = '\0';
	}
}

static int
v2_make(struct cgroup *cg)
{
	int r;

	/* Enabling may fail for controllers already enabled or absent: checked after. */
	if (geteuid() == 0)
		(void)write_attr(CG_ROOT, "cgroup.subtree_control", "+memory +pids +cpu");
	if (!controllers_enabled(cg->parent[0]))
		return -EOPNOTSUPP;
	r = make_leaf(cg->path[0]);
	if (r < 0)
		return r;
	cg->used[0] = true;

	r = write_attr_u64(cg->path[0], "memory.max", cg->memory);
	if (r < 0)
		return r;
	(void)write_attr(cg->path[0], "memory.swap.max", "0");
	r = write_attr_u64(cg->path[0], "pids.max", cg->pids);
	if (r < 0)
		return r;
	if (cg->cpus_milli) {
		char buf[64];
		snprintf(buf, sizeof(buf), "%" PRIu64 " 100000", cg->cpus_milli * 100);
		r = write_attr(cg->path[0], "cpu.max", buf);
		if (r < 0)
			return r;
	}
	return 0;
}

int
cgroup_plan(struct cgroup *cg, const char *name, uint64_t memory, uint64_t pids,
            uint64_t cpus_milli)
{
	int r;

	memset(cg, 0, sizeof(*cg));
	cg->memory = memory;
	cg->pids = pids;
	cg->cpus_milli = cpus_milli;
	cg->mode = cgroup_detect();
	switch (cg->mode) {
	case CGROUP_V1:
		r = v1_plan(cg, name);
		break;
	case CGROUP_V2:
		r = v2_find_parent(cg->parent[0], sizeof(cg->parent[0]));
		if (r >= 0)
			r = join_path(cg->path[0], sizeof(cg->path[0]), cg->parent[0], name);
		if (r >= 0)
			cg->wanted[0] = true;
		break;
	default:
		r = -EOPNOTSUPP;
		break;
	}
	if (r < 0)
		memset(cg->wanted, 0, sizeof(cg->wanted));
	return r;
}

int
cgroup_make(struct cgroup *cg)
{
	int r;

	switch (cg->mode) {
	case CGROUP_V1:
		r = v1_make(cg);
		break;
	case CGROUP_V2:
		r = v2_make(cg);
		break;
	default:
		r = -EOPNOTSUPP;
		break;
	}
	if (r < 0)
		(void)cgroup_destroy(cg);
	return r;
}
int
cgroup_open_join_fds(const struct cgroup *cg, int *fds, size_t max)
{
	const char *file = cg->mode == CGROUP_V1 ? "tasks" : "cgroup.procs";
	size_t n = 0;
	for (int c = 0; c < _CG_MAX; c++) {
		if (!cg->wanted[c])
			continue;
		char path[PATH_MAX];
		int r = join_path(path, sizeof(path), cg->path[c], file);
		int fd = r < 0 ? r : open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || n >= max) {
			r = fd < 0 ? (r < 0 ? r : NEG_ERRNO()) : -E2BIG;
			if (fd >= 0)
				close(fd);
			while (n > 0)
				close(fds[--n]);
			return r;
		}
		fds[n++] = fd;
	}
	return (int)n;
}

int
cgroup_join_fds(const int *fds, size_t n)
{
	int ret = 0;
	for (size_t i = 0; i < n; i++) {
		int r = write_all(fds[i], "0", 1);
		if (r < 0 && ret == 0)
			ret = r;
		close(fds[i]);
	}
	return ret;
}

bool
cgroup_oom_killed(const struct cgroup *cg)
{
	if (!cg->wanted[CG_MEMORY] || cg->mode == CGROUP_NONE)
		return false;
	/* v1: memory.oom_control's "oom_kill N" (since 4.13); v2: memory.events'. */
	const char *dir = cg->path[cg->mode == CGROUP_V2 ? 0 : CG_MEMORY];
	char path[PATH_MAX], buf[1024];
	if (join_path(path, sizeof(path), dir,
	              cg->mode == CGROUP_V2 ? "memory.events" : "memory.oom_control") < 0 ||
	    read_file_at(AT_FDCWD, path, buf, sizeof(buf)) < 0)
		return false;
	for (char *p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, "oom_kill ", 9) == 0)
			return strtoull(p + 9, NULL, 10) > 0;
	return false;
}

/* SIGKILLs every process listed in dir/cgroup.procs; returns how many were listed. */
static int
kill_members(const char *dir)
{
	char path[PATH_MAX], buf[4096];
	int n = 0;

	if (join_path(path, sizeof(path), dir, "cgroup.procs") < 0)
		return 0;
	if (read_file_at(AT_FDCWD, path, buf, sizeof(buf)) < 0)
		return 0;
	for (char *p = buf; *p;) {
		char *end;
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		if (pid > 0) {
			(void)kill((pid_t)pid, SIGKILL);
			n++;
		}
		p = end + strspn(end, "\n");
	}
	return n;
}

static int
remove_dir(const char *dir, bool v2)
{
	/* The pid namespace is normally gone by now; these loops only matter when something
	 * escaped into the cgroup without it or teardown raced. Up to ~2 s in all. */
	if (v2)
		(void)write_attr(dir, "cgroup.kill", "1");
	for (int i = 0; i < 200; i++) {
		if (rmdir(dir) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			return NEG_ERRNO();
		if (!v2)
			(void)kill_members(dir);
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return -EBUSY;
}

int
cgroup_destroy(struct cgroup *cg)
{
	int ret = 0;

	for (int c = 0; c < _CG_MAX; c++) {
		if (!cg->used[c])
			continue;
		int r = remove_dir(cg->path[c], cg->mode == CGROUP_V2);
		if (r < 0 && ret == 0)
			ret = r;
		cg->used[c] = false;
	}
	return ret;
}
