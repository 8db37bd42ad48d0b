/*
 * request.c: see request.h.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "macro.h"
#include "request.h"

static int
arena_append(struct request *r, const char *at, size_t len, bool start)
{
	/* A new string begins after the previous one's NUL; a continuation overwrites it. */
	if (!start && r->arena_used > 0)
		r->arena_used--;
	if (r->arena_used + len + 1 > r->max_head || r->arena_used + len + 1 > sizeof(r->arena)) {
		r->error_status = 431;
		r->error = "request head too large";
		return -1;
	}
	memcpy(r->arena + r->arena_used, at, len);
	r->arena_used += len;
	r->arena[r->arena_used++] = '\0';
	return 0;
}

static int
on_url(http_parser *p, const char *at, size_t len)
{
	struct request *r = p->data;
	bool start = r->arena_used == 0;
	return arena_append(r, at, len, start);
}

static int
on_header_field(http_parser *p, const char *at, size_t len)
{
	struct request *r = p->data;
	bool start = r->in_value || r->n_headers == 0;
	if (start) {
		if (r->n_headers >= REQUEST_HEADERS_MAX) {
			r->error_status = 431;
			r->error = "too many request headers";
			return -1;
		}
		r->headers[r->n_headers].name = r->arena_used;
		r->headers[r->n_headers].value = 0;
		r->n_headers++;
		r->in_value = false;
	}
	return arena_append(r, at, len, start);
}

static int
on_header_value(http_parser *p, const char *at, size_t len)
{
	struct request *r = p->data;
	bool start = !r->in_value;
	if (r->n_headers == 0)
		return -1; /* http-parser never does this; belt and braces */
	if (start) {
		r->headers[r->n_headers - 1].value = r->arena_used;
		r->in_value = true;
	}
	return arena_append(r, at, len, start);
}

static int
on_headers_complete(http_parser *p)
{
	struct request *r = p->data;
	/* A header without a value (http-parser allows "Name:"): give it an empty one. */
	if (r->n_headers > 0 && !r->in_value) {
		if (arena_append(r, "", 0, true) < 0)
			return -1;
		r->headers[r->n_headers - 1].value = r->arena_used - 1;
	}
	r->chunked = (p->flags & F_CHUNKED) != 0;
	r->head_done = true;
	http_parser_pause(p, 1);
	return 0;
}

static int
on_body(http_parser *p, const char *at, size_t len)
{
	struct request *r = p->data;
	r->body_bytes += len;
	if (r->body_bytes > r->max_body) {
		r->error_status = 413;
		r->error = "request body too large";
		return -1;
	}
	if (r->on_body)
		r->on_body(r->body_ctx, at, len);
	return 0;
}

