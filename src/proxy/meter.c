/*
 * meter.c: see meter.h. Requests and whole responses are read with jansson, streams with the
 * SSE parser (sse.h) and each event's data with jansson; only the fields that carry usage,
 * tool calls and the output cap are looked at. Everything the meter keeps is bounded.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "macro.h"
#include "meter.h"
#include "sse.h"

static const char *const item_keys[METER_ITEMS] = {
    [METER_TOKENS] = "tokens",        [METER_INPUT] = "input_tokens",
    [METER_OUTPUT] = "output_tokens", [METER_CACHE] = "cache_tokens",
    [METER_COST] = "cost_usd",        [METER_TOOL_CALLS] = "tool_calls",
    [METER_EGRESS] = "egress_bytes",
};

/* No libm for two comparisons. */
static double
dmax(double a, double b)
{
	return a > b ? a : b;
}

void
meter_init(struct meter *m)
{
	memset(m, 0, sizeof(*m));
}

static int
parse_prices(struct meter *m, json_t *prices, char *why, size_t size)
{
	static const char *const keys[] = {"input", "output", "cache_write", "cache_read"};
	if (!json_is_object(prices))
		return snprintf(why, size, "--budget: prices: expected an object"), -EINVAL;
	const char *model;
	json_t *p;
	json_object_foreach(prices, model, p)
	{
		if (m->n_prices >= METER_PRICES_MAX || !model[0] ||
		    strlen(model) >= METER_MODEL_MAX)
			return snprintf(why, size,
			                "--budget: prices: at most %d models, names of 1 to "
			                "%d bytes",
			                METER_PRICES_MAX, METER_MODEL_MAX - 1),
			       -EINVAL;
		if (!json_is_object(p))
			return snprintf(why, size, "--budget: prices.%.64s: expected an object",
			                model),
			       -EINVAL;
		double v[4] = {0};
		const char *k;
		json_t *x;
		json_object_foreach(p, k, x)
		{
			int i = -1;
			for (int j = 0; j < 4; j++)
				if (strcmp(k, keys[j]) == 0)
					i = j;
			if (i < 0 || !json_is_number(x) || json_number_value(x) < 0 ||
			    !isfinite(json_number_value(x)))
				return snprintf(why, size,
				                "--budget: prices.%.64s.%.32s: expected input, "
				                "output, cache_write or cache_read: a number of at "
				                "least 0",
				                model, k),
				       -EINVAL;
			v[i] = json_number_value(x);
		}
		snprintf(m->prices[m->n_prices].model, METER_MODEL_MAX, "%s", model);
		m->prices[m->n_prices].p = (struct meter_prices){
		    .input = v[0], .output = v[1], .cache_write = v[2], .cache_read = v[3]};
		m->n_prices++;
	}
	return 0;
}

int
meter_parse(struct meter *m, const char *json, char *why, size_t size)
{
	json_error_t err;
	json_t *j = json_loads(json, JSON_REJECT_DUPLICATES, &err);
	int rc = 0;
	if (!json_is_object(j)) {
		rc = -EINVAL;
		snprintf(why, size, "--budget: expected a JSON object");
		goto out;
	}
	const char *key;
	json_t *v;
	json_object_foreach(j, key, v)
	{
		if (strcmp(key, "prices") == 0) {
			if ((rc = parse_prices(m, v, why, size)) < 0)
				goto out;
			continue;
		}
		int k = -1;
		for (int i = 0; i < METER_ITEMS; i++)
			if (strcmp(item_keys[i], key) == 0)
				k = i;
		if (k < 0 || !json_is_number(v) || json_number_value(v) < 0 ||
		    !isfinite(json_number_value(v))) {
			rc = -EINVAL;
			snprintf(why, size,
			         "--budget: %.64s: expected one of tokens, input_tokens, "
			         "output_tokens, cache_tokens, cost_usd, tool_calls, egress_bytes, "
			         "prices, with a number of at least 0",
			         key);
			goto out;
		}
		m->has[k] = true;
		m->left[k] = json_number_value(v);
	}
out:
	json_decref(j);
	return rc;
}

