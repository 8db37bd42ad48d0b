#!/bin/bash
# bench-channels-ws.sh: Slack and Discord as channels (issue 14). Message in -> reply out
# through `clawbox serve` and each channel process, against the fake services of the tests
# (tests/integration/fake-slack.py, fake-discord.py: TLS on loopback) with the fake model
# answering at once, so what is measured is all beyond model time: the service's socket, the
# channel, the daemon, the run in its sandbox, the Web API call out. Then the resident
# memory of each channel process. One message at a time; RUNS of each.
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}
PY=/usr/bin/python3
W=$(mktemp -d /tmp/clawbox-bench-chanws.XXXXXX)
chmod 755 "$W"
MPID= SPID= FPIDS=
trap 'kill $MPID $SPID $FPIDS 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=test-ca -days 2 \
	-keyout "$W/ca.key" -out "$W/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
	-keyout "$W/srv.key" -out "$W/srv.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$W/ext"
openssl x509 -req -in "$W/srv.csr" -CA "$W/ca.crt" -CAkey "$W/ca.key" -CAcreateserial -days 2 \
	-extfile "$W/ext" -out "$W/srv.crt" 2>/dev/null
echo '{"turns": [], "default": {"reply": {"echo": true}}}' >"$W/scenario.json"
build/tests/fake-model --scenario "$W/scenario.json" --log "$W/model.log" --port-file "$W/mport" &
MPID=$!
$PY tests/integration/fake-slack.py --port-file "$W/sport" --log "$W/slack.log" --cert "$W/srv.crt" \
	--key "$W/srv.key" --app-token xapp-bench --bot-token xoxb-bench 2>/dev/null &
FPIDS=$!
$PY tests/integration/fake-discord.py --port-file "$W/dport" --log "$W/dc.log" --cert "$W/srv.crt" \
	--key "$W/srv.key" --token bench-token --heartbeat-ms 5000 2>/dev/null &
FPIDS="$FPIDS $!"
for _ in $(seq 100); do [ -s "$W/mport" ] && [ -s "$W/sport" ] && [ -s "$W/dport" ] && break; sleep 0.05; done
read -r SAPI _ <"$W/sport"
read -r DAPI _ <"$W/dport"
PORT=$((20000 + RANDOM % 20000))
cat >"$W/config.json" <<JSON
{"data_dir": "$W/data", "listen": "127.0.0.1:$PORT",
 "model": {"base_url": "http://127.0.0.1:$(cat "$W/mport")"},
 "groups": [{"id": "main", "main": true}, {"id": "dc"}],
 "channels": [{"name": "slack", "kind": "slack", "token_env": "BENCH_SLACK",
               "api_url": "https://127.0.0.1:$SAPI/api", "ca_file": "$W/ca.crt", "chats": {"D1": "main"}},
              {"name": "discord", "kind": "discord", "token_env": "BENCH_DISCORD",
               "api_url": "https://127.0.0.1:$DAPI/api/v10", "ca_file": "$W/ca.crt", "chats": {"555": "dc"}}]}
JSON
BENCH_SLACK="xapp-bench xoxb-bench" BENCH_DISCORD=bench-token ./clawbox serve --config "$W/config.json" \
	>"$W/serve.log" 2>&1 &
SPID=$!
for _ in $(seq 200); do
	[ "$(grep -c '"kind":"connect"' "$W/slack.log" "$W/dc.log" 2>/dev/null | grep -c ':1')" = 2 ] && break
	sleep 0.05
done
sleep 1
# One message at a time: the control POST's time (client wall clock) against the fake's
# record of the reply's post (the same clock, the same machine).
measure() { # KIND API_PORT LOG
	$PY - "$1" "$2" "$3" "$W/ca.crt" "$RUNS" <<'PY'
import json, os, ssl, sys, time, http.client
kind, port, log, ca, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
ctx = ssl.create_default_context(cafile=ca)
ms = []
for i in range(n):
    text = "bench %d" % i
    if kind == "slack":
        path, body = "/_test/event", {"event": {"type": "message", "channel": "D1", "channel_type": "im",
                                               "user": "U1", "ts": "%d.000001" % (1800000000 + i), "text": text}}
    else:
        path, body = "/_test/message", {"channel_id": "555", "content": text, "author": {"id": "42"}}
    size = os.path.getsize(log)
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    t0 = time.time()
    c.request("POST", path, json.dumps(body))
    c.getresponse().read()
    c.close()
    want = "echo: " + text
    done = None
    for _ in range(20000):
        with open(log) as f:
            f.seek(size)
            for line in f:
                if not line.endswith("\n"):
                    break
                e = json.loads(line)
                if e.get("kind") == "posted" and want in (e.get("text"), e.get("content")):
                    done = e["t"]
        if done:
            break
        time.sleep(0.002)
    if done:
        ms.append((done - t0) * 1e3)
    time.sleep(0.2)
ms.sort()
print("%.1f %.1f %d" % (ms[len(ms) // 2], ms[int(len(ms) * 0.95)], len(ms)) if ms else "- - 0")
PY
}
read -r s_med s_p95 s_n <<<"$(measure slack "$SAPI" "$W/slack.log")"
read -r d_med d_p95 d_n <<<"$(measure discord "$DAPI" "$W/dc.log")"
rss_of() { # KIND: VmRSS (KiB) of the daemon's clawbox-channel KIND child
	local pid
	pid=$(pgrep -P "$SPID" -f "[c]lawbox-channel $1" | head -1)
	[ -n "$pid" ] && awk '/^VmRSS/ { print $2 }' "/proc/$pid/status"
}
echo
echo "channels (issue 14): message in -> reply out through clawbox serve, one at a time;"
echo "the fake model answers at once, so all of it is beyond model time"
printf '%-40s %8s %8s %5s\n' "" median p95 n
printf '%-40s %5s ms %5s ms %5s\n' "Slack (Socket Mode in, Web API out)" "$s_med" "$s_p95" "$s_n"
printf '%-40s %5s ms %5s ms %5s\n' "Discord (Gateway in, REST out)" "$d_med" "$d_p95" "$d_n"
echo "RSS of the channel processes: slack $(rss_of slack) KiB, discord $(rss_of discord) KiB"
