/*
 * envs.c: the groups' environments (envs.h): the recorded package sets, their builds and
 * their layers.
 *
 * A build is `clawbox run` of tools/env-build.sh (found next to the clawbox executable, like
 * clawbox-proxy): the sandbox's user, no folder of any group, only the new build folder
 * writable (at /opt/clawbox-env, where runs see it later), the host's dpkg status read-only,
 * egress through the proxy to the configured registries alone (their hosts are the --allow
 * list; everything else is refused and written to DATA/envs/GROUP/build-audit.jsonl), a
 * time cap, a memory cap, and the size cap checked before the layer is taken. Debian
 * packages are unpacked, not installed: maintainer scripts are not run.
 *
 * Nothing a build writes is trusted by the daemon: it only measures the folder's size
 * (lstat, no symlink followed) and renames a symlink to it; the layer is mounted read-only,
 * nosuid, nodev.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "envs.h"
#include "fd-util.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "parse.h"

#define ENVS_KV_MAX (128 * 1024) /* the recorded state of one group */

static const char default_debian[] =
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
    "http://deb.debian.org/debian bookworm main";
static const char default_npm[] = "https://registry.npmjs.org/";
static const char default_pypi[] = "https://pypi.org/simple/";

/* One build at a time per group; a change during a build starts another after it. */
static struct build {
	char group[CONFIG_GROUP_ID_MAX];
	pid_t pid; /* 0: slot free */
	char dir[PATH_MAX];
	char *key;    /* owned: what this build builds (packages and mirrors) */
	json_t *pkgs; /* owned: the package set being built */
	bool again;   /* the set changed meanwhile */
	int64_t started_ms;
} builds[CONFIG_MAX_GROUPS];

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- configuration ---- */

static int
config_str(json_t *o, const char *key, const char *where, char *buf, size_t size, char *why,
           size_t why_size)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return 0;
	if (!json_is_string(v) || json_string_length(v) >= size ||
	    strlen(json_string_value(v)) != json_string_length(v) ||
	    strpbrk(json_string_value(v), "\r\n"))
		return snprintf(why, why_size, "%s.%s: expected a string of one line", where, key),
		       -EINVAL;
	snprintf(buf, size, "%s", json_string_value(v));
	return 0;
}

int
envs_config_parse(void *jv, struct envs_config *c, char *why, size_t why_size)
{
	json_t *j = jv;
	c->max_bytes = 2ULL << 30;
	c->max_packages = 64;
	c->build_seconds = 900;
	if (!j)
		return 0;
	if (!json_is_object(j))
		return snprintf(why, why_size, "envs: expected an object"), -EINVAL;
	const char *key;
	json_t *v;
	json_object_foreach(j, key, v)
	{
		if (strcmp(key, "mirrors") != 0 && strcmp(key, "max_size") != 0 &&
		    strcmp(key, "max_packages") != 0 && strcmp(key, "build_timeout") != 0)
			return snprintf(why, why_size, "envs.%s: unknown key", key), -EINVAL;
	}
	json_t *m = json_object_get(j, "mirrors");
	if (m) {
		if (!json_is_object(m))
			return snprintf(why, why_size, "envs.mirrors: expected an object"), -EINVAL;
		json_object_foreach(m, key, v)
		{
			if (strcmp(key, "debian") != 0 && strcmp(key, "npm") != 0 &&
			    strcmp(key, "pypi") != 0)
				return snprintf(why, why_size,
				                "envs.mirrors.%s: unknown key (debian, npm, pypi)",
				                key),
				       -EINVAL;
		}
		int r = config_str(m, "debian", "envs.mirrors", c->debian, sizeof(c->debian), why,
		                   why_size);
		if (r == 0)
			r = config_str(m, "npm", "envs.mirrors", c->npm, sizeof(c->npm), why,
			               why_size);
		if (r == 0)
			r = config_str(m, "pypi", "envs.mirrors", c->pypi, sizeof(c->pypi), why,
			               why_size);
		if (r < 0)
			return r;
		if (c->debian[0] && strncmp(c->debian, "deb ", 4) != 0)
			return snprintf(why, why_size,
			                "envs.mirrors.debian: expected a sources.list line "
			                "(\"deb URL SUITE COMPONENT...\")"),
			       -EINVAL;
		if ((c->npm[0] && strncmp(c->npm, "http://", 7) != 0 &&
		     strncmp(c->npm, "https://", 8) != 0) ||
		    (c->pypi[0] && strncmp(c->pypi, "http://", 7) != 0 &&
		     strncmp(c->pypi, "https://", 8) != 0))
			return snprintf(why, why_size,
			                "envs.mirrors: npm and pypi are http(s) URLs"),
			       -EINVAL;
	}
	char size[32] = "";
	if (config_str(j, "max_size", "envs", size, sizeof(size), why, why_size) < 0)
		return -EINVAL;
	if (size[0] && (parse_size(size, &c->max_bytes) < 0 || c->max_bytes < (1ULL << 20)))
		return snprintf(why, why_size, "envs.max_size: expected a size such as 2G"),
		       -EINVAL;
	json_t *n = json_object_get(j, "max_packages");
	if (n && (!json_is_integer(n) || json_integer_value(n) < 1 || json_integer_value(n) > 1000))
		return snprintf(why, why_size, "envs.max_packages: expected 1 to 1000"), -EINVAL;
	if (n)
		c->max_packages = (unsigned)json_integer_value(n);
	json_t *t = json_object_get(j, "build_timeout");
	if (t &&
	    (!json_is_integer(t) || json_integer_value(t) < 1 || json_integer_value(t) > 24 * 3600))
		return snprintf(why, why_size, "envs.build_timeout: expected seconds, 1 to 86400"),
		       -EINVAL;
	if (t)
		c->build_seconds = (unsigned)json_integer_value(t);
	return 0;
}

