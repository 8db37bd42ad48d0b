#!/bin/bash
# test-actions.sh: host actions and the scheduler through `clawbox serve`. A non-main group's
# agent (scripted by the fake model, as if prompt-injected) tries to message another group,
# schedule for it, manage its task, and send files from outside its folder: each refused and
# recorded, nothing of the other group changed. The main group may act on others. Tasks fire,
# can be cancelled, and runs missed while the daemon was down happen once.
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
KEY=sk-ant-test-ACTIONS-2222

"$FAKE" --scenario "$TOP/tests/data/scenarios/host-actions.json" --log "$WORK/model.log" \
	--port-file "$WORK/mport" --key "$KEY" --forbid "$KEY" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
PORT=$((20000 + RANDOM % 20000))
DATA=$WORK/data
cat >"$WORK/config.json" <<JSON
{"data_dir": "$DATA", "listen": "127.0.0.1:$PORT", "max_concurrent": 2,
 "limits": {"task_min_interval": 1},
 "model": {"provider": "anthropic", "base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "groups": [{"id": "main", "main": true, "policy": {"other_groups": {"*": "allow"}}},
            {"id": "family", "timezone": "Europe/Berlin"},
            {"id": "other"}]}
JSON
# The family's folder, before the daemon makes it: a report to send, a symlink out.
mkdir -p "$DATA/groups/family"
echo "report body" >"$DATA/groups/family/report.txt"
head -c $((9 << 20)) /dev/zero >"$DATA/groups/family/big.bin" # 3 fit a run's 32 MiB, 4 do not
ln -s /etc/passwd "$DATA/groups/family/link-to-passwd"
is_root && chown -R "$SANDBOX_HOST_UID:$SANDBOX_HOST_UID" "$DATA/groups"
chmod 700 "$DATA" "$DATA/groups" 2>/dev/null

start_daemon() {
	ANTHROPIC_API_KEY=$KEY "$CLAWBOX" serve --config "$WORK/config.json" >>"$WORK/serve.out" 2>>"$WORK/serve.err" &
	SPID=$!
	wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
	TOKEN=$(cat "$DATA/api-token" 2>/dev/null)
}
api() { # METHOD PATH [BODY]: status in CODE, body in WORK/body
	CODE=$(curl -s -o "$WORK/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN" \
		${3:+--data-binary "$3"} "http://127.0.0.1:$PORT$2")
}
messages() { api GET "/api/v1/groups/$1/messages?after=0"; cat "$WORK/body"; }
has_message() { messages "$1" | grep -q -- "$2"; } # GROUP PATTERN
stop_daemon() { kill -TERM "$SPID"; wait "$SPID" 2>/dev/null; SPID=; }

start_daemon
api POST /api/v1/tasks '{"group": "other", "prompt": "other task", "every_seconds": 3600}'
check "POST /api/v1/tasks: 201 ($CODE)" sh -c "[ $CODE = 201 ] && grep -q '\"id\":1' '$WORK/body'"
api POST /api/v1/tasks '{"group": "other", "prompt": "x", "cron": "nope"}'
check "a bad schedule: 400 naming the problem ($CODE)" sh -c "[ $CODE = 400 ] && grep -q 'cron' '$WORK/body'"
api POST /api/v1/tasks '{"group": "nosuch", "prompt": "x", "every_seconds": 5}'
check "a task for an unknown group: 404 ($CODE)" test "$CODE" = 404

# The family's agent tries everything.
api POST /api/v1/groups/family/messages '{"text": "try everything"}'
wait_until 30 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/family/messages' | grep -q 'family done'"
check "the family's run ended" has_message family 'family done'
check "every refusal and permission was what the model was told (scripted checks)" \
	sh -c "[ \$(grep -c '\"ok\":true' '$WORK/model.log') -ge 2 ] && ! grep -q '\"ok\":false' '$WORK/model.log'"
check "nothing reached the main group's chat" bash -c "! curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/main/messages' | grep -q psst"
api GET /api/v1/tasks
check "the other group's task is untouched, and main has none" sh -c \
	"grep -q '\"group\":\"other\",\"prompt\":\"other task\",\"schedule\":\"every 3600 s\",\"next_run\":\"[0-9T:-]*Z\",\"status\":\"active\"' '$WORK/body' && ! grep -q 'spam main' '$WORK/body'"
