/*
 * vm-host.c: booting a microVM and running sandboxes in it, from the host.
 *
 * qemu -M microvm (TCG: KVM here cannot run a stock kernel, see docs/ARCHITECTURE.md) runs
 * confined in a host sandbox: its own namespaces, no network device, the seccomp allowlist,
 * landlock, cgroup limits, and nothing of the host but the system folders, the guest image,
 * this VM's socket folder and the shared folders. The guest gets the host's /usr as a
 * read-only 9p export, each shared folder as one more (read-only unless :rw), and one
 * virtio-serial port, clawbox.mux, which carries everything else (mux.h): the run requests
 * and statuses, the commands' output, and the sandboxes' connections to the egress proxy,
 * which stays on the host with the keys.
 *
 * The guest is the less trusted side: its frames are bounded by the mux, its statuses are
 * clamped, its messages are cleaned of control characters before they reach a terminal, and
 * a connection it opens goes to this run's proxy only.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fd-util.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "paths.h"
#include "text.h"
#include "vm-host.h"

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
listen_at(const char *dir, const char *name)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", dir, name) >=
	    sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	(void)unlink(sa.sun_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NEG_ERRNO();
	/* qemu's sandbox user (65533 outside) connects to it. */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0 ||
	    (geteuid() == 0 && chown(sa.sun_path, 65533, 65533) < 0)) {
		int r = NEG_ERRNO();
		close(fd);
		return r;
	}
	return fd;
}

/* The host's TSC frequency in kHz, from /proc/cpuinfo (0: not known). Under TCG the guest's
 * TSC is the host's, and a kernel told its frequency skips calibrating it against the PIT,
 * which under TCG fails now and then: the TSC is then marked unstable, no clock runs and the
 * boot stalls for good (about 1 boot in 8 here before this). */
static unsigned long
host_tsc_khz(void)
{
	char buf[8192];
	if (read_file_at(AT_FDCWD, "/proc/cpuinfo", buf, sizeof(buf)) < 0)
		return 0;
	const char *p = strstr(buf, "cpu MHz");
	p = p ? strchr(p, ':') : NULL;
	if (!p)
		return 0;
	char *end;
	double mhz = strtod(p + 1, &end);
	return end != p + 1 && mhz > 100 && mhz < 100000 ? (unsigned long)(mhz * 1000) : 0;
}

