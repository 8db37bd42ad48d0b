#!/bin/bash
# bench-envs.sh: what a group environment costs (issue 12). 1) sandbox start + teardown of
# /bin/true with a package layer (its usr/ overlaid on /usr, the layer bound at
# /opt/clawbox-env) against the same without, interleaved in one run; budget: the layer adds
# < 0.5 ms median. 2) an environment build end to end, as the daemon runs it (a build sandbox,
# the egress proxy, tools/env-build.sh) of one .deb, one npm package and one wheel from
# loopback mirrors (tests/integration/env-mirror.sh).
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-300}
BUILDS=${BUILDS:-3}
mkdir -p build/bench
cc -O2 -o build/bench/spawn-time bench/spawn-time.c
W=$(mktemp -d /tmp/clawbox-bench-envs.XXXXXX)
chmod 755 "$W"
HPID=
trap '[ -n "$HPID" ] && kill $HPID 2>/dev/null; rm -rf "$W"' EXIT

L=$W/layer
mkdir -p "$L/usr/bin" "$L/npm/bin" "$L/venv/bin"
for i in $(seq 1 50); do printf '#!/bin/sh\necho %s\n' "$i" >"$L/usr/bin/tool-$i"; done
echo "sandbox start + teardown of /bin/true, with and without a layer: $RUNS runs each, interleaved, $(nproc) cores"
printf '%-46s %11s %11s\n' "" "median" "p95"
mapfile -t results < <(build/bench/spawn-time -n "$RUNS" -- ./clawbox run -- /bin/true \
	::: ./clawbox run --layer "$L" -- /bin/true)
names=("clawbox run" "clawbox run --layer (overlay on /usr)")
for i in 0 1; do
	read -r med p95 <<<"${results[$i]}"
	printf '%-46s %8s ms %8s ms\n' "${names[$i]}" "$med" "$p95"
done
added=$(awk -v a="$(cut -d' ' -f1 <<<"${results[1]}")" -v b="$(cut -d' ' -f1 <<<"${results[0]}")" \
	'BEGIN { printf "%.3f", a - b }')
echo "the layer adds (median): $added ms  (budget: < 0.5 ms)"
if awk -v r="$added" 'BEGIN { exit !(r < 0.5) }'; then echo "budget: met"; else echo "budget: MISSED"; fi

PORT=$((20000 + RANDOM % 20000))
tests/integration/env-mirror.sh "$W/mirror" "$PORT" $((PORT + 1))
/usr/bin/python3 -m http.server --bind 127.0.0.1 "$PORT" --directory "$W/mirror" >/dev/null 2>&1 &
HPID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/deb/Packages" -o /dev/null && break; sleep 0.05; done
times=()
for b in $(seq 1 "$BUILDS"); do
	out=$W/build-$b
	mkdir "$out"
	[ "$(id -u)" = 0 ] && chown 65533:65533 "$out"
	t0=$(date +%s%N)
	./clawbox run --allow "127.0.0.1:$PORT" --mount "$out:/opt/clawbox-env:rw" \
		--mount "$PWD/tools/env-build.sh:/tmp/env-build.sh" \
		--mount /var/lib/dpkg/status:/var/lib/dpkg/status --timeout 300 --memory 1G --pids 512 \
		--env "CLAWBOX_APT_SOURCE=deb [trusted=yes] http://127.0.0.1:$PORT/deb ./" \
		--env "CLAWBOX_NPM_REGISTRY=http://127.0.0.1:$PORT/npm-meta/" \
		--env "CLAWBOX_PIP_INDEX=http://127.0.0.1:$PORT/pypi/simple/" \
		-- /bin/sh /tmp/env-build.sh apt:clawbox-hello npm:clawbox-hello-npm pip:clawbox-hello-py \
		>"$W/build.log" 2>&1 || { echo "build failed:"; tail -5 "$W/build.log"; exit 1; }
	t1=$(date +%s%N)
	times+=($(((t1 - t0) / 1000000)))
done
med=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
echo "environment build, one .deb + npm + wheel from loopback mirrors: median $med ms of $BUILDS (${times[*]} ms), layer $(du -sh "$W/build-1" | cut -f1)"
