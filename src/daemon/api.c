/*
 * api.c: the HTTP API on loopback (libevent's evhttp). Every /api/ request needs the bearer
 * token (compared in constant time); a browser's request must come from the daemon's own
 * origin; bodies are limited (413) and must be JSON objects (400); an unknown group is a 404;
 * nothing is stored for a refused request. /healthz and /metrics need no token and say
 * nothing about any group. Before any of that, every request (those two too) must have
 * unambiguous headers and the daemon's own Host (apiguard.c).
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/http_struct.h> /* evhttp_send_error() sets the version, as libevent does */
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apiguard.h"
#include "envs.h"
#include "approvals.h"
#include "daemon.h"
#include "json-util.h"
#include "log.h"
#include "parse.h"
#include "quota.h"
#include "tasks.h"
#include "web.h"

/* The methods libevent knows; any other arrives as its "unknown" type (1 << 15). */
#define API_KNOWN_METHODS                                                                         \
	(EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | \
	 EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH)

static struct daemon *api_daemon; /* for the refusals libevent makes itself (below) */

void
api_send_json(struct evhttp_request *req, int status, json_t *body)
{
	struct evbuffer *b = evbuffer_new();
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	if (b && s) {
		evbuffer_add(b, s, strlen(s));
		evbuffer_add(b, "\n", 1);
	}
	free(s);
	if (body)
		json_decref(body);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "application/json");
	evhttp_send_reply(req, status, NULL, b);
	if (b)
		evbuffer_free(b);
}

static void
refuse(struct daemon *d, struct evhttp_request *req, int status, const char *why)
{
	d->http_refused++;
	api_send_json(req, status, json_pack("{s:s}", "error", why));
}

/* Constant time in the length of the expected token, whatever the candidate. */
static bool
token_ok(const struct daemon *d, const char *header)
{
	static const char prefix[] = "Bearer ";
	if (!header || strncmp(header, prefix, sizeof(prefix) - 1) != 0)
		return false;
	const char *got = header + sizeof(prefix) - 1;
	size_t want_len = strlen(d->token), got_len = strlen(got);
	unsigned char diff = (unsigned char)(want_len != got_len);
	for (size_t i = 0; i < want_len; i++)
		diff |= (unsigned char)d->token[i] ^ (unsigned char)(i < got_len ? got[i] : 0);
	return diff == 0;
}

/* The request's body as a JSON object, or NULL after a 400/413. */
static json_t *
body_object(struct daemon *d, struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	if (len > DAEMON_BODY_MAX) {
		refuse(d, req, 413, "the body is larger than 64 KiB");
		return NULL;
	}
	json_error_t jerr;
	/* Duplicate keys: another reader of the same body might take the other value. */
	json_t *j =
	    json_loadb((const char *)evbuffer_pullup(in, -1), len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(j)) {
		if (j)
			json_decref(j);
		refuse(d, req, 400, "the body must be a JSON object");
		return NULL;
	}
	return j;
}

static int64_t
query_after(struct evhttp_request *req)
{
	struct evkeyvalq q;
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	int64_t after = 0;
	if (query && evhttp_parse_query_str(query, &q) == 0) {
		const char *a = evhttp_find_header(&q, "after");
		uint64_t v;
		if (a && parse_u64(a, INT64_MAX, &v) == 0)
			after = (int64_t)v;
		else if (a)
			after = -1;
		evhttp_clear_headers(&q);
	}
	return after;
}

/* Past the group's or the total queue cap: a 429 that says when to try again, and nothing
 * stored. */
static bool
queue_full(struct daemon *d, struct evhttp_request *req, const char *group)
{
	int64_t mine = 0, all = 0;
	if (store_queued_count(d->store, group, &mine) < 0 ||
	    store_queued_count(d->store, NULL, &all) < 0) {
		refuse(d, req, 503, "the store is unavailable");
		return true;
	}
	if (mine < (int64_t)d->cfg.limits.queue_per_group &&
	    all < (int64_t)d->cfg.limits.queue_total)
		return false;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "10");
	refuse(d, req, 429,
	       mine >= (int64_t)d->cfg.limits.queue_per_group
	           ? "the group's queue is full (limits.queue_per_group); try again later"
	           : "the daemon's queue is full (limits.queue_total); try again later");
	return true;
}

