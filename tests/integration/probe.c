/*
 * probe.c: runs inside a clawbox sandbox and tries to get out. Static, so that it also runs in
 * a --rootfs with no libc. Prints TAP: one "ok"/"not ok" line per attempt, with the reason.
 *
 *   probe escape [--needle FILE] [--leaked-fd N] [--abstract NAME] [--tcp PORT]
 *                [--host-pid PID] [--ro DIR] [--rw DIR] [--suid PATH] [--links DIR]
 *   probe syscalls FILE     each "name number" line of FILE must fail with ENOSYS
 *   probe tmp-mark | tmp-empty
 *   probe whoami            prints the effective uid
 *   probe spin MS           busy for MS wall-clock ms, prints "cpu_ms N"
 *   probe forkbomb | membomb
 *   probe ns                prints this process's namespace ids
 *   probe exists PATH       exit 0 if PATH exists
 *   probe listen NAME       (on the host) listens on abstract socket @NAME and on a loopback
 *                           TCP port, prints the port, waits at most 120 s
 *   probe hostflood SOCK empty|garbage|long COUNT
 *                           COUNT bad lines at the host-action socket, reconnecting whenever
 *                           the daemon closes (at most 60 s); prints what it sent
 *   probe hostslots SOCK    12 oversized requests, each on a connection of its own, then a
 *                           good one: prints how many were answered and closed, and the last
 *   probe hostconns SOCK N  N connections held open at once: prints how many were closed
 *   probe hostcap SOCK N    N list_tasks requests on one connection: prints how many allowed
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <grp.h>
#include <stddef.h>
#include <sys/sysmacros.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_alg.h>
#include <linux/netlink.h>

static int test_no;
static int failures;

static void __attribute__((format(printf, 2, 3))) check(int ok, const char *fmt, ...)
{
	va_list ap;
	printf("%s %d - ", ok ? "ok" : "not ok", ++test_no);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!ok)
		failures++;
}

static int
read_text(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, size - 1);
	int e = errno;
	close(fd);
	if (n < 0)
		return -e;
	buf[n] = '\0';
	return (int)n;
}

/* Searches a binary blob (environ, cmdline) for needle. */
static int
blob_contains(const char *path, const char *needle)
{
	static char buf[1 << 16];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	return n > 0 && memmem(buf, (size_t)n, needle, strlen(needle)) != NULL;
}

static int
status_field_is_zero(const char *status, const char *field)
{
	const char *p = strstr(status, field);
	if (!p)
		return 0;
	p += strlen(field);
	while (*p == ' ' || *p == '\t')
		p++;
	return strncmp(p, "0000000000000000", 16) == 0;
}

static void
check_identity(void)
{
	uid_t r, e, s;
	gid_t gr, ge, gs;
	char buf[4096];

	getresuid(&r, &e, &s);
	getresgid(&gr, &ge, &gs);
	check(r == 1000 && e == 1000 && s == 1000, "uid inside is 1000 (%u/%u/%u)", r, e, s);
	check(gr == 1000 && ge == 1000 && gs == 1000, "gid inside is 1000 (%u/%u/%u)", gr, ge, gs);

	gid_t groups[64];
	int n = getgroups(64, groups);
	int root_group = 0;
	for (int i = 0; i < n; i++)
		root_group |= groups[i] == 0;
	check(n >= 0 && !root_group, "no supplementary group 0 (%d groups)", n);

	unsigned in = 0, out = 0, count = 0;
	int got = read_text("/proc/self/uid_map", buf, sizeof(buf));
	int parsed = got > 0 && sscanf(buf, "%u %u %u", &in, &out, &count) == 3;
	check(parsed && in == 1000 && out != 0 && count == 1,
	      "uid 1000 maps to one unprivileged host uid (%u -> %u)", in, out);

	check(setuid(0) < 0 && setgid(0) < 0, "setuid(0)/setgid(0) refused");
	gid_t g0 = 0;
	check(setgroups(1, &g0) < 0, "setgroups([0]) refused");

	gethostname(buf, sizeof(buf));
	check(strcmp(buf, "clawbox") == 0, "hostname is clawbox (%s)", buf);
}

