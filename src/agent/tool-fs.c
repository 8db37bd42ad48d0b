/*
 * tool-fs.c: the file tools (read, write, edit, glob, grep). They run inside the sandbox, so
 * the sandbox's mounts and landlock are what confine them; here every read and result is
 * bounded, and writes go through a temporary file and rename so that a crash never leaves a
 * half-written file.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dbuf.h"
#include "fd-util.h"
#include "json-util.h"
#include "tools.h"

#define LINE_SHOWN_MAX   2000 /* characters of one line shown by read and grep */
#define WALK_DEPTH_MAX   32
#define WALK_ENTRIES_MAX 200000
#define WALK_DIR_MAX     4096 /* entries read from one folder */

/* Reads a whole regular file of at most max bytes into b. */
static int
slurp(const char *path, size_t max, struct dbuf *b)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return NEG_ERRNO();
	struct stat st;
	if (fstat(fd, &st) < 0)
		return NEG_ERRNO();
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (!S_ISREG(st.st_mode))
		return -EINVAL; /* a FIFO or device could block or never end */
	if ((uint64_t)st.st_size > max)
		return -EFBIG;
	dbuf_init(b, max);
	char chunk[65536];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return NEG_ERRNO();
		if (n == 0)
			return 0;
		if (dbuf_append(b, chunk, (size_t)n) < 0)
			return -EFBIG; /* grew while we read */
	}
}

static const char *
fs_error(int r)
{
	switch (r) {
	case -ENOENT:
		return "no such file or folder";
	case -EISDIR:
		return "is a folder (use glob to list it)";
	case -EFBIG:
		return "file too large";
	case -EINVAL:
		return "not a regular file";
	default:
		return strerror(-r);
	}
}

static bool
looks_binary(const char *p, size_t len)
{
	return memchr(p, '\0', len < 8192 ? len : 8192) != NULL;
}

void
tool_read(const struct tool_env *env, json_t *input, struct tool_output *out)
{
	(void)env;
	const char *path = json_get_str(input, "path");
	uint64_t offset = json_object_get(input, "offset") ? json_get_u64(input, "offset") : 1;
	uint64_t limit = json_object_get(input, "limit") ? json_get_u64(input, "limit") : 2000;
	_cleanup_dbuf_ struct dbuf b = {0};
	int r = slurp(path, TOOL_FILE_MAX, &b);
	if (r < 0) {
		tool_output_error(out, "error: %s: %s", path, fs_error(r));
		return;
	}
	if (looks_binary(dbuf_str(&b), b.len)) {
		tool_output_error(out, "error: %s: a binary file, not shown", path);
		return;
	}
	const char *p = dbuf_str(&b), *end = p + b.len;
	uint64_t line = 1, shown = 0;
	while (p < end && shown < limit) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (line >= offset) {
			size_t cut = len > LINE_SHOWN_MAX ? LINE_SHOWN_MAX : len;
			tool_output_printf(out, "%6llu\t", (unsigned long long)line);
			tool_output_add(out, p, cut);
			if (cut < len)
				tool_output_printf(out, " [line cut: %zu more characters]",
				                   len - cut);
			tool_output_add(out, "\n", 1);
			shown++;
		}
		line++;
		p = nl ? nl + 1 : end;
	}
	if (shown == 0)
		tool_output_printf(out, "(%s has %llu lines; nothing at offset %llu)\n", path,
		                   (unsigned long long)(line - 1), (unsigned long long)offset);
	else if (p < end)
		tool_output_printf(out, "[more lines follow; read on with offset %llu]\n",
		                   (unsigned long long)line);
}

/* mkdir -p for the parent folders of path. */
static int
make_parents(const char *path)
{
	char buf[4096];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *s = buf + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return NEG_ERRNO();
		*s = '/';
	}
	return 0;
}

/* Replaces path's contents: a temporary file next to it, synced, renamed over it. */
static int
replace_file(const char *path, const char *data, size_t len)
{
	char tmp[4200];
	if (snprintf(tmp, sizeof(tmp), "%s.clawbox-%d.tmp", path, (int)getpid()) >=
	    (int)sizeof(tmp))
		return -ENAMETOOLONG;
	struct stat st;
	mode_t mode = stat(path, &st) == 0 ? (st.st_mode & 07777) : 0644;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return -EISDIR;
	_cleanup_close_ int fd =
	    open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return NEG_ERRNO();
	int r = write_all(fd, data, len);
	if (r >= 0 && fsync(fd) < 0)
		r = NEG_ERRNO();
	if (r >= 0 && rename(tmp, path) < 0)
		r = NEG_ERRNO();
	if (r < 0)
		unlink(tmp);
	return r;
}

