#!/bin/bash
# bench-intercept.sh: what TLS interception of a service host costs (tls-bench.c): an HTTPS
# GET directly, through a plain CONNECT tunnel of clawbox-proxy, intercepted by clawbox-proxy
# (a --service host), and through mitmproxy (Debian's mitmdump, the peer doing the same job),
# interleaved, each a fresh connection; then 100 MiB through each. The server is the tests'
# httpd in TLS mode, with a certificate from a CA made here. Budgets (issue 10): interception
# adds < 1 ms median over the tunnel, keeps > 500 MB/s, and beats mitmproxy on both.
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-200}
MIB=${MIB:-100}
B=build/bench/intercept
rm -rf "$B"
mkdir -p "$B"
# shellcheck disable=SC2046 # the flags are words
cc -O2 -o build/bench/tls-bench bench/tls-bench.c $(pkg-config --cflags --libs openssl)
PIDS=()
# shellcheck disable=SC2154 # p is the trap's own loop variable
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bench-ca -days 2 \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
	-keyout "$B/ca.key" -out "$B/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
	-keyout "$B/srv.key" -out "$B/srv.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$B/ext"
openssl x509 -req -in "$B/srv.csr" -CA "$B/ca.crt" -CAkey "$B/ca.key" -CAcreateserial -days 2 \
	-extfile "$B/ext" -out "$B/srv.crt" 2>/dev/null
for s in svc tun; do
	HTTPD_TLS_CERT=$B/srv.crt HTTPD_TLS_KEY=$B/srv.key build/tests/httpd 127.0.0.1 0 $s \
		>"$B/$s.port" &
	PIDS+=($!)
done
./clawbox-proxy --ca-dir "$B/cadir" --ca-init

MPORT=0
if command -v mitmdump >/dev/null; then
	MPORT=$((20000 + RANDOM % 20000))
	mitmdump -q --listen-host 127.0.0.1 -p "$MPORT" --set confdir="$PWD/$B/mitm" \
		--set ssl_verify_upstream_trusted_ca="$PWD/$B/ca.crt" --set stream_large_bodies=1m \
		>"$B/mitm.log" 2>&1 &
	PIDS+=($!)
fi
for _ in $(seq 200); do
	[ -s "$B/svc.port" ] && [ -s "$B/tun.port" ] &&
		{ [ "$MPORT" = 0 ] || { [ -s "$B/mitm/mitmproxy-ca-cert.pem" ] &&
			(exec 3<>/dev/tcp/127.0.0.1/$MPORT) 2>/dev/null; }; } && break
	sleep 0.1
done

build/bench/tls-bench ./clawbox-proxy "$B/cadir" "$B/ca.crt" "$(cat "$B/svc.port")" \
	"$(cat "$B/tun.port")" "$MPORT" "$B/mitm/mitmproxy-ca-cert.pem" "$RUNS" "$MIB" >"$B/out"
val() { awk -v k="$1" -v f="$2" '$1 == k { print $f }' "$B/out"; }
echo
echo "TLS interception: $RUNS HTTPS requests each, fresh connections, interleaved, loopback"
printf '%-36s %9s %9s %10s\n' "" "median ms" "p95 ms" "100 MiB"
for m in direct tunnel intercepted mitmproxy; do
	[ -n "$(val $m 2)" ] || continue
	printf '%-36s %9s %9s %7s MB/s\n' "$m" "$(val $m 2)" "$(val $m 3)" "$(val $m-transfer 3)"
done
added=$(awk '$1 == "intercepted" { i = $2 } $1 == "tunnel" { t = $2 } END { printf "%.3f", i - t }' "$B/out")
echo "interception adds $added ms median over a plain tunnel (budget: < 1 ms);" \
	"$(val intercepted-transfer 3) MB/s (budget: > 500 MB/s)"
[ "$MPORT" = 0 ] && echo "(mitmproxy not installed: apt-get install mitmproxy for the peer)"
exit 0
