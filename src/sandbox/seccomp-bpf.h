/*
 * seccomp-bpf.h: the pre-compiled filter programs (generated into build/seccomp-bpf.c by
 * tools/gen-seccomp from seccomp-policy.h) and the function that installs them.
 */
#ifndef CLAWBOX_SECCOMP_BPF_H
#define CLAWBOX_SECCOMP_BPF_H

#include <linux/filter.h>

extern const struct sock_filter seccomp_allow_prog[];
extern const unsigned short seccomp_allow_prog_len;
extern const struct sock_filter seccomp_deny_prog[];
extern const unsigned short seccomp_deny_prog_len;

/* Installs both programs on the calling thread. no_new_privs must already be set. Returns 0 or
 * -errno. After it returns only the sandbox policy's calls work, so call it last. */
int seccomp_install(void);

#endif
