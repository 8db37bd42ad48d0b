/*
 * test-policy.c: the policy's table of defaults, what a configured verdict overrides, the
 * tools a policy grants, and approvals_gate() deciding host actions against a real store:
 * allowed on itself, refused when not granted or denied, allowed by an approver's "always"
 * rule. With --bench: the cost of that decision on a host action, median and p95 over many
 * calls (the project's budget: under 0.1 ms).
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
#include "tap.h"

static int
parse(const char *text, bool main, struct group_policy *p, char *why, size_t size)
{
	_cleanup_json_ json_t *j = json_loads(text, 0, NULL);
	return policy_parse(json_object_get(j, "policy"), json_object_get(j, "approvers"),
	                    "groups[0]", main, p, why, size);
}

static void
never(void *ctx, json_t *answer)
{
	(void)ctx;
	json_decref(answer);
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

/* Median and p95, in microseconds, of n gates of req from group. */
static void
bench(struct daemon *d, const char *group, const char *req_text, const char *what)
{
	enum { N = 20000 };
	static double t[N];
	_cleanup_json_ json_t *req = json_loads(req_text, 0, NULL);
	uint64_t budget = 1 << 20;
	/* As the daemon does: the audit rows of one turn's requests are kept and written at
	 * its end (ipc_read), so a decision's own cost is the check and the row kept, not the
	 * fsync, which is paid once per turn whatever the policy says (timed apart below). */
	store_audit_batch_begin(d->store);
	double commit_us = 0;
	for (int i = 0; i < N; i++) {
		json_t *ans = NULL;
		if (i % 256 == 255) {
			double c = now_us();
			(void)store_audit_batch_commit(d->store);
			commit_us += now_us() - c;
			store_audit_batch_begin(d->store);
		}
		double a = now_us();
		enum approval_gate g =
		    approvals_gate(d, group, "run", req, &budget, never, NULL, &ans);
		t[i] = now_us() - a;
		if (ans)
			json_decref(ans);
		if (g == APPROVAL_HELD)
			approvals_forget(d, NULL);
	}
	(void)store_audit_batch_commit(d->store);
	qsort(t, N, sizeof(t[0]), cmp);
	printf("policy check, host action (%s): median %.2f us, p95 %.2f us (budget 100 us); "
	       "audit commits %.1f us per decision\n",
	       what, t[N / 2], t[N * 95 / 100], commit_us / N);
}

