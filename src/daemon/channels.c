/*
 * channels.c: the daemon's side of the channels (channel-proto.h). Each configured channel
 * (channels-config.c) is a process, `clawbox-channel KIND`, that this file starts with its
 * end of a SOCK_SEQPACKET socketpair on fd 3, supervises and restarts with backoff (1 s,
 * doubling to 60 s; back to 1 s once it has run a minute). The channel holds its token and
 * its service's connection; the daemon holds the store, the groups and the decisions.
 *
 * Every frame a channel sends is untrusted input: chanproto_recv() holds it to its row, and
 * the handlers below re-check what the row cannot know. A channel delivers only into the
 * chats configured for it (any other chat is recorded, bounded, and dropped); it answers
 * only refs this file gave it; it speaks only for users of its own kind ("KIND:ID"); its
 * attachments are only regular files up to the bound. A frame that breaks any of this cuts
 * the channel off: audited, killed, restarted. The daemon lives on.
 *
 * In, exactly once: a message is stored with the channel's cursor in one transaction,
 * deduplicated by (channel, ext_id) (store_channel_message), and only then answered
 * "stored". A restarted channel starts from the stored cursor.
 * Out, in order, one at a time per channel: each outgoing message of a group with a chat in
 * the channel goes out as a "reply" whose ref is the message's id; the channel's "sent"
 * receipt moves the channel's persisted mark ("NAME.delivered") past it. A channel that dies
 * before the receipt gets the same reply again after its restart (a service that took it
 * and then lost the answer can so see it twice: the one case left, as before).
 *
 * Progress (issue 12): a run still going CH_PROGRESS_AFTER_S after its first text shows
 * that text in a message of its own (a reply frame), edited ("edit") at most every
 * CH_PROGRESS_EVERY_S; once the reply goes out, that run's progress is left alone. Typing
 * ("typing") is sent when a message is accepted and while the run streams text.
 */
#include <errno.h>
#include <event2/http.h>
#include <stdarg.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "approvals.h"
#include "channel-proto.h"
#include "channels.h"
#include "daemon.h"
#include "dbuf.h"
#include "fd-util.h"
#include "json-util.h"
#include "log.h"

#define CH_BACKOFF_MAX_S    60
#define CH_STABLE_S         60 /* a channel up this long restarts after 1 s again */
#define CH_PROGRESS_AFTER_S 3
#define CH_PROGRESS_EVERY_S 3
#define CH_TYPING_EVERY_S   4
#define CH_RETRY_S          5  /* a failed reply with retry: tried again after */
#define CH_UNKNOWN_AUDITS   20 /* unknown-chat audit rows per channel per window */
#define CH_UNKNOWN_WINDOW_S 600
#define CH_EPHEMERAL_REF    ((int64_t)1 << 50) /* refs past it are not message ids */
#define CH_PENDING_MAX      32
#define CH_ATTACH_NOTE      160
/* A channel answers every reply (sent or failed) and every edit; one that does not for this
 * long is stuck: a reply cuts it off (its restart sends it again), an edit is let go. */
#define CH_RECEIPT_WAIT_S 600
#define CH_EDIT_WAIT_S    120

enum pending_kind { PEND_NONE, PEND_PROGRESS, PEND_APPROVAL };

struct slot {                              /* one group's run as this channel shows it */
	int64_t reply_to;                  /* the message the run answers; 0: none */
	int64_t over;                      /* a run whose reply went out */
	struct dbuf text;                  /* what the run said so far (capped) */
	time_t first, sent, typing;        /* its first text; the last send or edit; typing */
	bool dirty;                        /* text not yet shown */
	bool busy;                         /* a send or edit in flight */
	char ext_id[CHANPROTO_ID_MAX + 1]; /* the progress message, once sent */
};

struct pending {
	int64_t ref;
	enum pending_kind kind;
	size_t slot;
	int64_t run; /* PEND_PROGRESS: the slot's reply_to when it was sent */
	time_t at;
};

struct chproc {
	struct daemon *d;
	const struct channel_config *cfg;
	pid_t pid;
	int sock;
	struct event *rx, *restart;
	const char *state; /* connecting, connected, error, restarting, stopped */
	char last_error[CHANPROTO_DETAIL_MAX + 1];
	time_t since, started;
	unsigned restarts, backoff_s;
	char cursor_key[64], delivered_key[64];
	int64_t delivered, sending; /* the outbox mark; the reply in flight (0: none) */
	time_t sending_at;
	time_t retry_at; /* a failed reply is sent again from then */
	unsigned retry_s;
	struct slot *slots; /* by index in cfg.groups */
	struct pending pending[CH_PENDING_MAX];
	int64_t next_ref;
	unsigned unknown_audits, unknown_dropped;
	time_t unknown_window;
};

static struct {
	struct chproc p[CONFIG_MAX_CHANNELS];
	size_t n;
	struct event *tick;
	char exe[PATH_MAX];
	time_t started;
} ch;

/* ---- the chats ---- */

static const char *
chat_group(const struct chproc *p, const char *chat)
{
	for (size_t i = 0; i < p->cfg->n_chats; i++)
		if (strcmp(p->cfg->chats[i].chat, chat) == 0)
			return p->cfg->chats[i].group;
	return NULL;
}

/* The first chat of group in this channel, or NULL. */
static const char *
group_chat(const struct chproc *p, const char *group)
{
	for (size_t i = 0; i < p->cfg->n_chats; i++)
		if (strcmp(p->cfg->chats[i].group, group) == 0)
			return p->cfg->chats[i].chat;
	return NULL;
}

static long
group_index(const struct daemon *d, const char *group)
{
	for (size_t i = 0; i < d->cfg.n_groups; i++)
		if (strcmp(d->cfg.groups[i].id, group) == 0)
			return (long)i;
	return -1;
}

