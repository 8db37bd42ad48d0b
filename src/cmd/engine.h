/*
 * engine.h: other agents (Claude Code, Codex) as the engine of `clawbox ask --engine`, run in
 * the same fresh sandbox as ours, with the same proxy, placeholders and mounts.
 *
 * engine_setup() finds the engine's package on the host, mounts it read-only, lays out its
 * state in the session folder (so that the next ask continues the conversation) and writes
 * the command line and environment into the sandbox spec. engine_translate() turns one line
 * of the engine's structured output (claude -p --output-format stream-json, codex exec
 * --json) into our own events (src/agent/events.h), so the page, chat, Telegram, audit and
 * usage see every engine alike. Both run on the host side, in ask; nothing here trusts what
 * the engine says beyond rendering it: the sandbox and the proxy are the boundary.
 */
#ifndef CLAWBOX_ENGINE_H
#define CLAWBOX_ENGINE_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "sandbox.h"

enum engine_kind {
	ENGINE_CLAWBOX,
	ENGINE_CLAUDE_CODE,
	ENGINE_CODEX,
};

#define ENGINE_MAX_ARGS 16  /* extra_args */
#define ENGINE_ARG_MAX  512 /* bytes of one */

/* 0, or -EINVAL for a name that is none of clawbox, claude-code, codex. */
int engine_parse(const char *name, enum engine_kind *ret);
const char *engine_name(enum engine_kind k);

/* What ask decided; engine_setup reads it. Paths are the host's unless said otherwise. */
struct engine_request {
	enum engine_kind kind;
	const char *session;            /* the session folder, mounted at state_inside */
	const char *state_inside;       /* "/state" */
	const char *workspace;          /* host path of the workspace */
	const char *inside;             /* where it is in the sandbox (the working folder) */
	const char *global_memory;      /* host path of the shared memory file, or NULL */
	const char *self_inside;        /* this clawbox inside, for mcp-host */
	const char *host_socket_inside; /* or NULL: no host actions */
	const char *model;              /* or NULL: the engine's default */
	const char *allowed_tools;      /* comma-separated, or NULL */
	const char *extra[ENGINE_MAX_ARGS];
	size_t n_extra;
	bool fresh, rw;
};

/* Strings the sandbox's argv points into; lives as long as the spec. */
struct engine_state {
	char exe[PATH_MAX];
	char mcp_config[1024];
	char allowed[1024];
	const char *argv[64];
};

/* For `clawbox run --agent`: the package mounted, the placeholder key, model address and
 * quiet settings in the environment; argv[0] "claude" or "codex" becomes the engine inside.
 * 0 or -errno (logged). */
int engine_run_setup(enum engine_kind kind, struct engine_state *st, struct sandbox_spec *spec,
                     char **argv);

/* Translation state for one run. */
struct engine_xlate {
	enum engine_kind kind;
	bool delta_seen; /* text already streamed for the message under way */
	unsigned turns;
	unsigned long long in, out, cache_read, cache_write;
	bool done;
	json_t *done_ev; /* the done event, held for engine_finish */
	/* Codex reports the whole thread's tokens, not the run's: the totals at the end of the
	 * last run are kept in the session folder (usage_path) and subtracted. */
	char usage_path[PATH_MAX];
	unsigned long long base[3], total[3]; /* input, cached input, output */
};

/* Sets up spec (mounts, environment, argv, workdir) and x. 0, or -errno after logging one
 * line that says exactly what is missing (-ENOENT: the engine is not installed). */
int engine_setup(const struct engine_request *req, struct engine_state *st, struct engine_xlate *x,
                 struct sandbox_spec *spec);

/* One line of the engine's output: calls emit with each of our events it makes (borrowed).
 * Lines that are not the engine's JSON are dropped. */
void engine_translate(struct engine_xlate *x, const char *line, size_t len,
                      void (*emit)(void *ctx, json_t *ev), void *ctx);

/* At the engine's end: the done event (its own result's, or an error when it exited non-zero
 * without one), with peak_rss_kb (the largest process of the run), always last. */
void engine_finish(struct engine_xlate *x, int exit_code, long peak_rss_kb,
                   void (*emit)(void *ctx, json_t *ev), void *ctx);

#endif
