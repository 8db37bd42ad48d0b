/*
 * telegram-parse.c: a Bot API update into what the Telegram channel reports (telegram.h).
 * Everything here is Telegram's input, so every field is checked for its kind and cut to its
 * bound; what comes out is always a frame channel-proto.c accepts (the fuzzer checks that).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "json-util.h"
#include "telegram.h"

/* A string member that is a string, with no NUL inside (jansson allows \u0000). */
static const char *
str(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	if (!json_is_string(v) || memchr(json_string_value(v), '\0', json_string_length(v)))
		return NULL;
	return json_string_value(v);
}

/* A string that fits a frame's identifier fields, or NULL. */
static const char *
id_str(const json_t *o, const char *key)
{
	const char *s = str(o, key);
	return s && strlen(s) <= CHANPROTO_ID_MAX ? s : NULL;
}

static void
parse_file(const json_t *m, struct tg_update *u)
{
	const json_t *file = NULL;
	const json_t *doc = json_object_get(m, "document");
	if (json_is_object(doc)) {
		const char *n = str(doc, "file_name");
		/* Only a plain name is kept: the daemon checks again, this keeps it valid. */
		bool plain = n && *n && strlen(n) <= CHANPROTO_FILE_NAME_MAX && !strchr(n, '/') &&
		             strcmp(n, ".") != 0 && strcmp(n, "..") != 0;
		snprintf(u->file_name, sizeof(u->file_name), "%s", plain ? n : "document");
		const char *t = str(doc, "mime_type");
		snprintf(u->file_type, sizeof(u->file_type), "%s", t && strlen(t) < 128 ? t : "");
		file = doc;
	} else {
		const json_t *photos = json_object_get(m, "photo");
		size_t n = json_array_size(photos);
		if (n && json_is_object(json_array_get(photos, n - 1))) {
			snprintf(u->file_name, sizeof(u->file_name), "photo.jpg");
			snprintf(u->file_type, sizeof(u->file_type), "image/jpeg");
			file = json_array_get(photos, n - 1); /* the largest size */
		}
	}
	u->file_id = file ? id_str(file, "file_id") : NULL;
	json_int_t size = json_integer_value(json_object_get(file, "file_size"));
	u->file_size = size > 0 ? (uint64_t)size : 0;
}

static void
parse_callback(const json_t *q, struct tg_update *u)
{
	u->callback_id = id_str(q, "id");
	u->kind = u->callback_id ? TG_BAD_BUTTON : TG_OTHER;
	const char *data = str(q, "data");
	const json_t *from_id = json_object_get(json_object_get(q, "from"), "id");
	long long approval;
	char end;
	if (!u->callback_id || !data || !json_is_integer(from_id) ||
	    sscanf(data, "ap:%lld:%15[a-z]%c", &approval, u->answer, &end) != 2 || approval <= 0 ||
	    approval > (1LL << 53) ||
	    (strcmp(u->answer, "approve") != 0 && strcmp(u->answer, "deny") != 0 &&
	     strcmp(u->answer, "run") != 0))
		return;
	u->kind = TG_CALLBACK;
	u->approval = approval;
	const json_t *msg = json_object_get(q, "message");
	const json_t *cid = json_object_get(json_object_get(msg, "chat"), "id");
	const json_t *mid = json_object_get(msg, "message_id");
	if (json_is_integer(cid) && json_is_integer(mid)) {
		u->cb_chat = (long long)json_integer_value(cid);
		u->cb_message = (long long)json_integer_value(mid);
	}
	snprintf(u->approver, sizeof(u->approver), "telegram:%lld",
	         (long long)json_integer_value(from_id));
}

int
tg_update_parse(const json_t *uj, struct tg_update *u)
{
	memset(u, 0, sizeof(*u));
	const json_t *idv = json_object_get(uj, "update_id");
	if (!json_is_integer(idv) || json_integer_value(idv) < 0 ||
	    json_integer_value(idv) > (1LL << 53))
		return -EINVAL;
	u->update_id = (long long)json_integer_value(idv);
	const json_t *q = json_object_get(uj, "callback_query");
	if (json_is_object(q)) {
		parse_callback(q, u);
		return 0;
	}
	const json_t *m = json_object_get(uj, "message");
	const json_t *chat = json_object_get(m, "chat");
	const json_t *chat_id = json_object_get(chat, "id");
	if (!json_is_object(m) || !json_is_integer(chat_id))
		return 0; /* not a message we take */
	const json_t *from = json_object_get(m, "from");
	snprintf(u->chat, sizeof(u->chat), "%lld", (long long)json_integer_value(chat_id));
	const json_t *mid = json_object_get(m, "message_id");
	if (json_is_integer(mid))
		snprintf(u->ext_id, sizeof(u->ext_id), "%s:%lld", u->chat,
		         (long long)json_integer_value(mid));
	else
		snprintf(u->ext_id, sizeof(u->ext_id), "u%lld", u->update_id);
	const json_t *topic = json_object_get(m, "message_thread_id");
	if (json_is_integer(topic) && json_is_true(json_object_get(m, "is_topic_message")))
		snprintf(u->thread, sizeof(u->thread), "%lld",
		         (long long)json_integer_value(topic));
	snprintf(u->cursor, sizeof(u->cursor), "%lld", u->update_id + 1);
	const char *type = str(chat, "type");
	u->chat_kind = type && strlen(type) <= 32 ? type : NULL;
	u->mention = u->chat_kind && strcmp(u->chat_kind, "private") == 0;
	u->sender_name = id_str(from, "username") ?: id_str(from, "first_name");
	/* The sender is Telegram's user id (what approvers and owners name); one without (an
	 * anonymous admin, a channel post) is known by its name. */
	if (json_is_integer(json_object_get(from, "id")))
		snprintf(u->sender, sizeof(u->sender), "%lld",
		         (long long)json_integer_value(json_object_get(from, "id")));
	else
		snprintf(u->sender, sizeof(u->sender), "%s", u->sender_name ?: "unknown");
	u->text = str(m, "text") ?: str(m, "caption");
	parse_file(m, u);
	if (!u->text && !u->file_id)
		return 0; /* a sticker, a join: nothing for anyone */
	if (!u->text)
		u->text = "";
	u->kind = TG_MESSAGE;
	return 0;
}
