/*
 * run.c: `clawbox run [OPTIONS] [--] COMMAND [ARG...]`: options to a sandbox_spec, then
 * sandbox_run(). Bad options exit 125 with one line, as the contract says (the command's own
 * statuses are passed through untouched, so 125 is ours alone).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stddef.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "commands.h"
#include "net-options.h"
#include "log.h"
#include "macro.h"
#include "parse.h"
#include "run-vm.h"
#include "vm-client.h"
#include "vm-host.h"
#include "layer.h"
#include "sandbox.h"

static void
run_usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: clawbox run [OPTIONS] [--] COMMAND [ARG...]\n"
	    "\n"
	    "Runs COMMAND in a fresh sandbox that is removed when it ends: its own user, mount,\n"
	    "pid, network, uts, ipc, cgroup and time namespaces; uid 1000 inside, never root\n"
	    "outside; no capabilities; a seccomp allowlist; landlock; memory, process and CPU\n"
	    "limits; read-only system folders and nothing else of the host unless mounted.\n"
	    "\n"
	    "Options:\n"
	    "  --mount HOST:PATH[:ro|:rw]  share a host file or folder at PATH (read-only\n"
	    "                              unless :rw); repeatable\n"
	    "  --workdir PATH              working folder inside (default " SANDBOX_HOME ")\n"
	    "  --env NAME=VALUE            set a variable; repeatable. The environment starts\n"
	    "                              empty but for PATH, HOME, LANG and TERM\n"
	    "  --memory SIZE               memory limit, K/M/G suffixes (default 512M)\n"
	    "  --pids N                    process limit (default 256)\n"
	    "  --cpus N                    CPU limit in cores, e.g. 0.5 (default none)\n"
	    "  --timeout SECONDS           kill everything after SECONDS; exit 124\n"
	    "  --net none|proxy            none (the default): loopback only. proxy: also the\n"
	    "                              egress proxy, as HTTP(S)_PROXY on the sandbox's\n"
	    "                              loopback; it lets through only what --allow names\n"
	    "  --allow HOST[:PORT]         allow a destination through the proxy (repeatable;\n"
	    "                              implies --net proxy). No port: 443 and 80. *.DOMAIN\n"
	    "                              for names below DOMAIN. Loopback, private and\n"
	    "                              link-local addresses only when named exactly\n"
	    "  --audit FILE                append one JSON line per proxied request to FILE\n"
	    "  --hosts FILE                the proxy resolves names from FILE only (testing,\n"
	    "                              air-gapped hosts)\n"
	    "  --agent claude-code|codex   the engine's npm package (installed on the host)\n"
	    "                              read-only, its placeholder key, model address and\n"
	    "                              no non-essential traffic; COMMAND 'claude' or 'codex'\n"
	    "                              is that engine (with --model-upstream)\n"
	    "  --model-upstream URL        the model API, reachable inside as\n"
	    "                              http://model.clawbox.internal/; the proxy adds the\n"
	    "                              key (implies --net proxy)\n"
	    "  --model-key-env NAME        the key, from this variable of ours (never passed in)\n"
	    "  --model-key-file FILE       the key, from FILE (mode 0600)\n"
	    "  --model-header SPEC         where the key goes: NAME or 'NAME: PREFIX'\n"
	    "                              (default x-api-key; OpenAI: 'Authorization: Bearer')\n"
	    "  --model-ca-file FILE        trust the CAs in FILE for the model API (a private\n"
	    "                              server with its own certificate)\n"
	    "  --fetch-ca-file FILE        trust the CAs in FILE for https:// URLs the proxy\n"
	    "                              fetches for clients without TLS (GET https://...)\n"
	    "  --service SPEC              a credential bound to hosts (repeatable; implies\n"
	    "                              --net proxy): JSON or @FILE, e.g. {\"name\":\"github\",\n"
	    "                              \"hosts\":[\"api.github.com\"],\"secret_env\":\"TOKEN\",\n"
	    "                              \"placeholder_env\":\"GITHUB_TOKEN\"}. Inside, only a\n"
	    "                              per-run placeholder; the proxy swaps in the secret\n"
	    "                              (secret_env of ours, or secret_file 0600) on requests\n"
	    "                              to those hosts, intercepting their HTTPS. Optional:\n"
	    "                              \"header\":\"Authorization: Bearer\" (added if absent),\n"
	    "                              \"query\": true or a parameter name (swap in the URL)\n"
	    "  --ca-dir DIR                the interception CA (default\n"
	    "                              ~/.local/share/clawbox/ca, made on first use)\n"
	    "  --proxy-idle-timeout S      close a proxied connection idle for S s (default 300)\n"
	    "  --proxy-max-bytes SIZE      traffic through the proxy, both ways (default 4G)\n"
	    "  --proxy-max-bytes-out SIZE, --proxy-max-bytes-in SIZE, --proxy-max-requests N\n"
	    "                              per-run caps: sent, received (defaults 1G, 4G), and\n"
	    "                              requests (default 10000)\n"
	    "  --model-allow-tool NAME     let model requests use this server-side tool (repeatable)\n"
	    "  --vm                        make the sandbox inside a microVM with its own kernel\n"
	    "                              (qemu -M microvm, itself confined); mounts of\n"
	    "                              folders and files, no --rootfs; with --net proxy,\n"
	    "                              the proxy stays on the host\n"
	    "  --vm-accel auto|kvm|tcg     the VM's accelerator (default auto: KVM if it can\n"
	    "                              boot the guest here, else TCG; CLAWBOX_VM_ACCEL)\n"
	    "  --vm-image DIR              the guest (default: build/vm next to clawbox, made\n"
	    "                              by make guest; installed: PREFIX/lib/clawbox/vm)\n"
	    "  --vm-service PATH           make the sandbox in the running VM of 'clawbox\n"
	    "                              vm-service --socket PATH' (mounts: in its shares)\n"
	    "  --rootfs DIR                use DIR as the read-only root instead of the host's\n"
	    "                              system folders\n"
	    "  --layer DIR                 a package layer (clawbox env builds them): its usr/\n"
	    "                              over /usr, read-only; DIR at /opt/clawbox-env with\n"
	    "                              its venv/bin and npm/bin first on PATH\n"
	    "  --debug                     print what the sandbox sets up\n"
	    "  -h, --help                  this text\n"
	    "\n"
	    "Exit status: the command's own; 128+N if it died of signal N (137 when it ran out\n"
	    "of memory); 124 on timeout; 125 if the sandbox could not be set up; 126 if COMMAND\n"
	    "cannot be executed; 127 if it is not found.\n");
}

enum {
	OPT_MOUNT = 0x100,
	OPT_WORKDIR,
	OPT_ENV,
	OPT_MEMORY,
	OPT_PIDS,
	OPT_CPUS,
	OPT_TIMEOUT,
	OPT_NET,
	OPT_ALLOW,
	OPT_ROOTFS,
	OPT_LAYER,
	OPT_DEBUG,
	OPT_AUDIT,
	OPT_HOSTS,
	OPT_MODEL_UPSTREAM,
	OPT_MODEL_KEY_ENV,
	OPT_MODEL_KEY_FILE,
	OPT_MODEL_HEADER,
	OPT_PROXY_IDLE,
	OPT_PROXY_BYTES,
	OPT_MODEL_CA_FILE,
	OPT_FETCH_CA_FILE,
	OPT_SERVICE,
	OPT_CA_DIR,
	OPT_PROXY_MAX_OUT, /* these four: passed to the proxy as they are */
	OPT_PROXY_MAX_IN,
	OPT_PROXY_MAX_REQUESTS,
	OPT_MODEL_ALLOW_TOOL,
	OPT_VM,
	OPT_VM_IMAGE,
	OPT_VM_SERVICE,
	OPT_VM_ACCEL,
	OPT_AGENT,
};

