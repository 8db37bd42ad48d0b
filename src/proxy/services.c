/*
 * services.c: see services.h. Parsing with jansson; the swap works on the request's header
 * arena as it is written out, so the secret exists only in this process's memory and in the
 * bytes sent to the bound host.
 */
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "macro.h"
#include "services.h"
#include "upstream.h"

void
services_init(struct services *s)
{
	memset(s, 0, sizeof(*s));
	leak_set_init(&s->leaks);
}

void
services_done(struct services *s)
{
	for (size_t i = 0; i < s->n; i++) {
		if (s->v[i].secret)
			explicit_bzero(s->v[i].secret, s->v[i].secret_len);
		free(s->v[i].secret);
		free(s->v[i].hosts);
		free(s->v[i].plain_hosts);
	}
	leak_set_done(&s->leaks);
	s->n = 0;
}

static bool
valid_name(const char *n)
{
	size_t len = strlen(n);
	if (len == 0 || len > SERVICE_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' && n[i] <= '9') ||
		      (n[i] == '-' && i > 0)))
			return false;
	return true;
}

static void
json_decrefp_(json_t **j)
{
	json_decref(*j);
}

int
services_add(struct services *s, const char *text, const char **why)
{
	static const char *const known[] = {"name",        "hosts",      "secret_env",
	                                    "secret_file", "header",     "placeholder_env",
	                                    "query",       "placeholder"};
	json_error_t err;
	__attribute__((cleanup(json_decrefp_))) json_t *o = json_loads(text, 0, &err);
	if (!json_is_object(o)) {
		*why = "not a JSON object";
		return -EINVAL;
	}
	const char *key;
	json_t *val;
	json_object_foreach(o, key, val)
	{
		bool ok = false;
		for (size_t i = 0; i < ARRAY_SIZE(known); i++)
			ok |= strcmp(key, known[i]) == 0;
		if (!ok) {
			*why = "unknown member (expected name, hosts, secret_env or secret_file, "
			       "header, placeholder_env, query)";
			return -EINVAL;
		}
	}
	if (s->n >= SERVICES_MAX) {
		*why = "too many services";
		return -E2BIG;
	}
	struct service *sv = &s->v[s->n];
	memset(sv, 0, sizeof(*sv));
	const char *name = json_string_value(json_object_get(o, "name"));
	if (!name || !valid_name(name)) {
		*why = "\"name\" must be 1-32 of a-z, 0-9 and -";
		return -EINVAL;
	}
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i].name, name) == 0) {
			*why = "two services with the same name";
			return -EINVAL;
		}
	snprintf(sv->name, sizeof(sv->name), "%s", name);

	json_t *hosts = json_object_get(o, "hosts");
	if (!json_is_array(hosts) || json_array_size(hosts) == 0) {
		*why = "\"hosts\" must be a non-empty array of HOST[:PORT]";
		return -EINVAL;
	}
	sv->hosts = calloc(1, sizeof(*sv->hosts));
	sv->plain_hosts = calloc(1, sizeof(*sv->plain_hosts));
	if (!sv->hosts || !sv->plain_hosts) {
		free(sv->hosts);
		free(sv->plain_hosts);
		return -ENOMEM;
	}
	size_t i;
	json_array_foreach(hosts, i, val)
	{
		const char *h = json_string_value(val);
		int r = h && h[0] != '{' ? allowlist_add(sv->hosts, h, why) : -EINVAL;
		if (r == -EINVAL && (!h || h[0] == '{'))
			*why = "\"hosts\" must be HOST[:PORT] strings";
		if (r < 0)
			goto fail;
		/* A port named: plain HTTP there may carry the secret too (a local service). */
		if (sv->hosts->rules[sv->hosts->n - 1].port != 0 &&
		    (r = allowlist_add(sv->plain_hosts, h, why)) < 0)
			goto fail;
	}

	const char *header = json_string_value(json_object_get(o, "header"));
	if (json_object_get(o, "header") && !header) {
		*why = "\"header\" must be a string";
		goto fail;
	}
	static struct upstream_config tmp; /* its key buffer holds the secret briefly */
	memset(&tmp, 0, sizeof(tmp));
	if (header) {
		if (upstream_set_header(&tmp, header) < 0) {
			*why = "\"header\" must be NAME or 'NAME: PREFIX'";
			goto fail;
		}
		snprintf(sv->header_name, sizeof(sv->header_name), "%s", tmp.header_name);
		snprintf(sv->header_prefix, sizeof(sv->header_prefix), "%s", tmp.header_prefix);
	}

	json_t *q = json_object_get(o, "query");
	if (json_is_true(q))
		sv->query_any = true;
	else if (json_is_string(q) && json_string_length(q) > 0 &&
	         json_string_length(q) < sizeof(sv->query_param))
		snprintf(sv->query_param, sizeof(sv->query_param), "%s", json_string_value(q));
	else if (q && !json_is_false(q)) {
		*why = "\"query\" must be true, false or a parameter name";
		goto fail;
	}

	const char *ph = json_string_value(json_object_get(o, "placeholder"));
	if (!ph || strncmp(ph, "clawbox-placeholder-", 20) != 0 || strlen(ph) < 36 ||
	    strlen(ph) > SERVICE_PLACEHOLDER_MAX) {
		*why = "no per-run \"placeholder\" (clawbox run adds one)";
		goto fail;
	}
	snprintf(sv->placeholder, sizeof(sv->placeholder), "%s", ph);

	const char *env = json_string_value(json_object_get(o, "secret_env"));
	const char *file = json_string_value(json_object_get(o, "secret_file"));
	if (!env == !file) {
		*why = "give one of \"secret_env\" and \"secret_file\"";
		goto fail;
	}
	int r;
	if (env) {
		/* Read here, unset by services_forget_env() once every service is parsed: two
		 * services may share a variable. */
		const char *v = getenv(env);
		size_t len = v ? strlen(v) : 0;
		while (len > 0 && (v[len - 1] == '\n' || v[len - 1] == '\r'))
			len--;
		if (!v) {
			*why = "the secret's environment variable is not set";
			r = -ENOENT;
			goto fail_r;
		}
		if (len == 0 || len >= sizeof(tmp.key) || memchr(v, '\r', len) ||
		    memchr(v, '\n', len)) {
			*why = "the secret is empty, too long, or has a line break";
			goto fail;
		}
		memcpy(tmp.key, v, len);
		tmp.key[len] = '\0';
		snprintf(sv->secret_env, sizeof(sv->secret_env), "%s", env);
	} else if ((r = upstream_load_key(&tmp, NULL, file, why)) < 0) {
		goto fail_r;
	}
	sv->secret_len = strlen(tmp.key);
	sv->secret = strdup(tmp.key);
	explicit_bzero(tmp.key, sizeof(tmp.key));
	if (!sv->secret)
		goto fail;
	if (strstr(sv->secret, "clawbox-placeholder-")) {
		*why = "the secret is a placeholder (was it read inside a sandbox?)";
		goto fail;
	}
	int idx = (int)s->n;
	r = leak_set_add_secret(&s->leaks, idx, sv->name, sv->secret, sv->secret_len);
	if (r >= 0)
		r = leak_set_add_literal(&s->leaks, idx, sv->name, "placeholder", sv->placeholder,
		                         strlen(sv->placeholder));
	if (r < 0) {
		*why = "too many secret patterns";
		goto fail_r;
	}
	s->n++;
	return 0;