static int64_t
query_limit(struct evhttp_request *req)
{
	struct evkeyvalq q;
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	int64_t limit = 0;
	if (query && evhttp_parse_query_str(query, &q) == 0) {
		const char *a = evhttp_find_header(&q, "limit");
		uint64_t v;
		if (a && parse_u64(a, STORE_LIST_MAX, &v) == 0 && v > 0)
			limit = (int64_t)v;
		else if (a)
			limit = -1;
		evhttp_clear_headers(&q);
	}
	return limit;
}

static void
post_message(struct daemon *d, struct evhttp_request *req, const char *group)
{
	_cleanup_json_ json_t *body = body_object(d, req);
	if (!body)
		return;
	json_t *text = json_object_get(body, "text"), *sender = json_object_get(body, "sender");
	if (!json_is_string(text) || json_string_length(text) == 0 ||
	    json_string_length(text) > DAEMON_TEXT_MAX ||
	    strlen(json_string_value(text)) != json_string_length(text)) {
		refuse(d, req, 400, "\"text\" must be a non-empty string of at most 32 KiB");
		return;
	}
	if (sender && (!json_is_string(sender) || json_string_length(sender) > 128)) {
		refuse(d, req, 400, "\"sender\" must be a string of at most 128 characters");
		return;
	}
	if (longrun_is_stop(json_string_value(text))) { /* a command, not a message */
		longrun_stop_reply(d, req, group, "api:stop");
		return;
	}
	if (queue_full(d, req, group))
		return;
	/* Stored without terminal controls: whoever shows them later need not trust us. */
	_cleanup_free_ char *clean_text =
	    api_clean_text(json_string_value(text), json_string_length(text), false);
	_cleanup_free_ char *clean_sender =
	    sender ? api_clean_text(json_string_value(sender), json_string_length(sender), true)
	           : NULL;
	if (!clean_text || (sender && !clean_sender)) {
		refuse(d, req, 503, "out of memory");
		return;
	}
	/* "task:N" is how the daemon marks a task's firing (coalescing and the rule that a
	 * task's run may not schedule rely on it): no client may pass for one. */
	if (clean_sender && strncmp(clean_sender, "task:", 5) == 0) {
		refuse(d, req, 400, "\"sender\" may not start with \"task:\"");
		return;
	}
	int64_t id;
	/* Committed before the 202: an accepted message survives a crash. */
	if (store_message_in(d->store, group, clean_sender, clean_text, &id) < 0) {
		log_error("cannot store a message: %s", store_error(d->store));
		refuse(d, req, 503, "the store is unavailable");
		return;
	}
	api_send_json(req, 202, json_pack("{s:I}", "id", (json_int_t)id));
	char idtext[24], len[24];
	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	snprintf(len, sizeof(len), "%zu", json_string_length(text));
	const char *const f[] = {"group", group, "message", idtext, "bytes", len, "from", "api",
	                         NULL};
	log_fields("info", f, "message received");
	stream_notify(d, group);
	runner_kick(d);
}

static void
get_messages(struct daemon *d, struct evhttp_request *req, const char *group)
{
	int64_t after = query_after(req);
	if (after < 0) {
		refuse(d, req, 400, "\"after\" must be a message id");
		return;
	}
	json_t *msgs;
	if (store_messages_after(d->store, group, after, &msgs) < 0) {
		refuse(d, req, 503, "the store is unavailable");
		return;
	}
	api_send_json(req, 200, json_pack("{s:o}", "messages", msgs));
}

/* GET /api/v1/groups/ID/env: the group's packages, its layer, the last build; POST
 * {"add": [...], "remove": [...]}: change the set (a build starts; envs.c). */
