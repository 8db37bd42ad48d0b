#!/bin/bash
# test-discord.sh: the Discord channel (clawbox-channel discord) through `clawbox serve`
# against a fake Discord on loopback (fake-discord.py: REST and the Gateway over TLS with a
# test CA). IDENTIFY with the intents; a DM is answered, its progress streamed (a message,
# then PATCHes); in a guild channel only a mention reaches the agent; an unknown channel is
# ignored and recorded; a dropped socket, a RECONNECT, a heartbeat left unanswered and an
# INVALID_SESSION end in a RESUME (or a new session) with nothing lost or doubled; a 429
# waits its retry_after; a long reply is split at 2,000; typing is shown. Files: send_file is
# a multipart post (payload_json, files[0]) with the file's bytes; attachments are fetched from
# the CDN (no token) into the group's inbox, those past file_max or off the CDN only named.
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
PY=/usr/bin/python3
if ! $PY -c 'import websockets' 2>/dev/null; then
	echo "not ok 1 - python3-websockets is missing (scripts/deps.sh test)"
	echo "1..1"
	exit 1
fi
BOT_TOKEN=TESTDISCORDBOTTOKEN.abc
BOT_ID=100000000000000001

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=test-ca -days 2 \
	-keyout "$WORK/ca.key" -out "$WORK/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
	-keyout "$WORK/srv.key" -out "$WORK/srv.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$WORK/ext"
openssl x509 -req -in "$WORK/srv.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" \
	-CAcreateserial -days 2 -extfile "$WORK/ext" -out "$WORK/srv.crt" 2>/dev/null

cat >"$WORK/scenario.json" <<'JSON'
{"turns": [
 {"expect": {"last_contains": ["work slowly"]}, "reply": {"text": "Step one done.", "tool_calls": [{"id": "t1", "name": "bash", "input": {"command": "sleep 4.5"}}]}},
 {"reply": {"text": " Now step two.", "tool_calls": [{"id": "t2", "name": "bash", "input": {"command": "sleep 4"}}]}},
 {"reply": {"text": "All done."}},
 {"expect": {"last_contains": ["ops ask"]}, "reply": {"tool_calls": [{"id": "s1", "name": "send_message", "input": {"text": "ops-hello"}}]}},
 {"reply": {"text": "ops done"}},
 {"expect": {"last_contains": ["send me the report"]}, "reply": {"tool_calls": [{"id": "f1", "name": "send_file", "input": {"path": "report.bin"}}]}},
 {"reply": {"text": "report sent"}}],
 "default": {"reply": {"echo": true}}}
JSON
"$FAKE" --scenario "$WORK/scenario.json" --log "$WORK/model.log" --port-file "$WORK/mport" &
MPID=$!
$PY "$TOP/tests/integration/fake-discord.py" --port-file "$WORK/dport" --log "$WORK/dc.log" \
	--cert "$WORK/srv.crt" --key "$WORK/srv.key" --token "$BOT_TOKEN" --heartbeat-ms 1000 \
	2>"$WORK/fake.err" &
TPID=$!
wait_until 5 test -s "$WORK/mport"
wait_until 10 test -s "$WORK/dport"
read -r API_PORT _ <"$WORK/dport"
PORT=$((20000 + RANDOM % 20000))
cat >"$WORK/config.json" <<JSON
{"data_dir": "$WORK/data", "listen": "127.0.0.1:$PORT",
 "model": {"base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "groups": [{"id": "main", "main": true, "trigger": "@claw"}, {"id": "family", "owners": ["discord:42"]},
            {"id": "ops", "approvers": ["discord:4242"],
             "policy": {"host_actions": {"send_message": "ask"}, "approval_timeout": 60}}],
 "channels": [{"name": "discord", "kind": "discord", "token_env": "DISCORD_TOKEN",
               "api_url": "https://127.0.0.1:$API_PORT/api/v10", "ca_file": "$WORK/ca.crt",
               "cdn_url": "https://127.0.0.1:$API_PORT/cdn/", "file_max": 1000,
               "chats": {"555": "family", "666": "main", "777": "ops"}}]}
