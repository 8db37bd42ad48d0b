/*
 * fd-util.c: I/O loops that every other file would otherwise write again.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
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
