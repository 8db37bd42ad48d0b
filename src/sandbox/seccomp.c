/*
 * seccomp.c: installs the build-time compiled filters. The exceptions filter goes first and
 * the allowlist last; order does not change the verdict (the kernel takes the strictest), but
 * once the allowlist is in, seccomp(2) itself would still be allowed, so nothing is lost.
 */
#include <errno.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "macro.h"
#include "seccomp-bpf.h"

static int
install_one(const struct sock_filter *prog, unsigned short len)
{
	struct sock_fprog fprog = {
	    .len = len,
	    .filter = (struct sock_filter *)prog,
	};
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) < 0)
		return NEG_ERRNO();
	return 0;
}

int
seccomp_install(void)
{
	int r = install_one(seccomp_deny_prog, seccomp_deny_prog_len);
	if (r < 0)
		return r;
	return install_one(seccomp_allow_prog, seccomp_allow_prog_len);
}
