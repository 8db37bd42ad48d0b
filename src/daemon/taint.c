/*
 * taint.c: see taint.h. A stand-in (egress's): the last runs' taint in a small table, each
 * cause audited once. The taint helper's file replaces it.
 */
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "macro.h"
#include "taint.h"

#define TAINT_RUNS 64

static struct {
	char run[40];
	unsigned causes;
} runs[TAINT_RUNS];
static size_t next_slot;

void
taint_note(struct daemon *d, const char *group, const char *run_id, const char *kind,
           const char *cause)
{
	size_t i;
	for (i = 0; i < TAINT_RUNS; i++)
		if (strcmp(runs[i].run, run_id) == 0)
			break;
	if (i == TAINT_RUNS) {
		i = next_slot++ % TAINT_RUNS;
		snprintf(runs[i].run, sizeof(runs[i].run), "%s", run_id);
		runs[i].causes = 0;
	}
	if (runs[i].causes++ >= 16)
		return; /* bounded: the proxy reports each cause once, and at most 16 */
	char text[300];
	snprintf(text, sizeof(text), "run %.32s tainted (%s): %.200s", run_id, kind, cause);
	(void)store_audit(d->store, group, "taint", "taint", text);
}

bool
taint_run_tainted(struct daemon *d, const char *run_id)
{
	(void)d;
	for (size_t i = 0; i < TAINT_RUNS; i++)
		if (runs[i].run[0] && strcmp(runs[i].run, run_id) == 0)
			return true;
	return false;
}
