/*
 * fuzz-services.c: the placeholder swap (src/proxy/services.c) on whatever request head the
 * sandbox sends: the header values (Basic credentials decoded, swapped, encoded again) and
 * the URL query, for a service with a fixed secret and placeholder. Besides the sanitizers'
 * checks: the placeholder never survives in a header value that held it alone, and the query
 * rewrite either fits or says -E2BIG. libFuzzer entry point; replay.c runs the saved corpus in
 * `make check`.
 */
#include <event2/buffer.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"
#include "services.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PH "clawbox-placeholder-fz-0123456789abcdef0123456789abcdef"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct services s;
	static struct allowlist hosts;
	static char secret[] = "s3cr&t=+/ value";
	static struct request r;
	if (s.n == 0) {
		services_init(&s);
		struct service *sv = &s.v[0];
		snprintf(sv->name, sizeof(sv->name), "fz");
		sv->hosts = &hosts;
		sv->secret = secret;
		sv->secret_len = strlen(secret);
		snprintf(sv->header_name, sizeof(sv->header_name), "Authorization");
		snprintf(sv->header_prefix, sizeof(sv->header_prefix), "Bearer ");
		snprintf(sv->placeholder, sizeof(sv->placeholder), "%s", PH);
		sv->query_any = true;
		s.n = 1;
	}
	request_init(&r, 8192, 1 << 16);
	size_t used = 0;
	enum request_status st = request_feed(&r, (const char *)data, size, &used);
	if (st != REQ_HEAD && st != REQ_DONE)
		return 0;
	/* Origin form, as inside an intercepted tunnel. */
	const char *url = r.arena + r.url;
	if (r.arena_used == 0 || strlen(url) >= sizeof(r.path))
		return 0;
	snprintf(r.path, sizeof(r.path), "%s", url);
	s.v[0].query_any = size % 2 == 0;
	snprintf(s.v[0].query_param, sizeof(s.v[0].query_param), "%s", size % 3 ? "" : "t");
	int q = services_rewrite_query(&s, 0, &r);
	if (q < 0 && q != -E2BIG)
		abort();
	if (strlen(r.path) >= sizeof(r.path))
		abort();
	struct evbuffer *out = evbuffer_new();
	services_write_headers(&s, 0, &r, out);
	services_write_headers(&s, -1, &r, out);
	size_t n = evbuffer_get_length(out);
	const char *text = (const char *)evbuffer_pullup(out, -1);
	for (size_t i = 0; i < r.n_headers; i++)
		if (strcmp(request_header_value(&r, i), PH) == 0 && n &&
		    !memmem(text, n, secret, strlen(secret)))
			abort(); /* a placeholder alone in a value must have become the secret */
	evbuffer_free(out);
	return 0;
}
