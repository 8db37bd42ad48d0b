/*
 * email-msg.h: the email channel's two MIME jobs, both done by GMime (no MIME code of ours):
 * reading an inbound mail into the few fields the channel uses, and building a reply with
 * the threading headers mail clients expect (In-Reply-To, References, "Re:" subject).
 *
 * The inbound side is the part an attacker reaches (anyone can send the bot mail), so it
 * takes a bounded buffer, keeps every output bounded, never fails on odd input other than
 * by -EBADMSG, and is fuzzed (tests/fuzz/fuzz-email.c).
 *
 * Ownership: every char * in struct email_in is owned by it; email_in_done() frees them.
 */
#ifndef CLAWBOX_EMAIL_MSG_H
#define CLAWBOX_EMAIL_MSG_H

#include <stdbool.h>
#include <stddef.h>

#define EMAIL_TEXT_MAX    (32 * 1024) /* text handed on; the rest is cut, said in the text */
#define EMAIL_SUBJECT_MAX 512
#define EMAIL_ID_MAX      998 /* a header line's limit (RFC 5322) */
#define EMAIL_REFS_MAX    20  /* References kept (the newest) */
#define EMAIL_ATT_MAX     4   /* attachments kept (the protocol's descriptors per frame) */

struct email_attachment {
	char *name; /* the part's file name, sanitized, no '/'; "attachment" when it has none */
	char *type; /* "type/subtype" */
	void *data; /* decoded (base64, quoted-printable undone) */
	size_t size;
};

struct email_in {
	char *from_addr;  /* lower-cased addr-spec of the first From mailbox, or NULL */
	char *from_name;  /* its display name, or NULL */
	char *subject;    /* decoded, control characters removed; "" when absent */
	char *message_id; /* without <>, or NULL */
	char *references; /* "<a> <b>": the References chain to continue in a reply; may be "" */
	char *text;       /* the text/plain part (else the HTML part as text); "" when none */
	bool truncated;   /* text was cut at EMAIL_TEXT_MAX */
	bool auth_pass;   /* see email_in_parse's authserv_id */
	struct email_attachment att[EMAIL_ATT_MAX];
	size_t n_att;
	size_t att_dropped; /* attachments past EMAIL_ATT_MAX or past att_max bytes */
};

/* Parses raw (len bytes, RFC 5322) into *ret. authserv_id (NULL: skip the check) names the
 * receiving server whose Authentication-Results header is believed: auth_pass is true when
 * the first such header says dkim=pass with header.d equal to the From domain, or spf=pass
 * with smtp.mailfrom in the From domain. Headers of other servers (or of the sender, who can
 * write any header) are ignored; the receiving server must drop inbound headers that claim
 * its own id, as RFC 8601 section 5 asks. Returns 0, -EBADMSG (no message could be read),
 * -ENOMEM. On failure *ret is zeroed. */
int email_in_parse(const char *raw, size_t len, const char *authserv_id, struct email_in *ret);
/* The same, keeping up to EMAIL_ATT_MAX attachments (parts with a Content-Disposition of
 * attachment, or of a type other than text) of at most att_max bytes each, decoded; the rest
 * are counted in att_dropped. */
int email_in_parse_files(const char *raw, size_t len, const char *authserv_id, size_t att_max,
                         struct email_in *ret);
void email_in_done(struct email_in *m);

struct email_reply {
	const char *from_addr; /* the bot's address */
	const char *from_name; /* or NULL */
	const char *to_addr;
	const char *subject;     /* the original's subject (NULL: a new conversation) */
	const char *in_reply_to; /* the original's Message-ID without <>, or NULL */
	const char *references;  /* the original's References ("<a> <b>"), or NULL */
	const char *message_id;  /* the new message's id without <> */
	const char *text;        /* UTF-8 */
	/* An attachment (send_file), or NULL data */
	const void *file_data;
	size_t file_size;
	const char *file_name;
	const char *file_type; /* "type/subtype", or NULL: application/octet-stream */
};

/* Builds the reply as CRLF-terminated RFC 5322 text (what SMTP sends) into *ret (malloc'ed,
 * NUL-terminated) and its length into *ret_len. Subject: "Re: " + subject unless it already
 * starts so, "Message from clawbox" for a new conversation. References: the original's chain
 * plus its id, the oldest dropped past EMAIL_REFS_MAX. Returns 0, -EINVAL, -ENOMEM. */
int email_reply_build(const struct email_reply *r, char **ret, size_t *ret_len);

/* Lower-cases the domain part of addr in place and returns it ("" when there is none). */
const char *email_addr_domain(const char *addr);

#endif
