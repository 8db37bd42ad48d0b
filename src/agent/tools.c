/*
 * tools.c: the tool table (see tools.h), schema checking, dispatch, and the capped output
 * every tool writes into.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "log.h"
#include "text.h"
#include "tools.h"

/* ---- output ---- */

void
tool_output_init(struct tool_output *o)
{
	dbuf_init(&o->buf, TOOL_OUTPUT_MAX);
	o->dropped = 0;
	o->is_error = false;
}

void
tool_output_done(struct tool_output *o)
{
	dbuf_done(&o->buf);
}

void
tool_output_add(struct tool_output *o, const char *s, size_t len)
{
	/* Room is kept for the truncation marker. */
	if (o->dropped) {
		o->dropped += len;
		return;
	}
	size_t room = TOOL_OUTPUT_MAX - 128 - o->buf.len;
	if (len > room) {
		(void)dbuf_append(&o->buf, s, room);
		o->dropped += len - room;
		return;
	}
	(void)dbuf_append(&o->buf, s, len);
}

void
tool_output_printf(struct tool_output *o, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		tool_output_add(o, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

void
tool_output_error(struct tool_output *o, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	dbuf_reset(&o->buf);
	o->dropped = 0;
	o->is_error = true;
	tool_output_add(o, buf, strlen(buf));
}

/* A result is a JSON string, which must be valid UTF-8 (and a C string here): output that is
 * not (a binary file read, `cat` of an image) was a result jansson refused, lost from the
 * conversation, and a transcript the next run set aside as corrupt. Mostly binary output (a
 * quarter of its bytes or more not text) is said to be so, with its size; otherwise each bad
 * byte becomes U+FFFD, cut back to a whole character if that outgrows the cap. */
static void
make_text(struct tool_output *o)
{
	size_t bad, len = o->buf.len;
	size_t need = text_utf8_repair(dbuf_str(&o->buf), len, NULL, &bad);
	if (!bad)
		return;
	if (bad * 4 >= len) {
		char marker[96];
		snprintf(marker, sizeof(marker), "[binary output, %llu bytes]",
		         (unsigned long long)(len + o->dropped));
		dbuf_reset(&o->buf);
		o->dropped = 0;
		(void)dbuf_puts(&o->buf, marker);
		return;
	}
	_cleanup_free_ char *fixed = malloc(need + 1);
	if (!fixed) {
		dbuf_reset(&o->buf);
		o->dropped = 0;
		(void)dbuf_puts(&o->buf, "[output not shown: out of memory]");
		return;
	}
	(void)text_utf8_repair(dbuf_str(&o->buf), len, fixed, &bad);
	size_t keep = need, room = TOOL_OUTPUT_MAX - 128;
	if (keep > room) {
		keep = room;
		while (keep > 0 && ((unsigned char)fixed[keep] & 0xC0) == 0x80)
			keep--;
		o->dropped += need - keep; /* counted in bytes of the repaired text */
	}
	dbuf_reset(&o->buf);
	(void)dbuf_append(&o->buf, fixed, keep);
}

const char *
tool_output_finish(struct tool_output *o)
{
	make_text(o);
	if (o->dropped) {
		char marker[128];
		int n = snprintf(marker, sizeof(marker),
		                 "\n[output truncated: %llu more bytes not shown]",
		                 (unsigned long long)o->dropped);
		(void)dbuf_append(&o->buf, marker, (size_t)n);
		o->dropped = 0;
	}
	return dbuf_str(&o->buf);
}

/* ---- the table ---- */

enum tool_kind {
	TOOL_LOCAL, /* runs here, inside the sandbox */
	TOOL_HOST,  /* a request to the daemon over the IPC socket (none yet) */
};

struct tool {
	const char *name;
	enum tool_kind kind;
	const char *description;
	const char *schema; /* JSON Schema of the input, as text */
	void (*run)(const struct tool_env *env, json_t *input, struct tool_output *out);
	const char *summary_arg; /* the argument shown in one-line summaries */
};

static const struct tool tools[] = {
    {"bash", TOOL_LOCAL,
     "Run a shell command (/bin/sh -c) in the workspace and return its combined stdout and "
     "stderr (capped) and exit status. The command runs in a sandbox with no network except "
     "the HTTP(S) proxy; it is killed with its whole process group after the timeout, and "
     "anything it started with & is killed when it ends. For a server or other long job "
     "set run_in_background: the call returns at once with the job's pid and log file "
     "(read it with cat), and the job runs until it exits or the run ends (at most 8).",
     "{\"type\":\"object\",\"properties\":{"
     "\"command\":{\"type\":\"string\",\"description\":\"the shell command\"},"
     "\"timeout\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":600,"
     "\"description\":\"seconds before it is killed (default 120)\"},"
     "\"run_in_background\":{\"type\":\"boolean\","
     "\"description\":\"start it as a background job and return at once\"}},"
     "\"required\":[\"command\"],\"additionalProperties\":false}",
     tool_bash, "command"},
    {"read", TOOL_LOCAL,
     "Read a text file, with line numbers. offset is the first line (1-based), limit the "
     "number of lines (default 2000).",
     "{\"type\":\"object\",\"properties\":{"
     "\"path\":{\"type\":\"string\"},"
     "\"offset\":{\"type\":\"integer\",\"minimum\":1},"
     "\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100000}},"
     "\"required\":[\"path\"],\"additionalProperties\":false}",
     tool_read, "path"},
    {"write", TOOL_LOCAL,
     "Write content to a file, replacing it if it exists; missing parent folders are made.",
     "{\"type\":\"object\",\"properties\":{"
     "\"path\":{\"type\":\"string\"},\"content\":{\"type\":\"string\"}},"
     "\"required\":[\"path\",\"content\"],\"additionalProperties\":false}",
     tool_write, "path"},
    {"edit", TOOL_LOCAL,
     "Replace old_string with new_string in a file. old_string must occur exactly once "
     "unless replace_all is true.",
     "{\"type\":\"object\",\"properties\":{"
     "\"path\":{\"type\":\"string\"},\"old_string\":{\"type\":\"string\"},"
     "\"new_string\":{\"type\":\"string\"},\"replace_all\":{\"type\":\"boolean\"}},"
     "\"required\":[\"path\",\"old_string\",\"new_string\"],\"additionalProperties\":false}",
     tool_edit, "path"},
    {"glob", TOOL_LOCAL,
     "List files whose path (relative to path, default the workspace) matches a glob "
     "pattern; ** matches any number of folders.",
     "{\"type\":\"object\",\"properties\":{"
     "\"pattern\":{\"type\":\"string\"},\"path\":{\"type\":\"string\"}},"
     "\"required\":[\"pattern\"],\"additionalProperties\":false}",
     tool_glob, "pattern"},
    {"grep", TOOL_LOCAL,
     "Search file contents for a regular expression (POSIX extended) under path (default "
     "the workspace); glob limits which files; context adds lines around each match.",
     "{\"type\":\"object\",\"properties\":{"
     "\"pattern\":{\"type\":\"string\"},\"path\":{\"type\":\"string\"},"
     "\"glob\":{\"type\":\"string\"},"
     "\"case\":{\"type\":\"string\",\"enum\":[\"sensitive\",\"insensitive\"]},"
     "\"context\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":10}},"
     "\"required\":[\"pattern\"],\"additionalProperties\":false}",
     tool_grep, "pattern"},
    {"web_fetch", TOOL_LOCAL,
     "Fetch a web page (http or https) through the egress proxy and return it as text. Only "
     "hosts on the allowlist are reachable.",
     "{\"type\":\"object\",\"properties\":{"
     "\"url\":{\"type\":\"string\"}},"
     "\"required\":[\"url\"],\"additionalProperties\":false}",
     tool_web_fetch, "url"},
    /* Host actions: requests to the daemon, which decides (src/daemon/hostact.c). */
    {"send_message", TOOL_HOST,
     "Send a message to this group's chat now (or, from the main group only, to another "
     "group's chat).",
     "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"},"
     "\"group\":{\"type\":\"string\"}},\"required\":[\"text\"],"
     "\"additionalProperties\":false}",
     NULL, "text"},
    {"send_file", TOOL_HOST,
     "Send a file from the workspace to this group's chat (or, from the main group, "
     "another's).",
     "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"},"
     "\"group\":{\"type\":\"string\"}},\"required\":[\"path\"],"
     "\"additionalProperties\":false}",
     NULL, "path"},
    {"schedule_task", TOOL_HOST,
     "Schedule a prompt to run later in this group: give exactly one of cron (\"0 9 * * *\", "
     "in the group's time zone), every_seconds, or at (\"2026-11-27T09:00:00Z\"). The answer "
     "goes to the group's chat.",
     "{\"type\":\"object\",\"properties\":{\"prompt\":{\"type\":\"string\"},"
     "\"cron\":{\"type\":\"string\"},\"every_seconds\":{\"type\":\"integer\","
     "\"minimum\":1},\"at\":{\"type\":\"string\"},\"group\":{\"type\":\"string\"}},"
     "\"required\":[\"prompt\"],\"additionalProperties\":false}",
     NULL, "prompt"},
    {"install_packages", TOOL_HOST,
     "Ask the host to add packages to this group's environment: a space-separated list of "
     "apt:NAME, npm:NAME, pip:NAME. The host builds them; they are there from the next run "
     "on, not in this one.",
     "{\"type\":\"object\",\"properties\":{\"packages\":{\"type\":\"string\"}},"
     "\"required\":[\"packages\"],\"additionalProperties\":false}",
     NULL, "packages"},
    {"list_tasks", TOOL_HOST, "List this group's scheduled tasks.",
     "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}", NULL, NULL},
    {"pause_task", TOOL_HOST, "Pause a scheduled task of this group.",
     "{\"type\":\"object\",\"properties\":{\"task_id\":{\"type\":\"integer\","
     "\"minimum\":1}},\"required\":[\"task_id\"],\"additionalProperties\":false}",
     NULL, NULL},
    {"resume_task", TOOL_HOST, "Resume a paused task of this group.",
     "{\"type\":\"object\",\"properties\":{\"task_id\":{\"type\":\"integer\","
     "\"minimum\":1}},\"required\":[\"task_id\"],\"additionalProperties\":false}",
     NULL, NULL},
    {"cancel_task", TOOL_HOST, "Cancel a scheduled task of this group for good.",
     "{\"type\":\"object\",\"properties\":{\"task_id\":{\"type\":\"integer\","
     "\"minimum\":1}},\"required\":[\"task_id\"],\"additionalProperties\":false}",
     NULL, NULL},
};

