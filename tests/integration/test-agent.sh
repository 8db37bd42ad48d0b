#!/bin/bash
# test-agent.sh: the agent end to end through `clawbox ask`: the real sandbox, the real egress
# proxy (which adds the key), and a fake model server on loopback that speaks the real wire
# protocols and plays scripted scenarios (tests/data/scenarios/). The fake server checks every
# request it gets (content, tool-call structure, the key header) and logs a verdict per request.
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
KEY=sk-ant-test-SECRET-4242
SCENARIOS=$TOP/tests/data/scenarios
MPID=

# start_model SCENARIO: the fake model with that scenario (@HTTPD_PORT@ filled in); sets
# MPORT and MLOG. Every request must carry the key, and none may contain it in its body.
start_model() {
	stop_model
	sed -e "s/@HTTPD_PORT@/${HTTPD_PORT:-0}/g; s/@HTTPS_PORT@/${HTTPS_PORT:-0}/g" \
		"$SCENARIOS/$1.json" >"$WORK/scenario.json"
	MLOG=$WORK/model-$1.log
	rm -f "$MLOG" "$WORK/mport"
	"$FAKE" --scenario "$WORK/scenario.json" --log "$MLOG" --port-file "$WORK/mport" \
		--key "$KEY" --forbid "$KEY" 2>"$WORK/fake.err" &
	MPID=$!
	wait_until 5 test -s "$WORK/mport" || echo "# the fake model did not start: $(cat "$WORK/fake.err")"
	MPORT=$(cat "$WORK/mport" 2>/dev/null)
}
stop_model() {
	[ -n "$MPID" ] && kill "$MPID" 2>/dev/null && wait "$MPID" 2>/dev/null
	MPID=
}
cleanup() {
	stop_model
	[ -n "${HPID:-}" ] && kill "$HPID" 2>/dev/null
	[ -n "${HPID2:-}" ] && kill "$HPID2" 2>/dev/null
	cleanup_work
}
trap cleanup EXIT

# new_workspace: a fresh workspace (writable by the sandbox user) and session folder.
new_workspace() {
	WS=$WORK/ws.$RANDOM$RANDOM
	SESSION=$WORK/session.$RANDOM$RANDOM
	mkdir -p "$WS"
	is_root && chown "$SANDBOX_HOST_UID:$SANDBOX_HOST_UID" "$WS"
}

# ask ARGS...: `clawbox ask` in $WS against the fake model; out, err, RC as run_cb.
ask() {
	(cd "$WS" && ANTHROPIC_API_KEY=$KEY OPENAI_API_KEY=$KEY \
		"$CLAWBOX" ask --session "$SESSION" --base-url "http://127.0.0.1:$MPORT" "$@" \
		>"$WORK/out" 2>"$WORK/err" </dev/null)
	RC=$?
}

# model_ok N: the fake model got exactly N requests and found nothing wrong in any.
model_ok() {
	local n
	n=$(wc -l <"$MLOG" 2>/dev/null || echo 0)
	if [ "$n" != "$1" ] || grep -q '"ok":false' "$MLOG"; then
		echo "# model log: $n requests (want $1); failures: $(grep -o '"failures":\[[^]]*\]' "$MLOG" | grep -v '\[\]' | head -3 | tr '\n' ' ')"
		return 1
	fi
}
err_has() { grep -q -- "$1" "$WORK/err"; }
out_is() { [ "$(cat "$WORK/out")" = "$1" ]; }
why() { echo "exit $RC; stdout: $(head -c 200 "$WORK/out" | tr '\n' ' '); stderr: $(head -c 400 "$WORK/err" | tr '\n' ' ')"; }

# expect_ask WANT-RC DESCRIPTION ARGS...
expect_ask() {
	local want=$1 desc=$2
	shift 2
	ask "$@"
	if [ "$RC" = "$want" ]; then ok "$desc (exit $RC)"; else not_ok "$desc ($(why))"; fi
}

