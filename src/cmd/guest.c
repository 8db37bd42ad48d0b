/*
 * guest.c: `clawbox` as the microVM's init (pid 1, started as /init from the initramfs that
 * tools/mkguest.sh builds). It mounts what a kernel gives no one by itself (/proc, /sys,
 * devtmpfs, cgroup2 with its controllers enabled), loads the virtio and 9p drivers in the
 * order mkguest.sh wrote, says it is ready on the console, and runs sandboxes with the same
 * code as on the host.
 *
 * With a clawbox.mux virtio-serial port (what `clawbox run --vm` gives it) it serves the
 * host's run requests (src/vm/guest-runs.c) until the host asks for a power-off. Without one,
 * it runs the command on the kernel command line (clawbox.run=PATH, in a sandbox whose root is
 * the initramfs), says its status on the console ("clawbox-guest: exit N") and powers off:
 * the boot benchmark and the first tests use that.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <dirent.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "commands.h"
#include "dbuf.h"
#include "json-util.h"
#include "fd-util.h"
#include "guest-runs.h"
#include "log.h"
#include "macro.h"
#include "sandbox.h"

static int console_fd = 1;

/* One line on the console: what, then arg. */
static void
say(const char *what, const char *arg)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "clawbox-guest: %s%s\n", what, arg);
	if (n > 0)
		(void)write_all(console_fd, line,
		                (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* The /dev node of the virtio-serial port the host named `name`, or -ENOENT. */
static int
find_port(const char *name, char *dev, size_t size)
{
	DIR *d = opendir("/sys/class/virtio-ports");
	if (!d)
		return -ENOENT;
	struct dirent *e;
	int r = -ENOENT;
	while ((e = readdir(d))) {
		char path[300], got[128];
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
		ssize_t n = read_file_at(AT_FDCWD, path, got, sizeof(got));
		while (n > 0 && got[n - 1] == '\n')
			got[--n] = '\0';
		if (n > 0 && strcmp(got, name) == 0) {
			snprintf(dev, size, "/dev/%s", e->d_name);
			r = 0;
			break;
		}
	}
	closedir(d);
	return r;
}

/* The host's /usr, shared read-only over 9p, is the guest's system folders: the sandbox
 * inside binds them as it does on the host. */
static void
mount_system(void)
{
	(void)mkdir("/usr", 0755);
	if (mount("usr", "/usr", "9p", MS_RDONLY | MS_NOSUID | MS_NODEV,
	          "trans=virtio,version=9p2000.L,cache=loose") < 0) {
		say("cannot mount the host's /usr: ", strerror(errno));
		return;
	}
	static const char *const links[][2] = {{"usr/bin", "/bin"},
	                                       {"usr/sbin", "/sbin"},
	                                       {"usr/lib", "/lib"},
	                                       {"usr/lib64", "/lib64"}};
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		if (symlink(links[i][0], links[i][1]) < 0 && errno != EEXIST)
			say("cannot link ", links[i][1]);
	(void)mkdir("/etc", 0755);
}

/* Agent mode: the host's requests over the clawbox.mux port (guest-runs.c). */
static int
serve_host(const char *dev, const char *release)
{
	_cleanup_close_ int port = open(dev, O_RDWR | O_CLOEXEC);
	if (port < 0)
		return say("cannot open the host's port: ", strerror(errno)), SANDBOX_EXIT_SETUP;
	mount_system();
	int r = guest_serve(port, release);
	if (r < 0)
		say("the host's link broke: ", strerror(-r));
	return r < 0 ? SANDBOX_EXIT_SETUP : 0;
}

/* finit_module() each driver in the order mkguest.sh found their dependencies in. A driver
 * that fails to load is said on the console; the VM goes on (a built-in one reports EEXIST). */
static int
load_modules(void)
{
	char order[4096];
	ssize_t n = read_file_at(AT_FDCWD, "/modules/order", order, sizeof(order));
	if (n < 0)
		return (int)n;
	for (char *p = order; *p;) {
		size_t len = strcspn(p, "\n");
		char path[256];
		snprintf(path, sizeof(path), "/modules/%.*s", (int)len, p);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST))
			say("cannot load ", path);
		if (fd >= 0)
			close(fd);
		p += len;
		p += strspn(p, "\n");
	}
	return 0;
}

