/*
 * mountlist.c: see mountlist.h. The check runs on the resolved path, so a symlink inside an
 * allowed root that points outside it resolves to where it points and is refused; and it runs
 * at every run, because folders change between runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fd-util.h"
#include "json-util.h"
#include "mountlist.h"

/* Names that hold credentials wherever they appear. */
static const char *const builtin_blocked[] = {
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".kube",
    ".docker",
    ".env",
    ".netrc",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    ".password-store",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    "credentials",
    ".config",
    ".local",
    NULL,
};

void
mountlist_done(struct mountlist *m)
{
	for (size_t i = 0; i < m->n_roots; i++)
		free(m->roots[i].path);
	for (size_t i = 0; i < m->n_blocked; i++)
		free(m->blocked[i]);
	memset(m, 0, sizeof(*m));
}

int
mountlist_load(const char *path, struct mountlist *m, char *why, size_t size)
{
	memset(m, 0, sizeof(*m));
	char *buf = malloc(1 << 20);
	if (!buf)
		return -ENOMEM;
	ssize_t n = read_file_at(AT_FDCWD, path, buf, 1 << 20);
	if (n == -ENOENT) {
		free(buf);
		return 0;
	}
	if (n < 0) {
		free(buf);
		return snprintf(why, size, "%s: %s", path, strerror((int)-n)), (int)n;
	}
	json_error_t jerr;
	_cleanup_json_ json_t *j = json_loadb(buf, (size_t)n, 0, &jerr);
	free(buf);
	if (!json_is_object(j))
		return snprintf(why, size, "%s: not a JSON object (%s)", path, jerr.text), -EINVAL;
	const char *key;
	json_t *v;
	json_object_foreach(j, key, v)
	{
		if (strcmp(key, "roots") != 0 && strcmp(key, "blocked") != 0)
			return snprintf(why, size, "%s: %s: unknown key", path, key), -EINVAL;
	}
	/* A list given as anything else would otherwise be read as empty: say so instead. */
	json_t *roots = json_object_get(j, "roots"), *blocked = json_object_get(j, "blocked");
	if ((roots && !json_is_array(roots)) || (blocked && !json_is_array(blocked)))
		return snprintf(why, size, "%s: %s: expected an array", path,
		                roots && !json_is_array(roots) ? "roots" : "blocked"),
		       -EINVAL;
	m->present = true;
	size_t i;
	json_array_foreach(json_object_get(j, "roots"), i, v)
	{
		const char *p = json_get_str(v, "path");
		json_t *w = json_object_get(v, "writable");
		if (!p || p[0] != '/' || (w && !json_is_boolean(w)) ||
		    m->n_roots >= MOUNTLIST_MAX_ROOTS)
			return snprintf(
			           why, size,
			           "%s: roots[%zu]: expected {\"path\": ABSOLUTE, \"writable\": "
			           "true|false}",
			           path, i),
			       -EINVAL;
		char *real = realpath(p, NULL);
		if (!real)
			continue; /* a root that does not exist allows nothing */
		m->roots[m->n_roots].path = real;
		m->roots[m->n_roots].writable = json_is_true(w);
		m->n_roots++;
	}
	json_array_foreach(json_object_get(j, "blocked"), i, v)
	{
		if (!json_is_string(v) || strchr(json_string_value(v), '/') ||
		    m->n_blocked >= MOUNTLIST_MAX_BLOCKED)
			return snprintf(why, size,
			                "%s: blocked[%zu]: expected a file or folder name", path,
			                i),
			       -EINVAL;
		if (!(m->blocked[m->n_blocked] = strdup(json_string_value(v))))
			return snprintf(why, size, "%s: out of memory", path), -ENOMEM;
		m->n_blocked++;
	}
	return 0;
}

static bool
is_blocked(const struct mountlist *m, const char *name, size_t len)
{
	for (size_t i = 0; builtin_blocked[i]; i++)
		if (strlen(builtin_blocked[i]) == len && memcmp(builtin_blocked[i], name, len) == 0)
			return true;
	for (size_t i = 0; i < m->n_blocked; i++)
		if (strlen(m->blocked[i]) == len && memcmp(m->blocked[i], name, len) == 0)
			return true;
	return false;
}

int
mountlist_check(const struct mountlist *m, const char *host, bool rw, char *resolved, char *why,
                size_t size)
{
	if (!m->present)
		return snprintf(why, size, "no mount allowlist: extra mounts are off"), -EPERM;
	char real[PATH_MAX];
	if (!realpath(host, real))
		return snprintf(why, size, "%s: %s", host, strerror(errno)), -ENOENT;
	/* The most specific root decides: a read-only folder inside a writable root stays
	 * read-only, a writable one inside a read-only root is writable, whatever the order. */
	const char *root = NULL;
	bool writable = false;
	size_t best = 0;
	for (size_t i = 0; i < m->n_roots; i++) {
		const char *p = m->roots[i].path;
		size_t rl = strcmp(p, "/") == 0 ? 0 : strlen(p);
		bool under =
		    rl == 0 || (strncmp(real, p, rl) == 0 && (real[rl] == '/' || real[rl] == '\0'));
		if (under && (!root || rl > best)) {
			root = p;
			writable = m->roots[i].writable;
			best = rl;
		}
	}
	if (root) {
		/* Every component below the root, not only the last. */
		for (const char *p = real + best; *p;) {
			while (*p == '/')
				p++;
			size_t len = strcspn(p, "/");
			if (len && is_blocked(m, p, len))
				return snprintf(why, size, "%s: \"%.*s\" is a blocked name", real,
				                (int)len, p),
				       -EPERM;
			p += len;
		}
		if (rw && !writable)
			return snprintf(why, size, "%s: its root %s is not writable", real, root),
			       -EPERM;
		snprintf(resolved, PATH_MAX, "%s", real);
		return 0;
	}
	return snprintf(why, size, "%s is under no allowed root", real), -EPERM;
}
