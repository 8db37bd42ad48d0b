/*
 * matrix-sync.c: a /sync answer into the events the Matrix channel acts on (matrix-sync.h).
 * Everything here is the homeserver's word, so every field is checked for its kind and
 * bound before it is used; what does not fit is left out, never guessed at. The order is the
 * answer's: rooms in the order jansson keeps their keys (insertion order: the server's), and
 * each room's timeline in order, since the channel reports messages in that order and the
 * last one carries the cursor.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "channel-proto.h"
#include "json-util.h"
#include "matrix-sync.h"

/* A member that is a string with no NUL inside, or NULL. The answer is parsed with NUL
 * allowed, so that one event holding "\u0000" cannot make the whole answer unreadable (and
 * the channel stuck on its since token); such a string is then never used. */
static const char *
get_str(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	const char *s = json_string_value(v);
	return s && strlen(s) == json_string_length(v) ? s : NULL;
}

static bool
id_ok(const char *s)
{
	return s && *s && strlen(s) <= CHANPROTO_ID_MAX;
}

static bool
names_us(const json_t *content, const char *body, const char *self)
{
	size_t i;
	json_t *u;
	json_array_foreach(json_object_get(json_object_get(content, "m.mentions"), "user_ids"), i,
	                   u) if (json_is_string(u) &&
	                          strcmp(json_string_value(u), self) == 0) return true;
	/* Clients that predate m.mentions put the user id (or a pill of it) in the body. */
	size_t n = strlen(self);
	for (const char *p = body; n && *p; p++)
		if (strncasecmp(p, self, n) == 0)
			return true;
	return false;
}

static bool
is_file_kind(const char *msgtype)
{
	static const char *const kinds[] = {"m.file", "m.image", "m.audio", "m.video"};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(msgtype, kinds[i]) == 0)
			return true;
	return false;
}

static bool
is_text_kind(const char *msgtype)
{
	return strcmp(msgtype, "m.text") == 0 || strcmp(msgtype, "m.notice") == 0 ||
	       strcmp(msgtype, "m.emote") == 0;
}

static int
push(struct mx_sync *s, const struct mx_event *e)
{
	if (s->n >= MX_SYNC_EVENTS_MAX) {
		s->skipped++;
		return 0;
	}
	if (!s->ev && !(s->ev = calloc(MX_SYNC_EVENTS_MAX, sizeof(*s->ev))))
		return -ENOMEM;
	s->ev[s->n++] = *e;
	return 0;
}

/* One timeline event of a joined room. */
static int
take_message(struct mx_sync *s, const char *room, const json_t *ev, const char *self)
{
	const json_t *content = json_object_get(ev, "content");
	const char *type = get_str(ev, "type");
	const char *sender = get_str(ev, "sender");
	const char *event_id = get_str(ev, "event_id");
	const char *msgtype = get_str(content, "msgtype");
	const char *body = get_str(content, "body");
	if (!type || strcmp(type, "m.room.message") != 0 || !id_ok(sender) || !id_ok(event_id) ||
	    !msgtype || !body || strcmp(sender, self) == 0)
		return 0;
	if (!is_text_kind(msgtype) && !is_file_kind(msgtype))
		return 0;
	const json_t *rel = json_object_get(content, "m.relates_to");
	const char *rel_type = get_str(rel, "rel_type");
	if (rel_type && strcmp(rel_type, "m.replace") == 0)
		return 0; /* an edit: the original message was the one to answer */
	struct mx_event e = {.kind = MX_MESSAGE,
	                     .room = room,
	                     .event_id = event_id,
	                     .sender = sender,
	                     .body = body,
	                     .msgtype = msgtype,
	                     .file_size = -1};
	const char *root = get_str(rel, "event_id");
	if (rel_type && strcmp(rel_type, "m.thread") == 0 && id_ok(root))
		e.thread = root;
	e.mention = names_us(content, body, self);
	if (is_file_kind(msgtype)) {
		const json_t *info = json_object_get(content, "info");
		const char *url = get_str(content, "url");
		const char *fname = get_str(content, "filename") ?: body;
		json_t *size = json_object_get(info, "size");
		if (url && strncmp(url, "mxc://", 6) == 0 && strlen(url) <= CHANPROTO_ID_MAX) {
			e.media_url = url;
			e.file_name = fname;
			const char *t = get_str(info, "mimetype");
			e.file_type = t && strlen(t) <= 127 ? t : NULL;
			e.file_size = json_is_integer(size) && json_integer_value(size) >= 0
			                  ? (int64_t)json_integer_value(size)
			                  : -1;
		}
	}
	return push(s, &e);
}

