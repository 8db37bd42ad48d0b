/*
 * serve-main.c: `clawbox-serve` (also `clawbox serve`), the daemon. An executable of its own,
 * like the proxy: it links libevent and SQLite (never libcurl: channels are processes of their own),
 * which the per-invocation `clawbox` must not load. It loads and checks the configuration,
 * opens the store, queues again what a crash interrupted, and runs one event loop.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apiguard.h"
#include "approvals.h"
#include "daemon.h"
#include "fd-util.h"
#include "log.h"
#include "paths.h"
#include "spawn.h"
#include "tasks.h"

static void
serve_usage(FILE *out)
{
	fprintf(out,
	        "usage: clawbox serve [--config FILE] [--data-dir DIR] [--listen ADDRESS:PORT]\n"
	        "                     [--log-format text|json] [--check-config]\n"
	        "\n"
	        "The clawbox daemon: an HTTP API on loopback for your groups' chats, one agent\n"
	        "invocation per message in a fresh sandbox, the replies and an audit of every\n"
	        "decision in a SQLite store. The first start writes a default configuration.\n"
	        "\n"
	        "  --config FILE    the configuration (default ~/.config/clawbox/config.json)\n"
	        "  --data-dir DIR   the store, the groups' folders and the API token (default:\n"
	        "                   the configuration's data_dir, or ~/.local/share/clawbox)\n"
	        "  --check-config   check the configuration, say what is wrong, and exit\n"
	        "                   (writes nothing)\n"
	        "  --listen ADDRESS:PORT  listen there instead of the configuration's listen\n"
	        "  --log-format text|json  text (default): a timestamp before each line;\n"
	        "                   json: one object per line (time, level, msg, fields)\n"
	        "  --mount-allowlist FILE  host folders groups may mount (default\n"
	        "                   mount-allowlist.json beside the configuration; none: no\n"
	        "                   extra mounts)\n"
	        "  -h, --help       this text\n"
	        "\n"
	        "The API token is in DATA/api-token (mode 0600): send it as\n"
	        "'Authorization: Bearer TOKEN'.\n");
}

/* The API token: made once (32 random bytes, hex) and kept 0600 in the data folder. */
static int
load_token(struct daemon *d)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", d->cfg.data_dir, DAEMON_TOKEN_FILE);
	char buf[128];
	ssize_t n = read_file_at(AT_FDCWD, path, buf, sizeof(buf));
	if (n == -ENOENT) {
		unsigned char raw[32];
		if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
			return log_error("cannot make an API token: %s", strerror(errno)), -EIO;
		for (size_t i = 0; i < sizeof(raw); i++)
			snprintf(d->token + 2 * i, 3, "%02x", raw[i]);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		int r = fd < 0 ? NEG_ERRNO() : write_all(fd, d->token, strlen(d->token));
		if (fd >= 0)
			close(fd);
		if (r < 0)
			return log_error("%s: %s", path, strerror(-r)), r;
		return 0;
	}
	struct stat st;
	if (n < 0 || stat(path, &st) < 0)
		return log_error("%s: %s", path, strerror(n < 0 ? (int)-n : errno)), -EIO;
	if ((st.st_mode & 077) || st.st_uid != geteuid())
		return log_error("%s: must be yours and mode 0600 (it is a password)", path),
		       -EPERM;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	if (n < 32 || (size_t)n >= sizeof(d->token))
		return log_error("%s: expected a token of 32 to 64 characters", path), -EINVAL;
	memcpy(d->token, buf, (size_t)n + 1);
	return 0;
}

static int
find_clawbox(struct daemon *d)
{
	return self_sibling("clawbox", d->clawbox, sizeof(d->clawbox));
}

/* One daemon per data folder: two would run the same queued message twice and race on the
 * store. An flock on DATA/lock, held for the daemon's life (the kernel drops it when the
 * process dies, however it dies); the file says whose it is. */
static int
lock_data_dir(const char *dir)
{
	char path[PATH_MAX], pid[32];
	snprintf(path, sizeof(path), "%s/lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		int e = errno;
		return log_error("%s: %s", path, strerror(e)), -e;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		ssize_t n = read(fd, pid, sizeof(pid) - 1);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		close(fd);
		if (e == EWOULDBLOCK)
			return log_error("the data folder %s is in use by another clawbox serve "
			                 "(pid %s): stop it first, or give this one another "
			                 "--data-dir",
			                 dir, pid[0] ? pid : "unknown"),
			       -EBUSY;
		return log_error("%s: %s", path, strerror(e)), -e;
	}
	int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || write_all(fd, pid, (size_t)n) < 0)
		log_warn("%s: cannot write our pid: %s", path, strerror(errno));
	return fd; /* kept open, never closed: the lock lives as long as we do */
}

