#!/bin/bash
# test-harden-api.sh: what an attack on the daemon's API found (issue 18): DNS rebinding (a
# foreign Host with a valid token), requests two parsers read differently, a queue without a
# cap, terminal escapes stored raw, and idle connections that exhaust the descriptors. Each
# refused with a clear status and nothing stored; under the connection flood the daemon keeps
# answering (/healthz p99 under 200 ms), its log stays small and a message posted meanwhile is
# answered afterwards. Floods are bounded in count and time, on loopback only.
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
KEY=sk-ant-test-HARDEN-3333

cat >"$WORK/scenario.json" <<'JSON'
{"turns": [], "default": {"reply": {"echo": true}, "delay_ms": 1500}}
JSON
"$FAKE" --scenario "$WORK/scenario.json" --log "$WORK/model.log" --port-file "$WORK/mport" \
	--key "$KEY" --forbid "$KEY" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
PORT=$((20000 + RANDOM % 20000))
DATA=$WORK/data
cat >"$WORK/config.json" <<JSON
{"data_dir": "$DATA", "listen": "127.0.0.1:$PORT", "max_concurrent": 2,
 "limits": {"queue_per_group": 3, "queue_total": 4},
 "model": {"provider": "anthropic", "base_url": "http://127.0.0.1:$(cat "$WORK/mport")",
           "api_key_env": "MY_MODEL_KEY"},
 "groups": [{"id": "main", "main": true}, {"id": "a"}, {"id": "b"}, {"id": "c"}]}
JSON

start_daemon() { # [ulimit -n]
	(
		[ -n "${1:-}" ] && ulimit -n "$1"
		[ -n "${SOFT_NOFILE:-}" ] && ulimit -S -n "$SOFT_NOFILE"
		CLAWBOX_TEST_SPAWN_EMFILE=${SPAWN_EMFILE:-} MY_MODEL_KEY=$KEY exec "$CLAWBOX" serve --config "$WORK/config.json" \
			>>"$WORK/serve.out" 2>>"$WORK/serve.err"
	) &
	SPID=$!
	wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
	TOKEN=$(cat "$DATA/api-token" 2>/dev/null)
}
stop_daemon() {
	kill -TERM "$SPID" 2>/dev/null
	wait "$SPID" 2>/dev/null
	SPID=
}
code() { # curl args...: the status
	curl -s -o "$WORK/body" -w '%{http_code}' "$@"
}
raw() { # REQUEST (with \r\n escapes): the status line and body in $WORK/raw
	python3 - "$PORT" "$1" >"$WORK/raw" <<'PY'
import socket, sys
req = sys.argv[2].replace("\\r", "\r").replace("\\n", "\n").encode()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(req)
data = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
        if b"\r\n\r\n" in data and data.split(b"\r\n\r\n", 1)[1].endswith(b"\n"):
            break
except OSError:
    pass
text = data.decode("latin1")
print(text.split("\r\n", 1)[0])
print(text.split("\r\n\r\n", 1)[-1])
PY
}
count_in() { # GROUP: its incoming messages
	curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/groups/$1/messages?after=0" |
		grep -o '"direction":"in"' | wc -l
}

# The new keys are checked like every other one.
check_config() { # WANT-SUBSTRING JSON
	printf '%s' "$2" >"$WORK/bad.json"
	"$CLAWBOX" serve --config "$WORK/bad.json" --check-config >"$WORK/out" 2>"$WORK/err"
	local rc=$?
	if [ $rc = 2 ] && grep -qF -- "$1" "$WORK/err" && [ "$(wc -l <"$WORK/err")" = 1 ]; then
		ok "config error: $1"
	else
		not_ok "config error: $1 (exit $rc: $(cat "$WORK/err"))"
	fi
}
check_config 'limits.queue_per_group: expected a whole number' '{"limits": {"queue_per_group": 0}, "groups": [{"id": "m"}]}'
check_config 'limits.conections: unknown key' '{"limits": {"conections": 5}, "groups": [{"id": "m"}]}'
check_config 'limits: expected an object' '{"limits": 5, "groups": [{"id": "m"}]}'
check_config 'groups[0].tasks_may_schedule: expected true or false' '{"groups": [{"id": "m", "tasks_may_schedule": "yes"}]}'

