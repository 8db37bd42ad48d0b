/*
 * webhook-req.c: routing, authentication and the body of an inbound webhook request
 * (webhook-req.h). The order matters: the hook is found, then the proof checked, and only
 * then is the body parsed, so that a stranger's body is never read past its size bound
 * (evhttp enforces that before we run).
 *
 * Constant time: both sides of a comparison are hashed first (SHA-256) and the digests
 * compared with CRYPTO_memcmp, so neither the length nor the first differing byte of the
 * secret shows in the time a refusal takes.
 */
#include <errno.h>
#include <stdint.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel-proto.h"
#include "json-util.h"
#include "webhook-req.h"

void
wh_sign(const char *secret, const void *data, size_t len, char *out)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	HMAC(EVP_sha256(), secret, (int)strlen(secret), data, len, mac, &n);
	memcpy(out, "sha256=", 7);
	static const char hex[] = "0123456789abcdef";
	for (unsigned int i = 0; i < n && i < 32; i++) {
		out[7 + 2 * i] = hex[mac[i] >> 4];
		out[8 + 2 * i] = hex[mac[i] & 15];
	}
	out[7 + 64] = '\0';
}

static bool
same_secret(const char *a, size_t a_len, const char *b, size_t b_len)
{
	unsigned char da[SHA256_DIGEST_LENGTH], db[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)a, a_len, da);
	SHA256((const unsigned char *)b, b_len, db);
	return CRYPTO_memcmp(da, db, sizeof(da)) == 0;
}

static bool
name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* Decodes standard padded base64 (s, n bytes) with OpenSSL into a new buffer. 0 with *out
 * and *out_len; -EBADMSG (not base64), -EFBIG (past max decoded), -ENOMEM. The length is
 * checked before anything is decoded; EVP_DecodeBlock counts the padding as bytes, so that
 * is taken off its result. */
static int
unbase64(const char *s, size_t n, size_t max, unsigned char **out, size_t *out_len)
{
	if (n % 4 != 0 || n > INT32_MAX)
		return -EBADMSG;
	size_t pad = n >= 1 && s[n - 1] == '=' ? (n >= 2 && s[n - 2] == '=' ? 2 : 1) : 0;
	/* Nothing but the alphabet, '=' only as the padding (EVP_DecodeBlock would skip
	 * whitespace at the ends and take '=' anywhere). */
	if (strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") !=
	    n - pad)
		return -EBADMSG;
	size_t len = n / 4 * 3 - pad;
	if (len > max)
		return -EFBIG;
	unsigned char *d = malloc(n / 4 * 3 + 1);
	if (!d)
		return -ENOMEM;
	int r = EVP_DecodeBlock(d, (const unsigned char *)s, (int)n);
	if (r < 0 || (size_t)r != n / 4 * 3) {
		free(d);
		return -EBADMSG;
	}
	*out = d;
	*out_len = len;
	return 0;
}

char *
wh_base64(const void *data, size_t len)
{
	if (len > (size_t)INT32_MAX / 4 * 3 - 3)
		return NULL;
	char *s = malloc((len + 2) / 3 * 4 + 1);
	if (s)
		EVP_EncodeBlock((unsigned char *)s, data, (int)len);
	return s;
}

/* The body's "attachments" into m (files owned by m, also on failure). */
static int
parse_files(const json_t *list, size_t file_max, struct wh_msg *m, char *why, size_t why_size)
{
	if (!list)
		return 0;
	if (!json_is_array(list) || json_array_size(list) > WH_FILES_MAX) {
		snprintf(why, why_size, "\"attachments\" must be a list of at most %d files",
		         WH_FILES_MAX);
		return WH_BAD;
	}
	size_t i;
	const json_t *a;
	json_array_foreach(list, i, a)
	{
		const char *name = json_get_str(a, "name");
		const char *type = json_get_str(a, "type");
		const json_t *data = json_object_get(a, "data");
		if (!name || !name_ok(name, WH_FNAME_MAX) || strchr(name, '/') ||
		    strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
		    (json_object_get(a, "type") && (!type || !name_ok(type, WH_FTYPE_MAX))) ||
		    !json_is_string(data)) {
			snprintf(
			    why, why_size,
			    "attachment %zu: needs \"name\" (a file name of at most %d bytes, no "
			    "'/'), \"data\" (base64) and at most a short \"type\"",
			    i + 1, WH_FNAME_MAX);
			return WH_BAD;
		}
		struct wh_file *f = &m->files[m->n_files];
		int r = unbase64(json_string_value(data), json_string_length(data), file_max,
		                 &f->data, &f->len);
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			if (r == -EFBIG)
				snprintf(why, why_size,
				         "attachment %zu (%s) is larger than %zu bytes", i + 1,
				         name, file_max);
			else
				snprintf(why, why_size,
				         "attachment %zu (%s): \"data\" is not base64", i + 1,
				         name);
			return WH_BAD;
		}
		snprintf(f->name, sizeof(f->name), "%s", name);
		snprintf(f->type, sizeof(f->type), "%s", type ? type : "");
		m->n_files++;
	}
	return 0;
}

