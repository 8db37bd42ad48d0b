/*
 * model-fence.c: see model-fence.h. The body is parsed with jansson (it is already bounded
 * by the proxy's body cap); only the top level and the tool list are looked at.
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "macro.h"
#include "model-fence.h"
#include "rules.h"

int
model_fence_allow(struct model_fence *f, const char *name)
{
	if (!name[0])
		return -EINVAL;
	if (f->n_allow >= MODEL_ALLOW_TOOLS_MAX)
		return -E2BIG;
	f->allow[f->n_allow++] = name;
	return 0;
}

/* name allowed as it is, or without a "_20250305"-style suffix ("web_search_20250305" is
 * allowed by "web_search"). */
static bool
fence_allows(const struct model_fence *f, const char *name)
{
	size_t n = strlen(name), base = n;
	while (base > 0 && isdigit((unsigned char)name[base - 1]))
		base--;
	if (base == n || base == 0 || name[base - 1] != '_')
		base = n;
	else
		base--;
	for (size_t i = 0; i < f->n_allow; i++) {
		const char *a = f->allow[i];
		if (strcmp(a, name) == 0 || (strlen(a) == base && strncmp(a, name, base) == 0))
			return true;
	}
	return false;
}

/* Betas that change how the model answers, not what the provider does on our behalf. */
static bool
beta_harmless(const char *v, size_t len)
{
	static const char *const known[] = {
	    "prompt-caching-2024-07-31",
	    "token-efficient-tools-2025-02-19",
	    "interleaved-thinking-2025-05-14",
	    "output-128k-2025-02-19",
	    "fine-grained-tool-streaming-2025-05-14",
	    "extended-cache-ttl-2025-04-11",
	    "context-1m-2025-08-07",
	    "context-management-2025-06-27",
	    "claude-code-20250219",
	    "max-tokens-3-5-sonnet-2024-07-15",
	    /* Claude Code 2.1 sends these even with CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS=1:
	     * the system prompt mid-conversation, the reasoning effort (issue 13) */
	    "mid-conversation-system-2026-04-07",
	    "effort-2025-11-24",
	};
	for (size_t i = 0; i < ARRAY_SIZE(known); i++)
		if (strlen(known[i]) == len && strncmp(known[i], v, len) == 0)
			return true;
	return false;
}

static int __attribute__((format(printf, 3, 4)))
refuse(char *reason, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, size, fmt, ap);
	va_end(ap);
	for (char *p = reason; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return -EACCES;
}

int
model_fence_head(const struct model_fence *f, const struct request *r, char *reason, size_t size)
{
	static const struct {
		const char *method, *path;
		bool prefix;
	} endpoints[] = {
	    {"POST", "/v1/messages", false},
	    {"POST", "/v1/messages/count_tokens", false},
	    {"POST", "/v1/chat/completions", false},
	    {"POST", "/v1/responses", false},
	    {"GET", "/v1/models", false},
	    {"GET", "/v1/models/", true},
	};
	const char *why;
	if (rules_path_check(r->path, &why) < 0)
		return refuse(reason, size, "model API: %s", why);
	size_t plen = strcspn(r->path, "?#");
	bool ok = false;
	for (size_t i = 0; i < ARRAY_SIZE(endpoints) && !ok; i++) {
		size_t n = strlen(endpoints[i].path);
		ok = strcmp(r->method, endpoints[i].method) == 0 &&
		     (endpoints[i].prefix
		          ? plen > n && strncmp(r->path, endpoints[i].path, n) == 0
		          : plen == n && strncmp(r->path, endpoints[i].path, n) == 0);
	}
	if (!ok) {
		char what[160];
		snprintf(what, sizeof(what), "%s %.*s", r->method, (int)(plen < 120 ? plen : 120),
		         r->path);
		return refuse(reason, size,
		              "model API: %s is not one of the model endpoints (POST /v1/messages, "
		              "/v1/chat/completions, /v1/responses; GET /v1/models)",
		              what);
	}
	for (size_t i = 0; i < r->n_headers; i++) {
		if (strcasecmp(request_header_name(r, i), "anthropic-beta") != 0)
			continue;
		const char *v = request_header_value(r, i);
		while (*v) {
			while (*v == ' ' || *v == ',')
				v++;
			size_t n = strcspn(v, ", ");
			if (n == 0)
				break;
			char one[128];
			snprintf(one, sizeof(one), "%.*s", (int)(n < 120 ? n : 120), v);
			if (!beta_harmless(v, n) && (n >= sizeof(one) || !fence_allows(f, one)))
				return refuse(reason, size,
				              "model API: anthropic-beta %s is not allowed "
				              "(model.allow_tools)",
				              one);
			v += n;
		}
	}
	return 0;
}

static int
check_tools(const struct model_fence *f, json_t *tools, char *reason, size_t size, int depth)
{
	size_t i;
	json_t *t;
	if (!tools)
		return 0;
	if (!json_is_array(tools))
		return refuse(reason, size, "model API: %s must be a list", "\"tools\"");
	json_array_foreach(tools, i, t)
	{
		json_t *type = json_object_get(t, "type");
		if (!type)
			continue; /* a custom tool: the agent runs it, inside */
		const char *name = json_string_value(type);
		if (!name)
			return refuse(reason, size, "model API: %s",
			              "a tool's type is not a string");
		if (strcmp(name, "custom") == 0 || strcmp(name, "function") == 0)
			continue;
		/* Codex groups client-run tools (an MCP server's, its subagents') in a namespace:
		 * judged by what it holds, one level deep (issue 13). */
		if (strcmp(name, "namespace") == 0 && depth == 0) {
			int r = check_tools(f, json_object_get(t, "tools"), reason, size, 1);
			if (r < 0)
				return r;
			continue;
		}
		if (!fence_allows(f, name))
			return refuse(reason, size,
			              "model API: the server-side tool %s is not allowed "
			              "(model.allow_tools)",
			              name);
	}
	return 0;
}

int
model_fence_body(const struct model_fence *f, const struct request *r, const char *body, size_t len,
                 char *reason, size_t size)
{
	if (strcmp(r->method, "GET") == 0)
		return len == 0 ? 0 : refuse(reason, size, "model API: %s", "a GET with a body");
	json_error_t err;
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
	int rc = 0;
	if (!json_is_object(j)) {
		rc = refuse(reason, size, "model API: %s", "the body must be one JSON object");
		goto out;
	}
	json_t *mcp = json_object_get(j, "mcp_servers");
	if (mcp && !(json_is_array(mcp) && json_array_size(mcp) == 0) && !fence_allows(f, "mcp")) {
		rc = refuse(reason, size, "model API: %s is not allowed (model.allow_tools)",
		            "mcp_servers");
		goto out;
	}
	if (json_object_get(j, "web_search_options") && !fence_allows(f, "web_search")) {
		rc = refuse(reason, size, "model API: %s is not allowed (model.allow_tools)",
		            "web_search_options");
		goto out;
	}
	rc = check_tools(f, json_object_get(j, "tools"), reason, size, 0);
out:
	json_decref(j);
	return rc;
}
