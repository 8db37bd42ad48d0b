/*
 * addr.h: the SSRF guard's view of an address. Every address a request's host resolves to is
 * classified before the proxy connects, and the connect goes to that same address (no second
 * lookup, so no DNS rebinding window). Only ADDR_PUBLIC passes on its own; anything else needs
 * an --allow entry naming that exact address (allowlist_names_address).
 */
#ifndef CLAWBOX_ADDR_H
#define CLAWBOX_ADDR_H

#include <sys/socket.h>

enum addr_class {
	ADDR_PUBLIC,
	ADDR_UNSPECIFIED, /* 0.0.0.0/8, :: */
	ADDR_LOOPBACK,    /* 127/8, ::1 */
	ADDR_PRIVATE,     /* 10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10 */
	ADDR_LINK_LOCAL,  /* 169.254/16 (cloud metadata), fe80::/10 */
	ADDR_CGNAT,       /* 100.64/10 */
	ADDR_MULTICAST,   /* 224/4, ff00::/8, broadcast */
	ADDR_RESERVED,    /* 192.0.0/24, 198.18/15, 240/4 */
	ADDR_EMBEDS_IPV4, /* ::ffff:0:0/96, ::/96, 64:ff9b::/96, 2002::/16, 2001::/32 */
	ADDR_HOST_OWN,    /* one of this machine's interface addresses */
};

/* Classifies an AF_INET or AF_INET6 address (other families: ADDR_RESERVED). */
enum addr_class addr_classify(const struct sockaddr *sa);

/* Also checks against this machine's own interface addresses (read once, at start). */
enum addr_class addr_classify_for_host(const struct sockaddr *sa);
int addr_load_host_addresses(void);

const char *addr_class_name(enum addr_class c);

#endif