/* ---- names ---- */

static bool
name_ok(const char *s, size_t n)
{
	if (n == 0 || n > ENVS_NAME_MAX || s[0] == '-' || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '+' || c == '-'))
			return false;
	}
	return true;
}

bool
envs_package_ok(const char *spec)
{
	if (strncmp(spec, "apt:", 4) == 0 || strncmp(spec, "pip:", 4) == 0)
		return name_ok(spec + 4, strlen(spec + 4));
	if (strncmp(spec, "npm:", 4) != 0)
		return false;
	const char *name = spec + 4;
	if (name[0] == '@') { /* @scope/name: the one slash a name may have */
		const char *slash = strchr(name, '/');
		return slash && name_ok(name + 1, (size_t)(slash - name - 1)) &&
		       name_ok(slash + 1, strlen(slash + 1));
	}
	return name_ok(name, strlen(name));
}

static struct build *
build_of(const char *group)
{
	for (size_t i = 0; i < ARRAY_SIZE(builds); i++)
		if (builds[i].pid > 0 && strcmp(builds[i].group, group) == 0)
			return &builds[i];
	return NULL;
}

/* ---- the recorded state: kv "env:GROUP" = {"packages": [...], "state", ...} ---- */

static json_t *
state_load(struct daemon *d, const char *group)
{
	char key[96];
	_cleanup_free_ char *buf = malloc(ENVS_KV_MAX);
	snprintf(key, sizeof(key), "env:%s", group);
	json_t *j = NULL;
	if (buf && store_kv_get(d->store, key, buf, ENVS_KV_MAX) == 0)
		j = json_loads(buf, 0, NULL);
	if (!json_is_object(j)) {
		if (j)
			json_decref(j);
		j = json_pack("{s:[],s:s}", "packages", "state", "none");
	}
	/* "building" with no build of ours: the daemon stopped during it (the build died with
	 * it). The set stays; the next change, or the same request again, builds it. */
	if (j && strcmp(json_get_str(j, "state") ?: "", "building") == 0 && !build_of(group)) {
		json_object_set_new(j, "state", json_string("failed"));
		json_object_set_new(j, "message",
		                    json_string("interrupted: the daemon stopped during the build; "
		                                "the previous layer stays"));
	}
	return j;
}

