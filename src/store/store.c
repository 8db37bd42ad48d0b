/*
 * store.c: see store.h. One connection, prepared statements per call (the daemon's rate of
 * writes is a few per message), synchronous=FULL in WAL mode so that a commit survives a power
 * cut, not only a crash.
 */
#include <errno.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json-util.h"
#include "macro.h"
#include "store.h"

struct pending_audit {
	int64_t time;
	char *text; /* owns the four strings below */
	const char *group, *action, *decision, *reason;
};

struct store {
	sqlite3 *db;
	char error[256];
	bool batching; /* store_audit_batch_begin: audit rows wait in pending */
	struct pending_audit pending[STORE_AUDIT_BATCH_MAX];
	size_t n_pending;
};

/* Migrations, in order: migrations[i] brings version i to i+1. Never edit one that has
 * shipped; add the next. */
static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE groups (id TEXT PRIMARY KEY, created INTEGER NOT NULL);"
    "CREATE TABLE messages ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  group_id TEXT NOT NULL REFERENCES groups(id),"
    "  direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),"
    "  sender TEXT NOT NULL DEFAULT '',"
    "  text TEXT NOT NULL,"
    "  time INTEGER NOT NULL,"
    /* in: queued -> running -> answered | failed; out: sent */
    "  status TEXT NOT NULL,"
    "  reply_to INTEGER REFERENCES messages(id));"
    "CREATE INDEX messages_group ON messages(group_id, id);"
    "CREATE INDEX messages_status ON messages(status, id);"
    "CREATE TABLE usage ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, group_id TEXT NOT NULL,"
    "  message_id INTEGER, input INTEGER NOT NULL, output INTEGER NOT NULL,"
    "  cache_write INTEGER NOT NULL, cache_read INTEGER NOT NULL);"
    "CREATE TABLE audit ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, group_id TEXT NOT NULL,"
    "  action TEXT NOT NULL, decision TEXT NOT NULL, reason TEXT NOT NULL);",
    /* 1 -> 2: scheduled tasks and their runs */
    "CREATE TABLE tasks ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  group_id TEXT NOT NULL REFERENCES groups(id),"
    "  prompt TEXT NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('cron', 'every', 'at')),"
    "  spec TEXT NOT NULL,"
    "  next_run INTEGER,"
    "  status TEXT NOT NULL," /* active | paused | cancelled | done */
    "  created INTEGER NOT NULL,"
    "  created_by TEXT NOT NULL);"
    "CREATE INDEX tasks_due ON tasks(status, next_run);"
    "CREATE TABLE task_runs ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  task_id INTEGER NOT NULL REFERENCES tasks(id),"
    "  message_id INTEGER REFERENCES messages(id),"
    "  started INTEGER NOT NULL, ended INTEGER,"
    "  status TEXT NOT NULL);" /* running | answered | failed */
    "CREATE INDEX task_runs_message ON task_runs(message_id);",
    /* 2 -> 3: small named values (a channel's offset, what it has delivered) */
    "CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    /* 3 -> 4: the agent's runs (sessions), and the chats the channels have seen */
    "CREATE TABLE runs ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  group_id TEXT NOT NULL, message_id INTEGER REFERENCES messages(id),"
    "  started_ms INTEGER NOT NULL, ended_ms INTEGER NOT NULL,"
    "  status TEXT NOT NULL, exit_status INTEGER NOT NULL);"
    "CREATE INDEX runs_group ON runs(group_id, id);"
    "CREATE TABLE chats ("
    "  channel TEXT NOT NULL, chat_id TEXT NOT NULL, group_id TEXT NOT NULL, kind TEXT NOT NULL,"
    "  first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, messages INTEGER NOT NULL,"
    "  PRIMARY KEY (channel, chat_id));",
    /* 4 -> 5: each run's model and estimated cost (the proxy's meter, prices from the
     * configuration); NULL cost: a model without a price */
    "ALTER TABLE usage ADD COLUMN model TEXT;"
    "ALTER TABLE usage ADD COLUMN cost_usd REAL;",
};

_Static_assert(ARRAY_SIZE(migrations) == STORE_SCHEMA_VERSION,
               "STORE_SCHEMA_VERSION is the number of migrations");

static int
fail(struct store *s)
{
	snprintf(s->error, sizeof(s->error), "%s", sqlite3_errmsg(s->db));
	return -EIO;
}

struct sqlite3 *
store_db(struct store *s)
{
	return s->db;
}

const char *
store_error(const struct store *s)
{
	return s->error;
}

static int
exec(struct store *s, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(s->error, sizeof(s->error), "%s", msg ? msg : "error");
		sqlite3_free(msg);
		return -EIO;
	}
	return 0;
}