/* The initramfs root ("rootfs") is not a mount a new mount namespace can build on: move a
 * tmpfs over / with this binary in it, as switch_root does, and chroot into it. */
static int
switch_to_tmpfs(void)
{
	if (mkdir("/newroot", 0755) < 0 && errno != EEXIST)
		return NEG_ERRNO();
	if (mount("tmpfs", "/newroot", "tmpfs", 0, "mode=0755") < 0)
		return NEG_ERRNO();
	static const char *const dirs[] = {"proc", "sys", "dev", "tmp", "mnt", "run"};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char d[32];
		snprintf(d, sizeof(d), "/newroot/%s", dirs[i]);
		(void)mkdir(d, 0755);
	}
	_cleanup_close_ int in = open("/init", O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int out =
	    open("/newroot/init", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	if (in < 0 || out < 0)
		return -EIO;
	char buf[65536];
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0)
			return NEG_ERRNO();
		if (n == 0)
			break;
		int r = write_all(out, buf, (size_t)n);
		if (r < 0)
			return r;
	}
	if (chdir("/newroot") < 0 || mount("/newroot", "/", NULL, MS_MOVE, NULL) < 0 ||
	    chroot(".") < 0 || chdir("/") < 0)
		return NEG_ERRNO();
	return 0;
}

/* The kernel command line's clawbox.run=VALUE, or NULL. */
static char *
cmdline_value(const char *key, char *buf, size_t size)
{
	char line[4096];
	ssize_t n = read_file_at(AT_FDCWD, "/proc/cmdline", line, sizeof(line));
	if (n <= 0)
		return NULL;
	size_t klen = strlen(key);
	for (char *p = line; *p;) {
		size_t len = strcspn(p, " \n");
		if (len > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
			snprintf(buf, size, "%.*s", (int)(len - klen - 1), p + klen + 1);
			return buf;
		}
		p += len;
		p += strspn(p, " \n");
	}
	return NULL;
}

int
cmd_guest(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	log_set_prefix("clawbox-guest");
	(void)load_modules(); /* from the initramfs, before it is left behind */
	int sw = switch_to_tmpfs();
	if (sw < 0)
		say("cannot leave the initramfs: ", strerror(-sw));
	(void)mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	(void)mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	(void)mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	(void)mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	(void)mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	(void)write_file_at(AT_FDCWD, "/sys/fs/cgroup/cgroup.subtree_control", "+memory +pids +cpu",
	                    0644);
	console_fd = dup(1);
	if (console_fd < 0)
		console_fd = 1;
	struct utsname u;
	uname(&u);
	say("ready kernel=", u.release);

	char cmd[512], port_dev[64];
	int status = 0;
	if (find_port("clawbox.mux", port_dev, sizeof(port_dev)) == 0) {
		status = serve_host(port_dev, u.release);
	} else if (cmdline_value("clawbox.run", cmd, sizeof(cmd))) {
		struct sandbox_spec spec;
		struct sandbox_result res;
		char *args[] = {cmd, NULL};
		sandbox_spec_init(&spec);
		sandbox_spec_default_env(&spec, "dumb");
		char dbg[8];
		if (cmdline_value("clawbox.debug", dbg, sizeof(dbg))) {
			spec.debug = true;
			log_set_debug(true);
		}
		spec.argv = args;
		spec.rootfs = strdup("/");
		sandbox_run(&spec, &res);
		if (res.message[0])
			say("", res.message);
		status = res.status;
		sandbox_spec_done(&spec);
	}
	char st[16];
	snprintf(st, sizeof(st), "%d", status);
	say("exit ", st);
	sync();
	reboot(RB_AUTOBOOT); /* with qemu's -no-reboot: the VM ends */
	return status;
}
