/*
 * vm-host.h: a microVM as the host sees it (vm-host.c): qemu -M microvm, confined in a host
 * sandbox, booted from the guest image with clawbox as its init, and the mux over its one
 * virtio-serial port through which sandboxes are run inside it.
 */
#ifndef CLAWBOX_VM_HOST_H
#define CLAWBOX_VM_HOST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "mux.h"
#include "sandbox.h"

#define VM_READY_MS  6000 /* about three times a normal boot under TCG */
#define VM_ATTEMPTS  3
#define VM_GUEST_MEM (512ULL << 20)

struct vm_config {
	const char *image;                  /* the folder with vmlinux and initramfs.cpio */
	uint64_t memory;                    /* the guest's RAM; at least VM_GUEST_MEM */
	const struct sandbox_mount *mounts; /* folders shared into the VM: 9p tags m0, m1, ... */
	size_t n_mounts;
	bool debug; /* the guest's console on stderr */
};

struct vm {
	pid_t launcher; /* our child: qemu's host sandbox */
	char dir[32];   /* this VM's socket folder */
	int port;       /* the mux socket qemu connected to */
	struct mux mux;
	char kernel[65]; /* the guest's release, from its "ready" */
	bool ready;
	uint32_t next_id;
	/* the run in progress */
	uint32_t run_id;
	int proxy_sock; /* where its connections go; -1: none */
	bool run_done;
	struct sandbox_result run_result;
};

/* Boots a VM and waits for its guest agent; a boot that does not get there within
 * VM_READY_MS is killed and tried again (about 1 TCG boot in 12 stalls early here), at most
 * VM_ATTEMPTS times. Returns 0, or -errno with why (one line) in why. */
int vm_start(struct vm *vm, const struct vm_config *cfg, char *why, size_t size);

/* Runs spec in a fresh sandbox inside the VM: spec's mounts must be cfg's, in that order. Its
 * stdout and stderr are written to out_fd and err_fd (not closed); with proxy_sock >= 0 its
 * proxy connections are handed there as the sandbox would hand them to the egress proxy.
 * One at a time. Returns 0 when the run ended with a status (in *ret), -errno when the VM
 * failed (ret says why). sig_fd, if >= 0, is a signalfd: a signal on it ends the VM and the
 * run with 128 + the signal. */
int vm_run(struct vm *vm, const struct sandbox_spec *spec, int out_fd, int err_fd, int proxy_sock,
           int sig_fd, struct sandbox_result *ret);

/* Asks the guest to power off, waits for qemu (a few seconds at most, then kills it) and
 * removes the VM's files. With a run still going, qemu is stopped at once. */
void vm_stop(struct vm *vm);

#endif