static int
migrate(struct store *s)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return fail(s);
	int version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_finalize(st);
	if (version < 0)
		return fail(s);
	if (version > (int)ARRAY_SIZE(migrations)) {
		snprintf(s->error, sizeof(s->error),
		         "the store is of a newer clawbox (schema %d, this one knows %d)", version,
		         (int)ARRAY_SIZE(migrations));
		return -EPROTO;
	}
	for (int v = version; v < (int)ARRAY_SIZE(migrations); v++) {
		char bump[64];
		snprintf(bump, sizeof(bump), "PRAGMA user_version = %d;", v + 1);
		int r = exec(s, "BEGIN IMMEDIATE");
		if (r == 0)
			r = exec(s, migrations[v]);
		if (r == 0)
			r = exec(s, bump);
		if (r == 0)
			r = exec(s, "COMMIT");
		if (r < 0) {
			(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			return r;
		}
	}
	return 0;
}

int
store_open(const char *path, struct store **ret)
{
	struct store *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	int rc = sqlite3_open_v2(
	    path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	int r = rc == SQLITE_OK ? 0 : -EIO;
	if (r < 0)
		snprintf(s->error, sizeof(s->error), "%s",
		         s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
	if (r == 0) {
		sqlite3_busy_timeout(s->db, 5000);
		r = exec(s, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; "
		            "PRAGMA foreign_keys = ON;");
	}
	if (r == 0)
		r = migrate(s);
	/* Outside the numbered migrations (as approvals.c's tables): the ext_id of every
	 * message a channel process delivered, for exactly-once (store_channel_message). Rows
	 * older than 30 days go: no service redelivers that late. */
	if (r == 0)
		r = exec(s,
		         "CREATE TABLE IF NOT EXISTS channel_seen (channel TEXT NOT NULL, "
		         "ext_id TEXT NOT NULL, message_id INTEGER, time INTEGER NOT NULL, "
		         "chat TEXT, thread TEXT, PRIMARY KEY (channel, ext_id)) WITHOUT ROWID;"
		         "CREATE INDEX IF NOT EXISTS channel_seen_message ON "
		         "channel_seen(message_id);"
		         "DELETE FROM channel_seen WHERE time < strftime('%s', 'now') - 2592000;");
	if (r < 0) {
		/* The caller reports why (store_error), then calls store_close(). */
		sqlite3_close(s->db);
		s->db = NULL;
		*ret = s; /* with db NULL: only store_error() and store_close() are valid */
		return r;
	}
	*ret = s;
	return 0;
}

void
store_close(struct store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_pending; i++)
		free(s->pending[i].text);
	if (s->db)
		sqlite3_close(s->db);
	free(s);
}

/* Prepares sql and binds the arguments, described by types: 't' text, 'i' int64, 'f'
 * double. */
static int
vprepare(struct store *s, sqlite3_stmt **st, const char *sql, const char *types, va_list ap)
{
	if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK)
		return fail(s);
	int rc = SQLITE_OK;
	for (int i = 0; types[i] && rc == SQLITE_OK; i++) {
		if (types[i] == 't')
			rc = sqlite3_bind_text(*st, i + 1, va_arg(ap, const char *), -1,
			                       SQLITE_TRANSIENT);
		else if (types[i] == 'f')
			rc = sqlite3_bind_double(*st, i + 1, va_arg(ap, double));
		else
			rc = sqlite3_bind_int64(*st, i + 1, va_arg(ap, int64_t));
	}
	if (rc != SQLITE_OK) {
		sqlite3_finalize(*st);
		return fail(s);
	}
	return 0;
}

static int
prepare(struct store *s, sqlite3_stmt **st, const char *sql, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	int r = vprepare(s, st, sql, types, ap);
	va_end(ap);
	return r;
}

/* Runs a statement that returns no rows. */
static int
run(struct store *s, const char *sql, const char *types, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	va_start(ap, types);
	int r = vprepare(s, &st, sql, types, ap);
	va_end(ap);
	if (r < 0)
		return r;
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : fail(s);
}

static int64_t
now_s(void)
{
	return (int64_t)time(NULL);
}

int
store_group_ensure(struct store *s, const char *group)
{
	return run(s, "INSERT OR IGNORE INTO groups (id, created) VALUES (?, ?)", "ti", group,
	           now_s());
}

int
store_message_in(struct store *s, const char *group, const char *sender, const char *text,
                 int64_t *ret_id)
{
	if (strlen(text) > STORE_TEXT_MAX)
		return snprintf(s->error, sizeof(s->error), "a message past %u bytes",
		                STORE_TEXT_MAX),
		       -E2BIG;
	int r = run(s,
	            "INSERT INTO messages (group_id, direction, sender, text, time, status) "
	            "VALUES (?, 'in', ?, ?, ?, 'queued')",
	            "ttti", group, sender ? sender : "", text, now_s());
	if (r == 0)
		*ret_id = sqlite3_last_insert_rowid(s->db);
	return r;
}

static json_t *
column_json(sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_INTEGER)
		return json_integer((json_int_t)sqlite3_column_int64(st, i));
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return json_null();
	if (sqlite3_column_type(st, i) == SQLITE_FLOAT)
		return json_real(sqlite3_column_double(st, i));
	const char *t = (const char *)sqlite3_column_text(st, i);
	return json_string(t ? t : "");
}