static void
env_endpoint(struct daemon *d, struct evhttp_request *req, const char *group,
             enum evhttp_cmd_type cmd)
{
	if (!config_group(&d->cfg, group)) {
		refuse(d, req, 404, "no such group");
		return;
	}
	if (cmd == EVHTTP_REQ_GET) {
		api_send_json(req, 200, envs_view(d, group));
		return;
	}
	if (cmd != EVHTTP_REQ_POST) {
		refuse(d, req, 405, "GET or POST");
		return;
	}
	_cleanup_json_ json_t *body = body_object(d, req);
	if (!body)
		return;
	char why[256] = "";
	int r = envs_change(d, group, "user", json_object_get(body, "add"),
	                    json_object_get(body, "remove"), why, sizeof(why));
	if (r == -EINVAL || r == -E2BIG)
		refuse(d, req, 400, why);
	else if (r < 0)
		refuse(d, req, 503, why[0] ? why : "the store is unavailable");
	else
		api_send_json(req, 202, envs_view(d, group));
}

static void
get_groups(struct daemon *d, struct evhttp_request *req)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < d->cfg.n_groups; i++) {
		const struct group_config *g = &d->cfg.groups[i];
		uint64_t used = 0; /* as last measured (after each run), or now if never */
		(void)quota_group_usage(d, g, false, &used);
		json_array_append_new(arr, json_pack("{s:s,s:b,s:s,s:I,s:I,s:b}", "id", g->id,
		                                     "main", g->main, "trigger", g->trigger,
		                                     "folder_bytes", (json_int_t)used,
		                                     "folder_quota", (json_int_t)g->folder_quota,
		                                     "paused", group_paused(d, g->id)));
	}
	/* model_configured: the chat page says plainly when no model can answer. */
	api_send_json(req, 200, json_pack("{s:o,s:b}", "groups", arr, "model_configured",
	                               config_model_configured(&d->cfg.model)));
}

static void
get_audit(struct daemon *d, struct evhttp_request *req)
{
	int64_t after = query_after(req);
	json_t *entries;
	if (after < 0) {
		refuse(d, req, 400, "\"after\" must be an entry id");
		return;
	}
	if (store_audit_after(d->store, after, &entries) < 0) {
		refuse(d, req, 503, "the store is unavailable");
		return;
	}
	api_send_json(req, 200, json_pack("{s:o}", "entries", entries));
}

static json_t *
task_view(struct daemon *d, json_t *t)
{
	const struct group_config *g = config_group(&d->cfg, json_get_str(t, "group"));
	char desc[256], next[32] = "";
	tasks_describe(json_get_str(t, "kind"), json_get_str(t, "spec"), g ? g->timezone : "", desc,
	               sizeof(desc));
	time_t n = (time_t)json_integer_value(json_object_get(t, "next_run"));
	struct tm tm;
	if (n > 0 && strcmp(json_get_str(t, "status"), "active") == 0)
		strftime(next, sizeof(next), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&n, &tm));
	return json_pack("{s:O,s:O,s:O,s:s,s:s,s:O}", "id", json_object_get(t, "id"), "group",
	                 json_object_get(t, "group"), "prompt", json_object_get(t, "prompt"),
	                 "schedule", desc, "next_run", next, "status",
	                 json_object_get(t, "status"));
}

/* A page of tasks: ?after=ID (0) &limit=N (at most STORE_LIST_MAX); "next" is the after of
 * the next page, null after the last. */
static void
get_tasks(struct daemon *d, struct evhttp_request *req)
{
	_cleanup_json_ json_t *tasks = NULL;
	int64_t after = query_after(req), limit = query_limit(req);
	if (after < 0 || limit < 0) {
		refuse(d, req, 400, "\"after\" must be a task id and \"limit\" a count");
		return;
	}
	if (store_tasks_page(d->store, NULL, after, limit ? limit : STORE_LIST_MAX, &tasks) < 0) {
		refuse(d, req, 503, "the store is unavailable");
		return;
	}
	json_t *out = json_array();
	size_t i;
	json_t *t;
	json_array_foreach(tasks, i, t) json_array_append_new(out, task_view(d, t));
	size_t n = json_array_size(tasks);
	json_t *last = n ? json_object_get(json_array_get(tasks, n - 1), "id") : NULL;
	bool full = (int64_t)n == (limit ? limit : STORE_LIST_MAX);
	api_send_json(req, 200,
	           json_pack("{s:o,s:O}", "tasks", out, "next", full && last ? last : json_null()));
}

