/*
 * proxy-main.c: `clawbox-proxy`, the egress proxy's own executable. Kept apart from `clawbox`
 * because it links what the sandbox launcher must not load (libevent, jansson, libidn2, and
 * libcurl once credentials are added). `clawbox run --net proxy` starts one per sandbox, with
 * the sandbox's socket as fd 3.
 */
#include <errno.h>
#include <fcntl.h>
#include <curl/curl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "parse.h"
#include "paths.h"
#include "ca.h"
#include "proxy.h"
#include "services.h"

static void
usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: clawbox-proxy [OPTIONS]\n"
	    "\n"
	    "The egress proxy of one sandbox. Started by 'clawbox run --net proxy', which passes\n"
	    "the sandbox's connections on fd 3; not meant to be run by hand.\n"
	    "\n"
	    "  --allow HOST[:PORT]    allow a destination (repeatable; see clawbox run --help)\n"
	    "  --audit FILE           append one JSON line per request\n"
	    "  --sandbox-id ID        name the sandbox in the audit\n"
	    "  --sandbox-fd N         the sandbox's socket (default 3)\n"
	    "  --hosts FILE           resolve names from FILE only, no DNS servers\n"
	    "  --max-connections N    at once (default 64)\n"
	    "  --max-total-bytes N    in and out over the proxy's life (default 4G)\n"
	    "  --max-bytes-out N      sent by the sandbox over the run (default 1G)\n"
	    "  --max-bytes-in N       received by the sandbox over the run (default 4G)\n"
	    "  --max-requests N       requests and tunnels over the run (default 10000)\n"
	    "  --model-allow-tool T   let model requests use the server-side tool (or\n"
	    "                         anthropic-beta value) T (repeatable; 'mcp': mcp_servers)\n"
	    "  --budget JSON          what the run may spend: tokens, cost, tool calls, egress\n"
	    "                         bytes, and the models' prices (see meter.h)\n"
	    "  --idle-timeout S       for tunnels and responses (default 300)\n"
	    "  --upstream URL         the model API, reachable inside as http://" UPSTREAM_NAME
	    "/\n"
	    "  --upstream-key-env V   its key, from the environment variable V\n"
	    "  --upstream-key-file F  its key, from F (mode 0600)\n"
	    "  --upstream-no-key      it needs none (a local model server)\n"
	    "  --fetch-ca-file F      trust the CAs in F for https:// URLs the proxy fetches\n"
	    "                         (GET https://... from clients without TLS)\n"
	    "  --upstream-header H    where the key goes: NAME or 'NAME: PREFIX'\n"
	    "                         (default x-api-key; OpenAI: 'Authorization: Bearer')\n"
	    "  --upstream-ca-file F   trust the CAs in F for the upstream (a private server)\n"
	    "  --service JSON         a credential bound to hosts (repeatable; see clawbox run\n"
	    "                         --help); its HTTPS is intercepted with the CA of --ca-dir\n"
	    "  --ca-dir DIR           the interception CA (made on first use)\n"
	    "  --ca-init              make the CA and DIR/bundle.crt if absent, then exit\n"
	    "  --egress JSON          verdicts per host: {\"unlisted\": \"deny\"|\"ask\", "
	    "\"rules\":\n"
	    "                         [{\"host\", \"verdict\", \"trusted\", \"when_tainted\"}]}\n"
	    "  --tainted CAUSE        the run starts tainted (repeatable)\n"
	    "  --control-fd N         the daemon's control channel: asks for approvals, taint\n"
	    "                         (without it, an ask verdict is a denial)\n"
	    "  --check                only check the options, then exit\n"
	    "  --log-prefix NAME      start error lines with NAME (the command the user ran)\n");
}

