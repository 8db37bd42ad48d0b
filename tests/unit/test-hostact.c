/*
 * test-hostact.c: the trusted side's handling of an agent's host-action requests, against a
 * real store and a real group folder made by the test: each action allowed on the group
 * itself; another group refused unless the asking group is main; every malformed field
 * refused with a reason; send_file kept beneath the group's folder (../, absolute paths,
 * symlinks, devices, oversized files, the run's byte budget); task ownership taken from the
 * store; and one audit row per decision.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "hostact.h"
#include "json-util.h"
#include "tap.h"

static struct daemon *d;
static long long n_asks;
static char dir[64];

/* The answer to request text from group: "ok:RESULT" or "no:ERROR", in a static buffer. */
static const char *
ask(const char *group, const char *text, uint64_t *budget)
{
	static char out[1200];
	json_error_t e;
	_cleanup_json_ json_t *req = json_loads(text, 0, &e);
	if (!req)
		return snprintf(out, sizeof(out), "bad test JSON: %s", e.text), out;
	uint64_t b = 1 << 20;
	n_asks++;
	_cleanup_json_ json_t *ans = hostact_handle(d, group, req, budget ? budget : &b);
	bool okv = json_is_true(json_object_get(ans, "ok"));
	snprintf(out, sizeof(out), "%s:%s", okv ? "ok" : "no",
	         json_get_str(ans, okv ? "result" : "error") ?: "(nothing)");
	return out;
}

