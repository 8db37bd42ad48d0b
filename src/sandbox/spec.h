/*
 * spec.h: what one sandbox is asked to be. The command layer fills a struct sandbox_spec from
 * options; the sandbox applies it and decides nothing of its own (bubblewrap's rule).
 *
 * Ownership: sandbox_spec_init() sets the defaults, sandbox_spec_done() frees every string the
 * spec owns (mount paths, env entries, workdir, rootfs). argv is borrowed from the caller.
 */
#ifndef CLAWBOX_SPEC_H
#define CLAWBOX_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SANDBOX_MAX_MOUNTS    64
#define SANDBOX_MAX_ENV       256
#define SANDBOX_ENV_MAX_BYTES (64 * 1024) /* one NAME=VALUE entry */
#define SANDBOX_MAX_ARGS      4096
#define SANDBOX_PATH_MAX      1024 /* inside the sandbox; host sources may use PATH_MAX */

#define SANDBOX_UID        1000 /* the uid and gid inside */
#define SANDBOX_USER       "user"
#define SANDBOX_HOME       "/home/user"
#define SANDBOX_HOSTNAME   "clawbox"
#define SANDBOX_PATH_ENV   "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
#define SANDBOX_PROXY_PORT 3128 /* on the sandbox's loopback, with --net proxy */
#define SANDBOX_MAX_FORWARDS 16 /* host loopback ports forwarded to the proxy */

#define SANDBOX_DEFAULT_MEMORY (512ULL << 20)
#define SANDBOX_DEFAULT_PIDS   256
#define SANDBOX_MAX_PIDS       1048576
#define SANDBOX_MAX_CPUS_MILLI (1024ULL * 1000)
#define SANDBOX_MAX_TIMEOUT_MS (366ULL * 24 * 3600 * 1000)

struct sandbox_mount {
	char *source; /* host path as given */
	char *target; /* normalized absolute path inside */
	bool writable;
};

struct sandbox_spec {
	char *const *argv; /* borrowed, NULL-terminated, at least one entry */

	struct sandbox_mount mounts[SANDBOX_MAX_MOUNTS];
	size_t n_mounts;

	char *env[SANDBOX_MAX_ENV + 1]; /* "NAME=VALUE", NULL-terminated */
	size_t n_env;

	char *workdir; /* NULL: SANDBOX_HOME */
	char *rootfs;  /* NULL: the host's system folders */
	char *layer;   /* NULL: none; else a package layer over /usr (layer.h) */

	uint64_t memory_bytes;
	uint64_t pids_max;
	uint64_t cpus_milli; /* 0: no CPU limit */
	uint64_t timeout_ms; /* 0: none */

	bool debug;

	/* When root launches: the uid and gid the sandbox's user is outside (0: 65533). The
	 * microVM's guest uses 1000, the owner its 9p shares show (qemu's own sandbox user). */
	uid_t outside_id;

	/* --net proxy: the command that starts the egress proxy for this sandbox (NULL: no
	 * network at all). It gets a SOCK_SEQPACKET unix socket as fd 3, on which the sandbox
	 * sends each connection made to SANDBOX_PROXY_PORT on its loopback (one byte and the
	 * connection's fd, SCM_RIGHTS). Borrowed, NULL-terminated. */
	char *const *proxy_argv;
	/* With proxy_argv: the daemon's control channel for the proxy (issue 11: approvals of
	 * egress, taint), given to it as fd 4 (its argv says --control-fd 4); never to the
	 * sandbox. -1: none. Borrowed. */
	int proxy_control_fd;
	/* With a proxy: names that resolve to 127.0.0.1 inside (its /etc/hosts), for clients
	 * that use no proxy (model.clawbox.internal); init also takes connections to port 80
	 * there and hands them to the proxy like the others. Borrowed, NULL-terminated. */
	const char *const *internal_names;
	/* With internal_names: init also takes connections to 127.0.0.1:443 (services' hosts
	 * among the names: HTTPS for clients that use no proxy; the proxy reads their SNI). */
	bool internal_https;
	/* With a proxy: host loopback destinations --allow names (127.0.0.1:PORT, [::1]:PORT).
	 * init listens on the same address and port inside and hands each connection to the
	 * proxy, which tunnels it to that destination (judged like any other): clients that
	 * ignore HTTP_PROXY (Node's fetch) reach the host's server, not the sandbox's own. */
	struct sandbox_forward {
		bool v6;
		uint16_t port;
	} forwards[SANDBOX_MAX_FORWARDS];
	size_t n_forwards;

	/* A KVM device node to bind at /dev/kvm (qemu's own sandbox under KVM, as Firecracker's
	 * jailer gives its VMM /dev/kvm); NULL: none, as for every command. Borrowed. */
	const char *kvm_device;

	/* Instead of proxy_argv: a SOCK_SEQPACKET socket of the caller's that gets the same
	 * messages (the microVM's guest relays them to the host's proxy). -1: none. */
	int proxy_sock;

	/* Called with a one-line warning as soon as one arises (before the command runs), so
	 * that the top of the process can print it; NULL to drop warnings. */
	void (*warn)(const char *msg);
};

void sandbox_spec_init(struct sandbox_spec *spec);
void sandbox_spec_done(struct sandbox_spec *spec);

/* Parses "HOST:PATH[:ro|:rw]" and appends it. -EINVAL on a malformed spec, -E2BIG past
 * SANDBOX_MAX_MOUNTS. *ret_why (static text) says what is wrong on -EINVAL. */
int sandbox_spec_add_mount(struct sandbox_spec *spec, const char *arg, const char **ret_why);

/* Parses "NAME=VALUE" and sets it, replacing an earlier value of NAME. -EINVAL on a bad name,
 * -E2BIG past the entry or count limits. */
int sandbox_spec_set_env(struct sandbox_spec *spec, const char *arg);

/* Sets the default environment (PATH, HOME, LANG, TERM); call before user --env options.
 * term may be NULL or invalid, in which case "dumb" is used. */
int sandbox_spec_default_env(struct sandbox_spec *spec, const char *term);

/* Normalizes an absolute path inside the sandbox: collapses "//", drops a trailing "/",
 * refuses "." and ".." components, relative paths, "/" itself and over-long paths.
 * Writes a newly allocated string to *ret. */
int sandbox_path_normalize(const char *path, char **ret);

/* True if path is one of the sandbox's own system mounts (/proc, /dev, /sys or below), where
 * a user mount must not go. */
bool sandbox_path_reserved(const char *path);

#endif