static void
check_privileges(void)
{
	char st[8192];
	read_text("/proc/self/status", st, sizeof(st));
	int caps = status_field_is_zero(st, "CapInh:") && status_field_is_zero(st, "CapPrm:") &&
	           status_field_is_zero(st, "CapEff:") && status_field_is_zero(st, "CapBnd:") &&
	           status_field_is_zero(st, "CapAmb:");
	check(caps, "every capability set is empty");
	check(strstr(st, "NoNewPrivs:\t1") != NULL, "no_new_privs is set");
	check(strstr(st, "Seccomp:\t2") != NULL, "seccomp filter mode");
	check(prctl(PR_CAPBSET_READ, 21 /* CAP_SYS_ADMIN */) == 0,
	      "CAP_SYS_ADMIN not in bounding set");

	struct rlimit rl;
	getrlimit(RLIMIT_CORE, &rl);
	check(rl.rlim_cur == 0 && rl.rlim_max == 0, "core dumps off");
	getrlimit(RLIMIT_NOFILE, &rl);
	check(rl.rlim_max <= 4096, "nofile limited (%llu)", (unsigned long long)rl.rlim_max);

	check(getsid(0) == getpid(), "own session (session leader)");
	int tty = open("/dev/tty", O_RDWR);
	check(tty < 0, "no controlling terminal (/dev/tty: %s)", strerror(errno));
	if (tty >= 0)
		close(tty);
}

static void
check_fds(int leaked_fd)
{
	DIR *d = opendir("/proc/self/fd");
	int extra = 0, dfd = d ? dirfd(d) : -1;
	struct dirent *de;
	while (d && (de = readdir(d))) {
		int fd = (int)strtol(de->d_name, NULL, 10);
		if (de->d_name[0] == '.' || fd <= 2 || fd == dfd)
			continue;
		extra++;
	}
	if (d)
		closedir(d);
	check(d && extra == 0, "only fds 0-2 are open (%d others)", extra);
	if (leaked_fd >= 0) {
		char c;
		errno = 0;
		check(read(leaked_fd, &c, 1) < 0 && errno == EBADF,
		      "fd %d left open by the caller is closed", leaked_fd);
	}
}

static void
check_proc(const char *needle, int host_pid)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int others = 0, exe_writable = 0, env_leak = 0;
	char path[300];

	while (d && (de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		if (pid != 1 && pid != getpid())
			others++;
		snprintf(path, sizeof(path), "/proc/%ld/exe", pid);
		int fd = open(path, O_WRONLY);
		if (fd >= 0) {
			exe_writable++;
			close(fd);
		}
		if (needle) {
			snprintf(path, sizeof(path), "/proc/%ld/environ", pid);
			env_leak += blob_contains(path, needle);
			snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
			env_leak += blob_contains(path, needle);
		}
	}
	if (d)
		closedir(d);
	check(d && others == 0, "no processes visible but init and self (%d others)", others);
	check(exe_writable == 0, "no /proc/*/exe opens for writing");
	int fd = open("/proc/self/exe", O_WRONLY);
	check(fd < 0, "/proc/self/exe not writable (%s)", strerror(errno));
	fd = open("/proc/1/exe", O_RDONLY);
	check(fd < 0, "/proc/1/exe (the init, a host binary) not even readable (%s)",
	      strerror(errno));
	char buf[64];
	int n = read_text("/proc/1/environ", buf, sizeof(buf));
	check(n <= 0, "/proc/1/environ unreadable or empty (%d)", n);
	check(open("/proc/1/mem", O_RDONLY) < 0, "/proc/1/mem unreadable");
	if (needle) {
		extern char **environ;
		int own = 0;
		for (char **e = environ; *e; e++)
			own |= strstr(*e, needle) != NULL;
		check(!own && env_leak == 0, "caller's secret in no environ or cmdline (%d)",
		      env_leak + own);
	}
	if (host_pid > 0) {
		errno = 0;
		check(kill(host_pid, 0) < 0 && errno == ESRCH, "host pid %d not signalable",
		      host_pid);
	}
	errno = 0;
	int ok = kill(1, 0) < 0 && errno == EPERM;
	check(ok, "init cannot be signalled (%s)", strerror(errno));
	errno = 0;
	ok = ptrace(PTRACE_ATTACH, 1, 0, 0) < 0;
	check(ok, "ptrace(init) refused (%s)", strerror(errno));
	char local[8];
	struct iovec lv = {local, sizeof(local)}, rv = {(void *)0x400000, sizeof(local)};
	check(process_vm_readv(1, &lv, 1, &rv, 1, 0) < 0, "process_vm_readv(init) refused");

	check(read_text("/proc/kcore", buf, sizeof(buf)) <= 0, "/proc/kcore masked");
	check(read_text("/proc/kallsyms", buf, sizeof(buf)) <= 0, "/proc/kallsyms masked");
	check(read_text("/proc/keys", buf, sizeof(buf)) <= 0, "/proc/keys masked");
	fd = open("/proc/sysrq-trigger", O_WRONLY);
	int sysrq_ok = fd < 0;
	if (fd >= 0) {
		/* If it opens, it must be our /dev/null, not the trigger: write nothing real. */
		struct stat st;
		fstat(fd, &st);
		sysrq_ok = S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3;
		close(fd);
	}
	check(sysrq_ok, "/proc/sysrq-trigger masked");
	fd = open("/proc/sys/kernel/hostname", O_WRONLY);
	check(fd < 0, "/proc/sys read-only (%s)", strerror(errno));
	n = read_text("/proc/self/cgroup", buf, sizeof(buf));
	check(n > 0 && strstr(buf, ":/\n") != NULL, "cgroup namespace: own cgroup is /");
}

