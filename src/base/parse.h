/*
 * parse.h: strict parsers for numbers that come from users. Every one rejects empty input,
 * signs, trailing garbage and overflow; none of them accepts what strtoul would quietly
 * wrap or truncate. All return 0 or -EINVAL / -ERANGE and write *ret only on success.
 */
#ifndef CLAWBOX_PARSE_H
#define CLAWBOX_PARSE_H

#include <stdint.h>

/* Decimal digits only, value <= max. */
int parse_u64(const char *s, uint64_t max, uint64_t *ret);

/* A byte count with an optional binary suffix K, M, G or T (upper or lower case, an optional
 * trailing B or iB: "512M", "1G", "64KiB"). The result must be >= 1 and fit in 63 bits. */
int parse_size(const char *s, uint64_t *ret);

/* A non-negative decimal with at most three fractional digits ("0.5", "2", "1.25"), returned
 * in thousandths (500, 2000, 1250); <= max_milli. */
int parse_milli(const char *s, uint64_t max_milli, uint64_t *ret);

#endif
