#!/bin/bash
# bench-xmpp.sh: the XMPP channel through a real Prosody (started as
# tests/integration/xmpp-server.sh does, on loopback) and clawbox serve: a one-to-one
# message in -> the agent's reply back at the sender, beyond model time (the fake model
# answers at once), median of 10 one after another, timed from the sender's channel taking
# the message to its channel reporting the reply. And the resident memory of the bot's
# channel process.
set -u
cd "$(dirname "$0")/.." || exit 1
TOP=$PWD
WORK=$(mktemp -d /tmp/clawbox-bench-xmpp.XXXXXX)
chmod 755 "$WORK"
MPID= SPID= APID=
wait_until() {
	local limit=$(($1 * 20)) i=0
	shift
	while ! "$@"; do
		i=$((i + 1))
		[ $i -ge $limit ] && return 1
		sleep 0.05
	done
}
. tests/integration/xmpp-server.sh
trap 'kill $APID $SPID $MPID 2>/dev/null; cleanup_prosody; wait 2>/dev/null; rm -rf "$WORK"' EXIT
start_prosody || { echo "xmpp: Prosody did not start" >&2; exit 1; }
for u in bot alice; do printf 'pw-%s\n' "$u" >"$WORK/$u.pw"; chmod 600 "$WORK/$u.pw"; done
echo '{"turns": [], "default": {"reply": {"echo": true}}}' >"$WORK/scenario.json"
build/tests/fake-model --scenario "$WORK/scenario.json" --log /dev/null --port-file "$WORK/mport" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
PORT=$(xmpp_free_port)
cat >"$WORK/config.json" <<JSON
{"data_dir": "$WORK/data", "listen": "127.0.0.1:$PORT",
 "model": {"base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "groups": [{"id": "main", "main": true}, {"id": "alice"}],
 "channels": [{"name": "jabber", "kind": "xmpp", "chats": {"alice@localhost": "alice"},
   "jid": "bot@localhost", "host": "127.0.0.1", "port": $XMPP_PORT, "ca_file": "$XMPP_CA",
   "token_file": "$WORK/bot.pw"}]}
JSON
cat >"$WORK/alice.json" <<JSON
{"jid": "alice@localhost", "host": "127.0.0.1", "port": $XMPP_PORT, "ca_file": "$XMPP_CA",
 "token_file": "$WORK/alice.pw"}
JSON
./clawbox serve --config "$WORK/config.json" >"$WORK/serve.out" 2>"$WORK/serve.err" &
SPID=$!
: >"$WORK/alice.cmds"
python3 tests/integration/chan-driver.py --channel ./clawbox-channel --kind xmpp \
	--config "$WORK/alice.json" --log "$WORK/alice.frames" --commands "$WORK/alice.cmds" \
	--stderr "$WORK/alice.err" --timestamps &
APID=$!
wait_until 20 sh -c "grep -q 'channel jabber: connected' '$WORK/serve.err' && grep -q '\"state\": \"connected\"' '$WORK/alice.frames'"
sleep 1
for i in $(seq 10); do
	printf '{"t": "reply", "ref": %s, "chat": "bot@localhost", "text": "ping %s"}\n' "$i" "$i" >>"$WORK/alice.cmds"
	wait_until 30 grep -q "\"text\": \"echo: ping $i\"" "$WORK/alice.frames" || { echo "xmpp: no answer to ping $i" >&2; exit 1; }
done
python3 - "$WORK/alice.frames" >"$WORK/times" <<'PY'
import json, sys
sent, got = {}, {}
for line in open(sys.argv[1]):
    f = json.loads(line)
    if f["t"] == "sent":
        sent[f["ref"]] = f["at_ms"]
    elif f["t"] == "message" and f["text"].startswith("echo: ping "):
        got[int(f["text"].split()[-1])] = f["at_ms"]
for i in sorted(got):
    print(got[i] - sent[i])
PY
median=$(sort -n "$WORK/times" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
pid=$(grep -o 'channel jabber: started (xmpp, pid [0-9]*' "$WORK/serve.err" | tail -1 | grep -o '[0-9]*$')
rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status")
printf 'xmpp: message in -> reply back at the sender through Prosody and the daemon, median of 10: %s ms\n' "$median"
printf 'xmpp: channel process RSS after 10 messages: %s KiB\n' "$rss"