static void
check_files(const char *ro, const char *rw, const char *links, const char *needle)
{
	const char *denied[] = {"/x", "/usr/x", "/etc/x", "/bin/x", "/home/x", "/dev/x"};
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
		int fd = open(denied[i], O_WRONLY | O_CREAT, 0644);
		check(fd < 0, "cannot create %s (%s)", denied[i], strerror(errno));
	}
	const char *absent[] = {"/etc/shadow",  "/etc/gshadow", "/etc/ssh", "/etc/machine-id",
	                        "/etc/sudoers", "/root",        "/var",     "/run",
	                        "/boot",        "/work"};
	for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
		check(access(absent[i], F_OK) < 0, "%s absent", absent[i]);

	char buf[4096];
	read_text("/etc/passwd", buf, sizeof(buf));
	int lines = 0;
	for (char *p = buf; *p; p++)
		lines += *p == '\n';
	check(lines == 3 && strstr(buf, "user:x:1000"), "/etc/passwd is ours (%d lines)", lines);

	DIR *d = opendir("/sys");
	int sys_entries = 0;
	struct dirent *de;
	while (d && (de = readdir(d)))
		sys_entries += de->d_name[0] != '.';
	if (d)
		closedir(d);
	check(sys_entries == 0, "/sys absent or empty");

	const char *ok_dev[] = {"null", "zero", "full",  "random", "urandom", "tty", "pts",
	                        "shm",  "fd",   "stdin", "stdout", "stderr",  "ptmx"};
	d = opendir("/dev");
	int bad_dev = 0;
	while (d && (de = readdir(d))) {
		int known = de->d_name[0] == '.';
		for (size_t i = 0; i < sizeof(ok_dev) / sizeof(ok_dev[0]); i++)
			known |= strcmp(de->d_name, ok_dev[i]) == 0;
		if (!known) {
			bad_dev++;
			printf("# unexpected /dev/%s\n", de->d_name);
		}
	}
	if (d)
		closedir(d);
	check(d && bad_dev == 0, "/dev holds only the minimal set");

	int fd = open("/tmp/probe-w", O_WRONLY | O_CREAT, 0644);
	check(fd >= 0, "/tmp writable");
	if (fd >= 0)
		close(fd), unlink("/tmp/probe-w");
	fd = open("/home/user/probe-w", O_WRONLY | O_CREAT, 0644);
	check(fd >= 0, "home writable");
	if (fd >= 0)
		close(fd), unlink("/home/user/probe-w");

	char path[512];
	if (ro) {
		snprintf(path, sizeof(path), "%s/probe-w", ro);
		fd = open(path, O_WRONLY | O_CREAT, 0644);
		check(fd < 0 && errno == EROFS, "read-only mount %s refuses writes (%s)", ro,
		      strerror(errno));
		check(access(ro, R_OK) == 0, "read-only mount %s readable", ro);
	}
	if (rw) {
		snprintf(path, sizeof(path), "%s/probe-w", rw);
		fd = open(path, O_WRONLY | O_CREAT, 0644);
		check(fd >= 0, "read-write mount %s takes writes (%s)", rw, strerror(errno));
		if (fd >= 0)
			close(fd), unlink(path);
	}
	if (links) {
		const char *names[] = {"abs", "rel", "dir-abs", "dir-rel"};
		for (size_t i = 0; i < 4; i++) {
			snprintf(path, sizeof(path), "%s/%s", links, names[i]);
			struct stat st;
			int leaked = 0;
			if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
				/* A link to a host folder: it must not show the host's files. */
				char sub[600];
				snprintf(sub, sizeof(sub), "%s/outside-secret", path);
				leaked = needle && blob_contains(sub, needle);
			} else {
				leaked = needle && blob_contains(path, needle);
			}
			check(!leaked, "symlink %s does not reach outside the mount", names[i]);
		}
	}
}

