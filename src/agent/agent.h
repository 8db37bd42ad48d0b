/*
 * agent.h: one agent invocation: the prompt in, the model and tools in a loop, the answer out
 * (as events, see events.h), the conversation kept in the state folder.
 */
#ifndef CLAWBOX_AGENT_H
#define CLAWBOX_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include "client.h"

/* Exit statuses of `clawbox agent` (and so of `clawbox ask`). */
#define AGENT_EXIT_ANSWERED 0
#define AGENT_EXIT_MODEL    1 /* the model API failed (after retries) */
#define AGENT_EXIT_USAGE    2
#define AGENT_EXIT_LIMIT    3 /* a limit ended the invocation */
#define AGENT_EXIT_INTERNAL 4 /* the state folder cannot be used, out of memory */

#define AGENT_MEMORY_MAX  (32 * 1024) /* each memory file in the system prompt */
#define AGENT_PROMPT_MAX  (256 * 1024)
#define AGENT_MEMORY_FILE "AGENTS.md"

struct agent_config {
	struct model_client client;
	const char *state_dir;     /* the transcript lives here (writable) */
	const char *workspace;     /* the working folder; its AGENTS.md is the group's memory */
	const char *global_memory; /* a read-only memory file shared by all groups, or NULL */
	uint64_t max_turns;        /* model requests per invocation */
	uint64_t max_time_ms;
	uint64_t max_total_tokens; /* input + output over the invocation */
	uint64_t context_window;
	unsigned compact_percent; /* compact when the context passes this share of the window */
	unsigned max_retries;
	bool fresh;              /* start a new conversation (the old one is archived) */
	const char *host_socket; /* the daemon's host-action socket, or NULL */
	const char *note;        /* the host's line for the system prompt (what it left out of
	                          * this run), or NULL; at most AGENT_NOTE_MAX bytes */
	const char *mcp_servers[8]; /* "NAME=CMD ARG...": MCP servers run as children */
	size_t n_mcp;
	unsigned mcp_timeout_s; /* one MCP call's limit; 0: the default */
};

#define AGENT_NOTE_MAX 1024

/* Runs the invocation; returns an AGENT_EXIT_* status. Every outcome ends with a done event. */
int agent_run(const struct agent_config *cfg, const char *prompt);

/* The built-in part of the system prompt. */
extern const char agent_base_prompt[];

#endif
