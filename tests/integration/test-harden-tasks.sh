#!/bin/bash
# test-harden-tasks.sh: scheduled tasks against a prompt-injected agent (issue 18), the agent
# scripted through the fake model (tests/data/scenarios/harden-tasks.json): every_seconds 1
# from an agent is refused (limits.task_min_interval; the user may go lower), a group's tasks
# are capped, a task's own run cannot schedule (no self-copying task), a slow task's firings
# coalesce instead of piling up, `clawbox tasks cancel --group G --all` stops a group's tasks,
# a paused group queues messages and runs nothing (its tasks' firings are skipped and
# counted), and the task list pages through 1,200 tasks. /healthz stays fast throughout.
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
KEY=sk-ant-test-HTASKS-4444

"$FAKE" --scenario "$TOP/tests/data/scenarios/harden-tasks.json" --log "$WORK/model.log" \
	--port-file "$WORK/mport" --key "$KEY" --forbid "$KEY" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
PORT=$((20000 + RANDOM % 20000))
DATA=$WORK/data
cat >"$WORK/config.json" <<JSON
{"data_dir": "$DATA", "listen": "127.0.0.1:$PORT", "max_concurrent": 2,
 "limits": {"tasks_per_group": 3},
 "model": {"provider": "anthropic", "base_url": "http://127.0.0.1:$(cat "$WORK/mport")",
           "api_key_env": "MY_MODEL_KEY"},
 "groups": [{"id": "main", "main": true}, {"id": "inj"}, {"id": "rep"}, {"id": "pz"}]}
JSON
MY_MODEL_KEY=$KEY "$CLAWBOX" serve --config "$WORK/config.json" >"$WORK/serve.out" 2>"$WORK/serve.err" &
SPID=$!
wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
TOKEN=$(cat "$DATA/api-token")
U=http://127.0.0.1:$PORT
CLI=(--config "$WORK/config.json")
api() { # METHOD PATH [BODY]: status in CODE, body in WORK/body
	CODE=$(curl -s -o "$WORK/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN" \
		${3:+--data-binary "$3"} "$U$2")
}
messages() { # GROUP DIRECTION: how many
	curl -s -H "Authorization: Bearer $TOKEN" "$U/api/v1/groups/$1/messages?after=0" |
		grep -o "\"direction\":\"$2\"" | wc -l
}
model_turn_ok() { # N: the fake model's Nth request met its expectations
	grep "^{\"n\": *$1," "$WORK/model.log" | grep -q '"ok": *true'
}
# /healthz 50 times, 40 ms apart: p99 (the 50th of 50 sorted) under 200 ms.
probe_healthz() { # DESCRIPTION
	: >"$WORK/times"
	for _ in $(seq 1 50); do
		curl -s -o /dev/null -m 5 -w '%{time_total}\n' "$U/healthz" >>"$WORK/times"
		sleep 0.04
	done
	local worst
	worst=$(sort -n "$WORK/times" | tail -1)
	check "$1: /healthz p99 under 200 ms (${worst}s)" awk "BEGIN { exit !($worst < 0.2) }"
}

# ---- an injected agent: every second, and more tasks than the cap ----
api POST /api/v1/groups/inj/messages '{"text": "inject tasks"}'
wait_until 30 sh -c "[ \$(curl -s -H 'Authorization: Bearer $TOKEN' '$U/api/v1/groups/inj/messages?after=0' | grep -o '\"direction\":\"out\"' | wc -l) -ge 1 ]"
check "every_seconds 1 from the agent is refused, with why; the 4th task past a cap of 3 too" \
	model_turn_ok 2
api GET /api/v1/tasks
check "the group has the 3 tasks the cap allows, none every second" \
	sh -c "[ \$(grep -o '\"group\":\"inj\"' '$WORK/body' | wc -l) = 3 ] && ! grep -q 'every 1 s' '$WORK/body'"
api GET "/api/v1/audit?after=0"
check "the refusals are in the audit" \
	grep -q '"group":"inj","action":"schedule_task","decision":"deny","reason":"a task an agent schedules runs at most every 60 s' "$WORK/body"