/* ---- sending ---- */

static void cut_off(struct chproc *p, const char *fmt, ...) _printf_(2, 3);

/* A frame to the channel. The daemon never waits for a channel: a full socket (a channel
 * not reading) is -EAGAIN, and what was not sent is sent again later (replies, progress) or
 * not at all (typing). */
static int
send_frame(struct chproc *p, json_t *frame, const int *fds, size_t n_fds)
{
	_cleanup_json_ json_t *f = frame;
	if (p->sock < 0)
		return -ENOTCONN;
	if (!f)
		return -ENOMEM;
	char why[256];
	int r = chanproto_send(p->sock, CHANPROTO_TO_CHANNEL, f, fds, n_fds, why, sizeof(why));
	if (r == -EBADMSG || r == -EMSGSIZE)
		log_error("channel %s: a %s frame not sent: %s", p->cfg->name, json_get_str(f, "t"),
		          why);
	return r;
}

static int64_t
new_ref(struct chproc *p, enum pending_kind kind, size_t slot, int64_t run)
{
	for (size_t i = 0; i < CH_PENDING_MAX; i++)
		if (p->pending[i].kind == PEND_NONE) {
			p->pending[i] = (struct pending){.ref = CH_EPHEMERAL_REF + ++p->next_ref,
			                                 .kind = kind,
			                                 .slot = slot,
			                                 .run = run,
			                                 .at = time(NULL)};
			return p->pending[i].ref;
		}
	return -EBUSY;
}

static struct pending *
find_pending(struct chproc *p, int64_t ref)
{
	for (size_t i = 0; i < CH_PENDING_MAX; i++)
		if (p->pending[i].kind != PEND_NONE && p->pending[i].ref == ref)
			return &p->pending[i];
	return NULL;
}

static void
mark_delivered(struct chproc *p, int64_t id)
{
	char v[32];
	snprintf(v, sizeof(v), "%lld", (long long)id);
	p->delivered = id;
	if (store_kv_set(p->d->store, p->delivered_key, v) < 0)
		log_error("channel %s: cannot record a delivery: %s", p->cfg->name,
		          store_error(p->d->store));
}

static bool
up(const struct chproc *p)
{
	return p->sock >= 0 && p->pid > 0;
}

/* Message out_id of group goes out: the progress of the run it answers is over. */
static void
progress_over(struct chproc *p, const char *group, int64_t out_id)
{
	long gi = group_index(p->d, group);
	struct slot *s = gi >= 0 ? &p->slots[gi] : NULL;
	if (s && s->reply_to > 0 && s->reply_to < out_id) {
		s->dirty = false;
		s->over = s->reply_to;
	}
}

/* A send_file's message (hostact.c kept the file as data_dir/files/NAME, kv "file:ID"): a
 * sealed memfd copy of it, named in f's "file". The channel gets a copy it cannot change
 * and no path into the daemon's folder. -1: not a file's message (or the file is gone: the
 * text still says what it was). */
static int
attach_file(struct daemon *d, int64_t id, json_t *f)
{
	char key[48], name[256], path[PATH_MAX + 300];
	snprintf(key, sizeof(key), "file:%lld", (long long)id);
	if (store_kv_get(d->store, key, name, sizeof(name)) < 0 || strchr(name, '/'))
		return -1;
	snprintf(path, sizeof(path), "%s/files/%s", d->cfg.data_dir, name);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > CHANPROTO_FILE_MAX)
		return -1;
	_cleanup_free_ char *data = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!data || pread(fd, data, (size_t)st.st_size, 0) != st.st_size)
		return -1;
	/* The name as the agent gave it: after the "TIME-RANDOM-" hostact.c put first. */
	const char *shown = strchr(name, '-') ? strchr(strchr(name, '-') + 1, '-') : NULL;
	shown = shown && shown[1] ? shown + 1 : name;
	if (strcmp(shown, ".") == 0 || strcmp(shown, "..") == 0)
		shown = "file";
	int mfd = chanproto_memfd(shown, data, (size_t)st.st_size);
	if (mfd < 0)
		return -1;
	json_object_set_new(f, "file",
	                    json_pack("{s:s,s:I,s:s}", "name", shown, "size",
	                              (json_int_t)st.st_size, "type", "application/octet-stream"));
	return mfd;
}

/* The next outgoing message for this channel, if none is in flight. */
static void
send_next(struct chproc *p)
{
	struct daemon *d = p->d;
	if (!up(p) || p->sending || d->stopping || time(NULL) < p->retry_at)
		return;
	_cleanup_json_ json_t *out = NULL;
	if (store_out_after(d->store, p->delivered, &out) < 0)
		return;
	size_t i;
	json_t *m;
	json_array_foreach(out, i, m)
	{
		int64_t id = (int64_t)json_integer_value(json_object_get(m, "id"));
		const char *group = json_get_str(m, "group") ?: "";
		const char *chat = group_chat(p, group);
		if (!chat) {
			mark_delivered(p, id); /* a group without a chat here: nothing to deliver */
			continue;
		}
		/* A reply to a message that came through this channel goes back where it came
		 * from: its chat (while still configured for the group), its thread, answering
		 * it. Anything else goes to the group's first chat here. */
		struct store_origin o;
		json_t *reply_to = json_object_get(m, "reply_to");
		bool from_here =
		    json_is_integer(reply_to) &&
		    store_channel_origin(d->store, p->cfg->name,
		                         (int64_t)json_integer_value(reply_to), &o) == 0;
		const char *og = from_here ? chat_group(p, o.chat) : NULL;
		if (og && strcmp(og, group) == 0)
			chat = o.chat;
		else
			from_here = false;
		const char *text = json_get_str(m, "text") ?: "";
		size_t len = chanproto_cut(text, strlen(text), CHANPROTO_TEXT_MAX);
		json_t *f = json_pack("{s:s,s:I,s:s,s:s%}", "t", "reply", "ref", (json_int_t)id,
		                      "chat", chat, "text", text, len);
		if (f && from_here) {
			json_object_set_new(f, "reply_to", json_string(o.ext_id));
			if (o.thread[0])
				json_object_set_new(f, "thread", json_string(o.thread));
		}
		_cleanup_close_ int file = f ? attach_file(d, id, f) : -1;
		p->sending = id;
		p->sending_at = time(NULL);
		progress_over(p, group, id);
		int r = send_frame(p, f, &file, file >= 0 ? 1 : 0);
		if (r == -EAGAIN) {
			p->sending = 0; /* the channel is not reading: the tick tries again */
		} else if (r < 0) {
			p->sending = 0;
			mark_delivered(p, id);
			char why[160];
			snprintf(why, sizeof(why), "message %lld not sent to the channel: %s",
			         (long long)id, strerror(-r));
			(void)store_audit(d->store, group, p->cfg->name, "error", why);
		}
		return; /* one at a time, in order */
	}
}

