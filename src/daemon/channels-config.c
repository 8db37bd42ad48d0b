/*
 * channels-config.c: the "channels" list of the configuration, checked whole at start like
 * the rest (config.h):
 *
 *   "channels": [{"name": "tg", "kind": "telegram", "chats": {"CHAT_ID": "GROUP"},
 *                 "token_env": "VAR" | "token_file": "/path (0600)", ...the kind's own keys}]
 *
 * The daemon checks what is its business: a name of its own ([a-z0-9_-], unique), a kind,
 * the chats (each naming a configured group: a channel delivers into these and no others),
 * and that a secret is named by a variable or a file path, never written inline (a "token"
 * key is refused). The rest of the object goes to the channel as written, in its start
 * frame (without "name", "kind" and "chats", which the frame carries apart), and the channel
 * checks its own keys.
 *
 * The older form, "telegram": {"token_env", "base_url", "chats"}, keeps working: it is a
 * channel named "telegram" of kind "telegram" (whose store keys, "telegram.offset" and
 * "telegram.delivered", are the ones the in-daemon Telegram of earlier versions kept, so an
 * upgrade neither re-reads nor re-sends anything).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel-proto.h"
#include "config.h"
#include "json-util.h"
#include "macro.h"

static int _printf_(3, 4) bad(char *why, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, size, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static bool
valid_name(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n >= max)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' ||
		      *p == '-'))
			return false;
	return true;
}

static bool
valid_env(const char *s)
{
	if (!*s || strlen(s) >= 64 || (*s >= '0' && *s <= '9'))
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

const struct channel_config *
config_channel(const struct daemon_config *c, const char *name)
{
	for (size_t i = 0; i < c->n_channels; i++)
		if (strcmp(c->channels[i].name, name) == 0)
			return &c->channels[i];
	return NULL;
}

static int
parse_chats(json_t *chats, const char *where, struct daemon_config *c, struct channel_config *out,
            char *why, size_t size)
{
	if (!chats)
		return 0;
	if (!json_is_object(chats))
		return bad(why, size, "%s.chats: expected {\"CHAT_ID\": \"GROUP\", ...}", where);
	if (json_object_size(chats) > CONFIG_CHANNEL_CHATS)
		return bad(why, size, "%s.chats: at most %d", where, CONFIG_CHANNEL_CHATS);
	out->chats = calloc(json_object_size(chats) + 1, sizeof(*out->chats));
	if (!out->chats)
		return -ENOMEM;
	const char *k;
	json_t *g;
	json_object_foreach(chats, k, g)
	{
		if (!*k || strlen(k) > CHANPROTO_ID_MAX || !json_is_string(g) ||
		    !config_group(c, json_string_value(g)))
			return bad(why, size,
			           "%s.chats.%.64s: expected the id of a configured group", where,
			           k);
		struct channel_chat *ch = &out->chats[out->n_chats];
		ch->chat = strdup(k);
		if (!ch->chat)
			return -ENOMEM;
		snprintf(ch->group, sizeof(ch->group), "%s", json_string_value(g));
		out->n_chats++;
	}
	return 0;
}

/* One channel object o (the older telegram one when legacy) into out. */
static int
parse_channel(json_t *o, const char *where, bool legacy, struct daemon_config *c,
              struct channel_config *out, char *why, size_t size)
{
	if (!json_is_object(o))
		return bad(why, size, "%s: expected an object", where);
	if (legacy) {
		static const char *const keys[] = {"token_env", "base_url", "chats", NULL};
		const char *k;
		json_t *v;
		json_object_foreach(o, k, v)
		{
			bool known = false;
			for (size_t i = 0; keys[i]; i++)
				known |= strcmp(k, keys[i]) == 0;
			if (!known)
				return bad(why, size, "%s.%s: unknown key", where, k);
		}
		snprintf(out->name, sizeof(out->name), "telegram");
		snprintf(out->kind, sizeof(out->kind), "telegram");
	} else {
		const char *name = json_get_str(o, "name"), *kind = json_get_str(o, "kind");
		if (!name || !valid_name(name, sizeof(out->name)))
			return bad(why, size, "%s.name: expected a name of a-z, 0-9, _ and -",
			           where);
		if (!kind || !valid_name(kind, sizeof(out->kind)))
			return bad(why, size,
			           "%s.kind: expected a channel kind such as \"telegram\"", where);
		snprintf(out->name, sizeof(out->name), "%s", name);
		snprintf(out->kind, sizeof(out->kind), "%s", kind);
	}
	/* The daemon must never hold a channel's secret: one written into the config is
	 * refused, not passed on. */
	if (json_object_get(o, "token") || json_object_get(o, "secret") ||
	    json_object_get(o, "password"))
		return bad(
		    why, size,
		    "%s: a secret is never written here; name its file (\"token_file\", mode "
		    "0600) or variable (\"token_env\")",
		    where);
	json_t *env = json_object_get(o, "token_env"), *file = json_object_get(o, "token_file");
	if (env && (!json_is_string(env) || !valid_env(json_string_value(env))))
		return bad(why, size, "%s.token_env: expected a variable's name", where);
	if (file && (!json_is_string(file) || json_string_value(file)[0] != '/'))
		return bad(why, size, "%s.token_file: expected an absolute path", where);
	const char *base = json_get_str(o, "base_url");
	if (json_object_get(o, "base_url") &&
	    (!base || (strncmp(base, "https://", 8) != 0 && strncmp(base, "http://", 7) != 0)))
		return bad(why, size, "%s.base_url: expected http:// or https://", where);
	_cleanup_json_ json_t *copy = json_deep_copy(o);
	if (!copy)
		return -ENOMEM;
	/* The legacy object's defaults, as it always had them. */
	if (legacy && !env)
		json_object_set_new(copy, "token_env", json_string("TELEGRAM_BOT_TOKEN"));
	if (legacy && !base)
		json_object_set_new(copy, "base_url", json_string("https://api.telegram.org"));
	snprintf(out->token_env, sizeof(out->token_env), "%s",
	         json_get_str(copy, "token_env") ?: "");
	int r = parse_chats(json_object_get(o, "chats"), where, c, out, why, size);
	if (r < 0)
		return r;
	/* The daemon's keys: the chats travel as the start frame's "chats", the name as its
	 * "name"; the channel gets its own keys (and token_env / token_file) only. */
	json_object_del(copy, "chats");
	json_object_del(copy, "name");
	json_object_del(copy, "kind");
	out->config = json_dumps(copy, JSON_COMPACT);
	return out->config ? 0 : -ENOMEM;
}