# ---- the user may go lower; a task's own run may not schedule (no self-copying task) ----
api POST /api/v1/tasks '{"group": "rep", "prompt": "replicate yourself", "every_seconds": 1}'
check "the user may schedule every second from the API ($CODE)" test "$CODE" = 201
rep_task=$(sed -n 's/.*"id":\([0-9]*\).*/\1/p' "$WORK/body")
probe_healthz "while a task fires every second"
sleep 3 # the slow run (3 s) is still going: later firings coalesce
wait_until 20 model_turn_ok 4
check "the task's run asked to copy itself and was refused" model_turn_ok 4
api GET /api/v1/tasks
check "no task was added for rep by its run" test "$(grep -o '"group":"rep"' "$WORK/body" | wc -l)" = 1
api GET "/api/v1/tasks/$rep_task/runs"
coalesced=$(grep -o '"status":"coalesced"' "$WORK/body" | wc -l)
fired=$(grep -o '"message_id":[0-9]' "$WORK/body" | wc -l)
check "a slow task's firings coalesce ($coalesced coalesced, $fired queued)" \
	sh -c "[ $coalesced -ge 2 ] && [ $fired -le 4 ]"
check "and its messages never pile up (rep: $(messages rep in) in)" test "$(messages rep in)" -le 4

# ---- cancel --all ----
"$CLAWBOX" tasks "${CLI[@]}" cancel --group rep --all >"$WORK/cli.out" 2>&1
check "clawbox tasks cancel --group rep --all ($(cat "$WORK/cli.out"))" \
	grep -q '^1 tasks of rep cancelled$' "$WORK/cli.out"
before=$(messages rep in)
sleep 3
check "after cancel --all nothing of rep fires ($before, then $(messages rep in))" \
	test "$(messages rep in)" = "$before"
"$CLAWBOX" tasks "${CLI[@]}" cancel --group nosuch --all >"$WORK/cli.out" 2>&1
check "cancel --all of an unknown group: one clear line ($?)" \
	sh -c "[ \$(wc -l <'$WORK/cli.out') = 1 ] && grep -q '404' '$WORK/cli.out'"

# ---- pause ----
"$CLAWBOX" pause "${CLI[@]}" pz >"$WORK/cli.out" 2>&1
check "clawbox pause pz" grep -q '^pz is paused$' "$WORK/cli.out"
"$CLAWBOX" groups "${CLI[@]}" >"$WORK/cli.out" 2>&1
check "clawbox groups shows it paused" grep -q '^pz  (paused)\( \|$\)' "$WORK/cli.out"
api POST /api/v1/tasks '{"group": "pz", "prompt": "tick while paused", "every_seconds": 1}'
pz_task=$(sed -n 's/.*"id":\([0-9]*\).*/\1/p' "$WORK/body")
api POST /api/v1/groups/pz/messages '{"text": "wait for resume"}'
check "a paused group still queues messages ($CODE)" test "$CODE" = 202
sleep 3
check "a paused group runs nothing (no reply, no firing: $(messages pz in) in, $(messages pz out) out)" \
	sh -c "[ $(messages pz out) = 0 ] && [ $(messages pz in) = 1 ]"
api GET "/api/v1/tasks/$pz_task/runs"
check "its task's firings are skipped and counted ($(grep -o '"status":"paused"' "$WORK/body" | wc -l))" \
	test "$(grep -o '"status":"paused"' "$WORK/body" | wc -l)" -ge 2
"$CLAWBOX" tasks "${CLI[@]}" cancel --group pz --all >/dev/null 2>&1
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
MY_MODEL_KEY=$KEY "$CLAWBOX" serve --config "$WORK/config.json" >>"$WORK/serve.out" 2>>"$WORK/serve.err" &
SPID=$!
wait_until 5 curl -sf "$U/healthz" -o /dev/null
sleep 1
check "the pause is kept across a restart" test "$(messages pz out)" = 0
"$CLAWBOX" resume "${CLI[@]}" pz >"$WORK/cli.out" 2>&1
check "clawbox resume pz" grep -q '^pz is running again$' "$WORK/cli.out"
wait_until 20 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' '$U/api/v1/groups/pz/messages?after=0' | grep -q 'echo: wait for resume'"
check "after resume, what waited is answered" \
	sh -c "curl -s -H 'Authorization: Bearer $TOKEN' '$U/api/v1/groups/pz/messages?after=0' | grep -q 'echo: wait for resume'"

