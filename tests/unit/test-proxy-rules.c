/*
 * test-proxy-rules.c: request rules on allow entries (rules.c) and the model fence
 * (model-fence.c): what an entry may say, which spellings of a path are refused outright,
 * how entries for one host combine, and what the model API's key may be used for.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "allowlist.h"
#include "model-fence.h"
#include "request.h"
#include "rules.h"
#include "tap.h"

static struct allowlist a;

static void
path_refused(const char *p)
{
	const char *why = NULL;
	ok(rules_path_check(p, &why) == -EINVAL, "path %s refused (%s)", p,
	   why ? why : "accepted!");
}

static void
path_ok(const char *p)
{
	const char *why = "";
	ok(rules_path_check(p, &why) == 0, "path %s accepted (%s)", p, why);
}

static int
judge(const char *method, const char *host, uint16_t port, const char *path, struct rule_verdict *v)
{
	return rules_judge(&a, method, host, HOST_NAME, port, path, v);
}

static void
fence_case(const char *method, const char *path, const char *beta, const char *body, int want,
           const struct model_fence *f)
{
	static struct request r;
	char reason[RULES_REASON_MAX] = "";
	request_init(&r, 4096, 1 << 20);
	snprintf(r.method, sizeof(r.method), "%s", method);
	snprintf(r.path, sizeof(r.path), "%s", path);
	if (beta) {
		/* A header as request.c stores it: name and value in the arena. */
		memcpy(r.arena, "anthropic-beta", 15);
		snprintf(r.arena + 15, sizeof(r.arena) - 15, "%s", beta);
		r.headers[0].name = 0;
		r.headers[0].value = 15;
		r.n_headers = 1;
	}
	int got = model_fence_head(f, &r, reason, sizeof(reason));
	if (got == 0 && body)
		got = model_fence_body(f, &r, body, strlen(body), reason, sizeof(reason));
	ok(got == want, "fence: %s %s%s%s %s -> %s (%s)", method, path, beta ? " beta=" : "",
	   beta ? beta : "", body ? body : "", want ? "refused" : "allowed", reason);
}

