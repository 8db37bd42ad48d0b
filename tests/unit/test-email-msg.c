/*
 * test-email-msg.c: the email channel's MIME side (src/channels/email-msg.c): what is read
 * from an inbound mail (sender, subject, the text part, the HTML fallback, References), which
 * Authentication-Results header is believed, and the threading headers of a reply.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "email-msg.h"
#include "tap.h"

static int
parse(const char *raw, const char *authserv, struct email_in *m)
{
	return email_in_parse(raw, strlen(raw), authserv, m);
}

static void
test_plain(void)
{
	struct email_in m;
	const char *raw = "From: Alice Example <Alice@Example.TEST>\r\n"
	                  "To: bot@example.test\r\n"
	                  "Subject: =?UTF-8?B?SGVsbG8gd8O2cmxk?=\r\n"
	                  "Message-ID: <m1@example.test>\r\n"
	                  "References: <r0@x> <r1@x>\r\n"
	                  "Content-Type: text/plain; charset=iso-8859-1\r\n"
	                  "Content-Transfer-Encoding: quoted-printable\r\n"
	                  "\r\n"
	                  "caf=E9 at noon?\x1b[2J\r\n\r\n";
	ok(parse(raw, NULL, &m) == 0, "a plain mail parses");
	ok(m.from_addr && strcmp(m.from_addr, "alice@example.test") == 0, "From lower-cased: %s",
	   m.from_addr);
	ok(m.from_name && strcmp(m.from_name, "Alice Example") == 0, "display name");
	ok(strcmp(m.subject, "Hello w\xc3\xb6rld") == 0, "RFC 2047 subject decoded: %s", m.subject);
	ok(m.message_id && strcmp(m.message_id, "m1@example.test") == 0, "Message-ID without <>");
	ok(strcmp(m.references, "<r0@x> <r1@x>") == 0, "References kept: %s", m.references);
	ok(strcmp(m.text, "caf\xc3\xa9 at noon?[2J") == 0, "charset converted, escapes dropped: %s",
	   m.text);
	ok(!m.auth_pass, "no authserv-id: no pass");
	email_in_done(&m);
}

static void
test_multipart(void)
{
	struct email_in m;
	const char *raw = "From: bob@example.test\r\n"
	                  "Subject: parts\r\n"
	                  "MIME-Version: 1.0\r\n"
	                  "Content-Type: multipart/mixed; boundary=\"B\"\r\n"
	                  "\r\n"
	                  "--B\r\n"
	                  "Content-Type: text/plain\r\n"
	                  "Content-Disposition: attachment; filename=notes.txt\r\n"
	                  "\r\n"
	                  "not the body\r\n"
	                  "--B\r\n"
	                  "Content-Type: text/html\r\n"
	                  "\r\n"
	                  "<html><head><style>p{}</style></head><body><p>Hi <b>there</b></p>"
	                  "<script>evil()</script><div>line two</div></body></html>\r\n"
	                  "--B--\r\n";
	ok(parse(raw, NULL, &m) == 0, "a multipart mail parses");
	ok(strcmp(m.text, "Hi there\nline two") == 0, "HTML part as text, attachment skipped: [%s]",
	   m.text);
	ok(m.message_id == NULL, "no Message-ID: NULL");
	email_in_done(&m);

	const char *alt = "From: bob@example.test\r\n"
	                  "Content-Type: multipart/alternative; boundary=A\r\n"
	                  "\r\n--A\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n"
	                  "--A\r\nContent-Type: text/plain\r\n\r\nplain\r\n--A--\r\n";
	ok(parse(alt, NULL, &m) == 0 && strcmp(m.text, "plain") == 0,
	   "text/plain preferred over HTML");
	email_in_done(&m);
}

static void
test_attachments(void)
{
	struct email_in m;
	char raw[8192];
	int n = snprintf(raw, sizeof(raw), "From: bob@example.test\r\n"
	                                   "Content-Type: multipart/mixed; boundary=B\r\n\r\n"
	                                   "--B\r\nContent-Type: text/plain\r\n\r\nsee the files\r\n"
	                                   "--B\r\nContent-Type: application/pdf\r\n"
	                                   "Content-Disposition: attachment; filename=\"../../etc/passwd\"\r\n"
	                                   "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n"
	                                   "--B\r\nContent-Type: image/png\r\n\r\nPNGDATA\r\n");
	for (int i = 0; i < 4; i++)
		n += snprintf(raw + n, sizeof(raw) - (size_t)n,
		              "--B\r\nContent-Type: application/octet-stream\r\n"
		              "Content-Disposition: attachment; filename=.hidden%d\r\n\r\nx%d\r\n",
		              i, i);
	snprintf(raw + n, sizeof(raw) - (size_t)n, "--B--\r\n");
	int r = email_in_parse_files(raw, strlen(raw), NULL, 1024, &m);
	ok(r == 0 && strcmp(m.text, "see the files") == 0, "the text part is the text");
	ok(r == 0 && m.n_att == 4 && m.att_dropped == 2, "4 attachments kept, 2 past the bound counted");
	ok(r == 0 && strcmp(m.att[0].name, "passwd") == 0 && strcmp(m.att[0].type, "application/pdf") == 0,
	   "a path in the file name is cut to its last part: %s", r == 0 ? m.att[0].name : "");
	ok(r == 0 && m.att[0].size == 8 && memcmp(m.att[0].data, "%PDF-1.4", 8) == 0,
	   "base64 decoded");
	ok(r == 0 && strcmp(m.att[1].name, "attachment") == 0 && strcmp(m.att[1].type, "image/png") == 0,
	   "an inline non-text part is kept too, named attachment");
	ok(r == 0 && m.att[2].name[0] == '_', "no hidden names: %s", r == 0 ? m.att[2].name : "");
	email_in_done(&m);
	r = email_in_parse_files(raw, strlen(raw), NULL, 4, &m);
	ok(r == 0 && m.n_att == 4 && m.att_dropped == 2, "past att_max bytes: dropped (%zu kept)",
	   r == 0 ? m.n_att : 0);
	email_in_done(&m);
	r = email_in_parse(raw, strlen(raw), NULL, &m);
	ok(r == 0 && m.n_att == 0 && m.att_dropped == 0, "email_in_parse keeps none");
	email_in_done(&m);
}

static void
test_auth_results(void)
{
	struct email_in m;
	char raw[2048];
#define AR_FMT                                                                                     \
	"Authentication-Results: %s\r\n"                                                           \
	"Authentication-Results: mx.example.test; dkim=pass header.d=evil.test\r\n"                \
	"From: alice@mail.example.test\r\n\r\nhi\r\n"
	struct {
		const char *ar;
		bool pass;
		const char *why;
	} cases[] = {
	    {"mx.example.test; dkim=pass (good) header.d=example.test", true, "dkim aligned"},
	    {"mx.example.test 1; spf=pass smtp.mailfrom=alice@mail.example.test", true, "spf pass"},
	    {"mx.example.test; dkim=fail header.d=example.test; spf=softfail", false,
	     "fail is no pass"},
	    {"mx.example.test; dkim=pass header.d=other.test", false, "unaligned domain"},
	    {"mx.example.test; dkim=pass header.d=ample.test", false,
	     "suffix that is not a parent domain"},
	    {"other.server; dkim=pass header.d=example.test", false,
	     "another server's pass is not believed; ours below it (evil.test) decides"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(raw, sizeof(raw), AR_FMT, cases[i].ar);
		int r = parse(raw, "mx.example.test", &m);
		ok(r == 0 && m.auth_pass == cases[i].pass, "Authentication-Results: %s",
		   cases[i].why);
		email_in_done(&m);
	}
	snprintf(raw, sizeof(raw),
	         "Authentication-Results: mx.example.test; dkim=fail\r\n"
	         "Authentication-Results: mx.example.test; dkim=pass header.d=example.test\r\n"
	         "From: alice@example.test\r\n\r\nhi\r\n");
	ok(parse(raw, "mx.example.test", &m) == 0 && !m.auth_pass,
	   "only the topmost header of our server counts (a lower one came with the mail)");
	email_in_done(&m);
}

static void
test_reply(void)
{
	struct email_reply r = {
	    .from_addr = "bot@example.test",
	    .from_name = "clawbox",
	    .to_addr = "alice@example.test",
	    .subject = "Lunch",
	    .in_reply_to = "m1@example.test",
	    .references = "<r0@x>",
	    .message_id = "clawbox.1@example.test",
	    .text = "Yes, noon works.\nSee you \xe2\x9c\x93",
	};
	char *s = NULL;
	size_t len = 0;
	ok(email_reply_build(&r, &s, &len) == 0, "a reply builds");
	ok(s && strstr(s, "Subject: Re: Lunch\r\n"), "Re: subject");
	ok(s && strstr(s, "In-Reply-To: <m1@example.test>\r\n"), "In-Reply-To");
	ok(s && strstr(s, "References: <r0@x> <m1@example.test>\r\n"), "References continued");
	ok(s && strstr(s, "Message-Id: <clawbox.1@example.test>\r\n"), "our Message-ID");
	ok(s && !strstr(s, "\n\n") && strlen(s) == len, "CRLF line ends throughout");
	struct email_in back;
	int r_back = s ? email_in_parse(s, len, NULL, &back) : -1;
	ok(r_back == 0 && strcmp(back.text, "Yes, noon works.\nSee you \xe2\x9c\x93") == 0,
	   "the body reads back as UTF-8: [%s]", r_back == 0 ? back.text : "");
	email_in_done(&back);
	free(s);

	r.subject = "RE: Lunch";
	ok(email_reply_build(&r, &s, &len) == 0 && strstr(s, "Subject: RE: Lunch\r\n"),
	   "no second Re:");
	free(s);
	r.in_reply_to = "bad\r\nBcc: x@y";
	ok(email_reply_build(&r, &s, &len) == -EINVAL, "a header injection is refused");
	r.in_reply_to = NULL;
	r.subject = NULL;
	r.file_data = "PK\x03\x04";
	r.file_size = 4;
	r.file_name = "a.zip";
	r.file_type = "application/zip";
	ok(email_reply_build(&r, &s, &len) == 0 && strstr(s, "Subject: Message from clawbox") &&
	       strstr(s, "multipart/mixed") && strstr(s, "filename=a.zip") && strstr(s, "UEsDBA=="),
	   "a new message with an attachment");
	free(s);
}

static void
test_bad(void)
{
	struct email_in m;
	ok(parse("", NULL, &m) == 0 || true, "empty input does not crash");
	email_in_done(&m);
	ok(parse("From: <@>\r\n\r\n", NULL, &m) == 0 && m.from_addr == NULL,
	   "no usable From: NULL sender");
	email_in_done(&m);
	int r = parse("From: a@b\r\nSubject: x\r\n y\r\n\r\n", NULL, &m);
	ok(r == 0 && !strchr(m.subject, '\n'), "a folded subject is one line: [%s]",
	   r == 0 ? m.subject : "");
	email_in_done(&m);
}

int
main(void)
{
	test_plain();
	test_multipart();
	test_attachments();
	test_auth_results();
	test_reply();
	test_bad();
	return tap_done();
}
