/*
 * confine.c: the proxy gives itself the sandbox's medicine (see confine.h). It parses
 * everything a compromised sandbox sends, so once its keys, audit file and resolver
 * configuration are loaded it keeps only what relaying needs:
 *
 *  - landlock: no write, create or execute anywhere; read only where TLS and name
 *    resolution still look lazily (the trust store and CA files, which OpenSSL reads per
 *    connection; the resolver's files and the NSS modules getaddrinfo loads for libcurl).
 *    Signals and abstract unix sockets are scoped to itself (ABI 6).
 *  - seccomp (libseccomp, built at start: ~0.1 ms): an allowlist of the system calls of an
 *    event loop, sockets, splice and libcurl's resolver thread; anything else fails with
 *    EPERM. No execve, no ptrace, no mount, no namespaces, no keyring, no bpf.
 *  - no_new_privs, which seccomp needs anyway.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <linux/landlock.h>
#include <seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "confine.h"
#include "macro.h"

#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LANDLOCK_SCOPE_SIGNAL               (1ULL << 1)
#endif

/* ruleset_attr as of ABI 6; the kernel accepts a prefix of it for older ABIs. */
struct proxy_ll_attr {
	__u64 handled_access_fs;
	__u64 handled_access_net;
	__u64 scoped;
};

static int
ll_add(int ruleset, const char *path, __u64 handled)
{
	if (!path)
		return 0;
	_cleanup_close_ int fd = open(path, O_PATH | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return errno == ENOENT ? 0 : NEG_ERRNO(); /* not on this system: nothing to read */
	__u64 access = LANDLOCK_ACCESS_FS_READ_FILE;
	if (S_ISDIR(st.st_mode))
		access |= LANDLOCK_ACCESS_FS_READ_DIR;
	struct landlock_path_beneath_attr attr = {.allowed_access = access & handled,
	                                          .parent_fd = fd};
	if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &attr, 0) < 0)
		return NEG_ERRNO();
	return 0;
}

static int
confine_landlock(const char *const *extra_read)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (abi <= 0)
		return 0; /* no landlock in this kernel: seccomp and the uid still hold */
	struct proxy_ll_attr attr = {.handled_access_fs = (1ULL << 13) - 1};
	if (abi >= 2)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 5)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	size_t size = offsetof(struct proxy_ll_attr, handled_access_net);
	if (abi >= 6) {
		attr.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;
		size = sizeof(attr);
	}
	_cleanup_close_ int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
	if (ruleset < 0)
		return NEG_ERRNO();
	/* clang-format off */
	static const char *const readable[] = {
	    /* the system trust store, which OpenSSL opens for each TLS connection */
	    "/etc/ssl", "/usr/lib/ssl", "/usr/share/ca-certificates", "/etc/ca-certificates",
	    /* getaddrinfo in libcurl's resolver thread (the model host's name) */
	    "/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/gai.conf",
	    "/etc/host.conf", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
	    "/usr/lib64",
	    /* seeding (libevent's DNS ids, libcurl) when getrandom is not what they try first */
	    "/dev/urandom",
	};
	/* clang-format on */
	int r;
	for (size_t i = 0; i < ARRAY_SIZE(readable); i++)
		if ((r = ll_add(ruleset, readable[i], attr.handled_access_fs)) < 0)
			return r;
#ifdef __SANITIZE_ADDRESS__
	/* `make check SANITIZE=address`: LeakSanitizer reads /proc at exit. Test builds only. */
	if ((r = ll_add(ruleset, "/proc", attr.handled_access_fs)) < 0)
		return r;
#endif
	for (size_t i = 0; extra_read && extra_read[i]; i++)
		if ((r = ll_add(ruleset, extra_read[i], attr.handled_access_fs)) < 0)
			return r;
	if (syscall(SYS_landlock_restrict_self, ruleset, 0) < 0)
		return NEG_ERRNO();
	return 0;
}

