/*
 * budget.c: see budget.h. Spend is kept per group and per local day in a table of its own,
 * keyed by the day's start (the unix time of midnight in the group's time zone, on the
 * daemon's clock, which CLAWBOX_TEST_CLOCK_OFFSET moves): a run is counted when it starts,
 * its tokens when it ends. A day that begins finds no row and starts from nothing.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "cron.h"
#include "daemon.h"
#include "json-util.h"

static const char *const item_keys[BUDGET_ITEMS] = {
    [BUDGET_RUNS] = "runs",           [BUDGET_TOKENS] = "tokens",
    [BUDGET_INPUT] = "input_tokens",  [BUDGET_OUTPUT] = "output_tokens",
    [BUDGET_CACHE] = "cache_tokens",
};

int
budget_parse(json_t *b, const char *where, struct group_budget *out, char *why, size_t size)
{
	memset(out, 0, sizeof(*out));
	if (!b)
		return 0;
	if (!json_is_object(b))
		return snprintf(why, size, "%s.budget: expected an object such as {\"runs\": 50, "
		                "\"tokens\": 2000000}", where), -EINVAL;
	const char *key;
	json_t *v;
	json_object_foreach(b, key, v)
	{
		int k = -1;
		for (int i = 0; i < BUDGET_ITEMS; i++)
			if (strcmp(item_keys[i], key) == 0)
				k = i;
		if (k < 0)
			return snprintf(why, size, "%s.budget.%.64s: unknown key (runs, tokens, "
			                "input_tokens, output_tokens, cache_tokens)", where, key),
			       -EINVAL;
		if (!json_is_integer(v) || json_integer_value(v) < 1)
			return snprintf(why, size, "%s.budget.%s: expected a whole number of at least 1",
			                where, key),
			       -EINVAL;
		out->limit[k] = (uint64_t)json_integer_value(v);
	}
	return 0;
}

static int
ensure_table(struct daemon *d)
{
	static struct store *made;
	if (made == d->store)
		return 0;
	if (sqlite3_exec(store_db(d->store),
	                 "CREATE TABLE IF NOT EXISTS budget_days (grp TEXT NOT NULL, day INTEGER "
	                 "NOT NULL, runs INTEGER NOT NULL DEFAULT 0, input INTEGER NOT NULL "
	                 "DEFAULT 0, output INTEGER NOT NULL DEFAULT 0, cache INTEGER NOT NULL "
	                 "DEFAULT 0, PRIMARY KEY (grp, day))",
	                 NULL, NULL, NULL) != SQLITE_OK)
		return -EIO;
	made = d->store;
	return 0;
}

/* The start of today and of tomorrow in the group's time zone, on the daemon's clock. */
static void
day_bounds(struct daemon *d, const char *tz, int64_t *ret_start, int64_t *ret_next)
{
	struct cron midnight;
	char why[64];
	(void)cron_parse("0 0 * * *", &midnight, why, sizeof(why));
	time_t now = (time_t)daemon_now(d);
	time_t s = cron_next(&midnight, now - 90000, tz), n;
	while ((n = cron_next(&midnight, s, tz)) <= now && n > s)
		s = n;
	*ret_start = s;
	*ret_next = cron_next(&midnight, now, tz);
}

