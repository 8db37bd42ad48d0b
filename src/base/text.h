/*
 * text.h: text from less-trusted places (model output, a sandbox's stderr) made safe for a
 * terminal. Model text can carry escape sequences that set the window title, write the
 * clipboard (OSC 52) or rewrite what is on screen; only printable UTF-8, newlines and tabs
 * get through.
 */
#ifndef CLAWBOX_TEXT_H
#define CLAWBOX_TEXT_H

#include <stddef.h>

/* Copies in to out (at least len bytes), dropping C0 controls other than '\n' and '\t', DEL
 * and C1 controls (U+0080..U+009F), and replacing each byte of invalid UTF-8 with '?'. A
 * sequence cut at the end of in counts as invalid. Returns the length written (<= len). */
size_t text_sanitize(const char *in, size_t len, char *out);

/* As text_sanitize, but whole escape sequences go, not only their ESC: CSI (ESC [ ... final
 * byte), OSC (ESC ] ... BEL or ESC \\) and the others (ESC, intermediates, a final byte), so
 * that "\033[31mred" reads "red" rather than "[31mred". For text shown, not kept (a preview). */
size_t text_sanitize_escapes(const char *in, size_t len, char *out);

/* Valid UTF-8 from any bytes, for text that must survive as a JSON string (a tool's output):
 * each byte that is not part of a valid sequence, and each NUL, becomes U+FFFD. Writes to out
 * (room for 3 * len bytes) unless it is NULL; returns the length it wrote (or would write) and
 * sets *ret_bad to how many bytes were replaced. */
size_t text_utf8_repair(const char *in, size_t len, char *out, size_t *ret_bad);

/* The length of s's first bytes, at most max, cut where no UTF-8 sequence is split: a bounded
 * preview of valid UTF-8 stays valid. When max falls inside a sequence it backs off to the
 * sequence's first byte (at most 3 bytes back; past that the input was not UTF-8 anyway and
 * max is returned). len <= max returns len. */
size_t text_utf8_prefix(const char *s, size_t len, size_t max);

#endif