# ---- a multi-tool session, both APIs, streamed and whole ----
for mode in "anthropic stream" "anthropic whole" "openai stream" "openai whole"; do
	set -- $mode
	flags=(--provider "$1" -v)
	[ "$2" = whole ] && flags+=(--no-stream)
	new_workspace
	mkdir -p "$WS/sub/deep" && echo inner >"$WS/sub/deep/inner.txt"
	is_root && chown -R "$SANDBOX_HOST_UID:$SANDBOX_HOST_UID" "$WS"
	start_model multi-tool
	expect_ask 0 "$mode: write, edit, grep, bash, read, glob, answer" --rw "${flags[@]}" "make notes"
	check "$mode: the answer is printed" out_is "Writing the notes.
Notes are ready: alpha, BETA, gamma. ✓"
	check "$mode: every request was as the real API wants it" model_ok 6
	check "$mode: the file on the host is the edited one" \
		test "$(cat "$WS/notes.txt" 2>/dev/null)" = "$(printf 'alpha\nBETA\ngamma')"
	check "$mode: --verbose shows each tool call on stderr" \
		test "$(grep -c '^\[tool\] [a-z]*:' "$WORK/err")" = 6
	check "$mode: and the token usage" err_has '^\[usage\] total: 60 input, 30 output'
	[ "$1" = anthropic ] && [ "$2" = stream ] && check "$mode: streamed as text deltas" \
		grep -q '"stream":true' "$MLOG"
	[ "$2" = whole ] && check "$mode: whole replies were asked for" \
		grep -vq '"stream":true' "$MLOG"
done
check_clean "nothing left after the sessions"

# ---- read-only workspace by default ----
new_workspace
cat >"$WORK/ro.json" <<'JSON'
{"turns": [
 {"reply": {"tool_calls": [{"id": "t1", "name": "write", "input": {"path": "x.txt", "content": "x"}}]}},
 {"expect": {"last_contains": ["read-only"]}, "reply": {"text": "cannot write"}}
]}
JSON
cp "$WORK/ro.json" "$SCENARIOS/../ro-tmp.json" 2>/dev/null
start_model_file() { # like start_model, from a file
	stop_model
	MLOG=$WORK/model-file.log
	rm -f "$MLOG" "$WORK/mport"
	"$FAKE" --scenario "$1" --log "$MLOG" --port-file "$WORK/mport" --key "$KEY" --forbid "$KEY" &
	MPID=$!
	wait_until 5 test -s "$WORK/mport"
	MPORT=$(cat "$WORK/mport")
}
rm -f "$SCENARIOS/../ro-tmp.json"
start_model_file "$WORK/ro.json"
expect_ask 0 "the workspace is read-only without --rw" "write x"
check "the write failed inside, nothing on the host" test ! -e "$WS/x.txt"
check "and the model was told why" model_ok 2

# ---- resume, and --new ----
new_workspace
start_model resume
expect_ask 0 "first invocation" "my name is Ada"
expect_ask 0 "the second invocation resumes the conversation" "what is my name"
check "with the whole history sent" out_is "Your name is Ada."
expect_ask 0 "--new starts a new conversation" --new "what is my name"
check "without the old history" out_is "I do not know your name yet."
check "the old transcript is archived, not lost" \
	grep -q "my name is Ada" "$SESSION"/transcript.archived-*.jsonl
check "every request was right" model_ok 3

# ---- compaction ----
new_workspace
start_model compaction
expect_ask 0 "an invocation that fills 90% of the context" \
	--context-window 10000 --compact-at 80 "first question"
expect_ask 0 "the next one compacts first" --context-window 10000 --compact-at 80 "second question"
check "the answer comes from the compacted history" out_is "second answer"
check "the user is told" err_has "compacted the conversation"
check "the model summarised, then answered from the summary (pairs whole)" model_ok 4
check "the old transcript is archived" grep -q "tool-output-one" "$SESSION"/transcript.archived-*.jsonl
check "the new transcript starts with the summary" \
	grep -q SUMMARY-XYZ <(head -1 "$SESSION/transcript.jsonl")
check "and does not hold the old turns" bash -c "! grep -q 'first answer' '$SESSION/transcript.jsonl'"

