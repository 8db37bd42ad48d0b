/*
 * html.c: HTML reduced to text for web_fetch. Not a DOM: a single pass that drops tags,
 * skips what is never text (script, style, template, comments), breaks lines at block
 * elements, decodes entities and collapses whitespace. Good enough for a model to read a
 * page; never more work than one pass over a size-limited body.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tools.h"

struct text_out {
	struct tool_output *out;
	int pending; /* line breaks owed before the next text */
	bool space;  /* a space is pending */
	bool any;
};

/* Text is written with the breaks and space owed before it: so no page ends in blank lines
 * and no line starts with a space. */
static void
put(struct text_out *t, const char *s, size_t len)
{
	if (len == 0)
		return;
	if (t->any && t->pending) {
		tool_output_add(t->out, "\n\n", (size_t)t->pending);
	} else if (t->space && t->any) {
		tool_output_add(t->out, " ", 1);
	}
	t->pending = 0;
	t->space = false;
	tool_output_add(t->out, s, len);
	t->any = true;
}

static void
newline(struct text_out *t, int want)
{
	t->space = false;
	if (t->pending < want)
		t->pending = want;
}

static void
put_codepoint(struct text_out *t, unsigned long c)
{
	char b[4];
	size_t n;
	if (c == 0 || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		c = 0xFFFD;
	if (c == 0xA0)
		c = ' ';
	if (c < 0x80) {
		b[0] = (char)c;
		n = 1;
	} else if (c < 0x800) {
		b[0] = (char)(0xC0 | (c >> 6));
		b[1] = (char)(0x80 | (c & 0x3F));
		n = 2;
	} else if (c < 0x10000) {
		b[0] = (char)(0xE0 | (c >> 12));
		b[1] = (char)(0x80 | ((c >> 6) & 0x3F));
		b[2] = (char)(0x80 | (c & 0x3F));
		n = 3;
	} else {
		b[0] = (char)(0xF0 | (c >> 18));
		b[1] = (char)(0x80 | ((c >> 12) & 0x3F));
		b[2] = (char)(0x80 | ((c >> 6) & 0x3F));
		b[3] = (char)(0x80 | (c & 0x3F));
		n = 4;
	}
	if (n == 1 && c == ' ') {
		t->space = true;
		return;
	}
	put(t, b, n);
}

/* An entity at p ('&'); returns the bytes consumed (1 if it is not one we know). */
static size_t
entity(struct text_out *t, const char *p, const char *end)
{
	static const struct {
		const char *name;
		unsigned long c;
	} named[] = {{"amp", '&'},       {"lt", '<'},      {"gt", '>'},       {"quot", '"'},
	             {"apos", '\''},     {"nbsp", 0xA0},   {"mdash", 0x2014}, {"ndash", 0x2013},
	             {"hellip", 0x2026}, {"copy", 0xA9},   {"rsquo", 0x2019}, {"lsquo", 0x2018},
	             {"rdquo", 0x201D},  {"ldquo", 0x201C}};
	const char *semi = memchr(p, ';', (size_t)(end - p) < 12 ? (size_t)(end - p) : 12);
	if (!semi)
		goto literal;
	if (p[1] == '#') {
		unsigned long c = 0;
		const char *q = p + 2;
		bool hex = q < semi && (*q == 'x' || *q == 'X');
		if (hex)
			q++;
		if (q == semi)
			goto literal;
		for (; q < semi; q++) {
			int d = (*q >= '0' && *q <= '9') ? *q - '0'
			        : hex && (*q | 0x20) >= 'a' && (*q | 0x20) <= 'f'
			            ? (*q | 0x20) - 'a' + 10
			            : -1;
			if (d < 0)
				goto literal;
			c = c * (hex ? 16 : 10) + (unsigned long)d;
			if (c > 0x10FFFF)
				c = 0x110000;
		}
		put_codepoint(t, c);
		return (size_t)(semi - p) + 1;
	}
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
		size_t len = strlen(named[i].name);
		if ((size_t)(semi - p - 1) == len && strncmp(p + 1, named[i].name, len) == 0) {
			put_codepoint(t, named[i].c);
			return len + 2;
		}
	}
literal:
	put(t, "&", 1);
	return 1;
}

static bool
tag_is(const char *name, size_t len, const char *const *list)
{
	for (; *list; list++)
		if (strlen(*list) == len && strncasecmp(name, *list, len) == 0)
			return true;
	return false;
}

void
html_to_text(const char *html, size_t len, struct tool_output *out)
{
	static const char *const skipped[] = {"script",   "style", "template",
	                                      "noscript", "svg",   NULL};
	static const char *const blocks[] = {
	    "p",      "div",    "br",  "hr",  "h1",         "h2",    "h3",      "h4",
	    "h5",     "h6",     "ul",  "ol",  "table",      "tr",    "section", "article",
	    "header", "footer", "nav", "pre", "blockquote", "title", "form",    "main",
	    "aside",  "dl",     "dt",  "dd",  "figure",     NULL};
	struct text_out t = {.out = out};
	const char *p = html, *end = html + len;
	while (p < end) {
		if (*p == '<') {
			if (end - p >= 4 && memcmp(p, "<!--", 4) == 0) {
				const char *close = memmem(p + 4, (size_t)(end - p - 4), "-->", 3);
				p = close ? close + 3 : end;
				continue;
			}
			const char *gt = memchr(p, '>', (size_t)(end - p));
			if (!gt)
				break;
			const char *name = p + 1;
			bool closing = name < gt && *name == '/';
			if (closing)
				name++;
			size_t nlen = 0;
			while (name + nlen < gt && (name[nlen] | 0x20) >= 'a' &&
			       (name[nlen] | 0x20) <= 'z')
				nlen++;
			while (name + nlen < gt && name[nlen] >= '1' && name[nlen] <= '6')
				nlen++;
			p = gt + 1;
			if (!closing && tag_is(name, nlen, skipped)) {
				/* Skip to the matching end tag. */
				char endtag[16];
				snprintf(endtag, sizeof(endtag), "</%.*s", (int)nlen, name);
				const char *q = p;
				const char *found = NULL;
				for (; q + strlen(endtag) <= end; q++) {
					if (*q == '<' &&
					    strncasecmp(q, endtag, strlen(endtag)) == 0) {
						found = q;
						break;
					}
				}
				if (!found) {
					p = end;
					continue;
				}
				const char *gt2 = memchr(found, '>', (size_t)(end - found));
				p = gt2 ? gt2 + 1 : end;
				continue;
			}
			if (nlen == 2 && strncasecmp(name, "li", 2) == 0 && !closing) {
				newline(&t, 1);
				put(&t, "-", 1);
				t.space = true;
			} else if (tag_is(name, nlen, blocks)) {
				bool br = nlen == 2 && strncasecmp(name, "br", 2) == 0;
				newline(&t, br ? 1 : 2);
			} else if (nlen == 2 && (strncasecmp(name, "td", 2) == 0 ||
			                         strncasecmp(name, "th", 2) == 0)) {
				t.space = true;
			}
			continue;
		}
		if (*p == '&') {
			p += entity(&t, p, end);
			continue;
		}
		if (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r' || *p == '\f') {
			t.space = true;
			p++;
			continue;
		}
		const char *q = p;
		while (q < end && *q != '<' && *q != '&' && *q != ' ' && *q != '\n' && *q != '\t' &&
		       *q != '\r' && *q != '\f')
			q++;
		put(&t, p, (size_t)(q - p));
		p = q;
	}
	if (t.any)
		tool_output_add(out, "\n", 1);
}
