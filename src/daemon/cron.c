/*
 * cron.c: see cron.h. The next time is found by walking days, then hours, then minutes, each
 * step skipping what cannot match, so even a rare expression ("0 0 29 2 *") costs a few
 * thousand steps, not a minute-by-minute scan of years. Local time comes from the C library
 * (TZ set for the call, then restored): the daemon has one thread, so that is safe.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cron.h"

/* NULL-terminated: the day-of-week field's range (0-7, 7 = Sunday again) is longer than its
 * names, so the names end the search, not the range. */
static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
                                          "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static int
number(const char **p, int lo, int hi, const char *const *names, int name_base, int *ret)
{
	if (names && ((**p | 0x20) >= 'a' && (**p | 0x20) <= 'z')) {
		for (int i = 0; i <= hi - name_base && names[i]; i++) {
			if (strncasecmp(*p, names[i], 3) == 0) {
				*p += 3;
				*ret = i + name_base;
				return 0;
			}
		}
		return -EINVAL;
	}
	if (**p < '0' || **p > '9')
		return -EINVAL;
	int v = 0;
	while (**p >= '0' && **p <= '9') {
		v = v * 10 + (**p - '0');
		if (v > 1000)
			return -EINVAL;
		(*p)++;
	}
	if (v < lo || v > hi)
		return -ERANGE;
	*ret = v;
	return 0;
}

/* One field into a bit set of lo..hi. */
static int
field(const char *s, size_t len, int lo, int hi, const char *const *names, int name_base,
      uint64_t *ret, bool *ret_any)
{
	char buf[128];
	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	uint64_t bits = 0;
	*ret_any = strcmp(buf, "*") == 0;
	for (char *item = buf; item;) {
		char *comma = strchr(item, ',');
		if (comma)
			*comma = '\0';
		const char *p = item;
		int a, b, step = 1;
		if (*p == '*') {
			a = lo;
			b = hi;
			p++;
		} else {
			if (number(&p, lo, hi, names, name_base, &a) < 0)
				return -EINVAL;
			b = a;
			if (*p == '-') {
				p++;
				if (number(&p, lo, hi, names, name_base, &b) < 0 || b < a)
					return -EINVAL;
			}
		}
		if (*p == '/') {
			p++;
			if (number(&p, 1, hi, NULL, 0, &step) < 0)
				return -EINVAL;
			if (b == a && item[0] != '*')
				b = hi; /* "5/15": from 5 on */
		}
		if (*p)
			return -EINVAL;
		for (int v = a; v <= b; v += step)
			bits |= 1ULL << v;
		item = comma ? comma + 1 : NULL;
	}
	*ret = bits;
	return 0;
}

int
cron_parse(const char *expr, struct cron *c, char *why, size_t why_size)
{
	static const struct {
		const char *name;
		int lo, hi;
		const char *const *names;
		int name_base;
	} f[5] = {
	    {"minute", 0, 59, NULL, 0},          {"hour", 0, 23, NULL, 0},
	    {"day of month", 1, 31, NULL, 0},    {"month", 1, 12, month_names, 1},
	    {"day of week", 0, 7, day_names, 0},
	};
	memset(c, 0, sizeof(*c));
	uint64_t bits[5];
	bool any[5];
	const char *p = expr;
	for (int i = 0; i < 5; i++) {
		while (*p == ' ' || *p == '\t')
			p++;
		size_t len = strcspn(p, " \t");
		if (len == 0)
			return snprintf(why, why_size,
			                "expected five fields (minute hour day month weekday)"),
			       -EINVAL;
		if (field(p, len, f[i].lo, f[i].hi, f[i].names, f[i].name_base, &bits[i], &any[i]) <
		    0)
			return snprintf(why, why_size, "the %s field \"%.*s\" is not valid",
			                f[i].name, (int)(len < 32 ? len : 32), p),
			       -EINVAL;
		p += len;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p)
		return snprintf(why, why_size, "more than five fields"), -EINVAL;
	c->minute = bits[0];
	c->hour = (uint32_t)bits[1];
	c->mday = (uint32_t)bits[2];
	c->month = (uint16_t)bits[3];
	c->wday = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f); /* 7 is Sunday too */
	c->mday_any = any[2];
	c->wday_any = any[4];
	return 0;
}

static bool
day_matches(const struct cron *c, const struct tm *tm)
{
	if (!(c->month & (1u << (tm->tm_mon + 1))))
		return false;
	bool md = c->mday & (1u << tm->tm_mday), wd = c->wday & (1u << tm->tm_wday);
	if (c->mday_any || c->wday_any)
		return md && wd;
	return md || wd;
}

/* Sets TZ for the duration of a computation. */
struct tz_saved {
	char *old;
	bool had;
};

static void
tz_enter(struct tz_saved *s, const char *tz)
{
	const char *old = getenv("TZ");
	s->had = old != NULL;
	s->old = old ? strdup(old) : NULL;
	setenv("TZ", tz && *tz ? tz : "UTC", 1);
	tzset();
}

static void
tz_leave(struct tz_saved *s)
{
	if (s->had && s->old)
		setenv("TZ", s->old, 1);
	else
		unsetenv("TZ");
	free(s->old);
	tzset();
}

time_t
cron_next(const struct cron *c, time_t after, const char *tz)
{
	struct tz_saved saved;
	tz_enter(&saved, tz);
	time_t t = after - after % 60 + 60; /* the next whole minute */
	time_t result = -1;
	for (int steps = 0; steps < 5 * 366 * 24 * 2; steps++) {
		struct tm tm;
		localtime_r(&t, &tm);
		if (!day_matches(c, &tm)) {
			/* To the next local midnight. */
			tm.tm_mday++;
			tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
			tm.tm_isdst = -1;
			t = mktime(&tm);
			continue;
		}
		if (!(c->hour & (1u << tm.tm_hour))) {
			tm.tm_hour++;
			tm.tm_min = tm.tm_sec = 0;
			tm.tm_isdst = -1;
			time_t next = mktime(&tm);
			t = next > t ? next : t + 3600; /* a repeated hour (DST end) moves on too */
			continue;
		}
		int m = tm.tm_min;
		while (m < 60 && !(c->minute & (1ULL << m)))
			m++;
		if (m == 60) {
			t += (60 - tm.tm_min) * 60 - tm.tm_sec;
			continue;
		}
		result = t + (m - tm.tm_min) * 60 - tm.tm_sec;
		break;
	}
	tz_leave(&saved);
	return result;
}

bool
cron_tz_valid(const char *tz)
{
	if (!tz || !*tz || strcmp(tz, "UTC") == 0)
		return true;
	if (tz[0] == '/' || strstr(tz, "..") || strlen(tz) > 64)
		return false;
	char path[128];
	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", tz);
	return access(path, R_OK) == 0;
}
