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

/* How long one boot may take to reach the guest agent, on an idle machine: TCG boots in about
 * 1.3 s median here but a loaded 2-core machine failed 2 of 14 boots at 6 s; KVM boots in well
 * under a second where it works, and fails fast where it does not. */
#define VM_READY_TCG_MS 10000
#define VM_READY_KVM_MS 4000
#define VM_ATTEMPTS     3
#define VM_GUEST_MEM (512ULL << 20)

struct vm_share {
	const char *source; /* a host folder or file, exported as 9p tag mN (N: its index) */
	bool writable;
};

enum vm_accel { VM_ACCEL_AUTO, VM_ACCEL_KVM, VM_ACCEL_TCG };

/* "auto", "kvm" or "tcg"; -EINVAL otherwise. */
int vm_accel_parse(const char *s, enum vm_accel *ret);

struct vm_config {
	const char *image;             /* the folder with vmlinux and initramfs.cpio */
	uint64_t memory;               /* the guest's RAM; at least VM_GUEST_MEM */
	const struct vm_share *shares; /* the only host folders the VM sees (beside /usr) */
	size_t n_shares;
	bool debug; /* the guest's console on stderr */
	int sig_fd; /* a signalfd that ends a boot in progress (vm_start() returns -EINTR); -1 */
	/* KVM where it can boot the guest, TCG where not. auto: KVM when its device is open to
	 * qemu's sandbox user (others may read and write it) and has not failed to boot the guest
	 * on this host kernel before (remembered in ~/.cache/clawbox/vm-accel); a KVM boot that
	 * fails falls back to TCG and says so in vm->note. kvm: KVM or an error. */
	enum vm_accel accel;
	/* Progress for a person (NULL: none): "booting the VM (tcg...)...", each retry. */
	void (*progress)(const char *line);
};

/* One boot's deadline in ms: the accelerator's base, scaled by the load per CPU (load1 / ncpu,
 * at least 1, at most 4), so a busy machine's slow boots are not taken for stalls. */
static inline int
vm_ready_ms(bool kvm, double load1, long ncpu)
{
	double f = ncpu > 0 ? load1 / (double)ncpu : 1.0;
	f = f < 1.0 || f != f ? 1.0 : f > 4.0 ? 4.0 : f;
	return (int)((kvm ? VM_READY_KVM_MS : VM_READY_TCG_MS) * f);
}

/* One sandbox in the VM. The caller owns it until on_done (or vm_stop) gives it back. */
struct vm_job {
	uint32_t id;    /* set by vm_submit(): the request's, and its streams' (id+2, +4, +6) */
	int proxy_sock; /* where its proxy connections go (see spec.proxy_sock); -1: none */
	char host_socket[108]; /* a mounted unix socket's host path: the guest relays to it */
	bool done;             /* the status came and the output was all written */
	bool got_status;
	struct sandbox_result result;
	void *user;
};

#define VM_JOBS_MAX 16

struct vm {
	pid_t launcher; /* our child: qemu's host sandbox */
	char dir[32];   /* this VM's socket folder */
	int port;       /* the mux socket qemu connected to */
	struct mux mux;
	char kernel[65]; /* the guest's release, from its "ready" */
	bool kvm;        /* the accelerator it booted with */
	char note[320];  /* a warning for the caller to show ("" if none): a KVM fallback */
	bool ready;
	uint32_t next_id;
	const struct vm_config *cfg;          /* borrowed until vm_stop() */
	char *share_real[SANDBOX_MAX_MOUNTS]; /* the shares' real paths, for vm_submit() */
	bool share_file[SANDBOX_MAX_MOUNTS];  /* a file, exported alone */
	struct vm_job *jobs[VM_JOBS_MAX];
	size_t n_jobs;
	bool abandoned; /* a job was left running (vm_run() cut short by a signal) */
	void (*on_done)(struct vm *vm, struct vm_job *job); /* NULL: poll job->done */
	void *user;
};

/* Boots a VM and waits for its guest agent; a boot that does not get there within
 * vm_ready_ms() (for this machine's load now; $CLAWBOX_VM_READY_MS, for tests, instead) is
 * killed and tried again (about 1 TCG boot in 12 stalls early here), at most
 * VM_ATTEMPTS times. cfg is borrowed until vm_stop(). Returns 0, or -errno with why (one
 * line) in why. */
int vm_start(struct vm *vm, const struct vm_config *cfg, char *why, size_t size);

/* The guest image's folder: given, else $CLAWBOX_VM_IMAGE, else build/vm next to this
 * executable (where `make guest` puts it), or PREFIX/lib/clawbox/vm for an installed one. */
void vm_default_image(const char *given, char *buf, size_t size);

/* Starts spec in a fresh sandbox inside the VM. Every mount's source must lie in one of the
 * VM's shares (the guest binds it from there); a mount of the agent binary (agent_exe, NULL:
 * none) becomes the guest's own clawbox, and one mount of a unix socket (the daemon's
 * host-action socket) a socket in the guest whose connections are relayed to it. The command's
 * stdin comes from in_fd (-1: nothing),
 * its output goes to out_fd and err_fd; own: the three are the VM's from this call on,
 * whatever it returns, closed when their streams end. Returns 0, or -errno with
 * job->result.message saying why (nothing was started). */
int vm_submit(struct vm *vm, struct vm_job *job, const struct sandbox_spec *spec,
              const char *agent_exe, int in_fd, int out_fd, int err_fd, bool own);

/* Asks the guest to stop a job (SIGTERM to its sandbox); its status still comes. */
void vm_cancel(struct vm *vm, struct vm_job *job);

/* The VM's descriptors for poll() (at most max, the port first); then vm_dispatch() with the
 * results: it handles the guest's frames and calls on_done for each job that ended. Returns
 * 0, or -errno once the VM is gone (every job still held is then done with status 125). */
size_t vm_pollfds(struct vm *vm, struct pollfd *p, size_t max);
int vm_dispatch(struct vm *vm, const struct pollfd *p, size_t n);

/* vm_submit() with this process's stdin, and polling until the job is done: one run, as
 * `clawbox run --vm` does it.
 * sig_fd (a signalfd, or -1): a signal cancels nothing, it returns -EINTR at once with the
 * result's status 128 + the signal. */
int vm_run(struct vm *vm, const struct sandbox_spec *spec, int out_fd, int err_fd, int proxy_sock,
           int sig_fd, struct sandbox_result *ret);

/* Asks the guest to power off (unless a job is still running: then qemu is stopped), waits
 * for qemu (a few seconds at most, then kills it) and removes the VM's files. Jobs still held
 * are dropped (their streams closed if owned), not called back. */
void vm_stop(struct vm *vm);

#endif
