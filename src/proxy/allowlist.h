/*
 * allowlist.h: where a sandbox may connect, from `--allow HOST[:PORT]` entries.
 *
 *   example.org          example.org on ports 443 and 80
 *   example.org:8443     that port only
 *   *.example.org        any name below example.org (not example.org itself): the wildcard
 *                        stands for whole labels only, so it never matches badexample.org
 *   203.0.113.5:80, [2001:db8::1]:443
 *                        an address; naming an address is also the only way to let the
 *                        SSRF guard pass a loopback, private or link-local one
 *
 * Entries are normalized like request hosts (hostname.h) so they compare alike.
 */
#ifndef CLAWBOX_ALLOWLIST_H
#define CLAWBOX_ALLOWLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "hostname.h"

#define ALLOWLIST_MAX 256

struct allow_rule {
	char host[HOST_MAX]; /* for a wildcard: the suffix without "*." */
	enum host_kind kind;
	bool wildcard;
	uint16_t port; /* 0: 80 and 443 */
};

struct allowlist {
	struct allow_rule rules[ALLOWLIST_MAX];
	size_t n;
};

/* Parses and appends one entry. -EINVAL (with *ret_why) on a bad one, -E2BIG when full. */
int allowlist_add(struct allowlist *a, const char *spec, const char **ret_why);

/* Whether a normalized host (host_normalize) and port are allowed. */
bool allowlist_match(const struct allowlist *a, const char *host, enum host_kind kind,
                     uint16_t port);

/* Whether an entry names exactly this address and port (see the SSRF guard, addr.h). */
bool allowlist_names_address(const struct allowlist *a, const struct sockaddr *sa);

#endif
