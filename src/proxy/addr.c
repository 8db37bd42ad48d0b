/*
 * addr.c: see addr.h. Tables of ranges, checked in order.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "addr.h"
#include "macro.h"

static const struct {
	uint32_t net, mask;
	enum addr_class cls;
} v4_ranges[] = {
    {0x00000000, 0xff000000, ADDR_UNSPECIFIED}, /* 0.0.0.0/8 */
    {0x0a000000, 0xff000000, ADDR_PRIVATE},     /* 10/8 */
    {0x64400000, 0xffc00000, ADDR_CGNAT},       /* 100.64/10 */
    {0x7f000000, 0xff000000, ADDR_LOOPBACK},    /* 127/8 */
    {0xa9fe0000, 0xffff0000, ADDR_LINK_LOCAL},  /* 169.254/16 */
    {0xac100000, 0xfff00000, ADDR_PRIVATE},     /* 172.16/12 */
    {0xc0000000, 0xffffff00, ADDR_RESERVED},    /* 192.0.0/24 */
    {0xc0a80000, 0xffff0000, ADDR_PRIVATE},     /* 192.168/16 */
    {0xc6120000, 0xfffe0000, ADDR_RESERVED},    /* 198.18/15 */
    {0xe0000000, 0xf0000000, ADDR_MULTICAST},   /* 224/4 */
    {0xffffffff, 0xffffffff, ADDR_MULTICAST},   /* broadcast */
    {0xf0000000, 0xf0000000, ADDR_RESERVED},    /* 240/4 */
};

static const struct {
	uint8_t prefix[16];
	unsigned bits;
	enum addr_class cls;
} v6_ranges[] = {
    {{0}, 128, ADDR_UNSPECIFIED},
    {{[15] = 1}, 128, ADDR_LOOPBACK},
    {{[10] = 0xff, [11] = 0xff}, 96, ADDR_EMBEDS_IPV4}, /* ::ffff:0:0/96 mapped */
    {{0}, 96, ADDR_EMBEDS_IPV4},                        /* ::/96 compatible */
    {{0x00, 0x64, 0xff, 0x9b}, 96, ADDR_EMBEDS_IPV4},   /* NAT64 */
    {{0x20, 0x02}, 16, ADDR_EMBEDS_IPV4},               /* 6to4 */
    {{0x20, 0x01, 0x00, 0x00}, 32, ADDR_EMBEDS_IPV4},   /* Teredo */
    {{0xfc}, 7, ADDR_PRIVATE},                          /* ULA */
    {{0xfe, 0x80}, 10, ADDR_LINK_LOCAL},
    {{0xfe, 0xc0}, 10, ADDR_PRIVATE}, /* site-local (deprecated) */
    {{0xff}, 8, ADDR_MULTICAST},
};

static bool
prefix_match(const uint8_t *a, const uint8_t *p, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;
	if (memcmp(a, p, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[full] & mask) == (p[full] & mask);
}

enum addr_class
addr_classify(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
		for (size_t i = 0; i < ARRAY_SIZE(v4_ranges); i++)
			if ((a & v4_ranges[i].mask) == v4_ranges[i].net)
				return v4_ranges[i].cls;
		return ADDR_PUBLIC;
	}
	if (sa->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		for (size_t i = 0; i < ARRAY_SIZE(v6_ranges); i++)
			if (prefix_match(a, v6_ranges[i].prefix, v6_ranges[i].bits))
				return v6_ranges[i].cls;
		return ADDR_PUBLIC;
	}
	return ADDR_RESERVED;
}

#define HOST_ADDR_MAX 64
static struct sockaddr_storage host_addrs[HOST_ADDR_MAX];
static size_t n_host_addrs;

int
addr_load_host_addresses(void)
{
	struct ifaddrs *list;
	if (getifaddrs(&list) < 0)
		return NEG_ERRNO();
	n_host_addrs = 0;
	for (struct ifaddrs *i = list; i && n_host_addrs < HOST_ADDR_MAX; i = i->ifa_next) {
		if (!i->ifa_addr ||
		    (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
			continue;
		size_t len = i->ifa_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
		                                               : sizeof(struct sockaddr_in6);
		memcpy(&host_addrs[n_host_addrs++], i->ifa_addr, len);
	}
	freeifaddrs(list);
	return 0;
}

static bool
same_ip(const struct sockaddr *a, const struct sockaddr_storage *b)
{
	if (a->sa_family != b->ss_family)
		return false;
	if (a->sa_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
	              &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

enum addr_class
addr_classify_for_host(const struct sockaddr *sa)
{
	enum addr_class c = addr_classify(sa);
	if (c != ADDR_PUBLIC)
		return c;
	for (size_t i = 0; i < n_host_addrs; i++)
		if (same_ip(sa, &host_addrs[i]))
			return ADDR_HOST_OWN;
	return ADDR_PUBLIC;
}

const char *
addr_class_name(enum addr_class c)
{
	static const char *const names[] = {
	    [ADDR_PUBLIC] = "public",
	    [ADDR_UNSPECIFIED] = "unspecified",
	    [ADDR_LOOPBACK] = "loopback",
	    [ADDR_PRIVATE] = "private",
	    [ADDR_LINK_LOCAL] = "link-local",
	    [ADDR_CGNAT] = "carrier-grade NAT",
	    [ADDR_MULTICAST] = "multicast",
	    [ADDR_RESERVED] = "reserved",
	    [ADDR_EMBEDS_IPV4] = "IPv6 embedding IPv4",
	    [ADDR_HOST_OWN] = "this host's own",
	};
	return (unsigned)c < ARRAY_SIZE(names) && names[c] ? names[c] : "unknown";
}
