#!/bin/bash
# bench-policy.sh: the cost of the policy check on a host action (approvals_gate() against a
# real store, its audit rows kept as the daemon keeps them), median and p95 over 20,000
# decisions each: allowed on the group itself, asked and allowed by an approver's "always"
# rule, refused as not granted. The project's budget: under 0.1 ms each. (The per-request
# check in the proxy is the request rules' own, timed by bench-proxy.sh; egress approvals
# are not built.)
set -eu
cd "$(dirname "$0")/.."
build/tests/test-policy --bench | grep '^policy check'
