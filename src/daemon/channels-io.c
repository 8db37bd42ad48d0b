/*
 * channels-io.c: what goes between the daemon and its channel processes (channels.c starts
 * them), frame by frame. Every frame a channel sends has passed chanproto_recv() (its row);
 * the handlers here re-check what a row cannot know, and a refusal is a cut-off.
 *
 * In, exactly once: a message is stored with the channel's cursor in one transaction,
 * deduplicated by (channel, ext_id) (store_channel_message), and only then answered
 * "stored". A restarted channel starts from the stored cursor. Messages from chats not
 * configured are recorded (bounded) and dropped.
 * Out, in order, one at a time per channel: each outgoing message of a group with a chat in
 * the channel goes out as a "reply" whose ref is the message's id (back to the chat and
 * thread it answers, when that came through this channel); the "sent" receipt moves the
 * channel's persisted mark ("NAME.delivered") past it. A channel that dies before the
 * receipt gets the same reply again after its restart (a service that took it and then
 * lost the answer can so see it twice: the one case left, as before).
 *
 * Progress (issue 12): a run still going CH_PROGRESS_AFTER_S after its first text shows
 * that text in a message of its own (a reply frame), edited ("edit") at most every
 * CH_PROGRESS_EVERY_S; once the reply goes out, that run's progress is left alone. Typing
 * ("typing") is sent when a message is accepted and while the run streams text.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "approvals.h"
#include "channel-proto.h"
#include "channels-int.h"
#include "channels.h"
#include "daemon.h"
#include "dbuf.h"
#include "fd-util.h"
#include "json-util.h"
#include "log.h"

/* ---- the chats ---- */

const char *
ch_chat_group(const struct chproc *p, const char *chat)
{
	for (size_t i = 0; i < p->cfg->n_chats; i++)
		if (strcmp(p->cfg->chats[i].chat, chat) == 0)
			return p->cfg->chats[i].group;
	return NULL;
}

/* The first chat of group in this channel, or NULL. */
const char *
ch_group_chat(const struct chproc *p, const char *group)
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

/* A frame to the channel. The daemon never waits for a channel: a full socket (a channel
 * not reading) is -EAGAIN, and what was not sent is sent again later (replies, progress) or
 * not at all (typing). */
int
ch_send_frame(struct chproc *p, json_t *frame, const int *fds, size_t n_fds)
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

/* Whether ref is one of ours this channel was given: its own wait may have been let go
 * (CH_EDIT_WAIT_S), so a late answer is not a fault. */
static bool
given_out(const struct chproc *p, int64_t ref)
{
	return ref > CH_EPHEMERAL_REF && ref <= CH_EPHEMERAL_REF + p->next_ref;
}

static struct pending *
find_pending(struct chproc *p, int64_t ref)
{
	for (size_t i = 0; i < CH_PENDING_MAX; i++)
		if (p->pending[i].kind != PEND_NONE && p->pending[i].ref == ref)
			return &p->pending[i];
	return NULL;
}

void
ch_mark_delivered(struct chproc *p, int64_t id)
{
	char v[32];
	snprintf(v, sizeof(v), "%lld", (long long)id);
	p->delivered = id;
	if (store_kv_set(p->d->store, p->delivered_key, v) < 0)
		log_error("channel %s: cannot record a delivery: %s", p->cfg->name,
		          store_error(p->d->store));
}

bool
ch_up(const struct chproc *p)
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
void
ch_send_next(struct chproc *p)
{
	struct daemon *d = p->d;
	if (!ch_up(p) || p->sending || d->stopping || time(NULL) < p->retry_at)
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
		const char *chat = ch_group_chat(p, group);
		if (!chat) {
			ch_mark_delivered(p,
			                  id); /* a group without a chat here: nothing to deliver */
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
		const char *og = from_here ? ch_chat_group(p, o.chat) : NULL;
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
		int r = ch_send_frame(p, f, &file, file >= 0 ? 1 : 0);
		if (r == -EAGAIN) {
			p->sending = 0; /* the channel is not reading: the tick tries again */
		} else if (r < 0) {
			p->sending = 0;
			ch_mark_delivered(p, id);
			char why[160];
			snprintf(why, sizeof(why), "message %lld not sent to the channel: %s",
			         (long long)id, strerror(-r));
			(void)store_audit(d->store, group, p->cfg->name, "error", why);
		}
		return; /* one at a time, in order */
	}
}

static void
send_typing(struct chproc *p, const char *chat, const char *thread)
{
	if (!chat || !chat[0] || !ch_up(p))
		return;
	json_t *f = json_pack("{s:s,s:s}", "t", "typing", "chat", chat);
	if (f && thread && thread[0])
		json_object_set_new(f, "thread", json_string(thread));
	(void)ch_send_frame(p, f, NULL, 0);
}

