/*
 * policy.c: see policy.h. The defaults live in one table below; the parser only records what
 * the operator wrote, and policy_host_action() applies the table to what was not written, so
 * `clawbox policy` can say which verdicts are defaults.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "macro.h"
#include "policy.h"

const char *const policy_tool_names[] = {
    "bash",       "read",       "write",        "edit",        "glob",
    "grep",       "web_fetch",  "send_message", "send_file",   "schedule_task",
    "list_tasks", "pause_task", "resume_task",  "cancel_task",
};
const size_t policy_n_tools = ARRAY_SIZE(policy_tool_names);
_Static_assert(ARRAY_SIZE(policy_tool_names) <= 32, "policy.tools is a 32-bit mask");

const char *const host_action_names[HA_COUNT] = {
    [HA_SEND_MESSAGE] = "send_message",   [HA_SEND_FILE] = "send_file",
    [HA_SCHEDULE_TASK] = "schedule_task", [HA_LIST_TASKS] = "list_tasks",
    [HA_PAUSE_TASK] = "pause_task",       [HA_RESUME_TASK] = "resume_task",
    [HA_CANCEL_TASK] = "cancel_task",
};

/* The defaults a careful user would choose. list_tasks reads only: for the main group it
 * lists every group's tasks without asking. */
static const struct {
	enum policy_verdict self, other_main, other;
} defaults[HA_COUNT] = {
    [HA_SEND_MESSAGE] = {VERDICT_ALLOW, VERDICT_ASK, VERDICT_DENY},
    [HA_SEND_FILE] = {VERDICT_ALLOW, VERDICT_ASK, VERDICT_DENY},
    [HA_SCHEDULE_TASK] = {VERDICT_ALLOW, VERDICT_ASK, VERDICT_DENY},
    [HA_LIST_TASKS] = {VERDICT_ALLOW, VERDICT_ALLOW, VERDICT_DENY},
    [HA_PAUSE_TASK] = {VERDICT_ALLOW, VERDICT_ASK, VERDICT_DENY},
    [HA_RESUME_TASK] = {VERDICT_ALLOW, VERDICT_ASK, VERDICT_DENY},
    [HA_CANCEL_TASK] = {VERDICT_ALLOW, VERDICT_ASK, VERDICT_DENY},
};
#define DEFAULT_UNLISTED_HOSTS VERDICT_DENY

/* When the run is tainted (taint.h): what reaches other people asks first. A message to its
 * own chat is the answer the user waits for; to another group, a file, or a task that acts
 * later, it is how an injected instruction carries the group's data out. */
static const struct {
	enum policy_verdict self, other;
} tainted_defaults[HA_COUNT] = {
    [HA_SEND_MESSAGE] = {VERDICT_ALLOW, VERDICT_ASK},
    [HA_SEND_FILE] = {VERDICT_ASK, VERDICT_ASK},
    [HA_SCHEDULE_TASK] = {VERDICT_ASK, VERDICT_ASK},
    [HA_LIST_TASKS] = {VERDICT_ALLOW, VERDICT_ALLOW},
    [HA_PAUSE_TASK] = {VERDICT_ALLOW, VERDICT_ALLOW},
    [HA_RESUME_TASK] = {VERDICT_ALLOW, VERDICT_ALLOW},
    [HA_CANCEL_TASK] = {VERDICT_ALLOW, VERDICT_ALLOW},
};

const char *
verdict_name(enum policy_verdict v)
{
	switch (v) {
	case VERDICT_ALLOW:
		return "allow";
	case VERDICT_ASK:
		return "ask";
	case VERDICT_DENY:
		return "deny";
	default:
		return "unset";
	}
}

static enum policy_verdict
verdict_parse(json_t *v)
{
	const char *s = json_is_string(v) ? json_string_value(v) : "";
	return strcmp(s, "allow") == 0  ? VERDICT_ALLOW
	       : strcmp(s, "ask") == 0  ? VERDICT_ASK
	       : strcmp(s, "deny") == 0 ? VERDICT_DENY
	                                : VERDICT_UNSET;
}

