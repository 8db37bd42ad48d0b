/*
 * fuzz-webhook.c: the webhook channel's request reader (src/channels/webhook-req.c) against
 * arbitrary requests (their base64 attachments too). The input is "FLAGS PATH \n SIGNATURE \n
 * BODY"; when FLAGS' low bit is set the signature is replaced by the body's right one, so that the
 * body parser behind the HMAC check is reached too. Checks: a request is accepted only with the
 * right proof, and an accepted message holds what webhook-req.h promises. libFuzzer entry point;
 * tests/fuzz/replay.c replays the saved corpus in `make check`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "channel-proto.h"
#include "webhook-req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECRET   "fuzz-secret"
#define FILE_MAX 1024

static const char *
line(const uint8_t **p, const uint8_t *end, char *out, size_t size)
{
	size_t n = 0;
	while (*p < end && **p != '\n') {
		if (n + 1 < size && **p)
			out[n++] = (char)**p;
		(*p)++;
	}
	if (*p < end)
		(*p)++;
	out[n] = '\0';
	return out;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct wh_hook hooks[] = {{.id = "ha", .auth = WH_AUTH_HMAC},
	                                       {.id = "n8n", .auth = WH_AUTH_PATH}};
	if (size < 1)
		return 0;
	uint8_t flags = data[0];
	const uint8_t *p = data + 1, *end = data + size;
	char path[512], sig[256], want[WH_SIG_SIZE], why[256];
	line(&p, end, path, sizeof(path));
	line(&p, end, sig, sizeof(sig));
	const char *body = (const char *)p;
	size_t len = (size_t)(end - p);
	wh_sign(SECRET, body, len, want);
	const char *s = (flags & 1) ? want : sig;
	struct wh_msg m;
	int r = wh_parse(hooks, 2, SECRET, path, (flags & 2) ? NULL : s, body, len, FILE_MAX, &m,
	                 why, sizeof(why));
	if (r < 0)
		return 0;
	/* Accepted: the proof was the right one for the hook it named. */
	if (m.hook == &hooks[0] && ((flags & 2) || strcmp(s, want) != 0))
		__builtin_trap();
	if (m.hook == &hooks[1] && strcmp(path, "/hook/n8n/" SECRET) != 0)
		__builtin_trap();
	if (!m.text || !*m.text || strlen(m.text) > CHANPROTO_TEXT_MAX || !m.sender[0])
		__builtin_trap();
	if (m.n_files > WH_FILES_MAX)
		__builtin_trap();
	for (size_t i = 0; i < m.n_files; i++) {
		const struct wh_file *f = &m.files[i];
		if (!f->data || f->len > FILE_MAX || !f->name[0] || strchr(f->name, '/'))
			__builtin_trap();
		/* What was decoded encodes back to what was sent (the data are canonical). */
		char *b = wh_base64(f->data, f->len);
		if (!b || strlen(b) != (f->len + 2) / 3 * 4)
			__builtin_trap();
		free(b);
	}
	wh_msg_done(&m);
	return 0;
}
