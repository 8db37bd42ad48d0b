/*
 * mcp-host.c: `clawbox mcp-host`, the host actions (send_message, schedule_task, ...) as an MCP
 * server over stdio, for engines that are not ours (Claude Code through --mcp-config, Codex
 * through its config.toml). It runs inside the run's sandbox, next to the engine, and speaks
 * JSON-RPC 2.0, one message per line: initialize, notifications/initialized, ping, tools/list,
 * tools/call. Each tools/call is checked against the one table of host-action schemas
 * (src/agent/tools.c) and sent over the host-action socket the daemon mounted into this
 * sandbox, exactly as our own agent sends it (tool-host.c); the daemon authorizes from which
 * socket the request came, never from what it says, so this process decides nothing.
 *
 * Bad input gets a JSON-RPC error (parse error, invalid request, unknown method, invalid
 * params), never an exit: a line past MCP_LINE_MAX is answered once and skipped to its end.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "dbuf.h"
#include "fd-util.h"
#include "json-util.h"
#include "log.h"
#include "tools.h"

#define MCP_LINE_MAX        (256 * 1024) /* one JSON-RPC message; a host request is <= 64 KiB */
#define MCP_PROTOCOL        "2025-06-18" /* the newest we speak; older clients are answered in theirs */
#define HOST_SOCKET_DEFAULT "/run/clawbox/host.sock"

/* JSON-RPC 2.0 error codes. */
enum {
	RPC_PARSE_ERROR = -32700,
	RPC_INVALID_REQUEST = -32600,
	RPC_METHOD_NOT_FOUND = -32601,
	RPC_INVALID_PARAMS = -32602,
};

static const char *const known_protocols[] = {"2024-11-05", "2025-03-26", "2025-06-18"};

static int
send_json(json_t *msg)
{
	_cleanup_free_ char *s = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
	if (!s)
		return -ENOMEM;
	if (write_all(1, s, strlen(s)) < 0 || write_all(1, "\n", 1) < 0)
		return -EPIPE;
	return 0;
}

static int
send_result(json_t *id, json_t *result /* stolen */)
{
	_cleanup_json_ json_t *m = json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id",
	                                     id ? id : json_null(), "result", result);
	return send_json(m);
}

static int
send_error(json_t *id, int code, const char *message)
{
	_cleanup_json_ json_t *m =
	    json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", id ? id : json_null(),
	              "error", "code", code, "message", message);
	return send_json(m);
}

/* The host actions as MCP tools: {name, description, inputSchema}. */
static json_t *
tools_list(void)
{
	_cleanup_json_ json_t *schemas = tools_host_schemas();
	json_t *out = json_array();
	size_t i;
	json_t *t;
	json_array_foreach(schemas, i, t)
	{
		json_array_append_new(out,
		                      json_pack("{s:O,s:O,s:O}", "name", json_object_get(t, "name"),
		                                "description", json_object_get(t, "description"),
		                                "inputSchema", json_object_get(t, "input_schema")));
	}
	return json_pack("{s:o}", "tools", out);
}

static int
tools_call(const struct tool_env *env, json_t *id, json_t *params)
{
	const char *name = json_get_str(params, "name");
	json_t *args = json_object_get(params, "arguments");
	if (!name)
		return send_error(id, RPC_INVALID_PARAMS, "tools/call needs params.name");
	/* Only host actions: the local tools (bash, write, ...) are the engine's own business,
	 * and this server must not become a second way to run them. */
	if (!tools_is_host(name)) {
		char msg[160];
		snprintf(msg, sizeof(msg), "unknown tool: %.64s", name);
		return send_error(id, RPC_INVALID_PARAMS, msg);
	}
	_cleanup_json_ json_t *input = args ? json_deep_copy(args) : json_object();
	struct tool_output out;
	tool_output_init(&out);
	/* Arguments that are not an object, missing or mistyped ones: a tool error the model
	 * can read and correct (MCP puts input errors in the result, not in a protocol error). */
	tools_run(env, name, input, json_is_object(input) ? NULL : "(not an object)", &out);
	const char *text = tool_output_finish(&out);
	json_t *result = json_pack("{s:[{s:s,s:s}],s:b}", "content", "type", "text", "text", text,
	                           "isError", out.is_error);
	tool_output_done(&out);
	return send_result(id, result);
}

static int
initialize(json_t *id, json_t *params)
{
	const char *asked = json_get_str(params, "protocolVersion");
	const char *version = MCP_PROTOCOL;
	for (size_t i = 0; asked && i < ARRAY_SIZE(known_protocols); i++)
		if (strcmp(asked, known_protocols[i]) == 0)
			version = known_protocols[i];
	return send_result(id, json_pack("{s:s,s:{s:{s:b}},s:{s:s,s:s}}", "protocolVersion",
	                                 version, "capabilities", "tools", "listChanged", 0,
	                                 "serverInfo", "name", "clawbox-host", "version", "1"));
}

