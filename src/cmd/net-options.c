/*
 * net-options.c: see net-options.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "net-options.h"
#include "paths.h"
#include "spawn.h"

#define UPSTREAM_NAME_INSIDE "model.clawbox.internal" /* upstream.h's UPSTREAM_NAME */

/* clawbox-proxy, next to this executable. */
static int
proxy_path(char *buf, size_t size)
{
	return self_sibling("clawbox-proxy", buf, size);
}

int
net_add_extra(struct net_options *net, const char *flag, const char *value)
{
	if (net->n_extra + 2 > NET_EXTRA_MAX)
		return log_error("%s: too many proxy options", flag), -E2BIG;
	net->extra[net->n_extra++] = flag;
	net->extra[net->n_extra++] = value;
	return 0;
}

/* Builds the proxy's command line into argv (at most max entries, NULL-terminated). */
static int
build_proxy_argv(const struct net_options *net, const struct proxy_command *cmd, char *path,
                 char *id, const char **argv, size_t max, bool check)
{
	size_t n = 0;
	if (7 + 2 * net->n_allow + 2 * cmd->n_services + net->n_extra + 22 > max)
		return -E2BIG;
	argv[n++] = path;
	if (check) { /* its errors are about the options of the command the user ran */
		argv[n++] = "--log-prefix";
		argv[n++] = log_get_prefix();
	}
	argv[n++] = "--sandbox-id";
	argv[n++] = id;
	for (size_t i = 0; i < net->n_allow; i++) {
		argv[n++] = "--allow";
		argv[n++] = net->allow[i];
	}
	if (net->audit && !check) { /* --check must not create the file */
		argv[n++] = "--audit";
		argv[n++] = net->audit;
	}
	if (net->hosts) {
		argv[n++] = "--hosts";
		argv[n++] = net->hosts;
	}
	static const struct {
		const char *flag;
		size_t off;
	} model_opts[] = {
	    {"--upstream", offsetof(struct net_options, model_upstream)},
	    {"--upstream-key-env", offsetof(struct net_options, model_key_env)},
	    {"--upstream-key-file", offsetof(struct net_options, model_key_file)},
	    {"--upstream-header", offsetof(struct net_options, model_header)},
	    {"--idle-timeout", offsetof(struct net_options, idle_timeout)},
	    {"--max-total-bytes", offsetof(struct net_options, max_bytes)},
	    {"--upstream-ca-file", offsetof(struct net_options, model_ca_file)},
	    {"--fetch-ca-file", offsetof(struct net_options, fetch_ca_file)},
	};
	for (size_t i = 0; i < ARRAY_SIZE(model_opts); i++) {
		const char *v = *(const char *const *)((const char *)net + model_opts[i].off);
		if (v) {
			argv[n++] = model_opts[i].flag;
			argv[n++] = v;
		}
	}
	if (net->model_no_key)
		argv[n++] = "--upstream-no-key";
	for (size_t i = 0; i < cmd->n_services; i++) {
		argv[n++] = "--service";
		argv[n++] = cmd->services[i];
	}
	if (cmd->n_services > 0) {
		argv[n++] = "--ca-dir";
		argv[n++] = cmd->ca_dir;
	}
	for (size_t i = 0; i < net->n_extra; i++)
		argv[n++] = net->extra[i];
	if (check)
		argv[n++] = "--check";
	argv[n] = NULL;
	return 0;
}

/* Whether an --allow entry names host (its HOST part, "[::1]" for IPv6, any port). */
static bool
allows_host(const struct net_options *net, const char *host)
{
	size_t n = strlen(host);
	for (size_t i = 0; i < net->n_allow; i++) {
		const char *a = net->allow[i];
		bool v6 = a[0] == '[';
		if (v6 ? strncmp(a + 1, host, n) == 0 && a[1 + n] == ']'
		       : strncmp(a, host, n) == 0 && (a[n] == ':' || a[n] == '\0'))
			return true;
	}
	return false;
}

