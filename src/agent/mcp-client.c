/*
 * mcp-client.c: MCP servers over stdio as tools of our agent (see mcp-client.h). Each server is
 * a child in its own process group with its stdin and stdout on pipes (stderr to /dev/null: a
 * chatty server must not flood the run's diagnostics); every read and write is non-blocking
 * and bounded by a deadline, so a server that hangs, floods or stops reading cannot hold the
 * agent: it is killed and named.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fd-util.h"
#include "http.h"
#include "json-util.h"
#include "mcp-client.h"

#define MCP_PROTOCOL "2025-06-18"

void
mcp_set_init(struct mcp_set *set)
{
	memset(set, 0, sizeof(*set));
	set->call_ms = MCP_CALL_MS;
	set->tools = json_array();
}

static bool
name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	return n > 0 && n < max &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

int
mcp_set_add(struct mcp_set *set, const char *spec, char *why, size_t why_size)
{
	const char *eq = strchr(spec, '=');
	if (set->n >= MCP_MAX_SERVERS)
		return snprintf(why, why_size, "at most %d MCP servers", MCP_MAX_SERVERS), -E2BIG;
	if (!eq || eq == spec || (size_t)(eq - spec) >= MCP_NAME_MAX)
		return snprintf(why, why_size, "expected NAME=COMMAND [ARG...] with a short name"),
		       -EINVAL;
	struct mcp_server *s = &set->s[set->n];
	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%.*s", (int)(eq - spec), spec);
	/* "__" separates the parts of mcp__NAME__TOOL: a name with it would be ambiguous. */
	if (!name_ok(s->name, MCP_NAME_MAX) || strstr(s->name, "__"))
		return snprintf(why, why_size, "%s: a name is letters, digits, - and _ (no __)",
		                s->name),
		       -EINVAL;
	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->s[i].name, s->name) == 0)
			return snprintf(why, why_size, "%s: named twice", s->name), -EINVAL;
	size_t argc = 0;
	for (const char *p = eq + 1; *p;) {
		p += strspn(p, " ");
		size_t len = strcspn(p, " ");
		if (!len)
			break;
		if (argc + 1 >= ARRAY_SIZE(s->argv)) {
			for (size_t k = 0; k < argc; k++)
				free(s->argv[k]);
			return snprintf(why, why_size, "%s: at most 32 arguments", s->name), -E2BIG;
		}
		s->argv[argc++] = strndup(p, len);
		p += len;
	}
	if (!argc)
		return snprintf(why, why_size, "%s: no command", s->name), -EINVAL;
	dbuf_init(&s->in, MCP_LINE_MAX);
	s->to = s->from = -1;
	s->next_id = 1;
	set->n++;
	return 0;
}

static void
stop(struct mcp_server *s, const char *why)
{
	if (why && !s->why[0])
		snprintf(s->why, sizeof(s->why), "%s", why);
	if (s->pid > 0) {
		kill(-s->pid, SIGKILL); /* the whole group: a server's own children too */
		kill(s->pid, SIGKILL);
		while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
			;
		s->pid = 0;
	}
	if (s->to >= 0)
		close(s->to);
	if (s->from >= 0)
		close(s->from);
	s->to = s->from = -1;
}

static int
spawn(struct mcp_server *s)
{
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) < 0)
		return NEG_ERRNO();
	if (pipe2(out, O_CLOEXEC) < 0) {
		int e = NEG_ERRNO();
		close(in[0]);
		close(in[1]);
		return e;
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = NEG_ERRNO();
		close(in[0]), close(in[1]), close(out[0]), close(out[1]);
		return e;
	}
	if (pid == 0) {
		setpgid(0, 0);
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || (null >= 0 && dup2(null, 2) < 0))
			_exit(126);
		signal(SIGPIPE, SIG_DFL);
		execvp(s->argv[0], s->argv);
		_exit(127);
	}
	setpgid(pid, pid);
	close(in[0]);
	close(out[1]);
	s->pid = pid;
	s->to = in[1];
	s->from = out[0];
	fcntl(s->to, F_SETFL, O_NONBLOCK);
	fcntl(s->from, F_SETFL, O_NONBLOCK);
	return 0;
}

/* Writes one message, by the deadline. */
static int
mcp_send(struct mcp_server *s, json_t *msg, int64_t deadline)
{
	_cleanup_free_ char *line = json_dumps(msg, JSON_COMPACT);
	if (!line)
		return -ENOMEM;
	size_t len = strlen(line), off = 0;
	line[len++] = '\n'; /* over the NUL: json_dumps' buffer ends there, len is what is sent */
	while (off < len) {
		ssize_t n = write(s->to, line + off, len - off);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -EPIPE;
		int64_t left = deadline - http_now_ms();
		struct pollfd p = {.fd = s->to, .events = POLLOUT};
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return -ETIMEDOUT;
	}
	return 0;
}

