/*
 * internal.h: state shared by the sandbox's two sides. The launcher (host side) fills it,
 * clone3() copies it into the child, and the child's steps read it. Nothing in here is written
 * by the child and read back by the launcher; the child speaks only through report_fd.
 */
#ifndef CLAWBOX_SANDBOX_INTERNAL_H
#define CLAWBOX_SANDBOX_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cgroup.h"
#include "macro.h"
#include "sandbox.h"
#include "spec.h"

/* A mount source resolved on the host before the clone: the child opens `path` again without
 * following any symlink and checks it is still the same inode, so nothing can be swapped in
 * between the check and the bind. */
struct resolved_source {
	char *path; /* owned: realpath()'s result */
	dev_t dev;
	ino_t ino;
	bool is_dir;
	int fd;      /* opened by the child */
	int tree_fd; /* -1, or an idmapped copy of the mount made by the launcher (idmap.h) */
};

struct sandbox_ctx {
	const struct sandbox_spec *spec;
	/* A heap copy of spec->argv: the child wipes the process's original argv strings. */
	char **argv;

	bool as_root;      /* launched by root: a dedicated outside uid */
	uid_t outside_uid; /* what SANDBOX_UID maps to */
	gid_t outside_gid;

	struct resolved_source sources[SANDBOX_MAX_MOUNTS];
	struct resolved_source rootfs;

	struct cgroup cg;
	bool rlimit_fallback; /* no usable cgroup: limits by rlimit */

	int proxy_fd;        /* child end of the socket to the egress proxy, or -1 */
	int proxy_listen_fd; /* init's listener on SANDBOX_PROXY_PORT, or -1 */
	int proxy_http_fd;   /* init's listener on 127.0.0.1:80 (NAME.clawbox.internal), or -1 */
	int proxy_https_fd;  /* init's listener on 127.0.0.1:443 (services' hosts), or -1 */
	int sync_fd;         /* child end: the launcher writes one byte when the child may go on */
	int report_fd;       /* child end: struct sandbox_report on failure, CLOEXEC */

	char err_detail[256]; /* the object a failing step was working on */
};

/* What the child sends when setup or exec fails. Smaller than PIPE_BUF: one atomic write. */
struct sandbox_report {
	int32_t status;
	int32_t err;
	char msg[SANDBOX_MSG_MAX];
};

/* The uid:gid that root-launched sandboxes run as on the host (see docs/ARCHITECTURE.md). */
#ifndef CLAWBOX_SANDBOX_HOST_ID
#define CLAWBOX_SANDBOX_HOST_ID 65533
#endif

/* child.c: everything from clone() to exec, in the new namespaces. Never returns. */
_noreturn_ void sandbox_child_main(struct sandbox_ctx *ctx);

/* Writes a report and exits with status. For the child only. */
_noreturn_ void sandbox_child_fail(struct sandbox_ctx *ctx, int status, int err, const char *fmt,
                                   ...) _printf_(4, 5);

/* mounts.c: builds the sandbox's file system and pivots into it. */
int mounts_open_sources(struct sandbox_ctx *ctx);
int mounts_build(struct sandbox_ctx *ctx);

/* init.c: pid 1 of the sandbox: starts the command and reaps. Never returns. */
_noreturn_ void sandbox_init_main(struct sandbox_ctx *ctx);

/* exec.c: the command's last steps (limits, privileges, landlock, seccomp) and exec. */
_noreturn_ void sandbox_exec_command(struct sandbox_ctx *ctx);

/* caps.c */
int caps_drop_all(void);
int set_no_new_privs(void);

/* landlock.c: the kernel's landlock ABI (0 if none), and the ruleset for the command. */
int landlock_abi(void);
int landlock_apply(const struct sandbox_spec *spec);

#endif