int
main(int argc, char **argv)
{
	struct group_policy p;
	char why[256];

	ok(parse("{}", false, &p, why, sizeof(why)) == 0, "no policy: defaults");
	ok(policy_host_action(&p, false, HA_SEND_MESSAGE, false) == VERDICT_ALLOW,
	   "default: a host action on the group itself is allowed");
	ok(policy_host_action(&p, false, HA_SEND_MESSAGE, true) == VERDICT_DENY,
	   "default: on another group, denied");
	ok(policy_host_action(&p, true, HA_SEND_MESSAGE, true) == VERDICT_ASK,
	   "default: on another group, for the main group, asked");
	ok(policy_host_action(&p, true, HA_LIST_TASKS, true) == VERDICT_ALLOW,
	   "default: list_tasks only reads, main lists every group's without asking");
	ok(policy_tool_granted(&p, "bash") && policy_tool_granted(&p, "cancel_task"),
	   "default: every tool granted");
	ok(p.approver_cli && p.approver_web && p.approval_secs == POLICY_APPROVAL_SECS,
	   "default: cli and web approve, 10 min");

	ok(parse("{\"policy\": {\"tools\": [\"read\", \"send_message\"], \"host_actions\": {\"*\": "
	         "\"ask\", \"send_message\": \"allow\"}, \"other_groups\": {\"send_file\": "
	         "\"deny\"}}}",
	         true, &p, why, sizeof(why)) == 0,
	   "a policy with tools, * and named verdicts (%s)", why);
	ok(policy_host_action(&p, true, HA_SEND_MESSAGE, false) == VERDICT_ALLOW,
	   "the named verdict wins over *");
	ok(policy_host_action(&p, true, HA_SEND_FILE, false) == VERDICT_DENY,
	   "a tool not granted is denied whatever * says");
	ok(policy_host_action(&p, true, HA_SEND_MESSAGE, true) == VERDICT_ASK,
	   "other_groups not named: the main group's default");
	ok(!policy_tool_granted(&p, "bash") && policy_tool_granted(&p, "read"), "tools granted");
	char csv[128];
	policy_tools_csv(&p, csv, sizeof(csv));
	ok(strcmp(csv, "read,send_message") == 0, "the agent's --tools: %s", csv);
	ok(parse("{\"policy\": {\"tools\": []}}", false, &p, why, sizeof(why)) == 0 &&
	       (policy_tools_csv(&p, csv, sizeof(csv)), strcmp(csv, "none") == 0),
	   "no tools granted is \"none\", not everything");

	/* Channel users as approvers: "KIND:USER_ID", kept as written (Slack's and Discord's
	 * presses are compared with them whole). */
	ok(parse("{\"approvers\": [\"slack:U0123ABC\", \"discord:100000000000000001\", "
	         "\"matrix:@ana:example.org\", \"telegram:42\"]}",
	         false, &p, why, sizeof(why)) == 0 &&
	       p.n_users == 4 && strcmp(p.users[0], "slack:U0123ABC") == 0 &&
	       strcmp(p.users[1], "discord:100000000000000001") == 0 && !p.approver_cli,
	   "approvers of other channels are kept (%s)", why);
	ok(parse("{\"approvers\": [\"slack:\"]}", false, &p, why, sizeof(why)) < 0 &&
	       parse("{\"approvers\": [\"slack:U 1\"]}", false, &p, why, sizeof(why)) < 0 &&
	       parse("{\"approvers\": [\"telegram:abc\"]}", false, &p, why, sizeof(why)) < 0,
	   "an approver that is no KIND:USER_ID is refused (%s)", why);

	/* approvals_gate against a real store. */
	char dir[] = "/tmp/clawbox-policy-XXXXXX", path[128];
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/store.db", dir);
	struct daemon *d = calloc(1, sizeof(*d));
	const char *cfg =
	    "{\"data_dir\": \"/tmp\", \"groups\": [{\"id\": \"main\", \"main\": true},"
	    " {\"id\": \"fam\", \"policy\": {\"tools\": [\"send_message\"]}}]}";
	ok(config_parse(cfg, &d->cfg, why, sizeof(why)) == 0, "config (%s)", why);
	ok(store_open(path, &d->store) == 0 && approvals_init(d) == 0, "store and tables");
	d->base = event_base_new();
	uint64_t budget = 1 << 20;
	json_t *ans = NULL;
	_cleanup_json_ json_t *own =
	    json_loads("{\"tool\": \"send_message\", \"input\": {\"text\": \"hi\"}}", 0, NULL);
	_cleanup_json_ json_t *other = json_loads(
	    "{\"tool\": \"send_message\", \"input\": {\"text\": \"hi\", \"group\": \"fam\"}}", 0,
	    NULL);
	_cleanup_json_ json_t *sched = json_loads(
	    "{\"tool\": \"schedule_task\", \"input\": {\"prompt\": \"x\", \"every_seconds\": 60}}",
	    0, NULL);
	ok(approvals_gate(d, "fam", "r1", own, &budget, never, NULL, &ans) == APPROVAL_RUN,
	   "fam: send_message to itself runs");
	ok(approvals_gate(d, "fam", "r1", sched, &budget, never, NULL, &ans) == APPROVAL_REFUSED &&
	       strstr(json_get_str(ans, "error"), "does not grant schedule_task"),
	   "fam: schedule_task, not granted, is refused");
	json_decref(ans);
	ans = NULL;
	ok(approvals_gate(d, "main", "r1", other, &budget, never, (void *)1, &ans) == APPROVAL_HELD,
	   "main: send_message to fam is held");
	approvals_forget(d, (void *)1);
	ok(store_audit(d->store, "main", "x", "allow", "x") == 0, "the store still writes");
	ok(sqlite3_exec(store_db(d->store),
	                "INSERT INTO policy_rules (grp, action, destination, verdict, added, "
	                "added_by, approval) VALUES ('main', 'send_message', 'group:fam', 'allow', "
	                "0, 'cli', 1)",
	                NULL, NULL, NULL) == 0,
	   "an always rule");
	ok(approvals_init(d) == 0, "the rules are loaded at start");
	ok(approvals_gate(d, "main", "r2", other, &budget, never, NULL, &ans) == APPROVAL_RUN,
	   "main: with the rule, send_message to fam runs in another run");

	if (argc > 1 && strcmp(argv[1], "--bench") == 0) {
		bench(d, "fam", "{\"tool\": \"send_message\", \"input\": {\"text\": \"hi\"}}",
		      "allowed on itself");
		bench(d, "main",
		      "{\"tool\": \"send_message\", \"input\": {\"text\": \"hi\", \"group\": "
		      "\"fam\"}}",
		      "ask, allowed by a stored rule");
		bench(d, "fam",
		      "{\"tool\": \"schedule_task\", \"input\": {\"prompt\": \"x\", "
		      "\"every_seconds\": 60}}",
		      "refused, not granted");
	}
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