/* rooms.invite.ROOM: an invitation of us is the m.room.member event with state_key self and
 * membership "invite" among its stripped state. */
static int
take_invite(struct mx_sync *s, const char *room, const json_t *r, const char *self)
{
	size_t i;
	json_t *ev;
	json_array_foreach(json_object_get(json_object_get(r, "invite_state"), "events"), i, ev)
	{
		const char *type = get_str(ev, "type");
		const char *key = get_str(ev, "state_key");
		const char *sender = get_str(ev, "sender");
		const char *membership = get_str(json_object_get(ev, "content"), "membership");
		if (!type || strcmp(type, "m.room.member") != 0 || !key || strcmp(key, self) != 0 ||
		    !membership || strcmp(membership, "invite") != 0 || !id_ok(sender))
			continue;
		struct mx_event e = {.kind = MX_INVITE,
		                     .room = room,
		                     .sender = sender,
		                     .body = "",
		                     .msgtype = "",
		                     .file_size = -1};
		return push(s, &e);
	}
	return 0;
}

int
mx_sync_parse(const char *body, size_t len, const char *self, struct mx_sync *ret)
{
	struct mx_sync s = {0};
	int r = 0;
	s.root = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
	s.next_batch = get_str(s.root, "next_batch");
	const json_t *rooms = json_object_get(s.root, "rooms");
	if (!s.next_batch || !*s.next_batch || strlen(s.next_batch) > MX_SYNC_BATCH_MAX ||
	    (rooms && !json_is_object(rooms))) {
		json_decref(s.root);
		return -EBADMSG;
	}
	const char *room;
	size_t room_len;
	json_t *v;
	json_object_keylen_foreach((json_t *)json_object_get(rooms, "join"), room, room_len, v)
	{
		if (!id_ok(room) || strlen(room) != room_len)
			continue;
		size_t i;
		json_t *ev;
		json_array_foreach(json_object_get(json_object_get(v, "timeline"), "events"), i, ev)
		{
			if ((r = take_message(&s, room, ev, self)) < 0)
				goto fail;
		}
	}
	json_object_keylen_foreach((json_t *)json_object_get(rooms, "invite"), room, room_len, v)
	{
		if (id_ok(room) && strlen(room) == room_len &&
		    (r = take_invite(&s, room, v, self)) < 0)
			goto fail;
	}
	*ret = s;
	return 0;
fail:
	mx_sync_done(&s);
	return r;
}

void
mx_sync_done(struct mx_sync *s)
{
	free(s->ev);
	json_decref(s->root);
	*s = (struct mx_sync){0};
}

static int
copy_part(const char *p, size_t n, char *out, size_t size)
{
	if (n == 0 || n >= size || p[0] == '.') /* no "..": curl would fold it away */
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == ':';
		if (!ok)
			return -EINVAL;
	}
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

int
mx_media_split(const char *url, char *server, size_t server_size, char *id, size_t id_size)
{
	if (!url || strncmp(url, "mxc://", 6) != 0)
		return -EINVAL;
	const char *s = url + 6;
	const char *slash = strchr(s, '/');
	if (!slash)
		return -EINVAL;
	/* Both parts go into a download path: nothing that could climb out of it or add a
	 * query (the spec's media ids are [A-Za-z0-9_-]; server names host[:port]). */
	if (copy_part(s, (size_t)(slash - s), server, server_size) < 0 ||
	    copy_part(slash + 1, strlen(slash + 1), id, id_size) < 0)
		return -EINVAL;
	return 0;
}
