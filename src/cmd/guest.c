/*
 * guest.c: `clawbox` as the microVM's init (pid 1, started as /init from the initramfs that
 * tools/mkguest.sh builds). It mounts what a kernel gives no one by itself (/proc, /sys,
 * devtmpfs, cgroup2 with its controllers enabled), loads the virtio and 9p drivers in the
 * order mkguest.sh wrote, says it is ready on the console, and runs sandboxes with the same
 * code as on the host.
 *
 * This is the first step of the outer layer (issue 6): the guest runs the command given on the
 * kernel command line (clawbox.run=PATH, in a sandbox whose root is the initramfs) and reports
 * its status on the console ("clawbox-guest: exit N"), then powers the VM off. The run
 * requests over virtio-serial, the 9p shares and egress through the host's proxy come next.
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
#include "log.h"
#include "macro.h"
#include "sandbox.h"

static int console_fd = 1; /* stdout becomes the command's output port in agent mode */

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

/* Agent mode: one request from the host on clawbox.ctl ({"argv", "env", "workdir", "memory",
 * "pids", "cpus_milli", "timeout_ms"}), the command's stdout and stderr on clawbox.out and
 * clawbox.err, its status back on clawbox.ctl ({"status", "message"}). */
static int
serve_request(const char *ctl_dev)
{
	char out_dev[64], err_dev[64];
	if (find_port("clawbox.out", out_dev, sizeof(out_dev)) < 0 ||
	    find_port("clawbox.err", err_dev, sizeof(err_dev)) < 0)
		return say("no output ports", ""), SANDBOX_EXIT_SETUP;
	_cleanup_close_ int ctl = open(ctl_dev, O_RDWR | O_CLOEXEC);
	int out = open(out_dev, O_WRONLY | O_CLOEXEC), err = open(err_dev, O_WRONLY | O_CLOEXEC);
	if (ctl < 0 || out < 0 || err < 0)
		return say("cannot open the ports: ", strerror(errno)), SANDBOX_EXIT_SETUP;
	mount_system();
	static const char ready[] = "{\"ready\":true}\n";
	(void)write_all(ctl, ready, sizeof(ready) - 1);
	struct dbuf req;
	dbuf_init(&req, 1u << 20);
	char buf[4096];
	while (!memchr(dbuf_str(&req), '\n', req.len)) {
		ssize_t n = read(ctl, buf, sizeof(buf));
		if (n <= 0 || dbuf_append(&req, buf, (size_t)n) < 0)
			return say("no request from the host", ""), dbuf_done(&req),
			       SANDBOX_EXIT_SETUP;
	}
	_cleanup_json_ json_t *j =
	    json_loadb(dbuf_str(&req), strcspn(dbuf_str(&req), "\n"), 0, NULL);
	dbuf_done(&req);
	json_t *argvj = json_object_get(j, "argv");
	size_t argc = json_array_size(argvj);
	struct sandbox_spec spec;
	struct sandbox_result res = {.status = SANDBOX_EXIT_SETUP};
	sandbox_spec_init(&spec);
	char **argv = calloc(argc + 1, sizeof(char *));
	int status = SANDBOX_EXIT_SETUP;
	if (argc == 0 || argc > SANDBOX_MAX_ARGS || !argv) {
		snprintf(res.message, sizeof(res.message), "the request has no command");
	} else {
		for (size_t i = 0; i < argc; i++)
			argv[i] = (char *)json_string_value(json_array_get(argvj, i));
		spec.argv = argv;
		/* The 9p shares show their files as qemu's sandbox sees them: owned by uid 1000.
		 * The guest is this run's alone, so its sandbox user can be that uid. */
		spec.outside_id = SANDBOX_UID;
		size_t i;
		json_t *e;
		json_array_foreach(json_object_get(j, "env"), i, e)
		{
			if (json_is_string(e))
				(void)sandbox_spec_set_env(&spec, json_string_value(e));
		}
		/* The host's mounts: one 9p export each, mounted here and passed on to the sandbox
		 * as an ordinary mount (read-only stays read-only at both layers). */
		json_t *m;
		json_array_foreach(json_object_get(j, "mounts"), i, m)
		{
			const char *tag = json_get_str(m, "tag"),
			           *target = json_get_str(m, "target");
			bool rw = json_is_true(json_object_get(m, "rw"));
			char at[64], arg[SANDBOX_PATH_MAX + 96];
			const char *why = NULL;
			if (!tag || !target || strlen(tag) > 16 || strchr(tag, '/'))
				continue;
			snprintf(at, sizeof(at), "/mnt/%s", tag);
			(void)mkdir(at, 0755);
			if (mount(tag, at, "9p", (rw ? 0 : MS_RDONLY) | MS_NOSUID | MS_NODEV,
			          "trans=virtio,version=9p2000.L,msize=262144") < 0) {
				say("cannot mount a share: ", strerror(errno));
				continue;
			}
			snprintf(arg, sizeof(arg), "%s:%s:%s", at, target, rw ? "rw" : "ro");
			if (sandbox_spec_add_mount(&spec, arg, &why) < 0)
				say("cannot share ", target);
		}
		if (json_get_str(j, "workdir"))
			spec.workdir = strdup(json_get_str(j, "workdir"));
		if (json_get_u64(j, "memory"))
			spec.memory_bytes = json_get_u64(j, "memory");
		if (json_get_u64(j, "pids"))
			spec.pids_max = json_get_u64(j, "pids");
		spec.cpus_milli = json_get_u64(j, "cpus_milli");
		spec.timeout_ms = json_get_u64(j, "timeout_ms");
		/* The command's stdio: the output ports, and nothing to read. */
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, 0);
			close(null);
		}
		dup2(out, 1);
		dup2(err, 2);
		sandbox_run(&spec, &res);
		status = res.status;
	}
	_cleanup_json_ json_t *ans =
	    json_pack("{s:i,s:s}", "status", status, "message", res.message);
	_cleanup_free_ char *line = ans ? json_dumps(ans, JSON_COMPACT) : NULL;
	if (line) {
		(void)write_all(ctl, line, strlen(line));
		(void)write_all(ctl, "\n", 1);
	}
	fsync(ctl);
	close(out);
	close(err);
	close(1);
	close(2);
	free(argv);
	sandbox_spec_done(&spec);
	return status;
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

	char cmd[512], ctl_dev[64];
	int status = 0;
	if (find_port("clawbox.ctl", ctl_dev, sizeof(ctl_dev)) == 0) {
		status = serve_request(ctl_dev);
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
