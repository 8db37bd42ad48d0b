/*
 * test-spec.c: --mount and --env parsing and the sandbox path rules, including bad input.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"
#include "tap.h"

static void
mount_ok(const char *arg, const char *src, const char *dst, bool rw)
{
	struct sandbox_spec spec;
	const char *why = NULL;
	sandbox_spec_init(&spec);
	int r = sandbox_spec_add_mount(&spec, arg, &why);
	ok(r == 0 && spec.n_mounts == 1 && strcmp(spec.mounts[0].source, src) == 0 &&
	       strcmp(spec.mounts[0].target, dst) == 0 && spec.mounts[0].writable == rw,
	   "mount \"%s\" -> %s at %s %s (r=%d)", arg, src, dst, rw ? "rw" : "ro", r);
	sandbox_spec_done(&spec);
}

static void
mount_bad(const char *arg)
{
	struct sandbox_spec spec;
	const char *why = NULL;
	sandbox_spec_init(&spec);
	int r = sandbox_spec_add_mount(&spec, arg, &why);
	ok(r == -EINVAL && spec.n_mounts == 0 && why && *why, "mount \"%s\" refused: %s", arg,
	   why ? why : "(no reason)");
	sandbox_spec_done(&spec);
}

static void
norm(const char *in, const char *want)
{
	char *out = NULL;
	int r = sandbox_path_normalize(in, &out);
	if (want)
		ok(r == 0 && out && strcmp(out, want) == 0, "normalize \"%s\" -> \"%s\" (%s)", in,
		   want, out ? out : "refused");
	else
		ok(r < 0 && !out, "normalize \"%s\" refused", in);
	free(out);
}

int
main(void)
{
	mount_ok("/src:/dst", "/src", "/dst", false);
	mount_ok("/src:/dst:ro", "/src", "/dst", false);
	mount_ok("/src:/dst:rw", "/src", "/dst", true);
	mount_ok("rel/dir:/data//x/", "rel/dir", "/data/x", false);
	mount_ok("/a:b:/c", "/a:b", "/c", false);
	mount_ok("/src:/tmp/x:rw", "/src", "/tmp/x", true);
	mount_ok("/src:/home/user", "/src", "/home/user", false);
	mount_bad("");
	mount_bad("/src");
	mount_bad(":/dst");
	mount_bad("/src:");
	mount_bad("/src:rw");
	mount_bad("/src:dst");
	mount_bad("/src:/");
	mount_bad("/src:///");
	mount_bad("/src:/a/../b");
	mount_bad("/src:/a/./b");
	mount_bad("/src:/proc");
	mount_bad("/src:/proc/sys");
	mount_bad("/src:/dev/null");
	mount_bad("/src:/sys");
	mount_bad("/src:/dst:rx");
	mount_bad("/src:/with\nnewline");

	/* A mistyped mode is called a mode, not a bad PATH. */
	const char *modes[] = {"/src:/dst:wr", "/src:/dst:RW", "/a:b:/dst:Ro", "/src:/dst:w"};
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		struct sandbox_spec sp;
		const char *why = NULL;
		sandbox_spec_init(&sp);
		int r = sandbox_spec_add_mount(&sp, modes[i], &why);
		ok(r == -EINVAL && why && strstr(why, "must be ro or rw"), "mount \"%s\": %s",
		   modes[i], why ? why : "(no reason)");
		sandbox_spec_done(&sp);
	}

	/* /processes is not /proc */
	mount_ok("/src:/processes", "/src", "/processes", false);

	struct sandbox_spec spec;
	const char *why;
	sandbox_spec_init(&spec);
	ok(sandbox_spec_add_mount(&spec, "/a:/x", &why) == 0, "first mount at /x");
	ok(sandbox_spec_add_mount(&spec, "/b:/x/", &why) == -EINVAL, "second mount at /x refused");
	int r = 0;
	for (int i = 1; i < SANDBOX_MAX_MOUNTS && r == 0; i++) {
		char arg[64];
		snprintf(arg, sizeof(arg), "/s:/m%d", i);
		r = sandbox_spec_add_mount(&spec, arg, &why);
	}
	ok(r == 0 && spec.n_mounts == SANDBOX_MAX_MOUNTS, "up to %d mounts", SANDBOX_MAX_MOUNTS);
	ok(sandbox_spec_add_mount(&spec, "/s:/one-more", &why) == -E2BIG, "one more is E2BIG");
	sandbox_spec_done(&spec);

	norm("/a/b", "/a/b");
	norm("//a///b//", "/a/b");
	norm("/a/.b/..c", "/a/.b/..c");
	norm("a/b", NULL);
	norm("/", NULL);
	norm("/a/..", NULL);
	norm("/./a", NULL);
	norm("", NULL);

	ok(sandbox_path_reserved("/proc") && sandbox_path_reserved("/dev/pts") &&
	       !sandbox_path_reserved("/device") && !sandbox_path_reserved("/tmp"),
	   "reserved paths are /proc, /dev, /sys and below only");

	sandbox_spec_init(&spec);
	ok(sandbox_spec_default_env(&spec, "xterm-256color") == 0 && spec.n_env == 4,
	   "default environment has 4 entries");
	ok(strcmp(spec.env[3], "TERM=xterm-256color") == 0, "TERM passed when sane");
	sandbox_spec_done(&spec);
	sandbox_spec_init(&spec);
	sandbox_spec_default_env(&spec, "evil\n$(rm -rf)");
	ok(strcmp(spec.env[3], "TERM=dumb") == 0, "odd TERM becomes dumb");
	ok(sandbox_spec_set_env(&spec, "FOO=1") == 0 && sandbox_spec_set_env(&spec, "FOO=2") == 0 &&
	       spec.n_env == 5 && strcmp(spec.env[4], "FOO=2") == 0,
	   "setting a name twice replaces it");
	ok(sandbox_spec_set_env(&spec, "EMPTY=") == 0, "empty value allowed");
	ok(sandbox_spec_set_env(&spec, "A_b9=x=y") == 0, "value may hold '='");
	const char *bad_env[] = {"NOEQUALS", "=x", "9A=x", "A-B=x", "A B=x", "ÄB=x"};
	for (size_t i = 0; i < sizeof(bad_env) / sizeof(bad_env[0]); i++)
		ok(sandbox_spec_set_env(&spec, bad_env[i]) == -EINVAL, "env \"%s\" refused",
		   bad_env[i]);
	char *big = malloc(SANDBOX_ENV_MAX_BYTES + 8);
	memset(big, 'x', SANDBOX_ENV_MAX_BYTES + 7);
	memcpy(big, "BIG=", 4);
	big[SANDBOX_ENV_MAX_BYTES + 7] = '\0';
	ok(sandbox_spec_set_env(&spec, big) == -E2BIG, "over-long entry is E2BIG");
	free(big);
	r = 0;
	for (int i = 0; r == 0; i++) {
		char arg[32];
		snprintf(arg, sizeof(arg), "V%d=1", i);
		r = sandbox_spec_set_env(&spec, arg);
	}
	ok(r == -E2BIG && spec.n_env == SANDBOX_MAX_ENV && spec.env[SANDBOX_MAX_ENV] == NULL,
	   "at most %d variables, list stays NULL-terminated", SANDBOX_MAX_ENV);
	sandbox_spec_done(&spec);
	return tap_done();
}
