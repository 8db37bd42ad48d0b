/*
 * gen-seccomp: compiles src/sandbox/seccomp-policy.h into BPF at build time.
 *
 * Output is a C file with two ready-made programs that src/sandbox/seccomp.c installs:
 *   - the allowlist (default ENOSYS; wrong architecture or x32 kills the process), and
 *   - the exceptions (default allow) for the few calls whose danger is in one argument value
 *     inside an otherwise allowed call: libseccomp cannot say "allow ioctl except TIOCSTI" in
 *     one filter (an unconditional rule swallows the conditional ones), but two stacked
 *     filters can, because the kernel applies the strictest verdict of all filters.
 * Doing this at build time keeps libseccomp (and the compile) off every sandbox start.
 *
 * usage: gen-seccomp OUTPUT.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <unistd.h>

#include "seccomp-policy.h"

#define AF_PROBE_MAX 64 /* families 0..63 cover every AF_* the kernel defines */

static void
check(int r, const char *what)
{
	if (r < 0) {
		fprintf(stderr, "gen-seccomp: %s: %s\n", what, strerror(-r));
		exit(1);
	}
}

static scmp_filter_ctx
new_ctx(uint32_t def)
{
	scmp_filter_ctx ctx = seccomp_init(def);
	if (!ctx) {
		fprintf(stderr, "gen-seccomp: seccomp_init failed\n");
		exit(1);
	}
	/* Only the native ABI is in the filter: i386 (int 0x80) and x32 calls kill. */
	check(seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS), "badarch");
	/* Binary search over syscall numbers rather than a 300-long chain. */
	check(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2), "optimize");
	return ctx;
}

static void
build_allow(scmp_filter_ctx ctx)
{
	for (size_t i = 0; i < sizeof(seccomp_allow_names) / sizeof(seccomp_allow_names[0]); i++) {
		const char *name = seccomp_allow_names[i];
		for (size_t j = 0; j < sizeof(seccomp_arg_checked) / sizeof(seccomp_arg_checked[0]);
		     j++)
			if (strcmp(name, seccomp_arg_checked[j]) == 0) {
				fprintf(stderr,
				        "gen-seccomp: %s is argument-checked and may not be in the "
				        "plain allowlist\n",
				        name);
				exit(1);
			}
		int nr = seccomp_syscall_resolve_name(name);
		if (nr == __NR_SCMP_ERROR || nr < 0) {
			/* Newer than this libseccomp: it stays denied (fails closed). */
			fprintf(stderr,
			        "gen-seccomp: note: %s unknown to libseccomp, left denied\n", name);
			continue;
		}
		check(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0), name);
	}

	/* clone without namespace flags (fork, threads); with one: EPERM. */
	check(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
	                       SCMP_A0_64(SCMP_CMP_MASKED_EQ, SECCOMP_CLONE_NS_FLAGS, 0)),
	      "clone");
	const unsigned long ns_flags[] = {CLONE_NEWNS,  CLONE_NEWCGROUP, CLONE_NEWUTS,
	                                  CLONE_NEWIPC, CLONE_NEWUSER,   CLONE_NEWPID,
	                                  CLONE_NEWNET};
	for (size_t i = 0; i < sizeof(ns_flags) / sizeof(ns_flags[0]); i++)
		check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
		                       SCMP_A0_64(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i])),
		      "clone ns");

	/* socket: the allowed families; other known families EAFNOSUPPORT. Family and protocol
	 * are ints: compare the low 32 bits only, as the kernel does. */
	for (int fam = 0; fam < AF_PROBE_MAX; fam++) {
		int allowed = 0;
		for (size_t i = 0; i < sizeof(seccomp_socket_families) / sizeof(int); i++)
			allowed |= seccomp_socket_families[i] == fam;
		if (allowed)
			check(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
			                       SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)fam)),
			      "socket");
		else if (fam != AF_NETLINK)
			check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket),
			                       1, SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)fam)),
			      "socket deny");
	}
	check(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2,
	                       SCMP_A0_32(SCMP_CMP_EQ, AF_NETLINK),
	                       SCMP_A2_32(SCMP_CMP_EQ, NETLINK_ROUTE)),
	      "socket netlink");
	check(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1,
	                       SCMP_A0_32(SCMP_CMP_EQ, AF_UNIX)),
	      "socketpair");

	/* ioctl is allowed here; its exceptions are in the second filter. */
	check(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 0), "ioctl");

	for (size_t i = 0; i < sizeof(seccomp_personalities) / sizeof(unsigned long); i++)
		check(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(personality), 1,
		                       SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)seccomp_personalities[i])),
		      "personality");
}

