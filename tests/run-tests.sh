#!/bin/bash
# run-tests.sh: runs the unit test binaries given as arguments and every
# tests/integration/test-*.sh (not with UNIT_ONLY=1), each printing TAP; prints each suite's result and closes with
# "N passed, N failed". Exits non-zero if anything failed.
#
# The integration suites need root, user namespaces, seccomp and cgroups, which these machines
# have: they never skip here. Run as a normal user, they run what a normal user can.
set -u
cd "$(dirname "$0")/.." || exit 1
pass=0
fail=0
logdir=build/test-logs
mkdir -p "$logdir"

run_suite() {
	local name=$1 log rc p f
	log="$logdir/$(basename "$1").log"
	shift
	"$@" >"$log" 2>&1
	rc=$?
	p=$(grep -c '^ok ' "$log")
	f=$(grep -c '^not ok ' "$log")
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		f=1 # crashed or exited non-zero without saying which check failed
		echo "not ok - $name exited $rc" >>"$log"
	fi
	if ! grep -q '^1\.\.[0-9]' "$log"; then
		f=$((f + 1))
		echo "not ok - $name printed no plan" >>"$log"
	fi
	pass=$((pass + p))
	fail=$((fail + f))
	printf '%-40s %4d passed, %d failed\n' "$name" "$p" "$f"
	if [ "$f" != 0 ]; then
		grep '^not ok' "$log" | sed 's/^/    /'
		echo "    (full log: $log)"
	fi
}

for t in "$@"; do
	run_suite "$t" "$t"
done
# UNIT_ONLY=1 (make unit): the unit tests and corpus replays alone.
if [ "${UNIT_ONLY:-0}" != 1 ]; then
	for t in tests/integration/test-*.sh; do
		run_suite "$t" bash "$t"
	done
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
