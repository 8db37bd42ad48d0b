/*
 * hold.c: requests held for a person, and the run's taint, over the control channel to the
 * daemon (CONTRACTS 1: a SOCK_SEQPACKET socket, one JSON object per datagram, at most 16 KiB).
 *
 * A request whose verdict is ask is held: its body is read in full (bounded by
 * HOLD_BODY_MAX), its size, sha256 and a sanitized preview computed here, from the bytes that
 * would go out, and the daemon is asked with what it needs to show the approver; nothing of
 * it is resolved or connected meanwhile (a held name is never looked up). The answer releases
 * it (the proxy's ordinary path goes on: SSRF guard, connect, forward) or refuses it with a
 * 403 whose reason the agent sees. No path approves by default: no control channel, more than
 * HOLD_MAX held, an unreadable answer, or the daemon gone (the socket's end) are denials.
 *
 * A response from a host the operator did not mark trusted taints the run: the first byte of
 * it that reaches the sandbox does, before the agent can act on it. Each new cause is audited
 * and reported to the daemon once (at most EGRESS_CAUSES_MAX, then counted).
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "audit.h"
#include "conn.h"
#include "egress.h"
#include "text.h"

#define CONTROL_FRAME_MAX (16 * 1024)

/* Sends o (taken) to the daemon. False when it could not be made or sent. */
static bool
send_frame(struct proxy *px, json_t *o)
{
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!text)
		return false;
	size_t n = strlen(text);
	bool sent = px->control_fd >= 0 && n <= CONTROL_FRAME_MAX &&
	            send(px->control_fd, text, n, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)n;
	free(text);
	if (!sent && px->control_fd >= 0)
		hold_control_lost(px, "the daemon is gone (sending on its control channel failed)");
	return sent;
}

static void
audit_line(struct proxy *px, const char *host, const char *decision, const char *reason)
{
	struct audit_entry e = {
	    .sandbox = px->cfg->sandbox_id,
	    .host = host,
	    .address = "",
	    .decision = decision,
	    .reason = reason,
	};
	(void)audit_write(px->cfg->audit_fd, &e);
}

void
hold_taint(struct proxy *px, const char *cause, const char *host)
{
	if (!egress_taint_add(&px->taint, cause))
		return; /* known, or past the cap: counted */
	audit_line(px, host, "taint", cause);
	if (px->control_fd >= 0)
		send_frame(px, json_pack("{s:s,s:s}", "t", "taint", "cause", cause));
}

void
hold_response_seen(struct conn *c)
{
	c->taints = false; /* once per connection is enough */
	if (!c->req.host[0])
		return;
	char cause[EGRESS_CAUSE_MAX];
	snprintf(cause, sizeof(cause), "response from untrusted host %.*s",
	         (int)(sizeof(cause) - 40), c->req.host);
	hold_taint(c->px, cause, c->req.host);
}

void
hold_body(struct conn *c, const char *at, size_t len)
{
	c->held_bytes += len;
	if (c->held_bytes > HOLD_BODY_MAX)
		return; /* refused when the body ends (hold_body_done) */
	if (c->sha)
		EVP_DigestUpdate(c->sha, at, len);
	size_t room = HOLD_PREVIEW_MAX - c->preview_raw_len;
	size_t take = len < room ? len : room;
	memcpy(c->preview_raw + c->preview_raw_len, at, take);
	c->preview_raw_len += take;
	evbuffer_add(c->body, at, len);
}

static unsigned
held_count(struct proxy *px)
{
	unsigned n = 0;
	for (struct conn *x = px->conns; x; x = x->next)
		n += x->held;
	return n;
}

