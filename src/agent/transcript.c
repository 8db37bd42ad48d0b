/*
 * transcript.c: see transcript.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dbuf.h"
#include "fd-util.h"
#include "json-util.h"
#include "transcript.h"

static bool
block_type_is(json_t *b, const char *type)
{
	const char *t = json_get_str(b, "type");
	return t && strcmp(t, type) == 0;
}

static int
check_message(json_t *m, char *why, size_t size)
{
	const char *role = json_get_str(m, "role");
	json_t *content = json_object_get(m, "content");
	if (!role || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0))
		return snprintf(why, size, "a message without a valid role"), -EINVAL;
	if (!json_is_array(content))
		return snprintf(why, size, "a message without content"), -EINVAL;
	size_t i;
	json_t *b;
	json_array_foreach(content, i, b)
	{
		if (block_type_is(b, "text") && json_get_str(b, "text"))
			continue;
		if (block_type_is(b, "tool_use") && json_get_str(b, "id") &&
		    json_get_str(b, "name") && strcmp(role, "assistant") == 0)
			continue;
		if (block_type_is(b, "tool_result") && json_get_str(b, "tool_use_id") &&
		    json_get_str(b, "content") && strcmp(role, "user") == 0)
			continue;
		return snprintf(why, size, "a malformed content block"), -EINVAL;
	}
	return 0;
}

/* Do the tool_results of user message u answer exactly the tool_uses of assistant message a? */
static bool
results_match(json_t *a, json_t *u)
{
	size_t i, j, uses = 0, results = 0;
	json_t *b, *r;
	json_array_foreach(json_object_get(a, "content"), i, b)
	{
		if (!block_type_is(b, "tool_use"))
			continue;
		uses++;
		bool found = false;
		json_array_foreach(json_object_get(u, "content"), j, r)
		{
			if (block_type_is(r, "tool_result") &&
			    strcmp(json_get_str(r, "tool_use_id"), json_get_str(b, "id")) == 0)
				found = true;
		}
		if (!found)
			return false;
	}
	json_array_foreach(json_object_get(u, "content"), j, r)
	{
		if (block_type_is(r, "tool_result"))
			results++;
	}
	return uses == results;
}

static bool
has_tool_use(json_t *m)
{
	size_t i;
	json_t *b;
	json_array_foreach(json_object_get(m, "content"), i, b)
	{
		if (block_type_is(b, "tool_use"))
			return true;
	}
	return false;
}

int
transcript_check(json_t *messages, char *why, size_t size)
{
	size_t n = json_array_size(messages);
	if (n && strcmp(json_get_str(json_array_get(messages, 0), "role") ?: "", "user") != 0)
		return snprintf(why, size, "the first message is not the user's"), -EINVAL;
	for (size_t i = 0; i < n; i++) {
		json_t *m = json_array_get(messages, i);
		int r = check_message(m, why, size);
		if (r < 0)
			return r;
		bool is_assistant = strcmp(json_get_str(m, "role"), "assistant") == 0;
		json_t *prev = i ? json_array_get(messages, i - 1) : NULL;
		bool prev_tools = prev && strcmp(json_get_str(prev, "role"), "assistant") == 0 &&
		                  has_tool_use(prev);
		if (prev_tools && (is_assistant || !results_match(prev, m)))
			return snprintf(why, size, "a tool call without its result"), -EINVAL;
		if (!prev_tools && !is_assistant) {
			size_t j;
			json_t *b;
			json_array_foreach(json_object_get(m, "content"), j, b)
			{
				if (block_type_is(b, "tool_result"))
					return snprintf(why, size,
					                "a tool result without its call"),
					       -EINVAL;
			}
		}
	}
	json_t *last = n ? json_array_get(messages, n - 1) : NULL;
	if (last && strcmp(json_get_str(last, "role"), "assistant") == 0 && has_tool_use(last))
		return snprintf(why, size, "it ends with a tool call without its result"), -EINVAL;
	return 0;
}

/* The last message called tools and nothing answered them (the previous invocation was cut
 * off while they ran): record that they were interrupted. */
