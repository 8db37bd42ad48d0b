/*
 * api-views.c: the endpoints the web app's views read, beside api.c's (which calls in after its
 * origin and token checks, so every one here is authenticated and refuses cross-origin
 * requests like the rest):
 *
 *   GET  /api/v1/status                  model configured?, version, where the token is
 *   GET  /api/v1/settings                the effective configuration (never a key) and the
 *                                        mount allowlist, channels and their state
 *   GET  /api/v1/runs?group=&before=&limit=  runs in progress and the history with tokens
 *   GET  /api/v1/runs/ID                 a run's transcript: its message, reply, tool timeline
 *                                        and egress (what its proxy allowed and refused)
 *   POST /api/v1/runs/ID/stop            stops the run answering message ID
 *   GET  /api/v1/usage/daily?days=N      tokens and cost_usd per group, day (UTC) and model
 *   GET  /api/v1/audit/query?group=&kind=&decision=&since=&until=&after=&limit=
 *   POST /api/v1/tasks/preview           the next five runs of a schedule, by the scheduler's
 *                                        own code (tasks.c, cron.c), in the group's zone
 *   POST /api/v1/tasks/ID/pause|resume
 *   GET  /api/v1/files/ID                the file a send_file message carried, as a download
 *   GET  /login-hint (api.c, no token)   the token file's path, for the login form
 *
 * Tool timelines are what runner.c kept of a run's tool_call / tool_result events (bounded,
 * summaries sanitized); the page renders every string here as text.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "fd-util.h"
#include "json-util.h"
#include "log.h"
#include "parse.h"
#include "taint.h"
#include "tasks.h"

#define PREVIEW_RUNS 5

static bool
refuse(struct daemon *d, struct evhttp_request *req, int status, const char *why)
{
	if (status == 503)
		log_error("the store failed: %s", store_error(d->store));
	d->http_refused++;
	api_send_json(req, status, json_pack("{s:s}", "error", why));
	return true;
}

/* The query's parameters; q is cleared by the caller (evhttp_clear_headers). */
static void
query_of(struct evhttp_request *req, struct evkeyvalq *q)
{
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	/* it starts the list empty, and leaves it empty on a malformed query */
	if (evhttp_parse_query_str(query ? query : "", q) < 0)
		(void)evhttp_parse_query_str("", q);
}

/* A numeric parameter: def when absent, -1 when malformed. */
static int64_t
query_num(struct evkeyvalq *q, const char *name, int64_t def)
{
	const char *v = evhttp_find_header(q, name);
	uint64_t n;
	if (!v || !*v)
		return def;
	return parse_u64(v, INT64_MAX, &n) == 0 ? (int64_t)n : -1;
}

static const char *
query_str(struct evkeyvalq *q, const char *name)
{
	const char *v = evhttp_find_header(q, name);
	return v && strlen(v) <= 128 ? v : "";
}

static bool
model_configured(const struct daemon *d)
{
	const struct model_config *m = &d->cfg.model;
	const char *env = config_key_env(m);
	return m->base_url[0] || m->api_key_file[0] || (getenv(env) && *getenv(env));
}

static bool
get_status(struct daemon *d, struct evhttp_request *req)
{
	char token_file[1024];
	snprintf(token_file, sizeof(token_file), "%s/%s", d->cfg.data_dir, DAEMON_TOKEN_FILE);
	api_send_json(req, 200,
	          json_pack("{s:b,s:s,s:s,s:s,s:s,s:i,s:i}", "model_configured",
	                    model_configured(d), "version", CLAWBOX_VERSION, "token_file",
	                    token_file, "config_file", d->config_path ? d->config_path : "",
	                    "key_env", config_key_env(&d->cfg.model), "running", (int)d->running,
	                    "max_concurrent", (int)d->cfg.max_concurrent));
	return true;
}