static int
state_save(struct daemon *d, const char *group, json_t *st)
{
	char key[96];
	snprintf(key, sizeof(key), "env:%s", group);
	_cleanup_free_ char *text = json_dumps(st, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text || strlen(text) >= ENVS_KV_MAX)
		return -E2BIG;
	return store_kv_set(d->store, key, text);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A sorted copy of arr (strings only), duplicates dropped. */
static json_t *
sorted(json_t *arr)
{
	size_t n = json_array_size(arr);
	const char **v = calloc(n + 1, sizeof(*v));
	json_t *out = json_array();
	if (!v || !out) {
		free(v);
		if (out)
			json_decref(out);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		v[i] = json_string_value(json_array_get(arr, i)) ?: "";
	qsort(v, n, sizeof(*v), cmp_str);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || strcmp(v[i], v[i - 1]) != 0)
			json_array_append_new(out, json_string(v[i]));
	free(v);
	return out;
}

/* What a build of pkgs depends on: the package set and the mirrors. */
static char *
build_key(struct daemon *d, json_t *pkgs)
{
	_cleanup_free_ char *p = json_dumps(pkgs, JSON_COMPACT);
	char *key = NULL;
	if (p && asprintf(&key, "%s|%s|%s|%s", p, d->cfg.envs.debian, d->cfg.envs.npm,
	                  d->cfg.envs.pypi) < 0)
		key = NULL;
	return key;
}

/* ---- the layer's files ---- */

static int
envs_dir(struct daemon *d, const char *group, char *buf, size_t size)
{
	char parent[PATH_MAX];
	snprintf(parent, sizeof(parent), "%s/envs", d->cfg.data_dir);
	if (mkdir(parent, 0700) < 0 && errno != EEXIST)
		return NEG_ERRNO();
	if (snprintf(buf, size, "%s/%s", parent, group) >= (int)size)
		return -ENAMETOOLONG;
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return NEG_ERRNO();
	return 0;
}

static uint64_t du_total;

static int
du_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)path;
	(void)type;
	(void)ftw;
	du_total += (uint64_t)st->st_blocks * 512;
	return 0;
}

/* Bytes on disk below path (no symlink followed, one file system). */
static uint64_t
disk_use(const char *path)
{
	du_total = 0;
	(void)nftw(path, du_one, 16, FTW_PHYS | FTW_MOUNT);
	return du_total;
}

static int
rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		(void)rmdir(path);
	else
		(void)unlink(path);
	return 0;
}

static void
remove_tree(const char *path)
{
	(void)nftw(path, rm_one, 16, FTW_PHYS | FTW_DEPTH | FTW_MOUNT);
}

int
envs_layer(struct daemon *d, const char *group, char *buf, size_t size)
{
	char link[PATH_MAX];
	snprintf(link, sizeof(link), "%s/envs/%s/current", d->cfg.data_dir, group);
	char *real = realpath(link, NULL);
	if (!real)
		return -ENOENT;
	int r = snprintf(buf, size, "%s", real) >= (int)size ? -ENAMETOOLONG : 0;
	free(real);
	return r;
}

/* Build folders other than the current layer and the one before it go (a run that started
 * on the one before may still have it mounted). */
static void
prune(const char *dir, const char *keep1, const char *keep2)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dd = fd >= 0 ? fdopendir(fd) : NULL;
	if (!dd)
		return;
	TAKE_FD(fd);
	struct dirent *de;
	char victims[16][NAME_MAX + 1];
	size_t n = 0;
	while ((de = readdir(dd)) && n < ARRAY_SIZE(victims)) {
		if (strncmp(de->d_name, ".build-", 7) != 0 || strcmp(de->d_name, keep1) == 0 ||
		    strcmp(de->d_name, keep2) == 0)
			continue;
		snprintf(victims[n++], sizeof(victims[0]), "%s", de->d_name);
	}
	closedir(dd);
	for (size_t i = 0; i < n; i++) {
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", dir, victims[i]);
		remove_tree(p);
	}
}

/* ---- builds ---- */

/* "host:port" of an http(s) URL into out, for --allow. */
static int
url_allow(const char *url, char *out, size_t size)
{
	bool tls = strncmp(url, "https://", 8) == 0;
	const char *h = strstr(url, "://");
	if (!h)
		return -EINVAL;
	h += 3;
	size_t n = strcspn(h, "/");
	if (n == 0 || n >= size - 6)
		return -EINVAL;
	if (memchr(h, '@', n)) /* no credentials in a mirror's URL */
		return -EINVAL;
	bool has_port = h[0] == '[' ? memchr(h, ']', n) && h[n - 1] != ']' : !!memchr(h, ':', n);
	snprintf(out, size, "%.*s%s", (int)n, h, has_port ? "" : tls ? ":443" : ":80");
	return 0;
}

