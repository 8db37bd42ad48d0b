/*
 * fuzz-rules.c: the request rules (rules.c: the JSON allow entry, the path check, the
 * judgement) and the model fence (model-fence.c: endpoints, anthropic-beta, the JSON body)
 * against arbitrary bytes. The input is split at its first newline: an allow entry, then a
 * request line "METHOD PATH" whose PATH is also judged by the fence, with the rest of the
 * input as its body. libFuzzer entry point; tests/fuzz/replay.c replays the corpus in
 * `make check`.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "allowlist.h"
#include "model-fence.h"
#include "request.h"
#include "rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct allowlist a;
	static struct request r;
	static char buf[1 << 16];
	const char *why;

	if (size >= sizeof(buf))
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	char *line = strchr(buf, '\n');
	const char *rest = "";
	if (line) {
		*line = '\0';
		rest = line + 1;
	}
	memset(&a, 0, sizeof(a));
	(void)allowlist_add(&a, buf, &why);
	(void)allowlist_add(
	    &a, "{\"host\":\"fuzz.test\",\"paths\":[\"/a/\"],\"methods\":[\"GET\"]}", &why);

	/* "METHOD PATH\n" then the body. */
	char method[16] = "GET", path[REQUEST_PATH_MAX] = "/";
	const char *nl = strchr(rest, '\n');
	size_t head = nl ? (size_t)(nl - rest) : strlen(rest);
	const char *sp = memchr(rest, ' ', head);
	if (sp && (size_t)(sp - rest) < sizeof(method) &&
	    head - (size_t)(sp - rest) - 1 < sizeof(path)) {
		snprintf(method, sizeof(method), "%.*s", (int)(sp - rest), rest);
		snprintf(path, sizeof(path), "%.*s", (int)(head - (size_t)(sp - rest) - 1), sp + 1);
	}
	const char *body = nl ? nl + 1 : "";
	(void)rules_path_check(path, &why);
	struct rule_verdict v;
	(void)rules_judge(&a, method, "fuzz.test", HOST_NAME, 80, path, &v);
	(void)rules_judge(&a, method, "fuzz.test", HOST_NAME, 443, NULL, &v);
	if (a.n > 0 && a.rules[0].kind == HOST_NAME)
		(void)rules_judge(&a, method, a.rules[0].host, HOST_NAME, 80, path, &v);

	struct model_fence f = {0};
	(void)model_fence_allow(&f, "web_search");
	request_init(&r, 4096, 1 << 16);
	snprintf(r.method, sizeof(r.method), "%s", method);
	snprintf(r.path, sizeof(r.path), "%s", path);
	char reason[RULES_REASON_MAX];
	(void)model_fence_head(&f, &r, reason, sizeof(reason));
	(void)model_fence_body(&f, &r, body, strlen(body), reason, sizeof(reason));
	return 0;
}
