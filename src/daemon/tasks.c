/*
 * tasks.c: see tasks.h.
 */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"
#include "daemon.h"
#include "json-util.h"
#include "log.h"
#include "tasks.h"

/* "2026-11-27T09:00:00Z", "...+01:00", or without a zone in the group's time zone; seconds
 * optional, 'T' or a space. */
static int
parse_at(const char *s, const char *tz, int64_t *ret)
{
	struct tm tm = {0};
	const char *p = strptime(s, "%Y-%m-%d", &tm);
	if (!p || (*p != 'T' && *p != ' '))
		return -EINVAL;
	const char *q = strptime(p + 1, "%H:%M:%S", &tm);
	if (!q)
		q = strptime(p + 1, "%H:%M", &tm);
	if (!q)
		return -EINVAL;
	long offset = 0;
	bool zoned = false;
	if (*q == 'Z') {
		zoned = true;
		q++;
	} else if ((*q == '+' || *q == '-') && strlen(q) == 6 && q[3] == ':') {
		int h = (q[1] - '0') * 10 + (q[2] - '0'), m = (q[4] - '0') * 10 + (q[5] - '0');
		if (h > 23 || m > 59)
			return -EINVAL;
		offset = (h * 3600L + m * 60L) * (*q == '-' ? -1 : 1);
		zoned = true;
		q += 6;
	}
	if (*q)
		return -EINVAL;
	time_t t;
	if (zoned) {
		t = timegm(&tm) - offset;
	} else {
		/* Local time of the group's zone. */
		const char *old = getenv("TZ");
		char *saved = old ? strdup(old) : NULL;
		setenv("TZ", tz && *tz ? tz : "UTC", 1);
		tzset();
		tm.tm_isdst = -1;
		t = mktime(&tm);
		if (saved)
			setenv("TZ", saved, 1);
		else
			unsetenv("TZ");
		free(saved);
		tzset();
	}
	if (t < 0)
		return -EINVAL;
	*ret = (int64_t)t;
	return 0;
}

int
tasks_parse_schedule(json_t *input, const char *tz, int64_t now, char *kind, char *spec,
                     size_t spec_size, int64_t *ret_next, char *why, size_t why_size)
{
	json_t *cron = json_object_get(input, "cron"),
	       *every = json_object_get(input, "every_seconds"), *at = json_object_get(input, "at");
	if ((cron != NULL) + (every != NULL) + (at != NULL) != 1)
		return snprintf(why, why_size, "give exactly one of cron, every_seconds and at"),
		       -EINVAL;
	if (cron) {
		struct cron c;
		if (!json_is_string(cron) || json_string_length(cron) >= spec_size)
			return snprintf(why, why_size,
			                "cron must be a string such as \"0 9 * * *\""),
			       -EINVAL;
		char w[128];
		if (cron_parse(json_string_value(cron), &c, w, sizeof(w)) < 0)
			return snprintf(why, why_size, "cron: %s", w), -EINVAL;
		snprintf(kind, 8, "cron");
		snprintf(spec, spec_size, "%s", json_string_value(cron));
	} else if (every) {
		json_int_t n = json_integer_value(every);
		if (!json_is_integer(every) || n < TASK_MIN_EVERY || n > 366LL * 86400)
			return snprintf(why, why_size,
			                "every_seconds must be a whole number from %d to %lld",
			                TASK_MIN_EVERY, 366LL * 86400),
			       -EINVAL;
		snprintf(kind, 8, "every");
		snprintf(spec, spec_size, "%lld", (long long)n);
	} else {
		int64_t t;
		if (!json_is_string(at) || parse_at(json_string_value(at), tz, &t) < 0)
			return snprintf(
			           why, why_size,
			           "at must be a time such as \"2026-11-27T09:00:00Z\" (or without "
			           "a zone, in the group's)"),
			       -EINVAL;
		if (t <= now)
			return snprintf(why, why_size, "at is in the past"), -EINVAL;
		snprintf(kind, 8, "at");
		snprintf(spec, spec_size, "%lld", (long long)t);
		*ret_next = t;
		return 0;
	}
	*ret_next = tasks_next(kind, spec, tz, now);
	return *ret_next < 0 ? (snprintf(why, why_size, "the schedule never runs"), -EINVAL) : 0;
}

