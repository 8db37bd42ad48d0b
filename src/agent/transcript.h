/*
 * transcript.h: the conversation, kept in the agent's state folder as JSON lines (one
 * canonical message per line, see model.h; assistant lines also carry their "usage"), so the
 * next invocation resumes it.
 *
 * Appends are whole lines written with one write() and synced at the end of each model turn.
 * A file that does not parse, breaks the message structure (a tool_use without its
 * tool_result, roles out of place) or ends in a partial line is corrupt: it is renamed aside
 * (transcript.corrupt-TIME.jsonl), never deleted, and the conversation starts over. A
 * transcript whose last turn was cut off after a tool call (a crash, a kill) is repaired
 * instead: the missing results are recorded as interrupted.
 */
#ifndef CLAWBOX_TRANSCRIPT_H
#define CLAWBOX_TRANSCRIPT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define TRANSCRIPT_FILE          "transcript.jsonl"
#define TRANSCRIPT_MAX           (64u << 20)
#define TRANSCRIPT_RESULT_STORED (8 * 1024) /* a tool result as stored; more is cut */

struct transcript {
	int dirfd;
	int fd; /* open for appending */
};

/* Opens (creating) dir/transcript.jsonl and loads it into *ret_messages (a new array) and
 * the context size the model last reported into *ret_last_context. Returns 0, or 1 when an
 * unusable transcript was set aside (*note says so), or 2 when it was repaired (*note), or
 * -errno when the folder cannot be used. */
int transcript_open(struct transcript *t, const char *dir, json_t **ret_messages,
                    uint64_t *ret_last_context, char *note, size_t note_size);

/* Appends one message as a line. */
int transcript_append(struct transcript *t, json_t *msg);
int transcript_sync(struct transcript *t);

/* Replaces the transcript with messages (after compaction): the current file is kept as
 * transcript-TIME.jsonl (its name into archived), the new one written whole and renamed into
 * place. */
int transcript_replace(struct transcript *t, json_t *messages, char *archived, size_t size);

void transcript_close(struct transcript *t);

/* Moves dir/transcript.jsonl aside as transcript.archived-TIME[-N].jsonl (never over another
 * file), so that a new conversation starts. 0 also when there is none. */
int transcript_archive(const char *dir);

/* Checks the structure of a message array: roles alternate sensibly, every tool_use has its
 * tool_result in the next message. 0, or -EINVAL with why. Exposed for tests and fuzzing. */
int transcript_check(json_t *messages, char *why, size_t size);

#endif
