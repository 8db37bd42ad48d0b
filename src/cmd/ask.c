/*
 * ask.c: `clawbox ask [OPTIONS] PROMPT`: one agent invocation, end to end. It starts the
 * egress proxy (which alone holds the key) and a fresh sandbox with the workspace, the
 * conversation's state folder and this executable mounted, runs `clawbox agent --events` in
 * it, renders the events as they arrive, and removes everything.
 *
 * Two processes: the child is the sandbox launcher (sandbox_run, as `clawbox run`), with the
 * sandbox's stdin, stdout and stderr on pipes; this process feeds the prompt, renders events
 * and relays diagnostics. Nothing from the sandbox reaches the terminal unfiltered
 * (text_sanitize), and the prompt never appears on a command line (ps shows those).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "commands.h"
#include "dbuf.h"
#include "engine.h"
#include "fd-util.h"
#include "idmap.h"
#include "json-util.h"
#include "log.h"
#include "net-options.h"
#include "layer.h"
#include "parse.h"
#include "paths.h"
#include "sandbox.h"
#include "vm-client.h"
#include "text.h"

#define AGENT_EXE_INSIDE   "/opt/clawbox/clawbox"
#define WORKSPACE_INSIDE   "/workspace"
#define STATE_INSIDE       "/state"
#define MEMORY_INSIDE      "/memory/AGENTS.md"
#define HOST_SOCKET_INSIDE "/run/clawbox/host.sock"
#define EVENT_LINE_MAX     (MODEL_REPLY_MAX * 2) /* a whole reply, JSON-escaped */
#define ASK_EXIT_USAGE     2

static void
ask_usage(FILE *out)
{
	fprintf(out,
	        "usage: clawbox ask [OPTIONS] PROMPT\n"
	        "\n"
	        "Asks the agent, in a fresh sandbox, and prints the answer as it streams. The\n"
	        "current folder is the workspace (read-only unless --rw); the conversation is\n"
	        "kept per workspace, so the next 'ask' there continues it (--new starts over).\n"
	        "The model key stays with the egress proxy outside the sandbox. PROMPT '-'\n"
	        "reads the prompt from stdin.\n"
	        "\n"
	        "Model (or CLAWBOX_PROVIDER, CLAWBOX_MODEL, CLAWBOX_BASE_URL, CLAWBOX_MAX_TOKENS,\n"
	        "CLAWBOX_KEY_FILE):\n"
	        "  --provider anthropic|openai  the API (default anthropic)\n"
	        "  --model NAME                 the model\n"
	        "  --base-url URL               the API's address (default the provider's; a\n"
	        "                               local Ollama or llama.cpp server works too)\n"
	        "  --max-tokens N               output tokens per reply (default 8192)\n"
	        "  --key-file FILE              the key (mode 0600); default: ANTHROPIC_API_KEY\n"
	        "                               or OPENAI_API_KEY from the environment\n"
	        "  --key-env NAME               the key from this variable instead\n"
	        "  --ca-file FILE               trust these CAs for the model API\n"
	        "  --no-stream                  whole replies instead of streams\n"
	        "\n"
	        "Sandbox:\n"
	        "  --workspace DIR              the workspace (default the current folder)\n"
	        "  --rw                         let the agent write to the workspace\n"
	        "  --inside DIR                 where it appears in the sandbox (default\n"
	        "                               /workspace)\n"
	        "  --mount HOST:PATH[:ro|:rw]   share more (repeatable)\n"
	        "  --allow HOST[:PORT]          a host the agent may reach (repeatable)\n"
	        "  --memory SIZE, --pids N, --cpus N   limits (as for 'clawbox run')\n"
	        "  --audit FILE                 one JSON line per proxied request\n"
	        "  --hosts FILE                 the proxy resolves names from FILE only\n"
	        "  --fetch-ca-file FILE         trust these CAs for the agent's https fetches\n"
	        "                               (and for intercepted services)\n"
	        "  --service SPEC               a credential bound to hosts (repeatable; see\n"
	        "                               'clawbox run --help')\n"
	        "  --ca-dir DIR                 the interception CA (default\n"
	        "                               ~/.local/share/clawbox/ca)\n"
	        "  --proxy-max-bytes-out SIZE, --proxy-max-bytes-in SIZE, --proxy-max-requests N\n"
	        "                               per-run egress caps (defaults 1G, 4G, 10000)\n"
	        "  --proxy-budget JSON          what the run may spend, enforced by the proxy:\n"
	        "                               tokens, cost_usd, tool_calls, egress_bytes, prices\n"
	        "  --model-allow-tool NAME      let model requests use this server-side tool\n"
	        "  --egress JSON                verdicts per host for the proxy: {\"unlisted\":\n"
	        "                               \"deny\"|\"ask\", \"rules\": [{\"host\", \"verdict\",\n"
	        "                               \"trusted\", \"when_tainted\"}]}\n"
	        "  --tainted CAUSE              the run starts tainted (repeatable): requests with\n"
	        "                               a body or query to untrusted hosts are asked\n"
	        "  --proxy-control-fd N         the daemon's control channel for the proxy\n"
	        "                               (approvals, taint); without it, ask is deny\n"
	        "\n"
	        "Conversation and limits:\n"
	        "  --session DIR                where the conversation is kept (default\n"
	        "                               ~/.local/state/clawbox/ask/WORKSPACE-ID)\n"
	        "  --new                        start a new conversation (the old is archived)\n"
	        "  --global-memory FILE         shared memory, read-only (default\n"
	        "                               ~/.config/clawbox/AGENTS.md if it exists;\n"
	        "                               '' for none)\n"
	        "  --max-turns N, --max-time SECONDS, --max-total-tokens N,\n"
	        "  --context-window N, --compact-at PERCENT, --max-retries N\n"
	        "                               as for 'clawbox agent' (defaults 50, 900,\n"
	        "                               2000000, 200000, 80, 3)\n"
	        "\n"
	        "  -v, --verbose                show tool calls, retries and token usage\n"
	        "  --layer DIR                  a package layer over /usr (as for 'clawbox run')\n"
	        "  --note TEXT                  a line for the agent's system prompt (the\n"
	        "                               daemon says what it left out of the run)\n"
	        "  --tools LIST                 only these agent tools (comma-separated)\n"
	        "  --host-socket PATH           the daemon's host-action socket (the daemon\n"
	        "                               passes it; mounted into this sandbox only)\n"
	        "  --vm-service PATH            make the sandbox in the running VM of 'clawbox\n"
	        "                               vm-service --socket PATH' (the daemon's \"vm\")\n"
	        "  --engine NAME                clawbox (ours, the default), claude-code or codex\n"
	        "                               (installed on the host: npm install -g\n"
	        "                               @anthropic-ai/claude-code / @openai/codex), run\n"
	        "                               in the same sandbox, key and proxy\n"
	        "  --engine-arg ARG             one more argument for the engine (repeatable)\n"
	        "  --allowed-tools LIST         claude-code's --allowedTools\n"
	        "  --mcp-server 'NAME=CMD ARG..'  an MCP server for our agent, run in the sandbox\n"
	        "                               over stdio; tools mcp__NAME__TOOL (repeatable)\n"
	        "  --mcp-timeout SECONDS        one MCP call's limit (default 60)\n"
	        "  --json                       the agent's events as JSON lines on stdout (for\n"
	        "                               programs; see src/agent/events.h)\n"
	        "  --debug                      show the sandbox's set-up\n"
	        "  -h, --help                   this text\n"
	        "\n"
	        "Exit status: 0 answered; 1 the model API failed (bad key, unreachable,\n"
	        "overloaded after retries); 2 bad usage; 3 a limit ended the answer; 4 the\n"
	        "conversation could not be stored; 124/125 as for 'clawbox run'.\n");
}