/* The first http(s) URL of a sources.list line. */
static const char *
deb_url(const char *line, char *buf, size_t size)
{
	const char *u = strstr(line, "http://");
	const char *s = strstr(line, "https://");
	if (!u || (s && s < u))
		u = s;
	if (!u)
		return NULL;
	snprintf(buf, size, "%.*s", (int)strcspn(u, " \t"), u);
	return buf;
}

static void
set_state(json_t *st, const char *state, const char *message)
{
	json_object_set_new(st, "state", json_string(state));
	json_object_set_new(st, "message", json_string(message));
}

/* tools/env-build.sh next to clawbox (the source tree), or where install.sh puts it
 * (BINDIR/../lib/clawbox/env-build.sh). */
static int
find_script(struct daemon *d, char *buf, size_t size)
{
	static const char *const rel[] = {"tools/env-build.sh", "../lib/clawbox/env-build.sh"};
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", d->clawbox);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(rel); i++) {
		if (snprintf(buf, size, "%s/%s", dir, rel[i]) >= (int)size)
			continue;
		if (access(buf, R_OK) == 0)
			return 0;
	}
	return -ENOENT;
}

static int
build_start(struct daemon *d, const char *group)
{
	_cleanup_json_ json_t *st = state_load(d, group);
	json_t *pkgs = json_object_get(st, "packages");
	char dir[PATH_MAX], layer[PATH_MAX];
	int r = envs_dir(d, group, dir, sizeof(dir));
	if (r < 0)
		return r;
	_cleanup_free_ char *key = build_key(d, pkgs);
	if (!key)
		return -ENOMEM;
	const char *built = json_get_str(st, "built_key");
	bool have_layer = envs_layer(d, group, layer, sizeof(layer)) == 0;
	if (json_array_size(pkgs) == 0) {
		/* Nothing wanted: no layer at all. */
		char link[PATH_MAX + 16];
		snprintf(link, sizeof(link), "%s/current", dir);
		(void)unlink(link);
		json_object_set_new(st, "built_key", json_string(key));
		json_object_set_new(st, "built_packages", json_array());
		json_object_set_new(st, "size_bytes", json_integer(0));
		set_state(st, "none", "no packages");
		return state_save(d, group, st);
	}
	if (built && strcmp(built, key) == 0 && have_layer) {
		set_state(st, "built", "unchanged: not rebuilt");
		return state_save(d, group, st);
	}

	struct build *b = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(builds) && !b; i++)
		if (builds[i].pid == 0)
			b = &builds[i];
	if (!b)
		return -EBUSY;

	static unsigned seq;
	char name[64], script[PATH_MAX], audit[PATH_MAX + 32], logp[PATH_MAX + 32];
	snprintf(name, sizeof(name), ".build-%lld-%u", (long long)time(NULL), ++seq);
	snprintf(b->dir, sizeof(b->dir), "%s/%s", dir, name);
	if (mkdir(b->dir, 0755) < 0)
		return NEG_ERRNO();
	if (geteuid() == 0 && chown(b->dir, 65533, 65533) < 0) /* the sandbox's user */
		return NEG_ERRNO();
	if (find_script(d, script, sizeof(script)) < 0) {
		(void)rmdir(b->dir);
		return -ENOENT;
	}
	snprintf(audit, sizeof(audit), "%s/build-audit.jsonl", dir);
	snprintf(logp, sizeof(logp), "%s/build.log", dir);
	(void)unlink(audit); /* this build's requests only */

	/* The registries this request needs, and nothing else. */
	char allow[6][300], url[512], out_mount[PATH_MAX + 32], script_mount[PATH_MAX + 32];
	char apt_env[600], npm_env[300], pip_env[300], timeout[16];
	size_t na = 0;
	bool want[3] = {false, false, false}; /* apt, npm, pip */
	size_t i;
	json_t *p;
	json_array_foreach(pkgs, i, p)
	{
		const char *s = json_string_value(p);
		want[0] |= strncmp(s, "apt:", 4) == 0;
		want[1] |= strncmp(s, "npm:", 4) == 0;
		want[2] |= strncmp(s, "pip:", 4) == 0;
	}
	const struct envs_config *ec = &d->cfg.envs;
	const char *debian = ec->debian[0] ? ec->debian : default_debian;
	const char *npm = ec->npm[0] ? ec->npm : default_npm;
	const char *pypi = ec->pypi[0] ? ec->pypi : default_pypi;
	if (want[0] && deb_url(debian, url, sizeof(url)) && url_allow(url, allow[na], 300) == 0)
		na++;
	if (want[1] && url_allow(npm, allow[na], 300) == 0)
		na++;
	if (want[2] && url_allow(pypi, allow[na], 300) == 0)
		na++;
	if (want[2] && !ec->pypi[0]) /* PyPI's files live on a host of their own */
		snprintf(allow[na++], 300, "files.pythonhosted.org:443");
	snprintf(out_mount, sizeof(out_mount), "%s:/opt/clawbox-env:rw", b->dir);
	snprintf(script_mount, sizeof(script_mount), "%s:/tmp/env-build.sh", script);
	snprintf(apt_env, sizeof(apt_env), "CLAWBOX_APT_SOURCE=%s", debian);
	snprintf(npm_env, sizeof(npm_env), "CLAWBOX_NPM_REGISTRY=%s", npm);
	snprintf(pip_env, sizeof(pip_env), "CLAWBOX_PIP_INDEX=%s", pypi);
	snprintf(timeout, sizeof(timeout), "%u", ec->build_seconds);

	const char *argv[64 + 1000 + 1]; /* envs.max_packages is at most 1000 */
	size_t n = 0;
	argv[n++] = d->clawbox;
	argv[n++] = "run";
	for (size_t k = 0; k < na; k++) {
		argv[n++] = "--allow";
		argv[n++] = allow[k];
	}
	argv[n++] = "--audit";
	argv[n++] = audit;
	argv[n++] = "--mount";
	argv[n++] = out_mount;
	argv[n++] = "--mount";
	argv[n++] = script_mount;
	struct stat sst;
	if (stat("/var/lib/dpkg/status", &sst) == 0) {
		argv[n++] = "--mount";
		argv[n++] = "/var/lib/dpkg/status:/var/lib/dpkg/status";
	}
	argv[n++] = "--timeout";
	argv[n++] = timeout;
	argv[n++] = "--memory";
	argv[n++] = "1G";
	argv[n++] = "--pids";
	argv[n++] = "512";
	argv[n++] = "--env";
	argv[n++] = apt_env;
	argv[n++] = "--env";
	argv[n++] = npm_env;
	argv[n++] = "--env";
	argv[n++] = pip_env;
	argv[n++] = "--";
	argv[n++] = "/bin/sh";
	argv[n++] = "/tmp/env-build.sh";
	json_array_foreach(pkgs, i, p)
	{
		if (n + 1 >= ARRAY_SIZE(argv))
			break;
		argv[n++] = json_string_value(p);
	}
	argv[n] = NULL;

	_cleanup_close_ int logfd =
	    open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	_cleanup_close_ int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (logfd < 0 || devnull < 0) {
		remove_tree(b->dir);
		return -EIO;
	}
	char *envp[8];
	daemon_environment(d, false, envp, ARRAY_SIZE(envp));
	pid_t pid = daemon_spawn(argv, envp, devnull, logfd, logfd);
	if (pid < 0) {
		remove_tree(b->dir);
		return pid;
	}
	snprintf(b->group, sizeof(b->group), "%s", group);
	b->pid = pid;
	b->key = TAKE_PTR(key);
	b->pkgs = json_incref(pkgs);
	b->again = false;
	b->started_ms = now_ms();
	set_state(st, "building", "building");
	(void)state_save(d, group, st);
	log_info("[%s] environment: building %zu packages (pid %d)", group, json_array_size(pkgs),
	         (int)pid);
	return 0;
}

