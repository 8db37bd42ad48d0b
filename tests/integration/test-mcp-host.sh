#!/bin/bash
# test-mcp-host.sh: `clawbox mcp-host` against a scripted JSON-RPC client (mcp-client.py) that
# also plays the daemon's host-action socket: every method, notifications, errors per JSON-RPC,
# malformed and oversized input, a local tool refused, the check against the one schema table.
. "$(dirname "$0")/lib.sh"

python3 "$TOP/tests/integration/mcp-client.py" "$CLAWBOX" "$WORK" >"$WORK/results" 2>&1
while read -r verdict rest; do
	if [ "$verdict" = ok ]; then ok "mcp-host: $rest"; else not_ok "mcp-host: $verdict $rest"; fi
done <"$WORK/results"
check "the client finished every step ($(wc -l <"$WORK/results") lines)" test "$(wc -l <"$WORK/results")" -ge 18
expect_rc 2 "mcp-host with a stray argument is a usage error" mcp-host extra
check "and says so in one line" test "$(wc -l <"$WORK/err")" = 1
done_testing
