#!/bin/bash
# test-longrun.sh: the daemon's per-group run settings for long runs (issue 12): "home":
# "persist" keeps the sandbox's home between a group's runs (a file written to ~ in one run is
# there in the next; without it, it is gone, and other groups never see it), and "max_time"
# bounds a run (config checked: 1 s to 24 h; a run past it is ended and answered). A long run
# shows what it does: its interim text on the group's event stream, `clawbox runs` (group, for
# how long, the last tool call); and it stops at once, its sandbox gone within a second, by
# POST /api/v1/groups/ID/stop, a "/stop" message, or `clawbox stop GROUP`.
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
FAKE_TG=${FAKE_TG:-$TOP/build/tests/fake-telegram}
TG_TOKEN=654321:LONGRUN-bot-token
KEY=sk-ant-test-LONGRUN-7
export HOME=$WORK/nohome XDG_CONFIG_HOME=$WORK/nohome/.config XDG_DATA_HOME=$WORK/nohome/.local/share
unset XDG_STATE_HOME XDG_RUNTIME_DIR ANTHROPIC_API_KEY OPENAI_API_KEY

# ---- configuration ----
check_config() { # WANT-SUBSTRING JSON: --check-config fails, naming what is wrong
	printf '%s' "$2" >"$WORK/bad.json"
	"$CLAWBOX" serve --config "$WORK/bad.json" --check-config >"$WORK/out" 2>"$WORK/err"
	local rc=$?
	if [ $rc = 2 ] && grep -qF -- "$1" "$WORK/err" && [ "$(wc -l <"$WORK/err")" = 1 ]; then
		ok "config error: $1"
	else
		not_ok "config error: $1 (exit $rc: $(cat "$WORK/err"))"
	fi
}
check_config 'groups[0].home: expected "persist" or "fresh"' '{"groups": [{"id": "m", "home": "keep"}]}'
check_config 'groups[0].home: expected a string' '{"groups": [{"id": "m", "home": true}]}'
check_config 'groups[0].max_time: expected a whole number from 1 to 86400' '{"groups": [{"id": "m", "max_time": 86401}]}'
check_config 'groups[0].max_time: expected a whole number from 1 to 86400' '{"groups": [{"id": "m", "max_time": 0}]}'
printf '{"groups": [{"id": "m", "home": "persist", "max_time": 86400}, {"id": "n", "home": "fresh"}]}' >"$WORK/good.json"
"$CLAWBOX" serve --config "$WORK/good.json" --check-config >"$WORK/out" 2>&1
check "home persist/fresh and max_time 24 h are valid" grep -q "valid (2 groups)" "$WORK/out"

# ---- the daemon with a scripted model ----
"$FAKE" --scenario "$TOP/tests/data/scenarios/persist-home.json" --log "$WORK/model.log" \
	--port-file "$WORK/mport" --key "$KEY" --forbid "$KEY" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
MPORT=$(cat "$WORK/mport")
echo '[]' >"$WORK/updates.json"
"$FAKE_TG" --token "$TG_TOKEN" --updates "$WORK/updates.json" --log "$WORK/tg.log" \
	--port-file "$WORK/tport" &
TPID=$!
wait_until 5 test -s "$WORK/tport"
PORT=$((20000 + RANDOM % 20000))
DATA=$WORK/data
printf '{"data_dir": "%s", "listen": "127.0.0.1:%s",
 "model": {"provider": "anthropic", "base_url": "http://127.0.0.1:%s", "api_key_env": "MY_MODEL_KEY"},
 "groups": [{"id": "keep", "home": "persist"}, {"id": "fresh"}, {"id": "short", "max_time": 2},
            {"id": "long", "max_time": 3600},
            {"id": "quota", "home": "persist", "folder_quota": "2M"}],
 "telegram": {"token_env": "TG_TOKEN", "base_url": "http://127.0.0.1:%s", "chats": {"4242": "long"}}}\n' \
	"$DATA" "$PORT" "$MPORT" "$(cat "$WORK/tport")" >"$WORK/config.json"
TG_TOKEN=$TG_TOKEN MY_MODEL_KEY=$KEY "$CLAWBOX" serve --config "$WORK/config.json" >"$WORK/serve.out" 2>"$WORK/serve.err" &
SPID=$!
wait_until 10 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
TOKEN=$(cat "$DATA/api-token" 2>/dev/null)
replies() { curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/groups/$1/messages?after=0" |
	jq -r '.messages[] | select(.direction == "out") | .text'; }