check "the allowed file reached the family's chat" has_message family '\[file: report.txt, 12 bytes\]'
check "and the message" has_message family 'hello own chat'
check "the file was copied, not linked" sh -c "grep -q 'report body' '$DATA'/files/*-report.txt"
check "three copies of big.bin kept, not a fourth" \
	test "$(find "$DATA/files" -name '*-big.bin' | wc -l)" = 3
check "no copy of a refused file" sh -c "! grep -rq 'root:' '$DATA/files' && ! grep -rqF '$TOKEN' '$DATA/files'"
api GET "/api/v1/audit?after=0"
for what in '"group":"family","action":"send_message","decision":"deny"' \
	'"group":"family","action":"schedule_task","decision":"deny"' \
	'"group":"family","action":"cancel_task","decision":"deny"' \
	'"group":"family","action":"pause_task","decision":"deny"' \
	'"group":"family","action":"send_file","decision":"deny","reason":"..\/..\/api-token' \
	'"group":"family","action":"send_file","decision":"deny","reason":"only files' \
	'"group":"family","action":"send_file","decision":"deny","reason":"link-to-passwd' \
	'"group":"family","action":"send_file","decision":"allow"' \
	'"group":"family","action":"send_file","decision":"deny","reason":"big.bin: more than this run' \
	'"group":"family","action":"send_message","decision":"allow"'; do
	check "audited: $what" grep -q "$what" "$WORK/body"
done

# The main group may act on others.
api POST /api/v1/groups/main/messages '{"text": "boss"}'
wait_until 30 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/main/messages' | grep -q 'main done'"
check "main's message reached the family" has_message family 'hello family, from main'
api GET /api/v1/tasks
check "main cancelled the other group's task" sh -c "! grep -q 'other task' '$WORK/body'"
check "main scheduled one for the family" grep -q '"group":"family","prompt":"tick","schedule":"every 1 s"' "$WORK/body"
tick=$(grep -o '"id":[0-9]*,"group":"family","prompt":"tick"' "$WORK/body" | cut -d: -f2 | cut -d, -f1)
wait_until 15 sh -c "[ \$(curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/family/messages' | grep -o 'echo: tick' | wc -l) -ge 2 ]"
check "the task fires, and its answers go to the family's chat" \
	test "$(messages family | grep -o "\"sender\":\"task:$tick\"" | wc -l)" -ge 2
api DELETE "/api/v1/tasks/$tick"
check "DELETE /api/v1/tasks/$tick: cancelled ($CODE)" test "$CODE" = 200
sleep 1.5
n1=$(messages family | grep -o "\"sender\":\"task:$tick\"" | wc -l)
sleep 2.5
n2=$(messages family | grep -o "\"sender\":\"task:$tick\"" | wc -l)
check "and it fires no more ($n1 then $n2)" test "$n1" = "$n2"

# Missed runs: a task due hourly, the daemon down "three hours": it runs once, not three times.
api POST /api/v1/tasks '{"group": "other", "prompt": "hourly report", "every_seconds": 3600}'
tid=$(grep -o '"id":[0-9]*' "$WORK/body" | head -1 | cut -d: -f2)
stop_daemon
CLAWBOX_TEST_CLOCK_OFFSET=$((3 * 3600 + 30)) ANTHROPIC_API_KEY=$KEY "$CLAWBOX" serve \
	--config "$WORK/config.json" >>"$WORK/serve.out" 2>>"$WORK/serve.err" &
SPID=$!
wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
wait_until 20 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/other/messages' | grep -q 'echo: hourly report'"
sleep 2
check "three missed runs run once at start" \
	test "$(messages other | grep -o "\"sender\":\"task:$tid\"" | wc -l)" = 1
stop_daemon
check_clean "nothing of any sandbox is left"
check "no host-action socket is left" sh -c "[ -z \"\$(ls -A '$DATA/run' 2>/dev/null)\" ]"
done_testing
