/*
 * hostname.c: see hostname.h. Everything a request says about where it goes passes through
 * here before it is compared with anything.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <idn2.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hostname.h"

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Exactly four decimal parts 0-255 without leading zeros: the only IPv4 spelling we take. */
static bool
is_canonical_ipv4(const char *s)
{
	int parts = 0;
	while (*s) {
		if (!is_digit(*s))
			return false;
		const char *start = s;
		unsigned v = 0;
		while (is_digit(*s) && s - start < 4)
			v = v * 10 + (unsigned)(*s++ - '0');
		if (s - start > 3 || v > 255 || (s - start > 1 && *start == '0'))
			return false;
		parts++;
		if (*s == '.')
			s++;
		else if (*s)
			return false;
	}
	return parts == 4 && s[-1] != '.';
}

/* What a resolver or inet_aton() might take as an IPv4 address: a last label that starts
 * with a digit, or one that is hex ("0x7f"). Names like that are refused unless canonical. */
static bool
looks_numeric(const char *s)
{
	const char *last = strrchr(s, '.');
	last = last ? last + 1 : s;
	if (is_digit(last[0]))
		return true;
	struct in_addr a;
	return inet_aton(s, &a) != 0;
}

static int
check_ascii_name(const char *s, const char **why)
{
	size_t len = strlen(s), label = 0;
	if (len == 0 || len > HOST_MAX - 1) {
		*why = "host name empty or too long";
		return -EINVAL;
	}
	for (size_t i = 0; i <= len; i++) {
		char c = s[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63) {
				*why = "empty or over-long label in host name";
				return -EINVAL;
			}
			if (s[i - 1] == '-' || s[i - label] == '-') {
				*why = "label starts or ends with '-'";
				return -EINVAL;
			}
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '-' || c == '_')) {
			*why = "character not allowed in a host name";
			return -EINVAL;
		}
		label++;
	}
	return 0;
}

int
host_normalize(const char *in, size_t len, char *out, enum host_kind *ret_kind,
               const char **ret_why)
{
	char buf[HOST_MAX * 4]; /* Unicode input may take up to 4 bytes per character */
	const char *why = "invalid host";

	if (len == 0 || len >= sizeof(buf)) {
		*ret_why = "host empty or too long";
		return -EINVAL;
	}
	memcpy(buf, in, len);
	buf[len] = '\0';
	if (memchr(buf, '\0', len) || strchr(buf, '@')) {
		*ret_why = "userinfo or NUL in host";
		return -EINVAL;
	}

	if (buf[0] == '[') {
		if (len < 3 || buf[len - 1] != ']') {
			*ret_why = "unterminated IPv6 literal";
			return -EINVAL;
		}
		buf[len - 1] = '\0';
		struct in6_addr a6;
		if (strchr(buf, '%') || inet_pton(AF_INET6, buf + 1, &a6) != 1) {
			*ret_why = "invalid IPv6 literal";
			return -EINVAL;
		}
		inet_ntop(AF_INET6, &a6, out, HOST_MAX);
		*ret_kind = HOST_IPV6;
		return 0;
	}
	if (buf[len - 1] == '.') {
		*ret_why = "trailing dot in host";
		return -EINVAL;
	}

	/* UTS #46 mapping (lower case, width folding, NFC) and A-labels, ASCII names too. */
	char *ascii = NULL;
	int rc = idn2_lookup_u8((const uint8_t *)buf, (uint8_t **)&ascii,
	                        IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
	if (rc != IDN2_OK || !ascii) {
		*ret_why = "host name is not a valid (internationalized) domain name";
		free(ascii);
		return -EINVAL;
	}
	size_t alen = strlen(ascii);
	if (alen == 0 || alen >= HOST_MAX || ascii[alen - 1] == '.') {
		free(ascii);
		*ret_why = "host name empty, too long or with a trailing dot";
		return -EINVAL;
	}
	memcpy(out, ascii, alen + 1);
	free(ascii);

	if (is_canonical_ipv4(out)) {
		*ret_kind = HOST_IPV4;
		return 0;
	}
	if (looks_numeric(out)) {
		*ret_why = "numeric host that is not a dotted-quad IPv4 address";
		return -EINVAL;
	}
	if (check_ascii_name(out, &why) < 0) {
		*ret_why = why;
		return -EINVAL;
	}
	*ret_kind = HOST_NAME;
	return 0;
}
