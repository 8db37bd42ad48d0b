/*
 * audit.c: see audit.h. jansson builds and escapes the line; we only add the time.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "fd-util.h"

int
audit_write(int fd, const struct audit_entry *e)
{
	if (fd < 0)
		return 0;

	struct timespec now;
	struct tm tm;
	char when[40];
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         now.tv_nsec / 1000000);

	/* json_pack's "s" needs non-NULL strings; "s?" maps NULL to null. */
	json_t *o = json_pack("{s:s, s:s?, s:s?, s:s?, s:i, s:s?, s:s?, s:s?, s:I, s:I, s:f}",
	                      "time", when, "sandbox", e->sandbox, "method", e->method, "host",
	                      e->host, "port", (int)e->port, "address", e->address, "decision",
	                      e->decision, "reason", e->reason, "bytes_in", (json_int_t)e->bytes_in,
	                      "bytes_out", (json_int_t)e->bytes_out, "duration_ms", e->duration_ms);
	if (!o)
		return -ENOMEM;
	char *line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(6));
	json_decref(o);
	if (!line)
		return -ENOMEM;
	size_t len = strlen(line);
	char *withnl = realloc(line, len + 2);
	if (!withnl) {
		free(line);
		return -ENOMEM;
	}
	withnl[len] = '\n';
	withnl[len + 1] = '\0';
	int r = write_all(fd, withnl, len + 1);
	free(withnl);
	return r;
}
