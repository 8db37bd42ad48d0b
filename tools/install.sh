#!/bin/sh
# install.sh install|uninstall: `make install` and `make uninstall` (the Makefile builds first;
# this only copies, so that a test can install what is built without rebuilding it).
#   DESTDIR (default empty) and PREFIX (default /usr/local) as in every GNU-style install;
#   BINDIR, MANDIR, ... derived from PREFIX. The executables find each other and the guest
#   relative to themselves (src/base/paths.c): PREFIX/bin/clawbox* and PREFIX/lib/clawbox/vm.
# Installs the three executables, the microVM guest when it is built (make guest), the man
# pages (build/man, made by tools/mkman.sh), bash and zsh completions, and the systemd units
# (system and user) with BINDIR filled in. Uninstall removes exactly those files and
# clawbox's own folders.
set -eu
cd "$(dirname "$0")/.."
action=${1:-install}
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
BINDIR=${BINDIR:-$PREFIX/bin}
LIBDIR=${LIBDIR:-$PREFIX/lib}
MANDIR=${MANDIR:-$PREFIX/share/man}
BASHCOMPDIR=${BASHCOMPDIR:-$PREFIX/share/bash-completion/completions}
ZSHCOMPDIR=${ZSHCOMPDIR:-$PREFIX/share/zsh/site-functions}
UNITDIR=${UNITDIR:-$LIBDIR/systemd/system}
USERUNITDIR=${USERUNITDIR:-$LIBDIR/systemd/user}

case $PREFIX in
/*) ;;
*) echo "install.sh: PREFIX must be an absolute path, not '$PREFIX'" >&2; exit 2 ;;
esac
# The executables look for the guest in BINDIR/../lib/clawbox: keep them together.
if [ "$BINDIR" != "$PREFIX/bin" ] || [ "$LIBDIR" != "$PREFIX/lib" ]; then
	echo "install.sh: BINDIR and LIBDIR must be PREFIX/bin and PREFIX/lib (the programs find" \
		"each other and the guest relative to themselves)" >&2
	exit 2
fi

# "SOURCE DEST MODE" lines: the whole list, for install and uninstall alike.
files() {
	for exe in clawbox clawbox-proxy clawbox-serve clawbox-channel; do
		echo "$exe $BINDIR/$exe 0755"
	done
	for f in vmlinux initramfs.cpio; do
		[ -f build/vm/$f ] || [ "$action" = uninstall ] && echo "build/vm/$f $LIBDIR/clawbox/vm/$f 0644"
	done
	echo "tools/env-build.sh $LIBDIR/clawbox/env-build.sh 0755" # group environments' builds
	for m in build/man/*.1; do
		[ -f "$m" ] && echo "$m $MANDIR/man1/${m##*/} 0644"
	done
	echo "dist/completion/clawbox.bash $BASHCOMPDIR/clawbox 0644"
	echo "dist/completion/_clawbox $ZSHCOMPDIR/_clawbox 0644"
	echo "dist/systemd/system/clawbox.service.in $UNITDIR/clawbox.service 0644"
	echo "dist/systemd/user/clawbox.service.in $USERUNITDIR/clawbox.service 0644"
}

case $action in
install)
	for exe in clawbox clawbox-proxy clawbox-serve clawbox-channel; do
		[ -x $exe ] || { echo "install.sh: $exe is not built (run make)" >&2; exit 1; }
	done
	ls build/man/clawbox.1 >/dev/null 2>&1 ||
		{ echo "install.sh: the man pages are not built (make man)" >&2; exit 1; }
	files | while read -r src dest mode; do
		mkdir -p "$DESTDIR${dest%/*}"
		case $src in
		*.in) sed "s|@BINDIR@|$BINDIR|g" "$src" >"$DESTDIR$dest" && chmod "$mode" "$DESTDIR$dest" ;;
		*) install -m "$mode" "$src" "$DESTDIR$dest" ;;
		esac
		echo "  INSTALL $DESTDIR$dest"
	done
	;;
uninstall)
	# The man pages by name: the build folder may be gone by now.
	rm -f "$DESTDIR$MANDIR"/man1/clawbox.1 "$DESTDIR$MANDIR"/man1/clawbox-*.1
	files | while read -r src dest mode; do
		rm -f "$DESTDIR$dest"
	done
	rmdir "$DESTDIR$LIBDIR/clawbox/vm" "$DESTDIR$LIBDIR/clawbox" 2>/dev/null || true
	echo "  UNINSTALL $DESTDIR$PREFIX"
	;;
*)
	echo "usage: install.sh install|uninstall" >&2
	exit 2
	;;
esac