void
tool_write(const struct tool_env *env, json_t *input, struct tool_output *out)
{
	(void)env;
	const char *path = json_get_str(input, "path");
	json_t *content = json_object_get(input, "content");
	int r = make_parents(path);
	if (r >= 0)
		r = replace_file(path, json_string_value(content), json_string_length(content));
	if (r < 0) {
		tool_output_error(out, "error: cannot write %s: %s", path,
		                  r == -EROFS ? "read-only file system (the workspace is mounted "
		                                "read-only)"
		                              : fs_error(r));
		return;
	}
	tool_output_printf(out, "wrote %zu bytes to %s", json_string_length(content), path);
}

void
tool_edit(const struct tool_env *env, json_t *input, struct tool_output *out)
{
	(void)env;
	const char *path = json_get_str(input, "path");
	json_t *jold = json_object_get(input, "old_string");
	json_t *jnew = json_object_get(input, "new_string");
	const char *old = json_string_value(jold), *new = json_string_value(jnew);
	size_t old_len = json_string_length(jold), new_len = json_string_length(jnew);
	bool all = json_is_true(json_object_get(input, "replace_all"));
	if (old_len == 0) {
		tool_output_error(out, "error: old_string is empty; use write to create a file");
		return;
	}
	if (old_len == new_len && memcmp(old, new, old_len) == 0) {
		tool_output_error(out, "error: old_string and new_string are the same");
		return;
	}
	_cleanup_dbuf_ struct dbuf b = {0};
	int r = slurp(path, TOOL_FILE_MAX, &b);
	if (r < 0) {
		tool_output_error(out, "error: %s: %s", path, fs_error(r));
		return;
	}
	size_t count = 0;
	const char *p = dbuf_str(&b), *end = p + b.len;
	for (const char *q = p; (q = memmem(q, (size_t)(end - q), old, old_len)); q += old_len)
		count++;
	if (count == 0) {
		tool_output_error(out, "error: old_string was not found in %s", path);
		return;
	}
	if (count > 1 && !all) {
		tool_output_error(
		    out,
		    "error: old_string occurs %zu times in %s; include more context to "
		    "make it unique, or set replace_all",
		    count, path);
		return;
	}
	_cleanup_dbuf_ struct dbuf res;
	dbuf_init(&res, TOOL_FILE_MAX * 2);
	const char *q = p;
	for (const char *m; (m = memmem(q, (size_t)(end - q), old, old_len)); q = m + old_len) {
		r = dbuf_append(&res, q, (size_t)(m - q));
		if (r >= 0)
			r = dbuf_append(&res, new, new_len);
		if (r < 0) {
			tool_output_error(out, "error: %s: the result would be too large", path);
			return;
		}
		if (!all) {
			q = m + old_len;
			break;
		}
	}
	if (dbuf_append(&res, q, (size_t)(end - q)) < 0) {
		tool_output_error(out, "error: %s: the result would be too large", path);
		return;
	}
	r = replace_file(path, dbuf_str(&res), res.len);
	if (r < 0) {
		tool_output_error(out, "error: cannot write %s: %s", path, fs_error(r));
		return;
	}
	tool_output_printf(out, "replaced %zu occurrence%s in %s", all ? count : 1,
	                   (all ? count : 1) == 1 ? "" : "s", path);
}

/* ---- glob ---- */

/* Matches a '/'-separated relative path against a pattern whose "**" components match any
 * number of folders (zero included). depth bounds the recursion a pattern full of "**" could
 * cause. */
static bool
glob_match(const char *pat, const char *path, int depth)
{
	if (depth > 64)
		return false;
	if (strcmp(pat, "**") == 0)
		return true;
	if (strncmp(pat, "**/", 3) == 0) {
		if (glob_match(pat + 3, path, depth + 1))
			return true;
		const char *slash = strchr(path, '/');
		return slash && glob_match(pat, slash + 1, depth + 1);
	}
	const char *ps = strchr(pat, '/'), *xs = strchr(path, '/');
	if (!ps)
		return !xs && fnmatch(pat, path, FNM_PERIOD) == 0;
	if (!xs)
		return false;
	char pc[256], xc[256];
	size_t pl = (size_t)(ps - pat), xl = (size_t)(xs - path);
	if (pl >= sizeof(pc) || xl >= sizeof(xc))
		return false;
	memcpy(pc, pat, pl);
	pc[pl] = '\0';
	memcpy(xc, path, xl);
	xc[xl] = '\0';
	return fnmatch(pc, xc, FNM_PERIOD) == 0 && glob_match(ps + 1, xs + 1, depth + 1);
}

