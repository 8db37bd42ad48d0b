/*
 * client.c: the daemon's command-line clients: `clawbox chat [GROUP]`, `clawbox groups`,
 * `clawbox tasks`, `clawbox audit`, `clawbox usage`, `runs`, `stop`. They speak the same API
 * (the agent's small HTTP client, talking to the daemon directly), with the token from the
 * data folder, and print nothing from the daemon unfiltered (text_sanitize).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "dbuf.h"
#include "fd-util.h"
#include "http.h"
#include "json-util.h"
#include "log.h"
#include "parse.h"
#include "paths.h"
#include "sse.h"
#include "text.h"

#define CLIENT_BODY_MAX (8u << 20)

struct client {
	struct http_proxy server;
	char base[128]; /* http://HOST:PORT */
	char auth[160]; /* "Authorization: Bearer ..." */
};

static void
print_clean(FILE *f, const char *s, size_t len)
{
	char *buf = malloc(len + 1);
	if (!buf)
		return;
	size_t n = text_sanitize(s, len, buf);
	fwrite(buf, 1, n, f);
	free(buf);
}

/* Where the daemon listens and its token: --url/--token-file, or the configuration's listen
 * and data_dir (the same defaults the daemon uses). */
static int
client_init(struct client *c, const char *url, const char *token_file, const char *config)
{
	char cfg_path[PATH_MAX], listen[96] = "127.0.0.1:7878", data[PATH_MAX] = "";
	char dir[PATH_MAX - 32] = "";
	if (config)
		snprintf(cfg_path, sizeof(cfg_path), "%s", config);
	else if (xdg_dir(XDG_CONFIG, dir, sizeof(dir)) == 0)
		snprintf(cfg_path, sizeof(cfg_path), "%s/config.json", dir);
	else
		cfg_path[0] = '\0'; /* no HOME: the built-in defaults, or --url/--token-file */
	json_error_t jerr;
	_cleanup_json_ json_t *cfg = json_load_file(cfg_path, 0, &jerr);
	if (json_get_str(cfg, "listen"))
		snprintf(listen, sizeof(listen), "%s", json_get_str(cfg, "listen"));
	if (json_get_str(cfg, "data_dir"))
		snprintf(data, sizeof(data), "%s", json_get_str(cfg, "data_dir"));
	else if (xdg_dir(XDG_DATA, data, sizeof(data)) < 0)
		data[0] = '\0';
	if (url) {
		if (strncmp(url, "http://", 7) != 0)
			return log_error("--url %s: expected http://ADDRESS:PORT", url), -EINVAL;
		snprintf(listen, sizeof(listen), "%s", url + 7);
		listen[strcspn(listen, "/")] = '\0';
	}
	if (http_proxy_parse(listen, &c->server) < 0)
		return log_error("the daemon's address %s: expected a numeric ADDRESS:PORT",
		                 listen),
		       -EINVAL;
	snprintf(c->base, sizeof(c->base), "http://%s", listen);
	char tpath[PATH_MAX + 16], token[128];
	if (token_file)
		snprintf(tpath, sizeof(tpath), "%s", token_file);
	else
		snprintf(tpath, sizeof(tpath), "%s/api-token", data);
	ssize_t n = read_file_at(AT_FDCWD, tpath, token, sizeof(token));
	if (n < 0)
		return log_error(
		           "the API token %s: %s (is 'clawbox serve' set up? see --token-file)",
		           tpath, strerror((int)-n)),
		       (int)n;
	while (n > 0 && (token[n - 1] == '\n' || token[n - 1] == ' '))
		token[--n] = '\0';
	snprintf(c->auth, sizeof(c->auth), "Authorization: Bearer %s", token);
	return 0;
}

struct collect {
	struct http_response resp;
	struct dbuf body;
};

static int
collect_head(void *ctx, const struct http_response *resp)
{
	((struct collect *)ctx)->resp = *resp;
	return 0;
}

static int
collect_body(void *ctx, const char *buf, size_t len)
{
	return dbuf_append(&((struct collect *)ctx)->body, buf, len) < 0 ? -EFBIG : 0;
}

/* One API call; the JSON answer in *ret (new reference). Prints the daemon's error and
 * returns -EREMOTEIO on a 4xx/5xx. */
static int
call(struct client *c, const char *method, const char *path, json_t *body, json_t **ret)
{
	char url[512];
	snprintf(url, sizeof(url), "%s%s", c->base, path);
	_cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	struct http_request req = {
	    .method = method,
	    .url = url,
	    .headers = {c->auth, "Content-Type: application/json"},
	    .body = text,
	    .body_len = text ? strlen(text) : 0,
	    .deadline_ms = http_now_ms() + 30000,
	    .origin_form = true,
	};
	struct collect col = {0};
	dbuf_init(&col.body, CLIENT_BODY_MAX);
	struct http_handler h = {.on_head = collect_head, .on_body = collect_body, .ctx = &col};
	int r = http_exchange(&c->server, &req, &h);
	if (r < 0) {
		log_error("cannot reach the daemon at %s: %s", c->base,
		          r == -ECONNREFUSED ? "nothing listens there (is 'clawbox serve' running?)"
		                             : strerror(-r));
		dbuf_done(&col.body);
		return r;
	}
	json_t *j = json_loadb(dbuf_str(&col.body), col.body.len, 0, NULL);
	dbuf_done(&col.body);
	if (col.resp.status >= 400 || !j) {
		log_error("the daemon answered %d: %s", col.resp.status,
		          json_get_str(j, "error") ?: "(no reason)");
		if (j)
			json_decref(j);
		return -EREMOTEIO;
	}
	*ret = j;
	return 0;
}

