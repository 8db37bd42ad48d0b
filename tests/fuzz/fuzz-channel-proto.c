/*
 * fuzz-channel-proto.c: the channel protocol's decoder (src/ipc/channel-proto.c), the
 * daemon's first look at every datagram a channel sends, against arbitrary bytes. The first
 * byte picks the direction and how many descriptors "came" with the datagram; the rest is the
 * datagram. What it checks: no crash or leak, nothing past the frame bound accepted, and a
 * frame it accepts is accepted again after a round trip through jansson (what the daemon
 * decided on is what any later reader sees). libFuzzer entry point; tests/fuzz/replay.c
 * replays the saved corpus in `make check`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "channel-proto.h"
#include "json-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum chanproto_dir dir = data[0] & 1 ? CHANPROTO_TO_DAEMON : CHANPROTO_TO_CHANNEL;
	size_t n_fds = (data[0] >> 1) % (CHANPROTO_FDS_MAX + 2);
	char why[256];
	json_t *j = NULL;
	enum chanproto_type type;
	int r = chanproto_decode(data + 1, size - 1, dir, n_fds, &j, &type, why, sizeof(why));
	if (r < 0) {
		if (j || !why[0])
			abort(); /* a refusal always says why, and hands out nothing */
		return 0;
	}
	if (size - 1 > CHANPROTO_FRAME_MAX || n_fds > CHANPROTO_FDS_MAX || (unsigned)type >= CHANPROTO_N_TYPES)
		abort();
	_cleanup_free_ char *again = json_dumps(j, JSON_COMPACT);
	json_t *j2 = NULL;
	enum chanproto_type type2;
	if (!again || chanproto_decode(again, strlen(again), dir, n_fds, &j2, &type2, why,
	                               sizeof(why)) < 0 ||
	    type2 != type)
		abort();
	json_decref(j2);
	json_decref(j);
	return 0;
}
