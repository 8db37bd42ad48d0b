#!/bin/bash
# test-resources.sh: limits hold and the host stays responsive: fork bomb, memory bomb, CPU
# quota, timeout; and nothing is left behind after any of them, nor after SIGKILL of the
# launcher itself.
. "$(dirname "$0")/lib.sh"

P=(--mount "$PROBE_DIR:/probe")

# Fork bomb: stopped by the pids limit, quickly.
start=$(date +%s)
run_cb run "${P[@]}" --pids 64 --timeout 60 -- /probe/probe forkbomb
forks=$(sed -n 's/^forks \([0-9]*\) stopped.*/\1/p' "$WORK/out")
check "fork bomb stopped by --pids 64 (after ${forks:-?} forks, exit $RC)" \
	sh -c "[ -n '$forks' ] && [ '$forks' -lt 64 ] && [ '$RC' = 0 ]"
check "fork bomb over within 20 s" test $(($(date +%s) - start)) -lt 20
check "host still starts processes after the fork bomb" /bin/true
check_clean "nothing left behind after the fork bomb"

# Default pids limit (256) holds without any option.
run_cb run "${P[@]}" --timeout 60 -- /probe/probe forkbomb
forks=$(sed -n 's/^forks \([0-9]*\) stopped.*/\1/p' "$WORK/out")
check "default pids limit holds (${forks:-?} forks)" sh -c "[ -n '$forks' ] && [ '$forks' -lt 256 ]"

# Memory bomb: the OOM killer ends it inside the sandbox, exit 137.
expect_rc 137 "memory bomb under --memory 64M is OOM-killed" run "${P[@]}" --memory 64M --timeout 60 -- /probe/probe membomb
check "the OOM kill is said in one line with the limit" \
	sh -c "[ \"\$(cat '$WORK/err')\" = 'clawbox run: out of memory (limit 64M)' ]"
expect_rc 137 "a SIGKILL that is no OOM kill" run -- sh -c 'kill -KILL $$'
check "is not called one" test ! -s "$WORK/err"
check_clean "nothing left behind after the OOM kill"
# A tmpfs file counts against memory too: /tmp is sized to the limit.
run_cb run --memory 32M --timeout 60 -- sh -c 'head -c 100000000 /dev/zero >/tmp/big'
check "filling /tmp cannot exceed the memory limit (exit $RC)" test "$RC" != 0

# CPU quota: --cpus 0.2 gets about a fifth of a core.
run_cb run "${P[@]}" --cpus 0.2 -- /probe/probe spin 1500
limited=$(sed -n 's/^cpu_ms //p' "$WORK/out")
run_cb run "${P[@]}" -- /probe/probe spin 1500
free=$(sed -n 's/^cpu_ms //p' "$WORK/out")
# A quota of 0.2 allows about 300 ms of CPU in 1500 ms; unthrottled, the loop gets what the
# machine has. Compared with each other rather than with fixed numbers, so a busy moment on
# the host cannot fail the test while a missing quota still does.
check "--cpus 0.2 throttles (${limited:-?} ms of CPU in 1500 ms)" sh -c "[ -n '$limited' ] && [ '$limited' -le 600 ]"
check "without --cpus the same loop gets at least twice as much (${free:-?} ms)" \
	sh -c "[ -n '$free' ] && [ -n '$limited' ] && [ '$free' -ge \$(( $limited * 2 )) ]"

# Timeout: the whole tree dies, exit 124, with a line saying so.
start=$(date +%s%N)
expect_rc 124 "--timeout 1 kills a sleeping tree" run --timeout 1 -- sh -c 'sleep 60 & sleep 60 & wait'
elapsed=$((($(date +%s%N) - start) / 1000000))
check "timeout acted within 3 s (${elapsed} ms)" test $elapsed -lt 3000
check "timeout says so on stderr" grep -q "timed out" "$WORK/err"
expect_rc 124 "fractional --timeout 0.3" run --timeout 0.3 -- sleep 10
check_clean "nothing left behind after the timeout"

# A command that ignores SIGTERM and daemonizes still goes with its sandbox.
expect_rc 0 "background children do not outlive the command" run -- sh -c '(trap "" TERM HUP; sleep 60) & exit 0'
check_clean "no leftover after a daemonizing command"

# SIGKILL of the launcher itself: the sandbox dies and the watchdog removes the cgroups.
"$CLAWBOX" run -- sleep 60 &
launcher=$!
running_init() { ps -eo stat=,comm= | awk '$2 == "clawbox-init" && $1 !~ /^Z/' | grep -q .; }
wait_until 5 running_init
check "sandbox running before the SIGKILL" running_init
kill -KILL $launcher
wait $launcher 2>/dev/null
check "after SIGKILL of clawbox run: nothing left within 3 s" wait_until 3 no_leftovers

# SIGKILL at any moment of set-up, above all while the watchdog is making the cgroups (it
# once left them behind when nobody was there to read its result).
for i in $(seq 0 39); do
	"$CLAWBOX" run -- true &
	launcher=$!
	[ $((i % 4)) != 0 ] && sleep "0.00$((i % 10))"
	kill -KILL $launcher 2>/dev/null
	wait $launcher 2>/dev/null
done
check "SIGKILL at 40 points of set-up: nothing left within 3 s" wait_until 3 no_leftovers

# Limits as a normal user on a host without a delegated cgroup: rlimits hold the bombs.
if is_root; then
	NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
	"${NOBODY[@]}" "$CLAWBOX" run "${P[@]}" --pids 64 --timeout 60 -- /probe/probe forkbomb \
		>"$WORK/out" 2>"$WORK/err"
	forks=$(sed -n 's/^forks \([0-9]*\) stopped.*/\1/p' "$WORK/out")
	check "unprivileged: fork bomb stopped by the rlimit fallback (${forks:-?})" \
		sh -c "[ -n '$forks' ] && [ '$forks' -lt 64 ]"
	"${NOBODY[@]}" "$CLAWBOX" run "${P[@]}" --memory 64M --timeout 60 -- /probe/probe membomb \
		>"$WORK/out" 2>"$WORK/err"
	rc=$?
	check "unprivileged: memory bomb stopped by the rlimit fallback (exit $rc)" \
		sh -c "[ $rc = 3 ] || [ $rc = 137 ]"
	check_clean "nothing left behind after the unprivileged bombs"
fi

done_testing