fail:
	r = -EINVAL;
fail_r:
	free(sv->hosts);
	free(sv->plain_hosts);
	if (sv->secret)
		explicit_bzero(sv->secret, sv->secret_len);
	free(sv->secret);
	memset(sv, 0, sizeof(*sv));
	return r;
}

void
services_forget_env(struct services *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].secret_env[0])
			unsetenv(s->v[i].secret_env); /* nothing we start later inherits it */
}

int
services_add_model_key(struct services *s, const char *key)
{
	return leak_set_add_secret(&s->leaks, LEAK_OWNER_MODEL, "model-key", key, strlen(key));
}

bool
services_plain_ok(const struct services *s, int svc, const char *host, enum host_kind kind,
                  uint16_t port)
{
	return svc >= 0 && allowlist_match(s->v[svc].plain_hosts, host, kind, port);
}

int
services_match(const struct services *s, const char *host, enum host_kind kind, uint16_t port)
{
	for (size_t i = 0; i < s->n; i++)
		if (allowlist_match(s->v[i].hosts, host, kind, port))
			return (int)i;
	return -1;
}

const struct leak_pattern *
services_scan_head(const struct services *s, int dest, const struct request *r)
{
	/* The raw target as the client sent it (a CONNECT's host:port included) and every
	 * header, names too: nothing of the head goes unscanned. */
	const struct leak_pattern *hit = NULL;
	if (r->arena_used > 0)
		hit = leak_scan(&s->leaks, dest, r->arena, r->arena_used);
	return hit;
}

/* Appends text[0..len) to out with every placeholder of sv replaced by its secret. */
static void
put_swapped(const struct service *sv, const char *text, size_t len, struct evbuffer *out)
{
	size_t plen = strlen(sv->placeholder);
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *m = memmem(p, (size_t)(end - p), sv->placeholder, plen);
		if (!m) {
			evbuffer_add(out, p, (size_t)(end - p));
			return;
		}
		evbuffer_add(out, p, (size_t)(m - p));
		evbuffer_add(out, sv->secret, sv->secret_len);
		p = m + plen;
	}
}

/* "Basic BASE64(user:pass)" with the placeholder inside: decoded, swapped, encoded again.
 * false: not such a value (written as is by the caller). */
