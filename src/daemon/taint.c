/*
 * taint.c: see taint.h. The live runs' causes sit in a list here (one record per run, made
 * when the run starts, freed when it ends); what outlives a run is in the store's kv table:
 * "run-taint:MESSAGE" (the causes of a finished run) and "memory-taint:GROUP" (the group's
 * memory file as a tainted run left it: {"sha256", "cause"}).
 *
 * The memory rule holds across a daemon crash: while a tainted run lasts, its group's record
 * says "sha256": "*" (whatever the file holds now may be the run's), so a daemon killed
 * under the run leaves the next run tainted rather than clean. When the run ends, "*" is
 * replaced by the digest the run left, if it changed the file, or the record it found is put
 * back. A record whose digest no longer matches the file was overwritten by someone who is
 * not a tainted run (the operator, from the host): the taint is cleared, and audited so.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "fd-util.h"
#include "json-util.h"
#include "taint.h"
#include "text.h"

#define MEMORY_HASH_MAX (16u << 20) /* a larger memory file is known by its size and time */
#define KV_MAX          8192

struct taint_run {
	struct taint_run *next;
	char run_id[40];
	char group[CONFIG_GROUP_ID_MAX];
	int64_t message;
	int64_t started; /* unix seconds: the tasks it schedules are created after */
	char causes[TAINT_CAUSES_MAX][TAINT_CAUSE_MAX];
	size_t n;
	unsigned dropped;         /* causes past TAINT_CAUSES_MAX: counted only */
	char memory_sha[65];      /* the memory file at start */
	bool memory_pending;      /* "memory-taint:GROUP" says "*" for this run */
	char memory_prev[KV_MAX]; /* the record found at start ("" none) */
};

static struct taint_run *runs;

/* A channel's sender is "KIND:ID" (the daemon stores it so; chancore's channels.c): a lower-case
 * kind, a colon, an id. Any sender of that form but the scheduler's "task:N" counts as one,
 * whatever the kind: an API client that writes one is relaying someone, and a kind added
 * later is covered without a table to forget. Such a sender is an owner only if listed. */
static bool
channel_sender(const char *sender)
{
	size_t k = strspn(sender, "abcdefghijklmnopqrstuvwxyz0123456789_-");
	return k > 0 && sender[0] >= 'a' && sender[0] <= 'z' && sender[k] == ':' &&
	       strncmp(sender, "task:", 5) != 0;
}

int
taint_parse_owners(json_t *owners, const char *where, struct group_owners *out, char *why,
                   size_t size)
{
	memset(out, 0, sizeof(*out));
	out->api = true;
	if (!owners)
		return 0;
	if (!json_is_array(owners))
		return snprintf(why, size,
		                "%s.owners: expected a list such as [\"api\", \"telegram:42\"]",
		                where),
		       -EINVAL;
	out->set = true;
	out->api = false;
	size_t i;
	json_t *o;
	json_array_foreach(owners, i, o)
	{
		const char *s = json_is_string(o) ? json_string_value(o) : "";
		const char *colon = strchr(s, ':');
		if (strcmp(s, "api") == 0) {
			out->api = true;
			continue;
		}
		if (!channel_sender(s) || !colon[1] || strlen(s) >= TAINT_OWNER_MAX ||
		    strpbrk(s, " \t\r\n"))
			return snprintf(
			           why, size,
			           "%s.owners[%zu]: expected \"api\" or a channel's \"KIND:ID\" "
			           "(such as \"telegram:42\")",
			           where, i),
			       -EINVAL;
		if (out->n >= TAINT_OWNERS_MAX)
			return snprintf(why, size, "%s.owners: at most %d", where,
			                TAINT_OWNERS_MAX),
			       -EINVAL;
		snprintf(out->ids[out->n++], TAINT_OWNER_MAX, "%s", s);
	}
	return 0;
}

bool
taint_sender_is_owner(const struct group_owners *o, const char *sender)
{
	if (!sender)
		sender = "";
	/* The scheduler's own firing: its prompt is what the owner (or an approver) let in. */
	if (strncmp(sender, "task:", 5) == 0)
		return true;
	if (!channel_sender(sender))
		return o->api;
	for (size_t i = 0; i < o->n; i++)
		if (strcmp(o->ids[i], sender) == 0)
			return true;
	return false;
}

json_t *
taint_owners_json(const struct group_owners *o)
{
	json_t *a = json_array();
	if (o->api)
		json_array_append_new(a, json_string("api"));
	for (size_t i = 0; i < o->n; i++)
		json_array_append_new(a, json_string(o->ids[i]));
	return json_pack("{s:o,s:b}", "owners", a, "default", !o->set);
}

