/*
 * engine.c: Claude Code and Codex as the engine of `clawbox ask --engine` (see engine.h).
 *
 * Security stays where it is for our agent: the engine runs as the sandbox's unprivileged
 * user with the run's mounts only, its one way out is the egress proxy, and the model key it
 * is given is a placeholder (the proxy drops every credential header a client sends and adds
 * the real key on the way to the model). The engines' own sandboxes are turned off
 * (--dangerously-skip-permissions, -s danger-full-access): ours is the boundary, and theirs
 * cannot nest inside it (it refuses new user namespaces, as it should).
 *
 * Nothing is written by this (host) side into folders the engine can write, except mkdir and
 * a CLAUDE.md symlink made with the *at() calls that do not follow links: the engine's own
 * configuration (MCP servers, provider) goes on its command line instead of into files there.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "events.h"
#include "fd-util.h"
#include "json-util.h"
#include "log.h"
#include "text.h"

#define ENGINE_INSIDE      "/opt/engine/node_modules"
#define ENGINE_BIN_INSIDE  "/opt/engine/bin"
#define MEMORY_DIR_INSIDE  "/memory"
#define MODEL_URL_INSIDE   "http://model.clawbox.internal"
#define PLACEHOLDER_ANTHRO "sk-ant-clawbox-placeholder"
#define PLACEHOLDER_OPENAI "sk-clawbox-placeholder"

static const struct {
	const char *name, *command, *package;
} engines[] = {
    [ENGINE_CLAWBOX] = {"clawbox", NULL, NULL},
    [ENGINE_CLAUDE_CODE] = {"claude-code", "claude", "@anthropic-ai/claude-code"},
    [ENGINE_CODEX] = {"codex", "codex", "@openai/codex"},
};

int
engine_parse(const char *name, enum engine_kind *ret)
{
	for (size_t i = 0; i < ARRAY_SIZE(engines); i++)
		if (strcmp(name, engines[i].name) == 0) {
			*ret = (enum engine_kind)i;
			return 0;
		}
	return -EINVAL;
}

const char *
engine_name(enum engine_kind k)
{
	return engines[k].name;
}

/* name as an executable: each folder of PATH, then where `npm install -g` puts binaries. */
static int
find_command(const char *name, char *ret, size_t size)
{
	const char *path = getenv("PATH");
	char home_bins[2][PATH_MAX / 2] = {"", ""};
	const char *home = getenv("HOME");
	if (home && *home && strlen(home) < PATH_MAX / 4) {
		snprintf(home_bins[0], sizeof(home_bins[0]), "%s/.npm-global/bin", home);
		snprintf(home_bins[1], sizeof(home_bins[1]), "%s/.local/bin", home);
	}
	const char *fixed[] = {"/usr/local/bin", "/usr/bin", home_bins[0], home_bins[1]};
	char cand[PATH_MAX];
	for (const char *p = path ? path : ""; *p;) {
		size_t n = strcspn(p, ":");
		if (n > 0 && n < sizeof(cand) - strlen(name) - 2) {
			snprintf(cand, sizeof(cand), "%.*s/%s", (int)n, p, name);
			if (access(cand, X_OK) == 0 && realpath(cand, ret) && strlen(ret) < size)
				return 0;
		}
		p += n + (p[n] == ':');
	}
	for (size_t i = 0; i < ARRAY_SIZE(fixed); i++) {
		if (!fixed[i][0])
			continue;
		snprintf(cand, sizeof(cand), "%s/%s", fixed[i], name);
		if (access(cand, X_OK) == 0 && realpath(cand, ret) && strlen(ret) < size)
			return 0;
	}
	return -ENOENT;
}

/* Whether the file starts with a #! line that names node. */
static bool
needs_node(const char *exe)
{
	_cleanup_close_ int fd = open(exe, O_RDONLY | O_CLOEXEC);
	char head[128] = "";
	ssize_t n = fd >= 0 ? read(fd, head, sizeof(head) - 1) : -1;
	if (n < 2 || head[0] != '#' || head[1] != '!')
		return false;
	head[n] = '\0';
	char *nl = strchr(head, '\n');
	if (nl)
		*nl = '\0';
	return strstr(head, "node") != NULL;
}