/* tools_grant()'s list, NULL: every tool. */
static char granted[512];
static bool granted_set;

int
tools_grant(const char *csv)
{
	if (strlen(csv) >= sizeof(granted))
		return -EINVAL;
	snprintf(granted, sizeof(granted), ",%s", csv);
	granted_set = true;
	return 0;
}

static bool
tool_granted(const char *name)
{
	if (!granted_set)
		return true;
	size_t n = strlen(name);
	for (const char *p = strstr(granted, name); p; p = strstr(p + 1, name))
		if (p[-1] == ',' && (p[n] == ',' || p[n] == '\0'))
			return true;
	return false;
}

static const struct tool *
tool_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(tools); i++)
		if (strcmp(tools[i].name, name) == 0)
			return &tools[i];
	return NULL;
}

bool
tools_is_host(const char *name)
{
	const struct tool *t = tool_find(name ? name : "");
	return t && t->kind == TOOL_HOST;
}

static json_t *
schemas(bool with_local, bool with_host)
{
	json_t *out = json_array();
	for (size_t i = 0; out && i < ARRAY_SIZE(tools); i++) {
		if ((tools[i].kind == TOOL_HOST && !with_host) ||
		    (tools[i].kind == TOOL_LOCAL && !with_local) || !tool_granted(tools[i].name))
			continue;
		json_t *schema = json_loads(tools[i].schema, 0, NULL);
		if (!schema) { /* a typo in the table above; the unit test catches it */
			json_decref(out);
			return NULL;
		}
		json_array_append_new(out, json_pack("{s:s,s:s,s:o}", "name", tools[i].name,
		                                     "description", tools[i].description,
		                                     "input_schema", schema));
	}
	return out;
}

