/*
 * slack-in.c: reading one Socket Mode frame (slack.h): what kind it is, and for an
 * events_api envelope carrying a message, the fields the daemon gets. Nothing here trusts
 * the frame: every field is checked for presence and kind, and what is not a plain message
 * said by a person (edits, bots, joins, other events) is "ignore". Fuzzed by
 * tests/fuzz/fuzz-slack.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "slack.h"

static bool
mentions(const char *text, const char *bot_user)
{
	char tag[80];
	if (!bot_user || !*bot_user)
		return false;
	snprintf(tag, sizeof(tag), "<@%s>", bot_user);
	return strstr(text, tag) != NULL;
}

static char *
unescape(const char *s)
{
	static const struct {
		const char *from;
		char to;
	} ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}};
	char *out = malloc(strlen(s) + 1), *o = out;
	if (!out)
		return NULL;
	while (*s) {
		size_t k = 0;
		while (k < sizeof(ents) / sizeof(ents[0]) &&
		       strncmp(s, ents[k].from, strlen(ents[k].from)) != 0)
			k++;
		if (k < sizeof(ents) / sizeof(ents[0])) {
			*o++ = ents[k].to;
			s += strlen(ents[k].from);
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
	return out;
}

/* A block_actions payload whose first action is one of our buttons, "ap:ID:ANSWER". */
static int
read_action(struct slack_in *ret, const json_t *payload)
{
	static const char *const answers[] = {"approve", "deny", "run"};
	const char *ptype = json_get_str(payload, "type") ?: "";
	const json_t *action = json_array_get(json_object_get(payload, "actions"), 0);
	const char *id = json_get_str(action, "action_id");
	const char *user = json_get_str(json_object_get(payload, "user"), "id");
	const char *chat = json_get_str(json_object_get(payload, "channel"), "id");
	long long approval;
	char answer[16];
	int used = 0;
	if (strcmp(ptype, "block_actions") != 0 || !id || !user || !chat || !*user || !*chat ||
	    strlen(user) > 64 || strlen(chat) > 64 ||
	    sscanf(id, "ap:%lld:%15[a-z]%n", &approval, answer, &used) != 2 ||
	    (size_t)used != strlen(id) || approval <= 0)
		return 0;
	for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++)
		if (strcmp(answer, answers[i]) == 0) {
			ret->kind = SLACK_IN_APPROVAL;
			ret->approval = approval;
			ret->answer = answers[i];
			ret->user = user;
			ret->chat = chat;
		}
	return 0;
}

int
slack_in_parse(const char *text, size_t len, const char *bot_user, struct slack_in *ret)
{
	*ret = (struct slack_in){.kind = SLACK_IN_IGNORE};
	json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		return -EBADMSG;
	}
	ret->j = j;
	ret->envelope_id = json_get_str(j, "envelope_id");
	if (ret->envelope_id && (!*ret->envelope_id || strlen(ret->envelope_id) > 128))
		ret->envelope_id = NULL;
	const char *type = json_get_str(j, "type") ?: "";
	if (strcmp(type, "hello") == 0) {
		ret->kind = SLACK_IN_HELLO;
		return 0;
	}
	if (strcmp(type, "disconnect") == 0) {
		ret->kind = SLACK_IN_DISCONNECT;
		ret->reason = json_get_str(j, "reason") ?: "";
		return 0;
	}
	if (strcmp(type, "interactive") == 0)
		return read_action(ret, json_object_get(j, "payload"));
	if (strcmp(type, "events_api") != 0)
		return 0;
	json_t *ev = json_object_get(json_object_get(j, "payload"), "event");
	const char *etype = json_get_str(ev, "type") ?: "";
	bool app_mention = strcmp(etype, "app_mention") == 0;
	if (!app_mention && strcmp(etype, "message") != 0)
		return 0;
	const char *subtype = json_get_str(ev, "subtype");
	if (subtype && strcmp(subtype, "thread_broadcast") != 0 &&
	    strcmp(subtype, "file_share") != 0)
		return 0; /* edits, deletions, joins, bot messages: not something said to us */
	const char *chat = json_get_str(ev, "channel"), *user = json_get_str(ev, "user");
	const char *body = json_get_str(ev, "text"), *ts = json_get_str(ev, "ts");
	if (!chat || !user || !body || !ts || !*chat || !*user || !*ts ||
	    json_object_get(ev, "bot_id") || (bot_user && strcmp(user, bot_user) == 0))
		return 0;
	if ((size_t)snprintf(ret->ext_id, sizeof(ret->ext_id), "%s:%s", chat, ts) >=
	    sizeof(ret->ext_id))
		return 0;
	const char *ct = json_get_str(ev, "channel_type") ?: "channel";
	bool direct = strcmp(ct, "im") == 0;
	/* Slack escapes &, < and > in text (the rest of <...> is its markup, kept). */
	if (!(ret->text_buf = unescape(body)))
		return 0;
	ret->kind = SLACK_IN_MESSAGE;
	ret->chat = chat;
	ret->user = user;
	ret->text = ret->text_buf;
	ret->thread = json_get_str(ev, "thread_ts");
	ret->files =
	    json_is_array(json_object_get(ev, "files")) ? json_object_get(ev, "files") : NULL;
	ret->chat_kind = direct ? "private" : strcmp(ct, "mpim") == 0 ? "group" : "channel";
	ret->mention = direct || app_mention || mentions(body, bot_user);
	return 0;
}

void
slack_in_done(struct slack_in *in)
{
	free(in->text_buf);
	in->text_buf = NULL;
	json_decref(in->j);
	in->j = NULL;
}
