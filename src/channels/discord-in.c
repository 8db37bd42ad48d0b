/*
 * discord-in.c: reading one Gateway payload (discord.h): its opcode and sequence number,
 * HELLO's heartbeat, READY's session, and for MESSAGE_CREATE the fields the daemon gets,
 * only when the message is a person's (not a bot's, not ours) with text or attachments (each
 * one's fields are read by discord.c when it fetches it). Every field is
 * checked for presence, kind and length. Fuzzed by tests/fuzz/fuzz-discord.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "discord.h"
#include "json-util.h"

static bool
mentions(const json_t *list, const char *bot_id)
{
	size_t i;
	json_t *m;
	if (!bot_id || !*bot_id)
		return false;
	json_array_foreach(list, i, m)
	{
		const char *id = json_get_str(m, "id");
		if (id && strcmp(id, bot_id) == 0)
			return true;
	}
	return false;
}

/* A MESSAGE_COMPONENT interaction (type 3) whose custom_id is one of our buttons. */
static void
read_interaction(struct dc_in *ret, const json_t *d)
{
	static const char *const answers[] = {"approve", "deny", "run"};
	const char *custom = json_get_str(json_object_get(d, "data"), "custom_id");
	const json_t *user = json_object_get(json_object_get(d, "member"), "user");
	if (!user)
		user = json_object_get(d, "user"); /* a DM's press */
	const char *who = json_get_str(user, "id"), *chat = json_get_str(d, "channel_id");
	const char *id = json_get_str(d, "id"), *token = json_get_str(d, "token");
	long long approval;
	char answer[16];
	int used = 0;
	if (json_integer_value(json_object_get(d, "type")) != 3 || !custom || !who || !chat ||
	    !id || !token || !*who || !*chat || !*id || !*token || strlen(who) > 20 ||
	    strlen(chat) > 20 || strlen(id) > 20 || strlen(token) > 512 ||
	    sscanf(custom, "ap:%lld:%15[a-z]%n", &approval, answer, &used) != 2 ||
	    (size_t)used != strlen(custom) || approval <= 0)
		return;
	for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++)
		if (strcmp(answer, answers[i]) == 0) {
			ret->ev = DC_EV_INTERACTION;
			ret->approval = approval;
			ret->answer = answers[i];
			ret->sender = who;
			ret->chat = chat;
			ret->interaction_id = id;
			ret->interaction_token = token;
			ret->app_id = json_get_str(d, "application_id");
			if (ret->app_id && strlen(ret->app_id) > 20)
				ret->app_id = NULL;
		}
}

int
dc_in_parse(const char *text, size_t len, const char *bot_id, struct dc_in *ret)
{
	*ret = (struct dc_in){.seq = -1};
	json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	json_t *op = json_object_get(j, "op");
	if (!json_is_object(j) || !json_is_integer(op)) {
		json_decref(j);
		return -EBADMSG;
	}
	ret->j = j;
	ret->op = (int)json_integer_value(op);
	json_t *s = json_object_get(j, "s"), *d = json_object_get(j, "d");
	if (json_is_integer(s) && json_integer_value(s) >= 0)
		ret->seq = json_integer_value(s);
	switch (ret->op) {
	case DC_OP_HELLO:
		ret->heartbeat_ms = json_integer_value(json_object_get(d, "heartbeat_interval"));
		if (ret->heartbeat_ms < 100 || ret->heartbeat_ms > 600000) {
			dc_in_done(ret); /* no sane heartbeat: not a Gateway */
			return -EBADMSG;
		}
		return 0;
	case DC_OP_INVALID_SESSION:
		ret->resumable = json_is_true(d);
		return 0;
	case DC_OP_DISPATCH:
		break;
	default:
		return 0;
	}
	const char *t = json_get_str(j, "t") ?: "";
	if (strcmp(t, "READY") == 0) {
		ret->session_id = json_get_str(d, "session_id");
		ret->resume_url = json_get_str(d, "resume_gateway_url");
		ret->user_id = json_get_str(json_object_get(d, "user"), "id");
		ret->app_id = json_get_str(json_object_get(d, "application"), "id");
		if (ret->app_id && strlen(ret->app_id) > 20)
			ret->app_id = NULL;
		if (ret->session_id && ret->resume_url && ret->user_id &&
		    strlen(ret->session_id) < 128 && strlen(ret->resume_url) < 512 &&
		    strlen(ret->user_id) < 32)
			ret->ev = DC_EV_READY;
		return 0;
	}
	if (strcmp(t, "RESUMED") == 0) {
		ret->ev = DC_EV_RESUMED;
		return 0;
	}
	if (strcmp(t, "INTERACTION_CREATE") == 0) {
		read_interaction(ret, d);
		return 0;
	}
	if (strcmp(t, "MESSAGE_CREATE") != 0)
		return 0;
	json_t *author = json_object_get(d, "author");
	ret->id = json_get_str(d, "id");
	ret->chat = json_get_str(d, "channel_id");
	ret->sender = json_get_str(author, "id");
	ret->sender_name = json_get_str(author, "username");
	ret->text = json_get_str(d, "content");
	ret->direct = !json_get_str(d, "guild_id");
	ret->mention = ret->direct || mentions(json_object_get(d, "mentions"), bot_id);
	ret->attachments = json_object_get(d, "attachments");
	if (!json_is_array(ret->attachments))
		ret->attachments = NULL;
	if (!ret->id || !ret->chat || !ret->sender || !ret->text || !*ret->id || !*ret->chat ||
	    (!*ret->text && json_array_size(ret->attachments) == 0) ||
	    json_is_true(json_object_get(author, "bot")) ||
	    (bot_id && strcmp(ret->sender, bot_id) == 0))
		return 0; /* a bot's (ours too), or nothing to read: an embed, a sticker */
	ret->ev = DC_EV_MESSAGE;
	return 0;
}

void
dc_in_done(struct dc_in *in)
{
	json_decref(in->j);
	in->j = NULL;
}