json_t *
tools_schemas(bool with_host)
{
	return schemas(true, with_host);
}

json_t *
tools_host_schemas(void)
{
	return schemas(false, true);
}

/* The subset of JSON Schema the table uses: object with typed properties (string, integer
 * with minimum/maximum, boolean, string enum), required, no additional properties. */
static int
check_value(const char *key, json_t *v, json_t *prop, char *why, size_t size)
{
	const char *type = json_get_str(prop, "type");
	if (!type)
		return 0;
	if (strcmp(type, "string") == 0) {
		if (!json_is_string(v))
			return snprintf(why, size, "argument '%s' must be a string", key), -EINVAL;
		json_t *e = json_object_get(prop, "enum");
		if (e) {
			size_t i;
			json_t *opt;
			json_array_foreach(e, i, opt)
			{
				if (json_equal(opt, v))
					return 0;
			}
			return snprintf(why, size, "argument '%s' must be one of the listed values",
			                key),
			       -EINVAL;
		}
		return 0;
	}
	if (strcmp(type, "integer") == 0) {
		if (!json_is_integer(v))
			return snprintf(why, size, "argument '%s' must be an integer", key),
			       -EINVAL;
		json_int_t x = json_integer_value(v);
		json_t *min = json_object_get(prop, "minimum"),
		       *max = json_object_get(prop, "maximum");
		if ((min && x < json_integer_value(min)) || (max && x > json_integer_value(max)))
			return snprintf(why, size, "argument '%s' is out of range", key), -EINVAL;
		return 0;
	}
	if (strcmp(type, "boolean") == 0 && !json_is_boolean(v))
		return snprintf(why, size, "argument '%s' must be true or false", key), -EINVAL;
	return 0;
}