void
hold_request(struct conn *c, const char *why, void (*release)(struct conn *))
{
	struct proxy *px = c->px;
	snprintf(c->held_why, sizeof(c->held_why), "%s", why);
	if (px->control_fd < 0) {
		conn_refuse(c, 403, "deny",
		            "egress: %s: needs an approval, and no approver can be asked from here "
		            "(no control channel: a plain clawbox ask or run)",
		            why);
		return;
	}
	if (held_count(px) >= HOLD_MAX) {
		conn_refuse(c, 403, "deny",
		            "egress: %s: more than %d requests of this run wait for "
		            "an approver",
		            why, HOLD_MAX);
		return;
	}
	if (strlen(c->req.path) > HOLD_PATH_MAX) {
		conn_refuse(c, 414, "deny", "egress: %s: the URL is too long to show an approver",
		            why);
		return;
	}
	/* The approver reads the path as it goes out: printable ASCII only, so that nothing
	 * in it can hide or fake what is shown (percent-encoding stays as sent). */
	for (const char *p = c->req.path; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
			conn_refuse(c, 400, "deny",
			            "egress: %s: a path that is not printable ASCII cannot be shown "
			            "to an approver",
			            why);
			return;
		}
	c->sha = EVP_MD_CTX_new();
	if (!c->body)
		c->body = evbuffer_new();
	if (!c->sha || !c->body || EVP_DigestInit_ex(c->sha, EVP_sha256(), NULL) != 1) {
		conn_refuse(c, 502, "error", "out of memory");
		return;
	}
	c->held = true;
	c->release = release;
	c->ask_id = ++px->next_ask_id;
	c->state = ST_HELD;
	/* The approver is shown the body: the client must send it now. */
	if (!c->req.is_connect && request_expects_continue(&c->req)) {
		evbuffer_add_printf(bufferevent_get_output(c->client),
		                    "HTTP/1.1 100 Continue\r\n\r\n");
		c->continued = true;
	}
	if (c->req.is_connect || c->req.message_done)
		hold_body_done(c);
}

void
hold_body_done(struct conn *c)
{
	if (!c->held || c->asked)
		return;
	struct proxy *px = c->px;
	if (c->held_bytes > HOLD_BODY_MAX) {
		c->held = false;
		conn_refuse(c, 413, "deny",
		            "egress: %s: a body over %d bytes cannot be held for "
		            "an approver",
		            c->held_why, HOLD_BODY_MAX);
		return;
	}
	unsigned char md[32];
	unsigned int mdlen = 0;
	char hex[65] = "";
	if (EVP_DigestFinal_ex(c->sha, md, &mdlen) != 1 || mdlen != 32) {
		c->held = false;
		conn_refuse(c, 502, "error", "egress: cannot digest the body");
		return;
	}
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	/* What the approver reads is made here from the bytes themselves, never from anything
	 * the agent says about them: printable UTF-8 only, a cut sequence at the end a '?'. */
	char preview[HOLD_PREVIEW_MAX + 1];
	size_t plen = text_sanitize(c->preview_raw, c->preview_raw_len, preview);
	preview[plen] = '\0';
	c->asked = true;
	bool v6 = c->req.kind == HOST_IPV6;
	char host[HOST_MAX + 2];
	snprintf(host, sizeof(host), "%s%s%s", v6 ? "[" : "", c->req.host, v6 ? "]" : "");
	json_t *ask = json_pack("{s:s,s:I,s:s,s:s,s:i,s:s,s:s,s:I,s:s,s:s}", "t", "egress_ask",
	                        "id", (json_int_t)c->ask_id, "method", c->req.method, "host", host,
	                        "port", (int)c->req.port, "path",
	                        c->req.is_connect ? "" : c->req.path, "why", c->held_why,
	                        "body_size", (json_int_t)c->held_bytes, "body_sha256", hex,
	                        "preview", preview);
	if (!send_frame(px, ask) && c->held) { /* (a failed send denied every hold already) */
		c->held = false;
		conn_refuse(c, 403, "deny", "egress: %s: the daemon could not be asked", c->held_why);
	}
}