JSON
ctl() { curl -s --cacert "$WORK/ca.crt" "https://127.0.0.1:$API_PORT/_test/$1" -d "${2:-{\}}"; }
dm() { # TEXT
	ctl message "{\"channel_id\": \"555\", \"content\": \"$1\", \"author\": {\"id\": \"42\", \"username\": \"ana\"}}" >/dev/null
}
guild() { # CHANNEL TEXT MENTION(0|1)
	local m='[]'
	[ "$3" = 1 ] && m="[{\"id\": \"$BOT_ID\", \"username\": \"claw\"}]"
	ctl message "{\"channel_id\": \"$1\", \"guild_id\": \"7\", \"content\": \"$2\", \"mentions\": $m, \"author\": {\"id\": \"43\", \"username\": \"bob\"}}" >/dev/null
}
posted() { jq -r 'select(.kind == "posted") | .content' "$WORK/dc.log" | grep -cxF -- "$1"; }
wait_posted() { wait_until "${2:-20}" sh -c "jq -r 'select(.kind == \"posted\") | .content' '$WORK/dc.log' | grep -qxF -- '$1'"; }
count() { grep -c "\"kind\":\"$1\"" "$WORK/dc.log"; }
start_daemon() {
	DISCORD_TOKEN=$BOT_TOKEN "$CLAWBOX" serve --config "$WORK/config.json" >>"$WORK/serve.out" 2>>"$WORK/serve.err" &
	SPID=$!
	wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
	TOKEN=$(cat "$WORK/data/api-token" 2>/dev/null)
}
api() { curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/$1"; }
start_daemon
check "the channel asks for the Gateway and identifies with its intents (GUILD_MESSAGES, DIRECT_MESSAGES, MESSAGE_CONTENT)" \
	wait_until 15 sh -c "jq -c 'select(.kind == \"identify\" and .intents == 37376 and .token_ok)' '$WORK/dc.log' | grep -q . && grep -q '/api/v10/gateway/bot' '$WORK/dc.log'"
check "and heartbeats (every second here)" wait_until 5 sh -c "[ \$(grep -c '\"kind\":\"heartbeat\"' '$WORK/dc.log') -ge 2 ]"
wait_until 5 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' http://127.0.0.1:$PORT/api/v1/channels | grep -q '\"state\":\"connected\"'"
check "GET /api/v1/channels says it is connected" \
	sh -c "curl -s -H 'Authorization: Bearer $TOKEN' http://127.0.0.1:$PORT/api/v1/channels | jq -e '[.channels[] | select(.name == \"discord\" and .state == \"connected\")] | length > 0' >/dev/null"

# A DM that works a while: progress posted, then edited; the reply once.
dm "work slowly"
wait_until 30 sh -c "jq -r 'select(.kind == \"posted\") | .content' '$WORK/dc.log' | grep -q 'All done.\$'"
PROGRESS_ID=$(jq -r 'select(.kind == "posted" and (.content | startswith("(working)"))) | .id' "$WORK/dc.log" | head -1)
check "a DM's long run shows its progress in a message of its own" test "$(posted '(working) Step one done.')" = 1
check "edited (PATCH of that message) as more comes" \
	sh -c "jq -c 'select(.kind == \"edited\" and .id == \"$PROGRESS_ID\" and (.content | contains(\"Now step two\")))' '$WORK/dc.log' | grep -q ."
check "and the reply goes out once, in the DM" test "$(posted 'Step one done. Now step two.All done.')" = 1
check "typing is shown in the chat while it works" grep -q '"kind":"typing","t":[0-9.]*,"channel":"555"' "$WORK/dc.log"

# Approvals: buttons in the group's channel; a stranger's press is refused (told only to
# them, in an ephemeral follow-up), the approver's runs the action.
ctl message "{\"channel_id\": \"777\", \"guild_id\": \"7\", \"content\": \"<@$BOT_ID> ops ask\", \"mentions\": [{\"id\": \"$BOT_ID\"}], \"author\": {\"id\": \"4242\", \"username\": \"boss\"}}" >/dev/null
wait_until 30 sh -c "jq -c 'select(.kind == \"posted\" and .components != null)' '$WORK/dc.log' | grep -q ."
jq -c 'select(.kind == "posted" and .components != null)' "$WORK/dc.log" | head -1 >"$WORK/approval"
AP=$(jq -r '.components[0].components[0].custom_id' "$WORK/approval" | sed -n 's/^ap:\([0-9]*\):approve$/\1/p')
check "an approval becomes buttons in the group's channel (approval $AP)" \
	sh -c "[ -n '$AP' ] && jq -e '.channel == \"777\" and ([.components[0].components[].custom_id] == [\"ap:$AP:approve\", \"ap:$AP:run\", \"ap:$AP:deny\"])' '$WORK/approval' >/dev/null"
ctl press "{\"user\": \"9999\", \"channel_id\": \"777\", \"guild_id\": \"7\", \"custom_id\": \"ap:$AP:approve\"}" >/dev/null
wait_until 10 sh -c "grep -q '\"kind\":\"followup\"' '$WORK/dc.log'"
check "a stranger's press is acknowledged and refused, told only to them" \
	sh -c "jq -c 'select(.kind == \"interaction_callback\" and .ok and .type == 6)' '$WORK/dc.log' | grep -q . && jq -c 'select(.kind == \"followup\" and .ok and .flags == 64)' '$WORK/dc.log' | grep -q 'not an approver' && [ $(posted 'ops-hello') = 0 ]"
ctl press "{\"user\": \"4242\", \"channel_id\": \"777\", \"guild_id\": \"7\", \"custom_id\": \"ap:$AP:approve\"}" >/dev/null
wait_posted "ops done" 30
check "the approver's press runs it, and they are told" \
	sh -c "[ $(posted 'ops-hello') = 1 ] && jq -c 'select(.kind == \"followup\" and .ok)' '$WORK/dc.log' | grep -q 'Approval $AP: approved.'"

# send_file: one multipart/form-data post (payload_json and files[0]) with the file's bytes.
mkdir -p "$WORK/data/groups/family"
printf 'rep\000ort\377 bytes\n' >"$WORK/data/groups/family/report.bin"
dm "send me the report"
wait_posted "report sent" 30
jq -c 'select(.kind == "posted" and .files != null)' "$WORK/dc.log" | head -1 >"$WORK/fpost"
check "send_file: a multipart post to the DM, payload_json naming files[0] (report.bin)" \
	sh -c "[ -s '$WORK/fpost' ] && jq -e '.channel == \"555\" and .files[0].field == \"files[0]\" and .files[0].filename == \"report.bin\" and .attachments == [{\"id\": 0, \"filename\": \"report.bin\"}] and (.content | startswith(\"[file: report.bin, 15 bytes]\"))' '$WORK/fpost' >/dev/null"
jq -r '.files[0].b64 // empty' "$WORK/fpost" | base64 -d >"$WORK/got.bin"
check "and the file's bytes, exactly" sh -c "[ -s '$WORK/got.bin' ] && cmp -s '$WORK/got.bin' '$WORK/data/groups/family/report.bin'"
check "the daemon has it in the group's history" sh -c \
	"curl -s -H 'Authorization: Bearer $TOKEN' http://127.0.0.1:$PORT/api/v1/groups/family/messages | grep -qF '[file: report.bin, 15 bytes]'"

# Attachments in: fetched from the CDN without the token into the group's inbox; one past
# file_max (1000) or not on the CDN is not fetched, and the message says so.
CDN="https://127.0.0.1:$API_PORT/cdn"
ctl file "{\"id\": \"a1\", \"data_b64\": \"$(base64 -w0 <"$WORK/data/groups/family/report.bin")\"}" >/dev/null
ctl file "{\"id\": \"big\", \"data_b64\": \"$(head -c 3000 /dev/zero | base64 -w0)\"}" >/dev/null
ctl message "{\"channel_id\": \"555\", \"content\": \"here are files\", \"author\": {\"id\": \"42\", \"username\": \"ana\"}, \"attachments\": [
 {\"id\": \"a1\", \"filename\": \"note.bin\", \"size\": 15, \"url\": \"$CDN/a1/note.bin\", \"content_type\": \"application/octet-stream\"},
 {\"id\": \"big\", \"filename\": \"big.txt\", \"size\": 3000, \"url\": \"$CDN/big/big.txt\"},
 {\"id\": \"x\", \"filename\": \"evil.txt\", \"size\": 5, \"url\": \"https://127.0.0.1:1/evil.txt\"}]}" >/dev/null
ctl message "{\"channel_id\": \"555\", \"content\": \"\", \"author\": {\"id\": \"42\", \"username\": \"ana\"}, \"attachments\": [
 {\"id\": \"a1\", \"filename\": \"only.bin\", \"size\": 15, \"url\": \"$CDN/a1/only.bin\"}]}" >/dev/null
dm "after the files"
wait_posted "echo: after the files"
api groups/family/messages >"$WORK/fam"
inbox=
for f in "$WORK/data/groups/family/inbox/"*note.bin; do [ -f "$f" ] && inbox=${f##*/}; done
check "an attachment is fetched from the CDN, without the bot token" \
	sh -c "jq -c 'select(.kind == \"cdn\" and .id == \"a1\" and .found and (.auth | not))' '$WORK/dc.log' | grep -q . && ! jq -c 'select(.kind == \"cdn\" and .auth)' '$WORK/dc.log' | grep -q ."
check "into the group's inbox, its bytes exactly ($inbox)" \
	sh -c "[ -n '$inbox' ] && cmp -s '$WORK/data/groups/family/inbox/$inbox' '$WORK/data/groups/family/report.bin'"
check "and the message says where" grep -q "here are files\\\\n.*\\\\n\\[attachment: inbox/$inbox, 15 bytes\\]" "$WORK/fam"
check "one past file_max is not fetched, and the message says so" sh -c \
	"! grep -q '\"id\":\"big\"' '$WORK/dc.log' && grep -q \"(an attachment that was not fetched: big.txt, 3000 bytes, past the channel's 1000)\" '$WORK/fam'"
check "nor one off Discord's CDN" grep -q "(an attachment that was not fetched: evil.txt, not on Discord's CDN)" "$WORK/fam"
check "a message of only an attachment reaches the group too" \
	sh -c "ls '$WORK/data/groups/family/inbox/' | grep -q 'only.bin\$'"
order=$(jq '[.messages[] | select(.sender == "discord:42") | .text] | .[-3:] | (.[0] | startswith("here are files")) and (.[1] | test("^\n\\[attachment: inbox/.*only.bin, 15 bytes\\]$")) and .[2] == "after the files"' "$WORK/fam")
check "and messages keep their order around the fetching" test "$order" = true

# A guild channel: chatter stays out, a mention is answered.
guild 666 "just chatting, not for the bot" 0
guild 666 "<@$BOT_ID> what time is it" 1
wait_posted "echo: <@$BOT_ID> what time is it"
check "a mention in a guild channel is answered there" \
	sh -c "jq -c 'select(.kind == \"posted\" and .channel == \"666\" and .content == \"echo: <@$BOT_ID> what time is it\")' '$WORK/dc.log' | grep -q ."
check "guild chatter without a mention does not reach the agent" sh -c "! grep -q 'just chatting' '$WORK/model.log'"
api "groups/main/messages" >"$WORK/main"
check "the message is in the group's history with its Discord sender" \
	grep -q "\"sender\":\"discord:43\"" "$WORK/main"
guild 999 "<@$BOT_ID> let me in" 1
wait_until 10 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/audit?after=0' | grep -q 'chat 999'"
check "an unknown channel is recorded and reaches nobody" \
	sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/audit?after=0' | grep -q '\"action\":\"discord\",\"decision\":\"deny\",\"reason\":\"a message from chat 999, which no group is for\"' && ! grep -q 'let me in' '$WORK/model.log'"

# A dropped socket: RESUME, and what came meanwhile is replayed and answered once.
ctl drop >/dev/null
dm "said while it was down"
wait_posted "echo: said while it was down"
check "after a dropped socket it RESUMEs with its session and last seq" \
	sh -c "jq -c 'select(.kind == \"resume\" and .ok and .session == \"sess-1\" and .seq > 0)' '$WORK/dc.log' | grep -q ."
check "and a message sent meanwhile is answered once" test "$(posted 'echo: said while it was down')" = 1
# RECONNECT (op 7)
resumes=$(count resume)
ctl reconnect >/dev/null
wait_until 10 sh -c "[ \$(grep -c '\"kind\":\"resume\"' '$WORK/dc.log') -gt $resumes ]"
dm "after op 7"
wait_posted "echo: after op 7"
check "RECONNECT (op 7): it resumes, messages keep coming" test "$(posted 'echo: after op 7')" = 1
# A heartbeat without its ACK: a zombie connection, dropped and resumed.
resumes=$(count resume)
ctl noack '{"n": 1}' >/dev/null
check "a heartbeat left without its ACK: the connection is dropped and resumed" \
	wait_until 10 sh -c "[ \$(grep -c '\"kind\":\"resume\"' '$WORK/dc.log') -gt $resumes ]"
# INVALID_SESSION, not resumable: a new IDENTIFY after 1-5 s.
ids=$(count identify)
ctl invalid_session '{"resumable": false}' >/dev/null
check "INVALID_SESSION (not resumable): a new session is identified" \
	wait_until 10 sh -c "[ \$(grep -c '\"kind\":\"identify\"' '$WORK/dc.log') -gt $ids ]"
dm "in the new session"
wait_posted "echo: in the new session"
check "and messages keep coming in it" test "$(posted 'echo: in the new session')" = 1

# 429: the body's retry_after (0.7 s) is waited.
ctl ratelimit '{"n": 1}' >/dev/null
dm "rate limited"
wait_posted "echo: rate limited"
T429=$(jq -r 'select(.kind == "429") | .t' "$WORK/dc.log" | tail -1)
TPOST=$(jq -r 'select(.kind == "posted" and .content == "echo: rate limited") | .t' "$WORK/dc.log")
check "a 429 is honoured: the retry came after its retry_after ($T429 -> $TPOST)" \
	sh -c "[ -n '$T429' ] && awk 'BEGIN { exit !($TPOST - $T429 >= 0.65) }' && [ $(posted 'echo: rate limited') = 1 ]"

# A long reply: split at 2,000.
LONG=$(head -c 2500 /dev/zero | tr '\0' 'b')
dm "$LONG"
wait_until 20 sh -c "jq -r 'select(.kind == \"posted\") | .content' '$WORK/dc.log' | grep -q '^b*\$'"
jq -r 'select(.kind == "posted" and .channel == "555") | .content | length' "$WORK/dc.log" | tail -2 >"$WORK/lens"
check "a 2,506-character reply goes out as two messages of at most 2,000 ($(tr '\n' ' ' <"$WORK/lens"))" \
	test "$(tr '\n' ' ' <"$WORK/lens")" = "2000 506 "

CHPID=$(pgrep -P "$SPID" -f "[c]lawbox-channel discord")
check "the channel is a process of its own, the daemon's child ($CHPID)" test -n "$CHPID"
check "no post lets the agent's text ping anyone (allowed_mentions with nothing to parse)" \
	sh -c "[ \$(jq -c 'select(.kind == \"api\" and (.method == \"POST\" or .method == \"PATCH\") and (.path | test(\"/messages\"))) | .body.allowed_mentions.parse' '$WORK/dc.log' | sort -u) = '[]' ]"
check "the token is in no log" sh -c "! grep -q 'TESTDISCORDBOTTOKEN' '$WORK/serve.err' '$WORK/serve.out'"

# A restart: the channel resumes from the stored cursor; nothing is answered twice.
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
dm "while the daemon was down"
resumes=$(count resume)
start_daemon
check "a restarted channel resumes its session from the stored cursor" \
	wait_until 15 sh -c "[ \$(grep -c '\"kind\":\"resume\"' '$WORK/dc.log') -gt $resumes ]"
wait_posted "echo: while the daemon was down"
sleep 1
check "what came while it was down is answered, and nothing twice" \
	sh -c "[ $(posted 'echo: while the daemon was down') = 1 ] && [ $(posted 'echo: said while it was down') = 1 ] && [ $(posted 'Step one done. Now step two.All done.') = 1 ]"
# The resumed channel got no READY: it still knows who it is (a mention of it counts).
guild 666 "<@$BOT_ID> still there after the restart" 1
wait_posted "echo: <@$BOT_ID> still there after the restart"
check "after resuming from the cursor a mention is still one" \
	test "$(posted "echo: <@$BOT_ID> still there after the restart")" = 1
CHPID=$(pgrep -P "$SPID" -f '[c]lawbox-channel discord')
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=
check "no channel process outlives the daemon" wait_until 5 sh -c "[ -n '$CHPID' ] && ! kill -0 '$CHPID' 2>/dev/null"
jq -r 'select(.kind == "posted") | .content' "$WORK/dc.log" | sort | uniq -d >"$WORK/doubles"
check "no message was posted twice in the whole run ($(head -c 80 "$WORK/doubles"))" test ! -s "$WORK/doubles"
[ -n "${KEEP_WORK:-}" ] && rm -rf "$KEEP_WORK" && cp -a "$WORK" "$KEEP_WORK"
done_testing