int
main(void)
{
	const char *why = NULL;
	struct rule_verdict v;

	path_ok("/repos/ana/x");
	path_ok("/.well-known/x");
	path_ok("/a/...b/c");
	path_ok("/a?x=../..//%2e");
	path_refused("/a/../b");
	path_refused("/a/./b");
	path_refused("/a/..");
	path_refused("/a/.");
	path_refused("/..;/b");
	path_refused("/a//b");
	path_refused("//a");
	path_refused("/a/%2e%2e/b");
	path_refused("/a/%2E./b");
	path_refused("/a%2fb");
	path_refused("/a%2F..");
	path_refused("/a%5cb");
	path_refused("/a\\b");
	path_refused("/a/%252e%252e/b");
	path_refused("/a/%c0%ae%c0%ae/b");
	path_refused("/a/%C1%9C");
	path_refused("/a%00.json");
	path_refused("a/b");
	path_refused("");

	ok(allowlist_add(&a,
	                 "{\"host\": \"api.github.com\", \"methods\": [\"GET\"], \"paths\": "
	                 "[\"/repos/ana/\"], \"max_body\": \"1K\", \"max_response\": 4096}",
	                 &why) == 0,
	   "a rule entry parses (%s)", why ? why : "");
	ok(allowlist_match(&a, "api.github.com", HOST_NAME, 443), "its host is in the allowlist");
	ok(judge("GET", "api.github.com", 443, "/repos/ana/x?y", &v) == 0 && v.max_body == 1024 &&
	       v.max_response == 4096,
	   "GET under the prefix passes, with the entry's caps");
	ok(judge("POST", "api.github.com", 443, "/repos/ana/x", &v) == -EACCES &&
	       strstr(v.reason, "method POST"),
	   "another method: refused (%s)", v.reason);
	ok(judge("GET", "api.github.com", 443, "/repos/anabel/x", &v) == -EACCES,
	   "a prefix is a prefix of the path, not of a name: /repos/anabel refused");
	ok(judge("GET", "api.github.com", 443, "/repos/ana/../bob", &v) == -EACCES,
	   "a dot segment under the prefix: refused (%s)", v.reason);
	ok(judge("GET", "api.github.com", 443, NULL, &v) == -EACCES && strstr(v.reason, "tunnel"),
	   "a tunnel to a host with only rule entries: refused (%s)", v.reason);
	ok(judge("GET", "other.example", 443, "/", &v) == -EACCES &&
	       strstr(v.reason, "not in the allowlist"),
	   "another host: not in the allowlist");
	ok(allowlist_add(&a,
	                 "{\"host\": \"api.github.com\", \"methods\": [\"POST\"], \"paths\": "
	                 "[\"/graphql\"]}",
	                 &why) == 0,
	   "a second rule entry for the same host");
	ok(judge("POST", "api.github.com", 443, "/graphql", &v) == 0 && v.max_body == 0,
	   "entries combine: the second allows POST /graphql, with its own (no) caps");
	ok(judge("POST", "api.github.com", 443, "/repos/ana/x", &v) == -EACCES,
	   "...but neither allows POST /repos/ana/x");
	ok(allowlist_add(&a, "api.github.com", &why) == 0 &&
	       judge("DELETE", "api.github.com", 443, "/anything", &v) == 0 &&
	       judge("GET", "api.github.com", 443, NULL, &v) == 0,
	   "a plain entry for the host allows anything, tunnels too");
	ok(judge("GET", "api.github.com", 443, "/@scope%2fname//x/../y", &v) == 0,
	   "...and its paths are not judged (npm's %%2f, GitLab's encoded project paths)");

	static const char *const bad[] = {
	    "{\"host\": \"a.example\", \"method\": [\"GET\"]}",
	    "{\"paths\": [\"/\"]}",
	    "{\"host\": 1}",
	    "{\"host\": \"a.example\", \"paths\": []}",
	    "{\"host\": \"a.example\", \"paths\": [\"/a/../b\"]}",
	    "{\"host\": \"a.example\", \"paths\": [\"/a?b\"]}",
	    "{\"host\": \"a.example\", \"methods\": [\"get\"]}",
	    "{\"host\": \"a.example\", \"methods\": []}",
	    "{\"host\": \"a.example\", \"max_body\": \"1X\"}",
	    "{\"host\": \"a.example\", \"max_body\": 0}",
	    "{\"host\": \"a.example\", \"host\": \"b.example\"}",
	    "{\"host\": \"*.1.2.3.4\"}",
	    "[\"a.example\"]",
	    "{\"host\": ",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct allowlist *b = calloc(1, sizeof(*b));
		why = NULL;
		ok(b && allowlist_add(b, bad[i], &why) < 0 && why && b->n == 0,
		   "bad entry %s refused (%s)", bad[i], why ? why : "accepted!");
		free(b);
	}

	struct model_fence f = {0}, ws = {0};
	ok(model_fence_allow(&ws, "web_search") == 0 && model_fence_allow(&ws, "mcp") == 0 &&
	       model_fence_allow(&ws, "files-api-2025-04-14") == 0,
	   "fence: tools allowed by name");
	fence_case("POST", "/v1/messages", NULL, "{\"model\":\"m\"}", 0, &f);
	fence_case("POST", "/v1/messages?beta=true", NULL, "{}", 0, &f);
	fence_case("POST", "/v1/messages/count_tokens", NULL, "{}", 0, &f);
	fence_case("POST", "/v1/chat/completions", NULL, "{}", 0, &f);
	fence_case("POST", "/v1/responses", NULL, "{}", 0, &f);
	fence_case("GET", "/v1/models", NULL, "", 0, &f);
	fence_case("GET", "/v1/models/claude-x", NULL, "", 0, &f);
	fence_case("GET", "/v1/messages", NULL, NULL, -EACCES, &f);
	fence_case("POST", "/v1/models", NULL, NULL, -EACCES, &f);
	fence_case("POST", "/v1/files", NULL, NULL, -EACCES, &f);
	fence_case("DELETE", "/v1/files/f1", NULL, NULL, -EACCES, &f);
	fence_case("POST", "/v1/messages/batches", NULL, NULL, -EACCES, &f);
	fence_case("POST", "/v1/messagesx", NULL, NULL, -EACCES, &f);
	fence_case("POST", "/v1/../v1/messages", NULL, NULL, -EACCES, &f);
	fence_case("POST", "/../../other/secret", NULL, NULL, -EACCES, &f);
	fence_case("POST", "/v1/messages", NULL, "[]", -EACCES, &f);
	fence_case("POST", "/v1/messages", NULL, "", -EACCES, &f);
	fence_case("POST", "/v1/messages", NULL,
	           "{\"tools\":[{\"name\":\"a\"},{\"type\":\"custom\",\"name\":\"b\"},"
	           "{\"type\":\"function\",\"function\":{}}]}",
	           0, &f);
	fence_case("POST", "/v1/messages", NULL, "{\"tools\":[{\"type\":\"web_search_20250305\"}]}",
	           -EACCES, &f);
	fence_case("POST", "/v1/messages", NULL, "{\"tools\":[{\"type\":\"web_search_20250305\"}]}",
	           0, &ws);
	fence_case("POST", "/v1/messages", NULL, "{\"tools\":[{\"type\":\"web_searchx\"}]}",
	           -EACCES, &ws);
	fence_case("POST", "/v1/messages", NULL, "{\"tools\":[{\"type\":\"bash_20250124\"}]}",
	           -EACCES, &ws);
	fence_case("POST", "/v1/messages", NULL, "{\"tools\":[{\"type\":7}]}", -EACCES, &f);
	fence_case("POST", "/v1/messages", NULL, "{\"tools\":{}}", -EACCES, &f);
	fence_case("POST", "/v1/messages", NULL, "{\"mcp_servers\":[{\"url\":\"https://x\"}]}",
	           -EACCES, &f);
	fence_case("POST", "/v1/messages", NULL, "{\"mcp_servers\":[]}", 0, &f);
	fence_case("POST", "/v1/messages", NULL, "{\"mcp_servers\":[{\"url\":\"https://x\"}]}", 0,
	           &ws);
	fence_case("POST", "/v1/responses", NULL, "{\"tools\":[{\"type\":\"code_interpreter\"}]}",
	           -EACCES, &ws);
	fence_case("POST", "/v1/chat/completions", NULL, "{\"web_search_options\":{}}", -EACCES,
	           &f);
	fence_case("POST", "/v1/messages", NULL, "{\"tools\":[],\"tools\":[{\"type\":\"x\"}]}",
	           -EACCES, &f);
	fence_case("POST", "/v1/messages", "prompt-caching-2024-07-31", "{}", 0, &f);
	fence_case("POST", "/v1/messages",
	           "interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14", "{}",
	           0, &f);
	fence_case("POST", "/v1/messages", "prompt-caching-2024-07-31, mcp-client-2025-04-04", "{}",
	           -EACCES, &f);
	fence_case("POST", "/v1/messages", "files-api-2025-04-14", "{}", -EACCES, &f);
	fence_case("POST", "/v1/messages", "files-api-2025-04-14", "{}", 0, &ws);
	/* Issue 13: what Claude Code 2.1 and Codex send. */
	fence_case("POST", "/v1/messages?beta=true",
	           "claude-code-20250219,context-1m-2025-08-07,interleaved-thinking-2025-05-14,"
	           "mid-conversation-system-2026-04-07,effort-2025-11-24",
	           "{}", 0, &f);
	fence_case("POST", "/v1/responses", NULL,
	           "{\"tools\":[{\"type\":\"function\",\"name\":\"exec_command\"},"
	           "{\"type\":\"namespace\",\"name\":\"mcp__clawbox\",\"tools\":["
	           "{\"type\":\"function\",\"name\":\"send_message\"}]}]}",
	           0, &f);
	fence_case("POST", "/v1/responses", NULL,
	           "{\"tools\":[{\"type\":\"namespace\",\"name\":\"n\",\"tools\":["
	           "{\"type\":\"web_search\"}]}]}",
	           -EACCES, &f);
	fence_case("POST", "/v1/responses", NULL,
	           "{\"tools\":[{\"type\":\"namespace\",\"tools\":[{\"type\":\"namespace\","
	           "\"tools\":[]}]}]}",
	           -EACCES, &f);
	return tap_done();
}