/* A group id as the daemon's configuration allows them ([a-z0-9_-], under 64 characters):
 * anything else names no group, and must not reach a URL path ("../x"). */
static bool
group_id_ok(const char *id)
{
	size_t n = strlen(id);
	return n > 0 && n < 64 && strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789-_") == n;
}

static int
no_such_group(const char *id)
{
	char clean[128];
	size_t n = strlen(id);
	n = text_sanitize(id, n < sizeof(clean) ? n : sizeof(clean), clean);
	log_error("no such group: %.*s (group ids are lower-case letters, digits, - and _; "
	          "see 'clawbox groups')",
	          (int)n, clean);
	return 1;
}

/* ---- chat ---- */

struct chat {
	int64_t waiting_for; /* the id of the message whose answer we wait for */
	bool answered, printed;
	struct sse_parser *sse;
};

static bool
chat_event(void *ctx, const struct sse_event *ev)
{
	struct chat *ch = ctx;
	_cleanup_json_ json_t *j = json_loadb(ev->data, ev->data_len, 0, NULL);
	int64_t reply_to = json_integer_value(json_object_get(j, "reply_to"));
	if (strcmp(ev->type, "delta") == 0 && reply_to == ch->waiting_for) {
		json_t *t = json_object_get(j, "text");
		print_clean(stdout, json_string_value(t), json_string_length(t));
		fflush(stdout);
		ch->printed = true;
	} else if (strcmp(ev->type, "message") == 0) {
		const char *dir = json_get_str(j, "direction") ?: "";
		json_t *t = json_object_get(j, "text");
		if (strcmp(dir, "out") == 0 && reply_to == ch->waiting_for) {
			if (!ch->printed) /* the reply came whole (no deltas seen) */
				print_clean(stdout, json_string_value(t), json_string_length(t));
			printf("\n");
			ch->answered = true;
			return false; /* done: end the stream */
		}
		if (strcmp(dir, "out") == 0 &&
		    !reply_to) { /* a message the agent sent on its own */
			printf("[%s] ", json_get_str(j, "sender") ?: "");
			print_clean(stdout, json_string_value(t), json_string_length(t));
			printf("\n");
		}
	}
	return true;
}

static int
chat_body(void *ctx, const char *buf, size_t len)
{
	struct chat *ch = ctx;
	int r = sse_feed(ch->sse, buf, len);
	return r == -ECANCELED ? -ECANCELED : r;
}

static int
chat_one(struct client *c, const char *group, const char *line)
{
	_cleanup_json_ json_t *ans = NULL;
	_cleanup_json_ json_t *msg = json_pack("{s:s,s:s}", "text", line, "sender", "chat");
	char path[256];
	snprintf(path, sizeof(path), "/api/v1/groups/%s/messages", group);
	int r = call(c, "POST", path, msg, &ans);
	if (r < 0)
		return r;
	struct chat ch = {.waiting_for = json_integer_value(json_object_get(ans, "id"))};
	ch.sse = malloc(sizeof(*ch.sse));
	if (!ch.sse)
		return -ENOMEM;
	sse_init(ch.sse, chat_event, &ch);
	char url[512];
	snprintf(url, sizeof(url), "%s/api/v1/groups/%s/events?after=%lld", c->base, group,
	         (long long)ch.waiting_for);
	struct http_request req = {
	    .method = "GET",
	    .url = url,
	    .headers = {c->auth, "Accept: text/event-stream"},
	    .deadline_ms = http_now_ms() + 3600 * 1000,
	    .origin_form = true,
	};
	struct http_handler h = {.on_body = chat_body, .ctx = &ch};
	r = http_exchange(&c->server, &req, &h);
	free(ch.sse);
	if (ch.answered)
		return 0;
	log_error("the answer did not arrive: %s", strerror(r < 0 ? -r : EPIPE));
	return r < 0 ? r : -EPIPE;
}

/* The clients' common options (--url, --token-file, --config, --help) and the connection
 * they give. 0 with the first operand's index in *ret_optind, 1 after --help (help printed),
 * or -errno after one line. */
static int
client_from_args(struct client *c, int argc, char **argv, const char *help, int *ret_optind)
{
	static const struct option opts[] = {
	    {"url", required_argument, NULL, 'u'},
	    {"token-file", required_argument, NULL, 't'},
	    {"config", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *url = NULL, *token = NULL, *config = NULL;
	int opt;
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (opt == 'u')
			url = optarg;
		else if (opt == 't')
			token = optarg;
		else if (opt == 'c')
			config = optarg;
		else if (opt == 'h')
			return fputs(help, stdout), 1;
		else
			return log_error("option %s: unknown or missing its value; see --help",
			                 argv[optind - 1]),
			       -EINVAL;
	}
	*ret_optind = optind;
	return client_init(c, url, token, config);
}

int
cmd_chat(int argc, char **argv)
{
	struct client c;
	int ind, r;
	log_set_prefix("clawbox chat");
	if ((r = client_from_args(&c, argc, argv,
	                          "usage: clawbox chat [--url URL] [--token-file FILE] [GROUP]\n\n"
	                          "Talks to a group (default main) through the daemon: each line "
	                          "you type\nis a message, the answer streams back. Ctrl-D ends. "
	                          "Lines on stdin work\ntoo: echo 'hello' | clawbox chat family\n",
	                          &ind)) != 0)
		return r > 0 ? 0 : 2;
	const char *group = ind < argc ? argv[ind] : "main";
	if (!group_id_ok(group))
		return no_such_group(group);
	bool tty = isatty(0);
	char *line = NULL;
	size_t cap = 0;
	int status = 0;
	for (;;) {
		if (tty) {
			printf("%s> ", group);
			fflush(stdout);
		}
		ssize_t n = getline(&line, &cap, stdin);
		if (n < 0)
			break;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0)
			continue;
		if (n > 32 * 1024) {
			log_error("a message is at most 32 KiB");
			continue;
		}
		if (chat_one(&c, group, line) < 0)
			status = 1;
	}
	free(line);
	return status;
}

