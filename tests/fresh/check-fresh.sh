#!/bin/bash
# check-fresh.sh: `make check-fresh`. Builds the project the way a new user on a minimal Debian 12
# would, to catch a build that only passes because this machine has more packages than theirs.
#
# A `debootstrap --variant=minbase bookworm` tree is made once and kept, untouched, as
# build/fresh/base (the stamp file says it is complete). Each run copies it to a scratch tree,
# copies the repository's tracked files in (git ls-files), binds /proc, /sys and /dev, and runs
# in a chroot exactly what the README's first command runs, minus starting the daemon:
#   apt-get update && apt-get install -y make gcc && make all
# then checks that the three executables exist and answer --version, and that scripts/deps.sh
# installs what is missing where the package lists are empty. Nothing else is installed
# in the tree: what the build needs beyond make and gcc, scripts/deps.sh must install itself.
# Mounts are undone on every path (trap). Needs root and debootstrap (scripts/deps.sh test).
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
cache=${CLAWBOX_FRESH_CACHE:-$top/build/fresh}
base=$cache/base
work=$cache/work

fail() {
	echo "check-fresh: FAIL: $*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || fail "needs root (debootstrap and chroot)"
command -v debootstrap >/dev/null || fail "debootstrap is missing (scripts/deps.sh test installs it)"

# The mirror this machine's apt uses (deb822 sources first, then the one-line format).
mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null |
	grep -v security | head -n1 || true)
if [ -z "$mirror" ]; then
	mirror=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' \
		/etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

mounted=()
child=
# in_chroot LOG SCRIPT: runs SCRIPT in the tree with a clean environment, in a process group of
# its own, so that a Ctrl-C or a kill of this script ends the build too (cleanup, below).
in_chroot() {
	local log=$1 rc=0
	setsid chroot "$work" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		DEBIAN_FRONTEND=noninteractive $extra_ca sh -c "$2" >"$log" 2>&1 </dev/null &
	child=$!
	wait "$child" || rc=$?
	child=
	return "$rc"
}
cleanup() {
	local i
	if [ -n "$child" ]; then
		kill -TERM -- "-$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
		umount -l "${mounted[i]}" 2>/dev/null || true
	done
	mounted=()
	# A bind mount still in place would make rm -rf reach the host's /dev or /proc: never
	# delete the scratch tree unless nothing is mounted under it.
	if [ -d "$work" ] && ! grep -q " $work/" /proc/self/mounts; then
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$(date +%s)
if [ ! -f "$cache/base.stamp" ]; then
	echo "check-fresh: debootstrap --variant=minbase bookworm from $mirror (once; kept in $base)"
	rm -rf "$base"
	mkdir -p "$cache"
	if ! debootstrap --variant=minbase bookworm "$base" "$mirror" >"$cache/debootstrap.log" 2>&1; then
		tail -n 20 "$cache/debootstrap.log" >&2
		fail "debootstrap failed (log: $cache/debootstrap.log)"
	fi
	# The base keeps no package lists: the README's command must work where they are empty.
	rm -rf "$base"/var/lib/apt/lists/* "$base"/var/cache/apt/*.bin
	touch "$cache/base.stamp"
fi
t1=$(date +%s)

rm -rf "$work"
cp -a "$base" "$work"
[ -z "$(find "$work/var/lib/apt/lists" -mindepth 1 -maxdepth 1 ! -name partial ! -name lock 2>/dev/null)" ] ||
	fail "the base tree has package lists; it is not pristine"
mkdir -p "$work/src/clawbox"
git ls-files -z | (cd "$top" && xargs -0 cp -a --parents -t "$work/src/clawbox")
cp /etc/resolv.conf "$work/etc/resolv.conf"
# The machine's network, not its packages: where the host trusts extra CAs for the registries
# (NODE_EXTRA_CA_CERTS, as a TLS-intercepting egress needs), the tree's npm trusts them too,
# as npm on a user's machine on that network would be set up.
extra_ca=
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
	cp "$NODE_EXTRA_CA_CERTS" "$work/etc/clawbox-host-extra-ca.crt"
	extra_ca=NODE_EXTRA_CA_CERTS=/etc/clawbox-host-extra-ca.crt
fi
for m in proc sys dev; do
	mount --rbind "/$m" "$work/$m"
	mount --make-rslave "$work/$m"
	mounted+=("$work/$m")
done

# The README's first command without `./clawbox serve` (make serve = make all, then serve).
readme_cmd='apt-get update && apt-get install -y make gcc && make all'
grep -q '^apt-get update && apt-get install -y make gcc && make serve' README.md ||
	fail "README.md's first command is not 'apt-get update && apt-get install -y make gcc && make serve'"
echo "check-fresh: in a minimal bookworm: $readme_cmd"
if ! in_chroot "$cache/build.log" "cd /src/clawbox && $readme_cmd"; then
	tail -n 30 "$cache/build.log" >&2
	fail "the README's build failed on a fresh Debian 12 (log: $cache/build.log)"
fi
for exe in clawbox clawbox-proxy clawbox-serve; do
	[ -x "$work/src/clawbox/$exe" ] || fail "$exe was not built (log: $cache/build.log)"
	v=$(chroot "$work" "/src/clawbox/$exe" --version 2>&1) ||
		fail "$exe --version failed in the fresh tree: $v"
	case "$v" in
	"$exe "[0-9]*) ;;
	*) fail "$exe --version printed '$v'" ;;
	esac
	echo "check-fresh: $v"
done
# scripts/deps.sh on a machine whose package lists are empty (a fresh image, a container):
# it must fetch them before it can install anything.
if ! in_chroot "$cache/deps.log" 'apt-get purge -y -q libsqlite3-dev >/dev/null &&
	rm -rf /var/lib/apt/lists/* && cd /src/clawbox && scripts/deps.sh build &&
	pkg-config --exists sqlite3'; then
	cat "$cache/deps.log" >&2
	fail "scripts/deps.sh build did not install libsqlite3-dev with empty package lists"
fi
grep -q 'the package lists are empty: apt-get update' "$cache/deps.log" ||
	fail "scripts/deps.sh did not say it fetched the empty package lists (log: $cache/deps.log)"
echo "check-fresh: scripts/deps.sh build with empty package lists: $(grep installing "$cache/deps.log")"
t2=$(date +%s)
echo "check-fresh: ok (base tree $((t1 - t0)) s, build $((t2 - t1)) s)"
