/*
 * confine.h: the proxy's own confinement (landlock, seccomp, no_new_privs), applied once
 * everything it opens by name at start is open. See confine.c for what is left.
 */
#ifndef CLAWBOX_PROXY_CONFINE_H
#define CLAWBOX_PROXY_CONFINE_H

/* Confines the calling process for good; extra_read (NULL-terminated, may be NULL) are
 * more files it may still read (CA files given on the command line). 0 or -errno. */
int proxy_confine(const char *const *extra_read);

#endif
