/*
 * budget.h: what a group may spend per day, in its own time zone: runs, and model tokens
 * (all, input, output, cache). The group's "budget" key; a limit not given is no limit.
 *
 * Where it is enforced, and what it does not yet cover: the daemon refuses to start a run
 * once a limit is spent (the message is answered with a notice, audited), and passes what is
 * left of the token limits to the run as the agent's --max-total-tokens, so a run stops
 * before a model call once it used them. That in-run stop is the agent's: a malicious agent
 * could overspend within its one run (bounded by the proxy's per-run request cap), and the
 * next run is then refused. Reservations in the proxy, costs from a price table, tool-call
 * and egress-byte limits are not built.
 */
#ifndef CLAWBOX_BUDGET_H
#define CLAWBOX_BUDGET_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct daemon;
struct group_config;
struct evhttp_request;
struct store_usage;

enum budget_item { BUDGET_RUNS, BUDGET_TOKENS, BUDGET_INPUT, BUDGET_OUTPUT, BUDGET_CACHE,
	           BUDGET_ITEMS };

struct group_budget {
	uint64_t limit[BUDGET_ITEMS]; /* per day; 0: none */
};

/* The group's "budget" (NULL: none): {"runs", "tokens", "input_tokens", "output_tokens",
 * "cache_tokens"}, each a whole number of at least 1. 0, or -EINVAL naming the key. */
int budget_parse(json_t *b, const char *where, struct group_budget *out, char *why, size_t size);

/* Whether a run of g may start now; if not, why says which limit is spent and when it
 * resets. *ret_tokens_left: the least of the token limits left (UINT64_MAX: none). */
bool budget_may_run(struct daemon *d, const struct group_config *g, uint64_t *ret_tokens_left,
                    char *why, size_t size);

/* A run of group ended having used u: added to today's spend. */
void budget_record(struct daemon *d, const char *group, const struct store_usage *u);

/* The run of message ended, failed (or refused for a spent budget or quota) or not: a task's
 * third failure in a row pauses the task and tells its group. */
void budget_task_outcome(struct daemon *d, int64_t message, bool failed);

/* GET /api/v1/budget: each group's spend today against its limits. Whether path was it. */
bool budget_route(struct daemon *d, struct evhttp_request *req, const char *path, int cmd);

#endif