/* Every row of a prepared statement as an object with the given member names. */
static int
rows(struct store *s, sqlite3_stmt *st, const char *const *names, json_t **ret)
{
	json_t *arr = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *o = json_object();
		for (int i = 0; names[i]; i++)
			json_object_set_new(o, names[i], column_json(st, i));
		json_array_append_new(arr, o);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		return fail(s);
	}
	*ret = arr;
	return 0;
}

int
store_messages_after(struct store *s, const char *group, int64_t after, json_t **ret)
{
	static const char *const names[] = {"id",   "direction", "text", "sender",
	                                    "time", "reply_to",  NULL};
	sqlite3_stmt *st;
	int r = prepare(s, &st,
	                "SELECT id, direction, text, sender, time, reply_to FROM messages "
	                "WHERE group_id = ? AND id > ? ORDER BY id LIMIT ?",
	                "tii", group, after, (int64_t)STORE_LIST_MAX);
	return r < 0 ? r : rows(s, st, names, ret);
}

int
store_take_next(struct store *s, const char *group, int64_t *ret_id, char **ret_text)
{
	sqlite3_stmt *st;
	int r = prepare(s, &st,
	                "SELECT id, text FROM messages WHERE group_id = ? AND direction = 'in' "
	                "AND status = 'queued' ORDER BY id LIMIT 1",
	                "t", group);
	if (r < 0)
		return r;
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return rc == SQLITE_DONE ? -ENOENT : fail(s);
	}
	int64_t id = sqlite3_column_int64(st, 0);
	char *text = strdup((const char *)sqlite3_column_text(st, 1));
	sqlite3_finalize(st);
	if (!text)
		return -ENOMEM;
	/* No write here: while its group's run lasts, the message stays queued in the store (the
	 * runner knows it is taken). A crash leaves it queued, so it runs again: what a
	 * "running" mark would have been reset to anyway, without one more fsync per message. */
	*ret_id = id;
	*ret_text = text;
	return 0;
}

int
store_queued_groups(struct store *s, json_t **ret)
{
	static const char *const names[] = {"group", NULL};
	sqlite3_stmt *st;
	int r =
	    prepare(s, &st,
	            "SELECT group_id FROM messages WHERE direction = 'in' AND status = 'queued' "
	            "GROUP BY group_id ORDER BY MIN(id)",
	            "");
	json_t *objs;
	if (r < 0 || (r = rows(s, st, names, &objs)) < 0)
		return r;
	json_t *arr = json_array();
	size_t i;
	json_t *o;
	json_array_foreach(objs, i, o) json_array_append(arr, json_object_get(o, "group"));
	json_decref(objs);
	*ret = arr;
	return 0;
}

int
store_finish(struct store *s, int64_t in_id, const char *group, const char *reply, bool failed,
             const struct store_usage *u)
{
	return store_finish_run(s, in_id, group, reply, failed, u, NULL);
}

