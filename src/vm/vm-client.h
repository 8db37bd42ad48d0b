/*
 * vm-client.h: running a sandbox in the long-lived VM of a `clawbox vm-service` (vm-client.c),
 * and the request both sides agree on.
 *
 * The service listens on a SOCK_SEQPACKET unix socket (0600, its owner's). A client sends one
 * message, the request as JSON (at most VM_REQUEST_MAX bytes), with its descriptors: the
 * command's stdin, stdout and stderr, and with "net" the socket its egress proxy reads
 * connections from (see spec.proxy_sock). The service answers with one message,
 * {"status": N, "message": "..."}, when the command has ended and its output is written. A
 * client that hangs up first has its command stopped (SIGTERM to it, in the VM).
 */
#ifndef CLAWBOX_VM_CLIENT_H
#define CLAWBOX_VM_CLIENT_H

#include <jansson.h>

#include "sandbox.h"

#define VM_REQUEST_MAX (64 * 1024)
/* The VM died under the command (the service boots a new one): worth trying again. */
#define VM_EXIT_TEMPFAIL 75

/* The request for spec, with agent_exe (NULL: none) the host binary that the VM replaces by
 * its own clawbox. A new reference, or NULL. */
json_t *vm_request_pack(const struct sandbox_spec *spec, const char *agent_exe, bool net);

/* The spec a request describes (on a sandbox_spec_init()ed spec; argv is allocated and set in
 * *ret_argv for the caller to free). -errno with why on a malformed request. */
int vm_request_unpack(json_t *req, struct sandbox_spec *spec, char ***ret_argv,
                      char **ret_agent_exe, bool *ret_net, char *why, size_t size);

/* Runs spec in the service at socket_path with this process's stdin, stdout and stderr, the
 * egress proxy (spec->proxy_argv) started here. Blocks until the status; fills *ret. Returns
 * 0, or -errno when the service could not be reached or asked (ret says why). */
int vm_client_run(const char *socket_path, const struct sandbox_spec *spec, const char *agent_exe,
                  struct sandbox_result *ret);

#endif
