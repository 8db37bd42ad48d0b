/*
 * fuzz-model.c: the model decoders (both APIs, streamed and whole) against arbitrary bytes,
 * fed in pieces whose size the input chooses. Whatever the bytes, a decoder ends with an
 * error or a reply whose content is canonical (see model.h). libFuzzer entry point;
 * tests/fuzz/replay.c replays the saved corpus in `make check`.
 */
#include <stdint.h>
#include <string.h>

#include "json-util.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum model_provider p = data[0] & 1 ? MODEL_OPENAI : MODEL_ANTHROPIC;
	bool stream = data[0] & 2;
	size_t step = (size_t)(data[0] >> 2) + 1;
	struct model_decoder *d = model_decoder_new(p, stream, NULL, NULL);
	if (!d)
		return 0;
	int r = 0;
	for (size_t i = 1; r == 0 && i < size; i += step)
		r = model_decoder_feed(d, (const char *)data + i, size - i < step ? size - i : step);
	struct model_reply rep;
	if (r == 0 && model_decoder_finish(d, &rep) == 0) {
		size_t i;
		json_t *b;
		json_array_foreach(rep.content, i, b)
		{
			const char *type = json_get_str(b, "type");
			bool text = type && strcmp(type, "text") == 0 && json_get_str(b, "text");
			bool call = type && strcmp(type, "tool_use") == 0 && json_get_str(b, "id") &&
			            json_get_str(b, "name") && json_is_object(json_object_get(b, "input"));
			if (!text && !call)
				__builtin_trap();
		}
		if (!rep.stop_reason[0])
			__builtin_trap();
		model_reply_done(&rep);
	}
	model_decoder_free(d);
	return 0;
}