# ---- errors ----
new_workspace
start_model bad-key
expect_ask 1 "401: a clear error, no retry" "hello"
check "it says the key was refused" err_has "refused the key.*401.*invalid x-api-key"
check "only one request" model_ok 1
check "nothing on stdout" test ! -s "$WORK/out"

# A failed invocation (401, then a 500 with no retries left) leaves its prompt out of the
# conversation: the next one sends its own prompt alone, not merged with the failed one.
new_workspace
start_model failed-then-ok
expect_ask 1 "a prompt refused with 401" "FIRST-PROMPT-XYZ"
check "it says the prompt is not kept" err_has "not kept in the conversation"
expect_ask 1 "a prompt failed with 500" --max-retries 0 "FIRST-PROMPT-XYZ again"
expect_ask 0 "the next invocation" "second question"
expect_ask 0 "and the one after it" "third question"
check "neither carried a failed prompt; the answered turns are kept" model_ok 4
check "the transcript holds no failed prompt" bash -c "! grep -q FIRST-PROMPT-XYZ '$SESSION/transcript.jsonl'"

new_workspace
start_model retry-429
expect_ask 0 "429 then 500 then success" -v "hello"
check "the answer arrives" out_is "ok after retries"
check "usage counts input, output and both cache kinds" \
	err_has "^\[usage\] total: 11 input, 5 output, 3 cache write, 7 cache read tokens over 1 turns"
check "the retries are said" err_has "rate-limiting us.*retrying"
check "three requests" model_ok 3

new_workspace
start_model overloaded
expect_ask 1 "529 until the retries run out" "hello"
check "it says overloaded" err_has "overloaded (HTTP 529"
check "four requests (three retries)" model_ok 4

new_workspace
start_model malformed-stream
expect_ask 1 "malformed JSON in the stream" "hello"
check "said plainly" err_has "malformed JSON"
new_workspace
start_model malformed-body
expect_ask 1 "a whole reply that is not JSON" --no-stream "hello"
check "said plainly" err_has "not valid JSON"
new_workspace
start_model truncated
expect_ask 1 "a stream cut before its end" "hello"
check "said plainly" err_has "stream ended before its end"
check "what had arrived was shown" grep -q "this reply is cut" "$WORK/out"
check "and, text having been shown, not asked again" model_ok 1
for p in anthropic openai; do
	new_workspace
	start_model truncated-early
	expect_ask 0 "$p: a stream cut before any text is retried" --provider $p "hello"
	check "$p: as a connection error is" err_has "stream ended before its end.*retrying"
	check "$p: and the second answer is the one shown" out_is "answered after the cut"
	check "$p: two requests" model_ok 2
done
new_workspace
start_model truncated
expect_ask 1 "an OpenAI stream cut before [DONE]" --provider openai "hello"
check "said plainly" err_has "no \[DONE\]"

for p in anthropic openai; do
	new_workspace
	start_model bad-tool-args
	expect_ask 0 "$p: bad tool arguments become tool errors the model reads" --provider $p "go"
	check "$p: each error was reported to the model" model_ok 2
	check "$p: and the model recovered" out_is "recovered from bad arguments"
done

new_workspace
start_model limit-turns
expect_ask 3 "--max-turns 1 stops a tool loop" --max-turns 1 "go"
check "with a clear message" err_has "limit of 1 model turns"
new_workspace
start_model max-tokens
expect_ask 3 "a reply cut at max_tokens" --max-tokens 50 "go"
check "with a clear message" err_has "output limit of 50 tokens"

new_workspace
mkdir -p "$SESSION"
printf '{"role":"user","content":[{"type":"text","text":"x"}]}\n{"role": "assist' >"$SESSION/transcript.jsonl"
is_root && chown -R "$SANDBOX_HOST_UID:$SANDBOX_HOST_UID" "$SESSION"
start_model resume
expect_ask 0 "a truncated transcript is not fatal" "my name is Ada"
check "it is set aside and said so" err_has "transcript was unusable"
check "and kept" test -s "$(ls "$SESSION"/transcript.corrupt-*.jsonl 2>/dev/null | head -1)"

