/*
 * audit.h: one JSON object per line for every request or tunnel the proxy handled, written
 * with a single write(2) to a file opened O_APPEND (so lines from several proxies sharing a
 * file do not interleave). Ownership: audit_write() borrows everything it is given.
 */
#ifndef CLAWBOX_AUDIT_H
#define CLAWBOX_AUDIT_H

#include <stdint.h>

struct audit_entry {
	const char *sandbox;
	const char *method;
	const char *host;
	unsigned port;
	const char *address;  /* the resolved address connected to, or "" */
	const char *decision; /* "allow", "deny" or "error" */
	const char *reason;
	uint64_t bytes_in;  /* from the sandbox */
	uint64_t bytes_out; /* to the sandbox */
	double duration_ms;
};

/* fd < 0: nothing is written. Returns 0 or -errno. */
int audit_write(int fd, const struct audit_entry *e);

#endif
