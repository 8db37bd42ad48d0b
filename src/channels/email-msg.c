/*
 * email-msg.c: inbound mail read and replies built with GMime (email-msg.h). GMime does all
 * of MIME: headers, encodings, charsets, multiparts, address lists, References. What is ours
 * is choosing what to keep (the first text/plain part that is not an attachment, else the
 * first text/html one reduced to text by libxml2's HTML parser), bounding it, and reading the
 * one Authentication-Results header the operator said to believe.
 */
#include <ctype.h>
#include <errno.h>
#include <gmime/gmime.h>
#include <libxml/HTMLparser.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dbuf.h"
#include "email-msg.h"
#include "text.h"

#define ADDR_MAX  320
#define NAME_MAX_ 256

static void
mime_init_once(void)
{
	static bool done;
	if (!done) {
		g_mime_init();
		done = true;
	}
}

/* A bounded, sanitized copy of s (control characters and invalid UTF-8 dropped or replaced);
 * NULL when s is NULL or on allocation failure (*oom set). */
static char *
clean_copy(const char *s, size_t max, bool *oom)
{
	if (!s)
		return NULL;
	size_t len = strnlen(s, max);
	char *out = malloc(len + 1);
	if (!out) {
		*oom = true;
		return NULL;
	}
	size_t n = text_sanitize(s, len, out);
	out[n] = '\0';
	return out;
}

const char *
email_addr_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at ? at + 1 : "";
}

/* A Message-ID as it may go back into a header: printable ASCII, no space, no <> (GMime
 * returns ids without their brackets). */
static bool
msgid_ok(const char *id)
{
	if (!id || !*id || strlen(id) > EMAIL_ID_MAX - 2)
		return false;
	for (const char *p = id; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '<' || *p == '>')
			return false;
	return true;
}

/* ---- Authentication-Results (RFC 8601) ---- */

/* Copies value without (comments), nested ones too, so that "dkim=pass (good sig)" reads as
 * "dkim=pass". */
static void
strip_comments(const char *in, char *out, size_t out_size)
{
	int depth = 0;
	size_t n = 0;
	for (; *in && n + 1 < out_size; in++) {
		if (*in == '(')
			depth++;
		else if (*in == ')' && depth > 0)
			depth--;
		else if (depth == 0)
			out[n++] = *in == '\t' || *in == '\r' || *in == '\n' ? ' ' : *in;
	}
	out[n] = '\0';
}

/* Whether from_domain equals d or is a subdomain of it (a DKIM signature of example.com
 * vouches for mail.example.com's From only if the operator's policy says so; we take the
 * relaxed alignment of DMARC). */
static bool
domain_aligned(const char *from_domain, const char *d)
{
	size_t fl = strlen(from_domain), dl = strlen(d);
	if (dl == 0 || fl < dl)
		return false;
	if (strcasecmp(from_domain + fl - dl, d) != 0)
		return false;
	return fl == dl || from_domain[fl - dl - 1] == '.';
}

/* One resinfo ("dkim=pass header.d=x header.i=y"): true when it is a pass of dkim or spf
 * aligned with from_domain. */
static bool
resinfo_pass(char *info, const char *from_domain)
{
	char *save = NULL;
	char *tok = strtok_r(info, " ", &save);
	if (!tok)
		return false;
	bool dkim = strncasecmp(tok, "dkim=", 5) == 0, spf = strncasecmp(tok, "spf=", 4) == 0;
	if (!dkim && !spf)
		return false;
	if (strcasecmp(strchr(tok, '=') + 1, "pass") != 0)
		return false;
	const char *want = dkim ? "header.d=" : "smtp.mailfrom=";
	while ((tok = strtok_r(NULL, " ", &save))) {
		if (strncasecmp(tok, want, strlen(want)) != 0)
			continue;
		char *v = tok + strlen(want);
		size_t vl = strlen(v);
		if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
			v[vl - 1] = '\0';
			v++;
		}
		if (spf && strchr(v, '@'))
			v = strrchr(v, '@') + 1;
		return domain_aligned(from_domain, v);
	}
	return false;
}

