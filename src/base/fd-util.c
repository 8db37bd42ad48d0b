/*
 * fd-util.c: I/O loops that every other file would otherwise write again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fd-util.h"
#include "macro.h"

int
write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return NEG_ERRNO();
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t
read_full(int fd, void *buf, size_t max)
{
	char *p = buf;
	size_t got = 0;

	while (got < max) {
		ssize_t n = read(fd, p + got, max - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return NEG_ERRNO();
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int
write_file_at(int dirfd, const char *path, const char *s, mode_t mode)
{
	_cleanup_close_ int fd =
	    openat(dirfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return NEG_ERRNO();
	return write_all(fd, s, strlen(s));
}

ssize_t
read_file_at(int dirfd, const char *path, char *buf, size_t max)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return NEG_ERRNO();
	if (max == 0)
		return -EINVAL;
	ssize_t n = read_full(fd, buf, max);
	if (n < 0)
		return n;
	if ((size_t)n == max) {
		buf[max - 1] = '\0';
		return -EFBIG;
	}
	buf[n] = '\0';
	return n;
}

int
send_msg(int sock, const void *data, size_t len, const int *fds, size_t n)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * SEND_FDS_MAX)];
	} control;
	struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};

	if (n > SEND_FDS_MAX || len == 0)
		return -EINVAL;
	if (n > 0) {
		memset(&control, 0, sizeof(control));
		msg.msg_control = control.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * n);
		struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * n);
	}
	for (;;) {
		ssize_t r = sendmsg(sock, &msg, MSG_NOSIGNAL);
		if (r == (ssize_t)len)
			return 0;
		if (r < 0 && errno == EINTR)
			continue;
		return r < 0 ? NEG_ERRNO() : -EIO;
	}
}

int
send_fds(int sock, char byte, const int *fds, size_t n)
{
	return send_msg(sock, &byte, 1, fds, n);
}

ssize_t
recv_msg(int sock, void *buf, size_t size, int *fds, size_t max, size_t *ret_n)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * SEND_FDS_MAX)];
	} control;
	struct iovec iov = {.iov_base = buf, .iov_len = size};
	struct msghdr msg = {
	    .msg_iov = &iov,
	    .msg_iovlen = 1,
	    .msg_control = control.buf,
	    .msg_controllen = sizeof(control.buf),
	};
	ssize_t r;

	do
		r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return NEG_ERRNO();
	if (r == 0)
		return -EPIPE;

	size_t n = 0;
	bool overflow = (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int got[SEND_FDS_MAX];
		if (k > SEND_FDS_MAX)
			k = SEND_FDS_MAX;
		memcpy(got, CMSG_DATA(c), k * sizeof(int));
		for (size_t i = 0; i < k; i++) {
			if (n < max)
				fds[n++] = got[i];
			else {
				close(got[i]);
				overflow = true;
			}
		}
	}
	if (overflow) {
		for (size_t i = 0; i < n; i++)
			close(fds[i]);
		return -EMSGSIZE;
	}
	*ret_n = n;
	return r;
}

int
recv_fds(int sock, char *ret_byte, int *fds, size_t max, size_t *ret_n)
{
	ssize_t r = recv_msg(sock, ret_byte, 1, fds, max, ret_n);
	return r < 0 ? (int)r : 0;
}

int
unix_connect(const char *path, int type)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NEG_ERRNO();
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = NEG_ERRNO();
		close(fd);
		return r;
	}
	return fd;
}

int
stop_signals_fd(sigset_t *ret_old)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, ret_old);
	int fd = signalfd(-1, &mask, SFD_CLOEXEC);
	return fd < 0 ? NEG_ERRNO() : fd;
}
