/*
 * caps.c: giving up privilege for good. Every capability set is emptied (bounding, ambient,
 * inheritable, permitted, effective) and the securebits are locked so that no later exec
 * (say of a file with capabilities, or as uid 0 of some nested namespace) gives them back.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/securebits.h>

#include "fd-util.h"
#include "internal.h"
#include "macro.h"

static int
last_cap(void)
{
	char buf[16];
	/* The kernel may know more capabilities than our headers: ask it. */
	if (read_file_at(AT_FDCWD, "/proc/sys/kernel/cap_last_cap", buf, sizeof(buf)) > 0) {
		int v = 0;
		for (char *p = buf; *p >= '0' && *p <= '9'; p++)
			v = v * 10 + (*p - '0');
		if (v > 0 && v < 64)
			return v;
	}
	return CAP_LAST_CAP;
}

int
caps_drop_all(void)
{
	int top = last_cap();

	/* Needs CAP_SETPCAP, so it comes before the sets are emptied. */
	if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
	                                 SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
	                                 SECBIT_NO_CAP_AMBIENT_RAISE |
	                                 SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED) < 0)
		return NEG_ERRNO();
	for (int cap = 0; cap <= top; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return NEG_ERRNO();
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return NEG_ERRNO();

	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct data[2] = {{0}};
	if (syscall(SYS_capset, &hdr, data) < 0)
		return NEG_ERRNO();
	return 0;
}

int
set_no_new_privs(void)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return NEG_ERRNO();
	return 0;
}