/* The verdict of one header value: -1 when it is not authserv_id's, else 0 or 1. */
static int
auth_results_check(const char *value, const char *authserv_id, const char *from_domain)
{
	char buf[4096];
	strip_comments(value, buf, sizeof(buf));
	char *save = NULL;
	char *part = strtok_r(buf, ";", &save);
	if (!part)
		return -1;
	/* authserv-id [version] */
	while (*part == ' ')
		part++;
	size_t idl = strcspn(part, " ");
	if (idl != strlen(authserv_id) || strncasecmp(part, authserv_id, idl) != 0)
		return -1;
	while ((part = strtok_r(NULL, ";", &save))) {
		while (*part == ' ')
			part++;
		if (resinfo_pass(part, from_domain))
			return 1;
	}
	return 0;
}

static bool
auth_pass(GMimeObject *msg, const char *authserv_id, const char *from_addr)
{
	if (!from_addr)
		return false;
	GMimeHeaderList *hl = g_mime_object_get_header_list(msg);
	int n = g_mime_header_list_get_count(hl);
	for (int i = 0; i < n; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		const char *name = g_mime_header_get_name(h);
		const char *value = g_mime_header_get_value(h);
		if (!name || !value || strcasecmp(name, "Authentication-Results") != 0)
			continue;
		/* The first header with the server's id is the one it added on top; any below it
		 * came with the mail. */
		int r = auth_results_check(value, authserv_id, email_addr_domain(from_addr));
		if (r >= 0)
			return r == 1;
	}
	return false;
}

/* ---- body ---- */

struct body_pick {
	GMimeTextPart *plain, *html;
	struct email_in *m; /* attachments go here, when att_max */
	size_t att_max;
	bool oom;
};

/* A part's file name as a file in the group's inbox may be called: its last path
 * component, sanitized, no leading dot. */
static char *
att_name(const char *raw, bool *oom)
{
	const char *base = raw ? strrchr(raw, '/') : NULL;
	base = base ? base + 1 : raw;
	char *n = clean_copy(base && *base ? base : "attachment", 200, oom);
	if (n && !*n) { /* nothing printable in it (found by the fuzzer) */
		free(n);
		n = clean_copy("attachment", 200, oom);
	}
	for (char *p = n; p && *p; p++)
		if (*p == '\\' || *p == '\n' || *p == '\t' || (p == n && *p == '.'))
			*p = '_';
	return n;
}

static void
keep_attachment(struct body_pick *b, GMimePart *part)
{
	struct email_in *m = b->m;
	if (m->n_att == EMAIL_ATT_MAX) {
		m->att_dropped++;
		return;
	}
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	if (!w) {
		m->att_dropped++;
		return;
	}
	GMimeStream *mem = g_mime_stream_mem_new();
	/* Decoded size is at most the encoded one (base64 shrinks, QP too): the raw mail's
	 * bound bounds this; past att_max it is dropped. */
	ssize_t n = g_mime_data_wrapper_write_to_stream(w, mem);
	GByteArray *bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	if (n < 0 || !bytes || bytes->len > b->att_max) {
		m->att_dropped++;
		g_object_unref(mem);
		return;
	}
	struct email_attachment *a = &m->att[m->n_att];
	a->data = malloc(bytes->len ? bytes->len : 1);
	if (a->data)
		memcpy(a->data, bytes->data, bytes->len);
	a->size = bytes->len;
	g_object_unref(mem);
	a->name = att_name(g_mime_part_get_filename(part), &b->oom);
	char *type = g_mime_content_type_get_mime_type(g_mime_object_get_content_type(GMIME_OBJECT(part)));
	a->type = clean_copy(type ? type : "application/octet-stream", 127, &b->oom);
	g_free(type);
	if (!a->data || !a->name || !a->type) {
		b->oom = true;
		free(a->data);
		free(a->name);
		free(a->type);
		memset(a, 0, sizeof(*a));
		return;
	}
	m->n_att++;
}

static void
pick_part(GMimeObject *parent, GMimeObject *part, gpointer data)
{
	(void)parent;
	struct body_pick *b = data;
	if (!GMIME_IS_PART(part))
		return; /* a multipart's own node, or an attached message (message/rfc822) */
	if (!GMIME_IS_TEXT_PART(part) || g_mime_part_is_attachment(GMIME_PART(part))) {
		if (b->att_max)
			keep_attachment(b, GMIME_PART(part));
		return;
	}
	GMimeContentType *ct = g_mime_object_get_content_type(part);
	if (!b->plain && g_mime_content_type_is_type(ct, "text", "plain"))
		b->plain = GMIME_TEXT_PART(part);
	else if (!b->html && g_mime_content_type_is_type(ct, "text", "html"))
		b->html = GMIME_TEXT_PART(part);
}

