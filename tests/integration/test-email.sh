#!/bin/bash
# test-email.sh: the email channel (clawbox-channel email) against real servers from Debian,
# started here on loopback ports: Postfix for SMTP, Dovecot for IMAP, STARTTLS with a CA of
# the test's own. First the whole way through clawbox serve: a mail in, the agent's reply
# out with the threading headers (read back from the sender's Maildir), a mail from an
# unknown sender ignored and recorded, a daemon restart that reads nothing twice. Then the
# channel alone under chan-driver.py (which plays the daemon's side of the channel
# protocol): the message's fields, the cursor across a restart, mail that comes while it
# runs, Authentication-Results required, bad configuration.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mail-servers.sh"

CHANNEL=${CHANNEL:-$TOP/clawbox-channel}
DRIVER=$TOP/tests/integration/chan-driver.py
trap 'cleanup_driver; cleanup_mail_servers; cleanup_work' EXIT
DPID=
cleanup_driver() {
	[ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	DPID=
}

if ! start_mail_servers; then
	not_ok "the mail servers start (see $MAIL_DIR)"
	echo "1..$T_NUM"
	exit 1
fi
ok "Postfix and Dovecot run on loopback ports $SMTP_PORT and $IMAP_PORT"
printf 'pw-bot\n' >"$WORK/bot-password"
chmod 600 "$WORK/bot-password"

config() { # EXTRA-JSON
	cat >"$WORK/email.json" <<JSON
{"imap_url": "imap://127.0.0.1:$IMAP_PORT", "smtp_url": "smtp://127.0.0.1:$SMTP_PORT",
 "address": "bot@example.test", "from_name": "clawbox", "token_file": "$WORK/bot-password",
 "ca_file": "$MAIL_CA", "poll_s": 1 $1}
JSON
}
start_channel() { # CURSOR|null
	: >"$WORK/cmds"
	local cur=()
	[ "$1" != null ] && cur=(--cursor "$1")
	python3 "$DRIVER" --channel "$CHANNEL" --kind email --config "$WORK/email.json" \
		"${cur[@]}" --log "$WORK/frames" --commands "$WORK/cmds" --stderr "$WORK/channel.err" &
	DPID=$!
}
export WORK
frames() { cat "$WORK/frames" 2>/dev/null | grep -c "\"t\": \"$1\""; }

n_frames() { cat "$WORK/frames" 2>/dev/null | grep -c "\"t\": \"$1\""; } # for wait_until
export -f n_frames
mail() { # FROM SUBJECT ID BODY
	printf 'From: %s\r\nTo: bot@example.test\r\nSubject: %s\r\nMessage-ID: <%s>\r\nReferences: <root@example.test>\r\nDate: Thu, 3 Dec 2026 10:00:00 +0000\r\n\r\n%s\r\n' \
		"$1" "$2" "$3" "$4" >"$WORK/$3.eml"
	send_mail "${1##*<}" bot@example.test "$WORK/$3.eml"
}

# ---- the whole way: clawbox serve, its email channel, the agent (a fake model) ----
FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
echo '{"turns": [], "default": {"reply": {"echo": true}}}' >"$WORK/scenario.json"
"$FAKE" --scenario "$WORK/scenario.json" --log "$WORK/model.log" --port-file "$WORK/mport" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
PORT=$(free_port)
cat >"$WORK/config.json" <<JSON
{"data_dir": "$WORK/data", "listen": "127.0.0.1:$PORT",
 "model": {"base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "groups": [{"id": "main", "main": true}, {"id": "alice"}],
 "channels": [{"name": "mail", "kind": "email", "chats": {"alice@example.test": "alice"},
   "imap_url": "imap://127.0.0.1:$IMAP_PORT", "smtp_url": "smtp://127.0.0.1:$SMTP_PORT",
   "address": "bot@example.test", "from_name": "clawbox", "token_file": "$WORK/bot-password",
   "ca_file": "$MAIL_CA", "poll_s": 1}]}
JSON
start_daemon() {
	"$CLAWBOX" serve --config "$WORK/config.json" >>"$WORK/serve.out" 2>>"$WORK/serve.err" &
	SPID=$!
	wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
	TOKEN=$(cat "$WORK/data/api-token" 2>/dev/null)
}
api() { curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$1"; }
replies() { ls "$(mail_of alice)" 2>/dev/null | wc -l; }
export -f replies mail_of
export MAIL_DIR
mail 'Alice <alice@example.test>' 'Plans' 'e1@example.test' 'What is on today?'
mail 'Mallory <mallory@example.test>' 'hi' 'e2@example.test' 'let me in'
start_daemon
wait_until 60 bash -c '[ $(replies) -ge 1 ]'
reply=$(ls "$(mail_of alice)"/* 2>/dev/null | head -1)
check "a mail in: the agent's reply comes back by mail" test -n "$reply"
check "threaded under it: In-Reply-To and References" sh -c \
	"grep -q '^In-Reply-To: <e1@example.test>' '$reply' && grep -q '^References: <root@example.test> <e1@example.test>' '$reply'"
check "with Re: and the agent's words" sh -c \
	"grep -q '^Subject: Re: Plans' '$reply' && grep -q 'echo: Subject: Plans' '$reply'"
check "the agent saw the mail" grep -q 'What is on today' "$WORK/model.log"
check "the unknown sender's mail reaches no agent and no one answers it" \
	sh -c "! grep -q 'let me in' '$WORK/model.log' && [ -z \"\$(ls '$(mail_of mallory)' 2>/dev/null)\" ]"
api "/api/v1/audit?after=0" >"$WORK/audit"
check "and is recorded" grep -q 'a message from chat mallory@example.test, which no group is for' "$WORK/audit"
api /api/v1/channels >"$WORK/channels"
check "GET /api/v1/channels: the email channel connected" \
	sh -c "jq -e '.channels[] | select(.name == \"mail\") | .kind == \"email\" and .state == \"connected\"' '$WORK/channels' >/dev/null"
check "the password is in no log of the daemon" sh -c "! grep -q pw-bot '$WORK/serve.err' '$WORK/serve.out'"
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=
# The next mail carries a file: it lands in the group's inbox folder.
printf 'From: Alice <alice@example.test>\r\nTo: bot@example.test\r\nSubject: Re: Plans\r\nMessage-ID: <e3@example.test>\r\nReferences: <root@example.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nAnd tomorrow?\r\n--XX\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=notes.txt\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8gZmlsZQ==\r\n--XX--\r\n' >"$WORK/e3.eml"
send_mail alice@example.test bot@example.test "$WORK/e3.eml"
start_daemon
wait_until 60 bash -c '[ $(replies) -ge 2 ]'
sleep 2
check "after a daemon restart only the new mail is read: one more reply ($(replies) in all)" \
	test "$(replies)" = 2
check "the reply after the restart is threaded under the new mail (found again on the server)" \
	grep -q '^In-Reply-To: <e3@example.test>' "$(mail_of alice)"/*
check "the daemon received each mail once" \
	test "$(grep -c 'message received group=alice chat=alice@example.test' "$WORK/serve.err")" = 2
att=$(find "$WORK/data" -path '*inbox*' -name '*notes.txt' | head -1)
check "an attachment lands in the group's inbox, decoded" \
	sh -c "[ -n '$att' ] && [ \"\$(cat '$att')\" = 'hello file' ]"
check "and the agent is told where" grep -q 'attachment: inbox/mail-[^ ]*-0-notes.txt, 10 bytes' "$WORK/model.log"
# The channel process dies (kill -9): the daemon starts it again; it reads on from its
# cursor, so the next mail is read once and nothing before it again.
cpid=$(grep -o 'channel mail: started (email, pid [0-9]*' "$WORK/serve.err" | tail -1 | grep -o '[0-9]*$')
kill -9 "$cpid"
wait_until 20 sh -c "[ \$(grep -c 'channel mail: started' '$WORK/serve.err') -ge 3 ] && grep 'channel mail: connected' '$WORK/serve.err' | tail -1 | grep -q ."
mail 'Alice <alice@example.test>' 'Re: Plans' 'e4@example.test' 'After the crash?'
wait_until 60 bash -c '[ $(replies) -ge 3 ]'
sleep 2
check "after the channel is killed and restarted: the next mail answered once ($(replies) replies)" \
	test "$(replies)" = 3
check "and no mail read twice" \
	test "$(grep -c 'message received group=alice chat=alice@example.test' "$WORK/serve.err")" = 3
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=
rm -f "$(mail_of alice)"/*

# ---- the channel alone, under chan-driver.py ----
# Mail that was there before the first start is unseen: it is read, once.
mail 'Alice <alice@example.test>' 'Lunch' 'm1@example.test' 'Shall we meet at noon?'
config ""
start_channel null
wait_until 20 bash -c '[ $(n_frames message) -ge 1 ]'
check "the channel connects (status connected)" grep -q '"state": "connected"' "$WORK/frames"
msg=$(grep '"t": "message"' "$WORK/frames" | head -1)
check "a mail becomes a message from its sender's address" \
	sh -c "echo '$msg' | grep -q '\"chat\": \"alice@example.test\", \"sender\": \"alice@example.test\"'"
check "with its subject and text" \
	test "$(echo "$msg" | python3 -c 'import json,sys; print(json.load(sys.stdin)["text"])')" = "Subject: Lunch

Shall we meet at noon?"
check "with the sender's name" sh -c "echo '$msg' | grep -q '\"sender_name\": \"Alice\"'"
ext=$(echo "$msg" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ext_id"])')
check "its ext_id and cursor are UIDVALIDITY:UID" \
	sh -c "echo '$msg' | grep -q '\"cursor\": \"$ext\"' && echo '$ext' | grep -qE '^[0-9]+:[0-9]+\$'"

# The agent's reply goes out threaded under it.
echo '{"t": "reply", "ref": 7, "chat": "alice@example.test", "text": "Noon works. See you!", "reply_to": "'"$ext"'"}' >>"$WORK/cmds"
wait_until 20 sh -c "ls '$(mail_of alice)' 2>/dev/null | grep -q ."
reply=$(ls "$(mail_of alice)"/* 2>/dev/null | head -1)
check "the reply reaches the sender's mailbox over SMTP" test -n "$reply"
check "it answers the mail: In-Reply-To" grep -q '^In-Reply-To: <m1@example.test>' "$reply"
check "References continue the thread" grep -q '^References: <root@example.test> <m1@example.test>' "$reply"
check "the subject is Re:" grep -q '^Subject: Re: Lunch' "$reply"
check "from the bot, with the text" sh -c "grep -q '^From: clawbox <bot@example.test>' '$reply' && grep -q 'Noon works. See you!' '$reply'"
wait_until 10 sh -c "grep -q '\"t\": \"sent\"' '$WORK/frames'"
mid=$(grep -o '^Message-I[dD]: <[^>]*>' "$reply" | sed 's/.*<\(.*\)>/\1/')
check "the daemon is told it was sent, with the mail's Message-ID" \
	grep -q "\"t\": \"sent\", \"ref\": 7, \"ext_id\": \"$mid\"" "$WORK/frames"
check "the password is in no log" sh -c "! grep -q pw-bot '$WORK/frames' '$WORK/channel.err'"

# A second mail while it runs; then a restart with the stored cursor reads nothing twice.
mail 'Alice <alice@example.test>' 'Re: Lunch' 'm2@example.test' 'And bring the map.'
wait_until 20 bash -c '[ $(n_frames message) -ge 2 ]'
check "a mail that comes while it runs is read (polling): $(frames message) messages" test "$(frames message)" = 2
cursor=$(grep '"t": "message"' "$WORK/frames" | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["cursor"])')
cleanup_driver
cp "$WORK/frames" "$WORK/frames.1"
: >"$WORK/frames"
mail 'Mallory <mallory@example.test>' 'hi' 'm3@example.test' 'let me in'
start_channel "$cursor"
wait_until 20 bash -c '[ $(n_frames message) -ge 1 ]'
sleep 2 # more polls: nothing else may come
check "after a restart only the new mail is read" test "$(frames message)" = 1
check "a mail from anyone becomes a message of the sender's chat (the daemon drops chats not configured)" \
	grep -q '"chat": "mallory@example.test"' "$WORK/frames"
cleanup_driver

# Authentication-Results required: a mail without the receiving server's pass is dropped.
: >"$WORK/frames"
cursor=$(grep '"t": "message"' "$WORK/frames" 2>/dev/null | tail -1)
config ', "require_auth_pass": true, "authserv_id": "mx.example.test"'
printf 'Authentication-Results: mx.example.test; dkim=pass header.d=example.test\r\nFrom: alice@example.test\r\nTo: bot@example.test\r\nSubject: signed\r\nMessage-ID: <m4@example.test>\r\n\r\nthis one passed\r\n' >"$WORK/m4.eml"
printf 'Authentication-Results: mx.example.test; dkim=fail header.d=example.test\r\nFrom: alice@example.test\r\nTo: bot@example.test\r\nSubject: forged\r\nMessage-ID: <m5@example.test>\r\n\r\nthis one did not\r\n' >"$WORK/m5.eml"
send_mail mallory@example.test bot@example.test "$WORK/m5.eml"
send_mail alice@example.test bot@example.test "$WORK/m4.eml"
start_channel null # the unseen ones: m4 and m5
wait_until 20 sh -c "grep -q 'mail dropped' '$WORK/channel.err' && grep -q '\"t\": \"message\"' '$WORK/frames'"
sleep 1
check "with require_auth_pass a mail the server says passed is read" grep -q 'this one passed' "$WORK/frames"
check "and one that failed is dropped, and logged" \
	sh -c "! grep -q 'this one did not' '$WORK/frames' && grep -q 'mail dropped: no dkim=pass or spf=pass from mx.example.test' '$WORK/channel.err'"
cleanup_driver

# The IMAP server goes away: status error, saying why; when it is back, mail is read again.
config ""
: >"$WORK/frames"
start_channel null
wait_until 20 sh -c "grep -q '\"state\": \"connected\"' '$WORK/frames'"
stop_dovecot
wait_until 20 sh -c "grep -q '\"state\": \"error\", \"detail\": \"IMAP STATUS' '$WORK/frames'"
check "a server gone: status error with curl's reason" grep -q '"state": "error", "detail": "IMAP STATUS' "$WORK/frames"
mail 'Alice <alice@example.test>' 'back' 'm6@example.test' 'are you back?'
run_dovecot
wait_until 20 sh -c "grep -q 'are you back' '$WORK/frames'"
check "back: connected again and the mail read" sh -c \
	"grep -q 'are you back' '$WORK/frames' && [ \$(grep -c '\"state\": \"connected\"' '$WORK/frames') -ge 2 ]"
cleanup_driver

# Bad configuration: one clear line, status error, exit non-zero.
config ', "poll_s": 0'
sed -i 's/"poll_s": 1 ,/ /' "$WORK/email.json"
: >"$WORK/frames"
: >"$WORK/channel.err"
start_channel null
wait "$DPID"
rc=$?
DPID=
check "a bad poll_s: exit non-zero, status error saying why" \
	sh -c "[ $rc != 0 ] && grep -q '\"state\": \"error\", \"detail\": \"poll_s' '$WORK/frames'"
chmod 644 "$WORK/bot-password"
config ""
start_channel null
wait "$DPID"
rc=$?
DPID=
check "a password file others can read is refused" \
	sh -c "[ $rc != 0 ] && grep -q 'mode 0600' '$WORK/frames'"

echo "1..$T_NUM"
[ "$T_FAILED" = 0 ]