int
host_action_find(const char *name)
{
	for (int i = 0; name && i < HA_COUNT; i++)
		if (strcmp(host_action_names[i], name) == 0)
			return i;
	return -1;
}

static int
tool_find(const char *name)
{
	for (size_t i = 0; i < policy_n_tools; i++)
		if (strcmp(policy_tool_names[i], name) == 0)
			return (int)i;
	return -1;
}

#define BAD(...) (snprintf(why, size, __VA_ARGS__), -EINVAL)

/* {ACTION or "*": VERDICT}: "*" first, then the named ones over it. */
static int
parse_verdicts(json_t *o, const char *where, const char *key, enum policy_verdict out[HA_COUNT],
               uint32_t *named, char *why, size_t size)
{
	if (!o)
		return 0;
	if (!json_is_object(o))
		return BAD("%s.policy.%s: expected {ACTION: \"allow\"|\"ask\"|\"deny\"}", where,
		           key);
	json_t *star = json_object_get(o, "*");
	if (star) {
		enum policy_verdict v = verdict_parse(star);
		if (!v)
			return BAD("%s.policy.%s.*: expected \"allow\", \"ask\" or \"deny\"", where,
			           key);
		for (int i = 0; i < HA_COUNT; i++)
			out[i] = v;
	}
	const char *name;
	json_t *val;
	json_object_foreach(o, name, val)
	{
		if (strcmp(name, "*") == 0)
			continue;
		int a = host_action_find(name);
		if (a < 0)
			return BAD(
			    "%s.policy.%s.%.64s: not a host action (send_message, send_file, "
			    "schedule_task, list_tasks, pause_task, resume_task, cancel_task)",
			    where, key, name);
		*named |= 1u << a;
		if (!(out[a] = verdict_parse(val)))
			return BAD("%s.policy.%s.%s: expected \"allow\", \"ask\" or \"deny\"",
			           where, key, name);
	}
	return 0;
}

/* The channel kinds whose users can approve: the service authenticates who pressed a button
 * or wrote an answer. Not email (a From header proves nothing) nor webhooks (whoever holds
 * the hook's secret). */
static bool
channel_kind_approves(const char *kind, size_t len)
{
	static const char *const kinds[] = {"telegram", "slack", "discord", "matrix", "xmpp"};
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
		if (strlen(kinds[i]) == len && strncmp(kind, kinds[i], len) == 0)
			return true;
	return false;
}