start_daemon
U=http://127.0.0.1:$PORT

# ---- DNS rebinding: only the daemon's own address is served, before authentication ----
c=$(code -H "Host: evil.example:$PORT" -H "Authorization: Bearer $TOKEN" "$U/api/v1/groups")
check "a foreign Host with a valid token: refused ($c)" test "$c" = 421
c=$(code -H "Host: evil.example:$PORT" "$U/metrics")
check "/metrics with a foreign Host: refused ($c)" test "$c" = 421
c=$(code -H "Host: evil.example:$PORT" "$U/healthz")
check "/healthz with a foreign Host: refused ($c)" test "$c" = 421
c=$(code -H "Host: evil.example:$PORT" -H "Authorization: Bearer $TOKEN" --data '{"text":"x"}' "$U/api/v1/groups/a/messages")
check "a foreign Host cannot post ($c), and nothing is stored" sh -c "[ $c = 421 ] && [ $(count_in a) = 0 ]"
c=$(code -H "Host: 127.0.0.1:$((PORT + 1))" -H "Authorization: Bearer $TOKEN" "$U/api/v1/groups")
check "our address with another port: refused ($c)" test "$c" = 421
c=$(code -H "Authorization: Bearer $TOKEN" "$U/api/v1/groups")
check "the right Host works ($c)" test "$c" = 200
c=$(code -H "Host: localhost:$PORT" -H "Authorization: Bearer $TOKEN" "$U/api/v1/groups")
check "localhost:PORT works ($c)" test "$c" = 200
c=$(code -H "Host: localhost:$PORT" -H "Origin: http://localhost:$PORT" -H "Authorization: Bearer $TOKEN" "$U/api/v1/groups")
check "the page's own origin as localhost works ($c)" test "$c" = 200
c=$(code -H "Host: localhost:$PORT" -H "Origin: http://evil.example:$PORT" -H "Authorization: Bearer $TOKEN" "$U/api/v1/groups")
check "another origin is still refused ($c)" test "$c" = 403

# ---- ambiguous requests: 400, nothing stored ----
B='{"text":"hi"}'
H="Host: 127.0.0.1:$PORT\r\nAuthorization: Bearer $TOKEN"
ambiguous() { # DESCRIPTION REQUEST WANT-IN-BODY
	raw "$2"
	if grep -q '^HTTP/1.1 400' "$WORK/raw" && grep -q "$3" "$WORK/raw"; then
		ok "$1: 400"
	else
		not_ok "$1: $(head -c 200 "$WORK/raw" | tr '\n' ' ')"
	fi
}
ambiguous "two different Content-Length values" \
	"POST /api/v1/groups/a/messages HTTP/1.1\r\n$H\r\nContent-Length: 13\r\nContent-Length: 14\r\n\r\n$B" \
	"two different Content-Length"
ambiguous "Transfer-Encoding with a space before the colon" \
	"POST /api/v1/groups/a/messages HTTP/1.1\r\n$H\r\nTransfer-Encoding : chunked\r\nContent-Length: 13\r\n\r\n$B" \
	"white space"
ambiguous "two Authorization headers (a valid one first)" \
	"POST /api/v1/groups/a/messages HTTP/1.1\r\n$H\r\nAuthorization: Bearer x\r\nContent-Length: 13\r\n\r\n$B" \
	"more than one Authorization"
ambiguous "two Host headers" \
	"POST /api/v1/groups/a/messages HTTP/1.1\r\n$H\r\nHost: evil.example\r\nContent-Length: 13\r\n\r\n$B" \
	"more than one Host"
ambiguous "duplicate JSON keys" \
	"POST /api/v1/groups/a/messages HTTP/1.1\r\n$H\r\nContent-Length: 23\r\n\r\n{\"text\":\"a\",\"text\":\"b\"}" \
	"JSON object"