static void
check_network(const char *abstract, int tcp_port)
{
	struct if_nameindex *ifs = if_nameindex();
	int n = 0, only_lo = 1;
	for (struct if_nameindex *i = ifs; i && i->if_index; i++, n++)
		only_lo &= strcmp(i->if_name, "lo") == 0;
	check(ifs && n == 1 && only_lo, "only the loopback interface (%d)", n);

	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(80)};
	sin.sin_addr.s_addr = htonl(0x01010101);
	errno = 0;
	int ok = connect(s, (struct sockaddr *)&sin, sizeof(sin)) < 0 && errno == ENETUNREACH;
	check(ok, "no route out (%s)", strerror(errno));
	close(s);

	s = socket(AF_INET, SOCK_DGRAM, 0);
	sin.sin_port = htons(53);
	check(sendto(s, "x", 1, 0, (struct sockaddr *)&sin, sizeof(sin)) < 0, "no UDP/DNS out (%s)",
	      strerror(errno));
	close(s);

	if (tcp_port > 0) {
		s = socket(AF_INET, SOCK_STREAM, 0);
		sin.sin_port = htons((uint16_t)tcp_port);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		check(connect(s, (struct sockaddr *)&sin, sizeof(sin)) < 0,
		      "host loopback port %d unreachable (%s)", tcp_port, strerror(errno));
		close(s);
	}
	if (abstract) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		size_t len = strlen(abstract);
		memcpy(sun.sun_path + 1, abstract, len);
		s = socket(AF_UNIX, SOCK_STREAM, 0);
		check(connect(s, (struct sockaddr *)&sun,
		              (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)) < 0,
		      "host abstract socket @%s unreachable (%s)", abstract, strerror(errno));
		close(s);
	}
}

static long
raw(long nr, long a, long b, long c)
{
	errno = 0;
	return syscall(nr, a, b, c, 0, 0, 0);
}

