/*
 * slack.h: what slack.c exposes besides its chan_kind row: the reader of one Socket Mode
 * frame, for the fuzzer (tests/fuzz/fuzz-slack.c) and the channel alike.
 */
#ifndef CLAWBOX_SLACK_H
#define CLAWBOX_SLACK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum slack_in_kind {
	SLACK_IN_IGNORE,     /* nothing for us (but ack it if it has an envelope_id) */
	SLACK_IN_HELLO,      /* the connection is ready */
	SLACK_IN_DISCONNECT, /* Slack will close this one: open the next */
	SLACK_IN_MESSAGE,    /* a message for the daemon; ack once it is stored */
	SLACK_IN_APPROVAL,   /* a press of one of our approval buttons; ack at once */
};

struct slack_in {
	enum slack_in_kind kind;
	const char *envelope_id; /* NULL: none */
	const char *reason;      /* disconnect */
	/* SLACK_IN_MESSAGE; borrowed from j */
	const char *chat, *chat_kind, *user, *text, *thread;
	char ext_id[160]; /* "CHANNEL:TS": the same event delivered twice has the same one */
	bool mention;
	const json_t *files; /* the event's files[] (a file_share), or NULL; borrowed from j */
	/* SLACK_IN_APPROVAL: the button's "ap:ID:ANSWER", who pressed it where (user, chat) */
	long long approval;
	const char *answer; /* "approve", "deny" or "run" (static) */
	char *text_buf;     /* owned: text with Slack's &amp; &lt; &gt; undone */
	json_t *j;          /* owned */
};

/* Reads one text frame of Socket Mode. bot_user: the bot's own user id (its messages are
 * not for it; a "<@BOT>" in the text is a mention), may be "". 0 and *ret (slack_in_done()
 * it), or -EBADMSG (not a JSON object: the frame is dropped). */
int slack_in_parse(const char *text, size_t len, const char *bot_user, struct slack_in *ret);
void slack_in_done(struct slack_in *in);

#endif
