/*
 * run-vm.c: `clawbox run --vm`: the same contract, with the sandbox made inside a microVM
 * (issue 6) that lives for this one run (src/vm/vm-host.c boots it and talks to its guest).
 * With --net proxy, the egress proxy runs here on the host, with the keys, as it does for a
 * host sandbox: the guest relays the sandbox's connections to it over the VM's port.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "fd-util.h"
#include "log.h"
#include "macro.h"
#include "run-vm.h"
#include "sandbox.h"
#include "vm-host.h"

static void
say_progress(const char *line)
{
	log_info("--vm: %s", line);
}

int
run_vm(const struct sandbox_spec *spec, const char *image, enum vm_accel accel, bool debug)
{
	char vmlinux[PATH_MAX + 16];
	snprintf(vmlinux, sizeof(vmlinux), "%s/vmlinux", image);
	if (access(vmlinux, R_OK) < 0) {
		log_error(
		    "--vm: no guest image in %s (build it with 'make guest', or --vm-image DIR)",
		    image);
		return SANDBOX_EXIT_SETUP;
	}
	/* Folders and files (a file is shared alone, in a folder of its own); a socket cannot
	 * cross 9p, and nothing here relays one. */
	for (size_t i = 0; i < spec->n_mounts; i++) {
		struct stat st;
		if (stat(spec->mounts[i].source, &st) < 0 ||
		    !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode))) {
			log_error(
			    "--vm: mount source %s: only folders and files can be shared into "
			    "the VM",
			    spec->mounts[i].source);
			return SANDBOX_EXIT_SETUP;
		}
	}
	/* A closed reader is a stream's error; signals end the VM before we go. */
	signal(SIGPIPE, SIG_IGN);
	sigset_t old;
	_cleanup_close_ int sig_fd = stop_signals_fd(&old);

	/* The VM is this run's alone: its shares are exactly the run's mounts. */
	struct vm_share shares[SANDBOX_MAX_MOUNTS];
	for (size_t i = 0; i < spec->n_mounts; i++)
		shares[i] = (struct vm_share){spec->mounts[i].source, spec->mounts[i].writable};
	struct vm_config cfg = {.image = image,
	                        .memory = spec->memory_bytes + (128ULL << 20),
	                        .shares = shares,
	                        .n_shares = spec->n_mounts,
	                        .debug = debug,
	                        .sig_fd = sig_fd,
	                        .accel = accel,
	                        /* A person waiting sees why (a TCG boot takes seconds); a
	                         * script's stderr stays the command's own. */
	                        .progress = debug || isatty(2) ? say_progress : NULL};
	struct vm vm;
	char why[SANDBOX_MSG_MAX];
	int r = vm_start(&vm, &cfg, why, sizeof(why));
	if (r < 0) {
		log_error("--vm: %s", why);
		sigprocmask(SIG_SETMASK, &old, NULL);
		return r == -EINTR ? 128 + SIGTERM : SANDBOX_EXIT_SETUP;
	}
	if (vm.note[0])
		log_warn("--vm: %s", vm.note);
	log_debug("--vm: the guest (kernel %s, %s) is ready", vm.kernel, vm.kvm ? "KVM" : "TCG");

	/* The proxy: started as sandbox_run() would, fed by the VM's connections. */
	int sp[2] = {-1, -1};
	pid_t proxy = -1;
	struct sandbox_result res = {.status = SANDBOX_EXIT_SETUP};
	if (spec->proxy_argv) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0) {
			proxy =
			    sandbox_proxy_start(spec->proxy_argv, sp[1], spec->proxy_control_fd);
			close(sp[1]);
		}
		if (proxy < 0)
			snprintf(res.message, sizeof(res.message), "--vm: cannot start the proxy");
	}
	if (!spec->proxy_argv || proxy > 0)
		(void)vm_run(&vm, spec, 1, 2, sp[0], sig_fd, &res);
	if (sp[0] >= 0)
		close(sp[0]); /* the proxy's end of its sandbox: it finishes and quits */
	sandbox_proxy_stop(proxy);
	vm_stop(&vm);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (res.message[0])
		log_error("%s", res.message);
	return res.status;
}
