#!/bin/bash
# test-channel-faults.sh: channels that break the channel protocol (bad-channel.py, one way
# per kind) are cut off, audited and restarted, and the daemon lives on; a well-behaved one
# that reports a chat no group is for is recorded (bounded) and not cut off; a message
# delivered twice with one ext_id is stored once, also across a daemon restart; an
# attachment lands in the group's inbox.
. "$(dirname "$0")/lib.sh"

PORT=$((20000 + RANDOM % 20000))
DATA=$WORK/data
BAD_CHANNEL_LOG=$WORK/channels.log
: >"$BAD_CHANNEL_LOG"
cat >"$WORK/config.json" <<JSON
{"data_dir": "$DATA", "listen": "127.0.0.1:$PORT",
 "groups": [{"id": "main", "main": true}, {"id": "ops", "approvers": ["telegram:42"]}],
 "channels": [{"name": "garbage", "kind": "garbage", "log": "$BAD_CHANNEL_LOG"},
              {"name": "huge", "kind": "oversize", "log": "$BAD_CHANNEL_LOG"},
              {"name": "ghost", "kind": "badref", "log": "$BAD_CHANNEL_LOG"},
              {"name": "impostor", "kind": "impostor", "log": "$BAD_CHANNEL_LOG", "chats": {"c1": "ops"}},
              {"name": "fdlie", "kind": "fdlie", "log": "$BAD_CHANNEL_LOG", "chats": {"c1": "main"}},
              {"name": "hostfile", "kind": "hostfile", "log": "$BAD_CHANNEL_LOG", "chats": {"c1": "main"}},
              {"name": "stranger", "kind": "unknownchat", "log": "$BAD_CHANNEL_LOG", "chats": {"c1": "main"}}]}
JSON
start_daemon() {
	CLAWBOX_CHANNEL_EXE=$TOP/tests/integration/bad-channel.py \
		"$CLAWBOX" serve --config "$WORK/config.json" >>"$WORK/serve.out" 2>>"$WORK/serve.err" &
	SPID=$!
	wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
	TOKEN=$(cat "$DATA/api-token" 2>/dev/null)
}
api() { curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$1"; }
starts() { grep -c "^$1 start" "$BAD_CHANNEL_LOG"; }

start_daemon
restarted() { # NAME...: each started at least twice
	local n
	for n in "$@"; do [ "$(grep -c "^$n start" "$BAD_CHANNEL_LOG")" -ge 2 ] || return 1; done
}
wait_until 20 restarted garbage huge ghost impostor fdlie hostfile
api "/api/v1/audit?after=0" >"$WORK/audit"
for c in garbage:'not JSON' huge:'past the bounds' ghost:'a receipt for ref 987654, which it was not given' \
	impostor:'an answer as cli, who is not of this channel' fdlie:'attachment 0 is not a file of the size it names' \
	hostfile:'attachment 0 is not a sealed memfd'; do
	name=${c%%:*} why=${c#*:}
	check "$name is cut off, audited with why ($why)" grep -q "\"action\":\"channel\",\"decision\":\"deny\",\"reason\":\"channel $name cut off: [^\"]*$why" "$WORK/audit"
	check "and restarted ($(starts "$name") starts)" test "$(starts "$name")" -ge 2
done
check "the daemon lives on" curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
api /api/v1/channels >"$WORK/channels"
check "GET /api/v1/channels: web first, then every channel" \
	test "$(jq -r '[.channels[].name] | join(",")' "$WORK/channels")" = "web,garbage,huge,ghost,impostor,fdlie,hostfile,stranger"
check "a cut-off channel shows restarts and why (last_error)" \
	sh -c "jq -e '.channels[] | select(.name == \"ghost\") | .restarts >= 1 and (.state == \"restarting\" or .state == \"connected\" or .state == \"connecting\") and (.last_error | test(\"ref 987654\"))' '$WORK/channels' >/dev/null"
check "each row has the contract's fields" sh -c \
	"jq -e '[.channels[] | has(\"name\") and has(\"kind\") and has(\"state\") and has(\"last_error\") and has(\"since\") and has(\"restarts\") and has(\"chats\")] | all' '$WORK/channels' >/dev/null"
api /api/v1/groups/main/messages >"$WORK/main"
check "the lying attachments delivered nothing" sh -c "! grep -q 'see file\|see passwd' '$WORK/main' && ! ls '$DATA/groups/main/inbox' | grep -q passwd"

check "the well-behaved channel is not cut off (1 start)" test "$(starts stranger)" = 1
check "it is connected" sh -c \
	"jq -e '.channels[] | select(.name == \"stranger\") | .state == \"connected\" and .last_error == null' '$WORK/channels' >/dev/null"
check "messages from a chat no group is for are recorded, at most 20 one by one" \
	test "$(grep -o '"reason":"a message from chat c9, which no group is for"' "$WORK/audit" | wc -l)" = 20
check "and reach nobody" sh -c "! grep -q 'let me in' '$WORK/audit' '$WORK/main'"
check "every message was answered stored (33)" test "$(grep -c '^stranger got stored' "$BAD_CHANNEL_LOG")" = 33
api /api/v1/groups/main/messages >"$WORK/main"
check "a message delivered twice with one ext_id is stored once" \
	test "$(grep -o '"text":"hello from a channel"' "$WORK/main" | wc -l)" = 1
check "with its sender as KIND:ID" grep -q '"text":"hello from a channel","sender":"unknownchat:u1"' "$WORK/main"
check "an attachment is in the group's inbox, and the message says where" sh -c \
	"grep -q 'a file for you\\\\n\\[attachment: inbox/stranger-m2-0-note.txt, 15 bytes\\]' '$WORK/main' && [ \"\$(cat '$DATA/groups/main/inbox/stranger-m2-0-note.txt')\" = 'attached bytes' ]"
api /api/v1/chats >"$WORK/chats"
check "the unknown chat is among the chats seen, with no group" \
	grep -q '"channel":"stranger","chat_id":"c9","group":""' "$WORK/chats"

# A restart of the daemon: the channel starts from its cursor and delivers the same again;
# nothing is stored twice.
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
alive=0
for pid in $(sed -n 's/.* start .*pid=\([0-9]*\)$/\1/p' "$BAD_CHANNEL_LOG"); do
	kill -0 "$pid" 2>/dev/null && alive=$((alive + 1))
done
check "the channels end with the daemon ($alive left)" test "$alive" = 0
start_daemon
wait_until 10 sh -c "[ \$(grep -c '^stranger start' '$BAD_CHANNEL_LOG') = 2 ]"
wait_until 10 sh -c "[ \$(grep -c '^stranger got stored' '$BAD_CHANNEL_LOG') = 66 ]"
check "after a restart the channel gets its stored cursor" grep -q '^stranger start cursor=cur-m2 ' "$BAD_CHANNEL_LOG"
check "and what it delivers again is not stored again" \
	test "$(api /api/v1/groups/main/messages | grep -o '"text":"hello from a channel"' | wc -l)" = 1
check "nor is its file kept twice" test "$(ls "$DATA/groups/main/inbox" | wc -l)" = 1
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=
check_clean "nothing left"
done_testing