/* Reads messages until the answer to id; answers requests from the server with "not
 * supported" and drops its notifications. The answer (new reference), or NULL with why. */
static json_t *
await_reply(struct mcp_server *s, int64_t id, int64_t deadline, char *why, size_t why_size)
{
	size_t budget = 4 * (size_t)MCP_LINE_MAX; /* all it may send while we wait */
	for (;;) {
		char *nl;
		while ((nl = memchr(dbuf_str(&s->in), '\n', s->in.len))) {
			size_t len = (size_t)(nl - dbuf_str(&s->in));
			json_t *m = json_loadb(dbuf_str(&s->in), len, 0, NULL);
			/* The rest moves to the front. */
			size_t rest = s->in.len - len - 1;
			memmove(s->in.p, nl + 1, rest);
			s->in.len = rest;
			s->in.p[rest] = '\0';
			if (!json_is_object(m)) {
				json_decref(m);
				continue; /* not JSON: a log line on stdout, as some servers do */
			}
			json_t *mid = json_object_get(m, "id");
			if (json_get_str(m, "method")) {
				if (mid) {
					_cleanup_json_ json_t *e = json_pack(
					    "{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", mid,
					    "error", "code", -32601, "message", "not supported");
					(void)mcp_send(s, e, deadline);
				}
				json_decref(m);
				continue;
			}
			if (json_is_integer(mid) && json_integer_value(mid) == id)
				return m;
			json_decref(m);
		}
		int64_t left = deadline - http_now_ms();
		struct pollfd p = {.fd = s->from, .events = POLLIN};
		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			snprintf(why, why_size, "it did not answer in time");
			return NULL;
		}
		char buf[16384];
		ssize_t n = read(s->from, buf, sizeof(buf));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			snprintf(why, why_size, "it exited");
			return NULL;
		}
		if ((size_t)n > budget || dbuf_append(&s->in, buf, (size_t)n) < 0) {
			snprintf(why, why_size, "it sent more than %d bytes in one message",
			         MCP_LINE_MAX);
			return NULL;
		}
		budget -= (size_t)n;
	}
}

/* A request and its result (new reference), or NULL with why (the server is then unusable). */
static json_t *
request(struct mcp_server *s, const char *method, json_t *params, int64_t deadline, char *why,
        size_t why_size)
{
	int64_t id = s->next_id++;
	_cleanup_json_ json_t *m = json_pack("{s:s,s:I,s:s,s:O}", "jsonrpc", "2.0", "id",
	                                     (json_int_t)id, "method", method, "params", params);
	int r = m ? mcp_send(s, m, deadline) : -ENOMEM;
	if (r < 0) {
		snprintf(why, why_size, "it does not read its input (%s)", strerror(-r));
		return NULL;
	}
	return await_reply(s, id, deadline, why, why_size);
}

static void
add_tools(struct mcp_set *set, struct mcp_server *s, json_t *list, void (*notice)(const char *))
{
	size_t i;
	json_t *t;
	char line[256];
	json_array_foreach(list, i, t)
	{
		const char *name = json_get_str(t, "name");
		json_t *schema = json_object_get(t, "inputSchema");
		char full[96];
		if (json_array_size(set->tools) >= MCP_MAX_TOOLS) {
			snprintf(line, sizeof(line), "MCP server %s: tools past %d left out",
			         s->name, MCP_MAX_TOOLS);
			notice(line);
			return;
		}
		/* The model APIs take ^[a-zA-Z0-9_-]{1,64}$ as a tool's name. */
		if (!name || snprintf(full, sizeof(full), "mcp__%s__%s", s->name, name) > 64 ||
		    !name_ok(full, 65)) {
			snprintf(line, sizeof(line),
			         "MCP server %s: tool '%.40s' left out (its name)", s->name,
			         name ? name : "");
			notice(line);
			continue;
		}
		_cleanup_free_ char *sj = json_is_object(schema) ? json_dumps(schema, 0) : NULL;
		if (!sj || strlen(sj) > MCP_SCHEMA_MAX) {
			snprintf(line, sizeof(line),
			         "MCP server %s: tool %s left out (its schema is missing or over "
			         "%d bytes)",
			         s->name, name, MCP_SCHEMA_MAX);
			notice(line);
			continue;
		}
		const char *d = json_get_str(t, "description") ?: "";
		json_array_append_new(set->tools,
		                      json_pack("{s:s,s:s%,s:O}", "name", full, "description", d,
		                                strlen(d) > 2048 ? (size_t)2048 : strlen(d),
		                                "input_schema", schema));
	}
}