static bool
get_settings(struct daemon *d, struct evhttp_request *req)
{
	const struct daemon_config *c = &d->cfg;
	json_t *groups = json_array();
	for (size_t i = 0; i < c->n_groups; i++) {
		const struct group_config *g = &c->groups[i];
		json_t *allow = json_array(), *mounts = json_array();
		for (size_t k = 0; k < g->n_allow; k++)
			json_array_append_new(allow, json_string(g->allow[k]));
		for (size_t k = 0; k < g->n_mounts; k++) {
			char resolved[PATH_MAX], why[512] = "";
			int e = mountlist_check(&d->mounts, g->mounts[k].host, g->mounts[k].rw,
			                        resolved, why, sizeof(why));
			json_array_append_new(
			    mounts, json_pack("{s:s,s:s,s:b,s:b,s:s}", "host", g->mounts[k].host,
			                      "path", g->mounts[k].inside, "rw", g->mounts[k].rw,
			                      "allowed", e == 0, "why", why));
		}
		json_array_append_new(
		    groups, json_pack("{s:s,s:b,s:s,s:o,s:I,s:s,s:o}", "id", g->id, "main", g->main,
		                      "trigger", g->trigger, "allow", allow, "memory_bytes",
		                      (json_int_t)g->memory_bytes, "timezone",
		                      g->timezone[0] ? g->timezone : "UTC", "mounts", mounts));
	}
	json_t *roots = json_array(), *blocked = json_array();
	for (size_t i = 0; i < d->mounts.n_roots; i++)
		json_array_append_new(roots, json_pack("{s:s,s:b}", "path", d->mounts.roots[i].path,
		                                       "writable", d->mounts.roots[i].writable));
	for (size_t i = 0; i < d->mounts.n_blocked; i++)
		json_array_append_new(blocked, json_string(d->mounts.blocked[i]));
	const struct model_config *m = &c->model;
	const char *env = config_key_env(m);
	/* The key itself never leaves the daemon: only where it is looked for and whether it is. */
	json_t *model =
	    json_pack("{s:s,s:s,s:s,s:s,s:b,s:s,s:I,s:b}", "provider", m->provider, "base_url",
	              m->base_url, "model", m->model, "api_key_env", env, "api_key_env_set",
	              getenv(env) && *getenv(env), "api_key_file", m->api_key_file, "max_tokens",
	              (json_int_t)m->max_tokens, "configured", model_configured(d));
	/* Each channel as GET /api/v1/channels has it, "web" first, with the chats it has
	 * seen (its tokens are the channels' own: the daemon says nothing of them). */
	json_t *channels = channels_list(d);
	_cleanup_json_ json_t *chats = NULL;
	if (store_chats(d->store, &chats) == 0 && channels) {
		size_t i;
		json_t *c1;
		json_array_foreach(channels, i, c1)
		{
			json_t *seen = json_array();
			size_t k;
			json_t *row;
			json_array_foreach(chats, k, row) if (strcmp(json_get_str(row, "channel") ?: "",
			                                             json_get_str(c1, "name")) == 0)
			    json_array_append(seen, row);
			json_object_set_new(c1, "seen", seen);
		}
	}
	api_send_json(req, 200,
	          json_pack("{s:s,s:s,s:I,s:I,s:o,s:o,s:{s:b,s:o,s:o},s:o,s:{s:b,s:s}}", "data_dir",
	                    c->data_dir, "listen", c->listen_host, "port",
	                    (json_int_t)c->listen_port, "max_concurrent",
	                    (json_int_t)c->max_concurrent, "model", model, "groups", groups,
	                    "mount_allowlist", "present", d->mounts.present, "roots", roots,
	                    "blocked", blocked, "channels", channels, "vm", "on", c->vm.on, "accel",
	                    c->vm.accel[0] ? c->vm.accel : "auto"));
	return true;
}

static bool
get_runs(struct daemon *d, struct evhttp_request *req)
{
	struct evkeyvalq q;
	query_of(req, &q);
	const char *group = query_str(&q, "group");
	int64_t before = query_num(&q, "before", INT64_MAX), limit = query_num(&q, "limit", 100);
	bool known = !*group || config_group(&d->cfg, group);
	json_t *runs = NULL;
	int e = known && before >= 0 && limit >= 0
	            ? store_runs_view(d->store, group, 0, before, limit, &runs)
	            : 0;
	evhttp_clear_headers(&q);
	if (!known)
		return refuse(d, req, 404, "no such group");
	if (before < 0 || limit < 0)
		return refuse(d, req, 400, "\"before\" and \"limit\" must be numbers");
	if (e < 0)
		return refuse(d, req, 503, "the store is unavailable");
	size_t i;
	json_t *row;
	json_array_foreach(runs, i, row)
	{
		/* What tainted the run (taint.h), kept with its message when it ended. */
		json_t *causes =
		    taint_message_causes(d, json_integer_value(json_object_get(row, "message_id")));
		json_object_set_new(row, "tainted", json_boolean(json_array_size(causes) > 0));
		json_object_set_new(row, "taint", causes);
	}
	api_send_json(req, 200, json_pack("{s:o,s:o}", "running", runner_list(d), "runs", runs));
	return true;
}

