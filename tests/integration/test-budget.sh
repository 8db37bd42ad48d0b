#!/bin/bash
# test-budget.sh: a group's daily budget through `clawbox serve` with the fake model, enforced
# by the run's proxy (src/proxy/meter.h) and by the daemon at the start of a run. Scripted
# sessions that would overspend tokens, cost, tool calls and egress bytes stop at the limit,
# and nothing past it reaches the fake model (its request log is counted after each step);
# a runs limit refuses the run past it; the proxy's meter is what is recorded (runs and
# usage/daily carry the model and cost_usd); `clawbox pause` stops a running sandbox at once;
# the day rolls over in the group's time zone (CLAWBOX_TEST_CLOCK_OFFSET) and the group runs
# again.
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
KEY=sk-ant-test-BUDGET-6666

printf '{"groups": [{"id": "m", "budget": {"tokens": 0}}]}' >"$WORK/bad.json"
"$CLAWBOX" serve --config "$WORK/bad.json" --check-config >/dev/null 2>"$WORK/err"
check "budget.tokens 0 is refused, naming the key ($(cat "$WORK/err"))" grep -q 'groups\[0\].budget.tokens: expected a whole number of at least 1' "$WORK/err"
printf '{"groups": [{"id": "m", "budget": {"dollars": 5}}]}' >"$WORK/bad.json"
"$CLAWBOX" serve --config "$WORK/bad.json" --check-config >/dev/null 2>"$WORK/err"
check "an unknown budget key is refused" grep -q 'groups\[0\].budget.dollars: unknown key' "$WORK/err"
printf '{"groups": [{"id": "m", "budget": {"cost_usd": -1}}]}' >"$WORK/bad.json"
"$CLAWBOX" serve --config "$WORK/bad.json" --check-config >/dev/null 2>"$WORK/err"
check "a negative cost budget is refused" grep -q 'groups\[0\].budget.cost_usd: expected a number of US dollars above 0' "$WORK/err"
printf '{"prices": {"m1": {"input": 3, "outptu": 15}}, "groups": [{"id": "m"}]}' >"$WORK/bad.json"
"$CLAWBOX" serve --config "$WORK/bad.json" --check-config >/dev/null 2>"$WORK/err"
check "a misspelt price is refused, naming the key ($(cat "$WORK/err"))" grep -q 'prices.m1.outptu: unknown key' "$WORK/err"
printf '{"prices": {"m1": {"input": "3"}}, "groups": [{"id": "m"}]}' >"$WORK/bad.json"
"$CLAWBOX" serve --config "$WORK/bad.json" --check-config >/dev/null 2>"$WORK/err"
check "a price that is not a number is refused" grep -q 'prices.m1.input: expected US dollars per million tokens' "$WORK/err"

# A loopback server the egress group downloads from.
"$HTTPD" 127.0.0.1 0 big "$WORK/httpd.log" >"$WORK/hport" 2>/dev/null &
HPID=$!
wait_until 5 test -s "$WORK/hport"
HP=$(cat "$WORK/hport")
sed "s/EGRESS_PORT/$HP/" "$TOP/tests/data/scenarios/budget.json" >"$WORK/budget.json"
"$FAKE" --scenario "$WORK/budget.json" --log "$WORK/model.log" \
	--port-file "$WORK/mport" --key "$KEY" --forbid "$KEY" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
