/*
 * fuzz-tool-output.c: whatever bytes a tool prints (a binary file read, `cat` of an image, a
 * cut multi-byte character) against the tool output's finishing: the input's first byte says
 * how the rest arrives (pieces of 1 to 256 bytes, as a pipe delivers them), the rest is the
 * output. The result must be valid UTF-8 with no NUL inside, fit the cap, and be a string
 * jansson accepts: a result it refused was a tool result lost from the conversation.
 * libFuzzer entry point; tests/fuzz/replay.c replays the saved corpus in `make check`.
 */
#include <stdint.h>
#include <string.h>

#include "json-util.h"
#include "text.h"
#include "tools.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t piece = (size_t)data[0] + 1;
	struct tool_output out;
	tool_output_init(&out);
	for (size_t off = 1; off < size; off += piece)
		tool_output_add(&out, (const char *)data + off,
		                size - off < piece ? size - off : piece);
	const char *text = tool_output_finish(&out);
	size_t bad;
	if (strlen(text) != out.buf.len) /* a NUL inside would cut the result short */
		__builtin_trap();
	(void)text_utf8_repair(text, out.buf.len, NULL, &bad);
	if (bad || out.buf.len > TOOL_OUTPUT_MAX)
		__builtin_trap();
	json_t *s = json_string(text);
	if (!s)
		__builtin_trap();
	json_decref(s);
	tool_output_done(&out);
	return 0;
}
