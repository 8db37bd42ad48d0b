/*
 * test-proxy-confine.c: what the proxy can still do once confine.c has run, tried in a
 * child process that confines itself: no exec, no file written or created, no file read
 * but the trust store and resolver files, no namespaces, no raw sockets; and what it needs
 * still works (threads, the sockets it relays with, reading the trust store).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "confine.h"
#include "tap.h"

static void *
thread_main(void *arg)
{
	return arg;
}

enum {
	R_CONFINED,
	R_EXEC,
	R_WRITE_TMP,
	R_READ_PASSWD,
	R_READ_HOSTS,
	R_READ_CERTS,
	R_UNSHARE,
	R_CLONE_NEWUSER,
	R_PACKET_SOCKET,
	R_INET_SOCKET,
	R_THREAD,
	R_N,
};

static void
child(int wfd)
{
	char res[R_N];
	memset(res, 0, sizeof(res));
	res[R_CONFINED] = proxy_confine(NULL) == 0;
	char *const argv[] = {"/bin/true", NULL};
	res[R_EXEC] = execv("/bin/true", argv) < 0; /* true: refused */
	char tmp[64];
	snprintf(tmp, sizeof(tmp), "/tmp/clawbox-confine-%d", (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	res[R_WRITE_TMP] = fd < 0;
	if (fd >= 0)
		unlink(tmp);
	fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
	res[R_READ_PASSWD] = fd < 0;
	fd = open("/etc/hosts", O_RDONLY | O_CLOEXEC);
	res[R_READ_HOSTS] = fd >= 0;
	fd = open("/etc/ssl/certs/ca-certificates.crt", O_RDONLY | O_CLOEXEC);
	res[R_READ_CERTS] = fd >= 0 || errno == ENOENT;
	res[R_UNSHARE] = unshare(CLONE_NEWUSER) < 0;
	long pid =
	    syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | SIGCHLD), NULL, NULL, NULL, 0);
	if (pid == 0)
		_exit(0);
	res[R_CLONE_NEWUSER] = pid < 0;
	res[R_PACKET_SOCKET] = socket(AF_PACKET, SOCK_RAW, 0) < 0;
	res[R_INET_SOCKET] = socket(AF_INET6, SOCK_STREAM, 0) >= 0;
	pthread_t t;
	void *ret = NULL;
	res[R_THREAD] = pthread_create(&t, NULL, thread_main, (void *)1) == 0 &&
	                pthread_join(t, &ret) == 0 && ret == (void *)1;
	(void)!write(wfd, res, sizeof(res));
	_exit(0);
}

int
main(void)
{
	int p[2];
	if (pipe(p) < 0)
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		child(p[1]);
	}
	close(p[1]);
	char res[R_N] = {0};
	ssize_t n = read(p[0], res, sizeof(res));
	int status = 0;
	waitpid(pid, &status, 0);
	ok(n == R_N && WIFEXITED(status), "the confined child reported (read %zd)", n);
	ok(res[R_CONFINED], "proxy_confine() succeeds");
	ok(res[R_EXEC], "no exec");
	ok(res[R_WRITE_TMP], "no file created, not even in /tmp");
	ok(res[R_READ_PASSWD], "no file read outside its list (/etc/passwd)");
	ok(res[R_READ_HOSTS], "the resolver's files can be read (/etc/hosts)");
	ok(res[R_READ_CERTS], "the trust store can be read");
	ok(res[R_UNSHARE], "no unshare");
	ok(res[R_CLONE_NEWUSER], "no clone into a new user namespace");
	ok(res[R_PACKET_SOCKET], "no packet socket");
	ok(res[R_INET_SOCKET], "TCP sockets still work");
	ok(res[R_THREAD], "threads still work (clone3 refused, glibc falls back to clone)");
	return tap_done();
}