static bool
html_block(const char *name)
{
	static const char *const blocks[] = {"p",  "div",   "br",         "li", "tr", "h1",
	                                     "h2", "h3",    "h4",         "h5", "h6", "ul",
	                                     "ol", "table", "blockquote", "pre"};
	for (size_t i = 0; i < sizeof(blocks) / sizeof(blocks[0]); i++)
		if (strcasecmp(name, blocks[i]) == 0)
			return true;
	return false;
}

/* Text nodes in document order, a newline at block elements, nothing of script or style.
 * Depth is bounded by libxml2's own parser limit; the output by the dbuf. */
static void
html_walk(xmlNode *n, struct dbuf *out, int depth)
{
	if (depth > 256)
		return;
	for (; n; n = n->next) {
		if (n->type == XML_TEXT_NODE && n->content) {
			dbuf_append_capped(out, n->content, strlen((const char *)n->content));
		} else if (n->type == XML_ELEMENT_NODE) {
			const char *name = (const char *)n->name;
			if (strcasecmp(name, "script") == 0 || strcasecmp(name, "style") == 0 ||
			    strcasecmp(name, "head") == 0)
				continue;
			bool block = html_block(name);
			if (block && out->len && out->p[out->len - 1] != '\n')
				dbuf_append_capped(out, "\n", 1);
			html_walk(n->children, out, depth + 1);
			if (block && out->len && out->p[out->len - 1] != '\n')
				dbuf_append_capped(out, "\n", 1);
		}
	}
}

static char *
html_to_plain(const char *html)
{
	htmlDocPtr doc = htmlReadMemory(html, (int)strnlen(html, 8 << 20), NULL, "UTF-8",
	                                HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
	                                    HTML_PARSE_NONET | HTML_PARSE_RECOVER);
	struct dbuf out;
	dbuf_init(&out, EMAIL_TEXT_MAX * 2);
	if (doc)
		html_walk(xmlDocGetRootElement(doc), &out, 0);
	xmlFreeDoc(doc);
	return dbuf_take(&out);
}

/* The text to hand on: sanitized, trailing whitespace trimmed, cut at EMAIL_TEXT_MAX (on a
 * character boundary: text_sanitize turns a cut sequence into '?'). */
static char *
body_text(GMimeMessage *msg, struct email_in *m, size_t att_max, bool *ret_truncated)
{
	struct body_pick b = {.m = m, .att_max = att_max};
	g_mime_message_foreach(msg, pick_part, &b);
	if (b.oom)
		return NULL;
	char *raw = NULL;
	if (b.plain) {
		char *t = g_mime_text_part_get_text(b.plain);
		raw = t ? strdup(t) : NULL;
		g_free(t);
	} else if (b.html) {
		char *t = g_mime_text_part_get_text(b.html);
		raw = t ? html_to_plain(t) : NULL;
		g_free(t);
	}
	if (!raw)
		return strdup("");
	size_t len = strlen(raw);
	*ret_truncated = len > EMAIL_TEXT_MAX;
	if (*ret_truncated)
		len = EMAIL_TEXT_MAX;
	char *out = malloc(len + 1);
	if (out) {
		size_t n = text_sanitize(raw, len, out);
		while (n && (out[n - 1] == '\n' || out[n - 1] == ' ' || out[n - 1] == '\t'))
			n--;
		out[n] = '\0';
	}
	free(raw);
	return out;
}

/* "<a> <b> ... <id>": the chain a reply continues, newest EMAIL_REFS_MAX - 1 of References
 * (else In-Reply-To) kept; only ids that are safe to write back. */
