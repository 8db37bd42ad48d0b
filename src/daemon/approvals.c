/*
 * approvals.c: see approvals.h. The store keeps every request and every "always" rule (two
 * tables of their own, made here); what is held now (the waiting connection, the request,
 * its expiry timer) and the "run" grants live in this process only, so a daemon that dies
 * takes every hold and every run grant with it, and the next one denies what was pending.
 */
#include <errno.h>
#include <stdarg.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "approvals.h"
#include "daemon.h"
#include "hostact.h"
#include "json-util.h"
#include "policy.h"
#include "taint.h"

struct held {
	struct held *next;
	bool egress; /* a request the proxy holds (approvals_gate_egress): nothing runs here */
	struct daemon *d;
	int64_t id;
	char group[CONFIG_GROUP_ID_MAX], run[40], action[24], dest[APPROVAL_DEST_MAX];
	json_t *request; /* owned */
	uint64_t *file_budget;
	approval_done_fn *done;
	void *ctx;
	struct event *timer;
};

static struct held *held_list;

/* "run" grants: (run, group, action, destination); the oldest is overwritten past the end,
 * which can only make a later call ask again. */
static struct {
	char run[40], group[CONFIG_GROUP_ID_MAX], action[24], dest[APPROVAL_DEST_MAX];
} run_grants[64];
static size_t run_grant_next;

/* The "always" rules, as in the store (which is the truth: loaded at start, changed here
 * only after the store is), so that a host action's check reads no table. */
#define RULES_MAX 256
static struct rule {
	int64_t id;
	char group[CONFIG_GROUP_ID_MAX], action[24], dest[APPROVAL_DEST_MAX];
} rules[RULES_MAX];
static size_t n_rules;

static void
rule_add(int64_t id, const char *group, const char *action, const char *dest)
{
	if (n_rules >= RULES_MAX)
		return; /* the rule is stored; past the cap it asks again, which is safe */
	struct rule *r = &rules[n_rules++];
	r->id = id;
	snprintf(r->group, sizeof(r->group), "%s", group);
	snprintf(r->action, sizeof(r->action), "%s", action);
	snprintf(r->dest, sizeof(r->dest), "%s", dest);
}

static void
rule_remove(int64_t id)
{
	for (size_t i = 0; i < n_rules; i++)
		if (rules[i].id == id)
			rules[i--] = rules[--n_rules];
}

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS approvals ("
    " id INTEGER PRIMARY KEY, created INTEGER NOT NULL, expires INTEGER NOT NULL,"
    " grp TEXT NOT NULL, run TEXT NOT NULL, action TEXT NOT NULL, destination TEXT NOT NULL,"
    " preview TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,"
    " fingerprint TEXT NOT NULL, why TEXT NOT NULL, status TEXT NOT NULL,"
    " scope TEXT NOT NULL DEFAULT '', answered_by TEXT NOT NULL DEFAULT '',"
    " outcome TEXT NOT NULL DEFAULT '');"
    "CREATE TABLE IF NOT EXISTS policy_rules ("
    " id INTEGER PRIMARY KEY, grp TEXT NOT NULL, action TEXT NOT NULL,"
    " destination TEXT NOT NULL, verdict TEXT NOT NULL, added INTEGER NOT NULL,"
    " added_by TEXT NOT NULL, approval INTEGER NOT NULL);";

static void
sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;
	if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32) {
		/* Never a fingerprint that could match another's: a fixed impossible digest. */
		snprintf(out, 65, "%064d", 0);
		out[0] = 'x';
		return;
	}
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int
exec_sql(struct daemon *d, const char *sql, const char *types, ...)
{
	sqlite3 *db = store_db(d->store);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	va_list ap;
	va_start(ap, types);
	for (int i = 0; types[i]; i++) {
		if (types[i] == 't')
			sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1,
			                  SQLITE_TRANSIENT);
		else
			sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
	}
	va_end(ap);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -EIO;
}

