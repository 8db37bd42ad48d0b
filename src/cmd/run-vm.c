/*
 * run-vm.c: `clawbox run --vm`: the same contract, with the sandbox made inside a microVM
 * (issue 6). qemu -M microvm (TCG: KVM here cannot run a stock kernel) runs confined in a
 * host sandbox: its own namespaces, no network device, the seccomp allowlist, landlock,
 * cgroup limits, and nothing of the host but the system folders, the guest image and this
 * run's socket folder. The guest (make guest: Debian's kernel, clawbox as /init) gets the
 * host's /usr as a read-only 9p export and three virtio-serial ports: clawbox.ctl for the
 * request and the status, clawbox.out and clawbox.err for the command's output.
 *
 * A boot that does not say ready within VM_READY_MS is killed and tried again (about 1 TCG
 * boot in 12 stalls early here; see docs/ARCHITECTURE.md), at most three times.
 *
 * Each --mount folder is a 9p export of its own, read-only unless :rw (qemu's sandbox has it
 * at /share/N; the guest mounts it and hands it to its sandbox). Not yet: file mounts and
 * --net proxy (egress over virtio-serial).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "dbuf.h"
#include "fd-util.h"
#include "json-util.h"
#include "log.h"
#include "run-vm.h"
#include "sandbox.h"

#define VM_READY_MS  6000 /* about three times a normal boot under TCG */
#define VM_ATTEMPTS  3
#define VM_GUEST_MEM (512ULL << 20) /* the guest's RAM: the sandbox's limit lives inside it */

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
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NEG_ERRNO();
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0 ||
	    (geteuid() == 0 && chown(sa.sun_path, 65533, 65533) < 0)) {
		int r = NEG_ERRNO();
		close(fd);
		return r;
	}
	return fd;
}