int
policy_parse(json_t *policy, json_t *approvers, const char *where, bool main,
             struct group_policy *out, char *why, size_t size)
{
	static const char *const keys[] = {"tools",
	                                   "host_actions",
	                                   "other_groups",
	                                   "unlisted_hosts",
	                                   "approval_timeout",
	                                   "when_tainted",
	                                   NULL};
	memset(out, 0, sizeof(*out));
	out->approval_secs = POLICY_APPROVAL_SECS;
	out->approver_cli = true;
	out->approver_web = true;
	if (policy && !json_is_object(policy))
		return BAD("%s.policy: expected an object", where);
	const char *name;
	json_t *val;
	json_object_foreach(policy, name, val)
	{
		bool known = false;
		for (size_t k = 0; keys[k]; k++)
			known = known || strcmp(keys[k], name) == 0;
		if (!known)
			return BAD("%s.policy.%.64s: unknown key", where, name);
	}
	json_t *tools = json_object_get(policy, "tools");
	if (tools) {
		if (!json_is_array(tools))
			return BAD("%s.policy.tools: expected a list of tool names", where);
		out->tools_set = true;
		size_t i;
		json_t *t;
		json_array_foreach(tools, i, t)
		{
			int k = json_is_string(t) ? tool_find(json_string_value(t)) : -1;
			if (k < 0)
				return BAD(
				    "%s.policy.tools[%zu]: not a tool (bash, read, write, edit, "
				    "glob, grep, web_fetch or a host action)",
				    where, i);
			out->tools |= 1u << k;
		}
	}
	int r;
	uint32_t named[3] = {0, 0, 0}; /* actions named, not only covered by "*" */
	if ((r = parse_verdicts(json_object_get(policy, "host_actions"), where, "host_actions",
	                        out->self, &named[0], why, size)) < 0 ||
	    (r = parse_verdicts(json_object_get(policy, "other_groups"), where, "other_groups",
	                        out->others, &named[1], why, size)) < 0 ||
	    (r = parse_verdicts(json_object_get(policy, "when_tainted"), where, "when_tainted",
	                        out->tainted, &named[2], why, size)) < 0)
		return r;
	json_t *uh = json_object_get(policy, "unlisted_hosts");
	if (uh) {
		out->unlisted_hosts = verdict_parse(uh);
		if (out->unlisted_hosts != VERDICT_DENY && out->unlisted_hosts != VERDICT_ASK)
			/* "allow" would open every host on the Internet: list them instead. */
			return BAD(
			    "%s.policy.unlisted_hosts: expected \"deny\" or \"ask\" (list the "
			    "hosts to allow in \"allow\" or \"egress\")",
			    where);
	}
	json_t *at = json_object_get(policy, "approval_timeout");
	if (at) {
		if (!json_is_integer(at) || json_integer_value(at) < 1 ||
		    json_integer_value(at) > 7 * 86400)
			return BAD("%s.policy.approval_timeout: expected seconds, 1 to 604800",
			           where);
		out->approval_secs = (unsigned)json_integer_value(at);
	}
	if (approvers) {
		if (!json_is_array(approvers))
			return BAD("%s.approvers: expected a list such as [\"cli\", \"web\", "
			           "\"telegram:42\"]",
			           where);
		out->approvers_set = true;
		out->approver_cli = false;
		out->approver_web = false;
		size_t i;
		json_t *a;
		json_array_foreach(approvers, i, a)
		{
			const char *s = json_is_string(a) ? json_string_value(a) : "";
			long long id;
			char end;
			const char *colon = strchr(s, ':');
			if (strcmp(s, "cli") == 0) {
				out->approver_cli = true;
			} else if (strcmp(s, "web") == 0) {
				out->approver_web = true;
			} else if (strncmp(s, "email:", 6) == 0) {
				/* A From header is not authentication: mail answers nothing. */
				return BAD(
				    "%s.approvers[%zu]: email cannot approve (a From header is not "
				    "authentication)",
				    where, i);
			} else if (colon && channel_kind_approves(s, (size_t)(colon - s)) &&
			           colon[1] && strlen(s) < POLICY_APPROVER_MAX &&
			           !strpbrk(s, " \t\r\n") &&
			           (strncmp(s, "telegram:", 9) != 0 ||
			            (sscanf(s, "telegram:%lld%c", &id, &end) == 1 && id > 0))) {
				if (out->n_users >= POLICY_MAX_APPROVERS)
					return BAD("%s.approvers: at most %d channel users", where,
					           POLICY_MAX_APPROVERS);
				snprintf(out->users[out->n_users++], POLICY_APPROVER_MAX, "%s", s);
			} else {
				return BAD(
				    "%s.approvers[%zu]: expected \"cli\", \"web\" or KIND:USER_ID "
				    "(telegram:42, slack:U024BE7LH, discord:ID, "
				    "matrix:@ana:example.org, "
				    "xmpp:ana@example.org)",
				    where, i);
			}
		}
	}
	/* Contradictions, each named by the key that makes it one. */
	bool any_ask = false;
	for (int a = 0; a < HA_COUNT; a++) {
		for (int o = 0; o < 2; o++) {
			enum policy_verdict v =
			    policy_host_action(out, main, (enum host_action)a, o);
			enum policy_verdict set = o ? out->others[a] : out->self[a];
			const char *key = o ? "other_groups" : "host_actions";
			bool configured = named[o] & (1u << a);
			if (configured && set != VERDICT_DENY && out->tools_set &&
			    !policy_tool_granted(out, host_action_names[a]))
				return BAD(
				    "%s.policy.%s.%s: \"%s\" for a tool policy.tools does not "
				    "grant",
				    where, key, host_action_names[a], verdict_name(set));
			if (set && o && !main && set != VERDICT_DENY)
				return BAD(
				    "%s.policy.other_groups.%s: only the main group may act on "
				    "other groups (this group is not \"main\")",
				    where, host_action_names[a]);
			any_ask =
			    any_ask ||
			    (v == VERDICT_ASK &&
			     (!out->tools_set || policy_tool_granted(out, host_action_names[a])));
		}
	}
	/* An "ask" written for tainted runs: the same need of someone to answer it. The
	 * defaults' asks without an approver expire into denials, which is safe. */
	for (int a = 0; a < HA_COUNT; a++)
		any_ask = any_ask || ((named[2] & (1u << a)) && out->tainted[a] == VERDICT_ASK &&
		                      policy_tool_granted(out, host_action_names[a]));
	if ((any_ask || out->unlisted_hosts == VERDICT_ASK) && !out->approver_cli &&
	    !out->approver_web && out->n_users == 0)
		return BAD(
		    "%s.approvers: empty, but the policy asks for approvals (set an approver "
		    "or make the ask verdicts allow or deny)",
		    where);
	return 0;
}