int
tools_check(const char *name, json_t *input, const char *invalid_input, char *why, size_t why_size)
{
	const struct tool *t = tool_find(name ? name : "");
	if (!t)
		return snprintf(why, why_size, "there is no tool named '%.64s'", name ? name : ""),
		       -ENOENT;
	if (!tool_granted(t->name))
		return snprintf(why, why_size, "the tool '%s' is not granted to this group",
		                t->name),
		       -EPERM;
	if (invalid_input || !json_is_object(input))
		return snprintf(why, why_size,
		                "the arguments are not a JSON object; send them as one, e.g. "
		                "{\"%s\": ...}",
		                t->summary_arg ? t->summary_arg : "..."),
		       -EINVAL;
	_cleanup_json_ json_t *schema = json_loads(t->schema, 0, NULL);
	json_t *props = json_object_get(schema, "properties");
	const char *key;
	json_t *v;
	void *tmp;
	int ignored = 0;
	/* An argument the schema does not name is dropped, as the real APIs do (Claude Code's
	 * models add a "description" to bash calls); the count goes back so that the caller
	 * can log it. Only named arguments reach a handler, and each is type-checked. */
	json_object_foreach_safe(input, tmp, key, v)
	{
		json_t *prop = json_object_get(props, key);
		if (!prop) {
			if (ignored == 0)
				snprintf(why, why_size, "ignored unknown argument '%.64s' for %s",
				         key, name);
			ignored++;
			json_object_del(input, key);
			continue;
		}
		int r = check_value(key, v, prop, why, why_size);
		if (r < 0)
			return r;
	}
	size_t i;
	json_t *req;
	json_array_foreach(json_object_get(schema, "required"), i, req)
	{
		if (!json_object_get(input, json_string_value(req)))
			return snprintf(why, why_size, "missing argument '%s' for %s",
			                json_string_value(req), name),
			       -EINVAL;
	}
	return ignored;
}

void
tools_run(const struct tool_env *env, const char *name, json_t *input, const char *invalid_input,
          struct tool_output *out)
{
	char why[256];
	int r = tools_check(name, input, invalid_input, why, sizeof(why));
	if (r < 0) {
		tool_output_error(out, "error: %s", why);
		return;
	}
	if (r > 0)
		log_info("%s (%d in all)", why, r);
	const struct tool *t = tool_find(name);
	if (t->kind == TOOL_HOST) {
		if (!env->host_socket) {
			tool_output_error(out,
			                  "error: host actions are not available in this sandbox "
			                  "(it was not started by the daemon)");
			return;
		}
		tool_host_call(env, name, input, out);
		return;
	}
	t->run(env, input, out);
}

void
tools_summary(const char *name, json_t *input, char *buf, size_t size)
{
	const struct tool *t = tool_find(name ? name : "");
	const char *arg = t && t->summary_arg ? json_get_str(input, t->summary_arg) : NULL;
	char one[160];
	size_t n = 0;
	/* One line, printable, short. */
	for (const char *p = arg ? arg : ""; *p && n + 4 < sizeof(one); p++)
		one[n++] = (*p == '\n' || *p == '\t') ? ' ' : ((unsigned char)*p < 0x20 ? '?' : *p);
	one[n] = '\0';
	if (arg && strlen(arg) > n)
		snprintf(one + n, sizeof(one) - n, "...");
	snprintf(buf, size, "%.64s%s%s", name ? name : "?", arg ? ": " : "", arg ? one : "");
}