/* NO_PROXY keeps the sandbox's own loopback direct (a server the command starts inside), but
 * a loopback name or address that --allow names means the host's, reached through the proxy:
 * left in NO_PROXY, curl, wget and Python would connect to the sandbox's own loopback instead
 * and find nothing. So inside, an allowed 127.0.0.1 is the host's (only its allowed ports),
 * and localhost, unless allowed too, stays the sandbox's own. */
static int
set_no_proxy(struct sandbox_spec *spec, const struct net_options *net)
{
	static const char *const local[] = {"localhost", "127.0.0.1", "::1"};
	char list[64] = "";
	size_t len = 0;
	for (size_t i = 0; i < ARRAY_SIZE(local); i++)
		if (!allows_host(net, local[i]))
			len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s",
			                        len ? "," : "", local[i]);
	static const char *const names[] = {"NO_PROXY", "no_proxy"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		char entry[80];
		snprintf(entry, sizeof(entry), "%s=%s", names[i], list);
		int r = sandbox_spec_set_env(spec, entry);
		if (r < 0)
			return r;
	}
	return 0;
}

int
net_setup_proxy(struct sandbox_spec *spec, const struct net_options *net, struct proxy_command *cmd,
                const char *id)
{
	const char *check_argv[PROXY_ARGV_MAX];
	char *path = cmd->exe;
	const char **argv = cmd->argv;
	snprintf(cmd->id, sizeof(cmd->id), "%s", id);
	int r = proxy_path(path, sizeof(cmd->exe));
	if (r < 0)
		return log_error("--net proxy: clawbox-proxy not found next to clawbox: %s",
		                 strerror(-r)),
		       r;
	r = net_setup_services(spec, net, cmd);
	if (r < 0)
		return r; /* it said why */
	r = build_proxy_argv(net, cmd, path, cmd->id, check_argv, ARRAY_SIZE(check_argv), true);
	/* The proxy parses its options before anything starts: a bad --allow is the user's one
	 * clear error line and 125, not a sandbox whose connections all fail. */
	if (r >= 0 && !net->trusted)
		r = spawn_wait(check_argv); /* the proxy says why */
	if (r < 0)
		return r; /* the proxy said why */
	r = build_proxy_argv(net, cmd, path, cmd->id, argv, PROXY_ARGV_MAX, false);
	if (r < 0)
		return r;
	if (net->audit) {
		/* Created here, so that the file exists (and belongs to the caller) even when
		 * no request is ever made. */
		int fd = open(net->audit, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return log_error("--audit %s: %s", net->audit, strerror(errno)), -errno;
		close(fd);
	}
	/* Ordinary programs find the proxy by these; one that ignores them has no route. */
	static const char *const env[] = {
	    "HTTP_PROXY=http://127.0.0.1:3128",
	    "HTTPS_PROXY=http://127.0.0.1:3128",
	    "http_proxy=http://127.0.0.1:3128",
	    "https_proxy=http://127.0.0.1:3128",
	};
	for (size_t i = 0; i < ARRAY_SIZE(env); i++) {
		r = sandbox_spec_set_env(spec, env[i]);
		if (r < 0)
			return r;
	}
	r = set_no_proxy(spec, net);
	if (r < 0)
		return r;
	spec->proxy_argv = (char *const *)argv;
	/* For clients that use no proxy: the model's name resolves inside (init hands port 80
	 * to the proxy). */
	static const char *const internal[] = {UPSTREAM_NAME_INSIDE, NULL};
	if (cmd->n_internal > 0) {
		/* The services' hosts too: init takes their HTTPS on 443 (net-services.c). */
		if (net->model_upstream)
			cmd->internal[cmd->n_internal++] = UPSTREAM_NAME_INSIDE;
		cmd->internal[cmd->n_internal] = NULL;
		spec->internal_names = cmd->internal;
		spec->internal_https = true;
	} else if (net->model_upstream) {
		spec->internal_names = internal;
	}
	return 0;
}
