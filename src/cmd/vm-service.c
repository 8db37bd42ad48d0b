/*
 * vm-service.c: `clawbox vm-service`: one long-lived microVM, the sandbox host for many runs
 * (the daemon's "vm": true). It boots the VM with a fixed set of shared folders, then takes
 * run requests on a unix socket (vm-client.h) and makes each a fresh sandbox inside the VM,
 * several at once. If the VM dies, the runs it held end with 75 (try again) and a new VM is
 * booted; one that cannot be booted ends the service.
 *
 * One poll loop: the listening socket, the clients (a hang-up stops its run), the VM.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "commands.h"
#include "fd-util.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "parse.h"
#include "vm-client.h"
#include "vm-host.h"

#define CLIENTS_MAX VM_JOBS_MAX

struct client {
	int fd;
	bool busy; /* its job is in the VM */
	bool gone; /* hung up: the job was cancelled, its end is awaited */
	struct vm_job job;
};

struct service {
	struct vm vm;
	struct client *clients[CLIENTS_MAX];
	size_t n_clients;
};

static void
usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: clawbox vm-service --socket PATH [--share DIR[:rw]]... [OPTIONS]\n\n"
	    "Boots one microVM and runs sandboxes in it for clients ('clawbox run\n"
	    "--vm-service PATH', 'clawbox ask --vm-service PATH', the daemon's \"vm\": true).\n"
	    "Only the shared folders (and the host's /usr, read-only) are visible in the VM;\n"
	    "a run's mounts must lie in them. A VM that dies is booted again; its runs end\n"
	    "with 75.\n\n"
	    "  --socket PATH     where clients connect (made 0600)\n"
	    "  --share DIR[:rw]  a folder the VM may see (read-only unless :rw; repeatable)\n"
	    "  --memory SIZE     the VM's RAM (default 1G)\n"
	    "  --vm-image DIR    the guest (default: build/vm next to clawbox; installed:\n"
	    "                    PREFIX/lib/clawbox/vm)\n"
	    "  --accel MODE      auto (default: KVM if it boots the guest, else TCG), kvm, tcg\n"
	    "  --debug           the guest's console on stderr\n"
	    "  -h, --help        this help\n");
}

static void
answer(struct client *c)
{
	if (c->fd < 0)
		return;
	_cleanup_json_ json_t *j = json_pack("{s:i,s:s}", "status", c->job.result.status, "message",
	                                     c->job.result.message);
	_cleanup_free_ char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (s)
		(void)send_msg(c->fd, s, strlen(s), NULL, 0);
}

static void
drop_client(struct service *sv, struct client *c)
{
	for (size_t i = 0; i < sv->n_clients; i++)
		if (sv->clients[i] == c)
			sv->clients[i] = sv->clients[--sv->n_clients];
	if (c->fd >= 0)
		close(c->fd);
	if (c->job.proxy_sock >= 0)
		close(c->job.proxy_sock);
	free(c);
}

static void
on_done(struct vm *vm, struct vm_job *job)
{
	struct service *sv = vm->user;
	struct client *c = job->user;
	/* A VM that died under the run: the command may be fine; try it again. */
	if (vm->mux.broken && job->result.status == SANDBOX_EXIT_SETUP) {
		job->result.status = VM_EXIT_TEMPFAIL;
		snprintf(job->result.message, sizeof(job->result.message),
		         "the VM ended under the command; a new one is being started");
	}
	answer(c);
	drop_client(sv, c);
}