static void
send_typing(struct chproc *p, const char *group)
{
	const char *chat = group_chat(p, group);
	if (chat && up(p))
		(void)send_frame(p, json_pack("{s:s,s:s}", "t", "typing", "chat", chat), NULL, 0);
}

/* At most one progress send or edit in flight per group. */
static void
progress_next(struct chproc *p)
{
	struct daemon *d = p->d;
	if (!up(p) || d->stopping)
		return;
	time_t now = time(NULL);
	for (size_t i = 0; i < d->cfg.n_groups; i++) {
		struct slot *s = &p->slots[i];
		if (s->reply_to > 0 && s->reply_to != s->over && s->dirty &&
		    now - s->typing >= CH_TYPING_EVERY_S) {
			s->typing = now;
			send_typing(p, d->cfg.groups[i].id);
		}
		if (s->busy || !s->dirty || s->reply_to <= 0 || s->reply_to == s->over ||
		    now - s->first < CH_PROGRESS_AFTER_S || now - s->sent < CH_PROGRESS_EVERY_S)
			continue;
		const char *chat = group_chat(p, d->cfg.groups[i].id);
		if (!chat)
			continue;
		int64_t ref = new_ref(p, PEND_PROGRESS, i, s->reply_to);
		if (ref < 0)
			return;
		const char *t = dbuf_str(&s->text);
		char shown[CHANPROTO_TEXT_MAX + 16];
		snprintf(shown, sizeof(shown), "(working) %.*s",
		         (int)chanproto_cut(t, s->text.len, CHANPROTO_TEXT_MAX - 16), t);
		json_t *f = s->ext_id[0] ? json_pack("{s:s,s:I,s:s,s:s,s:s}", "t", "edit", "ref",
		                                     (json_int_t)ref, "chat", chat, "ext_id",
		                                     s->ext_id, "text", shown)
		                         : json_pack("{s:s,s:I,s:s,s:s}", "t", "reply", "ref",
		                                     (json_int_t)ref, "chat", chat, "text", shown);
		if (send_frame(p, f, NULL, 0) < 0) {
			find_pending(p, ref)->kind = PEND_NONE;
			continue;
		}
		s->dirty = false;
		s->busy = true;
		s->sent = now;
	}
}

void
channels_progress(struct daemon *d, const char *group, int64_t reply_to, const char *text,
                  size_t len)
{
	long gi = group_index(d, group);
	if (gi < 0 || reply_to <= 0)
		return;
	for (size_t k = 0; k < ch.n; k++) {
		struct chproc *p = &ch.p[k];
		struct slot *s = &p->slots[gi];
		if (!group_chat(p, group) || reply_to == s->over)
			continue;
		if (s->reply_to != reply_to) { /* a new run */
			dbuf_reset(&s->text);
			s->reply_to = reply_to;
			s->first = time(NULL);
			s->sent = 0;
			s->ext_id[0] = '\0';
		}
		(void)dbuf_append_capped(&s->text, text, len);
		s->dirty = true;
	}
}

void
channels_approval(struct daemon *d, const char *group, int64_t approval, const char *text)
{
	for (size_t k = 0; k < ch.n; k++) {
		struct chproc *p = &ch.p[k];
		const char *chat = group_chat(p, group);
		if (!chat || !up(p))
			continue;
		int64_t ref = new_ref(p, PEND_APPROVAL, 0, approval);
		if (ref < 0)
			continue;
		size_t len = chanproto_cut(text, strlen(text), CHANPROTO_TEXT_MAX);
		json_t *f =
		    json_pack("{s:s,s:I,s:s,s:I,s:s%,s:[sss]}", "t", "approval", "ref",
		              (json_int_t)ref, "chat", chat, "approval", (json_int_t)approval,
		              "text", text, len, "buttons", "approve", "run", "deny");
		if (send_frame(p, f, NULL, 0) < 0)
			find_pending(p, ref)->kind = PEND_NONE;
	}
	(void)d;
}

/* ---- the channel's frames ---- */

static int
on_status(struct chproc *p, struct chanproto_frame *f, char *why, size_t size)
{
	(void)why;
	(void)size;
	const char *state = json_get_str(f->j, "state"), *detail = json_get_str(f->j, "detail");
	bool changed = strcmp(state, p->state) != 0;
	if (changed)
		p->since = time(NULL);
	/* The row allows these three words only: p->state points at static strings. */
	p->state = strcmp(state, "connected") == 0 ? "connected"
	           : strcmp(state, "error") == 0   ? "error"
	                                           : "connecting";
	if (strcmp(state, "error") == 0) {
		const char *e = detail ? detail : "error";
		/* Said once, not at every retry of the same error. */
		if (changed || strcmp(e, p->last_error) != 0)
			log_warn("channel %s: %s", p->cfg->name, e);
		snprintf(p->last_error, sizeof(p->last_error), "%s", e);
	} else if (strcmp(state, "connected") == 0 && changed) {
		log_info("channel %s: connected%s%s", p->cfg->name, detail ? ": " : "",
		         detail ? detail : "");
	}
	return 0;
}

