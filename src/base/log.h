/*
 * log.h: messages to stderr, one line each, prefixed with the command's name
 * ("clawbox run: ..."). Only the top of a process logs; library code returns -errno.
 */
#ifndef CLAWBOX_LOG_H
#define CLAWBOX_LOG_H

#include <stdbool.h>
#include "macro.h"

/* Set the prefix ("clawbox run"); the string must outlive all logging. */
void log_set_prefix(const char *prefix);
const char *log_get_prefix(void);
void log_set_debug(bool on);
bool log_debug_enabled(void);

void log_error(const char *fmt, ...) _printf_(1, 2);
void log_warn(const char *fmt, ...) _printf_(1, 2);
/* A line of news for the operator (no "warning:"). */
void log_info(const char *fmt, ...) _printf_(1, 2);
/* Printed only after log_set_debug(true). */
void log_debug(const char *fmt, ...) _printf_(1, 2);

/* log_error, then _exit(status): for main() and for a child between fork and exec only. */
_noreturn_ void die(int status, const char *fmt, ...) _printf_(2, 3);

#endif