/* /api/v1/runs/ID: the message, its reply and the tool timeline. */
static bool
get_transcript(struct daemon *d, struct evhttp_request *req, int64_t id)
{
	_cleanup_json_ json_t *runs = NULL;
	/* The run's group, from the daemon's own record of it. */
	if (store_runs_view(d->store, NULL, id, INT64_MAX, 1, &runs) < 0)
		return refuse(d, req, 503, "the store is unavailable");
	json_t *run = json_array_get(runs, 0), *r;
	size_t i;
	json_t *running = runner_list(d);
	json_array_foreach(
	    running, i, r) if (!run && json_integer_value(json_object_get(r, "message_id")) == id)
	    run = r;
	if (!run) {
		json_decref(running);
		return refuse(d, req, 404, "no such run");
	}
	const char *group = json_get_str(run, "group");
	_cleanup_json_ json_t *msgs = NULL;
	if (store_messages_after(d->store, group, id - 1, &msgs) < 0) {
		json_decref(running);
		return refuse(d, req, 503, "the store is unavailable");
	}
	json_t *message = json_null(), *replies = json_array(), *m;
	json_array_foreach(msgs, i, m)
	{
		int64_t mid = json_integer_value(json_object_get(m, "id"));
		if (mid == id)
			message = json_incref(m);
		else if (json_integer_value(json_object_get(m, "reply_to")) == id)
			json_array_append(replies, m);
	}
	char key[48], *buf = malloc(STORE_TEXT_MAX);
	snprintf(key, sizeof(key), "run-tools:%lld", (long long)id);
	json_t *tools = buf && store_kv_get(d->store, key, buf, STORE_TEXT_MAX) == 0
	                    ? json_loads(buf, 0, NULL)
	                    : NULL;
	free(buf);
	if (tools && !json_is_array(tools)) {
		json_decref(tools);
		tools = NULL;
	}
	/* The run's egress, as runner.c kept it from the run's proxy audit (kv "run-egress:ID"). */
	json_t *egress = NULL;
	buf = malloc(STORE_TEXT_MAX);
	snprintf(key, sizeof(key), "run-egress:%lld", (long long)id);
	if (buf && store_kv_get(d->store, key, buf, STORE_TEXT_MAX) == 0)
		egress = json_loads(buf, 0, NULL);
	free(buf);
	if (!json_is_array(egress)) {
		if (egress)
			json_decref(egress);
		egress = json_array();
	}
	if (!json_object_get(run, "taint")) { /* a finished run: what tainted it, kept (taint.h) */
		json_t *causes = taint_message_causes(d, id);
		json_object_set_new(run, "tainted", json_boolean(json_array_size(causes) > 0));
		json_object_set_new(run, "taint", causes);
	}
	api_send_json(req, 200,
	          json_pack("{s:O,s:o,s:o,s:o,s:o}", "run", run, "message", message, "replies",
	                    replies, "tools", tools ? tools : json_array(), "egress", egress));
	json_decref(running);
	return true;
}

static bool
get_usage_daily(struct daemon *d, struct evhttp_request *req)
{
	struct evkeyvalq q;
	query_of(req, &q);
	int64_t days = query_num(&q, "days", 30);
	evhttp_clear_headers(&q);
	if (days < 1 || days > 3660)
		return refuse(d, req, 400, "\"days\" must be a number from 1 to 3660");
	int64_t now = (int64_t)time(NULL);
	json_t *rows;
	if (store_usage_by_day(d->store, now - now % 86400 - (days - 1) * 86400, &rows) < 0)
		return refuse(d, req, 503, "the store is unavailable");
	api_send_json(req, 200, json_pack("{s:I,s:o}", "days", (json_int_t)days, "usage", rows));
	return true;
}

static bool
get_audit_query(struct daemon *d, struct evhttp_request *req)
{
	struct evkeyvalq q;
	query_of(req, &q);
	struct store_audit_filter f = {
	    .after = query_num(&q, "after", 0),
	    .since = query_num(&q, "since", 0),
	    .until = query_num(&q, "until", INT64_MAX),
	    .limit = query_num(&q, "limit", 500),
	    .group = query_str(&q, "group"),
	    .kind = query_str(&q, "kind"),
	    .decision = query_str(&q, "decision"),
	};
	json_t *entries = NULL;
	bool bad = f.after < 0 || f.since < 0 || f.until < 0 || f.limit < 0;
	int e = bad ? 0 : store_audit_query(d->store, &f, &entries);
	evhttp_clear_headers(&q);
	if (bad)
		return refuse(d, req, 400,
		              "\"after\", \"since\", \"until\" and \"limit\" are numbers");
	if (e < 0)
		return refuse(d, req, 503, "the store is unavailable");
	api_send_json(req, 200, json_pack("{s:o}", "entries", entries));
	return true;
}

