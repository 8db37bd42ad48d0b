/*
 * test-mountlist.c: the mount allowlist on a real folder tree made by the test: a file that
 * is not there (no mounts at all), bad files (one error naming the place), roots and their
 * writability, the most specific root deciding, blocked names (built-in and the file's own,
 * at any depth below the root), and symlinks resolved before the check.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mountlist.h"
#include "tap.h"

static char top[PATH_MAX];

static void
mk(const char *rel)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof(p), "%s/%s", top, rel);
	(void)mkdir(p, 0755);
}

static int
load(const char *text, struct mountlist *m, char *why, size_t size)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/allow.json", top);
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	fputs(text, f);
	fclose(f);
	return mountlist_load(path, m, why, size);
}

/* The allowlist text with @ replaced by the test's folder. */
static const char *
at(const char *fmt)
{
	static char buf[4 * PATH_MAX];
	size_t o = 0;
	for (const char *p = fmt; *p && o + strlen(top) + 2 < sizeof(buf); p++)
		if (*p == '@')
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s", top);
		else
			buf[o++] = *p;
	buf[o] = '\0';
	return buf;
}

static int
check(const struct mountlist *m, const char *rel, bool rw, char *why, size_t size)
{
	char host[PATH_MAX + 64], resolved[PATH_MAX];
	snprintf(host, sizeof(host), "%s/%s", top, rel);
	return mountlist_check(m, host, rw, resolved, why, size);
}

int
main(void)
{
	char tmpl[] = "/tmp/test-mountlist-XXXXXX";
	if (!mkdtemp(tmpl) || !realpath(tmpl, top))
		return 1;
	mk("home");
	mk("home/proj");
	mk("home/proj/.ssh");
	mk("home/proj/a");
	mk("home/proj/a/secrets");
	mk("home/proj/a/secrets/x");
	mk("home/photos");
	mk("other");
	char link[PATH_MAX + 64], target[PATH_MAX + 64];
	snprintf(link, sizeof(link), "%s/home/proj/out", top);
	snprintf(target, sizeof(target), "%s/other", top);
	if (symlink(target, link) < 0)
		return 1;

	struct mountlist m;
	char why[PATH_MAX + 256] = "";
	char missing[PATH_MAX + 32];
	snprintf(missing, sizeof(missing), "%s/none.json", top);
	ok(mountlist_load(missing, &m, why, sizeof(why)) == 0 && !m.present,
	   "no file: loads as absent");
	ok(check(&m, "home/proj", false, why, sizeof(why)) == -EPERM &&
	       strstr(why, "no mount allowlist"),
	   "no file: every mount refused, saying why (%s)", why);
	mountlist_done(&m);

	ok(load("{\"roots\": [", &m, why, sizeof(why)) == -EINVAL && strstr(why, "not a JSON"),
	   "broken JSON refused: %s", why);
	mountlist_done(&m);
	ok(load("{\"root\": []}", &m, why, sizeof(why)) == -EINVAL && strstr(why, "root"),
	   "an unknown key named: %s", why);
	mountlist_done(&m);
	ok(load("{\"roots\": [{\"path\": \"relative\"}]}", &m, why, sizeof(why)) == -EINVAL &&
	       strstr(why, "roots[0]"),
	   "a relative root refused, naming roots[0]: %s", why);
	mountlist_done(&m);
	ok(load("{\"roots\": [{\"path\": \"/\", \"writable\": \"yes\"}]}", &m, why, sizeof(why)) ==
	       -EINVAL,
	   "writable must be a boolean");
	mountlist_done(&m);
	ok(load("{\"blocked\": [\"a/b\"]}", &m, why, sizeof(why)) == -EINVAL &&
	       strstr(why, "blocked[0]"),
	   "a blocked name with a slash refused: %s", why);
	mountlist_done(&m);
	ok(load("{\"roots\": {\"path\": \"/\"}}", &m, why, sizeof(why)) == -EINVAL &&
	       strstr(why, "roots"),
	   "roots that is not an array refused: %s", why);
	mountlist_done(&m);
	ok(load("{\"blocked\": \"secrets\"}", &m, why, sizeof(why)) == -EINVAL &&
	       strstr(why, "blocked"),
	   "blocked that is not an array refused: %s", why);
	mountlist_done(&m);

	int r = load(at("{\"roots\": [{\"path\": \"@/home\"}, {\"path\": \"@/home/proj\", "
	                "\"writable\": true}, {\"path\": \"@/nowhere\"}], \"blocked\": "
	                "[\"secrets\"]}"),
	             &m, why, sizeof(why));
	ok(r == 0 && m.present && m.n_roots == 2, "roots loaded, the missing one left out (%d)", r);
	ok(check(&m, "home/photos", false, why, sizeof(why)) == 0, "read-only under a root");
	ok(check(&m, "home/photos", true, why, sizeof(why)) == -EPERM &&
	       strstr(why, "not writable"),
	   "writable under a read-only root refused: %s", why);
	ok(check(&m, "home/proj/a", true, why, sizeof(why)) == 0,
	   "writable under the more specific writable root (listed after its parent)");
	ok(check(&m, "other", false, why, sizeof(why)) == -EPERM && strstr(why, "no allowed root"),
	   "outside every root refused: %s", why);
	ok(check(&m, "home/proj/out", false, why, sizeof(why)) == -EPERM && strstr(why, "/other"),
	   "a symlink out of the root is checked where it points: %s", why);
	ok(check(&m, "home/proj/.ssh", false, why, sizeof(why)) == -EPERM && strstr(why, ".ssh"),
	   "a built-in blocked name refused: %s", why);
	ok(check(&m, "home/proj/a/secrets/x", false, why, sizeof(why)) == -EPERM &&
	       strstr(why, "secrets"),
	   "the file's own blocked name refused at any depth: %s", why);
	ok(check(&m, "home/gone", false, why, sizeof(why)) == -ENOENT,
	   "a folder that does not exist: -ENOENT");
	mountlist_done(&m);

	r = load(at("{\"roots\": [{\"path\": \"@/home\", \"writable\": true}, {\"path\": "
	            "\"@/home/photos\"}]}"),
	         &m, why, sizeof(why));
	ok(r == 0 && check(&m, "home/photos", true, why, sizeof(why)) == -EPERM,
	   "a read-only root inside a writable one keeps its folder read-only: %s", why);
	ok(check(&m, "home/proj", true, why, sizeof(why)) == 0,
	   "the writable parent still allows its other folders");
	mountlist_done(&m);

	tap_rmrf(top);
	return tap_done();
}
