/*
 * vmservice.c: the daemon's "vm": one `clawbox vm-service` child, the long-lived microVM in
 * which every run's sandbox is made (issue 6). Its shares are the folders runs mount: the
 * groups' and sessions' folders, the global memory, and the groups' configured mounts; the
 * daemon's own database and host-action sockets stay out of the VM. If the service ends, it
 * is started again; a run that was in the VM when it died ends with 75 and its message goes
 * back to the queue (runner.c).
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon.h"
#include "idmap.h"
#include "log.h"
#include "macro.h"

#define ARGS_MAX (16 + 2 * CONFIG_MAX_GROUPS * CONFIG_MAX_MOUNTS)

/* DATA/name, made if need be; shared: qemu, which serves it, runs as the sandboxes' user. */
static int
ensure_dir(const char *data, const char *name, bool shared, char *buf, size_t size)
{
	if (snprintf(buf, size, "%s/%s", data, name) >= (int)size)
		return -ENAMETOOLONG;
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return NEG_ERRNO();
	/* Where the file system can idmap, qemu's sandbox sees the owner's folder as its own. */
	if (shared && geteuid() == 0 && idmap_supported(buf) != 1 && chown(buf, 65533, 65533) < 0)
		return NEG_ERRNO();
	return 0;
}

int
vm_service_start(struct daemon *d)
{
	if (!d->cfg.vm.on)
		return 0;
	static char groups[PATH_MAX + 8], sessions[PATH_MAX + 8], global[PATH_MAX + 8], memory[32],
	    shares[CONFIG_MAX_GROUPS * CONFIG_MAX_MOUNTS][PATH_MAX + 8];
	const char *argv[ARGS_MAX];
	size_t n = 0;
	int r;
	snprintf(d->vm_socket, sizeof(d->vm_socket), "%s/run/vm.sock", d->cfg.data_dir);
	char run[PATH_MAX], dir[PATH_MAX];
	if ((r = ensure_dir(d->cfg.data_dir, "run", false, run, sizeof(run))) < 0 ||
	    (r = ensure_dir(d->cfg.data_dir, "groups", true, dir, sizeof(dir))) < 0 ||
	    (r = ensure_dir(d->cfg.data_dir, "sessions", true, dir, sizeof(dir))) < 0)
		return log_error("vm: the data folders: %s", strerror(-r)), r;
	snprintf(groups, sizeof(groups), "%s/groups:rw", d->cfg.data_dir);
	snprintf(sessions, sizeof(sessions), "%s/sessions:rw", d->cfg.data_dir);
	argv[n++] = d->clawbox;
	argv[n++] = "vm-service";
	argv[n++] = "--socket";
	argv[n++] = d->vm_socket;
	argv[n++] = "--share";
	argv[n++] = groups;
	argv[n++] = "--share";
	argv[n++] = sessions;
	snprintf(global, sizeof(global), "%s/global", d->cfg.data_dir);
	struct stat st;
	if (stat(global, &st) == 0 && S_ISDIR(st.st_mode)) {
		argv[n++] = "--share";
		argv[n++] = global;
	}
	/* The groups' own mounts, as configured (each run still checks its own at start). */
	size_t k = 0;
	for (size_t g = 0; g < d->cfg.n_groups; g++) {
		for (size_t i = 0; i < d->cfg.groups[g].n_mounts; i++) {
			const __typeof__(d->cfg.groups[g].mounts[i]) *m =
			    &d->cfg.groups[g].mounts[i];
			char real[PATH_MAX];
			if (!realpath(m->host, real) || k >= ARRAY_SIZE(shares) || n + 3 > ARGS_MAX)
				continue;
			snprintf(shares[k], sizeof(shares[k]), "%s%s", real, m->rw ? ":rw" : "");
			argv[n++] = "--share";
			argv[n++] = shares[k++];
		}
	}
	if (d->cfg.vm.image[0]) {
		argv[n++] = "--vm-image";
		argv[n++] = d->cfg.vm.image;
	}
	if (d->cfg.vm.accel[0]) {
		argv[n++] = "--accel";
		argv[n++] = d->cfg.vm.accel;
	}
	snprintf(memory, sizeof(memory), "%lluM", (unsigned long long)(d->cfg.vm.memory >> 20));
	argv[n++] = "--memory";
	argv[n++] = memory;
	argv[n] = NULL;

	/* The daemon's stdio (its log), and none of its environment but the basics: HOME
	 * holds the KVM fallback's memory. */
	char *envp[8];
	daemon_environment(d, false, envp, ARRAY_SIZE(envp));
	pid_t pid = daemon_spawn(argv, envp, 0, 1, 2);
	if (pid < 0)
		return log_error("vm: cannot start the VM service: %s", strerror(-pid)), pid;
	d->vm_pid = pid;
	d->vm_started = time(NULL);
	log_info("vm: the VM service (pid %d) boots the sandboxes' VM; runs wait for it", (int)pid);
	return 0;
}

static void
restart(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct daemon *d = arg;
	if (!d->stopping && d->vm_pid <= 0)
		(void)vm_service_start(d);
}

bool
vm_service_reaped(struct daemon *d, pid_t pid, int status)
{
	if (pid != d->vm_pid || pid <= 0)
		return false;
	d->vm_pid = -1;
	if (d->stopping)
		return true;
	/* Started again after a pause that doubles while it keeps ending soon (a VM that
	 * cannot boot), up to a minute; one that ran a while is restarted after a second. */
	time_t now = time(NULL);
	d->vm_backoff = now - d->vm_started > 120 || d->vm_backoff == 0 ? 1
	                : d->vm_backoff >= 32                           ? 60
	                                                                : d->vm_backoff * 2;
	log_warn("vm: the VM service ended (%s %d); starting it again in %d s",
	         WIFEXITED(status) ? "exit" : "signal",
	         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), d->vm_backoff);
	if (!d->vm_timer)
		d->vm_timer = evtimer_new(d->base, restart, d);
	struct timeval tv = {.tv_sec = d->vm_backoff};
	if (d->vm_timer)
		evtimer_add(d->vm_timer, &tv);
	return true;
}

void
vm_service_stop(struct daemon *d)
{
	if (d->vm_timer) {
		event_free(d->vm_timer);
		d->vm_timer = NULL;
	}
	if (d->vm_pid <= 0)
		return;
	kill(d->vm_pid, SIGTERM);
	for (int i = 0; i < 100; i++) {
		if (waitpid(d->vm_pid, NULL, WNOHANG) == d->vm_pid) {
			d->vm_pid = -1;
			return;
		}
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	kill(d->vm_pid, SIGKILL);
	(void)waitpid(d->vm_pid, NULL, 0);
	d->vm_pid = -1;
}