static void
on_sigchld(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	runner_reap(arg);
}

static void
on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	(void)what;
	/* Asked for: news, not a warning. */
	log_info("%s: stopping (runs in progress are queued again at the next start)",
	         sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "signal");
	approvals_stop(d);
	runner_stop_all(d);
	struct timeval grace = {.tv_sec = 2};
	event_base_loopexit(d->base, &grace);
}

/* Each group's egress options, checked once by the proxy itself (its allowlist parser is the
 * one that counts), so that a bad entry stops the start with its name, and no invocation pays
 * for the check again. */
static int
check_proxy_options(const struct daemon *d)
{
	char proxy[PATH_MAX];
	snprintf(proxy, sizeof(proxy), "%s-proxy", d->clawbox);
	for (size_t i = 0; i < d->cfg.n_groups; i++) {
		const struct group_config *g = &d->cfg.groups[i];
		const char *argv[8 + 2 * CONFIG_MAX_ALLOW + 40 + 2 * CONFIG_MAX_SERVICES + 2];
		char specs[CONFIG_MAX_SERVICES][4096];
		char max_requests[24];
		size_t n = 0;
		argv[n++] = proxy;
		argv[n++] = "--sandbox-id";
		argv[n++] = g->id;
		for (size_t k = 0; k < g->n_allow; k++) {
			argv[n++] = "--allow";
			argv[n++] = g->allow[k];
		}
		/* A service as the proxy will get it, with a stand-in for the per-run placeholder
		 * (the proxy loads its secret in the check: a missing one stops the start). */
		for (size_t k = 0; k < g->n_services; k++) {
			json_t *o = json_loads(g->services[k], 0, NULL);
			char *text = NULL;
			if (o && json_object_set_new(o, "placeholder",
			                             json_string("clawbox-placeholder-check-"
			                                         "00000000000000000000000000000000")) == 0)
				text = json_dumps(o, JSON_COMPACT);
			json_decref(o);
			if (!text || strlen(text) >= sizeof(specs[k])) {
				free(text);
				return log_error("%s: groups[%zu].services[%zu]: too long",
				                 d->config_path, i, k),
				       -EINVAL;
			}
			snprintf(specs[k], sizeof(specs[k]), "%s", text);
			free(text);
			argv[n++] = "--service";
			argv[n++] = specs[k];
		}
		if (g->n_services > 0) {
			argv[n++] = "--ca-dir";
			argv[n++] = d->cfg.data_dir; /* not opened by --check */
		}
		n += config_egress_argv(&d->cfg, g, max_requests, sizeof(max_requests), argv + n,
		                        "--max-");
		argv[n++] = "--check";
		argv[n] = NULL;
		if (spawn_wait(argv) < 0)
			return log_error("%s: groups[%zu]: the proxy refused its egress options or services (above)",
			                 d->config_path, i),
			       -EINVAL;
	}
	return 0;
}

/* Says plainly what is missing when no model can be reached; the daemon runs anyway. */
static void
check_model(const struct daemon *d)
{
	const struct model_config *m = &d->cfg.model;
	const char *env = config_key_env(m);
	if (config_model_configured(m))
		return;
	log_warn("no model is configured yet: set %s in the daemon's environment (or "
	         "model.api_key_file), or model.base_url to a local Ollama or llama.cpp server, "
	         "in %s; until then each message is answered with this hint",
	         env, d->config_path);
}

/* The soft descriptor limit up to the hard one: the default 1,024 is what a thousand idle
 * connections take. The API's connection caps are derived from what this leaves. */
static void
raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("cannot raise the file limit: %s", strerror(errno));
	}
}

