/*
 * test-taint.c: the daemon's taint record against a real store: "owners" parsed and refused,
 * which senders are owners, the when_tainted verdicts (the stricter one wins), a flood of
 * causes bounded (kept and audited up to TAINT_CAUSES_MAX, the rest counted into one row),
 * a cause for another group ignored, and a tainted run's host action held by approvals_gate
 * with "tainted: CAUSE" as its reason, where the same request from a clean run runs.
 */
#include <event2/event.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "approvals.h"
#include "daemon.h"
#include "json-util.h"
#include "policy.h"
#include "taint.h"
#include "tap.h"

static void
never(void *ctx, json_t *answer)
{
	(void)ctx;
	json_decref(answer);
}

static int64_t
count(struct daemon *d, const char *sql)
{
	sqlite3_stmt *st;
	int64_t n = -1;
	if (sqlite3_prepare_v2(store_db(d->store), sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static int
owners(const char *text, struct group_owners *o, char *why, size_t size)
{
	_cleanup_json_ json_t *j = text ? json_loads(text, 0, NULL) : NULL;
	return taint_parse_owners(j, "groups[0]", o, why, size);
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double
now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* --bench: the gate of a tainted run's host action that its when_tainted allows, with 100
 * other live runs (the taint lookup's worst case at the daemon's cap), median and p95. */
static void
bench(struct daemon *d)
{
	enum { N = 20000 };
	static double t[N];
	char id[32];
	for (int i = 0; i < 100; i++) {
		snprintf(id, sizeof(id), "bench-%d", i);
		(void)taint_run_begin(d, "main", id, 1, NULL);
	}
	taint_note(d, "main", "bench-0", "egress", "response from untrusted host b.example");
	_cleanup_json_ json_t *req =
	    json_loads("{\"tool\": \"list_tasks\", \"input\": {}}", 0, NULL);
	uint64_t budget = 1 << 20;
	for (int i = 0; i < N; i++) {
		json_t *ans = NULL;
		double a = now_us();
		(void)approvals_gate(d, "main", "bench-0", req, &budget, never, NULL, &ans);
		t[i] = now_us() - a;
		json_decref(ans);
	}
	qsort(t, N, sizeof(t[0]), cmp);
	printf("policy check, host action of a tainted run (100 live runs): median %.2f us, p95 "
	       "%.2f us (budget 100 us)\n",
	       t[N / 2], t[N * 95 / 100]);
	for (int i = 0; i < 100; i++) {
		snprintf(id, sizeof(id), "bench-%d", i);
		taint_run_end(d, id);
	}
}

int
main(int argc, char **argv)
{
	struct group_owners o;
	char why[256] = "";
	ok(owners(NULL, &o, why, sizeof(why)) == 0 && o.api && !o.set && o.n == 0,
	   "no owners: the API's senders only");
	ok(taint_sender_is_owner(&o, "") && taint_sender_is_owner(&o, "ana") &&
	       taint_sender_is_owner(&o, "task:3"),
	   "default: the API (with or without a sender) and the scheduler are owners");
	ok(!taint_sender_is_owner(&o, "telegram:42") && !taint_sender_is_owner(&o, "slack:U1"),
	   "default: channel senders are not");
	ok(!taint_sender_is_owner(&o, "newkind:7") && taint_sender_is_owner(&o, "Ana: hi") &&
	       taint_sender_is_owner(&o, "chat"),
	   "any KIND:ID is a channel's sender; other API senders are the API's");
	ok(owners("[\"telegram:42\"]", &o, why, sizeof(why)) == 0 && !o.api,
	   "owners without \"api\"");
	ok(taint_sender_is_owner(&o, "telegram:42") && !taint_sender_is_owner(&o, "telegram:420") &&
	       !taint_sender_is_owner(&o, "ana"),
	   "exactly the listed sender; then the API's senders taint too");
	ok(owners("[\"api\", \"bob\"]", &o, why, sizeof(why)) == -EINVAL &&
	       strstr(why, "groups[0].owners[1]"),
	   "a bad entry is named: %s", why);
	ok(owners("{}", &o, why, sizeof(why)) == -EINVAL && strstr(why, "groups[0].owners"),
	   "owners not a list is refused");
	ok(owners("[\"telegram:\"]", &o, why, sizeof(why)) == -EINVAL,
	   "\"telegram:\" alone is refused");

	/* when_tainted: the stricter of the two verdicts. */
	struct group_policy p;
	_cleanup_json_ json_t *pol =
	    json_loads("{\"when_tainted\": {\"send_message\": \"deny\", \"list_tasks\": \"ask\"}, "
	               "\"host_actions\": {\"send_file\": \"deny\"}}",
	               0, NULL);
	ok(policy_parse(pol, NULL, "groups[0]", true, &p, why, sizeof(why)) == 0, "a policy (%s)",
	   why);
	bool by = false;
	ok(policy_host_action_tainted(&p, true, HA_SEND_MESSAGE, false, &by) == VERDICT_DENY && by,
	   "configured: send_message denied when tainted");
	ok(policy_host_action_tainted(&p, true, HA_SEND_FILE, false, &by) == VERDICT_DENY && !by,
	   "a deny of the policy stays a deny (not the taint's doing)");
	ok(policy_host_action_tainted(&p, true, HA_SCHEDULE_TASK, false, &by) == VERDICT_ASK && by,
	   "default: schedule_task asks when tainted");
	ok(policy_host_action_tainted(&p, true, HA_LIST_TASKS, false, &by) == VERDICT_ASK && by,
	   "configured: list_tasks asks when tainted");
	ok(policy_host_action_tainted(&p, true, HA_CANCEL_TASK, false, &by) == VERDICT_ALLOW && !by,
	   "default: cancel_task unchanged");

	char dir[] = "/tmp/clawbox-taint-XXXXXX", path[160];
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/store.db", dir);
	struct daemon *d = calloc(1, sizeof(*d));
	char cfg[512];
	snprintf(cfg, sizeof(cfg),
	         "{\"data_dir\": \"%s\", \"groups\": [{\"id\": \"main\", \"main\": true, "
	         "\"policy\": {\"other_groups\": {\"send_message\": \"ask\"}}}, {\"id\": "
	         "\"fam\"}]}",
	         dir);
	ok(config_parse(cfg, &d->cfg, why, sizeof(why)) == 0, "config (%s)", why);
	ok(store_open(path, &d->store) == 0 && approvals_init(d) == 0, "store and tables");
	d->base = event_base_new();

	int64_t msg;
	ok(store_group_ensure(d->store, "main") == 0 &&
	       store_message_in(d->store, "main", "telegram:999", "hi", &msg) == 0,
	   "a message");
	struct taint_start s;
	taint_start_collect(d, "main", msg, &s);
	ok(s.n == 1 && strcmp(s.c[0].kind, "sender") == 0 && strstr(s.c[0].cause, "telegram:999"),
	   "its sender is a start cause: %s", s.n ? s.c[0].cause : "(none)");
	ok(strcmp(s.memory_sha, "absent") == 0, "no memory file yet");
	ok(taint_run_begin(d, "main", "run-a", msg, &s) == 0 && taint_run_tainted(d, "run-a"),
	   "the run starts tainted");
	ok(taint_run_begin(d, "main", "run-b", msg, NULL) == 0 && !taint_run_tainted(d, "run-b"),
	   "a run without causes is clean");

	/* A flood of causes: bounded. */
	for (int i = 0; i < 5000; i++) {
		char c[64];
		snprintf(c, sizeof(c), "response from untrusted host h%d.example", i);
		taint_note(d, "main", "run-a", "egress", c);
	}
	taint_note(d, "main", "run-a", "egress", "response from untrusted host h1.example");
	_cleanup_json_ json_t *causes = taint_run_causes(d, "run-a");
	ok(json_array_size(causes) == TAINT_CAUSES_MAX + 1 &&
	       strstr(json_string_value(json_array_get(causes, TAINT_CAUSES_MAX)),
	              "4985 more causes"),
	   "5000 causes: %d kept, the rest counted (%s)", TAINT_CAUSES_MAX,
	   json_string_value(json_array_get(causes, TAINT_CAUSES_MAX)));
	ok(count(d, "SELECT COUNT(*) FROM audit WHERE action LIKE 'taint:%'") == TAINT_CAUSES_MAX,
	   "and audited once each, no more");
	taint_note(d, "fam", "run-b", "egress", "response from untrusted host x");
	ok(!taint_run_tainted(d, "run-b"),
	   "a cause naming another group than the run's is ignored");
	taint_note(d, "main", "no-such-run", "egress", "x");
	char desc[512];
	taint_describe(d, "run-a", desc, sizeof(desc));
	ok(strncmp(desc, "tainted: message ", 17) == 0 && strstr(desc, "more)"), "described: %s",
	   desc);

	/* The gate: the same request held in the tainted run, run in the clean one. */
	uint64_t budget = 1 << 20;
	json_t *ans = NULL;
	_cleanup_json_ json_t *other = json_loads(
	    "{\"tool\": \"send_message\", \"input\": {\"text\": \"notes\", \"group\": \"fam\"}}", 0,
	    NULL);
	ok(sqlite3_exec(store_db(d->store),
	                "INSERT INTO policy_rules (grp, action, destination, verdict, added, "
	                "added_by, approval) VALUES ('main', 'send_message', 'group:fam', 'allow', "
	                "0, 'cli', 1)",
	                NULL, NULL, NULL) == 0 &&
	       approvals_init(d) == 0,
	   "an approver's \"always\" rule for main's messages to fam");
	ok(approvals_gate(d, "main", "run-b", other, &budget, never, NULL, &ans) == APPROVAL_RUN,
	   "clean run: send_message to fam runs (by the rule)");
	ok(approvals_gate(d, "main", "run-a", other, &budget, never, (void *)1, &ans) ==
	       APPROVAL_HELD,
	   "tainted run: the same request is held; the untainted rule does not pass it");
	ok(count(d, "SELECT COUNT(*) FROM approvals WHERE why LIKE 'tainted: message %' AND "
	            "destination = 'group:fam when tainted'") == 1,
	   "the approver is told why, and the grant is for the tainted destination");
	approvals_forget(d, (void *)1);

	taint_run_end(d, "run-a");
	taint_run_end(d, "run-b");
	ok(!taint_run_tainted(d, "run-a"), "an ended run is no longer live");
	_cleanup_json_ json_t *kept = taint_message_causes(d, msg);
	ok(json_array_size(kept) == TAINT_CAUSES_MAX + 1, "its causes kept with its message");
	ok(count(d, "SELECT COUNT(*) FROM audit WHERE reason LIKE '%4985 more causes, counted%'") ==
	       1,
	   "the count audited in one row");

	if (argc > 1 && strcmp(argv[1], "--bench") == 0)
		bench(d);
	store_close(d->store);
	event_base_free(d->base);
	config_done(&d->cfg);
	free(d);
	static const char *const files[] = {"store.db", "store.db-wal", "store.db-shm"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
	return tap_done();
}
