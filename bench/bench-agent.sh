#!/bin/bash
# bench-agent.sh: what one `clawbox ask` costs beyond the model's own time. The fake model
# answers at once, so the whole wall time of an invocation is overhead: the egress proxy, the
# sandbox, the agent's start, one model round trip through the proxy, the transcript, the
# teardown. Interleaved with the sandbox alone (`clawbox run -- /bin/true`) and the sandbox
# with its proxy, to show where the time goes. Budgets (the agent issue): under 20 ms median;
# the agent's peak RSS under 10 MiB.
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-200}
WARMUP=10
mkdir -p build/bench
cc -O2 -o build/bench/spawn-time bench/spawn-time.c
W=$(mktemp -d /tmp/clawbox-bench-agent.XXXXXX)
chmod 755 "$W"
trap 'kill $MPID 2>/dev/null; rm -rf "$W"' EXIT

# One turn per request: enough for the warm-up, the runs and the RSS check.
{
	echo '{"turns": ['
	for i in $(seq $((RUNS + WARMUP + 5))); do
		echo '{"reply": {"text": "ok", "usage": {"input_tokens": 1500, "output_tokens": 1}}},'
	done
	echo '{"reply": {"text": "ok"}}]}'
} >"$W/scenario.json"
build/tests/fake-model --scenario "$W/scenario.json" --log "$W/model.log" --port-file "$W/port" &
MPID=$!
for _ in $(seq 50); do [ -s "$W/port" ] && break; sleep 0.05; done
PORT=$(cat "$W/port")
mkdir -p "$W/ws"
export ANTHROPIC_API_KEY=bench-key

ask=(./clawbox ask --workspace "$W/ws" --session "$W/session" --new
	--base-url "http://127.0.0.1:$PORT" "say ok")
mapfile -t results < <(build/bench/spawn-time -n "$RUNS" -w "$WARMUP" -- \
	./clawbox run -- /bin/true ::: \
	./clawbox run --model-upstream "http://127.0.0.1:$PORT" --model-key-env ANTHROPIC_API_KEY \
	-- /bin/true ::: \
	"${ask[@]}")
read -r sb_med sb_p95 <<<"${results[0]}"
read -r px_med px_p95 <<<"${results[1]}"
read -r ask_med ask_p95 <<<"${results[2]}"
rss=$(./clawbox ask -v "${ask[@]:2}" 2>&1 >/dev/null | sed -n 's/.*agent peak RSS \([0-9]*\) KiB.*/\1/p')

echo
echo "clawbox ask: $RUNS invocations, interleaved; the fake model answers at once"
printf '%-44s %8s %8s\n' "" "median" "p95"
printf '%-44s %6s ms %5s ms\n' "sandbox alone (run -- /bin/true)" "$sb_med" "$sb_p95"
printf '%-44s %6s ms %5s ms\n' "sandbox + egress proxy" "$px_med" "$px_p95"
printf '%-44s %6s ms %5s ms\n' "ask: proxy, sandbox, agent, one model turn" "$ask_med" "$ask_p95"
echo "overhead beyond model time: $ask_med ms median (budget: < 20 ms)"
echo "agent peak RSS: $rss KiB (budget: < 10240 KiB)"
