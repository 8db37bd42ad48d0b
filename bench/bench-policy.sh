#!/bin/bash
# bench-policy.sh: the cost of the policy check on a host action (approvals_gate() against a
# real store, its audit rows kept as the daemon keeps them), median and p95 over 20,000
# decisions each: allowed on the group itself, asked and allowed by an approver's "always"
# rule, refused as not granted. The project's budget: under 0.1 ms each. Then the proxy's check
# on each request (test-proxy-egress --bench): the egress verdict of a tainted run over 32
# rules and the allowlist's request rules over 64 entries, as decide() makes them before any
# lookup.
set -eu
cd "$(dirname "$0")/.."
build/tests/test-policy --bench | grep '^policy check'
build/tests/test-taint --bench | grep '^policy check' # a tainted run's, among 100 live runs
build/tests/test-proxy-egress --bench
