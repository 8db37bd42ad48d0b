/*
 * test-proxy-egress.c: the proxy's egress verdicts (egress.c): what --egress accepts, which
 * verdict a request gets from a rule, an --allow entry or "unlisted", and how taint changes it
 * (only toward stricter, only for requests that can carry data to untrusted hosts).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "allowlist.h"
#include "egress.h"
#include "rules.h"
#include "tap.h"

static struct egress_policy p;

static void
bad(const char *json)
{
	const char *why = "accepted!";
	ok(egress_parse(&p, json, &why) < 0, "--egress %s refused (%s)", json, why);
}

static enum egress_verdict
judge(const struct egress_taint *t, const char *host, uint16_t port, bool allowed, bool input,
      struct egress_decision *d)
{
	egress_judge(&p, t, host, HOST_NAME, port, allowed, input, d);
	return d->verdict;
}

static double
now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The proxy's policy check on one request, as decide() makes it before anything is resolved:
 * the egress verdict (32 rules, a tainted run) and the allowlist with its request rules (64
 * entries), median and p95 over 20,000 requests. */
static int
bench(void)
{
	enum { N = 20000 };
	static double t[N];
	static struct allowlist a;
	const char *why = "";
	char spec[256], json[8192];
	for (int i = 0; i < 60; i++) {
		snprintf(spec, sizeof(spec), "host%d.example", i);
		allowlist_add(&a, spec, &why);
	}
	for (int i = 0; i < 4; i++) {
		snprintf(spec, sizeof(spec),
		         "{\"host\": \"api%d.example\", \"methods\": [\"GET\", \"POST\"], "
		         "\"paths\": [\"/v1/\", \"/v2/repos/\"], \"max_body\": \"1M\"}",
		         i);
		allowlist_add(&a, spec, &why);
	}
	size_t n = (size_t)snprintf(json, sizeof(json), "{\"unlisted\": \"ask\", \"rules\": [");
	for (int i = 0; i < 32; i++)
		n += (size_t)snprintf(json + n, sizeof(json) - n,
		                      "%s{\"host\": \"rule%d.example\", \"verdict\": \"allow\"}",
		                      i ? "," : "", i);
	snprintf(json + n, sizeof(json) - n, "]}");
	if (egress_parse(&p, json, &why) < 0)
		return fprintf(stderr, "bench: %s\n", why), 1;
	struct egress_taint tainted = {0};
	egress_taint_add(&tainted, "response from untrusted host page.example");
	unsigned allowed = 0;
	for (int i = 0; i < N; i++) {
		struct egress_decision d;
		struct rule_verdict v;
		double t0 = now_us();
		/* The last entry with rules: the longest walk through both lists. */
		egress_judge(&p, &tainted, "api3.example", HOST_NAME, 443, true, false, &d);
		if (d.verdict == EGRESS_ALLOW && rules_judge(&a, "POST", "api3.example", HOST_NAME,
		                                             443, "/v2/repos/x?y=1", &v) == 0)
			allowed++;
		t[i] = now_us() - t0;
	}
	qsort(t, N, sizeof(t[0]), cmp);
	printf("policy check, proxy request (egress verdict + allowlist rules): median %.2f us, "
	       "p95 %.2f us (budget 100 us)%s\n",
	       t[N / 2], t[N * 95 / 100], allowed == N ? "" : " WRONG VERDICT");
	return allowed == N ? 0 : 1;
}