# say GROUP TEXT N: posts TEXT and waits (up to 60 s) for the group's Nth reply
say() {
	curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" --data "{\"text\": \"$2\"}" \
		"http://127.0.0.1:$PORT/api/v1/groups/$1/messages"
	wait_until 60 sh -c "[ \$(curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/$1/messages?after=0' | jq '[.messages[] | select(.direction == \"out\")] | length') -ge $3 ]"
}
say keep "plant a file" 1
say keep "look for it" 2
check "home persist: a file written to ~ in one run is there in the next ($(replies keep | tr '\n' ' '))" \
	test "$(replies keep | tail -1)" = "found it."
# Owned as the group folder is: by the daemon's user where the mount is idmapped, else by
# the sandbox's uid outside.
check "it lives in DATA/homes/keep, owned as the group's folder is" \
	sh -c "[ \"\$(cat '$DATA/homes/keep/mark.txt')\" = planted-by-run ] && [ \"\$(stat -c %u '$DATA/homes/keep/mark.txt')\" = \"\$(stat -c %u '$DATA/groups/keep')\" ]"
say fresh "plant a file" 1
say fresh "look for it" 2
check "without it the home is fresh at every run ($(replies fresh | tr '\n' ' '))" \
	test "$(replies fresh | tail -1)" = "gone."
check "and such a group has no home folder kept" test ! -e "$DATA/homes/fresh"
check "the model saw what the scenario expects" \
	sh -c "[ \$(wc -l <'$WORK/model.log') = 8 ] && ! grep -q '\"ok\":false' '$WORK/model.log'"

t0=$(date +%s)
say short "sleep a while" 1
dt=$(($(date +%s) - t0))
r=$(replies short)
check "max_time 2: the run is ended long before its 30 s sleep, saying why ($dt s: $r)" \
	sh -c "[ $dt -lt 15 ] && [ '$r' = '[clawbox: stopped: reached the time limit of 2 s]' ]"
check "no sleep of it is left" bash -c "! pgrep -f 'sleep 30[.]75' >/dev/null"

# ---- long runs: progress, runs, stop ----
CLI=(--config "$WORK/config.json")
"$CLAWBOX" runs "${CLI[@]}" >"$WORK/cli.out" 2>&1
check "clawbox runs with nothing running" grep -qx "nothing runs" "$WORK/cli.out"
# run_sleeping N: posts "work long N" to group long and waits until its tool runs (the sleep
# in its sandbox), with the group's event stream captured in $WORK/events.N.
run_sleeping() {
	curl -sN -H "Authorization: Bearer $TOKEN" \
		"http://127.0.0.1:$PORT/api/v1/groups/long/events" >"$WORK/events.$1" 2>/dev/null &
	EPID=$!
	curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" --data "{\"text\": \"work long $1\"}" \
		"http://127.0.0.1:$PORT/api/v1/groups/long/messages"
	wait_until 30 pgrep -f "sleep 31[.]25" >/dev/null
	SLEEPER=$(pgrep -f "sleep 31[.]25" | head -1)
}
# gone_ms T0: ms from T0 (date +%s%N) until the sleep is gone and the daemon's ask for the
# run has exited (its sandbox with it: ask ends only after its sandbox's pid 1); up to 10 s.
gone_ms() {
	wait_until 10 bash -c "! pgrep -f 'sleep 31[.]25' >/dev/null && ! pgrep -P $SPID -f ' ask ' >/dev/null"
	echo $((($(date +%s%N) - $1) / 1000000))
}
stop_via() { # N HOW: the Nth long run stopped by HOW; checks it and its reply
	local n=$1 how=$2 t0 ms
	run_sleeping "$n"
	check "long run $n: its interim text is on the event stream while it runs" \
		wait_until 5 sh -c "sed -n 's/^data: //p' '$WORK/events.$n' | jq -j 'select(.reply_to != null and .direction == null and .text != null) | .text' | grep -qx 'Working on it, step ${n}[.]'"
	if [ "$n" = 0 ]; then
		"$CLAWBOX" runs "${CLI[@]}" >"$WORK/cli.out" 2>&1
		check "clawbox runs: the group, for how long, its last tool call ($(cat "$WORK/cli.out"))" \
			grep -Eq "^long  message #[0-9]+  for [0-9]+ s  last: bash: sleep 31.25$" "$WORK/cli.out"
	fi
	t0=$(date +%s%N)
	case $how in
	api) curl -s -o "$WORK/stop.out" -X POST -H "Authorization: Bearer $TOKEN" \
		"http://127.0.0.1:$PORT/api/v1/groups/long/stop" ;;
	message) curl -s -o "$WORK/stop.out" -H "Authorization: Bearer $TOKEN" \
		--data '{"text": " /stop@clawbot "}' "http://127.0.0.1:$PORT/api/v1/groups/long/messages" ;;
	cli) "$CLAWBOX" stop "${CLI[@]}" long >"$WORK/stop.out" 2>&1 ;;
	esac
	ms=$(gone_ms "$t0")
	check "stopped by $how: the sandbox is gone within a second ($ms ms; $(cat "$WORK/stop.out"))" \
		sh -c "[ $ms -lt 1000 ] && grep -Eq '\"stopped\":true|^long: stopped$' '$WORK/stop.out'"
	wait_until 10 sh -c "[ \$(curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/long/messages?after=0' | jq '[.messages[] | select(.direction == \"out\")] | length') -ge $((n + 1)) ]"
	check "and its message is answered with what it said and \"stopped\"" \
		test "$(replies long | tail -3 | tr '\n' '|')" = "Working on it, step $n.||[clawbox: stopped by the user]|"
	kill "$EPID" 2>/dev/null
}
stop_via 0 api
stop_via 1 message
stop_via 2 cli
wait_until 10 sh -c "grep -q 'Working on it, step 2' '$WORK/tg.log'"
tg() { grep "\"method\":\"$1\"" "$WORK/tg.log" 2>/dev/null | grep -c -- "$2"; }
check "the short stopped runs sent no progress to Telegram, only their replies" \
	sh -c "[ $(tg sendMessage '(working)') = 0 ] && [ $(tg sendMessage '\"chat_id\":4242,\"text\":\"Working on it, step 2.') = 1 ]"