/* The launcher of qemu's host sandbox, in a child: its status is qemu's. */
static pid_t
start_qemu(const struct vm *vm, const struct vm_config *cfg, const char *kvm_dev)
{
	unsigned long tsc_khz = host_tsc_khz();
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid != 0)
		return pid < 0 ? NEG_ERRNO() : pid;
	/* With us gone, the VM has no one to serve: the launcher's death ends its sandbox. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(SANDBOX_EXIT_SETUP);
	char mem[32], append[512];
	uint64_t guest = cfg->memory > VM_GUEST_MEM ? cfg->memory : VM_GUEST_MEM;
	snprintf(mem, sizeof(mem), "%lluM", (unsigned long long)(guest >> 20));
	int n_app = snprintf(append, sizeof(append),
	                     "console=ttyS0 quiet panic=-1 reboot=t no_timer_check lpj=4000000 "
	                     "tsc=reliable rdinit=/init");
	if (tsc_khz)
		snprintf(append + n_app, sizeof(append) - (size_t)n_app, " tsc_early_khz=%lu",
		         tsc_khz);
	char *fixed[] = {"qemu-system-x86_64",
	                 "-M",
	                 "microvm",
	                 "-accel",
	                 kvm_dev ? "kvm" : "tcg",
	                 "-m",
	                 mem,
	                 "-smp",
	                 "1",
	                 "-nodefaults",
	                 "-no-user-config",
	                 "-nographic",
	                 "-no-reboot",
	                 /* --debug: the console on qemu's stdout, which is our stderr (below).
	                  * Not file:/dev/stderr: qemu's sandbox user cannot open a root's
	                  * terminal again by name (Permission denied). */
	                 "-serial",
	                 cfg->debug ? "stdio" : "null",
	                 "-kernel",
	                 "/vm/vmlinux",
	                 "-initrd",
	                 "/vm/initramfs.cpio",
	                 "-append",
	                 append,
	                 "-device",
	                 "virtio-serial-device",
	                 "-chardev",
	                 "socket,id=mux,path=/run/vm/mux.sock",
	                 "-device",
	                 "virtserialport,chardev=mux,name=clawbox.mux",
	                 "-fsdev",
	                 "local,id=usr,path=/usr,security_model=none,readonly=on",
	                 "-device",
	                 "virtio-9p-device,fsdev=usr,mount_tag=usr",
	                 NULL};
	/* Each mount: its own 9p export, read-only unless :rw, from where qemu's sandbox has it. */
	char *argv[ARRAY_SIZE(fixed) + 4 * SANDBOX_MAX_MOUNTS];
	char fsdev[SANDBOX_MAX_MOUNTS][96], device[SANDBOX_MAX_MOUNTS][96];
	size_t n = 0;
	for (; fixed[n]; n++)
		argv[n] = fixed[n];
	for (size_t i = 0; i < cfg->n_shares; i++) {
		snprintf(fsdev[i], sizeof(fsdev[i]),
		         "local,id=m%zu,path=/share/%zu,security_model=none%s", i, i,
		         cfg->shares[i].writable ? "" : ",readonly=on");
		snprintf(device[i], sizeof(device[i]), "virtio-9p-device,fsdev=m%zu,mount_tag=m%zu",
		         i, i);
		argv[n++] = "-fsdev";
		argv[n++] = fsdev[i];
		argv[n++] = "-device";
		argv[n++] = device[i];
	}
	argv[n] = NULL;
	struct sandbox_spec q;
	struct sandbox_result res;
	sandbox_spec_init(&q);
	sandbox_spec_default_env(&q, NULL);
	char m1[PATH_MAX + 16], m2[PATH_MAX + 16];
	const char *why;
	snprintf(m1, sizeof(m1), "%s:/vm:ro", cfg->image);
	snprintf(m2, sizeof(m2), "%s:/run/vm:rw", vm->dir);
	if (sandbox_spec_add_mount(&q, m1, &why) < 0 || sandbox_spec_add_mount(&q, m2, &why) < 0)
		_exit(SANDBOX_EXIT_SETUP);
	for (size_t i = 0; i < cfg->n_shares; i++) {
		/* A file is exported in a folder of its own in qemu's sandbox: nothing beside it
		 * reaches the VM. */
		char m[2 * PATH_MAX + 32];
		const char *base = strrchr(vm->share_real[i], '/');
		snprintf(m, sizeof(m), "%s:/share/%zu%s%s:%s", cfg->shares[i].source, i,
		         vm->share_file[i] ? "/" : "", vm->share_file[i] && base ? base + 1 : "",
		         cfg->shares[i].writable ? "rw" : "ro");
		if (sandbox_spec_add_mount(&q, m, &why) < 0)
			_exit(SANDBOX_EXIT_SETUP);
	}
	q.argv = argv;
	q.kvm_device = kvm_dev;
	q.memory_bytes = guest + (256ULL << 20); /* qemu's own, beside the guest's RAM */
	q.pids_max = 64;
	q.debug = cfg->debug;
	/* qemu's complaints (and those of its sandbox) go to a log in the VM's folder: a boot
	 * retried after a stall says nothing; a VM that fails shows the log. */
	char logpath[PATH_MAX + 16];
	snprintf(logpath, sizeof(logpath), "%s/qemu.log", vm->dir);
	int logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (logfd >= 0 && !cfg->debug)
		dup2(logfd, 2);
	if (cfg->debug) {
		/* qemu's stdio chardev: output to our stderr; no input (the command's stdin
		 * is ours and goes over the port; a terminal must not be put in raw mode). */
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null < 0 || dup2(null, 0) < 0 || dup2(2, 1) < 0)
			_exit(SANDBOX_EXIT_SETUP);
	}
	signal(SIGPIPE, SIG_DFL);
	sandbox_run(&q, &res);
	if (res.message[0])
		log_error("the VM's sandbox: %s", res.message);
	_exit(res.status);
}

