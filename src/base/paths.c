/*
 * paths.c: see paths.h. The executables find each other and their data through here only, so
 * that moving them (make install, DESTDIR, a build tree) needs no configuration.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "paths.h"

#ifndef CLAWBOX_VERSION
#define CLAWBOX_VERSION "0.0.0-dev"
#endif

static int
fmt(char *buf, size_t size, const char *a, const char *b, const char *c)
{
	int n = snprintf(buf, size, "%s%s%s", a, b, c);
	return n < 0 ? -EINVAL : (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int
self_dir(char *buf, size_t size)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return NEG_ERRNO();
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	return fmt(buf, size, slash == exe ? "/" : exe, "", "");
}

int
self_sibling(const char *name, char *buf, size_t size)
{
	char dir[4096];
	int r = self_dir(dir, sizeof(dir));
	if (r < 0 || (r = fmt(buf, size, dir, "/", name)) < 0)
		return r;
	return access(buf, X_OK) < 0 ? NEG_ERRNO() : 0;
}

int
self_data_path(const char *installed, const char *tree, char *buf, size_t size)
{
	char dir[4096];
	int r = self_dir(dir, sizeof(dir));
	if (r < 0)
		return r;
	size_t len = strlen(dir);
	if (len >= 4 && strcmp(dir + len - 4, "/bin") == 0) {
		dir[len - 4] = '\0'; /* PREFIX/bin -> PREFIX/lib/clawbox/INSTALLED */
		return fmt(buf, size, dir, "/lib/clawbox/", installed);
	}
	return fmt(buf, size, dir, "/", tree);
}

int
xdg_dir(enum xdg_kind kind, char *buf, size_t size)
{
	static const struct {
		const char *env, *home_rel, *system;
	} kinds[] = {
	    [XDG_CONFIG] = {"XDG_CONFIG_HOME", "/.config/clawbox", "/etc/clawbox"},
	    [XDG_DATA] = {"XDG_DATA_HOME", "/.local/share/clawbox", "/var/lib/clawbox"},
	    [XDG_STATE] = {"XDG_STATE_HOME", "/.local/state/clawbox", "/var/lib/clawbox/state"},
	    [XDG_CACHE] = {"XDG_CACHE_HOME", "/.cache/clawbox", "/var/cache/clawbox"},
	};
	if ((size_t)kind >= ARRAY_SIZE(kinds))
		return -EINVAL;
	/* The XDG spec: a relative value is invalid and ignored. */
	const char *xdg = getenv(kinds[kind].env), *home = getenv("HOME");
	if (xdg && xdg[0] == '/')
		return fmt(buf, size, xdg, "/clawbox", "");
	if (home && home[0] == '/' && home[1] != '\0')
		return fmt(buf, size, home, kinds[kind].home_rel, "");
	/* HOME=/ or none: writing /.config/... as root would scatter dot-folders over the root
	 * of the file system; a service's files belong in the FHS places. */
	if (geteuid() == 0)
		return fmt(buf, size, kinds[kind].system, "", "");
	return -ENOENT;
}

bool
version_asked(int argc, char **argv, const char *name)
{
	if (argc < 2 || strcmp(argv[1], "--version") != 0)
		return false;
	printf("%s %s\n", name, CLAWBOX_VERSION);
	return true;
}