static int
mount_ro(struct sandbox_spec *spec, const char *host, const char *inside)
{
	char arg[PATH_MAX * 2];
	const char *why = NULL;
	if (strchr(host, ':'))
		return log_error("%s: a path with ':' cannot be mounted", host), -EINVAL;
	snprintf(arg, sizeof(arg), "%s:%s:ro", host, inside);
	int r = sandbox_spec_add_mount(spec, arg, &why);
	if (r < 0)
		log_error("cannot mount %s: %s", host, why ? why : strerror(-r));
	return r;
}

/* The engine's package, read-only at /opt/engine/node_modules/SCOPE (the whole npm scope:
 * Codex's launcher runs the native binary of a sibling package), and node when the entry is
 * a node script that the system folders do not already provide. */
static int
mount_engine(enum engine_kind k, struct engine_state *st, struct sandbox_spec *spec)
{
	char real[PATH_MAX];
	if (find_command(engines[k].command, real, sizeof(real)) < 0)
		return log_error("engine %s: '%s' was not found on PATH, /usr/local/bin or "
		                 "~/.npm-global/bin; install it on the host with 'npm install -g "
		                 "%s'",
		                 engines[k].name, engines[k].command, engines[k].package),
		       -ENOENT;
	const char *nm = strstr(real, "/node_modules/");
	if (!nm)
		return log_error("engine %s: %s is not inside an npm package (node_modules); "
		                 "install it with 'npm install -g %s'",
		                 engines[k].name, real, engines[k].package),
		       -ENOENT;
	const char *rest = nm + strlen("/node_modules/");
	const char *scope_end = rest[0] == '@' ? strchr(rest, '/') : rest + strcspn(rest, "/");
	if (!scope_end)
		return log_error("engine %s: %s: not an npm package's path", engines[k].name, real),
		       -ENOENT;
	char host_dir[PATH_MAX], inside_dir[PATH_MAX];
	snprintf(host_dir, sizeof(host_dir), "%.*s", (int)(scope_end - real), real);
	snprintf(inside_dir, sizeof(inside_dir), ENGINE_INSIDE "/%.*s", (int)(scope_end - rest),
	         rest);
	int r = mount_ro(spec, host_dir, inside_dir);
	if (r < 0)
		return r;
	snprintf(st->exe, sizeof(st->exe), ENGINE_INSIDE "/%s", rest);
	if (!needs_node(real))
		return 0;
	char node[PATH_MAX];
	if (find_command("node", node, sizeof(node)) < 0)
		return log_error("engine %s: %s runs on node, which is not installed (apt-get "
		                 "install nodejs)",
		                 engines[k].name, engines[k].package),
		       -ENOENT;
	if (strncmp(node, "/usr/", 5) == 0)
		return 0; /* the sandbox has the system folders, read-only */
	if ((r = mount_ro(spec, node, ENGINE_BIN_INSIDE "/node")) < 0)
		return r;
	return sandbox_spec_set_env(spec, "PATH=" ENGINE_BIN_INSIDE ":" SANDBOX_PATH_ENV);
}

/* A folder of the session, for the sandbox's user to write.  mkdir and fchownat do not
 * follow a link the engine left. */