/* The request line for the guest agent. */
static char *
request_line(const struct sandbox_spec *spec)
{
	_cleanup_json_ json_t *argv = json_array(), *env = json_array(), *mounts = json_array();
	for (size_t i = 0; i < spec->n_mounts; i++) {
		char tag[16];
		snprintf(tag, sizeof(tag), "m%zu", i);
		json_array_append_new(mounts, json_pack("{s:s,s:s,s:b}", "tag", tag, "target",
		                                        spec->mounts[i].target, "rw",
		                                        spec->mounts[i].writable));
	}
	for (size_t i = 0; spec->argv[i]; i++)
		json_array_append_new(argv, json_string(spec->argv[i]));
	for (size_t i = 0; i < spec->n_env; i++)
		json_array_append_new(env, json_string(spec->env[i]));
	_cleanup_json_ json_t *req =
	    json_pack("{s:O,s:O,s:O,s:s?,s:I,s:I,s:I,s:I}", "argv", argv, "env", env, "mounts",
	              mounts, "workdir", spec->workdir, "memory", (json_int_t)spec->memory_bytes,
	              "pids", (json_int_t)spec->pids_max, "cpus_milli",
	              (json_int_t)spec->cpus_milli, "timeout_ms", (json_int_t)spec->timeout_ms);
	char *s = req ? json_dumps(req, JSON_COMPACT) : NULL;
	if (!s)
		return NULL;
	size_t n = strlen(s);
	char *line = realloc(s, n + 2);
	if (!line) {
		free(s);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	return line;
}

/* The launcher of qemu's host sandbox, in a child: its status is qemu's. */
static pid_t
start_qemu(const char *image, const char *sockdir, const struct sandbox_spec *spec, bool debug)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid < 0 ? NEG_ERRNO() : pid;
	char mem[32], append[512];
	uint64_t guest = spec->memory_bytes + (128ULL << 20) > VM_GUEST_MEM
	                     ? spec->memory_bytes + (128ULL << 20)
	                     : VM_GUEST_MEM;
	snprintf(mem, sizeof(mem), "%lluM", (unsigned long long)(guest >> 20));
	snprintf(append, sizeof(append),
	         "console=ttyS0 quiet panic=-1 reboot=t no_timer_check lpj=4000000 tsc=reliable "
	         "rdinit=/init");
	char *fixed[] = {"qemu-system-x86_64",
	                 "-M",
	                 "microvm",
	                 "-accel",
	                 "tcg",
	                 "-m",
	                 mem,
	                 "-smp",
	                 "1",
	                 "-nodefaults",
	                 "-no-user-config",
	                 "-nographic",
	                 "-no-reboot",
	                 "-serial",
	                 debug ? "file:/dev/stderr" : "null",
	                 "-kernel",
	                 "/vm/vmlinux",
	                 "-initrd",
	                 "/vm/initramfs.cpio",
	                 "-append",
	                 append,
	                 "-device",
	                 "virtio-serial-device",
	                 "-chardev",
	                 "socket,id=ctl,path=/run/vm/ctl.sock",
	                 "-device",
	                 "virtserialport,chardev=ctl,name=clawbox.ctl",
	                 "-chardev",
	                 "socket,id=out,path=/run/vm/out.sock",
	                 "-device",
	                 "virtserialport,chardev=out,name=clawbox.out",
	                 "-chardev",
	                 "socket,id=err,path=/run/vm/err.sock",
	                 "-device",
	                 "virtserialport,chardev=err,name=clawbox.err",
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
	for (size_t i = 0; i < spec->n_mounts; i++) {
		snprintf(fsdev[i], sizeof(fsdev[i]),
		         "local,id=m%zu,path=/share/%zu,security_model=none%s", i, i,
		         spec->mounts[i].writable ? "" : ",readonly=on");
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
	snprintf(m1, sizeof(m1), "%s:/vm:ro", image);
	snprintf(m2, sizeof(m2), "%s:/run/vm:rw", sockdir);
	if (sandbox_spec_add_mount(&q, m1, &why) < 0 || sandbox_spec_add_mount(&q, m2, &why) < 0)
		_exit(SANDBOX_EXIT_SETUP);
	for (size_t i = 0; i < spec->n_mounts; i++) {
		char m[PATH_MAX + 32];
		snprintf(m, sizeof(m), "%s:/share/%zu:%s", spec->mounts[i].source, i,
		         spec->mounts[i].writable ? "rw" : "ro");
		if (sandbox_spec_add_mount(&q, m, &why) < 0)
			_exit(SANDBOX_EXIT_SETUP);
	}
	q.argv = argv;
	q.memory_bytes = guest + (256ULL << 20); /* qemu's own, beside the guest's RAM */
	q.pids_max = 64;
	q.debug = debug;
	/* qemu's complaints (and those of its sandbox) go to a log in the run's folder: a boot
	 * retried after a stall says nothing; a run that fails shows the log. */
	char logpath[PATH_MAX + 16];
	snprintf(logpath, sizeof(logpath), "%s/qemu.log", sockdir);
	int logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (logfd >= 0 && !debug)
		dup2(logfd, 2);
	signal(SIGPIPE, SIG_DFL);
	sandbox_run(&q, &res);
	if (res.message[0])
		log_error("the VM's sandbox: %s", res.message);
	_exit(res.status);
}

/* Accepts on fd within the deadline. */
static int
accept_by(int fd, int64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int64_t left = deadline - now_ms();
	if (left <= 0 || poll(&p, 1, (int)left) <= 0)
		return -ETIMEDOUT;
	int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	return c < 0 ? NEG_ERRNO() : c;
}

static void
stop_launcher(pid_t pid)
{
	kill(pid, SIGTERM);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
}

int
run_vm(const struct sandbox_spec *spec, const char *image, bool debug)
{
	char vmlinux[PATH_MAX + 16];
	snprintf(vmlinux, sizeof(vmlinux), "%s/vmlinux", image);
	if (access(vmlinux, R_OK) < 0) {
		log_error(
		    "--vm: no guest image in %s (build it with 'make guest', or --vm-image DIR)",
		    image);
		return SANDBOX_EXIT_SETUP;
	}
	/* 9p exports folders: a file mount has to wait. */
	for (size_t i = 0; i < spec->n_mounts; i++) {
		struct stat st;
		if (stat(spec->mounts[i].source, &st) < 0 || !S_ISDIR(st.st_mode)) {
			log_error(
			    "--vm: mount source %s: only folders can be shared into the VM yet",
			    spec->mounts[i].source);
			return SANDBOX_EXIT_SETUP;
		}
	}
	char dir[] = "/tmp/clawbox-vm.XXXXXX";
	if (!mkdtemp(dir) || (geteuid() == 0 && chown(dir, 65533, 65533) < 0)) {
		log_error("--vm: cannot make a folder for the VM's sockets: %s", strerror(errno));
		return SANDBOX_EXIT_SETUP;
	}
	_cleanup_free_ char *req = request_line(spec);
	int status = SANDBOX_EXIT_SETUP;
	const char *failure = "the VM did not start";
	bool answered = false;
	for (int attempt = 1; attempt <= VM_ATTEMPTS && req; attempt++) {
		char paths[3][PATH_MAX + 16];
		static const char *const names[] = {"ctl.sock", "out.sock", "err.sock"};
		int l[3] = {-1, -1, -1}, c[3] = {-1, -1, -1};
		for (int i = 0; i < 3; i++) {
			snprintf(paths[i], sizeof(paths[i]), "%s/%s", dir, names[i]);
			unlink(paths[i]);
			l[i] = listen_at(dir, names[i]);
		}
		pid_t pid = l[0] >= 0 && l[1] >= 0 && l[2] >= 0
		                ? start_qemu(image, dir, spec, debug)
		                : -EIO;
		int64_t deadline = now_ms() + VM_READY_MS;
		bool ready = false, done = false;
		for (int i = 0; pid > 0 && i < 3; i++)
			c[i] = accept_by(l[i], deadline);
		struct dbuf ctl;
		dbuf_init(&ctl, 64 * 1024);
		/* "ready" first, within the deadline; then the request; then output until the
		 * status line. */
		while (pid > 0 && c[0] >= 0 && !done) {
			struct pollfd p[3] = {{.fd = c[0], .events = POLLIN},
			                      {.fd = c[1], .events = POLLIN},
			                      {.fd = c[2], .events = POLLIN}};
			int timeout = ready ? -1 : (int)(deadline - now_ms());
			if (!ready && timeout <= 0)
				break;
			if (poll(p, 3, timeout) <= 0) {
				if (errno == EINTR)
					continue;
				break;
			}
			char buf[16384];
			for (int i = 1; i <= 2; i++) {
				if (c[i] < 0 || !(p[i].revents & (POLLIN | POLLHUP)))
					continue;
				ssize_t n = read(c[i], buf, sizeof(buf));
				if (n > 0) {
					(void)write_all(i, buf, (size_t)n);
				} else {
					close(c[i]);
					c[i] = p[i].fd = -1; /* poll ignores it from now on */
				}
			}
			if (!(p[0].revents & (POLLIN | POLLHUP)))
				continue;
			ssize_t n = read(c[0], buf, sizeof(buf));
			if (n <= 0)
				break;
			(void)dbuf_append(&ctl, buf, (size_t)n);
			char *nl;
			while ((nl = memchr(dbuf_str(&ctl), '\n', ctl.len))) {
				size_t len = (size_t)(nl - dbuf_str(&ctl));
				_cleanup_json_ json_t *msg =
				    json_loadb(dbuf_str(&ctl), len, 0, NULL);
				memmove(ctl.p, nl + 1, ctl.len - len - 1);
				ctl.len -= len + 1;
				ctl.p[ctl.len] = '\0';
				if (json_is_true(json_object_get(msg, "ready")) && !ready) {
					ready = true;
					(void)write_all(c[0], req, strlen(req));
				} else if (json_object_get(msg, "status")) {
					status =
					    (int)json_integer_value(json_object_get(msg, "status"));
					const char *m = json_get_str(msg, "message");
					if (m && *m)
						log_error("%s", m);
					done = true;
				}
			}
		}
		/* What is left of the output, then the VM's end. */
		for (int i = 1; done && i <= 2; i++) {
			char buf[16384];
			ssize_t n;
			fcntl(c[i], F_SETFL, O_NONBLOCK);
			while (c[i] >= 0 && (n = read(c[i], buf, sizeof(buf))) > 0)
				(void)write_all(i, buf, (size_t)n);
		}
		dbuf_done(&ctl);
		for (int i = 0; i < 3; i++) {
			if (c[i] >= 0)
				close(c[i]);
			if (l[i] >= 0)
				close(l[i]);
			unlink(paths[i]);
		}
		if (pid > 0) {
			if (done) {
				int st;
				while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
					;
			} else {
				stop_launcher(pid);
			}
		}
		if (done) {
			answered = true;
			break;
		}
		failure = ready ? "the VM ended without the command's status"
		                : "the VM did not reach its guest agent in time";
		if (debug)
			log_debug("--vm: boot %d: %s", attempt, failure);
	}
	char logpath[PATH_MAX + 16], tail[1024];
	snprintf(logpath, sizeof(logpath), "%s/qemu.log", dir);
	ssize_t n = answered ? 0 : read_file_at(AT_FDCWD, logpath, tail, sizeof(tail));
	if (!answered)
		log_error("--vm: %s%s%.*s", failure, n > 0 ? "; qemu said: " : "",
		          (int)(n > 0 ? strcspn(tail, "\n") : 0), tail);
	unlink(logpath);
	rmdir(dir);
	return status;
}
