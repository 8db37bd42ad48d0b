/*
 * cron.h: five-field cron expressions (minute hour day-of-month month day-of-week) with
 * numbers, '*', ranges "a-b", lists "a,b", steps "*" "/n" and "a-b/n", month and day names
 * (jan, mon), 7 as Sunday; when both day fields are restricted either may match (as Vixie
 * cron). Evaluated in a time zone (the group's), so "0 9 * * *" is nine o'clock there, across
 * daylight-saving changes.
 */
#ifndef CLAWBOX_CRON_H
#define CLAWBOX_CRON_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct cron {
	uint64_t minute; /* bit n: minute n */
	uint32_t hour;
	uint32_t mday;  /* bits 1..31 */
	uint16_t month; /* bits 1..12 */
	uint8_t wday;   /* bits 0..6, Sunday 0 */
	bool mday_any, wday_any;
};

/* 0, or -EINVAL with a reason in why. */
int cron_parse(const char *expr, struct cron *ret, char *why, size_t why_size);

/* The first time strictly after `after` that matches, in time zone tz ("" or NULL: UTC), or
 * -1 if none within five years. */
time_t cron_next(const struct cron *c, time_t after, const char *tz);

/* True if tz names a zone this system knows (a file under /usr/share/zoneinfo). */
bool cron_tz_valid(const char *tz);

#endif