int
main(int argc, char **argv)
{
	static struct daemon d;
	static const struct option options[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"data-dir", required_argument, NULL, 'd'},
	    {"check-config", no_argument, NULL, 'k'},
	    {"mount-allowlist", required_argument, NULL, 'm'},
	    {"listen", required_argument, NULL, 'l'},
	    {"log-format", required_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *data_dir = NULL, *allowlist = NULL, *listen = NULL;
	bool check_only = false;
	char config_path[PATH_MAX];
	int opt;

	log_set_format(LOG_TEXT_TIMESTAMPED); /* a long-lived process: when did it happen */
	log_set_prefix("clawbox serve");
	if (version_asked(argc, argv, "clawbox-serve"))
		return 0;
	umask(077); /* the store, the token and the groups' folders are nobody else's */
	config_path[0] = '\0';
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			snprintf(config_path, sizeof(config_path), "%s", optarg);
			break;
		case 'd':
			data_dir = optarg;
			break;
		case 'k':
			check_only = true;
			break;
		case 'm':
			allowlist = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
		case 'f':
			if (strcmp(optarg, "json") == 0) {
				log_set_format(LOG_JSON);
			} else if (strcmp(optarg, "text") != 0) {
				log_error("--log-format %s: expected text or json", optarg);
				return 2;
			}
			break;
		case 'h':
			serve_usage(stdout);
			return 0;
		default:
			log_error(
			    "option %s: unknown or missing its value; see 'clawbox serve --help'",
			    argv[optind - 1]);
			return 2;
		}
	}
	if (optind != argc) {
		log_error("unexpected argument '%s'; see 'clawbox serve --help'", argv[optind]);
		return 2;
	}
	if (!config_path[0]) {
		char cfg_dir[PATH_MAX - 32];
		if (xdg_dir(XDG_CONFIG, cfg_dir, sizeof(cfg_dir)) < 0) {
			log_error("no configuration folder: HOME is not set (set HOME or "
			          "XDG_CONFIG_HOME, or give --config)");
			return 2;
		}
		snprintf(config_path, sizeof(config_path), "%s/config.json", cfg_dir);
	}
	d.config_path = config_path;
	const char *offset = getenv("CLAWBOX_TEST_CLOCK_OFFSET");
	if (offset && *offset) /* tests of missed runs: the scheduler lives this far ahead */
		d.clock_offset = strtoll(offset, NULL, 10);
	char why[512];
	bool created;
	if (config_load(config_path, &d.cfg, check_only ? NULL : &created, why, sizeof(why)) < 0) {
		log_error("%s: %s", config_path, why);
		return 2;
	}
	if (listen && config_set_listen(&d.cfg, listen) < 0) {
		log_error("--listen %s: expected ADDRESS:PORT, such as 127.0.0.1:7878", listen);
		return 2;
	}
	/* The API drives agents that run commands: off this machine only when asked for. */
	if (!config_listen_loopback(&d.cfg) && !d.cfg.allow_remote) {
		log_error("%s: listen %s is not a loopback address: set \"allow_remote\": true to "
		          "serve other machines",
		          config_path, d.cfg.listen_host);
		return 2;
	}
	char allow_path[PATH_MAX];
	snprintf(allow_path, sizeof(allow_path), "%s", config_path);
	char *slash = strrchr(allow_path, '/');
	if (slash)
		slash[1] = '\0';
	else
		allow_path[0] = '\0';
	snprintf(d.config_dir, sizeof(d.config_dir), "%s", allow_path[0] ? allow_path : ".");
	if (strlen(d.config_dir) > 1 && d.config_dir[strlen(d.config_dir) - 1] == '/')
		d.config_dir[strlen(d.config_dir) - 1] = '\0';
	{
		char real[PATH_MAX];
		if (realpath(d.config_dir, real))
			snprintf(d.config_dir, sizeof(d.config_dir), "%s", real);
	}
	char default_allow[PATH_MAX + 32];
	if (!allowlist) {
		snprintf(default_allow, sizeof(default_allow), "%s/mount-allowlist.json",
		         d.config_dir);
		allowlist = default_allow;
	}
	if (mountlist_load(allowlist, &d.mounts, why, sizeof(why)) < 0) {
		log_error("mount allowlist %s", why);
		return 2;
	}
	if (check_only) {
		printf("%s: valid (%zu group%s)\n", config_path, d.cfg.n_groups,
		       d.cfg.n_groups == 1 ? "" : "s");
		config_done(&d.cfg);
		return 0;
	}
	if (!config_listen_loopback(&d.cfg))
		log_warn("LISTENING ON %s, NOT LOOPBACK (allow_remote): anyone who can reach this "
		         "port and has the token can drive your agents; put TLS and a firewall "
		         "in front of it",
		         d.cfg.listen_host);
	if (created)
		log_info("wrote a default configuration to %s", config_path);
	if (data_dir)
		snprintf(d.cfg.data_dir, sizeof(d.cfg.data_dir), "%s", data_dir);
	if (!d.cfg.data_dir[0] && xdg_dir(XDG_DATA, d.cfg.data_dir, sizeof(d.cfg.data_dir)) < 0) {
		log_error("no data folder: HOME is not set (set HOME, XDG_DATA_HOME or data_dir)");
		return 2;
	}
	char store_path[PATH_MAX];
	snprintf(store_path, sizeof(store_path), "%s/clawbox.db", d.cfg.data_dir);
	int r = 0;
	{
		/* mkdir -p, 0700 */
		char buf[PATH_MAX];
		snprintf(buf, sizeof(buf), "%s", d.cfg.data_dir);
		for (char *s = buf + 1;; s++) {
			if (*s != '/' && *s != '\0')
				continue;
			char c = *s;
			*s = '\0';
			if (mkdir(buf, 0700) < 0 && errno != EEXIST) {
				log_error("data folder %s: %s", buf, strerror(errno));
				return 1;
			}
			*s = c;
			if (!c)
				break;
		}
	}
	{
		/* Compared with mount requests, which are resolved: resolve it too. */
		char real[PATH_MAX];
		if (realpath(d.cfg.data_dir, real))
			snprintf(d.cfg.data_dir, sizeof(d.cfg.data_dir), "%s", real);
	}
	if (lock_data_dir(d.cfg.data_dir) < 0)
		return 1;
	if (find_clawbox(&d) < 0) {
		log_error("clawbox not found next to clawbox-serve: %s", strerror(errno));
		return 1;
	}
	if (check_proxy_options(&d) < 0)
		return 2;
	r = store_open(store_path, &d.store);
	if (r < 0) {
		log_error("store %s: %s", store_path, store_error(d.store));
		store_close(d.store);
		return 1;
	}
	for (size_t i = 0; i < d.cfg.n_groups && r >= 0; i++)
		r = store_group_ensure(d.store, d.cfg.groups[i].id);
	if (r >= 0)
		r = load_token(&d);
	if (r >= 0 && (r = approvals_init(&d)) < 0)
		log_error("store %s: the approvals cannot be kept: %s", store_path,
		          store_error(d.store));
	if (r < 0)
		return 1;
	int requeued = store_requeue_running(d.store);
	if (requeued > 0)
		log_info("%d message%s in progress at the last stop: queued again", requeued,
		         requeued == 1 ? " was" : "s were");

	check_model(&d); /* before listening: said even when the port is taken */
	raise_nofile();
	log_set_rate_limit(true);
	signal(SIGPIPE, SIG_IGN);
	daemon_slice_short();
	d.base = event_base_new();
	if (!d.base || event_base_priority_init(d.base, DAEMON_PRIOS) < 0 || api_start(&d) < 0)
		return 1;
	d.sigchld = evsignal_new(d.base, SIGCHLD, on_sigchld, &d);
	d.sigterm = evsignal_new(d.base, SIGTERM, on_stop, &d);
	d.sigint = evsignal_new(d.base, SIGINT, on_stop, &d);
	event_add(d.sigchld, NULL);
	event_add(d.sigterm, NULL);
	event_add(d.sigint, NULL);
	/* The token rides in the fragment, which the browser never sends; the page drops it. */
	log_info("listening on %s: open %s/#token=%s for the web app (API token in %s/%s)",
	         d.origin, d.origin, d.token, d.cfg.data_dir, DAEMON_TOKEN_FILE);
	if (vm_service_start(&d) < 0 || scheduler_start(&d) < 0 || channels_start(&d) < 0)
		return 1;
	runner_kick(&d); /* what was queued before a restart */
	event_base_dispatch(d.base);

	d.stopping = true;
	vm_service_stop(&d);
	runner_reap(&d);
	stream_close_all(&d);
	channels_stop(&d);
	evhttp_free(d.http);
	api_guard_stop();
	event_free(d.sigchld);
	event_free(d.sigterm);
	event_free(d.sigint);
	if (d.scheduler)
		event_free(d.scheduler);
	event_base_free(d.base);
	store_close(d.store);
	config_done(&d.cfg);
	mountlist_done(&d.mounts);
	return 0;
}
