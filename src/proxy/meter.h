/*
 * meter.h: the run's budget, enforced where the agent cannot reach it: in the proxy, on the
 * model calls it forwards and on the rest of the traffic it carries.
 *
 * The daemon passes what the group's day leaves (clawbox-proxy --budget JSON, below). Before
 * each model call (POST /v1/messages, /v1/chat/completions, /v1/responses) the proxy
 * reserves: the input as the request's size / 4 (METER_BYTES_PER_TOKEN, the usual ratio of
 * text and code), the output as the request's own cap (max_tokens, max_completion_tokens,
 * max_output_tokens; METER_DEFAULT_OUTPUT when it names none). A call whose input alone would
 * pass a limit, or that finds tool calls or the day's cost used up, is answered 429 with a
 * JSON error whose message starts "budget:" and never reaches the model. A call whose output
 * cap would pass a limit goes out with its cap lowered to what is left, so that the answer
 * cannot pass it either. After the response the reservation is replaced by the usage the
 * response reports (whole or streamed, both APIs); tool calls are counted from the response
 * (tool_use blocks, tool_calls, function_call items). An answer may propose more tool calls
 * than were left (it is streamed as it comes): all are counted, and the next call is refused,
 * so the model never sees the results of calls past the limit.
 *
 * A cache_tokens limit refuses calls once it is used up (what of a call's input the
 * provider will read from or write to its cache is not known before the answer).
 *
 * Egress bytes are the bytes of every request and tunnel but the model API's, both ways;
 * past the limit the connection is cut and later ones are refused.
 *
 * --budget: {"tokens": N, "input_tokens": N, "output_tokens": N, "cache_tokens": N,
 *            "cost_usd": X, "tool_calls": N, "egress_bytes": N,
 *            "prices": {"MODEL": {"input": USD_per_Mtok, "output": .., "cache_write": ..,
 *                                 "cache_read": ..}}}
 * every key optional (absent: no limit). With a cost limit, a call for a model without a
 * price is refused. A model matches a price by its name, or by the longest priced name that
 * it starts with followed by '-' ("claude-haiku-4-5" prices "claude-haiku-4-5-20251001").
 *
 * The meter runs only with --budget (the daemon always passes one, "{}" at least). It writes
 * its running totals as one line {"meter": {...}} to the audit file as connections end
 * (meter_write): what the daemon records as the run's spend.
 */
#ifndef CLAWBOX_METER_H
#define CLAWBOX_METER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METER_BYTES_PER_TOKEN 4
#define METER_DEFAULT_OUTPUT  4096
#define METER_PRICES_MAX      64
#define METER_MODEL_MAX       128
#define METER_BODY_MAX        (8u << 20) /* a whole response kept to read its usage */
#define METER_HEAD_MAX        (32u << 10)

enum meter_item {
	METER_TOKENS,
	METER_INPUT,
	METER_OUTPUT,
	METER_CACHE,
	METER_COST,
	METER_TOOL_CALLS,
	METER_EGRESS,
	METER_ITEMS
};

struct meter_prices {
	double input, output, cache_write, cache_read; /* USD per million tokens */
};

struct meter_usage {
	uint64_t input, output, cache_write, cache_read;
};

struct meter {
	bool has[METER_ITEMS];
	double left[METER_ITEMS]; /* what the run may spend, when has[] */
	struct {
		char model[METER_MODEL_MAX];
		struct meter_prices p;
	} prices[METER_PRICES_MAX];
	size_t n_prices;

	/* Spent so far (reconciled), and held by calls in flight. */
	struct meter_usage used;
	double cost;
	bool cost_unknown; /* a call of a model without a price */
	uint64_t tool_calls, egress;
	uint64_t held_tokens, held_input, held_output;
	double held_cost;
	unsigned calls, refused;
	char model[METER_MODEL_MAX]; /* the last call's */
	bool dirty;                  /* changed since the last meter_write */
	char stop[256];              /* the first refusal's reason, "" if none */
};

enum meter_api { METER_ANTHROPIC, METER_CHAT, METER_RESPONSES };

struct sse_parser;

/* One model call, from its reservation to its reconciliation. */
struct meter_call {
	enum meter_api api;
	bool stream;
	char model[METER_MODEL_MAX];
	const struct meter_prices *price; /* NULL: none */
	uint64_t est_input, cap_output;   /* reserved */
	double held_cost;
	/* The response as it comes */
	char head[METER_HEAD_MAX];
	size_t head_len;
	bool in_body;
	int status;
	bool event_stream;
	struct sse_parser *sse;
	char *body;
	size_t body_len;
	bool unreadable; /* over METER_BODY_MAX, or an encoding we cannot read */
	/* What it said */
	struct meter_usage u;
	bool saw_input, saw_output;
	uint64_t deltas, tools;
};

void meter_init(struct meter *m);

/* Parses --budget. 0, or -EINVAL with why naming the key. */
int meter_parse(struct meter *m, const char *json, char *why, size_t size);

/* The cost of u at p, in USD. */
double meter_cost(const struct meter_prices *p, const struct meter_usage *u);

/* The price of model, or NULL (see the matching rule above). */
const struct meter_prices *meter_price(const struct meter *m, const char *model);

/* Whether method and path (query ignored) are a metered model call. */
bool meter_is_call(const char *method, const char *path);

/* Reserves for the call of path with body. 0 and *ret (owned; meter_call_end frees it), with
 * *ret_body a rewritten body (malloc'd, the output cap lowered or stream usage asked for) or
 * NULL to send body as it is; -EDQUOT with why ("budget: ...") when the call may not be made
 * (m->stop keeps the first such reason); -ENOMEM. */
int meter_call_begin(struct meter *m, const char *path, const char *body, size_t len,
                     struct meter_call **ret, char **ret_body, size_t *ret_len, char *why,
                     size_t size);

/* The response's bytes as the client gets them: status line, headers, body. */
void meter_call_feed(struct meter_call *mc, const void *buf, size_t len);

/* The call ended (whole, cut, or failed): the reservation is replaced by what the response
 * proved, and mc is freed. A response cut before its usage (the client went away, the
 * upstream failed) is charged what it proves, not its whole reservation: the usage it did
 * report; else, once the provider answered 200, the input estimate (the provider bills the
 * input of a request it accepted) and one output token per content delta that came back (each
 * carries at least one). An error status or no response at all is charged nothing (the
 * provider bills neither). NULL is a no-op. */
void meter_call_end(struct meter *m, struct meter_call *mc);

/* Counts n bytes of egress; false once past the limit (why says so). */
bool meter_egress(struct meter *m, uint64_t n, char *why, size_t size);

/* One line {"meter": {...}} with the totals, to fd (O_APPEND; < 0: nothing). 0 or -errno. */
int meter_write(const struct meter *m, int fd);

#endif
