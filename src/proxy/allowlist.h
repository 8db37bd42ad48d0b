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
 * Entries are normalized like request hosts (hostname.h) so they compare alike. An entry may
 * also be a JSON object carrying request rules (methods, paths, body and response caps): see
 * rules.h, which judges requests against them.
 */
#ifndef CLAWBOX_ALLOWLIST_H
#define CLAWBOX_ALLOWLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h> /* INET6_ADDRSTRLEN */
#include <sys/socket.h>

#include "hostname.h"

#define ALLOWLIST_MAX 256
#define RULES_MAX       64    /* entries with request rules */
#define RULES_PATHS_MAX 256   /* path prefixes, over all entries */
#define RULES_ARENA     16384 /* their text */
#define RULES_METHODS_MAX 16

/* The rules of one JSON allow entry (rules.h). */
struct request_rules {
	char methods[RULES_METHODS_MAX][16]; /* none: any method */
	size_t n_methods;
	size_t first_path, n_paths; /* into allowlist.paths; none: any path */
	uint64_t max_body, max_response; /* 0: no cap of its own */
};

struct allow_rule {
	char host[HOST_MAX]; /* for a wildcard: the suffix without "*." */
	enum host_kind kind;
	bool wildcard;
	uint16_t port; /* 0: 80 and 443 */
	uint16_t rules; /* 0: none (anything goes); else 1 + index into allowlist.req_rules */
};

struct allowlist {
	struct allow_rule rules[ALLOWLIST_MAX];
	size_t n;
	struct request_rules req_rules[RULES_MAX];
	size_t n_req_rules;
	size_t paths[RULES_PATHS_MAX]; /* offsets into arena, NUL-terminated */
	size_t n_paths;
	char arena[RULES_ARENA];
	size_t arena_used;
};

/* Parses and appends one entry. -EINVAL (with *ret_why) on a bad one, -E2BIG when full. */
int allowlist_add(struct allowlist *a, const char *spec, const char **ret_why);

/* Parses a plain HOST[:PORT] entry (no rules) into *ret_rule. -EINVAL with *ret_why. */
int allowlist_parse_host(const char *spec, struct allow_rule *ret_rule, const char **ret_why);

/* Whether a normalized host (host_normalize) and port have an entry at all (its rules, if
 * any, are rules_judge()'s business). */
bool allowlist_match(const struct allowlist *a, const char *host, enum host_kind kind,
                     uint16_t port);

/* Whether this one entry covers host and port. */
bool allow_rule_matches(const struct allow_rule *r, const char *host, enum host_kind kind,
                        uint16_t port);

/* Whether an entry names exactly this address and port (see the SSRF guard, addr.h). */
bool allowlist_names_address(const struct allowlist *a, const struct sockaddr *sa);
/* An IPv4 or IPv6 address as the text, kind and port the rules match; false for another
 * family. text has room for INET6_ADDRSTRLEN. */
bool sockaddr_host(const struct sockaddr *sa, char text[INET6_ADDRSTRLEN], enum host_kind *ret_kind,
                   uint16_t *ret_port);

#endif