/* ---- admin ---- */

static void
print_time(int64_t t)
{
	char buf[32];
	time_t tt = (time_t)t;
	struct tm tm;
	strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", localtime_r(&tt, &tm));
	printf("%s", buf);
}

/* Sizes as "1.5 MiB" (quota.c's form; the client does not link the daemon's code). */
static void
client_size(uint64_t bytes, char *buf, size_t size)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
	if (bytes < 1024) {
		snprintf(buf, size, "%llu bytes", (unsigned long long)bytes);
		return;
	}
	double v = (double)bytes / 1024;
	size_t u = 0;
	while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	snprintf(buf, size, "%.1f %s", v, units[u]);
}

int
cmd_groups(int argc, char **argv)
{
	struct client c;
	int ind, r;
	log_set_prefix("clawbox groups");
	if ((r = client_from_args(&c, argc, argv,
	                          "usage: clawbox groups [--url URL] [--token-file FILE] [--config "
	                          "FILE]\n\nThe daemon's groups.\n",
	                          &ind)) != 0)
		return r > 0 ? 0 : 2;
	_cleanup_json_ json_t *ans = NULL;
	if (call(&c, "GET", "/api/v1/groups", NULL, &ans) < 0)
		return 1;
	size_t i;
	json_t *g;
	json_array_foreach(json_object_get(ans, "groups"), i, g)
	{
		const char *id = json_get_str(g, "id") ?: "",
		           *trig = json_get_str(g, "trigger") ?: "";
		print_clean(stdout, id, strlen(id));
		printf("%s", json_is_true(json_object_get(g, "main")) ? "  (main)" : "");
		printf("%s", json_is_true(json_object_get(g, "paused")) ? "  (paused)" : "");
		if (*trig) {
			printf("  trigger ");
			print_clean(stdout, trig, strlen(trig));
		}
		json_t *quota = json_object_get(g, "folder_quota");
		if (json_is_integer(quota)) {
			char u[32], q[32];
			client_size(json_get_u64(g, "folder_bytes"), u, sizeof(u));
			client_size((uint64_t)json_integer_value(quota), q, sizeof(q));
			printf("  folder %s of %s%s", u, q,
			       json_get_u64(g, "folder_bytes") > (uint64_t)json_integer_value(quota)
			           ? " (over its quota: messages refused)"
			           : "");
		}
		printf("\n");
	}
	return 0;
}

