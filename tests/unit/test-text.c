/*
 * test-text.c: what may reach a terminal from model output and sandbox stderr.
 */
#include <string.h>

#include "tap.h"
#include "text.h"

static void
check(const char *in, size_t len, const char *want, const char *what)
{
	char out[256];
	size_t n = text_sanitize(in, len, out);
	out[n] = '\0';
	ok(n == strlen(want) && memcmp(out, want, n) == 0, "%s", what);
}

int
main(void)
{
	check("plain text\n\tindented", 21, "plain text\n\tindented",
	      "text, newlines and tabs pass");
	check("a\x1b]52;c;ZXZpbA==\x07z", 18, "a]52;c;ZXZpbA==z", "ESC and BEL of an OSC 52 go");
	check("\x1b[2J\x1b[Hclear", 12, "[2J[Hclear", "CSI sequences lose their ESC");
	check("r\rx\x7f\x08", 5, "rx", "CR, DEL and backspace go");
	check("c1:\xc2\x9b"
	      "31m",
	      8, "c1:31m", "C1 controls (U+009B CSI) go");
	check("caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x99\x82", 14,
	      "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x99\x82", "UTF-8 letters, symbols and emoji pass");
	check("bad \x9b\xff \xc3", 8, "bad ?? ?", "invalid UTF-8 becomes ?");
	check("\xe0\x80\xaf \xed\xa0\x80", 7, "??? ???", "overlong forms and surrogates become ?");
	check("nul\0x", 5, "nulx", "NUL goes");

	char out[64];
	size_t bad, n = text_utf8_repair("ok \xc3\xa9\xff\0z\xe2\x9c", 10, out, &bad);
	ok(n == 5 + 3 + 3 + 1 + 3 + 3 && bad == 4 &&
	       memcmp(out, "ok \xc3\xa9\xef\xbf\xbd\xef\xbf\xbdz\xef\xbf\xbd\xef\xbf\xbd", n) == 0,
	   "repair: bad bytes, NUL and a cut sequence become U+FFFD, valid ones stay");
	n = text_utf8_repair("caf\xc3\xa9 \xe2\x9c\x93", 9, NULL, &bad);
	ok(n == 9 && bad == 0,
	   "repair: valid UTF-8 is left as it is, and only counted without out");
	char esc[64];
	static const char seqs[] =
	    "\x1b[31mred\x1b[0m \x1b]0;title\x07ok \x1b]8;;u\x1b\\x\x1b(B!\x01";
	n = text_sanitize_escapes(seqs, sizeof(seqs) - 1, esc);
	ok(n == 9 && memcmp(esc, "red ok x!", 9) == 0,
	   "escapes: CSI, OSC (to BEL or ST) and ESC ( B go whole, controls too");
	n = text_sanitize_escapes("cut \x1b[3", 9, esc);
	ok(n == 4 && memcmp(esc, "cut ", 4) == 0, "escapes: a sequence cut at the end goes");
	/* "é" is c3 a9, "✓" e2 9c 93, "🙂" f0 9f 99 82 */
	const char *u = "ab\xc3\xa9\xe2\x9c\x93\xf0\x9f\x99\x82";
	ok(text_utf8_prefix(u, 11, 20) == 11, "prefix: a text shorter than max is whole");
	ok(text_utf8_prefix(u, 11, 3) == 2, "prefix: a cut inside a 2-byte letter backs off to it");
	ok(text_utf8_prefix(u, 11, 4) == 4, "prefix: a cut after a whole letter stays");
	ok(text_utf8_prefix(u, 11, 6) == 4 && text_utf8_prefix(u, 11, 5) == 4,
	   "prefix: a cut inside a 3-byte symbol backs off to it");
	ok(text_utf8_prefix(u, 11, 10) == 7 && text_utf8_prefix(u, 11, 8) == 7,
	   "prefix: a cut inside an emoji backs off to it");
	ok(text_utf8_prefix("\x80\x80\x80\x80\x80\x80", 6, 5) == 5,
	   "prefix: continuation bytes only (not UTF-8): cut at max");
	return tap_done();
}