void
taint_start_add(struct taint_start *s, const char *kind, const char *fmt, ...)
{
	if (s->n >= TAINT_START_MAX)
		return;
	snprintf(s->c[s->n].kind, sizeof(s->c[s->n].kind), "%s", kind);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->c[s->n].cause, sizeof(s->c[s->n].cause), fmt, ap);
	va_end(ap);
	s->n++;
}

/* The group's memory file (DATA/groups/G/AGENTS.md), as its digest in out: "absent", "other"
 * (not a regular file, or reached through a symlink), "large:SIZE:MTIME" or the sha256. The
 * folder is the agent's: opened beneath it, never through a link. */
static void
memory_digest(struct daemon *d, const char *group, char out[65])
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/groups/%s", d->cfg.data_dir, group);
	snprintf(out, 65, "absent");
	_cleanup_close_ int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return;
	struct open_how how = {
	    .flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY,
	    .resolve =
	        RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};
	_cleanup_close_ int fd = (int)syscall(SYS_openat2, dirfd, "AGENTS.md", &how, sizeof(how));
	struct stat st;
	if (fd < 0) {
		if (errno != ENOENT)
			snprintf(out, 65, "other");
		return;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(out, 65, "other");
		return;
	}
	if ((uint64_t)st.st_size > MEMORY_HASH_MAX) {
		snprintf(out, 65, "large:%lld:%lld.%09ld", (long long)st.st_size,
		         (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
		return;
	}
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[32], buf[65536];
	unsigned int mdlen = 0;
	bool good = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
	ssize_t n;
	while (good && (n = read(fd, buf, sizeof(buf))) > 0)
		good = EVP_DigestUpdate(ctx, buf, (size_t)n) == 1;
	good = good && n == 0 && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 32;
	EVP_MD_CTX_free(ctx);
	if (!good) {
		snprintf(out, 65, "other");
		return;
	}
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void
kv_delete(struct daemon *d, const char *key)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(store_db(d->store), "DELETE FROM kv WHERE key = ?", -1, &st, NULL) !=
	    SQLITE_OK)
		return;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
	(void)sqlite3_step(st);
	sqlite3_finalize(st);
}

