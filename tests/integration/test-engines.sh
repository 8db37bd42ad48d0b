#!/bin/bash
# test-engines.sh: other agents as a group's engine (issue 13), through `clawbox serve`, with
# the real Claude Code CLI from npm against the fake model. One message to a claude-code group:
# its Bash tool runs inside our sandbox (hostname, uid), the key is nowhere inside (environment,
# /proc, files, the engine's own state) and reaches the fake model only through the proxy; a
# send_message through clawbox mcp-host reaches the chat, a cross-group one is refused and
# audited; usage is recorded. A second message continues the engine's session.
#
# The CLIs come from npm into build/npm-engines (.ci/run installs them; so does this test
# if they are missing). Only where npm cannot reach its registry does this test skip.
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
ENGINES=${CLAWBOX_NPM_ENGINES:-$TOP/build/npm-engines}
KEY=sk-ant-test-ENGINE-SECRET-4444

if [ ! -x "$ENGINES/node_modules/.bin/claude" ]; then
	npm install --prefix "$ENGINES" --no-audit --no-fund @anthropic-ai/claude-code @openai/codex \
		@modelcontextprotocol/server-filesystem >"$WORK/npm.log" 2>&1
	if [ ! -x "$ENGINES/node_modules/.bin/claude" ]; then
		echo "ok 1 - # SKIP npm cannot install @anthropic-ai/claude-code here (no registry): $(tail -1 "$WORK/npm.log")"
		echo "1..1"
		exit 0
	fi
fi

"$FAKE" --scenario "$TOP/tests/data/scenarios/engine-claude.json" --log "$WORK/model.log" \
	--port-file "$WORK/mport" --key "$KEY" --forbid "$KEY" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
PORT=$((20000 + RANDOM % 20000))
DATA=$WORK/data
cat >"$WORK/config.json" <<JSON
{"data_dir": "$DATA", "listen": "127.0.0.1:$PORT",
 "model": {"provider": "anthropic", "base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "groups": [{"id": "main", "main": true},
            {"id": "cc", "engine": "claude-code",
             "engine_options": {"model": "claude-fake-1", "extra_args": ["--max-turns", "10"]}}]}
JSON
mkdir -p "$DATA/groups/cc"
echo "remember: the answer is 42" >"$DATA/groups/cc/AGENTS.md"
is_root && chown -R "$SANDBOX_HOST_UID:$SANDBOX_HOST_UID" "$DATA/groups"
chmod 700 "$DATA" "$DATA/groups" 2>/dev/null

# A bad engine_options is refused at start, naming the key.
sed 's/"extra_args": \["--max-turns", "10"\]/"extra_args": ["--max-turns", 10]/' "$WORK/config.json" >"$WORK/bad.json"
"$CLAWBOX" serve --config "$WORK/bad.json" >"$WORK/bad.out" 2>&1
check "engine_options.extra_args with a number: refused at start, named" \
	grep -q 'groups\[1\].engine_options.extra_args: each a string' "$WORK/bad.out"

PATH=$ENGINES/node_modules/.bin:$PATH ANTHROPIC_API_KEY=$KEY "$CLAWBOX" serve --config "$WORK/config.json" \
	>"$WORK/serve.out" 2>"$WORK/serve.err" &
SPID=$!
wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
TOKEN=$(cat "$DATA/api-token")
auth=(-H "Authorization: Bearer $TOKEN")
msgs() { curl -s "${auth[@]}" "http://127.0.0.1:$PORT/api/v1/groups/$1/messages"; }

curl -s "${auth[@]}" --data-binary '{"text": "first question for claude"}' \
	"http://127.0.0.1:$PORT/api/v1/groups/cc/messages" -o /dev/null
wait_until 90 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/cc/messages' | grep -q 'first claude answer'"
check "the claude-code group answered through the daemon" sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/cc/messages' | grep -q 'first claude answer'"
check "its Bash tool ran in our sandbox, with no key anywhere inside (scripted: host=clawbox uid=1000, 0, 0)" \
	sh -c "grep '\"n\":2,' '$WORK/model.log' | grep -q '\"ok\":true'"