double
meter_cost(const struct meter_prices *p, const struct meter_usage *u)
{
	return ((double)u->input * p->input + (double)u->output * p->output +
	        (double)u->cache_write * p->cache_write + (double)u->cache_read * p->cache_read) /
	       1e6;
}

const struct meter_prices *
meter_price(const struct meter *m, const char *model)
{
	const struct meter_prices *best = NULL;
	size_t best_len = 0;
	for (size_t i = 0; i < m->n_prices; i++) {
		const char *name = m->prices[i].model;
		size_t n = strlen(name);
		if (strcmp(name, model) == 0)
			return &m->prices[i].p;
		if (n > best_len && strncmp(name, model, n) == 0 && model[n] == '-') {
			best = &m->prices[i].p;
			best_len = n;
		}
	}
	return best;
}

static bool
path_is(const char *path, const char *want)
{
	size_t n = strcspn(path, "?#");
	return n == strlen(want) && strncmp(path, want, n) == 0;
}

bool
meter_is_call(const char *method, const char *path)
{
	return strcmp(method, "POST") == 0 &&
	       (path_is(path, "/v1/messages") || path_is(path, "/v1/chat/completions") ||
	        path_is(path, "/v1/responses"));
}

/* ---- before the call ---- */

static int __attribute__((format(printf, 4, 5)))
refuse(struct meter *m, char *why, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, size, fmt, ap);
	va_end(ap);
	if (!m->stop[0])
		snprintf(m->stop, sizeof(m->stop), "%s", why);
	m->refused++;
	m->dirty = true;
	return -EDQUOT;
}

/* What is left of item k for one more call: its limit less what is spent and held. */
static double
left_of(const struct meter *m, enum meter_item k)
{
	double spent = 0;
	switch (k) {
	case METER_TOKENS:
		spent = (double)(m->used.input + m->used.output + m->used.cache_write +
		                 m->used.cache_read + m->held_tokens);
		break;
	case METER_INPUT:
		spent = (double)(m->used.input + m->held_input);
		break;
	case METER_OUTPUT:
		spent = (double)(m->used.output + m->held_output);
		break;
	case METER_CACHE:
		spent = (double)(m->used.cache_write + m->used.cache_read);
		break;
	case METER_COST:
		spent = m->cost + m->held_cost;
		break;
	case METER_TOOL_CALLS:
		spent = (double)m->tool_calls;
		break;
	case METER_EGRESS:
		spent = (double)m->egress;
		break;
	default:
		break;
	}
	return m->left[k] - spent;
}