/* The last line of the build's log, for the state's message. */
static void
log_tail(const char *dir, char *buf, size_t size)
{
	char path[PATH_MAX + 16], text[4096];
	snprintf(path, sizeof(path), "%s/build.log", dir);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	buf[0] = '\0';
	if (fd < 0)
		return;
	off_t end = lseek(fd, 0, SEEK_END);
	off_t from = end > (off_t)sizeof(text) - 1 ? end - (off_t)sizeof(text) + 1 : 0;
	ssize_t n = pread(fd, text, sizeof(text) - 1, from);
	if (n <= 0)
		return;
	text[n] = '\0';
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' '))
		text[--n] = '\0';
	char *last = strrchr(text, '\n');
	snprintf(buf, size, "%s", last ? last + 1 : text);
	for (char *c = buf; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = ' ';
}

/* The build proxy's audit (one JSON line per request, written by a proxy the build sandbox
 * fed: parsed and bounded) into the daemon's audit as "env_egress": what a build reached and
 * what it was refused. The file stays for the operator until the next build. */
static void
egress_to_audit(struct daemon *d, const char *group, const char *dir)
{
	char path[PATH_MAX + 32], line[8192];
	snprintf(path, sizeof(path), "%s/build-audit.jsonl", dir);
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	unsigned n = 0;
	store_audit_batch_begin(d->store);
	while (fgets(line, sizeof(line), f) && n++ < 1000) {
		_cleanup_json_ json_t *e = json_loads(line, 0, NULL);
		if (!json_is_object(e))
			continue;
		char what[600];
		snprintf(what, sizeof(what), "%.16s %.255s:%lld%s%.300s",
		         json_get_str(e, "method") ?: "?", json_get_str(e, "host") ?: "?",
		         (long long)json_integer_value(json_object_get(e, "port")),
		         json_get_str(e, "reason") ? ": " : "", json_get_str(e, "reason") ?: "");
		const char *dec = json_get_str(e, "decision") ?: "error";
		(void)store_audit(
		    d->store, group, "env_egress",
		    strcmp(dec, "allow") == 0 || strcmp(dec, "deny") == 0 ? dec : "error", what);
	}
	if (store_audit_batch_commit(d->store) < 0)
		log_error("[%s] cannot record the build's egress: %s", group,
		          store_error(d->store));
	fclose(f);
}

