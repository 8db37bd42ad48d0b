/*
 * test-parse.c: the number parsers take exactly what they document and nothing else.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "parse.h"
#include "tap.h"

static void
size_ok(const char *s, uint64_t want)
{
	uint64_t v = 0;
	int r = parse_size(s, &v);
	ok(r == 0 && v == want, "parse_size(\"%s\") = %llu (got %d, %llu)", s,
	   (unsigned long long)want, r, (unsigned long long)v);
}

static void
size_bad(const char *s)
{
	uint64_t v = 12345;
	int r = parse_size(s, &v);
	ok(r < 0 && v == 12345, "parse_size(\"%s\") refused, output untouched (%d)", s, r);
}

static void
milli_ok(const char *s, uint64_t max, uint64_t want)
{
	uint64_t v = 0;
	int r = parse_milli(s, max, &v);
	ok(r == 0 && v == want, "parse_milli(\"%s\") = %llu (got %d, %llu)", s,
	   (unsigned long long)want, r, (unsigned long long)v);
}

static void
milli_bad(const char *s, uint64_t max)
{
	uint64_t v = 777;
	int r = parse_milli(s, max, &v);
	ok(r < 0 && v == 777, "parse_milli(\"%s\") refused (%d)", s, r);
}

int
main(void)
{
	uint64_t v;

	ok(parse_u64("0", 10, &v) == 0 && v == 0, "parse_u64 0");
	ok(parse_u64("256", 1000, &v) == 0 && v == 256, "parse_u64 256");
	ok(parse_u64("18446744073709551615", UINT64_MAX, &v) == 0 && v == UINT64_MAX,
	   "parse_u64 UINT64_MAX");
	ok(parse_u64("18446744073709551616", UINT64_MAX, &v) == -ERANGE, "parse_u64 overflow");
	ok(parse_u64("1001", 1000, &v) == -ERANGE, "parse_u64 above max");
	const char *bad_u64[] = {"", " 1", "1 ", "+1", "-1", "0x10", "1e3", "12a", "１"};
	for (size_t i = 0; i < sizeof(bad_u64) / sizeof(bad_u64[0]); i++)
		ok(parse_u64(bad_u64[i], 1000, &v) == -EINVAL, "parse_u64 refuses \"%s\"",
		   bad_u64[i]);
	ok(parse_u64(NULL, 1, &v) == -EINVAL, "parse_u64 refuses NULL");

	size_ok("1", 1);
	size_ok("4096", 4096);
	size_ok("1K", 1024);
	size_ok("1k", 1024);
	size_ok("512M", 512ULL << 20);
	size_ok("2G", 2ULL << 30);
	size_ok("1T", 1ULL << 40);
	size_ok("64KiB", 64 << 10);
	size_ok("3MB", 3 << 20);
	size_ok("100B", 100);
	size_bad("");
	size_bad("0");
	size_bad("0M");
	size_bad("M");
	size_bad("1X");
	size_bad("1MM");
	size_bad("1M ");
	size_bad("-1M");
	size_bad("1.5G");
	size_bad("99999999999T");
	size_bad("9223372036854775808");
	size_bad("1iB");

	milli_ok("0.5", 1000000, 500);
	milli_ok("2", 1000000, 2000);
	milli_ok("1.25", 1000000, 1250);
	milli_ok("0.001", 1000000, 1);
	milli_bad("10.", 1000000); /* a dot needs digits after it */
	milli_bad("1.2345", 1000000);
	milli_bad(".5", 1000000);
	milli_bad("-1", 1000000);
	milli_bad("1e3", 1000000);
	milli_bad("1001", 1000000);
	milli_bad("", 1000000);
	milli_bad("abc", 1000000);
	return tap_done();
}