int
wh_parse(const struct wh_hook *hooks, size_t n_hooks, const char *secret, const char *path,
         const char *sig, const void *body, size_t len, size_t file_max, struct wh_msg *ret,
         char *why, size_t why_size)
{
	if (strncmp(path, "/hook/", 6) != 0) {
		snprintf(why, why_size, "not a hook: POST /hook/ID");
		return WH_NOT_FOUND;
	}
	const char *id = path + 6;
	const char *slash = strchr(id, '/');
	size_t id_len = slash ? (size_t)(slash - id) : strlen(id);
	const struct wh_hook *h = NULL;
	for (size_t i = 0; i < n_hooks; i++)
		if (strlen(hooks[i].id) == id_len && memcmp(hooks[i].id, id, id_len) == 0)
			h = &hooks[i];
	if (!h) {
		snprintf(why, why_size, "no such hook");
		return WH_NOT_FOUND;
	}
	if (h->auth == WH_AUTH_PATH) {
		const char *given = slash ? slash + 1 : "";
		if (!same_secret(given, strlen(given), secret, strlen(secret))) {
			snprintf(why, why_size, "wrong or missing secret in the path");
			return WH_DENIED;
		}
	} else {
		char want[WH_SIG_SIZE];
		wh_sign(secret, body, len, want);
		if (slash || !sig || !same_secret(sig, strlen(sig), want, strlen(want))) {
			snprintf(why, why_size, "wrong or missing %s", WH_SIG_HEADER);
			return WH_DENIED;
		}
	}
	/* Authenticated: now the body. */
	json_error_t err;
	_cleanup_json_ json_t *j = json_loadb(body, len, 0, &err);
	const char *text = json_get_str(j, "text");
	const char *sender = json_get_str(j, "sender");
	const char *key = json_get_str(j, "id");
	const char *thread = json_get_str(j, "thread");
	if (!json_is_object(j)) {
		snprintf(why, why_size, "the body is not a JSON object");
		return WH_BAD;
	}
	if (!text || !*text ||
	    json_string_length(json_object_get(j, "text")) > CHANPROTO_TEXT_MAX) {
		snprintf(why, why_size, "\"text\" must be a non-empty string of at most %d bytes",
		         CHANPROTO_TEXT_MAX);
		return WH_BAD;
	}
	if ((json_object_get(j, "sender") && (!sender || !name_ok(sender, WH_SENDER_MAX))) ||
	    (json_object_get(j, "id") && (!key || !name_ok(key, WH_KEY_MAX))) ||
	    (json_object_get(j, "thread") && (!thread || !name_ok(thread, WH_KEY_MAX)))) {
		snprintf(why, why_size,
		         "\"sender\", \"id\" and \"thread\" must be short strings (%d, %d, %d "
		         "bytes) without control characters",
		         WH_SENDER_MAX, WH_KEY_MAX, WH_KEY_MAX);
		return WH_BAD;
	}
	struct wh_msg m = {.hook = h, .text = strdup(text)};
	if (!m.text)
		return -ENOMEM;
	snprintf(m.sender, sizeof(m.sender), "%s", sender ? sender : h->id);
	snprintf(m.key, sizeof(m.key), "%s", key ? key : "");
	snprintf(m.thread, sizeof(m.thread), "%s", thread ? thread : "");
	int r = parse_files(json_object_get(j, "attachments"), file_max, &m, why, why_size);
	if (r < 0) {
		wh_msg_done(&m);
		return r;
	}
	*ret = m;
	return 0;
}

void
wh_msg_done(struct wh_msg *m)
{
	free(m->text);
	m->text = NULL;
	for (size_t i = 0; i < m->n_files; i++) {
		free(m->files[i].data);
		m->files[i].data = NULL;
	}
	m->n_files = 0;
}