check "none of them stored anything" test "$(count_in a)" = 0
raw "POST /api/v1/groups/a/messages HTTP/1.1\r\n$H\r\nContent-Length: 13\r\n\r\n$B"
check "the same request, unambiguous, is accepted" grep -q '^HTTP/1.1 202' "$WORK/raw"

# ---- terminal controls are stripped at the API ----
c=$(code -H "Authorization: Bearer $TOKEN" --data-binary \
	'{"text": "line one\n\tline\u001b]0;owned\u0007 two\u009b2J", "sender": "ev\u001b[31mil\nname\t!"}' \
	"$U/api/v1/groups/b/messages")
curl -s -H "Authorization: Bearer $TOKEN" "$U/api/v1/groups/b/messages?after=0" >"$WORK/b.json"
check "a sender's name is stored without controls, newlines or tabs ($c)" \
	grep -q '"sender":"ev\[31milname!"' "$WORK/b.json"
check "message text keeps newlines and tabs, loses escapes" \
	grep -qF '"text":"line one\n\tline]0;owned two2J"' "$WORK/b.json"
c=$(code -H "Authorization: Bearer $TOKEN" --data '{"text": "x", "sender": "task:1"}' "$U/api/v1/groups/b/messages")
check "no client may pass for a task's firing (sender task:N): 400 ($c)" test "$c" = 400

# ---- queue caps: 429 with Retry-After, nothing stored ----
# The fake model takes 1.5 s a turn: c's first message runs, the rest wait. a's and b's
# messages are answered first, so that only c's count.
answered() { curl -s -H "Authorization: Bearer $TOKEN" "$U/api/v1/groups/$1/messages?after=0" | grep -q '"direction":"out"'; }
wait_until 30 answered a
wait_until 30 answered b
for i in 1 2 3; do
	code -H "Authorization: Bearer $TOKEN" --data "{\"text\":\"c$i\"}" "$U/api/v1/groups/c/messages" >/dev/null
done
c=$(curl -s -D "$WORK/headers" -o "$WORK/body" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
	--data '{"text":"c4"}' "$U/api/v1/groups/c/messages")
check "past the group's cap: 429 ($c)" sh -c "[ $c = 429 ] && grep -q 'queue_per_group' '$WORK/body'"
check "with Retry-After" grep -qi '^Retry-After: [0-9]' "$WORK/headers"
check "and the refused one is not stored" test "$(count_in c)" = 3
c=$(code -H "Authorization: Bearer $TOKEN" --data '{"text":"m1"}' "$U/api/v1/groups/main/messages")
c2=$(code -H "Authorization: Bearer $TOKEN" --data '{"text":"m2"}' "$U/api/v1/groups/main/messages")
check "past the total cap: 429 for another group too ($c $c2)" \
	sh -c "[ $c2 = 429 ] && grep -q 'queue_total' '$WORK/body'"
wait_until 30 sh -c "[ \$(curl -s -H 'Authorization: Bearer $TOKEN' '$U/api/v1/groups/c/messages?after=0' | grep -o '\"direction\":\"out\"' | wc -l) -ge 3 ]"
c=$(code -H "Authorization: Bearer $TOKEN" --data '{"text":"c5"}' "$U/api/v1/groups/c/messages")
check "once the queue drains, the group is served again ($c)" test "$c" = 202
stop_daemon

# ---- descriptor exhaustion: idle connections past the file limit ----
# The daemon with 256 descriptors: its caps come from that (room kept for runs). A flood of
# up to 1,100 idle connections for 8 s; meanwhile /healthz from other connections and a
# message posted during the flood.
: >"$WORK/serve.err"
start_daemon 256
check "the daemon runs with a soft limit of 256" \
	sh -c "grep -q '^Max open files *256 ' /proc/$SPID/limits"
python3 "$TOP/tests/integration/flood.py" "$PORT" 1100 8 >"$WORK/flood.out" &
FPID=$!
sleep 1.5 # the flood is on
c=$(code -H "Authorization: Bearer $TOKEN" --data '{"text":"during the flood"}' "$U/api/v1/groups/a/messages")
: >"$WORK/times"
for _ in $(seq 1 100); do
	curl -s -o /dev/null -m 5 -w '%{time_total} %{http_code}\n' "$U/healthz" >>"$WORK/times"
	sleep 0.03