PORT=$((20000 + RANDOM % 20000))
DATA=$WORK/data
cat >"$WORK/config.json" <<JSON
{"data_dir": "$DATA", "listen": "127.0.0.1:$PORT", "limits": {"task_min_interval": 1},
 "model": {"provider": "anthropic", "base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "prices": {"claude-sonnet-4-5": {"input": 3, "output": 15, "cache_write": 3.75, "cache_read": 0.3}},
 "groups": [{"id": "main", "main": true},
            {"id": "small", "timezone": "Pacific/Auckland", "budget": {"tokens": 20000}},
            {"id": "few", "budget": {"runs": 1}},
            {"id": "tight", "budget": {"tokens": 1000}},
            {"id": "cost", "budget": {"cost_usd": 0.05}},
            {"id": "tools", "budget": {"tool_calls": 2}},
            {"id": "egress", "allow": ["127.0.0.1:$HP"], "budget": {"egress_bytes": 100000}},
            {"id": "slow"}]}
JSON
start_daemon() { # [CLOCK OFFSET]
	CLAWBOX_TEST_CLOCK_OFFSET=${1:-0} ANTHROPIC_API_KEY=$KEY "$CLAWBOX" serve --config "$WORK/config.json" >>"$WORK/serve.out" 2>>"$WORK/serve.err" &
	SPID=$!
	wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
	TOKEN=$(cat "$DATA/api-token" 2>/dev/null)
}
api() { # METHOD PATH [BODY]: status in CODE, body in WORK/body
	CODE=$(curl -s -o "$WORK/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN" \
		${3:+--data-binary "$3"} "http://127.0.0.1:$PORT$2")
}
say() { api POST "/api/v1/groups/$1/messages" "{\"text\": \"$2\"}"; }
wait_answered() { wait_until 40 sh -c "[ \"\$(curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/$1/messages?after=0' | grep -o '$2' | wc -l)\" -ge 1 ]"; }
requests() { wc -l <"$WORK/model.log"; }

msgs() { curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/groups/$1/messages?after=0"; }
chat_has() { msgs "$1" | grep -q "$2"; }     # GROUP REGEX
chat_has_text() { msgs "$1" | grep -qF "$2"; } # GROUP TEXT
max_tokens_of() { req "$1" | jq '.request.max_tokens'; }
downloaded() { req 8 | jq -r '.request.messages[-1].content[0].content' | sed -n 's/^got \([0-9]*\).*/\1/p'; }
budget_of() { api GET /api/v1/budget; jq -c ".groups[] | select(.group == \"$1\") | .budget.$2" "$WORK/body"; }
req() { sed -n "$1p" "$WORK/model.log"; } # the Nth request the fake model got

start_daemon
say small "b1 spend"
wait_answered small 'b1 done'
check "GET /api/v1/budget: 14000 of 20000 tokens spent today" test "$(budget_of small tokens)" = '{"spent":14000,"limit":20000}'
say small "b2 overspend"
wait_answered small 'the limit is 6000'
check "the next run had 6000 tokens left: one call, then it stopped before the next" test "$(requests)" = 3
check "that call went out with its max_tokens lowered to what the budget leaves (the proxy's reservation)" \
	test "$(req 3 | jq '.request.max_tokens')" -lt 6000
say small "b3 refused"
wait_answered small 'daily budget of tokens is spent'
check "the run after is not started: the chat says the budget is spent and when it resets" sh -c \
	"curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/small/messages?after=0' | grep -q 'daily budget of tokens is spent (20500 of 20000); it resets at midnight Pacific/Auckland, in [0-9]* min'"
check "nothing of it reached the model" test "$(requests)" = 3
say few "r1 first"
wait_answered few 'echo: r1 first'
say few "r2 second"
wait_answered few 'daily budget of runs is spent (1 of 1)'
check "a runs limit: the second run of the day is refused" test "$(requests)" = 4

# Tokens, in the proxy: the agent's own limit would let it try (it used nothing yet), the
# proxy's reservation does not (the request alone is more than the 1000 left).
say tight "t1 too big"
wait_answered tight 'stopped at the group.s daily budget'
check "a call whose input alone would pass the limit never reaches the model" test "$(requests)" = 4
check "the chat says the run was stopped at the budget, in the host's words" chat_has tight \
	'\[clawbox: the run was stopped at the group.s daily budget: budget: the next model call needs about [0-9]* input tokens and the group.s daily tokens leave 1000\]'


# Cost: the price table turns the proxy's usage into dollars; the second call would pass.
say cost "c1 costly"
wait_answered cost 'stopped at the group.s daily budget'
check "one call at \$0.051, then the next is refused before the model (5 requests: $(requests))" test "$(requests)" = 5
check "the first went out with max_tokens capped by the dollars left ($(max_tokens_of 5))" \
	test "$(max_tokens_of 5)" -lt 8192
check "the chat says the cost stopped it" chat_has_text cost 'budget: the next model call would cost more than the $0.0000 left'

check "GET /api/v1/budget: cost_usd 0.051 of 0.05" \
	test "$(budget_of cost cost_usd | jq '(.spent * 1000 | round) == 51 and .limit == 0.05')" = true
say cost "c2 refused"
wait_answered cost 'daily budget of cost_usd is spent'
check "the next run is not started (\$0.0510 of \$0.0500)" chat_has_text cost 'daily budget of cost_usd is spent ($0.0510 of $0.0500)'

check "nothing of it reached the model" test "$(requests)" = 5
api GET "/api/v1/runs?group=cost"
check "GET /api/v1/runs: the run's model and cost_usd (the proxy's count)" \
	test "$(jq '[.runs[] | select(.model == "claude-sonnet-4-5" and ((.cost_usd * 1000 | round) == 51))] | length' "$WORK/body")" = 1
api GET "/api/v1/usage/daily?days=2"
check "GET /api/v1/usage/daily: a row per group, day and model, with cost_usd" \
	test "$(jq '[.usage[] | select(.group == "cost" and .model == "claude-sonnet-4-5" and (.cost_usd * 1000 | round) == 51)] | length' "$WORK/body")" = 1

# Tool calls, counted in the model's answers by the proxy.
say tools "k1 tools"
wait_answered tools 'stopped at the group.s daily budget'
check "two tool calls in one answer, then the next call is refused ($(requests))" test "$(requests)" = 6
check "the chat says the tool calls are used up" chat_has tools 'budget: the group.s daily tool calls are used up'

check "GET /api/v1/budget: tool_calls 2 of 2" test "$(budget_of tools tool_calls)" = '{"spent":2,"limit":2}'

# Egress bytes: a 1 MiB download against 100,000 bytes is cut short.
say egress "e1 download"
wait_answered egress 'e1 done'
check "the download was cut at the egress budget ($(downloaded) of 1048576 bytes)" \
	test "$(downloaded)" -lt 1048576
check "the chat is told the budget stopped part of the run" chat_has egress 'budget stopped part of the run: budget: the group.s daily egress bytes are used up'

say egress "e2 refused"
wait_answered egress 'daily budget of egress_bytes is spent'
check "the next run is not started, nothing reached the model" test "$(requests)" = 8

api GET "/api/v1/audit?after=0"
check "audited: the proxy's budget stops" sh -c "for g in tight cost tools egress; do grep -q \"\\\"group\\\":\\\"\$g\\\",\\\"action\\\":\\\"budget\\\",\\\"decision\\\":\\\"deny\\\",\\\"reason\\\":\\\"budget: \" '$WORK/body' || exit 1; done"
check "audited: the refusals" sh -c "grep -q '\"group\":\"small\",\"action\":\"budget\",\"decision\":\"deny\"' '$WORK/body' && grep -q '\"group\":\"few\",\"action\":\"budget\",\"decision\":\"deny\"' '$WORK/body'"
"$CLAWBOX" usage --url "http://127.0.0.1:$PORT" --token-file "$DATA/api-token" >"$WORK/usage" 2>&1
check "clawbox usage shows spend against every budget" sh -c \
	"grep -q '^small *tokens *20500 of 20000' '$WORK/usage' && grep -q '^few *runs *1 of 1' '$WORK/usage' && grep -q '^cost *cost_usd *\\\$0.0510 of \\\$0.0500' '$WORK/usage' && grep -q '^tools *tool_calls *2 of 2' '$WORK/usage' && grep -q '^egress *egress_bytes *[0-9]* of 100000' '$WORK/usage'"

# clawbox pause: the running sandbox is stopped at once.
say slow "p1 slow"
wait_until 30 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/runs/active' | grep -q '\"last_tool\":\"bash'"
t0=$(date +%s)
"$CLAWBOX" pause --url "http://127.0.0.1:$PORT" --token-file "$DATA/api-token" slow >"$WORK/cli.out" 2>&1
wait_answered slow 'stopped by the user'
check "clawbox pause stopped the running sandbox at once ($(($(date +%s) - t0)) s, the tool sleeps 60)" \
	test $(($(date +%s) - t0)) -lt 15
check "its sandbox is gone (the tool's sleep too)" wait_until 10 sh -c '! pgrep -f "sleep 59[.]7" >/dev/null'
check "and the run is over" sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/runs/active' | grep -qv '\"group\":\"slow\"'"
"$CLAWBOX" resume --url "http://127.0.0.1:$PORT" --token-file "$DATA/api-token" slow >/dev/null 2>&1
check "nothing more reached the model" test "$(requests)" = 9

# A task that keeps finding the budget spent pauses itself after three times and says so.
api POST /api/v1/tasks '{"group": "few", "prompt": "tick", "every_seconds": 1}'
check "a task for the spent group (201: $CODE)" test "$CODE" = 201
wait_answered few 'failed or found the budget spent 3 times in a row; it is paused'
check "after three refusals in a row the task paused itself and told the group" sh -c \
	"curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/tasks' | grep -q '\"group\":\"few\",\"prompt\":\"tick\".*\"status\":\"paused\"'"
check "none of its firings reached the model" test "$(requests)" = 9

# The next day, in the groups' time zones: the budgets start again.
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
start_daemon 86400
say small "b4 next day"
wait_answered small 'echo: b4 next day'
check "the next day, the group runs again" test "$(requests)" = 10
api GET /api/v1/budget
check "and its spend started from nothing" \
	test "$(jq -c '.groups[] | select(.group == "small") | .budget.tokens' "$WORK/body")" = '{"spent":15,"limit":20000}'

# The proxy's meter alone, under `clawbox ask --proxy-budget`, on both APIs streamed and whole:
# one tool call allowed, so the call after the first answer never reaches the model; the
# meter's line in the audit has the usage the model reported (the cached part apart) and
# its cost at the given price.
"$FAKE" --scenario "$TOP/tests/data/scenarios/budget-ask.json" --log "$WORK/ask-model.log" \
	--port-file "$WORK/aport" --key "$KEY" &
APID=$!
wait_until 5 test -s "$WORK/aport"
n=0
for mode in "openai stream" "openai whole" "anthropic stream" "anthropic whole"; do
	set -- $mode
	n=$((n + 1))
	ws=$WORK/ask-ws.$n
	mkdir -p "$ws"
	is_root && chown "$SANDBOX_HOST_UID:$SANDBOX_HOST_UID" "$ws"
	flags=(--provider "$1" --model fake-model-7)
	[ "$2" = whole ] && flags+=(--no-stream)
	(cd "$ws" && ANTHROPIC_API_KEY=$KEY OPENAI_API_KEY=$KEY "$CLAWBOX" ask "${flags[@]}" \
		--session "$WORK/ask-session.$n" --base-url "http://127.0.0.1:$(cat "$WORK/aport")" \
		--audit "$WORK/ask-audit.$n" --proxy-budget '{"tool_calls": 1, "prices": {"fake-model-7": {"input": 2, "output": 10, "cache_read": 0.5}}}' \
		"tool please" >"$WORK/ask-out" 2>"$WORK/ask-err" </dev/null)
	rc=$?
	check "ask, $mode: stopped at the tool-call limit (exit $rc: $(grep -o 'budget: [^)]*' "$WORK/ask-err" | head -1))" \
		sh -c "[ $rc != 0 ] && grep -q 'budget: the group.s daily tool calls are used up' '$WORK/ask-err'"
	check "ask, $mode: the call past it never reached the model ($(wc -l <"$WORK/ask-model.log") requests)" \
		test "$(wc -l <"$WORK/ask-model.log")" = $n
	check "ask, $mode: the meter counted 700 in, 30 out, 100 cached, 1 tool call, \$0.00175" test "$(grep '^{"meter"' "$WORK/ask-audit.$n" | tail -1 |
		jq '.meter | .input_tokens == 700 and .output_tokens == 30 and .cache_read_tokens == 100 and .tool_calls == 1 and .refused == 1 and ((.cost_usd * 1e8 | round) == 175000) and (.stop | startswith("budget:"))')" = true
done
kill "$APID" 2>/dev/null
wait "$APID" 2>/dev/null
check "the ask sessions' requests were what the scenario expected" sh -c "! grep -q '\"ok\":false' '$WORK/ask-model.log'"

check "every model request was what the scenario expected" sh -c "! grep -q '\"ok\":false' '$WORK/model.log'"
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=
kill "$HPID" 2>/dev/null
wait "$HPID" 2>/dev/null
check_clean "nothing of any sandbox is left"
done_testing