/* The daemon's answer to ask id. */
static void
answered(struct proxy *px, uint64_t id, bool allow, const char *reason)
{
	struct conn *c = NULL;
	for (struct conn *x = px->conns; x && !c; x = x->next)
		if (x->held && x->ask_id == id)
			c = x;
	if (!c)
		return; /* its client went away meanwhile */
	c->held = false;
	if (!c->asked || !allow) {
		conn_refuse(c, 403, "deny", "egress: %s: %s", c->held_why,
		            reason[0] ? reason : "denied");
		return;
	}
	snprintf(c->reason, sizeof(c->reason), "held (%s), approved: %s", c->held_why, reason);
	c->state = ST_HEAD;
	c->approved = true;
	c->egress_ok = true; /* an approver allowed it: no --allow entry needed */
	c->release(c);
}

void
hold_control_lost(struct proxy *px, const char *why)
{
	if (px->control_ev) {
		event_free(px->control_ev);
		px->control_ev = NULL;
	}
	if (px->control_fd >= 0)
		close(px->control_fd);
	px->control_fd = -1;
	/* Nobody can answer what is held any more: each is denied, never let through. */
	for (struct conn *c = px->conns, *next; c; c = next) {
		next = c->next;
		if (c->held) {
			c->held = false;
			conn_refuse(c, 403, "deny", "egress: %s: %s", c->held_why, why);
		}
	}
}

static void
control_readable(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct proxy *px = arg;
	char buf[CONTROL_FRAME_MAX + 1];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		hold_control_lost(px, "the daemon is gone (its control channel closed)");
		return;
	}
	if ((size_t)n > CONTROL_FRAME_MAX) {
		hold_control_lost(px, "the daemon sent a frame over 16 KiB");
		return;
	}
	json_t *o = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
	const char *t = json_string_value(json_object_get(o, "t"));
	json_t *id = json_object_get(o, "id");
	const char *verdict = json_string_value(json_object_get(o, "verdict"));
	const char *reason = json_string_value(json_object_get(o, "reason"));
	/* Exactly allow lets a request through; anything else about it denies it. */
	if (t && strcmp(t, "egress_answer") == 0 && json_is_integer(id) &&
	    json_integer_value(id) > 0)
		answered(px, (uint64_t)json_integer_value(id),
		         verdict && strcmp(verdict, "allow") == 0, reason ? reason : "");
	json_decref(o);
}

int
hold_init(struct proxy *px)
{
	px->control_fd = px->cfg->control_fd;
	/* Causes known at start (--tainted): the daemon gave them, the audit says them. */
	if (px->cfg->start_taint)
		px->taint = *px->cfg->start_taint;
	for (size_t i = 0; i < px->taint.n_causes; i++)
		audit_line(px, NULL, "taint", px->taint.causes[i]);
	if (px->control_fd < 0)
		return 0;
	evutil_make_socket_nonblocking(px->control_fd);
	px->control_ev =
	    event_new(px->base, px->control_fd, EV_READ | EV_PERSIST, control_readable, px);
	if (!px->control_ev || event_add(px->control_ev, NULL) < 0)
		return -ENOMEM;
	return 0;
}

void
hold_done(struct proxy *px)
{
	if (px->control_ev)
		event_free(px->control_ev);
	px->control_ev = NULL;
}

void
hold_conn_free(struct conn *c)
{
	if (c->sha)
		EVP_MD_CTX_free(c->sha);
	c->sha = NULL;
	c->held = false;
}

bool
egress_gate(struct conn *c, bool allowed, bool has_input, void (*release)(struct conn *))
{
	struct proxy *px = c->px;
	struct request *r = &c->req;
	struct egress_decision d;
	egress_judge(&px->cfg->egress, px->cfg->taint_verdicts ? &px->taint : NULL, r->host,
	             r->kind, r->port, allowed, has_input, &d);
	c->taints = px->cfg->taint_verdicts && !d.trusted;
	switch (d.verdict) {
	case EGRESS_ALLOW:
		c->egress_ok = d.by_rule;
		return true;
	case EGRESS_ASK:
		hold_request(c, d.why, release);
		return false;
	default:
		if (!d.listed)
			return true; /* not allowed at all: the allowlist's refusal says so */
		conn_refuse(c, 403, "deny", "egress: %s", d.why);
		return false;
	}
}
