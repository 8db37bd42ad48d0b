/*
 * daemon.h: `clawbox serve`, the trusted side. One libevent loop runs the HTTP API, the
 * per-group queues and the invocations. It never clones: each invocation is a `clawbox ask
 * --json` it spawns (the sandbox launcher, the egress proxy and the agent are that process's
 * business), whose events it reads from a pipe. It decides from its own state only: which
 * group a run was started for is what it recorded when it started it.
 */
#ifndef CLAWBOX_DAEMON_H
#define CLAWBOX_DAEMON_H

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "channels.h"
#include "config.h"
#include "mountlist.h"
#include "store.h"

#define DAEMON_BODY_MAX   (64 * 1024) /* an API request body */
#define DAEMON_TEXT_MAX   (32 * 1024) /* one message's text */
#define DAEMON_REPLY_MAX  (1u << 20)  /* what is kept of one reply */
#define DAEMON_TOKEN_FILE "api-token"
/* The loop's priorities: the API and run I/O first, starting queued runs last. */
#define DAEMON_PRIOS     3
#define DAEMON_PRIO_RUNS 2
#define DAEMON_SLICE_NS  100000 /* the daemon's scheduler slice: 0.1 ms (slice.c) */
#define DAEMON_RUN_NICE  10     /* runs below the daemon: its API answers under load */

struct run;

struct daemon {
	struct daemon_config cfg;
	struct mountlist mounts; /* the operator's allowlist of host folders */
	char config_dir[PATH_MAX];
	const char *config_path;
	struct store *store;
	struct event_base *base;
	struct evhttp *http;
	struct event *sigchld, *sigterm, *sigint, *scheduler;
	char token[65];
	char origin[128];       /* what a browser's Origin must be */
	char clawbox[PATH_MAX]; /* the clawbox executable, next to ours */
	struct run *runs;       /* in progress */
	unsigned running;
	bool stopping;
	bool retry_pending; /* a start that failed for want of resources is retried soon */
	uint64_t http_requests, http_refused, runs_started, runs_failed;
	int64_t clock_offset; /* CLAWBOX_TEST_CLOCK_OFFSET: the scheduler's clock, for tests */
	pid_t vm_pid;         /* "vm": the clawbox vm-service child, or -1 */
	time_t vm_started;
	int vm_backoff; /* seconds before the next restart */
	struct event *vm_timer;
	char vm_socket[PATH_MAX];
	struct {
		int64_t message;
		unsigned tries;
	} vm_retries[16]; /* messages whose run the VM's death cut short, retried at most twice */
	size_t vm_retry_next;
	/* Messages whose reply the store refused (its disk full): run again after a backoff,
	 * given up after STORE_RETRY_MAX runs (runner.c). */
	struct store_retry {
		int64_t message;
		unsigned runs;      /* runs whose reply could not be stored */
		int64_t not_before; /* CLOCK_MONOTONIC ms: no run, and no write, before */
		bool given_up;      /* to be marked failed as soon as the store takes it */
		char why[256];
	} store_retries[16];
	size_t store_retry_next;
	struct event *retry_timer;
	struct event *kick_event; /* runner_kick's: starts runs a few a turn */
	/* Each group folder's size at its last count (quota.c), by index in cfg.groups. */
	uint64_t folder_bytes[CONFIG_MAX_GROUPS];
	bool folder_known[CONFIG_MAX_GROUPS];
};

/* The scheduler's idea of now (unix seconds). */
static inline int64_t
daemon_now(const struct daemon *d)
{
	return (int64_t)time(NULL) + d->clock_offset;
}

/* argv[0] started with in, out and err as its stdio and envp as its environment, killed if
 * the daemon dies (runner.c). The pid, or -errno. */
pid_t daemon_spawn(const char **argv, char **envp, int in, int out, int err);
/* As daemon_spawn, and keep (>= 0, close-on-exec here) stays open in the child. */
pid_t daemon_spawn_keep(const char **argv, char **envp, int in, int out, int err, int keep);
/* The same with fds[i] as the child's fd i, for i < n (n <= 4): a channel gets its socket as
 * fd 3. unprivileged: the child keeps no capability and runs with no-new-privs (a channel:
 * it talks to the Internet and needs none). */
