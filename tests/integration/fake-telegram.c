/*
 * fake-telegram.c: the Telegram Bot API as the daemon uses it (POST /bot<TOKEN>/getUpdates
 * and /bot<TOKEN>/sendMessage with JSON bodies), on loopback, for tests. Updates come from a
 * file, re-read on every poll (a test adds updates by rewriting it); each is served while its
 * update_id >= the offset asked for, as Telegram does. Every call is logged as a JSON line.
 * A wrong token gets 401; sendMessage to chat 404404 gets 400 "chat not found". sendMessage
 * answers with a new message_id each time; editMessageText of one it gave out answers ok, of
 * any other 400 "message to edit not found". sendChatAction and answerCallbackQuery answer
 * ok, and so does editMessageReplyMarkup (callback queries themselves are updates in the
 * file, as Telegram delivers them).
 * getFile of file_id X answers file_path "files/X" when --files DIR has a file X (else 400),
 * and GET /file/bot<TOKEN>/files/X serves it. sendDocument (multipart/form-data, as
 * Telegram takes it) answers a new message_id; its raw body is kept as --files DIR/upload-N
 * for the test to look into (this server does not parse MIME), and logged with its size.
 *
 * The first sendMessage whose text has "FLOOD" in it gets 429 with retry_after 1 (Telegram's
 * flood limit). --delay-ms N: sendMessage and editMessageText answer N ms late (a slow
 * network).
 *
 * usage: fake-telegram --token T --updates FILE --log FILE --port-file FILE [--files DIR]
 *                      [--delay-ms N]
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const char *token, *updates_path, *files_dir;
static int uploads;
static FILE *logf;
static int sent; /* message ids handed out by sendMessage */

static struct event_base *base;
static long delay_ms; /* --delay-ms: sendMessage and editMessageText answer this late */

static void
send_now(struct evhttp_request *req, int status, json_t *j);

struct later {
	struct evhttp_request *req;
	int status;
	json_t *j;
};

static void
on_later(evutil_socket_t fd, short what, void *arg)
{
	struct later *l = arg;
	(void)fd;
	(void)what;
	send_now(l->req, l->status, l->j);
	free(l);
}

static void
reply_late(struct evhttp_request *req, int status, json_t *j)
{
	struct later *l = malloc(sizeof(*l));
	struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
	if (!l || delay_ms <= 0) {
		free(l);
		send_now(req, status, j);
		return;
	}
	*l = (struct later){req, status, j};
	event_base_once(base, -1, EV_TIMEOUT, on_later, l, &tv);
}

static void
reply(struct evhttp_request *req, int status, json_t *j)
{
	send_now(req, status, j);
}

static void
send_now(struct evhttp_request *req, int status, json_t *j)
{
	struct evbuffer *b = evbuffer_new();
	char *s = json_dumps(j, JSON_COMPACT);
	evbuffer_add(b, s, strlen(s));
	free(s);
	json_decref(j);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "application/json");
	evhttp_send_reply(req, status, NULL, b);
	evbuffer_free(b);
}

static void
log_call(const char *method, json_t *body)
{
	json_t *e = json_pack("{s:s,s:O}", "method", method, "body", body ? body : json_null());
	char *s = json_dumps(e, JSON_COMPACT);
	fprintf(logf, "%s\n", s);
	fflush(logf);
	free(s);
	json_decref(e);
}

