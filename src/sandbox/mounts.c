/*
 * mounts.c: the sandbox's file system, built from tables, then pivoted into.
 *
 * Runs in the child, in its new mount namespace, as the sandbox uid with the namespace's
 * capabilities. The new root is a tmpfs mounted over /tmp of this private namespace (the host
 * never sees it, and nothing is created on the host, so nothing can be left behind).
 *
 * Two kinds of target. Our own (system folders, /etc, /proc, /dev, /tmp, home) lie on file
 * systems this function has just created and that nothing else can write yet, so they are
 * addressed by path. User mounts may land inside other user mounts, i.e. inside folders an
 * agent may have written: those targets are created component by component without following
 * any symlink and opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), and the mount is
 * made on /proc/self/fd/N, so a planted symlink can never redirect a mount or a mkdir.
 *
 * Start-up cost is part of the design (bench/): every mount is paid twice, when made and when
 * the namespace is torn down, so small /etc files are copied rather than bound, and masks need
 * one mount(2) each.
 *
 * Order (the sources were opened by an earlier step) -> root tmpfs -> system folders or
 * --rootfs -> /etc -> /proc (+ masks) -> /dev -> /tmp, home -> user mounts (shallow first) ->
 * root read-only -> pivot_root.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/mount.h>
#include <linux/openat2.h>

#include "fd-util.h"
#include "idmap.h"
#include "internal.h"
#include "log.h"
#include "macro.h"

#define NEWROOT            "/tmp" /* where the new root is assembled, in our private namespace */
#define ROOTFS_MAX_ENTRIES 256

/* Host system folders shared read-only (symlinks such as /bin -> usr/bin are recreated). */
static const char *const system_dirs[] = {
    "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32",
};

/* The part of the host's /etc that programs read at run time. Small regular files are copied
 * into the (later read-only) root; folders are bound read-only; symlinks are recreated.
 * Deliberately absent: passwd, shadow, group (generated instead), ssh/, ssl/private/,
 * machine-id, hostname, environment, sudoers, and anything that may hold credentials
 * (gitconfig, pip.conf, npmrc, netrc, ...). */
static const char *const etc_entries[] = {
    "alternatives", /* Debian's awk, editor, ... are symlinks through it */
    "bash.bashrc",  "debian_version", "gai.conf",      "host.conf",       "inputrc",
    "ld.so.cache",  "ld.so.conf",     "locale.alias",  "localtime",       "magic",
    "magic.mime",   "mime.types",     "nsswitch.conf", "os-release",      "profile",
    "protocols",    "services",       "ssl/certs",     "ssl/openssl.cnf", "timezone",
};

#define ETC_COPY_MAX (256 * 1024) /* larger files are bound instead */

/* /proc entries hidden: files behind /dev/null (read as empty, writes vanish), folders under
 * an empty read-only tmpfs. Docker's masked paths plus the kernel symbol and message tables.
 * The type is known, so no stat is needed; an entry this kernel lacks is skipped. */
static const struct {
	const char *name;
	bool dir;
} proc_masked[] = {
    /* clang-format off */
	{ "acpi", true },          { "asound", true },       { "scsi", true },
	{ "interrupts", false },   { "kallsyms", false },    { "kcore", false },
	{ "keys", false },         { "kmsg", false },        { "latency_stats", false },
	{ "sched_debug", false },  { "sysrq-trigger", false }, { "timer_list", false },
	{ "timer_stats", false },
    /* clang-format on */
};

/* /proc entries made read-only. */
static const char *const proc_readonly[] = {"bus", "fs", "irq", "sys"};

static const char *const dev_nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};

