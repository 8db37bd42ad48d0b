/*
 * agent-main.c: `clawbox agent [OPTIONS] PROMPT`, the agent itself. It runs inside a sandbox
 * (started by `clawbox ask` or the daemon), as the unprivileged user, and reaches the model
 * only through the egress proxy, which holds the key. Options here are what the host decided;
 * nothing in them is secret.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "mcp-client.h"
#include "agent.h"
#include "tools.h"
#include "commands.h"
#include "events.h"
#include "fd-util.h"
#include "log.h"
#include "parse.h"

#define DEFAULT_ANTHROPIC_MODEL "claude-sonnet-4-5"
#define DEFAULT_OPENAI_MODEL    "gpt-4.1"

/* LeakSanitizer (in `make check SANITIZE=...` builds) stops the world with ptrace, which the
 * sandbox's seccomp filter refuses, as it must. Under a filter, the agent leaves leak checks
 * to the unit tests and fuzzers, which run the same code on the host. Unused otherwise. */
int __lsan_is_turned_off(void);
int
__lsan_is_turned_off(void)
{
	return prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 2;
}

static void
agent_usage(FILE *out)
{
	fprintf(out,
	        "usage: clawbox agent [OPTIONS] PROMPT\n"
	        "\n"
	        "The agent: runs one invocation (model, tools, answer) inside a sandbox. It is\n"
	        "started by 'clawbox ask' and the daemon; to use it by hand, run it under\n"
	        "'clawbox run --model-upstream URL ...'. PROMPT '-' reads the prompt from stdin.\n"
	        "\n"
	        "Options:\n"
	        "  --provider anthropic|openai   the model API (default anthropic)\n"
	        "  --model NAME                  (default " DEFAULT_ANTHROPIC_MODEL
	        " / " DEFAULT_OPENAI_MODEL ")\n"
	        "  --max-tokens N                output tokens per reply (default 8192)\n"
	        "  --max-tokens-field NAME       OpenAI: max_tokens or max_completion_tokens\n"
	        "  --proxy HOST:PORT             the egress proxy (default: $HTTP_PROXY)\n"
	        "  --base-url URL                the model API as the proxy names it (default\n"
	        "                                " MODEL_BASE_URL ")\n"
	        "  --no-stream                   ask for whole replies instead of streams\n"
	        "  --state DIR                   where the conversation is kept (default .)\n"
	        "  --workspace DIR               the working folder (default .)\n"
	        "  --global-memory FILE          a memory file shared by all groups\n"
	        "  --new                         start a new conversation (the old is archived)\n"
	        "  --max-turns N                 model requests per invocation (default 50)\n"
	        "  --max-time SECONDS            wall time of the invocation (default 900)\n"
	        "  --max-total-tokens N          tokens per invocation (default 2000000)\n"
	        "  --context-window N            the model's context in tokens (default 200000)\n"
	        "  --compact-at PERCENT          summarise the history past this share of the\n"
	        "                                window (default 80)\n"
	        "  --max-retries N               on 429/5xx/529 (default 3)\n"
	        "  --events                      JSON lines on stdout for the host to render\n"
	        "  --host-socket PATH            the daemon's socket for host actions\n"
	        "  --mcp-server 'NAME=CMD ARG..' an MCP server to run over stdio; its tools\n"
	        "                                are mcp__NAME__TOOL (repeatable, up to 8)\n"
	        "  --mcp-timeout SECONDS         one MCP call's limit (default 60)\n"
	        "                                (send_message, schedule_task, ...)\n"
	        "  --note TEXT                   a line from the host for the system prompt\n"
	        "  --tools LIST                  only these tools (comma-separated): the group's\n"
	        "                                policy\n"
	        "  -h, --help                    this text\n"
	        "\n"
	        "Exit status: 0 answered, 1 the model API failed, 2 bad usage, 3 a limit was\n"
	        "reached, 4 the state folder cannot be used.\n");
}

enum {
	OPT_PROVIDER = 0x100,
	OPT_MODEL,
	OPT_MAX_TOKENS,
	OPT_MAX_TOKENS_FIELD,
	OPT_PROXY,
	OPT_BASE_URL,
	OPT_NO_STREAM,
	OPT_STATE,
	OPT_WORKSPACE,
	OPT_GLOBAL_MEMORY,
	OPT_NEW,
	OPT_MAX_TURNS,
	OPT_MAX_TIME,
	OPT_MAX_TOTAL,
	OPT_CONTEXT,
	OPT_COMPACT,
	OPT_RETRIES,
	OPT_EVENTS,
	OPT_HOST_SOCKET,
	OPT_MCP_SERVER,
	OPT_MCP_TIMEOUT,
	OPT_NOTE,
	OPT_TOOLS,
};

