/*
 * seccomp-policy.h: the sandbox's system-call policy, as data.
 *
 * Read by tools/gen-seccomp.c at build time only; libseccomp compiles it to BPF there and the
 * clawbox binary carries the finished program (no libseccomp at run time, no compile per start).
 *
 * The policy is default-deny. The plain allowlist below is Docker's default profile's
 * unconditional list for x86_64 (tests/data/docker-seccomp-default.json), minus ioctl and
 * socketpair, which move to the argument-checked rules. Everything Docker allows only with a
 * capability (mount, bpf, perf_event_open, ptrace, kexec, modules, setns, unshare, ...) stays
 * denied, since the sandbox has no capabilities. Beyond Docker we also deny: ptrace and
 * process_vm_{readv,writev} (Docker allows them on 4.8+ kernels), modify_ldt, any clone with a
 * namespace flag, clone3 (its flags sit in memory the filter cannot read), socket families other
 * than AF_UNIX, AF_INET, AF_INET6 and NETLINK_ROUTE, and the TIOCSTI, TIOCLINUX, TIOCCONS and
 * TIOCSETD ioctls. Calls for another ABI (i386 via int 0x80, x32) kill the process.
 *
 * Denied calls fail with ENOSYS, so programs take their "not available" fallback (glibc's
 * clone3 -> clone, for instance); argument-based denials use the errno a program expects for
 * that case (EPERM, EAFNOSUPPORT).
 */
#ifndef CLAWBOX_SECCOMP_POLICY_H
#define CLAWBOX_SECCOMP_POLICY_H

/* clang-format off */
static const char *const seccomp_allow_names[] = {
	"accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat",
	"capget", "capset", "chdir", "chmod", "chown", "clock_adjtime", "clock_getres",
	"clock_gettime", "clock_nanosleep", "close", "close_range", "connect",
	"copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1",
	"epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait",
	"epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group",
	"faccessat", "faccessat2", "fadvise64", "fallocate", "fanotify_mark", "fchdir",
	"fchmod", "fchmodat", "fchmodat2", "fchown", "fchownat", "fcntl", "fdatasync",
	"fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat",
	"fstatfs", "fsync", "ftruncate", "futex", "futex_requeue", "futex_wait", "futex_waitv",
	"futex_wake", "futimesat", "get_robust_list", "get_thread_area", "getcpu", "getcwd",
	"getdents", "getdents64", "getegid", "geteuid", "getgid", "getgroups", "getitimer",
	"getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom",
	"getresgid", "getresuid", "getrlimit", "getrusage", "getsid", "getsockname",
	"getsockopt", "gettid", "gettimeofday", "getuid", "getxattr", "getxattrat",
	"inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel",
	"io_destroy", "io_getevents", "io_pgetevents", "io_setup", "io_submit",
	"ioprio_get", "ioprio_set", "kill", "landlock_add_rule", "landlock_create_ruleset",
	"landlock_restrict_self", "lchown", "lgetxattr", "link", "linkat", "listen",
	"listmount", "listxattr", "listxattrat", "llistxattr", "lremovexattr", "lseek",
	"lsetxattr", "lstat", "madvise", "map_shadow_stack", "membarrier", "memfd_create",
	"memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2",
	"mlockall", "mmap", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
	"mq_timedreceive", "mq_timedsend", "mq_unlink", "mremap", "mseal", "msgctl", "msgget",
	"msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap", "name_to_handle_at",
	"nanosleep", "newfstatat", "open", "openat", "openat2", "pause", "pidfd_open",
	"pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect",
	"poll", "ppoll", "prctl", "pread64", "preadv", "preadv2", "prlimit64",
	"process_mrelease", "pselect6", "pwrite64", "pwritev", "pwritev2", "read", "readahead",
	"readlink", "readlinkat", "readv", "recvfrom", "recvmmsg", "recvmsg",
	"remap_file_pages", "removexattr", "removexattrat", "rename", "renameat", "renameat2",
	"restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask",
	"rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
	"rt_tgsigqueueinfo", "sched_get_priority_max", "sched_get_priority_min",
	"sched_getaffinity", "sched_getattr", "sched_getparam", "sched_getscheduler",
	"sched_rr_get_interval", "sched_setaffinity", "sched_setattr", "sched_setparam",
	"sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget", "semop",
	"semtimedop", "sendfile", "sendmmsg", "sendmsg", "sendto", "set_robust_list",
	"set_thread_area", "set_tid_address", "setfsgid", "setfsuid", "setgid", "setgroups",
	"setitimer", "setpgid", "setpriority", "setregid", "setresgid", "setresuid",
	"setreuid", "setrlimit", "setsid", "setsockopt", "setuid", "setxattr", "setxattrat",
	"shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd",
	"signalfd4", "splice", "stat", "statfs", "statmount", "statx", "symlink",
	"symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time",
	"timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_settime",
	"timerfd_create", "timerfd_gettime", "timerfd_settime", "times", "tkill", "truncate",
	"umask", "uname", "unlink", "unlinkat", "uretprobe", "utime", "utimensat", "utimes",
	"vfork", "vmsplice", "wait4", "waitid", "write", "writev",
	/* x86_64 only, allowed by Docker's amd64 arch rule */
	"arch_prctl",
};
/* clang-format on */