int
cmd_tasks(int argc, char **argv)
{
	struct client c;
	int ind, r;
	log_set_prefix("clawbox tasks");
	if ((r = client_from_args(&c, argc, argv,
	                          "usage: clawbox tasks [OPTIONS] [list | add GROUP --every "
	                          "N|--cron EXPR|--at TIME PROMPT |\n                              "
	                          " cancel ID | cancel --group GROUP --all | runs ID]\n\nThe "
	                          "daemon's scheduled tasks.\n",
	                          &ind)) != 0)
		return r > 0 ? 0 : 2;
	_cleanup_json_ json_t *ans = NULL;
	const char *sub = ind < argc ? argv[ind] : "list";
	if (strcmp(sub, "list") == 0) {
		/* Page by page: the daemon sends at most 1,000 at a time. */
		char path[64] = "/api/v1/tasks";
		for (unsigned pages = 0; pages < 100000; pages++) {
			if (ans)
				json_decref(TAKE_PTR(ans));
			if (call(&c, "GET", path, NULL, &ans) < 0)
				return 1;
			size_t i;
			json_t *t;
			json_array_foreach(json_object_get(ans, "tasks"), i, t)
			{
				const char *p = json_get_str(t, "prompt") ?: "";
				printf("#%lld %s [%s] %s next %s: ",
				       (long long)json_integer_value(json_object_get(t, "id")),
				       json_get_str(t, "group") ?: "",
				       json_get_str(t, "status") ?: "",
				       json_get_str(t, "schedule") ?: "",
				       *(json_get_str(t, "next_run") ?: "")
				           ? json_get_str(t, "next_run")
				           : "-");
				print_clean(stdout, p, strlen(p) > 60 ? 60 : strlen(p));
				printf("\n");
			}
			json_t *next = json_object_get(ans, "next");
			if (!json_is_integer(next))
				break;
			snprintf(path, sizeof(path), "/api/v1/tasks?after=%lld",
			         (long long)json_integer_value(next));
		}
		return 0;
	}
	if (strcmp(sub, "cancel") == 0 && argc - ind == 4 &&
	    strcmp(argv[ind + 1], "--group") == 0 && strcmp(argv[ind + 3], "--all") == 0) {
		char path[128];
		snprintf(path, sizeof(path), "/api/v1/tasks?group=%s", argv[ind + 2]);
		if (strspn(argv[ind + 2], "abcdefghijklmnopqrstuvwxyz0123456789-_") !=
		        strlen(argv[ind + 2]) ||
		    strlen(argv[ind + 2]) > 63)
			return log_error("%s: not a group's id", argv[ind + 2]), 2;
		if (call(&c, "DELETE", path, NULL, &ans) < 0)
			return 1;
		printf("%lld tasks of %s cancelled\n",
		       (long long)json_integer_value(json_object_get(ans, "cancelled")),
		       argv[ind + 2]);
		return 0;
	}
	if (strcmp(sub, "add") == 0 && argc - ind == 5) {
		/* tasks add GROUP --every N | --cron EXPR | --at TIME  PROMPT */
		_cleanup_json_ json_t *body =
		    json_pack("{s:s,s:s}", "group", argv[ind + 1], "prompt", argv[ind + 4]);
		const char *kind = argv[ind + 2], *val = argv[ind + 3];
		uint64_t n;
		struct tm tm = {0};
		const char *rest = strptime(val, "%Y-%m-%d", &tm);
		if (!group_id_ok(argv[ind + 1]))
			return no_such_group(argv[ind + 1]);
		if (strcmp(kind, "--every") == 0 &&
		    (parse_u64(val, 366ULL * 86400, &n) < 0 || n == 0))
			return log_error("--every %s: expected a whole number of seconds from 1 to "
			                 "%llu, such as 3600 for hourly",
			                 val, 366ULL * 86400),
			       2;
		/* The daemon checks the whole time, in the group's zone; the shape is checked
		 * here, so that "tomorrow" is told what is expected in terms of this flag. */
		if (strcmp(kind, "--at") == 0 && (!rest || (*rest != 'T' && *rest != ' ')))
			return log_error("--at %s: expected a date and time such as "
			                 "2026-11-27T09:00:00Z (UTC), or 2026-11-27T09:00 in the "
			                 "group's time zone",
			                 val),
			       2;
		if (strcmp(kind, "--every") == 0)
			json_object_set_new(body, "every_seconds", json_integer((json_int_t)n));
		else if (strcmp(kind, "--cron") == 0)
			json_object_set_new(body, "cron", json_string(val));
		else if (strcmp(kind, "--at") == 0)
			json_object_set_new(body, "at", json_string(val));
		else
			return log_error("expected --every SECONDS, --cron EXPR or --at TIME"), 2;
		if (call(&c, "POST", "/api/v1/tasks", body, &ans) < 0)
			return 1;
		printf("task #%lld: %s\n",
		       (long long)json_integer_value(json_object_get(ans, "id")),
		       json_get_str(ans, "schedule") ?: "");
		return 0;
	}
	if ((strcmp(sub, "cancel") == 0 || strcmp(sub, "runs") == 0) && argc - ind == 2) {
		uint64_t id;
		char path[64];
		if (parse_u64(argv[ind + 1], INT64_MAX, &id) < 0)
			return log_error("%s: expected a task number", argv[ind + 1]), 2;
		bool cancel = strcmp(sub, "cancel") == 0;
		snprintf(path, sizeof(path), "/api/v1/tasks/%llu%s", (unsigned long long)id,
		         cancel ? "" : "/runs");
		if (call(&c, cancel ? "DELETE" : "GET", path, NULL, &ans) < 0)
			return 1;
		if (cancel) {
			printf("task #%llu cancelled\n", (unsigned long long)id);
			return 0;
		}
		size_t i;
		json_t *run;
		json_array_foreach(json_object_get(ans, "runs"), i, run)
		{
			print_time(json_integer_value(json_object_get(run, "started")));
			printf("  %s", json_get_str(run, "status") ?: "");
			if (json_object_get(run, "duration_s"))
				printf("  %llds", (long long)json_integer_value(
				                      json_object_get(run, "duration_s")));
			printf("\n");
		}
		return 0;
	}
	log_error("usage: clawbox tasks [list | add GROUP --every N|--cron EXPR|--at TIME PROMPT | "
	          "cancel ID | cancel --group GROUP --all | runs ID]");
	return 2;
}

/* clawbox pause GROUP / clawbox resume GROUP */
static int
pause_resume(int argc, char **argv, bool pause)
{
	struct client c;
	int ind, r;
	log_set_prefix(pause ? "clawbox pause" : "clawbox resume");
	if ((r = client_from_args(&c, argc, argv,
	                          pause ? "usage: clawbox pause [--url URL] [--token-file FILE] "
	                                  "GROUP\n\nPauses a group: its messages wait in the "
	                                  "queue, nothing of it runs,\nand its tasks do not fire "
	                                  "until 'clawbox resume GROUP'.\n"
	                                : "usage: clawbox resume [--url URL] [--token-file FILE] "
	                                  "GROUP\n\nResumes a paused group: what waited runs.\n",
	                          &ind)) != 0)
		return r > 0 ? 0 : 2;
	if (argc - ind != 1)
		return log_error("expected one GROUP; see --help"), 2;
	const char *g = argv[ind];
	if (!*g || strlen(g) > 63 ||
	    strspn(g, "abcdefghijklmnopqrstuvwxyz0123456789-_") != strlen(g))
		return log_error("%s: not a group's id", g), 2;
	char path[128];
	snprintf(path, sizeof(path), "/api/v1/groups/%s/%s", g, pause ? "pause" : "resume");
	_cleanup_json_ json_t *ans = NULL;
	if (call(&c, "POST", path, NULL, &ans) < 0)
		return 1;
	printf("%s is %s\n", g, pause ? "paused" : "running again");
	return 0;
}

