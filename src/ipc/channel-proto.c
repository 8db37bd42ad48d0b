/*
 * channel-proto.c: the channel protocol's frames (channel-proto.h) as a table of rows, one
 * per type, each a list of fields with their kind and bound, and the one checker that holds
 * a frame to its row. The daemon runs every frame a channel sends through it before it looks
 * at any field, so each handler there sees only well-formed frames; the channel side runs
 * what it sends through it too, so a bug shows up as an error where it is made.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "channel-proto.h"
#include "fd-util.h"
#include "json-util.h"
#include "macro.h"

enum kind {
	K_STR,      /* a string of at most max bytes */
	K_STR_NULL, /* the same, or null */
	K_INT,      /* an integer in [0, 2^53] */
	K_BOOL,
	K_OBJ,     /* an object (the channel's config: its own checks apply) */
	K_CHATS,   /* {"CHAT": "group"}: string values */
	K_FILES,   /* [{"name", "size", "type"}], as many as descriptors came */
	K_FILE,    /* one {"name", "size", "type"}, with one descriptor */
	K_BUTTONS, /* ["approve"|"run"|"deny"], 1 to 3 */
	K_ENUM,    /* a string among the row's words */
};

struct field {
	const char *name;
	enum kind kind;
	bool required;
	size_t max;
	const char *const *words; /* K_ENUM */
};

#define FIELDS_MAX 12
struct row {
	const char *name;
	enum chanproto_dir dir;
	struct field fields[FIELDS_MAX];
};

static const char *const states[] = {"connecting", "connected", "error", NULL};
static const char *const answers[] = {"approve", "deny", "run", NULL};

#define REQ(n, k, m)                                                                               \
	{                                                                                          \
		n, k, true, m, NULL                                                                \
	}
#define OPT(n, k, m)                                                                               \
	{                                                                                          \
		n, k, false, m, NULL                                                               \
	}

static const struct row rows[CHANPROTO_N_TYPES] = {
    [CHANPROTO_START] = {"start",
                         CHANPROTO_TO_CHANNEL,
                         {REQ("name", K_STR, CHANPROTO_NAME_MAX), REQ("config", K_OBJ, 0),
                          REQ("cursor", K_STR_NULL, CHANPROTO_CURSOR_MAX),
                          REQ("chats", K_CHATS, CHANPROTO_ID_MAX)}},
    [CHANPROTO_STORED] = {"stored", CHANPROTO_TO_CHANNEL, {REQ("ext_id", K_STR, CHANPROTO_ID_MAX)}},
    [CHANPROTO_REPLY] = {"reply",
                         CHANPROTO_TO_CHANNEL,
                         {REQ("ref", K_INT, 0), REQ("chat", K_STR, CHANPROTO_ID_MAX),
                          OPT("thread", K_STR_NULL, CHANPROTO_ID_MAX),
                          REQ("text", K_STR, CHANPROTO_TEXT_MAX),
                          OPT("reply_to", K_STR_NULL, CHANPROTO_ID_MAX), OPT("file", K_FILE, 0)}},
    [CHANPROTO_EDIT] = {"edit",
                        CHANPROTO_TO_CHANNEL,
                        {REQ("ref", K_INT, 0), REQ("chat", K_STR, CHANPROTO_ID_MAX),
                         OPT("thread", K_STR_NULL, CHANPROTO_ID_MAX),
                         REQ("ext_id", K_STR, CHANPROTO_ID_MAX),
                         REQ("text", K_STR, CHANPROTO_TEXT_MAX)}},
    [CHANPROTO_TYPING] = {"typing",
                          CHANPROTO_TO_CHANNEL,
                          {REQ("chat", K_STR, CHANPROTO_ID_MAX),
                           OPT("thread", K_STR_NULL, CHANPROTO_ID_MAX)}},
    [CHANPROTO_APPROVAL] = {"approval",
                            CHANPROTO_TO_CHANNEL,
                            {REQ("ref", K_INT, 0), REQ("chat", K_STR, CHANPROTO_ID_MAX),
                             OPT("thread", K_STR_NULL, CHANPROTO_ID_MAX), REQ("approval", K_INT, 0),
                             REQ("text", K_STR, CHANPROTO_TEXT_MAX), REQ("buttons", K_BUTTONS, 0)}},
    [CHANPROTO_ANSWERED] = {"answered",
                            CHANPROTO_TO_CHANNEL,
                            {REQ("approval", K_INT, 0), REQ("approver", K_STR, CHANPROTO_ID_MAX),
                             REQ("ok", K_BOOL, 0), REQ("text", K_STR, CHANPROTO_DETAIL_MAX)}},
    [CHANPROTO_STATUS] = {"status",
                          CHANPROTO_TO_DAEMON,
                          {{"state", K_ENUM, true, 0, states},
                           OPT("detail", K_STR, CHANPROTO_DETAIL_MAX)}},
    [CHANPROTO_MESSAGE] =
        {"message",
         CHANPROTO_TO_DAEMON,
         {REQ("chat", K_STR, CHANPROTO_ID_MAX), OPT("chat_kind", K_STR, 32),
          REQ("sender", K_STR, CHANPROTO_ID_MAX), OPT("sender_name", K_STR, CHANPROTO_ID_MAX),
          REQ("text", K_STR, CHANPROTO_TEXT_MAX), OPT("mention", K_BOOL, 0),
          OPT("thread", K_STR_NULL, CHANPROTO_ID_MAX), REQ("ext_id", K_STR, CHANPROTO_ID_MAX),
          OPT("cursor", K_STR_NULL, CHANPROTO_CURSOR_MAX), OPT("attachments", K_FILES, 0)}},
    [CHANPROTO_SENT] = {"sent",
                        CHANPROTO_TO_DAEMON,
                        {REQ("ref", K_INT, 0), REQ("ext_id", K_STR, CHANPROTO_ID_MAX)}},
    [CHANPROTO_FAILED] = {"failed",
                          CHANPROTO_TO_DAEMON,
                          {REQ("ref", K_INT, 0), REQ("error", K_STR, CHANPROTO_DETAIL_MAX),
                           REQ("retry", K_BOOL, 0)}},
    [CHANPROTO_APPROVAL_ANSWER] = {"approval_answer",
                                   CHANPROTO_TO_DAEMON,
                                   {REQ("approval", K_INT, 0),
                                    {"answer", K_ENUM, true, 0, answers},
                                    REQ("approver", K_STR, CHANPROTO_ID_MAX)}},
};