int64_t
tasks_next(const char *kind, const char *spec, const char *tz, int64_t after)
{
	if (strcmp(kind, "every") == 0)
		return after + strtoll(spec, NULL, 10);
	if (strcmp(kind, "cron") == 0) {
		struct cron c;
		char why[128];
		if (cron_parse(spec, &c, why, sizeof(why)) < 0)
			return -1;
		return (int64_t)cron_next(&c, (time_t)after, tz);
	}
	return -1; /* "at": once */
}

void
tasks_describe(const char *kind, const char *spec, const char *tz, char *buf, size_t size)
{
	if (strcmp(kind, "every") == 0) {
		snprintf(buf, size, "every %s s", spec);
	} else if (strcmp(kind, "cron") == 0) {
		snprintf(buf, size, "cron %s (%s)", spec, tz && *tz ? tz : "UTC");
	} else {
		time_t t = (time_t)strtoll(spec, NULL, 10);
		struct tm tm;
		char when[32];
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
		snprintf(buf, size, "once at %s", when);
	}
}

/* Paused flags by group index (the configuration does not change while the daemon runs):
 * 0 unknown, 1 running, 2 paused. The store's kv table holds them across restarts. */
static unsigned char paused_cache[CONFIG_MAX_GROUPS];

static int
group_index(struct daemon *d, const char *group)
{
	const struct group_config *g = config_group(&d->cfg, group);
	return g ? (int)(g - d->cfg.groups) : -1;
}

bool
group_paused(struct daemon *d, const char *group)
{
	int i = group_index(d, group);
	if (i < 0)
		return false;
	if (!paused_cache[i]) {
		char key[96], v[8] = "";
		snprintf(key, sizeof(key), "paused:%s", group);
		int r = store_kv_get(d->store, key, v, sizeof(v));
		if (r < 0 && r != -ENOENT)
			return false; /* not cached: asked again next time */
		paused_cache[i] = strcmp(v, "1") == 0 ? 2 : 1;
	}
	return paused_cache[i] == 2;
}

int
group_set_paused(struct daemon *d, const char *group, bool paused)
{
	int i = group_index(d, group);
	if (i < 0)
		return -ENOENT;
	char key[96];
	snprintf(key, sizeof(key), "paused:%s", group);
	int r = store_kv_set(d->store, key, paused ? "1" : "0");
	if (r == 0)
		paused_cache[i] = paused ? 2 : 1;
	return r;
}

int
tasks_agent_may_schedule(struct daemon *d, const char *own, const char *target, const char *kind,
                         const char *spec, const char *tz, char *why, size_t why_size)
{
	const struct group_config *self = config_group(&d->cfg, own);
	char sender[64] = "";
	/* Which run asks is the store's record of the group's one run, not anything the agent
	 * said: its message is the group's oldest queued one until it is answered. */
	(void)store_oldest_queued_sender(d->store, own, sender, sizeof(sender));
	if (strncmp(sender, "task:", 5) == 0 && !(self && self->tasks_may_schedule))
		return snprintf(why, why_size,
		                "a scheduled task's run may not schedule tasks (the group's "
		                "tasks_may_schedule is off)"),
		       -EPERM;
	if (strcmp(kind, "at") != 0) {
		/* The shortest gap of the schedule: every_seconds, or a cron's next two times. */
		int64_t now = daemon_now(d), a = tasks_next(kind, spec, tz, now);
		int64_t b = a > 0 ? tasks_next(kind, spec, tz, a) : -1;
		unsigned min = d->cfg.limits.task_min_interval;
		if (a > 0 && b > 0 && b - a < (int64_t)min)
			return snprintf(why, why_size,
			                "a task an agent schedules runs at most every %u s "
			                "(limits.task_min_interval; this one every %lld s)",
			                min, (long long)(b - a)),
			       -EPERM;
	}
	int64_t have = 0;
	if (store_task_count(d->store, target, &have) < 0)
		return snprintf(why, why_size, "the tasks could not be counted"), -EIO;
	if (have >= (int64_t)d->cfg.limits.tasks_per_group)
		return snprintf(
		           why, why_size,
		           "%s has %lld tasks, as many as limits.tasks_per_group allows; cancel "
		           "one first",
		           target, (long long)have),
		       -EPERM;
	return 0;
}

