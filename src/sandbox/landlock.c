/*
 * landlock.c: the file-system allowlist again, enforced by the kernel's landlock LSM as a
 * second layer under the mount table, at the best ABI the kernel offers.
 *
 * Rules: the whole tree may be read and executed; writes only where the mount table put
 * something writable (/tmp, home, /dev/shm, :rw mounts, the device nodes); the inherited stdio
 * files may be reopened (/dev/stderr, /proc/self/fd/1), since the process holds them already.
 * ABI 6 adds scoping: no signals to, and no abstract unix sockets of, processes outside the
 * command's own domain (the sandbox init included).
 *
 * Debian 12's <linux/landlock.h> stops at ABI 2, so the newer constants and the larger
 * ruleset_attr are defined here.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/landlock.h>

#include "internal.h"
#include "macro.h"

#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LANDLOCK_SCOPE_SIGNAL               (1ULL << 1)
#endif

/* ruleset_attr as of ABI 6; the kernel accepts a prefix of it for older ABIs. */
struct ll_ruleset_attr {
	__u64 handled_access_fs;
	__u64 handled_access_net;
	__u64 scoped;
};

#define LL_READ                                                                                    \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define LL_FILE_RW                                                                                 \
	(LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |                            \
	 LANDLOCK_ACCESS_FS_TRUNCATE | LANDLOCK_ACCESS_FS_IOCTL_DEV)

int
landlock_abi(void)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	return abi < 0 ? 0 : (int)abi;
}

static __u64
fs_rights_for(int abi)
{
	__u64 all = (1ULL << 13) - 1; /* ABI 1: EXECUTE .. MAKE_SYM */
	if (abi >= 2)
		all |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		all |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 5)
		all |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	return all;
}

static int
add_path(int ruleset, const char *path, __u64 access, __u64 handled)
{
	_cleanup_close_ int fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return NEG_ERRNO();

	struct stat st;
	if (fstat(fd, &st) < 0)
		return NEG_ERRNO();
	/* On a file only file rights are valid. */
	if (!S_ISDIR(st.st_mode))
		access &= LANDLOCK_ACCESS_FS_EXECUTE | LL_FILE_RW;

	struct landlock_path_beneath_attr attr = {
	    .allowed_access = access & handled,
	    .parent_fd = fd,
	};
	if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &attr, 0) < 0)
		return NEG_ERRNO();
	return 0;
}

int
landlock_apply(const struct sandbox_spec *spec)
{
	int abi = landlock_abi();
	if (abi <= 0)
		return 0; /* no landlock in this kernel: the mount table alone holds */

	struct ll_ruleset_attr attr = {.handled_access_fs = fs_rights_for(abi)};
	size_t attr_size = offsetof(struct ll_ruleset_attr, handled_access_net);
	if (abi >= 6) {
		attr.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;
		attr_size = sizeof(attr);
	}
	__u64 all = attr.handled_access_fs;

	_cleanup_close_ int ruleset =
	    (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
	if (ruleset < 0)
		return NEG_ERRNO();

	struct {
		const char *path;
		__u64 access;
	} rules[] = {
	    {"/", LL_READ},    {"/tmp", all}, {SANDBOX_HOME, all}, {"/dev", LL_READ | LL_FILE_RW},
	    {"/dev/shm", all},
	};
	int r;
	for (size_t i = 0; i < ARRAY_SIZE(rules); i++) {
		r = add_path(ruleset, rules[i].path, rules[i].access, all);
		if (r < 0 && r != -ENOENT) /* a --rootfs may lack some of them */
			return r;
	}
	for (size_t i = 0; i < spec->n_mounts; i++) {
		if (!spec->mounts[i].writable)
			continue;
		r = add_path(ruleset, spec->mounts[i].target, all, all);
		if (r < 0)
			return r;
	}
	/* Reopening an inherited stdio file by its /proc/self/fd link (`echo x >/dev/stderr`):
	 * pipes and sockets need no rule, ttys and files do, with no more than the rights the
	 * descriptor already carries, so stdin from a file cannot be reopened for writing. */
	for (int fd = 0; fd <= 2; fd++) {
		char path[32];
		struct stat st;
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode)))
			continue;
		__u64 access = S_ISCHR(st.st_mode) ? LANDLOCK_ACCESS_FS_IOCTL_DEV : 0;
		if ((fl & O_ACCMODE) != O_WRONLY)
			access |= LANDLOCK_ACCESS_FS_READ_FILE;
		if ((fl & O_ACCMODE) != O_RDONLY)
			access |= LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		(void)add_path(ruleset, path, access, all);
	}

	if (syscall(SYS_landlock_restrict_self, ruleset, 0) < 0)
		return NEG_ERRNO();
	return 0;
}
