/*
 * budget.h: what a group may spend per day, in its own time zone: runs, model tokens (all,
 * input, output, cache), the estimated cost (from the configuration's "prices"), tool calls
 * and egress bytes. The group's "budget" key; a limit not given is no limit.
 *
 * Where it is enforced: the daemon refuses to start a run once a limit is spent (the
 * message is answered with a notice, audited), and passes what the day leaves to the run's
 * proxy (clawbox-proxy --budget, src/proxy/meter.h), which reserves before each model call,
 * refuses one that would pass a limit (it never reaches the model), reconciles from the
 * response's usage, counts tool calls and egress bytes. What the proxy metered is what the
 * daemon records as the run's spend, not what the agent says it used (the agent's count is
 * taken only when no meter line exists: a run that made no model call). When the proxy
 * stopped a run, the chat gets a notice and the audit a "budget" row. The agent's
 * --max-total-tokens stays as a courtesy stop before the proxy's.
 */
#ifndef CLAWBOX_BUDGET_H
#define CLAWBOX_BUDGET_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct daemon;
struct group_config;
struct evhttp_request;

enum budget_item { BUDGET_RUNS, BUDGET_TOKENS, BUDGET_INPUT, BUDGET_OUTPUT, BUDGET_CACHE,
	           BUDGET_COST, BUDGET_TOOL_CALLS, BUDGET_EGRESS, BUDGET_ITEMS };

struct group_budget {
	double limit[BUDGET_ITEMS]; /* per day; 0: none. cost_usd in USD, the rest counts */
};

#define BUDGET_PRICES_MAX 64 /* the proxy's METER_PRICES_MAX */
#define BUDGET_MODEL_MAX  128

/* The top-level "prices": USD per million tokens of each model. */
struct budget_prices {
	struct budget_price {
		char model[BUDGET_MODEL_MAX];
		double input, output, cache_write, cache_read;
	} p[BUDGET_PRICES_MAX];
	size_t n;
};

/* The group's "budget" (NULL: none): {"runs", "tokens", "input_tokens", "output_tokens",
 * "cache_tokens", "tool_calls", "egress_bytes"}, each a whole number of at least 1, and
 * "cost_usd", a number above 0. 0, or -EINVAL naming the key. */
int budget_parse(json_t *b, const char *where, struct group_budget *out, char *why, size_t size);

/* "prices" (NULL: none): {"MODEL": {"input", "output", "cache_write", "cache_read"}}, each a
 * number of at least 0 (absent: 0). 0, or -EINVAL naming the key. */
int budget_parse_prices(json_t *p, struct budget_prices *out, char *why, size_t size);

/* A run's spend, as its proxy metered it (the meter's line in the run's audit file). */
struct budget_spend {
	struct store_usage usage;
	double cost_usd;
	bool cost_known;
	uint64_t tool_calls, egress_bytes;
	char model[BUDGET_MODEL_MAX];
	char stop[256]; /* the proxy's budget refusal ("budget: ..."), or "" */
	bool metered;   /* a meter line was read */
};

/* Whether a run of g may start now; if not, why says which limit is spent and when it
 * resets (or that a cost budget has no price for the group's model). *ret_tokens_left: the
 * least of the token limits left (UINT64_MAX: none), the agent's own --max-total-tokens.
 * *ret_proxy: the proxy's --budget JSON (malloc'd; "{}" when there is neither a limit nor a
 * price: the proxy meters all the same), what the day leaves of each limit and the price
 * table. */
bool budget_may_run(struct daemon *d, const struct group_config *g, uint64_t *ret_tokens_left,
                    char **ret_proxy, char *why, size_t size);

/* Reads the last meter line of the run's audit file at path into *ret (ret->metered says
 * whether there was one). */
void budget_read_meter(const char *path, struct budget_spend *ret);

/* A run of group ended having spent s: added to today's spend. */
void budget_record(struct daemon *d, const char *group, const struct budget_spend *s);

/* The run of message ended, failed (or refused for a spent budget or quota) or not: a task's
 * third failure in a row pauses the task and tells its group. */
void budget_task_outcome(struct daemon *d, int64_t message, bool failed);

/* GET /api/v1/budget: each group's spend today against its limits. Whether path was it. */
bool budget_route(struct daemon *d, struct evhttp_request *req, const char *path, int cmd);

#endif
