#!/bin/bash
# test-hostsock.sh: the host-action socket under attack by its own run. A prompt-injected
# agent (scripted by the fake model) runs the probe against the socket mounted into its
# sandbox: oversized requests, more connections than a run may hold, 60,000 empty lines,
# garbage, overlong lines, requests past the run's cap. Each kind of refusal is audited once and
# the rest counted into one row; a connection that errs is closed and frees its slot; the
# daemon answers /healthz promptly throughout (it wrote one fsync'd row per line before).
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
KEY=sk-ant-test-HOSTSOCK-3333

"$FAKE" --scenario "$TOP/tests/data/scenarios/host-flood.json" --log "$WORK/model.log" \
	--port-file "$WORK/mport" --key "$KEY" --forbid "$KEY" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
PORT=$((20000 + RANDOM % 20000))
DATA=$WORK/data
cat >"$WORK/config.json" <<JSON
{"data_dir": "$DATA", "listen": "127.0.0.1:$PORT",
 "model": {"provider": "anthropic", "base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "groups": [{"id": "main", "main": true}, {"id": "flood"}]}
JSON
mkdir -p "$DATA/groups/flood"
cp "$PROBE" "$DATA/groups/flood/probe"
chmod 755 "$DATA/groups/flood/probe"
is_root && chown -R "$SANDBOX_HOST_UID:$SANDBOX_HOST_UID" "$DATA/groups"
chmod 700 "$DATA" "$DATA/groups" 2>/dev/null

ANTHROPIC_API_KEY=$KEY "$CLAWBOX" serve --config "$WORK/config.json" >"$WORK/serve.out" 2>"$WORK/serve.err" &
SPID=$!
wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
TOKEN=$(cat "$DATA/api-token")
auth=(-H "Authorization: Bearer $TOKEN")
curl -s "${auth[@]}" --data-binary '{"text": "flood the socket"}' \
	"http://127.0.0.1:$PORT/api/v1/groups/flood/messages" -o /dev/null

# /healthz back to back while the run floods its socket (bounded: 90 s).
: >"$WORK/times"
for i in $(seq 9000); do
	curl -s -o /dev/null -w '%{time_total}\n' --max-time 20 "http://127.0.0.1:$PORT/healthz" >>"$WORK/times"
	[ $((i % 10)) = 0 ] || continue
	curl -s "${auth[@]}" "http://127.0.0.1:$PORT/api/v1/groups/flood/messages" | grep -q 'flood done' && break
done
check "the flooding run ended" sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/flood/messages' | grep -q 'flood done'"
check "every request to the model was as scripted (the probe saw what it expected)" \
	sh -c "[ \$(grep -c '\"ok\":true' '$WORK/model.log') = 3 ] && ! grep -q '\"ok\":false' '$WORK/model.log'"
n=$(wc -l <"$WORK/times")
p99=$(sort -n "$WORK/times" | awk -v n="$n" 'NR == int(n * 0.99 + 0.999) {print}')
check "/healthz answered in under 200 ms p99 during the flood ($n probes, p99 $p99 s)" \
	awk -v n="$n" -v p="$p99" 'BEGIN {exit !(n >= 10 && p < 0.2)}'

curl -s "${auth[@]}" "http://127.0.0.1:$PORT/api/v1/audit?after=0" >"$WORK/audit"
grep -o '{[^}]*"group":"flood","action":"host_action"[^}]*}' "$WORK/audit" >"$WORK/refusals"
check "a bounded number of refusal rows ($(wc -l <"$WORK/refusals"), at most 5)" \
	test "$(wc -l <"$WORK/refusals")" -le 5
for what in 'a request is one line of JSON' 'a request is at most 64 KiB' \
	'too many host actions in one run' 'too many host-action connections'; do
	check "audited once: $what" test "$(grep -c "$what" "$WORK/refusals")" = 1
done
check "the rest counted into one row" \
	grep -Eq '"reason":"refused [0-9]+ more: [0-9]+ not a request, [0-9]+ too large, [1-9][0-9]* past the cap, [1-9][0-9]* connections"' "$WORK/refusals"
more=$(grep -o '"reason":"refused [0-9]*' "$WORK/refusals" | grep -o '[0-9]*$')
check "which counts every refused connection and line read ($more)" test "${more:-0}" -ge 22
check "the run's 200 requests were decided and audited, no more" \
	test "$(grep -o '"group":"flood","action":"list_tasks","decision":"allow"' "$WORK/audit" | wc -l)" = 200

kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=
check_clean "nothing of any sandbox is left"
check "no host-action socket is left" sh -c "[ -z \"\$(ls -A '$DATA/run' 2>/dev/null)\" ]"
done_testing