/* DELETE /api/v1/tasks?group=G: every task of the group cancelled. */
static void
cancel_group_tasks(struct daemon *d, struct evhttp_request *req)
{
	struct evkeyvalq q;
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	char group[CONFIG_GROUP_ID_MAX] = "";
	if (query && evhttp_parse_query_str(query, &q) == 0) {
		const char *gq = evhttp_find_header(&q, "group");
		if (gq)
			snprintf(group, sizeof(group), "%s", gq);
		evhttp_clear_headers(&q);
	}
	if (!group[0] || !config_group(&d->cfg, group)) {
		refuse(d, req, group[0] ? 404 : 400,
		       group[0] ? "no such group" : "?group= is needed");
		return;
	}
	int n = store_tasks_cancel_group(d->store, group);
	if (n < 0) {
		refuse(d, req, 503, "the store is unavailable");
		return;
	}
	char why[64];
	snprintf(why, sizeof(why), "all (%d)", n);
	(void)store_audit(d->store, group, "api:cancel_task", "allow", why);
	api_send_json(req, 200, json_pack("{s:s,s:i}", "group", group, "cancelled", n));
}

/* POST /api/v1/groups/G/pause | resume: a paused group queues messages and runs nothing,
 * its tasks' firings are skipped (and counted), and a run in progress is stopped at once
 * (its sandbox ends with it; the reply says it was stopped). */
static void
pause_group(struct daemon *d, struct evhttp_request *req, const char *group, bool pause)
{
	if (group_set_paused(d, group, pause) < 0) {
		refuse(d, req, 503, "the store is unavailable");
		return;
	}
	(void)store_audit(d->store, group, pause ? "api:pause" : "api:resume", "allow", group);
	if (pause && runner_stop_group(d, group) == 0)
		(void)store_audit(d->store, group, "api:pause", "allow",
		                  "the run in progress is stopped");
	api_send_json(req, 200, json_pack("{s:s,s:b}", "group", group, "paused", pause));
	if (!pause)
		runner_kick(d);
}

static void
post_task(struct daemon *d, struct evhttp_request *req)
{
	_cleanup_json_ json_t *body = body_object(d, req);
	if (!body)
		return;
	const char *group = json_get_str(body, "group");
	json_t *prompt = json_object_get(body, "prompt");
	const struct group_config *g = group ? config_group(&d->cfg, group) : NULL;
	if (!g) {
		refuse(d, req, group ? 404 : 400, group ? "no such group" : "\"group\" is needed");
		return;
	}
	if (!json_is_string(prompt) || json_string_length(prompt) == 0 ||
	    json_string_length(prompt) > TASK_PROMPT_MAX) {
		refuse(d, req, 400, "\"prompt\" must be a non-empty string of at most 16 KiB");
		return;
	}
	char kind[8], spec[128], why[256];
	int64_t next, id;
	if (tasks_parse_schedule(body, g->timezone, daemon_now(d), kind, spec, sizeof(spec), &next,
	                         why, sizeof(why)) < 0) {
		refuse(d, req, 400, why);
		return;
	}
	_cleanup_free_ char *clean =
	    api_clean_text(json_string_value(prompt), json_string_length(prompt), false);
	if (!clean || store_task_add(d->store, g->id, clean, kind, spec, next, "api", &id) < 0) {
		refuse(d, req, 503, "the store is unavailable");
		return;
	}
	(void)store_audit(d->store, g->id, "api:schedule_task", "allow", spec);
	_cleanup_json_ json_t *t = NULL;
	if (store_task_get(d->store, id, &t) < 0) {
		refuse(d, req, 503, "the store is unavailable");
		return;
	}
	api_send_json(req, 201, task_view(d, t));
}