static const char *
output_field(enum meter_api api, json_t *j)
{
	if (api == METER_ANTHROPIC)
		return "max_tokens";
	if (api == METER_RESPONSES)
		return "max_output_tokens";
	return json_object_get(j, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
}

int
meter_call_begin(struct meter *m, const char *path, const char *body, size_t len,
                 struct meter_call **ret, char **ret_body, size_t *ret_len, char *why, size_t size)
{
	*ret = NULL;
	*ret_body = NULL;
	json_t *j = json_loadb(body, len, 0, NULL);
	if (!json_is_object(j)) { /* the fence refuses it before; never metered blind */
		json_decref(j);
		return refuse(m, why, size, "budget: the model request is not a JSON object");
	}
	int rc = 0;
	struct meter_call *mc = calloc(1, sizeof(*mc));
	if (!mc) {
		rc = -ENOMEM;
		goto out;
	}
	mc->api = path_is(path, "/v1/messages")    ? METER_ANTHROPIC
	          : path_is(path, "/v1/responses") ? METER_RESPONSES
	                                           : METER_CHAT;
	mc->stream = json_is_true(json_object_get(j, "stream"));
	snprintf(mc->model, sizeof(mc->model), "%s",
	         json_string_value(json_object_get(j, "model")) ?: "");
	mc->price = meter_price(m, mc->model);
	mc->est_input = (len + METER_BYTES_PER_TOKEN - 1) / METER_BYTES_PER_TOKEN;
	const char *field = output_field(mc->api, j);
	json_t *cap = json_object_get(j, field);
	uint64_t want = json_is_integer(cap) && json_integer_value(cap) > 0
	                    ? (uint64_t)json_integer_value(cap)
	                    : METER_DEFAULT_OUTPUT;

	/* Each limit: is there room for the input, and how much output does it leave? */
	double out_room = (double)want;
	if (m->has[METER_TOOL_CALLS] && left_of(m, METER_TOOL_CALLS) < 1) {
		rc = refuse(m, why, size,
		            "budget: the group's daily tool calls are used up (%llu this run)",
		            (unsigned long long)m->tool_calls);
		goto out;
	}
	if (m->has[METER_CACHE] && left_of(m, METER_CACHE) < 1) {
		rc = refuse(m, why, size, "budget: the group's daily cache tokens are used up");
		goto out;
	}
	for (int k = METER_TOKENS; k <= METER_INPUT; k++) {
		if (!m->has[k])
			continue;
		double room = left_of(m, k) - (double)mc->est_input;
		if (room < 1) {
			rc = refuse(m, why, size,
			            "budget: the next model call needs about %llu input tokens and "
			            "the group's daily %s leave %.0f",
			            (unsigned long long)mc->est_input, item_keys[k],
			            dmax(left_of(m, k), 0));
			goto out;
		}
		if (k == METER_TOKENS && room < out_room)
			out_room = room;
	}
	if (m->has[METER_OUTPUT] && left_of(m, METER_OUTPUT) < out_room)
		out_room = left_of(m, METER_OUTPUT);
	double in_price = 0;
	if (m->has[METER_COST]) {
		if (!mc->price) {
			rc = refuse(m, why, size,
			            "budget: the model %.100s has no price in the configuration's "
			            "\"prices\", and the group has a daily cost budget",
			            mc->model[0] ? mc->model : "(unnamed)");
			goto out;
		}
		/* The input may be written to or read from the cache: the dearest of the three. */
		in_price =
		    dmax(mc->price->input, dmax(mc->price->cache_write, mc->price->cache_read));
		double room = left_of(m, METER_COST) - (double)mc->est_input * in_price / 1e6;
		if (room <= 0) {
			rc = refuse(
			    m, why, size,
			    "budget: the next model call would cost more than the $%.4f left "
			    "of the group's daily cost budget",
			    dmax(left_of(m, METER_COST), 0));
			goto out;
		}
		if (mc->price->output > 0 && room / (mc->price->output / 1e6) < out_room)
			out_room = (double)(uint64_t)(room / (mc->price->output / 1e6));
	}
	if (out_room < 1) {
		rc = refuse(m, why, size,
		            "budget: no output tokens are left in the group's daily "
		            "budget for another model call");
		goto out;
	}
	mc->cap_output = (uint64_t)out_room;

	/* Rewrite only what the meter needs: a lower output cap (or one where the request named
	 * none and a limit applies: the default would bind nothing), usage in a chat stream. */
	bool limited = m->has[METER_TOKENS] || m->has[METER_OUTPUT] || m->has[METER_COST];
	bool set_cap = mc->cap_output < want || (!cap && limited);
	bool rewrite = set_cap;
	if (mc->api == METER_CHAT && mc->stream) {
		json_t *so = json_object_get(j, "stream_options");
		if (!json_is_true(json_object_get(so, "include_usage"))) {
			if (!json_is_object(so)) {
				so = json_object();
				json_object_set_new(j, "stream_options", so);
			}
			json_object_set_new(so, "include_usage", json_true());
			rewrite = true;
		}
	}
	if (rewrite) {
		if (set_cap)
			json_object_set_new(j, field, json_integer((json_int_t)mc->cap_output));
		char *s = json_dumps(j, JSON_COMPACT);
		if (!s) {
			rc = -ENOMEM;
			goto out;
		}
		*ret_body = s;
		*ret_len = strlen(s);
	}
	mc->held_cost =
	    mc->price
	        ? ((double)mc->est_input * in_price + (double)mc->cap_output * mc->price->output) /
	              1e6
	        : 0;
	m->held_tokens += mc->est_input + mc->cap_output;
	m->held_input += mc->est_input;
	m->held_output += mc->cap_output;
	m->held_cost += mc->held_cost;
	m->calls++;
	m->dirty = true;
	snprintf(m->model, sizeof(m->model), "%s", mc->model);
	*ret = mc;
	mc = NULL;
out:
	free(mc);
	json_decref(j);
	return rc;
}

/* ---- the response ---- */

static uint64_t
num(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v)
	                                                       : 0;
}

