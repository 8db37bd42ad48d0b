/*
 * idmap.c: idmapped mounts (see idmap.h). Used by the sandbox's launcher for writable mounts
 * when root launches it, and by callers that must know beforehand whether a folder will need
 * its owner changed instead (the daemon's group folders on a file system that cannot idmap).
 *
 * The user namespace that carries a mapping is the one of a child made only for that: it
 * blocks on a pipe while we write its maps and open its /proc/PID/ns/user, and exits when the
 * pipe closes. The namespace lives on as long as the fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/mount.h>

#include "fd-util.h"
#include "idmap.h"
#include "macro.h"

static int
write_map(pid_t pid, const char *name, unsigned from, unsigned to)
{
	char path[64], map[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	snprintf(map, sizeof(map), "%u %u 1\n", from, to);
	return write_file_at(AT_FDCWD, path, map, 0);
}

int
idmap_userns_open(uid_t from_uid, gid_t from_gid, uid_t to_uid, gid_t to_gid)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return NEG_ERRNO();
	/* A raw clone rather than fork(): the child only blocks and exits, and no atfork
	 * handler of a library in the caller's process should run for it. */
	long pid =
	    syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | SIGCHLD), NULL, NULL, NULL, NULL);
	if (pid < 0) {
		int r = NEG_ERRNO();
		close(p[0]);
		close(p[1]);
		return r;
	}
	if (pid == 0) {
		char c;
		close(p[1]);
		while (read(p[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(p[0]);
	int r = write_map((pid_t)pid, "uid_map", (unsigned)from_uid, (unsigned)to_uid);
	if (r >= 0)
		r = write_map((pid_t)pid, "gid_map", (unsigned)from_gid, (unsigned)to_gid);
	int fd = -1;
	if (r >= 0) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			r = NEG_ERRNO();
	}
	close(p[1]);
	while (waitpid((pid_t)pid, NULL, 0) < 0 && errno == EINTR)
		;
	return r < 0 ? r : fd;
}

int
idmap_clone_tree(int dirfd, int userns_fd, uint64_t attr)
{
	int tree = (int)syscall(SYS_open_tree, dirfd, "",
	                        OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
	if (tree < 0)
		return NEG_ERRNO();
	struct mount_attr ma = {
	    .attr_set = attr | MOUNT_ATTR_IDMAP,
	    .userns_fd = (uint64_t)userns_fd,
	};
	if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &ma, sizeof(ma)) <
	    0) {
		int r = NEG_ERRNO();
		close(tree);
		return r;
	}
	return tree;
}

int
idmap_attach(int tree_fd, int target_fd)
{
	if (syscall(SYS_move_mount, tree_fd, "", target_fd, "",
	            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		return NEG_ERRNO();
	return 0;
}

int
idmap_supported(const char *path)
{
	_cleanup_close_ int dir = open(path, O_PATH | O_CLOEXEC);
	if (dir < 0)
		return NEG_ERRNO();
	struct stat st;
	if (fstat(dir, &st) < 0)
		return NEG_ERRNO();
	/* Any mapping will do for the question; the owner's onto a uid no file has. */
	_cleanup_close_ int ns = idmap_userns_open(st.st_uid, st.st_gid, 65533, 65533);
	if (ns < 0)
		return ns;
	int tree = idmap_clone_tree(dir, ns, 0);
	if (tree == -EINVAL || tree == -EOPNOTSUPP)
		return 0;
	if (tree < 0)
		return tree;
	close(tree);
	return 1;
}