static const struct option agent_options[] = {
    {"provider", required_argument, NULL, OPT_PROVIDER},
    {"model", required_argument, NULL, OPT_MODEL},
    {"max-tokens", required_argument, NULL, OPT_MAX_TOKENS},
    {"max-tokens-field", required_argument, NULL, OPT_MAX_TOKENS_FIELD},
    {"proxy", required_argument, NULL, OPT_PROXY},
    {"base-url", required_argument, NULL, OPT_BASE_URL},
    {"no-stream", no_argument, NULL, OPT_NO_STREAM},
    {"state", required_argument, NULL, OPT_STATE},
    {"workspace", required_argument, NULL, OPT_WORKSPACE},
    {"global-memory", required_argument, NULL, OPT_GLOBAL_MEMORY},
    {"new", no_argument, NULL, OPT_NEW},
    {"max-turns", required_argument, NULL, OPT_MAX_TURNS},
    {"max-time", required_argument, NULL, OPT_MAX_TIME},
    {"max-total-tokens", required_argument, NULL, OPT_MAX_TOTAL},
    {"context-window", required_argument, NULL, OPT_CONTEXT},
    {"compact-at", required_argument, NULL, OPT_COMPACT},
    {"max-retries", required_argument, NULL, OPT_RETRIES},
    {"events", no_argument, NULL, OPT_EVENTS},
    {"host-socket", required_argument, NULL, OPT_HOST_SOCKET},
    {"mcp-server", required_argument, NULL, OPT_MCP_SERVER},
    {"mcp-timeout", required_argument, NULL, OPT_MCP_TIMEOUT},
    {"note", required_argument, NULL, OPT_NOTE},
    {"tools", required_argument, NULL, OPT_TOOLS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int
number(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	if (parse_u64(s, max, ret) < 0 || *ret < min) {
		log_error("%s %s: expected a number from %llu to %llu", opt, s,
		          (unsigned long long)min, (unsigned long long)max);
		return -EINVAL;
	}
	return 0;
}

/* The prompt: the argument, or stdin for "-". Returns an owned string or NULL (logged). */
static char *
read_prompt(const char *arg)
{
	if (strcmp(arg, "-") != 0) {
		if (strlen(arg) > AGENT_PROMPT_MAX) {
			log_error("the prompt is longer than %d bytes", AGENT_PROMPT_MAX);
			return NULL;
		}
		return strdup(arg);
	}
	char *buf = malloc(AGENT_PROMPT_MAX + 2);
	if (!buf)
		return NULL;
	ssize_t n = read_full(0, buf, AGENT_PROMPT_MAX + 1);
	if (n < 0 || n > AGENT_PROMPT_MAX) {
		log_error(n < 0 ? "cannot read the prompt from stdin"
		                : "the prompt is longer than %d bytes",
		          AGENT_PROMPT_MAX);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

int
cmd_agent(int argc, char **argv)
{
	struct agent_config cfg = {
	    .client = {.provider = MODEL_ANTHROPIC,
	               .max_tokens = 8192,
	               .stream = true,
	               .idle_ms = 300000},
	    .state_dir = ".",
	    .workspace = ".",
	    .max_turns = 50,
	    .max_time_ms = 900000,
	    .max_total_tokens = 2000000,
	    .context_window = 200000,
	    .compact_percent = 80,
	    .max_retries = 3,
	};
	const char *proxy = getenv("HTTP_PROXY") ? getenv("HTTP_PROXY") : getenv("http_proxy");
	uint64_t v;
	int opt;

	log_set_prefix("clawbox agent");
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "+h", agent_options, NULL)) != -1) {
		switch (opt) {
		case OPT_PROVIDER:
			if (model_provider_parse(optarg, &cfg.client.provider) < 0) {
				log_error("--provider %s: expected anthropic or openai", optarg);
				return AGENT_EXIT_USAGE;
			}
			break;
		case OPT_MODEL:
			cfg.client.model = optarg;
			break;
		case OPT_MAX_TOKENS:
			if (number("--max-tokens", optarg, 1, 1000000, &cfg.client.max_tokens) < 0)
				return AGENT_EXIT_USAGE;
			break;
		case OPT_MAX_TOKENS_FIELD:
			if (strcmp(optarg, "max_tokens") != 0 &&
			    strcmp(optarg, "max_completion_tokens") != 0) {
				log_error(
				    "--max-tokens-field: max_tokens or max_completion_tokens");
				return AGENT_EXIT_USAGE;
			}
			cfg.client.max_tokens_field = optarg;
			break;
		case OPT_PROXY:
			proxy = optarg;
			break;
		case OPT_BASE_URL:
			if (strncmp(optarg, "http://", 7) != 0 || strlen(optarg) > 256) {
				log_error(
				    "--base-url %s: expected http://HOST[:PORT] (the proxy does "
				    "TLS)",
				    optarg);
				return AGENT_EXIT_USAGE;
			}
			cfg.client.base_url = optarg;
			break;
		case OPT_NO_STREAM:
			cfg.client.stream = false;
			break;
		case OPT_STATE:
			cfg.state_dir = optarg;
			break;
		case OPT_WORKSPACE:
			cfg.workspace = optarg;
			break;
		case OPT_GLOBAL_MEMORY:
			cfg.global_memory = optarg;
			break;
		case OPT_NOTE:
			if (strlen(optarg) > AGENT_NOTE_MAX) {
				log_error("--note: at most %d bytes", AGENT_NOTE_MAX);
				return AGENT_EXIT_USAGE;
			}
			cfg.note = optarg;
			break;
		case OPT_NEW:
			cfg.fresh = true;
			break;
		case OPT_MAX_TURNS:
			if (number("--max-turns", optarg, 1, 10000, &cfg.max_turns) < 0)
				return AGENT_EXIT_USAGE;
			break;
		case OPT_MAX_TIME:
			if (number("--max-time", optarg, 1, 7 * 86400, &v) < 0)
				return AGENT_EXIT_USAGE;
			cfg.max_time_ms = v * 1000;
			break;
		case OPT_MAX_TOTAL:
			if (number("--max-total-tokens", optarg, 1, 1000000000000ULL,
			           &cfg.max_total_tokens) < 0)
				return AGENT_EXIT_USAGE;
			break;
		case OPT_CONTEXT:
			if (number("--context-window", optarg, 1000, 100000000,
			           &cfg.context_window) < 0)
				return AGENT_EXIT_USAGE;
			break;
		case OPT_COMPACT:
			if (number("--compact-at", optarg, 10, 100, &v) < 0)
				return AGENT_EXIT_USAGE;
			cfg.compact_percent = (unsigned)v;
			break;
		case OPT_RETRIES:
			if (number("--max-retries", optarg, 0, 10, &v) < 0)
				return AGENT_EXIT_USAGE;
			cfg.max_retries = (unsigned)v;
			break;
		case OPT_EVENTS:
			events_set_json(true);
			break;
		case OPT_TOOLS:
			if (tools_grant(optarg) < 0) {
				log_error("--tools: at most 511 bytes");
				return AGENT_EXIT_USAGE;
			}
			break;
		case OPT_HOST_SOCKET:
			cfg.host_socket = optarg;
			break;
		case OPT_MCP_SERVER: {
			struct mcp_set scratch;
			char why[160];
			mcp_set_init(&scratch);
			int r = cfg.n_mcp >= ARRAY_SIZE(cfg.mcp_servers)
			            ? (snprintf(why, sizeof(why), "at most 8"), -E2BIG)
			            : mcp_set_add(&scratch, optarg, why, sizeof(why));
			mcp_set_done(&scratch);
			if (r < 0) {
				log_error("--mcp-server %s: %s", optarg, why);
				return AGENT_EXIT_USAGE;
			}
			cfg.mcp_servers[cfg.n_mcp++] = optarg;
			break;
		}
		case OPT_MCP_TIMEOUT:
			if (number("--mcp-timeout", optarg, 1, 3600, &v) < 0)
				return AGENT_EXIT_USAGE;
			cfg.mcp_timeout_s = (unsigned)v;
			break;
		case 'h':
			agent_usage(stdout);
			return 0;
		default:
			log_error(
			    "option %s: unknown or missing its value; see 'clawbox agent --help'",
			    argv[optind - 1]);
			return AGENT_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		log_error(optind >= argc
		              ? "no prompt given; see 'clawbox agent --help'"
		              : "one prompt expected (quote it); see 'clawbox agent --help'");
		return AGENT_EXIT_USAGE;
	}
	if (!cfg.client.model)
		cfg.client.model = cfg.client.provider == MODEL_OPENAI ? DEFAULT_OPENAI_MODEL
		                                                       : DEFAULT_ANTHROPIC_MODEL;
	if (proxy && http_proxy_parse(proxy, &cfg.client.proxy) < 0) {
		log_error("proxy %s: expected http://ADDRESS:PORT with a numeric address", proxy);
		return AGENT_EXIT_USAGE;
	}
	if (!proxy) {
		log_error("no egress proxy: this sandbox has no way to the model (set --proxy, or "
		          "start it with 'clawbox run --model-upstream')");
		return AGENT_EXIT_USAGE;
	}
	char *prompt = read_prompt(argv[optind]);
	if (!prompt)
		return AGENT_EXIT_USAGE;
	if (!*prompt) {
		free(prompt);
		log_error("the prompt is empty");
		return AGENT_EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN); /* a closed stdout is an error return, not death */
	int status = agent_run(&cfg, prompt);
	free(prompt);
	return status;
}