static int
on_message_complete(http_parser *p)
{
	struct request *r = p->data;
	r->message_done = true;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void
request_init(struct request *r, unsigned max_head, uint64_t max_body)
{
	memset(r, 0, sizeof(*r));
	r->max_head = max_head < REQUEST_HEAD_MAX ? max_head : REQUEST_HEAD_MAX;
	r->max_body = max_body;
	http_parser_init(&r->parser, HTTP_REQUEST);
	r->parser.data = r;
}

enum request_status
request_feed(struct request *r, const char *data, size_t len, size_t *ret_used)
{
	size_t used = 0;
	*ret_used = 0;
	if (r->message_done)
		return REQ_DONE;

	while (used < len) {
		bool was_head_done = r->head_done;
		size_t n = http_parser_execute(&r->parser, &settings, data + used, len - used);
		enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
		used += n;
		if (!was_head_done)
			r->head_bytes += n;
		if (e == HPE_PAUSED) {
			http_parser_pause(&r->parser, 0);
			*ret_used = used;
			if (r->message_done)
				return REQ_DONE;
			if (!was_head_done && r->head_done)
				return REQ_HEAD;
			continue;
		}
		if (e != HPE_OK) {
			*ret_used = used;
			if (!r->error) {
				r->error_status = 400;
				snprintf(r->error_buf, sizeof(r->error_buf),
				         "malformed request (%s)", http_errno_description(e));
				r->error = r->error_buf;
			}
			return REQ_ERROR;
		}
		if (!r->head_done && r->head_bytes >= r->max_head) {
			*ret_used = used;
			r->error_status = 431;
			r->error = "request head too large";
			return REQ_ERROR;
		}
		if (n == 0)
			break; /* nothing consumed and no error: wait for more */
	}
	*ret_used = used;
	return REQ_MORE;
}

static int
fail(struct request *r, const char *why)
{
	r->error_status = 400;
	r->error = why;
	return -EINVAL;
}

/* An origin-form request to a *.clawbox.internal name (request.h): the absolute URL it
 * stands for, from the Host header, into buf. */
static int
origin_url(struct request *r, const char *target, char *buf, size_t size)
{
	const char *host = NULL;
	for (size_t i = 0; i < r->n_headers; i++)
		if (strcasecmp(request_header_name(r, i), "host") == 0) {
			if (host)
				return fail(r, "more than one Host header");
			host = request_header_value(r, i);
		}
	if (!host)
		return fail(r, "no Host header");
	size_t hlen = strcspn(host, ":");
	static const char suffix[] = ".clawbox.internal";
	if (hlen <= sizeof(suffix) - 1 ||
	    strncasecmp(host + hlen - (sizeof(suffix) - 1), suffix, sizeof(suffix) - 1) != 0 ||
	    (host[hlen] && strcmp(host + hlen, ":80") != 0) || strpbrk(host, "/?#@[ "))
		return fail(r, "only http://NAME.clawbox.internal/ is served without a proxy");
	if ((size_t)snprintf(buf, size, "http://%.*s%s", (int)hlen, host, target) >= size)
		return fail(r, "URL too long");
	return 0;
}

int
request_target(struct request *r)
{
	const char *url = r->arena + r->url;
	struct http_parser_url u;
	char origin[REQUEST_PATH_MAX + HOST_MAX + 16];

	r->is_connect = r->parser.method == HTTP_CONNECT;
	snprintf(r->method, sizeof(r->method), "%s", http_method_str(r->parser.method));
	if (r->arena_used == 0)
		return fail(r, "no request target");
	if (r->origin_form && url[0] == '/') { /* an absolute URL is a proxy request, as on 3128 */
		if (origin_url(r, url, origin, sizeof(origin)) < 0)
			return -EINVAL;
		url = origin;
	}

	http_parser_url_init(&u);
	if (http_parser_parse_url(url, strlen(url), r->is_connect, &u) != 0)
		return fail(r, "malformed request target");
	if (!(u.field_set & (1 << UF_HOST)))
		return fail(r, r->is_connect
		                   ? "CONNECT needs host:port"
		                   : "not a proxy request (the target must be an absolute URL)");
	if (u.field_set & (1 << UF_USERINFO))
		return fail(r, "userinfo in the URL");
	if (!r->is_connect) {
		const char *schema = url + u.field_data[UF_SCHEMA].off;
		size_t slen = u.field_data[UF_SCHEMA].len;
		if (!(u.field_set & (1 << UF_SCHEMA)) ||
		    !((slen == 4 && strncasecmp(schema, "http", 4) == 0) ||
		      (slen == 5 && strncasecmp(schema, "https", 5) == 0)))
			return fail(r, "only http:// and https:// URLs are fetched");
		/* https:// in a plain request: a client without TLS (the agent) asks the proxy
		 * to fetch it. Curl and browsers use CONNECT instead. */
		r->https = slen == 5;
	}

	/* http-parser leaves out an IPv6 host's brackets; host_normalize wants them back. */
	char host[HOST_MAX * 4 + 2];
	size_t off = u.field_data[UF_HOST].off, len = u.field_data[UF_HOST].len;
	bool v6 = off > 0 && url[off - 1] == '[';
	if (len + 3 > sizeof(host))
		return fail(r, "host too long");
	snprintf(host, sizeof(host), "%s%.*s%s", v6 ? "[" : "", (int)len, url + off, v6 ? "]" : "");
	const char *why = NULL;
	if (host_normalize(host, strlen(host), r->host, &r->kind, &why) < 0) {
		/* Keep what was asked for, for the audit, but never use it. */
		snprintf(r->host, sizeof(r->host), "%.*s", (int)(len < 200 ? len : 200), url + off);
		return fail(r, why);
	}
	r->port = (u.field_set & (1 << UF_PORT)) ? u.port : r->https ? 443 : 80;
	if (r->port == 0)
		return fail(r, "port 0");
	if (r->is_connect)
		return 0;

	size_t p_off = u.field_data[UF_PATH].off, p_len = u.field_data[UF_PATH].len;
	size_t q_off = u.field_data[UF_QUERY].off, q_len = u.field_data[UF_QUERY].len;
	bool has_path = u.field_set & (1 << UF_PATH), has_query = u.field_set & (1 << UF_QUERY);
	if (p_len + q_len + 3 > sizeof(r->path))
		return fail(r, "URL too long");
	snprintf(r->path, sizeof(r->path), "%.*s%s%.*s", has_path ? (int)p_len : 1,
	         has_path ? url + p_off : "/", has_query ? "?" : "", has_query ? (int)q_len : 0,
	         has_query ? url + q_off : "");
	return 0;
}

const char *
request_header_name(const struct request *r, size_t i)
{
	return r->arena + r->headers[i].name;
}

const char *
request_header_value(const struct request *r, size_t i)
{
	return r->arena + r->headers[i].value;
}

bool
request_hop_by_hop(const char *name)
{
	static const char *const names[] = {
	    "connection",
	    "keep-alive",
	    "proxy-connection",
	    "proxy-authorization",
	    "proxy-authenticate",
	    "te",
	    "trailer",
	    "upgrade",
	    "host",
	    "transfer-encoding",
	    "content-length",
	    "expect",
	};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strcasecmp(name, names[i]) == 0)
			return true;
	return false;
}

bool
request_expects_continue(const struct request *r)
{
	for (size_t i = 0; i < r->n_headers; i++)
		if (strcasecmp(request_header_name(r, i), "expect") == 0 &&
		    strcasecmp(request_header_value(r, i), "100-continue") == 0)
			return true;
	return false;
}