static json_t *
body_object(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	if (len > DAEMON_BODY_MAX)
		return NULL;
	json_t *j = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, NULL);
	if (!json_is_object(j)) {
		if (j)
			json_decref(j);
		return NULL;
	}
	return j;
}

static void
iso_time(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&tt, &tm));
}

static bool
post_task_preview(struct daemon *d, struct evhttp_request *req)
{
	_cleanup_json_ json_t *body = body_object(req);
	if (!body)
		return refuse(d, req, 400, "the body must be a JSON object");
	const char *group = json_get_str(body, "group");
	const struct group_config *g = group ? config_group(&d->cfg, group) : NULL;
	if (!g)
		return refuse(d, req, group ? 404 : 400,
		              group ? "no such group" : "\"group\" is needed");
	json_object_del(body, "group");
	json_object_del(body, "prompt");
	char kind[8], spec[128], why[256], desc[256];
	int64_t next;
	if (tasks_parse_schedule(body, g->timezone, daemon_now(d), kind, spec, sizeof(spec), &next,
	                         why, sizeof(why)) < 0)
		return refuse(d, req, 400, why);
	tasks_describe(kind, spec, g->timezone, desc, sizeof(desc));
	json_t *times = json_array();
	for (int i = 0; i < PREVIEW_RUNS && next >= 0; i++) {
		char t[32];
		iso_time(next, t, sizeof(t));
		json_array_append_new(times,
		                      json_pack("{s:I,s:s}", "unix", (json_int_t)next, "utc", t));
		next = tasks_next(kind, spec, g->timezone, next);
	}
	api_send_json(req, 200,
	          json_pack("{s:s,s:s,s:o}", "schedule", desc, "timezone",
	                    g->timezone[0] ? g->timezone : "UTC", "next", times));
	return true;
}

static bool
post_task_state(struct daemon *d, struct evhttp_request *req, int64_t id, bool pause)
{
	_cleanup_json_ json_t *t = NULL;
	if (store_task_get(d->store, id, &t) < 0)
		return refuse(d, req, 404, "no such task");
	const char *status = json_get_str(t, "status") ?: "";
	if (strcmp(status, pause ? "active" : "paused") != 0)
		return refuse(d, req, 409,
		              pause ? "only an active task can be paused"
		                    : "only a paused task can be resumed");
	const struct group_config *g = config_group(&d->cfg, json_get_str(t, "group"));
	int64_t next = json_integer_value(json_object_get(t, "next_run"));
	if (!pause) {
		/* From now: a paused task does not fire for the runs it slept through. */
		int64_t now = daemon_now(d);
		if (strcmp(json_get_str(t, "kind"), "at") != 0 && next <= now)
			next = tasks_next(json_get_str(t, "kind"), json_get_str(t, "spec"),
			                  g ? g->timezone : "", now);
		if (next < 0)
			return refuse(d, req, 409, "the task has no run left");
	}
	if (store_task_update(d->store, id, pause ? "paused" : "active", next) < 0)
		return refuse(d, req, 503, "the store is unavailable");
	char idtext[24];
	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	(void)store_audit(d->store, json_get_str(t, "group"),
	                  pause ? "api:pause_task" : "api:resume_task", "allow", idtext);
	api_send_json(
	    req, 200,
	    json_pack("{s:I,s:s}", "id", (json_int_t)id, "status", pause ? "paused" : "active"));
	return true;
}

void
api_views_login_hint(struct daemon *d, struct evhttp_request *req)
{
	char token_file[1024];
	snprintf(token_file, sizeof(token_file), "%s/%s", d->cfg.data_dir, DAEMON_TOKEN_FILE);
	api_send_json(req, 200, json_pack("{s:s}", "token_file", token_file));
}

/* /api/v1/files/ID: the file a send_file message ID carried, from the daemon's own copy
 * (hostact.c recorded its name under kv "file:ID"), as a download, never rendered. */