int
cmd_pause(int argc, char **argv)
{
	return pause_resume(argc, argv, true);
}

int
cmd_resume(int argc, char **argv)
{
	return pause_resume(argc, argv, false);
}

int
cmd_audit(int argc, char **argv)
{
	struct client c;
	int ind, r;
	log_set_prefix("clawbox audit");
	if ((r = client_from_args(&c, argc, argv,
	                          "usage: clawbox audit [OPTIONS] [AFTER]\n\nThe daemon's audit of "
	                          "decisions, after entry AFTER.\n",
	                          &ind)) != 0)
		return r > 0 ? 0 : 2;
	uint64_t after = 0;
	if (ind < argc && parse_u64(argv[ind], INT64_MAX, &after) < 0)
		return log_error("%s: expected an entry number to list after", argv[ind]), 2;
	char path[64];
	snprintf(path, sizeof(path), "/api/v1/audit?after=%llu", (unsigned long long)after);
	_cleanup_json_ json_t *ans = NULL;
	if (call(&c, "GET", path, NULL, &ans) < 0)
		return 1;
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(ans, "entries"), i, e)
	{
		printf("%lld ", (long long)json_integer_value(json_object_get(e, "id")));
		print_time(json_integer_value(json_object_get(e, "time")));
		char line[1400];
		int n = snprintf(line, sizeof(line), " %s %s %s: %s",
		                 json_get_str(e, "group") ?: "", json_get_str(e, "decision") ?: "",
		                 json_get_str(e, "action") ?: "", json_get_str(e, "reason") ?: "");
		print_clean(stdout, line, n > 0 && (size_t)n < sizeof(line) ? (size_t)n : 0);
		printf("\n");
	}
	return 0;
}

/* Today's spend against each group's daily budget, for the groups that have one. */
static void
print_budget(struct client *c)
{
	_cleanup_json_ json_t *ans = NULL;
	if (call(c, "GET", "/api/v1/budget", NULL, &ans) < 0)
		return;
	size_t i;
	json_t *g;
	bool header = false;
	json_array_foreach(json_object_get(ans, "groups"), i, g)
	{
		const char *k;
		json_t *item;
		json_object_foreach(json_object_get(g, "budget"), k, item)
		{
			json_t *limit = json_object_get(item, "limit");
			if (!json_is_number(limit))
				continue;
			if (!header)
				printf("\nbudget today (per day, in each group's time zone):\n");
			header = true;
			double spent = json_number_value(json_object_get(item, "spent"));
			if (strcmp(k, "cost_usd") == 0)
				printf("%-16s %-14s %12s$%.4f of $%.4f\n", json_get_str(g, "group") ?: "",
				       k, "", spent, json_number_value(limit));
			else
				printf("%-16s %-14s %12.0f of %.0f\n", json_get_str(g, "group") ?: "", k,
				       spent, json_number_value(limit));
		}
	}
}

int
cmd_usage(int argc, char **argv)
{
	struct client c;
	int ind, r;
	log_set_prefix("clawbox usage");
	if ((r = client_from_args(&c, argc, argv,
	                          "usage: clawbox usage [OPTIONS]\n\nTokens used and their estimated cost, per group; "
	                          "today's spend against each daily budget.\n",
	                          &ind)) != 0)
		return r > 0 ? 0 : 2;
	_cleanup_json_ json_t *ans = NULL;
	if (call(&c, "GET", "/api/v1/usage", NULL, &ans) < 0)
		return 1;
	printf("%-16s %6s %12s %12s %12s %12s %10s\n", "group", "runs", "input", "output",
	       "cache write", "cache read", "cost USD");
	size_t i;
	json_t *u;
	json_array_foreach(json_object_get(ans, "usage"), i, u)
	{
		printf("%-16s %6lld %12llu %12llu %12llu %12llu %10.4f\n", json_get_str(u, "group") ?: "",
		       (long long)json_integer_value(json_object_get(u, "runs")),
		       (unsigned long long)json_get_u64(u, "input"),
		       (unsigned long long)json_get_u64(u, "output"),
		       (unsigned long long)json_get_u64(u, "cache_write"),
		       (unsigned long long)json_get_u64(u, "cache_read"),
		       json_number_value(json_object_get(u, "cost_usd")));
	}
	print_budget(&c);
	return 0;
}

