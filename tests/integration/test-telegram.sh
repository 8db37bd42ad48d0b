#!/bin/bash
# test-telegram.sh: the Telegram channel against a fake Bot API on loopback: messages from
# configured chats reach their groups (in group chats only with the trigger), other chats are
# ignored and recorded, replies go back to the chat, and a restart neither re-reads an update
# nor sends a reply twice.
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
FAKE_TG=${FAKE_TG:-$TOP/build/tests/fake-telegram}
TG_TOKEN=123456:TEST-bot-token

echo '{"turns": [], "default": {"reply": {"echo": true}}}' >"$WORK/scenario.json"
"$FAKE" --scenario "$WORK/scenario.json" --log "$WORK/model.log" --port-file "$WORK/mport" &
MPID=$!
update() { # ID CHAT TYPE FROM TEXT
	printf '{"update_id": %s, "message": {"message_id": %s, "chat": {"id": %s, "type": "%s"}, "from": {"username": "%s"}, "text": "%s"}}' "$1" "$1" "$2" "$3" "$4" "$5"
}
{
	echo '['
	update 101 12345 private ana "hello from telegram"; echo ,
	update 102 777 group bob "just chatting, not for the bot"; echo ,
	update 103 777 group bob "@claw what time is it"; echo ,
	update 104 999 private mallory "let me in"
	echo ']'
} >"$WORK/updates.json"
"$FAKE_TG" --token "$TG_TOKEN" --updates "$WORK/updates.json" --log "$WORK/tg.log" \
	--port-file "$WORK/tport" &
TPID=$!
wait_until 5 test -s "$WORK/mport"
wait_until 5 test -s "$WORK/tport"
PORT=$((20000 + RANDOM % 20000))
cat >"$WORK/config.json" <<JSON
{"data_dir": "$WORK/data", "listen": "127.0.0.1:$PORT",
 "model": {"base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "groups": [{"id": "main", "main": true, "trigger": "@claw"}, {"id": "family"}],
 "telegram": {"token_env": "TG_TOKEN", "base_url": "http://127.0.0.1:$(cat "$WORK/tport")",
              "chats": {"12345": "family", "777": "main"}}}
JSON
start_daemon() {
	TG_TOKEN=$TG_TOKEN "$CLAWBOX" serve --config "$WORK/config.json" >>"$WORK/serve.out" 2>>"$WORK/serve.err" &
	SPID=$!
	wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
	TOKEN=$(cat "$WORK/data/api-token" 2>/dev/null)
}
sent() { grep '"method":"sendMessage"' "$WORK/tg.log" 2>/dev/null | grep -c -- "$1"; }
start_daemon
wait_until 20 sh -c "grep -q 'echo: @claw what time is it' '$WORK/tg.log' && grep -q 'echo: hello from telegram' '$WORK/tg.log'"
check "a private chat's message is answered in that chat" \
	test "$(sent '"chat_id":12345,"text":"echo: hello from telegram"')" = 1
check "a group chat's message with the trigger is answered there" \
	test "$(sent '"chat_id":777,"text":"echo: @claw what time is it"')" = 1
check "group chatter without the trigger does not reach the agent" \
	sh -c "! grep -q 'just chatting' '$WORK/model.log'"
check "an unknown chat reaches nobody" sh -c "! grep -q 'let me in' '$WORK/model.log' && ! grep -q '\"chat_id\":999' '$WORK/tg.log'"
curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/audit?after=0" >"$WORK/audit"
check "and is recorded" grep -q '"action":"telegram","decision":"deny","reason":"a message from chat 999' "$WORK/audit"
curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/groups/family/messages" >"$WORK/body"
check "the message is in the group's history with its sender" grep -q '"text":"hello from telegram","sender":"telegram:ana"' "$WORK/body"
check "the daemon's log has a line for each message received from Telegram, none for chatter" sh -c \
	"grep -q 'message received group=family chat=12345 bytes=19 from=telegram\$' '$WORK/serve.err' &&
	 [ \$(grep -c 'message received group=.*from=telegram' '$WORK/serve.err') = 2 ]"
curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/chats" >"$WORK/chats"
check "every chat seen is recorded, the unknown one with no group" sh -c \
	"grep -q '\"channel\":\"telegram\",\"chat_id\":\"999\",\"group\":\"\",\"kind\":\"private\"' '$WORK/chats' && grep -q '\"chat_id\":\"777\",\"group\":\"main\",\"kind\":\"group\"' '$WORK/chats'"
check "the bot token is in no log" sh -c "! grep -q 'TEST-bot-token' '$WORK/serve.err' '$WORK/serve.out'"

# A message from the API to the family also reaches its chat.
curl -s -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" --data '{"text": "via the api"}' \
	"http://127.0.0.1:$PORT/api/v1/groups/family/messages"
wait_until 20 sh -c "grep -q 'echo: via the api' '$WORK/tg.log'"
check "a group's replies go to its chat whatever channel asked" test "$(sent 'echo: via the api')" = 1

# Restart: nothing read twice, nothing sent twice; a new update is taken.
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
polls_before=$(grep -c getUpdates "$WORK/tg.log")
start_daemon
wait_until 10 sh -c "[ \$(grep -c getUpdates '$WORK/tg.log') -gt $polls_before ]"
check "after a restart it asks from the next update on" \
	sh -c "grep getUpdates '$WORK/tg.log' | tail -1 | grep -q '\"offset\":105'"
{
	echo '['
	update 105 12345 private ana "one more"
	echo ']'
} >"$WORK/updates.json.new"
mv "$WORK/updates.json.new" "$WORK/updates.json"
wait_until 20 sh -c "grep -q 'echo: one more' '$WORK/tg.log'"
sleep 1
check "and answers it" test "$(sent 'echo: one more')" = 1
check "no reply was sent twice" sh -c "[ $(sent 'echo: hello from telegram') = 1 ] && [ $(sent 'echo: via the api') = 1 ]"
check "no update was taken twice" \
	test "$(curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/groups/family/messages" | grep -o '"text":"hello from telegram"' | wc -l)" = 1
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=
check_clean "nothing left"
done_testing
