/*
 * idmap.h: idmapped mounts, so that a host folder's owner and the sandbox's user are one.
 *
 * A detached copy of a folder's mount (open_tree(OPEN_TREE_CLONE)) gets an id mapping from a
 * user namespace made for it (mount_setattr(MOUNT_ATTR_IDMAP)): the folder owner's uid and
 * gid on disk are seen as `to_uid`/`to_gid` through the mount, and files created through it by
 * `to_uid` are stored as the owner's. Any other on-disk owner is unmapped through the mount
 * (seen as nobody, never created). Needs root (CAP_SYS_ADMIN in the initial user namespace) and
 * a file system that supports idmapped mounts.
 */
#ifndef CLAWBOX_IDMAP_H
#define CLAWBOX_IDMAP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* A user namespace whose only mapping is from_uid/from_gid (inside) -> to_uid/to_gid (outside).
 * Returns an O_CLOEXEC fd of it, or -errno. Costs a short-lived child process. */
int idmap_userns_open(uid_t from_uid, gid_t from_gid, uid_t to_uid, gid_t to_gid);

/* A detached, recursive copy of the mount tree at dirfd (an O_PATH fd of a folder or file),
 * idmapped through userns_fd, with the mount attributes attr (MOUNT_ATTR_*) set too. Returns
 * the tree's O_CLOEXEC fd, to be attached with move_mount(), or -errno: -EINVAL or -EOPNOTSUPP
 * when the file system cannot idmap. */
int idmap_clone_tree(int dirfd, int userns_fd, uint64_t attr);

/* Whether the file system of path supports idmapped mounts for this process: 1 yes, 0 no,
 * -errno when it could not be tried (e.g. not root). */
int idmap_supported(const char *path);

/* Moves a tree from idmap_clone_tree() onto the object at target_fd (any fd, O_PATH will do). */
int idmap_attach(int tree_fd, int target_fd);

#endif