static void
delete_task(struct daemon *d, struct evhttp_request *req, const char *idtext)
{
	uint64_t id;
	_cleanup_json_ json_t *t = NULL;
	if (parse_u64(idtext, INT64_MAX, &id) < 0 ||
	    store_task_get(d->store, (int64_t)id, &t) < 0) {
		refuse(d, req, 404, "no such task");
		return;
	}
	if (store_task_update(d->store, (int64_t)id, "cancelled", 0) < 0) {
		refuse(d, req, 503, "the store is unavailable");
		return;
	}
	(void)store_audit(d->store, json_get_str(t, "group"), "api:cancel_task", "allow", idtext);
	api_send_json(req, 200, json_pack("{s:I,s:s}", "id", (json_int_t)id, "status", "cancelled"));
}

/* /api/v1/tasks/ID/runs: the run history. */
static void
get_task_runs(struct daemon *d, struct evhttp_request *req, const char *rest)
{
	uint64_t id;
	char idtext[24];
	size_t n = strcspn(rest, "/");
	_cleanup_json_ json_t *t = NULL, *runs = NULL;
	if (n >= sizeof(idtext) || strcmp(rest + n, "/runs") != 0) {
		refuse(d, req, 404, "no such endpoint");
		return;
	}
	memcpy(idtext, rest, n);
	idtext[n] = '\0';
	if (parse_u64(idtext, INT64_MAX, &id) < 0 ||
	    store_task_get(d->store, (int64_t)id, &t) < 0) {
		refuse(d, req, 404, "no such task");
		return;
	}
	if (store_task_runs(d->store, (int64_t)id, &runs) < 0) {
		refuse(d, req, 503, "the store is unavailable");
		return;
	}
	size_t i;
	json_t *r;
	json_array_foreach(runs, i, r)
	{
		json_t *ended = json_object_get(r, "ended");
		if (json_is_integer(ended))
			json_object_set_new(
			    r, "duration_s",
			    json_integer(json_integer_value(ended) -
			                 json_integer_value(json_object_get(r, "started"))));
	}
	api_send_json(req, 200, json_pack("{s:I,s:O}", "task", (json_int_t)id, "runs", runs));
}

static void
get_usage(struct daemon *d, struct evhttp_request *req)
{
	json_t *usage;
	if (store_usage_by_group(d->store, &usage) < 0) {
		refuse(d, req, 503, "the store is unavailable");
		return;
	}
	api_send_json(req, 200, json_pack("{s:o}", "usage", usage));
}

