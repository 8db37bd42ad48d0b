#!/bin/bash
# test-xmpp.sh: the XMPP channel (clawbox-channel xmpp) against a real Prosody started here
# on a loopback port (TLS required, a CA of the test's own). The bot and the people talking
# to it are each a clawbox-channel xmpp under chan-driver.py (which plays the daemon's side
# of the channel protocol), so every stanza goes through the real server: one-to-one in and
# out, files both ways (XEP-0363 upload to Prosody's mod_http_file_share, the GET URL as
# XEP-0066 out-of-band data, fetched by the other side, size caps on both), a room (MUC)
# mention in and the answer in the room, no echo of our own, no room
# history after a restart, offline messages delivered once, a stranger's JID reported as its
# own chat (which the daemon does not deliver), reconnection when the server comes back.
# Then the whole way through clawbox serve: one-to-one and a room mention answered by the
# agent, room chatter and an unknown JID reaching no agent (the latter recorded).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/xmpp-server.sh"

CHANNEL=${CHANNEL:-$TOP/clawbox-channel}
DRIVER=$TOP/tests/integration/chan-driver.py
ROOM=room@conference.localhost
declare -A DPIDS
stop_one() { # WHO
	local p=${DPIDS[$1]:-}
	[ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	DPIDS[$1]=
}
stop_all() { local w; for w in "${!DPIDS[@]}"; do stop_one "$w"; done; }
trap 'stop_all; cleanup_prosody; cleanup_work' EXIT

if ! start_prosody; then
	not_ok "Prosody starts (see $XMPP_DIR)"
	echo "1..$T_NUM"
	exit 1
fi
ok "Prosody runs on loopback port $XMPP_PORT"

start_one() { # WHO (bot, alice, mallory) [FILE_URLS (JSON list), default this Prosody's]
	local urls=${2:-'["http://127.0.0.1:'$XMPP_HTTP_PORT'/"]'}
	printf 'pw-%s\n' "$1" >"$WORK/$1.pw"
	chmod 600 "$WORK/$1.pw"
	cat >"$WORK/$1.json" <<JSON
{"jid": "$1@localhost", "host": "127.0.0.1", "port": $XMPP_PORT, "ca_file": "$XMPP_CA",
 "token_file": "$WORK/$1.pw", "rooms": ["$ROOM"], "nick": "$1", "max_chars": 100,
 "file_urls": $urls, "file_max": 200000}
JSON
	: >"$WORK/$1.cmds"
	mkdir -p "$WORK/$1.files"
	python3 "$DRIVER" --channel "$CHANNEL" --kind xmpp --config "$WORK/$1.json" \
		--log "$WORK/$1.frames" --commands "$WORK/$1.cmds" --stderr "$WORK/$1.err" \
		--files "$WORK/$1.files" &
	DPIDS[$1]=$!
}
export WORK
has() { grep -q -- "$2" "$WORK/$1.frames" 2>/dev/null; } # WHO PATTERN
count() { cat "$WORK/$1.frames" 2>/dev/null | grep -c -- "$2"; }
export -f has count
say() { # WHO REF CHAT TEXT
	printf '{"t": "reply", "ref": %s, "chat": "%s", "text": "%s"}\n' "$2" "$3" "$4" >>"$WORK/$1.cmds"
}
connected() { [ "$(count "$1" '"state": "connected"')" -ge "${2:-1}" ]; }
export -f connected

start_one bot
start_one alice
wait_until 20 bash -c 'connected bot && connected alice'
check "the bot connects over TLS and logs in" connected bot
sleep 1 # both in the room

# One-to-one: in, and the reply out.
say alice 1 bot@localhost "hello bot"
wait_until 10 has bot '"text": "hello bot"'
check "a one-to-one message reaches the bot as the sender's chat" \
	has bot '"chat": "alice@localhost", "sender": "alice@localhost", "text": "hello bot", "mention": true'
check "as a private chat" has bot '"chat_kind": "private"'
say bot 2 alice@localhost "hello alice"
wait_until 10 has alice '"text": "hello alice"'
check "the bot's reply reaches the person" has alice '"chat": "bot@localhost", "sender": "bot@localhost", "text": "hello alice"'
check "and the daemon is told it was sent" has bot '"t": "sent", "ref": 2'

# An edit goes as a correction (XEP-0308) of the message sent; typing as a chat state.
ext=$(grep '"t": "sent", "ref": 2,' "$WORK/bot.frames" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ext_id"])')
echo '{"t": "typing", "chat": "alice@localhost"}' >>"$WORK/bot.cmds"
echo '{"t": "edit", "ref": 20, "chat": "alice@localhost", "ext_id": "'"$ext"'", "text": "hello alice (edited)"}' >>"$WORK/bot.cmds"
wait_until 10 has bot '"t": "sent", "ref": 20'
check "an edit is reported sent with the message's own id" has bot "\"t\": \"sent\", \"ref\": 20, \"ext_id\": \"$ext\""
sleep 1
check "a correction and a chat state are not new messages to the other side's clawbox" \
	sh -c "! grep -q 'edited' '$WORK/alice.frames' && [ \$(grep -c '\"t\": \"message\"' '$WORK/alice.frames') = 1 ]"

# Approvals: shown as a message that says how to answer; "approve N" one-to-one, from the
# chat it was shown in, is an answer (the daemon checks the approver), not a message.
echo '{"t": "approval", "ref": 30, "chat": "alice@localhost", "approval": 5, "text": "send_message to family: hi", "buttons": ["approve", "run", "deny"]}' >>"$WORK/bot.cmds"
wait_until 10 has alice 'send_message to family'
check "an approval is shown with how to answer it" \
	has alice 'send_message to family: hi\\n\\nAnswer \\"approve 5\\", \\"run 5\\", \\"deny 5\\".'
check "and reported sent" has bot '"t": "sent", "ref": 30'
say alice 31 bot@localhost "approve 5"
say alice 32 bot@localhost "approve 77"
wait_until 10 has bot 'approve 77'
check "the answer goes to the daemon as approval_answer, with the JID as approver" \
	has bot '"t": "approval_answer", "approval": 5, "answer": "approve", "approver": "xmpp:alice@localhost"'
check "it is not a message; an answer to an approval never shown is one" \
	sh -c "! grep -q '\"text\": \"approve 5\"' '$WORK/bot.frames' && grep -q '\"text\": \"approve 77\"' '$WORK/bot.frames'"
echo '{"t": "answered", "approval": 5, "approver": "xmpp:alice@localhost", "ok": true, "text": "approved: it runs"}' >>"$WORK/bot.cmds"
wait_until 10 has alice 'approved: it runs'
check "the daemon's verdict is told to the one who answered" has alice '"text": "approved: it runs"'

# A long reply is split at max_chars (100 here) on character boundaries.
long=$(printf 'é%.0s' $(seq 1 80)) # 160 bytes, 80 characters
say bot 3 alice@localhost "$long"
parts() { # the bot's messages of only é: their byte lengths, then whether they join to 80
	python3 -c 'import json, sys
p = [f["text"] for f in map(json.loads, open(sys.argv[1])) if f.get("t") == "message" and f.get("sender") == "bot@localhost" and f["text"] and set(f["text"]) == {"\u00e9"}]
print(" ".join(str(len(t.encode())) for t in p), "".join(p) == "\u00e9" * 80)' "$WORK/alice.frames"
}
export -f parts
wait_until 10 bash -c '[ "$(parts)" = "100 60 True" ]'
check "a reply past max_chars goes in parts, cut between characters ($(parts))" test "$(parts)" = "100 60 True"

# Files: send_file by XEP-0363 (a slot from upload.localhost, the bytes PUT, the GET URL
# in an out-of-band message); the other side fetches it and reports it as an attachment.
head -c 3000 /dev/urandom >"$WORK/report.bin"
sendfile() { # WHO REF CHAT TEXT PATH NAME
	printf '{"t": "reply", "ref": %s, "chat": "%s", "text": "%s", "file": {"name": "%s", "size": %s}, "_file": "%s"}\n' \
		"$2" "$3" "$4" "$6" "$(stat -c %s "$5")" "$5" >>"$WORK/$1.cmds"
}
sendfile bot 40 alice@localhost "the report" "$WORK/report.bin" report.bin
wait_until 15 has alice '"name": "report.bin"'
check "send_file is reported sent" has bot '"t": "sent", "ref": 40'
check "its text comes first, as a message" has alice '"text": "the report"'
check "the file comes as an attachment of a message whose text is its URL" \
	has alice "\"text\": \"http://127.0.0.1:$XMPP_HTTP_PORT/file_share/[^\"]*/report.bin\".*\"attachments\": \\[{\"name\": \"report.bin\", \"size\": 3000}\\]"
check "with the bytes sent" sh -c "cmp -s '$WORK/report.bin' '$WORK/alice.files/'*-report.bin"
head -c 5000 /dev/urandom >"$WORK/in.dat"
sendfile alice 41 "$ROOM" "" "$WORK/in.dat" in.dat
wait_until 15 has bot '"name": "in.dat"'
check "a file into the room reaches the bot as the room's message with the attachment" \
	has bot "\"chat\": \"$ROOM\", \"sender\": \"$ROOM/alice\".*\"name\": \"in.dat\", \"size\": 5000"
check "the same bytes" sh -c "cmp -s '$WORK/in.dat' '$WORK/bot.files/'*-in.dat"
head -c 300000 /dev/urandom >"$WORK/big.dat"
sendfile alice 42 bot@localhost "" "$WORK/big.dat" big.dat
wait_until 15 has bot 'big.dat'
check "a file past the receiver's file_max (200000): the message comes, without the file" \
	sh -c "grep 'big.dat' '$WORK/bot.frames' | grep -q '\"t\": \"message\"' && ! grep 'big.dat' '$WORK/bot.frames' | grep -q attachments && ! ls '$WORK/bot.files/' | grep -q big"
head -c 1100000 /dev/urandom >"$WORK/huge.dat"
sendfile bot 43 alice@localhost "" "$WORK/huge.dat" huge.dat
wait_until 15 has bot '"t": "failed", "ref": 43'
check "a file past the server's limit (1 MB): send_file fails, not to retry" \
	has bot '"t": "failed", "ref": 43, "error": "the upload service gave no slot (too large?)", "retry": false'

# The room: chatter and a mention; the answer in the room; no echo of our own.
say alice 4 "$ROOM" "just chatting here"
say alice 5 "$ROOM" "bot: what time is it?"
wait_until 10 has bot 'what time is it'
check "a room message that names the bot: mention true, the room's chat, the occupant as sender" \
	has bot "\"chat\": \"$ROOM\", \"sender\": \"$ROOM/alice\", \"text\": \"bot: what time is it?\", \"mention\": true"
check "room chatter: reported without mention (the daemon wants the trigger then)" \
	has bot '"text": "just chatting here", "mention": false'
say bot 6 "$ROOM" "it is noon"
wait_until 10 has alice '"text": "it is noon"'
check "the bot answers in the room" has alice "\"chat\": \"$ROOM\", \"sender\": \"$ROOM/bot\", \"text\": \"it is noon\""
sleep 1
check "the bot does not read its own words back" test "$(count bot 'it is noon')" = 0

# A stranger: reported as its own chat, which the daemon does not deliver to any group.
# (mallory's channel fetches files only from elsewhere: the URL of ours is not fetched.)
start_one mallory '["https://files.example/"]'
wait_until 20 bash -c 'connected mallory'
sendfile bot 44 mallory@localhost "" "$WORK/report.bin" report.bin
wait_until 15 has mallory 'report.bin'
check "a file URL not under the receiver's file_urls is not fetched: the message without it" \
	sh -c "grep -q '\"text\": \"http://127.0.0.1:$XMPP_HTTP_PORT/file_share/' '$WORK/mallory.frames' && ! grep -q attachments '$WORK/mallory.frames' && grep -q 'not under file_urls' '$WORK/mallory.err'"
say mallory 1 bot@localhost "let me in"
wait_until 10 has bot 'let me in'
check "a stranger's message is its own chat (mallory@localhost), for the daemon to drop and record" \
	has bot '"chat": "mallory@localhost", "sender": "mallory@localhost", "text": "let me in"'
say mallory 2 bot@localhost "deny 5"
wait_until 10 has bot '"text": "deny 5"'
check "an answer from another chat than the approval's is only a message" \
	sh -c "! grep -q '\"answer\": \"deny\"' '$WORK/bot.frames'"
stop_one mallory

# Restart: no room history again; a message sent while it was away comes once.
stop_one bot
mv "$WORK/bot.frames" "$WORK/bot.frames.1"
sleep 0.5
say alice 7 bot@localhost "are you there?"
sleep 0.5
start_one bot
wait_until 20 bash -c 'connected bot'
wait_until 10 has bot 'are you there'
sleep 2
check "a message sent while the bot was away comes after it is back, once" \
	test "$(count bot 'are you there')" = 1
check "the room's history is not read again" \
	sh -c "! grep -q 'what time is it\\|just chatting' '$WORK/bot.frames'"

# The server goes away and comes back: the bot reconnects (backoff) by itself.
cleanup_prosody
wait_until 10 has bot '"state": "error"'
check "a lost server is reported (status error)" has bot '"state": "error"'
run_prosody
wait_until 30 bash -c 'connected bot 2'
check "and the bot reconnects when it is back" connected bot 2
check "the password is in no log" sh -c "! grep -q 'pw-bot' '$WORK/bot.frames' '$WORK/bot.err'"
stop_all

# ---- the whole way: clawbox serve, its xmpp channel, the agent (a fake model) ----
FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
echo '{"turns": [], "default": {"reply": {"echo": true}}}' >"$WORK/scenario.json"
"$FAKE" --scenario "$WORK/scenario.json" --log "$WORK/model.log" --port-file "$WORK/mport" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
PORT=$(xmpp_free_port)
cat >"$WORK/config.json" <<JSON
{"data_dir": "$WORK/data", "listen": "127.0.0.1:$PORT",
 "model": {"base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "groups": [{"id": "main", "main": true, "trigger": "@claw"}, {"id": "alice"}],
 "channels": [{"name": "jabber", "kind": "xmpp",
   "chats": {"alice@localhost": "alice", "$ROOM": "main"},
   "jid": "bot@localhost", "host": "127.0.0.1", "port": $XMPP_PORT, "ca_file": "$XMPP_CA",
   "token_file": "$WORK/bot.pw", "rooms": ["$ROOM"], "nick": "bot",
   "file_urls": ["http://127.0.0.1:$XMPP_HTTP_PORT/"]}]}
JSON
"$CLAWBOX" serve --config "$WORK/config.json" >>"$WORK/serve.out" 2>>"$WORK/serve.err" &
SPID=$!
wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
TOKEN=$(cat "$WORK/data/api-token" 2>/dev/null)
: >"$WORK/alice.frames"
: >"$WORK/mallory.frames"
start_one alice
start_one mallory
wait_until 20 bash -c 'connected alice && connected mallory'
wait_until 20 sh -c "grep -q 'channel jabber: connected' '$WORK/serve.err'"
sleep 1
say alice 11 bot@localhost "hello agent"
wait_until 30 has alice 'echo: hello agent'
check "through the daemon: a one-to-one message is answered by the agent" \
	has alice '"chat": "bot@localhost", "sender": "bot@localhost", "text": "echo: hello agent"'
printf 'the notes' >"$WORK/notes.txt"
sendfile alice 15 bot@localhost "" "$WORK/notes.txt" notes.txt
wait_until 30 has alice 'echo: http://127.0.0.1'
inbox=
for f in "$WORK/data/groups/alice/inbox/"*notes.txt; do [ -f "$f" ] && inbox=${f##*/}; done
check "through the daemon: a file sent to the bot lands in the group's inbox ($inbox)" \
	sh -c "[ -n '$inbox' ] && [ \"\$(cat '$WORK/data/groups/alice/inbox/$inbox')\" = 'the notes' ]"
check "and the agent is told where it is" grep -q "attachment: inbox/$inbox, 9 bytes" "$WORK/model.log"
say alice 12 "$ROOM" "nothing for anyone here"
say alice 13 "$ROOM" "bot: and the weather?"
wait_until 30 has alice 'echo: bot: and the weather'
check "a mention in the room is answered in the room" \
	has alice "\"chat\": \"$ROOM\", \"sender\": \"$ROOM/bot\", \"text\": \"echo: bot: and the weather?\""
check "room chatter without mention or trigger reaches no agent" \
	sh -c "! grep -q 'nothing for anyone here' '$WORK/model.log'"
say mallory 14 bot@localhost "let me in"
wait_until 10 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/audit?after=0' | grep -q 'chat mallory@localhost'"
curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/audit?after=0" >"$WORK/audit"
check "an unknown JID is ignored and recorded" sh -c \
	"grep -q 'a message from chat mallory@localhost, which no group is for' '$WORK/audit' && ! grep -q 'let me in' '$WORK/model.log'"
sleep 1
check "and not answered" sh -c "! grep -q '\"sender\": \"bot@localhost\"' '$WORK/mallory.frames'"
stop_all
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=

# Bad configuration: one clear line, exit non-zero.
echo '{"token_file": "/nonexistent"}' >"$WORK/bad.json"
: >"$WORK/bad.cmds"
python3 "$DRIVER" --channel "$CHANNEL" --kind xmpp --config "$WORK/bad.json" \
	--log "$WORK/bad.frames" --commands "$WORK/bad.cmds" --stderr "$WORK/bad.err"
rc=$?
check "a config without a jid: exit non-zero, one error line" \
	sh -c "[ $rc != 0 ] && [ \$(wc -l <'$WORK/bad.err') = 1 ] && grep -q 'jid' '$WORK/bad.err'"

echo "1..$T_NUM"
[ "$T_FAILED" = 0 ]