done
fds=$(ls /proc/$SPID/fd | wc -l)
wait "$FPID"
opened=$(cat "$WORK/flood.out")
echo "# flood: $opened connections opened; daemon fds during it: $fds"
check "a message posted during the flood is accepted ($c)" test "$c" = 202
check "every /healthz during the flood answered 200" \
	test "$(grep -c ' 200$' "$WORK/times")" = 100
p99=$(sort -n "$WORK/times" | awk 'NR == 99 { print $1 }')
check "/healthz p99 under 200 ms during the flood (${p99}s)" awk "BEGIN { exit !($p99 < 0.2) }"
check "the daemon stayed under its file limit ($fds descriptors)" test "$fds" -lt 250
curl -s "$U/metrics" >"$WORK/metrics"
check "connections past the caps were closed (metrics)" \
	grep -q '^clawbox_http_connections_closed_by_cap_total [1-9]' "$WORK/metrics"
wait_until 30 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' '$U/api/v1/groups/a/messages?after=0' | grep -q 'echo: during the flood'"
check "the message posted during the flood is answered after it" \
	sh -c "curl -s -H 'Authorization: Bearer $TOKEN' '$U/api/v1/groups/a/messages?after=0' | grep -q 'echo: during the flood'"
size=$(stat -c %s "$WORK/serve.err")
check "the log stays small through the flood ($size bytes)" test "$size" -lt 20000
check "no 'Too many open files' loop in the log" \
	test "$(grep -c 'Too many open files' "$WORK/serve.err")" -lt 10
stop_daemon

# ---- accept errors: a daemon with 40 descriptors, flooded, pauses accepting instead of
# spinning on EMFILE (at most a line a second), and answers once the flood is over ----
: >"$WORK/serve.err"
start_daemon 40
python3 "$TOP/tests/integration/flood.py" "$PORT" 600 4 >"$WORK/flood.out" &
FPID=$!
wait "$FPID"
wait_until 10 curl -sf -o /dev/null "$U/healthz"
check "after the flood the daemon answers again" curl -sf -o /dev/null "$U/healthz"
pauses=$(grep -c 'cannot accept a connection: Too many open files; pausing' "$WORK/serve.err")
check "accept errors paused the listener, at most once a second ($pauses in 4 s)" \
	test "$pauses" -le 6
check "and the log stays small ($(stat -c %s "$WORK/serve.err") bytes)" \
	test "$(stat -c %s "$WORK/serve.err")" -lt 4000
stop_daemon

# ---- a start that fails for want of descriptors: the message waits, it does not fail ----
: >"$WORK/serve.err"
SOFT_NOFILE=256 SPAWN_EMFILE=3 start_daemon
read -r soft hard < <(awk '/^Max open files/ { print $4, $5 }' /proc/$SPID/limits)
check "started with a soft file limit of 256, the daemon raises it to the hard one ($soft/$hard)" \
	sh -c "[ '$soft' = '$hard' ] && [ '$soft' != 256 ]"
c=$(code -H "Authorization: Bearer $TOKEN" --data '{"text":"after EMFILE"}' "$U/api/v1/groups/main/messages")
wait_until 30 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' '$U/api/v1/groups/main/messages?after=0' | grep -q 'echo: after EMFILE'"
curl -s -H "Authorization: Bearer $TOKEN" "$U/api/v1/groups/main/messages?after=0" >"$WORK/main.json"
check "three starts failing with EMFILE: the message is answered after all ($c)" \
	grep -q '"text":"echo: after EMFILE"' "$WORK/main.json"
check "and never failed" sh -c "! grep -q 'could not be started' '$WORK/main.json'"
check "the waits are logged once (repeats counted, not written)" \
	test "$(grep -c 'cannot start the agent now (Too many open files): the message stays queued' "$WORK/serve.err")" = 1
stop_daemon

done_testing
