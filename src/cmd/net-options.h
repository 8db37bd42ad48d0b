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

#define MAX_ALLOW    256
#define MAX_SERVICES 16 /* the proxy's SERVICES_MAX */
#define SERVICE_JSON_MAX 4096
#define NET_EXTRA_MAX      112 /* flag and value, each one entry */
#define INTERNAL_NAMES_MAX 64

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
	/* --service SPEC (JSON, or @FILE) and --ca-dir DIR (net-services.c) */
	const char *services[MAX_SERVICES];
	size_t n_services;
	const char *ca_dir;
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

#define PROXY_ARGV_MAX (MAX_ALLOW * 2 + MAX_SERVICES * 2 + NET_EXTRA_MAX + 32)

/* Storage for the proxy's command line, which the spec borrows: keep it alive as long as the
 * spec. */
struct proxy_command {
	char exe[PATH_MAX];
	char id[32];
	const char *argv[PROXY_ARGV_MAX];
	/* Each service as the proxy gets it: the spec with the run's "placeholder" added. */
	char services[MAX_SERVICES][SERVICE_JSON_MAX];
	size_t n_services;
	char ca_dir[PATH_MAX];
	char bundle_mount[PATH_MAX + 64];
	/* Names that resolve to the sandbox's loopback (spec->internal_names): the services'
	 * hosts (port 443 or none named), then the model's, for clients that use no proxy. */
	char internal_buf[INTERNAL_NAMES_MAX][256];
	const char *internal[INTERNAL_NAMES_MAX + 2];
	size_t n_internal;
};

/* net-services.c: parses each --service, makes its per-run placeholder (set in the sandbox's
 * environment under its placeholder_env), makes the interception CA on first use and mounts
 * its bundle as the sandbox's trust store (with SSL_CERT_FILE and friends pointing at it).
 * 0, or -errno after one line on stderr. */
int net_setup_services(struct sandbox_spec *spec, const struct net_options *net,
                       struct proxy_command *cmd);
/* Appends a proxy option and its value to net->extra. -E2BIG (after one line) when full. */
int net_add_extra(struct net_options *net, const char *flag, const char *value);

/* Finds clawbox-proxy, lets it check the options (it prints what is wrong), creates the audit
 * file, sets the proxy variables in the sandbox's environment and spec->proxy_argv. 0, or
 * -errno after one line on stderr. */
int net_setup_proxy(struct sandbox_spec *spec, const struct net_options *net,
                    struct proxy_command *cmd, const char *id);

#endif