static void
stop_launcher(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static struct vm_job *
find_job(const struct vm *vm, uint32_t id)
{
	for (size_t i = 0; i < vm->n_jobs; i++)
		if (vm->jobs[i]->id == id)
			return vm->jobs[i];
	return NULL;
}

/* A connection the guest opened: to its job's proxy ('N' with the run id) or to the job's
 * host socket (the run id and 'h'), and to nothing else. */
static int
open_connection(struct vm *vm, uint32_t id, const char *data, size_t len)
{
	struct mux *m = &vm->mux;
	uint32_t run = 0;
	if (len == sizeof(run) || len == sizeof(run) + 1)
		memcpy(&run, data, sizeof(run));
	struct vm_job *job = find_job(vm, le32toh(run));
	int sp[2] = {-1, -1};
	if (len == sizeof(run) + 1 && data[4] == 'h') {
		int fd = job && !job->got_status && job->host_socket[0] && id % 2 == 1 &&
		                 !mux_find(m, id)
		             ? unix_connect(job->host_socket, SOCK_STREAM)
		             : -EPERM;
		if (fd < 0 || !mux_add(m, id, fd, fd, true))
			return mux_send(m, 'X', id, NULL, 0) < 0 ? m->broken : 0;
		return 0;
	}
	if (!job || job->got_status || job->proxy_sock < 0 || id % 2 == 0 || mux_find(m, id) ||
	    len != sizeof(run) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0 ||
	    send_fds(job->proxy_sock, 'c', &sp[1], 1) < 0) {
		if (sp[0] >= 0) {
			close(sp[0]);
			close(sp[1]);
		}
		return mux_send(m, 'X', id, NULL, 0) < 0 ? m->broken : 0;
	}
	close(sp[1]);
	if (!mux_add(m, id, sp[0], sp[0], true))
		return mux_send(m, 'X', id, NULL, 0) < 0 ? m->broken : 0;
	return 0;
}

/* What the guest says: "ready", a job's status, a connection. */
static int
on_frame(struct mux *m, uint8_t type, uint32_t id, const char *data, size_t len)
{
	struct vm *vm = m->user;
	if (type == 'N')
		return open_connection(vm, id, data, len);
	if (type != 'J')
		return 0;
	_cleanup_json_ json_t *j = json_loadb(data, len, 0, NULL);
	if (!json_is_object(j))
		return -EPROTO;
	if (id == 0 && json_is_true(json_object_get(j, "ready"))) {
		const char *k = json_get_str(j, "kernel");
		snprintf(vm->kernel, sizeof(vm->kernel), "%s", k ? k : "?");
		vm->ready = true;
		return 0;
	}
	struct vm_job *job = find_job(vm, id);
	json_t *st = json_object_get(j, "status");
	if (!job || job->got_status || !json_is_integer(st))
		return 0;
	json_int_t v = json_integer_value(st);
	job->result.status = v < 0 || v > 255 ? SANDBOX_EXIT_SETUP : (int)v;
	const char *msg = json_get_str(j, "message");
	if (msg) {
		/* One clean line: what the guest says is shown as ours. */
		size_t n = strnlen(msg, sizeof(job->result.message) - 1);
		n = text_sanitize(msg, n, job->result.message);
		job->result.message[n] = '\0';
		job->result.message[strcspn(job->result.message, "\n")] = '\0';
	}
	job->got_status = true;
	return 0;
}

static void
job_done(struct vm *vm, size_t i)
{
	struct vm_job *job = vm->jobs[i];
	vm->jobs[i] = vm->jobs[--vm->n_jobs];
	job->done = true;
	if (vm->on_done)
		vm->on_done(vm, job);
}

/* Jobs whose status came and whose output is all written; with the VM gone, all of them. */
static void
finish_jobs(struct vm *vm)
{
	for (size_t i = 0; i < vm->n_jobs;) {
		struct vm_job *job = vm->jobs[i];
		/* The output decides; a stdin nobody read (a terminal, say) is dropped then. */
		bool streams = mux_find(&vm->mux, job->id + 4) || mux_find(&vm->mux, job->id + 6);
		struct mux_conn *in = mux_find(&vm->mux, job->id + 2);
		if (in && (vm->mux.broken || (job->got_status && !streams)))
			mux_drop(&vm->mux, in, !vm->mux.broken);
		if (vm->mux.broken && !job->got_status) {
			job->result.status = SANDBOX_EXIT_SETUP;
			snprintf(job->result.message, sizeof(job->result.message),
			         "--vm: the VM ended without the command's status");
		}
		if (vm->mux.broken || (job->got_status && !streams))
			job_done(vm, i);
		else
			i++;
	}
}

size_t
vm_pollfds(struct vm *vm, struct pollfd *p, size_t max)
{
	return mux_pollfds(&vm->mux, p, max);
}

int
vm_dispatch(struct vm *vm, const struct pollfd *p, size_t n)
{
	(void)mux_dispatch(&vm->mux, p, n);
	finish_jobs(vm);
	return vm->mux.broken;
}

/* Polls the VM (and sig_fd) until done() or the deadline (-1: none). Returns 0, -ETIMEDOUT,
 * the VM's error, or -EINTR with *ret_sig set when a signal came. */
static int
pump(struct vm *vm, bool (*done)(const struct vm *, const void *), const void *arg,
     int64_t deadline, int sig_fd, int *ret_sig)
{
	while (!done(vm, arg)) {
		if (vm->mux.broken)
			return vm->mux.broken;
		struct pollfd p[MUX_CONNS_MAX + 2];
		size_t n = vm_pollfds(vm, p, MUX_CONNS_MAX + 1), nm = n;
		if (sig_fd >= 0)
			p[n++] = (struct pollfd){.fd = sig_fd, .events = POLLIN};
		int timeout = deadline < 0 ? -1 : (int)(deadline - now_ms());
		if (deadline >= 0 && timeout <= 0)
			return -ETIMEDOUT;
		int k = poll(p, n, timeout);
		if (k < 0 && errno != EINTR)
			return NEG_ERRNO();
		if (k <= 0)
			continue;
		if (sig_fd >= 0 && (p[nm].revents & POLLIN)) {
			struct signalfd_siginfo si;
			if (read(sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				*ret_sig = (int)si.ssi_signo;
				return -EINTR;
			}
		}
		(void)vm_dispatch(vm, p, nm);
	}
	return 0;
}

static bool
is_ready(const struct vm *vm, const void *arg)
{
	(void)arg;
	return vm->ready;
}

static bool
job_is_done(const struct vm *vm, const void *arg)
{
	(void)vm;
	return ((const struct vm_job *)arg)->done;
}

static bool
never(const struct vm *vm, const void *arg)
{
	(void)vm;
	(void)arg;
	return false;
}

/* Accepts qemu's connection on fd within the deadline: -ECHILD at once if qemu's launcher
 * ends first (qemu refused its arguments: waiting would only hide why), -EINTR on a signal. */
static int
accept_by(int fd, pid_t launcher, int sig_fd, int64_t deadline)
{
	_cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, launcher, 0);
	for (;;) {
		struct pollfd p[3] = {{.fd = fd, .events = POLLIN},
		                      {.fd = pidfd, .events = POLLIN},
		                      {.fd = sig_fd, .events = POLLIN}};
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		int k = poll(p, 3, (int)left);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -ETIMEDOUT;
		if (p[2].revents & POLLIN)
			return -EINTR;
		if (p[0].revents & POLLIN) {
			int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
			return c < 0 ? NEG_ERRNO() : c;
		}
		if (p[1].revents & POLLIN)
			return -ECHILD;
	}
}

static void
forget_boot(struct vm *vm)
{
	if (vm->port >= 0) {
		mux_done(&vm->mux);
		close(vm->port);
		vm->port = -1;
	}
	stop_launcher(vm->launcher);
	vm->launcher = -1;
}

int
vm_accel_parse(const char *s, enum vm_accel *ret)
{
	static const char *const names[] = {"auto", "kvm", "tcg"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strcmp(s, names[i]) == 0) {
			*ret = (enum vm_accel)i;
			return 0;
		}
	return -EINVAL;
}

/* Where a failed KVM boot is remembered for this user: one line, "tcg RELEASE DEVICE", the
 * host kernel's release (a new kernel is tried again). */
static int
accel_cache_path(char *buf, size_t size)
{
	char dir[4096];
	if (xdg_dir(XDG_CACHE, dir, sizeof(dir)) < 0)
		return -1;
	return snprintf(buf, size, "%s/vm-accel", dir) < (int)size ? 0 : -1;
}

static void
accel_cache_line(const char *dev, char *buf, size_t size)
{
	struct utsname u;
	uname(&u);
	snprintf(buf, size, "tcg %s %s\n", u.release, dev);
}

static bool
known_no_kvm(const char *dev)
{
	char path[PATH_MAX], want[256 + PATH_MAX], got[256 + PATH_MAX];
	if (accel_cache_path(path, sizeof(path)) < 0)
		return false;
	accel_cache_line(dev, want, sizeof(want));
	return read_file_at(AT_FDCWD, path, got, sizeof(got)) > 0 && strcmp(got, want) == 0;
}

static void
remember_no_kvm(const char *dev, char *ret_path, size_t size)
{
	char path[PATH_MAX], line[256 + PATH_MAX];
	if (accel_cache_path(path, sizeof(path)) < 0)
		return;
	/* Its folders, as mkdir -p makes them. */
	for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		(void)mkdir(path, 0700);
		*p = '/';
	}
	accel_cache_line(dev, line, sizeof(line));
	if (write_file_at(AT_FDCWD, path, line, 0600) == 0)
		snprintf(ret_path, size, "%s", path);
}

