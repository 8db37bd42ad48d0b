#!/bin/bash
# bench-sandbox.sh: sandbox start and teardown for /bin/true, clawbox against bubblewrap in the
# same run. The budget (DESIGN.md): clawbox's median no slower than bwrap's, while doing more
# (cgroups, seccomp, landlock, masked /proc, a pid-1 init).
#
# bwrap runs as a dedicated uid: run as root it would map the sandbox to host uid 0.
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-300}
mkdir -p build/bench
cc -O2 -o build/bench/spawn-time bench/spawn-time.c
T=build/bench/spawn-time
UID_SANDBOX=65533
chmod 755 . 2>/dev/null || true

bwrap_cmd=(bwrap --unshare-all --die-with-parent --ro-bind /usr /usr --symlink usr/bin /bin
	--symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/sbin /sbin
	--proc /proc --dev /dev --tmpfs /tmp /bin/true)

row() { # name median p95
	printf '%-44s %8s ms %8s ms\n' "$1" "$2" "$3"
}

echo "sandbox start + teardown of /bin/true, $RUNS runs each (after warm-up), $(nproc) cores"
printf '%-44s %11s %11s\n' "" "median" "p95"
read -r base_med base_p95 < <($T -n "$RUNS" -- /bin/true)
row "plain fork+exec (no sandbox)" "$base_med" "$base_p95"
read -r bw_med bw_p95 < <($T -n "$RUNS" -u $UID_SANDBOX -- "${bwrap_cmd[@]}")
row "bwrap --unshare-all (as uid $UID_SANDBOX)" "$bw_med" "$bw_p95"
if [ "$(id -u)" = 0 ]; then
	read -r cb_med cb_p95 < <($T -n "$RUNS" -- ./clawbox run -- /bin/true)
	row "clawbox run (root: cgroups v1, all layers)" "$cb_med" "$cb_p95"
	read -r cu_med cu_p95 < <($T -n "$RUNS" -u $UID_SANDBOX -- ./clawbox run -- /bin/true)
	row "clawbox run (as uid $UID_SANDBOX: rlimit fallback)" "$cu_med" "$cu_p95"
else
	read -r cb_med cb_p95 < <($T -n "$RUNS" -- ./clawbox run -- /bin/true)
	row "clawbox run (this user)" "$cb_med" "$cb_p95"
fi
ratio=$(awk -v a="$cb_med" -v b="$bw_med" 'BEGIN { printf "%.2f", a / b }')
echo "ratio clawbox/bwrap (median): $ratio  (budget: <= 1.00)"
awk -v r="$ratio" 'BEGIN { exit !(r <= 1.0) }' && echo "budget: met" || echo "budget: MISSED"