bool
envs_reaped(struct daemon *d, pid_t pid, int status)
{
	struct build *b = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(builds) && !b; i++)
		if (builds[i].pid == pid)
			b = &builds[i];
	if (!b)
		return false;
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	double secs = (double)(now_ms() - b->started_ms) / 1000.0;
	char dir[PATH_MAX], msg[600], tail[400];
	snprintf(dir, sizeof(dir), "%s", b->dir);
	*strrchr(dir, '/') = '\0';
	_cleanup_json_ json_t *st = state_load(d, b->group);
	log_tail(dir, tail, sizeof(tail));
	egress_to_audit(d, b->group, dir);
	uint64_t bytes = code == 0 ? disk_use(b->dir) : 0;
	bool ok = false;
	if (code == 124) {
		snprintf(msg, sizeof(msg),
		         "build failed: past the time cap of %u s; the previous "
		         "layer stays",
		         d->cfg.envs.build_seconds);
	} else if (code != 0) {
		snprintf(msg, sizeof(msg), "build failed (exit %d): %s; the previous layer stays",
		         code, tail);
	} else if (bytes > d->cfg.envs.max_bytes) {
		snprintf(msg, sizeof(msg),
		         "build failed: %llu bytes, past the cap of %llu; the "
		         "previous layer stays",
		         (unsigned long long)bytes, (unsigned long long)d->cfg.envs.max_bytes);
	} else {
		/* The swap: a new symlink renamed over `current`, atomically. */
		char link[PATH_MAX + 16], tmp[PATH_MAX + 16], old[PATH_MAX] = "";
		const char *name = strrchr(b->dir, '/') + 1;
		snprintf(link, sizeof(link), "%s/current", dir);
		snprintf(tmp, sizeof(tmp), "%s/.current-new", dir);
		ssize_t ln = readlink(link, old, sizeof(old) - 1);
		old[ln > 0 ? ln : 0] = '\0';
		(void)unlink(tmp);
		if (symlink(name, tmp) < 0 || rename(tmp, link) < 0) {
			snprintf(msg, sizeof(msg),
			         "build done, but the layer could not be put in "
			         "place: %s",
			         strerror(errno));
		} else {
			ok = true;
			snprintf(msg, sizeof(msg),
			         "built in %.1f s, %llu bytes (Debian packages "
			         "unpacked: maintainer scripts not run)",
			         secs, (unsigned long long)bytes);
			prune(dir, name, old);
			json_object_set_new(st, "built_key", json_string(b->key));
			json_object_set_new(st, "built_packages", json_incref(b->pkgs));
			json_object_set_new(st, "size_bytes", json_integer((json_int_t)bytes));
		}
	}
	if (!ok)
		remove_tree(b->dir);
	json_object_set_new(st, "build_seconds", json_real(secs));
	set_state(st, ok ? "built" : "failed", msg);
	(void)state_save(d, b->group, st);
	(void)store_audit(d->store, b->group, "env_build", ok ? "allow" : "deny", msg);
	log_info("[%s] environment: %s", b->group, msg);

	char group[CONFIG_GROUP_ID_MAX];
	snprintf(group, sizeof(group), "%s", b->group);
	bool again = b->again;
	free(b->key);
	json_decref(b->pkgs);
	memset(b, 0, sizeof(*b));
	if (again && !d->stopping)
		(void)build_start(d, group);
	return true;
}