static const struct option run_options[] = {
    {"mount", required_argument, NULL, OPT_MOUNT},
    {"workdir", required_argument, NULL, OPT_WORKDIR},
    {"env", required_argument, NULL, OPT_ENV},
    {"memory", required_argument, NULL, OPT_MEMORY},
    {"pids", required_argument, NULL, OPT_PIDS},
    {"cpus", required_argument, NULL, OPT_CPUS},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"net", required_argument, NULL, OPT_NET},
    {"allow", required_argument, NULL, OPT_ALLOW},
    {"rootfs", required_argument, NULL, OPT_ROOTFS},
    {"layer", required_argument, NULL, OPT_LAYER},
    {"audit", required_argument, NULL, OPT_AUDIT},
    {"hosts", required_argument, NULL, OPT_HOSTS},
    {"model-upstream", required_argument, NULL, OPT_MODEL_UPSTREAM},
    {"model-key-env", required_argument, NULL, OPT_MODEL_KEY_ENV},
    {"model-key-file", required_argument, NULL, OPT_MODEL_KEY_FILE},
    {"model-header", required_argument, NULL, OPT_MODEL_HEADER},
    {"proxy-idle-timeout", required_argument, NULL, OPT_PROXY_IDLE},
    {"proxy-max-bytes", required_argument, NULL, OPT_PROXY_BYTES},
    {"model-ca-file", required_argument, NULL, OPT_MODEL_CA_FILE},
    {"fetch-ca-file", required_argument, NULL, OPT_FETCH_CA_FILE},
    {"service", required_argument, NULL, OPT_SERVICE},
    {"ca-dir", required_argument, NULL, OPT_CA_DIR},
    {"proxy-max-bytes-out", required_argument, NULL, OPT_PROXY_MAX_OUT},
    {"proxy-max-bytes-in", required_argument, NULL, OPT_PROXY_MAX_IN},
    {"proxy-max-requests", required_argument, NULL, OPT_PROXY_MAX_REQUESTS},
    {"model-allow-tool", required_argument, NULL, OPT_MODEL_ALLOW_TOOL},
    {"vm", no_argument, NULL, OPT_VM},
    {"vm-image", required_argument, NULL, OPT_VM_IMAGE},
    {"vm-service", required_argument, NULL, OPT_VM_SERVICE},
    {"vm-accel", required_argument, NULL, OPT_VM_ACCEL},
    {"debug", no_argument, NULL, OPT_DEBUG},
    {"agent", required_argument, NULL, OPT_AGENT},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Replaces *slot with a copy of value. */
