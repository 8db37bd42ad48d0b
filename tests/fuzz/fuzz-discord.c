/*
 * fuzz-discord.c: the Discord channel's reader of Gateway payloads
 * (src/channels/discord-in.c) against arbitrary bytes, checking what it promises: a HELLO
 * has a sane heartbeat, READY has its session, and a message it accepts has every field,
 * non-empty (its text may be empty when it has attachments, an array), and is not the bot's
 * own. libFuzzer entry point; tests/fuzz/replay.c replays
 * the saved corpus in `make check`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "discord.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dc_in in;
	if (dc_in_parse((const char *)data, size, "100", &in) < 0)
		return 0;
	if (in.op == DC_OP_HELLO && (in.heartbeat_ms < 100 || in.heartbeat_ms > 600000))
		__builtin_trap();
	if (in.ev == DC_EV_READY && (!in.session_id || !in.resume_url || !in.user_id))
		__builtin_trap();
	if (in.ev == DC_EV_MESSAGE &&
	    (!in.id || !in.chat || !in.sender || !in.text || !in.id[0] || !in.chat[0] ||
	     (!in.text[0] && json_array_size(in.attachments) == 0) ||
	     (in.attachments && !json_is_array(in.attachments)) || strcmp(in.sender, "100") == 0 ||
	     (in.direct && !in.mention)))
		__builtin_trap();
	dc_in_done(&in);
	return 0;
}