static void
message_sender(struct daemon *d, int64_t message, char *buf, size_t size)
{
	sqlite3_stmt *st;
	buf[0] = '\0';
	if (sqlite3_prepare_v2(store_db(d->store), "SELECT sender FROM messages WHERE id = ?", -1,
	                       &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_int64(st, 1, message);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(buf, size, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
}

static struct taint_run *find(const char *run_id);

/* A task's firing: tainted when a tainted run scheduled it (kv "task-taint:ID" once that run
 * ended; while it lasts, its live record: one run per group at a time, so a task its group's
 * agent created after the run started is the run's). */
static void
task_cause(struct daemon *d, long long task, struct taint_start *out)
{
	char key[48], val[TAINT_CAUSE_MAX];
	snprintf(key, sizeof(key), "task-taint:%lld", task);
	if (store_kv_get(d->store, key, val, sizeof(val)) == 0) {
		taint_start_add(out, "task", "%s", val);
		return;
	}
	sqlite3_stmt *st;
	char by[96] = "";
	int64_t created = 0;
	if (sqlite3_prepare_v2(store_db(d->store),
	                       "SELECT created_by, created FROM tasks WHERE id = ?", -1, &st,
	                       NULL) != SQLITE_OK)
		return;
	sqlite3_bind_int64(st, 1, task);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(by, sizeof(by), "%s", (const char *)sqlite3_column_text(st, 0) ?: "");
		created = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	if (strncmp(by, "agent of ", 9) != 0)
		return;
	for (struct taint_run *t = runs; t; t = t->next)
		if (strcmp(t->group, by + 9) == 0 && t->n > 0 && t->started <= created)
			taint_start_add(out, "task", "task %lld scheduled by tainted run %lld",
			                task, (long long)t->message);
}

/* The run ended tainted: the tasks its agent scheduled start tainted when they fire. */
static void
tasks_settle(struct daemon *d, const struct taint_run *t)
{
	sqlite3_stmt *st;
	char by[96];
	snprintf(by, sizeof(by), "agent of %s", t->group);
	if (sqlite3_prepare_v2(
	        store_db(d->store),
	        "SELECT id FROM tasks WHERE created_by = ? AND created >= ? LIMIT 256", -1, &st,
	        NULL) != SQLITE_OK)
		return;
	sqlite3_bind_text(st, 1, by, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, t->started);
	int64_t ids[256];
	size_t n = 0;
	while (n < ARRAY_SIZE(ids) && sqlite3_step(st) == SQLITE_ROW)
		ids[n++] = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	for (size_t i = 0; i < n; i++) {
		char key[48], val[96];
		snprintf(key, sizeof(key), "task-taint:%lld", (long long)ids[i]);
		snprintf(val, sizeof(val), "task %lld scheduled by tainted run %lld",
		         (long long)ids[i], (long long)t->message);
		(void)store_kv_set(d->store, key, val);
	}
}

void
taint_start_collect(struct daemon *d, const char *group, int64_t message, struct taint_start *out)
{
	memset(out, 0, sizeof(*out));
	const struct group_config *g = config_group(&d->cfg, group);
	if (!g)
		return;
	char sender[160];
	message_sender(d, message, sender, sizeof(sender));
	if (!taint_sender_is_owner(&g->owners, sender))
		taint_start_add(out, "sender", "message %lld from %.96s, not an owner of %s",
		                (long long)message, sender, group);
	long long task;
	char end;
	if (sscanf(sender, "task:%lld%c", &task, &end) == 1)
		task_cause(d, task, out);
	memory_digest(d, group, out->memory_sha);
	char key[96], val[KV_MAX];
	snprintf(key, sizeof(key), "memory-taint:%s", group);
	if (store_kv_get(d->store, key, val, sizeof(val)) < 0)
		return;
	_cleanup_json_ json_t *rec = json_loads(val, 0, NULL);
	const char *sha = json_get_str(rec, "sha256") ?: "*", *cause = json_get_str(rec, "cause");
	if (strcmp(sha, "*") == 0 || strcmp(sha, out->memory_sha) == 0) {
		taint_start_add(out, "memory", "%s", cause ?: "memory written by a tainted run");
		return;
	}
	/* Changed since a tainted run left it, and no run has run since: the operator's. */
	kv_delete(d, key);
	char text[TAINT_CAUSE_MAX + 96];
	snprintf(text, sizeof(text), "memory file changed outside a run: cleared \"%.160s\"",
	         cause ?: "");
	(void)store_audit(d->store, group, "taint:memory", "cleared", text);
}

static struct taint_run *
find(const char *run_id)
{
	for (struct taint_run *t = runs; run_id && t; t = t->next)
		if (strcmp(t->run_id, run_id) == 0)
			return t;
	return NULL;
}

/* The run is tainted now: the group's memory record says so until the run ends. */
static void
memory_mark_pending(struct daemon *d, struct taint_run *t)
{
	if (t->memory_pending)
		return;
	char key[96], val[512];
	snprintf(key, sizeof(key), "memory-taint:%s", t->group);
	if (store_kv_get(d->store, key, t->memory_prev, sizeof(t->memory_prev)) < 0)
		t->memory_prev[0] = '\0';
	char cause[128];
	snprintf(cause, sizeof(cause),
	         "memory possibly written by tainted run %lld (the daemon ended during it)",
	         (long long)t->message);
	_cleanup_json_ json_t *rec = json_pack("{s:s,s:s}", "sha256", "*", "cause", cause);
	_cleanup_free_ char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
	snprintf(val, sizeof(val), "%s", text ?: "{\"sha256\":\"*\"}");
	if (store_kv_set(d->store, key, val) == 0)
		t->memory_pending = true;
}

static void
note(struct daemon *d, struct taint_run *t, const char *kind, const char *cause)
{
	char clean[TAINT_CAUSE_MAX];
	size_t len = strnlen(cause, sizeof(clean) - 1);
	len = text_sanitize(cause, len, clean);
	clean[len] = '\0';
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->causes[i], clean) == 0)
			return; /* once per cause */
	if (t->n >= TAINT_CAUSES_MAX) {
		t->dropped++;
		return;
	}
	snprintf(t->causes[t->n++], TAINT_CAUSE_MAX, "%s", clean);
	char action[24], text[TAINT_CAUSE_MAX + 48];
	snprintf(action, sizeof(action), "taint:%.16s", kind);
	snprintf(text, sizeof(text), "run %lld: %s", (long long)t->message, clean);
	(void)store_audit(d->store, t->group, action, "tainted", text);
	memory_mark_pending(d, t);
}

int
taint_run_begin(struct daemon *d, const char *group, const char *run_id, int64_t message,
                const struct taint_start *s)
{
	struct taint_run *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	snprintf(t->run_id, sizeof(t->run_id), "%s", run_id);
	snprintf(t->group, sizeof(t->group), "%s", group);
	t->message = message;
	t->started = (int64_t)time(NULL);
	if (s)
		snprintf(t->memory_sha, sizeof(t->memory_sha), "%s", s->memory_sha);
	t->next = runs;
	runs = t;
	for (size_t i = 0; s && i < s->n; i++)
		note(d, t, s->c[i].kind, s->c[i].cause);
	return 0;
}

void
taint_note(struct daemon *d, const char *group, const char *run_id, const char *kind,
           const char *cause)
{
	struct taint_run *t = find(run_id);
	/* The group is the daemon's record of the run, never the reporter's word for it. */
	if (!t || !group || strcmp(t->group, group) != 0 || !kind || !cause || !cause[0])
		return;
	note(d, t, kind, cause);
}

bool
taint_run_tainted(struct daemon *d, const char *run_id)
{
	(void)d;
	struct taint_run *t = find(run_id);
	return t && (t->n > 0 || t->dropped > 0);
}

void
taint_describe(struct daemon *d, const char *run_id, char *buf, size_t size)
{
	(void)d;
	struct taint_run *t = find(run_id);
	buf[0] = '\0';
	if (!t || t->n == 0)
		return;
	size_t more = t->n - 1 + t->dropped;
	if (more)
		snprintf(buf, size, "tainted: %s (and %zu more)", t->causes[0], more);
	else
		snprintf(buf, size, "tainted: %s", t->causes[0]);
}

static json_t *
causes_json(const struct taint_run *t)
{
	json_t *a = json_array();
	for (size_t i = 0; i < t->n; i++)
		json_array_append_new(a, json_string(t->causes[i]));
	if (t->dropped) {
		char more[64];
		snprintf(more, sizeof(more), "(%u more causes, not kept)", t->dropped);
		json_array_append_new(a, json_string(more));
	}
	return a;
}

json_t *
taint_run_causes(struct daemon *d, const char *run_id)
{
	(void)d;
	struct taint_run *t = find(run_id);
	return t ? causes_json(t) : json_array();
}

json_t *
taint_message_causes(struct daemon *d, int64_t message)
{
	char key[48];
	_cleanup_free_ char *buf = malloc(KV_MAX * 2);
	snprintf(key, sizeof(key), "run-taint:%lld", (long long)message);
	json_t *a = buf && store_kv_get(d->store, key, buf, KV_MAX * 2) == 0
	                ? json_loads(buf, 0, NULL)
	                : NULL;
	if (!json_is_array(a)) {
		json_decref(a);
		a = json_array();
	}
	return a;
}

/* The memory record when the run ends: what the run left, if it changed the file; else
 * the record it found (with "*" from a crashed run replaced by the digest this run saw). */
static void
memory_settle(struct daemon *d, struct taint_run *t)
{
	if (!t->memory_pending)
		return;
	char key[96], now[65];
	snprintf(key, sizeof(key), "memory-taint:%s", t->group);
	memory_digest(d, t->group, now);
	_cleanup_json_ json_t *rec = NULL;
	if (strcmp(now, t->memory_sha) != 0) {
		char cause[96];
		snprintf(cause, sizeof(cause), "memory written by tainted run %lld",
		         (long long)t->message);
		rec = json_pack("{s:s,s:s}", "sha256", now, "cause", cause);
		char text[TAINT_CAUSE_MAX];
		snprintf(text, sizeof(text),
		         "run %lld changed the memory file: the next runs of %s "
		         "start tainted",
		         (long long)t->message, t->group);
		(void)store_audit(d->store, t->group, "taint:memory", "tainted", text);
	} else if (t->memory_prev[0]) {
		rec = json_loads(t->memory_prev, 0, NULL);
		if (rec && strcmp(json_get_str(rec, "sha256") ?: "*", "*") == 0)
			json_object_set_new(rec, "sha256", json_string(now));
	}
	_cleanup_free_ char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
	if (text)
		(void)store_kv_set(d->store, key, text);
	else
		kv_delete(d, key);
}

void
taint_run_end(struct daemon *d, const char *run_id)
{
	struct taint_run *t = NULL;
	for (struct taint_run **p = &runs; *p; p = &(*p)->next)
		if (strcmp((*p)->run_id, run_id) == 0) {
			t = *p;
			*p = t->next;
			break;
		}
	if (!t)
		return;
	if (t->dropped) {
		char text[160];
		snprintf(text, sizeof(text), "run %lld: %u more causes, counted and not kept",
		         (long long)t->message, t->dropped);
		(void)store_audit(d->store, t->group, "taint", "tainted", text);
	}
	if (t->n) {
		char key[48];
		snprintf(key, sizeof(key), "run-taint:%lld", (long long)t->message);
		_cleanup_json_ json_t *a = causes_json(t);
		_cleanup_free_ char *text = json_dumps(a, JSON_COMPACT);
		if (text)
			(void)store_kv_set(d->store, key, text);
	}
	if (t->n || t->dropped)
		tasks_settle(d, t);
	memory_settle(d, t);
	free(t);
}
