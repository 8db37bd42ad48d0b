/*
 * textsplit.h: where to cut a long reply into messages a service takes (Slack: 4,000
 * characters as it asks, Discord: 2,000). Used by the channels that split themselves.
 */
#ifndef CLAWBOX_TEXTSPLIT_H
#define CLAWBOX_TEXTSPLIT_H

#include <stddef.h>

/* The length of the first piece of text (len bytes of valid UTF-8) holding at most max
 * characters: the whole text if it fits, else cut after the last newline (or else space)
 * in the second half of the piece, else on a character boundary. Never 0 for len > 0. */
size_t textsplit_next(const char *text, size_t len, size_t max);

#endif