struct walk {
	size_t visited;
	bool capped;
	int (*visit)(struct walk *w, const char *full, const char *rel, const struct stat *st);
	void *ctx;
};

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Depth-first over dir, in name order, skipping .git and symlinked folders (no loops). */
static int
walk_dir(struct walk *w, const char *full, const char *rel, int depth)
{
	if (depth > WALK_DEPTH_MAX)
		return 0;
	DIR *d = opendir(full);
	if (!d)
		return 0; /* unreadable folders are skipped, as find does with a warning */
	/* On the heap: the walk recurses up to WALK_DEPTH_MAX folders deep. */
	char **names = calloc(WALK_DIR_MAX, sizeof(*names));
	if (!names) {
		closedir(d);
		return -ENOMEM;
	}
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < WALK_DIR_MAX) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    strcmp(e->d_name, ".git") == 0)
			continue;
		names[n] = strdup(e->d_name);
		if (names[n])
			n++;
	}
	if (e)
		w->capped = true;
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_str);
	int r = 0;
	for (size_t i = 0; i < n; i++) {
		if (r == 0 && ++w->visited > WALK_ENTRIES_MAX) {
			w->capped = true;
			r = 1;
		}
		if (r == 0) {
			char f[4096], rl[4096];
			struct stat st;
			snprintf(f, sizeof(f), "%s/%s", full, names[i]);
			snprintf(rl, sizeof(rl), "%s%s%s", rel, *rel ? "/" : "", names[i]);
			if (lstat(f, &st) == 0) {
				r = w->visit(w, f, rl, &st);
				if (r == 0 && S_ISDIR(st.st_mode))
					r = walk_dir(w, f, rl, depth + 1);
			}
		}
		free(names[i]);
	}
	free(names);
	return r;
}

struct glob_ctx {
	const char *pattern;
	char **hits;
	size_t n;
};

static int
glob_visit(struct walk *w, const char *full, const char *rel, const struct stat *st)
{
	struct glob_ctx *g = w->ctx;
	(void)full;
	if (!glob_match(g->pattern, rel, 0))
		return 0;
	if (g->n >= TOOL_LIST_MAX) {
		w->capped = true;
		return 1;
	}
	char line[4200];
	snprintf(line, sizeof(line), "%s%s", rel, S_ISDIR(st->st_mode) ? "/" : "");
	g->hits[g->n] = strdup(line);
	if (g->hits[g->n])
		g->n++;
	return 0;
}

void
tool_glob(const struct tool_env *env, json_t *input, struct tool_output *out)
{
	(void)env;
	const char *pattern = json_get_str(input, "pattern");
	const char *path = json_get_str(input, "path") ?: ".";
	if (!*pattern || strlen(pattern) > 512 || pattern[0] == '/') {
		tool_output_error(out,
		                  "error: the pattern must be relative to path and at most 512 "
		                  "characters");
		return;
	}
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		tool_output_error(out, "error: %s: not a folder", path);
		return;
	}
	struct glob_ctx g = {.pattern = pattern, .hits = calloc(TOOL_LIST_MAX, sizeof(char *))};
	if (!g.hits) {
		tool_output_error(out, "error: out of memory");
		return;
	}
	struct walk w = {.visit = glob_visit, .ctx = &g};
	walk_dir(&w, path, "", 0);
	for (size_t i = 0; i < g.n; i++) {
		tool_output_printf(out, "%s\n", g.hits[i]);
		free(g.hits[i]);
	}
	free(g.hits);
	if (g.n == 0)
		tool_output_printf(out, "no files match %s under %s\n", pattern, path);
	if (w.capped)
		tool_output_printf(out, "[list stopped at a limit; narrow the pattern or path]\n");
}

/* ---- grep ---- */

struct grep_ctx {
	regex_t re;
	const char *glob;
	unsigned context;
	size_t matches;
	size_t files;
	struct tool_output *out;
};

