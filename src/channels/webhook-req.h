/*
 * webhook-req.h: what the webhook channel makes of one inbound HTTP request, with no I/O
 * (so that the part that reads strangers' bytes is small and fuzzed:
 * tests/fuzz/fuzz-webhook.c), and the signature both directions use.
 *
 * A hook is reached at POST /hook/ID and proves it knows the channel's secret in one of two
 * ways, fixed per hook by the config:
 *   "auth": "hmac"  the header X-Hub-Signature-256: sha256=HEX, HEX being HMAC-SHA256 of
 *                   the body under the secret (the GitHub form, which n8n and most tools
 *                   can make); the path is /hook/ID.
 *   "auth": "path"  the secret is the path's last part, /hook/ID/SECRET (for tools that can
 *                   only be given a URL, e.g. Home Assistant's rest_command; the secret is
 *                   then in whatever logs URLs, so hmac is preferred).
 * Both are compared in constant time. The body is a JSON object: "text" (a non-empty
 * string, required), "sender" (a name, optional), "id" (the caller's idempotency key,
 * optional: the same id again is the same message, stored once), "thread" (optional).
 * "attachments" (optional): at most WH_FILES_MAX objects {"name", "type" (optional),
 * "data": standard base64 with padding}, each decoded at most the channel's file_max bytes;
 * a bad one refuses the whole request (nothing of it is stored).
 * Other members are ignored, so that automations can send what they have.
 */
#ifndef CLAWBOX_WEBHOOK_REQ_H
#define CLAWBOX_WEBHOOK_REQ_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WH_HOOK_ID_MAX 64
#define WH_SENDER_MAX  64
#define WH_KEY_MAX     128 /* the caller's "id" */
#define WH_SIG_HEADER  "X-Hub-Signature-256"
#define WH_FILES_MAX   4   /* CHANPROTO_FDS_MAX: one memfd each in one frame */
#define WH_FNAME_MAX   255 /* an attachment's name */
#define WH_FTYPE_MAX   127 /* its media type */

enum wh_auth {
	WH_AUTH_HMAC,
	WH_AUTH_PATH,
};

struct wh_hook {
	char id[WH_HOOK_ID_MAX + 1];
	enum wh_auth auth;
	char *callback; /* owned; NULL: replies are not delivered anywhere */
};

struct wh_file {
	char name[WH_FNAME_MAX + 1];
	char type[WH_FTYPE_MAX + 1]; /* "" when the caller gave none */
	unsigned char *data;         /* owned, decoded */
	size_t len;
};

struct wh_msg {
	const struct wh_hook *hook;
	char *text; /* owned */
	char sender[WH_SENDER_MAX + 1];
	char key[WH_KEY_MAX + 1]; /* "" when the caller gave none */
	char thread[WH_KEY_MAX + 1];
	struct wh_file files[WH_FILES_MAX];
	size_t n_files;
};

/* HTTP statuses wh_parse's errors map to. */
#define WH_NOT_FOUND -ENOENT  /* 404: no such hook */
#define WH_DENIED    -EACCES  /* 401: the secret or signature is wrong or missing */
#define WH_BAD       -EBADMSG /* 400: the body is not what a hook takes */

/* Routes path ("/hook/ID[/SECRET]", no query) to one of hooks, checks its proof against
 * secret (sig: the signature header's value or NULL) and reads body, whose attachments
 * may each be at most file_max bytes once decoded. 0 and *ret (release
 * with wh_msg_done); WH_NOT_FOUND, WH_DENIED, WH_BAD or -ENOMEM, with why (safe to show the
 * caller: it never holds the secret). */
int wh_parse(const struct wh_hook *hooks, size_t n_hooks, const char *secret, const char *path,
             const char *sig, const void *body, size_t len, size_t file_max, struct wh_msg *ret,
             char *why, size_t why_size);

/* Base64 (standard alphabet, padded, no line breaks) of data into a new string, or NULL
 * when memory is short. */
char *wh_base64(const void *data, size_t len);
void wh_msg_done(struct wh_msg *m);

/* "sha256=" and the lowercase hex HMAC-SHA256 of data under secret, into out (at least
 * WH_SIG_SIZE bytes). */
#define WH_SIG_SIZE (7 + 64 + 1)
void wh_sign(const char *secret, const void *data, size_t len, char *out);

#endif
