/*
 * telegram.h: what the Telegram channel reads from the Bot API, parsed (telegram-parse.c):
 * one update of a getUpdates answer into what the channel reports. Pure functions on
 * borrowed JSON, no I/O, so the fuzzer (tests/fuzz/fuzz-telegram.c) runs them as they run.
 */
#ifndef CLAWBOX_TELEGRAM_H
#define CLAWBOX_TELEGRAM_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "channel-proto.h"

enum tg_update_kind {
	TG_OTHER,      /* nothing to report (its offset still moves on) */
	TG_MESSAGE,    /* a message with text, a caption or a file */
	TG_CALLBACK,   /* a press on one of our approval buttons */
	TG_BAD_BUTTON, /* a callback query that is not one of ours: answered, nothing else */
};

struct tg_update {
	enum tg_update_kind kind;
	long long update_id;
	/* TG_MESSAGE. Strings point into the update (borrowed) or into the buffers here. */
	/* ext_id is "CHAT:MESSAGE_ID" (unique per bot, and what a reply names), or "u" and the
	 * update id for a message without one; thread: a forum topic's message_thread_id. */
	char chat[32], sender[CHANPROTO_ID_MAX + 1], ext_id[64], cursor[32], thread[32];
	const char *chat_kind, *sender_name, *text;
	bool mention;
	const char *file_id; /* NULL: no file */
	char file_name[CHANPROTO_FILE_NAME_MAX + 1], file_type[128];
	uint64_t file_size;
	/* TG_CALLBACK, TG_BAD_BUTTON */
	const char *callback_id;
	long long cb_chat, cb_message; /* the message with the buttons (0: not said) */
	int64_t approval;
	char answer[16], approver[64];
};

/* One element u of getUpdates' "result" into *ret. 0, or -EINVAL when u is not an update
 * (no integer update_id: the answer is not Telegram's, nothing of it is taken). */
int tg_update_parse(const json_t *u, struct tg_update *ret);

#endif