/* KVM or TCG, as cfg->accel says and the host allows (see vm-host.h). */
static int
pick_accel(const struct vm_config *cfg, bool *ret_kvm, const char **ret_dev, char *why, size_t size)
{
	*ret_kvm = false;
	if (cfg->accel == VM_ACCEL_TCG)
		return 0;
	/* CLAWBOX_VM_KVM_DEVICE: another node to try as /dev/kvm (the tests' way to make KVM
	 * fail on purpose). */
	const char *dev = getenv("CLAWBOX_VM_KVM_DEVICE");
	if (!dev || dev[0] != '/')
		dev = "/dev/kvm";
	*ret_dev = dev;
	struct stat st;
	/* qemu runs as its sandbox's user, an "other" to the device. */
	bool open_to_qemu = stat(dev, &st) == 0 && S_ISCHR(st.st_mode) &&
	                    (st.st_mode & (S_IROTH | S_IWOTH)) == (S_IROTH | S_IWOTH);
	if (!open_to_qemu) {
		if (cfg->accel == VM_ACCEL_KVM)
			return snprintf(
			           why, size,
			           "--vm-accel kvm: %s is not there, or not open to qemu's sandbox "
			           "user (it needs mode o+rw)",
			           dev),
			       -ENODEV;
		return 0;
	}
	if (cfg->accel == VM_ACCEL_AUTO && known_no_kvm(dev))
		return 0;
	*ret_kvm = true;
	return 0;
}