int
channels_config_parse(json_t *j, struct daemon_config *c, char *why, size_t size)
{
	c->n_channels = 0;
	json_t *tg = json_object_get(j, "telegram");
	int r;
	if (tg) {
		r = parse_channel(tg, "telegram", true, c, &c->channels[0], why, size);
		c->n_channels = 1;
		if (r < 0)
			return r;
	}
	json_t *list = json_object_get(j, "channels");
	if (list && !json_is_array(list))
		return bad(why, size, "channels: expected a list");
	size_t i;
	json_t *o;
	json_array_foreach(list, i, o)
	{
		char where[32];
		snprintf(where, sizeof(where), "channels[%zu]", i);
		if (c->n_channels >= CONFIG_MAX_CHANNELS)
			return bad(why, size, "channels: at most %d", CONFIG_MAX_CHANNELS);
		struct channel_config *ch = &c->channels[c->n_channels++];
		r = parse_channel(o, where, false, c, ch, why, size);
		if (r < 0)
			return r;
		for (size_t k = 0; k + 1 < c->n_channels; k++)
			if (strcmp(c->channels[k].name, ch->name) == 0)
				return bad(
				    why, size, "%s.name: \"%s\" is used twice%s", where, ch->name,
				    tg && k == 0 ? " (the \"telegram\" object is a channel of "
				                   "that name)"
				                 : "");
	}
	return 0;
}

void
channels_config_done(struct daemon_config *c)
{
	for (size_t i = 0; i < c->n_channels; i++) {
		struct channel_config *ch = &c->channels[i];
		for (size_t k = 0; k < ch->n_chats; k++)
			free(ch->chats[k].chat);
		free(ch->chats);
		free(ch->config);
		ch->chats = NULL;
		ch->config = NULL;
		ch->n_chats = 0;
	}
	c->n_channels = 0;
}
