/*
 * discord.h: what discord.c exposes besides its chan_kind row: the reader of one Gateway
 * payload, for the fuzzer (tests/fuzz/fuzz-discord.c) and the channel alike.
 */
#ifndef CLAWBOX_DISCORD_H
#define CLAWBOX_DISCORD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Gateway opcodes (https://discord.com/developers/docs/topics/opcodes-and-status-codes). */
enum {
	DC_OP_DISPATCH = 0,
	DC_OP_HEARTBEAT = 1,
	DC_OP_IDENTIFY = 2,
	DC_OP_RESUME = 6,
	DC_OP_RECONNECT = 7,
	DC_OP_INVALID_SESSION = 9,
	DC_OP_HELLO = 10,
	DC_OP_HEARTBEAT_ACK = 11,
};

enum dc_event {
	DC_EV_NONE,
	DC_EV_READY,
	DC_EV_RESUMED,
	DC_EV_MESSAGE,     /* a MESSAGE_CREATE for us: the fields below are set */
	DC_EV_INTERACTION, /* a press of one of our approval buttons */
};

struct dc_in {
	int op;
	int64_t seq;            /* "s"; -1: none */
	enum dc_event ev;       /* op 0 */
	int64_t heartbeat_ms;   /* op 10 */
	bool resumable;         /* op 9 */
	const char *session_id; /* READY */
	const char *resume_url; /* READY */
	const char *user_id;    /* READY: the bot's own id */
	const char *app_id;     /* READY, an interaction: the application's id (follow-ups) */
	/* DC_EV_MESSAGE; borrowed from j */
	const char *id, *chat, *sender, *sender_name, *text; /* text may be "" with files */
	bool direct, mention;
	json_t *attachments; /* the message's "attachments" array, borrowed; may be empty */
	/* DC_EV_INTERACTION: the button's "ap:ID:ANSWER", the interaction's id and token,
	 * who pressed it (sender) in which channel (chat) */
	long long approval;
	const char *answer; /* "approve", "deny" or "run" (static) */
	const char *interaction_id, *interaction_token;
	json_t *j; /* owned */
};

/* Reads one Gateway payload. bot_id: our own user id ("" before READY): its messages and
 * other bots' are not for us; a mention of it makes a guild message ours. 0 and *ret
 * (dc_in_done() it), or -EBADMSG (not a payload: dropped). */
int dc_in_parse(const char *text, size_t len, const char *bot_id, struct dc_in *ret);
void dc_in_done(struct dc_in *in);

#endif