/* vm_ready_ms() for this machine now, or $CLAWBOX_VM_READY_MS (tests of the retries). */
static int
boot_deadline_ms(bool kvm)
{
	const char *env = getenv("CLAWBOX_VM_READY_MS");
	if (env && *env) {
		char *end;
		long v = strtol(env, &end, 10);
		if (*end == '\0' && v > 0 && v < 3600000)
			return (int)v;
	}
	double load = 0;
	if (getloadavg(&load, 1) < 1)
		load = 0;
	return vm_ready_ms(kvm, load, sysconf(_SC_NPROCESSORS_ONLN));
}

static void _printf_(2, 3)
progress(const struct vm_config *cfg, const char *fmt, ...)
{
	if (!cfg->progress)
		return;
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	cfg->progress(line);
}

/* One boot: qemu started, its connection taken and the guest's "ready" awaited. 0, -EINTR
 * (a signal), -ECHILD (qemu ended at once) or -ETIMEDOUT; *failure says which in words. On
 * failure nothing of the boot is left. */
static int
boot_once(struct vm *vm, const struct vm_config *cfg, const char *kvm_dev, const char **failure)
{
	int l = listen_at(vm->dir, "mux.sock");
	if (l < 0) {
		*failure = "cannot listen for the VM";
		return l;
	}
	int64_t deadline = now_ms() + boot_deadline_ms(kvm_dev != NULL);
	vm->kvm = kvm_dev != NULL;
	vm->launcher = start_qemu(vm, cfg, kvm_dev);
	int c = vm->launcher > 0 ? accept_by(l, vm->launcher, cfg->sig_fd, deadline) : -EIO;
	close(l);
	int sig = 0, r = c;
	if (c >= 0) {
		vm->port = c;
		mux_init(&vm->mux, c, on_frame, vm);
		r = pump(vm, is_ready, NULL, deadline, cfg->sig_fd, &sig);
		if (r == 0)
			return 0;
	}
	*failure =
	    r == -ECHILD ? "qemu ended at once" : "the VM did not reach its guest agent in time";
	forget_boot(vm);
	return r == -EINTR || r == -ECHILD ? r : -ETIMEDOUT;
}