pid_t daemon_spawn_fds(const char **argv, char **envp, const int *fds, size_t n, int keep,
                       bool unprivileged);
/* The group's folder (data_dir/groups/GROUP), made if missing and owned as its runs need
 * it (runner.c): 0 and its path in buf, or -errno. */
int daemon_group_dir(struct daemon *d, const char *group, char *buf, size_t size);
/* The environment a child gets: PATH, HOME, LANG, TZ and, with model_key, the model key's
 * variable; pointers into environ, NULL-terminated, at most max entries. */
void daemon_environment(const struct daemon *d, bool model_key, char **envp, size_t max);

/* The "vm" service (vmservice.c): started at start and again whenever it ends; a reaped pid
 * that was the service's is taken by vm_service_reaped(). */
int vm_service_start(struct daemon *d);
bool vm_service_reaped(struct daemon *d, pid_t pid, int status);
void vm_service_stop(struct daemon *d);

/* Runner (runner.c). */
/* Starts what the queues and the cap allow. */
void runner_kick(struct daemon *d);
/* A child exited (from SIGCHLD). */
void runner_reap(struct daemon *d);
/* Kills every run (on shutdown); their messages stay 'running' and are queued again at the
 * next start. */
void runner_stop_all(struct daemon *d);
/* The runs in progress: [{"group", "message_id", "started_ms", "elapsed_s", "last_tool",
 * "tool_events", "stopping"}]. */
json_t *runner_list(struct daemon *d);
/* Stops the run answering message, or the group's run (SIGTERM; its reply says it was
 * stopped, after what the agent had said): 0, or -ENOENT when none runs. */
int runner_stop(struct daemon *d, int64_t message);
int runner_stop_group(struct daemon *d, const char *group);
/* Long runs (issue 12); the API's side is in longrun.c. */
bool longrun_route(struct daemon *d, struct evhttp_request *req, const char *path);
/* A chat message that is "/stop" or "/stop@Bot" (spaces around allowed): it stops the run; it
 * is not a message. */
bool longrun_is_stop(const char *text);
/* Stops GROUP's run for a request (a POST .../stop or a "/stop" message): audited, answered
 * 200 {"group", "stopped": true|false}. */
void longrun_stop_reply(struct daemon *d, struct evhttp_request *req, const char *group,
                        const char *by);

/* Live events for clients (stream.c): -EBUSY past the listener cap. */
int stream_open(struct daemon *d, struct evhttp_request *req, const char *group, int64_t after);
void stream_delta(struct daemon *d, const char *group, int64_t reply_to, const char *text,
                  size_t len);
/* The group's messages changed: listeners hear now, not at the next poll. */
void stream_notify(struct daemon *d, const char *group);
/* An event of the given type to the group's listeners (the web app's "tool" events). */
void stream_event(struct daemon *d, const char *group, const char *type, json_t *data);
/* The web app's endpoints (api-views.c): true if it answered req. Called after the
 * authentication and origin checks. */
bool api_views_route(struct daemon *d, struct evhttp_request *req, const char *path);
/* GET /login-hint (no token needed): the token file's path, nothing else. */
void api_views_login_hint(struct daemon *d, struct evhttp_request *req);
void stream_close_all(struct daemon *d);
/* For /metrics: listeners now, and the bytes waiting for them in the daemon. */
void stream_stats(unsigned *listeners, size_t *unread_bytes);

/* The scheduler slice (slice.c): short for the daemon, the default for its runs. Best
 * effort, never failing. */
void daemon_slice_short(void);
void daemon_slice_default(void);

/* HTTP API (api.c). 0, or -errno after one line on stderr. */
int api_start(struct daemon *d);
/* Sends body (owned: freed here; NULL sends none) as the JSON answer with status: the one
 * writer of API answers, for api.c and the files that add routes to it. */
void api_send_json(struct evhttp_request *req, int status, json_t *body);

#endif
