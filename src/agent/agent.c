/*
 * agent.c: the loop. Load the conversation, add the prompt, then until the model answers
 * without calling tools: (compact if the context is near full), ask the model (retrying what
 * can be retried), record its reply, run the tools it called, record their results. Every
 * limit is checked before the next request, and every exit says why in a done event.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mcp-client.h"
#include "agent.h"
#include "dbuf.h"
#include "events.h"
#include "fd-util.h"
#include "json-util.h"
#include "tools.h"
#include "transcript.h"

const char agent_base_prompt[] =
    "You are clawbox, a personal assistant that runs inside a sandbox. Your working folder "
    "is the workspace; use the tools to read, write and search files, run shell commands and "
    "fetch web pages. The sandbox has no network except an HTTP(S) proxy that allows only "
    "some hosts. Be concise; answer in the language of the question. The file " AGENT_MEMORY_FILE
    " in the workspace is this group's memory: read it for context and update it (with the "
    "write or edit tool) when the user asks you to remember something.";

#define SUMMARY_REQUEST                                                                            \
	"Summarise the conversation so far for your own later use: the user's goals, what was "    \
	"done and decided, files touched, facts learned, and open questions. Write only the "      \
	"summary, in plain text, and do not call tools."

struct run {
	const struct agent_config *cfg;
	struct mcp_set mcp; /* the MCP servers' tools (mcp-client.c) */
	struct transcript tr;
	json_t *messages; /* owned */
	json_t *tools;    /* owned */
	char *system;     /* owned */
	struct model_usage total;
	uint64_t last_context;
	unsigned turns;
	int64_t deadline;
	struct tool_env tool_env;
	/* This invocation's prompt, in messages but written to the transcript only with the
	 * model's first answer: a prompt whose request failed is not left behind for the next
	 * invocation to merge with its own (borrowed from messages; NULL once written). */
	json_t *pending_prompt;
};

static void
on_text(void *ctx, const char *text, size_t len)
{
	(void)ctx;
	events_text(text, len);
}

/* Appends a memory file (capped) to the system prompt under a heading. */
static void
add_memory(struct dbuf *sys, const char *heading, const char *path)
{
	char buf[AGENT_MEMORY_MAX + 1];
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return;
	ssize_t n = read_full(fd, buf, sizeof(buf));
	if (n <= 0)
		return;
	bool cut = n > AGENT_MEMORY_MAX;
	if (cut)
		n = AGENT_MEMORY_MAX;
	(void)dbuf_printf(sys, "\n\n# %s\n\n", heading);
	(void)dbuf_append(sys, buf, (size_t)n);
	if (cut)
		(void)dbuf_printf(sys, "\n[memory cut at %d bytes]", AGENT_MEMORY_MAX);
}

static char *
build_system(const struct agent_config *cfg)
{
	struct dbuf sys;
	dbuf_init(&sys, sizeof(agent_base_prompt) + 2 * AGENT_MEMORY_MAX + 1024);
	(void)dbuf_puts(&sys, agent_base_prompt);
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", cfg->workspace ? cfg->workspace : ".",
	         AGENT_MEMORY_FILE);
	add_memory(&sys, "Memory of this group (" AGENT_MEMORY_FILE ")", path);
	if (cfg->global_memory)
		add_memory(&sys, "Global memory (read-only)", cfg->global_memory);
	if (cfg->note)
		(void)dbuf_printf(&sys, "\n\n# From the host\n\n%.*s", AGENT_NOTE_MAX, cfg->note);
	return dbuf_take(&sys);
}

static bool
is_prompt_message(json_t *m)
{
	if (strcmp(json_get_str(m, "role") ?: "", "user") != 0)
		return false;
	size_t i;
	json_t *b;
	json_array_foreach(json_object_get(m, "content"), i, b)
	{
		if (strcmp(json_get_str(b, "type") ?: "", "text") == 0)
			return true;
	}
	return false;
}

/* Appends msg to the conversation and the transcript (the conversation takes the reference). */
static int
record(struct run *run, json_t *msg)
{
	if (!msg)
		return -ENOMEM;
	int r = transcript_append(&run->tr, msg);
	if (json_array_append_new(run->messages, msg) < 0)
		return -ENOMEM;
	return r;
}

/* Writes the pending prompt (see struct run) to the transcript. */
static int
record_prompt(struct run *run)
{
	if (!run->pending_prompt)
		return 0;
	int r = transcript_append(&run->tr, run->pending_prompt);
	run->pending_prompt = NULL;
	return r;
}

