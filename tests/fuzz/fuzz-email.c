/*
 * fuzz-email.c: the email channel's inbound parser (src/channels/email-msg.c) on arbitrary
 * mail. Anyone can send the bot mail, so besides the sanitizers' checks it holds the parser to
 * its promises: every field it returns is bounded and free of control characters that could
 * reach a header or a terminal (the sender, the subject, the ids), the text is within
 * EMAIL_TEXT_MAX, and attachments are at most EMAIL_ATT_MAX of at most their bound, with
 * names that are one file name (no '/', not hidden). libFuzzer entry point; replay.c runs the saved corpus in `make check`.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "email-msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
one_line(const char *s, size_t max)
{
	if (!s)
		return;
	if (strlen(s) > max)
		abort();
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < ' ' || *p == 0x7f)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct email_in m;
	if (email_in_parse_files((const char *)data, size, "mx.example.test", 4096, &m) != 0)
		return 0;
	if (m.n_att > EMAIL_ATT_MAX)
		abort();
	for (size_t i = 0; i < m.n_att; i++) {
		one_line(m.att[i].name, 200);
		one_line(m.att[i].type, 127);
		if (strchr(m.att[i].name, '/') || m.att[i].name[0] == '.' || !m.att[i].name[0] ||
		    m.att[i].size > 4096)
			abort();
	}
	one_line(m.from_addr, 320);
	one_line(m.from_name, 256);
	one_line(m.subject, EMAIL_SUBJECT_MAX);
	one_line(m.message_id, EMAIL_ID_MAX);
	one_line(m.references, EMAIL_REFS_MAX * (EMAIL_ID_MAX + 3));
	if (!m.text || strlen(m.text) > EMAIL_TEXT_MAX)
		abort();
	if (m.auth_pass && !m.from_addr)
		abort();
	email_in_done(&m);
	return 0;
}
