/*
 * events.h: what the agent tells its caller, as it happens. Two forms:
 *   - JSON lines on stdout (--events), read by `clawbox ask` and the daemon: the host renders
 *     them, and so decides what reaches a terminal or a chat (model text can hold escape
 *     sequences; the sandbox never writes to the user's terminal directly);
 *   - plain: text on stdout, everything else one line each on stderr (for `clawbox run`).
 *
 * Events ("type"):
 *   text        {"text"}                      model text as it streams
 *   tool_call   {"id", "name", "summary"}     one line per tool call
 *   tool_result {"id", "name", "is_error", "bytes", "preview"}  "preview": the result's first
 *                EVENTS_PREVIEW_MAX bytes, cut on a UTF-8 boundary (the host re-sanitizes it)
 *   usage       {"turn", "input_tokens", "output_tokens", "cache_write_tokens",
 *                "cache_read_tokens"}         after each model reply
 *   notice      {"text"}                      retries, compaction, repaired transcripts
 *   done        {"status": "answered"|"limit"|"error", "message", "stop_reason", "turns",
 *                "usage": {...totals}, "peak_rss_kb"}   always last
 */
#ifndef CLAWBOX_EVENTS_H
#define CLAWBOX_EVENTS_H

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"
#include "model.h"

void events_set_json(bool json);
void events_text(const char *text, size_t len);
void events_tool_call(const char *id, const char *name, const char *summary);
#define EVENTS_PREVIEW_MAX 400

/* text (valid UTF-8, bytes long) is the tool's whole result: its size is reported, and a
 * bounded preview of it. */
void events_tool_result(const char *id, const char *name, bool is_error, const char *text,
                        size_t bytes);
void events_usage(unsigned turn, const struct model_usage *u);
void events_notice(const char *fmt, ...) _printf_(1, 2);
void events_done(const char *status, const char *message, const char *stop_reason, unsigned turns,
                 const struct model_usage *total);

#endif
