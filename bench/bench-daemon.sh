#!/bin/bash
# bench-daemon.sh: what the daemon adds. Message in to reply out through `clawbox serve`
# (`clawbox chat`: POST, then the answer streamed back), against `clawbox ask` alone, both
# with the fake model answering at once, interleaved. And the daemon's resident memory, idle
# and after 50 messages across 10 groups. The project's budgets: agent turn overhead under
# 20 ms median; daemon idle under 10 MiB.
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-100}
mkdir -p build/bench
cc -O2 -o build/bench/spawn-time bench/spawn-time.c
W=$(mktemp -d /tmp/clawbox-bench-daemon.XXXXXX)
chmod 755 "$W"
MPID= SPID=
trap 'kill $MPID $SPID 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT

echo '{"turns": [], "default": {"reply": {"echo": true}}}' >"$W/scenario.json"
build/tests/fake-model --scenario "$W/scenario.json" --log "$W/model.log" --port-file "$W/port" &
MPID=$!
for _ in $(seq 50); do [ -s "$W/port" ] && break; sleep 0.05; done
MPORT=$(cat "$W/port")
PORT=$((20000 + RANDOM % 20000))
{
	printf '{"data_dir": "%s/data", "listen": "127.0.0.1:%s", "max_concurrent": 4,\n' "$W" "$PORT"
	printf ' "model": {"base_url": "http://127.0.0.1:%s"},\n "groups": [{"id": "main", "main": true}' "$MPORT"
	for g in $(seq 1 10); do printf ', {"id": "g%s"}' "$g"; done
	printf ']}\n'
} >"$W/config.json"
./clawbox serve --config "$W/config.json" >"$W/serve.log" 2>&1 &
SPID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null && break; sleep 0.05; done
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$SPID/status"; }
hwm() { awk '/^VmHWM/ { print $2 }' "/proc/$SPID/status"; }
idle=$(rss)

mkdir -p "$W/ws"
printf 'hello\n' >"$W/line"
mapfile -t results < <(build/bench/spawn-time -n "$RUNS" -w 5 -- \
	sh -c "./clawbox chat --config '$W/config.json' main <'$W/line'" ::: \
	sh -c "./clawbox ask --workspace '$W/ws' --session '$W/session' --new --base-url http://127.0.0.1:$MPORT hello" ::: \
	sh -c "true")
read -r chat_med chat_p95 <<<"${results[0]}"
read -r ask_med ask_p95 <<<"${results[1]}"
read -r sh_med _ <<<"${results[2]}"

TOKEN=$(cat "$W/data/api-token")
# Message in -> the first model request out of the proxy: the POST's send time (the client's
# wall clock) against the fake model's at_us for that request, one message at a time.
first_req=$(python3 - "$PORT" "$TOKEN" "$W/model.log" 40 <<'PY'
import http.client, json, os, sys, time
port, token, log, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
ms = []
for i in range(n):
    size = os.path.getsize(log)
    body = json.dumps({"text": "first %d" % i})
    t0 = time.time()
    c.request("POST", "/api/v1/groups/g1/messages", body,
              {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    c.getresponse().read()
    for _ in range(2000):
        if os.path.getsize(log) > size:
            with open(log) as f:
                f.seek(size)
                line = f.readline()
            if line.endswith("\n"):
                ms.append(json.loads(line)["at_us"] / 1e3 - t0 * 1e3)
                break
        time.sleep(0.001)
    time.sleep(0.1)  # the run's end, before the next
ms.sort()
print("%.3f" % ms[len(ms) // 2] if ms else "")
PY
)
for i in 1 2 3 4 5; do
	for g in $(seq 1 10); do
		curl -s -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" --data "{\"text\": \"load $i\"}" \
			"http://127.0.0.1:$PORT/api/v1/groups/g$g/messages" &
	done
done
wait_answers() {
	for _ in $(seq 600); do
		q=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^clawbox_messages_queued / { print $2 }')
		a=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^clawbox_runs_active / { print $2 }')
		[ "$q" = 0 ] && [ "$a" = 0 ] && return 0
		sleep 0.05
	done
}
wait_answers
loaded=$(hwm)
after=$(rss)

overhead=$(awk -v a="$chat_med" -v b="$sh_med" 'BEGIN { printf "%.3f", a - b }')
added=$(awk -v a="$chat_med" -v b="$ask_med" 'BEGIN { printf "%.3f", a - b }')
echo
echo "clawbox serve: $RUNS messages, interleaved with clawbox ask; the fake model answers at once"
printf '%-46s %8s %8s\n' "" median p95
printf '%-46s %6s ms %5s ms\n' "message in -> reply out (clawbox chat)" "$chat_med" "$chat_p95"
printf '%-46s %6s ms %5s ms\n' "clawbox ask alone (no daemon)" "$ask_med" "$ask_p95"
echo "overhead beyond model time: $overhead ms median (budget: < 20 ms); the daemon adds $added ms to ask"
echo "daemon RSS: ${idle} KiB idle (budget: < 10240 KiB); ${loaded} KiB peak under 50 messages in 10 groups, ${after} KiB after"
# Issue 15's targets. Model time here is nil (the fake model answers at once); what remains
# beyond a bare `sh -c true` is the platform's. The p95 is the chat's p95 past sh's median.
. bench/targets.sh
p95_over=$(awk -v a="$chat_p95" -v b="$sh_med" 'BEGIN { printf "%.3f", a - b }')
ask_over=$(awk -v a="$ask_med" -v b="$sh_med" 'BEGIN { printf "%.3f", a - b }')
target "message in -> reply out beyond model time, median" "$overhead" ms 5
target "message in -> reply out beyond model time, p95" "$p95_over" ms 10
target "message in -> first model request out of the proxy" "$first_req" ms 3
target "clawbox ask, no daemon, beyond model time, median" "$ask_over" ms 8
target "daemon idle RSS (no pool, the proxy per run)" "$idle" KiB 10240
echo "warm pool: not built (issue 15's pool is not done): no idle memory or CPU to report"
