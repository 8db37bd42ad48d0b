#!/bin/bash
# test-syscalls.sh: every x86_64 syscall that Docker's default seccomp profile blocks is blocked
# inside the sandbox too. The list is derived from the profile by tools/gen-blocked-list.py and
# kept in tests/data, so nothing outside the repository is needed.
. "$(dirname "$0")/lib.sh"

LIST=$TOP/tests/data/docker-blocked-x86_64.txt
check "blocked-syscall list present and non-trivial" test "$(wc -l <"$LIST")" -ge 60

"$CLAWBOX" run --mount "$PROBE_DIR:/probe" --mount "$TOP/tests/data:/data" \
	-- /probe/probe syscalls /data/docker-blocked-x86_64.txt >"$WORK/tap" 2>"$WORK/err" </dev/null
relay_tap syscalls "$WORK/tap" $?
check "one result per listed syscall" \
	test "$(grep -c '^ok\|^not ok' "$WORK/tap")" = "$(wc -l <"$LIST")"

done_testing
