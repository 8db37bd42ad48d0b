/*
 * main.c: `clawbox`, one command with subcommands (like git). Dispatches and prints the
 * top-level help; everything else lives in the subcommand files and the libraries.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "log.h"
#include "macro.h"
#include "sandbox.h"

#ifndef CLAWBOX_VERSION
#define CLAWBOX_VERSION "0.0.0-dev"
#endif

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
    {"run", cmd_run, "run a command in a fresh, locked-down sandbox"},
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
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(cmd, commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	log_error("'%s' is not a clawbox command; see 'clawbox --help'", cmd);
	return 2;
}