enum {
	OPT_PROVIDER = 0x100,
	OPT_MODEL,
	OPT_BASE_URL,
	OPT_MAX_TOKENS,
	OPT_KEY_FILE,
	OPT_CA_FILE,
	OPT_NO_STREAM,
	OPT_WORKSPACE,
	OPT_RW,
	OPT_MOUNT,
	OPT_ALLOW,
	OPT_MEMORY,
	OPT_PIDS,
	OPT_CPUS,
	OPT_AUDIT,
	OPT_HOSTS,
	OPT_SESSION,
	OPT_NEW,
	OPT_GLOBAL_MEMORY,
	OPT_MAX_TURNS,
	OPT_MAX_TIME,
	OPT_MAX_TOTAL,
	OPT_CONTEXT,
	OPT_COMPACT,
	OPT_RETRIES,
	OPT_DEBUG,
	OPT_FETCH_CA_FILE,
	OPT_SERVICE,
	OPT_CA_DIR,
	OPT_PROXY_MAX_OUT, /* these five: passed to the proxy as they are */
	OPT_PROXY_MAX_IN,
	OPT_PROXY_MAX_REQUESTS,
	OPT_MODEL_ALLOW_TOOL,
	OPT_PROXY_BUDGET,
	OPT_JSON,
	OPT_KEY_ENV,
	OPT_HOST_SOCKET,
	OPT_TOOLS,
	OPT_VM_SERVICE,
	OPT_INSIDE,
	OPT_PROXY_CHECKED,
	OPT_NOTE,
	OPT_LAYER,
	OPT_ENGINE,
	OPT_ENGINE_ARG,
	OPT_ALLOWED_TOOLS,
	OPT_MCP_SERVER,
	OPT_MCP_TIMEOUT,
	OPT_EGRESS,
	OPT_TAINTED,
	OPT_PROXY_CONTROL_FD,
};

static const struct option ask_options[] = {
    {"provider", required_argument, NULL, OPT_PROVIDER},
    {"model", required_argument, NULL, OPT_MODEL},
    {"base-url", required_argument, NULL, OPT_BASE_URL},
    {"max-tokens", required_argument, NULL, OPT_MAX_TOKENS},
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"ca-file", required_argument, NULL, OPT_CA_FILE},
    {"no-stream", no_argument, NULL, OPT_NO_STREAM},
    {"workspace", required_argument, NULL, OPT_WORKSPACE},
    {"rw", no_argument, NULL, OPT_RW},
    {"mount", required_argument, NULL, OPT_MOUNT},
    {"allow", required_argument, NULL, OPT_ALLOW},
    {"memory", required_argument, NULL, OPT_MEMORY},
    {"pids", required_argument, NULL, OPT_PIDS},
    {"cpus", required_argument, NULL, OPT_CPUS},
    {"audit", required_argument, NULL, OPT_AUDIT},
    {"hosts", required_argument, NULL, OPT_HOSTS},
    {"session", required_argument, NULL, OPT_SESSION},
    {"new", no_argument, NULL, OPT_NEW},
    {"global-memory", required_argument, NULL, OPT_GLOBAL_MEMORY},
    {"max-turns", required_argument, NULL, OPT_MAX_TURNS},
    {"max-time", required_argument, NULL, OPT_MAX_TIME},
    {"max-total-tokens", required_argument, NULL, OPT_MAX_TOTAL},
    {"context-window", required_argument, NULL, OPT_CONTEXT},
    {"compact-at", required_argument, NULL, OPT_COMPACT},
    {"max-retries", required_argument, NULL, OPT_RETRIES},
    {"verbose", no_argument, NULL, 'v'},
    {"debug", no_argument, NULL, OPT_DEBUG},
    {"fetch-ca-file", required_argument, NULL, OPT_FETCH_CA_FILE},
    {"service", required_argument, NULL, OPT_SERVICE},
    {"ca-dir", required_argument, NULL, OPT_CA_DIR},
    {"proxy-max-bytes-out", required_argument, NULL, OPT_PROXY_MAX_OUT},
    {"proxy-max-bytes-in", required_argument, NULL, OPT_PROXY_MAX_IN},
    {"proxy-max-requests", required_argument, NULL, OPT_PROXY_MAX_REQUESTS},
    {"proxy-budget", required_argument, NULL, OPT_PROXY_BUDGET},
    {"model-allow-tool", required_argument, NULL, OPT_MODEL_ALLOW_TOOL},
    {"json", no_argument, NULL, OPT_JSON},
    {"key-env", required_argument, NULL, OPT_KEY_ENV},
    {"host-socket", required_argument, NULL, OPT_HOST_SOCKET},
    {"tools", required_argument, NULL, OPT_TOOLS},
    {"vm-service", required_argument, NULL, OPT_VM_SERVICE},
    {"inside", required_argument, NULL, OPT_INSIDE},
    {"proxy-checked", no_argument, NULL, OPT_PROXY_CHECKED},
    {"note", required_argument, NULL, OPT_NOTE},
    {"layer", required_argument, NULL, OPT_LAYER},
    {"engine", required_argument, NULL, OPT_ENGINE},
    {"engine-arg", required_argument, NULL, OPT_ENGINE_ARG},
    {"allowed-tools", required_argument, NULL, OPT_ALLOWED_TOOLS},
    {"mcp-server", required_argument, NULL, OPT_MCP_SERVER},
    {"mcp-timeout", required_argument, NULL, OPT_MCP_TIMEOUT},
    {"egress", required_argument, NULL, OPT_EGRESS},
    {"tainted", required_argument, NULL, OPT_TAINTED},
    {"proxy-control-fd", required_argument, NULL, OPT_PROXY_CONTROL_FD},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