static bool
starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void
put(const char *rel, const char *text)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/groups/%s", dir, rel);
	FILE *f = fopen(p, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static long long
audit_rows(void)
{
	_cleanup_json_ json_t *rows = NULL;
	if (store_audit_after(d->store, 0, &rows) < 0)
		return -1;
	return (long long)json_array_size(rows);
}

int
main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test-hostact-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	char cfg[512], why[256], p[256], db[128];
	snprintf(cfg, sizeof(cfg),
	         "{\"data_dir\": \"%s\", \"groups\": [{\"id\": \"main\", \"main\": true}, "
	         "{\"id\": \"fam\"}, {\"id\": \"work\"}]}",
	         dir);
	d = calloc(1, sizeof(*d));
	snprintf(db, sizeof(db), "%s/clawbox.db", dir);
	ok(d && config_parse(cfg, &d->cfg, why, sizeof(why)) == 0 && store_open(db, &d->store) == 0,
	   "a daemon's config and store (%s)", why);
	d->base = event_base_new();
	for (size_t i = 0; i < d->cfg.n_groups; i++)
		(void)store_group_ensure(d->store,
		                         d->cfg.groups[i].id); /* as serve does at start */
	snprintf(p, sizeof(p), "%s/groups", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/groups/fam", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/groups/fam/sub", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/groups/work", dir);
	mkdir(p, 0700);
	put("fam/notes.txt", "family notes\n");
	put("fam/sub/deep.txt", "deep\n");
	put("work/secret.txt", "work secret\n");
	char target[256];
	snprintf(target, sizeof(target), "%s/groups/work/secret.txt", dir);
	snprintf(p, sizeof(p), "%s/groups/fam/link.txt", dir);
	if (symlink(target, p) < 0)
		return 1;
	snprintf(p, sizeof(p), "%s/groups/fam/fifo", dir);
	mkfifo(p, 0600);
	snprintf(p, sizeof(p), "%s/groups/fam/big.bin", dir);
	int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, HOSTACT_FILE_MAX + 1) < 0)
		return 1;
	close(fd);
	long long rows0 = audit_rows();

	const char *r;
	r = ask("fam", "{\"tool\": \"send_message\", \"input\": {\"text\": \"hello\"}}", NULL);
	ok(starts(r, "ok:sent to fam"), "send_message to itself: %s", r);
	r = ask("fam",
	        "{\"tool\": \"send_message\", \"input\": {\"text\": \"hi\", \"group\": \"work\"}}",
	        NULL);
	ok(starts(r, "no:only the main group"), "send_message to another group, not main: %s", r);
	r = ask("main",
	        "{\"tool\": \"send_message\", \"input\": {\"text\": \"hi\", \"group\": \"work\"}}",
	        NULL);
	ok(starts(r, "ok:sent to work"), "the main group messages another: %s", r);
	r = ask("main",
	        "{\"tool\": \"send_message\", \"input\": {\"text\": \"hi\", \"group\": \"nope\"}}",
	        NULL);
	ok(starts(r, "no:there is no group"), "a group that does not exist: %s", r);
	r = ask("main", "{\"tool\": \"send_message\", \"input\": {\"text\": \"hi\", \"group\": 7}}",
	        NULL);
	ok(starts(r, "no:group must be"), "group of the wrong type: %s", r);
	r = ask("fam", "{\"tool\": \"send_message\", \"input\": {\"text\": \"\"}}", NULL);
	ok(starts(r, "no:text must be"), "empty text: %s", r);
	r = ask("fam", "{\"tool\": \"send_message\", \"input\": {\"text\": [\"x\"]}}", NULL);
	ok(starts(r, "no:text must be"), "text of the wrong type: %s", r);
	r = ask("fam", "{\"tool\": \"send_message\"}", NULL);
	ok(starts(r, "no:a request is"), "no input: %s", r);
	r = ask("fam", "{\"input\": {}}", NULL);
	ok(starts(r, "no:a request is"), "no tool: %s", r);
	r = ask("fam", "{\"tool\": \"rm_rf\", \"input\": {}}", NULL);
	ok(starts(r, "no:no host action named \"rm_rf\""), "an unknown action: %s", r);

	uint64_t budget = 1 << 20;
	r = ask("fam", "{\"tool\": \"send_file\", \"input\": {\"path\": \"notes.txt\"}}", &budget);
	ok(starts(r, "ok:sent notes.txt (13 bytes)") && budget == (1 << 20) - 13,
	   "send_file of a file in the folder, budget lowered: %s", r);
	r = ask(
	    "fam",
	    "{\"tool\": \"send_file\", \"input\": {\"path\": \"/workspace/group/sub/deep.txt\"}}",
	    NULL);
	ok(starts(r, "ok:sent deep.txt"), "send_file by its path inside the sandbox: %s", r);
	r = ask("fam", "{\"tool\": \"send_file\", \"input\": {\"path\": \"../work/secret.txt\"}}",
	        NULL);
	ok(starts(r, "no:") && strstr(r, "outside the workspace"), "../ refused: %s", r);
	r = ask("fam", "{\"tool\": \"send_file\", \"input\": {\"path\": \"/etc/passwd\"}}", NULL);
	ok(starts(r, "no:only files in the workspace"), "an absolute host path refused: %s", r);
	r = ask("fam", "{\"tool\": \"send_file\", \"input\": {\"path\": \"link.txt\"}}", NULL);
	ok(starts(r, "no:") && strstr(r, "symlink"), "a symlink out refused: %s", r);
	r = ask("fam", "{\"tool\": \"send_file\", \"input\": {\"path\": \"fifo\"}}", NULL);
	ok(starts(r, "no:") && strstr(r, "not a regular file"), "a FIFO refused, not blocking: %s",
	   r);
	r = ask("fam", "{\"tool\": \"send_file\", \"input\": {\"path\": \"big.bin\"}}", NULL);
	ok(starts(r, "no:") && strstr(r, "larger than 10 MiB"), "a file past 10 MiB refused: %s",
	   r);
	r = ask("fam", "{\"tool\": \"send_file\", \"input\": {\"path\": \"sub\"}}", NULL);
	ok(starts(r, "no:") && strstr(r, "not a regular file"), "a folder refused: %s", r);
	budget = 5;
	r = ask("fam", "{\"tool\": \"send_file\", \"input\": {\"path\": \"notes.txt\"}}", &budget);
	ok(starts(r, "no:") && strstr(r, "more than this run may still send") && budget == 5,
	   "past the run's send_file budget: refused, budget kept: %s", r);
	r = ask(
	    "fam",
	    "{\"tool\": \"send_file\", \"input\": {\"path\": \"notes.txt\", \"group\": \"work\"}}",
	    NULL);
	ok(starts(r, "no:only the main group"), "send_file to another group, not main: %s", r);

	r = ask("fam",
	        "{\"tool\": \"schedule_task\", \"input\": {\"prompt\": \"water plants\", "
	        "\"every_seconds\": 3600}}",
	        NULL);
	ok(starts(r, "ok:task "), "schedule_task hourly: %s", r);
	long long fam_task = strtoll(r + strlen("ok:task "), NULL, 10);
	r = ask("fam",
	        "{\"tool\": \"schedule_task\", \"input\": {\"prompt\": \"spam\", "
	        "\"every_seconds\": 1}}",
	        NULL);
	ok(starts(r, "no:") && strstr(r, "task_min_interval"), "every second refused: %s", r);
	r = ask("fam", "{\"tool\": \"schedule_task\", \"input\": {\"prompt\": \"x\"}}", NULL);
	ok(starts(r, "no:"), "no schedule at all refused: %s", r);
	r = ask("fam",
	        "{\"tool\": \"schedule_task\", \"input\": {\"prompt\": \"x\", \"cron\": \"61 * * * "
	        "*\"}}",
	        NULL);
	ok(starts(r, "no:"), "a bad cron refused: %s", r);
	r = ask(
	    "work",
	    "{\"tool\": \"schedule_task\", \"input\": {\"prompt\": \"work task\", \"cron\": \"0 9 "
	    "* * 1\"}}",
	    NULL);
	ok(starts(r, "ok:task "), "a weekly cron task: %s", r);
	long long work_task = strtoll(r + strlen("ok:task "), NULL, 10);

	r = ask("fam", "{\"tool\": \"list_tasks\", \"input\": {}}", NULL);
	ok(starts(r, "ok:") && strstr(r, "water plants") && !strstr(r, "work task"),
	   "list_tasks shows only the group's own: %s", r);
	r = ask("main", "{\"tool\": \"list_tasks\", \"input\": {}}", NULL);
	ok(strstr(r, "water plants") && strstr(r, "work task"), "main lists every group's");

	char req[256];
	snprintf(req, sizeof(req), "{\"tool\": \"cancel_task\", \"input\": {\"task_id\": %lld}}",
	         work_task);
	r = ask("fam", req, NULL);
	ok(starts(r, "no:") && strstr(r, "belongs to another group"),
	   "cancelling another group's task refused (ownership from the store): %s", r);
	snprintf(req, sizeof(req), "{\"tool\": \"pause_task\", \"input\": {\"task_id\": %lld}}",
	         fam_task);
	r = ask("fam", req, NULL);
	ok(starts(r, "ok:") && strstr(r, "paused"), "pausing its own: %s", r);
	snprintf(req, sizeof(req), "{\"tool\": \"resume_task\", \"input\": {\"task_id\": %lld}}",
	         fam_task);
	r = ask("fam", req, NULL);
	ok(starts(r, "ok:") && strstr(r, "active"), "resuming it: %s", r);
	snprintf(req, sizeof(req), "{\"tool\": \"cancel_task\", \"input\": {\"task_id\": %lld}}",
	         fam_task);
	r = ask("fam", req, NULL);
	ok(starts(r, "ok:") && strstr(r, "cancelled"), "cancelling it: %s", r);
	r = ask("fam", req, NULL);
	ok(starts(r, "no:") && strstr(r, "is cancelled"), "a cancelled task stays cancelled: %s",
	   r);
	r = ask("fam", "{\"tool\": \"cancel_task\", \"input\": {\"task_id\": \"1\"}}", NULL);
	ok(starts(r, "no:task_id must be"), "task_id as a string refused: %s", r);
	r = ask("fam", "{\"tool\": \"cancel_task\", \"input\": {\"task_id\": -3}}", NULL);
	ok(starts(r, "no:task_id must be"), "a negative task_id refused: %s", r);
	r = ask("fam", "{\"tool\": \"cancel_task\", \"input\": {\"task_id\": 99999}}", NULL);
	ok(starts(r, "no:there is no task"), "a task that does not exist: %s", r);
	r = ask("fam", "{\"tool\": \"install_packages\", \"input\": {\"packages\": \"apt:jq\"}}",
	        NULL);
	ok(starts(r, "no:") && strstr(r, "agent_may_install"),
	   "install_packages off by default: %s", r);

	long long rows1 = audit_rows();
	ok(rows0 >= 0 && rows1 - rows0 == n_asks, "one audit row per decision (%lld of %lld)",
	   rows1 - rows0, n_asks);

	snprintf(p, sizeof(p), "%s/files", dir);
	struct stat st;
	ok(stat(p, &st) == 0 && (st.st_mode & 0777) == 0700,
	   "sent files are kept in the daemon's own folder, 0700");
	store_close(d->store);
	tap_rmrf(dir);
	return tap_done();
}