static char *
references_of(GMimeMessage *msg)
{
	const char *refs = g_mime_object_get_header(GMIME_OBJECT(msg), "References");
	if (!refs)
		refs = g_mime_object_get_header(GMIME_OBJECT(msg), "In-Reply-To");
	struct dbuf out;
	dbuf_init(&out, EMAIL_REFS_MAX * (EMAIL_ID_MAX + 3));
	if (refs) {
		GMimeReferences *r = g_mime_references_parse(NULL, refs);
		int n = r ? g_mime_references_length(r) : 0;
		for (int i = n > EMAIL_REFS_MAX - 1 ? n - (EMAIL_REFS_MAX - 1) : 0; i < n; i++) {
			const char *id = g_mime_references_get_message_id(r, i);
			if (msgid_ok(id))
				dbuf_printf(&out, "%s<%s>", out.len ? " " : "", id);
		}
		if (r)
			g_mime_references_free(r);
	}
	return dbuf_take(&out);
}

void
email_in_done(struct email_in *m)
{
	free(m->from_addr);
	free(m->from_name);
	free(m->subject);
	free(m->message_id);
	free(m->references);
	free(m->text);
	for (size_t i = 0; i < m->n_att; i++) {
		free(m->att[i].name);
		free(m->att[i].type);
		free(m->att[i].data);
	}
	memset(m, 0, sizeof(*m));
}

int
email_in_parse(const char *raw, size_t len, const char *authserv_id, struct email_in *ret)
{
	return email_in_parse_files(raw, len, authserv_id, 0, ret);
}

int
email_in_parse_files(const char *raw, size_t len, const char *authserv_id, size_t att_max,
                     struct email_in *ret)
{
	memset(ret, 0, sizeof(*ret));
	mime_init_once();
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer(raw, len);
	GMimeParser *parser = g_mime_parser_new_with_stream(stream);
	GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	g_object_unref(stream);
	if (!msg)
		return -EBADMSG;

