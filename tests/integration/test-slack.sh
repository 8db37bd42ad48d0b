#!/bin/bash
# test-slack.sh: the Slack channel (clawbox-channel slack) through `clawbox serve` against a
# fake Slack on loopback (fake-slack.py: the Web API and Socket Mode over TLS with a test
# CA). A DM is answered, with its progress streamed (chat.postMessage, then chat.update);
# in a channel only a mention or the trigger reaches the agent; an unknown channel is
# ignored and recorded; a message delivered twice (Slack's retry, or as both "message" and
# "app_mention") is answered once; a dropped socket mid-reply and a "disconnect" reconnect
# without loss or double; a 429 waits its Retry-After; a long reply is split at 4,000.
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
PY=/usr/bin/python3
if ! $PY -c 'import websockets' 2>/dev/null; then
	echo "not ok 1 - python3-websockets is missing (scripts/deps.sh test)"
	echo "1..1"
	exit 1
fi
APP_TOKEN=xapp-1-A1-TESTAPPTOKEN
BOT_TOKEN=xoxb-1-TESTBOTTOKEN

# The test's CA and the fake's certificate for 127.0.0.1.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=test-ca -days 2 \
	-keyout "$WORK/ca.key" -out "$WORK/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
	-keyout "$WORK/srv.key" -out "$WORK/srv.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$WORK/ext"
openssl x509 -req -in "$WORK/srv.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" \
	-CAcreateserial -days 2 -extfile "$WORK/ext" -out "$WORK/srv.crt" 2>/dev/null

# The first message works in two steps (its progress is streamed); the rest are echoed.
cat >"$WORK/scenario.json" <<'JSON'
{"turns": [
 {"expect": {"last_contains": ["work slowly"]}, "reply": {"text": "Step one done.", "tool_calls": [{"id": "t1", "name": "bash", "input": {"command": "sleep 4.5"}}]}},
 {"reply": {"text": " Now step two.", "tool_calls": [{"id": "t2", "name": "bash", "input": {"command": "sleep 4"}}]}},
 {"reply": {"text": "All done."}},
 {"expect": {"last_contains": ["said while it reconnects"]}, "reply": {"echo": true}},
 {"expect": {"last_contains": ["ops ask"]}, "reply": {"tool_calls": [{"id": "s1", "name": "send_message", "input": {"text": "ops-hello"}}]}},
 {"reply": {"text": "ops done"}},
 {"expect": {"last_contains": ["send me the report"]}, "reply": {"tool_calls": [{"id": "f1", "name": "send_file", "input": {"path": "report.bin"}}]}},
 {"reply": {"text": "report sent"}}],
 "default": {"reply": {"echo": true}}}
JSON
"$FAKE" --scenario "$WORK/scenario.json" --log "$WORK/model.log" --port-file "$WORK/mport" &
MPID=$!
$PY "$TOP/tests/integration/fake-slack.py" --port-file "$WORK/sport" --log "$WORK/slack.log" \
	--cert "$WORK/srv.crt" --key "$WORK/srv.key" --app-token "$APP_TOKEN" --bot-token "$BOT_TOKEN" \
	2>"$WORK/fake.err" &
TPID=$!
wait_until 5 test -s "$WORK/mport"
wait_until 10 test -s "$WORK/sport"
read -r API_PORT _ <"$WORK/sport"
printf '%s\n%s\n' "$APP_TOKEN" "$BOT_TOKEN" >"$WORK/slack.tokens"
chmod 600 "$WORK/slack.tokens"
PORT=$((20000 + RANDOM % 20000))
cat >"$WORK/config.json" <<JSON
{"data_dir": "$WORK/data", "listen": "127.0.0.1:$PORT",
 "model": {"base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "groups": [{"id": "main", "main": true, "trigger": "@claw"}, {"id": "family"}, {"id": "files", "owners": ["slack:U1"]},
            {"id": "ops", "approvers": ["slack:UBOSS"],
             "policy": {"host_actions": {"send_message": "ask"}, "approval_timeout": 60}}],
 "channels": [{"name": "slack", "kind": "slack", "token_file": "$WORK/slack.tokens",
               "api_url": "https://127.0.0.1:$API_PORT/api", "ca_file": "$WORK/ca.crt",
               "files_url": "https://127.0.0.1:$API_PORT/files/", "file_max": 100000,
               "chats": {"D100": "family", "C200": "main", "C300": "ops", "D400": "files"}}]}