/* Why a due task's firing is skipped (and counted in task_runs), or NULL to queue it: its
 * group is paused; its previous firing is still queued or running (coalesced into it); its
 * group's queue is full, so that many tasks cannot fill it either. */
static const char *
skip_reason(struct daemon *d, int64_t task, const char *group)
{
	bool pending = false;
	int64_t queued = 0;
	if (group_paused(d, group))
		return "paused";
	if (store_task_pending(d->store, task, &pending) == 0 && pending)
		return "coalesced";
	if (store_queued_count(d->store, group, &queued) == 0 &&
	    queued >= (int64_t)d->cfg.limits.queue_per_group)
		return "queue_full";
	return NULL;
}

static void
log_task_fired(int64_t id, const char *group)
{
	char idtext[24];
	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
	const char *const f[] = {"group", group, "task", idtext, NULL};
	log_fields("info", f, "task fired");
}

static void
tick(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	(void)fd;
	(void)what;
	int64_t now = daemon_now(d);
	_cleanup_json_ json_t *due = NULL;
	if (store_due_tasks(d->store, now, &due) < 0) {
		log_error("scheduler: %s", store_error(d->store));
		return;
	}
	size_t i;
	json_t *t;
	json_array_foreach(due, i, t)
	{
		const char *group = json_get_str(t, "group"), *kind = json_get_str(t, "kind");
		const struct group_config *g = config_group(&d->cfg, group);
		int64_t id = (int64_t)json_integer_value(json_object_get(t, "id"));
		if (!g) { /* the group left the configuration: the task waits, paused */
			(void)store_task_update(d->store, id, "paused", 0);
			(void)store_audit(d->store, group, "task_run", "deny",
			                  "the group is no longer configured; task paused");
			continue;
		}
		/* From now, not from the missed time: a task missed ten times runs once. */
		int64_t next = tasks_next(kind, json_get_str(t, "spec"), g->timezone, now);
		const char *status = next < 0 ? "done" : "active";
		const char *skip = skip_reason(d, id, group);
		if (skip && next < 0)
			continue; /* a once-only task stays due: it runs when it can */
		if (skip) {
			if (store_task_skip(d->store, id, skip, status, next < 0 ? 0 : next) < 0)
				log_error("scheduler: task %lld: %s", (long long)id,
				          store_error(d->store));
			continue;
		}
		if (store_task_fire(d->store, id, group, json_get_str(t, "prompt"),
		                    next < 0 ? "done" : "active", next < 0 ? 0 : next, NULL) < 0)
			log_error("scheduler: task %lld: %s", (long long)id, store_error(d->store));
		else
			log_task_fired(id, group);
	}
	if (json_array_size(due))
		runner_kick(d);
}

int
scheduler_start(struct daemon *d)
{
	d->scheduler = event_new(d->base, -1, EV_PERSIST, tick, d);
	if (!d->scheduler)
		return -ENOMEM;
	struct timeval second = {.tv_sec = 1};
	event_add(d->scheduler, &second);
	tick(-1, 0, d); /* what fell due while the daemon was down */
	return 0;
}
