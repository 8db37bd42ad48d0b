/*
 * rules.c: request rules on allow entries (see rules.h). The entry is JSON, parsed with
 * jansson and bounded (a command-line argument or one config entry); what it holds is
 * copied into the allowlist's fixed tables, so judging a request allocates nothing.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "allowlist.h"
#include "macro.h"
#include "parse.h"
#include "rules.h"

#define ENTRY_TEXT_MAX 16384

static void
json_put(json_t **j)
{
	json_decref(*j);
}

/* A size: "1M", "512K", or a whole number of bytes. */
static int
entry_size(json_t *v, uint64_t *ret)
{
	if (json_is_integer(v) && json_integer_value(v) > 0) {
		*ret = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (json_is_string(v))
		return parse_size(json_string_value(v), ret);
	return -EINVAL;
}

static bool
method_name_ok(const char *m)
{
	size_t n = strlen(m);
	if (n == 0 || n >= 16)
		return false;
	for (size_t i = 0; i < n; i++)
		if (m[i] < 'A' || m[i] > 'Z')
			return false;
	return true;
}

int
rules_path_check(const char *path, const char **ret_why)
{
	if (path[0] != '/') {
		*ret_why = "the path must begin with /";
		return -EINVAL;
	}
	size_t end = strcspn(path, "?#");
	for (size_t i = 0; i < end; i++) {
		char c = path[i];
		if (c == '\\') {
			*ret_why = "a backslash in the path";
			return -EINVAL;
		}
		if (c == '%' && i + 2 < end) {
			char hex[3] = {path[i + 1], path[i + 2], 0};
			/* Also NUL, and the overlong UTF-8 lead bytes C0/C1 that lax decoders
			 * turn into "." or "/" ("%c0%ae"). */
			static const char *const refused[] = {"2e", "2f", "5c", "25",
			                                      "00", "c0", "c1"};
			for (size_t k = 0; k < ARRAY_SIZE(refused); k++)
				if (strcasecmp(hex, refused[k]) == 0) {
					*ret_why =
					    "an encoded dot, slash, backslash, percent sign, NUL "
					    "or overlong byte in the path";
					return -EINVAL;
				}
		}
		if (c != '/')
			continue;
		if (path[i + 1] == '/') {
			*ret_why = "a doubled slash in the path";
			return -EINVAL;
		}
		/* A segment "." or ".." (also "..;x", which some servers read as ".."). */
		const char *seg = path + i + 1;
		size_t dots = 0;
		while (seg[dots] == '.')
			dots++;
		char after = (size_t)(seg - path) + dots >= end ? '\0' : seg[dots];
		if ((dots == 1 || dots == 2) && (after == '\0' || after == '/' || after == ';')) {
			*ret_why = "a dot segment in the path";
			return -EINVAL;
		}
	}
	return 0;
}

static int
add_text(struct allowlist *a, const char *s, size_t *ret_off)
{
	size_t n = strlen(s) + 1;
	if (a->arena_used + n > sizeof(a->arena))
		return -E2BIG;
	memcpy(a->arena + a->arena_used, s, n);
	*ret_off = a->arena_used;
	a->arena_used += n;
	return 0;
}

int
rules_parse_entry(struct allowlist *a, const char *spec, struct allow_rule *ret_rule,
                  const char **ret_why)
{
	static const char *const known[] = {"host", "methods", "paths", "max_body", "max_response"};
	struct request_rules rr = {0};
	struct allow_rule rule;
	json_error_t err;

	if (strlen(spec) > ENTRY_TEXT_MAX) {
		*ret_why = "the entry is too long";
		return -E2BIG;
	}
	json_t *j __attribute__((cleanup(json_put))) =
	    json_loads(spec, JSON_REJECT_DUPLICATES, &err);
	if (!json_is_object(j)) {
		*ret_why = "expected HOST[:PORT] or a JSON object {\"host\": ..., \"methods\": "
		           "[...], \"paths\": [...], \"max_body\": SIZE, \"max_response\": SIZE}";
		return -EINVAL;
	}
	const char *key;
	json_t *v;
	json_object_foreach(j, key, v)
	{
		bool ok = false;
		for (size_t i = 0; i < ARRAY_SIZE(known); i++)
			ok = ok || strcmp(key, known[i]) == 0;
		if (!ok) {
			*ret_why = "unknown key (host, methods, paths, max_body, max_response)";
			return -EINVAL;
		}
	}
	const char *host = json_string_value(json_object_get(j, "host"));
	if (!host) {
		*ret_why = "\"host\" must be a string";
		return -EINVAL;
	}
	int r = allowlist_parse_host(host, &rule, ret_why);
	if (r < 0)
		return r;

	json_t *methods = json_object_get(j, "methods");
	if (methods) {
		if (!json_is_array(methods) || json_array_size(methods) == 0 ||
		    json_array_size(methods) > RULES_METHODS_MAX) {
			*ret_why = "\"methods\" must be a list of 1 to 16 method names";
			return -EINVAL;
		}
		size_t i;
		json_array_foreach(methods, i, v)
		{
			const char *m = json_string_value(v);
			if (!m || !method_name_ok(m)) {
				*ret_why = "a method is an upper-case name such as GET";
				return -EINVAL;
			}
			snprintf(rr.methods[rr.n_methods++], sizeof(rr.methods[0]), "%s", m);
		}
	}
	json_t *paths = json_object_get(j, "paths");
	if (paths) {
		if (!json_is_array(paths) || json_array_size(paths) == 0) {
			*ret_why = "\"paths\" must be a list of path prefixes";
			return -EINVAL;
		}
		if (a->n_paths + json_array_size(paths) > RULES_PATHS_MAX) {
			*ret_why = "too many path prefixes";
			return -E2BIG;
		}
		rr.first_path = a->n_paths;
		size_t i;
		json_array_foreach(paths, i, v)
		{
			const char *p = json_string_value(v);
			if (!p || strpbrk(p, "?#") || rules_path_check(p, ret_why) < 0) {
				if (!p || strpbrk(p, "?#"))
					*ret_why =
					    "a path prefix is a string beginning with / (no query)";
				return -EINVAL;
			}
			if (add_text(a, p, &a->paths[a->n_paths + rr.n_paths]) < 0) {
				*ret_why = "the path prefixes are too long";
				return -E2BIG;
			}
			rr.n_paths++;
		}
	}
	if (json_object_get(j, "max_body") &&
	    entry_size(json_object_get(j, "max_body"), &rr.max_body) < 0) {
		*ret_why = "\"max_body\" must be a size such as \"1M\"";
		return -EINVAL;
	}
	if (json_object_get(j, "max_response") &&
	    entry_size(json_object_get(j, "max_response"), &rr.max_response) < 0) {
		*ret_why = "\"max_response\" must be a size such as \"10M\"";
		return -EINVAL;
	}
	if (a->n_req_rules >= RULES_MAX) {
		*ret_why = "too many entries with rules";
		return -E2BIG;
	}
	/* Only now, with nothing left to fail, are the paths and the rules kept. */
	a->n_paths += rr.n_paths;
	a->req_rules[a->n_req_rules] = rr;
	rule.rules = (uint16_t)(++a->n_req_rules);
	*ret_rule = rule;
	return 0;
}

/* Whether one entry's rules allow the request; if not, why (into reason). */
static bool
rules_allow(const struct allowlist *a, const struct request_rules *rr, const char *method,
            const char *path, char *reason, size_t size)
{
	if (rr->n_methods) {
		bool ok = false;
		for (size_t i = 0; i < rr->n_methods && !ok; i++)
			ok = strcmp(rr->methods[i], method) == 0;
		if (!ok) {
			snprintf(reason, size, "method %s is not allowed here", method);
			return false;
		}
	}
	if (rr->n_paths) {
		bool ok = false;
		for (size_t i = 0; i < rr->n_paths && !ok; i++) {
			const char *prefix = a->arena + a->paths[rr->first_path + i];
			ok = strncmp(path, prefix, strlen(prefix)) == 0;
		}
		if (!ok) {
			size_t n = strcspn(path, "?#");
			snprintf(reason, size, "path %.*s is not allowed here",
			         (int)(n < 120 ? n : 120), path);
			return false;
		}
	}
	return true;
}

int
rules_judge(const struct allowlist *a, const char *method, const char *host, enum host_kind kind,
            uint16_t port, const char *path_and_query, struct rule_verdict *ret)
{
	bool matched = false;
	ret->max_body = ret->max_response = 0;
	ret->reason[0] = '\0';

	/* A plain entry allows anything to its host and port, whatever the path says: the
	 * strict spelling is for prefixes to mean something, and there are none to compare. */
	for (size_t i = 0; i < a->n; i++) {
		const struct allow_rule *r = &a->rules[i];
		if (!allow_rule_matches(r, host, kind, port))
			continue;
		if (!r->rules)
			return 0;
		matched = true;
	}
	if (!matched) {
		snprintf(ret->reason, sizeof(ret->reason), "%s:%u is not in the allowlist", host,
		         port);
		return -EACCES;
	}
	/* Only entries with rules match. */
	if (!path_and_query) {
		snprintf(ret->reason, sizeof(ret->reason),
		         "%s:%u has request rules: a tunnel to it could not be judged (use http:// "
		         "or GET https:// through the proxy)",
		         host, port);
		return -EACCES;
	}
	const char *why;
	if (rules_path_check(path_and_query, &why) < 0) {
		snprintf(ret->reason, sizeof(ret->reason), "%s", why);
		return -EACCES;
	}
	for (size_t i = 0; i < a->n; i++) {
		const struct allow_rule *r = &a->rules[i];
		if (!r->rules || !allow_rule_matches(r, host, kind, port))
			continue;
		const struct request_rules *rr = &a->req_rules[r->rules - 1];
		char one[RULES_REASON_MAX];
		if (rules_allow(a, rr, method, path_and_query, one, sizeof(one))) {
			ret->max_body = rr->max_body;
			ret->max_response = rr->max_response;
			return 0;
		}
		if (!ret->reason[0]) /* the first entry's reason: the one listed first */
			snprintf(ret->reason, sizeof(ret->reason), "%s", one);
	}
	return -EACCES;
}