# Tool output that is not UTF-8 (a binary file, random bytes, Latin-1 text) still reaches the
# model as a result, and the transcript stays usable: the next run continues it.
new_workspace
head -c 4096 /dev/urandom >"$WS/image.bin"
chmod 644 "$WS/image.bin"
start_model binary-output
expect_ask 0 "binary tool output" "read the binary files"
check "every result reached the model, marked binary or with U+FFFD" model_ok 2
expect_ask 0 "the next run after binary output" "still there?"
check "continues the same conversation" model_ok 3
check "which was not set aside" sh -c "! grep -q 'transcript was unusable' '$WORK/err' && ! ls '$SESSION'/transcript.corrupt-* 2>/dev/null"

new_workspace
start_model limit-time
expect_ask 3 "--max-time ends a long tool call and the invocation" --max-time 2 "go"
check "with a clear message" err_has "time limit of 2 s"
new_workspace
start_model limit-tokens
expect_ask 3 "--max-total-tokens stops the loop" --max-total-tokens 1000 "go"
check "with a clear message" err_has "used 1100 tokens, the limit is 1000"

# Memory: the group's AGENTS.md (capped) and the global memory file in the system prompt.
new_workspace
{ echo "GROUP-MEMORY-7731"; head -c 40000 /dev/zero | tr '\0' m; echo BEYOND-THE-CAP; } >"$WS/AGENTS.md"
echo "GLOBAL-MEMORY-9902" >"$WORK/global.md"
chmod 644 "$WS/AGENTS.md" "$WORK/global.md"
start_model memory
expect_ask 0 "memory files" --global-memory "$WORK/global.md" "remember"
check "both reach the system prompt, the group's cut at its cap" model_ok 1

# Configuration from CLAWBOX_* variables; the key from a file; a local server with no key.
new_workspace
start_model openai-env
(cd "$WS" && OPENAI_API_KEY=$KEY CLAWBOX_PROVIDER=openai CLAWBOX_MODEL=fake-model-7 \
	CLAWBOX_BASE_URL="http://127.0.0.1:$MPORT" CLAWBOX_MAX_TOKENS=77 \
	"$CLAWBOX" ask --session "$SESSION" "via variables" >"$WORK/out" 2>"$WORK/err" </dev/null)
RC=$?
check "CLAWBOX_PROVIDER, _MODEL, _BASE_URL, _MAX_TOKENS (exit $RC)" \
	sh -c "[ $RC = 0 ] && grep -q '\"path\":\"/v1/chat/completions\"' '$MLOG' && grep -q '\"model\":\"fake-model-7\"' '$MLOG' && grep -q '\"max_tokens\":77' '$MLOG'"
new_workspace
start_model resume
printf '%s\n' "$KEY" >"$WORK/keyfile"
chmod 600 "$WORK/keyfile"
(cd "$WS" && env -u ANTHROPIC_API_KEY "$CLAWBOX" ask --session "$SESSION" --key-file "$WORK/keyfile" \
	--base-url "http://127.0.0.1:$MPORT" "my name is Ada" >"$WORK/out" 2>"$WORK/err" </dev/null)
RC=$?
check "--key-file: the proxy sends the key from the file (exit $RC)" \
	sh -c "[ $RC = 0 ] && ! grep -q '\"ok\":false' '$MLOG'"
stop_model
rm -f "$WORK/mport" "$WORK/nokey.log"
"$FAKE" --scenario "$SCENARIOS/resume.json" --log "$WORK/nokey.log" --port-file "$WORK/mport" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
new_workspace
(cd "$WS" && env -u ANTHROPIC_API_KEY "$CLAWBOX" ask --session "$SESSION" \
	--base-url "http://127.0.0.1:$(cat "$WORK/mport")" "my name is Ada" >"$WORK/out" 2>"$WORK/err" </dev/null)
RC=$?
check "a local model server (no key set): answered without a key (exit $RC)" \
	sh -c "[ $RC = 0 ] && grep -q '\"ok\":true' '$WORK/nokey.log'"

