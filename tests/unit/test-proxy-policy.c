/*
 * test-proxy-policy.c: host normalization, the allowlist and the SSRF address classes, with
 * the spellings that have fooled other proxies' filters.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <string.h>

#include "addr.h"
#include "allowlist.h"
#include "hostname.h"
#include "tap.h"

static void
host_ok(const char *in, const char *want, enum host_kind want_kind)
{
	char out[HOST_MAX] = "";
	enum host_kind kind = HOST_NAME;
	const char *why = NULL;
	int r = host_normalize(in, strlen(in), out, &kind, &why);
	ok(r == 0 && strcmp(out, want) == 0 && kind == want_kind, "host \"%s\" -> \"%s\" (%s)", in,
	   want, r == 0 ? out : why);
}

static void
host_bad(const char *in)
{
	char out[HOST_MAX];
	enum host_kind kind;
	const char *why = NULL;
	int r = host_normalize(in, strlen(in), out, &kind, &why);
	ok(r == -EINVAL && why, "host \"%s\" refused (%s)", in, why ? why : "accepted!");
}

static struct sockaddr_storage
sa(const char *text, uint16_t port)
{
	struct sockaddr_storage ss = {0};
	if (strchr(text, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		inet_pton(AF_INET6, text, &s6->sin6_addr);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		inet_pton(AF_INET, text, &s4->sin_addr);
	}
	return ss;
}

static void
cls(const char *text, enum addr_class want)
{
	struct sockaddr_storage ss = sa(text, 80);
	enum addr_class got = addr_classify((struct sockaddr *)&ss);
	ok(got == want, "%s is %s (got %s)", text, addr_class_name(want), addr_class_name(got));
}

int
main(void)
{
	host_ok("example.org", "example.org", HOST_NAME);
	host_ok("Example.ORG", "example.org", HOST_NAME);
	host_ok("ｅｘａｍｐｌｅ.org", "example.org", HOST_NAME); /* full-width folds */
	host_ok("bücher.de", "xn--bcher-kva.de", HOST_NAME);
	host_ok("api.github.com", "api.github.com", HOST_NAME);
	host_ok("a-b.c_d.example", "a-b.c_d.example", HOST_NAME);
	host_ok("203.0.113.5", "203.0.113.5", HOST_IPV4);
	host_ok("[2001:db8::1]", "2001:db8::1", HOST_IPV6);
	host_ok("[2001:DB8:0:0::1]", "2001:db8::1", HOST_IPV6);
	host_ok("[::ffff:127.0.0.1]", "::ffff:127.0.0.1", HOST_IPV6);

	/* A Cyrillic "і" in github.com is a different name, not a spelling of it. */
	char out[HOST_MAX];
	enum host_kind kind;
	const char *why;
	int r = host_normalize("gіthub.com", strlen("gіthub.com"), out, &kind, &why);
	ok(r < 0 || strcmp(out, "github.com") != 0, "confusable gіthub.com is not github.com (%s)",
	   r < 0 ? why : out);

	host_bad("");
	host_bad("example.org.");
	host_bad("user@example.org");
	host_bad("user:pass@example.org");
	host_bad("2130706433"); /* 127.0.0.1 in decimal */
	host_bad("0x7f000001"); /* in hex */
	host_bad("0x7f.0.0.1");
	host_bad("017700000001"); /* in octal */
	host_bad("0177.0.0.1");
	host_bad("127.1");
	host_bad("127.0.1");
	host_bad("1.2.3.4.5");
	host_bad("256.1.1.1");
	host_bad("01.2.3.4");
	host_bad("[fe80::1%eth0]");
	host_bad("[::1");
	host_bad("exa mple.org");
	host_bad("-bad.example");
	host_bad("bad-.example");
	host_bad("a..b");
	host_bad(".example.org");
	host_bad("example.org/path");
	host_bad("example.org:80");
	host_bad("evil.com\\@good.com");
	host_bad("0");
	host_bad("1e3");

	struct allowlist a = {0};
	ok(allowlist_add(&a, "example.org", &why) == 0, "allow example.org");
	ok(allowlist_add(&a, "api.github.com:8443", &why) == 0, "allow api.github.com:8443");
	ok(allowlist_add(&a, "*.wiki.test", &why) == 0, "allow *.wiki.test");
	ok(allowlist_add(&a, "127.0.0.1:11434", &why) == 0, "allow 127.0.0.1:11434");
	ok(allowlist_add(&a, "[::1]:8080", &why) == 0, "allow [::1]:8080");
	ok(allowlist_match(&a, "example.org", HOST_NAME, 443), "example.org:443 allowed");
	ok(allowlist_match(&a, "example.org", HOST_NAME, 80), "example.org:80 allowed");
	ok(!allowlist_match(&a, "example.org", HOST_NAME, 8080), "example.org:8080 refused");
	ok(!allowlist_match(&a, "www.example.org", HOST_NAME, 443), "www.example.org refused");
	ok(!allowlist_match(&a, "badexample.org", HOST_NAME, 443), "badexample.org refused");
	ok(allowlist_match(&a, "api.github.com", HOST_NAME, 8443), "api.github.com:8443 allowed");
	ok(!allowlist_match(&a, "api.github.com", HOST_NAME, 443), "api.github.com:443 refused");
	ok(allowlist_match(&a, "en.wiki.test", HOST_NAME, 443), "en.wiki.test allowed");
	ok(allowlist_match(&a, "a.b.wiki.test", HOST_NAME, 80), "a.b.wiki.test allowed");
	ok(!allowlist_match(&a, "wiki.test", HOST_NAME, 443), "wiki.test itself refused");
	ok(!allowlist_match(&a, "evilwiki.test", HOST_NAME, 443), "evilwiki.test refused");
	ok(!allowlist_match(&a, "wiki.test.evil.com", HOST_NAME, 443),
	   "wiki.test.evil.com refused");
	ok(!allowlist_match(&a, "example.org", HOST_IPV4, 443), "kind must match too");
	struct sockaddr_storage s1 = sa("127.0.0.1", 11434), s2 = sa("127.0.0.1", 11435),
	                        s3 = sa("::1", 8080), s4 = sa("127.0.0.2", 11434);
	ok(allowlist_names_address(&a, (struct sockaddr *)&s1), "127.0.0.1:11434 named");
	ok(!allowlist_names_address(&a, (struct sockaddr *)&s2), "127.0.0.1:11435 not named");
	ok(allowlist_names_address(&a, (struct sockaddr *)&s3), "[::1]:8080 named");
	ok(!allowlist_names_address(&a, (struct sockaddr *)&s4), "127.0.0.2:11434 not named");
	const char *bad_rules[] = {"",
	                           "*.",
	                           "*.1.2.3.4",
	                           "example.org:0",
	                           "example.org:65536",
	                           "example.org:x",
	                           "example.org.",
	                           "[::1",
	                           "[::1]x",
	                           "a..b"};
	for (size_t i = 0; i < sizeof(bad_rules) / sizeof(bad_rules[0]); i++)
		ok(allowlist_add(&a, bad_rules[i], &why) == -EINVAL, "rule \"%s\" refused",
		   bad_rules[i]);

	cls("8.8.8.8", ADDR_PUBLIC);
	cls("203.0.113.7", ADDR_PUBLIC);
	cls("0.0.0.0", ADDR_UNSPECIFIED);
	cls("127.0.0.1", ADDR_LOOPBACK);
	cls("127.255.255.254", ADDR_LOOPBACK);
	cls("10.1.2.3", ADDR_PRIVATE);
	cls("172.16.0.1", ADDR_PRIVATE);
	cls("172.31.255.255", ADDR_PRIVATE);
	cls("172.32.0.1", ADDR_PUBLIC);
	cls("192.168.1.1", ADDR_PRIVATE);
	cls("169.254.169.254", ADDR_LINK_LOCAL);
	cls("100.64.0.1", ADDR_CGNAT);
	cls("100.127.255.255", ADDR_CGNAT);
	cls("100.128.0.1", ADDR_PUBLIC);
	cls("224.0.0.1", ADDR_MULTICAST);
	cls("255.255.255.255", ADDR_MULTICAST);
	cls("240.0.0.1", ADDR_RESERVED);
	cls("198.18.0.1", ADDR_RESERVED);
	cls("::", ADDR_UNSPECIFIED);
	cls("::1", ADDR_LOOPBACK);
	cls("::ffff:127.0.0.1", ADDR_EMBEDS_IPV4);
	cls("::ffff:8.8.8.8", ADDR_EMBEDS_IPV4);
	cls("::127.0.0.1", ADDR_EMBEDS_IPV4);
	cls("64:ff9b::a00:1", ADDR_EMBEDS_IPV4);
	cls("2002:7f00:1::", ADDR_EMBEDS_IPV4);
	cls("2001:0:1::1", ADDR_EMBEDS_IPV4);
	cls("fc00::1", ADDR_PRIVATE);
	cls("fd12:3456::1", ADDR_PRIVATE);
	cls("fe80::1", ADDR_LINK_LOCAL);
	cls("febf::1", ADDR_LINK_LOCAL);
	cls("fec0::1", ADDR_PRIVATE);
	cls("ff02::1", ADDR_MULTICAST);
	cls("2606:4700::1111", ADDR_PUBLIC);
	cls("2001:db8::1", ADDR_PUBLIC);

	ok(addr_load_host_addresses() == 0, "host addresses load");
	/* Each of this machine's own addresses is refused, whatever its range. */
	struct ifaddrs *ifs = NULL, *i;
	int own = 0, refused = 0;
	getifaddrs(&ifs);
	for (i = ifs; i; i = i->ifa_next)
		if (i->ifa_addr &&
		    (i->ifa_addr->sa_family == AF_INET || i->ifa_addr->sa_family == AF_INET6)) {
			own++;
			refused += addr_classify_for_host(i->ifa_addr) != ADDR_PUBLIC;
		}
	freeifaddrs(ifs);
	ok(own > 0 && refused == own, "all %d of this host's addresses are refused (%d)", own,
	   refused);
	struct sockaddr_storage lo = sa("127.0.0.1", 1);
	ok(addr_classify_for_host((struct sockaddr *)&lo) == ADDR_LOOPBACK,
	   "loopback stays loopback with host addresses loaded");
	return tap_done();
}