/* At most one progress send or edit in flight per group. */
void
ch_progress_next(struct chproc *p)
{
	struct daemon *d = p->d;
	if (!ch_up(p) || d->stopping)
		return;
	time_t now = time(NULL);
	for (size_t i = 0; i < d->cfg.n_groups; i++) {
		struct slot *s = &p->slots[i];
		if (s->reply_to > 0 && s->reply_to != s->over && s->dirty &&
		    now - s->typing >= CH_TYPING_EVERY_S) {
			s->typing = now;
			send_typing(p, s->chat, s->thread);
		}
		if (s->busy || !s->dirty || s->reply_to <= 0 || s->reply_to == s->over ||
		    now - s->first < CH_PROGRESS_AFTER_S || now - s->sent < CH_PROGRESS_EVERY_S)
			continue;
		const char *chat = s->chat;
		if (!chat[0])
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
		if (f && s->thread[0])
			json_object_set_new(f, "thread", json_string(s->thread));
		if (ch_send_frame(p, f, NULL, 0) < 0) {
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
	for (size_t k = 0; k < ch_tab.n; k++) {
		struct chproc *p = &ch_tab.p[k];
		struct slot *s = &p->slots[gi];
		if (!ch_group_chat(p, group) || reply_to == s->over)
			continue;
		if (s->reply_to != reply_to) { /* a new run */
			dbuf_reset(&s->text);
			s->reply_to = reply_to;
			s->first = time(NULL);
			s->sent = 0;
			s->ext_id[0] = '\0';
			/* Shown where its reply will go (send_next): where the message came from.
			 */
			struct store_origin o;
			const char *og =
			    store_channel_origin(d->store, p->cfg->name, reply_to, &o) == 0
			        ? ch_chat_group(p, o.chat)
			        : NULL;
			bool here = og && strcmp(og, group) == 0;
			snprintf(s->chat, sizeof(s->chat), "%s",
			         here ? o.chat : ch_group_chat(p, group));
			snprintf(s->thread, sizeof(s->thread), "%s", here ? o.thread : "");
		}
		(void)dbuf_append_capped(&s->text, text, len);
		s->dirty = true;
	}
}

void
channels_approval(struct daemon *d, const char *group, int64_t approval, const char *text)
{
	for (size_t k = 0; k < ch_tab.n; k++) {
		struct chproc *p = &ch_tab.p[k];
		const char *chat = ch_group_chat(p, group);
		if (!chat || !ch_up(p))
			continue;
		int64_t ref = new_ref(p, PEND_APPROVAL, 0, approval);
		if (ref < 0)
			continue;
		size_t len = chanproto_cut(text, strlen(text), CHANPROTO_TEXT_MAX);
		json_t *f =
		    json_pack("{s:s,s:I,s:s,s:I,s:s%,s:[sss]}", "t", "approval", "ref",
		              (json_int_t)ref, "chat", chat, "approval", (json_int_t)approval,
		              "text", text, len, "buttons", "approve", "run", "deny");
		if (ch_send_frame(p, f, NULL, 0) < 0)
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
	const char *chat_grp = ch_chat_group(p, chat);
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
	 * count); each must be a sealed memfd (chanproto_memfd) of the size it says. Sealed:
	 * its bytes cannot change while they are copied. A memfd: a channel runs as the
	 * daemon's user, and a descriptor of some file of the host's (its secrets) must not
	 * pass for an attachment and land where the agent reads. */
	json_t *atts = json_object_get(j, "attachments");
	for (size_t i = 0; i < f->n_fds; i++) {
		struct stat st;
		json_t *a = json_array_get(atts, i);
		int seals = fcntl(f->fds[i], F_GET_SEALS);
		const int need = F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK;
		if (seals < 0 || (seals & need) != need)
			return snprintf(why, size, "attachment %zu is not a sealed memfd", i),
			       -EBADMSG;
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
	(void)ch_send_frame(p, json_pack("{s:s,s:s}", "t", "stored", "ext_id", ext_id), NULL, 0);
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
		send_typing(p, chat, m.thread);
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
		ch_mark_delivered(p, ref);
		ch_send_next(p);
		return 0;
	}
	struct pending *pe = find_pending(p, ref);
	if (!pe && given_out(p, ref))
		return 0; /* late: its wait was let go */
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
		ch_mark_delivered(p, ref);
		ch_send_next(p);
		return 0;
	}
	struct pending *pe = find_pending(p, ref);
	if (!pe && given_out(p, ref))
		return 0; /* late: its wait was let go */
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
	if (approvals_group(p->d, id, group, sizeof(group)) < 0 || !ch_group_chat(p, group)) {
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
	(void)ch_send_frame(p,
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

int
ch_frame(struct chproc *p, struct chanproto_frame *f, char *why, size_t size)
{
	for (size_t i = 0; i < ARRAY_SIZE(handlers); i++)
		if (handlers[i].type == f->type)
			return handlers[i].fn(p, f, why, size);
	return snprintf(why, size, "a %s frame, which a channel may not send",
	                chanproto_name(f->type)),
	       -EBADMSG;
}