static int
state_dir(const char *session, const char *name)
{
	_cleanup_close_ int dfd = open(session, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dfd < 0)
		return log_error("session folder %s: %s", session, strerror(errno)), -errno;
	if (mkdirat(dfd, name, 0700) < 0 && errno != EEXIST)
		return log_error("%s/%s: %s", session, name, strerror(errno)), -errno;
	/* Owned as the session folder is: by the sandbox's user outside (65533), or, where the
	 * session is an idmapped mount, by the folder's owner, whom the sandbox's user is. */
	struct stat st;
	if (geteuid() == 0 && (fstat(dfd, &st) < 0 ||
	                       fchownat(dfd, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0))
		return log_error("%s/%s: %s", session, name, strerror(errno)), -errno;
	return 0;
}

static bool
has_dir(const char *session, const char *sub)
{
	char p[PATH_MAX];
	struct stat s;
	snprintf(p, sizeof(p), "%s/%s", session, sub);
	return lstat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

/* Claude Code reads CLAUDE.md, Codex and ours AGENTS.md: one file. In a writable workspace
 * that has AGENTS.md and no CLAUDE.md, CLAUDE.md becomes a link to it (symlinkat never
 * follows or replaces what is there). */
static void
link_memory(const struct engine_request *req)
{
	if (!req->rw)
		return;
	_cleanup_close_ int dfd =
	    open(req->workspace, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	struct stat s;
	if (dfd < 0 || fstatat(dfd, "AGENTS.md", &s, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(s.st_mode))
		return;
	if (symlinkat("AGENTS.md", dfd, "CLAUDE.md") == 0 && geteuid() == 0)
		(void)!fchownat(dfd, "CLAUDE.md", s.st_uid, s.st_gid, AT_SYMLINK_NOFOLLOW);
}

static int
set_env(struct sandbox_spec *spec, const char *const *env)
{
	for (; *env; env++) {
		int r = sandbox_spec_set_env(spec, *env);
		if (r < 0)
			return log_error("cannot set %s in the sandbox", *env), r;
	}
	return 0;
}

static int
setup_claude(const struct engine_request *req, struct engine_state *st, struct sandbox_spec *spec,
             size_t *n)
{
	const char **argv = st->argv;
	char home[PATH_MAX], cfg[PATH_MAX];
	snprintf(home, sizeof(home), "HOME=%s/home", req->state_inside);
	snprintf(cfg, sizeof(cfg), "CLAUDE_CONFIG_DIR=%s/claude-code", req->state_inside);
	bool had = has_dir(req->session, "claude-code/projects");
	int r;
	if ((r = state_dir(req->session, "home")) < 0 ||
	    (r = state_dir(req->session, "claude-code")) < 0)
		return r;
	const char *const env[] = {
	    home,
	    cfg,
	    "ANTHROPIC_BASE_URL=" MODEL_URL_INSIDE,
	    "ANTHROPIC_API_KEY=" PLACEHOLDER_ANTHRO,
	    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
	    "DISABLE_AUTOUPDATER=1",
	    "DISABLE_TELEMETRY=1",
	    "DISABLE_ERROR_REPORTING=1",
	    /* fewer anthropic-beta values for the proxy's model fence to judge */
	    "CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS=1",
	    /* the global memory at /memory/CLAUDE.md, read through --add-dir */
	    "CLAUDE_CODE_ADDITIONAL_DIRECTORIES_CLAUDE_MD=1",
	    NULL,
	};
	if ((r = set_env(spec, env)) < 0)
		return r;
	link_memory(req);
	argv[(*n)++] = "-p";
	argv[(*n)++] = "--output-format";
	argv[(*n)++] = "stream-json";
	argv[(*n)++] = "--verbose";
	argv[(*n)++] = "--include-partial-messages";
	argv[(*n)++] = "--dangerously-skip-permissions";
	if (had && !req->fresh)
		argv[(*n)++] = "--continue";
	if (req->model) {
		argv[(*n)++] = "--model";
		argv[(*n)++] = req->model;
	}
	if (req->allowed_tools) {
		argv[(*n)++] = "--allowedTools";
		argv[(*n)++] = req->allowed_tools;
	}
	if (req->global_memory) {
		if ((r = mount_ro(spec, req->global_memory, MEMORY_DIR_INSIDE "/CLAUDE.md")) < 0)
			return r;
		argv[(*n)++] = "--add-dir";
		argv[(*n)++] = MEMORY_DIR_INSIDE;
	}
	if (req->host_socket_inside) {
		_cleanup_json_ json_t *m =
		    json_pack("{s:{s:{s:s,s:s,s:[s,s,s]}}}", "mcpServers", "clawbox", "type",
		              "stdio", "command", req->self_inside, "args", "mcp-host",
		              "--host-socket", req->host_socket_inside);
		_cleanup_free_ char *s = m ? json_dumps(m, JSON_COMPACT) : NULL;
		if (!s || strlen(s) >= sizeof(st->mcp_config))
			return -ENOMEM;
		memcpy(st->mcp_config, s, strlen(s) + 1);
		argv[(*n)++] = "--mcp-config";
		argv[(*n)++] = st->mcp_config;
		argv[(*n)++] = "--strict-mcp-config";
	}
	return 0;
}

static int
setup_codex(const struct engine_request *req, struct engine_state *st, struct sandbox_spec *spec,
            size_t *n)
{
	const char **argv = st->argv;
	char home[PATH_MAX], codex_home[PATH_MAX];
	snprintf(home, sizeof(home), "HOME=%s/home", req->state_inside);
	snprintf(codex_home, sizeof(codex_home), "CODEX_HOME=%s/codex", req->state_inside);
	bool had = has_dir(req->session, "codex/sessions");
	int r;
	if ((r = state_dir(req->session, "home")) < 0 || (r = state_dir(req->session, "codex")) < 0)
		return r;
	const char *const env[] = {
	    home, codex_home, "OPENAI_API_KEY=" PLACEHOLDER_OPENAI, "CODEX_DISABLE_UPDATE_CHECK=1",
	    NULL,
	};
	if ((r = set_env(spec, env)) < 0)
		return r;
	argv[(*n)++] = "exec";
	argv[(*n)++] = "--json";
	argv[(*n)++] = "--skip-git-repo-check";
	argv[(*n)++] = "-s";
	argv[(*n)++] = "danger-full-access";
	/* The model through the proxy, with the placeholder key; no update checks, no
	 * analytics (the config is on the command line: nothing written where it can write). */
	static const char *const cfg[] = {
	    "model_provider=\"clawbox\"",
	    "model_providers.clawbox.name=\"clawbox\"",
	    "model_providers.clawbox.base_url=\"" MODEL_URL_INSIDE "/v1\"",
	    "model_providers.clawbox.env_key=\"OPENAI_API_KEY\"",
	    "model_providers.clawbox.wire_api=\"responses\"",
	    "check_for_update_on_startup=false",
	    /* the provider's own web search would go around the egress allowlist and audit */
	    "web_search=\"disabled\"",
	    "analytics.enabled=false",
	    "feedback.enabled=false",
	};
	for (size_t i = 0; i < ARRAY_SIZE(cfg); i++) {
		argv[(*n)++] = "-c";
		argv[(*n)++] = cfg[i];
	}
	if (req->host_socket_inside) {
		snprintf(st->mcp_config, sizeof(st->mcp_config),
		         "mcp_servers.clawbox.command=\"%s\"", req->self_inside);
		snprintf(st->allowed, sizeof(st->allowed),
		         "mcp_servers.clawbox.args=[\"mcp-host\",\"--host-socket\",\"%s\"]",
		         req->host_socket_inside);
		argv[(*n)++] = "-c";
		argv[(*n)++] = st->mcp_config;
		argv[(*n)++] = "-c";
		argv[(*n)++] = st->allowed;
	}
	if (req->model) {
		argv[(*n)++] = "-m";
		argv[(*n)++] = req->model;
	}
	if (had && !req->fresh) {
		argv[(*n)++] = "resume";
		argv[(*n)++] = "--last";
	}
	return 0;
}

int
engine_run_setup(enum engine_kind kind, struct engine_state *st, struct sandbox_spec *spec,
                 char **argv)
{
	int r = mount_engine(kind, st, spec);
	if (r < 0)
		return r;
	static const char *const claude[] = {
	    "ANTHROPIC_BASE_URL=" MODEL_URL_INSIDE,
	    "ANTHROPIC_API_KEY=" PLACEHOLDER_ANTHRO,
	    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
	    /* as for ask --engine: experimental betas are refused by the model fence */
	    "CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS=1",
	    "DISABLE_AUTOUPDATER=1",
	    "DISABLE_TELEMETRY=1",
	    "DISABLE_ERROR_REPORTING=1",
	    NULL,
	};
	static const char *const codex[] = {
	    "OPENAI_BASE_URL=" MODEL_URL_INSIDE "/v1",
	    "OPENAI_API_KEY=" PLACEHOLDER_OPENAI,
	    "CODEX_DISABLE_UPDATE_CHECK=1",
	    NULL,
	};
	if ((r = set_env(spec, kind == ENGINE_CLAUDE_CODE ? claude : codex)) < 0)
		return r;
	if (strcmp(argv[0], engines[kind].command) == 0)
		argv[0] = st->exe;
	return 0;
}

/* The thread's totals at the end of the last run, or zeros (a new thread). The file is in
 * a folder the engine can write: read without following links, and as trustworthy as the
 * engine's own report of its usage, which is all there is. */
static void
usage_load(const struct engine_request *req, struct engine_xlate *x, bool resuming)
{
	snprintf(x->usage_path, sizeof(x->usage_path), "%s/engine-usage", req->session);
	memset(x->base, 0, sizeof(x->base));
	/* O_NONBLOCK and a regular file only: a FIFO left there must not hold ask. */
	_cleanup_close_ int fd =
	    open(x->usage_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	struct stat st;
	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)))
		return;
	char buf[96];
	ssize_t n = fd >= 0 && resuming ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (n <= 0)
		return;
	buf[n] = '\0';
	if (sscanf(buf, "%llu %llu %llu", &x->base[0], &x->base[1], &x->base[2]) != 3)
		memset(x->base, 0, sizeof(x->base));
}

static void
usage_save(const struct engine_xlate *x)
{
	_cleanup_close_ int fd =
	    open(x->usage_path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
	struct stat st;
	char buf[96];
	int n =
	    snprintf(buf, sizeof(buf), "%llu %llu %llu\n", x->total[0], x->total[1], x->total[2]);
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && ftruncate(fd, 0) == 0)
		(void)write_all(fd, buf, (size_t)n);
}

int
engine_setup(const struct engine_request *req, struct engine_state *st, struct engine_xlate *x,
             struct sandbox_spec *spec)
{
	int r = mount_engine(req->kind, st, spec);
	if (r < 0)
		return r;
	x->kind = req->kind;
	if (req->kind == ENGINE_CODEX)
		usage_load(req, x, has_dir(req->session, "codex/sessions") && !req->fresh);
	size_t n = 0;
	st->argv[n++] = st->exe;
	r = req->kind == ENGINE_CLAUDE_CODE ? setup_claude(req, st, spec, &n)
	                                    : setup_codex(req, st, spec, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < req->n_extra && n + 3 < ARRAY_SIZE(st->argv); i++)
		st->argv[n++] = req->extra[i];
	if (req->kind == ENGINE_CODEX)
		st->argv[n++] = "-"; /* the prompt from stdin: never on a command line */
	st->argv[n] = NULL;
	spec->argv = (char *const *)st->argv;
	char *wd = NULL;
	if (sandbox_path_normalize(req->inside, &wd) < 0)
		return -ENOMEM;
	free(spec->workdir);
	spec->workdir = wd;
	return 0;
}

/* ---- output ---- */

static void
emit_new(void (*emit)(void *, json_t *), void *ctx, json_t *ev)
{
	if (ev)
		emit(ctx, ev);
	json_decref(ev);
}

/* "Bash: ls -la": the tool and its first string argument, one line, short. */
static void
summary(const char *name, json_t *input, char *buf, size_t size)
{
	const char *arg = NULL, *key;
	json_t *v;
	json_object_foreach(input, key, v)
	{
		if (json_is_string(v)) {
			arg = json_string_value(v);
			break;
		}
	}
	char one[120];
	size_t k = 0;
	for (const char *p = arg ? arg : ""; *p && k + 4 < sizeof(one); p++)
		one[k++] = (unsigned char)*p < 0x20 ? ' ' : *p;
	one[k] = '\0';
	snprintf(buf, size, "%.64s%s%s%s", name, arg ? ": " : "", one,
	         arg && strlen(arg) > k ? "..." : "");
}

static void
tool_call(void (*emit)(void *, json_t *), void *ctx, const char *id, const char *name,
          json_t *input)
{
	char s[256];
	summary(name ? name : "?", input, s, sizeof(s));
	emit_new(emit, ctx,
	         json_pack("{s:s,s:s,s:s,s:s}", "type", "tool_call", "id", id ? id : "", "name",
	                   name ? name : "?", "summary", s));
}

/* preview: the result's text (a JSON string of the engine's, so valid UTF-8) or NULL; its
 * first EVENTS_PREVIEW_MAX bytes go with the event, as the clawbox agent sends them. */
static void
tool_result(void (*emit)(void *, json_t *), void *ctx, const char *id, const char *name,
            bool is_error, size_t bytes, json_t *preview)
{
	json_t *ev =
	    json_pack("{s:s,s:s,s:s,s:b,s:I}", "type", "tool_result", "id", id ? id : "", "name",
	              name ? name : "", "is_error", is_error, "bytes", (json_int_t)bytes);
	if (ev && json_is_string(preview)) {
		size_t n = text_utf8_prefix(json_string_value(preview), json_string_length(preview),
		                            EVENTS_PREVIEW_MAX);
		(void)json_object_set_new(ev, "preview",
		                          json_stringn(json_string_value(preview), n));
	}
	emit_new(emit, ctx, ev);
}

/* A tool_result block's text: its "content" string, or the first text block of it. */
static json_t *
content_text(json_t *c)
{
	if (json_is_string(c))
		return c;
	size_t i;
	json_t *b;
	json_array_foreach(c, i, b)
	{
		if (json_is_string(json_object_get(b, "text")))
			return json_object_get(b, "text");
	}
	return NULL;
}

static void
usage_event(struct engine_xlate *x, void (*emit)(void *, json_t *), void *ctx,
            unsigned long long in, unsigned long long out, unsigned long long cw,
            unsigned long long cr)
{
	emit_new(emit, ctx,
	         json_pack("{s:s,s:i,s:I,s:I,s:I,s:I}", "type", "usage", "turn", (int)x->turns,
	                   "input_tokens", (json_int_t)in, "output_tokens", (json_int_t)out,
	                   "cache_write_tokens", (json_int_t)cw, "cache_read_tokens",
	                   (json_int_t)cr));
}

static void
done_event(struct engine_xlate *x, void (*emit)(void *, json_t *), void *ctx, const char *status,
           const char *message, const char *stop)
{
	(void)emit;
	(void)ctx;
	if (x->done)
		return;
	x->done = true;
	/* Held until the engine has exited: done is last, and carries the peak RSS. */
	x->done_ev = json_pack(
	    "{s:s,s:s,s:s,s:s,s:i,s:{s:I,s:I,s:I,s:I},s:I}", "type", "done", "status", status,
	    "message", message ? message : "", "stop_reason", stop ? stop : "", "turns",
	    (int)x->turns, "usage", "input_tokens", (json_int_t)x->in, "output_tokens",
	    (json_int_t)x->out, "cache_write_tokens", (json_int_t)x->cache_write,
	    "cache_read_tokens", (json_int_t)x->cache_read, "peak_rss_kb", (json_int_t)0);
}

static size_t
content_bytes(json_t *c)
{
	if (json_is_string(c))
		return json_string_length(c);
	size_t i, n = 0;
	json_t *b;
	json_array_foreach(c, i, b)
	{
		n += json_string_length(json_object_get(b, "text"));
	}
	return n;
}

/* claude -p --output-format stream-json --verbose --include-partial-messages: system,
 * stream_event (the API's own stream events), assistant and user (whole messages), result. */
static void
claude_line(struct engine_xlate *x, json_t *ev, void (*emit)(void *, json_t *), void *ctx)
{
	const char *type = json_get_str(ev, "type") ?: "";
	if (strcmp(type, "stream_event") == 0) {
		json_t *e = json_object_get(ev, "event");
		json_t *d = json_object_get(e, "delta");
		if (strcmp(json_get_str(e, "type") ?: "", "content_block_delta") == 0 &&
		    strcmp(json_get_str(d, "type") ?: "", "text_delta") == 0) {
			json_t *t = json_object_get(d, "text");
			if (json_string_length(t)) {
				x->delta_seen = true;
				emit_new(emit, ctx,
				         json_pack("{s:s,s:O}", "type", "text", "text", t));
			}
		}
		if (strcmp(json_get_str(e, "type") ?: "", "message_start") == 0)
			x->delta_seen = false;
		return;
	}
	if (strcmp(type, "assistant") == 0) {
		if (json_get_str(ev, "parent_tool_use_id"))
			return; /* a subagent's: its result comes back as the Task tool's */
		json_t *m = json_object_get(ev, "message");
		size_t i;
		json_t *b;
		json_array_foreach(json_object_get(m, "content"), i, b)
		{
			const char *bt = json_get_str(b, "type") ?: "";
			if (strcmp(bt, "text") == 0 && !x->delta_seen)
				emit_new(emit, ctx,
				         json_pack("{s:s,s:O}", "type", "text", "text",
				                   json_object_get(b, "text")));
			else if (strcmp(bt, "tool_use") == 0)
				tool_call(emit, ctx, json_get_str(b, "id"), json_get_str(b, "name"),
				          json_object_get(b, "input"));
		}
		return;
	}
	if (strcmp(type, "user") == 0) {
		size_t i;
		json_t *b;
		json_array_foreach(json_object_get(json_object_get(ev, "message"), "content"), i, b)
		{
			if (strcmp(json_get_str(b, "type") ?: "", "tool_result") == 0)
				tool_result(emit, ctx, json_get_str(b, "tool_use_id"), NULL,
				            json_is_true(json_object_get(b, "is_error")),
				            content_bytes(json_object_get(b, "content")),
				            content_text(json_object_get(b, "content")));
		}
		return;
	}
	if (strcmp(type, "system") == 0 &&
	    strcmp(json_get_str(ev, "subtype") ?: "", "api_retry") == 0) {
		char buf[160];
		snprintf(buf, sizeof(buf), "the model API failed (%lld); retry %lld",
		         (long long)json_integer_value(json_object_get(ev, "error_status")),
		         (long long)json_integer_value(json_object_get(ev, "attempt")));
		emit_new(emit, ctx, json_pack("{s:s,s:s}", "type", "notice", "text", buf));
		return;
	}
	if (strcmp(type, "result") == 0) {
		json_t *u = json_object_get(ev, "usage");
		x->turns = (unsigned)json_integer_value(json_object_get(ev, "num_turns"));
		x->in = json_get_u64(u, "input_tokens");
		x->out = json_get_u64(u, "output_tokens");
		x->cache_write = json_get_u64(u, "cache_creation_input_tokens");
		x->cache_read = json_get_u64(u, "cache_read_input_tokens");
		usage_event(x, emit, ctx, x->in, x->out, x->cache_write, x->cache_read);
		bool err = json_is_true(json_object_get(ev, "is_error"));
		const char *sub = json_get_str(ev, "subtype") ?: "";
		const char *status = !err && strcmp(sub, "success") == 0 ? "answered"
		                     : strncmp(sub, "error_max", 9) == 0 ? "limit"
		                                                         : "error";
		done_event(x, emit, ctx, status, err ? json_get_str(ev, "result") : NULL,
		           json_get_str(ev, "stop_reason"));
	}
}

/* codex exec --json: thread.started, turn.started, item.started/updated/completed (items:
 * agent_message, reasoning, command_execution, file_change, mcp_tool_call, web_search,
 * error), turn.completed {usage}, turn.failed {error}, error. */
static void
codex_line(struct engine_xlate *x, json_t *ev, void (*emit)(void *, json_t *), void *ctx)
{
	const char *type = json_get_str(ev, "type") ?: "";
	json_t *item = json_object_get(ev, "item");
	const char *it = json_get_str(item, "type") ?: "";
	const char *id = json_get_str(item, "id");
	if (strcmp(type, "item.started") == 0) {
		if (strcmp(it, "command_execution") == 0) {
			_cleanup_json_ json_t *in =
			    json_pack("{s:O}", "command", json_object_get(item, "command"));
			tool_call(emit, ctx, id, "shell", in);
		} else if (strcmp(it, "mcp_tool_call") == 0) {
			char name[160];
			snprintf(name, sizeof(name), "mcp__%s__%s",
			         json_get_str(item, "server") ?: "?",
			         json_get_str(item, "tool") ?: "?");
			tool_call(emit, ctx, id, name, json_object_get(item, "arguments"));
		}
		return;
	}
	if (strcmp(type, "item.completed") == 0) {
		if (strcmp(it, "agent_message") == 0) {
			json_t *t = json_object_get(item, "text");
			if (json_string_length(t)) {
				if (x->delta_seen) /* one message after another: a paragraph apart
				                    */
					emit_new(
					    emit, ctx,
					    json_pack("{s:s,s:s}", "type", "text", "text", "\n\n"));
				emit_new(emit, ctx,
				         json_pack("{s:s,s:O}", "type", "text", "text", t));
				x->delta_seen = true;
			}
		} else if (strcmp(it, "command_execution") == 0) {
			json_t *code = json_object_get(item, "exit_code");
			tool_result(emit, ctx, id, "shell",
			            (code && json_integer_value(code) != 0) ||
			                strcmp(json_get_str(item, "status") ?: "", "failed") == 0,
			            json_string_length(json_object_get(item, "aggregated_output")),
			            json_object_get(item, "aggregated_output"));
		} else if (strcmp(it, "mcp_tool_call") == 0) {
			tool_result(emit, ctx, id, json_get_str(item, "tool"),
			            json_object_get(item, "error") &&
			                !json_is_null(json_object_get(item, "error")),
			            0, NULL);
		} else if (strcmp(it, "error") == 0) {
			emit_new(emit, ctx,
			         json_pack("{s:s,s:s}", "type", "notice", "text",
			                   json_get_str(item, "message") ?: "error"));
		}
		return;
	}
	if (strcmp(type, "turn.completed") == 0) {
		json_t *u = json_object_get(ev, "usage");
		x->turns++;
		x->total[0] = json_get_u64(u, "input_tokens");
		x->total[1] = json_get_u64(u, "cached_input_tokens");
		x->total[2] = json_get_u64(u, "output_tokens");
		/* The thread's totals: this run's share is what grew since the last run. */
		unsigned long long d[3];
		for (int k = 0; k < 3; k++)
			d[k] = x->total[k] > x->base[k] ? x->total[k] - x->base[k] : 0;
		x->in = d[0] > d[1] ? d[0] - d[1] : 0; /* ours count cached input apart */
		x->cache_read = d[1];
		x->out = d[2];
		usage_event(x, emit, ctx, x->in, x->out, 0, x->cache_read);
		done_event(x, emit, ctx, "answered", NULL, "end_turn");
		return;
	}
	if (strcmp(type, "turn.failed") == 0 || strcmp(type, "error") == 0) {
		const char *msg = json_get_str(json_object_get(ev, "error"), "message")
		                      ?: json_get_str(ev, "message");
		if (strcmp(type, "error") == 0) {
			/* Codex reports its retries as errors before the turn fails. */
			emit_new(
			    emit, ctx,
			    json_pack("{s:s,s:s}", "type", "notice", "text", msg ? msg : "error"));
			return;
		}
		done_event(x, emit, ctx, "error", msg ? msg : "the engine failed", NULL);
	}
}

void
engine_translate(struct engine_xlate *x, const char *line, size_t len,
                 void (*emit)(void *ctx, json_t *ev), void *ctx)
{
	_cleanup_json_ json_t *ev = json_loadb(line, len, 0, NULL);
	if (!json_is_object(ev) || x->done)
		return;
	if (x->kind == ENGINE_CLAUDE_CODE)
		claude_line(x, ev, emit, ctx);
	else
		codex_line(x, ev, emit, ctx);
}

void
engine_finish(struct engine_xlate *x, int exit_code, long peak_rss_kb,
              void (*emit)(void *ctx, json_t *ev), void *ctx)
{
	if (x->kind == ENGINE_CODEX && x->turns)
		usage_save(x);
	if (!x->done && exit_code != 0) {
		char msg[128];
		snprintf(msg, sizeof(msg), "%s ended with status %d without an answer",
		         engine_name(x->kind), exit_code);
		done_event(x, emit, ctx, "error", msg, NULL);
	}
	if (!x->done_ev)
		return;
	json_object_set_new(x->done_ev, "peak_rss_kb", json_integer(peak_rss_kb));
	emit(ctx, x->done_ev);
	json_decref(x->done_ev);
	x->done_ev = NULL;
}
