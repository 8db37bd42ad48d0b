/*
 * quota.c: see quota.h. The walk opens each folder beneath the one before with O_NOFOLLOW and
 * stays on the group folder's file system: the agent owns what is in it, symlinks and mount
 * points included, and must not make the daemon count (or open) anything outside.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "fd-util.h"
#include "macro.h"
#include "quota.h"

#define QUOTA_DEPTH_MAX 64

static int
walk(int dirfd, dev_t dev, unsigned depth, uint64_t *bytes, unsigned *entries)
{
	DIR *dir = fdopendir(dirfd);
	if (!dir) {
		close(dirfd);
		return NEG_ERRNO();
	}
	int r = 0;
	struct dirent *de;
	while (r == 0 && (de = readdir(dir))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (++*entries > QUOTA_WALK_MAX)
			break; /* counted so far: a lower bound is enough to refuse */
		struct stat st;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* gone meanwhile */
		if (st.st_dev != dev)
			continue;
		*bytes += (uint64_t)st.st_blocks * 512;
		if (!S_ISDIR(st.st_mode) || depth >= QUOTA_DEPTH_MAX)
			continue;
		int sub = openat(dirfd, de->d_name,
		                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
		if (sub >= 0)
			r = walk(sub, dev, depth + 1, bytes, entries);
	}
	closedir(dir);
	return r;
}

int
quota_usage(const char *dir, uint64_t *ret_bytes)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? (*ret_bytes = 0, 0) : NEG_ERRNO();
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = NEG_ERRNO();
		close(fd);
		return e;
	}
	uint64_t bytes = (uint64_t)st.st_blocks * 512;
	unsigned entries = 0;
	int r = walk(fd, st.st_dev, 0, &bytes, &entries);
	if (r < 0)
		return r;
	*ret_bytes = bytes;
	return 0;
}

static int
group_index(const struct daemon *d, const struct group_config *g)
{
	return (int)(g - d->cfg.groups);
}

int
quota_group_usage(struct daemon *d, const struct group_config *g, bool fresh, uint64_t *ret)
{
	int i = group_index(d, g);
	if (!fresh && d->folder_known[i]) {
		*ret = d->folder_bytes[i];
		return 0;
	}
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/groups/%s", d->cfg.data_dir, g->id);
	uint64_t bytes;
	int r = quota_usage(dir, &bytes);
	if (r < 0)
		return r;
	d->folder_bytes[i] = bytes;
	d->folder_known[i] = true;
	*ret = bytes;
	return 0;
}

void
quota_format(uint64_t bytes, char *buf, size_t size)
{
	static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	size_t u = 0;
	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%llu bytes", (unsigned long long)bytes);
	else
		snprintf(buf, size, "%.1f %s", v, units[u]);
}

bool
quota_may_run(struct daemon *d, const struct group_config *g, char *why, size_t size)
{
	uint64_t used;
	if (quota_group_usage(d, g, false, &used) < 0 || used <= g->folder_quota)
		return true;
	/* Over at the last count: files may have been deleted since. */
	if (quota_group_usage(d, g, true, &used) < 0 || used <= g->folder_quota)
		return true;
	char u[32], q[32];
	quota_format(used, u, sizeof(u));
	quota_format(g->folder_quota, q, sizeof(q));
	snprintf(why, size,
	         "the group's folder uses %s of its %s quota: delete files from it to run again",
	         u, q);
	return false;
}
