#!/bin/bash
# bench-email.sh: the email channel through real servers (Postfix and Dovecot, started as
# tests/integration/mail-servers.sh does, on loopback): a mail in -> the agent's reply in the
# sender's mailbox, beyond model time (the fake model answers at once), median of 10 mails
# one after another; split into mail in -> message received by the daemon (SMTP delivery,
# the poll's wait at poll_s 1 s, IMAP) and message received -> reply delivered (the run,
# SMTP out, Postfix's delivery). And the resident memory of the channel process.
set -u
cd "$(dirname "$0")/.." || exit 1
TOP=$PWD
WORK=$(mktemp -d /tmp/clawbox-bench-email.XXXXXX)
chmod 755 "$WORK"
MPID= SPID=
wait_until() {
	local limit=$(($1 * 20)) i=0
	shift
	while ! "$@"; do
		i=$((i + 1))
		[ $i -ge $limit ] && return 1
		sleep 0.05
	done
}
. tests/integration/mail-servers.sh
trap 'kill $SPID $MPID 2>/dev/null; cleanup_mail_servers; wait 2>/dev/null; rm -rf "$WORK"' EXIT
start_mail_servers || { echo "email: the mail servers did not start" >&2; exit 1; }
printf 'pw-bot\n' >"$WORK/bot-password"
chmod 600 "$WORK/bot-password"
echo '{"turns": [], "default": {"reply": {"echo": true}}}' >"$WORK/scenario.json"
build/tests/fake-model --scenario "$WORK/scenario.json" --log /dev/null --port-file "$WORK/mport" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
PORT=$(free_port)
cat >"$WORK/config.json" <<JSON
{"data_dir": "$WORK/data", "listen": "127.0.0.1:$PORT",
 "model": {"base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "groups": [{"id": "main", "main": true}, {"id": "alice"}],
 "channels": [{"name": "mail", "kind": "email", "chats": {"alice@example.test": "alice"},
   "imap_url": "imap://127.0.0.1:$IMAP_PORT", "smtp_url": "smtp://127.0.0.1:$SMTP_PORT",
   "address": "bot@example.test", "token_file": "$WORK/bot-password", "ca_file": "$MAIL_CA",
   "poll_s": 1}]}
JSON
./clawbox serve --config "$WORK/config.json" >"$WORK/serve.out" 2>"$WORK/serve.err" &
SPID=$!
wait_until 10 sh -c "grep -q 'channel mail: connected' '$WORK/serve.err'"
replies() { ls "$(mail_of alice)" 2>/dev/null | wc -l; }
now_ms() { date +%s%3N; }
: >"$WORK/times"
for i in $(seq 10); do
	printf 'From: alice@example.test\r\nTo: bot@example.test\r\nSubject: bench %s\r\nMessage-ID: <b%s@example.test>\r\n\r\nmail %s\r\n' \
		"$i" "$i" "$i" >"$WORK/m.eml"
	before=$(replies)
	t0=$(now_ms)
	send_mail alice@example.test bot@example.test "$WORK/m.eml"
	wait_until 30 sh -c "[ \$(ls '$(mail_of alice)' 2>/dev/null | wc -l) -gt $before ]" || { echo "email: no reply to mail $i" >&2; exit 1; }
	f=$(ls -t "$(mail_of alice)"/* | head -1)
	t2=$(($(stat -c %.3Y "$f" | tr -d .)))
	# The daemon's "message received" line for this mail: its UTC timestamp, in ms.
	line=$(grep 'message received group=alice' "$WORK/serve.err" | sed -n "${i}p")
	t1=$(date -d "$(echo "$line" | cut -d' ' -f1)" +%s%3N)
	echo "$((t2 - t0)) $((t1 - t0)) $((t2 - t1))" >>"$WORK/times"
done
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
total=$(cut -d' ' -f1 "$WORK/times" | median)
in_ms=$(cut -d' ' -f2 "$WORK/times" | median)
out_ms=$(cut -d' ' -f3 "$WORK/times" | median)
pid=$(grep -o 'channel mail: started (email, pid [0-9]*' "$WORK/serve.err" | tail -1 | grep -o '[0-9]*$')
rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status")
printf 'email: mail in -> reply delivered, median of 10 (poll_s 1): %s ms\n' "$total"
printf 'email:   mail in -> message received by the daemon (SMTP, poll wait, IMAP): %s ms\n' "$in_ms"
printf 'email:   message received -> reply in the mailbox (run, SMTP, delivery): %s ms\n' "$out_ms"
printf 'email: channel process RSS after 10 mails: %s KiB\n' "$rss"
