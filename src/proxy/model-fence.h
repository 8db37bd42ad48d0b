/*
 * model-fence.h: what may be asked of the model API with the key the proxy adds. The key
 * can do far more than run a model (list and delete files, run the provider's own web
 * fetches, connect the provider to MCP servers anywhere: egress that no allowlist of ours
 * sees). So only the APIs' own endpoints pass:
 *
 *   POST /v1/messages, /v1/messages/count_tokens   (Anthropic Messages)
 *   POST /v1/chat/completions, /v1/responses        (OpenAI)
 *   GET  /v1/models, /v1/models/...
 *
 * (under the configured base URL, which the proxy prefixes), with a query string allowed and
 * the path in the one spelling rules_path_check() accepts: libcurl would resolve a dot
 * segment, so "/../../x" under a base URL with a path would reach "/x" on the same host.
 *
 * A request body must be one JSON object, and may not ask the provider to act for the
 * agent: Anthropic's "mcp_servers", a tool whose "type" is anything but a plain custom tool
 * (server tools: web_search_*, web_fetch_*, code_execution_*, ...), OpenAI's web_search,
 * mcp, file_search, code_interpreter (any non-"function" tool type) and
 * "web_search_options", or an "anthropic-beta" value not known to be harmless: each is
 * refused unless the operator allowed it by name (--model-allow-tool NAME, where NAME is the
 * tool's type with or without its date suffix, "mcp" for mcp_servers, or the beta value).
 */
#ifndef CLAWBOX_MODEL_FENCE_H
#define CLAWBOX_MODEL_FENCE_H

#include <stdbool.h>
#include <stddef.h>

#include "request.h"

#define MODEL_ALLOW_TOOLS_MAX 32

struct model_fence {
	const char *allow[MODEL_ALLOW_TOOLS_MAX]; /* borrowed, for the proxy's life */
	size_t n_allow;
};

/* Adds a name to the fence's allowed tools. -E2BIG when full, -EINVAL when empty. */
int model_fence_allow(struct model_fence *f, const char *name);

/* Judges the method, path and headers. 0, or -EACCES with the reason in reason[size]. */
int model_fence_head(const struct model_fence *f, const struct request *r, char *reason,
                     size_t size);

/* Judges a complete request body (the head passed). 0, or -EACCES with the reason. */
int model_fence_body(const struct model_fence *f, const struct request *r, const char *body,
                     size_t len, char *reason, size_t size);

#endif