/* clawbox approvals [--all]: what waits for an approver (or, with --all, the latest 200). */
int
cmd_approvals(int argc, char **argv)
{
	struct client c;
	int ind, r;
	log_set_prefix("clawbox approvals");
	bool all = argc > 1 && strcmp(argv[argc - 1], "--all") == 0;
	if ((r = client_from_args(&c, all ? argc - 1 : argc, argv,
	                          "usage: clawbox approvals [OPTIONS] [--all]\n\nHost actions "
	                          "held for an approver: answer with 'clawbox approve ID'\nor "
	                          "'clawbox deny ID'. --all lists answered ones too.\n",
	                          &ind)) != 0)
		return r > 0 ? 0 : 2;
	if (ind != (all ? argc - 1 : argc))
		return log_error("%s: unexpected; see --help", argv[ind]), 2;
	_cleanup_json_ json_t *ans = NULL;
	if (call(&c, "GET", all ? "/api/v1/approvals?all=1" : "/api/v1/approvals", NULL, &ans) < 0)
		return 1;
	size_t i;
	json_t *a;
	json_array_foreach(json_object_get(ans, "approvals"), i, a)
	{
		char line[2048];
		int n = snprintf(
		    line, sizeof(line),
		    "#%lld %s %s: %s -> %s (run %.12s)\n    why: %s\n    arguments (%lld bytes, "
		    "sha256 %s): %s\n    %s%s%s",
		    (long long)json_integer_value(json_object_get(a, "id")), json_get_str(a, "status"),
		    json_get_str(a, "group"), json_get_str(a, "action"),
		    json_get_str(a, "destination"), json_get_str(a, "run"), json_get_str(a, "why"),
		    (long long)json_integer_value(json_object_get(a, "size")),
		    json_get_str(a, "sha256"), json_get_str(a, "preview"),
		    strcmp(json_get_str(a, "status") ?: "", "pending") == 0 ? "expires in " : "",
		    strcmp(json_get_str(a, "status") ?: "", "pending") == 0 ? "" : json_get_str(a, "outcome"),
		    "");
		print_clean(stdout, line, n > 0 && (size_t)n < sizeof(line) ? (size_t)n : 0);
		if (strcmp(json_get_str(a, "status") ?: "", "pending") == 0)
			printf("%lld s", (long long)json_integer_value(json_object_get(a, "expires_in")));
		printf("\n");
	}
	return 0;
}

/* clawbox approve ID [--for-run|--always] / clawbox deny ID */
static int
answer_approval(int argc, char **argv, bool approve)
{
	struct client c;
	int ind, r;
	log_set_prefix(approve ? "clawbox approve" : "clawbox deny");
	const char *scope = "once";
	/* The scope flags are ours; the rest are the clients' common options. */
	char *rest[64];
	int n = 0;
	for (int i = 0; i < argc && n < (int)ARRAY_SIZE(rest); i++) {
		if (approve && strcmp(argv[i], "--for-run") == 0)
			scope = "run";
		else if (approve && strcmp(argv[i], "--always") == 0)
			scope = "always";
		else
			rest[n++] = argv[i];
	}
	if ((r = client_from_args(
	         &c, n, rest,
	         approve ? "usage: clawbox approve [OPTIONS] ID [--for-run|--always]\n\nLets a held "
	                   "host action run: once (the default), for the rest of its run\n"
	                   "(--for-run: the same action to the same destination), or always\n"
	                   "(--always: a policy rule that 'clawbox policy GROUP' lists).\n"
	                 : "usage: clawbox deny [OPTIONS] ID\n\nRefuses a held host action.\n",
	         &ind)) != 0)
		return r > 0 ? 0 : 2;
	uint64_t id;
	if (n - ind != 1 || parse_u64(rest[ind], INT64_MAX, &id) < 0 || id == 0)
		return log_error("expected one approval ID (a number); see --help"), 2;
	char path[64];
	snprintf(path, sizeof(path), "/api/v1/approvals/%llu", (unsigned long long)id);
	_cleanup_json_ json_t *body =
	    json_pack("{s:s,s:s}", "decision", approve ? "approve" : "deny", "scope", scope);
	_cleanup_json_ json_t *ans = NULL;
	if (call(&c, "POST", path, body, &ans) < 0)
		return 1;
	printf("approval %llu: %s%s%s\n", (unsigned long long)id, approve ? "approved" : "denied",
	       approve && strcmp(scope, "once") != 0 ? " " : "",
	       approve && strcmp(scope, "once") != 0 ? scope : "");
	return 0;
}

int
cmd_approve(int argc, char **argv)
{
	return answer_approval(argc, argv, true);
}

int
cmd_deny(int argc, char **argv)
{
	return answer_approval(argc, argv, false);
}

