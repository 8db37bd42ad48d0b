#!/bin/bash
# test-matrix.sh: the Matrix channel (clawbox-channel matrix) through `clawbox serve` against
# a fake homeserver on loopback (fake-matrix.py): history is not answered; a message in a
# configured room is answered there; in a room with a trigger only with it or a mention;
# other rooms are recorded, not answered; streamed progress arrives as m.replace edits;
# typing is sent; invites are joined only for configured rooms; a 429 is waited out and the
# same transaction sent again; a duplicate event is answered once; and a restart syncs from
# the stored since token, reading and sending nothing twice.
. "$(dirname "$0")/lib.sh"
[ -n "${KEEP_WORK:-}" ] && trap 'cp -r "$WORK" "$KEEP_WORK"; cleanup_work' EXIT

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
MX_TOKEN=syt_test_matrix_access_token
FAM='!fam:test' MAIN='!main:test' OTHER='!other:test'

# The first request is a long run (progress, then edits); every later one is echoed.
cat >"$WORK/scenario.json" <<'JSON'
{"turns": [
  {"reply": {"text": "Step one.", "tool_calls": [{"id": "t1", "name": "bash", "input": {"command": "sleep 4.5"}}]}},
  {"reply": {"text": " Step two.", "tool_calls": [{"id": "t2", "name": "bash", "input": {"command": "sleep 4.5"}}]}},
  {"reply": {"text": " All done."}},
  {"reply": {"tool_calls": [{"id": "f1", "name": "send_file", "input": {"path": "report.txt"}}]}},
  {"reply": {"text": "report sent"}},
  {"reply": {"text": "LONGTEXT"}}],
 "default": {"reply": {"echo": true}}}
JSON
long=$(python3 -c 'print("".join("part %05d " % i + "y" * 89 + " " for i in range(400)))')
jq --arg long "$long" '.turns[5].reply.text = $long' "$WORK/scenario.json" >"$WORK/scenario.tmp" &&
	mv "$WORK/scenario.tmp" "$WORK/scenario.json"
"$FAKE" --scenario "$WORK/scenario.json" --log "$WORK/model.log" --port-file "$WORK/mport" &
MPID=$!
python3 "$TOP/tests/integration/fake-matrix.py" --token "$MX_TOKEN" --log "$WORK/mx.log" \
	--port-file "$WORK/xport" &
TPID=$!
wait_until 5 test -s "$WORK/mport"
wait_until 5 test -s "$WORK/xport"
MX=http://127.0.0.1:$(cat "$WORK/xport")
ctl() { curl -sf -X POST --data "$2" "$MX/_test/$1"; }
say() { # ROOM SENDER TEXT [EVENT_ID]
	ctl event "$(jq -nc --arg r "$1" --arg s "$2" --arg b "$3" --arg e "${4:-}" \
		'{room: $r, sender: $s, body: $b} + (if $e == "" then {} else {event_id: $e} end)')" >/dev/null
}
# The m.room.message sends the fake answered 200, as "ROOM<TAB>BODY" lines.
sends() {
	jq -r 'select(.method == "PUT" and (.path | test("/send/m.room.message/")) and .status == 200)
		| (.path | capture("/rooms/(?<r>[^/]*)/").r) + "\t" + .body.body' "$WORK/mx.log" 2>/dev/null
}
nsent() { sends | grep -cxF -- "$(printf '%s\t%s' "$1" "$2")"; }
# has FILTER: some logged request matches (jq -e alone judges by the last line only).
has() { [ -n "$(jq -c "select($1)" "$WORK/mx.log" 2>/dev/null | head -1)" ]; }
syncs() { jq -r 'select(.path == "/_matrix/client/v3/sync") | .query.since // "-"' "$WORK/mx.log"; }