/* "host[:port]" of an allow entry as configured: the string, or a JSON object's "host". */
static void
allow_host(const char *entry, char *buf, size_t size)
{
	buf[0] = '\0';
	if (entry[0] != '{') {
		snprintf(buf, size, "%s", entry);
		return;
	}
	json_t *o = json_loads(entry, 0, NULL);
	snprintf(buf, size, "%s", json_string_value(json_object_get(o, "host")) ?: "");
	json_decref(o);
}

/* Two spellings of one host as the operator wrote them: case does not matter; the proxy
 * normalizes further (IDNA), which can only find more entries for one host, never fewer. */
static bool
same_host(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

int
policy_parse_egress(json_t *egress, char *const *allow, size_t n_allow, const char *where,
                    struct group_policy *out, char *why, size_t size)
{
	static const char *const keys[] = {"host", "verdict", "trusted", "when_tainted", NULL};
	out->n_egress = 0;
	if (!egress)
		return 0;
	if (!json_is_array(egress))
		return BAD("%s.egress: expected a list of {\"host\", \"verdict\", \"trusted\", "
		           "\"when_tainted\"}",
		           where);
	size_t i;
	json_t *e;
	bool any_ask = false;
	json_array_foreach(egress, i, e)
	{
		if (!json_is_object(e))
			return BAD("%s.egress[%zu]: expected {\"host\", \"verdict\", ...}", where,
			           i);
		const char *name;
		json_t *val;
		json_object_foreach(e, name, val)
		{
			bool known = false;
			for (size_t k = 0; keys[k]; k++)
				known = known || strcmp(keys[k], name) == 0;
			if (!known)
				return BAD("%s.egress[%zu].%.64s: unknown key", where, i, name);
		}
		if (out->n_egress >= POLICY_EGRESS_MAX)
			return BAD("%s.egress: at most %d rules", where, POLICY_EGRESS_MAX);
		struct egress_rule_config *r = &out->egress[out->n_egress];
		const char *host = json_string_value(json_object_get(e, "host"));
		if (!host || !host[0] || strlen(host) >= sizeof(r->host) ||
		    strpbrk(host, " \t\r\n/\"\\@?#") || strstr(host, "://"))
			return BAD("%s.egress[%zu].host: expected HOST or HOST:PORT", where, i);
		const char *colon = strrchr(host, ':'), *bracket = strrchr(host, ']');
		if (colon && (!bracket || colon > bracket)) {
			char *end;
			long port = strtol(colon + 1, &end, 10);
			if (*end || colon[1] < '1' || colon[1] > '9' || port > 65535)
				return BAD(
				    "%s.egress[%zu].host: expected HOST or HOST:PORT (a port "
				    "from 1 to 65535)",
				    where, i);
		}
		snprintf(r->host, sizeof(r->host), "%s", host);
		if (!(r->verdict = verdict_parse(json_object_get(e, "verdict"))))
			return BAD(
			    "%s.egress[%zu].verdict: expected \"allow\", \"ask\" or \"deny\"",
			    where, i);
		json_t *t = json_object_get(e, "trusted"), *wt = json_object_get(e, "when_tainted");
		if (t && !json_is_boolean(t))
			return BAD("%s.egress[%zu].trusted: expected true or false", where, i);
		r->trusted = json_is_true(t);
		if (wt && !(r->when_tainted = verdict_parse(wt)))
			return BAD("%s.egress[%zu].when_tainted: expected \"allow\", \"ask\" or "
			           "\"deny\"",
			           where, i);
		/* Contradictions, each named by the key that makes it one. */
		if (wt && r->trusted)
			return BAD(
			    "%s.egress[%zu].when_tainted: never applies, the host is trusted "
			    "(responses from it do not taint, requests to it are not judged "
			    "by taint)",
			    where, i);
		if (wt && r->verdict == VERDICT_DENY)
			return BAD("%s.egress[%zu].when_tainted: never applies, the rule denies %s",
			           where, i, host);
		for (size_t k = 0; k < out->n_egress; k++)
			if (same_host(out->egress[k].host, host))
				return BAD(
				    "%s.egress[%zu].host: %s has a rule already (egress[%zu]): "
				    "one rule per host",
				    where, i, host, k);
		for (size_t k = 0; k < n_allow; k++) {
			char ah[POLICY_EGRESS_HOST_MAX];
			allow_host(allow[k], ah, sizeof(ah));
			if (same_host(ah, host) && r->verdict != VERDICT_ALLOW)
				return BAD(
				    "%s.egress[%zu].verdict: \"%s\" for %s, which %s.allow[%zu] "
				    "allows",
				    where, i, verdict_name(r->verdict), host, where, k);
		}
		any_ask = any_ask || r->verdict == VERDICT_ASK || r->when_tainted == VERDICT_ASK;
		out->n_egress++;
	}
	if (any_ask && !out->approver_cli && !out->approver_web && out->n_users == 0)
		return BAD("%s.approvers: empty, but %s.egress asks for approvals (set an approver "
		           "or make the ask verdicts allow or deny)",
		           where, where);
	return 0;
}

char *
policy_egress_arg(const struct group_policy *p)
{
	if (p->n_egress == 0 && p->unlisted_hosts != VERDICT_ASK)
		return NULL;
	json_t *rules = json_array();
	for (size_t i = 0; i < p->n_egress; i++) {
		const struct egress_rule_config *r = &p->egress[i];
		json_t *o = json_pack("{s:s,s:s,s:b}", "host", r->host, "verdict",
		                      verdict_name(r->verdict), "trusted", r->trusted);
		if (o && r->when_tainted)
			json_object_set_new(o, "when_tainted",
			                    json_string(verdict_name(r->when_tainted)));
		json_array_append_new(rules, o);
	}
	json_t *o = json_pack("{s:s,s:o}", "unlisted",
	                      p->unlisted_hosts == VERDICT_ASK ? "ask" : "deny", "rules", rules);
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return s;
}

enum policy_verdict
policy_host_action(const struct group_policy *p, bool main, enum host_action a, bool other)
{
	if ((unsigned)a >= HA_COUNT)
		return VERDICT_DENY;
	if (p->tools_set && !policy_tool_granted(p, host_action_names[a]))
		return VERDICT_DENY;
	enum policy_verdict v = other ? p->others[a] : p->self[a];
	if (v)
		return v;
	return !other ? defaults[a].self : main ? defaults[a].other_main : defaults[a].other;
}

enum policy_verdict
policy_host_action_tainted(const struct group_policy *p, bool main, enum host_action a, bool other,
                           bool *ret_by_taint)
{
	enum policy_verdict base = policy_host_action(p, main, a, other);
	if (ret_by_taint)
		*ret_by_taint = false;
	if ((unsigned)a >= HA_COUNT)
		return base;
	enum policy_verdict t = p->tainted[a] ? p->tainted[a]
	                        : other       ? tainted_defaults[a].other
	                                      : tainted_defaults[a].self;
	/* allow < ask < deny in the enum: the stricter one. The taint decides (and the hold is
	 * a tainted one, which no grant of an untainted ask passes) whenever its own verdict
	 * asks or denies and the policy's is not stricter. */
	if (t >= VERDICT_ASK && t >= base) {
		if (ret_by_taint)
			*ret_by_taint = true;
		return t;
	}
	return base;
}

bool
policy_tool_granted(const struct group_policy *p, const char *tool)
{
	if (!p->tools_set)
		return true;
	int k = tool ? tool_find(tool) : -1;
	return k >= 0 && (p->tools & (1u << k));
}

void
policy_tools_csv(const struct group_policy *p, char *buf, size_t size)
{
	size_t n = 0;
	buf[0] = '\0';
	if (!p->tools_set)
		return;
	for (size_t i = 0; i < policy_n_tools; i++)
		if (p->tools & (1u << i)) {
			int w =
			    snprintf(buf + n, size - n, "%s%s", n ? "," : "", policy_tool_names[i]);
			if (w < 0 || (size_t)w >= size - n)
				break;
			n += (size_t)w;
		}
	if (n == 0)
		snprintf(buf, size, "none"); /* granted nothing: not the same as everything */
}

json_t *
policy_json(const struct group_policy *p, bool main, char *const *allow, size_t n_allow)
{
	json_t *egress = json_array();
	for (size_t i = 0; i < p->n_egress; i++) {
		const struct egress_rule_config *r = &p->egress[i];
		json_array_append_new(
		    egress,
		    json_pack("{s:s,s:s,s:b,s:s,s:b,s:s}", "host", r->host, "verdict",
		              verdict_name(r->verdict), "trusted", r->trusted, "when_tainted",
		              r->trusted ? "n/a"
		              : r->verdict == VERDICT_DENY
		                  ? "deny"
		                  : verdict_name(r->when_tainted ?: VERDICT_ASK),
		              "when_tainted_default", !r->when_tainted, "from", "egress"));
	}
	for (size_t i = 0; i < n_allow; i++) {
		char h[POLICY_EGRESS_HOST_MAX];
		allow_host(allow[i], h, sizeof(h));
		json_array_append_new(egress,
		                      json_pack("{s:s,s:s,s:b,s:s,s:b,s:s}", "host", h, "verdict",
		                                "allow", "trusted", 0, "when_tainted", "ask",
		                                "when_tainted_default", 1, "from", "allow"));
	}
	json_t *tools = json_array(), *ha = json_object(), *appr = json_array();
	for (size_t i = 0; i < policy_n_tools; i++)
		if (policy_tool_granted(p, policy_tool_names[i]))
			json_array_append_new(tools, json_string(policy_tool_names[i]));
	for (int a = 0; a < HA_COUNT; a++)
		json_object_set_new(
		    ha, host_action_names[a],
		    json_pack("{s:s,s:b,s:s,s:b,s:b}", "self",
		              verdict_name(policy_host_action(p, main, (enum host_action)a, false)),
		              "self_default", p->self[a] == VERDICT_UNSET, "other_groups",
		              verdict_name(policy_host_action(p, main, (enum host_action)a, true)),
		              "other_groups_default", p->others[a] == VERDICT_UNSET, "granted",
		              policy_tool_granted(p, host_action_names[a])));
	json_t *wt = json_object();
	for (int a = 0; a < HA_COUNT; a++)
		json_object_set_new(wt, host_action_names[a],
		                    json_pack("{s:s,s:s,s:b}", "self",
		                              verdict_name(policy_host_action_tainted(
		                                  p, main, (enum host_action)a, false, NULL)),
		                              "other_groups",
		                              verdict_name(policy_host_action_tainted(
		                                  p, main, (enum host_action)a, true, NULL)),
		                              "default", p->tainted[a] == VERDICT_UNSET));
	if (p->approver_cli)
		json_array_append_new(appr, json_string("cli"));
	if (p->approver_web)
		json_array_append_new(appr, json_string("web"));
	for (size_t i = 0; i < p->n_users; i++)
		json_array_append_new(appr, json_string(p->users[i]));
	return json_pack(
	    "{s:o,s:b,s:o,s:o,s:s,s:o,s:i,s:o}", "tools", tools, "tools_default", !p->tools_set,
	    "host_actions", ha, "when_tainted", wt, "unlisted_hosts",
	    verdict_name(p->unlisted_hosts ? p->unlisted_hosts : DEFAULT_UNLISTED_HOSTS),
	    "approvers", appr, "approval_timeout", (int)p->approval_secs, "egress", egress);
}
