/*
 * hostname.h: one canonical spelling for every host a request names, so that the allowlist
 * and the SSRF guard compare like with like. Refuses the tricks that make filters disagree
 * with resolvers: trailing dots, IPv4 in decimal, octal or hex or with fewer than four parts,
 * userinfo, zone ids, bad labels. Unicode names are mapped to their A-label (punycode) form by
 * UTS #46 (case folding, width folding, NFC), so a confusable does not match the name it
 * imitates and a full-width spelling matches the real one.
 */
#ifndef CLAWBOX_HOSTNAME_H
#define CLAWBOX_HOSTNAME_H

#include <stddef.h>

#define HOST_MAX 254 /* 253 characters of name and the NUL */

enum host_kind {
	HOST_NAME,
	HOST_IPV4, /* canonical dotted quad */
	HOST_IPV6, /* canonical inet_ntop() text, without brackets */
};

/* Normalizes the host in[0..len) (IPv6 literals in brackets) into out (HOST_MAX bytes).
 * Returns 0 and sets *ret_kind, or -EINVAL with *ret_why naming the problem. */
int host_normalize(const char *in, size_t len, char *out, enum host_kind *ret_kind,
                   const char **ret_why);

#endif
