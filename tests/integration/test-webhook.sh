#!/bin/bash
# test-webhook.sh: the webhook channel (clawbox-channel webhook) through `clawbox serve`:
# a hook signed with HMAC-SHA256 and one with a secret in its path each post into their
# group; a wrong or missing signature or secret is refused (401), an oversized body (413),
# an unknown hook (404), another method (405), a body that is not a message (400); the
# same "id" twice is one message; the reply is POSTed to the hook's callback (a loopback
# receiver that checks the signature itself), retried after a 500; a listen address that is
# not loopback is refused. Files: a hook's base64 attachment lands in the group's inbox
# byte-exact; bad base64, one past file_max and 5 attachments are 400 and store nothing; an
# agent's send_file arrives at the callback in "attachments", byte-exact and signed.
. "$(dirname "$0")/lib.sh"
[ -n "${KEEP_WORK:-}" ] && trap 'cp -r "$WORK" "$KEEP_WORK"; cleanup_work' EXIT

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
SECRET=hook-secret-5d1f0c2a9e
cat >"$WORK/scenario.json" <<'JSON'
{"turns": [
 {"expect": {"last_contains": ["turn on the lights"]}, "reply": {"echo": true}},
 {"expect": {"last_contains": ["deploy finished"]}, "reply": {"echo": true}},
 {"expect": {"last_contains": ["send me the report"]}, "reply": {"tool_calls": [{"id": "f1", "name": "send_file", "input": {"path": "report.bin"}}]}},
 {"reply": {"text": "report sent"}},
 {"expect": {"last_contains": ["send me the big one"]}, "reply": {"tool_calls": [{"id": "f2", "name": "send_file", "input": {"path": "big.bin"}}]}},
 {"reply": {"text": "big one done"}}],
 "default": {"reply": {"echo": true}}}
JSON
"$FAKE" --scenario "$WORK/scenario.json" --log "$WORK/model.log" --port-file "$WORK/mport" &
MPID=$!
python3 "$TOP/tests/integration/hook-receiver.py" --secret "$SECRET" --log "$WORK/cb.log" \
	--port-file "$WORK/rport" --fail-first 1 &
