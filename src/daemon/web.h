/*
 * web.h: the chat page's files, compiled into the daemon (tools/embed.c makes them from
 * src/daemon/web/).
 */
#ifndef CLAWBOX_WEB_H
#define CLAWBOX_WEB_H

#include <stddef.h>

struct web_file {
	const char *path; /* "/", "/app.js", ... */
	const unsigned char *data;
	size_t size;
};

extern const struct web_file web_files[]; /* ends with a NULL path */

#endif