int
main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--bench") == 0)
		return bench();
	const char *why = "";
	struct egress_decision d;
	struct egress_taint clean = {0}, tainted = {0};

	bad("[]");
	bad("{\"unlisted\": \"allow\"}");
	bad("{\"unlisted\": \"ask\", \"x\": 1}");
	bad("{\"rules\": [{\"host\": \"a.example\"}]}");
	bad("{\"rules\": [{\"host\": \"a.example\", \"verdict\": \"yes\"}]}");
	bad("{\"rules\": [{\"host\": \"a.example\", \"verdict\": \"allow\", \"trusted\": 1}]}");
	bad("{\"rules\": [{\"host\": \"a.example\", \"verdict\": \"allow\", \"when\": \"ask\"}]}");
	bad("{\"rules\": [{\"host\": \"http://a.example/\", \"verdict\": \"allow\"}]}");
	bad("{\"rules\": [{\"host\": \"a.example:0\", \"verdict\": \"allow\"}]}");
	bad("{\"unlisted\": \"ask\", \"unlisted\": \"deny\"}"); /* duplicate keys */

	ok(egress_parse(&p,
	                "{\"unlisted\": \"ask\", \"rules\": ["
	                "{\"host\": \"docs.example\", \"verdict\": \"allow\", \"trusted\": true},"
	                "{\"host\": \"api.example:8443\", \"verdict\": \"ask\"},"
	                "{\"host\": \"*.bad.example\", \"verdict\": \"deny\"},"
	                "{\"host\": \"paste.example\", \"verdict\": \"allow\", "
	                "\"when_tainted\": \"deny\"},"
	                "{\"host\": \"free.example\", \"verdict\": \"allow\", "
	                "\"when_tainted\": \"allow\"}]}",
	                &why) == 0,
	   "a full --egress parses (%s)", why);

	/* Clean runs: the rule's verdict, the allow entry's allow, "unlisted" for the rest. */
	ok(judge(&clean, "docs.example", 443, false, true, &d) == EGRESS_ALLOW && d.trusted,
	   "a trusted rule allows");
	ok(judge(&clean, "api.example", 8443, false, false, &d) == EGRESS_ASK && d.by_rule,
	   "an ask rule asks");
	ok(judge(&clean, "api.example", 443, false, false, &d) == EGRESS_ASK &&
	       strcmp(d.why, "unlisted host") == 0,
	   "another port of it is unlisted (%s)", d.why);
	ok(judge(&clean, "x.bad.example", 80, true, false, &d) == EGRESS_DENY && d.listed,
	   "a deny rule wins over an --allow entry");
	ok(judge(&clean, "sink.example", 443, true, true, &d) == EGRESS_ALLOW && !d.trusted,
	   "an --allow entry: allow, untrusted");
	ok(judge(&clean, "paste.example", 443, false, true, &d) == EGRESS_ALLOW,
	   "clean: when_tainted does not apply");

	/* Tainted: requests with input to untrusted hosts get when_tainted, never looser. */
	ok(egress_taint_add(&tainted, "response from untrusted host page.example"),
	   "a new cause is reported");
	ok(!egress_taint_add(&tainted, "response from untrusted host page.example"),
	   "the same cause is not reported twice");
	ok(judge(&tainted, "sink.example", 443, true, true, &d) == EGRESS_ASK &&
	       strcmp(d.why, "tainted: response from untrusted host page.example") == 0,
	   "tainted: a body or query to an allowed untrusted host asks (%s)", d.why);
	ok(judge(&tainted, "sink.example", 443, true, false, &d) == EGRESS_ALLOW,
	   "tainted: a request without input still goes");
	ok(judge(&tainted, "docs.example", 443, false, true, &d) == EGRESS_ALLOW,
	   "tainted: a trusted host is not a tainted sink");
	ok(judge(&tainted, "paste.example", 443, false, true, &d) == EGRESS_DENY,
	   "tainted: when_tainted deny denies");
	ok(judge(&tainted, "free.example", 443, false, true, &d) == EGRESS_ALLOW,
	   "tainted: when_tainted allow allows");
	ok(judge(&tainted, "x.bad.example", 443, false, true, &d) == EGRESS_DENY,
	   "tainted: deny stays deny");
	ok(judge(&tainted, "new.example", 443, false, true, &d) == EGRESS_ASK,
	   "tainted: unlisted stays its verdict (ask)");

	/* Bounded causes. */
	struct egress_taint many = {0};
	char cause[64];
	int reported = 0;
	for (int i = 0; i < 40; i++) {
		snprintf(cause, sizeof(cause), "response from untrusted host h%d.example", i);
		reported += egress_taint_add(&many, cause);
	}
	ok(reported == EGRESS_CAUSES_MAX && many.more == 40 - EGRESS_CAUSES_MAX,
	   "taint causes: %d reported, %llu counted", reported, (unsigned long long)many.more);
	ok(!egress_taint_add(&many, "line\nbreak") && many.tainted, "past the cap: counted only");
	struct egress_taint one = {0};
	egress_taint_add(&one, "a\nb");
	ok(strcmp(one.causes[0], "a?b") == 0, "a cause is one line (%s)", one.causes[0]);

	/* The SSRF guard's exception: an address a rule that is not deny names. */
	ok(egress_parse(&p,
	                "{\"rules\": [{\"host\": \"127.0.0.1:8080\", \"verdict\": \"ask\"},"
	                "{\"host\": \"127.0.0.2:8080\", \"verdict\": \"deny\"}]}",
	                &why) == 0,
	   "address rules parse");
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(8080)};
	inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
	ok(egress_names_address(&p, (struct sockaddr *)&in), "an ask rule names its address");
	in.sin_port = htons(8081);
	ok(!egress_names_address(&p, (struct sockaddr *)&in), "not another port");
	in.sin_port = htons(8080);
	inet_pton(AF_INET, "127.0.0.2", &in.sin_addr);
	ok(!egress_names_address(&p, (struct sockaddr *)&in), "a deny rule names nothing");
	egress_policy_init(&p);
	ok(judge(&clean, "a.example", 443, false, false, &d) == EGRESS_DENY && !d.listed,
	   "no --egress: unlisted hosts are denied");
	return tap_done();
}