JSON
ctl() { curl -s --cacert "$WORK/ca.crt" "https://127.0.0.1:$API_PORT/_test/$1" -d "${2:-{\}}"; }
ev() { # TYPE CHANNEL CHANNEL_TYPE USER TS TEXT
	ctl event "{\"event\": {\"type\": \"$1\", \"channel\": \"$2\", \"channel_type\": \"$3\", \"user\": \"$4\", \"ts\": \"$5\", \"text\": \"$6\"}}" >/dev/null
}
# posted TEXT: how many messages went out whose text is exactly TEXT
posted() { jq -r 'select(.kind == "posted") | .text' "$WORK/slack.log" | grep -cxF -- "$1"; }
start_daemon() {
	"$CLAWBOX" serve --config "$WORK/config.json" >>"$WORK/serve.out" 2>>"$WORK/serve.err" &
	SPID=$!
	wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
	TOKEN=$(cat "$WORK/data/api-token" 2>/dev/null)
}
api() { curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/$1"; }
start_daemon
check "the channel connects over Socket Mode (apps.connections.open, then the wss URL)" \
	wait_until 15 grep -q '"kind":"connect"' "$WORK/slack.log"
wait_until 5 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' http://127.0.0.1:$PORT/api/v1/channels | grep -q '\"state\":\"connected\"'"
api channels >"$WORK/channels"
check "GET /api/v1/channels says it is connected" \
	sh -c "jq -e '[.channels[] | select(.name == \"slack\" and .kind == \"slack\" and .state == \"connected\")] | length > 0' '$WORK/channels' >/dev/null"

# A DM that works a while: its progress is posted, then updated, then the reply comes; the
# socket is dropped when the first update arrives, and a DM sent meanwhile is not lost.
ctl drop_on_update '{"n": 1}' >/dev/null
ev message D100 im U1 1700000100.000001 "work slowly"
# While the socket is down (dropped at the first update), Slack has a DM to deliver.
wait_until 30 grep -q '"kind":"drop"' "$WORK/slack.log"
ev message D100 im U1 1700000101.000001 "said while it reconnects"
wait_until 30 sh -c "jq -r 'select(.kind == \"posted\") | .text' '$WORK/slack.log' | grep -q 'All done.\$'"
PROGRESS_TS=$(jq -r 'select(.kind == "posted" and (.text | startswith("(working)"))) | .ts' "$WORK/slack.log" | head -1)
check "a DM's long run shows its progress in a message of its own" \
	test "$(posted '(working) Step one done.')" = 1
check "which is updated (chat.update of that message) as more comes" \
	sh -c "jq -c 'select(.kind == \"api\" and .method == \"chat.update\") | .body' '$WORK/slack.log' | grep -q '\"ts\":\"$PROGRESS_TS\".*Now step two'"
check "and the reply goes out once, in the DM" \
	sh -c "[ $(posted 'Step one done. Now step two.All done.') = 1 ] && jq -c 'select(.kind == \"posted\" and .channel == \"D100\" and (.text | endswith(\"All done.\")))' '$WORK/slack.log' | grep -q ."
check "the socket was dropped mid-reply" grep -q '"kind":"drop"' "$WORK/slack.log"
wait_until 20 sh -c "[ \$(jq -r 'select(.kind == \"posted\") | .text' '$WORK/slack.log' | grep -cx 'echo: said while it reconnects') -ge 1 ]"
check "it reconnected and a message sent meanwhile is answered, once" \
	sh -c "sleep 1; [ $(posted 'echo: said while it reconnects') = 1 ] && [ \$(grep -c '\"kind\":\"connect\"' '$WORK/slack.log') -ge 2 ]"
check "every envelope was acked" sh -c "! grep -q '\"known\":false' '$WORK/slack.log' && [ \$(grep -c '\"kind\":\"ack\"' '$WORK/slack.log') -ge 2 ]"

# Approvals: buttons in the group's channel; a stranger's press is refused (and told so,
# only to them), the approver's runs the action.
ev message C300 channel UBOSS 1700000900.000001 "<@UBOT> ops ask"
wait_until 30 sh -c "jq -c 'select(.kind == \"posted\" and .blocks != null)' '$WORK/slack.log' | grep -q ."
jq -c 'select(.kind == "posted" and .blocks != null)' "$WORK/slack.log" | head -1 >"$WORK/approval"
AP=$(jq -r '.blocks[1].elements[0].action_id' "$WORK/approval" | sed -n 's/^ap:\([0-9]*\):approve$/\1/p')
check "an approval becomes buttons in the group's channel (approval $AP)" \
	sh -c "[ -n '$AP' ] && jq -e '.channel == \"C300\" and ([.blocks[1].elements[].action_id] == [\"ap:$AP:approve\", \"ap:$AP:run\", \"ap:$AP:deny\"])' '$WORK/approval' >/dev/null"
ctl press "{\"user\": \"UEVE\", \"channel\": \"C300\", \"action_id\": \"ap:$AP:approve\"}" >/dev/null
wait_until 10 sh -c "grep -q '\"kind\":\"ephemeral\"' '$WORK/slack.log'"
check "a stranger's press is refused, told only to them" \
	sh -c "jq -c 'select(.kind == \"ephemeral\" and .user == \"UEVE\" and .channel == \"C300\")' '$WORK/slack.log' | grep -q 'not an approver' && [ $(posted 'ops-hello') = 0 ]"
check "and audited" sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/audit?after=0' | grep -q 'approval $AP by slack:UEVE refused'"
ctl press "{\"user\": \"UBOSS\", \"channel\": \"C300\", \"action_id\": \"ap:$AP:approve\"}" >/dev/null
wait_until 20 sh -c "jq -r 'select(.kind == \"posted\") | .text' '$WORK/slack.log' | grep -qx 'ops done'"
check "the approver's press runs it, and they are told" \
	sh -c "[ $(posted 'ops-hello') = 1 ] && jq -c 'select(.kind == \"ephemeral\" and .user == \"UBOSS\")' '$WORK/slack.log' | grep -q 'Approval $AP: approved.'"
check "every press was acked" sh -c "[ \$(grep -c '\"kind\":\"ack\"' '$WORK/slack.log') -ge 2 ] && ! grep -q '\"known\":false' '$WORK/slack.log'"

# send_file: files.getUploadURLExternal, the bytes to its upload URL (no token with them),
# files.completeUploadExternal into the DM (a group of its own,
# asked by its owner: the run is untainted, so its send_file is not held for approval).
mkdir -p "$WORK/data/groups/files"
head -c 3000 /dev/urandom >"$WORK/data/groups/files/report.bin"
SUM=$(sha256sum "$WORK/data/groups/files/report.bin" | cut -d' ' -f1)
ctl event '{"event": {"type": "message", "channel": "D400", "channel_type": "im", "user": "U1", "ts": "1700000950.000001", "thread_ts": "1700000940.000001", "text": "send me the report"}}' >/dev/null
wait_until 30 sh -c "jq -r 'select(.kind == \"posted\") | .text' '$WORK/slack.log' | grep -qx 'report sent'"
jq -c 'select(.kind == "file_shared")' "$WORK/slack.log" >"$WORK/shared"
check "send_file: uploaded (getUploadURLExternal, bytes, completeUploadExternal) into the DM ($(head -c 160 "$WORK/shared"))" \
	test "$(jq -s "length == 1 and (.[0] | .channel == \"D400\" and .filename == \"report.bin\" and .title == \"report.bin\" and .length == 3000 and .size == 3000)" "$WORK/shared")" = true
check "with the right bytes (sha256 $SUM), once, and no token sent to the upload URL" \
	sh -c "[ \$(wc -l <'$WORK/shared') = 1 ] && jq -e '.sha256 == \"$SUM\" and .token_sent == false' '$WORK/shared' >/dev/null"

# Files in: a file_share's files[] fetched with the bot token into the group's inbox; one
# past file_max, or on a host other than files_url, is not fetched, and the message says so.
head -c 5000 /dev/urandom >"$WORK/in.bin"
INSUM=$(sha256sum "$WORK/in.bin" | cut -d' ' -f1)
ctl file "{\"name\": \"F1/photo.bin\", \"b64\": \"$(base64 -w0 "$WORK/in.bin")\"}" >/dev/null
printf '{"name": "F2/big.bin", "b64": "%s"}' "$(head -c 200000 /dev/zero | base64 -w0)" >"$WORK/big.json"
ctl file "@$WORK/big.json" >/dev/null
FURL="https://127.0.0.1:$API_PORT/files"
ctl event "{\"event\": {\"type\": \"message\", \"subtype\": \"file_share\", \"channel\": \"D400\", \"channel_type\": \"im\", \"user\": \"U1\", \"ts\": \"1700000960.000001\", \"text\": \"here are files\", \"files\": [
 {\"id\": \"F1\", \"name\": \"photo.bin\", \"mimetype\": \"application/octet-stream\", \"size\": 5000, \"url_private_download\": \"$FURL/F1/photo.bin\"},
 {\"id\": \"F2\", \"name\": \"big.bin\", \"mimetype\": \"application/octet-stream\", \"size\": 200000, \"url_private_download\": \"$FURL/F2/big.bin\"},
 {\"id\": \"F3\", \"name\": \"evil.bin\", \"size\": 10, \"url_private_download\": \"https://127.0.0.2:$API_PORT/files/F1/photo.bin\"}]}}" >/dev/null
wait_until 30 sh -c "jq -r 'select(.kind == \"posted\") | .text' '$WORK/slack.log' | grep -q '^echo: here are files'"
inbox=
for f in "$WORK/data/groups/files/inbox/"*photo.bin; do [ -f "$f" ] && inbox=${f##*/}; done
check "a file in is fetched with the bot token into the group's inbox ($inbox), its bytes intact" \
	sh -c "[ -n '$inbox' ] && [ \"\$(sha256sum <'$WORK/data/groups/files/inbox/$inbox' | cut -d' ' -f1)\" = '$INSUM' ] && jq -c 'select(.kind == \"download\" and .path == \"/files/F1/photo.bin\" and .found)' '$WORK/slack.log' | grep -q ."
api "groups/files/messages" >"$WORK/fam"
check "and the message says where" grep -q "here are files.*\\[attachment: inbox/$inbox, 5000 bytes\\]" "$WORK/fam"
check "a file past file_max, or on another host, is not fetched, and the message says so" \
	sh -c "! grep -q 'F2/big.bin\",\"found' '$WORK/slack.log' && grep -q 'big.bin: 200000 bytes, past the channel' '$WORK/fam' && grep -q 'evil.bin: not on Slack' '$WORK/fam' && [ \$(grep -c '\"kind\":\"download\"' '$WORK/slack.log') = 1 ]"

# A channel: chatter does not reach the agent; a mention (sent by Slack both as "message"
# and "app_mention") and the trigger do, once each.
ev message C200 channel U2 1700000200.000001 "just chatting, not for the bot"
ev message C200 channel U2 1700000201.000001 "<@UBOT> what time is it"
ev app_mention C200 channel U2 1700000201.000001 "<@UBOT> what time is it"
ev message C200 channel U3 1700000202.000001 "@claw are you there"
wait_until 20 sh -c "jq -r 'select(.kind == \"posted\") | .text' '$WORK/slack.log' | grep -qx 'echo: @claw are you there' && jq -r 'select(.kind == \"posted\") | .text' '$WORK/slack.log' | grep -qx 'echo: &lt;@UBOT&gt; what time is it'"
sleep 1
check "a mention in a channel is answered there, once (message + app_mention)" \
	test "$(posted 'echo: &lt;@UBOT&gt; what time is it')" = 1
check "the group's trigger in a channel is answered" test "$(posted 'echo: @claw are you there')" = 1
check "channel chatter without mention or trigger does not reach the agent" \
	sh -c "! grep -q 'just chatting' '$WORK/model.log'"
api "groups/main/messages" >"$WORK/main"
check "the message is in the group's history with its Slack sender" \
	grep -q '"text":"@claw are you there","sender":"slack:U3"' "$WORK/main"

# What the agent writes is shown as text, never as Slack markup: no <!channel> notification.
ev message D100 im U1 1700000250.000001 "<!channel> look & see"
wait_until 20 sh -c "jq -r 'select(.kind == \"posted\") | .text' '$WORK/slack.log' | grep -q 'look &amp; see'"
check "the agent's text is escaped (&, <, >): no <!channel> or <@user> markup goes out" \
	test "$(posted 'echo: &lt;!channel&gt; look &amp; see')" = 1

# A message in a thread is answered in that thread (thread_ts).
ctl event '{"event": {"type": "message", "channel": "D100", "channel_type": "im", "user": "U1", "ts": "1700000260.000001", "thread_ts": "1700000100.000001", "text": "in a thread"}}' >/dev/null
wait_until 20 sh -c "jq -r 'select(.kind == \"posted\") | .text' '$WORK/slack.log' | grep -qx 'echo: in a thread'"
check "a message in a thread is answered in that thread" \
	test "$(jq -r 'select(.kind == "posted" and .text == "echo: in a thread") | .thread_ts' "$WORK/slack.log")" = 1700000100.000001

# An unknown channel: ignored and recorded.
ev message C999 channel U9 1700000300.000001 "<@UBOT> let me in"
wait_until 10 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/audit?after=0' | grep -q 'chat C999'"
api "audit?after=0" >"$WORK/audit"
check "a message from an unknown channel is recorded" \
	grep -q '"action":"slack","decision":"deny","reason":"a message from chat C999, which no group is for"' "$WORK/audit"
check "and reaches nobody" sh -c "! grep -q 'let me in' '$WORK/model.log' && ! jq -c 'select(.kind == \"posted\" and .channel == \"C999\")' '$WORK/slack.log' | grep -q ."

# Slack delivers the same event again (a retry): answered once.
ev message D100 im U1 1700000400.000001 "only once please"
ev message D100 im U1 1700000400.000001 "only once please"
wait_until 20 sh -c "jq -r 'select(.kind == \"posted\") | .text' '$WORK/slack.log' | grep -qx 'echo: only once please'"
sleep 1.5
check "a duplicate delivery is answered once (and both envelopes acked)" \
	sh -c "[ $(posted 'echo: only once please') = 1 ] && [ \$(grep -c 'only once please' '$WORK/model.log') -ge 1 ] && ! grep -q '\"known\":false' '$WORK/slack.log'"

# "disconnect": the next connection is opened and used.
connects=$(grep -c '"kind":"connect"' "$WORK/slack.log")
ctl disconnect >/dev/null
wait_until 10 sh -c "[ \$(grep -c '\"kind\":\"connect\"' '$WORK/slack.log') -gt $connects ]"
ev message D100 im U1 1700000500.000001 "after the refresh"
wait_until 20 sh -c "jq -r 'select(.kind == \"posted\") | .text' '$WORK/slack.log' | grep -qx 'echo: after the refresh'"
check "a disconnect envelope: a new connection, and messages keep coming" \
	test "$(posted 'echo: after the refresh')" = 1

# 429: the reply waits the Retry-After (1 s) and then goes out once.
ctl ratelimit '{"n": 1}' >/dev/null
ev message D100 im U1 1700000600.000001 "rate limited"
wait_until 20 sh -c "jq -r 'select(.kind == \"posted\") | .text' '$WORK/slack.log' | grep -qx 'echo: rate limited'"
T429=$(jq -r 'select(.kind == "429") | .t' "$WORK/slack.log" | tail -1)
TPOST=$(jq -r 'select(.kind == "posted" and .text == "echo: rate limited") | .t' "$WORK/slack.log")
check "a 429 is honoured: the retry came after its Retry-After ($T429 -> $TPOST)" \
	sh -c "[ -n '$T429' ] && [ -n '$TPOST' ] && awk 'BEGIN { exit !($TPOST - $T429 >= 0.95) }' && [ $(posted 'echo: rate limited') = 1 ]"

# A message past the socket's bound (1 MiB): the channel closes with 1009 ("too big") and
# reconnects; the same process, still answering.
CHPID=$(pgrep -P "$SPID" -f '[c]lawbox-channel slack')
connects=$(grep -c '"kind":"connect"' "$WORK/slack.log")
ctl big '{"size": 2000000}' >/dev/null
wait_until 15 sh -c "[ \$(grep -c '\"kind\":\"connect\"' '$WORK/slack.log') -gt $connects ]"
check "a 2 MB message: closed with 1009, reconnected, the same process ($CHPID)" \
	sh -c "jq -c 'select(.kind == \"disconnected\" and .code == 1009)' '$WORK/slack.log' | grep -q . && [ \"\$(pgrep -P $SPID -f '[c]lawbox-channel slack')\" = '$CHPID' ]"

# A long reply is split at Slack's 4,000 characters.
LONG=$(head -c 5000 /dev/zero | tr '\0' 'a')
ev message D100 im U1 1700000700.000001 "$LONG"
wait_until 20 sh -c "[ \$(jq -r 'select(.kind == \"posted\" and .channel == \"D100\") | .text' '$WORK/slack.log' | grep -c '^a*\$') -ge 1 ]"
jq -r 'select(.kind == "posted" and .channel == "D100") | .text | length' "$WORK/slack.log" | tail -2 >"$WORK/lens"
check "a 5,006-character reply goes out as two messages of at most 4,000 ($(tr '\n' ' ' <"$WORK/lens"))" \
	test "$(tr '\n' ' ' <"$WORK/lens")" = "4000 1006 "

check "the tokens are in no log" \
	sh -c "! grep -q 'TESTAPPTOKEN\|TESTBOTTOKEN' '$WORK/serve.err' '$WORK/serve.out'"
CHPID=$(pgrep -P "$SPID" -f '[c]lawbox-channel slack')
check "the channel is a process of its own, the daemon's child ($CHPID)" test -n "$CHPID"

# A restart of the daemon (and so of the channel): nothing answered twice.
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
start_daemon
connects=$(grep -c '"kind":"connect"' "$WORK/slack.log")
wait_until 15 sh -c "[ \$(grep -c '\"kind\":\"connect\"' '$WORK/slack.log') -gt $connects ]"
ev message D100 im U1 1700000800.000001 "after a restart"
wait_until 20 sh -c "jq -r 'select(.kind == \"posted\") | .text' '$WORK/slack.log' | grep -qx 'echo: after a restart'"
sleep 1
check "after a restart: new messages answered, none answered twice" \
	sh -c "[ $(posted 'echo: after a restart') = 1 ] && [ $(posted 'echo: only once please') = 1 ] && [ $(posted 'Step one done. Now step two.All done.') = 1 ]"
CHPID=$(pgrep -P "$SPID" -f '[c]lawbox-channel slack')
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=
check "no channel process outlives the daemon" wait_until 5 sh -c "[ -n '$CHPID' ] && ! kill -0 '$CHPID' 2>/dev/null"
# A token Slack refuses: the channel says so (state "error"), it does not pretend.
printf 'xapp-1-WRONG\n%s\n' "$BOT_TOKEN" >"$WORK/slack.tokens"
start_daemon
wait_until 10 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' http://127.0.0.1:$PORT/api/v1/channels | grep -q invalid_auth"
api channels >"$WORK/channels"
check "a refused app token: state error, with Slack's reason ($(jq -c '.channels[] | select(.name == "slack") | [.state, .last_error]' "$WORK/channels"))" \
	sh -c "jq -e '[.channels[] | select(.name == \"slack\" and .state == \"error\" and (.last_error | contains(\"invalid_auth\")))] | length > 0' '$WORK/channels' >/dev/null"
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
# A socket whose certificate does not name the URL's host: refused, and nothing is sent on it.
printf '%s\n%s\n' "$APP_TOKEN" "$BOT_TOKEN" >"$WORK/slack.tokens"
ctl ws_host '{"host": "localhost"}' >/dev/null
connects=$(grep -c '"kind":"connect"' "$WORK/slack.log")
start_daemon
wait_until 10 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' http://127.0.0.1:$PORT/api/v1/channels | grep -q TLS"
api channels >"$WORK/channels"
check "a wss certificate for another name is refused ($(jq -c '.channels[] | select(.name == "slack") | [.state, .last_error]' "$WORK/channels"))" \
	sh -c "jq -e '[.channels[] | select(.name == \"slack\" and .state == \"error\" and (.last_error | contains(\"certificate verify failed\")))] | length > 0' '$WORK/channels' >/dev/null && [ \$(grep -c '\"kind\":\"connect\"' '$WORK/slack.log') = $connects ]"
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=
jq -r 'select(.kind == "posted") | .text' "$WORK/slack.log" | sort | uniq -d >"$WORK/doubles"
check "no message was posted twice in the whole run ($(head -c 80 "$WORK/doubles"))" test ! -s "$WORK/doubles"
[ -n "${KEEP_WORK:-}" ] && rm -rf "$KEEP_WORK" && cp -a "$WORK" "$KEEP_WORK"
done_testing