static int
set_string(char **slot, const char *value)
{
	char *copy = strdup(value);
	if (!copy)
		return -ENOMEM;
	free(*slot);
	*slot = copy;
	return 0;
}

static enum engine_kind run_agent; /* --agent */

static int
parse_options(struct sandbox_spec *spec, struct net_options *net, int argc, char **argv)
{
	const char *why;
	uint64_t v;
	int opt, r;

	r = sandbox_spec_default_env(spec, getenv("TERM"));
	if (r < 0)
		return log_error("cannot set up the environment: %s", strerror(-r)), r;

	opterr = 0;
	optind = 1;
	/* "+": options end at the first non-option, which is the command. */
	while ((opt = getopt_long(argc, argv, "+h", run_options, NULL)) != -1) {
		switch (opt) {
		case OPT_MOUNT:
			r = sandbox_spec_add_mount(spec, optarg, &why);
			if (r == -E2BIG)
				return log_error("--mount: at most %d mounts", SANDBOX_MAX_MOUNTS),
				       r;
			if (r < 0)
				return log_error("--mount %s: %s", optarg,
				                 why ? why : strerror(-r)),
				       r;
			break;
		case OPT_WORKDIR: {
			char *norm = NULL;
			r = optarg[0] == '/' && optarg[1] == '\0'
			        ? set_string(&spec->workdir, "/")
			        : sandbox_path_normalize(optarg, &norm);
			if (r < 0)
				return log_error("--workdir %s: must be an absolute path without "
				                 "\".\" or \"..\"",
				                 optarg),
				       r;
			if (norm) {
				free(spec->workdir);
				spec->workdir = norm;
			}
			break;
		}
		case OPT_ENV:
			r = sandbox_spec_set_env(spec, optarg);
			if (r == -EINVAL)
				return log_error(
				           "--env %s: expected NAME=VALUE with NAME of letters, "
				           "digits and _",
				           optarg),
				       r;
			if (r < 0)
				return log_error("--env: %s", strerror(-r)), r;
			break;
		case OPT_MEMORY:
			r = parse_size(optarg, &v);
			if (r < 0 || v < (4ULL << 20))
				return log_error(
				           "--memory %s: expected a size of at least 4M, such "
				           "as 512M or 2G",
				           optarg),
				       -EINVAL;
			spec->memory_bytes = v;
			break;
		case OPT_PIDS:
			r = parse_u64(optarg, SANDBOX_MAX_PIDS, &v);
			if (r < 0 || v == 0)
				return log_error("--pids %s: expected a number from 1 to %d",
				                 optarg, SANDBOX_MAX_PIDS),
				       -EINVAL;
			spec->pids_max = v;
			break;
		case OPT_CPUS:
			r = parse_milli(optarg, SANDBOX_MAX_CPUS_MILLI, &v);
			if (r < 0 || v < 10)
				return log_error(
				           "--cpus %s: expected a number of cores of at least "
				           "0.01, such as 0.5 or 2",
				           optarg),
				       -EINVAL;
			spec->cpus_milli = v;
			break;
		case OPT_TIMEOUT:
			r = parse_milli(optarg, SANDBOX_MAX_TIMEOUT_MS, &v);
			if (r < 0 || v == 0)
				return log_error("--timeout %s: expected a positive number of "
				                 "seconds",
				                 optarg),
				       -EINVAL;
			spec->timeout_ms = v;
			break;
		case OPT_NET:
			if (strcmp(optarg, "proxy") == 0)
				net->proxy = true;
			else if (strcmp(optarg, "none") == 0)
				net->none_given = true;
			else
				return log_error("--net %s: expected none or proxy", optarg),
				       -EINVAL;
			break;
		case OPT_ALLOW:
			if (net->n_allow >= MAX_ALLOW)
				return log_error("--allow: at most %d entries", MAX_ALLOW), -E2BIG;
			net->allow[net->n_allow++] = optarg;
			net->proxy = true;
			break;
		case OPT_AUDIT:
			net->audit = optarg;
			break;
		case OPT_HOSTS:
			net->hosts = optarg;
			break;
		case OPT_MODEL_UPSTREAM:
			net->model_upstream = optarg;
			net->proxy = true;
			break;
		case OPT_MODEL_KEY_ENV:
			net->model_key_env = optarg;
			break;
		case OPT_MODEL_KEY_FILE:
			net->model_key_file = optarg;
			break;
		case OPT_MODEL_HEADER:
			net->model_header = optarg;
			break;
		case OPT_PROXY_IDLE:
			net->idle_timeout = optarg;
			break;
		case OPT_PROXY_BYTES:
			net->max_bytes = optarg;
			break;
		case OPT_MODEL_CA_FILE:
			net->model_ca_file = optarg;
			break;
		case OPT_SERVICE:
			if (net->n_services >= MAX_SERVICES)
				return log_error("--service: at most %d", MAX_SERVICES), -E2BIG;
			net->services[net->n_services++] = optarg;
			net->proxy = true;
			break;
		case OPT_CA_DIR:
			net->ca_dir = optarg;
			break;
		case OPT_FETCH_CA_FILE:
			net->fetch_ca_file = optarg;
			break;
		case OPT_PROXY_MAX_OUT:
		case OPT_PROXY_MAX_IN:
		case OPT_PROXY_MAX_REQUESTS:
		case OPT_MODEL_ALLOW_TOOL: {
			/* Checked by the proxy itself (its --check run). */
			static const char *const flags[] = {"--max-bytes-out", "--max-bytes-in",
			                                    "--max-requests", "--model-allow-tool"};
			if (net_add_extra(net, flags[opt - OPT_PROXY_MAX_OUT], optarg) < 0)
				return -E2BIG;
			break;
		}
		case OPT_VM:
			net->vm = true;
			break;
		case OPT_VM_IMAGE:
			net->vm_image = optarg;
			net->vm = true;
			break;
		case OPT_VM_SERVICE:
			net->vm_service = optarg;
			break;
		case OPT_VM_ACCEL: {
			enum vm_accel a;
			if (vm_accel_parse(optarg, &a) < 0)
				return log_error("--vm-accel %s: expected auto, kvm or tcg",
				                 optarg),
				       -EINVAL;
			net->vm_accel = optarg;
			net->vm = true;
			break;
		}
		case OPT_ROOTFS:
			r = set_string(&spec->rootfs, optarg);
			if (r < 0)
				return r;
			break;
		case OPT_LAYER:
			if (spec->layer)
				return log_error("--layer: one layer per sandbox"), -EINVAL;
			r = sandbox_spec_set_layer(spec, optarg);
			if (r < 0)
				return log_error("--layer: %s", strerror(-r)), r;
			break;
		case OPT_DEBUG:
			spec->debug = true;
			log_set_debug(true);
			break;
		case OPT_AGENT:
			if (engine_parse(optarg, &run_agent) < 0 || run_agent == ENGINE_CLAWBOX)
				return log_error("--agent %s: expected claude-code or codex", optarg),
				       -EINVAL;
			break;
		case 'h':
			run_usage(stdout);
			return 1;
		case '?':
		default:
			if (optopt)
				log_error("option -%c: unknown; see 'clawbox run --help'", optopt);
			else
				log_error(
				    "option %s: unknown or missing its value; see 'clawbox run "
				    "--help'",
				    argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (net->proxy && net->none_given)
		return log_error("--net none contradicts --net proxy or --allow"), -EINVAL;
	if ((net->model_key_env || net->model_key_file || net->model_header ||
	     net->model_ca_file) &&
	    !net->model_upstream)
		return log_error("--model-key-env, --model-key-file, --model-header and "
		                 "--model-ca-file need --model-upstream"),
		       -EINVAL;
	if ((net->audit || net->hosts || net->idle_timeout || net->max_bytes ||
	     net->fetch_ca_file || net->ca_dir) &&
	    !net->proxy)
		return log_error("--audit, --hosts, --fetch-ca-file and --proxy-* need --net proxy "
		                 "or --allow"),
		       -EINVAL;
	if (optind >= argc)
		return log_error("no command given; see 'clawbox run --help'"), -EINVAL;
	if (argc - optind > SANDBOX_MAX_ARGS)
		return log_error("too many arguments (at most %d)", SANDBOX_MAX_ARGS), -E2BIG;
	if (argv[optind][0] == '\0')
		return log_error("the command is an empty string"), -EINVAL;
	spec->argv = argv + optind;
	if (run_agent != ENGINE_CLAWBOX) {
		if (!net->model_upstream)
			return log_error("--agent needs --model-upstream (the model the engine "
			                 "talks to, through the proxy)"),
			       -EINVAL;
		static struct engine_state st;
		r = engine_run_setup(run_agent, &st, spec, argv + optind);
		if (r < 0)
			return r;
	}
	return 0;
}

static void
print_warning(const char *msg)
{
	log_warn("%s", msg);
}

int
cmd_run(int argc, char **argv)
{
	struct sandbox_spec spec;
	struct sandbox_result res;
	struct net_options net = {0};
	static struct proxy_command proxy_cmd; /* borrowed by spec until the end */
	char id[32];
	int r;

	log_set_prefix("clawbox run");
	sandbox_spec_init(&spec);
	spec.warn = print_warning;
	r = parse_options(&spec, &net, argc, argv);
	if (r == 0 && net.proxy) {
		snprintf(id, sizeof(id), "run-%d", (int)getpid());
		r = net_setup_proxy(&spec, &net, &proxy_cmd, id);
	}
	if (r != 0) {
		sandbox_spec_done(&spec);
		return r > 0 ? 0 : SANDBOX_EXIT_SETUP;
	}

	if (spec.layer && (spec.rootfs || net.vm || net.vm_service)) {
		log_error("--layer: not with --rootfs, --vm or --vm-service");
		sandbox_spec_done(&spec);
		return SANDBOX_EXIT_SETUP;
	}
	if (net.vm_service) {
		if (net.vm || spec.rootfs) {
			log_error("--vm-service: not with --vm, --vm-image or --rootfs");
			sandbox_spec_done(&spec);
			return SANDBOX_EXIT_SETUP;
		}
		(void)vm_client_run(net.vm_service, &spec, NULL, &res);
		if (res.message[0])
			log_error("%s", res.message);
		sandbox_spec_done(&spec);
		return res.status;
	}
	if (net.vm) {
		if (spec.rootfs) {
			log_error("--vm: --rootfs is not supported");
			sandbox_spec_done(&spec);
			return SANDBOX_EXIT_SETUP;
		}
		char image[PATH_MAX];
		vm_default_image(net.vm_image, image, sizeof(image));
		enum vm_accel accel = VM_ACCEL_AUTO;
		const char *a = net.vm_accel ? net.vm_accel : getenv("CLAWBOX_VM_ACCEL");
		if (a && vm_accel_parse(a, &accel) < 0) {
			log_error("CLAWBOX_VM_ACCEL=%s: expected auto, kvm or tcg", a);
			sandbox_spec_done(&spec);
			return SANDBOX_EXIT_SETUP;
		}
		r = run_vm(&spec, image, accel, spec.debug);
		sandbox_spec_done(&spec);
		return r;
	}
	r = sandbox_run(&spec, &res);
	if (res.message[0])
		log_error("%s", res.message);
	sandbox_spec_done(&spec);
	return res.status;
}