const char *
chanproto_name(enum chanproto_type t)
{
	return (unsigned)t < CHANPROTO_N_TYPES ? rows[t].name : "?";
}

static int _printf_(3, 4) bad(char *why, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (why && size)
		vsnprintf(why, size, fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

/* jansson decodes only valid UTF-8 but allows \u0000; a NUL would cut the string short in
 * every C consumer after us, so it is refused. */
static int
check_string(const json_t *v, size_t max, const char *field, char *why, size_t size)
{
	if (!json_is_string(v))
		return bad(why, size, "%s: expected a string", field);
	size_t len = json_string_length(v);
	if (max && len > max)
		return bad(why, size, "%s: longer than %zu bytes", field, max);
	if (memchr(json_string_value(v), '\0', len))
		return bad(why, size, "%s: holds a NUL", field);
	return 0;
}

static int
check_file(const json_t *f, const char *field, char *why, size_t size)
{
	static const char *const keys[] = {"name", "size", "type", NULL};
	if (!json_is_object(f))
		return bad(why, size, "%s: expected {\"name\", \"size\", \"type\"}", field);
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)f, k, v)
	{
		bool known = false;
		for (size_t i = 0; keys[i]; i++)
			known |= strcmp(k, keys[i]) == 0;
		if (!known)
			return bad(why, size, "%s.%s: not a field of a file", field, k);
	}
	const json_t *name = json_object_get(f, "name"), *sz = json_object_get(f, "size");
	if (check_string(name, CHANPROTO_FILE_NAME_MAX, field, why, size) < 0)
		return -EBADMSG;
	const char *n = json_string_value(name);
	/* A name is only ever a name: no folder, no dot-file trick, nothing to escape from. */
	if (!*n || strchr(n, '/') || strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
		return bad(why, size, "%s.name: expected a file name", field);
	if (!json_is_integer(sz) || json_integer_value(sz) < 0 ||
	    json_integer_value(sz) > (json_int_t)CHANPROTO_FILE_MAX)
		return bad(why, size, "%s.size: expected 0 to %u", field, CHANPROTO_FILE_MAX);
	const json_t *type = json_object_get(f, "type");
	if (type && check_string(type, 128, field, why, size) < 0)
		return -EBADMSG;
	return 0;
}

static int
check_field(const struct field *fl, const json_t *v, size_t n_fds, size_t *files, char *why,
            size_t size)
{
	switch (fl->kind) {
	case K_STR:
		return check_string(v, fl->max, fl->name, why, size);
	case K_STR_NULL:
		return json_is_null(v) ? 0 : check_string(v, fl->max, fl->name, why, size);
	case K_INT:
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > (json_int_t)1 << 53)
			return bad(why, size, "%s: expected a non-negative integer", fl->name);
		return 0;
	case K_BOOL:
		return json_is_boolean(v) ? 0
		                          : bad(why, size, "%s: expected true or false", fl->name);
	case K_OBJ:
		return json_is_object(v) ? 0 : bad(why, size, "%s: expected an object", fl->name);
	case K_CHATS: {
		if (!json_is_object(v))
			return bad(why, size, "%s: expected an object", fl->name);
		const char *k;
		json_t *g;
		json_object_foreach((json_t *)v, k, g)
		{
			if (!*k || strlen(k) > fl->max)
				return bad(why, size, "%s: a chat id is empty or too long",
				           fl->name);
			if (check_string(g, CHANPROTO_ID_MAX, fl->name, why, size) < 0)
				return -EBADMSG;
		}
		return 0;
	}
	case K_FILES: {
		if (!json_is_array(v) || json_array_size(v) > CHANPROTO_FDS_MAX)
			return bad(why, size, "%s: expected a list of at most %d files", fl->name,
			           CHANPROTO_FDS_MAX);
		size_t i;
		json_t *f;
		json_array_foreach(v, i,
		                   f) if (check_file(f, fl->name, why, size) < 0) return -EBADMSG;
		*files += json_array_size(v);
		(void)n_fds;
		return 0;
	}
	case K_FILE:
		if (check_file(v, fl->name, why, size) < 0)
			return -EBADMSG;
		*files += 1;
		return 0;
	case K_BUTTONS: {
		if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > 3)
			return bad(why, size, "%s: expected 1 to 3 buttons", fl->name);
		size_t i;
		json_t *b;
		json_array_foreach(v, i, b)
		{
			const char *s = json_string_value(b);
			bool ok = false;
			for (size_t w = 0; s && answers[w]; w++)
				ok |= strcmp(s, answers[w]) == 0;
			if (!ok)
				return bad(why, size, "%s[%zu]: expected approve, run or deny",
				           fl->name, i);
		}
		return 0;
	}
	case K_ENUM: {
		const char *s = json_string_value(v);
		for (size_t w = 0; s && fl->words[w]; w++)
			if (strcmp(s, fl->words[w]) == 0)
				return 0;
		return bad(why, size, "%s: not one of the words it may be", fl->name);
	}
	}
	return bad(why, size, "%s: unknown kind", fl->name);
}