# SIGTERM mid-invocation (a tool running: "sleep 30.25", a command line nothing else on the
# machine has): everything stops, nothing is left, and the next
# invocation finds the transcript repaired, not lost.
new_workspace
start_model limit-time
(cd "$WS" && ANTHROPIC_API_KEY=$KEY exec "$CLAWBOX" ask --session "$SESSION" \
	--base-url "http://127.0.0.1:$MPORT" "go" >"$WORK/out" 2>"$WORK/err" </dev/null) &
askpid=$!
wait_until 10 pgrep -f "sleep 30[.]25" >/dev/null
kill -TERM $askpid
t0=$(date +%s%N)
wait $askpid
RC=$?
ms=$((($(date +%s%N) - t0) / 1000000))
check "SIGTERM ends ask promptly (exit $RC, $ms ms)" test "$RC" -ge 128 -a "$ms" -lt 3000
check_clean "and nothing of the sandbox is left"
check "no tool process is left" bash -c "! pgrep -f 'sleep 30[.]25' >/dev/null"
start_model resume
expect_ask 0 "the next invocation runs" "my name is Ada"
check "on a transcript repaired after the interrupted tool call" \
	grep -q "interrupted" "$SESSION/transcript.jsonl"

# Nothing listens at the model's address (a local server that is not running): the proxy's
# 502 says so, and that failure is final at once, not retried for seconds.
new_workspace
MPORT_SAVE=$MPORT
stop_model
MPORT=1
start=$(date +%s%N)
expect_ask 1 "an unreachable model API" "hello"
ms=$((($(date +%s%N) - start) / 1000000))
check "said plainly, once" test "$(grep -c unreachable "$WORK/err")" = 1
check "not retried: over in well under two seconds ($ms ms)" test "$ms" -lt 2000
MPORT=$MPORT_SAVE

# Usage errors: one line, exit 2.
expect_rc 2 "no prompt" ask
check "one line" one_error_line
expect_rc 2 "an unknown provider" ask --provider nope hi
check "one line" one_error_line
(cd "$WORK" && env -u ANTHROPIC_API_KEY HOME="$WORK" "$CLAWBOX" ask hi >"$WORK/out" 2>"$WORK/err" </dev/null)
RC=$?
check "no key for the public API: exit 2 (exit $RC)" test "$RC" = 2
check "and says which variable to set" err_has "ANTHROPIC_API_KEY"

# ---- security: a prompt-injected model hunts for the key and tries to send data out ----
new_workspace
start_model injection
expect_ask 0 "the injected session runs to its end" --audit "$WORK/audit.log" -v "summarise this page"
check "the key reached no request body, and each tool result said what we expected" model_ok 2
check "the model API still got the key, added by the proxy" grep -q '"ok":true' "$MLOG"
check "the exfiltration attempts were refused by the proxy" \
	grep -q '"host":"exfil.example".*"decision":"deny"\|"decision":"deny".*"host":"exfil.example"' "$WORK/audit.log"
check "the key is in no file of the session" bash -c "! grep -rq '$KEY' '$SESSION' '$WS'"

# ---- web_fetch through the proxy ----
"$HTTPD" 127.0.0.1 0 web >"$WORK/hport" 2>/dev/null &
HPID=$!
wait_until 5 test -s "$WORK/hport"
HTTPD_PORT=$(head -1 "$WORK/hport")
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -days 1 \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
	>/dev/null 2>&1
chmod 644 "$WORK/cert.pem"
HTTPD_TLS_CERT="$WORK/cert.pem" HTTPD_TLS_KEY="$WORK/key.pem" \
	"$HTTPD" 127.0.0.1 0 tlsweb >"$WORK/tport" 2>/dev/null &
HPID2=$!
wait_until 5 test -s "$WORK/tport"
HTTPS_PORT=$(head -1 "$WORK/tport")
new_workspace
start_model web-fetch
expect_ask 0 "web_fetch: http and https pages as text, a redirect followed, a file: URL refused" \
	--allow "127.0.0.1:$HTTPD_PORT" --allow "127.0.0.1:$HTTPS_PORT" \
	--fetch-ca-file "$WORK/cert.pem" "fetch"
check "the model got the page's text without script, style or comments" model_ok 2

check_clean "nothing left after all of it"
done_testing