static void
get_metrics(struct daemon *d, struct evhttp_request *req)
{
	struct store_counts c = {0};
	(void)store_counts(d->store, &c);
	unsigned listeners;
	size_t unread;
	stream_stats(&listeners, &unread);
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(
	    b,
	    "# TYPE clawbox_messages_in_total counter\nclawbox_messages_in_total %lld\n"
	    "# TYPE clawbox_messages_out_total counter\nclawbox_messages_out_total %lld\n"
	    "# TYPE clawbox_messages_queued gauge\nclawbox_messages_queued %lld\n"
	    "# TYPE clawbox_runs_active gauge\nclawbox_runs_active %u\n"
	    "# TYPE clawbox_runs_started_total counter\nclawbox_runs_started_total %llu\n"
	    "# TYPE clawbox_runs_failed_total counter\nclawbox_runs_failed_total %llu\n"
	    "# TYPE clawbox_http_requests_total counter\nclawbox_http_requests_total %llu\n"
	    "# TYPE clawbox_http_refused_total counter\nclawbox_http_refused_total %llu\n"
	    "# TYPE clawbox_tokens_total counter\n"
	    "clawbox_tokens_total{kind=\"input\"} %llu\nclawbox_tokens_total{kind=\"output\"} "
	    "%llu\n"
	    "clawbox_tokens_total{kind=\"cache_write\"} %llu\n"
	    "clawbox_tokens_total{kind=\"cache_read\"} %llu\n"
	    "# TYPE clawbox_stream_listeners gauge\nclawbox_stream_listeners %u\n"
	    "# TYPE clawbox_stream_unread_bytes gauge\nclawbox_stream_unread_bytes %zu\n",
	    (long long)c.messages_in, (long long)c.messages_out,
	    (long long)(c.queued > (int64_t)d->running ? c.queued - (int64_t)d->running : 0),
	    d->running, (unsigned long long)d->runs_started, (unsigned long long)d->runs_failed,
	    (unsigned long long)d->http_requests, (unsigned long long)d->http_refused,
	    (unsigned long long)c.usage.input, (unsigned long long)c.usage.output,
	    (unsigned long long)c.usage.cache_write, (unsigned long long)c.usage.cache_read,
	    listeners, unread);
	unsigned conns;
	uint64_t evicted;
	api_guard_stats(&conns, &evicted);
	evbuffer_add_printf(b,
	                    "# TYPE clawbox_http_connections gauge\nclawbox_http_connections %u\n"
	                    "# TYPE clawbox_http_connections_closed_by_cap_total counter\n"
	                    "clawbox_http_connections_closed_by_cap_total %llu\n",
	                    conns, (unsigned long long)evicted);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/* The chat page. It holds no secret (the token is the user's to give it), and is locked
 * down: only its own scripts, styles and API, no framing, no referrer. */
static void
serve_page(struct evhttp_request *req, const struct web_file *f)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	const char *type = strstr(f->path, ".js")    ? "text/javascript; charset=utf-8"
	                   : strstr(f->path, ".css") ? "text/css; charset=utf-8"
	                                             : "text/html; charset=utf-8";
	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Content-Security-Policy",
	                  "default-src 'none'; script-src 'self'; style-src 'self'; "
	                  "connect-src 'self'; base-uri 'none'; form-action 'none'; "
	                  "frame-ancestors 'none'");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_add_header(h, "Cache-Control", "no-cache");
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_reference(b, f->data, f->size, NULL, NULL);
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void
route(struct evhttp_request *req, void *arg)
{
	struct daemon *d = arg;
	d->http_requests++;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	if (!path) {
		refuse(d, req, 400, "bad request target");
		return;
	}
	/* Before anything else, /healthz and /metrics too. A request two parsers could read
	 * differently is refused, and its connection closed: what follows it is not trusted. */
	char why[96];
	if (api_headers_check(req, why, sizeof(why)) < 0) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
		refuse(d, req, 400, why);
		return;
	}
	/* DNS rebinding: a page elsewhere can point its own name at 127.0.0.1, and the browser
	 * sends that name as the Host. Only our own address (or localhost) is served. */
	if (!api_host_ok(d, req)) {
		refuse(d, req, 421, "the Host is not this daemon's address");
		return;
	}
	if (strcmp(path, "/healthz") == 0 && cmd == EVHTTP_REQ_GET) {
		api_send_json(req, 200, json_pack("{s:s}", "status", "ok"));
		return;
	}
	if (strcmp(path, "/metrics") == 0 && cmd == EVHTTP_REQ_GET) {
		get_metrics(d, req);
		return;
	}
	if (!(cmd & API_KNOWN_METHODS)) {
		refuse(d, req, 501, "method not implemented: GET, POST or DELETE");
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_POST && cmd != EVHTTP_REQ_DELETE) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
		                  "GET, POST, DELETE");
		refuse(d, req, 405, "method not allowed: GET, POST or DELETE");
		return;
	}
	for (const struct web_file *f = web_files; f->path && cmd == EVHTTP_REQ_GET; f++) {
		if (strcmp(path, f->path) == 0) {
			serve_page(req, f);
			return;
		}
	}
	if (strcmp(path, "/login-hint") == 0 && cmd == EVHTTP_REQ_GET) {
		api_views_login_hint(d, req); /* where the token is, for the login form */
		return;
	}
	if (strncmp(path, "/api/", 5) != 0) {
		refuse(d, req, 404, "no such page");
		return;
	}
	/* A page on another site cannot drive the API through the user's browser. */
	const char *origin = evhttp_find_header(h, "Origin");
	if (origin && !api_origin_ok(d, req, origin)) {
		refuse(d, req, 403, "cross-origin requests are refused");
		return;
	}
	if (!token_ok(d, evhttp_find_header(h, "Authorization"))) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
		                  "Bearer");
		refuse(d, req, 401,
		       "a valid bearer token is needed (the api-token file in the data "
		       "folder)");
		return;
	}
	if (longrun_route(d, req, path)) /* stop, runs in progress (longrun.c) */
		return;
	if (channels_route(d, req, path)) /* GET /api/v1/channels (channels.c) */
		return;
	if (api_views_route(d, req, path)) /* the web app's views (api-views.c) */
		return;
	if (strcmp(path, "/api/v1/groups") == 0 && cmd == EVHTTP_REQ_GET) {
		get_groups(d, req);
		return;
	}
	if (strcmp(path, "/api/v1/audit") == 0 && cmd == EVHTTP_REQ_GET) {
		get_audit(d, req);
		return;
	}
	if (strcmp(path, "/api/v1/tasks") == 0) {
		if (cmd == EVHTTP_REQ_GET)
			get_tasks(d, req);
		else if (cmd == EVHTTP_REQ_POST)
			post_task(d, req);
		else if (cmd == EVHTTP_REQ_DELETE)
			cancel_group_tasks(d, req);
		else
			refuse(d, req, 405, "GET, POST or DELETE");
		return;
	}
	if (strncmp(path, "/api/v1/tasks/", 14) == 0 && cmd == EVHTTP_REQ_DELETE) {
		delete_task(d, req, path + 14);
		return;
	}
	if (strncmp(path, "/api/v1/tasks/", 14) == 0 && cmd == EVHTTP_REQ_GET) {
		get_task_runs(d, req, path + 14);
		return;
	}
	if (strcmp(path, "/api/v1/chats") == 0 && cmd == EVHTTP_REQ_GET) {
		json_t *chats;
		if (store_chats(d->store, &chats) < 0)
			refuse(d, req, 503, "the store is unavailable");
		else
			api_send_json(req, 200, json_pack("{s:o}", "chats", chats));
		return;
	}
	if (strcmp(path, "/api/v1/usage") == 0 && cmd == EVHTTP_REQ_GET) {
		get_usage(d, req);
		return;
	}
	/* Approvals and policy (approvals.c). Both the CLI and the web app hold the token, so
	 * which one answers is told by what a browser cannot leave out: it sends Origin on
	 * every POST (and Sec-Fetch-Site on every request), and page script can neither remove
	 * nor forge those (forbidden header names). So whatever comes from a browser, the
	 * app's page or a script injected into it, is "web" and never passes as "cli"; only a
	 * client outside a browser can send neither. (Such a client could add an Origin and
	 * answer as "web": it holds the token, so it could as well drive the page.) */
	if (approvals_route(d, req, path, (int)cmd, api_from_browser(req) ? "web" : "cli") ||
	    budget_route(d, req, path, (int)cmd))
		return;
	static const char prefix[] = "/api/v1/groups/";
	if (strncmp(path, prefix, sizeof(prefix) - 1) == 0) {
		char group[CONFIG_GROUP_ID_MAX + 1];
		const char *rest = path + sizeof(prefix) - 1;
		size_t glen = strcspn(rest, "/");
		if (glen < sizeof(group) && strcmp(rest + glen, "/runs") == 0 &&
		    cmd == EVHTTP_REQ_GET) {
			memcpy(group, rest, glen);
			group[glen] = '\0';
			json_t *runs;
			if (!config_group(&d->cfg, group))
				refuse(d, req, 404, "no such group");
			else if (store_runs(d->store, group, &runs) < 0)
				refuse(d, req, 503, "the store is unavailable");
			else
				api_send_json(req, 200, json_pack("{s:o}", "runs", runs));
			return;
		}
		if (glen < sizeof(group) && cmd == EVHTTP_REQ_POST &&
		    (strcmp(rest + glen, "/pause") == 0 || strcmp(rest + glen, "/resume") == 0)) {
			memcpy(group, rest, glen);
			group[glen] = '\0';
			if (!config_group(&d->cfg, group))
				refuse(d, req, 404, "no such group");
			else
				pause_group(d, req, group, strcmp(rest + glen, "/pause") == 0);
			return;
		}
		if (glen < sizeof(group) && strcmp(rest + glen, "/events") == 0 &&
		    cmd == EVHTTP_REQ_GET) {
			memcpy(group, rest, glen);
			group[glen] = '\0';
			int64_t after = query_after(req);
			if (!config_group(&d->cfg, group))
				refuse(d, req, 404, "no such group");
			else if (after < 0)
				refuse(d, req, 400, "\"after\" must be a message id");
			else if (stream_open(d, req, group, after) < 0)
				refuse(d, req, 503, "too many listeners");
			return;
		}
		if (glen < sizeof(group) && strcmp(rest + glen, "/env") == 0) {
			memcpy(group, rest, glen);
			group[glen] = '\0';
			env_endpoint(d, req, group, cmd);
			return;
		}
		if (glen < sizeof(group) && strcmp(rest + glen, "/messages") == 0) {
			memcpy(group, rest, glen);
			group[glen] = '\0';
			if (!config_group(&d->cfg, group)) {
				refuse(d, req, 404, "no such group");
				return;
			}
			if (cmd == EVHTTP_REQ_POST)
				post_message(d, req, group);
			else if (cmd == EVHTTP_REQ_GET)
				get_messages(d, req, group);
			else
				refuse(d, req, 405, "GET or POST");
			return;
		}
	}
	refuse(d, req, 404, "no such endpoint");
}