static json_t *
interrupted_results(json_t *last)
{
	json_t *content = json_array();
	size_t i;
	json_t *b;
	json_array_foreach(json_object_get(last, "content"), i, b)
	{
		if (block_type_is(b, "tool_use"))
			json_array_append_new(
			    content,
			    json_pack("{s:s,s:s,s:s,s:b}", "type", "tool_result", "tool_use_id",
			              json_get_str(b, "id"), "content",
			              "interrupted: the previous invocation ended before this "
			              "tool finished",
			              "is_error", 1));
	}
	return json_pack("{s:s,s:o}", "role", "user", "content", content);
}

static uint64_t
context_of(json_t *m)
{
	json_t *u = json_object_get(m, "usage");
	return json_get_u64(u, "input_tokens") + json_get_u64(u, "cache_write_tokens") +
	       json_get_u64(u, "cache_read_tokens");
}

static int
parse_lines(const char *p, size_t len, json_t *messages, char *why, size_t size)
{
	if (len && p[len - 1] != '\n')
		return snprintf(why, size, "it ends in a partial line"), -EINVAL;
	const char *end = p + len;
	size_t line = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		line++;
		json_error_t jerr;
		json_t *m = json_loadb(p, (size_t)(nl - p), 0, &jerr);
		if (!json_is_object(m)) {
			if (m)
				json_decref(m);
			return snprintf(why, size, "line %zu is not a JSON object", line), -EINVAL;
		}
		json_array_append_new(messages, m);
		p = nl + 1;
	}
	return 0;
}

/* Moves a bad transcript aside under a name that says so. */
static int
set_aside(int dirfd, const char *kind, char *name, size_t size)
{
	for (int i = 0; i < 10000; i++) {
		snprintf(name, size, "transcript.%s-%lld%s%.0d.jsonl", kind, (long long)time(NULL),
		         i ? "-" : "", i);
		if (renameat2(dirfd, TRANSCRIPT_FILE, dirfd, name, RENAME_NOREPLACE) == 0)
			return 0;
		if (errno != EEXIST)
			return NEG_ERRNO();
	}
	return -EEXIST;
}

