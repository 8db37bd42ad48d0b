/*
 * tool-web.c: web_fetch. A GET through the egress proxy, which alone decides what is
 * reachable (allowlist, SSRF guard) and does TLS for https URLs; the agent has neither a
 * resolver nor TLS. Redirects are followed here, a few hops, each one a new request the proxy
 * checks again. The page is size- and time-limited, and HTML is reduced to text.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dbuf.h"
#include "http.h"
#include "json-util.h"
#include "tools.h"

#define MAX_REDIRECTS 5

struct fetch {
	struct http_response resp;
	struct dbuf body;
	bool truncated;
};

static int
fetch_head(void *ctx, const struct http_response *resp)
{
	struct fetch *f = ctx;
	f->resp = *resp;
	return 0;
}

static int
fetch_body(void *ctx, const char *buf, size_t len)
{
	struct fetch *f = ctx;
	if (dbuf_append_capped(&f->body, buf, len)) {
		f->truncated = true;
		return -EFBIG; /* enough: stop reading */
	}
	return 0;
}

static bool
url_ok(const char *u)
{
	if (strncasecmp(u, "http://", 7) != 0 && strncasecmp(u, "https://", 8) != 0)
		return false;
	if (strlen(u) > 4096)
		return false;
	for (const char *p = u; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return false;
	return true;
}

/* Resolves a Location against the URL it came from (absolute, or "/path"). */
static int
redirect_target(const char *from, const char *loc, char *buf, size_t size)
{
	if (strncasecmp(loc, "http://", 7) == 0 || strncasecmp(loc, "https://", 8) == 0)
		return snprintf(buf, size, "%s", loc) < (int)size ? 0 : -ENAMETOOLONG;
	if (loc[0] != '/' || loc[1] == '/')
		return -EINVAL;
	const char *host = strstr(from, "://") + 3;
	size_t origin = (size_t)(host - from) + strcspn(host, "/?#");
	return snprintf(buf, size, "%.*s%s", (int)origin, from, loc) < (int)size ? 0
	                                                                         : -ENAMETOOLONG;
}

void
tool_web_fetch(const struct tool_env *env, json_t *input, struct tool_output *out)
{
	char url[4200];
	snprintf(url, sizeof(url), "%s", json_get_str(input, "url"));
	if (!url_ok(url)) {
		tool_output_error(out, "error: not an http:// or https:// URL: %.200s", url);
		return;
	}
	if (!env->have_proxy) {
		tool_output_error(out, "error: this sandbox has no network (no egress proxy)");
		return;
	}
	int64_t deadline = http_now_ms() + TOOL_FETCH_TIME_MS;
	if (env->deadline_ms && env->deadline_ms < deadline)
		deadline = env->deadline_ms;

	struct fetch f;
	dbuf_init(&f.body, TOOL_FETCH_MAX);
	for (int hop = 0;; hop++) {
		dbuf_reset(&f.body);
		f.truncated = false;
		memset(&f.resp, 0, sizeof(f.resp));
		struct http_request req = {
		    .method = "GET",
		    .url = url,
		    .headers = {"User-Agent: clawbox-agent", "Accept: text/html, text/plain, */*"},
		    .deadline_ms = deadline,
		};
		struct http_handler h = {.on_head = fetch_head, .on_body = fetch_body, .ctx = &f};
		int r = http_exchange(&env->proxy, &req, &h);
		if (r < 0 && !(r == -EFBIG && f.truncated)) {
			tool_output_error(out, "error: fetching %.200s failed: %s", url,
			                  r == -ETIMEDOUT ? "timed out" : strerror(-r));
			break;
		}
		int st = f.resp.status;
		if (st >= 300 && st < 400 && f.resp.location[0]) {
			char next[4200];
			if (hop >= MAX_REDIRECTS ||
			    redirect_target(url, f.resp.location, next, sizeof(next)) < 0 ||
			    !url_ok(next)) {
				tool_output_error(out,
				                  "error: %.200s redirects to %.200s, not followed",
				                  url, f.resp.location);
				break;
			}
			memcpy(url, next, sizeof(url));
			continue;
		}
		if (st == 403 || st == 502 || st == 504 || st == 400) {
			/* The proxy's refusals carry a one-line reason in the body. */
			tool_output_error(out, "error: %.200s: HTTP %d: %.300s", url, st,
			                  dbuf_str(&f.body));
			out->is_error = true;
			break;
		}
		tool_output_printf(out, "URL: %s\nStatus: %d\n\n", url, st);
		const char *ct = f.resp.content_type;
		if (strncasecmp(ct, "text/html", 9) == 0 ||
		    strncasecmp(ct, "application/xhtml", 17) == 0)
			html_to_text(dbuf_str(&f.body), f.body.len, out);
		else if (strncasecmp(ct, "text/", 5) == 0 || strstr(ct, "json") ||
		         strstr(ct, "xml") || !ct[0])
			tool_output_add(out, dbuf_str(&f.body), f.body.len);
		else
			tool_output_printf(out, "(%zu bytes of %s, not shown)\n", f.body.len, ct);
		if (f.truncated)
			tool_output_printf(out, "\n[page cut at %u bytes]", TOOL_FETCH_MAX);
		if (st >= 400)
			out->is_error = true;
		break;
	}
	dbuf_done(&f.body);
}