struct ask {
	const char *provider, *model, *base_url, *max_tokens, *key_file, *ca_file, *key_env;
	const char *workspace, *session, *global_memory, *prompt_arg, *host_socket, *tools;
	const char *vm_service; /* NULL: the sandbox is made here */
	const char *note;       /* --note: passed on to the agent */
	char self[PATH_MAX];    /* this executable: the agent, mounted into the sandbox */
	const char *inside;     /* where the workspace appears in the sandbox */
	bool rw, fresh, stream, verbose;
	bool json;          /* pass the agent's events on as JSON lines (for the daemon) */
	bool proxy_checked; /* the caller (the daemon) checked the proxy options already */
	int proxy_control_fd; /* --proxy-control-fd, or -1 */
	const char *agent_opts[28][2]; /* limits passed through to the agent as given */
	size_t n_agent_opts;
	struct net_options net;
	char *prompt;
	/* rendering */
	bool done_seen, text_open;
	char done_status[16];
	char done_message[600];
	/* --engine claude-code|codex: another agent in the same sandbox (engine.c) */
	struct engine_request eng;
	struct engine_state eng_state;
	struct engine_xlate xlate;
	bool provider_given;
};

static const char *
env_or(const char *name, const char *fallback)
{
	const char *v = getenv(name);
	return v && *v ? v : fallback;
}

static int
pass_limit(struct ask *a, const char *flag, const char *value, uint64_t min, uint64_t max)
{
	uint64_t v;
	if (parse_u64(value, max, &v) < 0 || v < min)
		return log_error("%s %s: expected a number from %llu to %llu", flag, value,
		                 (unsigned long long)min, (unsigned long long)max),
		       -EINVAL;
	if (a->n_agent_opts >= ARRAY_SIZE(a->agent_opts))
		return -E2BIG;
	a->agent_opts[a->n_agent_opts][0] = flag;
	a->agent_opts[a->n_agent_opts][1] = value;
	a->n_agent_opts++;
	return 0;
}

/* An option passed to the agent as given (it checks it). */
static int
pass_limit_raw(struct ask *a, const char *flag, const char *value)
{
	if (a->n_agent_opts >= ARRAY_SIZE(a->agent_opts))
		return -E2BIG;
	a->agent_opts[a->n_agent_opts][0] = flag;
	a->agent_opts[a->n_agent_opts][1] = value;
	a->n_agent_opts++;
	return 0;
}

