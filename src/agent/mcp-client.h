/*
 * mcp-client.h: our agent as an MCP client. The servers a group lists (`--mcp-server
 * 'NAME=CMD ARGS'`) run as the agent's children inside its sandbox, over stdio (JSON-RPC 2.0,
 * one message per line); their tools are offered to the model as mcp__NAME__TOOL with the
 * schemas they declare. Everything a server says is bounded: how many tools, how large a
 * schema, a reply line and a call's arguments, how long it may take to start and to answer.
 * A server past a limit is killed (its whole process group) and its tools answer that it was
 * stopped; the agent goes on. Each call is an ordinary tool call of the agent, so it is in the
 * events (tool_call, tool_result) and the transcript like any other.
 */
#ifndef CLAWBOX_MCP_CLIENT_H
#define CLAWBOX_MCP_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "dbuf.h"
#include "tools.h"

#define MCP_MAX_SERVERS 8
#define MCP_MAX_TOOLS   64          /* over all servers */
#define MCP_SCHEMA_MAX  (16 * 1024) /* one tool's input schema, as JSON */
#define MCP_ARGS_MAX    (64 * 1024) /* one call's arguments, as JSON */
#define MCP_LINE_MAX    (1 << 20)   /* one message from a server */
#define MCP_START_MS    20000       /* initialize and tools/list, each */
#define MCP_CALL_MS     60000       /* one call, unless the invocation ends sooner */
#define MCP_NAME_MAX    24

struct mcp_server {
	char name[MCP_NAME_MAX];
	char *argv[33]; /* owned */
	pid_t pid;      /* 0: not running (never started, or stopped) */
	int to, from;   /* its stdin, its stdout */
	struct dbuf in; /* what it sent that is not a whole line yet */
	int64_t next_id;
	char why[160]; /* why it was stopped */
};

struct mcp_set {
	struct mcp_server s[MCP_MAX_SERVERS];
	size_t n;
	unsigned call_ms;
	json_t *tools; /* [{"name", "description", "input_schema"}], ours to offer; owned */
};

void mcp_set_init(struct mcp_set *set);
/* Adds "NAME=CMD ARG..." (split at spaces; no shell). 0, or -EINVAL/-E2BIG with why. */
int mcp_set_add(struct mcp_set *set, const char *spec, char *why, size_t why_size);
/* Starts each server and lists its tools; a server that fails is stopped and reported
 * through notice (one line each), the others go on. */
void mcp_set_start(struct mcp_set *set, int64_t deadline_ms, void (*notice)(const char *line));
/* Kills every server and frees everything. */
void mcp_set_done(struct mcp_set *set);

/* Whether name is an MCP tool's (mcp__...). */
bool mcp_is_tool(const char *name);
/* One call, bounded by the set's call time and deadline_ms. Never fails: problems are
 * is_error output. */
void mcp_set_call(struct mcp_set *set, const char *name, json_t *input, int64_t deadline_ms,
                  struct tool_output *out);

#endif
