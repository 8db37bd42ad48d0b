/*
 * commands.h: the subcommands of `clawbox`. Each is a thin file in src/cmd/ that turns options
 * into a library call and an exit status.
 */
#ifndef CLAWBOX_COMMANDS_H
#define CLAWBOX_COMMANDS_H

int cmd_run(int argc, char **argv);
int cmd_agent(int argc, char **argv);
int cmd_ask(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_groups(int argc, char **argv);
int cmd_env(int argc, char **argv);
int cmd_tasks(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_approvals(int argc, char **argv);
int cmd_approve(int argc, char **argv);
int cmd_deny(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_usage(int argc, char **argv);
int cmd_runs(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_guest(int argc, char **argv);
int cmd_vm_service(int argc, char **argv);
int cmd_mcp_host(int argc, char **argv);

#endif