/* ---- requests ---- */

static int
apply(json_t *set, json_t *list, bool add, char *why, size_t size)
{
	size_t i;
	json_t *p;
	if (list && !json_is_array(list))
		return snprintf(why, size, "expected a list of packages"), -EINVAL;
	json_array_foreach(list, i, p)
	{
		const char *s = json_string_value(p);
		if (!s || strlen(s) != json_string_length(p) || !envs_package_ok(s))
			return snprintf(why, size,
			                "package %.120s: expected apt:NAME, npm:NAME or pip:NAME "
			                "(letters, digits, . _ + -; not starting with - or .)",
			                s ? s : "(not a string)"),
			       -EINVAL;
		size_t k;
		json_t *q;
		bool found = false;
		json_array_foreach(set, k, q)
		{
			if (strcmp(json_string_value(q), s) == 0) {
				found = true;
				if (!add)
					json_array_remove(set, k);
				break;
			}
		}
		if (add && !found)
			json_array_append_new(set, json_string(s));
	}
	return 0;
}

int
envs_change(struct daemon *d, const char *group, const char *who, json_t *add, json_t *remove,
            char *why, size_t size)
{
	_cleanup_json_ json_t *st = state_load(d, group);
	json_t *set = json_copy(json_object_get(st, "packages"));
	if (!set)
		return -ENOMEM;
	int r = apply(set, add, true, why, size);
	if (r == 0)
		r = apply(set, remove, false, why, size);
	_cleanup_json_ json_t *s = r == 0 ? sorted(set) : NULL;
	json_decref(set);
	if (r < 0)
		return r;
	if (!s)
		return -ENOMEM;
	if (json_array_size(s) > d->cfg.envs.max_packages)
		return snprintf(why, size, "at most %u packages per group (envs.max_packages)",
		                d->cfg.envs.max_packages),
		       -E2BIG;
	json_object_set(st, "packages", s);
	json_object_set_new(st, "requested_by", json_string(who));
	if ((r = state_save(d, group, st)) < 0)
		return snprintf(why, size, "the store is unavailable"), r;
	_cleanup_free_ char *what = json_dumps(s, JSON_COMPACT);
	(void)store_audit(d->store, group, "env_change", "allow", what ? what : "");
	struct build *b = build_of(group);
	if (b) {
		b->again = true; /* the set changed under the build: build once more after it */
		return 0;
	}
	r = build_start(d, group);
	if (r < 0)
		snprintf(why, size, "the build could not start: %s", strerror(-r));
	return r;
}

json_t *
envs_view(struct daemon *d, const char *group)
{
	json_t *st = state_load(d, group);
	char dir[PATH_MAX], layer[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/envs/%s", d->cfg.data_dir, group);
	json_object_del(st, "built_key");
	json_object_set_new(st, "group", json_string(group));
	json_object_set_new(st, "disk_bytes", json_integer((json_int_t)disk_use(dir)));
	json_object_set_new(st, "layer",
	                    envs_layer(d, group, layer, sizeof(layer)) == 0 ? json_string(layer)
	                                                                    : json_null());
	json_object_set_new(st, "quota",
	                    json_pack("{s:I,s:i,s:i}", "max_bytes",
	                              (json_int_t)d->cfg.envs.max_bytes, "max_packages",
	                              (int)d->cfg.envs.max_packages, "build_timeout",
	                              (int)d->cfg.envs.build_seconds));
	json_object_set_new(st, "note",
	                    json_string("Debian packages are unpacked (dpkg-deb -x), not "
	                                "installed: their maintainer scripts are not run"));
	return st;
}
