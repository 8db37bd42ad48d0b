/*
 * tool-host.c: host actions from the agent's side: one connection to the socket the daemon
 * mounted into this sandbox, one JSON line out ({"tool", "input"}), one back ({"ok", "result"
 * or "error"}). The daemon decides; this side only carries the request and bounds the wait.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dbuf.h"
#include "fd-util.h"
#include "http.h"
#include "json-util.h"
#include "tools.h"

#define HOST_REPLY_MAX  (64 * 1024)
#define HOST_TIMEOUT_MS 30000 /* with no run deadline; a held request waits up to that */

void
tool_host_call(const struct tool_env *env, const char *name, json_t *input, struct tool_output *out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(env->host_socket) >= sizeof(sa.sun_path)) {
		tool_output_error(out, "error: the host socket path is too long");
		return;
	}
	memcpy(sa.sun_path, env->host_socket, strlen(env->host_socket) + 1);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		tool_output_error(out, "error: the daemon cannot be reached: %s", strerror(errno));
		return;
	}
	_cleanup_json_ json_t *req = json_pack("{s:s,s:O}", "tool", name, "input", input);
	_cleanup_free_ char *line = req ? json_dumps(req, JSON_COMPACT) : NULL;
	if (!line || write_all(fd, line, strlen(line)) < 0 || write_all(fd, "\n", 1) < 0) {
		tool_output_error(out, "error: the request could not be sent");
		return;
	}
	_cleanup_dbuf_ struct dbuf reply;
	dbuf_init(&reply, HOST_REPLY_MAX);
	/* A request the group's policy holds for an approver answers when they do: the wait is
	 * bounded by the run's own deadline, not a shorter one of ours. */
	int64_t deadline = env->deadline_ms ? env->deadline_ms : http_now_ms() + HOST_TIMEOUT_MS;
	while (!memchr(dbuf_str(&reply), '\n', reply.len)) {
		int64_t left = deadline - http_now_ms();
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
			tool_output_error(out, "error: the daemon did not answer in time");
			return;
		}
		char buf[4096];
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0 || dbuf_append(&reply, buf, (size_t)n) < 0) {
			tool_output_error(out,
			                  "error: the daemon's answer was cut off or too large");
			return;
		}
	}
	_cleanup_json_ json_t *ans =
	    json_loadb(dbuf_str(&reply), reply.len, JSON_DISABLE_EOF_CHECK, NULL);
	if (!json_is_object(ans)) {
		tool_output_error(out, "error: the daemon's answer is not JSON");
		return;
	}
	if (json_is_true(json_object_get(ans, "ok"))) {
		const char *r = json_get_str(ans, "result") ?: "done";
		tool_output_add(out, r, strlen(r));
	} else {
		tool_output_error(out, "refused: %s", json_get_str(ans, "error") ?: "(no reason)");
	}
}
