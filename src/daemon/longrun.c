/*
 * longrun.c: the API side of long runs (issue 12). A run can be stopped at once, by
 * POST /api/v1/groups/ID/stop (what `clawbox stop GROUP` sends), or by a chat message that
 * is "/stop" (API or Telegram): the group's run gets SIGTERM, ask ends its sandbox, and the
 * message it was answering is answered with what the agent had said and "[clawbox:
 * stopped]". GET /api/v1/runs/active lists the runs in progress: group, message, since when,
 * how long, the last tool call (what `clawbox runs` prints). Both are called from api.c's
 * route() after its origin and token checks.
 */
#include <ctype.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <string.h>

#include "daemon.h"
#include "json-util.h"
#include "log.h"

static void
send_error(struct daemon *d, struct evhttp_request *req, int status, const char *why)
{
	d->http_refused++;
	api_send_json(req, status, json_pack("{s:s}", "error", why));
}

bool
longrun_is_stop(const char *text)
{
	if (!text)
		return false;
	while (isspace((unsigned char)*text))
		text++;
	if (strncmp(text, "/stop", 5) != 0)
		return false;
	text += 5;
	if (*text == '@') /* Telegram's form in group chats: /stop@SomeBot */
		while (*text && !isspace((unsigned char)*text))
			text++;
	for (; *text; text++)
		if (!isspace((unsigned char)*text))
			return false;
	return true;
}

void
longrun_stop_reply(struct daemon *d, struct evhttp_request *req, const char *group, const char *by)
{
	bool stopped = runner_stop_group(d, group) == 0;
	(void)store_audit(d->store, group, by, stopped ? "allow" : "none",
	                  stopped ? "stop the run" : "stop: no run in progress");
	log_info("[%s] %s: %s", group, by, stopped ? "the run is stopped" : "no run to stop");
	if (req)
		api_send_json(req, 200, json_pack("{s:s,s:b}", "group", group, "stopped", stopped));
}

bool
longrun_route(struct daemon *d, struct evhttp_request *req, const char *path)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	if (strcmp(path, "/api/v1/runs/active") == 0) {
		if (cmd != EVHTTP_REQ_GET) {
			send_error(d, req, 405, "GET");
			return true;
		}
		json_t *runs = runner_list(d);
		if (!runs)
			send_error(d, req, 500, "out of memory");
		else
			api_send_json(req, 200, json_pack("{s:o}", "running", runs));
		return true;
	}
	static const char prefix[] = "/api/v1/groups/";
	if (strncmp(path, prefix, sizeof(prefix) - 1) != 0)
		return false;
	const char *rest = path + sizeof(prefix) - 1;
	size_t glen = strcspn(rest, "/");
	char group[CONFIG_GROUP_ID_MAX];
	if (glen >= sizeof(group) || strcmp(rest + glen, "/stop") != 0)
		return false;
	memcpy(group, rest, glen);
	group[glen] = '\0';
	if (cmd != EVHTTP_REQ_POST)
		send_error(d, req, 405, "POST");
	else if (!config_group(&d->cfg, group))
		send_error(d, req, 404, "no such group");
	else
		longrun_stop_reply(d, req, group, "api:stop");
	return true;
}