#define TAKE_MAX(dst, v) ((dst) = (v) > (dst) ? (v) : (dst))

/* A usage object of api: the largest count seen of each (Anthropic's stream says the input
 * at its start and the output, cumulative, in message_delta). */
static void
take_usage(struct meter_call *mc, json_t *u)
{
	if (!json_is_object(u))
		return;
	if (mc->api == METER_ANTHROPIC) {
		if (json_object_get(u, "input_tokens"))
			mc->saw_input = true;
		if (json_object_get(u, "output_tokens"))
			mc->saw_output = true;
		TAKE_MAX(mc->u.input, num(u, "input_tokens"));
		TAKE_MAX(mc->u.output, num(u, "output_tokens"));
		TAKE_MAX(mc->u.cache_write, num(u, "cache_creation_input_tokens"));
		TAKE_MAX(mc->u.cache_read, num(u, "cache_read_input_tokens"));
		return;
	}
	/* OpenAI: the prompt's count includes its cached part. */
	const char *in = mc->api == METER_CHAT ? "prompt_tokens" : "input_tokens";
	const char *out = mc->api == METER_CHAT ? "completion_tokens" : "output_tokens";
	const char *det = mc->api == METER_CHAT ? "prompt_tokens_details" : "input_tokens_details";
	if (!json_object_get(u, in) && !json_object_get(u, out))
		return;
	mc->saw_input = mc->saw_output = true;
	uint64_t prompt = num(u, in), cached = num(json_object_get(u, det), "cached_tokens");
	if (cached > prompt)
		cached = prompt;
	TAKE_MAX(mc->u.input, prompt - cached);
	TAKE_MAX(mc->u.cache_read, cached);
	TAKE_MAX(mc->u.output, num(u, out));
}

static void
count_tools_whole(struct meter_call *mc, json_t *j)
{
	size_t i, k;
	json_t *x, *y;
	if (mc->api == METER_ANTHROPIC) {
		json_array_foreach(json_object_get(j, "content"), i, x)
		{
			const char *t = json_string_value(json_object_get(x, "type"));
			if (t && strcmp(t, "tool_use") == 0)
				mc->tools++;
		}
	} else if (mc->api == METER_CHAT) {
		json_array_foreach(json_object_get(j, "choices"), i, x)
		{
			json_array_foreach(
			    json_object_get(json_object_get(x, "message"), "tool_calls"), k, y)
			    mc->tools++;
		}
	} else {
		json_array_foreach(json_object_get(j, "output"), i, x)
		{
			const char *t = json_string_value(json_object_get(x, "type"));
			if (t && strcmp(t, "function_call") == 0)
				mc->tools++;
		}
	}
}