int
store_finish_run(struct store *s, int64_t in_id, const char *group, const char *reply, bool failed,
                 const struct store_usage *u, const struct store_run *rec)
{
	int r = exec(s, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	/* First, and only while it is still queued: a message is answered once, whatever a
	 * caller does twice (the reply and the run record would otherwise be stored again). */
	r = run(s, "UPDATE messages SET status = ? WHERE id = ? AND status = 'queued'", "ti",
	        failed ? "failed" : "answered", in_id);
	if (r == 0 && sqlite3_changes(s->db) != 1) {
		snprintf(s->error, sizeof(s->error), "message %lld is not queued",
		         (long long)in_id);
		r = -EALREADY;
	}
	if (r == 0 && rec) /* in the reply's transaction: a run record costs no fsync of its own */
		r = run(s,
		        "INSERT INTO runs (group_id, message_id, started_ms, ended_ms, status, "
		        "exit_status) VALUES (?, ?, ?, ?, ?, ?)",
		        "tiiiti", group, in_id, rec->started_ms, rec->ended_ms,
		        failed ? "failed" : "answered", (int64_t)rec->exit_status);
	if (r == 0 && reply && *reply)
		r = run(s,
		        "INSERT INTO messages (group_id, direction, sender, text, time, status, "
		        "reply_to) "
		        "VALUES (?, 'out', 'clawbox', ?, ?, 'sent', ?)",
		        "ttii", group, reply, now_s(), in_id);
	if (r == 0)
		r = run(s,
		        "UPDATE task_runs SET ended = ?, status = ? WHERE message_id = ? AND ended "
		        "IS NULL",
		        "iti", now_s(), failed ? "failed" : "answered", in_id);
	if (r == 0 && u)
		r = run(
		    s,
		    "INSERT INTO usage (time, group_id, message_id, input, output, cache_write, "
		    "cache_read, model, cost_usd) VALUES (?, ?, ?, ?, ?, ?, ?, NULLIF(?, ''), "
		    "CASE WHEN ? THEN ? END)",
		    "itiiiiitif", now_s(), group, in_id, (int64_t)u->input, (int64_t)u->output,
		    (int64_t)u->cache_write, (int64_t)u->cache_read, u->model ? u->model : "",
		    (int64_t)u->cost_known, u->cost_usd);
	if (r == 0)
		return exec(s, "COMMIT");
	(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

int
store_requeue_running(struct store *s)
{
	int r = run(s, "UPDATE messages SET status = 'queued' WHERE status = 'running'", "");
	return r < 0 ? r : sqlite3_changes(s->db);
}

int
store_requeue(struct store *s, int64_t in_id)
{
	return run(s, "UPDATE messages SET status = 'queued' WHERE id = ? AND status = 'running'",
	           "i", in_id);
}

void
store_audit_batch_begin(struct store *s)
{
	s->batching = true;
}

static int
audit_insert(struct store *s, int64_t time, const char *group, const char *action,
             const char *decision, const char *reason)
{
	return run(s,
	           "INSERT INTO audit (time, group_id, action, decision, reason) "
	           "VALUES (?, ?, ?, ?, ?)",
	           "itttt", time, group, action, decision, reason ? reason : "");
}

/* The rows kept so far, in one transaction; kept no more either way. */
static int
audit_flush(struct store *s)
{
	if (!s->n_pending)
		return 0;
	int r = exec(s, "BEGIN IMMEDIATE");
	for (size_t i = 0; r == 0 && i < s->n_pending; i++) {
		struct pending_audit *a = &s->pending[i];
		r = audit_insert(s, a->time, a->group, a->action, a->decision, a->reason);
	}
	if (r == 0)
		r = exec(s, "COMMIT");
	if (r < 0 && !sqlite3_get_autocommit(s->db))
		(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	for (size_t i = 0; i < s->n_pending; i++)
		free(s->pending[i].text);
	s->n_pending = 0;
	return r;
}

int
store_audit_batch_commit(struct store *s)
{
	s->batching = false;
	return audit_flush(s);
}

int
store_audit(struct store *s, const char *group, const char *action, const char *decision,
            const char *reason)
{
	if (!reason)
		reason = "";
	if (s->batching && s->n_pending == STORE_AUDIT_BATCH_MAX)
		(void)audit_flush(s); /* in order, and the batch goes on */
	if (s->batching && s->n_pending < STORE_AUDIT_BATCH_MAX) {
		/* One allocation for the four strings, each NUL-terminated. */
		size_t lg = strlen(group) + 1, la = strlen(action) + 1, ld = strlen(decision) + 1,
		       lr = strlen(reason) + 1;
		char *t = malloc(lg + la + ld + lr);
		if (t) {
			struct pending_audit *a = &s->pending[s->n_pending++];
			a->time = now_s();
			a->text = t;
			a->group = memcpy(t, group, lg);
			a->action = memcpy(t + lg, action, la);
			a->decision = memcpy(t + lg + la, decision, ld);
			a->reason = memcpy(t + lg + la + ld, reason, lr);
			return 0;
		}
	}
	return audit_insert(s, now_s(), group, action, decision, reason);
}

int
store_audit_after(struct store *s, int64_t after, json_t **ret)
{
	static const char *const names[] = {"id",       "time",   "group", "action",
	                                    "decision", "reason", NULL};
	sqlite3_stmt *st;
	int r = prepare(s, &st,
	                "SELECT id, time, group_id, action, decision, reason FROM audit "
	                "WHERE id > ? ORDER BY id LIMIT ?",
	                "ii", after, (int64_t)STORE_LIST_MAX);
	return r < 0 ? r : rows(s, st, names, ret);
}

int
store_counts(struct store *s, struct store_counts *ret)
{
	sqlite3_stmt *st;
	int r = prepare(
	    s, &st,
	    "SELECT (SELECT COUNT(*) FROM messages WHERE direction = 'in'),"
	    " (SELECT COUNT(*) FROM messages WHERE direction = 'out'),"
	    " (SELECT COUNT(*) FROM messages WHERE status = 'queued'),"
	    " (SELECT COUNT(*) FROM messages WHERE status = 'running'),"
	    " (SELECT COUNT(*) FROM messages WHERE status = 'failed'),"
	    " (SELECT TOTAL(input) FROM usage), (SELECT TOTAL(output) FROM usage),"
	    " (SELECT TOTAL(cache_write) FROM usage), (SELECT TOTAL(cache_read) FROM usage)",
	    "");
	if (r < 0)
		return r;
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return fail(s);
	}
	struct store_counts c = {
	    .messages_in = sqlite3_column_int64(st, 0),
	    .messages_out = sqlite3_column_int64(st, 1),
	    .queued = sqlite3_column_int64(st, 2),
	    .running = sqlite3_column_int64(st, 3),
	    .failed = sqlite3_column_int64(st, 4),
	    .usage = {(uint64_t)sqlite3_column_double(st, 5),
	              (uint64_t)sqlite3_column_double(st, 6),
	              (uint64_t)sqlite3_column_double(st, 7),
	              (uint64_t)sqlite3_column_double(st, 8)},
	};
	sqlite3_finalize(st);
	*ret = c;
	return 0;
}

/* ---- host actions and tasks ---- */

int
store_message_out(struct store *s, const char *group, const char *sender, const char *text,
                  int64_t *ret_id)
{
	if (strlen(text) > STORE_TEXT_MAX)
		return snprintf(s->error, sizeof(s->error), "a message past %u bytes",
		                STORE_TEXT_MAX),
		       -E2BIG;
	int r = run(s,
	            "INSERT INTO messages (group_id, direction, sender, text, time, status) "
	            "VALUES (?, 'out', ?, ?, ?, 'sent')",
	            "ttti", group, sender, text, now_s());
	if (r == 0 && ret_id)
		*ret_id = sqlite3_last_insert_rowid(s->db);
	return r;
}

int
store_task_add(struct store *s, const char *group, const char *prompt, const char *kind,
               const char *spec, int64_t next_run, const char *created_by, int64_t *ret_id)
{
	int r = run(s,
	            "INSERT INTO tasks (group_id, prompt, kind, spec, next_run, status, created, "
	            "created_by) VALUES (?, ?, ?, ?, ?, 'active', ?, ?)",
	            "ttttiit", group, prompt, kind, spec, next_run, now_s(), created_by);
	if (r == 0)
		*ret_id = sqlite3_last_insert_rowid(s->db);
	return r;
}

static const char *const task_names[] = {"id",   "group",    "prompt", "kind",
                                         "spec", "next_run", "status", NULL};

int
store_tasks(struct store *s, const char *group, json_t **ret)
{
	sqlite3_stmt *st;
	int r =
	    group ? prepare(s, &st,
	                    "SELECT id, group_id, prompt, kind, spec, next_run, status FROM tasks "
	                    "WHERE group_id = ? AND status != 'cancelled' ORDER BY id LIMIT ?",
	                    "ti", group, (int64_t)STORE_LIST_MAX)
	          : prepare(s, &st,
	                    "SELECT id, group_id, prompt, kind, spec, next_run, status FROM tasks "
	                    "WHERE status != 'cancelled' ORDER BY id LIMIT ?",
	                    "i", (int64_t)STORE_LIST_MAX);
	return r < 0 ? r : rows(s, st, task_names, ret);
}

int
store_task_get(struct store *s, int64_t id, json_t **ret)
{
	sqlite3_stmt *st;
	json_t *arr;
	int r = prepare(s, &st,
	                "SELECT id, group_id, prompt, kind, spec, next_run, status FROM tasks "
	                "WHERE id = ?",
	                "i", id);
	if (r < 0 || (r = rows(s, st, task_names, &arr)) < 0)
		return r;
	json_t *t = json_array_get(arr, 0);
	if (!t) {
		json_decref(arr);
		return -ENOENT;
	}
	*ret = json_incref(t);
	json_decref(arr);
	return 0;
}

int
store_task_update(struct store *s, int64_t id, const char *status, int64_t next_run)
{
	return run(s, "UPDATE tasks SET status = ?, next_run = ? WHERE id = ?", "tii", status,
	           next_run, id);
}

int
store_due_tasks(struct store *s, int64_t now, json_t **ret)
{
	static const char *const names[] = {"id", "group", "prompt", "kind", "spec", NULL};
	sqlite3_stmt *st;
	int r = prepare(s, &st,
	                "SELECT id, group_id, prompt, kind, spec FROM tasks "
	                "WHERE status = 'active' AND next_run IS NOT NULL AND next_run <= ? "
	                "ORDER BY next_run LIMIT ?",
	                "ii", now, (int64_t)STORE_LIST_MAX);
	return r < 0 ? r : rows(s, st, names, ret);
}

int
store_task_fire(struct store *s, int64_t task, const char *group, const char *prompt,
                const char *status, int64_t next_run, int64_t *ret_message)
{
	char sender[32];
	snprintf(sender, sizeof(sender), "task:%lld", (long long)task);
	int r = exec(s, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	r = run(s,
	        "INSERT INTO messages (group_id, direction, sender, text, time, status) "
	        "VALUES (?, 'in', ?, ?, ?, 'queued')",
	        "ttti", group, sender, prompt, now_s());
	int64_t msg = sqlite3_last_insert_rowid(s->db);
	if (r == 0)
		r = run(s,
		        "INSERT INTO task_runs (task_id, message_id, started, status) "
		        "VALUES (?, ?, ?, 'running')",
		        "iii", task, msg, now_s());
	if (r == 0)
		r = run(s, "UPDATE tasks SET status = ?, next_run = ? WHERE id = ?", "tii", status,
		        next_run, task);
	if (r == 0 && (r = exec(s, "COMMIT")) == 0) {
		if (ret_message)
			*ret_message = msg;
		return 0;
	}
	(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

int
store_task_runs(struct store *s, int64_t task, json_t **ret)
{
	static const char *const names[] = {"id", "message_id", "started", "ended", "status", NULL};
	sqlite3_stmt *st;
	int r = prepare(s, &st,
	                "SELECT id, message_id, started, ended, status FROM task_runs "
	                "WHERE task_id = ? ORDER BY id DESC LIMIT ?",
	                "ii", task, (int64_t)STORE_LIST_MAX);
	return r < 0 ? r : rows(s, st, names, ret);
}

int
store_usage_by_group(struct store *s, json_t **ret)
{
	static const char *const names[] = {"group",       "runs",       "input",    "output",
	                                    "cache_write", "cache_read", "cost_usd", NULL};
	sqlite3_stmt *st;
	/* cost_usd: of the runs whose model had a price */
	int r = prepare(s, &st,
	                "SELECT group_id, COUNT(*), SUM(input), SUM(output), SUM(cache_write), "
	                "SUM(cache_read), TOTAL(cost_usd) FROM usage GROUP BY group_id ORDER BY "
	                "group_id",
	                "");
	return r < 0 ? r : rows(s, st, names, ret);
}

/* ---- small named values, and the channels' bookkeeping ---- */

int
store_kv_get(struct store *s, const char *key, char *buf, size_t size)
{
	sqlite3_stmt *st;
	int r = prepare(s, &st, "SELECT value FROM kv WHERE key = ?", "t", key);
	if (r < 0)
		return r;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		snprintf(buf, size, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : fail(s);
}

int
store_kv_set(struct store *s, const char *key, const char *value)
{
	return run(s,
	           "INSERT INTO kv (key, value) VALUES (?, ?) "
	           "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
	           "tt", key, value);
}

int
store_channel_in(struct store *s, const char *group, const char *sender, const char *text,
                 const char *offset_key, const char *offset)
{
	return store_channel_in_chat(s, group, sender, text, offset_key, offset, NULL);
}

int
store_channel_in_chat(struct store *s, const char *group, const char *sender, const char *text,
                      const char *offset_key, const char *offset, const struct store_chat *chat)
{
	int r = exec(s, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	if (chat)
		r = run(
		    s,
		    "INSERT INTO chats (channel, chat_id, group_id, kind, first_seen, last_seen, "
		    "messages) VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT (channel, chat_id) DO "
		    "UPDATE SET last_seen = excluded.last_seen, group_id = excluded.group_id, "
		    "messages = messages + 1",
		    "ttttii", chat->channel, chat->chat_id, chat->group ? chat->group : "",
		    chat->kind ? chat->kind : "", now_s(), now_s());
	if (r == 0 && group)
		r = run(s,
		        "INSERT INTO messages (group_id, direction, sender, text, time, status) "
		        "VALUES (?, 'in', ?, ?, ?, 'queued')",
		        "ttti", group, sender, text, now_s());
	if (r == 0)
		r = store_kv_set(s, offset_key, offset);
	if (r == 0)
		return exec(s, "COMMIT");
	(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

int
store_channel_message(struct store *s, const struct store_channel_msg *m, int64_t *ret_id)
{
	int r = exec(s, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	r = run(s,
	        "INSERT OR IGNORE INTO channel_seen (channel, ext_id, message_id, time, chat, "
	        "thread) VALUES (?, ?, NULL, ?, ?, ?)",
	        "ttitt", m->channel, m->ext_id, now_s(), m->chat ? m->chat : "",
	        m->thread ? m->thread : "");
	bool dup = r == 0 && sqlite3_changes(s->db) == 0;
	int64_t id = 0;
	if (r == 0 && !dup && m->chat)
		r = run(
		    s,
		    "INSERT INTO chats (channel, chat_id, group_id, kind, first_seen, last_seen, "
		    "messages) VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT (channel, chat_id) DO "
		    "UPDATE SET last_seen = excluded.last_seen, group_id = excluded.group_id, "
		    "kind = excluded.kind, messages = messages + 1",
		    "ttttii", m->channel, m->chat, m->chat_group ? m->chat_group : "",
		    m->chat_kind ? m->chat_kind : "", now_s(), now_s());
	if (r == 0 && !dup && m->group) {
		r = run(s,
		        "INSERT INTO messages (group_id, direction, sender, text, time, status) "
		        "VALUES (?, 'in', ?, ?, ?, 'queued')",
		        "ttti", m->group, m->sender, m->text, now_s());
		id = sqlite3_last_insert_rowid(s->db);
		if (r == 0)
			r = run(s,
			        "UPDATE channel_seen SET message_id = ? WHERE channel = ? AND "
			        "ext_id = ?",
			        "itt", id, m->channel, m->ext_id);
	}
	if (r == 0 && m->cursor_key && m->cursor)
		r = store_kv_set(s, m->cursor_key, m->cursor);
	if (r == 0)
		r = exec(s, "COMMIT");
	if (r < 0) {
		(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return r;
	}
	if (ret_id)
		*ret_id = id;
	return dup ? 1 : 0;
}

int
store_channel_origin(struct store *s, const char *channel, int64_t message_id,
                     struct store_origin *ret)
{
	sqlite3_stmt *st;
	int r = prepare(s, &st,
	                "SELECT ext_id, chat, thread FROM channel_seen WHERE channel = ? AND "
	                "message_id = ?",
	                "ti", channel, message_id);
	if (r < 0)
		return r;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(ret->ext_id, sizeof(ret->ext_id), "%s", sqlite3_column_text(st, 0));
		snprintf(ret->chat, sizeof(ret->chat), "%s",
		         sqlite3_column_text(st, 1) ? (const char *)sqlite3_column_text(st, 1)
		                                    : "");
		snprintf(ret->thread, sizeof(ret->thread), "%s",
		         sqlite3_column_text(st, 2) ? (const char *)sqlite3_column_text(st, 2)
		                                    : "");
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : fail(s);
}

int
store_out_after(struct store *s, int64_t after, json_t **ret)
{
	static const char *const names[] = {"id", "group", "text", "reply_to", NULL};
	sqlite3_stmt *st;
	int r = prepare(s, &st,
	                "SELECT id, group_id, text, reply_to FROM messages WHERE direction = "
	                "'out' AND id > ? ORDER BY id LIMIT 100",
	                "i", after);
	return r < 0 ? r : rows(s, st, names, ret);
}

int64_t
store_last_id(struct store *s)
{
	sqlite3_stmt *st;
	if (prepare(s, &st, "SELECT COALESCE(MAX(id), 0) FROM messages", "") < 0)
		return -1;
	int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_finalize(st);
	return v;
}

int
store_chats(struct store *s, json_t **ret)
{
	static const char *const names[] = {"channel",    "chat_id",   "group",    "kind",
	                                    "first_seen", "last_seen", "messages", NULL};
	sqlite3_stmt *st;
	int r = prepare(s, &st,
	                "SELECT channel, chat_id, group_id, kind, first_seen, last_seen, messages "
	                "FROM chats ORDER BY last_seen DESC LIMIT ?",
	                "i", (int64_t)STORE_LIST_MAX);
	return r < 0 ? r : rows(s, st, names, ret);
}

int
store_runs(struct store *s, const char *group, json_t **ret)
{
	static const char *const names[] = {"id",     "message_id",  "started_ms", "ended_ms",
	                                    "status", "exit_status", NULL};
	sqlite3_stmt *st;
	int r =
	    prepare(s, &st,
	            "SELECT id, message_id, started_ms, ended_ms, status, exit_status FROM runs "
	            "WHERE group_id = ? ORDER BY id DESC LIMIT ?",
	            "ti", group, (int64_t)STORE_LIST_MAX);
	return r < 0 ? r : rows(s, st, names, ret);
}

/* ---- limits: queue caps, task caps, coalescing, paging (no schema change) ---- */

/* One integer from a query that returns one row. */
static int
count_of(struct store *s, int64_t *ret, const char *sql, const char *types, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	va_start(ap, types);
	int r = vprepare(s, &st, sql, types, ap);
	va_end(ap);
	if (r < 0)
		return r;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? (*ret = 0, 0) : fail(s);
}

int
store_queued_count(struct store *s, const char *group, int64_t *ret)
{
	return group ? count_of(s, ret,
	                        "SELECT COUNT(*) FROM messages WHERE status = 'queued' AND "
	                        "direction = 'in' AND group_id = ?",
	                        "t", group)
	             : count_of(s, ret,
	                        "SELECT COUNT(*) FROM messages WHERE status = 'queued' AND "
	                        "direction = 'in'",
	                        "");
}

int
store_oldest_queued_sender(struct store *s, const char *group, char *buf, size_t size)
{
	sqlite3_stmt *st;
	int r = prepare(s, &st,
	                "SELECT sender FROM messages WHERE status = 'queued' AND direction = 'in' "
	                "AND group_id = ? ORDER BY id LIMIT 1",
	                "t", group);
	if (r < 0)
		return r;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		snprintf(buf, size, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : fail(s);
}

int
store_task_count(struct store *s, const char *group, int64_t *ret)
{
	return count_of(s, ret,
	                "SELECT COUNT(*) FROM tasks WHERE group_id = ? AND status IN ('active', "
	                "'paused')",
	                "t", group);
}

int
store_task_pending(struct store *s, int64_t task, bool *ret)
{
	char sender[32];
	int64_t n = 0;
	snprintf(sender, sizeof(sender), "task:%lld", (long long)task);
	/* Queued covers running too: a run's message stays queued until it is answered. */
	int r = count_of(s, &n,
	                 "SELECT COUNT(*) FROM (SELECT 1 FROM messages WHERE status = 'queued' "
	                 "AND sender = ? LIMIT 1)",
	                 "t", sender);
	if (r == 0)
		*ret = n > 0;
	return r;
}

int
store_task_skip(struct store *s, int64_t task, const char *why, const char *status,
                int64_t next_run)
{
	int r = exec(s, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	r = run(s,
	        "INSERT INTO task_runs (task_id, message_id, started, ended, status) "
	        "VALUES (?, NULL, ?, ?, ?)",
	        "iiit", task, now_s(), now_s(), why);
	if (r == 0)
		r = run(s, "UPDATE tasks SET status = ?, next_run = ? WHERE id = ?", "tii", status,
		        next_run, task);
	if (r == 0 && (r = exec(s, "COMMIT")) == 0)
		return 0;
	(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

int
store_task_skips(struct store *s, int64_t task, const char *why, int64_t *ret)
{
	return count_of(s, ret, "SELECT COUNT(*) FROM task_runs WHERE task_id = ? AND status = ?",
	                "it", task, why);
}

int
store_tasks_page(struct store *s, const char *group, int64_t after, int64_t limit, json_t **ret)
{
	static const char *const names[] = {"id",   "group",    "prompt", "kind",
	                                    "spec", "next_run", "status", NULL};
	sqlite3_stmt *st;
	if (limit <= 0 || limit > STORE_LIST_MAX)
		limit = STORE_LIST_MAX;
	int r = group ? prepare(s, &st,
	                        "SELECT id, group_id, prompt, kind, spec, next_run, status FROM "
	                        "tasks WHERE group_id = ? AND status != 'cancelled' AND id > ? "
	                        "ORDER BY id LIMIT ?",
	                        "tii", group, after, limit)
	              : prepare(s, &st,
	                        "SELECT id, group_id, prompt, kind, spec, next_run, status FROM "
	                        "tasks WHERE status != 'cancelled' AND id > ? ORDER BY id LIMIT ?",
	                        "ii", after, limit);
	return r < 0 ? r : rows(s, st, names, ret);
}

int
store_tasks_cancel_group(struct store *s, const char *group)
{
	int r = run(s,
	            "UPDATE tasks SET status = 'cancelled', next_run = 0 WHERE group_id = ? AND "
	            "status IN ('active', 'paused')",
	            "t", group);
	return r < 0 ? r : sqlite3_changes(s->db);
}

/* The web app's views (api-views.c). */

int
store_usage_by_day(struct store *s, int64_t since, json_t **ret)
{
	static const char *const names[] = {"day",        "group",      "runs",  "input",
	                                    "output",     "cache_write", "cache_read",
	                                    "model",      "cost_usd",   NULL};
	sqlite3_stmt *st;
	int r = prepare(s, &st,
	                "SELECT date(time, 'unixepoch') AS day, group_id, COUNT(*), "
	                "SUM(input), SUM(output), SUM(cache_write), SUM(cache_read), model, "
	                "CASE WHEN COUNT(cost_usd) = COUNT(*) THEN TOTAL(cost_usd) END FROM usage "
	                "WHERE time >= ? GROUP BY day, group_id, model ORDER BY day, group_id, "
	                "model LIMIT ?",
	                "ii", since, (int64_t)STORE_LIST_MAX);
	return r < 0 ? r : rows(s, st, names, ret);
}

int
store_runs_view(struct store *s, const char *group, int64_t message, int64_t before, int64_t limit,
                json_t **ret)
{
	static const char *const names[] = {"id",       "group",  "message_id",  "started_ms",
	                                    "ended_ms", "status", "exit_status", "input",
	                                    "output",   "prompt", "tool_bytes",  "model",
	                                    "cost_usd", NULL};
	sqlite3_stmt *st;
	int r =
	    prepare(s, &st,
	            "SELECT r.id, r.group_id, r.message_id, r.started_ms, r.ended_ms, "
	            "r.status, r.exit_status, "
	            "(SELECT COALESCE(SUM(input), 0) FROM usage u WHERE u.message_id = "
	            "r.message_id), "
	            "(SELECT COALESCE(SUM(output), 0) FROM usage u WHERE u.message_id = "
	            "r.message_id), "
	            "(SELECT substr(text, 1, 200) FROM messages m WHERE m.id = r.message_id), "
	            "(SELECT COALESCE(length(value), 0) FROM kv WHERE key = 'run-tools:' || "
	            "r.message_id), "
	            "(SELECT MAX(model) FROM usage u WHERE u.message_id = r.message_id), "
	            /* a cost only when every usage row of the run has one */
	            "(SELECT CASE WHEN COUNT(*) > 0 AND COUNT(cost_usd) = COUNT(*) THEN "
	            "SUM(cost_usd) END FROM usage u WHERE u.message_id = r.message_id) "
	            "FROM runs r WHERE (? = '' OR r.group_id = ?) AND (? = 0 OR r.message_id = ?) "
	            "AND r.id < ? ORDER BY r.id DESC LIMIT ?",
	            "ttiiii", group ? group : "", group ? group : "", message, message, before,
	            limit > 0 && limit <= STORE_LIST_MAX ? limit : (int64_t)STORE_LIST_MAX);
	return r < 0 ? r : rows(s, st, names, ret);
}

int
store_audit_query(struct store *s, const struct store_audit_filter *f, json_t **ret)
{
	static const char *const names[] = {"id",       "time",   "group", "action",
	                                    "decision", "reason", NULL};
	sqlite3_stmt *st;
	/* kind: the action up to its first ':' ("api:schedule_task" is kind "api"), or all of it */
	int r = prepare(s, &st,
	                "SELECT id, time, group_id, action, decision, reason FROM audit "
	                "WHERE id > ? AND (? = '' OR group_id = ?) AND (? = '' OR action = ? OR "
	                "substr(action, 1, length(?) + 1) = ? || ':') AND "
	                "(? = '' OR decision = ?) AND time >= ? AND time <= ? "
	                "ORDER BY id DESC LIMIT ?",
	                "ittttttttiii", f->after, f->group, f->group, f->kind, f->kind, f->kind,
	                f->kind, f->decision, f->decision, f->since, f->until,
	                f->limit > 0 && f->limit <= STORE_LIST_MAX ? f->limit
	                                                           : (int64_t)STORE_LIST_MAX);
	return r < 0 ? r : rows(s, st, names, ret);
}
