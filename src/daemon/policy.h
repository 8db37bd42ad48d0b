/*
 * policy.h: what a group's agent may do across systems, from host state only: the group's
 * "policy" and "approvers" keys in the operator's configuration, and the "always" rules an
 * approver added (kept in the store, listed and removed with `clawbox policy`). Nothing the
 * agent writes is read here.
 *
 * A verdict is allow, ask (hold the call for an approver, approvals.h) or deny. The defaults
 * are one table (policy.c): a host action on the group itself is allowed; on another group it
 * is denied, or asked for the main group; egress to hosts not listed is denied unless the
 * group opts into "unlisted_hosts": "ask".
 */
#ifndef CLAWBOX_POLICY_H
#define CLAWBOX_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum policy_verdict { VERDICT_UNSET = 0, VERDICT_ALLOW, VERDICT_ASK, VERDICT_DENY };

/* The host actions, in the order of the table in policy.c. */
enum host_action {
	HA_SEND_MESSAGE,
	HA_SEND_FILE,
	HA_SCHEDULE_TASK,
	HA_LIST_TASKS,
	HA_PAUSE_TASK,
	HA_RESUME_TASK,
	HA_CANCEL_TASK,
	HA_COUNT
};

#define POLICY_MAX_APPROVERS   16 /* channel users ("KIND:ID") who may answer */
#define POLICY_APPROVER_MAX    128
#define POLICY_APPROVAL_SECS   600 /* a request's life when the group does not say */
#define POLICY_PENDING_GROUP   16  /* pending approvals of one group at once */
#define POLICY_PENDING_RUN     4   /* of one run */

#define POLICY_EGRESS_MAX      32  /* a group's "egress" rules */
#define POLICY_EGRESS_HOST_MAX 264 /* "host[:port]" as written */

/* One "egress" rule, as configured (the proxy normalizes and matches the host). */
struct egress_rule_config {
	char host[POLICY_EGRESS_HOST_MAX];
	enum policy_verdict verdict, when_tainted; /* when_tainted UNSET: the default, ask */
	bool trusted;
};

struct group_policy {
	bool tools_set;          /* "tools" given: only those are granted */
	uint32_t tools;          /* bit i: policy_tool_names[i] granted */
	enum policy_verdict self[HA_COUNT];   /* on the group itself, as configured (UNSET: default) */
	enum policy_verdict others[HA_COUNT]; /* on another group */
	/* "when_tainted": the verdict on a host action of a tainted run (taint.h), on itself
	 * and on other groups alike; the stricter of it and the verdict above applies. */
	enum policy_verdict tainted[HA_COUNT];
	enum policy_verdict unlisted_hosts;
	/* "approvers": who may answer its approval requests. Default: ["cli", "web"]. */
	bool approvers_set;
	bool approver_cli; /* the host CLI: the API token's holder, not from a browser */
	bool approver_web; /* the web app: the API token's holder, from its page (api.c) */
	/* Channel users, "KIND:ID" as the channel names its senders: a button or a reply from
	 * that user in a chat of that kind (channels-io.c checks the kind). */
	char users[POLICY_MAX_APPROVERS][POLICY_APPROVER_MAX];
	size_t n_users;
	unsigned approval_secs; /* "approval_timeout": seconds; expiry is a denial */
	struct egress_rule_config egress[POLICY_EGRESS_MAX]; /* the group's "egress" */
	size_t n_egress;
};

extern const char *const policy_tool_names[];
extern const size_t policy_n_tools;
extern const char *const host_action_names[HA_COUNT];

const char *verdict_name(enum policy_verdict v);
/* The action's index, or -1. */
int host_action_find(const char *name);

/* Parses a group's "policy" (NULL: none) and "approvers" (NULL: none) into out; where is
 * "groups[N]". 0, or -EINVAL with one line naming the key in why. main says whether the
 * group is the main one: a policy that lets another group act on others contradicts it. */
int policy_parse(json_t *policy, json_t *approvers, const char *where, bool main,
                 struct group_policy *out, char *why, size_t size);

/* Parses a group's "egress" rules (NULL: none) into out (after policy_parse), checking them
 * against each other, against the group's "allow" entries (allow, n_allow: as configured,
 * strings or JSON objects with a "host") and its approvers. 0, or -EINVAL with one line naming
 * the key in why. */
int policy_parse_egress(json_t *egress, char *const *allow, size_t n_allow, const char *where,
                        struct group_policy *out, char *why, size_t size);

/* The proxy's --egress argument for the group (egress.h in src/proxy): a new string the caller
 * frees, or NULL when the group has no rule and unlisted hosts are denied (the proxy's
 * defaults) or out of memory. */
char *policy_egress_arg(const struct group_policy *p);

/* The verdict for action on the group itself (other == false) or on another group, with the
 * defaults applied. */
enum policy_verdict policy_host_action(const struct group_policy *p, bool main, enum host_action a,
                                bool other);
/* The verdict for action in a run that is tainted: the stricter of policy_host_action() and
 * the group's "when_tainted" (default: ask for send_message to another group, send_file and
 * schedule_task; the others unchanged). *ret_by_taint (may be NULL) says whether the taint
 * decides it: its verdict asks or denies, and the policy's is not stricter. */
enum policy_verdict policy_host_action_tainted(const struct group_policy *p, bool main,
                                               enum host_action a, bool other, bool *ret_by_taint);
/* Whether the tool (an agent tool's name) is granted. */
bool policy_tool_granted(const struct group_policy *p, const char *tool);
/* The granted tools as "a,b,c" for the agent's --tools, or "" when all are. */
void policy_tools_csv(const struct group_policy *p, char *buf, size_t size);

/* The effective policy as JSON (a new reference): tools, host_actions {ACTION: {"self",
 * "other_groups"}}, unlisted_hosts, approvers, approval_timeout, each verdict with whether it
 * is the default; egress: [{host, verdict, trusted, when_tainted, from: "egress"|"allow"}], the
 * rules, then the allow entries (allow, n_allow) as the proxy reads them; when_tainted
 * {ACTION: {"self", "other_groups", "default"}}: the verdicts that apply to a tainted run. */
json_t *policy_json(const struct group_policy *p, bool main, char *const *allow, size_t n_allow);

#endif