check "the send_message through mcp-host reached the chat" sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/cc/messages' | grep -q 'hello chat, from claude code'"
check "the cross-group one did not" bash -c "! curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/main/messages' | grep -q psst"
curl -s "${auth[@]}" "http://127.0.0.1:$PORT/api/v1/audit?after=0" >"$WORK/audit"
check "and was refused and audited" grep -q '"group":"cc","action":"send_message","decision":"deny"' "$WORK/audit"
check "the allowed one audited as allowed" grep -q '"group":"cc","action":"send_message","decision":"allow"' "$WORK/audit"

curl -s "${auth[@]}" --data-binary '{"text": "second question"}' \
	"http://127.0.0.1:$PORT/api/v1/groups/cc/messages" -o /dev/null
wait_until 90 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/cc/messages' | grep -q 'second claude answer'"
check "a second message continued the engine's session (the first exchange was in the request)" \
	sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/cc/messages' | grep -q 'second claude answer'"
check "every request to the model was as scripted, with the key the proxy added ($(grep -c . "$WORK/model.log") requests)" \
	sh -c "[ \$(grep -c '\"ok\":true' '$WORK/model.log') = 5 ] && ! grep -q '\"ok\":false' '$WORK/model.log'"
check "the engine was asked for the group's model" grep -q '"model":"claude-fake-1"' "$WORK/model.log"
check "it read the group's memory (CLAUDE.md is AGENTS.md)" grep -q 'the answer is 42' "$WORK/model.log"
check "the key is in no file of the group or its session (the engine's own state and logs)" \
	bash -c "! grep -rqF '$KEY' '$DATA/groups' '$DATA/sessions'"
check "the engine's state is in the group's session folder" test -d "$DATA/sessions/cc/claude-code/projects"
curl -s "${auth[@]}" "http://127.0.0.1:$PORT/api/v1/usage" >"$WORK/usage"
check "usage recorded for the group: the engine's totals of both runs ($(head -c 200 "$WORK/usage"))" \
	grep -q '"group":"cc","runs":2,"input":515,"output":45' "$WORK/usage"

kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=

# ---- the same for a codex group (Codex speaks OpenAI Responses: a daemon of its own) ----
KEY=sk-test-ENGINE-SECRET-5555
kill "$MPID"; wait "$MPID" 2>/dev/null
rm -f "$WORK/mport"
"$FAKE" --scenario "$TOP/tests/data/scenarios/engine-codex.json" --log "$WORK/model2.log" \
	--port-file "$WORK/mport" --key "$KEY" --forbid "$KEY" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
DATA=$WORK/data2
cat >"$WORK/config2.json" <<JSON
{"data_dir": "$DATA", "listen": "127.0.0.1:$PORT",
 "model": {"provider": "openai", "base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "groups": [{"id": "main", "main": true},
            {"id": "cx", "engine": "codex", "engine_options": {"model": "gpt-4.1"}}]}
JSON
sed 's/"engine_options": {"model": "gpt-4.1"}/"engine_options": {"allowed_tools": ["Bash"]}/' "$WORK/config2.json" >"$WORK/bad2.json"
"$CLAWBOX" serve --config "$WORK/bad2.json" >"$WORK/bad2.out" 2>&1
check "allowed_tools for a codex group: refused at start, named" \
	grep -q 'groups\[1\].engine_options.allowed_tools: only for claude-code' "$WORK/bad2.out"
mkdir -p "$DATA/groups/cx"
echo "remember: the answer is 43" >"$DATA/groups/cx/AGENTS.md"
is_root && chown -R "$SANDBOX_HOST_UID:$SANDBOX_HOST_UID" "$DATA/groups"
chmod 700 "$DATA" "$DATA/groups" 2>/dev/null
PATH=$ENGINES/node_modules/.bin:$PATH OPENAI_API_KEY=$KEY "$CLAWBOX" serve --config "$WORK/config2.json" \
	>"$WORK/serve2.out" 2>"$WORK/serve2.err" &
