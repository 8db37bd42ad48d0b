/*
 * config.h: the daemon's configuration, one JSON file (~/.config/clawbox/config.json or
 * --config), checked whole at start: an unknown key, a wrong type or a bad value is an error
 * that names the key ("groups[1].memory: expected a size such as 256M"). A missing file is
 * written with defaults on first start.
 *
 * The configuration is the operator's: nothing the agent can write is read from it, and the
 * file is never mounted into a sandbox.
 */
#ifndef CLAWBOX_CONFIG_H
#define CLAWBOX_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "budget.h"
#include "policy.h"
#include "taint.h"

#define CONFIG_MAX_GROUPS   128 /* 100 runs at once need 100 groups (issue 15) */
#define CONFIG_MAX_ALLOW    64
#define CONFIG_GROUP_ID_MAX 64
#define CONFIG_FILE_MAX     (1u << 20)
#define CONFIG_MAX_MOUNTS   16
#define CONFIG_ENGINE_MAX_ARGS 16
#define CONFIG_ENGINE_ARG_MAX  512
#define CONFIG_FOLDER_QUOTA (1ULL << 30) /* a group folder's quota when none is configured */
#define CONFIG_MAX_SERVICES 16
#define CONFIG_MAX_CHANNELS 16
#define CONFIG_CHANNEL_CHATS 256 /* chats of one channel */

/* One configured channel: a `clawbox-channel KIND` process. */
struct channel_chat {
	char *chat; /* the service's chat id, as the channel reports it (owned) */
	char group[CONFIG_GROUP_ID_MAX];
};
struct channel_config {
	char name[32]; /* [a-z0-9_-]: the audit's action, the store's keys "NAME.offset" */
	char kind[32]; /* which clawbox-channel KIND */
	char *config;  /* the channel's object as written, compact JSON (owned) */
	char token_env[64]; /* a variable passed through to the channel; the daemon never reads it */
	struct channel_chat *chats; /* owned */
	size_t n_chats;
};

struct group_config {
	char id[CONFIG_GROUP_ID_MAX]; /* [a-z0-9_-], also the folder name */
	bool main;                    /* may act on other groups */
	char trigger[64];             /* in group chats, only messages with it reach the agent */
	char *allow[CONFIG_MAX_ALLOW]; /* HOST[:PORT], or a JSON object with request rules */
	size_t n_allow;
	/* Credentials bound to hosts (clawbox run --service), each as compact JSON: the proxy
	 * reads the secrets; the daemon never does. */
	char *services[CONFIG_MAX_SERVICES];
	size_t n_services;
	uint64_t memory_bytes; /* 0: the sandbox default */
	uint64_t folder_quota; /* bytes its folder may hold (quota.h); the default if not set */
	/* Per-run egress caps, passed to the proxy as written ("" / 0: its defaults). */
	char max_bytes_out[32], max_bytes_in[32];
	uint64_t max_requests;
	char timezone[64];     /* for its cron tasks; "" is UTC */
	struct {
		char host[512];   /* as configured; checked against the mount allowlist per run */
		char inside[256]; /* where it appears in the sandbox */
		bool rw;
		bool untrusted; /* "untrusted": what it holds taints the runs (taint.h) */
	} mounts[CONFIG_MAX_MOUNTS];
	size_t n_mounts;
	bool tasks_may_schedule; /* a task's own run may schedule tasks (default false) */
	bool home_persist;  /* "home": "persist": DATA/homes/ID is the sandbox's home */
	uint64_t max_time;  /* "max_time": a run's seconds (<= CONFIG_MAX_TIME); 0: ask's default */
	bool agent_may_install; /* install_packages allowed (no approvals yet) */
	/* "engine", "engine_options" (config-engine.c) */
	char engine[16]; /* clawbox | claude-code | codex */
	char engine_model[128];
	char engine_allowed[1024]; /* comma-separated */
	char *engine_args[CONFIG_ENGINE_MAX_ARGS];
	size_t n_engine_args;
	char *mcp_servers[8]; /* "mcp_servers": "NAME=CMD ARG..." for our agent's --mcp-server */
	size_t n_mcp_servers;
	struct group_policy policy; /* "policy", "approvers" and "egress" (policy.h) */
	char *egress_arg;           /* the proxy's --egress (policy_egress_arg), or NULL */
	struct group_owners owners; /* "owners": senders whose messages do not taint (taint.h) */
	struct group_budget budget; /* "budget" (budget.h) */
};
#define CONFIG_MAX_TIME 86400

struct model_config {
	char provider[16];  /* anthropic | openai */
	char base_url[512]; /* "" : the provider's */
	char model[128];    /* "" : the agent's default */
	char api_key_env[64];
	char api_key_file[512];
	uint64_t max_tokens; /* 0: the agent's default */
	/* Server-side tools (and anthropic-beta values) model requests may use: the proxy's
	 * --model-allow-tool. */
	char allow_tools[16][64];
	size_t n_allow_tools;
};