	struct email_in m = {0};
	bool oom = false;
	InternetAddressList *from = g_mime_message_get_from(msg);
	if (from && internet_address_list_length(from) > 0) {
		InternetAddress *ia = internet_address_list_get_address(from, 0);
		if (INTERNET_ADDRESS_IS_MAILBOX(ia)) {
			const char *a =
			    internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
			/* An address with controls or spaces is no one's: the chat id must be
			 * clean. */
			bool good = a && *a && strlen(a) <= ADDR_MAX && strchr(a, '@');
			for (const char *p = a; good && *p; p++)
				good = (unsigned char)*p > ' ' && *p != 0x7f;
			if (good) {
				m.from_addr = strdup(a);
				if (!m.from_addr)
					oom = true;
				for (char *p = m.from_addr; p && *p; p++)
					*p = (char)tolower((unsigned char)*p);
			}
			const char *name = internet_address_get_name(ia);
			if (name && *name)
				m.from_name = clean_copy(name, NAME_MAX_, &oom);
		}
	}
	const char *subj = g_mime_message_get_subject(msg);
	m.subject = clean_copy(subj ? subj : "", EMAIL_SUBJECT_MAX, &oom);
	/* One-line subject and name: a folded or hostile one must not carry newlines into a
	 * reply's headers or a log line (the fuzzer found tabs in a name). */
	for (char *p = m.subject; p && *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	for (char *p = m.from_name; p && *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	const char *id = g_mime_message_get_message_id(msg);
	if (msgid_ok(id) && !(m.message_id = strdup(id)))
		oom = true;
	if (!(m.references = references_of(msg)))
		oom = true;
	if (!(m.text = body_text(msg, &m, att_max, &m.truncated)))
		oom = true;
	if (authserv_id && *authserv_id)
		m.auth_pass = auth_pass(GMIME_OBJECT(msg), authserv_id, m.from_addr);
	g_object_unref(msg);
	if (oom || !m.subject) {
		email_in_done(&m);
		return -ENOMEM;
	}
	*ret = m;
	return 0;
}

/* ---- replies ---- */

static bool
header_safe(const char *s)
{
	return s && !strpbrk(s, "\r\n");
}

int
email_reply_build(const struct email_reply *r, char **ret, size_t *ret_len)
{
	if (!header_safe(r->from_addr) || !header_safe(r->to_addr) || !msgid_ok(r->message_id) ||
	    !r->text || (r->subject && !header_safe(r->subject)) ||
	    (r->in_reply_to && !msgid_ok(r->in_reply_to)) ||
	    (r->references && !header_safe(r->references)))
		return -EINVAL;
	mime_init_once();
	GMimeMessage *m = g_mime_message_new(TRUE);
	g_mime_message_add_mailbox(m, GMIME_ADDRESS_TYPE_FROM, r->from_name ? r->from_name : "",
	                           r->from_addr);
	g_mime_message_add_mailbox(m, GMIME_ADDRESS_TYPE_TO, "", r->to_addr);

	_cleanup_free_ char *subject = NULL;
	if (!r->subject || !*r->subject)
		subject = strdup("Message from clawbox");
	else if (strncasecmp(r->subject, "re:", 3) == 0)
		subject = strdup(r->subject);
	else if (asprintf(&subject, "Re: %s", r->subject) < 0)
		subject = NULL;
	if (!subject) {
		g_object_unref(m);
		return -ENOMEM;
	}
	g_mime_message_set_subject(m, subject, "utf-8");
	g_mime_message_set_message_id(m, r->message_id);
	GDateTime *now = g_date_time_new_now_utc();
	g_mime_message_set_date(m, now);
	g_date_time_unref(now);

	if (r->in_reply_to) {
		_cleanup_free_ char *irt = NULL, *refs = NULL;
		int a = asprintf(&irt, "<%s>", r->in_reply_to);
		int b = asprintf(&refs, "%s%s<%s>", r->references ? r->references : "",
		                 r->references && *r->references ? " " : "", r->in_reply_to);
		if (a < 0 || b < 0) {
			g_object_unref(m);
			return -ENOMEM;
		}
		g_mime_object_set_header(GMIME_OBJECT(m), "In-Reply-To", irt, NULL);
		g_mime_object_set_header(GMIME_OBJECT(m), "References", refs, NULL);
	}
	g_mime_object_set_header(GMIME_OBJECT(m), "Auto-Submitted", "auto-replied", NULL);

	GMimeTextPart *body = g_mime_text_part_new_with_subtype("plain");
	g_mime_text_part_set_text(body, r->text);
	g_mime_part_set_content_encoding(GMIME_PART(body),
	                                 g_mime_part_get_best_content_encoding(
	                                     GMIME_PART(body), GMIME_ENCODING_CONSTRAINT_7BIT));
	if (r->file_data) {
		GMimeMultipart *mixed = g_mime_multipart_new_with_subtype("mixed");
		g_mime_multipart_add(mixed, GMIME_OBJECT(body));
		g_object_unref(body);
		const char *type = r->file_type ? r->file_type : "application/octet-stream";
		const char *slash = strchr(type, '/');
		_cleanup_free_ char *major = slash ? strndup(type, (size_t)(slash - type)) : NULL;
		GMimePart *att = major ? g_mime_part_new_with_type(major, slash + 1)
		                       : g_mime_part_new_with_type("application", "octet-stream");
		GMimeStream *s = g_mime_stream_mem_new_with_buffer(r->file_data, r->file_size);
		GMimeDataWrapper *w =
		    g_mime_data_wrapper_new_with_stream(s, GMIME_CONTENT_ENCODING_DEFAULT);
		g_mime_part_set_content(att, w);
		g_object_unref(w);
		g_object_unref(s);
		g_mime_object_set_disposition(GMIME_OBJECT(att), "attachment");
		g_mime_part_set_filename(att, r->file_name ? r->file_name : "file");
		g_mime_part_set_content_encoding(att, GMIME_CONTENT_ENCODING_BASE64);
		g_mime_multipart_add(mixed, GMIME_OBJECT(att));
		g_object_unref(att);
		g_mime_message_set_mime_part(m, GMIME_OBJECT(mixed));
		g_object_unref(mixed);
	} else {
		g_mime_message_set_mime_part(m, GMIME_OBJECT(body));
		g_object_unref(body);
	}

	GMimeFormatOptions *fo = g_mime_format_options_new();
	g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
	char *s = g_mime_object_to_string(GMIME_OBJECT(m), fo);
	g_mime_format_options_free(fo);
	g_object_unref(m);
	if (!s)
		return -ENOMEM;
	*ret = strdup(s);
	g_free(s);
	if (!*ret)
		return -ENOMEM;
	*ret_len = strlen(*ret);
	return 0;
}
