/*
 * fuzz-telegram.c: Telegram's inbound parser (src/channels/telegram-parse.c) against
 * arbitrary getUpdates answers. What it checks: no crash or leak, and every update it takes
 * becomes a frame the daemon's checker accepts (a message, an approval answer): input the
 * service controls can never make the channel send what gets it cut off. libFuzzer entry
 * point; tests/fuzz/replay.c replays the saved corpus in `make check`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chanlib.h"
#include "json-util.h"
#include "telegram.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
must_pass(json_t *frame, size_t n_fds)
{
	char why[256];
	enum chanproto_type type;
	if (!frame || chanproto_check(frame, CHANPROTO_TO_DAEMON, n_fds, &type, why, sizeof(why)) < 0)
		abort();
	json_decref(frame);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_json_ json_t *j = json_loadb((const char *)data, size, 0, NULL);
	size_t i;
	json_t *uj;
	json_array_foreach(json_object_get(j, "result"), i, uj)
	{
		struct tg_update u;
		if (tg_update_parse(uj, &u) < 0)
			continue;
		if (u.kind == TG_MESSAGE) {
			/* With its file as the channel would send it (a descriptor stands in). */
			struct chan_attachment a = {.name = u.file_name,
			                            .type = u.file_type[0] ? u.file_type : NULL,
			                            .fd = 0,
			                            .size = u.file_size <= CHANPROTO_FILE_MAX ? u.file_size : 0};
			struct chan_message m = {.chat = u.chat,
			                         .chat_kind = u.chat_kind,
			                         .sender = u.sender,
			                         .sender_name = u.sender_name,
			                         .text = u.text,
			                         .mention = u.mention,
			                         .ext_id = u.ext_id,
			                         .cursor = u.cursor,
			                         .attachments = u.file_id ? &a : NULL,
			                         .n_attachments = u.file_id ? 1 : 0};
			int fds[CHANPROTO_FDS_MAX];
			must_pass(chan_message_frame(&m, fds), m.n_attachments);
		} else if (u.kind == TG_CALLBACK) {
			must_pass(json_pack("{s:s,s:I,s:s,s:s}", "t", "approval_answer", "approval",
			                    (json_int_t)u.approval, "answer", u.answer, "approver",
			                    u.approver),
			          0);
		} else if (u.kind == TG_BAD_BUTTON && !u.callback_id) {
			abort();
		}
	}
	return 0;
}