static int
finish(struct run *run, int status, const char *what, const char *message, const char *stop)
{
	if (run->pending_prompt)
		events_notice("the prompt got no answer and is not kept in the conversation; "
		              "ask again to retry it");
	(void)transcript_sync(&run->tr);
	events_done(what, message, stop, run->turns, &run->total);
	return status;
}

/* One model request with retries. 0, or -errno with the final error in *err. */
static int
ask_model(struct run *run, json_t *messages, json_t *tools, model_text_fn text_fn,
          struct model_reply *reply, struct model_call_error *err)
{
	const struct agent_config *cfg = run->cfg;
	for (unsigned attempt = 0;; attempt++) {
		int r = model_call(&cfg->client, run->system, messages, tools, run->deadline,
		                   text_fn, run, reply, err);
		if (r == 0)
			return 0;
		if (!err->retryable || err->streamed || attempt >= cfg->max_retries)
			return r;
		double delay = err->retry_after >= 0 ? err->retry_after : (double)(1u << attempt);
		if (delay > 60)
			delay = 60;
		int64_t wait_ms = (int64_t)(delay * 1000);
		if (http_now_ms() + wait_ms >= run->deadline)
			return r;
		events_notice("%s; retrying in %.0f s (attempt %u of %u)", err->message, delay,
		              attempt + 2, cfg->max_retries + 1);
		struct timespec ts = {.tv_sec = wait_ms / 1000,
		                      .tv_nsec = (wait_ms % 1000) * 1000000};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
}

/* Replaces the history before the current turn by a summary the model writes. The cut is at
 * a prompt message, so a tool_use and its tool_result are never separated. */
static int
compact(struct run *run)
{
	size_t n = json_array_size(run->messages), cut = 0;
	for (size_t i = n; i-- > 0;) {
		if (is_prompt_message(json_array_get(run->messages, i))) {
			cut = i;
			break;
		}
	}
	if (cut == 0)
		return 0; /* nothing before the current turn: compaction cannot help */

	_cleanup_json_ json_t *older = json_array();
	for (size_t i = 0; i < cut; i++)
		json_array_append(older, json_array_get(run->messages, i));
	json_array_append_new(older, json_pack("{s:s,s:[{s:s,s:s}]}", "role", "user", "content",
	                                       "type", "text", "text", SUMMARY_REQUEST));
	struct model_reply reply = {0};
	struct model_call_error err;
	events_notice("the conversation is near the model's context limit (%llu tokens); "
	              "summarising it",
	              (unsigned long long)run->last_context);
	int r = ask_model(run, older, run->tools, NULL, &reply, &err);
	if (r < 0) {
		events_notice("could not summarise the conversation: %s", err.message);
		return r;
	}
	run->turns++;
	model_usage_add(&run->total, &reply.usage);
	events_usage(run->turns, &reply.usage);
	_cleanup_free_ char *summary = NULL;
	{
		struct dbuf s;
		dbuf_init(&s, 256 * 1024);
		size_t i;
		json_t *b;
		json_array_foreach(reply.content, i, b)
		{
			if (strcmp(json_get_str(b, "type") ?: "", "text") == 0)
				(void)dbuf_puts(&s, json_get_str(b, "text") ?: "");
		}
		summary = dbuf_take(&s);
	}
	model_reply_done(&reply);
	if (!summary || !*summary) {
		events_notice("the model returned an empty summary; the conversation is kept");
		return 0;
	}

	_cleanup_json_ json_t *fresh = json_array();
	_cleanup_free_ char *text = NULL;
	if (asprintf(&text, "[Summary of the earlier conversation]\n\n%s", summary) < 0)
		return -ENOMEM;
	json_array_append_new(fresh, json_pack("{s:s,s:[{s:s,s:s}]}", "role", "user", "content",
	                                       "type", "text", "text", text));
	json_array_append_new(fresh, json_pack("{s:s,s:[{s:s,s:s}]}", "role", "assistant",
	                                       "content", "type", "text", "text",
	                                       "Understood; I will continue from that summary."));
	for (size_t i = cut; i < n; i++)
		json_array_append(fresh, json_array_get(run->messages, i));
	/* The pending prompt (the last message) stays out of the file until it is answered. */
	size_t n_fresh = json_array_size(fresh);
	if (run->pending_prompt && json_array_get(fresh, n_fresh - 1) == run->pending_prompt)
		json_array_remove(fresh, n_fresh - 1);
	char archived[128];
	r = transcript_replace(&run->tr, fresh, archived, sizeof(archived));
	if (r < 0) {
		events_notice("could not rewrite the transcript: %s", strerror(-r));
		return r;
	}
	if (json_array_size(fresh) < n_fresh)
		json_array_append(fresh, run->pending_prompt);
	json_decref(run->messages);
	run->messages = TAKE_PTR(fresh);
	run->last_context = 0;
	events_notice("compacted the conversation; the full transcript was kept as %s", archived);
	return 0;
}

static void
mcp_notice(const char *line)
{
	events_notice("%s", line);
}

/* Runs the tool calls of an assistant message and returns the user message with the results. */
static json_t *
run_tools(struct run *run, json_t *assistant)
{
	json_t *content = json_array();
	size_t i;
	json_t *b;
	json_array_foreach(json_object_get(assistant, "content"), i, b)
	{
		if (strcmp(json_get_str(b, "type") ?: "", "tool_use") != 0)
			continue;
		const char *id = json_get_str(b, "id"), *name = json_get_str(b, "name");
		json_t *input = json_object_get(b, "input");
		char summary[256];
		tools_summary(name, input, summary, sizeof(summary));
		events_tool_call(id, name, summary);
		struct tool_output out;
		tool_output_init(&out);
		if (mcp_is_tool(name))
			mcp_set_call(&run->mcp, name, input, run->deadline, &out);
		else
			tools_run(&run->tool_env, name, input, json_get_str(b, "invalid_input"),
			          &out);
		const char *text = tool_output_finish(&out);
		events_tool_result(id, name, out.is_error, text, strlen(text));
		json_array_append_new(content, json_pack("{s:s,s:s,s:s,s:b}", "type", "tool_result",
		                                         "tool_use_id", id, "content", text,
		                                         "is_error", out.is_error));
		tool_output_done(&out);
	}
	return json_pack("{s:s,s:o}", "role", "user", "content", content);
}

static bool
has_tool_calls(json_t *content)
{
	size_t i;
	json_t *b;
	json_array_foreach(content, i, b)
	{
		if (strcmp(json_get_str(b, "type") ?: "", "tool_use") == 0)
			return true;
	}
	return false;
}

static int
loop(struct run *run)
{
	const struct agent_config *cfg = run->cfg;
	char msg[800];
	for (;;) {
		if (run->turns >= cfg->max_turns) {
			snprintf(msg, sizeof(msg), "stopped: reached the limit of %llu model turns",
			         (unsigned long long)cfg->max_turns);
			return finish(run, AGENT_EXIT_LIMIT, "limit", msg, NULL);
		}
		if (http_now_ms() >= run->deadline) {
			snprintf(msg, sizeof(msg), "stopped: reached the time limit of %llu s",
			         (unsigned long long)(cfg->max_time_ms / 1000));
			return finish(run, AGENT_EXIT_LIMIT, "limit", msg, NULL);
		}
		uint64_t used = run->total.input_tokens + run->total.output_tokens +
		                run->total.cache_write_tokens + run->total.cache_read_tokens;
		if (used >= cfg->max_total_tokens) {
			snprintf(msg, sizeof(msg),
			         "stopped: this invocation used %llu tokens, the limit is %llu",
			         (unsigned long long)used,
			         (unsigned long long)cfg->max_total_tokens);
			return finish(run, AGENT_EXIT_LIMIT, "limit", msg, NULL);
		}
		if (run->last_context > cfg->context_window / 100 * cfg->compact_percent)
			(void)compact(run); /* a failure leaves the history as it is */

		struct model_reply reply = {0};
		struct model_call_error err;
		int r = ask_model(run, run->messages, run->tools, on_text, &reply, &err);
		if (r < 0)
			return finish(run, AGENT_EXIT_MODEL, "error", err.message, NULL);
		run->turns++;
		model_usage_add(&run->total, &reply.usage);
		run->last_context = model_usage_context(&reply.usage);
		events_usage(run->turns, &reply.usage);

		json_t *assistant = json_pack(
		    "{s:s,s:O,s:{s:I,s:I,s:I,s:I}}", "role", "assistant", "content", reply.content,
		    "usage", "input_tokens", (json_int_t)reply.usage.input_tokens, "output_tokens",
		    (json_int_t)reply.usage.output_tokens, "cache_write_tokens",
		    (json_int_t)reply.usage.cache_write_tokens, "cache_read_tokens",
		    (json_int_t)reply.usage.cache_read_tokens);
		bool tools = has_tool_calls(reply.content);
		char stop[32];
		snprintf(stop, sizeof(stop), "%s", reply.stop_reason);
		char raw_stop[64];
		snprintf(raw_stop, sizeof(raw_stop), "%s", reply.raw_stop);
		model_reply_done(&reply);
		if (record_prompt(run) < 0 || record(run, assistant) < 0)
			return finish(run, AGENT_EXIT_INTERNAL, "error",
			              "cannot write the conversation transcript", stop);

		if (tools) {
			json_t *results = run_tools(run, assistant);
			if (record(run, results) < 0)
				return finish(run, AGENT_EXIT_INTERNAL, "error",
				              "cannot write the conversation transcript", stop);
			(void)transcript_sync(&run->tr);
			continue;
		}
		if (strcmp(stop, MODEL_STOP_MAX_TOKENS) == 0) {
			snprintf(msg, sizeof(msg),
			         "stopped: the reply reached the output limit of %llu tokens",
			         (unsigned long long)cfg->client.max_tokens);
			return finish(run, AGENT_EXIT_LIMIT, "limit", msg, stop);
		}
		if (strcmp(stop, MODEL_STOP_PAUSE) == 0) {
			/* The API paused a long turn; sending the conversation back resumes it. */
			continue;
		}
		if (strcmp(stop, MODEL_STOP_REFUSAL) == 0)
			return finish(run, AGENT_EXIT_ANSWERED, "answered",
			              "the model declined to answer", stop);
		if (strcmp(stop, MODEL_STOP_END) != 0 && strcmp(stop, MODEL_STOP_TOOL_USE) != 0 &&
		    strcmp(stop, "model_context_window_exceeded") != 0) {
			snprintf(msg, sizeof(msg),
			         "the model stopped for a reason unknown to us (%s)", raw_stop);
			return finish(run, AGENT_EXIT_ANSWERED, "answered", msg, stop);
		}
		if (strcmp(stop, "model_context_window_exceeded") == 0)
			return finish(run, AGENT_EXIT_LIMIT, "limit",
			              "stopped: the conversation filled the model's context window",
			              stop);
		return finish(run, AGENT_EXIT_ANSWERED, "answered", "", stop);
	}
}

int
agent_run(const struct agent_config *cfg, const char *prompt)
{
	struct run run = {.cfg = cfg};
	char note[512];
	struct model_usage zero = {0};
	run.deadline = http_now_ms() + (int64_t)cfg->max_time_ms;
	run.tool_env.proxy = cfg->client.proxy;
	run.tool_env.have_proxy = cfg->client.proxy.port != 0;
	run.tool_env.deadline_ms = run.deadline;
	run.tool_env.host_socket = cfg->host_socket;

	if (cfg->fresh) {
		/* A new conversation: the old transcript is archived, not lost. */
		int r = transcript_archive(cfg->state_dir);
		if (r < 0) {
			snprintf(note, sizeof(note),
			         "cannot archive the old conversation in %s: %s", cfg->state_dir,
			         strerror(-r));
			events_done("error", note, NULL, 0, &zero);
			return AGENT_EXIT_INTERNAL;
		}
	}
	int r = transcript_open(&run.tr, cfg->state_dir, &run.messages, &run.last_context, note,
	                        sizeof(note));
	if (r < 0) {
		snprintf(note, sizeof(note), "cannot use the state folder %s: %s", cfg->state_dir,
		         strerror(-r));
		events_done("error", note, NULL, 0, &zero);
		return AGENT_EXIT_INTERNAL;
	}
	if (r > 0)
		events_notice("%s", note);
	run.tools = tools_schemas(cfg->host_socket != NULL);
	mcp_set_init(&run.mcp);
	if (cfg->n_mcp && run.tools) {
		if (cfg->mcp_timeout_s)
			run.mcp.call_ms = cfg->mcp_timeout_s * 1000;
		for (size_t k = 0; k < cfg->n_mcp; k++) {
			char why[160];
			if (mcp_set_add(&run.mcp, cfg->mcp_servers[k], why, sizeof(why)) < 0)
				events_notice("--mcp-server: %s", why); /* checked by the caller */
		}
		mcp_set_start(&run.mcp, run.deadline, mcp_notice);
		json_array_extend(run.tools, run.mcp.tools);
	}
	run.system = build_system(cfg);
	int status;
	if (!run.tools || !run.system) {
		status = finish(&run, AGENT_EXIT_INTERNAL, "error", "out of memory", NULL);
	} else {
		/* The new prompt joins a trailing user message (a turn cut off by a limit after
		 * its tool results) rather than breaking the alternation. */
		json_t *m = json_pack("{s:s,s:[{s:s,s:s}]}", "role", "user", "content", "type",
		                      "text", "text", prompt);
		if (!m || json_array_append_new(run.messages, m) < 0) {
			status = finish(&run, AGENT_EXIT_INTERNAL, "error", "out of memory", NULL);
		} else {
			run.pending_prompt = m;
			status = loop(&run);
		}
	}
	transcript_close(&run.tr);
	mcp_set_done(&run.mcp);
	json_decref(run.messages);
	if (run.tools)
		json_decref(run.tools);
	free(run.system);
	return status;
}
