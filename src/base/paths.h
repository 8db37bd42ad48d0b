/*
 * paths.h: where clawbox's own files are. Two questions, answered once for every executable:
 * where this executable's siblings and its installed data are (relative to the executable, so
 * that a build tree, `make install` into /usr/local and a DESTDIR copy all work), and which
 * per-user (XDG) or system folders hold configuration, data, state and cache.
 *
 * All return 0 or -errno and write buf only on success (NUL-terminated, -ENAMETOOLONG past
 * size).
 */
#ifndef CLAWBOX_PATHS_H
#define CLAWBOX_PATHS_H

#include <stdbool.h>
#include <stddef.h>

/* The folder this process's executable is in (/proc/self/exe, symlinks resolved). */
int self_dir(char *buf, size_t size);

/* The executable NAME next to this one (clawbox-proxy, clawbox-serve, clawbox); -ENOENT or
 * -EACCES when it is not there or not executable. */
int self_sibling(const char *name, char *buf, size_t size);

/* A data folder of clawbox's: for an installed executable (its folder is named "bin"),
 * PREFIX/lib/clawbox/INSTALLED; in the build tree, the executable's folder's TREE. */
int self_data_path(const char *installed, const char *tree, char *buf, size_t size);

enum xdg_kind { XDG_CONFIG, XDG_DATA, XDG_STATE, XDG_CACHE };

/* clawbox's folder of that kind: $XDG_*_HOME/clawbox when that is absolute, else under
 * $HOME (~/.config, ~/.local/share, ~/.local/state, ~/.cache). Root whose HOME is unset,
 * empty or "/" (a system service, sudo -H, a container) gets the system folders instead:
 * /etc/clawbox, /var/lib/clawbox, /var/lib/clawbox/state, /var/cache/clawbox. Another user
 * with no usable HOME: -ENOENT. */
int xdg_dir(enum xdg_kind kind, char *buf, size_t size);

/* `--version`: if argv[1] is "--version", prints "NAME VERSION" on stdout and returns true. */
bool version_asked(int argc, char **argv, const char *name);

#endif