SPID=$!
wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
TOKEN=$(cat "$DATA/api-token")
auth=(-H "Authorization: Bearer $TOKEN")
has() { curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/groups/$1/messages" | grep -q "$2"; }
curl -s "${auth[@]}" --data-binary '{"text": "first question for codex"}' \
	"http://127.0.0.1:$PORT/api/v1/groups/cx/messages" -o /dev/null
wait_until 90 has cx 'first codex answer'
check "the codex group answered through the daemon" has cx 'first codex answer'
check "its shell tool ran in our sandbox, with no key anywhere inside (host=clawbox uid=1000, 0, 0)" \
	sh -c "grep '\"n\":2,' '$WORK/model2.log' | grep -q '\"ok\":true'"
check "the send_message through mcp-host reached the chat" has cx 'hello chat, from codex'
check "the cross-group one did not" bash -c "! curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/main/messages' | grep -q psst"
curl -s "${auth[@]}" "http://127.0.0.1:$PORT/api/v1/audit?after=0" >"$WORK/audit2"
check "and was refused and audited" grep -q '"group":"cx","action":"send_message","decision":"deny"' "$WORK/audit2"
curl -s "${auth[@]}" --data-binary '{"text": "second question"}' \
	"http://127.0.0.1:$PORT/api/v1/groups/cx/messages" -o /dev/null
wait_until 90 has cx 'second codex answer'
check "a second message continued the codex session (exec resume --last)" has cx 'second codex answer'
check "every request to the model was as scripted ($(grep -c . "$WORK/model2.log") requests)" \
	sh -c "[ \$(grep -c '\"ok\":true' '$WORK/model2.log') = 5 ] && ! grep -q '\"ok\":false' '$WORK/model2.log'"
check "it read the group's memory (AGENTS.md)" grep -q 'the answer is 43' "$WORK/model2.log"
check "the key is in no file of the group or its session (Codex's own logs and databases)" \
	bash -c "! grep -rqF '$KEY' '$DATA/groups' '$DATA/sessions'"
curl -s "${auth[@]}" "http://127.0.0.1:$PORT/api/v1/usage" >"$WORK/usage2"
check "usage recorded: the engine's totals of both runs ($(head -c 200 "$WORK/usage2"))" \
	grep -q '"group":"cx","runs":2,"input":1015,"output":45' "$WORK/usage2"
# A FIFO where ask keeps Codex's token totals (the engine can write there) must not hold it.
rm -f "$DATA/sessions/cx/engine-usage"
mkfifo "$DATA/sessions/cx/engine-usage"
curl -s "${auth[@]}" --data-binary '{"text": "third question"}' \
	"http://127.0.0.1:$PORT/api/v1/groups/cx/messages" -o /dev/null
wait_until 60 has cx 'third codex answer'
check "a FIFO at the session's usage file does not hold the run" has cx 'third codex answer'
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=

# ---- clawbox run --agent, and an engine that is not installed ----
KEY=sk-ant-test-ENGINE-SECRET-6666
kill "$MPID"; wait "$MPID" 2>/dev/null
rm -f "$WORK/mport"
"$FAKE" --scenario "$TOP/tests/data/scenarios/engine-run.json" --log "$WORK/model3.log" \
	--port-file "$WORK/mport" --key "$KEY" --forbid "$KEY" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
PATH=$ENGINES/node_modules/.bin:$PATH ANTHROPIC_API_KEY=$KEY "$CLAWBOX" run --agent claude-code \
	--model-upstream "http://127.0.0.1:$(cat "$WORK/mport")" --model-key-env ANTHROPIC_API_KEY \
	--env HOME=/tmp -- claude -p --dangerously-skip-permissions "hello" >"$WORK/out" 2>"$WORK/err" </dev/null
check "run --agent claude-code -- claude -p: answered, its tool in the sandbox (exit $?)" \
	sh -c "grep -q 'run-agent answer' '$WORK/out' && [ \$(grep -c '\"ok\":true' '$WORK/model3.log') = 2 ]"
PATH=/usr/bin:/bin "$CLAWBOX" ask --engine claude-code --base-url http://127.0.0.1:9 --workspace "$WORK" \
	--session "$WORK/s" hi >"$WORK/out" 2>"$WORK/err" </dev/null
rc=$?
check "ask --engine claude-code without claude installed: exit 2 ($rc), one line naming the npm package" \
	sh -c "[ $rc = 2 ] && [ \$(wc -l <'$WORK/err') = 1 ] && grep -q 'npm install -g @anthropic-ai/claude-code' '$WORK/err'"
"$CLAWBOX" ask --engine codex --provider anthropic hi >"$WORK/out" 2>"$WORK/err" </dev/null
rc=$?
check "ask --engine codex with the anthropic API: a usage error ($rc)" \
	sh -c "[ $rc = 2 ] && grep -q 'speaks the openai API' '$WORK/err'"
[ -n "${ENGINES_KEEP:-}" ] && cp -r "$WORK" "$ENGINES_KEEP"
check_clean "nothing of any sandbox is left"
done_testing