/* One message. Returns < 0 only when stdout is gone. */
static int
handle(const struct tool_env *env, const char *line, size_t len)
{
	json_error_t jerr;
	_cleanup_json_ json_t *msg = json_loadb(line, len, 0, &jerr);
	if (!msg)
		return send_error(NULL, RPC_PARSE_ERROR, "parse error: not JSON");
	if (!json_is_object(msg))
		/* Batches were dropped from MCP in 2025-06-18. */
		return send_error(NULL, RPC_INVALID_REQUEST, "a request is one JSON object");
	json_t *id = json_object_get(msg, "id");
	const char *method = json_get_str(msg, "method");
	json_t *params = json_object_get(msg, "params");
	if (id && !json_is_string(id) && !json_is_integer(id))
		return send_error(NULL, RPC_INVALID_REQUEST, "id must be a string or an integer");
	if (!method || strcmp(json_get_str(msg, "jsonrpc") ?: "", "2.0") != 0) {
		/* A response to us (we never ask) or junk. */
		if (!method && (json_object_get(msg, "result") || json_object_get(msg, "error")))
			return 0;
		return send_error(id, RPC_INVALID_REQUEST, "expected jsonrpc 2.0 and a method");
	}
	if (params && !json_is_object(params))
		return id ? send_error(id, RPC_INVALID_PARAMS, "params must be an object") : 0;
	if (!id) /* notifications (initialized, cancelled, ...): nothing to answer */
		return 0;
	if (strcmp(method, "initialize") == 0)
		return initialize(id, params);
	if (strcmp(method, "ping") == 0)
		return send_result(id, json_object());
	if (strcmp(method, "tools/list") == 0)
		return send_result(id, tools_list());
	if (strcmp(method, "tools/call") == 0)
		return tools_call(env, id, params);
	char why[160];
	snprintf(why, sizeof(why), "method not found: %.64s", method);
	return send_error(id, RPC_METHOD_NOT_FOUND, why);
}

static void
usage(FILE *out)
{
	fprintf(out, "usage: clawbox mcp-host [--host-socket PATH]\n\n"
	             "The daemon's host actions as an MCP server on stdin/stdout, for engines\n"
	             "such as Claude Code and Codex inside a run's sandbox. The socket defaults\n"
	             "to $CLAWBOX_HOST_SOCKET, else " HOST_SOCKET_DEFAULT ".\n");
}

int
cmd_mcp_host(int argc, char **argv)
{
	static const struct option options[] = {
	    {"host-socket", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct tool_env env = {.host_socket = getenv("CLAWBOX_HOST_SOCKET")};
	int opt;

	log_set_prefix("clawbox mcp-host");
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "+h", options, NULL)) != -1) {
		switch (opt) {
		case 's':
			env.host_socket = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			log_error("option %s: unknown or missing its value; see 'clawbox mcp-host "
			          "--help'",
			          argv[optind - 1]);
			return 2;
		}
	}
	if (optind != argc) {
		log_error("no arguments expected; see 'clawbox mcp-host --help'");
		return 2;
	}
	if (!env.host_socket || !*env.host_socket)
		env.host_socket = HOST_SOCKET_DEFAULT;
	signal(SIGPIPE, SIG_IGN);

	_cleanup_dbuf_ struct dbuf in;
	dbuf_init(&in, MCP_LINE_MAX);
	bool skipping = false; /* inside a line that was too long */
	char buf[16384];
	for (;;) {
		ssize_t n = read(0, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		const char *p = buf, *end = buf + n;
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t chunk = (size_t)((nl ? nl : end) - p);
			if (!skipping && dbuf_append(&in, p, chunk) < 0) {
				dbuf_reset(&in);
				skipping = true;
				if (send_error(NULL, RPC_INVALID_REQUEST,
				               "message too large (at most 256 KiB)") < 0)
					return 1;
			}
			p += chunk;
			if (!nl)
				break;
			p++; /* the newline */
			if (skipping) {
				skipping = false;
				continue;
			}
			size_t len = in.len;
			const char *s = dbuf_str(&in);
			while (len && (s[len - 1] == '\r' || s[len - 1] == ' '))
				len--;
			if (len && handle(&env, s, len) < 0)
				return 1;
			dbuf_reset(&in);
		}
	}
	if (!skipping && in.len && handle(&env, dbuf_str(&in), in.len) < 0)
		return 1;
	return 0;
}
