/*
 * test-html.c: web_fetch's HTML-to-text pass, case by case: tags dropped, what is never text
 * skipped (scripts, styles, comments, even unclosed), block elements as line breaks, list
 * items, entities (named, decimal, hex, invalid, unknown), whitespace collapsed, and input
 * that ends mid-tag or mid-entity. The output is always valid UTF-8.
 */
#include <stdio.h>
#include <string.h>

#include "tap.h"
#include "text.h"
#include "tools.h"

static char got[8192];

static const char *
conv(const char *html)
{
	struct tool_output o;
	tool_output_init(&o);
	html_to_text(html, strlen(html), &o);
	snprintf(got, sizeof(got), "%s", tool_output_finish(&o));
	tool_output_done(&o);
	return got;
}

/* s with newlines shown as \n, so that each TAP line stays one line. */
static const char *
esc(const char *s)
{
	static char buf[1024];
	size_t o = 0;
	for (; *s && o + 3 < sizeof(buf); s++)
		if (*s == '\n') {
			buf[o++] = '\\';
			buf[o++] = 'n';
		} else
			buf[o++] = *s;
	buf[o] = '\0';
	return buf;
}

static void
is(const char *html, const char *want, const char *what)
{
	/* Text ends with one newline; nothing at all stays empty. */
	char w[512];
	snprintf(w, sizeof(w), "%s%s", want, want[0] ? "\n" : "");
	const char *g = conv(html);
	ok(strcmp(g, w) == 0, "%s: got [%s]", what, esc(g));
}

int
main(void)
{
	is("<p>Hello <b>world</b></p><p>Next</p>", "Hello world\n\nNext",
	   "paragraphs and inline tags");
	is("a<br>b", "a\nb", "br is one line break");
	is("<ul><li>one</li><li>two</li></ul>", "- one\n- two", "list items");
	is("x<script>alert('<p>no</p>')</script>y", "xy", "a script's text is skipped");
	is("x<STYLE>p{}</STYLE>y", "xy", "style skipped, any case");
	is("x<!-- <p>hidden</p> -->y", "xy", "comments skipped");
	is("x<script>never closed <p>text", "x", "an unclosed script hides the rest");
	is("x<!-- never closed", "x", "an unclosed comment hides the rest");
	is("a &amp; b &lt;c&gt; &quot;d&quot;", "a & b <c> \"d\"", "named entities");
	is("&#65;&#x42;&#X43;", "ABC", "numeric entities, decimal and hex");
	is("&#x20AC;", "\xe2\x82\xac", "a numeric entity beyond ASCII as UTF-8");
	is("&#0;&#xD800;&#x110000;", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
	   "NUL, a surrogate and past U+10FFFF become U+FFFD");
	is("&bogus; &#xZZ; & alone", "&bogus; &#xZZ; & alone",
	   "what is not an entity stays literal");
	is("a&nbsp;&nbsp;b", "a b", "no-break spaces collapse like spaces");
	is("  lots \n\n of \t  space  ", "lots of space", "whitespace collapsed and trimmed");
	is("<div><div><p>deep</p></div></div>", "deep", "no leading blank lines from nesting");
	is("text<p", "text", "input ending inside a tag");
	is("a &#12", "a &#12", "input ending inside an entity");
	is("<h1>T</h1>body", "T\n\nbody", "headings are blocks");
	const char *t = conv("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>");
	ok(strchr(t, 'a') && strchr(t, 'b') && strchr(t, '\n') && strchr(t, 'a') < strchr(t, 'c'),
	   "table cells keep their text, rows on lines of their own: [%s]", esc(t));

	/* Bytes that are not UTF-8 in the page: the result must still be valid UTF-8, as every
	 * tool result must be (issue 18). */
	const char *bad = conv("ok, a page of text \xff\xfe with <p>a few bad bytes \xc3(</p>");
	size_t nbad = 1;
	(void)text_utf8_repair(bad, strlen(bad), NULL, &nbad);
	ok(nbad == 0 && strstr(bad, "\xef\xbf\xbd") && strstr(bad, "a few bad bytes"),
	   "invalid bytes in the page: valid UTF-8 out [%s]", bad);

	/* A big page of tags only: nothing, and no quadratic blow-up. */
	static char big[1 << 20];
	size_t n = 0;
	while (n + 8 < sizeof(big)) {
		memcpy(big + n, "<b></b>", 7);
		n += 7;
	}
	big[n] = '\0';
	struct tool_output o;
	tool_output_init(&o);
	html_to_text(big, n, &o);
	ok(strcmp(tool_output_finish(&o), "") == 0, "1 MiB of empty tags: no text");
	tool_output_done(&o);
	return tap_done();
}