/* Runs fn in a child; returns the signal that killed it, or 0. */
static int
killed_by(void (*fn)(void))
{
	pid_t pid = fork();
	if (pid == 0) {
		fn();
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

static void
i386_call(void)
{
	/* getpid through the 32-bit entry point */
	long ret;
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(20) : "memory");
	(void)ret;
}

static void
x32_call(void)
{
	syscall(0x40000000 | SYS_getpid);
}

static void
check_seccomp(void)
{
	struct {
		const char *name;
		long nr;
		long a, b, c;
	} blocked[] = {
	    {"unshare(NEWUSER)", SYS_unshare, CLONE_NEWUSER, 0, 0},
	    {"setns", SYS_setns, 0, 0, 0},
	    {"mount", SYS_mount, 0, 0, 0},
	    {"umount2", SYS_umount2, 0, 0, 0},
	    {"pivot_root", SYS_pivot_root, 0, 0, 0},
	    {"chroot", SYS_chroot, 0, 0, 0},
	    {"fsopen", SYS_fsopen, 0, 0, 0},
	    {"fsmount", SYS_fsmount, 0, 0, 0},
	    {"open_tree", SYS_open_tree, 0, 0, 0},
	    {"move_mount", SYS_move_mount, 0, 0, 0},
	    {"mount_setattr", SYS_mount_setattr, 0, 0, 0},
	    {"io_uring_setup", SYS_io_uring_setup, 1, 0, 0},
	    {"io_uring_enter", SYS_io_uring_enter, 0, 0, 0},
	    {"io_uring_register", SYS_io_uring_register, 0, 0, 0},
	    {"keyctl", SYS_keyctl, 0, 0, 0},
	    {"add_key", SYS_add_key, 0, 0, 0},
	    {"request_key", SYS_request_key, 0, 0, 0},
	    {"bpf", SYS_bpf, 0, 0, 0},
	    {"perf_event_open", SYS_perf_event_open, 0, 0, 0},
	    {"userfaultfd", SYS_userfaultfd, 0, 0, 0},
	    {"kexec_load", SYS_kexec_load, 0, 0, 0},
	    {"kexec_file_load", SYS_kexec_file_load, 0, 0, 0},
	    {"init_module", SYS_init_module, 0, 0, 0},
	    {"finit_module", SYS_finit_module, 0, 0, 0},
	    {"delete_module", SYS_delete_module, 0, 0, 0},
	    {"ptrace", SYS_ptrace, PTRACE_TRACEME, 0, 0},
	    {"process_vm_readv", SYS_process_vm_readv, 1, 0, 0},
	    {"modify_ldt", SYS_modify_ldt, 0, 0, 0},
	    {"clone3", SYS_clone3, 0, 0, 0},
	    {"open_by_handle_at", SYS_open_by_handle_at, 0, 0, 0},
	    {"syslog", SYS_syslog, 3, 0, 0},
	};
	for (size_t i = 0; i < sizeof(blocked) / sizeof(blocked[0]); i++) {
		long r = raw(blocked[i].nr, blocked[i].a, blocked[i].b, blocked[i].c);
		int e = errno;
		check(r < 0 && e == ENOSYS, "seccomp blocks %s (%s)", blocked[i].name, strerror(e));
	}

	const int ns_flags[] = {CLONE_NEWUSER, CLONE_NEWNS,  CLONE_NEWPID,   CLONE_NEWNET,
	                        CLONE_NEWUTS,  CLONE_NEWIPC, CLONE_NEWCGROUP};
	for (size_t i = 0; i < sizeof(ns_flags) / sizeof(int); i++) {
		long r = raw(SYS_clone, ns_flags[i] | SIGCHLD, 0, 0);
		if (r == 0)
			_exit(0);
		check(r < 0 && errno == EPERM, "clone with namespace flag %#x refused (%s)",
		      ns_flags[i], strerror(errno));
	}
	pid_t pid = fork();
	if (pid == 0)
		_exit(7);
	int status = 0;
	waitpid(pid, &status, 0);
	check(pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 7, "plain fork works");

	struct {
		const char *name;
		int family, type, proto;
		int allowed;
	} socks[] = {
	    {"AF_UNIX", AF_UNIX, SOCK_STREAM, 0, 1},
	    {"AF_INET", AF_INET, SOCK_STREAM, 0, 1},
	    {"AF_INET6", AF_INET6, SOCK_DGRAM, 0, 1},
	    {"NETLINK_ROUTE", AF_NETLINK, SOCK_RAW, NETLINK_ROUTE, 1},
	    {"NETLINK_AUDIT", AF_NETLINK, SOCK_RAW, NETLINK_AUDIT, 0},
	    {"NETLINK_KOBJECT_UEVENT", AF_NETLINK, SOCK_RAW, NETLINK_KOBJECT_UEVENT, 0},
	    {"AF_PACKET", AF_PACKET, SOCK_RAW, 0, 0},
	    {"AF_ALG", AF_ALG, SOCK_SEQPACKET, 0, 0},
	    {"AF_VSOCK", 40, SOCK_STREAM, 0, 0},
	    {"AF_KEY", AF_KEY, SOCK_RAW, 2, 0},
	    {"AF_BLUETOOTH", AF_BLUETOOTH, SOCK_RAW, 0, 0},
	    {"AF_XDP", 44, SOCK_RAW, 0, 0},
	    {"AF_TIPC", AF_TIPC, SOCK_RDM, 0, 0},
	};
	for (size_t i = 0; i < sizeof(socks) / sizeof(socks[0]); i++) {
		errno = 0;
		int s = socket(socks[i].family, socks[i].type, socks[i].proto);
		if (socks[i].allowed)
			check(s >= 0, "socket %s allowed (%s)", socks[i].name, strerror(errno));
		else
			check(s < 0 && (errno == EAFNOSUPPORT || errno == ENOSYS),
			      "socket %s refused (%s)", socks[i].name, strerror(errno));
		if (s >= 0)
			close(s);
	}
	/* The family is an int: upper bits set must not sneak AF_PACKET past the filter. */
	long s = raw(SYS_socket, (1L << 32) | AF_PACKET, SOCK_RAW, 0);
	check(s < 0, "socket AF_PACKET with high bits set refused (%s)", strerror(errno));
	int sp[2];
	check(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "socketpair AF_UNIX allowed");
	errno = 0;
	int spr = socketpair(AF_INET, SOCK_STREAM, 0, sp);
	/* The kernel itself would say EOPNOTSUPP: ENOSYS shows the filter answered. */
	check(spr < 0 && errno == ENOSYS, "socketpair AF_INET refused by the filter (%s)",
	      strerror(errno));

	errno = 0;
	int master = posix_openpt(O_RDWR | O_NOCTTY);
	check(master >= 0, "a pty of our own opens (%s)", strerror(errno));
	if (master >= 0) {
		char c = 'x';
		errno = 0;
		int ok = ioctl(master, TIOCSTI, &c) < 0 && errno == EPERM;
		check(ok, "TIOCSTI refused (%s)", strerror(errno));
		errno = 0;
		ok = raw(SYS_ioctl, master, (1L << 32) | TIOCSTI, (long)&c) < 0 && errno == EPERM;
		check(ok, "TIOCSTI with high bits set refused (%s)", strerror(errno));
		char sub = 2;
		errno = 0;
		ok = ioctl(master, TIOCLINUX, &sub) < 0 && errno == EPERM;
		check(ok, "TIOCLINUX refused (%s)", strerror(errno));
		struct winsize ws;
		check(ioctl(master, TIOCGWINSZ, &ws) == 0, "ordinary tty ioctl works");
		close(master);
	}
	check(raw(SYS_personality, 0xffffffffL, 0, 0) >= 0, "personality query allowed");
	check(raw(SYS_personality, 0x0040000 /* ADDR_NO_RANDOMIZE */, 0, 0) < 0,
	      "personality(ADDR_NO_RANDOMIZE) refused");

	int sig = killed_by(i386_call);
	check(sig == SIGSYS, "i386 syscall ABI kills the process (signal %d)", sig);
	sig = killed_by(x32_call);
	check(sig == SIGSYS, "x32 syscall ABI kills the process (signal %d)", sig);
}

static void
check_suid(const char *path)
{
	int p[2];
	pipe(p);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		execl(path, path, "whoami", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	char buf[64] = "";
	ssize_t n = read(p[0], buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	waitpid(pid, NULL, 0);
	check(n > 0 && strtol(buf, NULL, 10) == 1000,
	      "setuid-root binary runs without gaining uid 0 (euid %s)",
	      n > 0 ? strtok(buf, "\n") : "?");
}

static int
run_escape(int argc, char **argv)
{
	const char *needle_file = NULL, *abstract = NULL, *ro = NULL, *rw = NULL, *suid = NULL;
	const char *links = NULL;
	int leaked_fd = -1, tcp = 0, host_pid = 0;
	static char needle[256];

	for (int i = 2; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (!strcmp(k, "--needle"))
			needle_file = v;
		else if (!strcmp(k, "--leaked-fd"))
			leaked_fd = (int)strtol(v, NULL, 10);
		else if (!strcmp(k, "--abstract"))
			abstract = v;
		else if (!strcmp(k, "--tcp"))
			tcp = (int)strtol(v, NULL, 10);
		else if (!strcmp(k, "--host-pid"))
			host_pid = (int)strtol(v, NULL, 10);
		else if (!strcmp(k, "--ro"))
			ro = v;
		else if (!strcmp(k, "--rw"))
			rw = v;
		else if (!strcmp(k, "--suid"))
			suid = v;
		else if (!strcmp(k, "--links"))
			links = v;
	}
	/* fds first: reading the needle file must not disturb the count. */
	check_fds(leaked_fd);
	if (needle_file) {
		int n = read_text(needle_file, needle, sizeof(needle));
		if (n > 0 && needle[n - 1] == '\n')
			needle[n - 1] = '\0';
		check(n > 8, "needle read (%d bytes)", n);
	}
	const char *nd = needle_file ? needle : NULL;
	check_identity();
	check_privileges();
	check_proc(nd, host_pid);
	check_files(ro, rw, links, nd);
	check_network(abstract, tcp);
	check_seccomp();
	if (suid)
		check_suid(suid);
	printf("1..%d\n", test_no);
	return failures ? 1 : 0;
}

static int
run_syscalls(const char *file)
{
	FILE *f = fopen(file, "r");
	char name[64];
	long nr;
	if (!f) {
		printf("not ok 1 - open %s: %s\n1..1\n", file, strerror(errno));
		return 1;
	}
	while (fscanf(f, "%63s %ld", name, &nr) == 2) {
		/* In a child: a call that got through must not disturb the rest. */
		pid_t pid = fork();
		if (pid == 0) {
			alarm(2);
			long r = syscall(nr, 0, 0, 0, 0, 0, 0);
			_exit(r < 0 ? (errno & 0xff) : 200);
		}
		int status;
		waitpid(pid, &status, 0);
		int ok = WIFEXITED(status) && WEXITSTATUS(status) == ENOSYS;
		check(ok, "%s (%ld) blocked (%s)", name, nr,
		      WIFEXITED(status)
		          ? (WEXITSTATUS(status) == 200 ? "succeeded!"
		                                        : strerror(WEXITSTATUS(status)))
		          : "killed");
	}
	fclose(f);
	printf("1..%d\n", test_no);
	return failures ? 1 : 0;
}

static int
run_forkbomb(void)
{
	int n = 0;
	for (;;) {
		pid_t pid = fork();
		if (pid < 0) {
			printf("forks %d stopped: %s\n", n, strerror(errno));
			fflush(stdout);
			return 0;
		}
		if (pid == 0) {
			pause();
			_exit(0);
		}
		if (++n > 100000)
			return 1; /* no limit at all */
	}
}

static int
run_membomb(void)
{
	size_t total = 0;
	for (;;) {
		size_t chunk = 16 << 20;
		char *p =
		    mmap(NULL, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			printf("mmap failed after %zu MiB\n", total >> 20);
			return 3;
		}
		memset(p, 1, chunk);
		total += chunk;
		if (total > (64ULL << 30))
			return 1;
	}
}

static int
run_spin(long ms)
{
	struct timespec start, now, cpu;
	clock_gettime(CLOCK_MONOTONIC, &start);
	volatile unsigned long x = 0;
	do {
		for (int i = 0; i < 100000; i++)
			x += (unsigned long)i;
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 < ms);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
	printf("cpu_ms %ld\n", cpu.tv_sec * 1000 + cpu.tv_nsec / 1000000);
	return 0;
}

static int
run_ns(void)
{
	const char *ns[] = {"user", "mnt", "pid", "net", "uts", "ipc", "cgroup", "time"};
	char path[64], link[128];
	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		snprintf(path, sizeof(path), "/proc/self/ns/%s", ns[i]);
		ssize_t n = readlink(path, link, sizeof(link) - 1);
		link[n > 0 ? n : 0] = '\0';
		printf("%s %s\n", ns[i], link);
	}
	return 0;
}

static int
run_listen(const char *name)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	size_t len = strlen(name);
	if (len + 2 > sizeof(sun.sun_path))
		return 2;
	memcpy(sun.sun_path + 1, name, len);
	int u = socket(AF_UNIX, SOCK_STREAM, 0);
	if (bind(u, (struct sockaddr *)&sun,
	         (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)) < 0 ||
	    listen(u, 8) < 0)
		return 3;
	int t = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof(sin);
	if (bind(t, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(t, 8) < 0 ||
	    getsockname(t, (struct sockaddr *)&sin, &sl) < 0)
		return 4;
	printf("%d\n", ntohs(sin.sin_port));
	fflush(stdout);
	alarm(120); /* bounded even if the test forgets us */
	pause();
	return 0;
}


static int
host_connect(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static char host_answers[1 << 20];

/* Reads fd until EOF (1) or timeout_ms pass (0); counts the answers that say ok and not. */
static int
host_read_all(int fd, int timeout_ms, int *oks, int *refusals)
{
	size_t len = 0;
	int eof = 0;
	for (int waited = 0; waited < timeout_ms;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, 100) == 0) {
			waited += 100;
			continue;
		}
		ssize_t n = read(fd, host_answers + len, sizeof(host_answers) - 1 - len);
		if (n <= 0) {
			eof = 1;
			break;
		}
		len += (size_t)n;
	}
	host_answers[len] = '\0';
	*oks = *refusals = 0;
	for (char *p = host_answers; (p = strstr(p, "\"ok\":")); p += 5)
		(p[5] == 't' ? (*oks)++ : (*refusals)++);
	return eof;
}

static int
run_hostflood(const char *path, const char *kind, long count)
{
	static char chunk[1000 * 16 + 70000];
	size_t line_len, per;
	if (!strcmp(kind, "long")) {
		memset(chunk, 'x', 70000);
		chunk[69999] = '\n';
		line_len = 70000;
		per = 1;
	} else {
		const char *l = !strcmp(kind, "empty") ? "\n" : "{\"tool\": nope]\n";
		line_len = strlen(l);
		per = 1000;
		for (size_t i = 0; i < per; i++)
			memcpy(chunk + i * line_len, l, line_len);
	}
	long sent = 0, conns = 0;
	time_t end = time(NULL) + 60;
	int fd = -1;
	while (sent < count && time(NULL) < end) {
		if (fd < 0) {
			if ((fd = host_connect(path)) < 0)
				return printf("flood: cannot connect: %s\n", strerror(errno)), 1;
			conns++;
		}
		size_t n = (size_t)(count - sent) < per ? (size_t)(count - sent) : per;
		ssize_t w = send(fd, chunk, n * line_len, MSG_NOSIGNAL);
		if (w <= 0) {
			close(fd);
			fd = -1;
			continue;
		}
		sent += (long)((size_t)w / line_len);
		if ((size_t)w < n * line_len) { /* cut short: the daemon is closing it */
			close(fd);
			fd = -1;
		}
	}
	if (fd >= 0)
		close(fd);
	printf("flood %s: %ld lines sent over %ld connections\n", kind, sent, conns);
	return sent < count;
}

static int
run_hostslots(const char *path)
{
	static char big[70000];
	memset(big, 'x', sizeof(big));
	int closed = 0, oks, refusals;
	for (int i = 0; i < 12; i++) {
		int fd = host_connect(path);
		if (fd < 0)
			continue;
		if (send(fd, big, sizeof(big), MSG_NOSIGNAL) == (ssize_t)sizeof(big) &&
		    host_read_all(fd, 10000, &oks, &refusals) && refusals == 1)
			closed++;
		close(fd);
	}
	int fd = host_connect(path);
	static const char good[] = "{\"tool\": \"list_tasks\", \"input\": {}}\n";
	oks = 0;
	if (fd >= 0 && send(fd, good, sizeof(good) - 1, MSG_NOSIGNAL) > 0) {
		shutdown(fd, SHUT_WR);
		host_read_all(fd, 10000, &oks, &refusals);
	}
	printf("slots: %d of 12 oversized refused and closed, then %s\n", closed,
	       oks == 1 ? "a request answered" : "no answer");
	return closed != 12 || oks != 1;
}

static int
run_hostconns(const char *path, int n)
{
	int fds[64], closed = 0;
	if (n > 64)
		n = 64;
	for (int i = 0; i < n; i++)
		fds[i] = host_connect(path);
	usleep(500 * 1000);
	for (int i = 0; i < n; i++) {
		struct pollfd pfd = {.fd = fds[i], .events = POLLIN};
		char c;
		if (fds[i] < 0 || (poll(&pfd, 1, 0) == 1 && read(fds[i], &c, 1) <= 0))
			closed++;
	}
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	printf("conns: %d of %d closed\n", closed, n);
	return 0;
}

static int
run_hostcap(const char *path, int n)
{
	static const char line[] = "{\"tool\": \"list_tasks\", \"input\": {}}\n";
	static char all[sizeof(line) * 400];
	if (n > 400)
		n = 400;
	for (int i = 0; i < n; i++)
		memcpy(all + (size_t)i * (sizeof(line) - 1), line, sizeof(line) - 1);
	int fd = host_connect(path), oks = 0, refusals = 0, eof = 0;
	if (fd >= 0 && send(fd, all, (size_t)n * (sizeof(line) - 1), MSG_NOSIGNAL) > 0)
		eof = host_read_all(fd, 10000, &oks, &refusals);
	printf("cap: %d allowed, %d refused, %s\n", oks, refusals, eof ? "closed" : "left open");
	return 0;
}

/* One request line, past the agent's own checks, and the daemon's first answer line. */
static int
run_hostreq(const char *path, const char *json)
{
	int fd = host_connect(path);
	char buf[4096];
	size_t len = 0;
	if (fd < 0 || send(fd, json, strlen(json), MSG_NOSIGNAL) < 0 ||
	    send(fd, "\n", 1, MSG_NOSIGNAL) < 0)
		return printf("hostreq: cannot send\n"), 1;
	while (len < sizeof(buf) - 1 && !memchr(buf, '\n', len)) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, 20000) <= 0)
			break;
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	printf("hostreq: %s\n", len ? buf : "(no answer)");
	close(fd);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	const char *mode = argv[1];
	if (!strcmp(mode, "escape"))
		return run_escape(argc, argv);
	if (!strcmp(mode, "syscalls") && argc > 2)
		return run_syscalls(argv[2]);
	if (!strcmp(mode, "whoami"))
		return printf("%u\n", geteuid()) < 0;
	if (!strcmp(mode, "tmp-mark")) {
		int fd = open("/tmp/clawbox-mark", O_WRONLY | O_CREAT, 0644);
		return fd < 0;
	}
	if (!strcmp(mode, "tmp-empty")) {
		DIR *d = opendir("/tmp");
		struct dirent *de;
		int n = 0;
		while (d && (de = readdir(d)))
			n += de->d_name[0] != '.';
		printf("%s 1 - /tmp is empty in a new sandbox (%d entries)\n1..1\n",
		       d && n == 0 ? "ok" : "not ok", n);
		return n != 0;
	}
	if (!strcmp(mode, "spin") && argc > 2)
		return run_spin(strtol(argv[2], NULL, 10));
	if (!strcmp(mode, "forkbomb"))
		return run_forkbomb();
	if (!strcmp(mode, "membomb"))
		return run_membomb();
	if (!strcmp(mode, "ns"))
		return run_ns();
	if (!strcmp(mode, "exists") && argc > 2)
		return access(argv[2], F_OK) == 0 ? 0 : 1;
	if (!strcmp(mode, "listen") && argc > 2)
		return run_listen(argv[2]);
	if (!strcmp(mode, "hostflood") && argc > 4)
		return run_hostflood(argv[2], argv[3], strtol(argv[4], NULL, 10));
	if (!strcmp(mode, "hostslots") && argc > 2)
		return run_hostslots(argv[2]);
	if (!strcmp(mode, "hostconns") && argc > 3)
		return run_hostconns(argv[2], (int)strtol(argv[3], NULL, 10));
	if (!strcmp(mode, "hostreq") && argc > 3)
		return run_hostreq(argv[2], argv[3]);
	if (!strcmp(mode, "hostcap") && argc > 3)
		return run_hostcap(argv[2], (int)strtol(argv[3], NULL, 10));
	return 2;
}