int
approvals_init(struct daemon *d)
{
	sqlite3 *db = store_db(d->store);
	if (sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK)
		return -EIO;
	/* Whatever was pending was held by a daemon that is gone, with the run that asked: it
	 * is denied, never granted, and nobody can answer it any more. */
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT id, grp, action FROM approvals WHERE status = 'pending'",
	                       -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	while (sqlite3_step(st) == SQLITE_ROW) {
		char text[160];
		snprintf(text, sizeof(text), "approval %lld denied: the daemon that held it ended",
		         (long long)sqlite3_column_int64(st, 0));
		(void)store_audit(d->store, (const char *)sqlite3_column_text(st, 1),
		                  (const char *)sqlite3_column_text(st, 2), "deny", text);
	}
	sqlite3_finalize(st);
	n_rules = 0;
	if (sqlite3_prepare_v2(db,
	                       "SELECT id, grp, action, destination FROM policy_rules WHERE "
	                       "verdict = 'allow' ORDER BY id",
	                       -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	while (sqlite3_step(st) == SQLITE_ROW)
		rule_add(sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
		         (const char *)sqlite3_column_text(st, 2),
		         (const char *)sqlite3_column_text(st, 3));
	sqlite3_finalize(st);
	return exec_sql(d,
	                "UPDATE approvals SET status = 'denied', outcome = 'the daemon that "
	                "held it ended' WHERE status = 'pending'",
	                "");
}

/* The group a request acts on, as the handler will decide it: "" when the handler will
 * refuse it anyway (no such group or task, a malformed field). */
static void
destination(struct daemon *d, const char *own, enum host_action a, json_t *input, char *buf,
            size_t size)
{
	snprintf(buf, size, "%s", own);
	if (a == HA_PAUSE_TASK || a == HA_RESUME_TASK || a == HA_CANCEL_TASK) {
		json_t *idv = json_object_get(input, "task_id");
		_cleanup_json_ json_t *task = NULL;
		if (!json_is_integer(idv) ||
		    store_task_get(d->store, json_integer_value(idv), &task) < 0)
			buf[0] = '\0';
		else
			snprintf(buf, size, "%s", json_get_str(task, "group") ?: "");
	} else if (a != HA_LIST_TASKS) {
		json_t *g = json_object_get(input, "group");
		if (g && !json_is_string(g))
			buf[0] = '\0';
		else if (g)
			snprintf(buf, size, "%s", json_string_value(g));
	}
	if (buf[0] && !config_group(&d->cfg, buf))
		buf[0] = '\0';
}

/* Held requests of the group (by_run false) or of the run (by_run true). */
static unsigned
held_count(const char *key, bool by_run)
{
	unsigned n = 0;
	for (struct held *h = held_list; h; h = h->next)
		n += strcmp(by_run ? h->run : h->group, key) == 0;
	return n;
}

static void
held_unlink(struct held *h)
{
	for (struct held **p = &held_list; *p; p = &(*p)->next)
		if (*p == h) {
			*p = h->next;
			break;
		}
	if (h->timer)
		event_free(h->timer);
	h->timer = NULL;
}

static void
held_free(struct held *h)
{
	json_decref(h->request);
	free(h);
}

static json_t *refusal(const char *fmt, ...) _printf_(1, 2);
static json_t *
refusal(const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return json_pack("{s:b,s:s}", "ok", 0, "error", text);
}

/* Ends a held request without running it: status and outcome stored, audited. */
static void
held_end(struct daemon *d, struct held *h, const char *status, const char *outcome, const char *by,
         bool call)
{
	held_unlink(h);
	(void)exec_sql(d,
	               "UPDATE approvals SET status = ?, outcome = ?, answered_by = ? WHERE id = ? "
	               "AND status = 'pending'",
	               "ttti", status, outcome, by, h->id);
	char text[512];
	snprintf(text, sizeof(text), "approval %lld %s: %s", (long long)h->id, status, outcome);
	(void)store_audit(d->store, h->group, h->action, "deny", text);
	if (call)
		h->done(h->ctx, json_pack("{s:b,s:s}", "ok", 0, "error", text));
	held_free(h);
}

static void
expire_fire(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct held *h = arg;
	held_end(h->d, h, "expired", "no approver answered in time", "", true);
}

/* What a held request is, for the store and the approver. */
struct hold_input {
	const char *group, *run_id, *action, *dest, *preview, *sha, *why;
	uint64_t size;
	unsigned secs;
};

/* A grant covers it (APPROVAL_RUN), or it is stored and held (APPROVAL_HELD), or refused.
 * request is the host action to run once approved, or NULL for an egress request (the proxy
 * holds it; done is told the answer). */
static enum approval_gate
hold(struct daemon *d, const struct hold_input *in, json_t *request, uint64_t *file_budget,
     approval_done_fn *done, void *ctx, json_t **ret_answer)
{
	const char *group = in->group, *run_id = in->run_id, *tool = in->action,
	           *canon_dest = in->dest;
	/* An "always" rule the approver wrote, or a grant for this run. */
	int64_t rule = 0;
	for (size_t i = 0; !rule && i < n_rules; i++)
		if (strcmp(rules[i].group, group) == 0 && strcmp(rules[i].action, tool) == 0 &&
		    strcmp(rules[i].dest, canon_dest) == 0)
			rule = rules[i].id;
	bool granted = rule > 0;
	for (size_t i = 0; !granted && i < ARRAY_SIZE(run_grants); i++)
		granted = run_grants[i].run[0] && strcmp(run_grants[i].run, run_id) == 0 &&
		          strcmp(run_grants[i].group, group) == 0 &&
		          strcmp(run_grants[i].action, tool) == 0 &&
		          strcmp(run_grants[i].dest, canon_dest) == 0;
	if (granted) {
		char text[128];
		if (rule)
			snprintf(text, sizeof(text), "asked, allowed by policy rule %lld",
			         (long long)rule);
		else
			snprintf(text, sizeof(text), "asked, allowed for this run by an approver");
		(void)store_audit(d->store, group, tool, "allow", text);
		return APPROVAL_RUN;
	}
	if (held_count(group, false) >= POLICY_PENDING_GROUP ||
	    held_count(run_id, true) >= POLICY_PENDING_RUN) {
		(void)store_audit(d->store, group, tool, "deny", "too many approvals pending");
		*ret_answer = refusal("too many approvals of %s are pending", group);
		return APPROVAL_REFUSED;
	}
	/* The fingerprint: (group, run, action, destination, the input's sha256). */
	const char *args_sha = in->sha, *why = in->why, *preview = in->preview;
	int64_t len = (int64_t)in->size;
	char fp[65];
	char fpin[CONFIG_GROUP_ID_MAX + 40 + 24 + APPROVAL_DEST_MAX + 70];
	int fl = snprintf(fpin, sizeof(fpin), "%s%c%s%c%s%c%s%c%s", group, 0, run_id, 0, tool, 0,
	                  canon_dest, 0, args_sha);
	if (fl < 0 || (size_t)fl >= sizeof(fpin)) {
		*ret_answer = refusal("the request could not be held");
		return APPROVAL_REFUSED;
	}
	sha256_hex(fpin, (size_t)fl, fp);
	int64_t now = daemon_now(d);
	if (exec_sql(d,
	             "INSERT INTO approvals (created, expires, grp, run, action, destination, "
	             "preview, size, sha256, fingerprint, why, status) VALUES (?, ?, ?, ?, ?, ?, "
	             "?, ?, ?, ?, ?, 'pending')",
	             "iitttttittt", now, now + (int64_t)in->secs, group, run_id, tool, canon_dest,
	             preview, len, args_sha, fp, why) < 0) {
		/* Not stored: nobody could answer it, so it is refused, not held or run. */
		(void)store_audit(d->store, group, tool, "deny",
		                  "the approval could not be stored");
		*ret_answer = refusal("the approval request could not be stored");
		return APPROVAL_REFUSED;
	}
	struct held *h = calloc(1, sizeof(*h));
	if (!h) {
		*ret_answer = refusal("out of memory");
		return APPROVAL_REFUSED;
	}
	h->d = d;
	h->id = sqlite3_last_insert_rowid(store_db(d->store));
	snprintf(h->group, sizeof(h->group), "%s", group);
	snprintf(h->run, sizeof(h->run), "%s", run_id);
	snprintf(h->action, sizeof(h->action), "%s", tool);
	snprintf(h->dest, sizeof(h->dest), "%s", canon_dest);
	h->request = request ? json_incref(request) : NULL;
	h->egress = request == NULL;
	h->file_budget = file_budget;
	h->done = done;
	h->ctx = ctx;
	h->next = held_list;
	held_list = h;
	h->timer = evtimer_new(d->base, expire_fire, h);
	struct timeval tv = {(time_t)in->secs, 0};
	if (!h->timer || evtimer_add(h->timer, &tv) < 0) {
		held_end(d, h, "denied", "its expiry could not be armed", "", false);
		*ret_answer = refusal("the request could not be held");
		return APPROVAL_REFUSED;
	}
	char text[768];
	snprintf(text, sizeof(text), "held as approval %lld: %s (%.200s, %lld bytes, sha256 %.16s)",
	         (long long)h->id, why, canon_dest, (long long)len, args_sha);
	(void)store_audit(d->store, group, tool, "ask", text);
	/* The group's chats get buttons: the daemon's own words for what will happen. */
	char shown[APPROVAL_PREVIEW_MAX + 512];
	snprintf(shown, sizeof(shown), "Approval %lld: %s wants %s to %s.\nArguments: %s%s",
	         (long long)h->id, group, tool, canon_dest, preview,
	         len > APPROVAL_PREVIEW_MAX ? "..." : "");
	channels_approval(d, group, h->id, shown);
	return APPROVAL_HELD;
}

enum approval_gate
approvals_gate(struct daemon *d, const char *group, const char *run_id, json_t *request,
               uint64_t *file_budget, approval_done_fn *done, void *ctx, json_t **ret_answer)
{
	const char *tool = json_get_str(request, "tool");
	json_t *input = json_object_get(request, "input");
	int a = host_action_find(tool);
	const struct group_config *g = config_group(&d->cfg, group);
	if (a < 0 || !g || !json_is_object(input))
		return APPROVAL_RUN; /* the handler refuses it, saying why */
	if (!policy_tool_granted(&g->policy, tool)) {
		(void)store_audit(d->store, group, tool, "deny",
		                  "not granted by the group's policy");
		*ret_answer = refusal("the policy of %s does not grant %s", group, tool);
		return APPROVAL_REFUSED;
	}
	char dest[CONFIG_GROUP_ID_MAX];
	destination(d, group, (enum host_action)a, input, dest, sizeof(dest));
	if (!dest[0])
		return APPROVAL_RUN;
	bool other = strcmp(dest, group) != 0, by_taint = false;
	/* The run's taint is the daemon's own record (taint.h), never the request's word. */
	char taint_why[TAINT_CAUSE_MAX + 48] = "";
	enum policy_verdict v =
	    taint_run_tainted(d, run_id)
	        ? policy_host_action_tainted(&g->policy, g->main, (enum host_action)a, other,
	                                     &by_taint)
	        : policy_host_action(&g->policy, g->main, (enum host_action)a, other);
	if (by_taint)
		taint_describe(d, run_id, taint_why, sizeof(taint_why));
	if (v == VERDICT_ALLOW)
		return APPROVAL_RUN;
	if (v == VERDICT_DENY) {
		if (other && !g->main && !by_taint)
			return APPROVAL_RUN; /* the handler's refusal says it: only main may */
		char text[512];
		snprintf(text, sizeof(text), "the policy of %s denies %s to %s%s%s", group, tool,
		         dest, by_taint ? " when tainted; " : "", taint_why);
		(void)store_audit(d->store, group, tool, "deny", text);
		*ret_answer = refusal("%s", text);
		return APPROVAL_REFUSED;
	}
	/* A hold for the taint is for the destination "when tainted": a "run" grant or an
	 * "always" rule of an untainted ask never passes a tainted one. */
	char canon_dest[APPROVAL_DEST_MAX];
	snprintf(canon_dest, sizeof(canon_dest), "group:%s%s", dest,
	         by_taint ? " when tainted" : "");
	/* What the approver sees is the daemon's own rendering of the checked request: the
	 * canonical arguments (sorted keys, ASCII), never text the agent wrote about it. */
	_cleanup_free_ char *canon =
	    json_dumps(input, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	if (!canon) {
		*ret_answer = refusal("the request could not be held");
		return APPROVAL_REFUSED;
	}
	size_t len = strlen(canon);
	char args_sha[65], why[512];
	sha256_hex(canon, len, args_sha);
	if (by_taint) /* the approver is told what tainted the run */
		snprintf(why, sizeof(why),
		         "%s (the policy of %s asks before %s to %s when tainted)", taint_why,
		         group, tool, other ? "another group" : "itself");
	else
		snprintf(why, sizeof(why), "the policy of %s asks before %s to %s", group, tool,
		         other ? "another group" : "itself");
	char preview[APPROVAL_PREVIEW_MAX + 1];
	snprintf(preview, sizeof(preview), "%.*s", APPROVAL_PREVIEW_MAX, canon);
	const struct hold_input in = {
	    .group = group,
	    .run_id = run_id,
	    .action = tool,
	    .dest = canon_dest,
	    .preview = preview,
	    .size = len,
	    .sha = args_sha,
	    .why = why,
	    .secs = g->policy.approval_secs,
	};
	return hold(d, &in, request, file_budget, done, ctx, ret_answer);
}

enum approval_gate
approvals_gate_egress(struct daemon *d, const char *group, const char *run_id,
                      const struct approval_egress *e, approval_done_fn *done, void *ctx,
                      json_t **ret_answer)
{
	const struct group_config *g = config_group(&d->cfg, group);
	if (!g) {
		*ret_answer = refusal("no such group");
		return APPROVAL_REFUSED;
	}
	/* The destination as the proxy normalized it; the approver also sees the body's size,
	 * digest and preview, all the proxy's own reading of the bytes. */
	char dest[APPROVAL_DEST_MAX];
	int n = e->path[0] ? snprintf(dest, sizeof(dest), "%s %s:%u%s", e->method, e->host, e->port,
	                              e->path)
	                   : snprintf(dest, sizeof(dest), "%s %s:%u", e->method, e->host, e->port);
	if (n < 0 || (size_t)n >= sizeof(dest)) {
		*ret_answer = refusal("the destination is too long to show an approver");
		return APPROVAL_REFUSED;
	}
	char why[256];
	snprintf(why, sizeof(why), "egress from %s: %s", group, e->why);
	const struct hold_input in = {
	    .group = group,
	    .run_id = run_id,
	    .action = "egress",
	    .dest = dest,
	    .preview = e->preview,
	    .size = e->body_size,
	    .sha = e->body_sha256,
	    .why = why,
	    .secs = g->policy.approval_secs,
	};
	return hold(d, &in, NULL, NULL, done, ctx, ret_answer);
}

void
approvals_forget(struct daemon *d, void *ctx)
{
	for (struct held *h = held_list, *next; h; h = next) {
		next = h->next;
		if (h->ctx == ctx)
			held_end(d, h, "denied", "the run stopped waiting", "", false);
	}
}

void
approvals_stop(struct daemon *d)
{
	while (held_list)
		held_end(d, held_list, "denied", "the daemon stopped", "", true);
}

static bool
may_answer(const struct group_config *g, const char *approver)
{
	if (strcmp(approver, "cli") == 0)
		return g->policy.approver_cli;
	if (strcmp(approver, "web") == 0)
		return g->policy.approver_web;
	/* A channel user, exactly as configured ("telegram:42"); the channel's kind was checked
	 * against the name's by the daemon (channels-io.c), never taken from the channel. */
	for (size_t i = 0; i < g->policy.n_users; i++)
		if (strcmp(g->policy.users[i], approver) == 0)
			return true;
	return false;
}

/* Answers approval id. 0 (then *ret_status is 200), or an HTTP status for the refusal with
 * why. */
static int
answer(struct daemon *d, int64_t id, const char *decision, const char *scope, const char *approver,
       char *why, size_t size)
{
	struct held *h = NULL;
	for (struct held *x = held_list; x; x = x->next)
		if (x->id == id)
			h = x;
	if (!h) {
		sqlite3_stmt *st;
		const char *status = NULL;
		char buf[32] = "";
		if (sqlite3_prepare_v2(store_db(d->store),
		                       "SELECT status FROM approvals WHERE id = ?", -1, &st,
		                       NULL) == SQLITE_OK) {
			sqlite3_bind_int64(st, 1, id);
			if (sqlite3_step(st) == SQLITE_ROW)
				snprintf(buf, sizeof(buf), "%s", sqlite3_column_text(st, 0));
			sqlite3_finalize(st);
		}
		status = buf;
		if (!status[0])
			return snprintf(why, size, "there is no approval %lld", (long long)id), 404;
		return snprintf(why, size, "approval %lld is %s, not pending", (long long)id,
		                status),
		       409;
	}
	const struct group_config *g = config_group(&d->cfg, h->group);
	if (!g || !may_answer(g, approver)) {
		char text[256];
		snprintf(text, sizeof(text),
		         "answer to approval %lld by %.64s refused: not an approver "
		         "of %s",
		         (long long)id, approver, h->group);
		(void)store_audit(d->store, h->group, "approval", "deny", text);
		return snprintf(why, size, "%s is not an approver of %s", approver, h->group), 403;
	}
	if (strcmp(decision, "deny") == 0) {
		char outcome[128];
		snprintf(outcome, sizeof(outcome), "denied by %.64s", approver);
		held_end(d, h, "denied", outcome, approver, true);
		return 0;
	}
	/* Approved: recorded before it runs, so no crash can run it and forget it was asked. */
	held_unlink(h);
	if (exec_sql(d,
	             "UPDATE approvals SET status = 'approved', scope = ?, answered_by = ?, "
	             "outcome = 'ran' WHERE id = ? AND status = 'pending'",
	             "tti", scope, approver, h->id) < 0) {
		held_end(d, h, "denied", "the answer could not be stored", approver, true);
		return snprintf(why, size, "the answer could not be stored"), 503;
	}
	if (strcmp(scope, "run") == 0) {
		typeof(run_grants[0]) *rg = &run_grants[run_grant_next++ % ARRAY_SIZE(run_grants)];
		snprintf(rg->run, sizeof(rg->run), "%s", h->run);
		snprintf(rg->group, sizeof(rg->group), "%s", h->group);
		snprintf(rg->action, sizeof(rg->action), "%s", h->action);
		snprintf(rg->dest, sizeof(rg->dest), "%s", h->dest);
	} else if (strcmp(scope, "always") == 0) {
		if (exec_sql(d,
		             "INSERT INTO policy_rules (grp, action, destination, verdict, added, "
		             "added_by, approval) VALUES (?, ?, ?, 'allow', ?, ?, ?)",
		             "tttiti", h->group, h->action, h->dest, daemon_now(d), approver,
		             h->id) == 0)
			rule_add(sqlite3_last_insert_rowid(store_db(d->store)), h->group, h->action,
			         h->dest);
	}
	char text[256];
	snprintf(text, sizeof(text), "approval %lld approved by %.64s (%s)", (long long)h->id,
	         approver, scope);
	(void)store_audit(d->store, h->group, h->action, "approve", text);
	/* A host action runs here, with exactly the arguments shown; an egress request is
	 * the proxy's to let through (it holds the very bytes the approver saw). */
	json_t *resp = h->egress ? json_pack("{s:b,s:s}", "ok", 1, "reason", text)
	                         : hostact_handle(d, h->group, h->request, h->file_budget);
	h->done(h->ctx, resp);
	held_free(h);
	return 0;
}

int
approvals_answer(struct daemon *d, int64_t id, const char *decision, const char *scope,
                 const char *approver, char *why, size_t size)
{
	return answer(d, id, decision, scope, approver, why, size);
}

int
approvals_group(struct daemon *d, int64_t id, char *buf, size_t size)
{
	(void)d;
	for (struct held *h = held_list; h; h = h->next)
		if (h->id == id) {
			snprintf(buf, size, "%s", h->group);
			return 0;
		}
	return -ENOENT;
}

static void
refuse(struct evhttp_request *req, int status, const char *why)
{
	api_send_json(req, status, json_pack("{s:s}", "error", why));
}

static json_t *
list_approvals(struct daemon *d, bool pending_only)
{
	json_t *out = json_array();
	sqlite3_stmt *st;
	int64_t now = daemon_now(d);
	if (sqlite3_prepare_v2(store_db(d->store),
	                       pending_only
	                           ? "SELECT id, created, expires, grp, run, action, destination, "
	                             "preview, size, sha256, fingerprint, why, status, scope, "
	                             "answered_by, outcome FROM approvals WHERE status = "
	                             "'pending' ORDER BY id DESC LIMIT 200"
	                           : "SELECT id, created, expires, grp, run, action, destination, "
	                             "preview, size, sha256, fingerprint, why, status, scope, "
	                             "answered_by, outcome FROM approvals ORDER BY id DESC LIMIT "
	                             "200",
	                       -1, &st, NULL) != SQLITE_OK)
		return out;
	while (sqlite3_step(st) == SQLITE_ROW) {
#define T(i) ((const char *)sqlite3_column_text(st, i) ?: "")
		json_array_append_new(
		    out,
		    json_pack("{s:I,s:I,s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:s,"
		              "s:s}",
		              "id", (json_int_t)sqlite3_column_int64(st, 0), "created",
		              (json_int_t)sqlite3_column_int64(st, 1), "expires",
		              (json_int_t)sqlite3_column_int64(st, 2), "expires_in",
		              (json_int_t)(sqlite3_column_int64(st, 2) - now), "group", T(3), "run",
		              T(4), "action", T(5), "destination", T(6), "preview", T(7), "size",
		              (json_int_t)sqlite3_column_int64(st, 8), "sha256", T(9),
		              "fingerprint", T(10), "why", T(11), "status", T(12), "scope", T(13),
		              "answered_by", T(14), "outcome", T(15)));
#undef T
	}
	sqlite3_finalize(st);
	return out;
}

static json_t *
list_rules(struct daemon *d, const char *group)
{
	json_t *out = json_array();
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(store_db(d->store),
	                       "SELECT id, action, destination, verdict, added, added_by, approval "
	                       "FROM policy_rules WHERE grp = ? ORDER BY id",
	                       -1, &st, NULL) != SQLITE_OK)
		return out;
	sqlite3_bind_text(st, 1, group, -1, SQLITE_TRANSIENT);
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(
		    out, json_pack("{s:I,s:s,s:s,s:s,s:I,s:s,s:I}", "id",
		                   (json_int_t)sqlite3_column_int64(st, 0), "action",
		                   (const char *)sqlite3_column_text(st, 1), "destination",
		                   (const char *)sqlite3_column_text(st, 2), "verdict",
		                   (const char *)sqlite3_column_text(st, 3), "added",
		                   (json_int_t)sqlite3_column_int64(st, 4), "added_by",
		                   (const char *)sqlite3_column_text(st, 5), "approval",
		                   (json_int_t)sqlite3_column_int64(st, 6)));
	sqlite3_finalize(st);
	return out;
}

static int64_t
parse_id(const char *s)
{
	char *end;
	long long v = strtoll(s, &end, 10);
	return s[0] >= '1' && s[0] <= '9' && *end == '\0' && v > 0 ? v : -1;
}

static void
post_answer(struct daemon *d, struct evhttp_request *req, int64_t id, const char *approver)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	_cleanup_json_ json_t *body = len <= DAEMON_BODY_MAX
	                                  ? json_loadb((const char *)evbuffer_pullup(in, -1), len,
	                                               JSON_REJECT_DUPLICATES, NULL)
	                                  : NULL;
	/* Exactly {"decision", "scope"?}: an answer with fields we do not know, or values we
	 * do not know, is refused, so nothing injected or abbreviated can read as a grant. */
	const char *decision = json_get_str(body, "decision");
	json_t *sv = json_object_get(body, "scope");
	const char *scope = sv ? (json_is_string(sv) ? json_string_value(sv) : "") : "once";
	if (!json_is_object(body) || !decision || json_object_size(body) != (size_t)(sv ? 2 : 1) ||
	    (strcmp(decision, "approve") != 0 && strcmp(decision, "deny") != 0) ||
	    (strcmp(scope, "once") != 0 && strcmp(scope, "run") != 0 &&
	     strcmp(scope, "always") != 0)) {
		refuse(req, 400,
		       "expected {\"decision\": \"approve\"|\"deny\", \"scope\": "
		       "\"once\"|\"run\"|\"always\"}");
		return;
	}
	char why[256];
	int status = answer(d, id, decision, scope, approver, why, sizeof(why));
	if (status)
		refuse(req, status, why);
	else
		api_send_json(req, 200,
		              json_pack("{s:I,s:s,s:s}", "id", (json_int_t)id, "decision", decision,
		                        "scope", scope));
}

bool
approvals_route(struct daemon *d, struct evhttp_request *req, const char *path, int cmd,
                const char *approver)
{
	static const char ap[] = "/api/v1/approvals", gp[] = "/api/v1/groups/";
	if (strcmp(path, ap) == 0) {
		if (cmd != EVHTTP_REQ_GET)
			return refuse(req, 405, "GET"), true;
		const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
		bool all = q && strstr(q, "all=1");
		api_send_json(req, 200, json_pack("{s:o}", "approvals", list_approvals(d, !all)));
		return true;
	}
	if (strncmp(path, ap, sizeof(ap) - 1) == 0 && path[sizeof(ap) - 1] == '/') {
		int64_t id = parse_id(path + sizeof(ap));
		if (id < 0)
			refuse(req, 404, "no such approval");
		else if (cmd != EVHTTP_REQ_POST)
			refuse(req, 405, "POST");
		else
			post_answer(d, req, id, approver);
		return true;
	}
	if (strncmp(path, gp, sizeof(gp) - 1) != 0)
		return false;
	const char *rest = path + sizeof(gp) - 1;
	size_t glen = strcspn(rest, "/");
	char group[CONFIG_GROUP_ID_MAX];
	if (glen >= sizeof(group) || strncmp(rest + glen, "/policy", 7) != 0)
		return false;
	memcpy(group, rest, glen);
	group[glen] = '\0';
	const struct group_config *g = config_group(&d->cfg, group);
	const char *tail = rest + glen + 7;
	if (!g)
		return refuse(req, 404, "no such group"), true;
	if (!*tail && cmd == EVHTTP_REQ_GET) {
		api_send_json(req, 200,
		              json_pack("{s:s,s:o,s:o,s:o}", "group", group, "policy",
		                        policy_json(&g->policy, g->main, g->allow, g->n_allow),
		                        "rules", list_rules(d, group), "owners",
		                        taint_owners_json(&g->owners)));
		return true;
	}
	if (strncmp(tail, "/rules/", 7) == 0 && cmd == EVHTTP_REQ_DELETE) {
		int64_t id = parse_id(tail + 7);
		sqlite3 *db = store_db(d->store);
		if (id < 0 ||
		    exec_sql(d, "DELETE FROM policy_rules WHERE id = ? AND grp = ?", "it", id,
		             group) < 0 ||
		    sqlite3_changes(db) == 0)
			return refuse(req, 404, "no such rule"), true;
		rule_remove(id);
		char text[96];
		snprintf(text, sizeof(text), "policy rule %lld removed by %.32s", (long long)id,
		         approver);
		(void)store_audit(d->store, group, "policy", "allow", text);
		api_send_json(req, 200,
		              json_pack("{s:s,s:I,s:b}", "group", group, "rule", (json_int_t)id,
		                        "removed", 1));
		return true;
	}
	refuse(req, 405, "GET /policy or DELETE /policy/rules/N");
	return true;
}
