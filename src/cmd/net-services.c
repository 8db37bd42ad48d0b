/*
 * net-services.c: the launcher's half of --service (the proxy's is src/proxy/services.c).
 *
 * The launcher never reads a service's secret: it only names where the proxy finds it
 * (secret_env in the environment the proxy inherits, or secret_file). What it adds is the
 * placeholder: random per run, put in the sandbox's environment and in the spec the proxy
 * gets, so the proxy knows what to replace. The interception CA is the proxy's (it alone
 * links OpenSSL); the launcher asks it to make one on first use, then mounts the bundle (the
 * system's CAs plus ours) over the sandbox's /etc/ssl/certs/ca-certificates.crt, which is
 * where OpenSSL, GnuTLS, Python and curl look, and points the variables that other
 * runtimes read at it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd-util.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "net-options.h"
#include "spawn.h"

#define BUNDLE_INSIDE "/etc/ssl/certs/ca-certificates.crt"

static bool
valid_env_name(const char *n)
{
	if (!n[0] || (n[0] >= '0' && n[0] <= '9'))
		return false;
	for (const char *p = n; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return strlen(n) < 128;
}

/* The default CA directory: $XDG_DATA_HOME/clawbox/ca or ~/.local/share/clawbox/ca, its
 * parents made as needed (0700). */
static int
default_ca_dir(char *buf, size_t size)
{
	const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
	char base[PATH_MAX];
	if (xdg && xdg[0] == '/')
		snprintf(base, sizeof(base), "%s", xdg);
	else if (home && home[0] == '/')
		snprintf(base, sizeof(base), "%s/.local/share", home);
	else
		return -ENOENT;
	/* mkdir -p of base/clawbox, without following into anything odd: each step is ours. */
	for (char *p = base + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char saved = *p;
			*p = '\0';
			if (mkdir(base, 0700) < 0 && errno != EEXIST)
				return NEG_ERRNO();
			*p = saved;
			if (!saved)
				break;
		}
	}
	if ((size_t)snprintf(buf, size, "%s/clawbox", base) >= size)
		return -ENAMETOOLONG;
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return NEG_ERRNO();
	if ((size_t)snprintf(buf, size, "%s/clawbox/ca", base) >= size)
		return -ENAMETOOLONG;
	return 0;
}

/* A service's host names (not wildcards, not addresses, on port 443 or no port named)
 * resolve to the sandbox's loopback, where init hands port 443 to the proxy: clients that
 * ignore HTTPS_PROXY (Node's fetch) reach the service through the proxy all the same. The
 * proxy judges what arrives there by its SNI; the names are only a route. */
static void
add_internal_names(struct proxy_command *cmd, json_t *hosts)
{
	size_t i;
	json_t *h;
	json_array_foreach(hosts, i, h)
	{
		const char *s = json_string_value(h);
		if (!s || s[0] == '*' || s[0] == '[' || cmd->n_internal >= INTERNAL_NAMES_MAX)
			continue;
		size_t len = strcspn(s, ":");
		if ((s[len] == ':' && strcmp(s + len, ":443") != 0) || len == 0 || len >= 254 ||
		    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") <
		        len ||
		    strspn(s, "0123456789.") == len)
			continue;
		snprintf(cmd->internal_buf[cmd->n_internal], sizeof(cmd->internal_buf[0]), "%.*s",
		         (int)len, s);
		cmd->internal[cmd->n_internal] = cmd->internal_buf[cmd->n_internal];
		cmd->n_internal++;
	}
}

/* One --service: the JSON itself, or @FILE. */
static int
load_spec(const char *arg, json_t **ret)
{
	json_error_t err;
	json_t *o;
	if (arg[0] == '@')
		o = json_load_file(arg + 1, 0, &err);
	else
		o = json_loads(arg, 0, &err);
	if (!o)
		return log_error("--service %s: %s", arg[0] == '@' ? arg : "JSON", err.text),
		       -EINVAL;
	if (!json_is_object(o)) {
		json_decref(o);
		return log_error("--service: expected a JSON object"), -EINVAL;
	}
	*ret = o;
	return 0;
}