int
transcript_open(struct transcript *t, const char *dir, json_t **ret_messages,
                uint64_t *ret_last_context, char *note, size_t note_size)
{
	note[0] = '\0';
	t->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	t->fd = -1;
	if (t->dirfd < 0)
		return NEG_ERRNO();
	_cleanup_json_ json_t *messages = json_array();
	int result = 0;

	_cleanup_dbuf_ struct dbuf b;
	dbuf_init(&b, TRANSCRIPT_MAX);
	_cleanup_close_ int rfd =
	    openat(t->dirfd, TRANSCRIPT_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (rfd >= 0) {
		char why[160] = "";
		char chunk[65536];
		int r = 0;
		struct stat st;
		if (fstat(rfd, &st) < 0 || !S_ISREG(st.st_mode))
			r = -EINVAL, snprintf(why, sizeof(why), "it is not a regular file");
		for (; r == 0;) {
			ssize_t n = read(rfd, chunk, sizeof(chunk));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				r = NEG_ERRNO(), snprintf(why, sizeof(why), "%s", strerror(errno));
			if (n <= 0)
				break;
			if (dbuf_append(&b, chunk, (size_t)n) < 0)
				r = -EFBIG, snprintf(why, sizeof(why), "it is larger than %u MiB",
				                     TRANSCRIPT_MAX >> 20);
		}
		if (r == 0)
			r = parse_lines(dbuf_str(&b), b.len, messages, why, sizeof(why));
		if (r == 0)
			r = transcript_check(messages, why, sizeof(why));
		/* Cut off after a tool call: the one case that is repaired, not set aside. */
		size_t n = json_array_size(messages);
		json_t *last = n ? json_array_get(messages, n - 1) : NULL;
		if (r == -EINVAL && last &&
		    strcmp(json_get_str(last, "role") ?: "", "assistant") == 0 &&
		    has_tool_use(last) && check_message(last, why, sizeof(why)) == 0) {
			json_t *fix = interrupted_results(last);
			json_array_append_new(messages, fix);
			char why2[160];
			if (transcript_check(messages, why2, sizeof(why2)) == 0) {
				r = 0;
				result = 2;
				snprintf(
				    note, note_size,
				    "the last conversation was cut off during a tool call; its "
				    "results are recorded as interrupted");
			} else {
				json_array_remove(messages, n);
			}
		}
		if (r < 0) {
			char aside[128];
			int rr = set_aside(t->dirfd, "corrupt", aside, sizeof(aside));
			if (rr < 0)
				return close(t->dirfd), t->dirfd = -1, rr;
			snprintf(note, note_size,
			         "the conversation transcript was unusable (%s); it was kept as %s "
			         "and a new conversation started",
			         why, aside);
			json_array_clear(messages);
			result = 1;
		}
	} else if (errno != ENOENT) {
		int r = NEG_ERRNO();
		close(t->dirfd);
		t->dirfd = -1;
		return r;
	}

	t->fd = openat(t->dirfd, TRANSCRIPT_FILE,
	               O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (t->fd < 0) {
		int r = NEG_ERRNO();
		close(t->dirfd);
		t->dirfd = -1;
		return r;
	}
	if (result == 2) /* the repair is part of the record */
		(void)transcript_append(t, json_array_get(messages, json_array_size(messages) - 1));
	uint64_t last_context = 0;
	size_t i;
	json_t *m;
	json_array_foreach(messages, i, m)
	{
		if (json_object_get(m, "usage"))
			last_context = context_of(m);
	}
	*ret_last_context = last_context;
	*ret_messages = TAKE_PTR(messages);
	return result;
}

/* The stored form: long tool results cut, so the transcript stays small. */
static json_t *
stored_form(json_t *msg)
{
	json_t *copy = json_deep_copy(msg);
	size_t i;
	json_t *b;
	json_array_foreach(json_object_get(copy, "content"), i, b)
	{
		const char *c = json_get_str(b, "content");
		if (block_type_is(b, "tool_result") && c && strlen(c) > TRANSCRIPT_RESULT_STORED) {
			char *cut = NULL;
			if (asprintf(&cut, "%.*s\n[stored copy cut at %d bytes]",
			             TRANSCRIPT_RESULT_STORED, c, TRANSCRIPT_RESULT_STORED) > 0) {
				json_object_set_new(b, "content", json_string(cut));
				free(cut);
			}
		}
	}
	return copy;
}

static int
write_line(int fd, json_t *msg)
{
	_cleanup_json_ json_t *stored = stored_form(msg);
	if (!stored)
		return -ENOMEM;
	_cleanup_free_ char *s = json_dumps(stored, JSON_COMPACT);
	if (!s)
		return -ENOMEM;
	size_t len = strlen(s);
	_cleanup_free_ char *line = malloc(len + 1);
	if (!line)
		return -ENOMEM;
	memcpy(line, s, len);
	line[len] = '\n';
	return write_all(fd, line, len + 1); /* one write: a line is whole or absent */
}

int
transcript_append(struct transcript *t, json_t *msg)
{
	return write_line(t->fd, msg);
}

int
transcript_sync(struct transcript *t)
{
	return fdatasync(t->fd) < 0 ? NEG_ERRNO() : 0;
}

int
transcript_replace(struct transcript *t, json_t *messages, char *archived, size_t size)
{
	static const char tmp[] = "transcript.jsonl.new";
	_cleanup_close_ int fd =
	    openat(t->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return NEG_ERRNO();
	size_t i;
	json_t *m;
	json_array_foreach(messages, i, m)
	{
		int r = write_line(fd, m);
		if (r < 0)
			return r;
	}
	if (fsync(fd) < 0)
		return NEG_ERRNO();
	/* The old one is archived first: a crash in between leaves no transcript.jsonl but
	 * both the archive and the new file, and no conversation is lost. */
	int r = set_aside(t->dirfd, "archived", archived, size);
	if (r < 0)
		return r;
	if (renameat(t->dirfd, tmp, t->dirfd, TRANSCRIPT_FILE) < 0)
		return NEG_ERRNO();
	close(t->fd);
	t->fd = TAKE_FD(fd);
	if (lseek(t->fd, 0, SEEK_END) < 0 || fcntl(t->fd, F_SETFL, O_APPEND) < 0)
		return NEG_ERRNO();
	return 0;
}

void
transcript_close(struct transcript *t)
{
	if (t->fd >= 0)
		close(t->fd);
	if (t->dirfd >= 0)
		close(t->dirfd);
	t->fd = t->dirfd = -1;
}

int
transcript_archive(const char *dir)
{
	_cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return NEG_ERRNO();
	char name[128];
	int r = set_aside(dirfd, "archived", name, sizeof(name));
	return r == -ENOENT ? 0 : r;
}