void
mcp_set_start(struct mcp_set *set, int64_t deadline_ms, void (*notice)(const char *line))
{
	for (size_t i = 0; i < set->n; i++) {
		struct mcp_server *s = &set->s[i];
		char why[128] = "", line[256];
		/* A server gets as long to start as a call may take, at most MCP_START_MS. */
		int64_t deadline =
		    http_now_ms() + (set->call_ms < MCP_START_MS ? set->call_ms : MCP_START_MS);
		if (deadline_ms && deadline_ms < deadline)
			deadline = deadline_ms;
		int r = spawn(s);
		if (r < 0) {
			snprintf(line, sizeof(line), "MCP server %s: cannot start it: %s", s->name,
			         strerror(-r));
			stop(s, line);
			notice(line);
			continue;
		}
		_cleanup_json_ json_t *init =
		    json_pack("{s:s,s:{},s:{s:s,s:s}}", "protocolVersion", MCP_PROTOCOL,
		              "capabilities", "clientInfo", "name", "clawbox", "version", "1");
		_cleanup_json_ json_t *ans =
		    request(s, "initialize", init, deadline, why, sizeof(why));
		if (ans && json_object_get(ans, "result")) {
			_cleanup_json_ json_t *n = json_pack("{s:s,s:s}", "jsonrpc", "2.0",
			                                     "method", "notifications/initialized");
			(void)mcp_send(s, n, deadline);
			_cleanup_json_ json_t *empty = json_object();
			json_decref(ans);
			ans = request(s, "tools/list", empty, deadline, why, sizeof(why));
		} else if (ans) {
			snprintf(why, sizeof(why), "it refused initialize");
		}
		json_t *list = json_object_get(json_object_get(ans, "result"), "tools");
		if (!json_is_array(list)) {
			snprintf(line, sizeof(line), "MCP server %s (%s): stopped: %s", s->name,
			         s->argv[0], why[0] ? why : "no tool list");
			stop(s, line);
			notice(line);
			continue;
		}
		add_tools(set, s, list, notice);
	}
}

void
mcp_set_done(struct mcp_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		stop(&set->s[i], NULL);
		for (size_t k = 0; set->s[i].argv[k]; k++)
			free(set->s[i].argv[k]);
		dbuf_done(&set->s[i].in);
	}
	json_decref(set->tools);
	set->tools = NULL;
	set->n = 0;
}

bool
mcp_is_tool(const char *name)
{
	return name && strncmp(name, "mcp__", 5) == 0;
}

void
mcp_set_call(struct mcp_set *set, const char *name, json_t *input, int64_t deadline_ms,
             struct tool_output *out)
{
	struct mcp_server *s = NULL;
	const char *tool = NULL;
	for (size_t i = 0; i < set->n && !s; i++) {
		size_t n = strlen(set->s[i].name);
		if (strncmp(name + 5, set->s[i].name, n) == 0 &&
		    strncmp(name + 5 + n, "__", 2) == 0) {
			s = &set->s[i];
			tool = name + 5 + n + 2;
		}
	}
	bool offered = false;
	size_t i;
	json_t *t;
	json_array_foreach(set->tools, i, t)
	{
		offered |= strcmp(json_get_str(t, "name") ?: "", name) == 0;
	}
	if (!s || !offered) {
		tool_output_error(out, "error: there is no tool named '%.64s'", name);
		return;
	}
	if (s->pid <= 0) {
		tool_output_error(out, "error: %s",
		                  s->why[0] ? s->why : "the MCP server is stopped");
		return;
	}
	if (!json_is_object(input)) {
		tool_output_error(out, "error: the arguments are not a JSON object");
		return;
	}
	_cleanup_free_ char *args = json_dumps(input, JSON_COMPACT);
	if (!args || strlen(args) > MCP_ARGS_MAX) {
		tool_output_error(out, "error: the arguments are over %d bytes", MCP_ARGS_MAX);
		return;
	}
	int64_t deadline = http_now_ms() + set->call_ms;
	if (deadline_ms && deadline_ms < deadline)
		deadline = deadline_ms;
	char why[128] = "";
	_cleanup_json_ json_t *params = json_pack("{s:s,s:O}", "name", tool, "arguments", input);
	_cleanup_json_ json_t *ans = request(s, "tools/call", params, deadline, why, sizeof(why));
	if (!ans) {
		char line[256];
		snprintf(line, sizeof(line), "the MCP server %s was stopped: %s (limit %u s)",
		         s->name, why, set->call_ms / 1000);
		stop(s, line);
		tool_output_error(out, "error: %s", line);
		return;
	}
	json_t *err = json_object_get(ans, "error");
	if (err) {
		tool_output_error(out, "error: %.300s", json_get_str(err, "message") ?: "refused");
		return;
	}
	json_t *res = json_object_get(ans, "result");
	json_t *c;
	json_array_foreach(json_object_get(res, "content"), i, c)
	{
		const char *type = json_get_str(c, "type") ?: "";
		if (i)
			tool_output_add(out, "\n", 1);
		if (strcmp(type, "text") == 0) {
			json_t *tx = json_object_get(c, "text");
			tool_output_add(out, json_string_value(tx) ?: "", json_string_length(tx));
		} else {
			tool_output_printf(out, "[%.32s content not shown]", type);
		}
	}
	out->is_error = json_is_true(json_object_get(res, "isError"));
}