static void
build_deny(scmp_filter_ctx ctx)
{
	/* Modes with set-id bits (seccomp-policy.h); the two filters' stricter answer wins. */
	static const unsigned setid_bits[] = {S_ISUID, S_ISGID};
	static const unsigned create_flags[] = {O_CREAT, O_TMPFILE & ~O_DIRECTORY};
	for (size_t i = 0; i < sizeof(seccomp_mode_calls) / sizeof(seccomp_mode_calls[0]); i++) {
		int nr = seccomp_syscall_resolve_name(seccomp_mode_calls[i].name);
		if (nr == __NR_SCMP_ERROR || nr < 0)
			continue; /* unknown here: the allow filter denies it */
		unsigned m = seccomp_mode_calls[i].mode_arg;
		int f = seccomp_mode_calls[i].flags_arg;
		for (size_t b = 0; b < 2; b++) {
			struct scmp_arg_cmp mode =
			    SCMP_CMP32(m, SCMP_CMP_MASKED_EQ, setid_bits[b], setid_bits[b]);
			if (f < 0) {
				check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 1, mode),
				      seccomp_mode_calls[i].name);
				continue;
			}
			for (size_t c = 0; c < 2; c++)
				check(
				    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 2, mode,
				                     SCMP_CMP32((unsigned)f, SCMP_CMP_MASKED_EQ,
				                                create_flags[c], create_flags[c])),
				    seccomp_mode_calls[i].name);
		}
	}
	check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(openat2), 0), "openat2");

	for (size_t i = 0; i < sizeof(seccomp_denied_ioctls) / sizeof(unsigned long); i++)
		check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
		                       SCMP_A1_32(SCMP_CMP_EQ, (uint32_t)seccomp_denied_ioctls[i])),
		      "ioctl deny");
}

static void
emit(FILE *out, scmp_filter_ctx ctx, const char *name)
{
	int fd = memfd_create("bpf", MFD_CLOEXEC);
	if (fd < 0) {
		perror("gen-seccomp: memfd_create");
		exit(1);
	}
	check(seccomp_export_bpf(ctx, fd), "export");
	off_t len = lseek(fd, 0, SEEK_END);
	if (len <= 0 || len % (off_t)sizeof(struct sock_filter) != 0 || len > 65536) {
		fprintf(stderr, "gen-seccomp: unexpected program size %lld\n", (long long)len);
		exit(1);
	}
	struct sock_filter *prog = malloc((size_t)len);
	if (!prog || pread(fd, prog, (size_t)len, 0) != len) {
		fprintf(stderr, "gen-seccomp: reading program back failed\n");
		exit(1);
	}
	size_t n = (size_t)len / sizeof(struct sock_filter);
	fprintf(out, "const struct sock_filter %s[] = {\n", name);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "\t{ 0x%04x, %u, %u, 0x%08x },\n", prog[i].code, prog[i].jt,
		        prog[i].jf, prog[i].k);
	fprintf(out, "};\nconst unsigned short %s_len = %zu;\n\n", name, n);
	free(prog);
	close(fd);
}

int
main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen-seccomp OUTPUT.c\n");
		return 2;
	}
	scmp_filter_ctx allow = new_ctx(SCMP_ACT_ERRNO(ENOSYS));
	scmp_filter_ctx deny = new_ctx(SCMP_ACT_ALLOW);
	build_allow(allow);
	build_deny(deny);

	char tmp[4096];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", argv[1]) >= sizeof(tmp))
		return 1;
	FILE *out = fopen(tmp, "we");
	if (!out) {
		perror(tmp);
		return 1;
	}
	fprintf(out, "/* Generated by tools/gen-seccomp from src/sandbox/seccomp-policy.h. "
	             "Do not edit. */\n#include \"seccomp-bpf.h\"\n\n");
	emit(out, allow, "seccomp_allow_prog");
	emit(out, deny, "seccomp_deny_prog");
	if (fclose(out) != 0 || rename(tmp, argv[1]) != 0) {
		perror(argv[1]);
		return 1;
	}
	seccomp_release(allow);
	seccomp_release(deny);
	return 0;
}
