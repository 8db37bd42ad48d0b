/*
 * fuzz-matrix-sync.c: the Matrix channel's /sync reader (src/channels/matrix-sync.c) against
 * arbitrary bytes, checking what every event it hands out promises: fields present and
 * within their bounds, at most MX_SYNC_EVENTS_MAX, and media URLs split only into parts
 * that cannot leave the download path. libFuzzer entry point; tests/fuzz/replay.c replays
 * the saved corpus in `make check`.
 */
#include <stdint.h>
#include <string.h>

#include "channel-proto.h"
#include "matrix-sync.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_id(const char *s)
{
	if (!s || !*s || strlen(s) > CHANPROTO_ID_MAX)
		__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mx_sync s;
	if (mx_sync_parse((const char *)data, size, "@claw:test", &s) < 0)
		return 0;
	if (!s.next_batch || !*s.next_batch || strlen(s.next_batch) > MX_SYNC_BATCH_MAX ||
	    s.n > MX_SYNC_EVENTS_MAX)
		__builtin_trap();
	for (size_t i = 0; i < s.n; i++) {
		const struct mx_event *e = &s.ev[i];
		check_id(e->room);
		check_id(e->sender);
		if (!e->body || !e->msgtype || strcmp(e->sender, "@claw:test") == 0)
			__builtin_trap();
		if (e->kind == MX_MESSAGE)
			check_id(e->event_id);
		if (e->thread)
			check_id(e->thread);
		if (e->media_url) {
			char server[256], id[256];
			if (!e->file_name || strncmp(e->media_url, "mxc://", 6) != 0)
				__builtin_trap();
			if (mx_media_split(e->media_url, server, sizeof(server), id, sizeof(id)) == 0 &&
			    (strchr(server, '/') || strchr(id, '/') || strchr(id, '?') ||
			     server[0] == '.' || id[0] == '.' || !server[0] || !id[0]))
				__builtin_trap();
		}
	}
	mx_sync_done(&s);
	return 0;
}
