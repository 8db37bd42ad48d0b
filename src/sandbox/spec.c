/*
 * spec.c: defaults and the parsers for --mount and --env. Kept free of system calls so that
 * the unit tests (and a fuzzer) can drive it directly.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "spec.h"

void
sandbox_spec_init(struct sandbox_spec *spec)
{
	memset(spec, 0, sizeof(*spec));
	spec->memory_bytes = SANDBOX_DEFAULT_MEMORY;
	spec->pids_max = SANDBOX_DEFAULT_PIDS;
	spec->proxy_sock = -1;
	spec->proxy_control_fd = -1;
}

void
sandbox_spec_done(struct sandbox_spec *spec)
{
	for (size_t i = 0; i < spec->n_mounts; i++) {
		free(spec->mounts[i].source);
		free(spec->mounts[i].target);
	}
	for (size_t i = 0; i < spec->n_env; i++)
		free(spec->env[i]);
	free(spec->workdir);
	free(spec->rootfs);
	free(spec->layer);
	memset(spec, 0, sizeof(*spec));
}

int
sandbox_path_normalize(const char *path, char **ret)
{
	size_t len = strlen(path);

	if (path[0] != '/')
		return -EINVAL;
	if (len >= SANDBOX_PATH_MAX)
		return -ENAMETOOLONG;

	_cleanup_free_ char *out = malloc(len + 1);
	if (!out)
		return -ENOMEM;

	size_t o = 0;
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *end = strchr(p, '/');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return -EINVAL;
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
				return -EINVAL; /* control characters only cause grief in paths */
		out[o++] = '/';
		memcpy(out + o, p, n);
		o += n;
		p += n;
	}
	if (o == 0)
		return -EINVAL; /* "/": the root is the sandbox's own */
	out[o] = '\0';
	*ret = TAKE_PTR(out);
	return 0;
}

static bool
path_is_at_or_below(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

bool
sandbox_path_reserved(const char *path)
{
	static const char *const reserved[] = {"/proc", "/dev", "/sys"};
	for (size_t i = 0; i < ARRAY_SIZE(reserved); i++)
		if (path_is_at_or_below(path, reserved[i]))
			return true;
	return false;
}

int
sandbox_spec_add_mount(struct sandbox_spec *spec, const char *arg, const char **ret_why)
{
	bool writable = false;
	size_t len = strlen(arg);
	int r;

	*ret_why = "expected HOST:PATH[:ro|:rw]";
	if (spec->n_mounts >= SANDBOX_MAX_MOUNTS)
		return -E2BIG;

	/* A trailing ":ro" or ":rw" is the mode; the last remaining ':' splits host from path,
	 * so host paths may contain ':' but sandbox paths may not. */
	if (len > 3 && arg[len - 3] == ':' && strcmp(arg + len - 2, "rw") == 0) {
		writable = true;
		len -= 3;
	} else if (len > 3 && arg[len - 3] == ':' && strcmp(arg + len - 2, "ro") == 0) {
		len -= 3;
	}

	const char *colon = memrchr(arg, ':', len);
	if (!colon || colon == arg || (size_t)(colon - arg) + 1 >= len)
		return -EINVAL;
	/* "HOST:PATH:wr", ":RW": a last part that cannot be a PATH (not absolute, no '/') after
	 * another ':' was meant as the mode. */
	if (colon[1] != '/' && !memchr(colon + 1, '/', len - (size_t)(colon - arg) - 1) &&
	    memchr(arg, ':', (size_t)(colon - arg))) {
		*ret_why = "the mode after the last ':' must be ro or rw (in lower case)";
		return -EINVAL;
	}

	_cleanup_free_ char *source = strndup(arg, (size_t)(colon - arg));
	_cleanup_free_ char *target_raw = strndup(colon + 1, len - (size_t)(colon - arg) - 1);
	if (!source || !target_raw)
		return -ENOMEM;

	_cleanup_free_ char *target = NULL;
	r = sandbox_path_normalize(target_raw, &target);
	if (r < 0) {
		*ret_why = "PATH must be absolute, not \"/\", without \".\" or \"..\"";
		return -EINVAL;
	}
	if (sandbox_path_reserved(target)) {
		*ret_why = "PATH may not be at or below /proc, /dev or /sys";
		return -EINVAL;
	}
	for (size_t i = 0; i < spec->n_mounts; i++)
		if (strcmp(spec->mounts[i].target, target) == 0) {
			*ret_why = "PATH is already a mount target";
			return -EINVAL;
		}

	struct sandbox_mount *m = &spec->mounts[spec->n_mounts++];
	m->source = TAKE_PTR(source);
	m->target = TAKE_PTR(target);
	m->writable = writable;
	*ret_why = NULL;
	return 0;
}

static bool
env_name_valid(const char *s, size_t n)
{
	if (n == 0 || n > 256)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
		bool digit = c >= '0' && c <= '9';
		if (!alpha && !(digit && i > 0))
			return false;
	}
	return true;
}

int
sandbox_spec_set_env(struct sandbox_spec *spec, const char *arg)
{
	const char *eq = strchr(arg, '=');
	if (!eq || !env_name_valid(arg, (size_t)(eq - arg)))
		return -EINVAL;
	if (strlen(arg) >= SANDBOX_ENV_MAX_BYTES)
		return -E2BIG;

	size_t name_len = (size_t)(eq - arg) + 1; /* including '=' */
	char *copy = strdup(arg);
	if (!copy)
		return -ENOMEM;
	for (size_t i = 0; i < spec->n_env; i++)
		if (strncmp(spec->env[i], arg, name_len) == 0) {
			free(spec->env[i]);
			spec->env[i] = copy;
			return 0;
		}
	if (spec->n_env >= SANDBOX_MAX_ENV) {
		free(copy);
		return -E2BIG;
	}
	spec->env[spec->n_env++] = copy;
	spec->env[spec->n_env] = NULL;
	return 0;
}

static bool
term_valid(const char *t)
{
	size_t n = strlen(t);
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = t[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == '_' || c == '+'))
			return false;
	}
	return true;
}

int
sandbox_spec_default_env(struct sandbox_spec *spec, const char *term)
{
	char buf[80];
	int r;

	r = sandbox_spec_set_env(spec, "PATH=" SANDBOX_PATH_ENV);
	if (r < 0)
		return r;
	r = sandbox_spec_set_env(spec, "HOME=" SANDBOX_HOME);
	if (r < 0)
		return r;
	r = sandbox_spec_set_env(spec, "LANG=C.UTF-8");
	if (r < 0)
		return r;
	snprintf(buf, sizeof(buf), "TERM=%s", term && term_valid(term) ? term : "dumb");
	return sandbox_spec_set_env(spec, buf);
}
