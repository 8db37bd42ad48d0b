#!/bin/bash
# test-background.sh: services inside one run, as background jobs of the bash tool
# (run_in_background). The fake model scripts the tool calls (scenario background-services):
# Debian's real redis-server and postgres started, a table made and queried in later tool
# calls over the sandbox's own loopback and unix sockets in /tmp, postgres's shared memory in
# the sandbox's /dev/shm. When the run ends nothing of it is left: no process, no /dev/shm
# segment on the host, no cgroup. Also the jobs' bounds (scenario background-bounds): at most
# 8 at a time, a job that fails at once is reported as failed, and a foreground call whose
# setsid'd child holds its stdout does not hang.
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
KEY=sk-ant-test-SECRET-4242
MPID=
trap 'stop_model; cleanup_work' EXIT

start_model() {
	stop_model
	MLOG=$WORK/model-$1.log
	rm -f "$WORK/mport"
	"$FAKE" --scenario "$TOP/tests/data/scenarios/$1.json" --log "$MLOG" \
		--port-file "$WORK/mport" --key "$KEY" 2>"$WORK/fake.err" &
	MPID=$!
	wait_until 5 test -s "$WORK/mport" || echo "# the fake model did not start: $(cat "$WORK/fake.err")"
	MPORT=$(cat "$WORK/mport" 2>/dev/null)
}
stop_model() {
	[ -n "$MPID" ] && kill "$MPID" 2>/dev/null && wait "$MPID" 2>/dev/null
	MPID=
}
# ask ARGS...: one `clawbox ask`; RC as run_cb. While it runs, its launcher (the child that
# names the sandbox's cgroups after its pid) and that one's clawbox-init are noted in
# LAUNCHER and INIT: other suites' sandboxes may run at the same time on this machine, and
# what this run leaves is told from theirs by these pids.
ask() {
	local apid k
	WS=$WORK/ws.$RANDOM$RANDOM
	mkdir -p "$WS"
	is_root && chown "$SANDBOX_HOST_UID:$SANDBOX_HOST_UID" "$WS"
	(cd "$WS" && ANTHROPIC_API_KEY=$KEY exec "$CLAWBOX" ask --session "$WORK/s.$RANDOM" \
		--base-url "http://127.0.0.1:$MPORT" "$@" >"$WORK/out" 2>"$WORK/err" </dev/null) &
	apid=$!
	LAUNCHER= INIT=
	for _ in $(seq 200); do
		for k in $(cat /proc/$apid/task/*/children 2>/dev/null); do
			[ -d /sys/fs/cgroup/pids/clawbox-run-$k ] && LAUNCHER=$k
		done
		[ -n "$LAUNCHER" ] && INIT=$(for k in $(cat /proc/$LAUNCHER/task/*/children 2>/dev/null); do
			[ "$(cat /proc/$k/comm 2>/dev/null)" = clawbox-init ] && echo $k; done)
		[ -n "$INIT" ] && break
		sleep 0.02
	done
	wait $apid
	RC=$?
}
# run_left: nothing of the last ask's sandbox is left (its cgroups, its init).
run_left() {
	[ -n "$LAUNCHER" ] && [ -n "$INIT" ] || { echo "# the run's launcher and init were not seen"; return 1; }
	ls -d /sys/fs/cgroup/*/clawbox-run-$LAUNCHER /sys/fs/cgroup/clawbox-run-$LAUNCHER 2>/dev/null && return 1
	! kill -0 "$INIT" 2>/dev/null
}
# model_ok N: the fake model got N requests and each matched what the scenario expects.
model_ok() {
	local n
	n=$(wc -l <"$MLOG" 2>/dev/null || echo 0)
	if [ "$n" != "$1" ] || grep -q '"ok":false' "$MLOG"; then
		echo "# model log: $n requests (want $1): $(grep -o '"failures":\[[^]]*\]' "$MLOG" | grep -v '\[\]' | head -3 | tr '\n' ' ')"
		return 1
	fi
}
why() { echo "exit $RC; stdout: $(head -c 300 "$WORK/out" | tr '\n' ' '); stderr: $(tail -c 600 "$WORK/err" | tr '\n' ' ')"; }

shm_count() { find /dev/shm -maxdepth 1 -name 'PostgreSQL*' | wc -l; }
shm_before=$(shm_count)

# ---- redis and postgres across tool calls of one run ----
start_model background-services
t0=$(date +%s)
ask -v --max-time 600 "start the databases"
dt=$(($(date +%s) - t0))
check "redis and postgres started, written and queried across six tool calls ($dt s; $(why))" \
	sh -c "[ $RC = 0 ] && grep -q 'Both databases answer' '$WORK/out'"
check "every request was as the scenario expects" model_ok 7
check "no redis-server or postgres of the run is left" \
	bash -c "! pgrep -f 'redis-serve[r] 127.0.0.1:6380|postgre[s] -D /tmp/pg' >/dev/null"
check "no /dev/shm segment on the host" \
	test "$(shm_count)" = "$shm_before"
check "no cgroup or init of the sandbox is left" run_left

# ---- the bounds ----
start_model background-bounds
ask -v "bounds"
check "eight jobs run, the ninth is refused, a failed start is an error, & does not hang ($(why))" \
	sh -c "[ $RC = 0 ] && grep -q 'bounds hold' '$WORK/out'"
check "every request was as the scenario expects" model_ok 5
check "no background sleep is left" bash -c "! pgrep -f 'sleep 40[.]5' >/dev/null"
check "and no cgroup or init of the sandbox" run_left

echo "1..$T_NUM"
[ "$T_FAILED" = 0 ]