/* clawbox policy GROUP [--remove RULE] */
int
cmd_policy(int argc, char **argv)
{
	struct client c;
	int ind, r;
	log_set_prefix("clawbox policy");
	const char *remove = NULL;
	char *rest[64];
	int n = 0;
	for (int i = 0; i < argc && n < (int)ARRAY_SIZE(rest); i++) {
		if (strcmp(argv[i], "--remove") == 0 && i + 1 < argc)
			remove = argv[++i];
		else
			rest[n++] = argv[i];
	}
	if ((r = client_from_args(&c, n, rest,
	                          "usage: clawbox policy [OPTIONS] GROUP [--remove RULE]\n\nThe "
	                          "group's effective policy: its tools, each host action's\n"
	                          "verdict (allow, ask, deny) on itself and on other groups, "
	                          "egress to\nunlisted hosts, its approvers, and the rules "
	                          "approvers added with\n'clawbox approve ID --always'. --remove "
	                          "RULE takes one of those away.\n",
	                          &ind)) != 0)
		return r > 0 ? 0 : 2;
	if (n - ind != 1)
		return log_error("expected one GROUP; see --help"), 2;
	const char *g = rest[ind];
	if (!group_id_ok(g))
		return log_error("%s: not a group's id", g), 2;
	char path[160];
	_cleanup_json_ json_t *ans = NULL;
	if (remove) {
		uint64_t id;
		if (parse_u64(remove, INT64_MAX, &id) < 0 || id == 0)
			return log_error("--remove %s: expected a rule's number", remove), 2;
		snprintf(path, sizeof(path), "/api/v1/groups/%s/policy/rules/%llu", g,
		         (unsigned long long)id);
		if (call(&c, "DELETE", path, NULL, &ans) < 0)
			return 1;
		printf("rule %llu of %s removed\n", (unsigned long long)id, g);
		return 0;
	}
	snprintf(path, sizeof(path), "/api/v1/groups/%s/policy", g);
	if (call(&c, "GET", path, NULL, &ans) < 0)
		return 1;
	json_t *p = json_object_get(ans, "policy");
	printf("policy of %s\n  tools:", g);
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(p, "tools"), i, t) printf(" %s", json_string_value(t));
	printf("%s\n  host actions:           on itself    on other groups\n",
	       json_is_true(json_object_get(p, "tools_default")) ? " (default: all)" : "");
	const char *name;
	json_object_foreach(json_object_get(p, "host_actions"), name, t)
	{
		char self[32], other[32];
		bool granted = json_is_true(json_object_get(t, "granted"));
		snprintf(self, sizeof(self), "%s%s", json_get_str(t, "self") ?: "",
		         !granted ? " (not granted)"
		         : json_is_true(json_object_get(t, "self_default")) ? " (default)" : "");
		snprintf(other, sizeof(other), "%s%s", json_get_str(t, "other_groups") ?: "",
		         !granted ? " (not granted)"
		         : json_is_true(json_object_get(t, "other_groups_default")) ? " (default)"
		                                                                     : "");
		printf("    %-20s %-14s %s\n", name, self, other);
	}
	/* A tainted run's verdicts (the stricter of the above and "when_tainted"). */
	printf("  when tainted:           on itself    on other groups\n");
	json_object_foreach(json_object_get(p, "when_tainted"), name, t)
	{
		char self[32];
		bool def = json_is_true(json_object_get(t, "default"));
		snprintf(self, sizeof(self), "%s%s", json_get_str(t, "self") ?: "",
		         def ? " (default)" : "");
		printf("    %-20s %-14s %s%s\n", name, self, json_get_str(t, "other_groups") ?: "",
		       def ? " (default)" : "");
	}
	json_t *ow = json_object_get(ans, "owners");
	printf("  owners (senders whose messages do not taint):");
	json_array_foreach(json_object_get(ow, "owners"), i, t)
	{
		char o[160];
		int w = snprintf(o, sizeof(o), " %s", json_string_value(t) ?: "");
		print_clean(stdout, o, w > 0 && (size_t)w < sizeof(o) ? (size_t)w : 0);
	}
	printf("%s%s\n", json_array_size(json_object_get(ow, "owners")) ? "" : " none",
	       json_is_true(json_object_get(ow, "default")) ? " (default)" : "");
	printf("  unlisted hosts: %s\n", json_get_str(p, "unlisted_hosts") ?: "");
	json_t *eg = json_object_get(p, "egress");
	printf("  egress:%s\n", json_array_size(eg)
	                            ? "                 verdict  trusted  when tainted"
	                            : " no hosts listed");
	json_array_foreach(eg, i, t)
	{
		char line[512];
		int w = snprintf(
		    line, sizeof(line), "    %-22s %-8s %-8s %s%s%s\n",
		    json_get_str(t, "host") ?: "", json_get_str(t, "verdict") ?: "",
		    json_is_true(json_object_get(t, "trusted")) ? "yes" : "no",
		    json_get_str(t, "when_tainted") ?: "",
		    json_is_true(json_object_get(t, "when_tainted_default")) &&
		            !json_is_true(json_object_get(t, "trusted"))
		        ? " (default)"
		        : "",
		    strcmp(json_get_str(t, "from") ?: "", "allow") == 0 ? "  [from allow]" : "");
		print_clean(stdout, line, w > 0 && (size_t)w < sizeof(line) ? (size_t)w : 0);
	}
	printf("  approvers:");
	json_array_foreach(json_object_get(p, "approvers"), i, t) printf(" %s", json_string_value(t));
	printf("%s\n  approval timeout: %lld s\n",
	       json_array_size(json_object_get(p, "approvers")) ? "" : " (none)",
	       (long long)json_integer_value(json_object_get(p, "approval_timeout")));
	json_t *rules = json_object_get(ans, "rules");
	printf("  rules added by approvers:%s\n", json_array_size(rules) ? "" : " none");
	json_array_foreach(rules, i, t)
	{
		char line[512];
		int w = snprintf(line, sizeof(line), "    rule %lld: %s to %s: %s (by %s, approval %lld)\n",
		                 (long long)json_integer_value(json_object_get(t, "id")),
		                 json_get_str(t, "action"), json_get_str(t, "destination"),
		                 json_get_str(t, "verdict"), json_get_str(t, "added_by"),
		                 (long long)json_integer_value(json_object_get(t, "approval")));
		print_clean(stdout, line, w > 0 && (size_t)w < sizeof(line) ? (size_t)w : 0);
	}
	return 0;
}

/* `clawbox runs`: what runs now, for how long, and what it last did (GET /api/v1/runs/active,
 * issue 12). */