static int
parse_options(struct ask *a, struct sandbox_spec *spec, int argc, char **argv)
{
	const char *why;
	uint64_t v;
	int opt, r;
	a->provider = env_or("CLAWBOX_PROVIDER", "anthropic");
	a->model = env_or("CLAWBOX_MODEL", NULL);
	a->base_url = env_or("CLAWBOX_BASE_URL", NULL);
	a->max_tokens = env_or("CLAWBOX_MAX_TOKENS", NULL);
	a->key_file = env_or("CLAWBOX_KEY_FILE", NULL);
	a->stream = true;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "+hv", ask_options, NULL)) != -1) {
		switch (opt) {
		case OPT_PROVIDER:
			a->provider = optarg;
			a->provider_given = true;
			break;
		case OPT_ENGINE:
			if (engine_parse(optarg, &a->eng.kind) < 0)
				return log_error("--engine %s: expected clawbox, claude-code or codex",
				                 optarg),
				       -EINVAL;
			break;
		case OPT_ENGINE_ARG:
			if (a->eng.n_extra >= ENGINE_MAX_ARGS || strlen(optarg) > ENGINE_ARG_MAX)
				return log_error("--engine-arg: at most %d, of %d bytes each",
				                 ENGINE_MAX_ARGS, ENGINE_ARG_MAX),
				       -E2BIG;
			a->eng.extra[a->eng.n_extra++] = optarg;
			break;
		case OPT_MCP_SERVER:
			/* Run by the agent, inside the sandbox; checked there (a usage error). */
			if (strlen(optarg) > 2048 ||
			    (r = pass_limit_raw(a, "--mcp-server", optarg)) < 0)
				return log_error("--mcp-server: at most 2048 bytes, 8 servers"),
				       -E2BIG;
			break;
		case OPT_MCP_TIMEOUT:
			if ((r = pass_limit(a, "--mcp-timeout", optarg, 1, 3600)) < 0)
				return r;
			break;
		case OPT_ALLOWED_TOOLS:
			if (strlen(optarg) > 1000)
				return log_error("--allowed-tools: at most 1000 bytes"), -E2BIG;
			a->eng.allowed_tools = optarg;
			break;
		case OPT_MODEL:
			a->model = optarg;
			break;
		case OPT_BASE_URL:
			a->base_url = optarg;
			break;
		case OPT_MAX_TOKENS:
			a->max_tokens = optarg;
			break;
		case OPT_KEY_FILE:
			a->key_file = optarg;
			break;
		case OPT_CA_FILE:
			a->ca_file = optarg;
			break;
		case OPT_NO_STREAM:
			a->stream = false;
			break;
		case OPT_WORKSPACE:
			a->workspace = optarg;
			break;
		case OPT_RW:
			a->rw = true;
			break;
		case OPT_MOUNT:
			r = sandbox_spec_add_mount(spec, optarg, &why);
			if (r < 0)
				return log_error("--mount %s: %s", optarg,
				                 r == -E2BIG ? "too many mounts"
				                 : why       ? why
				                             : strerror(-r)),
				       r;
			break;
		case OPT_ALLOW:
			if (a->net.n_allow >= MAX_ALLOW)
				return log_error("--allow: at most %d entries", MAX_ALLOW), -E2BIG;
			a->net.allow[a->net.n_allow++] = optarg;
			break;
		case OPT_MEMORY:
			if (parse_size(optarg, &v) < 0 || v < (16ULL << 20))
				return log_error("--memory %s: expected a size of at least 16M",
				                 optarg),
				       -EINVAL;
			spec->memory_bytes = v;
			break;
		case OPT_PIDS:
			if (parse_u64(optarg, SANDBOX_MAX_PIDS, &v) < 0 || v < 8)
				return log_error("--pids %s: expected a number of at least 8",
				                 optarg),
				       -EINVAL;
			spec->pids_max = v;
			break;
		case OPT_CPUS:
			if (parse_milli(optarg, SANDBOX_MAX_CPUS_MILLI, &v) < 0 || v < 10)
				return log_error("--cpus %s: expected at least 0.01", optarg),
				       -EINVAL;
			spec->cpus_milli = v;
			break;
		case OPT_AUDIT:
			a->net.audit = optarg;
			break;
		case OPT_HOSTS:
			a->net.hosts = optarg;
			break;
		case OPT_SERVICE:
			if (a->net.n_services >= MAX_SERVICES)
				return log_error("--service: at most %d", MAX_SERVICES), -E2BIG;
			a->net.services[a->net.n_services++] = optarg;
			a->net.proxy = true;
			break;
		case OPT_CA_DIR:
			a->net.ca_dir = optarg;
			break;
		case OPT_FETCH_CA_FILE:
			a->net.fetch_ca_file = optarg;
			break;
		case OPT_PROXY_MAX_OUT:
		case OPT_PROXY_MAX_IN:
		case OPT_PROXY_MAX_REQUESTS:
		case OPT_MODEL_ALLOW_TOOL:
		case OPT_PROXY_BUDGET: {
			/* Checked by the proxy itself (its --check run). */
			static const char *const flags[] = {"--max-bytes-out", "--max-bytes-in",
			                                    "--max-requests", "--model-allow-tool",
			                                    "--budget"};
			if (net_add_extra(&a->net, flags[opt - OPT_PROXY_MAX_OUT], optarg) < 0)
				return -E2BIG;
			break;
		}
		case OPT_JSON:
			a->json = true;
			break;
		case OPT_PROXY_CHECKED:
			a->proxy_checked = true;
			break;
		case OPT_EGRESS: /* checked by the proxy itself, as the caps are */
			if (net_add_extra(&a->net, "--egress", optarg) < 0)
				return -E2BIG;
			break;
		case OPT_TAINTED:
			if (net_add_extra(&a->net, "--tainted", optarg) < 0)
				return -E2BIG;
			break;
		case OPT_PROXY_CONTROL_FD:
			/* Ours for the proxy alone: close-on-exec at once, so that nothing else
			 * we start (the sandbox above all) inherits it. */
			if (parse_u64(optarg, 65535, &v) < 0 || v < 3 ||
			    fcntl((int)v, F_SETFD, FD_CLOEXEC) < 0) {
				log_error("--proxy-control-fd %s: expected an open descriptor", optarg);
				return -EINVAL;
			}
			a->proxy_control_fd = (int)v;
			if (net_add_extra(&a->net, "--control-fd", "4") < 0) /* sandbox_proxy_start */
				return -E2BIG;
			break;
		case OPT_VM_SERVICE:
			a->vm_service = optarg;
			break;
		case OPT_TOOLS: /* the group's policy.tools: the agent offers and runs these only */
			a->tools = optarg;
			break;
		case OPT_HOST_SOCKET:
			a->host_socket = optarg;
			break;
		case OPT_INSIDE: {
			char *norm = NULL;
			if (sandbox_path_normalize(optarg, &norm) < 0 ||
			    sandbox_path_reserved(norm)) {
				free(norm);
				return log_error("--inside %s: expected an absolute path such as "
				                 "/workspace/group",
				                 optarg),
				       -EINVAL;
			}
			free(norm);
			a->inside = optarg;
			break;
		}
		case OPT_KEY_ENV:
			if (!*optarg || strlen(optarg) > 64 ||
			    strspn(optarg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz012"
			                   "3456789_") != strlen(optarg))
				return log_error("--key-env %s: expected a variable name", optarg),
				       -EINVAL;
			a->key_env = optarg;
			break;
		case OPT_SESSION:
			a->session = optarg;
			break;
		case OPT_NEW:
			a->fresh = true;
			break;
		case OPT_GLOBAL_MEMORY:
			a->global_memory = optarg;
			break;
		case OPT_LAYER: /* the group's package layer (clawbox env; see layer.h) */
			if ((r = sandbox_spec_set_layer(spec, optarg)) < 0)
				return log_error("--layer: %s", strerror(-r)), r;
			break;
		case OPT_NOTE:
			if (strlen(optarg) > 1024)
				return log_error("--note: at most 1024 bytes"), -EINVAL;
			a->note = optarg;
			break;
		case OPT_MAX_TURNS:
			if ((r = pass_limit(a, "--max-turns", optarg, 1, 10000)) < 0)
				return r;
			break;
		case OPT_MAX_TIME:
			if ((r = pass_limit(a, "--max-time", optarg, 1, 7 * 86400)) < 0)
				return r;
			spec->timeout_ms = 0; /* set from it below */
			break;
		case OPT_MAX_TOTAL:
			if ((r = pass_limit(a, "--max-total-tokens", optarg, 1, 1000000000000ULL)) <
			    0)
				return r;
			break;
		case OPT_CONTEXT:
			if ((r = pass_limit(a, "--context-window", optarg, 1000, 100000000)) < 0)
				return r;
			break;
		case OPT_COMPACT:
			if ((r = pass_limit(a, "--compact-at", optarg, 10, 100)) < 0)
				return r;
			break;
		case OPT_RETRIES:
			if ((r = pass_limit(a, "--max-retries", optarg, 0, 10)) < 0)
				return r;
			break;
		case 'v':
			a->verbose = true;
			break;
		case OPT_DEBUG:
			spec->debug = true;
			log_set_debug(true);
			break;
		case 'h':
			ask_usage(stdout);
			return 1;
		default:
			log_error(
			    "option %s: unknown or missing its value; see 'clawbox ask --help'",
			    argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind != argc - 1)
		return log_error(optind >= argc
		                     ? "no prompt given; see 'clawbox ask --help'"
		                     : "one prompt expected (quote it); see 'clawbox ask --help'"),
		       -EINVAL;
	a->prompt_arg = argv[optind];
	if (getenv("CLAWBOX_PROVIDER") && *getenv("CLAWBOX_PROVIDER"))
		a->provider_given = true;
	if (a->eng.kind == ENGINE_CODEX && !a->provider_given)
		a->provider = "openai";
	if ((a->eng.kind == ENGINE_CLAUDE_CODE && strcmp(a->provider, "anthropic") != 0) ||
	    (a->eng.kind == ENGINE_CODEX && strcmp(a->provider, "openai") != 0))
		return log_error("--engine %s speaks the %s API, not %s", engine_name(a->eng.kind),
		                 a->eng.kind == ENGINE_CODEX ? "openai" : "anthropic", a->provider),
		       -EINVAL;
	for (size_t k = 0; a->eng.kind != ENGINE_CLAWBOX && k < a->n_agent_opts; k++)
		if (strncmp(a->agent_opts[k][0], "--mcp-", 6) == 0)
			return log_error("%s is for our agent; --engine %s takes its MCP servers "
			                 "through --engine-arg",
			                 a->agent_opts[k][0], engine_name(a->eng.kind)),
			       -EINVAL;
	if (a->eng.kind == ENGINE_CODEX && a->eng.allowed_tools)
		return log_error("--allowed-tools is claude-code's"), -EINVAL;
	if (a->eng.kind == ENGINE_CLAWBOX && (a->eng.n_extra || a->eng.allowed_tools))
		return log_error("--engine-arg and --allowed-tools are for --engine claude-code "
		                 "or codex"),
		       -EINVAL;
	enum model_provider p;
	if (model_provider_parse(a->provider, &p) < 0)
		return log_error("provider %s: expected anthropic or openai", a->provider), -EINVAL;
	if (a->max_tokens && (parse_u64(a->max_tokens, 1000000, &v) < 0 || v == 0))
		return log_error("max tokens %s: expected a number from 1 to 1000000",
		                 a->max_tokens),
		       -EINVAL;
	if (a->model && (strlen(a->model) > 200 || strpbrk(a->model, "\n\r")))
		return log_error("model %s: not a model name", a->model), -EINVAL;
	return 0;
}

/* The prompt: the argument, or stdin for "-". */
static int
load_prompt(struct ask *a)
{
	if (strcmp(a->prompt_arg, "-") != 0) {
		if (strlen(a->prompt_arg) > AGENT_PROMPT_MAX)
			return log_error("the prompt is longer than %d bytes", AGENT_PROMPT_MAX),
			       -E2BIG;
		a->prompt = strdup(a->prompt_arg);
	} else {
		a->prompt = malloc(AGENT_PROMPT_MAX + 2);
		if (!a->prompt)
			return -ENOMEM;
		ssize_t n = read_full(0, a->prompt, AGENT_PROMPT_MAX + 1);
		if (n < 0 || n > AGENT_PROMPT_MAX)
			return log_error("cannot read the prompt from stdin (at most %d bytes)",
			                 AGENT_PROMPT_MAX),
			       -EINVAL;
		a->prompt[n] = '\0';
	}
	if (!a->prompt)
		return -ENOMEM;
	if (!*a->prompt)
		return log_error("the prompt is empty"), -EINVAL;
	return 0;
}

/* mkdir -p, each new level with mode. */
static int
mkdir_parents(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *s = buf + 1;; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			if (mkdir(buf, mode) < 0 && errno != EEXIST)
				return NEG_ERRNO();
			*s = c;
			if (!c)
				return 0;
		}
	}
}

