/*
 * vm-client.c: see vm-client.h. Both halves of the request live here so that they cannot
 * drift apart: the client packs a sandbox_spec, the service unpacks it into one and checks it
 * exactly as `clawbox run` checks its options (sandbox_spec_add_mount, _set_env).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fd-util.h"
#include "json-util.h"
#include "macro.h"
#include "vm-client.h"

json_t *
vm_request_pack(const struct sandbox_spec *spec, const char *agent_exe, bool net)
{
	_cleanup_json_ json_t *argv = json_array(), *env = json_array(), *mounts = json_array();
	for (size_t i = 0; spec->argv[i]; i++)
		json_array_append_new(argv, json_string(spec->argv[i]));
	for (size_t i = 0; i < spec->n_env; i++)
		json_array_append_new(env, json_string(spec->env[i]));
	for (size_t i = 0; i < spec->n_mounts; i++)
		json_array_append_new(
		    mounts, json_pack("{s:s,s:s,s:b}", "source", spec->mounts[i].source, "target",
		                      spec->mounts[i].target, "rw", spec->mounts[i].writable));
	return json_pack("{s:O,s:O,s:O,s:s?,s:s?,s:I,s:I,s:I,s:I,s:b}", "argv", argv, "env", env,
	                 "mounts", mounts, "workdir", spec->workdir, "agent_exe", agent_exe,
	                 "memory", (json_int_t)spec->memory_bytes, "pids",
	                 (json_int_t)spec->pids_max, "cpus_milli", (json_int_t)spec->cpus_milli,
	                 "timeout_ms", (json_int_t)spec->timeout_ms, "net", net);
}

int
vm_request_unpack(json_t *req, struct sandbox_spec *spec, char ***ret_argv, char **ret_agent_exe,
                  bool *ret_net, char *why, size_t size)
{
	json_t *argvj = json_object_get(req, "argv");
	size_t argc = json_array_size(argvj);
	if (!json_is_object(req) || argc == 0 || argc > SANDBOX_MAX_ARGS)
		return snprintf(why, size, "the request has no command"), -EINVAL;
	char **argv = calloc(argc + 1, sizeof(char *));
	if (!argv)
		return -ENOMEM;
	*ret_argv = argv;
	for (size_t i = 0; i < argc; i++) {
		const char *a = json_string_value(json_array_get(argvj, i));
		if (!a || !(argv[i] = strdup(a)))
			return snprintf(why, size, "the command is not all strings"), -EINVAL;
	}
	spec->argv = argv;
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(req, "env"), i, e)
	{
		if (!json_is_string(e) || sandbox_spec_set_env(spec, json_string_value(e)) < 0)
			return snprintf(why, size, "a bad environment entry"), -EINVAL;
	}
	json_array_foreach(json_object_get(req, "mounts"), i, e)
	{
		const char *src = json_get_str(e, "source"), *dst = json_get_str(e, "target");
		char arg[2 * SANDBOX_PATH_MAX + 8];
		const char *bad = "";
		if (!src || !dst || strchr(src, ':') || strchr(dst, ':'))
			return snprintf(why, size, "a bad mount"), -EINVAL;
		snprintf(arg, sizeof(arg), "%s:%s:%s", src, dst,
		         json_is_true(json_object_get(e, "rw")) ? "rw" : "ro");
		if (sandbox_spec_add_mount(spec, arg, &bad) < 0)
			return snprintf(why, size, "mount %.200s: %s", dst, bad ? bad : "too many"),
			       -EINVAL;
	}
	const char *wd = json_get_str(req, "workdir"), *exe = json_get_str(req, "agent_exe");
	if (wd && sandbox_path_normalize(wd, &spec->workdir) < 0)
		return snprintf(why, size, "a bad working folder"), -EINVAL;
	if (exe && !(*ret_agent_exe = strdup(exe)))
		return -ENOMEM;
	uint64_t mem = json_get_u64(req, "memory"), pids = json_get_u64(req, "pids");
	if (mem)
		spec->memory_bytes = mem;
	if (pids)
		spec->pids_max = pids > SANDBOX_MAX_PIDS ? SANDBOX_MAX_PIDS : pids;
	spec->cpus_milli = json_get_u64(req, "cpus_milli");
	if (spec->cpus_milli > SANDBOX_MAX_CPUS_MILLI)
		spec->cpus_milli = SANDBOX_MAX_CPUS_MILLI;
	spec->timeout_ms = json_get_u64(req, "timeout_ms");
	if (spec->timeout_ms > SANDBOX_MAX_TIMEOUT_MS)
		spec->timeout_ms = SANDBOX_MAX_TIMEOUT_MS;
	*ret_net = json_is_true(json_object_get(req, "net"));
	return 0;
}

int
vm_client_run(const char *socket_path, const struct sandbox_spec *spec, const char *agent_exe,
              struct sandbox_result *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->status = SANDBOX_EXIT_SETUP;
	_cleanup_close_ int fd = unix_connect(socket_path, SOCK_SEQPACKET);
	if (fd < 0)
		return snprintf(ret->message, sizeof(ret->message), "--vm-service %s: %s",
		                socket_path, strerror(-fd)),
		       fd;
	_cleanup_json_ json_t *req = vm_request_pack(spec, agent_exe, spec->proxy_argv != NULL);
	_cleanup_free_ char *s = req ? json_dumps(req, JSON_COMPACT) : NULL;
	if (!s || strlen(s) > VM_REQUEST_MAX)
		return snprintf(ret->message, sizeof(ret->message),
		                "--vm-service: request too large"),
		       -E2BIG;
	/* The proxy is ours, started as sandbox_run() starts it; the service hands it the
	 * connections the VM relays. */
	int sp[2] = {-1, -1};
	pid_t proxy = -1;
	if (spec->proxy_argv) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0) {
			proxy =
			    sandbox_proxy_start(spec->proxy_argv, sp[1], spec->proxy_control_fd);
			close(sp[1]);
		}
		if (proxy < 0) {
			if (sp[0] >= 0)
				close(sp[0]);
			return snprintf(ret->message, sizeof(ret->message),
			                "--vm-service: cannot start the proxy"),
			       -EIO;
		}
	}
	int fds[4] = {0, 1, 2, sp[0]};
	int r = send_msg(fd, s, strlen(s), fds, sp[0] >= 0 ? 4 : 3);
	if (sp[0] >= 0)
		close(sp[0]); /* the service has its copy; the proxy ends when the VM's does */
	char buf[1024];
	size_t n_fds = 0;
	ssize_t n = r < 0 ? r : recv_msg(fd, buf, sizeof(buf) - 1, NULL, 0, &n_fds);
	sandbox_proxy_stop(proxy);
	if (n < 0)
		return snprintf(ret->message, sizeof(ret->message),
		                "--vm-service: the service ended without the command's status (%s)",
		                strerror((int)-n)),
		       (int)n;
	buf[n] = '\0';
	_cleanup_json_ json_t *ans = json_loads(buf, 0, NULL);
	json_t *st = json_object_get(ans, "status");
	if (!json_is_integer(st))
		return snprintf(ret->message, sizeof(ret->message),
		                "--vm-service: a malformed answer"),
		       -EPROTO;
	ret->status = (int)json_integer_value(st);
	snprintf(ret->message, sizeof(ret->message), "%s",
	         json_get_str(ans, "message") ? json_get_str(ans, "message") : "");
	return 0;
}
