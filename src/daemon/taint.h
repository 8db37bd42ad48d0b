/*
 * taint.h: what a run has read that it should not be trusted after (CONTRACTS 2; the taint
 * helper owns this file). This is egress's one-function stand-in until that lands: it records
 * the causes the proxy reports so that the audit says them.
 */
#ifndef CLAWBOX_TAINT_H
#define CLAWBOX_TAINT_H

#include <stdbool.h>

struct daemon;

/* Marks run run_id of group tainted by cause (kind: "egress", "sender", "mount",
 * "memory"); audited once per cause (kind "taint"); bounded per run. */
void taint_note(struct daemon *d, const char *group, const char *run_id, const char *kind,
                const char *cause);
bool taint_run_tainted(struct daemon *d, const char *run_id);

#endif