# A run that says something, works for a while, says more, works on: its progress message in
# the chat is sent after a few seconds and then edited; /stop from the chat ends it.
STEP3='Step one done. Now step two.'
run_sleeping_tg() {
	curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" --data '{"text": "work long 3"}' \
		"http://127.0.0.1:$PORT/api/v1/groups/long/messages"
	wait_until 30 pgrep -f "sleep 31[.]25" >/dev/null
}
run_sleeping_tg
wait_until 20 sh -c "grep '\"method\":\"editMessageText\"' '$WORK/tg.log' | grep -q '$STEP3'"
check "long run 3: a progress message in its chat, sent with its first text" \
	test "$(tg sendMessage '"chat_id":4242,"text":"(working) Step one done."}')" = 1
check "and edited as more came (editMessageText of that message)" \
	test "$(tg editMessageText "\"chat_id\":4242,\"message_id\":[0-9]*,\"text\":\"(working) $STEP3\"")" -ge 1
t0=$(date +%s%N)
printf '[{"update_id": 7, "message": {"message_id": 7, "chat": {"id": 4242, "type": "private"}, "from": {"username": "ana"}, "text": "/stop"}}]' >"$WORK/updates.new"
mv "$WORK/updates.new" "$WORK/updates.json"
ms=$(gone_ms "$t0")
check "/stop from the chat: the sandbox is gone within a second ($ms ms)" test "$ms" -lt 1000
wait_until 10 sh -c "grep '\"method\":\"sendMessage\"' '$WORK/tg.log' | grep -q 'step two[.].*stopped'"
check "and the chat gets the reply, stopped" \
	test "$(tg sendMessage "\"chat_id\":4242,\"text\":\"$STEP3\\\\n\\\\n\[clawbox: stopped by the user\]\"")" = 1
check "the Telegram stop is audited" sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/audit?after=0' | grep -q '\"action\":\"telegram:stop\",\"decision\":\"allow\"'"
check "a /stop message is not a message: nothing queued, no run for it" \
	sh -c "[ \$(curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/long/messages?after=0' | jq '[.messages[] | select(.direction == \"in\")] | length') = 4 ]"
sleep 0.5
"$CLAWBOX" stop "${CLI[@]}" long >"$WORK/cli.out" 2>&1
check "clawbox stop with nothing running says so" grep -qx "long: nothing was running" "$WORK/cli.out"
"$CLAWBOX" stop "${CLI[@]}" ../x >"$WORK/cli.out" 2>&1
check "clawbox stop ../x: exit 2, no such group ($?)" grep -q "no such group: ../x" "$WORK/cli.out"
curl -s -o "$WORK/body" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
	"http://127.0.0.1:$PORT/api/v1/groups/nope/stop" >"$WORK/code"
check "POST /api/v1/groups/nope/stop: 404" test "$(cat "$WORK/code")" = 404
check "the three stops are audited" sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/audit?after=0' | grep -o '\"action\":\"api:stop\",\"decision\":\"allow\"' | wc -l | grep -qx 3"

# A persistent home counts against the group's folder quota.
say quota "fill the home" 1
check "a run fills its persistent home ($(replies quota | tr '\n' ' '))" test "$(replies quota)" = "filled."
n_model=$(wc -l <"$WORK/model.log")
say quota "and now?" 2
check "the next message is refused: the home counts against the folder quota" \
	sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/quota/messages?after=0' | jq -r '.messages[-1].text' | grep -q 'quota'"
check "without a run (the model was not asked)" test "$(wc -l <"$WORK/model.log")" = "$n_model"

echo "1..$T_NUM"
[ "$T_FAILED" = 0 ]
