/*
 * tasks.h: scheduled tasks. A task is a prompt for a group and a schedule: a cron expression
 * (in the group's time zone), a fixed interval, or once at a time. The scheduler checks once a
 * second; a due task's prompt is queued as a message of its group (so it runs like any other,
 * one at a time per group, and its answer goes to the group's chat), and its next run is
 * computed from now: runs missed while the daemon was down happen once, not once each.
 */
#ifndef CLAWBOX_TASKS_H
#define CLAWBOX_TASKS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define TASK_PROMPT_MAX (16 * 1024)
#define TASK_MIN_EVERY  1 /* seconds */

struct daemon;

/* From {"cron": S} | {"every_seconds": N} | {"at": ISO-8601} (exactly one) in input: the kind,
 * spec and first run (unix time) for a group in time zone tz. 0, or -EINVAL with why. */
int tasks_parse_schedule(json_t *input, const char *tz, int64_t now, char *kind, char *spec,
                         size_t spec_size, int64_t *ret_next, char *why, size_t why_size);

/* The run after `after`, or -1 when there is none (an "at" task that ran). */
int64_t tasks_next(const char *kind, const char *spec, const char *tz, int64_t after);

/* A task's schedule in words, for listings: "cron 0 9 * * * (Europe/Berlin)". */
void tasks_describe(const char *kind, const char *spec, const char *tz, char *buf, size_t size);

/* Starts the once-a-second check; fires what is due right away (missed runs). */
int scheduler_start(struct daemon *d);

/* A paused group (`clawbox pause GROUP`, stored): its messages wait in the queue, nothing of
 * it runs, and its tasks' firings are skipped and counted ("paused" in task_runs). */
bool group_paused(struct daemon *d, const char *group);
/* 0 or -errno. */
int group_set_paused(struct daemon *d, const char *group, bool paused);

/* Whether the agent of group own may schedule a task for target (t) with this schedule:
 * at least limits.task_min_interval between firings, at most limits.tasks_per_group tasks,
 * and none from a task's own run unless the group has tasks_may_schedule. 0, or -EPERM with
 * why. */
int tasks_agent_may_schedule(struct daemon *d, const char *own, const char *target,
                             const char *kind, const char *spec, const char *tz, char *why,
                             size_t why_size);

#endif