static bool
get_file(struct daemon *d, struct evhttp_request *req, int64_t id)
{
	char key[48], name[256], path[PATH_MAX];
	snprintf(key, sizeof(key), "file:%lld", (long long)id);
	if (store_kv_get(d->store, key, name, sizeof(name)) < 0 || strchr(name, '/') ||
	    name[0] == '.')
		return refuse(d, req, 404, "no such file");
	if ((size_t)snprintf(path, sizeof(path), "%s/files/%s", d->cfg.data_dir, name) >=
	    sizeof(path))
		return refuse(d, req, 404, "no such file");
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return refuse(d, req, 404, "no such file");
	struct evbuffer *b = evbuffer_new();
	if (!b || evbuffer_add_file(b, fd, 0, st.st_size) < 0) {
		if (b)
			evbuffer_free(b);
		return refuse(d, req, 500, "the file could not be read");
	}
	fd = -1; /* the buffer owns it now */
	/* The name after the "<time>-<random>-" the daemon put before it. */
	const char *shown = name, *dash = strchr(name, '-');
	if (dash && strchr(dash + 1, '-'))
		shown = strchr(dash + 1, '-') + 1;
	char disp[400], safe[256];
	size_t k = 0;
	for (const char *c = shown; *c && k < sizeof(safe) - 1; c++)
		safe[k++] = (*c >= 0x20 && *c < 0x7f && *c != '"' && *c != '\\') ? *c : '_';
	safe[k] = '\0';
	snprintf(disp, sizeof(disp), "attachment; filename=\"%s\"", safe);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "application/octet-stream");
	evhttp_add_header(h, "Content-Disposition", disp);
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "Content-Security-Policy", "default-src 'none'; sandbox");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
	return true;
}

/* "ID" or "ID/verb" after a prefix: the id and the verb ("" for none), or -1. */
static int64_t
id_and_verb(const char *rest, const char **verb)
{
	char idtext[24];
	size_t n = strcspn(rest, "/");
	uint64_t id;
	if (n == 0 || n >= sizeof(idtext))
		return -1;
	memcpy(idtext, rest, n);
	idtext[n] = '\0';
	if (parse_u64(idtext, INT64_MAX, &id) < 0)
		return -1;
	*verb = rest[n] ? rest + n + 1 : "";
	return (int64_t)id;
}

bool
api_views_route(struct daemon *d, struct evhttp_request *req, const char *path)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	bool get = cmd == EVHTTP_REQ_GET, post = cmd == EVHTTP_REQ_POST;
	const char *verb;
	int64_t id;
	if (strcmp(path, "/api/v1/status") == 0 && get)
		return get_status(d, req);
	if (strcmp(path, "/api/v1/settings") == 0 && get)
		return get_settings(d, req);
	if (strcmp(path, "/api/v1/runs") == 0 && get)
		return get_runs(d, req);
	if (strcmp(path, "/api/v1/usage/daily") == 0 && get)
		return get_usage_daily(d, req);
	if (strcmp(path, "/api/v1/audit/query") == 0 && get)
		return get_audit_query(d, req);
	if (strcmp(path, "/api/v1/tasks/preview") == 0 && post)
		return post_task_preview(d, req);
	if (strncmp(path, "/api/v1/runs/", 13) == 0) {
		if ((id = id_and_verb(path + 13, &verb)) < 0)
			return refuse(d, req, 404, "no such run");
		if (!*verb && get)
			return get_transcript(d, req, id);
		if (strcmp(verb, "stop") == 0 && post) {
			char group[CONFIG_GROUP_ID_MAX] = "";
			_cleanup_json_ json_t *running = runner_list(d);
			size_t i;
			json_t *r;
			json_array_foreach(running, i, r) if (json_integer_value(json_object_get(
			                                          r, "message_id")) == id)
			    snprintf(group, sizeof(group), "%s", json_get_str(r, "group"));
			int e = runner_stop(d, id);
			if (e == -ENOENT)
				return refuse(d, req, 404, "no such run in progress");
			if (e < 0)
				return refuse(d, req, 500, "the run could not be stopped");
			char idtext[24];
			snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
			(void)store_audit(d->store, group, "api:stop_run", "allow", idtext);
			api_send_json(req, 202,
			          json_pack("{s:I,s:s}", "message_id", (json_int_t)id, "status",
			                    "stopping"));
			return true;
		}
		return refuse(d, req, 405, "GET /api/v1/runs/ID or POST /api/v1/runs/ID/stop");
	}
	if (strncmp(path, "/api/v1/files/", 14) == 0 && get) {
		if ((id = id_and_verb(path + 14, &verb)) < 0 || *verb)
			return refuse(d, req, 404, "no such file");
		return get_file(d, req, id);
	}
	if (strncmp(path, "/api/v1/tasks/", 14) == 0 && post &&
	    (id = id_and_verb(path + 14, &verb)) >= 0 &&
	    (strcmp(verb, "pause") == 0 || strcmp(verb, "resume") == 0))
		return post_task_state(d, req, id, strcmp(verb, "pause") == 0);
	return false;
}