/* failure, with the first line qemu logged. */
static void
boot_failure(const struct vm *vm, const char *failure, char *buf, size_t size)
{
	char logpath[PATH_MAX], tail[1024], clean[1024];
	snprintf(logpath, sizeof(logpath), "%s/qemu.log", vm->dir);
	ssize_t n = read_file_at(AT_FDCWD, logpath, tail, sizeof(tail));
	size_t cn = n > 0 ? text_sanitize(tail, strcspn(tail, "\n"), clean) : 0;
	clean[cn] = '\0';
	snprintf(buf, size, "%s%s%s", failure, cn ? "; qemu said: " : "", clean);
}

int
vm_start(struct vm *vm, const struct vm_config *cfg, char *why, size_t size)
{
	memset(vm, 0, sizeof(*vm));
	vm->launcher = -1;
	vm->port = -1;
	vm->next_id = 2;
	vm->cfg = cfg;
	for (size_t i = 0; i < cfg->n_shares && i < SANDBOX_MAX_MOUNTS; i++) {
		vm->share_real[i] = realpath(cfg->shares[i].source, NULL);
		struct stat st;
		if (vm->share_real[i] && stat(vm->share_real[i], &st) == 0)
			vm->share_file[i] = !S_ISDIR(st.st_mode);
		if (!vm->share_real[i]) {
			int r = NEG_ERRNO();
			snprintf(why, size, "share %s: %s", cfg->shares[i].source, strerror(-r));
			vm_stop(vm);
			return r;
		}
	}
	snprintf(vm->dir, sizeof(vm->dir), "/tmp/clawbox-vm.XXXXXX");
	if (!mkdtemp(vm->dir) || (geteuid() == 0 && chown(vm->dir, 65533, 65533) < 0)) {
		int r = NEG_ERRNO();
		vm->dir[0] = '\0';
		snprintf(why, size, "cannot make a folder for the VM's sockets: %s", strerror(-r));
		vm_stop(vm);
		return r;
	}
	bool kvm = false;
	const char *kvm_dev = NULL;
	int r = pick_accel(cfg, &kvm, &kvm_dev, why, size);
	if (r < 0) {
		vm_stop(vm);
		return r;
	}
	const char *failure = "the VM did not start";
	if (kvm) {
		/* One boot to find out: KVM boots in well under a second where it works. */
		progress(cfg, "booting the VM (kvm, up to %d s)...", boot_deadline_ms(true) / 1000);
		r = boot_once(vm, cfg, kvm_dev, &failure);
		if (r == 0 || r == -EINTR)
			goto booted;
		char reason[160];
		boot_failure(vm, failure, reason, sizeof(reason));
		if (cfg->accel == VM_ACCEL_KVM) {
			snprintf(why, size, "--vm-accel kvm: %s", reason);
			vm_stop(vm);
			return -ENODEV;
		}
		char cache[PATH_MAX] = "";
		remember_no_kvm(kvm_dev, cache, sizeof(cache));
		snprintf(vm->note, sizeof(vm->note),
		         "KVM (%s) did not boot the guest (%s); using TCG%s%s", kvm_dev, reason,
		         cache[0] ? ", as remembered in " : "", cache);
	}
	for (int attempt = 1; attempt <= VM_ATTEMPTS; attempt++) {
		int ms = boot_deadline_ms(false);
		if (attempt == 1)
			progress(cfg, "booting the VM (tcg, up to %d.%d s)...", ms / 1000,
			         ms % 1000 / 100);
		r = boot_once(vm, cfg, NULL, &failure);
		if (r == 0 || r == -EINTR)
			goto booted;
		if (cfg->debug)
			log_debug("--vm: boot %d: %s", attempt, failure);
		if (r == -ECHILD)
			break; /* the same arguments would fail the same way */
		if (attempt < VM_ATTEMPTS)
			progress(cfg, "boot %d of %d: %s; booting again (tcg, up to %d.%d s)...",
			         attempt, VM_ATTEMPTS, failure, boot_deadline_ms(false) / 1000,
			         boot_deadline_ms(false) % 1000 / 100);
	}
	boot_failure(vm, failure, why, size);
	vm_stop(vm);
	return -ETIMEDOUT;
booted:
	if (r == -EINTR) {
		snprintf(why, size, "stopped by a signal while the VM booted");
		vm_stop(vm);
		return -EINTR;
	}
	return 0;
}

/* Where mount m comes from in the guest: {"tag", "sub"} of the share holding its source (as
 * the host resolves it now: the guest follows no link of its own to get there), or the guest's
 * own clawbox for the agent binary. */