static void
grep_line(struct grep_ctx *g, const char *rel, size_t no, char sep, const char *p, size_t len)
{
	size_t cut = len > LINE_SHOWN_MAX ? LINE_SHOWN_MAX : len;
	tool_output_printf(g->out, "%s%c%zu%c", rel, sep, no, sep);
	tool_output_add(g->out, p, cut);
	tool_output_add(g->out, "\n", 1);
}

static int
grep_file(struct walk *w, const char *full, const char *rel, const struct stat *st)
{
	struct grep_ctx *g = w->ctx;
	if (!S_ISREG(st->st_mode) || (uint64_t)st->st_size > TOOL_FILE_MAX)
		return 0;
	if (g->glob) {
		const char *base = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
		if (strchr(g->glob, '/') ? !glob_match(g->glob, rel, 0)
		                         : fnmatch(g->glob, base, 0) != 0)
			return 0;
	}
	_cleanup_dbuf_ struct dbuf b = {0};
	if (slurp(full, TOOL_FILE_MAX, &b) < 0 || b.len == 0 || looks_binary(b.p, b.len))
		return 0;
	g->files++;
	/* Lines are searched in place: each '\n' becomes a NUL for regexec. */
	struct {
		const char *p;
		size_t len, no;
	} ring[11];
	size_t last_shown = 0, after = 0, no = 0;
	char *p = b.p, *end = b.p + b.len;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (nl)
			*nl = '\0';
		no++;
		bool hit = regexec(&g->re, p, 0, NULL, 0) == 0;
		if (hit) {
			if (g->matches >= TOOL_LIST_MAX) {
				w->capped = true;
				return 1;
			}
			g->matches++;
			size_t first = no > g->context ? no - g->context : 1;
			if (first <= last_shown)
				first = last_shown + 1;
			if (last_shown && first > last_shown + 1 && g->context)
				tool_output_add(g->out, "--\n", 3);
			for (size_t k = first; k < no; k++) {
				size_t slot = k % ARRAY_SIZE(ring);
				grep_line(g, rel, k, '-', ring[slot].p, ring[slot].len);
			}
			grep_line(g, rel, no, ':', p, len);
			last_shown = no;
			after = g->context;
		} else if (after) {
			grep_line(g, rel, no, '-', p, len);
			last_shown = no;
			after--;
		}
		size_t slot = no % ARRAY_SIZE(ring);
		ring[slot].p = p;
		ring[slot].len = len;
		ring[slot].no = no;
		p = nl ? nl + 1 : end;
	}
	return 0;
}

void
tool_grep(const struct tool_env *env, json_t *input, struct tool_output *out)
{
	(void)env;
	const char *pattern = json_get_str(input, "pattern");
	const char *path = json_get_str(input, "path") ?: ".";
	const char *cs = json_get_str(input, "case");
	struct grep_ctx g = {
	    .glob = json_get_str(input, "glob"),
	    .context = (unsigned)json_get_u64(input, "context"),
	    .out = out,
	};
	int flags =
	    REG_EXTENDED | REG_NOSUB | (cs && strcmp(cs, "insensitive") == 0 ? REG_ICASE : 0);
	if (strlen(pattern) > 4096) {
		tool_output_error(out, "error: the pattern is longer than 4096 characters");
		return;
	}
	int rc = regcomp(&g.re, pattern, flags);
	if (rc != 0) {
		char msg[256];
		regerror(rc, &g.re, msg, sizeof(msg));
		tool_output_error(out, "error: bad regular expression: %s", msg);
		return;
	}
	struct walk w = {.visit = grep_file, .ctx = &g};
	struct stat st;
	if (lstat(path, &st) < 0) {
		tool_output_error(out, "error: %s: %s", path, strerror(errno));
	} else if (S_ISDIR(st.st_mode)) {
		walk_dir(&w, path, strcmp(path, ".") == 0 ? "" : path, 0);
	} else {
		g.glob = NULL; /* a single file named on purpose */
		grep_file(&w, path, path, &st);
	}
	regfree(&g.re);
	if (out->is_error)
		return;
	if (g.matches == 0)
		tool_output_printf(out, "no matches for %s under %s (%zu files searched)\n",
		                   pattern, path, g.files);
	if (w.capped)
		tool_output_printf(out,
		                   "[search stopped at a limit; narrow the pattern or path]\n");
}