/* A client's request: checked as `clawbox run` checks its options, then into the VM. */
static void
take_request(struct service *sv, struct client *c)
{
	char buf[VM_REQUEST_MAX + 1];
	int fds[4];
	size_t n_fds = 0;
	ssize_t n = recv_msg(c->fd, buf, sizeof(buf) - 1, fds, ARRAY_SIZE(fds), &n_fds);
	if (n < 0) {
		drop_client(sv, c);
		return;
	}
	buf[n] = '\0';
	struct sandbox_spec spec;
	sandbox_spec_init(&spec);
	char **argv = NULL, *agent_exe = NULL;
	bool net = false;
	_cleanup_json_ json_t *req = json_loads(buf, 0, NULL);
	c->job.result.status = SANDBOX_EXIT_SETUP;
	int r = vm_request_unpack(req, &spec, &argv, &agent_exe, &net, c->job.result.message,
	                          sizeof(c->job.result.message));
	if (r == 0 && n_fds != (net ? 4u : 3u)) {
		snprintf(c->job.result.message, sizeof(c->job.result.message),
		         "the request came without its descriptors");
		r = -EINVAL;
	}
	bool submitted = false; /* vm_submit() takes the three stdio descriptors, come what may */
	if (r == 0) {
		c->job.proxy_sock = net ? fds[3] : -1;
		c->job.user = c;
		submitted = true;
		r = vm_submit(&sv->vm, &c->job, &spec, agent_exe, fds[0], fds[1], fds[2], true);
		if (r < 0)
			c->job.proxy_sock = -1;
	}
	if (r == 0) {
		c->busy = true;
	} else {
		for (size_t i = submitted ? 3 : 0; i < n_fds; i++)
			close(fds[i]);
		answer(c);
		drop_client(sv, c);
	}
	for (size_t i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
	free(agent_exe);
	sandbox_spec_done(&spec);
}

static int
listen_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return NEG_ERRNO();
	(void)unlink(path);
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0 ? NEG_ERRNO()
	                                                                               : 0;
	umask(old);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

static void
say_progress(const char *line)
{
	log_info("%s", line);
}

int
cmd_vm_service(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'}, {"share", required_argument, NULL, 'S'},
	    {"memory", required_argument, NULL, 'm'}, {"vm-image", required_argument, NULL, 'i'},
	    {"debug", no_argument, NULL, 'd'},        {"help", no_argument, NULL, 'h'},
	    {"accel", required_argument, NULL, 'a'},  {NULL, 0, NULL, 0}};
	const char *socket_path = NULL, *image_opt = NULL;
	struct vm_share shares[SANDBOX_MAX_MOUNTS];
	char *share_paths[SANDBOX_MAX_MOUNTS] = {0};
	size_t n_shares = 0;
	uint64_t memory = 1ULL << 30;
	bool debug = false;
	enum vm_accel accel = VM_ACCEL_AUTO;
	int c, status = SANDBOX_EXIT_SETUP;

	log_set_prefix("clawbox vm-service");
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			socket_path = optarg;
			break;
		case 'S': {
			if (n_shares >= SANDBOX_MAX_MOUNTS)
				return log_error("--share: at most %d", SANDBOX_MAX_MOUNTS), 2;
			char *p = strdup(optarg);
			size_t len = p ? strlen(p) : 0;
			bool rw = len > 3 && strcmp(p + len - 3, ":rw") == 0;
			if (rw)
				p[len - 3] = '\0';
			share_paths[n_shares] = p;
			shares[n_shares++] = (struct vm_share){p, rw};
			break;
		}
		case 'm':
			if (parse_size(optarg, &memory) < 0 || memory < (256ULL << 20))
				return log_error("--memory %s: expected a size of 256M or more",
				                 optarg),
				       2;
			break;
		case 'i':
			image_opt = optarg;
			break;
		case 'a':
			if (vm_accel_parse(optarg, &accel) < 0)
				return log_error("--accel %s: expected auto, kvm or tcg", optarg),
				       2;
			break;
		case 'd':
			debug = true;
			log_set_debug(true);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!socket_path || optind != argc) {
		log_error("%s",
		          !socket_path ? "--socket PATH is required" : "unexpected arguments");
		return 2;
	}
	char image[PATH_MAX];
	vm_default_image(image_opt, image, sizeof(image));

	signal(SIGPIPE, SIG_IGN);
	_cleanup_close_ int sig_fd = stop_signals_fd(NULL);
	_cleanup_close_ int lfd = listen_socket(socket_path);
	if (lfd < 0) {
		log_error("--socket %s: %s", socket_path, strerror(-lfd));
		goto out;
	}
	struct vm_config cfg = {.image = image,
	                        .memory = memory,
	                        .shares = shares,
	                        .n_shares = n_shares,
	                        .debug = debug,
	                        .sig_fd = sig_fd,
	                        .accel = accel,
	                        .progress = say_progress}; /* a service's log: always */
	struct service sv = {0};
	char why[SANDBOX_MSG_MAX];
	bool stop = false;
	while (!stop) {
		int r = vm_start(&sv.vm, &cfg, why, sizeof(why));
		if (r == -EINTR) {
			stop = true;
			break;
		}
		if (r < 0) {
			log_error("%s", why);
			break;
		}
		sv.vm.on_done = on_done;
		sv.vm.user = &sv;
		if (sv.vm.note[0]) {
			log_warn("%s", sv.vm.note);
			cfg.accel = VM_ACCEL_TCG; /* the next boot need not find out again */
		}
		log_info("ready: the VM (kernel %s, %s) takes runs on %s", sv.vm.kernel,
		         sv.vm.kvm ? "KVM" : "TCG", socket_path);
		while (!stop && !sv.vm.mux.broken) {
			struct pollfd p[MUX_CONNS_MAX + 2 + CLIENTS_MAX];
			size_t nv = vm_pollfds(&sv.vm, p, MUX_CONNS_MAX + 1), n = nv;
			p[n++] = (struct pollfd){.fd = sig_fd, .events = POLLIN};
			p[n++] = (struct pollfd){.fd = sv.n_clients < CLIENTS_MAX ? lfd : -1,
			                         .events = POLLIN};
			size_t first = n;
			struct client *polled[CLIENTS_MAX];
			for (size_t i = 0; i < sv.n_clients; i++) {
				polled[i] = sv.clients[i];
				p[n++] = (struct pollfd){
				    .fd = sv.clients[i]->gone ? -1 : sv.clients[i]->fd,
				    .events = POLLIN};
			}
			if (poll(p, n, -1) < 0)
				continue;
			if (p[nv].revents & POLLIN) {
				log_info("stopping");
				stop = true;
				break;
			}
			for (size_t i = 0; i < n - first; i++) {
				struct client *cl = polled[i];
				if (!(p[first + i].revents & (POLLIN | POLLHUP | POLLERR)))
					continue;
				if (!cl->busy) {
					take_request(&sv, cl);
				} else {
					/* A client speaks once: anything more is its hang-up. */
					vm_cancel(&sv.vm, &cl->job);
					cl->gone = true;
				}
			}
			if (p[nv + 1].revents & POLLIN) {
				int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
				struct client *cl = fd >= 0 ? calloc(1, sizeof(*cl)) : NULL;
				if (cl) {
					cl->fd = fd;
					cl->job.proxy_sock = -1;
					sv.clients[sv.n_clients++] = cl;
				} else if (fd >= 0) {
					close(fd);
				}
			}
			(void)vm_dispatch(&sv.vm, p, nv);
		}
		if (!stop)
			log_warn("the VM ended; booting a new one");
		while (sv.n_clients > 0)
			drop_client(&sv, sv.clients[sv.n_clients - 1]);
		vm_stop(&sv.vm);
	}
	status = stop ? 0 : SANDBOX_EXIT_SETUP;
	(void)unlink(socket_path);
out:
	for (size_t i = 0; i < n_shares; i++)
		free(share_paths[i]);
	return status;
}
