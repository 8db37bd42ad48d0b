/*
 * tools.h: what the agent can do, as one table. Each tool is a name, a description and a JSON
 * schema (data, sent to the model as is) and a handler that runs inside the sandbox. Arguments
 * are checked against the schema before any handler runs: an unknown tool, a missing or
 * mistyped argument, or arguments that were not JSON become an is_error result the model can
 * read and correct, never a crash.
 *
 * Host actions (send_message, schedule_task, ...) will be entries of the same table whose
 * handler sends the checked arguments as a request over the IPC socket the daemon mounts into
 * the sandbox; the daemon decides. The table has a slot for that (TOOL_HOST) so the schema
 * and validation code stay one.
 */
#ifndef CLAWBOX_TOOLS_H
#define CLAWBOX_TOOLS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "dbuf.h"
#include "http.h"

#define TOOL_OUTPUT_MAX    (32 * 1024) /* what one tool result may hold */
#define TOOL_FILE_MAX      (16u << 20) /* files read whole by edit and grep */
#define TOOL_BASH_TIMEOUT  120         /* seconds, default */
#define TOOL_BASH_MAX_TIME 600
#define TOOL_FETCH_MAX     (2u << 20) /* bytes of one fetched page */
#define TOOL_FETCH_TIME_MS 30000
#define TOOL_LIST_MAX      1000 /* glob results, grep matches */

struct tool_env {
	struct http_proxy proxy; /* for web_fetch */
	bool have_proxy;
	const char *host_socket; /* the daemon's host-action socket, or NULL (no host tools) */
	int64_t deadline_ms;     /* the invocation's; tools end by then too */
};

/* A tool's output: capped, and how much was dropped. */
struct tool_output {
	struct dbuf buf;
	uint64_t dropped;
	bool is_error;
};

void tool_output_init(struct tool_output *o);
void tool_output_done(struct tool_output *o);
void tool_output_add(struct tool_output *o, const char *s, size_t len);
void tool_output_printf(struct tool_output *o, const char *fmt, ...) _printf_(2, 3);
/* Replaces the output with one error line. */
void tool_output_error(struct tool_output *o, const char *fmt, ...) _printf_(2, 3);
/* The final text, with a truncation marker when something was dropped. Owned by o. */
const char *tool_output_finish(struct tool_output *o);

/* The schemas for the model: [{"name", "description", "input_schema"}] (new reference). Host
 * actions only with_host (the daemon gave this sandbox a socket). */
json_t *tools_schemas(bool with_host);
/* Only the tools named in csv ("read,grep", or "none") are offered and may run: the group's
 * policy.tools, from the daemon. 0, or -EINVAL when csv is too long. */
int tools_grant(const char *csv);

/* Only the host actions' schemas, for `clawbox mcp-host` (new reference). */
json_t *tools_host_schemas(void);
/* Whether name is a host action (a request to the daemon), not a local tool. */
bool tools_is_host(const char *name);

/* Checks input against the named tool's schema. 0 or the number of unknown arguments that
 * were removed from input (as the real APIs ignore them; the first is named in why), or
 * -ENOENT (no such tool) / -EINVAL (a missing or mistyped argument) with a reason in why.
 * invalid_input (the raw text of arguments that were not a JSON object) or NULL. */
int tools_check(const char *name, json_t *input, const char *invalid_input, char *why,
                size_t why_size);

/* Runs one call: checks, then the handler. Never fails; problems are is_error output. */
void tools_run(const struct tool_env *env, const char *name, json_t *input,
               const char *invalid_input, struct tool_output *out);

/* A one-line summary of a call for humans ("bash: ls -la"), into buf. */
void tools_summary(const char *name, json_t *input, char *buf, size_t size);

/* Handlers (tool-*.c). input has been checked against the schema. */
void tool_bash(const struct tool_env *env, json_t *input, struct tool_output *out);
void tool_read(const struct tool_env *env, json_t *input, struct tool_output *out);
void tool_write(const struct tool_env *env, json_t *input, struct tool_output *out);
void tool_edit(const struct tool_env *env, json_t *input, struct tool_output *out);
void tool_glob(const struct tool_env *env, json_t *input, struct tool_output *out);
void tool_grep(const struct tool_env *env, json_t *input, struct tool_output *out);
void tool_web_fetch(const struct tool_env *env, json_t *input, struct tool_output *out);
/* A host action: the checked arguments to the daemon, its answer back (tool-host.c). */
void tool_host_call(const struct tool_env *env, const char *name, json_t *input,
                    struct tool_output *out);

/* HTML to readable text: tags dropped (script, style and comments with their content),
 * block elements as line breaks, entities decoded, whitespace collapsed. Appends to out. */
void html_to_text(const char *html, size_t len, struct tool_output *out);

#endif