static const struct {
	const char *name;
	const char *target;
} dev_links[] = {
    {"fd", "/proc/self/fd"},       {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
    {"stderr", "/proc/self/fd/2"}, {"ptmx", "pts/ptmx"},
};

#define ATTR_RO (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)

struct builder {
	struct sandbox_ctx *ctx;
	int root;     /* O_PATH fd of the new root */
	char *detail; /* ctx->err_detail */
};

static int
fail_at(struct builder *b, int r, const char *what, const char *path)
{
	snprintf(b->detail, sizeof(b->ctx->err_detail), "%s %s", what, path);
	return r;
}

static void
fd_path(char buf[32], int fd)
{
	snprintf(buf, 32, "/proc/self/fd/%d", fd);
}

/* NEWROOT + path, for our own targets (see the top of the file). */
static int
root_path(char *buf, size_t size, const char *path)
{
	if ((size_t)snprintf(buf, size, NEWROOT "%s", path) >= size)
		return -ENAMETOOLONG;
	return 0;
}

/* mkdir of one of our own folders (parents must exist). */
static int
mkdir_own(struct builder *b, const char *path)
{
	if (mkdirat(b->root, path + 1, 0755) < 0 && errno != EEXIST)
		return fail_at(b, NEG_ERRNO(), "mkdir", path);
	return 0;
}

/* mount(2) onto one of our own targets, by path. */
static int
mount_own(struct builder *b, const char *src, const char *path, const char *fstype,
          unsigned long flags, const char *options)
{
	char dst[SANDBOX_PATH_MAX + 16];
	int r = root_path(dst, sizeof(dst), path);
	if (r < 0)
		return fail_at(b, r, "mount", path);
	if (mount(src, dst, fstype, flags, options) < 0)
		return fail_at(b, NEG_ERRNO(), "mount", path);
	return 0;
}

/* Copies a small host file into the new root (mode 0644). */
static int
copy_file(struct builder *b, int host_dir, const char *name, const char *path, off_t size)
{
	_cleanup_close_ int in = openat(host_dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		return fail_at(b, NEG_ERRNO(), "open", path);
	_cleanup_close_ int out =
	    openat(b->root, path + 1, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (out < 0)
		return fail_at(b, NEG_ERRNO(), "create", path);
	while (size > 0) {
		ssize_t n = sendfile(out, in, NULL, (size_t)size);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return fail_at(b, n < 0 ? NEG_ERRNO() : -EIO, "copy", path);
		size -= n;
	}
	return 0;
}

/* Opens path (relative to the new root, leading '/' ignored) without following symlinks and
 * without leaving the root. */
static int
open_beneath(struct builder *b, const char *path, int flags)
{
	struct open_how how = {
	    .flags = (uint64_t)(flags | O_CLOEXEC),
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	while (*path == '/')
		path++;
	int fd = (int)syscall(SYS_openat2, b->root, *path ? path : ".", &how, sizeof(how));
	return fd < 0 ? NEG_ERRNO() : fd;
}

/* Creates path below the new root, folders on the way included, as a folder or an empty
 * file. Each component is checked: a symlink anywhere is refused (ELOOP/ENOTDIR). */
static int
make_beneath(struct builder *b, const char *path, bool dir)
{
	char buf[SANDBOX_PATH_MAX];
	if ((size_t)snprintf(buf, sizeof(buf), "%s", path) >= sizeof(buf))
		return -ENAMETOOLONG;

	_cleanup_close_ int cur = dup(b->root);
	if (cur < 0)
		return NEG_ERRNO();
	char *p = buf;
	while (*p == '/')
		p++;
	while (*p) {
		char *slash = strchr(p, '/');
		bool last = !slash;
		if (slash)
			*slash = '\0';
		if (last && !dir) {
			/* An existing entry is never opened: in a writable mounted folder it may be
			 * a FIFO an agent planted, and opening that would block the set-up for
			 * good. It must be a plain file; otherwise one is created, exclusively. */
			struct stat st;
			if (fstatat(cur, p, &st, AT_SYMLINK_NOFOLLOW) == 0)
				return S_ISREG(st.st_mode) ? 0 : -EEXIST; /* see bind_at */
			if (errno != ENOENT)
				return NEG_ERRNO();
			int fd = openat(cur, p,
			                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK |
			                    O_CLOEXEC,
			                0644);
			if (fd < 0)
				return NEG_ERRNO();
			close(fd);
			return 0;
		}
		if (mkdirat(cur, p, 0755) < 0 && errno != EEXIST)
			return NEG_ERRNO();
		int next = openat(cur, p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0)
			return NEG_ERRNO();
		close(cur);
		cur = next;
		if (last)
			break;
		p = slash + 1;
		while (*p == '/')
			p++;
	}
	return 0;
}

static int
setattr_fd(int fd, uint64_t attr, bool recursive)
{
	struct mount_attr ma = {.attr_set = attr};
	unsigned flags = AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0);
	if (syscall(SYS_mount_setattr, fd, "", flags, &ma, sizeof(ma)) < 0)
		return NEG_ERRNO();
	return 0;
}

/* Sets attributes on the mount now at path (re-opened, so the fd is the mount's root). */
static int
setattr_path(struct builder *b, const char *path, uint64_t attr, bool recursive)
{
	_cleanup_close_ int fd = open_beneath(b, path, O_PATH);
	if (fd < 0)
		return fail_at(b, fd, "reopen", path);
	int r = setattr_fd(fd, attr, recursive);
	return r < 0 ? fail_at(b, r, "set attributes on", path) : 0;
}

/* Binds the object behind src_fd at path (created as needed) with attributes attr. */
static int
bind_at(struct builder *b, int src_fd, const char *path, bool dir, uint64_t attr)
{
	char src[32], dst[32];
	int r = make_beneath(b, path, dir);
	if (r == -EEXIST && !dir)
		return fail_at(b, -EINVAL, "mount point exists and is not a regular file:", path);
	if (r < 0)
		return fail_at(b, r, "create mount point", path);

	_cleanup_close_ int target = open_beneath(b, path, O_PATH);
	if (target < 0)
		return fail_at(b, target, "open mount point", path);
	fd_path(src, src_fd);
	fd_path(dst, target);
	if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
		return fail_at(b, NEG_ERRNO(), "bind mount", path);
	return attr ? setattr_path(b, path, attr, true) : 0;
}

/* Attaches an idmapped tree the launcher made (its attributes are set) at path. */
static int
attach_at(struct builder *b, int tree_fd, const char *path, bool dir)
{
	int r = make_beneath(b, path, dir);
	if (r == -EEXIST && !dir)
		return fail_at(b, -EINVAL, "mount point exists and is not a regular file:", path);
	if (r < 0)
		return fail_at(b, r, "create mount point", path);
	_cleanup_close_ int target = open_beneath(b, path, O_PATH);
	if (target < 0)
		return fail_at(b, target, "open mount point", path);
	r = idmap_attach(tree_fd, target);
	return r < 0 ? fail_at(b, r, "attach idmapped mount", path) : 0;
}

static int
symlink_beneath(struct builder *b, const char *target, const char *path)
{
	if (symlinkat(target, b->root, path + (path[0] == '/')) < 0 && errno != EEXIST)
		return fail_at(b, NEG_ERRNO(), "symlink", path);
	return 0;
}

/* Mirrors one entry of a host folder: symlinks copied, folders bound read-only, files bound
 * read-only or, with copy_small, copied when small. */
static int
mirror_entry(struct builder *b, int host_dir, const char *name, const char *path, bool copy_small)
{
	struct stat st;
	if (fstatat(host_dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : fail_at(b, NEG_ERRNO(), "stat", path);

	if (S_ISLNK(st.st_mode)) {
		char link[PATH_MAX];
		ssize_t n = readlinkat(host_dir, name, link, sizeof(link) - 1);
		if (n < 0)
			return fail_at(b, NEG_ERRNO(), "readlink", path);
		link[n] = '\0';
		return symlink_beneath(b, link, path);
	}
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
		return 0;
	if (S_ISREG(st.st_mode) && copy_small && st.st_size <= ETC_COPY_MAX)
		return copy_file(b, host_dir, name, path, st.st_size);
	_cleanup_close_ int src = openat(host_dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (src < 0)
		return fail_at(b, NEG_ERRNO(), "open", path);
	return bind_at(b, src, path, S_ISDIR(st.st_mode), ATTR_RO);
}


/* With a proxy: its names (model.clawbox.internal) resolve to our loopback, where init hands
 * port 80's connections to it: /etc/hosts again, with them added. */
static int
write_internal_names(struct builder *b, int etc)
{
	const char *const *names = b->ctx->spec->internal_names;
	if (!names || !names[0] || b->ctx->proxy_fd < 0)
		return 0;
	char text[2048];
	size_t n = (size_t)snprintf(text, sizeof(text), "127.0.0.1\tlocalhost " SANDBOX_HOSTNAME
	                                                "\n::1\tlocalhost\n127.0.0.1\t");
	for (size_t i = 0; names[i]; i++) {
		if (n + strlen(names[i]) + 2 >= sizeof(text))
			return fail_at(b, -E2BIG, "write /etc/", "hosts");
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s%s", i ? " " : "", names[i]);
	}
	snprintf(text + n, sizeof(text) - n, "\n");
	int r = write_file_at(etc, "hosts", text, 0644);
	return r < 0 ? fail_at(b, r, "write /etc/", "hosts") : 0;
}

static int
build_system(struct builder *b)
{
	_cleanup_close_ int host_root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	_cleanup_close_ int host_etc = open("/etc", O_PATH | O_DIRECTORY | O_CLOEXEC);
	char path[SANDBOX_PATH_MAX];
	int r;

	if (host_root < 0 || host_etc < 0)
		return fail_at(b, NEG_ERRNO(), "open", "/ or /etc");
	for (size_t i = 0; i < ARRAY_SIZE(system_dirs); i++) {
		snprintf(path, sizeof(path), "/%s", system_dirs[i]);
		r = mirror_entry(b, host_root, system_dirs[i], path, false);
		if (r < 0)
			return r;
	}
	r = mkdir_own(b, "/etc");
	if (r < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(etc_entries); i++) {
		snprintf(path, sizeof(path), "/etc/%s", etc_entries[i]);
		const char *slash = strrchr(path, '/');
		if (slash != path + 4) { /* a nested entry such as ssl/certs: its parent first */
			char parent[SANDBOX_PATH_MAX];
			snprintf(parent, sizeof(parent), "%.*s", (int)(slash - path), path);
			r = mkdir_own(b, parent);
			if (r < 0)
				return r;
		}
		r = mirror_entry(b, host_etc, etc_entries[i], path, true);
		if (r < 0)
			return r;
	}

	/* Generated: who we are, and no network but loopback. */
	static const struct {
		const char *name;
		const char *content;
	} generated[] = {
	    {"passwd", "root:x:0:0:root:/root:/usr/sbin/nologin\n" SANDBOX_USER
	               ":x:1000:1000:sandbox:" SANDBOX_HOME ":/bin/sh\n"
	               "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"},
	    {"group", "root:x:0:\n" SANDBOX_USER ":x:1000:\nnogroup:x:65534:\n"},
	    {"hostname", SANDBOX_HOSTNAME "\n"},
	    {"hosts", "127.0.0.1\tlocalhost " SANDBOX_HOSTNAME "\n::1\tlocalhost\n"},
	};
	_cleanup_close_ int etc = open_beneath(b, "/etc", O_PATH | O_DIRECTORY);
	if (etc < 0)
		return fail_at(b, etc, "open", "/etc");
	for (size_t i = 0; i < ARRAY_SIZE(generated); i++) {
		r = write_file_at(etc, generated[i].name, generated[i].content, 0644);
		if (r < 0)
			return fail_at(b, r, "write /etc/", generated[i].name);
	}
	return write_internal_names(b, etc);
}

/* --rootfs: every top-level entry of DIR but the ones the sandbox provides itself. */
static int
build_rootfs(struct builder *b)
{
	static const char *const skip[] = {".", "..", "proc", "dev", "sys", "tmp", "home"};
	int dfd = openat(b->ctx->rootfs.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return fail_at(b, NEG_ERRNO(), "open", "--rootfs");
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return fail_at(b, -ENOMEM, "read", "--rootfs");
	}
	int r = 0, count = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		bool skipped = false;
		for (size_t i = 0; i < ARRAY_SIZE(skip); i++)
			skipped |= strcmp(de->d_name, skip[i]) == 0;
		if (skipped)
			continue;
		if (++count > ROOTFS_MAX_ENTRIES) {
			r = fail_at(b, -E2BIG, "too many top-level entries in", "--rootfs");
			break;
		}
		char path[SANDBOX_PATH_MAX];
		if ((size_t)snprintf(path, sizeof(path), "/%s", de->d_name) >= sizeof(path))
			continue;
		r = mirror_entry(b, b->ctx->rootfs.fd, de->d_name, path, false);
		if (r < 0)
			break;
	}
	closedir(d);
	return r;
}

static int
build_proc(struct builder *b)
{
	char path[64];
	int r;

	/* Needs the host's /proc still visible in this namespace (the kernel refuses a new
	 * procfs otherwise), hence before pivot_root. */
	r = mkdir_own(b, "/proc");
	if (r < 0)
		return r;
	r = mount_own(b, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	if (r < 0)
		return r;

	_cleanup_close_ int proc = open_beneath(b, "/proc", O_PATH | O_DIRECTORY);
	if (proc < 0)
		return fail_at(b, proc, "open", "/proc");
	for (size_t i = 0; i < ARRAY_SIZE(proc_masked); i++) {
		snprintf(path, sizeof(path), "/proc/%s", proc_masked[i].name);
		if (proc_masked[i].dir)
			r = mount_own(b, "tmpfs", path, "tmpfs",
			              MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
			              "size=4k,nr_inodes=1,mode=0555");
		else
			r = mount_own(b, "/dev/null", path, NULL, MS_BIND, NULL);
		if (r == -ENOENT)
			continue; /* not in this kernel */
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < ARRAY_SIZE(proc_readonly); i++) {
		char full[96];
		snprintf(path, sizeof(path), "/proc/%s", proc_readonly[i]);
		if (faccessat(proc, proc_readonly[i], F_OK, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		root_path(full, sizeof(full), path);
		r = mount_own(b, full, path, NULL, MS_BIND | MS_REC, NULL);
		if (r < 0)
			return r;
		r = mount_own(b, NULL, path, NULL,
		              MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
		              NULL);
		if (r < 0)
			return r;
	}
	return 0;
}

static int
build_dev(struct builder *b)
{
	char path[64], host[64];
	int r;

	r = mkdir_own(b, "/dev");
	if (r < 0)
		return r;
	r = mount_own(b, "tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC,
	              "mode=0755,size=64k,nr_inodes=64");
	if (r < 0)
		return r;
	_cleanup_close_ int dev = open_beneath(b, "/dev", O_PATH | O_DIRECTORY);
	if (dev < 0)
		return fail_at(b, dev, "open", "/dev");
	for (size_t i = 0; i < ARRAY_SIZE(dev_nodes); i++) {
		snprintf(path, sizeof(path), "/dev/%s", dev_nodes[i]);
		snprintf(host, sizeof(host), "/dev/%s", dev_nodes[i]);
		int fd = openat(dev, dev_nodes[i], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0)
			return fail_at(b, NEG_ERRNO(), "create", path);
		close(fd);
		/* A user namespace cannot mknod: the host's node is bound over the file. */
		r = mount_own(b, host, path, NULL, MS_BIND, NULL);
		if (r < 0)
			return r;
	}
	if (b->ctx->spec->kvm_device) {
		int fd = openat(dev, "kvm", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0)
			return fail_at(b, NEG_ERRNO(), "create", "/dev/kvm");
		close(fd);
		r = mount_own(b, b->ctx->spec->kvm_device, "/dev/kvm", NULL, MS_BIND, NULL);
		if (r < 0)
			return r;
	}
	if (mkdirat(dev, "pts", 0755) < 0 || mkdirat(dev, "shm", 01777) < 0)
		return fail_at(b, NEG_ERRNO(), "mkdir", "/dev/pts or /dev/shm");
	/* A devpts of our own: the command's terminals are not the host's. */
	r = mount_own(b, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
	              "newinstance,ptmxmode=0666,mode=0620");
	if (r < 0)
		return r;
	r = mount_own(b, "tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
	              "mode=1777");
	if (r < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(dev_links); i++) {
		snprintf(path, sizeof(path), "/dev/%s", dev_links[i].name);
		r = symlink_beneath(b, dev_links[i].target, path);
		if (r < 0)
			return r;
	}
	/* The folder itself read-only; the nodes, pts and shm are mounts of their own. */
	return mount_own(b, NULL, "/dev", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC,
	                 "mode=0755");
}

static int
build_scratch(struct builder *b)
{
	char opts[96];
	int r;

	/* Sized like the memory limit: its pages are charged to the cgroup anyway, and without
	 * a cgroup (rlimit fallback) this is what stops a disk-filling loop. */
	snprintf(opts, sizeof(opts), "mode=1777,size=%" PRIu64 ",nr_inodes=262144",
	         b->ctx->spec->memory_bytes);
	r = mkdir_own(b, "/tmp");
	if (r >= 0)
		r = mkdir_own(b, "/home");
	if (r >= 0)
		r = mkdir_own(b, SANDBOX_HOME);
	if (r < 0)
		return r;
	r = mount_own(b, "tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts);
	if (r < 0)
		return r;
	snprintf(opts, sizeof(opts), "mode=0700,size=%" PRIu64 ",nr_inodes=262144",
	         b->ctx->spec->memory_bytes);
	return mount_own(b, "tmpfs", SANDBOX_HOME, "tmpfs", MS_NOSUID | MS_NODEV, opts);
}

static int
cmp_mount_depth(const void *a, const void *b)
{
	const struct sandbox_mount *const *x = a, *const *y = b;
	return strcmp((*x)->target, (*y)->target);
}

/* git refuses a repository whose owner is not the user ("dubious ownership"), and mounted
 * folders may show another owner (read-only mounts, file systems that cannot idmap). The check
 * protects a user from another user's repository configuration; inside the sandbox there is
 * only the sandbox's user, and every repository is one the caller chose to share, so every
 * folder is trusted. /etc/gitconfig (the system scope) is where git honours that. */
static int
write_gitconfig(struct builder *b)
{
	if (b->ctx->spec->rootfs)
		return 0; /* --rootfs brings its own /etc */
	_cleanup_close_ int etc = open_beneath(b, "/etc", O_PATH | O_DIRECTORY);
	if (etc < 0)
		return fail_at(b, etc, "open", "/etc");
	int r = write_file_at(etc, "gitconfig", "[safe]\n\tdirectory = *\n", 0644);
	return r < 0 ? fail_at(b, r, "write", "/etc/gitconfig") : 0;
}

static int
build_user_mounts(struct builder *b)
{
	const struct sandbox_spec *spec = b->ctx->spec;
	const struct sandbox_mount *order[SANDBOX_MAX_MOUNTS];
	size_t idx[SANDBOX_MAX_MOUNTS];
	int r;

	/* Sorted by path, a parent comes before anything below it ("/a" < "/a/b"). */
	for (size_t i = 0; i < spec->n_mounts; i++)
		order[i] = &spec->mounts[i];
	qsort(order, spec->n_mounts, sizeof(order[0]), cmp_mount_depth);
	for (size_t i = 0; i < spec->n_mounts; i++)
		idx[i] = (size_t)(order[i] - spec->mounts);
	r = write_gitconfig(b);
	if (r < 0)
		return r;

	for (size_t i = 0; i < spec->n_mounts; i++) {
		const struct sandbox_mount *m = order[i];
		const struct resolved_source *src = &b->ctx->sources[idx[i]];
		uint64_t attr = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
		if (!m->writable)
			attr |= MOUNT_ATTR_RDONLY;
		if (src->tree_fd >= 0)
			r = attach_at(b, src->tree_fd, m->target, src->is_dir);
		else
			r = bind_at(b, src->fd, m->target, src->is_dir, attr);
		if (r < 0)
			return r;
	}
	return 0;
}

static int
pivot(struct builder *b)
{
	/* Everything is in place: the root's own tmpfs becomes read-only. */
	int r =
	    setattr_fd(b->root, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, false);
	if (r < 0)
		return fail_at(b, r, "make read-only", "/");
	if (fchdir(b->root) < 0)
		return fail_at(b, NEG_ERRNO(), "chdir", "new root");
	/* pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves
	 * only the new root, without needing a folder for the old one. */
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return fail_at(b, NEG_ERRNO(), "pivot_root", "");
	if (umount2(".", MNT_DETACH) < 0)
		return fail_at(b, NEG_ERRNO(), "detach", "old root");
	if (chdir("/") < 0)
		return fail_at(b, NEG_ERRNO(), "chdir", "/");
	return 0;
}

int
mounts_open_sources(struct sandbox_ctx *ctx)
{
	const struct sandbox_spec *spec = ctx->spec;
	struct resolved_source *list[SANDBOX_MAX_MOUNTS + 1];
	size_t n = 0;

	for (size_t i = 0; i < spec->n_mounts; i++)
		list[n++] = &ctx->sources[i];
	if (spec->rootfs)
		list[n++] = &ctx->rootfs;

	for (size_t i = 0; i < n; i++) {
		struct resolved_source *s = list[i];
		struct open_how how = {
		    .flags = O_PATH | O_CLOEXEC,
		    .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
		};
		struct stat st;
		/* The launcher resolved the path: from here on no symlink is followed, and the
		 * inode must be the one it checked. */
		s->fd = (int)syscall(SYS_openat2, AT_FDCWD, s->path, &how, sizeof(how));
		if (s->fd < 0) {
			snprintf(ctx->err_detail, sizeof(ctx->err_detail), "open mount source %s",
			         s->path);
			return NEG_ERRNO();
		}
		if (fstat(s->fd, &st) < 0 || st.st_dev != s->dev || st.st_ino != s->ino) {
			snprintf(ctx->err_detail, sizeof(ctx->err_detail),
			         "mount source %s changed during setup", s->path);
			return -ESTALE;
		}
	}
	return 0;
}

int
mounts_build(struct sandbox_ctx *ctx)
{
	struct builder b = {.ctx = ctx, .root = -1, .detail = ctx->err_detail};
	int r;

	/* Nothing we mount may propagate back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return fail_at(&b, NEG_ERRNO(), "make private", "/");

	if (mount("tmpfs", NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") < 0)
		return fail_at(&b, NEG_ERRNO(), "mount new root on", NEWROOT);
	b.root = open(NEWROOT, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (b.root < 0)
		return fail_at(&b, NEG_ERRNO(), "open", "new root");

	static const struct {
		const char *name;
		int (*run)(struct builder *b);
	} phases[] = {
	    {"system folders and /etc", build_system}, /* or build_rootfs */
	    {"/proc", build_proc},
	    {"/dev", build_dev},
	    {"/tmp and home", build_scratch},
	    {"user mounts", build_user_mounts},
	    {"pivot_root", pivot},
	};
	r = 0;
	for (size_t i = 0; i < ARRAY_SIZE(phases) && r >= 0; i++) {
		int (*run)(struct builder *) = phases[i].run;
		if (run == build_system && ctx->spec->rootfs)
			run = build_rootfs;
		r = run(&b);
		log_debug("sandbox: file system: %s", phases[i].name);
	}

	close(b.root);
	for (size_t i = 0; i < ctx->spec->n_mounts; i++)
		close(ctx->sources[i].fd);
	if (ctx->spec->rootfs)
		close(ctx->rootfs.fd);
	return r;
}