/* The variable that holds the model key: api_key_env, or the provider's usual one. */
const char *config_key_env(const struct model_config *m);

struct daemon_config {
	char data_dir[512];
	char hosts_file[512]; /* "hosts_file": the proxies resolve from it only ("": DNS) */
	char listen_host[64];
	unsigned listen_port;
	bool allow_remote; /* listen may be a non-loopback address */
	unsigned max_concurrent;
	uint64_t folder_quota; /* "folder_quota": a group folder's, unless the group says */
	struct model_config model;
	struct budget_prices prices; /* "prices": USD per million tokens, per model (budget.h) */
	struct group_config groups[CONFIG_MAX_GROUPS];
	size_t n_groups;
	/* "limits": what one client, a flood of messages or an agent's tasks may take. */
	struct {
		unsigned connections; /* HTTP connections at once; 0: from the fd limit */
		unsigned connections_per_client; /* from one address; 0: half of connections */
		unsigned queue_per_group;        /* queued messages of one group (429 past it) */
		unsigned queue_total;            /* queued messages of all groups */
		unsigned task_min_interval;      /* seconds, for tasks an agent schedules */
		unsigned tasks_per_group;        /* active or paused tasks of one group */
	} limits;
	/* "envs": the groups' package layers (envs.c). Empty mirrors: the public registries. */
	struct envs_config {
		char debian[512]; /* one sources.list line */
		char npm[256];    /* registry URL */
		char pypi[256];   /* simple index URL */
		uint64_t max_bytes;
		unsigned max_packages;
		unsigned build_seconds;
	} envs;
	/* "vm": every run's sandbox inside one long-lived microVM (clawbox vm-service). */
	struct {
		bool on;
		char image[512]; /* "" : the guest beside clawbox (vm_default_image()) */
		uint64_t memory; /* the VM's RAM */
		char accel[8];   /* "auto" (""), "kvm" or "tcg" */
	} vm;
	/* "channels" (and the older "telegram" object, read as a channel named "telegram"):
	 * each a process of its own (channels.c); see channels-config.c. */
	struct channel_config channels[CONFIG_MAX_CHANNELS];
	size_t n_channels;
};

void config_done(struct daemon_config *c);

/* envs.c: the "envs" object (mirrors, quotas) into *ret, defaults first; j may be NULL. */
int envs_config_parse(void *j, struct envs_config *ret, char *why, size_t why_size);
/* A group's "engine" and "engine_options" into out (config-engine.c). 0, or -EINVAL with
 * the reason in why, -ENOMEM. */
/* channels-config.c: "channels" and the older "telegram" of the root object j into
 * c->channels. 0, or -EINVAL with the reason in why (the groups are parsed first: a chat
 * must name one). channels_config_done frees what it kept. */
int channels_config_parse(json_t *j, struct daemon_config *c, char *why, size_t size);
void channels_config_done(struct daemon_config *c);
/* The channel named name, or NULL. */
const struct channel_config *config_channel(const struct daemon_config *c, const char *name);
int config_parse_engine(json_t *g, const char *where, struct group_config *out, char *why,
                        size_t size);

/* Parses the JSON text. 0, or -EINVAL with one line in why ("groups[0].id: ..."). */
int config_parse(const char *text, struct daemon_config *ret, char *why, size_t why_size);

/* Loads path; when it does not exist, writes the default configuration there first (0600,
 * parent folders made) and says so in *ret_created. With ret_created NULL nothing is ever
 * written: a missing file is an error (--check-config). */
int config_load(const char *path, struct daemon_config *ret, bool *ret_created, char *why,
                size_t why_size);

/* The default configuration's text, data_dir filled in. Owned by the caller. */
char *config_default_text(const char *data_dir);

/* Sets listen_host and listen_port from "ADDRESS:PORT" (the "listen" key, serve --listen);
 * -EINVAL when it is not that. */
int config_set_listen(struct daemon_config *c, const char *text);
/* Whether listen_host is a loopback address (127.0.0.0/8, ::1, localhost). */
bool config_listen_loopback(const struct daemon_config *c);
/* Whether a model can be reached: a base URL, a key file, or the key's variable set in the
 * daemon's environment. */
bool config_model_configured(const struct model_config *m);
/* The group's egress caps and the model's allowed tools as command-line options: cap flags
 * are PREFIX "bytes-out" (and "bytes-in", "requests": "--proxy-max-" for clawbox ask,
 * "--max-" for clawbox-proxy), each followed by its value, then "--model-allow-tool NAME"
 * for each tool, then "--egress JSON" when the group has egress rules. Writes at most 8 + 2 *
 * 16 entries into argv (borrowing from cfg, g and buf) and returns how many. */
size_t config_egress_argv(const struct daemon_config *cfg, const struct group_config *g,
                          char *buf, size_t buf_size, const char **argv, const char *prefix);

const struct group_config *config_group(const struct daemon_config *c, const char *id);

#endif