int
api_start(struct daemon *d)
{
	d->http = evhttp_new(d->base);
	if (!d->http)
		return -ENOMEM;
	evhttp_set_max_body_size(d->http, DAEMON_BODY_MAX);
	evhttp_set_max_headers_size(d->http, 16 * 1024);
	evhttp_set_timeout(d->http, 30);
	/* Every method reaches route(), which answers the ones we do not serve with a JSON 405
	 * or 501; libevent's own refusal would be an HTML page. */
	evhttp_set_allowed_methods(d->http, 0xffff);
	api_daemon = d;
	evhttp_set_gencb(d->http, route, d);
	struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(
	    d->http, d->cfg.listen_host, (uint16_t)d->cfg.listen_port);
	if (!bound) {
		log_error("cannot listen on %s:%u: %s", d->cfg.listen_host, d->cfg.listen_port,
		          strerror(errno));
		return -EADDRINUSE;
	}
	int r = api_guard_start(d, bound);
	if (r < 0)
		return log_error("cannot watch the API's connections: %s", strerror(-r)), r;
	snprintf(d->origin, sizeof(d->origin), "http://%s:%u", d->cfg.listen_host,
	         d->cfg.listen_port);
	return 0;
}

/* libevent 2.1 answers what it refuses before any callback of ours runs (a body past
 * evhttp_set_max_body_size: 413; a malformed request line or headers: 400) with
 * evhttp_send_error(), whose body is a fixed HTML page, and it has no error callback (2.2's
 * evhttp_set_errorcb). This definition in the daemon's executable takes the place of the
 * library's (the library calls it through its PLT), so that those refusals are JSON like
 * every other: {"error": "..."}, and the connection is closed, as libevent's own does.
 * test-daemon.sh checks the 413 with curl, so a build where this stopped working fails. */
void
evhttp_send_error(struct evhttp_request *req, int error, const char *reason)
{
	const char *why = error == 413   ? "the body is larger than 64 KiB"
	                  : error == 400 ? "bad request"
	                  : error == 501 ? "method not implemented: GET, POST or DELETE"
	                                 : (reason ? reason : "refused");
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	if (!req->major || !req->minor) { /* a request line it could not read: answer in 1.1 */
		req->major = 1;
		req->minor = 1;
	}
	evhttp_clear_headers(h);
	evhttp_add_header(h, "Connection", "close");
	if (api_daemon)
		api_daemon->http_refused++;
	api_send_json(req, error, json_pack("{s:s}", "error", why));
}