int
main(int argc, char **argv)
{
	static const struct option options[] = {
	    {"allow", required_argument, NULL, 'a'},
	    {"audit", required_argument, NULL, 'A'},
	    {"sandbox-id", required_argument, NULL, 'i'},
	    {"sandbox-fd", required_argument, NULL, 'f'},
	    {"hosts", required_argument, NULL, 'H'},
	    {"max-connections", required_argument, NULL, 'c'},
	    {"max-total-bytes", required_argument, NULL, 't'},
	    {"idle-timeout", required_argument, NULL, 'T'},
	    {"check", no_argument, NULL, 'C'},
	    {"log-prefix", required_argument, NULL, 'P'},
	    {"upstream", required_argument, NULL, 'u'},
	    {"upstream-key-env", required_argument, NULL, 'e'},
	    {"upstream-key-file", required_argument, NULL, 'k'},
	    {"upstream-header", required_argument, NULL, 'x'},
	    {"upstream-ca-file", required_argument, NULL, 'K'},
	    {"upstream-no-key", no_argument, NULL, 'N'},
	    {"fetch-ca-file", required_argument, NULL, 'F'},
	    {"service", required_argument, NULL, 's'},
	    {"ca-dir", required_argument, NULL, 'D'},
	    {"ca-init", no_argument, NULL, 'Z'},
	    {"max-bytes-out", required_argument, NULL, 'O'},
	    {"max-bytes-in", required_argument, NULL, 'I'},
	    {"max-requests", required_argument, NULL, 'R'},
	    {"model-allow-tool", required_argument, NULL, 'M'},
	    {"egress", required_argument, NULL, 'E'},
	    {"tainted", required_argument, NULL, 'G'},
	    {"control-fd", required_argument, NULL, 'L'},
	    {"budget", required_argument, NULL, 'B'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	bool check_only = false, ca_init = false;
	static struct services services;
	services_init(&services);
	static struct upstream_config up;
	const char *key_env = NULL, *key_file = NULL;
	bool no_key = false;
	snprintf(up.header_name, sizeof(up.header_name), "x-api-key");
	struct proxy_config cfg;
	static struct egress_taint start_taint;
	static struct meter meter;
	char budget_why[256];
	const char *why;
	uint64_t v;
	int opt, r;

	log_set_prefix("clawbox-proxy");
	if (version_asked(argc, argv, "clawbox-proxy"))
		return 0;
	proxy_config_init(&cfg);
	cfg.sandbox_fd = 3;
	meter_init(&meter);
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (opt) {
		case 'P':
			log_set_prefix(optarg);
			break;
		case 'a':
			if (allowlist_add(&cfg.allow, optarg, &why) < 0) {
				log_error("--allow %s: %s", optarg, why);
				return 2;
			}
			break;
		case 'A':
			cfg.audit_fd =
			    open(optarg, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
			if (cfg.audit_fd < 0) {
				log_error("--audit %s: %s", optarg, strerror(errno));
				return 2;
			}
			break;
		case 'i':
			cfg.sandbox_id = optarg;
			break;
		case 'f':
			if (parse_u64(optarg, 65535, &v) < 0) {
				log_error("--sandbox-fd %s: expected a descriptor number", optarg);
				return 2;
			}
			cfg.sandbox_fd = (int)v;
			break;
		case 'H':
			cfg.hosts_file = optarg;
			break;
		case 'c':
			if (parse_u64(optarg, 100000, &v) < 0 || v == 0) {
				log_error("--max-connections %s: expected 1 to 100000", optarg);
				return 2;
			}
			cfg.max_connections = (unsigned)v;
			break;
		case 't':
			if (parse_size(optarg, &v) < 0) {
				log_error("--max-total-bytes %s: expected a size", optarg);
				return 2;
			}
			cfg.max_total_bytes = v;
			break;
		case 'O':
		case 'I':
			if (parse_size(optarg, &v) < 0) {
				log_error("--max-bytes-%s %s: expected a size", opt == 'O' ? "out" : "in",
				          optarg);
				return 2;
			}
			*(opt == 'O' ? &cfg.max_bytes_out : &cfg.max_bytes_in) = v;
			break;
		case 'R':
			if (parse_u64(optarg, 100000000, &v) < 0 || v == 0) {
				log_error("--max-requests %s: expected 1 to 100000000", optarg);
				return 2;
			}
			cfg.max_requests = (unsigned)v;
			break;
		case 'M':
			if (model_fence_allow(&cfg.model_fence, optarg) < 0) {
				log_error("--model-allow-tool %s: empty, or more than %d of them", optarg,
				          MODEL_ALLOW_TOOLS_MAX);
				return 2;
			}
			break;
		case 'B':
			if (meter_parse(&meter, optarg, budget_why, sizeof(budget_why)) < 0) {
				log_error("%s", budget_why);
				return 2;
			}
			cfg.meter = &meter; /* metered (and its totals audited) only when asked */
			break;
		case 'T':
			if (parse_u64(optarg, 86400, &v) < 0 || v == 0) {
				log_error("--idle-timeout %s: expected 1 to 86400 seconds", optarg);
				return 2;
			}
			cfg.idle_timeout_s = (unsigned)v;
			break;
		case 'E':
			if (egress_parse(&cfg.egress, optarg, &why) < 0) {
				log_error("--egress: %s", why);
				return 2;
			}
			cfg.taint_verdicts = true;
			break;
		case 'G':
			if (!optarg[0]) {
				log_error("--tainted: expected a cause");
				return 2;
			}
			(void)egress_taint_add(&start_taint, optarg);
			cfg.start_taint = &start_taint;
			cfg.taint_verdicts = true;
			break;
		case 'L':
			if (parse_u64(optarg, 65535, &v) < 0 || v < 3) {
				log_error("--control-fd %s: expected a descriptor number", optarg);
				return 2;
			}
			cfg.control_fd = (int)v;
			cfg.taint_verdicts = true;
			break;
		case 'C':
			check_only = true;
			break;
		case 'u':
			if (strncmp(optarg, "https://", 8) != 0 &&
			    strncmp(optarg, "http://", 7) != 0) {
				log_error("--upstream %s: expected an http:// or https:// URL",
				          optarg);
				return 2;
			}
			up.base_url = optarg;
			break;
		case 'e':
			key_env = optarg;
			break;
		case 'k':
			key_file = optarg;
			break;
		case 'N':
			no_key =
			    true; /* a local model server (Ollama, llama.cpp) that wants none */
			break;
		case 'F':
			if (access(optarg, R_OK) < 0) {
				log_error("--fetch-ca-file %s: %s", optarg, strerror(errno));
				return 2;
			}
			cfg.fetch_ca_file = optarg;
			break;
		case 'K':
			if (access(optarg, R_OK) < 0) {
				log_error("--upstream-ca-file %s: %s", optarg, strerror(errno));
				return 2;
			}
			up.ca_file = optarg;
			break;
		case 'x':
			if (upstream_set_header(&up, optarg) < 0) {
				log_error("--upstream-header %s: expected NAME or 'NAME: PREFIX'",
				          optarg);
				return 2;
			}
			break;
		case 's':
			if (services_add(&services, optarg, &why) < 0) {
				log_error("--service: %s", why);
				return 2;
			}
			break;
		case 'D':
			cfg.ca_dir = optarg;
			break;
		case 'Z':
			ca_init = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			log_error("unknown option or missing value: %s", argv[optind - 1]);
			return 2;
		}
	}
	if (up.base_url) {
		if (!key_env && !key_file && !no_key) {
			log_error("--upstream needs --upstream-key-env, --upstream-key-file or "
			          "--upstream-no-key");
			return 2;
		}
		if (!no_key && upstream_load_key(&up, key_env, key_file, &why) < 0) {
			log_error("model key (%s): %s", key_env ? key_env : key_file, why);
			return 2;
		}
		cfg.upstream = &up;
	}
	services_forget_env(&services);
	if (ca_init) {
		struct ca *ca = NULL;
		if (!cfg.ca_dir) {
			log_error("--ca-init needs --ca-dir");
			return 2;
		}
		if (ca_load(cfg.ca_dir, &ca, &why) < 0) {
			log_error("the interception CA in %s: %s", cfg.ca_dir, why);
			return 1;
		}
		ca_free(ca);
		return 0;
	}
	if (services.n > 0 && !cfg.ca_dir) {
		log_error("--service needs --ca-dir (where the interception CA is kept)");
		return 2;
	}
	/* The model key is a secret too: leak detection looks for it in every request but
	 * those to the model upstream. */
	if (cfg.upstream && cfg.upstream->key[0] &&
	    services_add_model_key(&services, cfg.upstream->key) < 0) {
		log_error("too many secret patterns");
		return 2;
	}
	if (services.leaks.n > 0)
		cfg.services = &services;
	if (check_only)
		return 0; /* the options parsed: that was the question */
	if (cfg.control_fd >= 0 && fcntl(cfg.control_fd, F_SETFD, FD_CLOEXEC) < 0) {
		log_error("--control-fd %d: %s", cfg.control_fd, strerror(errno));
		return 2;
	}
	if (geteuid() == 0)
		cfg.drop_to_id = PROXY_HOST_ID;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	r = proxy_run(&cfg);
	if (r < 0) {
		log_error("%s", strerror(-r));
		return 1;
	}
	return 0;
}
