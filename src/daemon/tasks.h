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

#endif
