/*
 * run-vm.h: `clawbox run --vm` (run-vm.c).
 */
#ifndef CLAWBOX_RUN_VM_H
#define CLAWBOX_RUN_VM_H

#include <stdbool.h>

#include "spec.h"
#include "vm-host.h"

/* Runs spec's command in a sandbox inside a microVM from the guest image in image (vmlinux,
 * initramfs.cpio). Returns the contract's exit status; says why on stderr when it is ours. */
int run_vm(const struct sandbox_spec *spec, const char *image, enum vm_accel accel, bool debug);

#endif
