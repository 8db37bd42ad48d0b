/*
 * egress.h: the verdict on each request the proxy reads, from the group's egress rules and
 * what the run has read (its taint). The operator's configuration comes as one argument,
 * `--egress JSON`:
 *
 *   {"unlisted": "deny"|"ask",
 *    "rules": [{"host": "h[:port]", "verdict": "allow"|"ask"|"deny", "trusted": bool,
 *               "when_tainted": "allow"|"ask"|"deny"}]}
 *
 * A host with a rule gets the rule's verdict; a host with only an --allow entry is allow,
 * untrusted, when_tainted ask; any other host gets "unlisted" (deny by default). A run is
 * tainted once a response from an untrusted host reached it (or it started so, --tainted):
 * from then on a request that can carry data (a body, a query, or a CONNECT tunnel, which
 * cannot be read) to an untrusted host gets its rule's when_tainted verdict. The model API
 * is judged elsewhere: never a tainted sink, never a taint source.
 *
 * Pure: no I/O, no allocation; the proxy keeps the taint state and asks the daemon.
 */
#ifndef CLAWBOX_EGRESS_H
#define CLAWBOX_EGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "allowlist.h"

#define EGRESS_RULES_MAX  64
#define EGRESS_CAUSES_MAX 16  /* taint causes reported per run; past it, counted */
#define EGRESS_CAUSE_MAX  160 /* bytes of one cause */
#define EGRESS_WHY_MAX    200

enum egress_verdict { EGRESS_ALLOW = 1, EGRESS_ASK, EGRESS_DENY };

struct egress_rule {
	struct allow_rule match; /* host and port, spelled and matched as --allow's */
	enum egress_verdict verdict, when_tainted;
	bool trusted;
};

struct egress_policy {
	struct egress_rule rules[EGRESS_RULES_MAX];
	size_t n;
	enum egress_verdict unlisted;
};

/* What the run has read: whether it is tainted, and the causes (the first
 * EGRESS_CAUSES_MAX, each said once). */
struct egress_taint {
	bool tainted;
	char causes[EGRESS_CAUSES_MAX][EGRESS_CAUSE_MAX];
	size_t n_causes;
	uint64_t more; /* causes past the cap, counted */
};

struct egress_decision {
	enum egress_verdict verdict;
	bool trusted; /* responses from it do not taint */
	bool by_rule; /* an egress rule decided (not only an --allow entry or "unlisted") */
	bool listed;  /* an --allow entry or a rule names the host */
	char why[EGRESS_WHY_MAX]; /* for ask and deny: "unlisted host", "tainted: ..." */
};

void egress_policy_init(struct egress_policy *p);

/* Parses --egress JSON into p (replacing what it had). 0, or -EINVAL with *ret_why (static
 * text) naming what is wrong. */
int egress_parse(struct egress_policy *p, const char *json, const char **ret_why);

/* The verdict on a request: method as sent, host normalized (host_normalize) with its kind,
 * port; allowed: an --allow entry or a service names it; has_input: it has a body or a
 * query, or is a CONNECT tunnel. */
void egress_judge(const struct egress_policy *p, const struct egress_taint *t, const char *host,
                  enum host_kind kind, uint16_t port, bool allowed, bool has_input,
                  struct egress_decision *ret);

/* Notes cause (one line; cut to EGRESS_CAUSE_MAX). True when it is new and within the cap
 * (the caller reports it), false when it was known or is only counted. */
bool egress_taint_add(struct egress_taint *t, const char *cause);

/* Whether a rule that is not deny names exactly this address and port: the operator named it,
 * so the SSRF guard lets it pass as it does for an --allow entry (addr.h). */
bool egress_names_address(const struct egress_policy *p, const struct sockaddr *sa);

const char *egress_verdict_name(enum egress_verdict v);

#endif