TPID=$!
wait_until 5 test -s "$WORK/mport"
wait_until 5 test -s "$WORK/rport"
RECV=http://127.0.0.1:$(cat "$WORK/rport")
printf '%s\n' "$SECRET" >"$WORK/hook-secret"
chmod 600 "$WORK/hook-secret"
PORT=$((20000 + RANDOM % 20000))
HPORT=$((PORT + 1))
cat >"$WORK/config.json" <<JSON
{"data_dir": "$WORK/data", "listen": "127.0.0.1:$PORT",
 "model": {"base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "groups": [{"id": "home", "main": true}, {"id": "ops"}, {"id": "files", "owners": ["webhook:files"]}],
 "channels": [{"name": "hooks", "kind": "webhook", "listen": "127.0.0.1:$HPORT",
               "token_file": "$WORK/hook-secret", "body_max": 4096,
               "hooks": [{"id": "ha", "auth": "hmac", "callback": "$RECV/ha"},
                         {"id": "n8n", "auth": "path", "callback": "$RECV/n8n"},
                         {"id": "orphan", "auth": "path"}],
               "chats": {"ha": "home", "n8n": "ops"}},
              {"name": "filehooks", "kind": "webhook", "listen": "127.0.0.1:$((PORT + 3))",
               "token_file": "$WORK/hook-secret", "body_max": 65536, "file_max": 3000,
               "hooks": [{"id": "files", "auth": "path", "callback": "$RECV/files"}],
               "chats": {"files": "files"}},
              {"name": "exposed", "kind": "webhook", "listen": "0.0.0.0:$((PORT + 2))",
               "token_file": "$WORK/hook-secret", "hooks": [{"id": "x"}]}]}
JSON
"$CLAWBOX" serve --config "$WORK/config.json" >"$WORK/serve.out" 2>"$WORK/serve.err" &
SPID=$!
wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
TOKEN=$(cat "$WORK/data/api-token" 2>/dev/null)
api() { curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$1"; }
HOOK=http://127.0.0.1:$HPORT
sign() { printf '%s' "$1" | openssl dgst -sha256 -hmac "$2" | sed 's/^.*= //'; }
# post PATH BODY [SIGNATURE]: the status in $STATUS, the answer in $WORK/answer.
post() {
	local h=()
	[ -n "${3:-}" ] && h=(-H "X-Hub-Signature-256: $3")
	STATUS=$(curl -s -o "$WORK/answer" -w '%{http_code}' -X POST "${h[@]}" --data-binary "$2" "$HOOK$1")
}
wait_until 10 sh -c "curl -s -o /dev/null -X POST '$HOOK/hook/none' 2>/dev/null"

B='{"text": "turn on the lights", "sender": "home-assistant"}'
post /hook/ha "$B" "sha256=$(sign "$B" "$SECRET")"
check "a hook with the right HMAC is accepted once stored (202, $(cat "$WORK/answer"))" \
	sh -c "[ $STATUS = 202 ] && jq -e '.ok == true and (.id | startswith(\"ha:\"))' '$WORK/answer' >/dev/null"
api /api/v1/groups/home/messages >"$WORK/home"
check "it is in the hook's group, from the hook (the name is the caller's word)" \
	grep -q '"text":"turn on the lights","sender":"webhook:ha"' "$WORK/home"
wait_until 20 sh -c "grep -q '\"status\": 200' '$WORK/cb.log'"
check "the reply is POSTed to the hook's callback" \
	test "$(jq -r 'select(.status == 200) | .path + " " + .body.hook + " " + .body.text' "$WORK/cb.log")" = "/ha ha echo: turn on the lights"
check "signed with HMAC-SHA256 of the body (checked by the receiver)" \
	test "$(jq -r '.sig_ok' "$WORK/cb.log" | sort -u)" = true
check "after a 500 it was tried again, the same delivery id both times" sh -c \
	"[ \"\$(jq -r 'select(.path == \"/ha\") | .status' '$WORK/cb.log' | tr '\n' ' ')\" = '500 200 ' ] &&
	 [ \$(jq -r 'select(.path == \"/ha\") | .delivery' '$WORK/cb.log' | sort -u | wc -l) = 1 ]"
gap=$(jq -s '[.[] | select(.path == "/ha") | .at] | ((.[1] - .[0]) * 1000) | floor' "$WORK/cb.log")
check "with a backoff between ($gap ms)" test "$gap" -ge 900

post /hook/ha "$B" "sha256=$(sign "$B" wrong-secret)"
check "a wrong HMAC is refused (401)" test "$STATUS" = 401
post /hook/ha "$B"
check "a missing one too (401)" test "$STATUS" = 401
B2='{"text": "a tampered body"}'
post /hook/ha "$B2" "sha256=$(sign "$B" "$SECRET")"
check "a signature of another body too (401)" test "$STATUS" = 401
post "/hook/ha/$SECRET" "$B"
check "an hmac hook does not take the secret in its path (401)" test "$STATUS" = 401

N='{"text": "deploy finished", "id": "run-77"}'
post "/hook/n8n/$SECRET" "$N"
check "a path-secret hook with the right secret is accepted (202)" test "$STATUS" = 202
post "/hook/n8n/$SECRET" "$N"
check "the same id again is accepted too (202, $(cat "$WORK/answer"))" \
	sh -c "[ $STATUS = 202 ] && jq -e '.id == \"n8n:run-77\"' '$WORK/answer' >/dev/null"
check "and is one message" test "$(api /api/v1/groups/ops/messages | grep -o '"text":"deploy finished"' | wc -l)" = 1
post "/hook/n8n/not-the-secret" "$N"
check "a wrong path secret is refused (401)" test "$STATUS" = 401
post "/hook/n8n" "$N"
check "no path secret too (401)" test "$STATUS" = 401
wait_until 20 sh -c "grep -q 'echo: deploy finished' '$WORK/cb.log'"
check "the path hook's reply goes to its own callback" \
	test "$(jq -r 'select(.status == 200 and .path == "/n8n") | .body.text' "$WORK/cb.log")" = "echo: deploy finished"

BIG="{\"text\": \"$(head -c 5000 /dev/zero | tr '\0' a)\"}"
post /hook/ha "$BIG" "sha256=$(sign "$BIG" "$SECRET")"
check "a body past body_max is refused (413)" test "$STATUS" = 413
post /hook/nope '{"text": "x"}' "sha256=$(sign '{"text": "x"}' "$SECRET")"
check "an unknown hook is 404" test "$STATUS" = 404
post "/hook/orphan/$SECRET" '{"text": "anyone?"}'
check "a hook no group's chats name is 404" test "$STATUS" = 404
STATUS=$(curl -s -o /dev/null -w '%{http_code}' "$HOOK/hook/ha")
check "a GET is 405" test "$STATUS" = 405
for bad in 'not json' '{"text": ""}' '{"text": 5}' '["text"]' '{"text": "x", "sender": "a\u0001b"}'; do
	post /hook/ha "$bad" "sha256=$(sign "$bad" "$SECRET")"
	check "a signed body that is not a message is 400 ($bad: $(jq -r .error "$WORK/answer" 2>/dev/null))" test "$STATUS" = 400
done
api /api/v1/groups/home/messages >"$WORK/home"
check "nothing refused reached the group" sh -c \
	"! grep -q 'tampered' '$WORK/home' && [ \$(grep -o '\"text\":\"turn on the lights\"' '$WORK/home' | wc -l) = 1 ]"
check "the daemon lives" curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null

# Files out: the agent's send_file comes to the callback in "attachments", signed.
FHOOK="/hook/files/$SECRET"
HOOK=http://127.0.0.1:$((PORT + 3))
wait_until 10 sh -c "curl -s -o /dev/null -X POST '$HOOK/hook/none' 2>/dev/null"
mkdir -p "$WORK/data/groups/files"
head -c 2500 /dev/urandom >"$WORK/data/groups/files/report.bin"
SUM=$(sha256sum <"$WORK/data/groups/files/report.bin" | cut -d' ' -f1)
post "$FHOOK" '{"text": "send me the report"}'
check "a files hook takes a message (202)" test "$STATUS" = 202
wait_until 30 sh -c "grep -q 'report sent' '$WORK/cb.log'"
jq -c 'select(.path == "/files" and .body.attachments != null)' "$WORK/cb.log" >"$WORK/fileout"
check "send_file: the file comes to the callback in \"attachments\", once ($(jq -c '.body.attachments[0] | del(.data)' "$WORK/fileout"))" \
	test "$(jq -s 'length == 1 and (.[0].body.attachments | length == 1 and .[0].name == "report.bin")' "$WORK/fileout")" = true
check "byte-exact (sha256 $SUM)" \
	test "$(jq -r '.body.attachments[0].data' "$WORK/fileout" | base64 -d | sha256sum | cut -d' ' -f1)" = "$SUM"
check "and signed (checked by the receiver)" test "$(jq -r .sig_ok "$WORK/fileout")" = true
head -c 3001 /dev/urandom >"$WORK/data/groups/files/big.bin"
post "$FHOOK" '{"text": "send me the big one"}'
wait_until 30 sh -c "grep -q 'big one done' '$WORK/cb.log'"
sleep 1
check "a file past file_max is not sent: one try, and it says why" sh -c \
	"[ \$(jq -c 'select(.path == \"/files\" and .body.attachments != null)' '$WORK/cb.log' | wc -l) = 1 ] &&
	 curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/audit?after=0' | grep -q 'not delivered: the file (3001 bytes) is larger than this channel.s file_max (3000 bytes)'"

# Files in: base64 in the body, into the group's inbox.
head -c 2000 /dev/urandom >"$WORK/in.bin"
INSUM=$(sha256sum <"$WORK/in.bin" | cut -d' ' -f1)
B64=$(base64 -w0 "$WORK/in.bin")
post "$FHOOK" "{\"text\": \"here is a photo\", \"attachments\": [{\"name\": \"photo.bin\", \"type\": \"application/octet-stream\", \"data\": \"$B64\"}]}"
check "a hook with an attachment is accepted (202, $(cat "$WORK/answer"))" test "$STATUS" = 202
inbox=
for f in "$WORK/data/groups/files/inbox/"*photo.bin; do [ -f "$f" ] && inbox=${f##*/}; done
check "it is in the group's inbox ($inbox), byte-exact" \
	sh -c "[ -n '$inbox' ] && [ \"\$(sha256sum <'$WORK/data/groups/files/inbox/$inbox' | cut -d' ' -f1)\" = '$INSUM' ]"
api /api/v1/groups/files/messages >"$WORK/fmsgs"
check "and the message says where" grep -q "here is a photo.*\\[attachment: inbox/$inbox, 2000 bytes\\]" "$WORK/fmsgs"
BIGB64=$(head -c 3001 /dev/urandom | base64 -w0)
A='{"name": "a.txt", "data": "aGVsbG8="}'
for bad in "{\"text\": \"bad1\", \"attachments\": [{\"name\": \"x.bin\", \"data\": \"not base64!\"}]}" \
	"{\"text\": \"bad2\", \"attachments\": [{\"name\": \"x.bin\", \"data\": \"$BIGB64\"}]}" \
	"{\"text\": \"bad3\", \"attachments\": [$A, $A, $A, $A, $A]}" \
	"{\"text\": \"bad4\", \"attachments\": [{\"name\": \"../x\", \"data\": \"aGVsbG8=\"}]}" \
	"{\"text\": \"bad5\", \"attachments\": [$A, {\"name\": \"y\", \"data\": \"aGVsbG8\"}]}"; do
	post "$FHOOK" "$bad"
	check "a bad attachment is 400 (${bad:0:40}...: $(jq -r .error "$WORK/answer" 2>/dev/null))" test "$STATUS" = 400
done
api /api/v1/groups/files/messages >"$WORK/fmsgs"
check "nothing of a refused one is stored" sh -c \
	"! grep -q '\"bad[0-9]' '$WORK/fmsgs' && [ \$(ls '$WORK/data/groups/files/inbox' | wc -l) = 1 ]"

api /api/v1/channels >"$WORK/channels"
check "a hook on a non-loopback address is refused: not connected" \
	test "$(jq '.channels[] | select(.name == "exposed") | .state != "connected" and .last_error != null' "$WORK/channels")" = true
check "and it says why" grep -q 'channel exposed: "listen" must be a loopback address' "$WORK/serve.err"
check "the secret is in no log" sh -c "! grep -q '$SECRET' '$WORK/serve.err' '$WORK/serve.out' '$WORK/cb.log'"
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=
check_clean "nothing left"
done_testing