static json_t *
guest_mount(const struct vm *vm, struct vm_job *job, const struct sandbox_mount *m,
            const char *agent_exe, char *why, size_t size)
{
	_cleanup_free_ char *real = realpath(m->source, NULL);
	struct stat st;
	if (!real || stat(real, &st) < 0)
		return snprintf(why, size, "--vm: mount source %s: %s", m->source, strerror(errno)),
		       NULL;
	if (agent_exe && strcmp(real, agent_exe) == 0)
		return json_pack("{s:s,s:s}", "guest", "/init", "target", m->target);
	if (S_ISSOCK(st.st_mode)) {
		/* 9p carries no sockets: the guest makes one and relays its connections here. */
		if (job->host_socket[0] || strlen(real) >= sizeof(job->host_socket))
			return snprintf(why, size,
			                "--vm: one unix socket per run, of a short path"),
			       NULL;
		snprintf(job->host_socket, sizeof(job->host_socket), "%s", real);
		return json_pack("{s:b,s:s}", "socket", 1, "target", m->target);
	}
	for (size_t i = 0; i < vm->cfg->n_shares; i++) {
		const char *s = vm->share_real[i];
		size_t n = strlen(s);
		if (strncmp(real, s, n) != 0 || (real[n] != '\0' && real[n] != '/'))
			continue;
		if (m->writable && !vm->cfg->shares[i].writable)
			continue;
		if (vm->share_file[i]) {
			const char *base = strrchr(s, '/');
			if (real[n] != '\0' || !base)
				continue;
			char tag[16];
			snprintf(tag, sizeof(tag), "m%zu", i);
			return json_pack("{s:s,s:s,s:s,s:b}", "tag", tag, "sub", base + 1, "target",
			                 m->target, "rw", m->writable);
		}
		char tag[16];
		snprintf(tag, sizeof(tag), "m%zu", i);
		return json_pack("{s:s,s:s,s:s,s:b}", "tag", tag, "sub",
		                 real[n] ? real + n + 1 : "", "target", m->target, "rw",
		                 m->writable);
	}
	snprintf(why, size, "--vm: mount source %s is not in a folder shared with the VM%s",
	         m->source, m->writable ? " writable" : "");
	return NULL;
}

int
vm_submit(struct vm *vm, struct vm_job *job, const struct sandbox_spec *spec, const char *agent_exe,
          int in_fd, int out_fd, int err_fd, bool own)
{
	char *msg = job->result.message;
	size_t msize = sizeof(job->result.message);
	int fds[3] = {in_fd, out_fd, err_fd}, r = -EIO;
	uint32_t id = vm->next_id;
	job->done = job->got_status = false;
	job->host_socket[0] = '\0';
	job->result.status = SANDBOX_EXIT_SETUP;
	msg[0] = '\0';
	_cleanup_json_ json_t *argv = json_array(), *env = json_array(), *mounts = json_array();
	_cleanup_json_ json_t *req = NULL;
	_cleanup_free_ char *s = NULL;
	if (vm->mux.broken || vm->n_jobs >= VM_JOBS_MAX) {
		snprintf(msg, msize, "--vm: the VM %s",
		         vm->mux.broken ? "is gone" : "runs as many sandboxes as it can");
		r = -EBUSY;
		goto fail;
	}
	for (size_t i = 0; i < spec->n_mounts; i++) {
		json_t *gm = guest_mount(vm, job, &spec->mounts[i], agent_exe, msg, msize);
		if (!gm) {
			r = -EINVAL;
			goto fail;
		}
		json_array_append_new(mounts, gm);
	}
	for (size_t i = 0; spec->argv[i]; i++)
		json_array_append_new(argv, json_string(spec->argv[i]));
	for (size_t i = 0; i < spec->n_env; i++)
		json_array_append_new(env, json_string(spec->env[i]));
	req = json_pack("{s:O,s:O,s:O,s:s?,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b}", "argv", argv, "env",
	                env, "mounts", mounts, "workdir", spec->workdir, "memory",
	                (json_int_t)spec->memory_bytes, "pids", (json_int_t)spec->pids_max,
	                "cpus_milli", (json_int_t)spec->cpus_milli, "timeout_ms",
	                (json_int_t)spec->timeout_ms, "stdin",
	                (json_int_t)(in_fd >= 0 ? id + 2 : 0), "stdout", (json_int_t)(id + 4),
	                "stderr", (json_int_t)(id + 6), "net", job->proxy_sock >= 0);
	s = req ? json_dumps(req, JSON_COMPACT) : NULL;
	if (!s || strlen(s) > MUX_FRAME_MAX) {
		snprintf(msg, msize, "--vm: the request is too large");
		r = -E2BIG;
		goto fail;
	}
	vm->next_id += 8;
	/* The streams: in (host to guest), out and err (guest to host). mux_add() takes an
	 * owned descriptor whether it succeeds or not. */
	for (int k = 0; k < 3; k++) {
		if (fds[k] < 0)
			continue;
		int fd = TAKE_FD(fds[k]);
		if (!mux_add(&vm->mux, id + 2 + 2 * (uint32_t)k, k == 0 ? fd : -1, k == 0 ? -1 : fd,
		             own))
			goto fail_streams;
	}
	if (mux_send(&vm->mux, 'J', id, s, strlen(s)) < 0)
		goto fail_streams;
	job->id = id;
	vm->jobs[vm->n_jobs++] = job;
	return 0;

fail_streams:
	for (uint32_t k = 2; k <= 6; k += 2) {
		struct mux_conn *c = mux_find(&vm->mux, id + k);
		if (c)
			mux_drop(&vm->mux, c, false);
	}
	snprintf(msg, msize, "--vm: cannot send the request");
	r = -EIO;
fail:
	for (int k = 0; own && k < 3; k++)
		if (fds[k] >= 0)
			close(fds[k]);
	return r;
}

