/*
 * main.c: `clawbox`, one command with subcommands (like git). Dispatches and prints the
 * top-level help; everything else lives in the subcommand files and the libraries.
 */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include <string.h>

#include "commands.h"
#include "log.h"
#include "macro.h"
#include "paths.h"
#include "sandbox.h"

#ifndef CLAWBOX_VERSION
#define CLAWBOX_VERSION "0.0.0-dev"
#endif

/* `clawbox proxy` and `clawbox serve`: executables of their own (they link what this one
 * must not load), next to this one; hand over to them, git-style. */
static int
hand_over(const char *exe, char **argv)
{
	char path[4096];
	int r = self_sibling(exe, path, sizeof(path));
	if (r < 0) {
		log_error("%s next to this clawbox: %s", exe, strerror(-r));
		return 127;
	}
	argv[0] = path;
	execv(path, argv);
	log_error("%s: %s", path, strerror(errno));
	return 127;
}

static int
cmd_proxy(int argc, char **argv)
{
	(void)argc;
	return hand_over("clawbox-proxy", argv);
}

static int
cmd_serve(int argc, char **argv)
{
	(void)argc;
	return hand_over("clawbox-serve", argv);
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
    {"ask", cmd_ask, "ask the agent, in a fresh sandbox; prints the answer as it streams"},
    {"run", cmd_run, "run a command in a fresh, locked-down sandbox"},
    {"agent", cmd_agent, "the agent itself (runs inside a sandbox; started by ask)"},
    {"serve", cmd_serve, "the daemon: HTTP API, groups, queues, an agent per message"},
    {"chat", cmd_chat, "talk to a group through the daemon; answers stream back"},
    {"groups", cmd_groups, "the daemon's groups"},
    {"env", cmd_env, "a group's packages (apt, npm, pip): show, add, remove"},
    {"tasks", cmd_tasks, "scheduled tasks: list, add, cancel, runs"},
    {"pause", cmd_pause, "pause a group: its messages wait, its tasks do not fire"},
    {"resume", cmd_resume, "resume a paused group"},
    {"audit", cmd_audit, "the daemon's audit of decisions"},
    {"approvals", cmd_approvals, "host actions held for an approver"},
    {"approve", cmd_approve, "let a held host action run (once, --for-run, --always)"},
    {"deny", cmd_deny, "refuse a held host action"},
    {"policy", cmd_policy, "a group's effective policy; --remove an approver's rule"},
    {"usage", cmd_usage, "tokens used, per group"},
    {"runs", cmd_runs, "the runs in progress: for how long, the last tool call"},
    {"stop", cmd_stop, "stop a group's run now"},
    {"proxy", cmd_proxy, "the egress proxy (started by 'run --net proxy')"},
    {"mcp-host", cmd_mcp_host, "the host actions as an MCP server on stdio (for other engines)"},
    {"vm-service", cmd_vm_service, "one long-lived microVM that runs sandboxes for clients"},
};

static void
usage(FILE *out)
{
	fprintf(out,
	        "usage: clawbox [--help] [--version] COMMAND [ARGS...]\n\n"
	        "clawbox: a personal AI agent platform whose security is enforced outside the\n"
	        "agent. Commands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nRun 'clawbox COMMAND --help' for a command's options.\n");
}

int
main(int argc, char **argv)
{
	sandbox_note_process_memory(argc, argv);
	log_set_prefix("clawbox");

	/* The microVM's init: the same binary, started by the kernel as /init. */
	if (getpid() == 1 && strcmp(argv[0], "/init") == 0)
		return cmd_guest(argc, argv);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "--version") == 0) {
		printf("clawbox %s\n", CLAWBOX_VERSION);
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (strcmp(cmd, commands[i].name) != 0)
			continue;
		/* `clawbox SUB --version`, for every SUB; serve and proxy answer themselves. */
		if (commands[i].run != cmd_serve && commands[i].run != cmd_proxy &&
		    version_asked(argc - 1, argv + 1, "clawbox"))
			return 0;
		return commands[i].run(argc - 1, argv + 1);
	}
	log_error("'%s' is not a clawbox command; see 'clawbox --help'", cmd);
	return 2;
}
