/*
 * test-paths.c: where clawbox's files are (src/base/paths.c): the XDG folders and the system
 * folders for root without a usable HOME; the siblings and the installed data folder relative
 * to the executable; and the VM's boot deadline, scaled by accelerator and load (vm-host.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "paths.h"
#include "tap.h"
#include "vm-host.h"

static const char *
dir_of(enum xdg_kind kind)
{
	static char buf[4096];
	return xdg_dir(kind, buf, sizeof(buf)) == 0 ? buf : "(error)";
}

int
main(int argc, char **argv)
{
	(void)argc;
	unsetenv("XDG_CONFIG_HOME");
	unsetenv("XDG_DATA_HOME");
	unsetenv("XDG_STATE_HOME");
	unsetenv("XDG_CACHE_HOME");
	setenv("HOME", "/home/ana", 1);
	ok(strcmp(dir_of(XDG_CONFIG), "/home/ana/.config/clawbox") == 0, "HOME: ~/.config/clawbox");
	ok(strcmp(dir_of(XDG_DATA), "/home/ana/.local/share/clawbox") == 0,
	   "HOME: ~/.local/share/clawbox");
	ok(strcmp(dir_of(XDG_STATE), "/home/ana/.local/state/clawbox") == 0,
	   "HOME: ~/.local/state/clawbox");
	ok(strcmp(dir_of(XDG_CACHE), "/home/ana/.cache/clawbox") == 0, "HOME: ~/.cache/clawbox");
	setenv("XDG_DATA_HOME", "/srv/data", 1);
	setenv("XDG_CONFIG_HOME", "/srv/cfg", 1);
	ok(strcmp(dir_of(XDG_DATA), "/srv/data/clawbox") == 0, "XDG_DATA_HOME is honoured");
	ok(strcmp(dir_of(XDG_CONFIG), "/srv/cfg/clawbox") == 0, "XDG_CONFIG_HOME is honoured");
	setenv("XDG_DATA_HOME", "relative/data", 1);
	ok(strcmp(dir_of(XDG_DATA), "/home/ana/.local/share/clawbox") == 0,
	   "a relative XDG_DATA_HOME is ignored, as the spec says");
	unsetenv("XDG_DATA_HOME");
	unsetenv("XDG_CONFIG_HOME");
	bool root = geteuid() == 0;
	unsetenv("HOME");
	ok(strcmp(dir_of(XDG_DATA), root ? "/var/lib/clawbox" : "(error)") == 0, "HOME unset: %s",
	   root ? "root gets /var/lib/clawbox" : "no data folder");
	ok(strcmp(dir_of(XDG_CONFIG), root ? "/etc/clawbox" : "(error)") == 0, "HOME unset: %s",
	   root ? "root gets /etc/clawbox" : "no configuration folder");
	setenv("HOME", "/", 1);
	ok(strcmp(dir_of(XDG_DATA), root ? "/var/lib/clawbox" : "(error)") == 0,
	   "HOME=/ counts as unset (no /.local at the root of the file system)");
	setenv("HOME", "", 1);
	ok(strcmp(dir_of(XDG_CACHE), root ? "/var/cache/clawbox" : "(error)") == 0,
	   "HOME empty counts as unset");
	setenv("XDG_STATE_HOME", "/run/st", 1);
	ok(strcmp(dir_of(XDG_STATE), "/run/st/clawbox") == 0, "XDG_STATE_HOME wins over no HOME");
	char small[8];
	setenv("HOME", "/home/ana", 1);
	ok(xdg_dir(XDG_CONFIG, small, sizeof(small)) == -ENAMETOOLONG,
	   "too small a buffer: -ENAMETOOLONG");

	/* Relative to this test binary (BUILD/tests/, not a bin folder). */
	char dir[4096], buf[4096], want[4096];
	char *real = realpath(argv[0], NULL);
	char *slash = real ? strrchr(real, '/') : NULL;
	if (slash)
		*slash = '\0';
	snprintf(want, sizeof(want), "%s", real ? real : "?");
	free(real);
	ok(self_dir(dir, sizeof(dir)) == 0 && strcmp(dir, want) == 0,
	   "self_dir: this executable's folder (%s)", dir);
	ok(self_data_path("vm", "build/vm", buf, sizeof(buf)) == 0 &&
	       strcmp(buf + strlen(dir), "/build/vm") == 0,
	   "not in a bin folder: the build tree's path (%s)", buf);
	ok(self_sibling("test-paths", buf, sizeof(buf)) == 0,
	   "self_sibling finds an executable beside");
	ok(self_sibling("no-such-sibling", buf, sizeof(buf)) == -ENOENT,
	   "self_sibling: -ENOENT when it is not there");

	/* The boot deadline: the accelerator's base, times the load per CPU within [1, 4]. */
	ok(vm_ready_ms(false, 0.2, 2) == VM_READY_TCG_MS, "TCG, idle: the base (%d ms)",
	   vm_ready_ms(false, 0.2, 2));
	ok(vm_ready_ms(true, 0.2, 2) == VM_READY_KVM_MS && VM_READY_KVM_MS < VM_READY_TCG_MS,
	   "KVM: a shorter deadline than TCG");
	ok(vm_ready_ms(false, 5.0, 2) == VM_READY_TCG_MS * 5 / 2,
	   "TCG, load 5 on 2 CPUs: 2.5 times the base (%d ms)", vm_ready_ms(false, 5.0, 2));
	ok(vm_ready_ms(false, 100.0, 2) == VM_READY_TCG_MS * 4, "an absurd load: at most 4 times");
	ok(vm_ready_ms(false, 3.0, 0) == VM_READY_TCG_MS, "no CPU count: the base");
	return tap_done();
}
