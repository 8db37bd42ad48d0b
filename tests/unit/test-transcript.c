/*
 * test-transcript.c: the conversation on disk: kept across opens, a corrupt or cut-short file
 * set aside (and kept), a turn cut off after a tool call repaired, structure checks, long tool
 * results cut when stored, and compaction's replace keeping the old file.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json-util.h"
#include "tap.h"
#include "transcript.h"

static char dir[64];

static void
put_file(const char *content)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/" TRANSCRIPT_FILE, dir);
	FILE *f = fopen(path, "w");
	fputs(content, f);
	fclose(f);
}

static int
count_files(const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	while ((e = readdir(d)))
		n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return n;
}

static int
open_it(json_t **msgs, char *note)
{
	struct transcript t;
	uint64_t ctx;
	int r = transcript_open(&t, dir, msgs, &ctx, note, 512);
	if (r >= 0)
		transcript_close(&t);
	return r;
}

#define USER(text) "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"" text "\"}]}\n"
#define CALL(id)                                                                                   \
	"{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"" id "\",\"name\":"  \
	"\"bash\",\"input\":{}}],\"usage\":{\"input_tokens\":100,\"cache_read_tokens\":5}}\n"
#define RESULT(id)                                                                                 \
	"{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"" id          \
	"\",\"content\":\"out\",\"is_error\":false}]}\n"

int
main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/clawbox-test-tr.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	char note[512];
	json_t *msgs = NULL;
	struct transcript t;
	uint64_t ctx;

	int r = transcript_open(&t, dir, &msgs, &ctx, note, sizeof(note));
	ok(r == 0 && json_array_size(msgs) == 0 && ctx == 0, "a new folder: an empty conversation");
	json_t *m = json_loads(USER("hi"), 0, NULL);
	ok(transcript_append(&t, m) == 0, "append");
	json_decref(m);
	char big[TRANSCRIPT_RESULT_STORED * 2];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	m = json_pack("{s:s,s:[{s:s,s:s,s:s,s:b}]}", "role", "user", "content", "type",
	              "tool_result", "tool_use_id", "zz", "content", big, "is_error", 0);
	transcript_append(&t, m);
	json_decref(m);
	transcript_close(&t);
	json_decref(msgs);
	r = open_it(&msgs, note);
	const char *stored = json_get_str(
	    json_array_get(json_object_get(json_array_get(msgs, 1), "content"), 0), "content");
	ok(r == 1, "a tool result without its call is unusable (%s)", note);
	(void)stored;
	json_decref(msgs);

	put_file(USER("hi") CALL("t1") RESULT("t1"));
	r = open_it(&msgs, note);
	ok(r == 0 && json_array_size(msgs) == 3, "a whole conversation loads (%d)", r);
	json_decref(msgs);

	/* The stored copy of a long tool result is cut. */
	struct transcript t2;
	transcript_open(&t2, dir, &msgs, &ctx, note, sizeof(note));
	ok(ctx == 105, "the last reported context is remembered (%llu)", (unsigned long long)ctx);
	json_decref(msgs);
	m = json_pack("{s:s,s:[{s:s,s:s,s:s,s:o}]}", "role", "assistant", "content", "type",
	              "tool_use", "id", "t2", "name", "bash", "input", json_object());
	transcript_append(&t2, m);
	json_decref(m);
	m = json_pack("{s:s,s:[{s:s,s:s,s:s,s:b}]}", "role", "user", "content", "type",
	              "tool_result", "tool_use_id", "t2", "content", big, "is_error", 0);
	transcript_append(&t2, m);
	json_decref(m);
	transcript_close(&t2);
	r = open_it(&msgs, note);
	stored = json_get_str(
	    json_array_get(json_object_get(json_array_get(msgs, 4), "content"), 0), "content");
	ok(r == 0 && stored && strlen(stored) < TRANSCRIPT_RESULT_STORED + 100 &&
	       strstr(stored, "stored copy cut"),
	   "a long tool result is cut when stored (%zu bytes; %d %s)", stored ? strlen(stored) : 0,
	   r, note);
	json_decref(msgs);

	put_file(USER("hi") CALL("t1"));
	r = open_it(&msgs, note);
	json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
	ok(r == 2 && json_array_size(msgs) == 3 &&
	       strstr(json_get_str(json_array_get(json_object_get(last, "content"), 0), "content"),
	              "interrupted"),
	   "a turn cut off after a tool call is repaired (%s)", note);
	json_decref(msgs);
	r = open_it(&msgs, note);
	ok(r == 0 && json_array_size(msgs) == 3, "and the repair was recorded");
	json_decref(msgs);

	static const char *const bad[] = {
	    USER("a") "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"cut",
	    USER("a") "not json\n",
	    USER("a") "{\"role\":\"system\",\"content\":[]}\n",
	    USER("a") "{\"role\":\"user\",\"content\":\"a string\"}\n",
	    USER("a") CALL("t1") USER("no result"),
	    USER("a") CALL("t1") RESULT("t9"),
	    CALL("t1") RESULT("t1"),
	    USER("a") "{\"role\":\"user\",\"content\":[{\"type\":\"image\"}]}\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int before = count_files("transcript.corrupt-");
		put_file(bad[i]);
		r = open_it(&msgs, note);
		ok(r == 1 && json_array_size(msgs) == 0 &&
		       count_files("transcript.corrupt-") == before + 1,
		   "unusable transcript %zu is set aside and kept (%s)", i, note);
		json_decref(msgs);
	}

	put_file(USER("old") CALL("t1") RESULT("t1"));
	transcript_open(&t, dir, &msgs, &ctx, note, sizeof(note));
	json_t *fresh = json_loads("[" USER("summary") "]", 0, NULL);
	char archived[128];
	r = transcript_replace(&t, fresh, archived, sizeof(archived));
	m = json_loads(USER("after"), 0, NULL);
	transcript_append(&t, m);
	json_decref(m);
	transcript_close(&t);
	json_decref(msgs);
	json_decref(fresh);
	ok(r == 0 && count_files("transcript.archived-") == 1, "replace archives the old file (%s)",
	   archived);
	r = open_it(&msgs, note);
	ok(r == 0 && json_array_size(msgs) == 2 &&
	       strcmp(json_get_str(
	                  json_array_get(json_object_get(json_array_get(msgs, 0), "content"), 0),
	                  "text"),
	              "summary") == 0,
	   "the new transcript holds the summary and what came after");
	json_decref(msgs);

	int rc = tap_done();
	fflush(stdout);
	if (fork() == 0) {
		execl("/bin/rm", "rm", "-rf", dir, (char *)NULL);
		_exit(127);
	}
	return rc;
}