/* The default state folder: one per workspace, named by its path's last component and a hash
 * of the whole path. */
static int
default_session(const char *workspace, char *buf, size_t size)
{
	char base[PATH_MAX], dir[PATH_MAX - 8];
	if (xdg_dir(XDG_STATE, dir, sizeof(dir)) < 0)
		return -ENOENT;
	snprintf(base, sizeof(base), "%s/ask", dir);
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (const char *p = workspace; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	const char *last = strrchr(workspace, '/');
	last = last && last[1] ? last + 1 : "root";
	char name[64];
	size_t n = 0;
	for (; *last && n < 32; last++)
		name[n++] = (*last == '.' || *last == '-' || *last == '_' ||
		             (*last >= '0' && *last <= '9') ||
		             ((*last | 0x20) >= 'a' && (*last | 0x20) <= 'z'))
		                ? *last
		                : '_';
	name[n] = '\0';
	if (snprintf(buf, size, "%s/%s-%016llx", base, name, (unsigned long long)h) >= (int)size)
		return -ENAMETOOLONG;
	return 0;
}

/* Adds HOST:TARGET[:rw] for a host path that may contain ':' (the mount syntax cannot). */
static int
add_mount(struct sandbox_spec *spec, const char *host, const char *target, bool rw)
{
	if (strchr(host, ':'))
		return log_error("%s: a path with ':' cannot be mounted", host), -EINVAL;
	char arg[PATH_MAX + 64];
	const char *why;
	snprintf(arg, sizeof(arg), "%s:%s:%s", host, target, rw ? "rw" : "ro");
	int r = sandbox_spec_add_mount(spec, arg, &why);
	if (r < 0)
		log_error("cannot mount %s: %s", host, why ? why : strerror(-r));
	return r;
}

static bool
is_default_api(const char *url)
{
	return strcmp(url, "https://api.anthropic.com") == 0 ||
	       strcmp(url, "https://api.openai.com") == 0;
}

/* Everything the sandbox is given: mounts, proxy, the agent's command line. */
static int
build_sandbox(struct ask *a, struct sandbox_spec *spec, struct proxy_command *pc,
              const char **agent_argv, size_t max)
{
	char ws[PATH_MAX], session[PATH_MAX], *self = a->self;
	int r;
	if (!realpath(a->workspace ? a->workspace : ".", ws))
		return log_error("workspace %s: %s", a->workspace ? a->workspace : ".",
		                 strerror(errno)),
		       -errno;
	/* The model first (a bad one makes no folders): the proxy forwards
	 * http://model.clawbox.internal/ to it with the key. */
	enum model_provider p;
	model_provider_parse(a->provider, &p);
	const char *base = a->base_url         ? a->base_url
	                   : p == MODEL_OPENAI ? "https://api.openai.com"
	                                       : "https://api.anthropic.com";
	const char *key_env = a->key_env          ? a->key_env
	                      : p == MODEL_OPENAI ? "OPENAI_API_KEY"
	                                          : "ANTHROPIC_API_KEY";
	a->net.proxy = true;
	a->net.model_upstream = base;
	a->net.model_header = p == MODEL_OPENAI ? "Authorization: Bearer" : "x-api-key";
	a->net.model_ca_file = a->ca_file;
	const char *key = getenv(key_env);
	if (a->key_file)
		a->net.model_key_file = a->key_file;
	else if (key && *key)
		a->net.model_key_env = key_env;
	else if (!is_default_api(base))
		a->net.model_no_key = true; /* a local server: Ollama and llama.cpp want none */
	else
		return log_error("no API key: set %s, or --key-file FILE (or --base-url for a "
		                 "local model server such as Ollama or llama.cpp)",
		                 key_env),
		       -ENOKEY;
	if (strncmp(base, "https://", 8) != 0 && strncmp(base, "http://", 7) != 0)
		return log_error("base URL %s: expected http:// or https://", base), -EINVAL;
	if (strlen(base) > 1024 || strpbrk(base, " \t\r\n"))
		return log_error("base URL: not a URL"), -EINVAL;
	/* Only the user's own proxy options need the proxy's judgement before the start. */
	/* --audit is not among them: the check does not open it. */
	a->net.trusted = a->proxy_checked || (a->net.n_allow == 0 && !a->net.hosts && !a->ca_file &&
	                                      !a->key_file && !a->net.fetch_ca_file &&
	                                      a->net.n_services == 0 && a->net.n_extra == 0);
	if (a->session) {
		if (snprintf(session, sizeof(session), "%s", a->session) >= (int)sizeof(session))
			return -ENAMETOOLONG;
	} else if (default_session(ws, session, sizeof(session)) < 0) {
		return log_error("no HOME to keep the conversation in; use --session DIR"), -ENOENT;
	}
	r = mkdir_parents(session, 0700);
	if (r < 0)
		return log_error("session folder %s: %s", session, strerror(-r)), r;
	if (geteuid() == 0 && idmap_supported(session) != 1) {
		/* A root caller's sandbox runs as CLAWBOX_SANDBOX_HOST_ID outside; the state
		 * folder is the one place it must write. Where its file system can idmap, the
		 * sandbox's writable mounts are its owner's and no chown is needed. */
		if (chown(session, 65533, 65533) < 0)
			return log_error("session folder %s: %s", session, strerror(errno)), -errno;
	}
	ssize_t n = readlink("/proc/self/exe", self, sizeof(a->self) - 1);
	if (n < 0)
		return log_error("cannot find myself: %s", strerror(errno)), -errno;
	self[n] = '\0';

	const char *inside = a->inside ? a->inside : WORKSPACE_INSIDE;
	if ((r = add_mount(spec, ws, inside, a->rw)) < 0 ||
	    (r = add_mount(spec, session, STATE_INSIDE, true)) < 0 ||
	    (r = add_mount(spec, self, AGENT_EXE_INSIDE, false)) < 0)
		return r;
	char memory[PATH_MAX] = "";
	if (a->global_memory && !a->global_memory[0]) {
		/* "": none (the daemon's runs: its own DATA/global/AGENTS.md or nothing, never
		 * the memory of whoever started the daemon). */
	} else if (a->global_memory) {
		if (!realpath(a->global_memory, memory))
			return log_error("--global-memory %s: %s", a->global_memory,
			                 strerror(errno)),
			       -errno;
	} else {
		char dir[PATH_MAX - 16];
		if (xdg_dir(XDG_CONFIG, dir, sizeof(dir)) == 0)
			snprintf(memory, sizeof(memory), "%s/AGENTS.md", dir);
		struct stat st;
		if (!memory[0] || stat(memory, &st) < 0 || !S_ISREG(st.st_mode))
			memory[0] = '\0';
	}
	if (memory[0] && (r = add_mount(spec, memory, MEMORY_INSIDE, false)) < 0)
		return r;
	if (a->host_socket && (r = add_mount(spec, a->host_socket, HOST_SOCKET_INSIDE, false)) < 0)
		return r;

	char id[32];
	snprintf(id, sizeof(id), "ask-%d", (int)getpid());
	r = net_setup_proxy(spec, &a->net, pc, id);
	if (r < 0)
		return r;
	spec->proxy_control_fd = a->proxy_control_fd;
	if (a->eng.kind != ENGINE_CLAWBOX) {
		a->eng.session = session;
		a->eng.state_inside = STATE_INSIDE;
		a->eng.workspace = ws;
		a->eng.inside = inside;
		a->eng.global_memory = memory[0] ? memory : NULL;
		a->eng.self_inside = AGENT_EXE_INSIDE;
		a->eng.host_socket_inside = a->host_socket ? HOST_SOCKET_INSIDE : NULL;
		a->eng.model = a->model;
		a->eng.fresh = a->fresh;
		a->eng.rw = a->rw;
		if ((r = engine_setup(&a->eng, &a->eng_state, &a->xlate, spec)) < 0)
			return r == -ENOENT ? -ENOKEY : r; /* not installed: a usage error */
		uint64_t max_time = 900;
		for (size_t k = 0; k < a->n_agent_opts; k++)
			if (strcmp(a->agent_opts[k][0], "--max-time") == 0)
				parse_u64(a->agent_opts[k][1], UINT64_MAX, &max_time);
		spec->timeout_ms = max_time * 1000; /* the engines have no limit of ours */
		return 0;
	}

	size_t i = 0;
	agent_argv[i++] = AGENT_EXE_INSIDE;
	agent_argv[i++] = "agent";
	agent_argv[i++] = "--events";
	agent_argv[i++] = "--provider";
	agent_argv[i++] = a->provider;
	if (a->model) {
		agent_argv[i++] = "--model";
		agent_argv[i++] = a->model;
	}
	if (a->max_tokens) {
		agent_argv[i++] = "--max-tokens";
		agent_argv[i++] = a->max_tokens;
	}
	if (p == MODEL_OPENAI && strcmp(base, "https://api.openai.com") == 0) {
		/* OpenAI's newer models refuse max_tokens; servers that copy the API want it. */
		agent_argv[i++] = "--max-tokens-field";
		agent_argv[i++] = "max_completion_tokens";
	}
	if (!a->stream)
		agent_argv[i++] = "--no-stream";
	agent_argv[i++] = "--state";
	agent_argv[i++] = STATE_INSIDE;
	agent_argv[i++] = "--workspace";
	agent_argv[i++] = inside;
	if (memory[0]) {
		agent_argv[i++] = "--global-memory";
		agent_argv[i++] = MEMORY_INSIDE;
	}
	if (a->fresh)
		agent_argv[i++] = "--new";
	if (a->host_socket) {
		agent_argv[i++] = "--host-socket";
		agent_argv[i++] = HOST_SOCKET_INSIDE;
	}
	if (a->tools) {
		agent_argv[i++] = "--tools";
		agent_argv[i++] = a->tools;
	}
	if (a->note) {
		agent_argv[i++] = "--note";
		agent_argv[i++] = a->note;
	}
	uint64_t max_time = 900;
	for (size_t k = 0; k < a->n_agent_opts && i + 3 < max; k++) {
		agent_argv[i++] = a->agent_opts[k][0];
		agent_argv[i++] = a->agent_opts[k][1];
		if (strcmp(a->agent_opts[k][0], "--max-time") == 0)
			parse_u64(a->agent_opts[k][1], UINT64_MAX, &max_time);
	}
	agent_argv[i++] = "-"; /* the prompt comes on stdin: never on a command line */
	agent_argv[i] = NULL;
	spec->argv = (char *const *)agent_argv;
	char *wd = NULL;
	if (sandbox_path_normalize(inside, &wd) < 0)
		return -ENOMEM;
	free(spec->workdir);
	spec->workdir = wd;
	/* The agent stops itself at --max-time; this is the backstop if it cannot. */
	spec->timeout_ms = (max_time + 30) * 1000;
	return 0;
}

/* ---- rendering ---- */

static void
out_sanitized(int fd, const char *s, size_t len)
{
	char buf[8192];
	while (len > 0) {
		size_t chunk = len < sizeof(buf) ? len : sizeof(buf);
		/* Do not split a UTF-8 sequence between chunks. */
		while (chunk < len && chunk > 0 && ((unsigned char)s[chunk] & 0xC0) == 0x80)
			chunk--;
		if (chunk == 0)
			chunk = len < sizeof(buf) ? len : sizeof(buf);
		size_t n = text_sanitize(s, chunk, buf);
		(void)write_all(fd, buf, n);
		s += chunk;
		len -= chunk;
	}
}

static void
err_line(const char *prefix, const char *s)
{
	char line[2048];
	int n = snprintf(line, sizeof(line), "%s%s", prefix, s);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	out_sanitized(2, line, (size_t)n);
	(void)write_all(2, "\n", 1);
}

static void
close_text(struct ask *a)
{
	if (a->text_open) {
		(void)write_all(1, "\n", 1);
		a->text_open = false;
	}
}

static void
render_event(struct ask *a, const char *line, size_t len)
{
	_cleanup_json_ json_t *ev = json_loadb(line, len, 0, NULL);
	const char *type = json_get_str(ev, "type");
	if (!type) {
		err_line("clawbox ask: the agent sent an unreadable event", "");
		return;
	}
	if (a->json) {
		/* Re-encoded, so that what goes on is one line of valid JSON whatever came in. */
		_cleanup_free_ char *s = json_dumps(ev, JSON_COMPACT);
		if (s) {
			(void)write_all(1, s, strlen(s));
			(void)write_all(1, "\n", 1);
		}
		if (strcmp(type, "done") == 0)
			a->done_seen = true;
		return;
	}
	char buf[1024];
	if (strcmp(type, "text") == 0) {
		json_t *t = json_object_get(ev, "text");
		size_t n = json_string_length(t);
		if (!n)
			return;
		out_sanitized(1, json_string_value(t), n);
		a->text_open = json_string_value(t)[n - 1] != '\n';
	} else if (strcmp(type, "tool_call") == 0) {
		if (a->verbose) {
			close_text(a);
			err_line("[tool] ", json_get_str(ev, "summary") ?: "?");
		}
	} else if (strcmp(type, "tool_result") == 0) {
		if (a->verbose) {
			snprintf(buf, sizeof(buf), "%s, %lld bytes",
			         json_is_true(json_object_get(ev, "is_error")) ? "error" : "ok",
			         (long long)json_integer_value(json_object_get(ev, "bytes")));
			err_line("[tool]   ", buf);
		}
	} else if (strcmp(type, "usage") == 0) {
		if (a->verbose) {
			close_text(a);
			snprintf(buf, sizeof(buf),
			         "turn %lld: %llu input, %llu output, %llu cache write, %llu cache "
			         "read tokens",
			         (long long)json_integer_value(json_object_get(ev, "turn")),
			         (unsigned long long)json_get_u64(ev, "input_tokens"),
			         (unsigned long long)json_get_u64(ev, "output_tokens"),
			         (unsigned long long)json_get_u64(ev, "cache_write_tokens"),
			         (unsigned long long)json_get_u64(ev, "cache_read_tokens"));
			err_line("[usage] ", buf);
		}
	} else if (strcmp(type, "notice") == 0) {
		close_text(a);
		err_line("clawbox ask: ", json_get_str(ev, "text") ?: "");
	} else if (strcmp(type, "done") == 0) {
		close_text(a);
		a->done_seen = true;
		snprintf(a->done_status, sizeof(a->done_status), "%s",
		         json_get_str(ev, "status") ?: "");
		snprintf(a->done_message, sizeof(a->done_message), "%s",
		         json_get_str(ev, "message") ?: "");
		if (a->verbose) {
			json_t *u = json_object_get(ev, "usage");
			snprintf(
			    buf, sizeof(buf),
			    "total: %llu input, %llu output, %llu cache write, %llu cache read "
			    "tokens over %lld turns; agent peak RSS %lld KiB",
			    (unsigned long long)json_get_u64(u, "input_tokens"),
			    (unsigned long long)json_get_u64(u, "output_tokens"),
			    (unsigned long long)json_get_u64(u, "cache_write_tokens"),
			    (unsigned long long)json_get_u64(u, "cache_read_tokens"),
			    (long long)json_integer_value(json_object_get(ev, "turns")),
			    (long long)json_integer_value(json_object_get(ev, "peak_rss_kb")));
			err_line("[usage] ", buf);
		}
		if (a->done_message[0])
			err_line("clawbox ask: ", a->done_message);
	}
	/* Unknown event types are a newer agent's: ignored. */
}

/* Splits a stream into lines of at most max bytes; calls fn on each whole line. */
struct lines {
	struct dbuf buf;
	bool overflow;
};

static void
lines_feed(struct lines *l, const char *p, size_t len, void (*fn)(void *, const char *, size_t),
           void *ctx)
{
	while (len > 0) {
		const char *nl = memchr(p, '\n', len);
		size_t n = nl ? (size_t)(nl - p) : len;
		if (!l->overflow && dbuf_append(&l->buf, p, n) < 0)
			l->overflow = true;
		if (nl) {
			if (!l->overflow)
				fn(ctx, dbuf_str(&l->buf), l->buf.len);
			else
				err_line("clawbox ask: ",
				         "a line from the sandbox was too long; dropped");
			dbuf_reset(&l->buf);
			l->overflow = false;
			n++;
		}
		p += n;
		len -= n;
	}
}

static void
on_engine_event(void *ctx, json_t *ev)
{
	_cleanup_free_ char *s = json_dumps(ev, JSON_COMPACT);
	if (s)
		render_event(ctx, s, strlen(s));
}

static void
on_event_line(void *ctx, const char *line, size_t len)
{
	struct ask *a = ctx;
	if (a->eng.kind != ENGINE_CLAWBOX) /* the engine's own events, into ours */
		engine_translate(&a->xlate, line, len, on_engine_event, a);
	else
		render_event(ctx, line, len);
}

static void
on_err_line(void *ctx, const char *line, size_t len)
{
	struct ask *a = ctx;
	close_text(a);
	out_sanitized(2, line, len);
	(void)write_all(2, "\n", 1);
}

/* The child: the sandbox launcher, with the pipes as its stdio. */
_noreturn_ static void
launcher(const struct ask *a, struct sandbox_spec *spec, pid_t parent, int in, int out, int err)
{
	/* If ask dies (its own parent, the daemon, may kill it), so does the launcher, and with
	 * it the sandbox and the proxy; the watchdog removes the cgroups. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(SANDBOX_EXIT_SETUP);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		_exit(SANDBOX_EXIT_SETUP);
	/* Nothing else of ours may stay open: a copy of the prompt pipe's write end would keep
	 * the agent waiting for the prompt's end forever. The proxy's control channel is the one
	 * exception, kept as fd 3 (close-on-exec: only sandbox_proxy_start hands it on). */
	if (spec->proxy_control_fd >= 0) {
		if (dup2(spec->proxy_control_fd, 3) < 0 || fcntl(3, F_SETFD, FD_CLOEXEC) < 0)
			_exit(SANDBOX_EXIT_SETUP);
		spec->proxy_control_fd = 3;
	}
	close_range(spec->proxy_control_fd >= 0 ? 4 : 3, ~0U, 0);
	struct sandbox_result res;
	if (a->vm_service)
		(void)vm_client_run(a->vm_service, spec, a->self, &res);
	else
		(void)sandbox_run(spec, &res);
	if (res.message[0])
		log_error("%s", res.message);
	_exit(res.status);
}

static void
print_warning(const char *msg)
{
	log_warn("%s", msg);
}

static int
supervise(struct ask *a, pid_t child, int in, int out, int err, int sfd)
{
	struct lines lo = {0}, le = {0};
	dbuf_init(&lo.buf, EVENT_LINE_MAX);
	dbuf_init(&le.buf, 64 * 1024);
	size_t prompt_len = strlen(a->prompt), sent = 0;
	char buf[65536];
	while (out >= 0 || err >= 0) {
		struct pollfd pfd[4] = {
		    {.fd = out, .events = POLLIN},
		    {.fd = err, .events = POLLIN},
		    {.fd = in, .events = POLLOUT},
		    {.fd = sfd, .events = POLLIN},
		};
		if (poll(pfd, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[3].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si))
				kill(child, (int)si.ssi_signo); /* the launcher passes it on */
		}
		if (pfd[2].revents) {
			ssize_t n = write(in, a->prompt + sent, prompt_len - sent);
			if (n > 0)
				sent += (size_t)n;
			if (n < 0 || sent == prompt_len) {
				close(in);
				in = -1;
			}
		}
		for (int k = 0; k < 2; k++) {
			int *fd = k == 0 ? &out : &err;
			if (!pfd[k].revents)
				continue;
			ssize_t n = read(*fd, buf, sizeof(buf));
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0) {
				close(*fd);
				*fd = -1;
				continue;
			}
			if (k == 0)
				lines_feed(&lo, buf, (size_t)n, on_event_line, a);
			else
				lines_feed(&le, buf, (size_t)n, on_err_line, a);
		}
	}
	if (in >= 0)
		close(in);
	dbuf_done(&lo.buf);
	dbuf_done(&le.buf);
	int status;
	while (waitpid(child, &status, 0) < 0)
		if (errno != EINTR)
			return SANDBOX_EXIT_SETUP;
	close_text(a);
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	if (a->eng.kind != ENGINE_CLAWBOX) {
		/* The largest process the run waited for: the engine (getrusage(2)). */
		struct rusage ru;
		long peak = getrusage(RUSAGE_CHILDREN, &ru) == 0 ? ru.ru_maxrss : 0;
		engine_finish(&a->xlate, code, peak, on_engine_event, a);
	}
	if (!a->done_seen && code == 0) {
		log_error("the agent ended without an answer");
		return AGENT_EXIT_MODEL;
	}
	return code;
}

