/*
 * layer.c: a group's package layer (built by the host, see src/daemon/envs.c) over the
 * sandbox's system folders.
 *
 * A layer is a folder holding what the environment build produced: usr/ (Debian packages
 * unpacked with dpkg-deb), npm/ (an npm prefix) and venv/ (a Python venv). Inside the sandbox
 * the layer's usr/ lies over the host's /usr in one read-only overlayfs (so /usr/bin/rg simply
 * exists, and the host's /usr shows through wherever the layer has nothing), and the whole
 * layer is bound read-only at SANDBOX_LAYER_DIR, the path it was built at (a venv records its
 * own path). Nothing is writable: the overlay has no upper folder.
 *
 * Runs in the child, before pivot_root, with the layer already opened without following
 * symlinks (mounts_open_sources); the overlay's lower folders are named by /proc/self/fd
 * paths of those fds, so no path the layer's owner could swap is resolved here.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/mount.h>

#include "fd-util.h"
#include "layer.h"
#include "macro.h"
#include "spec.h"

int
sandbox_spec_set_layer(struct sandbox_spec *spec, const char *dir)
{
	static const char *const env[] = {
	    "PATH=" SANDBOX_LAYER_DIR "/venv/bin:" SANDBOX_LAYER_DIR "/npm/bin:" SANDBOX_PATH_ENV,
	    "VIRTUAL_ENV=" SANDBOX_LAYER_DIR "/venv",
	    "NODE_PATH=" SANDBOX_LAYER_DIR "/npm/lib/node_modules",
	};
	char *copy = strdup(dir);
	if (!copy)
		return -ENOMEM;
	free(spec->layer);
	spec->layer = copy;
	for (size_t i = 0; i < ARRAY_SIZE(env); i++) {
		int r = sandbox_spec_set_env(spec, env[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

static int
mkdir_at(int dir, const char *name)
{
	if (mkdirat(dir, name, 0755) < 0 && errno != EEXIST)
		return NEG_ERRNO();
	return 0;
}

int
layer_mount(int root, int layer_fd, char *detail, size_t detail_size)
{
	char usr[32], lower[128], target[32], src[32];
	struct stat st;
	int r;

	/* usr: the layer's over the host's, or the host's alone when the layer has none (an
	 * environment of npm and PyPI packages only). */
	r = mkdir_at(root, "usr");
	if (r < 0)
		return snprintf(detail, detail_size, "mkdir /usr"), r;
	_cleanup_close_ int usr_dst =
	    openat(root, "usr", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (usr_dst < 0)
		return snprintf(detail, detail_size, "open /usr"), NEG_ERRNO();
	snprintf(target, sizeof(target), "/proc/self/fd/%d", usr_dst);

	_cleanup_close_ int layer_usr = -1;
	if (fstatat(layer_fd, "usr", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
		layer_usr = openat(layer_fd, "usr", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (layer_usr >= 0) {
		snprintf(usr, sizeof(usr), "/proc/self/fd/%d", layer_usr);
		/* The first lower folder is the top one: the layer wins over the host. */
		snprintf(lower, sizeof(lower), "lowerdir=%s:/usr", usr);
		if (mount("overlay", target, "overlay", MS_RDONLY | MS_NOSUID | MS_NODEV, lower) <
		    0)
			return snprintf(detail, detail_size, "overlay the layer on /usr"),
			       NEG_ERRNO();
	} else {
		if (mount("/usr", target, NULL, MS_BIND | MS_REC, NULL) < 0)
			return snprintf(detail, detail_size, "bind mount /usr"), NEG_ERRNO();
		struct mount_attr ma = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
		                                    MOUNT_ATTR_NODEV};
		_cleanup_close_ int m = openat(root, "usr", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (m < 0 || syscall(SYS_mount_setattr, m, "", AT_EMPTY_PATH | AT_RECURSIVE, &ma,
		                     sizeof(ma)) < 0)
			return snprintf(detail, detail_size, "make /usr read-only"), NEG_ERRNO();
	}

	/* The whole layer at the path it was built at, read-only. */
	const char *parts[] = {"opt", SANDBOX_LAYER_DIR + 5}; /* "/opt/" + name */
	r = mkdir_at(root, parts[0]);
	_cleanup_close_ int opt =
	    r < 0 ? -1 : openat(root, "opt", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (opt < 0 || mkdir_at(opt, parts[1]) < 0)
		return snprintf(detail, detail_size, "mkdir %s", SANDBOX_LAYER_DIR), -EIO;
	_cleanup_close_ int dst =
	    openat(opt, parts[1], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dst < 0)
		return snprintf(detail, detail_size, "open %s", SANDBOX_LAYER_DIR), NEG_ERRNO();
	snprintf(src, sizeof(src), "/proc/self/fd/%d", layer_fd);
	snprintf(target, sizeof(target), "/proc/self/fd/%d", dst);
	if (mount(src, target, NULL, MS_BIND | MS_REC, NULL) < 0)
		return snprintf(detail, detail_size, "bind %s", SANDBOX_LAYER_DIR), NEG_ERRNO();
	struct mount_attr ma = {.attr_set =
	                            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
	_cleanup_close_ int m = openat(opt, parts[1], O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (m < 0 ||
	    syscall(SYS_mount_setattr, m, "", AT_EMPTY_PATH | AT_RECURSIVE, &ma, sizeof(ma)) < 0)
		return snprintf(detail, detail_size, "make %s read-only", SANDBOX_LAYER_DIR),
		       NEG_ERRNO();
	return 0;
}
