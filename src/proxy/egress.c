/*
 * egress.c: see egress.h. The daemon builds --egress from the group's configuration (which it
 * has checked for contradictions, naming the key); this parser re-checks every field anyway,
 * since it is the proxy's own command line and a mistake here would widen what goes out.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "egress.h"

void
egress_policy_init(struct egress_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->unlisted = EGRESS_DENY;
}

const char *
egress_verdict_name(enum egress_verdict v)
{
	return v == EGRESS_ALLOW ? "allow" : v == EGRESS_ASK ? "ask" : "deny";
}

static enum egress_verdict
verdict_of(json_t *v)
{
	const char *s = json_string_value(v);
	if (!s)
		return 0;
	return strcmp(s, "allow") == 0  ? EGRESS_ALLOW
	       : strcmp(s, "ask") == 0  ? EGRESS_ASK
	       : strcmp(s, "deny") == 0 ? EGRESS_DENY
	                                : 0;
}

static void
json_put(json_t **j)
{
	json_decref(*j);
}

int
egress_parse(struct egress_policy *p, const char *json, const char **ret_why)
{
	__attribute__((cleanup(json_put))) json_t *o =
	    json_loads(json, JSON_REJECT_DUPLICATES, NULL);
	egress_policy_init(p);
	if (!json_is_object(o))
		return *ret_why = "expected a JSON object {\"unlisted\", \"rules\"}", -EINVAL;
	const char *key;
	json_t *v;
	json_object_foreach(o, key, v)
	{
		if (strcmp(key, "unlisted") != 0 && strcmp(key, "rules") != 0)
			return *ret_why = "unknown key (expected \"unlisted\" and \"rules\")",
			       -EINVAL;
	}
	json_t *u = json_object_get(o, "unlisted");
	if (u) {
		p->unlisted = verdict_of(u);
		if (p->unlisted != EGRESS_DENY && p->unlisted != EGRESS_ASK)
			return *ret_why = "unlisted: expected \"deny\" or \"ask\"", -EINVAL;
	}
	json_t *rules = json_object_get(o, "rules");
	if (rules && !json_is_array(rules))
		return *ret_why = "rules: expected a list", -EINVAL;
	size_t i;
	json_array_foreach(rules, i, v)
	{
		if (p->n >= EGRESS_RULES_MAX)
			return *ret_why = "rules: too many", -E2BIG;
		struct egress_rule *r = &p->rules[p->n];
		json_t *t = json_object_get(v, "trusted"), *wt = json_object_get(v, "when_tainted");
		const char *host = json_string_value(json_object_get(v, "host"));
		if (!json_is_object(v) || !host)
			return *ret_why = "rules[]: expected {\"host\", \"verdict\", ...}", -EINVAL;
		json_object_foreach(v, key, t)
		{
			if (strcmp(key, "host") != 0 && strcmp(key, "verdict") != 0 &&
			    strcmp(key, "trusted") != 0 && strcmp(key, "when_tainted") != 0)
				return *ret_why = "rules[]: unknown key", -EINVAL;
		}
		t = json_object_get(v, "trusted");
		if (allowlist_parse_host(host, &r->match, ret_why) < 0)
			return -EINVAL;
		if (!(r->verdict = verdict_of(json_object_get(v, "verdict"))))
			return *ret_why = "rules[].verdict: expected allow, ask or deny", -EINVAL;
		if (t && !json_is_boolean(t))
			return *ret_why = "rules[].trusted: expected true or false", -EINVAL;
		r->trusted = json_is_true(t);
		r->when_tainted = wt ? verdict_of(wt) : EGRESS_ASK;
		if (!r->when_tainted)
			return *ret_why = "rules[].when_tainted: expected allow, ask or deny",
			       -EINVAL;
		p->n++;
	}
	return 0;
}

void
egress_judge(const struct egress_policy *p, const struct egress_taint *t, const char *host,
             enum host_kind kind, uint16_t port, bool allowed, bool has_input,
             struct egress_decision *ret)
{
	const struct egress_rule *rule = NULL;
	for (size_t i = 0; !rule && i < p->n; i++)
		if (allow_rule_matches(&p->rules[i].match, host, kind, port))
			rule = &p->rules[i];
	ret->why[0] = '\0';
	ret->by_rule = rule != NULL;
	ret->trusted = rule && rule->trusted;
	enum egress_verdict when_tainted = EGRESS_ASK;
	if (rule) {
		ret->listed = true;
		ret->verdict = rule->verdict;
		when_tainted = rule->when_tainted;
		if (rule->verdict == EGRESS_DENY)
			snprintf(ret->why, sizeof(ret->why), "the group's egress rule denies %s",
			         host);
		else if (rule->verdict == EGRESS_ASK)
			snprintf(ret->why, sizeof(ret->why), "the group's egress rule asks");
	} else if (allowed) {
		ret->listed = true;
		ret->verdict = EGRESS_ALLOW;
	} else {
		ret->listed = false;
		ret->verdict = p->unlisted;
		snprintf(ret->why, sizeof(ret->why), "unlisted host");
		return; /* taint cannot make "unlisted" any wider: it is ask or deny already */
	}
	/* A tainted run may have been told what to send: what can carry data to a host the
	 * operator did not vouch for gets the rule's when_tainted verdict, if stricter. A
	 * verdict is never loosened by it (a deny rule stays deny). */
	if (t && t->tainted && !ret->trusted && has_input && ret->verdict != EGRESS_DENY &&
	    when_tainted != EGRESS_ALLOW && when_tainted >= ret->verdict) {
		ret->verdict = when_tainted;
		snprintf(ret->why, sizeof(ret->why), "tainted: %.*s%s",
		         (int)(sizeof(ret->why) - 40),
		         t->n_causes ? t->causes[0] : "untrusted content",
		         t->n_causes > 1 ? ", ..." : "");
	}
}

bool
egress_taint_add(struct egress_taint *t, const char *cause)
{
	t->tainted = true;
	for (size_t i = 0; i < t->n_causes; i++)
		if (strncmp(t->causes[i], cause, EGRESS_CAUSE_MAX - 1) == 0)
			return false;
	if (t->n_causes >= EGRESS_CAUSES_MAX) {
		t->more++;
		return false;
	}
	snprintf(t->causes[t->n_causes], EGRESS_CAUSE_MAX, "%s", cause);
	for (char *c = t->causes[t->n_causes]; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?'; /* one line */
	t->n_causes++;
	return true;
}

bool
egress_names_address(const struct egress_policy *p, const struct sockaddr *sa)
{
	char text[INET6_ADDRSTRLEN];
	uint16_t port;
	enum host_kind kind;
	if (!sockaddr_host(sa, text, &kind, &port))
		return false;
	for (size_t i = 0; i < p->n; i++)
		if (p->rules[i].verdict != EGRESS_DENY &&
		    allow_rule_matches(&p->rules[i].match, text, kind, port))
			return true;
	return false;
}