int
cmd_ask(int argc, char **argv)
{
	struct ask a = {.proxy_control_fd = -1};
	struct sandbox_spec spec;
	static struct proxy_command pc;
	const char *agent_argv[96];
	int r;

	log_set_prefix("clawbox ask");
	sandbox_spec_init(&spec);
	spec.warn = print_warning;
	r = sandbox_spec_default_env(&spec, getenv("TERM"));
	if (r >= 0)
		r = parse_options(&a, &spec, argc, argv);
	if (r == 0 && spec.layer && a.vm_service)
		r = (log_error("--layer: not with --vm-service"), -EINVAL);
	if (r == 0)
		r = load_prompt(&a);
	if (r == 0)
		r = build_sandbox(&a, &spec, &pc, agent_argv, ARRAY_SIZE(agent_argv));
	if (r != 0) {
		sandbox_spec_done(&spec);
		free(a.prompt);
		return r > 0                                         ? 0
		       : r == -ENOKEY || r == -EINVAL || r == -E2BIG ? ASK_EXIT_USAGE
		                                                     : SANDBOX_EXIT_SETUP;
	}

	int in[2], out[2], err[2];
	pid_t child = -1, self = getpid();
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
		log_error("cannot make pipes: %s", strerror(errno));
	else if (fflush(NULL), (child = fork()) < 0)
		log_error("cannot fork: %s", strerror(errno));
	if (child < 0) {
		sandbox_spec_done(&spec);
		free(a.prompt);
		return SANDBOX_EXIT_SETUP; /* the process ends: its pipes go with it */
	}
	if (child == 0)
		launcher(&a, &spec, self, in[0], out[1], err[1]);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	signal(SIGPIPE, SIG_IGN);
	int sfd = stop_signals_fd(NULL);
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	int status = supervise(&a, child, in[1], out[0], err[0], sfd);
	if (sfd >= 0)
		close(sfd);
	sandbox_spec_done(&spec);
	free(a.prompt);
	return status;
}