/* Today's spend of group: runs, all tokens, input, output, cache. */
static void
spent_today(struct daemon *d, const char *group, int64_t day, uint64_t out[BUDGET_ITEMS])
{
	memset(out, 0, sizeof(uint64_t) * BUDGET_ITEMS);
	sqlite3_stmt *st;
	if (ensure_table(d) < 0 ||
	    sqlite3_prepare_v2(store_db(d->store),
	                       "SELECT runs, input, output, cache FROM budget_days WHERE grp = ? "
	                       "AND day = ?",
	                       -1, &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_text(st, 1, group, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, day);
	if (sqlite3_step(st) == SQLITE_ROW) {
		out[BUDGET_RUNS] = (uint64_t)sqlite3_column_int64(st, 0);
		out[BUDGET_INPUT] = (uint64_t)sqlite3_column_int64(st, 1);
		out[BUDGET_OUTPUT] = (uint64_t)sqlite3_column_int64(st, 2);
		out[BUDGET_CACHE] = (uint64_t)sqlite3_column_int64(st, 3);
		out[BUDGET_TOKENS] = out[BUDGET_INPUT] + out[BUDGET_OUTPUT] + out[BUDGET_CACHE];
	}
	sqlite3_finalize(st);
}

static int
add_today(struct daemon *d, const char *group, int64_t day, int64_t runs, int64_t in,
          int64_t outp, int64_t cache)
{
	sqlite3_stmt *st;
	if (ensure_table(d) < 0 ||
	    sqlite3_prepare_v2(store_db(d->store),
	                       "INSERT INTO budget_days (grp, day, runs, input, output, cache) "
	                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (grp, day) DO UPDATE "
	                       "SET runs = runs + ?3, input = input + ?4, output = output + ?5, "
	                       "cache = cache + ?6",
	                       -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, group, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, day);
	sqlite3_bind_int64(st, 3, runs);
	sqlite3_bind_int64(st, 4, in);
	sqlite3_bind_int64(st, 5, outp);
	sqlite3_bind_int64(st, 6, cache);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

bool
budget_may_run(struct daemon *d, const struct group_config *g, uint64_t *ret_tokens_left,
               char *why, size_t size)
{
	*ret_tokens_left = UINT64_MAX;
	const struct group_budget *b = &g->budget;
	bool any = false;
	for (int i = 0; i < BUDGET_ITEMS; i++)
		any = any || b->limit[i];
	if (!any)
		return true;
	int64_t day, next;
	day_bounds(d, g->timezone, &day, &next);
	uint64_t spent[BUDGET_ITEMS];
	spent_today(d, g->id, day, spent);
	for (int i = 0; i < BUDGET_ITEMS; i++) {
		if (!b->limit[i])
			continue;
		if (spent[i] >= b->limit[i]) {
			snprintf(why, size,
			         "the group's daily budget of %s is spent (%llu of %llu); it resets "
			         "at midnight %s, in %lld min",
			         item_keys[i], (unsigned long long)spent[i],
			         (unsigned long long)b->limit[i], g->timezone[0] ? g->timezone : "UTC",
			         (long long)((next - daemon_now(d) + 59) / 60));
			return false;
		}
		if (i != BUDGET_RUNS && b->limit[i] - spent[i] < *ret_tokens_left)
			*ret_tokens_left = b->limit[i] - spent[i];
	}
	/* The run is counted before it starts: a crash cannot give it back. If the count cannot
	 * be stored, the run does not start. */
	if (add_today(d, g->id, day, 1, 0, 0, 0) < 0) {
		snprintf(why, size, "the group's budget could not be recorded");
		return false;
	}
	return true;
}

void
budget_record(struct daemon *d, const char *group, const struct store_usage *u)
{
	const struct group_config *g = config_group(&d->cfg, group);
	if (!g || !u)
		return;
	int64_t day, next;
	day_bounds(d, g->timezone, &day, &next);
	(void)add_today(d, group, day, 0, (int64_t)u->input, (int64_t)u->output,
	                (int64_t)(u->cache_write + u->cache_read));
}

bool
budget_route(struct daemon *d, struct evhttp_request *req, const char *path, int cmd)
{
	if (strcmp(path, "/api/v1/budget") != 0 || cmd != EVHTTP_REQ_GET)
		return false;
	json_t *groups = json_array();
	for (size_t i = 0; i < d->cfg.n_groups; i++) {
		const struct group_config *g = &d->cfg.groups[i];
		int64_t day, next;
		day_bounds(d, g->timezone, &day, &next);
		uint64_t spent[BUDGET_ITEMS];
		spent_today(d, g->id, day, spent);
		json_t *items = json_object();
		for (int k = 0; k < BUDGET_ITEMS; k++)
			json_object_set_new(items, item_keys[k],
			                    g->budget.limit[k]
			                        ? json_pack("{s:I,s:I}", "spent", (json_int_t)spent[k],
			                                    "limit", (json_int_t)g->budget.limit[k])
			                        : json_pack("{s:I,s:n}", "spent", (json_int_t)spent[k],
			                                    "limit"));
		json_array_append_new(groups, json_pack("{s:s,s:I,s:I,s:o}", "group", g->id,
		                                        "day_start", (json_int_t)day, "resets",
		                                        (json_int_t)next, "budget", items));
	}
	json_t *body = json_pack("{s:o}", "groups", groups);
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	struct evbuffer *b = evbuffer_new();
	if (b && s) {
		evbuffer_add(b, s, strlen(s));
		evbuffer_add(b, "\n", 1);
	}
	free(s);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "application/json");
	evhttp_send_reply(req, 200, NULL, b);
	if (b)
		evbuffer_free(b);
	return true;
}

/* Three in a row: a task whose runs keep failing, or keep finding the budget spent, would
 * otherwise go on firing (and spending) until someone looks. */
#define TASK_STRIKES_MAX 3

void
budget_task_outcome(struct daemon *d, int64_t message, bool failed)
{
	sqlite3_stmt *st;
	char sender[64] = "", group[CONFIG_GROUP_ID_MAX] = "";
	if (sqlite3_prepare_v2(store_db(d->store),
	                       "SELECT sender, group_id FROM messages WHERE id = ?", -1, &st,
	                       NULL) != SQLITE_OK)
		return;
	sqlite3_bind_int64(st, 1, message);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(sender, sizeof(sender), "%s", (const char *)sqlite3_column_text(st, 0));
		snprintf(group, sizeof(group), "%s", (const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);
	long long task;
	char end;
	if (sscanf(sender, "task:%lld%c", &task, &end) != 1 || task <= 0)
		return;
	char key[48], val[24];
	snprintf(key, sizeof(key), "task_strikes:%lld", task);
	long long strikes = 0;
	if (store_kv_get(d->store, key, val, sizeof(val)) == 0)
		strikes = strtoll(val, NULL, 10);
	strikes = failed ? strikes + 1 : 0;
	snprintf(val, sizeof(val), "%lld", strikes);
	(void)store_kv_set(d->store, key, val);
	if (strikes < TASK_STRIKES_MAX)
		return;
	_cleanup_json_ json_t *t = NULL;
	if (store_task_get(d->store, task, &t) < 0 ||
	    strcmp(json_get_str(t, "status") ?: "", "active") != 0)
		return;
	if (store_task_update(d->store, task, "paused",
	                      json_integer_value(json_object_get(t, "next_run"))) < 0)
		return;
	(void)store_kv_set(d->store, key, "0");
	char text[256];
	snprintf(text, sizeof(text),
	         "[clawbox: task %lld failed or found the budget spent %d times in a row; it is "
	         "paused until it is resumed]",
	         task, TASK_STRIKES_MAX);
	int64_t id;
	(void)store_audit(d->store, group, "task_run", "deny", text);
	if (store_message_out(d->store, group, "clawbox", text, &id) == 0)
		stream_notify(d, group);
}