/* One streamed event. Deltas are counted without parsing (they are most of the stream). */
static bool
on_event(void *ctx, const struct sse_event *ev)
{
	struct meter_call *mc = ctx;
	const char *d = ev->data;
	size_t n = ev->data_len;
	if (n == 6 && memcmp(d, "[DONE]", 6) == 0)
		return true;
	bool interesting = memmem(d, n, "usage", 5) || memmem(d, n, "tool", 4) ||
	                   memmem(d, n, "function_call", 13);
	if (!interesting) {
		if (memmem(d, n, "delta", 5))
			mc->deltas++;
		return true;
	}
	json_t *j = json_loadb(d, n, 0, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		return true;
	}
	const char *type = json_string_value(json_object_get(j, "type")) ?: "";
	size_t i, k;
	json_t *x, *y;
	if (mc->api == METER_ANTHROPIC) {
		if (strcmp(type, "message_start") == 0) {
			take_usage(mc, json_object_get(json_object_get(j, "message"), "usage"));
		} else if (strcmp(type, "message_delta") == 0) {
			take_usage(mc, json_object_get(j, "usage"));
		} else if (strcmp(type, "content_block_start") == 0) {
			const char *t = json_string_value(
			    json_object_get(json_object_get(j, "content_block"), "type"));
			if (t && strcmp(t, "tool_use") == 0)
				mc->tools++;
		} else if (strcmp(type, "content_block_delta") == 0) {
			mc->deltas++;
		}
	} else if (mc->api == METER_CHAT) {
		take_usage(mc, json_object_get(j, "usage"));
		json_array_foreach(json_object_get(j, "choices"), i, x)
		{
			mc->deltas++;
			json_array_foreach(
			    json_object_get(json_object_get(x, "delta"), "tool_calls"), k,
			    y) if (json_object_get(y, "id")) mc->tools++;
		}
	} else {
		if (strcmp(type, "response.completed") == 0 ||
		    strcmp(type, "response.incomplete") == 0 ||
		    strcmp(type, "response.failed") == 0)
			take_usage(mc, json_object_get(json_object_get(j, "response"), "usage"));
		else if (strcmp(type, "response.output_item.added") == 0) {
			const char *t =
			    json_string_value(json_object_get(json_object_get(j, "item"), "type"));
			if (t && strcmp(t, "function_call") == 0)
				mc->tools++;
		} else if (strlen(type) > 6 && strcmp(type + strlen(type) - 6, ".delta") == 0)
			mc->deltas++;
	}
	json_decref(j);
	return true;
}

/* The head is complete in mc->head: its status and how its body is framed. */
static void
read_head(struct meter_call *mc)
{
	mc->head[mc->head_len] = '\0';
	int st = 0;
	if (sscanf(mc->head, "HTTP/%*d.%*d %3d", &st) != 1)
		sscanf(mc->head, "HTTP/%*d %3d", &st);
	mc->status = st;
	for (char *line = strstr(mc->head, "\r\n"); line; line = strstr(line, "\r\n")) {
		line += 2;
		if (strncasecmp(line, "content-type:", 13) == 0) {
			char *end = strstr(line, "\r\n");
			size_t n = end ? (size_t)(end - line) : strlen(line);
			mc->event_stream = memmem(line, n, "text/event-stream", 17) != NULL;
		} else if (strncasecmp(line, "content-encoding:", 17) == 0) {
			const char *v = line + 17;
			while (*v == ' ')
				v++;
			if (strncasecmp(v, "identity", 8) != 0)
				mc->unreadable =
				    true; /* the proxy asked for none: never relied on */
		}
	}
	if (mc->event_stream && !mc->unreadable) {
		mc->sse = malloc(sizeof(*mc->sse));
		if (mc->sse)
			sse_init(mc->sse, on_event, mc);
		else
			mc->unreadable = true;
	}
}

void
meter_call_feed(struct meter_call *mc, const void *buf, size_t len)
{
	if (!mc || mc->unreadable)
		return;
	const char *p = buf;
	if (!mc->in_body) {
		size_t room = sizeof(mc->head) - 1 - mc->head_len, take = len < room ? len : room;
		memcpy(mc->head + mc->head_len, p, take);
		size_t before = mc->head_len;
		mc->head_len += take;
		mc->head[mc->head_len] = '\0';
		char *end = strstr(mc->head, "\r\n\r\n");
		if (!end) {
			if (mc->head_len == sizeof(mc->head) - 1)
				mc->unreadable = true;
			return;
		}
		size_t head_end = (size_t)(end - mc->head) + 4;
		mc->head_len = head_end;
		mc->in_body = true;
		read_head(mc);
		p += head_end - before;
		len -= head_end - before;
		if (mc->unreadable)
			return;
	}
	if (mc->sse) {
		if (sse_feed(mc->sse, p, len) < 0)
			mc->unreadable = true; /* what came so far still counts */
		return;
	}
	if (mc->body_len + len > METER_BODY_MAX) {
		mc->unreadable = true;
		return;
	}
	char *nb = realloc(mc->body, mc->body_len + len + 1);
	if (!nb) {
		mc->unreadable = true;
		return;
	}
	mc->body = nb;
	memcpy(mc->body + mc->body_len, p, len);
	mc->body_len += len;
}

