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
/* A long-running process's log stays small under a flood of warnings and errors (info lines
 * are always written): a line repeating the previous one is counted, not written ("last message repeated N times" when another comes), and past
 * LOG_RATE_MAX lines in one second the rest of that second is counted and summed up. */
#define LOG_RATE_MAX 50
void log_set_rate_limit(bool on);

/* How lines look. LOG_TEXT, the default, is "prefix: message" as always; a long-lived process
 * (the daemon) opts into a UTC timestamp before each line, or into LOG_JSON: one object per
 * line, {"time", "level", "msg", and the fields of log_fields()}, for machines. */
enum log_format { LOG_TEXT, LOG_TEXT_TIMESTAMPED, LOG_JSON };
void log_set_format(enum log_format format);

/* A line of news with named fields: fields is NULL-terminated name, value pairs. In text the
 * pairs follow the message as " name=value"; in JSON each is its own key (a number when the
 * value is one). level is "info", "warning" or "error". */
void log_fields(const char *level, const char *const *fields, const char *fmt, ...)
    _printf_(3, 4);

void log_error(const char *fmt, ...) _printf_(1, 2);
void log_warn(const char *fmt, ...) _printf_(1, 2);
/* A line of news for the operator (no "warning:"). */
void log_info(const char *fmt, ...) _printf_(1, 2);
/* Printed only after log_set_debug(true). */
void log_debug(const char *fmt, ...) _printf_(1, 2);

/* log_error, then _exit(status): for main() and for a child between fork and exec only. */
_noreturn_ void die(int status, const char *fmt, ...) _printf_(2, 3);

#endif
