#!/bin/sh
# deps.sh: make sure the Debian packages a target needs are installed.
#   scripts/deps.sh build   - compiler side: pkg-config, libseccomp-dev (build time only)
#   scripts/deps.sh test    - what `make check` drives besides our binaries
#   scripts/deps.sh bench   - bubblewrap, the peer we are measured against
# pkg-config (or dpkg for tools) decides what is missing; as root it is installed with
# apt-get and named on stdout; otherwise the missing packages are named and we fail.
set -eu

want=""
need_pkg() { # $1 = Debian package, $2 = check command
	if ! sh -c "$2" >/dev/null 2>&1; then want="$want $1"; fi
}

case "${1:-build}" in
build)
	need_pkg pkg-config "command -v pkg-config"
	need_pkg libseccomp-dev "pkg-config --exists libseccomp"
	need_pkg libc6-dev "test -f /usr/lib/x86_64-linux-gnu/libc.a || test -f /usr/lib/libc.a"
	# the agent (in clawbox, statically) and the egress proxy
	need_pkg libjansson-dev "pkg-config --exists jansson"
	need_pkg libhttp-parser-dev "test -f /usr/include/http_parser.h"
	# the egress proxy (clawbox-proxy) only
	need_pkg libevent-dev "pkg-config --exists libevent"
	need_pkg libidn2-dev "pkg-config --exists libidn2"
	need_pkg libcurl4-openssl-dev "pkg-config --exists libcurl"
	;;
test)
	need_pkg util-linux "command -v setpriv"
	need_pkg procps "command -v pgrep"
	need_pkg curl "command -v curl"
	need_pkg openssl "command -v openssl"
	need_pkg iproute2 "command -v ip"
	need_pkg chromium "command -v chromium"
	# the microVM layer: a VMM, a guest kernel, the tools that build its initramfs
	need_pkg qemu-system-x86 "command -v qemu-system-x86_64"
	need_pkg linux-image-amd64 "ls /boot/vmlinuz-* >/dev/null 2>&1"
	need_pkg cpio "command -v cpio"
	need_pkg xz-utils "command -v xz"
	# test-envs.sh: a local Debian repository, npm registry and PyPI index
	need_pkg dpkg-dev "command -v dpkg-scanpackages"
	need_pkg npm "command -v npm"
	need_pkg python3-venv "/usr/bin/python3 -c 'import ensurepip'"
	;;
bench)
	need_pkg bubblewrap "command -v bwrap"
	;;
*)
	echo "usage: deps.sh build|test|bench" >&2
	exit 2
	;;
esac

[ -z "$want" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing Debian packages:$want (install them as root: apt-get install$want)" >&2
	exit 1
fi
echo "deps.sh: installing$want"
if ! apt-get install -y -q --no-install-recommends $want >/dev/null 2>&1; then
	apt-get update -q >/dev/null 2>&1 || true
	apt-get install -y -q --no-install-recommends $want >/dev/null
fi
