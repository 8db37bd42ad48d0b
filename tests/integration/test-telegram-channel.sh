#!/bin/bash
# test-telegram-channel.sh: Telegram as its own process (clawbox-channel telegram) against the
# fake Bot API: a refused token is state "error" with Telegram's words, a token file must be
# 0600, a document comes in as a file in the group's inbox, a long reply is split at 4096, a
# send_file goes out as sendDocument, typing is shown, approval buttons are answered by the
# group's approver only, and a channel killed mid-run restarts with nothing lost or doubled.
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
FAKE_TG=${FAKE_TG:-$TOP/build/tests/fake-telegram}
TG_TOKEN=123456:CHANNEL-bot-token
DATA=$WORK/data

long=$(python3 -c 'print("\n".join(["line %03d " % i + "x" * 90 for i in range(90)]))')
jq -n --arg long "$long" '{"turns": [
  {"reply": {"echo": true}},
  {"reply": {"text": $long}},
  {"reply": {"tool_calls": [{"id": "f1", "name": "send_file", "input": {"path": "report.txt"}}]}},
  {"reply": {"text": "report sent"}},
  {"reply": {"tool_calls": [{"id": "s1", "name": "send_message", "input": {"text": "ops-hello"}}]}},
  {"reply": {"text": "ops done"}},
  {"reply": {"echo": true}, "delay_ms": 4000}
 ], "default": {"reply": {"echo": true}}}' >"$WORK/scenario.json"
"$FAKE" --scenario "$WORK/scenario.json" --log "$WORK/model.log" --port-file "$WORK/mport" &
MPID=$!
mkdir -p "$WORK/files"
printf 'the notes\n' >"$WORK/files/doc1"
echo '[]' >"$WORK/updates.json"
"$FAKE_TG" --token "$TG_TOKEN" --updates "$WORK/updates.json" --log "$WORK/tg.log" \
	--port-file "$WORK/tport" --files "$WORK/files" --delay-ms 400 &
TPID=$!
wait_until 5 test -s "$WORK/mport"
wait_until 5 test -s "$WORK/tport"
TG=http://127.0.0.1:$(cat "$WORK/tport")
printf '%s\n' "$TG_TOKEN" >"$WORK/token-open"
chmod 644 "$WORK/token-open"
printf '%s\n' "$TG_TOKEN" >"$WORK/token-ok"
chmod 600 "$WORK/token-ok"
PORT=$((20000 + RANDOM % 20000))
cat >"$WORK/config.json" <<JSON
{"data_dir": "$DATA", "listen": "127.0.0.1:$PORT",
 "model": {"base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "groups": [{"id": "main", "main": true}, {"id": "family", "owners": ["telegram:7"]},
            {"id": "ops", "approvers": ["telegram:42"], "owners": ["telegram:42"],
             "policy": {"host_actions": {"send_message": "ask"}, "approval_timeout": 60}}],
 "channels": [{"name": "tg", "kind": "telegram", "token_env": "TG_TOKEN", "base_url": "$TG",
               "chats": {"12345": "family", "555": "ops", "12346": "family"}},
              {"name": "badtoken", "kind": "telegram", "token_env": "BAD_TOKEN", "base_url": "$TG"},
              {"name": "openfile", "kind": "telegram", "token_file": "$WORK/token-open", "base_url": "$TG"},
              {"name": "nofile", "kind": "telegram", "token_file": "$WORK/token-ok", "base_url": "$TG",
               "chats": {"4711": "main"}}]}