static bool
has_trigger(const char *text, const char *trigger)
{
	size_t n = strlen(trigger);
	for (const char *q = text; *q; q++)
		if (strncasecmp(q, trigger, n) == 0)
			return true;
	return false;
}

/* Whether the unknown chat's message is recorded (the audit, the chats table): the first
 * CH_UNKNOWN_AUDITS of each window are; the rest are counted, so a flood from strangers
 * grows neither table without bound. */
static bool
record_unknown(struct chproc *p, const char *chat)
{
	time_t now = time(NULL);
	if (now - p->unknown_window >= CH_UNKNOWN_WINDOW_S) {
		if (p->unknown_dropped) {
			char why[160];
			snprintf(
			    why, sizeof(why),
			    "%u more messages from chats no group is for (not recorded one by one)",
			    p->unknown_dropped);
			(void)store_audit(p->d->store, "-", p->cfg->name, "deny", why);
		}
		p->unknown_window = now;
		p->unknown_audits = 0;
		p->unknown_dropped = 0;
	}
	if (p->unknown_audits >= CH_UNKNOWN_AUDITS) {
		p->unknown_dropped++;
		return false;
	}
	p->unknown_audits++;
	char why[CHANPROTO_ID_MAX + 64];
	snprintf(why, sizeof(why), "a message from chat %s, which no group is for", chat);
	(void)store_audit(p->d->store, "-", p->cfg->name, "deny", why);
	return true;
}

/* The attachment in fd (declared size) into the group's inbox folder, under a name of ours
 * (the channel's name for it kept after a prefix). The group folder is the agent's: it is
 * walked with openat and no symlink followed, and the file is new (O_EXCL). */
