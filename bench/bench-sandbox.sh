#!/bin/bash
# bench-sandbox.sh: sandbox start and teardown for /bin/true, clawbox against bubblewrap in the
# same run, interleaved (one run of each in turn). The budget: clawbox's median no
# slower than bwrap's, while doing more (cgroups, seccomp, landlock, masked /proc, a pid-1
# init, a time namespace).
#
# bwrap runs as a dedicated uid: run as root it would map the sandbox to host uid 0.
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-300}
mkdir -p build/bench
cc -O2 -o build/bench/spawn-time bench/spawn-time.c
UID_SANDBOX=65533
chmod 755 . 2>/dev/null || true

bwrap_cmd=(bwrap --unshare-all --die-with-parent --ro-bind /usr /usr --symlink usr/bin /bin
	--symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/sbin /sbin
	--proc /proc --dev /dev --tmpfs /tmp /bin/true)

names=("plain fork+exec of /bin/true (no sandbox)" "bwrap --unshare-all (as uid $UID_SANDBOX)")
cmds=(/bin/true ::: -u "$UID_SANDBOX" "${bwrap_cmd[@]}")
if [ "$(id -u)" = 0 ]; then
	names+=("clawbox run (root: cgroups, all layers)" "clawbox run (as uid $UID_SANDBOX: rlimits)")
	cmds+=(::: ./clawbox run -- /bin/true ::: -u "$UID_SANDBOX" ./clawbox run -- /bin/true)
else
	names+=("clawbox run (this user)")
	cmds+=(::: ./clawbox run -- /bin/true)
fi

echo "sandbox start + teardown of /bin/true: $RUNS runs each, interleaved, $(nproc) cores"
printf '%-46s %11s %11s\n' "" "median" "p95"
mapfile -t results < <(build/bench/spawn-time -n "$RUNS" -- "${cmds[@]}")
for i in "${!names[@]}"; do
	read -r med p95 <<<"${results[$i]}"
	printf '%-46s %8s ms %8s ms\n' "${names[$i]}" "$med" "$p95"
done
bw_med=$(cut -d' ' -f1 <<<"${results[1]}")
cb_med=$(cut -d' ' -f1 <<<"${results[2]}")
ratio=$(awk -v a="$cb_med" -v b="$bw_med" 'BEGIN { printf "%.2f", a / b }')
echo "ratio clawbox/bwrap (median): $ratio  (budget: <= 1.00)"
if awk -v r="$ratio" 'BEGIN { exit !(r <= 1.0) }'; then echo "budget: met"; else echo "budget: MISSED"; fi
. bench/targets.sh
target "clawbox run -- /bin/true, x bwrap's median (issue 15)" "$ratio" x 0.80