static void
on_request(struct evhttp_request *req, void *arg)
{
	(void)arg;
	const char *uri = evhttp_request_get_uri(req);
	char prefix[300];
	snprintf(prefix, sizeof(prefix), "/bot%s/", token);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	json_t *body =
	    json_loadb((const char *)evbuffer_pullup(in, -1), evbuffer_get_length(in), 0, NULL);
	char fprefix[320];
	snprintf(fprefix, sizeof(fprefix), "/file/bot%s/files/", token);
	if (files_dir && strncmp(uri, fprefix, strlen(fprefix)) == 0 &&
	    !strchr(uri + strlen(fprefix), '/') && !strstr(uri, "..")) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", files_dir, uri + strlen(fprefix));
		FILE *f = fopen(path, "r");
		struct evbuffer *b = evbuffer_new();
		char chunk[65536];
		size_t n;
		while (f && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
			evbuffer_add(b, chunk, n);
		json_t *what = json_string(uri + strlen(fprefix));
		log_call("download", what);
		json_decref(what);
		evhttp_send_reply(req, f ? 200 : 404, NULL, b);
		evbuffer_free(b);
		if (f)
			fclose(f);
	} else if (strncmp(uri, prefix, strlen(prefix)) != 0) {
		log_call("unauthorized", body);
		reply(req, 401,
		      json_pack("{s:b,s:i,s:s}", "ok", 0, "error_code", 401, "description",
		                "Unauthorized"));
	} else if (strcmp(uri + strlen(prefix), "getUpdates") == 0) {
		log_call("getUpdates", body);
		json_int_t offset = json_integer_value(json_object_get(body, "offset"));
		json_t *all = json_load_file(updates_path, 0, NULL);
		json_t *out = json_array();
		size_t i;
		json_t *u;
		json_array_foreach(all, i, u)
		{
			if (json_integer_value(json_object_get(u, "update_id")) >= offset)
				json_array_append(out, u);
		}
		if (all)
			json_decref(all);
		reply(req, 200, json_pack("{s:b,s:o}", "ok", 1, "result", out));
	} else if (strcmp(uri + strlen(prefix), "sendMessage") == 0) {
		log_call("sendMessage", body);
		const char *text = json_string_value(json_object_get(body, "text"));
		static int floods;
		if (text && strstr(text, "FLOOD") && floods++ == 0)
			reply_late(req, 429,
			           json_pack("{s:b,s:i,s:s,s:{s:i}}", "ok", 0, "error_code", 429,
			                     "description", "Too Many Requests: retry after 1",
			                     "parameters", "retry_after", 1));
		else if (json_integer_value(json_object_get(body, "chat_id")) == 404404)
			reply_late(req, 400,
			      json_pack("{s:b,s:i,s:s}", "ok", 0, "error_code", 400, "description",
			                "Bad Request: chat not found"));
		else
			reply_late(req, 200,
			      json_pack("{s:b,s:{s:i}}", "ok", 1, "result", "message_id", ++sent));
	} else if (strcmp(uri + strlen(prefix), "sendChatAction") == 0 ||
	           strcmp(uri + strlen(prefix), "answerCallbackQuery") == 0 ||
	           strcmp(uri + strlen(prefix), "editMessageReplyMarkup") == 0) {
		log_call(uri + strlen(prefix), body);
		reply(req, 200, json_pack("{s:b,s:b}", "ok", 1, "result", 1));
	} else if (strcmp(uri + strlen(prefix), "getFile") == 0) {
		log_call("getFile", body);
		const char *id = json_string_value(json_object_get(body, "file_id"));
		char path[4096];
		FILE *f = NULL;
		if (files_dir && id && !strchr(id, '/')) {
			snprintf(path, sizeof(path), "%s/%s", files_dir, id);
			f = fopen(path, "r");
		}
		if (f) {
			fclose(f);
			snprintf(path, sizeof(path), "files/%s", id);
			reply(req, 200,
			      json_pack("{s:b,s:{s:s,s:s}}", "ok", 1, "result", "file_id", id,
			                "file_path", path));
		} else {
			reply(req, 400,
			      json_pack("{s:b,s:i,s:s}", "ok", 0, "error_code", 400, "description",
			                "Bad Request: invalid file_id"));
		}
	} else if (strcmp(uri + strlen(prefix), "sendDocument") == 0) {
		size_t n = evbuffer_get_length(in);
		char path[4096];
		snprintf(path, sizeof(path), "%s/upload-%d", files_dir ? files_dir : "/tmp", ++uploads);
		FILE *f = files_dir ? fopen(path, "w") : NULL;
		if (f) {
			fwrite(evbuffer_pullup(in, -1), 1, n, f);
			fclose(f);
		}
		json_t *e = json_pack("{s:s,s:I,s:s}", "method", "sendDocument", "bytes",
		                      (json_int_t)n, "kept", path);
		char *line = json_dumps(e, JSON_COMPACT);
		fprintf(logf, "%s\n", line);
		fflush(logf);
		free(line);
		json_decref(e);
		reply(req, 200, json_pack("{s:b,s:{s:i}}", "ok", 1, "result", "message_id", ++sent));
	} else if (strcmp(uri + strlen(prefix), "editMessageText") == 0) {
		log_call("editMessageText", body);
		json_int_t id = json_integer_value(json_object_get(body, "message_id"));
		if (id < 1 || id > sent || !json_is_string(json_object_get(body, "text")))
			reply_late(req, 400,
			      json_pack("{s:b,s:i,s:s}", "ok", 0, "error_code", 400, "description",
			                "Bad Request: message to edit not found"));
		else
			reply_late(req, 200,
			      json_pack("{s:b,s:{s:I}}", "ok", 1, "result", "message_id", id));
	} else {
		reply(req, 404, json_pack("{s:b,s:s}", "ok", 0, "description", "Not Found"));
	}
	if (body)
		json_decref(body);
}

int
main(int argc, char **argv)
{
	const char *log_path = NULL, *port_file = NULL;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--token") == 0)
			token = argv[i + 1];
		else if (strcmp(argv[i], "--updates") == 0)
			updates_path = argv[i + 1];
		else if (strcmp(argv[i], "--log") == 0)
			log_path = argv[i + 1];
		else if (strcmp(argv[i], "--port-file") == 0)
			port_file = argv[i + 1];
		else if (strcmp(argv[i], "--files") == 0)
			files_dir = argv[i + 1];
		else if (strcmp(argv[i], "--delay-ms") == 0)
			delay_ms = strtol(argv[i + 1], NULL, 10);
	}
	if (!token || !updates_path || !log_path || !port_file)
		return fprintf(
		           stderr,
		           "usage: fake-telegram --token T --updates F --log F --port-file F\n"),
		       2;
	logf = fopen(log_path, "a");
	if (!logf)
		return 2;
	base = event_base_new();
	struct evhttp *http = evhttp_new(base);
	evhttp_set_gencb(http, on_request, NULL);
	struct evhttp_bound_socket *s = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
	if (!s)
		return 2;
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&sa, &sl);
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
	FILE *pf = fopen(tmp, "w");
	fprintf(pf, "%d\n", ntohs(sa.sin_port));
	fclose(pf);
	rename(tmp, port_file);
	event_base_dispatch(base);
	return 0;
}