static int
save_attachment(struct chproc *p, const char *group, const char *ext_id, size_t i, int fd,
                const json_t *meta, struct dbuf *note)
{
	struct stat st;
	uint64_t size = json_get_u64(meta, "size");
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != size ||
	    size > CHANPROTO_FILE_MAX)
		return -EINVAL; /* checked by the caller: a cut-off */
	char dir[PATH_MAX];
	int r = daemon_group_dir(p->d, group, dir, sizeof(dir));
	if (r < 0)
		return r;
	_cleanup_close_ int gfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	struct stat gst;
	if (gfd < 0 || fstat(gfd, &gst) < 0)
		return NEG_ERRNO();
	/* The inbox and its files belong to whoever owns the group folder (the runs' user):
	 * the agent may read, move and delete what came in. */
	if (mkdirat(gfd, "inbox", 0755) == 0 && geteuid() == 0 &&
	    fchownat(gfd, "inbox", gst.st_uid, gst.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
		return NEG_ERRNO();
	_cleanup_close_ int ifd =
	    openat(gfd, "inbox", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (ifd < 0)
		return NEG_ERRNO();
	/* Named after the message's ext_id (its characters made safe), so a redelivery finds
	 * its file there already (EEXIST) rather than making a second. */
	char ext[65], name[CHANPROTO_FILE_NAME_MAX + 128];
	size_t k = 0;
	for (; ext_id[k] && k < sizeof(ext) - 1; k++) {
		char c = ext_id[k];
		ext[k] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		                 (c >= '0' && c <= '9') || c == '-' || c == '_'
		             ? c
		             : '_';
	}
	ext[k] = '\0';
	snprintf(name, sizeof(name), "%s-%s-%zu-%s", p->cfg->name, ext, i,
	         json_get_str(meta, "name"));
	(void)dbuf_printf(note, "\n[attachment: inbox/%s, %llu bytes]", name,
	                  (unsigned long long)size);
	_cleanup_close_ int out =
	    openat(ifd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (out < 0)
		return errno == EEXIST ? 0 : NEG_ERRNO();
	if (geteuid() == 0 && fchown(out, gst.st_uid, gst.st_gid) < 0)
		return NEG_ERRNO();
	char buf[65536];
	off_t off = 0;
	while ((uint64_t)off < size) {
		ssize_t n = pread(fd, buf, sizeof(buf), off);
		if (n <= 0)
			return n < 0 ? NEG_ERRNO() : -EIO;
		r = write_all(out, buf, (size_t)n);
		if (r < 0)
			return r;
		off += n;
	}
	return 0;
}

static int
on_message(struct chproc *p, struct chanproto_frame *f, char *why, size_t size)
{
	struct daemon *d = p->d;
	const json_t *j = f->j;
	const char *chat = json_get_str(j, "chat"), *text = json_get_str(j, "text");
	const char *ext_id = json_get_str(j, "ext_id");
	const char *sender = json_get_str(j, "sender");
	const char *kind = json_get_str(j, "chat_kind");
	json_t *cursor = json_object_get(j, "cursor");
	const char *chat_grp = chat_group(p, chat);
	const char *group = chat_grp;
	bool record = group || record_unknown(p, chat);
	/* "/stop" stops the group's run, trigger or not; it is not a message for the agent. */
	if (group && longrun_is_stop(text)) {
		char by[64];
		snprintf(by, sizeof(by), "%s:stop", p->cfg->name);
		longrun_stop_reply(d, NULL, group, by);
		group = NULL;
	}
	if (group && !json_is_true(json_object_get(j, "mention"))) {
		const struct group_config *g = config_group(&d->cfg, group);
		if (g && g->trigger[0] && !has_trigger(text, g->trigger))
			group = NULL; /* shared-chat chatter not meant for the agent */
	}
	if (group && strlen(text) > DAEMON_TEXT_MAX)
		group = NULL;
	/* Attachments: each named file is the descriptor sent with it (the row checked the
	 * count); each must be a regular file of the size it says. */
	json_t *atts = json_object_get(j, "attachments");
	for (size_t i = 0; i < f->n_fds; i++) {
		struct stat st;
		json_t *a = json_array_get(atts, i);
		if (fstat(f->fds[i], &st) < 0 || !S_ISREG(st.st_mode) ||
		    (uint64_t)st.st_size != json_get_u64(a, "size"))
			return snprintf(why, size,
			                "attachment %zu is not a file of the size it names", i),
			       -EBADMSG;
	}
	_cleanup_(dbuf_donep) struct dbuf body;
	dbuf_init(&body, DAEMON_TEXT_MAX + CHANPROTO_FDS_MAX * CH_ATTACH_NOTE + 64);
	(void)dbuf_puts(&body, text);
	char sender_full[CHANPROTO_ID_MAX + 40];
	snprintf(sender_full, sizeof(sender_full), "%s:%s", p->cfg->kind, sender);
	const char *cur = json_is_string(cursor) ? json_string_value(cursor) : NULL;
	json_t *thread = json_object_get(j, "thread");
	struct store_channel_msg m = {.channel = p->cfg->name,
	                              .thread =
	                                  json_is_string(thread) ? json_string_value(thread) : NULL,
	                              .ext_id = ext_id,
	                              .chat = record ? chat : NULL,
	                              .chat_kind = kind,
	                              .chat_group = chat_grp,
	                              .group = group,
	                              .sender = sender_full,
	                              .text = dbuf_str(&body),
	                              .cursor_key = cur ? p->cursor_key : NULL,
	                              .cursor = cur};
	if (group && f->n_fds) {
		for (size_t i = 0; i < f->n_fds; i++) {
			size_t before = body.len;
			int e = save_attachment(p, group, ext_id, i, f->fds[i],
			                        json_array_get(atts, i), &body);
			if (e < 0) {
				body.len = before; /* the note said it was kept: it was not */
				if (body.p)
					body.p[before] = '\0';
				(void)dbuf_printf(&body, "\n[attachment %zu could not be kept: %s]",
				                  i, strerror(-e));
			}
		}
		m.text = dbuf_str(&body);
	}
	int64_t id = 0;
	int r = store_channel_message(d->store, &m, &id);
	if (r < 0)
		/* Not stored, so not acknowledged: a restart takes it again from the cursor. */
		return snprintf(why, size, "a message could not be stored: %s",
		                store_error(d->store)),
		       -EIO;
	(void)send_frame(p, json_pack("{s:s,s:s}", "t", "stored", "ext_id", ext_id), NULL, 0);
	if (r == 1) {
		log_debug("channel %s: message %s seen before: not stored again", p->cfg->name,
		          ext_id);
		return 0;
	}
	if (group) {
		char bytes[24];
		snprintf(bytes, sizeof(bytes), "%zu", strlen(text));
		const char *const fl[] = {"group", group,  "chat",       chat, "bytes",
		                          bytes,   "from", p->cfg->name, NULL};
		log_fields("info", fl, "message received");
		send_typing(p, group);
		stream_notify(d, group);
		runner_kick(d);
	}
	return 0;
}

static int
on_sent(struct chproc *p, struct chanproto_frame *f, char *why, size_t size)
{
	int64_t ref = (int64_t)json_integer_value(json_object_get(f->j, "ref"));
	if (ref == p->sending && ref > 0) {
		p->sending = 0;
		p->retry_s = 0;
		mark_delivered(p, ref);
		send_next(p);
		return 0;
	}
	struct pending *pe = find_pending(p, ref);
	if (!pe)
		return snprintf(why, size, "a receipt for ref %lld, which it was not given",
		                (long long)ref),
		       -EBADMSG;
	if (pe->kind == PEND_PROGRESS) {
		struct slot *s = &p->slots[pe->slot];
		s->busy = false;
		if (s->reply_to == pe->run && !s->ext_id[0])
			snprintf(s->ext_id, sizeof(s->ext_id), "%s", json_get_str(f->j, "ext_id"));
	}
	pe->kind = PEND_NONE;
	return 0;
}

static int
on_failed(struct chproc *p, struct chanproto_frame *f, char *why, size_t size)
{
	int64_t ref = (int64_t)json_integer_value(json_object_get(f->j, "ref"));
	const char *error = json_get_str(f->j, "error");
	bool retry = json_is_true(json_object_get(f->j, "retry"));
	if (ref == p->sending && ref > 0) {
		p->sending = 0;
		if (retry) {
			p->retry_s = p->retry_s ? p->retry_s * 2 : CH_RETRY_S;
			if (p->retry_s > CH_BACKOFF_MAX_S)
				p->retry_s = CH_BACKOFF_MAX_S;
			p->retry_at = time(NULL) + p->retry_s;
			return 0;
		}
		char text[CHANPROTO_DETAIL_MAX + 64];
		snprintf(text, sizeof(text), "message %lld not delivered: %s", (long long)ref,
		         error);
		(void)store_audit(p->d->store, "-", p->cfg->name, "error", text);
		mark_delivered(p, ref);
		send_next(p);
		return 0;
	}
	struct pending *pe = find_pending(p, ref);
	if (!pe)
		return snprintf(why, size, "a failure for ref %lld, which it was not given",
		                (long long)ref),
		       -EBADMSG;
	if (pe->kind == PEND_PROGRESS) {
		struct slot *s = &p->slots[pe->slot];
		s->busy = false;
		if (retry && s->reply_to == pe->run)
			s->dirty = true;
	} else {
		log_warn("channel %s: approval %lld not shown: %s", p->cfg->name,
		         (long long)pe->run, error);
	}
	pe->kind = PEND_NONE;
	return 0;
}

static int
on_approval_answer(struct chproc *p, struct chanproto_frame *f, char *why, size_t size)
{
	int64_t id = (int64_t)json_integer_value(json_object_get(f->j, "approval"));
	const char *answer = json_get_str(f->j, "answer");
	const char *approver = json_get_str(f->j, "approver");
	/* A channel speaks for its own service's users only: a Telegram channel cannot answer
	 * as "cli" or as someone on Slack. */
	size_t kl = strlen(p->cfg->kind);
	if (strncmp(approver, p->cfg->kind, kl) != 0 || approver[kl] != ':' || !approver[kl + 1])
		return snprintf(why, size, "an answer as %.64s, who is not of this channel's kind",
		                approver),
		       -EBADMSG;
	/* And only for groups it serves: the approval's group has a chat here. */
	char group[CONFIG_GROUP_ID_MAX];
	char text[256];
	bool ok = false;
	if (approvals_group(p->d, id, group, sizeof(group)) < 0 || !group_chat(p, group)) {
		snprintf(text, sizeof(text),
		         "answer to approval %lld by %.64s via %s refused: not pending for a group "
		         "of this channel",
		         (long long)id, approver, p->cfg->name);
		(void)store_audit(p->d->store, "-", "approval", "deny", text);
		snprintf(text, sizeof(text), "Approval %lld is not pending here.", (long long)id);
	} else {
		const char *decision = strcmp(answer, "deny") == 0 ? "deny" : "approve";
		const char *scope = strcmp(answer, "run") == 0 ? "run" : "once";
		char reason[200];
		int st =
		    approvals_answer(p->d, id, decision, scope, approver, reason, sizeof(reason));
		ok = st == 0;
		if (ok)
			snprintf(text, sizeof(text), "Approval %lld: %s.", (long long)id,
			         strcmp(decision, "deny") == 0 ? "denied" : "approved");
		else
			snprintf(text, sizeof(text), "Refused: %s.", reason);
	}
	(void)send_frame(p,
	                 json_pack("{s:s,s:I,s:s,s:b,s:s}", "t", "answered", "approval",
	                           (json_int_t)id, "approver", approver, "ok", ok, "text", text),
	                 NULL, 0);
	return 0;
}

static const struct {
	enum chanproto_type type;
	int (*fn)(struct chproc *, struct chanproto_frame *, char *, size_t);
} handlers[] = {
    {CHANPROTO_STATUS, on_status},
    {CHANPROTO_MESSAGE, on_message},
    {CHANPROTO_SENT, on_sent},
    {CHANPROTO_FAILED, on_failed},
    {CHANPROTO_APPROVAL_ANSWER, on_approval_answer},
};

/* ---- the process ---- */

static void schedule_restart(struct chproc *p);

/* The channel is down (it closed its socket, or we cut it off): no more frames from it,
 * the process killed, a restart planned. */
static void
take_down(struct chproc *p, const char *why)
{
	if (p->rx) {
		event_free(p->rx);
		p->rx = NULL;
	}
	if (p->sock >= 0) {
		close(p->sock);
		p->sock = -1;
	}
	if (p->pid > 0)
		kill(p->pid, SIGKILL);
	p->sending = 0; /* sent again to the next process */
	for (size_t i = 0; i < CH_PENDING_MAX; i++)
		p->pending[i].kind = PEND_NONE;
	for (size_t i = 0; i < p->d->cfg.n_groups; i++) {
		p->slots[i].busy = false;
		if (p->slots[i].reply_to != p->slots[i].over && p->slots[i].text.len)
			p->slots[i].dirty = true;
	}
	/* What the channel said of its error is kept: it says more than that it ended. */
	if (why && !(strcmp(p->state, "error") == 0 && p->last_error[0]))
		snprintf(p->last_error, sizeof(p->last_error), "%s", why);
	if (p->d->stopping) {
		p->state = "stopped";
		return;
	}
	p->state = "restarting";
	p->since = time(NULL);
	schedule_restart(p);
}

static void
cut_off(struct chproc *p, const char *fmt, ...)
{
	char why[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	char text[480];
	snprintf(text, sizeof(text), "channel %s cut off: %s", p->cfg->name, why);
	log_warn("%s", text);
	(void)store_audit(p->d->store, "-", "channel", "deny", text);
	take_down(p, why);
}

static void
on_rx(evutil_socket_t fd, short what, void *arg)
{
	struct chproc *p = arg;
	(void)what;
	for (int n = 0; n < 32 && p->sock == fd; n++) {
		struct chanproto_frame f = {0};
		char why[320] = "";
		int r = chanproto_recv(fd, CHANPROTO_TO_DAEMON, &f, why, sizeof(why));
		if (r == -EAGAIN)
			return;
		if (r == -EPIPE || r == -ECONNRESET) {
			log_warn("channel %s: its process ended; restarting it", p->cfg->name);
			take_down(p, "the channel's process ended");
			return;
		}
		if (r < 0) {
			cut_off(p, "%s", r == -EBADMSG || r == -EMSGSIZE ? why : strerror(-r));
			return;
		}
		int (*fn)(struct chproc *, struct chanproto_frame *, char *, size_t) = NULL;
		for (size_t i = 0; i < ARRAY_SIZE(handlers); i++)
			if (handlers[i].type == f.type)
				fn = handlers[i].fn;
		r = fn ? fn(p, &f, why, sizeof(why)) : -EBADMSG;
		chanproto_frame_done(&f);
		if (r < 0) {
			cut_off(p, "%s", why[0] ? why : "a frame it may not send");
			return;
		}
	}
}

static int
spawn(struct chproc *p)
{
	struct daemon *d = p->d;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return NEG_ERRNO();
	_cleanup_close_ int mine = sv[0], theirs = sv[1];
	int fl = fcntl(mine, F_GETFL);
	if (fl < 0 || fcntl(mine, F_SETFL, fl | O_NONBLOCK) < 0)
		return NEG_ERRNO();
	/* The channel's environment: the basics, where TLS finds its CAs, and the one
	 * variable its config names for its token (passed on, never read here). */
	const char *const pass[] = {
	    "PATH",           "HOME",
	    "LANG",           "TZ",
	    "SSL_CERT_FILE",  "SSL_CERT_DIR",
	    "CURL_CA_BUNDLE", p->cfg->token_env[0] ? p->cfg->token_env : "PATH"};
	char *envp[16];
	size_t n = 0;
	for (char **e = environ; *e && n + 1 < ARRAY_SIZE(envp); e++)
		for (size_t i = 0; i < ARRAY_SIZE(pass); i++) {
			size_t len = strlen(pass[i]);
			if (strncmp(*e, pass[i], len) == 0 && (*e)[len] == '=') {
				envp[n++] = *e;
				break;
			}
		}
	envp[n] = NULL;
	const char *argv[] = {ch.exe, p->cfg->kind, NULL};
	_cleanup_close_ int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		return NEG_ERRNO();
	int fds[4] = {devnull, devnull, STDERR_FILENO, theirs};
	pid_t pid = daemon_spawn_fds(argv, envp, fds, 4);
	if (pid < 0)
		return (int)pid;
	p->pid = pid;
	p->sock = TAKE_FD(mine);
	p->started = time(NULL);
	p->rx = event_new(d->base, p->sock, EV_READ | EV_PERSIST, on_rx, p);
	if (!p->rx || event_add(p->rx, NULL) < 0) {
		take_down(p, "out of memory");
		return -ENOMEM;
	}
	/* The start frame: its config as written, its cursor, its chats. */
	char cursor[CHANPROTO_CURSOR_MAX + 1];
	bool have_cursor = store_kv_get(d->store, p->cursor_key, cursor, sizeof(cursor)) == 0;
	json_t *chats = json_object();
	for (size_t i = 0; i < p->cfg->n_chats; i++)
		json_object_set_new(chats, p->cfg->chats[i].chat,
		                    json_string(p->cfg->chats[i].group));
	json_t *f = json_pack("{s:s,s:s,s:o,s:o,s:o}", "t", "start", "name", p->cfg->name, "config",
	                      json_loads(p->cfg->config, 0, NULL), "cursor",
	                      have_cursor ? json_string(cursor) : json_null(), "chats", chats);
	int r = send_frame(p, f, NULL, 0);
	if (r < 0) {
		take_down(p, "its start frame could not be sent");
		return r;
	}
	p->state = "connecting";
	p->since = time(NULL);
	log_info("channel %s: started (%s, pid %d)", p->cfg->name, p->cfg->kind, (int)pid);
	return 0;
}

static void
on_restart(evutil_socket_t fd, short what, void *arg)
{
	struct chproc *p = arg;
	(void)fd;
	(void)what;
	if (p->d->stopping)
		return;
	if (p->pid > 0) { /* the last one not reaped yet */
		struct timeval tv = {0, 100 * 1000};
		evtimer_add(p->restart, &tv);
		return;
	}
	p->restarts++;
	int r = spawn(p);
	if (r < 0 && p->sock < 0 && p->state[0] != 'r') {
		snprintf(p->last_error, sizeof(p->last_error), "cannot start: %s", strerror(-r));
		p->state = "restarting";
		schedule_restart(p);
	}
}

static void
schedule_restart(struct chproc *p)
{
	/* A channel that ran a while starts again at once-ish; one that keeps dying waits
	 * longer each time, up to a minute. */
	if (p->started && time(NULL) - p->started >= CH_STABLE_S)
		p->backoff_s = 0;
	p->backoff_s = p->backoff_s ? p->backoff_s * 2 : 1;
	if (p->backoff_s > CH_BACKOFF_MAX_S)
		p->backoff_s = CH_BACKOFF_MAX_S;
	struct timeval tv = {p->backoff_s, 0};
	evtimer_add(p->restart, &tv);
}

bool
channels_reaped(struct daemon *d, pid_t pid, int status)
{
	(void)d;
	for (size_t k = 0; k < ch.n; k++) {
		struct chproc *p = &ch.p[k];
		if (p->pid != pid)
			continue;
		p->pid = -1;
		char what[96] = "";
		if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL)
			snprintf(what, sizeof(what),
			         "the channel's process was killed by signal %d", WTERMSIG(status));
		else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
			snprintf(what, sizeof(what), "the channel's process exited with status %d",
			         WEXITSTATUS(status));
		if (what[0]) {
			log_warn("channel %s: %s", p->cfg->name, what);
			/* Said more precisely than "it ended", unless a cut-off said why. */
			if (!p->last_error[0] ||
			    strcmp(p->last_error, "the channel's process ended") == 0)
				snprintf(p->last_error, sizeof(p->last_error), "%s", what);
		}
		if (p->sock >= 0) /* it died before its socket said so */
			take_down(p, "the channel's process ended");
		return true;
	}
	return false;
}

static void
expire_waits(struct chproc *p)
{
	time_t now = time(NULL);
	if (up(p) && p->sending && now - p->sending_at > CH_RECEIPT_WAIT_S) {
		cut_off(p, "no receipt for message %lld in %d s", (long long)p->sending,
		        CH_RECEIPT_WAIT_S);
		return;
	}
	for (size_t i = 0; i < CH_PENDING_MAX; i++) {
		struct pending *pe = &p->pending[i];
		if (pe->kind == PEND_NONE || now - pe->at <= CH_EDIT_WAIT_S)
			continue;
		if (pe->kind == PEND_PROGRESS)
			p->slots[pe->slot].busy = false;
		pe->kind = PEND_NONE;
	}
}

void
channels_kick(struct daemon *d, const char *group)
{
	(void)d;
	for (size_t k = 0; k < ch.n; k++)
		if (group_chat(&ch.p[k], group))
			send_next(&ch.p[k]);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	for (size_t k = 0; k < ch.n; k++) {
		expire_waits(&ch.p[k]);
		send_next(&ch.p[k]);
		progress_next(&ch.p[k]);
	}
}

int
channels_start(struct daemon *d)
{
	ch.started = time(NULL);
	if (d->cfg.n_channels == 0)
		return 0;
	const char *exe = getenv("CLAWBOX_CHANNEL_EXE"); /* tests: a channel of their own */
	if (exe && *exe)
		snprintf(ch.exe, sizeof(ch.exe), "%s", exe);
	else
		snprintf(ch.exe, sizeof(ch.exe), "%s-channel", d->clawbox);
	if (access(ch.exe, X_OK) < 0) {
		log_error("channels: %s is not there (make builds it beside clawbox)", ch.exe);
		return -ENOENT;
	}
	for (size_t k = 0; k < d->cfg.n_channels; k++) {
		struct chproc *p = &ch.p[ch.n++];
		*p = (struct chproc){.d = d,
		                     .cfg = &d->cfg.channels[k],
		                     .pid = -1,
		                     .sock = -1,
		                     .state = "connecting"};
		snprintf(p->cursor_key, sizeof(p->cursor_key), "%s.offset", p->cfg->name);
		snprintf(p->delivered_key, sizeof(p->delivered_key), "%s.delivered", p->cfg->name);
		p->slots = calloc(d->cfg.n_groups ? d->cfg.n_groups : 1, sizeof(*p->slots));
		p->restart = evtimer_new(d->base, on_restart, p);
		if (!p->slots || !p->restart)
			return -ENOMEM;
		for (size_t i = 0; i < d->cfg.n_groups; i++)
			dbuf_init(&p->slots[i].text, CHANPROTO_TEXT_MAX);
		char v[32];
		if (store_kv_get(d->store, p->delivered_key, v, sizeof(v)) == 0) {
			p->delivered = strtoll(v, NULL, 10);
		} else {
			/* A new channel: what was said before is not sent to it now. */
			int64_t last = store_last_id(d->store);
			mark_delivered(p, last > 0 ? last : 0);
		}
		int r = spawn(p);
		if (r < 0 && p->sock < 0 && strcmp(p->state, "restarting") != 0) {
			log_warn("channel %s: cannot start: %s; trying again", p->cfg->name,
			         strerror(-r));
			p->state = "restarting";
			schedule_restart(p);
		}
	}
	ch.tick = event_new(d->base, -1, EV_PERSIST, on_tick, NULL);
	struct timeval t = {.tv_usec = 250 * 1000};
	if (!ch.tick || event_add(ch.tick, &t) < 0)
		return -ENOMEM;
	return 0;
}

void
channels_stop(struct daemon *d)
{
	(void)d;
	for (size_t k = 0; k < ch.n; k++) {
		struct chproc *p = &ch.p[k];
		if (p->rx)
			event_free(p->rx);
		p->rx = NULL;
		if (p->sock >= 0)
			close(p->sock); /* the channel sees EOF and exits */
		p->sock = -1;
		if (p->restart)
			event_free(p->restart);
		p->restart = NULL;
	}
	/* A moment for each to go on its own, then the rest are killed; all are reaped. */
	for (int tries = 0; tries < 20; tries++) {
		bool left = false;
		for (size_t k = 0; k < ch.n; k++) {
			struct chproc *p = &ch.p[k];
			if (p->pid > 0 && waitpid(p->pid, NULL, WNOHANG) == p->pid)
				p->pid = -1;
			left |= p->pid > 0;
		}
		if (!left)
			break;
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	for (size_t k = 0; k < ch.n; k++) {
		struct chproc *p = &ch.p[k];
		if (p->pid > 0) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, NULL, 0);
			p->pid = -1;
		}
		for (size_t i = 0; p->slots && i < d->cfg.n_groups; i++)
			dbuf_done(&p->slots[i].text);
		free(p->slots);
		p->slots = NULL;
		p->state = "stopped";
	}
	if (ch.tick)
		event_free(ch.tick);
	ch.tick = NULL;
	ch.n = 0;
}

json_t *
channels_list(struct daemon *d)
{
	(void)d;
	json_t *out = json_array();
	/* The web page and the API are a channel too: the daemon's own, always there. */
	json_array_append_new(out,
	                      json_pack("{s:s,s:s,s:s,s:n,s:I,s:i,s:[]}", "name", "web", "kind",
	                                "web", "state", "connected", "last_error", "since",
	                                (json_int_t)ch.started, "restarts", 0, "chats"));
	for (size_t k = 0; k < ch.n; k++) {
		struct chproc *p = &ch.p[k];
		json_t *chats = json_array();
		for (size_t i = 0; i < p->cfg->n_chats; i++)
			json_array_append_new(chats, json_string(p->cfg->chats[i].chat));
		json_array_append_new(
		    out, json_pack("{s:s,s:s,s:s,s:o,s:I,s:I,s:o}", "name", p->cfg->name, "kind",
		                   p->cfg->kind, "state", p->state, "last_error",
		                   p->last_error[0] ? json_string(p->last_error) : json_null(),
		                   "since", (json_int_t)p->since, "restarts",
		                   (json_int_t)p->restarts, "chats", chats));
	}
	return out;
}

bool
channels_route(struct daemon *d, struct evhttp_request *req, const char *path)
{
	if (strcmp(path, "/api/v1/channels") != 0)
		return false;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		api_send_json(req, 405, json_pack("{s:s}", "error", "GET only"));
		return true;
	}
	api_send_json(req, 200, json_pack("{s:o}", "channels", channels_list(d)));
	return true;
}
