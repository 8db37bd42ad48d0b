/*
 * fd-util.h: whole reads and writes with retry on EINTR and short counts, and small-file
 * helpers relative to a directory fd. All return 0 (or a byte count) or -errno.
 */
#ifndef CLAWBOX_FD_UTIL_H
#define CLAWBOX_FD_UTIL_H

#include <signal.h>
#include <stddef.h>
#include <sys/types.h>

/* Writes all len bytes. */
int write_all(int fd, const void *buf, size_t len);

/* Reads until EOF or max bytes; returns the count. Never writes past buf[max-1]. */
ssize_t read_full(int fd, void *buf, size_t max);

/* Writes s to dirfd/path (created with mode if absent, truncated; O_NOFOLLOW). */
int write_file_at(int dirfd, const char *path, const char *s, mode_t mode);

/* Reads at most max-1 bytes of dirfd/path into buf and NUL-terminates it; returns the length.
 * -EFBIG when the file is larger than that. */
ssize_t read_file_at(int dirfd, const char *path, char *buf, size_t max);

/* Sends one byte and up to SEND_FDS_MAX descriptors over a unix socket (SCM_RIGHTS). */
#define SEND_FDS_MAX 8
int send_fds(int sock, char byte, const int *fds, size_t n);

/* Receives what send_fds() sent: the byte, and the descriptors (close-on-exec) into fds[]
 * with their count in *ret_n. -EPIPE on EOF, -EMSGSIZE if more than max arrived (all of them
 * are closed then). */
int recv_fds(int sock, char *ret_byte, int *fds, size_t max, size_t *ret_n);

/* The same with a message of len bytes (a SOCK_SEQPACKET message: one call, one message).
 * recv_msg() returns the message's length; -EMSGSIZE if it or its descriptors did not fit in
 * size or max (the descriptors are closed then). */
int send_msg(int sock, const void *data, size_t len, const int *fds, size_t n);
ssize_t recv_msg(int sock, void *buf, size_t size, int *fds, size_t max, size_t *ret_n);

/* A connected unix socket (type: SOCK_STREAM or SOCK_SEQPACKET), close-on-exec, or -errno. */
int unix_connect(const char *path, int type);

/* Blocks SIGINT, SIGTERM and SIGHUP (the old mask in *ret_old, if not NULL) and returns a
 * signalfd for them: a process with a poll loop learns of its stop there. -errno on failure
 * (the signals stay blocked). */
int stop_signals_fd(sigset_t *ret_old);

#endif