int
chanproto_check(const json_t *j, enum chanproto_dir dir, size_t n_fds,
                enum chanproto_type *ret_type, char *why, size_t why_size)
{
	if (!json_is_object(j))
		return bad(why, why_size, "a frame is a JSON object");
	const char *t = json_get_str(j, "t");
	if (!t)
		return bad(why, why_size, "a frame has a string \"t\"");
	const struct row *row = NULL;
	enum chanproto_type type = 0;
	for (; type < CHANPROTO_N_TYPES; type++)
		if (strcmp(rows[type].name, t) == 0) {
			row = &rows[type];
			break;
		}
	if (!row)
		return bad(why, why_size, "unknown frame type \"%.32s\"", t);
	if (row->dir != dir)
		return bad(why, why_size, "a %s frame goes the other way", row->name);
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)j, k, v)
	{
		if (strcmp(k, "t") == 0)
			continue;
		bool known = false;
		for (size_t i = 0; i < FIELDS_MAX && row->fields[i].name; i++)
			known |= strcmp(row->fields[i].name, k) == 0;
		if (!known)
			return bad(why, why_size, "%s: unknown field \"%.32s\"", row->name, k);
	}
	size_t files = 0;
	for (size_t i = 0; i < FIELDS_MAX && row->fields[i].name; i++) {
		const struct field *fl = &row->fields[i];
		const json_t *fv = json_object_get(j, fl->name);
		if (!fv) {
			if (fl->required)
				return bad(why, why_size, "%s: \"%s\" is missing", row->name,
				           fl->name);
			continue;
		}
		char sub[200];
		if (check_field(fl, fv, n_fds, &files, sub, sizeof(sub)) < 0)
			return bad(why, why_size, "%s: %s", row->name, sub);
	}
	/* Each file named is one descriptor that came with the frame, and no other came. */
	if (files != n_fds)
		return bad(why, why_size, "%s: %zu file%s named, %zu descriptor%s sent", row->name,
		           files, files == 1 ? "" : "s", n_fds, n_fds == 1 ? "" : "s");
	*ret_type = type;
	return 0;
}

