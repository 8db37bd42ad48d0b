/*
 * guest-runs.h: the microVM guest's side of the host link (guest-runs.c).
 */
#ifndef CLAWBOX_GUEST_RUNS_H
#define CLAWBOX_GUEST_RUNS_H

/* Serves the host over port (the clawbox.mux virtio-serial port, opened read-write) until the
 * host asks for a power-off or the port is gone. Says {"ready"} first, with the kernel's
 * release; then each {"run"} request becomes a fresh sandbox, several at once if asked.
 * Returns 0 on a power-off request, -errno when the link broke. */
int guest_serve(int port, const char *kernel_release);

#endif
