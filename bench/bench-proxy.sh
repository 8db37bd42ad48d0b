#!/bin/bash
# bench-proxy.sh: what the egress proxy costs. Request latency through clawbox-proxy against
# the same request made directly, on loopback, interleaved; and throughput of a 100 MiB
# transfer through a CONNECT tunnel. Budgets (the proxy issue): under 1 ms added median
# latency; over 500 MB/s through a tunnel.
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-300}
MIB=${MIB:-100}
mkdir -p build/bench
cc -O2 -o build/bench/proxy-bench bench/proxy-bench.c
build/tests/httpd 127.0.0.1 0 bench >build/bench/httpd.port &
HTTPD=$!
trap 'kill $HTTPD 2>/dev/null' EXIT
for _ in $(seq 50); do [ -s build/bench/httpd.port ] && break; sleep 0.05; done
PORT=$(cat build/bench/httpd.port)

build/bench/proxy-bench ./clawbox-proxy "$PORT" "$RUNS" "$MIB" >build/bench/proxy.out
read -r _ d_med d_p95 < <(grep ^direct build/bench/proxy.out)
read -r _ p_med p_p95 < <(grep ^proxied build/bench/proxy.out)
read -r _ mib mbs < <(grep ^tunnel build/bench/proxy.out)
read -r _ dmib dmbs < <(grep ^direct-transfer build/bench/proxy.out)
added=$(awk -v a="$p_med" -v b="$d_med" 'BEGIN { printf "%.3f", a - b }')
echo
echo "egress proxy: $RUNS requests each, interleaved, loopback"
printf '%-34s %8s ms %8s ms\n' "" median p95 | sed 's/ ms / /; s/ ms$//'
printf '%-34s %8s ms %8s ms\n' "direct to the server" "$d_med" "$d_p95"
printf '%-34s %8s ms %8s ms\n' "through clawbox-proxy" "$p_med" "$p_p95"
echo "added median latency: $added ms (budget: < 1 ms)"
echo "transfer of $mib MiB: $dmbs MB/s directly, $mbs MB/s through a CONNECT tunnel (budget: > 500 MB/s)"