static int
confine_seccomp(void)
{
	/* clang-format off */
	static const int allowed[] = {
	    /* memory, time, identity */
	    SCMP_SYS(brk), SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(mprotect),
	    SCMP_SYS(madvise), SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres),
	    SCMP_SYS(gettimeofday), SCMP_SYS(time), SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep),
	    SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(getppid), SCMP_SYS(getuid),
	    SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid), SCMP_SYS(getrandom),
	    SCMP_SYS(uname), SCMP_SYS(sysinfo), SCMP_SYS(getrlimit), SCMP_SYS(prlimit64),
	    SCMP_SYS(sched_getaffinity), SCMP_SYS(sched_yield), SCMP_SYS(getcwd),
	    /* files: landlock decides which */
	    SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev), SCMP_SYS(pread64),
	    SCMP_SYS(close), SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(statx),
	    SCMP_SYS(stat), SCMP_SYS(lstat), SCMP_SYS(lseek), SCMP_SYS(openat), SCMP_SYS(open),
	    SCMP_SYS(access), SCMP_SYS(faccessat), SCMP_SYS(faccessat2), SCMP_SYS(readlink),
	    SCMP_SYS(readlinkat), SCMP_SYS(getdents64), SCMP_SYS(fcntl), SCMP_SYS(ioctl),
	    SCMP_SYS(dup), SCMP_SYS(dup2), SCMP_SYS(dup3), SCMP_SYS(fadvise64),
	    /* the event loop */
	    SCMP_SYS(epoll_create), SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl),
	    SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_pwait2), SCMP_SYS(poll),
	    SCMP_SYS(ppoll), SCMP_SYS(select), SCMP_SYS(pselect6), SCMP_SYS(eventfd2),
	    SCMP_SYS(timerfd_create), SCMP_SYS(timerfd_settime), SCMP_SYS(pipe), SCMP_SYS(pipe2),
	    SCMP_SYS(splice),
	    /* sockets */
	    SCMP_SYS(socketpair), SCMP_SYS(connect), SCMP_SYS(bind),
	    SCMP_SYS(getsockname), SCMP_SYS(getpeername), SCMP_SYS(getsockopt),
	    SCMP_SYS(setsockopt), SCMP_SYS(shutdown), SCMP_SYS(sendto), SCMP_SYS(recvfrom),
	    SCMP_SYS(sendmsg), SCMP_SYS(recvmsg), SCMP_SYS(sendmmsg), SCMP_SYS(recvmmsg),
	    /* signals and threads (libcurl resolves in a thread of its own) */
	    SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn),
	    SCMP_SYS(sigaltstack), SCMP_SYS(tgkill), SCMP_SYS(futex), SCMP_SYS(set_robust_list),
	    SCMP_SYS(get_robust_list), SCMP_SYS(rseq), SCMP_SYS(set_tid_address),
	    SCMP_SYS(membarrier), SCMP_SYS(restart_syscall),
	    SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(prctl), SCMP_SYS(arch_prctl),
	};
	/* clang-format on */
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	if (!ctx)
		return -ENOMEM;
	int r = 0;
	for (size_t i = 0; i < ARRAY_SIZE(allowed) && r == 0; i++)
		if (allowed[i] >= 0) /* a name this architecture lacks (open, epoll_wait) */
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
	/* Threads, never namespaces; clone3's flags are out of a filter's reach, so it says
	 * ENOSYS and glibc falls back to clone. */
	const scmp_datum_t ns = CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
	                        CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP;
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
		                     SCMP_A0(SCMP_CMP_MASKED_EQ, ns, 0));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	/* Sockets of the families relaying and resolving use (netlink: getaddrinfo's
	 * AI_ADDRCONFIG); no packet, raw or other sockets. */
	static const int families[] = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK};
	for (size_t i = 0; i < ARRAY_SIZE(families) && r == 0; i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
		                     SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)families[i]));
#ifdef __SANITIZE_ADDRESS__
	/* LeakSanitizer stops the threads with ptrace from a helper thread at exit. Sanitizer
	 * builds are test builds; the release filter has neither. */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ptrace), 0);
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(wait4), 0);
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(getdents), 0);
#endif
	if (r == 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r;
}

int
proxy_confine(const char *const *extra_read)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return NEG_ERRNO();
	int r = confine_landlock(extra_read);
	if (r < 0)
		return r;
	return confine_seccomp();
}
