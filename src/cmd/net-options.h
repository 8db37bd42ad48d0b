/*
 * net-options.h: the egress options shared by `clawbox run` and `clawbox ask`, and how they
 * become the proxy's command line (clawbox-proxy, next to this executable).
 */
#ifndef CLAWBOX_NET_OPTIONS_H
#define CLAWBOX_NET_OPTIONS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "spec.h"

#define MAX_ALLOW 256
#define NET_EXTRA_MAX 64 /* flag and value, each one entry */

/* What --net proxy needs, collected while parsing. */
struct net_options {
	bool proxy;
	bool none_given;
	const char *allow[MAX_ALLOW];
	size_t n_allow;
	const char *audit;
	const char *hosts;
	const char *model_upstream, *model_key_env, *model_key_file, *model_header;
	const char *idle_timeout, *max_bytes, *model_ca_file, *fetch_ca_file;
	bool model_no_key; /* a local model server that needs no key */
	/* More of the proxy's options, passed as given (flag, value, flag, value...): the caps
	 * (--max-bytes-out, --max-bytes-in, --max-requests) and --model-allow-tool. */
	const char *extra[NET_EXTRA_MAX];
	size_t n_extra;
	/* The caller built every option itself and checked what it passed: skip the proxy's
	 * --check run, which costs a start of the proxy (libcurl's ~36 libraries: ~7 ms here). */
	bool trusted;
	/* --vm (run only; kept here with the other run-wide switches) */
	bool vm;
	const char *vm_image;
	const char *vm_service; /* --vm-service PATH */
	const char *vm_accel;   /* --vm-accel auto|kvm|tcg */
};

#define PROXY_ARGV_MAX (MAX_ALLOW * 2 + NET_EXTRA_MAX + 32)

/* Storage for the proxy's command line, which the spec borrows: keep it alive as long as the
 * spec. */
struct proxy_command {
	char exe[PATH_MAX];
	char id[32];
	const char *argv[PROXY_ARGV_MAX];
};

/* Appends a proxy option and its value to net->extra. -E2BIG (after one line) when full. */
int net_add_extra(struct net_options *net, const char *flag, const char *value);

/* Finds clawbox-proxy, lets it check the options (it prints what is wrong), creates the audit
 * file, sets the proxy variables in the sandbox's environment and spec->proxy_argv. 0, or
 * -errno after one line on stderr. */
int net_setup_proxy(struct sandbox_spec *spec, const struct net_options *net,
                    struct proxy_command *cmd, const char *id);

#endif