/* Calls whose arguments are checked: they must not appear in the plain list above, where an
 * unconditional rule would swallow the checks (gen-seccomp refuses to build if one does). */
static const char *const seccomp_arg_checked[] = {
    "clone", "clone3", "ioctl", "personality", "socket", "socketpair",
};

/* clone(2) namespace flags; clone() with any of them is refused with EPERM. CLONE_NEWTIME
 * (0x80) is left out: in clone() those bits are the exit signal, not a flag. */
#define SECCOMP_CLONE_NS_FLAGS                                                                     \
	(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |             \
	 CLONE_NEWPID | CLONE_NEWNET)

/* Socket families the sandbox may create. AF_NETLINK is further limited to NETLINK_ROUTE
 * (what `ip addr` and getifaddrs() use). Everything else (AF_PACKET, AF_ALG, AF_VSOCK, AF_KEY,
 * AF_BLUETOOTH, AF_XDP, ...) fails with EAFNOSUPPORT. */
static const int seccomp_socket_families[] = {AF_UNIX, AF_INET, AF_INET6};

/* ioctl requests refused with EPERM: pushing input into a terminal (TIOCSTI, TIOCLINUX's
 * paste), redirecting the console (TIOCCONS) and changing line discipline (TIOCSETD). */
static const unsigned long seccomp_denied_ioctls[] = {TIOCSTI, TIOCLINUX, TIOCCONS, TIOCSETD};

/* Set-user-ID and set-group-ID bits are refused (EPERM) wherever a call takes a file mode:
 * as root, a writable mount is idmapped to its owner (launch.c), so a file the sandbox makes
 * there may belong to root on the host, and a setuid-root program in a folder another host
 * user can reach would be a way up (nosuid on our mount does not hold on the host's). Each
 * row: the call, the argument holding the mode, and the one holding the open flags (-1: it
 * always sets the mode; else only with O_CREAT or O_TMPFILE, when the mode is used at all).
 * mkdir is absent: the kernel drops those bits from its mode itself. openat2 carries its mode
 * in memory the filter cannot read: it fails with ENOSYS (programs fall back to openat). */
static const struct {
	const char *name;
	unsigned mode_arg;
	int flags_arg;
} seccomp_mode_calls[] = {
    {"chmod", 1, -1},     {"fchmod", 1, -1}, {"fchmodat", 2, -1},
    {"fchmodat2", 2, -1}, {"creat", 1, -1},  {"mknod", 1, -1},
    {"mknodat", 2, -1},   {"open", 2, 1},    {"openat", 3, 2},
};

/* personality(2) values Docker allows: PER_LINUX, UNAME26, PER_LINUX32, PER_LINUX32|UNAME26,
 * and 0xffffffff (query). */
static const unsigned long seccomp_personalities[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};

#endif