int
cmd_runs(int argc, char **argv)
{
	struct client c;
	int ind, r;
	log_set_prefix("clawbox runs");
	if ((r = client_from_args(&c, argc, argv,
	                          "usage: clawbox runs [OPTIONS]\n\nThe runs in progress: group, "
	                          "message, for how long, the last tool call.\n",
	                          &ind)) != 0)
		return r > 0 ? 0 : 2;
	if (ind < argc) {
		log_error("unexpected argument: %s", argv[ind]);
		return 2;
	}
	_cleanup_json_ json_t *ans = NULL;
	if (call(&c, "GET", "/api/v1/runs/active", NULL, &ans) < 0)
		return 1;
	size_t i;
	json_t *run;
	if (json_array_size(json_object_get(ans, "running")) == 0)
		printf("nothing runs\n");
	json_array_foreach(json_object_get(ans, "running"), i, run)
	{
		const char *g = json_get_str(run, "group") ?: "",
		           *tool = json_get_str(run, "last_tool") ?: "";
		print_clean(stdout, g, strlen(g));
		printf("  message #%lld  for %llu s%s%s  last: ",
		       (long long)json_integer_value(json_object_get(run, "message_id")),
		       (unsigned long long)json_get_u64(run, "elapsed_s"),
		       json_is_true(json_object_get(run, "stopping")) ? " (stopping)" : "",
		       json_is_true(json_object_get(run, "tainted")) ? " (tainted)" : "");
		if (*tool)
			print_clean(stdout, tool, strlen(tool));
		else
			printf("(no tool call yet)");
		printf("\n");
	}
	return 0;
}

/* `clawbox stop GROUP`: stops the group's run now (POST /api/v1/groups/GROUP/stop). */
int
cmd_stop(int argc, char **argv)
{
	struct client c;
	int ind, r;
	log_set_prefix("clawbox stop");
	if ((r = client_from_args(&c, argc, argv,
	                          "usage: clawbox stop [OPTIONS] GROUP\n\nStops the group's run "
	                          "now; its message is answered \"stopped\".\n",
	                          &ind)) != 0)
		return r > 0 ? 0 : 2;
	if (ind + 1 != argc) {
		log_error("usage: clawbox stop [OPTIONS] GROUP");
		return 2;
	}
	if (!group_id_ok(argv[ind])) {
		log_error("no such group: %s", argv[ind]);
		return 2;
	}
	char path[128];
	snprintf(path, sizeof(path), "/api/v1/groups/%s/stop", argv[ind]);
	_cleanup_json_ json_t *ans = NULL;
	if (call(&c, "POST", path, NULL, &ans) < 0)
		return 1;
	printf("%s: %s\n", argv[ind],
	       json_is_true(json_object_get(ans, "stopped")) ? "stopped" : "nothing was running");
	return 0;
}

/* ---- env: a group's packages (the daemon builds them: src/daemon/envs.c) ---- */

static void
env_print(json_t *e)
{
	const char *state = json_get_str(e, "state") ?: "", *msg = json_get_str(e, "message") ?: "";
	size_t i;
	json_t *p;
	printf("packages:");
	json_array_foreach(json_object_get(e, "packages"), i, p)
	{
		printf(" ");
		print_clean(stdout, json_string_value(p), json_string_length(p));
	}
	printf("%s\nstate: ", json_array_size(json_object_get(e, "packages")) ? "" : " (none)");
	print_clean(stdout, state, strlen(state));
	if (*msg) {
		printf(" (");
		print_clean(stdout, msg, strlen(msg));
		printf(")");
	}
	json_t *q = json_object_get(e, "quota");
	printf("\nlayer: %s, disk use %.1f MiB of %.0f MiB; %zu of %lld packages; build time cap "
	       "%lld s\n",
	       json_is_string(json_object_get(e, "layer")) ? "built" : "none",
	       (double)json_integer_value(json_object_get(e, "disk_bytes")) / 1048576.0,
	       (double)json_integer_value(json_object_get(q, "max_bytes")) / 1048576.0,
	       json_array_size(json_object_get(e, "packages")),
	       (long long)json_integer_value(json_object_get(q, "max_packages")),
	       (long long)json_integer_value(json_object_get(q, "build_timeout")));
	printf("note: Debian packages are unpacked, not installed: maintainer scripts are not "
	       "run\n");
}

int
cmd_env(int argc, char **argv)
{
	struct client c;
	int ind, r;
	log_set_prefix("clawbox env");
	if ((r = client_from_args(
	         &c, argc, argv,
	         "usage: clawbox env [--url URL] [--token-file FILE] GROUP [add|remove PKG...]\n\n"
	         "A group's environment: packages from Debian, npm and PyPI (apt:NAME, npm:NAME,\n"
	         "pip:NAME) that the daemon builds into a read-only layer its later runs see\n"
	         "(/usr from Debian, npm and pip commands on PATH). Without add or remove: the\n"
	         "packages, the last build and the disk use. Debian packages are unpacked, not\n"
	         "installed: their maintainer scripts are not run.\n",
	         &ind)) != 0)
		return r > 0 ? 0 : 2;
	if (ind >= argc)
		return log_error("which group? see --help"), 2;
	const char *group = argv[ind++];
	if (!group_id_ok(group))
		return no_such_group(group);
	char path[128];
	snprintf(path, sizeof(path), "/api/v1/groups/%s/env", group);
	_cleanup_json_ json_t *ans = NULL;
	if (ind == argc) {
		if (call(&c, "GET", path, NULL, &ans) < 0)
			return 1;
		env_print(ans);
		return 0;
	}
	const char *verb = argv[ind++];
	if ((strcmp(verb, "add") != 0 && strcmp(verb, "remove") != 0) || ind == argc)
		return log_error("expected add or remove and at least one package; see --help"), 2;
	_cleanup_json_ json_t *body = json_object(), *list = json_array();
	for (; ind < argc && list; ind++)
		json_array_append_new(list, json_string(argv[ind]));
	if (!body || !list || json_object_set(body, verb, list) < 0)
		return log_error("out of memory"), 1;
	if (call(&c, "POST", path, body, &ans) < 0)
		return 1;
	env_print(ans);
	return 0;
}