JSON
mkdir -p "$DATA/groups/family"
echo "report body" >"$DATA/groups/family/report.txt"
is_root && chown -R "$SANDBOX_HOST_UID:$SANDBOX_HOST_UID" "$DATA/groups"
chmod 700 "$DATA" "$DATA/groups" 2>/dev/null
start_daemon() {
	TG_TOKEN=$TG_TOKEN BAD_TOKEN=999:WRONG-token "$CLAWBOX" serve --config "$WORK/config.json" \
		>>"$WORK/serve.out" 2>>"$WORK/serve.err" &
	SPID=$!
	wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
	TOKEN=$(cat "$DATA/api-token" 2>/dev/null)
}
api() { curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$1"; }
UPD=100
updates() { # JSON objects (without update_id) appended as new updates
	local all u
	all=$(cat "$WORK/updates.json")
	for u in "$@"; do
		UPD=$((UPD + 1))
		all=$(jq -c --argjson u "$u" --argjson id "$UPD" '. + [{"update_id": $id} + $u]' <<<"$all")
	done
	echo "$all" >"$WORK/updates.json.new"
	mv "$WORK/updates.json.new" "$WORK/updates.json"
}
msg() { # CHAT FROM_ID TEXT
	printf '{"message": {"message_id": %s, "chat": {"id": %s, "type": "private"}, "from": {"id": %s, "username": "u%s"}, "text": "%s"}}' \
		$((UPD + 1)) "$1" "$2" "$2" "$3"
}
tg_calls() { grep -c "\"method\":\"$1\"" "$WORK/tg.log" 2>/dev/null; }
state() { api /api/v1/channels | jq -r --arg n "$1" '.channels[] | select(.name == $n) | "\(.state): \(.last_error)"'; }

start_daemon
wait_until 10 sh -c "grep -q 'unauthorized' '$WORK/tg.log'"
wait_until 5 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' http://127.0.0.1:$PORT/api/v1/channels | grep -q '\"name\":\"nofile\",\"kind\":\"telegram\",\"state\":\"connected\"'"
S_BAD=$(state badtoken)
S_OPEN=$(state openfile)
check "a token Telegram refuses: state error with its words ($S_BAD)" \
	test "$S_BAD" = 'error: getUpdates: Unauthorized (HTTP 401): the bot token is refused'
check "a token file others can read is refused, not used ($S_OPEN)" \
	grep -q '^error: token_file .*token-open: expected a regular file of ours, mode 0600$' <<<"$S_OPEN"
check "a 0600 token file is used ($(state nofile))" test "$(state nofile)" = "connected: null"
CPID=$(grep 'channel tg: started (telegram, pid' "$WORK/serve.err" | tail -1 | sed 's/.*pid \([0-9]*\)).*/\1/')
check "a channel runs with no capability and no-new-privs" sh -c \
	"grep -q '^CapEff:	0000000000000000' /proc/$CPID/status && grep -q '^CapBnd:	0000000000000000' /proc/$CPID/status && grep -q '^NoNewPrivs:	1' /proc/$CPID/status"
check "and none of the daemon's environment but its token's variable" sh -c \
	"tr '\\0' '\\n' </proc/$CPID/environ | grep -q '^TG_TOKEN=' && ! tr '\\0' '\\n' </proc/$CPID/environ | grep -q '^BAD_TOKEN='"
check "the refused token is not in any log" sh -c "! grep -q 'WRONG-token\|CHANNEL-bot-token' '$WORK/serve.err' '$WORK/serve.out'"

# A document in: fetched with getFile, kept in the family's inbox, named in the message.
updates '{"message": {"message_id": 1, "chat": {"id": 12345, "type": "private"}, "from": {"id": 7, "username": "ana"}, "caption": "here is a doc", "document": {"file_id": "doc1", "file_name": "notes.txt", "file_size": 10, "mime_type": "text/plain"}}}'
wait_until 20 sh -c "grep -q 'echo: here is a doc' '$WORK/tg.log'"
check "a document comes in through getFile and a download" sh -c "[ $(tg_calls getFile) = 1 ] && [ $(tg_calls download) = 1 ]"
check "into the group's inbox" sh -c "[ \"\$(cat '$DATA/groups/family/inbox/tg-12345_1-0-notes.txt')\" = 'the notes' ]"
check "and the agent is told where it is" grep -q 'here is a doc\\n\[attachment: inbox/tg-12345_1-0-notes.txt, 10 bytes\]' "$WORK/model.log"
check "the reply quotes the message it answers" sh -c \
	"grep 'echo: here is a doc' '$WORK/tg.log' | grep -q '\"reply_parameters\":{\"message_id\":1,'"
check "typing is shown in the chat while it works" grep -q '"method":"sendChatAction","body":{"chat_id":12345,"action":"typing"}' "$WORK/tg.log"

# A long reply: split at Telegram's 4096, at line breaks, every line there once.
updates "$(msg 12345 7 'long please')"
wait_until 20 sh -c "grep -q 'line 089' '$WORK/tg.log'"
grep '"method":"sendMessage"' "$WORK/tg.log" | grep 'line 0' >"$WORK/parts"
check "a long reply is sent in parts ($(wc -l <"$WORK/parts"))" test "$(wc -l <"$WORK/parts")" = 3
check "each at most 4096 characters" sh -c "jq -r '.body.text | length' '$WORK/parts' | awk '\$1 > 4096 { bad = 1 } END { exit bad }'"
check "cut at line breaks, nothing lost or repeated" \
	test "$(jq -r '.body.text' "$WORK/parts" | grep -c '^line ')" = 90

# send_file: the copy the daemon kept goes out as a document.
updates "$(msg 12345 7 'send me the report')"
wait_until 20 sh -c "grep -q 'report sent' '$WORK/tg.log'"
check "send_file goes out as sendDocument" test "$(tg_calls sendDocument)" = 1
check "with the file's bytes and name" sh -c "grep -q 'report body' '$WORK/files/upload-1' && grep -q 'filename=\"report.txt\"' '$WORK/files/upload-1'"

# Approvals: buttons in the ops chat; a stranger's press is refused, the approver's runs it.
updates "$(msg 555 42 'ops ask')"
wait_until 20 sh -c "grep -q 'inline_keyboard' '$WORK/tg.log'"
AP=$(grep inline_keyboard "$WORK/tg.log" | head -1 | sed -n 's/.*"callback_data":"ap:\([0-9]*\):approve".*/\1/p')
check "an approval becomes buttons in the group's chat (approval $AP)" sh -c \
	"grep inline_keyboard '$WORK/tg.log' | grep -q '\"chat_id\":555' && grep inline_keyboard '$WORK/tg.log' | grep -q 'ap:$AP:deny' && grep inline_keyboard '$WORK/tg.log' | grep -q 'ap:$AP:run'"
updates "{\"callback_query\": {\"id\": \"cb1\", \"from\": {\"id\": 99}, \"data\": \"ap:$AP:approve\", \"message\": {\"message_id\": 5, \"chat\": {\"id\": 555}}}}"
wait_until 10 sh -c "grep -q '\"callback_query_id\":\"cb1\"' '$WORK/tg.log'"
check "a stranger's press is refused, and Telegram tells them" \
	sh -c "grep '\"callback_query_id\":\"cb1\"' '$WORK/tg.log' | grep -q 'Refused: telegram:99 is not an approver of ops'"
check "and audited" sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/audit?after=0' | grep -q 'answer to approval $AP by telegram:99 refused'"
check "nothing was sent for it" sh -c "! grep -q '\"chat_id\":555,\"text\":\"ops-hello' '$WORK/tg.log'"
updates "{\"callback_query\": {\"id\": \"cb2\", \"from\": {\"id\": 42}, \"data\": \"ap:$AP:approve\", \"message\": {\"message_id\": 5, \"chat\": {\"id\": 555}}}}"
wait_until 20 sh -c "grep -q 'ops done' '$WORK/tg.log'"
check "the approver's press runs it" grep -q '"chat_id":555,"text":"ops-hello"' "$WORK/tg.log"
check "and Telegram tells them" sh -c "grep '\"callback_query_id\":\"cb2\"' '$WORK/tg.log' | grep -q 'Approval $AP: approved.'"
check "and the buttons go" grep -q '"method":"editMessageReplyMarkup","body":{"chat_id":555,"message_id":5,"reply_markup":{"inline_keyboard":\[\]}}' "$WORK/tg.log"
check "a stranger's press left them" test "$(grep -c editMessageReplyMarkup "$WORK/tg.log")" = 1

# A crash mid-run: the channel is killed while the model takes 4 s; it restarts and the
# reply goes out once; the update is not read again.
updates "$(msg 12345 7 'slow one')"
wait_until 20 sh -c "grep -q 'slow one' '$WORK/model.log'"
PID=$(grep 'channel tg: started (telegram, pid' "$WORK/serve.err" | tail -1 | sed 's/.*pid \([0-9]*\)).*/\1/')
kill -9 "$PID"
wait_until 20 sh -c "grep -q 'echo: slow one' '$WORK/tg.log'"
sleep 1
check "a killed channel is restarted ($(grep -c 'channel tg: started' "$WORK/serve.err") starts)" \
	test "$(grep -c 'channel tg: started' "$WORK/serve.err")" = 2
check "its reply goes out once" test "$(grep -c 'echo: slow one' "$WORK/tg.log")" = 1
check "the update was not taken twice" \
	test "$(api /api/v1/groups/family/messages | grep -o '"text":"slow one"' | wc -l)" = 1
check "nothing sent before was sent again" sh -c "[ \$(grep -c 'report sent' '$WORK/tg.log') = 1 ] && [ \$(grep -c 'echo: here is a doc' '$WORK/tg.log') = 1 ]"
api /api/v1/channels >"$WORK/channels"
check "GET /api/v1/channels counts the restart" \
	sh -c "jq -e '.channels[] | select(.name == \"tg\") | .restarts == 1 and .state == \"connected\" and (.chats | sort) == [\"12345\", \"12346\", \"555\"]' '$WORK/channels' >/dev/null"

# A group with two chats: a reply goes back to the chat its message came from.
updates "$(msg 12346 8 'from the second chat')"
wait_until 20 sh -c "grep -q 'echo: from the second chat' '$WORK/tg.log'"
check "a reply goes back to the chat its message came from" \
	grep -q '"chat_id":12346,"text":"echo: from the second chat"' "$WORK/tg.log"

# Telegram's flood limit: a 429 with retry_after; the part is sent again after it, once.
updates "$(msg 12345 7 'FLOOD me')"
wait_until 20 sh -c "[ \$(grep -c 'echo: FLOOD me' '$WORK/tg.log') = 2 ]"
sleep 1
check "a reply refused with 429 is sent again after retry_after, and only that once ($(grep -c 'echo: FLOOD me' "$WORK/tg.log"))" \
	test "$(grep -c 'echo: FLOOD me' "$WORK/tg.log")" = 2
api '/api/v1/audit?after=0' >"$WORK/audit"
check "and not reported as failed" sh -c "! grep -q 'not delivered' '$WORK/audit'"
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=
check "the daemon links no libcurl" sh -c "! ldd '$TOP/clawbox-serve' | grep -q libcurl && ! grep -rq dlopen '$TOP/src/daemon'"
check_clean "nothing left"
done_testing
