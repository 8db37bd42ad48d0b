/*
 * allowlist.c: see allowlist.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "allowlist.h"
#include "parse.h"
#include "rules.h"

int
allowlist_parse_host(const char *spec, struct allow_rule *ret_rule, const char **ret_why)
{
	struct allow_rule rule = {0};
	const char *host = spec, *port = NULL;
	size_t host_len;

	if (strstr(spec, "://")) {
		*ret_why = "HOST[:PORT], not a URL";
		return -EINVAL;
	}
	if (strncmp(host, "*.", 2) == 0) {
		rule.wildcard = true;
		host += 2;
	}
	if (host[0] == '[') {
		const char *end = strchr(host, ']');
		if (!end) {
			*ret_why = "unterminated IPv6 literal";
			return -EINVAL;
		}
		host_len = (size_t)(end - host) + 1;
		if (end[1] == ':')
			port = end + 2;
		else if (end[1]) {
			*ret_why = "expected HOST[:PORT]";
			return -EINVAL;
		}
	} else {
		const char *colon = strchr(host, ':');
		host_len = colon ? (size_t)(colon - host) : strlen(host);
		if (colon)
			port = colon + 1;
	}
	if (port) {
		uint64_t v;
		if (parse_u64(port, 65535, &v) < 0 || v == 0) {
			*ret_why = "port must be a number from 1 to 65535";
			return -EINVAL;
		}
		rule.port = (uint16_t)v;
	}
	if (host_normalize(host, host_len, rule.host, &rule.kind, ret_why) < 0)
		return -EINVAL;
	if (rule.wildcard && rule.kind != HOST_NAME) {
		*ret_why = "a wildcard needs a domain name after \"*.\"";
		return -EINVAL;
	}
	*ret_rule = rule;
	return 0;
}

int
allowlist_add(struct allowlist *a, const char *spec, const char **ret_why)
{
	struct allow_rule rule;
	int r;

	if (a->n >= ALLOWLIST_MAX) {
		*ret_why = "too many --allow entries";
		return -E2BIG;
	}
	if (spec[0] == '{')
		r = rules_parse_entry(a, spec, &rule, ret_why);
	else
		r = allowlist_parse_host(spec, &rule, ret_why);
	if (r < 0)
		return r;
	a->rules[a->n++] = rule;
	return 0;
}

static bool
port_ok(const struct allow_rule *r, uint16_t port)
{
	return r->port ? r->port == port : (port == 80 || port == 443);
}

static bool
host_ok(const struct allow_rule *r, const char *host)
{
	if (!r->wildcard)
		return strcmp(r->host, host) == 0;
	/* "*.example.org": host must end in ".example.org" with at least one label before. */
	size_t h = strlen(host), s = strlen(r->host);
	return h > s + 1 && host[h - s - 1] == '.' && strcmp(host + h - s, r->host) == 0;
}

bool
allow_rule_matches(const struct allow_rule *r, const char *host, enum host_kind kind,
                   uint16_t port)
{
	return r->kind == kind && port_ok(r, port) && host_ok(r, host);
}

bool
allowlist_match(const struct allowlist *a, const char *host, enum host_kind kind, uint16_t port)
{
	for (size_t i = 0; i < a->n; i++)
		if (allow_rule_matches(&a->rules[i], host, kind, port))
			return true;
	return false;
}

bool
allowlist_names_address(const struct allowlist *a, const struct sockaddr *sa)
{
	char text[INET6_ADDRSTRLEN];
	uint16_t port;
	enum host_kind kind;
	return sockaddr_host(sa, text, &kind, &port) && allowlist_match(a, text, kind, port);
}

bool
sockaddr_host(const struct sockaddr *sa, char text[INET6_ADDRSTRLEN], enum host_kind *ret_kind,
              uint16_t *ret_port)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, text, INET6_ADDRSTRLEN);
		*ret_port = ntohs(in->sin_port);
		*ret_kind = HOST_IPV4;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, text, INET6_ADDRSTRLEN);
		*ret_port = ntohs(in6->sin6_port);
		*ret_kind = HOST_IPV6;
	} else {
		return false;
	}
	return true;
}