void
vm_default_image(const char *given, char *buf, size_t size)
{
	if (given) {
		snprintf(buf, size, "%s", given);
	} else if (getenv("CLAWBOX_VM_IMAGE")) {
		snprintf(buf, size, "%s", getenv("CLAWBOX_VM_IMAGE"));
	} else if (self_data_path("vm", "build/vm", buf, size) < 0) {
		snprintf(buf, size, "build/vm");
	}
}

void
vm_cancel(struct vm *vm, struct vm_job *job)
{
	char s[48];
	int n = snprintf(s, sizeof(s), "{\"cancel\":%u}", job->id);
	(void)mux_send(&vm->mux, 'J', 0, s, (size_t)n);
}

int
vm_run(struct vm *vm, const struct sandbox_spec *spec, int out_fd, int err_fd, int proxy_sock,
       int sig_fd, struct sandbox_result *ret)
{
	struct vm_job job = {.proxy_sock = proxy_sock};
	/* The command reads what this process's stdin has, as on the host. */
	int r = vm_submit(vm, &job, spec, NULL, 0, out_fd, err_fd, false);
	int sig = 0;
	if (r == 0)
		r = pump(vm, job_is_done, &job, -1, sig_fd, &sig);
	if (r == -EINTR) {
		/* Left running: vm_stop() stops qemu rather than wait for it. */
		for (size_t i = 0; i < vm->n_jobs; i++)
			if (vm->jobs[i] == &job)
				vm->jobs[i] = vm->jobs[--vm->n_jobs];
		vm->abandoned = true;
		job.result.status = 128 + sig;
		snprintf(job.result.message, sizeof(job.result.message),
		         "--vm: stopped by signal %d", sig);
	}
	*ret = job.result;
	return r < 0 ? r : 0;
}

void
vm_stop(struct vm *vm)
{
	/* A job still in it would hold the power-off back: qemu is stopped instead, which ends
	 * everything inside. */
	if (vm->port >= 0 && !vm->mux.broken && vm->n_jobs == 0 && !vm->abandoned) {
		static const char off[] = "{\"poweroff\":true}";
		(void)mux_send(&vm->mux, 'J', 0, off, sizeof(off) - 1);
		(void)mux_flush(&vm->mux, 1000);
		/* The guest powers off (qemu's -no-reboot ends it): wait for the port to close. */
		int sig = 0;
		(void)pump(vm, never, NULL, now_ms() + 3000, -1, &sig);
	}
	vm->n_jobs = 0;
	forget_boot(vm);
	for (size_t i = 0; i < SANDBOX_MAX_MOUNTS; i++) {
		free(vm->share_real[i]);
		vm->share_real[i] = NULL;
	}
	if (vm->dir[0]) {
		char path[PATH_MAX];
		static const char *const files[] = {"mux.sock", "qemu.log"};
		for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
			snprintf(path, sizeof(path), "%s/%s", vm->dir, files[i]);
			(void)unlink(path);
		}
		(void)rmdir(vm->dir);
		vm->dir[0] = '\0';
	}
}
