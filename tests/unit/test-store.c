/*
 * test-store.c: the daemon's SQLite store on a real file: the schema made at open and kept
 * across reopening; a store from a newer clawbox and a file that is not SQLite refused with
 * a reason; the queue (oldest first, per group, one taken at a time); a reply stored with its
 * message marked answered in one step, never twice; a crash's running messages requeued; the
 * audit, one row at a time and in batches; kv; tasks.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json-util.h"
#include "store.h"
#include "tap.h"

static char dir[] = "/tmp/test-store-XXXXXX";
static char db[128];

static size_t
n_after(struct store *s, const char *group)
{
	_cleanup_json_ json_t *m = NULL;
	return store_messages_after(s, group, 0, &m) < 0 ? (size_t)-1 : json_array_size(m);
}

static int
user_version(void)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	int v = -1;
	if (sqlite3_open(db, &h) == SQLITE_OK &&
	    sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(h);
	return v;
}

int
main(void)
{
	if (!mkdtemp(dir))
		return 1;
	snprintf(db, sizeof(db), "%s/clawbox.db", dir);
	struct store *s = NULL;
	ok(store_open(db, &s) == 0, "a new store opens");
	ok(user_version() == STORE_SCHEMA_VERSION, "at the current schema (%d)", user_version());
	ok(store_group_ensure(s, "main") == 0 && store_group_ensure(s, "fam") == 0 &&
	       store_group_ensure(s, "main") == 0,
	   "groups made, twice is fine");

	int64_t a, b, c, id;
	ok(store_message_in(s, "main", "ana", "first", &a) == 0 &&
	       store_message_in(s, "fam", "bo", "other group", &b) == 0 &&
	       store_message_in(s, "main", "ana", "second", &c) == 0 && a < b && b < c,
	   "three messages queued, ids rising");
	_cleanup_json_ json_t *groups = NULL;
	ok(store_queued_groups(s, &groups) == 0 && json_array_size(groups) == 2 &&
	       strcmp(json_string_value(json_array_get(groups, 0)), "main") == 0,
	   "groups with queued messages, the oldest message's first");
	char *text = NULL;
	ok(store_take_next(s, "main", &id, &text) == 0 && id == a && strcmp(text, "first") == 0,
	   "the oldest of the group is taken first");
	free(text);
	text = NULL;
	ok(store_take_next(s, "main", &id, &text) == 0 && id == a,
	   "and stays the next until it is finished (one run per group)");
	free(text);
	text = NULL;
	struct store_usage u = {.input = 10, .output = 5, .cache_read = 2};
	ok(store_finish(s, a, "main", "the reply", false, &u) == 0, "the reply stored");
	ok(n_after(s, "main") == 3, "main: its two messages and the reply");
	ok(store_finish(s, a, "main", "the reply again", false, &u) < 0,
	   "a message answered once cannot be answered again");
	ok(n_after(s, "main") == 3, "and no second reply was stored");
	ok(store_take_next(s, "main", &id, &text) == 0 && id == c, "then the next one");
	free(text);
	text = NULL;

	/* A run's model and estimated cost (the proxy's meter) come back in the views. */
	ok(store_take_next(s, "fam", &id, &text) == 0 && id == b, "fam's message");
	free(text);
	text = NULL;
	struct store_usage priced = {
	    .input = 100, .output = 20, .model = "m1", .cost_usd = 0.25, .cost_known = true};
	struct store_run rec = {.started_ms = 1000, .ended_ms = 2000};
	ok(store_finish_run(s, b, "fam", "priced reply", false, &priced, &rec) == 0,
	   "a run with its model and cost stored");
	_cleanup_json_ json_t *runs = NULL, *days = NULL;
	json_t *run0;
	ok(store_runs_view(s, "fam", 0, INT64_MAX, 10, &runs) == 0 &&
	       (run0 = json_array_get(runs, 0)) &&
	       strcmp(json_get_str(run0, "model") ?: "", "m1") == 0 &&
	       json_real_value(json_object_get(run0, "cost_usd")) == 0.25,
	   "runs view: model and cost_usd");
	json_t *day;
	size_t k;
	int rows_m1 = 0, rows_unpriced = 0;
	ok(store_usage_by_day(s, 0, &days) == 0, "usage by day");
	json_array_foreach(days, k, day)
	{
		if (strcmp(json_get_str(day, "group") ?: "", "fam") == 0 &&
		    strcmp(json_get_str(day, "model") ?: "", "m1") == 0 &&
		    json_real_value(json_object_get(day, "cost_usd")) == 0.25)
			rows_m1++;
		if (strcmp(json_get_str(day, "group") ?: "", "main") == 0 &&
		    json_is_null(json_object_get(day, "model")) &&
		    json_is_null(json_object_get(day, "cost_usd")))
			rows_unpriced++;
	}
	ok(rows_m1 == 1 && rows_unpriced == 1,
	   "usage by day: a row per group and model, cost_usd null without a price");

	static char huge[STORE_TEXT_MAX + 2];
	memset(huge, 'x', sizeof(huge) - 1);
	ok(store_message_in(s, "main", "ana", huge, &id) < 0, "a text past 1 MiB is refused");
	ok(store_message_in(s, "nosuchgroup", "ana", "hi", &id) < 0,
	   "a message to a group the store does not know is refused");

	/* A crash with c running: after reopening it is still queued, nothing lost. */
	store_close(s);
	s = NULL;
	ok(store_open(db, &s) == 0, "reopened");
	ok(store_requeue_running(s) >= 0, "running messages requeued at start");
	ok(store_take_next(s, "main", &id, &text) == 0 && id == c,
	   "the interrupted message runs again");
	free(text);
	text = NULL;
	ok(store_finish(s, c, "main", NULL, true, NULL) == 0, "a failure without a reply");
	ok(store_take_next(s, "main", &id, &text) == -ENOENT, "main's queue is empty");

	ok(store_audit(s, "main", "send_message", "allow", "sent") == 0, "an audit row");
	store_audit_batch_begin(s);
	for (int i = 0; i < 700; i++)
		(void)store_audit(s, "fam", "egress", "deny", "flood");
	ok(store_audit_batch_commit(s) == 0, "700 rows in a batch (past STORE_AUDIT_BATCH_MAX)");
	_cleanup_json_ json_t *audit = NULL;
	ok(store_audit_after(s, 0, &audit) == 0 && json_array_size(audit) >= 701,
	   "every batched row is there (%zu)", json_array_size(audit));

	char v[64];
	ok(store_kv_set(s, "k", "v1") == 0 && store_kv_set(s, "k", "v2") == 0 &&
	       store_kv_get(s, "k", v, sizeof(v)) >= 0 && strcmp(v, "v2") == 0,
	   "kv: the last value wins");
	ok(store_kv_get(s, "absent", v, sizeof(v)) < 0, "kv: a key never set");

	int64_t t;
	ok(store_task_add(s, "fam", "water the plants", "every", "3600", 1000, "user", &t) == 0,
	   "a task added");
	_cleanup_json_ json_t *task = NULL;
	ok(store_task_get(s, t, &task) == 0 &&
	       strcmp(json_get_str(task, "status"), "active") == 0 &&
	       strcmp(json_get_str(task, "group"), "fam") == 0,
	   "read back: active, its group");
	ok(store_task_update(s, t, "paused", 2000) == 0, "paused");
	json_decref(task);
	task = NULL;
	ok(store_task_get(s, t, &task) == 0 && strcmp(json_get_str(task, "status"), "paused") == 0,
	   "read back paused");
	_cleanup_json_ json_t *due = NULL;
	ok(store_due_tasks(s, 5000, &due) == 0 && json_array_size(due) == 0,
	   "a paused task is never due");
	store_close(s);

	/* A store of a newer clawbox is refused, not migrated down or damaged. */
	sqlite3 *h;
	if (sqlite3_open(db, &h) == SQLITE_OK) {
		(void)sqlite3_exec(h, "PRAGMA user_version = 99", NULL, NULL, NULL);
		sqlite3_close(h);
	}
	s = NULL;
	int r = store_open(db, &s);
	ok(r == -EPROTO && s && strstr(store_error(s), "newer clawbox"),
	   "a newer schema refused: %s", s ? store_error(s) : "");
	store_close(s);
	ok(user_version() == 99, "and left as it was");

	char junk[160];
	snprintf(junk, sizeof(junk), "%s/junk.db", dir);
	FILE *f = fopen(junk, "w");
	if (f) {
		for (int i = 0; i < 100; i++)
			fputs("this is not an SQLite file\n", f);
		fclose(f);
	}
	s = NULL;
	r = store_open(junk, &s);
	ok(r < 0 && s && store_error(s)[0], "a file that is not SQLite refused: %s",
	   s ? store_error(s) : "");
	store_close(s);
	tap_rmrf(dir);
	return tap_done();
}