static bool
put_basic(const struct service *sv, const char *value, struct evbuffer *out)
{
	if (strncasecmp(value, "Basic ", 6) != 0)
		return false;
	const char *b = value + 6;
	size_t blen = strlen(b);
	if (blen == 0 || blen % 4 != 0 || blen > 4096)
		return false;
	unsigned char dec[3 * 4096 / 4 + 1];
	int n = EVP_DecodeBlock(dec, (const unsigned char *)b, (int)blen);
	if (n < 0)
		return false;
	/* EVP_DecodeBlock counts padding as zero bytes. */
	if (blen >= 1 && b[blen - 1] == '=')
		n--;
	if (blen >= 2 && b[blen - 2] == '=')
		n--;
	size_t plen = strlen(sv->placeholder);
	if (!memmem(dec, (size_t)n, sv->placeholder, plen))
		return false;
	struct evbuffer *plain = evbuffer_new();
	if (!plain)
		return false;
	put_swapped(sv, (const char *)dec, (size_t)n, plain);
	explicit_bzero(dec, sizeof(dec));
	size_t plain_len = evbuffer_get_length(plain);
	unsigned char *enc = malloc(4 * (plain_len / 3 + 1) + 1);
	if (!enc) {
		evbuffer_free(plain);
		return false;
	}
	int m = EVP_EncodeBlock(enc, evbuffer_pullup(plain, -1), (int)plain_len);
	evbuffer_add(out, value, 6);
	evbuffer_add(out, enc, (size_t)m);
	explicit_bzero(enc, (size_t)m);
	free(enc);
	explicit_bzero(evbuffer_pullup(plain, -1), plain_len);
	evbuffer_free(plain);
	return true;
}

void
services_write_headers(const struct services *s, int svc, const struct request *r,
                       struct evbuffer *out)
{
	const struct service *sv = svc >= 0 ? &s->v[svc] : NULL;
	bool has_header = false;
	for (size_t i = 0; i < r->n_headers; i++) {
		const char *name = request_header_name(r, i), *value = request_header_value(r, i);
		if (request_hop_by_hop(name))
			continue;
		evbuffer_add_printf(out, "%s: ", name);
		if (!sv)
			evbuffer_add(out, value, strlen(value));
		else if (!put_basic(sv, value, out))
			put_swapped(sv, value, strlen(value), out);
		evbuffer_add(out, "\r\n", 2);
		if (sv && sv->header_name[0] && strcasecmp(name, sv->header_name) == 0)
			has_header = true;
	}
	if (sv && sv->header_name[0] && !has_header) {
		evbuffer_add_printf(out, "%s: %s", sv->header_name, sv->header_prefix);
		evbuffer_add(out, sv->secret, sv->secret_len);
		evbuffer_add(out, "\r\n", 2);
	}
}

static bool
url_unreserved(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

int
services_rewrite_query(const struct services *s, int svc, struct request *r)
{
	const struct service *sv = &s->v[svc];
	if (!sv->query_any && !sv->query_param[0])
		return 0;
	char *q = strchr(r->path, '?');
	size_t plen = strlen(sv->placeholder);
	if (!q || !strstr(q, sv->placeholder))
		return 0;
	char out[REQUEST_PATH_MAX];
	size_t k = (size_t)(q - r->path) + 1;
	memcpy(out, r->path, k);
	/* Parameter by parameter: a=b&c=d. */
	const char *p = q + 1;
	while (*p) {
		const char *amp = strchr(p, '&');
		size_t plen_all = amp ? (size_t)(amp - p) : strlen(p);
		size_t nlen = strlen(sv->query_param);
		bool swap =
		    sv->query_any ||
		    (plen_all > nlen && strncmp(p, sv->query_param, nlen) == 0 && p[nlen] == '=');
		const char *seg = p, *seg_end = p + plen_all;
		while (seg < seg_end) {
			const char *m =
			    swap ? memmem(seg, (size_t)(seg_end - seg), sv->placeholder, plen)
			         : NULL;
			size_t lit = m ? (size_t)(m - seg) : (size_t)(seg_end - seg);
			if (k + lit + 2 > sizeof(out))
				return -E2BIG;
			memcpy(out + k, seg, lit);
			k += lit;
			if (!m)
				break;
			/* Percent-encoded where a URL needs it: a secret with '&', '=' or '#' in it
			 * must not become several parameters. */
			for (size_t j = 0; j < sv->secret_len; j++) {
				unsigned char ch = (unsigned char)sv->secret[j];
				if (k + 4 > sizeof(out))
					return -E2BIG;
				if (url_unreserved(ch)) {
					out[k++] = (char)ch;
				} else {
					static const char hex[] = "0123456789ABCDEF";
					out[k++] = '%';
					out[k++] = hex[ch >> 4];
					out[k++] = hex[ch & 15];
				}
			}
			seg = m + plen;
		}
		p = seg_end;
		if (*p == '&')
			out[k++] = *p++;
	}
	out[k] = '\0';
	memcpy(r->path, out, k + 1);
	explicit_bzero(out, sizeof(out));
	return 0;
}
