/*
 * approvals.h: host actions held for a person. Before a host action runs, approvals_gate()
 * asks the group's policy (policy.h) for a verdict on it: allow runs it, deny refuses it, ask
 * holds it: the request is stored (action, destination, a bounded preview of its arguments
 * with their size and sha256, group, run, why it was held) and its answer waits until an
 * approver answers, the request expires, or the run stops waiting. Expiry is a denial.
 *
 * A grant is bound to a fingerprint, sha256 of (group, run, action, destination, sha256 of
 * the canonical arguments): the held request runs once, with the arguments shown. "run"
 * also lets the same action to the same destination through for the rest of that run;
 * "always" writes a policy rule (group, action, destination) that `clawbox policy` lists and
 * can remove. A grant never carries to another group, another run (unless "always") or
 * other arguments (unless "run" or "always" said so for that destination).
 *
 * No failure path approves: at start every request still pending (its run died with the
 * daemon that held it) is denied; an answer that is not exactly approve or deny, from
 * someone not among the group's approvers, or for a request no longer pending changes
 * nothing. Every request, answer and outcome is audited.
 */
#ifndef CLAWBOX_APPROVALS_H
#define CLAWBOX_APPROVALS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct daemon;
struct evhttp_request;

#define APPROVAL_PREVIEW_MAX 512  /* bytes of the arguments shown */
#define APPROVAL_DEST_MAX    1400 /* a canonical destination: "group:G", "POST host:port/path" */

/* Called once with the answer to a held request (the host action's {"ok", ...}, owned by the
 * callee). */
typedef void approval_done_fn(void *ctx, json_t *answer);

/* Tables made, and what a previous daemon left pending denied. 0 or -errno. */
int approvals_init(struct daemon *d);

enum approval_gate { APPROVAL_RUN, APPROVAL_REFUSED, APPROVAL_HELD };

/* The verdict on request (from the run run_id of group). APPROVAL_RUN: run it now.
 * APPROVAL_REFUSED: *ret_answer is the refusal. APPROVAL_HELD: stored and held; done(ctx,
 * answer) is called later, exactly once, unless approvals_forget(ctx) comes first.
 * file_budget is the run's send_file budget, used when the held request runs. */
enum approval_gate approvals_gate(struct daemon *d, const char *group, const char *run_id,
                                  json_t *request, uint64_t *file_budget, approval_done_fn *done,
                                  void *ctx, json_t **ret_answer);

/* A request the egress proxy holds (CONTRACTS 1), as the proxy read it: the approver sees
 * these, never the agent's words. path is "" for a CONNECT tunnel. */
struct approval_egress {
	const char *method, *host, *path, *why, *preview;
	unsigned port;
	uint64_t body_size;
	const char *body_sha256; /* 64 hex digits */
};

/* As approvals_gate(), for action "egress" to destination "METHOD host:port/path" (the
 * fingerprint covers the body's sha256): APPROVAL_RUN when a grant of the run or an "always"
 * rule covers it (let it through), APPROVAL_REFUSED with *ret_answer {"ok": false, "error"},
 * or APPROVAL_HELD, then done(ctx, {"ok": bool, "error"?: why, "reason"?: who}) once, later. */
enum approval_gate approvals_gate_egress(struct daemon *d, const char *group, const char *run_id,
                                         const struct approval_egress *e, approval_done_fn *done,
                                         void *ctx, json_t **ret_answer);

/* The waiter ctx is gone (its connection closed, its run ended): its held requests are
 * denied and done is not called. */
void approvals_forget(struct daemon *d, void *ctx);

/* The daemon stops: everything held is denied. */
void approvals_stop(struct daemon *d);

/* An answer from elsewhere than the API (a channel's button, channels.c), checked as the
 * API's is: decision "approve"|"deny", scope "once"|"run"|"always", approver "KIND:ID" must
 * be among the group's approvers (else refused and audited). 0, or an HTTP-like status
 * (403, 404, 409, 503) with why. */
int approvals_answer(struct daemon *d, int64_t id, const char *decision, const char *scope,
                     const char *approver, char *why, size_t size);
/* The group of pending approval id into buf: 0, or -ENOENT (none pending). */
int approvals_group(struct daemon *d, int64_t id, char *buf, size_t size);

/* The API: GET /api/v1/approvals, POST /api/v1/approvals/ID, GET /api/v1/groups/G/policy,
 * DELETE /api/v1/groups/G/policy/rules/N. Whether path was one of them (then it is
 * answered). approver is who the caller is ("cli": the API token's holder outside a browser,
 * "web": the same token from the web app's page; api.c tells them apart). */
bool approvals_route(struct daemon *d, struct evhttp_request *req, const char *path, int cmd,
                     const char *approver);

#endif
