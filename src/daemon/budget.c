/*
 * budget.c: see budget.h. Spend is kept per group and per local day in a table of its own,
 * keyed by the day's start (the unix time of midnight in the group's time zone, on the
 * daemon's clock, which CLAWBOX_TEST_CLOCK_OFFSET moves): a run is counted when it starts,
 * its tokens, cost, tool calls and egress bytes (its proxy's meter) when it ends. A day that begins finds no row and starts from nothing.
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
#include "macro.h"

static const char *const item_keys[BUDGET_ITEMS] = {
    [BUDGET_RUNS] = "runs",           [BUDGET_TOKENS] = "tokens",
    [BUDGET_INPUT] = "input_tokens",  [BUDGET_OUTPUT] = "output_tokens",
    [BUDGET_CACHE] = "cache_tokens",  [BUDGET_COST] = "cost_usd",
    [BUDGET_TOOL_CALLS] = "tool_calls", [BUDGET_EGRESS] = "egress_bytes",
};

int
budget_parse(json_t *b, const char *where, struct group_budget *out, char *why, size_t size)
{
	memset(out, 0, sizeof(*out));
	if (!b)
		return 0;
	if (!json_is_object(b))
		return snprintf(why, size, "%s.budget: expected an object such as {\"runs\": 50, "
		                "\"tokens\": 2000000, \"cost_usd\": 5}", where), -EINVAL;
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
			                "input_tokens, output_tokens, cache_tokens, cost_usd, "
			                "tool_calls, egress_bytes)", where, key),
			       -EINVAL;
		if (k == BUDGET_COST) {
			if (!json_is_number(v) || !(json_number_value(v) > 0) ||
			    json_number_value(v) > 1e9)
				return snprintf(why, size, "%s.budget.cost_usd: expected a number of US "
				                "dollars above 0", where), -EINVAL;
			out->limit[k] = json_number_value(v);
			continue;
		}
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > (json_int_t)1 << 52)
			return snprintf(why, size, "%s.budget.%s: expected a whole number of at least 1",
			                where, key),
			       -EINVAL;
		out->limit[k] = (double)json_integer_value(v);
	}
	return 0;
}

int
budget_parse_prices(json_t *p, struct budget_prices *out, char *why, size_t size)
{
	static const char *const keys[] = {"input", "output", "cache_write", "cache_read"};
	memset(out, 0, sizeof(*out));
	if (!p)
		return 0;
	if (!json_is_object(p))
		return snprintf(why, size, "prices: expected an object such as {\"claude-sonnet-4-5\": "
		                "{\"input\": 3, \"output\": 15}} (USD per million tokens)"), -EINVAL;
	const char *model;
	json_t *m;
	json_object_foreach(p, model, m)
	{
		if (out->n >= BUDGET_PRICES_MAX)
			return snprintf(why, size, "prices: at most %d models", BUDGET_PRICES_MAX),
			       -EINVAL;
		if (!model[0] || strlen(model) >= BUDGET_MODEL_MAX)
			return snprintf(why, size, "prices.%.64s: a model's name is 1 to %d bytes",
			                model, BUDGET_MODEL_MAX - 1), -EINVAL;
		if (!json_is_object(m))
			return snprintf(why, size, "prices.%.64s: expected an object such as "
			                "{\"input\": 3, \"output\": 15}", model), -EINVAL;
		struct budget_price *bp = &out->p[out->n];
		double *v[] = {&bp->input, &bp->output, &bp->cache_write, &bp->cache_read};
		const char *k;
		json_t *x;
		json_object_foreach(m, k, x)
		{
			int i = -1;
			for (int j = 0; j < 4; j++)
				if (strcmp(k, keys[j]) == 0)
					i = j;
			if (i < 0)
				return snprintf(why, size, "prices.%.64s.%.32s: unknown key (input, "
				                "output, cache_write, cache_read)", model, k), -EINVAL;
			if (!json_is_number(x) || json_number_value(x) < 0 ||
			    json_number_value(x) > 1e6)
				return snprintf(why, size, "prices.%.64s.%s: expected US dollars per "
				                "million tokens, a number of at least 0", model, k),
				       -EINVAL;
			*v[i] = json_number_value(x);
		}
		snprintf(bp->model, sizeof(bp->model), "%s", model);
		out->n++;
	}
	return 0;
}

/* The price of model by the proxy's rule (meter.h): its name, or the longest priced name it
 * starts with followed by '-'. */