int
chanproto_decode(const void *buf, size_t len, enum chanproto_dir dir, size_t n_fds, json_t **ret,
                 enum chanproto_type *ret_type, char *why, size_t why_size)
{
	if (len > CHANPROTO_FRAME_MAX) {
		bad(why, why_size, "a frame of %zu bytes (at most %d)", len, CHANPROTO_FRAME_MAX);
		return -EMSGSIZE;
	}
	json_error_t jerr;
	_cleanup_json_ json_t *j =
	    json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!j)
		return bad(why, why_size, "not JSON: %s", jerr.text);
	enum chanproto_type type;
	int r = chanproto_check(j, dir, n_fds, &type, why, why_size);
	if (r < 0)
		return r;
	*ret_type = type;
	*ret = TAKE_PTR(j);
	return 0;
}

int
chanproto_send(int sock, enum chanproto_dir dir, const json_t *frame, const int *fds, size_t n_fds,
               char *why, size_t why_size)
{
	enum chanproto_type type;
	int r = chanproto_check(frame, dir, n_fds, &type, why, why_size);
	if (r < 0)
		return r;
	_cleanup_free_ char *s = json_dumps(frame, JSON_COMPACT);
	if (!s)
		return -ENOMEM;
	size_t len = strlen(s);
	if (len > CHANPROTO_FRAME_MAX) {
		bad(why, why_size, "a %s frame of %zu bytes (at most %d)", chanproto_name(type),
		    len, CHANPROTO_FRAME_MAX);
		return -EMSGSIZE;
	}
	return send_msg(sock, s, len, fds, n_fds);
}

int
chanproto_recv(int sock, enum chanproto_dir dir, struct chanproto_frame *ret, char *why,
               size_t why_size)
{
	/* One byte more than a frame may have: a datagram that fills it was too long (a
	 * SEQPACKET datagram longer than the buffer is cut, and recv_msg says so too). */
	_cleanup_free_ char *buf = malloc(CHANPROTO_FRAME_MAX + 1);
	if (!buf)
		return -ENOMEM;
	int fds[CHANPROTO_FDS_MAX];
	size_t n = 0;
	ssize_t len = recv_msg(sock, buf, CHANPROTO_FRAME_MAX + 1, fds, CHANPROTO_FDS_MAX, &n);
	if (len == -EMSGSIZE) {
		bad(why, why_size, "a frame or its descriptors past the bounds");
		return -EMSGSIZE;
	}
	if (len < 0)
		return (int)len;
	json_t *j = NULL;
	enum chanproto_type type;
	int r = chanproto_decode(buf, (size_t)len, dir, n, &j, &type, why, why_size);
	if (r < 0) {
		for (size_t i = 0; i < n; i++)
			close(fds[i]);
		return r;
	}
	ret->type = type;
	ret->j = j;
	ret->n_fds = n;
	memcpy(ret->fds, fds, n * sizeof(int));
	return 0;
}

void
chanproto_frame_done(struct chanproto_frame *f)
{
	if (!f)
		return;
	json_decref(f->j);
	f->j = NULL;
	for (size_t i = 0; i < f->n_fds; i++)
		close(f->fds[i]);
	f->n_fds = 0;
}

size_t
chanproto_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	size_t n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

int
chanproto_memfd(const char *name, const void *data, size_t len)
{
	if (len > CHANPROTO_FILE_MAX)
		return -EFBIG;
	_cleanup_close_ int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return NEG_ERRNO();
	int r = write_all(fd, data, len);
	if (r < 0)
		return r;
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0 ||
	    lseek(fd, 0, SEEK_SET) < 0)
		return NEG_ERRNO();
	return TAKE_FD(fd);
}
