#!/bin/bash
# test-engine-output.sh: what ask makes of an engine's output, with stand-in engines (shell
# scripts laid out as npm packages) in place of the real CLIs: stream-json text deltas become
# text once (not again from the whole message), tool calls and results become our events, the
# result's totals the usage; junk lines, a line of 33 MiB and an engine that ends without a
# result are handled (one error, no crash, no hang). And a Codex thread's totals are counted
# per run. The real CLIs are test-engines.sh's.
. "$(dirname "$0")/lib.sh"

NPM=$WORK/npm/node_modules
mkdir -p "$NPM/@anthropic-ai/claude-code/bin" "$NPM/@openai/codex/bin" "$WORK/bin" "$WORK/ws"
fake_claude() { # BODY: what the stand-in prints (a shell script's body)
	{ echo '#!/bin/sh'; echo 'cat >/dev/null'; cat; } >"$NPM/@anthropic-ai/claude-code/bin/claude.exe"
	chmod 755 "$NPM/@anthropic-ai/claude-code/bin/claude.exe"
}
ln -sf "$NPM/@anthropic-ai/claude-code/bin/claude.exe" "$WORK/bin/claude"
ln -sf "$NPM/@openai/codex/bin/codex.js" "$WORK/bin/codex"
is_root && chown -R "$SANDBOX_HOST_UID:$SANDBOX_HOST_UID" "$WORK/ws"
ask() { PATH=$WORK/bin:$PATH ANTHROPIC_API_KEY=k OPENAI_API_KEY=k "$CLAWBOX" ask --json --base-url http://127.0.0.1:9 \
	--workspace "$WORK/ws" --session "$WORK/session" "$@" "hi" >"$WORK/out" 2>"$WORK/err" </dev/null; RC=$?; }

fake_claude <<'EOF2'
printf '%s\n' '{"type":"system","subtype":"init","session_id":"s"}'
printf '%s\n' 'not json at all'
printf '%s\n' '{"type":"stream_event","event":{"type":"message_start"}}'
printf '%s\n' '{"type":"stream_event","event":{"type":"content_block_delta","delta":{"type":"text_delta","text":"hel"}}}'
printf '%s\n' '{"type":"stream_event","event":{"type":"content_block_delta","delta":{"type":"text_delta","text":"lo"}}}'
printf '%s\n' '{"type":"assistant","message":{"content":[{"type":"text","text":"hello"},{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"ls -la\nrm -rf x"}}]}}'
printf '%s\n' '{"type":"assistant","parent_tool_use_id":"t0","message":{"content":[{"type":"text","text":"SUBAGENT"}]}}'
printf '%s\n' '{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1","content":"abc","is_error":true}]}}'
head -c 34603008 /dev/zero | tr '\0' x; echo
printf '%s\n' '{"type":"result","subtype":"success","is_error":false,"num_turns":2,"usage":{"input_tokens":7,"output_tokens":3,"cache_read_input_tokens":2}}'
printf '%s\n' '{"type":"result","subtype":"success","num_turns":9,"usage":{"input_tokens":700}}'
EOF2
ask --engine claude-code
check "claude-code stand-in: answered (exit $RC)" test "$RC" = 0
check "streamed text once: hel, lo (and not the whole message again)" \
	sh -c "[ \$(grep -c '\"type\":\"text\"' '$WORK/out') = 2 ] && grep -q '\"text\":\"hel\"' '$WORK/out'"
check "a subagent's text is not the reply" bash -c "! grep -q SUBAGENT '$WORK/out'"
check "the tool call, summarised on one line" grep -q '"type":"tool_call","id":"t1","name":"Bash","summary":"Bash: ls -la rm -rf x"' "$WORK/out"
check "its result, an error of 3 bytes, with its preview" grep -q '"type":"tool_result","id":"t1","name":"","is_error":true,"bytes":3,"preview":"abc"' "$WORK/out"
check "the result's totals are the usage; the second result is ignored" \
	grep -q '"type":"done","status":"answered".*"turns":2,"usage":{"input_tokens":7,"output_tokens":3,"cache_write_tokens":0,"cache_read_tokens":2}' "$WORK/out"
check "done is last, with the run's peak RSS" sh -c "tail -1 '$WORK/out' | grep -Eq '\"type\":\"done\".*\"peak_rss_kb\":[1-9][0-9]{2,}'"
check "a line of 33 MiB (past the 32 MiB a line may hold) was dropped, said once" test "$(grep -c 'too long; dropped' "$WORK/err")" = 1

fake_claude <<'EOF2'
printf '%s\n' '{"type":"assistant","message":{"content":[{"type":"text","text":"partial"}]}}'
exit 3
EOF2
ask --engine claude-code
check "an engine that ends without a result: an error, the reply so far ($RC)" \
	sh -c "[ $RC != 0 ] && grep -q 'claude-code ended with status 3 without an answer' '$WORK/out'"
fake_claude <<'EOF2'
printf '%s\n' '{"type":"result","subtype":"error_max_turns","is_error":true,"result":"too many turns","num_turns":50,"usage":{}}'
EOF2
ask --engine claude-code
check "a limit the engine hit is a limit" grep -q '"status":"limit","message":"too many turns"' "$WORK/out"

# Codex: the thread's totals on each turn; the run's share is what grew.
cat >"$NPM/@openai/codex/bin/codex.js" <<'EOF2'
#!/bin/sh
cat >/dev/null
n=$(cat /state/n 2>/dev/null || echo 0); n=$((n + 1)); echo $n >/state/n
mkdir -p /state/codex/sessions
printf '%s\n' '{"type":"thread.started","thread_id":"x"}'
printf '%s\n' '{"type":"item.started","item":{"id":"i1","type":"command_execution","command":"echo hi"}}'
printf '%s\n' '{"type":"item.completed","item":{"id":"i1","type":"command_execution","command":"echo hi","aggregated_output":"hi\n","exit_code":0,"status":"completed"}}'
printf '%s\n' '{"type":"item.completed","item":{"id":"i2","type":"agent_message","text":"codex says hi"}}'
echo "{\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":$((n * 100)),\"cached_input_tokens\":$((n * 10)),\"output_tokens\":$((n * 5))}}"
EOF2
chmod 755 "$NPM/@openai/codex/bin/codex.js"
rm -rf "$WORK/session"
ask --engine codex
check "codex stand-in: answered, with the shell call and its result" \
	sh -c "[ $RC = 0 ] && grep -q '\"name\":\"shell\",\"summary\":\"shell: echo hi\"' '$WORK/out' && grep -q '\"id\":\"i1\",\"name\":\"shell\",\"is_error\":false,\"bytes\":3' '$WORK/out' && grep -q 'codex says hi' '$WORK/out'"
check "first run: its totals (90 input, 10 cached, 5 output)" \
	grep -q '"usage":{"input_tokens":90,"output_tokens":5,"cache_write_tokens":0,"cache_read_tokens":10}' "$WORK/out"
ask --engine codex
check "second run of the thread: only what grew (90, 10, 5 again; not 180)" \
	grep -q '"usage":{"input_tokens":90,"output_tokens":5,"cache_write_tokens":0,"cache_read_tokens":10}' "$WORK/out"
[ -n "${EO_KEEP:-}" ] && cp -r "$WORK" "$EO_KEEP"
check_clean "nothing of any sandbox is left"
done_testing