printf '%s\n' "$MX_TOKEN" >"$WORK/mx-token"
chmod 600 "$WORK/mx-token"
say "$FAM" @ana:test "an old message, before the bot"
PORT=$((20000 + RANDOM % 20000))
cat >"$WORK/config.json" <<JSON
{"data_dir": "$WORK/data", "listen": "127.0.0.1:$PORT",
 "model": {"base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "groups": [{"id": "main", "main": true, "trigger": "@claw", "owners": ["matrix:@bob:test"]},
            {"id": "family", "owners": ["matrix:@ana:test"]}],
 "channels": [{"name": "mx", "kind": "matrix", "homeserver": "$MX", "token_file": "$WORK/mx-token",
               "poll_timeout_ms": 3000, "file_max": 1000, "chats": {"$FAM": "family", "$MAIN": "main"}},
              {"name": "mxbad", "kind": "matrix", "homeserver": "$MX", "token_env": "MX_BAD_TOKEN"}]}
JSON
start_daemon() {
	MX_BAD_TOKEN=not-the-token "$CLAWBOX" serve --config "$WORK/config.json" >>"$WORK/serve.out" 2>>"$WORK/serve.err" &
	SPID=$!
	wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
	TOKEN=$(cat "$WORK/data/api-token" 2>/dev/null)
}
api() { curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$1"; }

start_daemon
wait_until 15 has '.path == "/_matrix/client/v3/sync" and .query.since != null'
check "it signs in (whoami)" has '.path == "/_matrix/client/v3/account/whoami" and .status == 200'
check "and syncs with a filter: messages only" \
	test "$(jq -r 'select(.path == "/_matrix/client/v3/sync") | .query.filter | fromjson | .room.timeline.types == ["m.room.message"]' "$WORK/mx.log" | sort -u)" = true
api /api/v1/channels >"$WORK/channels"
check "GET /api/v1/channels: mx is connected" \
	test "$(jq '.channels[] | select(.name == "mx") | .kind == "matrix" and .state == "connected"' "$WORK/channels")" = true
check "a channel whose token the homeserver refuses is in state error, saying why" \
	test "$(jq '.channels[] | select(.name == "mxbad") | .state == "error" and (.last_error | test("401 M_UNKNOWN_TOKEN"))' "$WORK/channels")" = true

# A long run first: its progress message, then edits of it (m.replace), then the reply.
say "$FAM" @ana:test "work long please"
wait_until 40 sh -c "[ \$(jq -r 'select(.method == \"PUT\" and .status == 200) | .body.body' '$WORK/mx.log' | grep -c 'All done') -ge 1 ]"
check "the old message (history at the first sync) is not answered" \
	sh -c "! grep -q 'an old message' '$WORK/model.log'"
check "a long run shows its progress in a message of its own" \
	test "$(nsent "$FAM" '(working) Step one.')" = 1
prog_id=$(jq -r 'select(.method == "PUT" and .status == 200 and .body.body == "(working) Step one.") | .answer.event_id' "$WORK/mx.log" | head -1)
check "and edits it: m.replace of that event ($prog_id) with m.new_content" has \
	".method == \"PUT\" and .status == 200 and .body.\"m.relates_to\".rel_type == \"m.replace\" and .body.\"m.relates_to\".event_id == \"$prog_id\" and (.body.\"m.new_content\".body | test(\"Step one. Step two.\")) and (.body.body | startswith(\"* \"))"
check "the reply itself is a message of its own" \
	test "$(nsent "$FAM" 'Step one. Step two. All done.')" = 1
check "typing is sent to the room (PUT /rooms/R/typing/@claw:test)" \
	has ".method == \"PUT\" and .path == \"/_matrix/client/v3/rooms/$FAM/typing/@claw:test\" and .body.typing == true"

# send_file: uploaded to the media repository, then an m.file event after the text.
mkdir -p "$WORK/data/groups/family"
printf 'report body\n' >"$WORK/data/groups/family/report.txt"
say "$FAM" @ana:test "send me the report"
wait_until 20 sh -c "[ \$(sends | grep -c 'report sent') -ge 1 ]"
upload=$(jq -c 'select(.method == "POST" and .path == "/_matrix/media/v3/upload")' "$WORK/mx.log" | head -1)
check "send_file: the file is uploaded (POST /_matrix/media/v3/upload) with its bytes and name" \
	test "$(jq -r '.body + " " + .query.filename' <<<"$upload")" = "report body
 report.txt"
check "and sent to the room as an m.file with the content URI" \
	has ".method == \"PUT\" and .status == 200 and .body.msgtype == \"m.file\" and .body.body == \"report.txt\" and .body.url == \"$(jq -r .answer.content_uri <<<"$upload")\" and .body.info.size == 12"

# A long reply: split at 16,000 bytes, in order, nothing lost.
say "$FAM" @ana:test "tell me everything"
wait_until 20 sh -c "[ \$(sends | grep -c 'part 00399') -ge 1 ]"
jq -r 'select(.method == "PUT" and .status == 200 and (.body.body | length) > 1000) | .body.body' "$WORK/mx.log" >"$WORK/parts"
check "a long reply is sent in parts ($(wc -l <"$WORK/parts"))" test "$(wc -l <"$WORK/parts")" = 3
check "each at most 16,000 bytes, cut at a space, nothing lost or repeated, in order" sh -c \
	"awk 'length(\$0) > 16000 || (NR < 3 && !/ \$/) { bad = 1 } END { exit bad }' '$WORK/parts' && [ \"\$(tr -d '\n' <'$WORK/parts')\" = '$long' ]"

# Messages in, replies out.
say "$FAM" @ana:test "hello from matrix"
say "$MAIN" @bob:test "just chatting, not for the bot"
say "$MAIN" @bob:test "@claw what time is it"
ctl event "{\"room\": \"$MAIN\", \"sender\": \"@bob:test\", \"content\": {\"msgtype\": \"m.text\", \"body\": \"Claw: are you there\", \"m.mentions\": {\"user_ids\": [\"@claw:test\"]}}}" >/dev/null
say "$OTHER" @mallory:test "let me in"
wait_until 20 sh -c "[ \$(jq -r 'select(.method == \"PUT\" and .status == 200) | .body.body' '$WORK/mx.log' | grep -c '^echo: ') -ge 3 ]"
check "a room's message is answered in that room" test "$(nsent "$FAM" 'echo: hello from matrix')" = 1
check "in a room with a trigger: a message with it is answered" \
	test "$(nsent "$MAIN" 'echo: @claw what time is it')" = 1
check "and one that mentions the bot (m.mentions)" test "$(nsent "$MAIN" 'echo: Claw: are you there')" = 1
check "chatter without the trigger does not reach the agent" \
	sh -c "! grep -q 'just chatting' '$WORK/model.log'"
api /api/v1/groups/family/messages >"$WORK/fam"
check "our own messages (echoed by the server) are not taken as messages" \
	sh -c "! grep -q 'echo: echo:' '$WORK/model.log' && ! grep -q 'matrix:@claw:test' '$WORK/fam'"
check "a room no group is for reaches nobody" \
	sh -c "! grep -q 'let me in' '$WORK/model.log' && [ \$(sends | grep -c '^$OTHER') = 0 ]"
api "/api/v1/audit?after=0" >"$WORK/audit"
check "and is recorded" grep -q "a message from chat $OTHER, which no group is for" "$WORK/audit"
api /api/v1/groups/family/messages >"$WORK/fam"
check "the message is in the group's history with its sender" \
	grep -q '"text":"hello from matrix","sender":"matrix:@ana:test"' "$WORK/fam"

# Invites: a configured room is joined, any other refused (left) and recorded.
ctl invite "{\"room\": \"$MAIN\", \"sender\": \"@bob:test\"}" >/dev/null
ctl invite '{"room": "!evil:test", "sender": "@mallory:test"}' >/dev/null
wait_until 10 has '.path == "/_matrix/client/v3/rooms/!evil:test/leave"'
check "an invite to a configured room is joined" \
	has ".method == \"POST\" and .path == \"/_matrix/client/v3/join/$MAIN\""
check "an invite to an unconfigured room is not joined" \
	test -z "$(jq -c 'select(.path | test("join/!evil"))' "$WORK/mx.log")"
check "but refused (left)" has '.method == "POST" and .path == "/_matrix/client/v3/rooms/!evil:test/leave"'

wait_until 5 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/audit?after=0' | grep -q 'chat !evil:test'"
api "/api/v1/audit?after=0" >"$WORK/audit"
check "and recorded" grep -q 'a message from chat !evil:test, which no group is for' "$WORK/audit"

# A message holding a NUL (valid JSON, "\u0000") is left out, and the sync goes on.
ctl event "{\"room\": \"$FAM\", \"sender\": \"@ana:test\", \"content\": {\"msgtype\": \"m.text\", \"body\": \"nul\\u0000inside\"}}" >/dev/null
say "$FAM" @ana:test "after the nul"
wait_until 15 sh -c "[ \$(sends | grep -c 'echo: after the nul') -ge 1 ]"
check "a message with a NUL in it is left out, and the next one is answered" \
	sh -c "[ $(nsent "$FAM" 'echo: after the nul') = 1 ] && ! grep -q 'nul.u0000inside' '$WORK/model.log'"

# A duplicate event (the same event id twice): answered once.
say "$FAM" @ana:test "said once" '$dup1:test'
say "$FAM" @ana:test "said once" '$dup1:test'
wait_until 15 sh -c "jq -r 'select(.method == \"PUT\" and .status == 200) | .body.body' '$WORK/mx.log' | grep -q 'echo: said once'"
sleep 2
check "a duplicate event is answered once" test "$(nsent "$FAM" 'echo: said once')" = 1

# 429 M_LIMIT_EXCEEDED: waited out (retry_after_ms), then the same transaction again.
ctl ratelimit '{"match": "/send/", "count": 1, "retry_after_ms": 1500}' >/dev/null
say "$FAM" @ana:test "slow down"
wait_until 20 sh -c "jq -r 'select(.method == \"PUT\" and .status == 200) | .body.body' '$WORK/mx.log' | grep -q 'echo: slow down'"
limited=$(jq -c 'select(.status == 429)' "$WORK/mx.log" | head -1)
ok_line=$(jq -c 'select(.method == "PUT" and .status == 200 and .body.body == "echo: slow down")' "$WORK/mx.log" | head -1)
gap=$(jq -n --argjson a "$limited" --argjson b "$ok_line" '(($b.at - $a.at) * 1000) | floor')
check "a 429 is honoured: the send comes again after retry_after_ms ($gap ms)" \
	sh -c "[ -n '$limited' ] && [ $gap -ge 1400 ]"
check "with the same transaction id (so it cannot be doubled)" \
	test "$(jq -r --argjson a "$limited" '$a.path')" = "$(jq -r --argjson b "$ok_line" '$b.path')"
check "and is sent once" test "$(nsent "$FAM" 'echo: slow down')" = 1
check "the access token is in no log" \
	sh -c "! grep -q '$MX_TOKEN' '$WORK/serve.err' '$WORK/serve.out' '$WORK/mx.log'"

# Attachments: downloaded (authenticated media API) into the group's inbox, size-capped.
ctl media '{"id": "note1", "data": "attached bytes"}' >/dev/null
ctl media "{\"id\": \"big1\", \"data\": \"$(head -c 3000 /dev/zero | tr '\0' x)\"}" >/dev/null
file_event() { # BODY ID SIZE
	ctl event "{\"room\": \"$FAM\", \"sender\": \"@ana:test\", \"content\": {\"msgtype\": \"m.file\", \"body\": \"$1\", \"url\": \"mxc://test/$2\", \"info\": {\"size\": $3, \"mimetype\": \"text/plain\"}}}" >/dev/null
}
file_event note.txt note1 14
file_event big.txt big1 3000
wait_until 20 sh -c "[ \$(sends | grep -c 'echo: big.txt') -ge 1 ]"
check "a file is downloaded from the media API" \
	has '.method == "GET" and .path == "/_matrix/client/v1/media/download/test/note1" and .status == 200'
inbox=
for f in "$WORK/data/groups/family/inbox/"*note.txt; do [ -f "$f" ] && inbox=${f##*/}; done
check "into the group's inbox ($inbox)" sh -c "[ -n '$inbox' ] && [ \"\$(cat '$WORK/data/groups/family/inbox/$inbox')\" = 'attached bytes' ]"
api /api/v1/groups/family/messages >"$WORK/fam"
check "and the message says where" grep -q "note.txt\\\\n\\[attachment: inbox/$inbox, 14 bytes\\]" "$WORK/fam"
check "a file past file_max is not fetched, and the message says so" sh -c \
	"! grep -q 'media/download/test/big1' '$WORK/mx.log' && grep -q 'big.txt\\\\n(an attachment that was not fetched: 3000 bytes, past the channel' '$WORK/fam'"

# A 429 on /sync is waited out too.
n0=$(wc -l <"$WORK/mx.log")
ctl ratelimit '{"match": "/sync", "count": 1, "retry_after_ms": 2000}' >/dev/null
say "$FAM" @ana:test "after the sync limit"
wait_until 20 sh -c "[ \$(sends | grep -c 'echo: after the sync limit') -ge 1 ]"
gap=$(tail -n +$((n0 + 1)) "$WORK/mx.log" | jq -s '[.[] | select(.path == "/_matrix/client/v3/sync")] | (map(select(.status == 429)) | .[0].at) as $t | (map(select(.status == 200 and .at > $t)) | .[0].at) - $t | . * 1000 | floor')
check "a 429 on /sync: the next one waits retry_after_ms ($gap ms)" test "${gap:-0}" -ge 1900

# The channel's process killed: restarted by the daemon, it syncs on from the stored token.
CHPID=$(pgrep -P "$SPID" -f 'clawbox-channel matrix' | head -1)
for p in $(pgrep -P "$SPID" -f 'clawbox-channel matrix'); do
	tr '\0' '\n' <"/proc/$p/environ" | grep -q MX_BAD_TOKEN || CHPID=$p
done
kill -9 "$CHPID"
wait_until 10 sh -c "[ \$(pgrep -P $SPID -f 'clawbox-channel matrix' | grep -vc '^$CHPID\$') -ge 2 ]"
say "$FAM" @ana:test "after the crash"
wait_until 20 sh -c "[ \$(sends | grep -c 'echo: after the crash') -ge 1 ]"
sleep 1
check "after its channel was killed, a new message is answered once" test "$(nsent "$FAM" 'echo: after the crash')" = 1
check "and nothing before it again" sh -c "[ $(nsent "$FAM" 'echo: after the sync limit') = 1 ] && [ $(nsent "$FAM" 'echo: slow down') = 1 ]"

# Restart: the first sync is from the stored since token; nothing read or sent twice.
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
last_batch=$(syncs | tail -1)
n_before=$(wc -l <"$WORK/mx.log")
start_daemon
wait_until 15 sh -c "tail -n +$((n_before + 1)) '$WORK/mx.log' | grep -q '\"path\": \"/_matrix/client/v3/sync\"'"
first=$(tail -n +$((n_before + 1)) "$WORK/mx.log" | jq -r 'select(.path == "/_matrix/client/v3/sync") | .query.since // "-"' | head -1)
check "after a restart it syncs from the stored since token ($first, last before: $last_batch)" \
	sh -c "[ '$first' != '-' ] && [ '$first' != '' ]"
say "$FAM" @ana:test "one more"
wait_until 20 sh -c "jq -r 'select(.method == \"PUT\" and .status == 200) | .body.body' '$WORK/mx.log' | grep -q 'echo: one more'"
sleep 1
check "and answers a new message" test "$(nsent "$FAM" 'echo: one more')" = 1
check "no reply was sent twice" sh -c \
	"[ $(nsent "$FAM" 'echo: hello from matrix') = 1 ] && [ $(nsent "$MAIN" 'echo: @claw what time is it') = 1 ] && [ $(nsent "$FAM" 'echo: slow down') = 1 ]"
check "no message was taken twice" \
	test "$(api /api/v1/groups/family/messages | grep -o '"text":"hello from matrix"' | wc -l)" = 1
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=
check_clean "nothing left"
done_testing