# ---- the task list pages through every row ----
python3 - "$PORT" "$TOKEN" <<'PY'
import http.client, json, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
for i in range(1200):
    body = json.dumps({"group": "main", "prompt": "page %d" % i, "at": "2099-01-01T00:00:00Z"})
    c.request("POST", "/api/v1/tasks", body, {"Authorization": "Bearer " + sys.argv[2]})
    r = c.getresponse()
    r.read()
    if r.status != 201:
        sys.exit("task %d: %d" % (i, r.status))
PY
rc=$?
check "1,200 tasks added by the user (no cap for the user) ($rc)" test "$rc" = 0
api GET /api/v1/tasks
check "one page holds 1,000 and says where the next starts" \
	sh -c "[ \$(grep -o '\"schedule\":' '$WORK/body' | wc -l) = 1000 ] && grep -q '\"next\":[0-9]' '$WORK/body'"
api GET "/api/v1/tasks?limit=7"
check "?limit= makes smaller pages" test "$(grep -o '"id":' "$WORK/body" | wc -l)" = 7
"$CLAWBOX" tasks "${CLI[@]}" >"$WORK/cli.out" 2>&1
check "clawbox tasks follows the pages: all 1,200 ($(grep -c ': page ' "$WORK/cli.out"))" \
	test "$(grep -c ': page ' "$WORK/cli.out")" = 1200
check "each once" test "$(grep ': page ' "$WORK/cli.out" | sort -u | wc -l)" = 1200
probe_healthz "with 1,200 tasks"

check "no model request broke its scenario" sh -c "! grep -q '\"ok\": *false' '$WORK/model.log'"

# ---- a group whose tasks may schedule: allowed, and counted against the cap ----
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
cat >"$WORK/may.json" <<'JSON'
{"turns": [
 {"expect": {"last_contains": ["follow up"]},
  "reply": {"tool_calls": [{"id": "f1", "name": "schedule_task", "input": {"prompt": "later", "every_seconds": 3600}}]}},
 {"expect": {"last_contains": ["for ok: every 3600 s"]}, "reply": {"text": "scheduled"}},
 {"expect": {"last_contains": ["follow up"]},
  "reply": {"tool_calls": [{"id": "f2", "name": "schedule_task", "input": {"prompt": "later", "every_seconds": 3600}}]}},
 {"expect": {"last_contains": ["refused: ok has 2 tasks, as many as limits.tasks_per_group allows"]},
  "reply": {"text": "capped"}}
], "default": {"reply": {"echo": true}}}
JSON
"$FAKE" --scenario "$WORK/may.json" --log "$WORK/model2.log" --port-file "$WORK/mport2" \
	--key "$KEY" --forbid "$KEY" &
MPID="$MPID $!"
wait_until 5 test -s "$WORK/mport2"
cat >"$WORK/config2.json" <<JSON
{"data_dir": "$DATA", "listen": "127.0.0.1:$PORT", "max_concurrent": 2,
 "limits": {"tasks_per_group": 2},
 "model": {"provider": "anthropic", "base_url": "http://127.0.0.1:$(cat "$WORK/mport2")",
           "api_key_env": "MY_MODEL_KEY"},
 "groups": [{"id": "main", "main": true}, {"id": "ok", "tasks_may_schedule": true}]}
JSON
MY_MODEL_KEY=$KEY "$CLAWBOX" serve --config "$WORK/config2.json" >>"$WORK/serve.out" 2>>"$WORK/serve.err" &
SPID=$!
wait_until 5 curl -sf "$U/healthz" -o /dev/null
api POST /api/v1/tasks '{"group": "ok", "prompt": "follow up", "every_seconds": 1}'
wait_until 30 sh -c "grep -q '^{\"n\":4,' '$WORK/model2.log'"
"$CLAWBOX" tasks --config "$WORK/config2.json" cancel --group ok --all >/dev/null 2>&1
check "with tasks_may_schedule a task's run may schedule" sh -c "grep '^{\"n\":2,' '$WORK/model2.log' | grep -q '\"ok\":true'"
check "and its tasks count against the cap" sh -c "grep '^{\"n\":4,' '$WORK/model2.log' | grep -q '\"ok\":true'"
done_testing
