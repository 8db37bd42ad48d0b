/*
 * hostact.h: host actions, the agent's requests for anything that crosses its sandbox's
 * boundary: send_message, send_file, schedule_task, list_tasks, pause_task, resume_task,
 * cancel_task, install_packages (envs.c). They arrive on the socket of one run, so the
 * daemon knows which group asks: the group it started that run for. Nothing in a request says who is asking. Each decision
 * is recorded in the audit, allowed or not.
 *
 * Rules: a group acts on itself; only the main group may act on another group (message it,
 * schedule for it, manage its tasks). send_file reads a regular file beneath the group's own
 * folder only (openat2 RESOLVE_BENEATH | NO_SYMLINKS | NO_MAGICLINKS | NO_XDEV).
 */
#ifndef CLAWBOX_HOSTACT_H
#define CLAWBOX_HOSTACT_H

#include <jansson.h>

#define HOSTACT_REQUEST_MAX       (64 * 1024)
#define HOSTACT_FILE_MAX          (10u << 20)
#define HOSTACT_PER_RUN_MAX       200         /* requests one run may make */
#define HOSTACT_FILES_PER_RUN_MAX (32u << 20) /* send_file bytes one run may keep on the host */

struct daemon;

/* {"tool": NAME, "input": {...}} from the run of `group` -> {"ok": true, "result": TEXT} or
 * {"ok": false, "error": TEXT} (a new reference). */
/* file_budget: send_file bytes the run may still keep; lowered by what is sent. */
json_t *hostact_handle(struct daemon *d, const char *group, json_t *request, uint64_t *file_budget);

#endif
