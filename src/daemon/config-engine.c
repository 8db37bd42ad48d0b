/*
 * config-engine.c: a group's "engine" and "engine_options" (issue 13): which agent answers its
 * messages (ours, "clawbox", the default; "claude-code"; "codex") and that engine's options as
 * data, checked here so that what reaches `clawbox ask --engine` is bounded and well-formed:
 *
 *   "engine": "claude-code",
 *   "engine_options": {"model": "NAME", "allowed_tools": ["Bash", ...],
 *                      "extra_args": ["--flag", "value", ...]}
 *
 * extra_args are strings only (no numbers or objects that a later layer would have to turn
 * into text), at most CONFIG_ENGINE_MAX_ARGS of CONFIG_ENGINE_ARG_MAX bytes. They are passed
 * as separate argv entries, never through a shell; the sandbox is the boundary whatever they
 * say.
 *
 *   "mcp_servers": [{"name": "fs", "command": ["node", "/opt/fs/index.js", "/workspace"]}]
 *
 * MCP servers our agent runs inside the group's sandbox (mcp-client.c): a name (letters,
 * digits, - and _, no "__") and a command line of at most 32 words without spaces (it
 * crosses as one "NAME=CMD ARG..." string, split at spaces inside).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static int
fail(char *why, size_t size, const char *where, const char *what)
{
	snprintf(why, size, "%s.%s", where, what);
	return -EINVAL;
}

/* A string without control characters, of 1..max-1 bytes. */
static bool
plain(json_t *v, size_t max)
{
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= max)
		return false;
	for (const char *p = json_string_value(v); *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	return strlen(json_string_value(v)) == json_string_length(v);
}

int
config_parse_engine(json_t *g, const char *where, struct group_config *out, char *why, size_t size)
{
	json_t *e = json_object_get(g, "engine");
	json_t *o = json_object_get(g, "engine_options");
	snprintf(out->engine, sizeof(out->engine), "clawbox");
	if (e) {
		const char *s = json_string_value(e);
		if (!s || (strcmp(s, "clawbox") != 0 && strcmp(s, "claude-code") != 0 &&
		           strcmp(s, "codex") != 0))
			return fail(why, size, where,
			            "engine: expected \"clawbox\", \"claude-code\" or \"codex\"");
		snprintf(out->engine, sizeof(out->engine), "%s", s);
	}
	json_t *ms = json_object_get(g, "mcp_servers");
	if (ms && strcmp(out->engine, "clawbox") != 0)
		return fail(why, size, where,
		            "mcp_servers: only for our engine (\"clawbox\"); give claude-code's "
		            "and codex's their own through engine_options.extra_args");
	if (ms) {
		size_t i;
		json_t *m;
		if (!json_is_array(ms) || json_array_size(ms) > 8)
			return fail(why, size, where, "mcp_servers: expected a list of at most 8");
		json_array_foreach(ms, i, m)
		{
			json_t *name = json_object_get(m, "name"),
			       *cmd = json_object_get(m, "command");
			const char *n = json_string_value(name);
			if (!json_is_object(m) || json_object_size(m) != 2 || !plain(name, 24) ||
			    strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567"
			              "89_-") != strlen(n) ||
			    strstr(n, "__") || !json_is_array(cmd) || json_array_size(cmd) == 0 ||
			    json_array_size(cmd) > 32)
				return fail(
				    why, size, where,
				    "mcp_servers: each {\"name\": NAME, \"command\": [words]}, a "
				    "name of letters, digits, - and _ (no __), 1 to 32 words");
			char line[2048];
			size_t len = (size_t)snprintf(line, sizeof(line), "%s=", n);
			size_t k;
			json_t *w;
			json_array_foreach(cmd, k, w)
			{
				if (!plain(w, 512) || strchr(json_string_value(w), ' ') ||
				    len + json_string_length(w) + 2 > sizeof(line))
					return fail(
					    why, size, where,
					    "mcp_servers: command words are strings without "
					    "spaces, 2 KiB in all");
				len += (size_t)snprintf(line + len, sizeof(line) - len, "%s%s",
				                        k ? " " : "", json_string_value(w));
			}
			out->mcp_servers[out->n_mcp_servers] = strdup(line);
			if (!out->mcp_servers[out->n_mcp_servers])
				return -ENOMEM;
			out->n_mcp_servers++;
		}
	}
	if (!o)
		return 0;
	if (strcmp(out->engine, "clawbox") == 0)
		return fail(why, size, where,
		            "engine_options: only for \"engine\": \"claude-code\" or \"codex\"");
	if (!json_is_object(o))
		return fail(why, size, where, "engine_options: expected an object");
	const char *key;
	json_t *v;
	json_object_foreach(o, key, v)
	{
		if (strcmp(key, "model") == 0) {
			if (!plain(v, sizeof(out->engine_model)))
				return fail(why, size, where,
				            "engine_options.model: expected a model name");
			snprintf(out->engine_model, sizeof(out->engine_model), "%s",
			         json_string_value(v));
		} else if (strcmp(key, "allowed_tools") == 0) {
			size_t i, len = 0;
			json_t *t;
			if (strcmp(out->engine, "claude-code") != 0)
				return fail(why, size, where,
				            "engine_options.allowed_tools: only for claude-code");
			if (!json_is_array(v) || json_array_size(v) > 64)
				return fail(
				    why, size, where,
				    "engine_options.allowed_tools: expected a list of at most "
				    "64 tool names");
			json_array_foreach(v, i, t)
			{
				if (!plain(t, 128) || strchr(json_string_value(t), ','))
					return fail(
					    why, size, where,
					    "engine_options.allowed_tools: each a tool name "
					    "without ','");
				size_t n = json_string_length(t);
				if (len + n + 2 > sizeof(out->engine_allowed))
					return fail(
					    why, size, where,
					    "engine_options.allowed_tools: too long in all");
				if (len)
					out->engine_allowed[len++] = ',';
				memcpy(out->engine_allowed + len, json_string_value(t), n + 1);
				len += n;
			}
		} else if (strcmp(key, "extra_args") == 0) {
			size_t i;
			json_t *a;
			if (!json_is_array(v) || json_array_size(v) > CONFIG_ENGINE_MAX_ARGS)
				return fail(
				    why, size, where,
				    "engine_options.extra_args: expected a list of at most 16 "
				    "strings");
			json_array_foreach(v, i, a)
			{
				if (!plain(a, CONFIG_ENGINE_ARG_MAX))
					return fail(
					    why, size, where,
					    "engine_options.extra_args: each a string of 1 to "
					    "511 bytes, no control characters");
				out->engine_args[out->n_engine_args] = strdup(json_string_value(a));
				if (!out->engine_args[out->n_engine_args])
					return -ENOMEM;
				out->n_engine_args++;
			}
		} else {
			snprintf(why, size, "%s.engine_options.%s: unknown key", where, key);
			return -EINVAL;
		}
	}
	return 0;
}