void
meter_call_end(struct meter *m, struct meter_call *mc)
{
	if (!mc)
		return;
	m->held_tokens -= mc->est_input + mc->cap_output;
	m->held_input -= mc->est_input;
	m->held_output -= mc->cap_output;
	m->held_cost -= mc->held_cost;
	if (m->held_cost < 0)
		m->held_cost = 0;
	if (mc->sse)
		sse_end(mc->sse);
	if (mc->body && !mc->unreadable && mc->status / 100 == 2) {
		json_t *j = json_loadb(mc->body, mc->body_len, 0, NULL);
		if (json_is_object(j)) {
			take_usage(mc, json_object_get(j, "usage"));
			count_tools_whole(mc, j);
		}
		json_decref(j);
	}
	struct meter_usage u = {0};
	if (mc->status / 100 == 2) {
		u = mc->u;
		if (!mc->saw_input)
			u.input = mc->est_input;
		if (!mc->saw_output && mc->deltas > u.output)
			u.output = mc->deltas;
	}
	m->used.input += u.input;
	m->used.output += u.output;
	m->used.cache_write += u.cache_write;
	m->used.cache_read += u.cache_read;
	m->tool_calls += mc->status / 100 == 2 ? mc->tools : 0;
	m->dirty = true;
	if (mc->price)
		m->cost += meter_cost(mc->price, &u);
	else if (u.input || u.output || u.cache_write || u.cache_read)
		m->cost_unknown = true;
	free(mc->sse);
	free(mc->body);
	free(mc);
}

bool
meter_egress(struct meter *m, uint64_t n, char *why, size_t size)
{
	m->egress += n;
	m->dirty = m->dirty || n > 0;
	if (!m->has[METER_EGRESS] || (double)m->egress <= m->left[METER_EGRESS])
		return true;
	snprintf(why, size,
	         "budget: the group's daily egress bytes are used up (%.0f left at "
	         "the run's start)",
	         m->left[METER_EGRESS]);
	if (!m->stop[0])
		snprintf(m->stop, sizeof(m->stop), "%s", why);
	return false;
}

int
meter_write(const struct meter *m, int fd)
{
	if (fd < 0)
		return 0;
	json_t *o = json_pack(
	    "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "calls", (json_int_t)m->calls, "refused",
	    (json_int_t)m->refused, "input_tokens", (json_int_t)m->used.input, "output_tokens",
	    (json_int_t)m->used.output, "cache_write_tokens", (json_int_t)m->used.cache_write,
	    "cache_read_tokens", (json_int_t)m->used.cache_read, "tool_calls",
	    (json_int_t)m->tool_calls, "egress_bytes", (json_int_t)m->egress, "held_tokens",
	    (json_int_t)m->held_tokens);
	if (!o)
		return -ENOMEM;
	json_object_set_new(o, "cost_usd", m->cost_unknown ? json_null() : json_real(m->cost));
	json_object_set_new(o, "model", m->model[0] ? json_string(m->model) : json_null());
	if (m->stop[0])
		json_object_set_new(o, "stop", json_string(m->stop));
	json_t *line = json_pack("{s:o}", "meter", o);
	char *s = line ? json_dumps(line, JSON_COMPACT) : NULL;
	json_decref(line);
	if (!s)
		return -ENOMEM;
	size_t n = strlen(s);
	s[n] = '\n'; /* json_dumps' NUL becomes the line's end: one write(2), one line */
	ssize_t w = write(fd, s, n + 1);
	free(s);
	return w == (ssize_t)(n + 1) ? 0 : -EIO;
}
