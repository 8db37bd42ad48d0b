#!/bin/bash
# test-budget.sh: a group's daily budget through `clawbox serve` with the fake model. A
# scripted session spends tokens; the next run gets only what is left (the agent stops
# before a model call past it), the one after is not started at all and the chat says why;
# a runs limit refuses the run past it; nothing past a limit reaches the fake model; the day
# rolls over in the group's time zone (CLAWBOX_TEST_CLOCK_OFFSET) and the group runs again.
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
KEY=sk-ant-test-BUDGET-6666

printf '{"groups": [{"id": "m", "budget": {"tokens": 0}}]}' >"$WORK/bad.json"
"$CLAWBOX" serve --config "$WORK/bad.json" --check-config >/dev/null 2>"$WORK/err"
check "budget.tokens 0 is refused, naming the key ($(cat "$WORK/err"))" grep -q 'groups\[0\].budget.tokens: expected a whole number of at least 1' "$WORK/err"
printf '{"groups": [{"id": "m", "budget": {"dollars": 5}}]}' >"$WORK/bad.json"
"$CLAWBOX" serve --config "$WORK/bad.json" --check-config >/dev/null 2>"$WORK/err"
check "an unknown budget key is refused" grep -q 'groups\[0\].budget.dollars: unknown key' "$WORK/err"

"$FAKE" --scenario "$TOP/tests/data/scenarios/budget.json" --log "$WORK/model.log" \
	--port-file "$WORK/mport" --key "$KEY" --forbid "$KEY" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
PORT=$((20000 + RANDOM % 20000))
DATA=$WORK/data
cat >"$WORK/config.json" <<JSON
{"data_dir": "$DATA", "listen": "127.0.0.1:$PORT", "limits": {"task_min_interval": 1},
 "model": {"provider": "anthropic", "base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "groups": [{"id": "main", "main": true},
            {"id": "small", "timezone": "Pacific/Auckland", "budget": {"tokens": 2000}},
            {"id": "few", "budget": {"runs": 1}}]}
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

start_daemon
say small "b1 spend"
wait_answered small 'b1 done'
api GET /api/v1/budget
check "GET /api/v1/budget: 1600 of 2000 tokens spent today" \
	test "$(jq -c '.groups[] | select(.group == "small") | .budget.tokens' "$WORK/body")" = '{"spent":1600,"limit":2000}'
say small "b2 overspend"
wait_answered small 'the limit is 400'
check "the next run had 400 tokens left: one call, then it stopped before the next" test "$(requests)" = 3
say small "b3 refused"
wait_answered small 'daily budget of tokens is spent'
check "the run after is not started: the chat says the budget is spent and when it resets" sh -c \
	"curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/small/messages?after=0' | grep -q 'daily budget of tokens is spent (2400 of 2000); it resets at midnight Pacific/Auckland, in [0-9]* min'"
check "nothing of it reached the model" test "$(requests)" = 3
say few "r1 first"
wait_answered few 'echo: r1 first'
say few "r2 second"
wait_answered few 'daily budget of runs is spent (1 of 1)'
check "a runs limit: the second run of the day is refused" test "$(requests)" = 4
api GET "/api/v1/audit?after=0"
check "audited: the refusals" sh -c "grep -q '\"group\":\"small\",\"action\":\"budget\",\"decision\":\"deny\"' '$WORK/body' && grep -q '\"group\":\"few\",\"action\":\"budget\",\"decision\":\"deny\"' '$WORK/body'"
"$CLAWBOX" usage --url "http://127.0.0.1:$PORT" --token-file "$DATA/api-token" >"$WORK/usage" 2>&1
check "clawbox usage shows spend against budget" sh -c \
	"grep -q '^small *tokens *2400 of 2000' '$WORK/usage' && grep -q '^few *runs *1 of 1' '$WORK/usage'"

# A task that keeps finding the budget spent pauses itself after three times and says so.
api POST /api/v1/tasks '{"group": "few", "prompt": "tick", "every_seconds": 1}'
check "a task for the spent group (201: $CODE)" test "$CODE" = 201
wait_answered few 'failed or found the budget spent 3 times in a row; it is paused'
check "after three refusals in a row the task paused itself and told the group" sh -c \
	"curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/tasks' | grep -q '\"group\":\"few\",\"prompt\":\"tick\".*\"status\":\"paused\"'"
check "none of its firings reached the model" test "$(requests)" = 4

# The next day, in the groups' time zones: the budgets start again.
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
start_daemon 86400
say small "b4 next day"
wait_answered small 'echo: b4 next day'
check "the next day, the group runs again" test "$(requests)" = 5
api GET /api/v1/budget
check "and its spend started from nothing" \
	test "$(jq -c '.groups[] | select(.group == "small") | .budget.tokens' "$WORK/body")" = '{"spent":15,"limit":2000}'

check "every model request was what the scenario expected" sh -c "! grep -q '\"ok\":false' '$WORK/model.log'"
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=
[ -n "$KEEP" ] && cp -r "$WORK" /tmp/budget-keep; check_clean "nothing of any sandbox is left"
done_testing