static const struct budget_price *
price_of(const struct budget_prices *ps, const char *model)
{
	const struct budget_price *best = NULL;
	size_t best_len = 0;
	for (size_t i = 0; i < ps->n; i++) {
		size_t n = strlen(ps->p[i].model);
		if (strcmp(ps->p[i].model, model) == 0)
			return &ps->p[i];
		if (n > best_len && strncmp(ps->p[i].model, model, n) == 0 && model[n] == '-') {
			best = &ps->p[i];
			best_len = n;
		}
	}
	return best;
}

static int
ensure_table(struct daemon *d)
{
	static struct store *made;
	if (made == d->store)
		return 0;
	sqlite3 *db = store_db(d->store);
	if (sqlite3_exec(db,
	                 "CREATE TABLE IF NOT EXISTS budget_days (grp TEXT NOT NULL, day INTEGER "
	                 "NOT NULL, runs INTEGER NOT NULL DEFAULT 0, input INTEGER NOT NULL "
	                 "DEFAULT 0, output INTEGER NOT NULL DEFAULT 0, cache INTEGER NOT NULL "
	                 "DEFAULT 0, PRIMARY KEY (grp, day))",
	                 NULL, NULL, NULL) != SQLITE_OK)
		return -EIO;
	/* Columns added since the table was first made: an older store gains them (the error
	 * of one already there is the expected "duplicate column"). */
	static const char *const added[] = {
	    "ALTER TABLE budget_days ADD COLUMN cost REAL NOT NULL DEFAULT 0",
	    "ALTER TABLE budget_days ADD COLUMN tool_calls INTEGER NOT NULL DEFAULT 0",
	    "ALTER TABLE budget_days ADD COLUMN egress INTEGER NOT NULL DEFAULT 0",
	};
	for (size_t i = 0; i < ARRAY_SIZE(added); i++)
		(void)sqlite3_exec(db, added[i], NULL, NULL, NULL);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT cost, tool_calls, egress FROM budget_days LIMIT 0", -1,
	                       &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_finalize(st);
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

/* Today's spend of group, by item. */
static void
spent_today(struct daemon *d, const char *group, int64_t day, double out[BUDGET_ITEMS])
{
	memset(out, 0, sizeof(double) * BUDGET_ITEMS);
	sqlite3_stmt *st;
	if (ensure_table(d) < 0 ||
	    sqlite3_prepare_v2(store_db(d->store),
	                       "SELECT runs, input, output, cache, cost, tool_calls, egress FROM "
	                       "budget_days WHERE grp = ? AND day = ?",
	                       -1, &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_text(st, 1, group, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, day);
	if (sqlite3_step(st) == SQLITE_ROW) {
		out[BUDGET_RUNS] = (double)sqlite3_column_int64(st, 0);
		out[BUDGET_INPUT] = (double)sqlite3_column_int64(st, 1);
		out[BUDGET_OUTPUT] = (double)sqlite3_column_int64(st, 2);
		out[BUDGET_CACHE] = (double)sqlite3_column_int64(st, 3);
		out[BUDGET_TOKENS] = out[BUDGET_INPUT] + out[BUDGET_OUTPUT] + out[BUDGET_CACHE];
		out[BUDGET_COST] = sqlite3_column_double(st, 4);
		out[BUDGET_TOOL_CALLS] = (double)sqlite3_column_int64(st, 5);
		out[BUDGET_EGRESS] = (double)sqlite3_column_int64(st, 6);
	}
	sqlite3_finalize(st);
}

/* Adds to today's row: runs, input, output, cache, cost, tool calls, egress. */
static int
add_today(struct daemon *d, const char *group, int64_t day, const double add[BUDGET_ITEMS])
{
	sqlite3_stmt *st;
	if (ensure_table(d) < 0 ||
	    sqlite3_prepare_v2(store_db(d->store),
	                       "INSERT INTO budget_days (grp, day, runs, input, output, cache, cost, "
	                       "tool_calls, egress) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
	                       "ON CONFLICT (grp, day) DO UPDATE SET runs = runs + ?3, input = "
	                       "input + ?4, output = output + ?5, cache = cache + ?6, cost = cost + "
	                       "?7, tool_calls = tool_calls + ?8, egress = egress + ?9",
	                       -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, group, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, day);
	sqlite3_bind_int64(st, 3, (int64_t)add[BUDGET_RUNS]);
	sqlite3_bind_int64(st, 4, (int64_t)add[BUDGET_INPUT]);
	sqlite3_bind_int64(st, 5, (int64_t)add[BUDGET_OUTPUT]);
	sqlite3_bind_int64(st, 6, (int64_t)add[BUDGET_CACHE]);
	sqlite3_bind_double(st, 7, add[BUDGET_COST]);
	sqlite3_bind_int64(st, 8, (int64_t)add[BUDGET_TOOL_CALLS]);
	sqlite3_bind_int64(st, 9, (int64_t)add[BUDGET_EGRESS]);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/* "1600", or "$0.0123" for the cost. */
static void
format_item(int k, double v, char *buf, size_t size)
{
	if (k == BUDGET_COST)
		snprintf(buf, size, "$%.4f", v);
	else
		snprintf(buf, size, "%.0f", v);
}

/* The model a run of g will ask for, when the configuration names it (else the engine's
 * default, which the proxy prices per request). */
static const char *
run_model(const struct daemon *d, const struct group_config *g)
{
	if (g->engine_model[0])
		return g->engine_model;
	return d->cfg.model.model[0] ? d->cfg.model.model : NULL;
}

/* The proxy's --budget: what is left of each limit (and the price table). */
static char *
proxy_budget(const struct daemon *d, const struct group_config *g,
             const double spent[BUDGET_ITEMS])
{
	json_t *o = json_object();
	for (int k = BUDGET_TOKENS; k < BUDGET_ITEMS; k++) {
		if (!g->budget.limit[k])
			continue;
		double left = g->budget.limit[k] - spent[k];
		if (left < 0)
			left = 0;
		json_object_set_new(o, item_keys[k],
		                    k == BUDGET_COST ? json_real(left)
		                                     : json_integer((json_int_t)left));
	}
	const struct budget_prices *ps = &d->cfg.prices;
	if (ps->n) {
		json_t *prices = json_object();
		for (size_t i = 0; i < ps->n; i++)
			json_object_set_new(prices, ps->p[i].model,
			                    json_pack("{s:f,s:f,s:f,s:f}", "input", ps->p[i].input,
			                              "output", ps->p[i].output, "cache_write",
			                              ps->p[i].cache_write, "cache_read",
			                              ps->p[i].cache_read));
		json_object_set_new(o, "prices", prices);
	}
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return s;
}

bool
budget_may_run(struct daemon *d, const struct group_config *g, uint64_t *ret_tokens_left,
               char **ret_proxy, char *why, size_t size)
{
	*ret_tokens_left = UINT64_MAX;
	*ret_proxy = NULL;
	const struct group_budget *b = &g->budget;
	bool any = false;
	for (int i = 0; i < BUDGET_ITEMS; i++)
		any = any || b->limit[i];
	if (!any && !d->cfg.prices.n) {
		/* No limit: the proxy still meters, so that the spend recorded is its count. */
		*ret_proxy = strdup("{}");
		return *ret_proxy != NULL ||
		       (snprintf(why, size, "out of memory"), false);
	}
	int64_t day, next;
	day_bounds(d, g->timezone, &day, &next);
	double spent[BUDGET_ITEMS];
	spent_today(d, g->id, day, spent);
	for (int i = 0; i < BUDGET_ITEMS; i++) {
		if (!b->limit[i])
			continue;
		if (spent[i] >= b->limit[i]) {
			char sp[32], li[32];
			format_item(i, spent[i], sp, sizeof(sp));
			format_item(i, b->limit[i], li, sizeof(li));
			snprintf(why, size,
			         "the group's daily budget of %s is spent (%s of %s); it resets "
			         "at midnight %s, in %lld min",
			         item_keys[i], sp, li, g->timezone[0] ? g->timezone : "UTC",
			         (long long)((next - daemon_now(d) + 59) / 60));
			return false;
		}
		if (i >= BUDGET_TOKENS && i <= BUDGET_CACHE &&
		    b->limit[i] - spent[i] < (double)*ret_tokens_left)
			*ret_tokens_left = (uint64_t)(b->limit[i] - spent[i]);
	}
	const char *model = run_model(d, g);
	if (b->limit[BUDGET_COST] && model && !price_of(&d->cfg.prices, model)) {
		snprintf(why, size,
		         "the group has a daily cost budget but its model %.100s has no price in "
		         "the configuration's \"prices\", so its cost cannot be known",
		         model);
		return false;
	}
	*ret_proxy = proxy_budget(d, g, spent);
	if (!*ret_proxy) {
		snprintf(why, size, "the group's budget could not be passed to its run");
		return false;
	}
	/* The run is counted before it starts: a crash cannot give it back. If the count cannot
	 * be stored, the run does not start. */
	double one[BUDGET_ITEMS] = {[BUDGET_RUNS] = 1};
	if (add_today(d, g->id, day, one) < 0) {
		free(*ret_proxy);
		*ret_proxy = NULL;
		snprintf(why, size, "the group's budget could not be recorded");
		return false;
	}
	return true;
}

static uint64_t
meter_u64(json_t *m, const char *key)
{
	json_t *v = json_object_get(m, key);
	return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v)
	                                                       : 0;
}

void
budget_read_meter(const char *path, struct budget_spend *ret)
{
	memset(ret, 0, sizeof(*ret));
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	/* The proxy writes its totals after each call: the last line is the run's. The file is
	 * the proxy's, never the sandbox's; its lines are bounded by the proxy's request cap. */
	char line[8192];
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "{\"meter\":", 9) != 0)
			continue;
		_cleanup_json_ json_t *j = json_loads(line, 0, NULL);
		json_t *m = json_object_get(j, "meter");
		if (!json_is_object(m))
			continue;
		struct budget_spend s = {.metered = true};
		s.usage.input = meter_u64(m, "input_tokens");
		s.usage.output = meter_u64(m, "output_tokens");
		s.usage.cache_write = meter_u64(m, "cache_write_tokens");
		s.usage.cache_read = meter_u64(m, "cache_read_tokens");
		s.tool_calls = meter_u64(m, "tool_calls");
		s.egress_bytes = meter_u64(m, "egress_bytes");
		json_t *cost = json_object_get(m, "cost_usd");
		s.cost_known = json_is_number(cost) && json_number_value(cost) >= 0;
		s.cost_usd = s.cost_known ? json_number_value(cost) : 0;
		snprintf(s.model, sizeof(s.model), "%s", json_get_str(m, "model") ?: "");
		snprintf(s.stop, sizeof(s.stop), "%s", json_get_str(m, "stop") ?: "");
		*ret = s;
	}
	fclose(f);
}

void
budget_record(struct daemon *d, const char *group, const struct budget_spend *s)
{
	const struct group_config *g = config_group(&d->cfg, group);
	if (!g || !s)
		return;
	int64_t day, next;
	day_bounds(d, g->timezone, &day, &next);
	double add[BUDGET_ITEMS] = {
	    [BUDGET_INPUT] = (double)s->usage.input,
	    [BUDGET_OUTPUT] = (double)s->usage.output,
	    [BUDGET_CACHE] = (double)(s->usage.cache_write + s->usage.cache_read),
	    [BUDGET_COST] = s->cost_known ? s->cost_usd : 0,
	    [BUDGET_TOOL_CALLS] = (double)s->tool_calls,
	    [BUDGET_EGRESS] = (double)s->egress_bytes,
	};
	(void)add_today(d, group, day, add);
}

static json_t *
item_json(int k, double v)
{
	return k == BUDGET_COST ? json_real(v) : json_integer((json_int_t)v);
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
		double spent[BUDGET_ITEMS];
		spent_today(d, g->id, day, spent);
		json_t *items = json_object();
		for (int k = 0; k < BUDGET_ITEMS; k++)
			json_object_set_new(items, item_keys[k],
			                    json_pack("{s:o,s:o}", "spent", item_json(k, spent[k]),
			                              "limit",
			                              g->budget.limit[k]
			                                  ? item_json(k, g->budget.limit[k])
			                                  : json_null()));
		json_array_append_new(groups, json_pack("{s:s,s:I,s:I,s:o}", "group", g->id,
		                                        "day_start", (json_int_t)day, "resets",
		                                        (json_int_t)next, "budget", items));
	}
	api_send_json(req, 200, json_pack("{s:o}", "groups", groups));
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
