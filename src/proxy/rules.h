/*
 * rules.h: request rules on allow entries, and the one check every judged request goes
 * through. An allow entry may be a JSON object instead of HOST[:PORT]:
 *
 *   {"host": "api.github.com", "methods": ["GET"], "paths": ["/repos/ana/"],
 *    "max_body": "1M", "max_response": "10M"}
 *
 * "host" is spelled as in a plain entry (port and "*." wildcard included). "methods" and
 * "paths" (prefixes) limit what may be asked of that host; "max_body" caps a request's body
 * and "max_response" the response passed back. Rules can only be judged on requests the
 * proxy reads: plain http://, the proxy's own fetch of GET https://..., and (when the host
 * is intercepted) decrypted HTTPS. A CONNECT tunnel to a host whose only entries carry rules
 * is refused: its requests would be invisible.
 *
 * Paths are compared as sent, never resolved: a path with a "." or ".." segment, a doubled
 * slash, a backslash, or a percent-encoded dot, slash, backslash, percent sign, NUL or
 * overlong UTF-8 lead byte (%c0, %c1) is refused outright, since servers disagree about
 * what such a path means and the prefix test would mean nothing.
 */
#ifndef CLAWBOX_RULES_H
#define CLAWBOX_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "allowlist.h"

#define RULES_REASON_MAX 200

/* What rules_judge() decided, and the limits of the entry that allowed the request. */
struct rule_verdict {
	uint64_t max_body;             /* 0: no cap of the entry's (the proxy's own still holds) */
	uint64_t max_response;         /* 0: none */
	char reason[RULES_REASON_MAX]; /* why, when refused */
};

/* Parses a JSON allow entry (spec begins with '{') into *ret_rule, its rules stored in a.
 * 0, or -EINVAL / -E2BIG with *ret_why. Used by allowlist_add(). */
int rules_parse_entry(struct allowlist *a, const char *spec, struct allow_rule *ret_rule,
                      const char **ret_why);

/* Whether path (origin form, query included) is in the one spelling rules accept: begins
 * with '/', no dot segment, no "//", no backslash, no %2e %2f %5c (any case). 0, or
 * -EINVAL with *ret_why. The query is not examined. */
int rules_path_check(const char *path, const char **ret_why);

/* Judges one request against the allowlist and its entries' rules: method as sent
 * ("GET"), host normalized (host_normalize), path_and_query in origin form, or NULL for a
 * CONNECT tunnel (then only an entry without rules allows it). An entry without rules
 * allows any request to its host and port (its path is not examined); an entry with rules
 * allows those in the strict path spelling (rules_path_check) that match every rule it has;
 * the request is allowed when some matching entry allows it.
 * Returns 0 (allowed; ret's limits are the allowing entry's) or -EACCES (ret->reason says
 * why, in one line fit for a header). Pure: no I/O, no allocation. */
int rules_judge(const struct allowlist *a, const char *method, const char *host,
                enum host_kind kind, uint16_t port, const char *path_and_query,
                struct rule_verdict *ret);

#endif
