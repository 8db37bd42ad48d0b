/*
 * fuzz-hostact.c: the trusted side's parser of an agent's host-action requests
 * (hostact_handle) against arbitrary bytes, as the daemon reads them from a run's socket:
 * one JSON value, then the handler for the group the socket belongs to (the first byte picks
 * main or a plain group). A real store and group folder in a temporary folder made once.
 * libFuzzer entry point; tests/fuzz/replay.c replays the corpus in `make check`.
 */
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "hostact.h"
#include "json-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct daemon *d;
static char dir[] = "/tmp/fuzz-hostact-XXXXXX";

/* The folder goes when the process ends (replay or libFuzzer). */
static void
cleanup(void)
{
	if (d)
		store_close(d->store);
	pid_t p = fork();
	if (p == 0) {
		execl("/bin/rm", "rm", "-rf", "--", dir, (char *)NULL);
		_exit(127);
	}
	if (p > 0)
		(void)waitpid(p, NULL, 0);
}

static int
setup(void)
{
	char cfg[512], why[256], p[128];
	if (!mkdtemp(dir))
		return -1;
	atexit(cleanup);
	snprintf(cfg, sizeof(cfg),
	         "{\"data_dir\": \"%s\", \"groups\": [{\"id\": \"main\", \"main\": true}, "
	         "{\"id\": \"fam\"}]}",
	         dir);
	d = calloc(1, sizeof(*d));
	snprintf(p, sizeof(p), "%s/clawbox.db", dir);
	if (!d || config_parse(cfg, &d->cfg, why, sizeof(why)) < 0 || store_open(p, &d->store) < 0)
		return -1;
	d->base = event_base_new();
	for (size_t i = 0; i < d->cfg.n_groups; i++)
		(void)store_group_ensure(d->store, d->cfg.groups[i].id);
	snprintf(p, sizeof(p), "%s/groups", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/groups/fam", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/groups/fam/a.txt", dir);
	FILE *f = fopen(p, "w");
	if (f) {
		fputs("a file\n", f);
		fclose(f);
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!d && setup() < 0)
		abort();
	if (size < 1 || size > HOSTACT_REQUEST_MAX)
		return 0;
	const char *group = data[0] & 1 ? "main" : "fam";
	json_error_t e;
	/* As the daemon reads a line from the socket: one JSON object, no NULs inside. */
	_cleanup_json_ json_t *req = json_loadb((const char *)data + 1, size - 1, 0, &e);
	if (!req)
		return 0;
	uint64_t budget = 1 << 20;
	json_t *ans = hostact_handle(d, group, req, &budget);
	/* Every answer is {"ok": bool, "result"|"error": string}. */
	if (!ans || !json_is_boolean(json_object_get(ans, "ok")) ||
	    !json_is_string(json_object_get(
	        ans, json_is_true(json_object_get(ans, "ok")) ? "result" : "error")))
		abort();
	json_decref(ans);
	return 0;
}
