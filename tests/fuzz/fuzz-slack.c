/*
 * fuzz-slack.c: the Slack channel's reader of Socket Mode frames (src/channels/slack-in.c)
 * against arbitrary bytes, checking what a message it accepts promises (every field there,
 * an ext_id of "CHANNEL:TS"), and the splitter of long replies on the same bytes (a piece
 * is never empty, never past the text, never cuts a character). libFuzzer entry point;
 * tests/fuzz/replay.c replays the saved corpus in `make check`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "slack.h"
#include "textsplit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_split(const char *s, size_t len)
{
	/* Only valid UTF-8 is split (the daemon's frames are checked to be). */
	json_t *j = json_stringn(s, len);
	if (!j)
		return;
	for (size_t max = 1; max <= 7; max += 3)
		for (size_t off = 0; off < len;) {
			size_t n = textsplit_next(s + off, len - off, max);
			if (n == 0 || n > len - off ||
			    (off + n < len && ((unsigned char)s[off + n] & 0xC0) == 0x80))
				__builtin_trap();
			off += n;
		}
	json_decref(j);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct slack_in in;
	if (slack_in_parse((const char *)data, size, "UBOT", &in) == 0) {
		if (in.kind == SLACK_IN_MESSAGE &&
		    (!in.chat || !in.user || !in.text || !in.chat_kind || !in.chat[0] ||
		     !strchr(in.ext_id, ':') || strncmp(in.ext_id, in.chat, strlen(in.chat)) != 0 ||
		     strcmp(in.user, "UBOT") == 0))
			__builtin_trap();
		if (in.kind == SLACK_IN_DISCONNECT && !in.reason)
			__builtin_trap();
		slack_in_done(&in);
	}
	check_split((const char *)data, size);
	return 0;
}