int
net_setup_services(struct sandbox_spec *spec, const struct net_options *net,
                   struct proxy_command *cmd)
{
	int r;
	cmd->n_services = 0;
	cmd->n_internal = 0;
	if (net->n_services == 0)
		return 0;
	for (size_t i = 0; i < net->n_services; i++) {
		_cleanup_json_ json_t *o = NULL;
		r = load_spec(net->services[i], &o);
		if (r < 0)
			return r;
		const char *name = json_get_str(o, "name");
		const char *env = json_get_str(o, "placeholder_env");
		if (!name || !name[0] || strlen(name) > 32 ||
		    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(name))
			return log_error("--service: \"name\" must be 1-32 of a-z, 0-9 and -"),
			       -EINVAL;
		if (json_object_get(o, "placeholder"))
			return log_error("--service %s: \"placeholder\" is made per run, not given",
			                 name),
			       -EINVAL;
		if (json_object_get(o, "placeholder_env") && (!env || !valid_env_name(env)))
			return log_error(
			           "--service %s: \"placeholder_env\" must be a variable name",
			           name),
			       -EINVAL;
		unsigned char rnd[16];
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			return log_error("getrandom: %s", strerror(errno)), -EIO;
		char ph[128];
		int k = snprintf(ph, sizeof(ph), "clawbox-placeholder-%s-", name);
		for (size_t j = 0; j < sizeof(rnd); j++)
			k += snprintf(ph + k, sizeof(ph) - (size_t)k, "%02x", rnd[j]);
		if (json_object_set_new(o, "placeholder", json_string(ph)) < 0)
			return -ENOMEM;
		_cleanup_free_ char *text = json_dumps(o, JSON_COMPACT);
		if (!text || strlen(text) >= SERVICE_JSON_MAX)
			return log_error("--service %s: the spec is too long", name), -E2BIG;
		snprintf(cmd->services[cmd->n_services++], SERVICE_JSON_MAX, "%s", text);
		add_internal_names(cmd, json_object_get(o, "hosts"));
		if (env) {
			char entry[256];
			snprintf(entry, sizeof(entry), "%s=%s", env, ph);
			r = sandbox_spec_set_env(spec, entry);
			if (r < 0)
				return log_error("--service %s: cannot set %s", name, env), r;
		}
	}

	if (net->ca_dir)
		snprintf(cmd->ca_dir, sizeof(cmd->ca_dir), "%s", net->ca_dir);
	else if ((r = default_ca_dir(cmd->ca_dir, sizeof(cmd->ca_dir))) < 0)
		return log_error("--service: no folder for the interception CA (set HOME or "
		                 "--ca-dir): %s",
		                 strerror(-r)),
		       r;
	char bundle[PATH_MAX + 16];
	snprintf(bundle, sizeof(bundle), "%s/bundle.crt", cmd->ca_dir);
	if (access(bundle, R_OK) < 0) {
		/* First use: the proxy makes the CA (it alone links OpenSSL), and says why not. */
		const char *argv[] = {cmd->exe, "--ca-dir", cmd->ca_dir, "--ca-init", NULL};
		r = spawn_wait(argv);
		if (r != 0)
			return r < 0 ? r : -EIO;
	}
	snprintf(cmd->bundle_mount, sizeof(cmd->bundle_mount), "%s:" BUNDLE_INSIDE ":ro", bundle);
	const char *why = NULL;
	r = sandbox_spec_add_mount(spec, cmd->bundle_mount, &why);
	if (r < 0)
		return log_error("--service: cannot mount %s: %s", bundle,
		                 why ? why : strerror(-r)),
		       r;
	static const char *const env[] = {
	    "SSL_CERT_FILE=" BUNDLE_INSIDE,      "NODE_EXTRA_CA_CERTS=" BUNDLE_INSIDE,
	    "REQUESTS_CA_BUNDLE=" BUNDLE_INSIDE, "CURL_CA_BUNDLE=" BUNDLE_INSIDE,
	    "GIT_SSL_CAINFO=" BUNDLE_INSIDE,
	};
	for (size_t i = 0; i < ARRAY_SIZE(env); i++) {
		r = sandbox_spec_set_env(spec, env[i]);
		if (r < 0)
			return r;
	}
	return 0;
}
