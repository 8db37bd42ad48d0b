#!/bin/bash
# test-longrun.sh: the daemon's per-group run settings for long runs (issue 12): "home":
# "persist" keeps the sandbox's home between a group's runs (a file written to ~ in one run is
# there in the next; without it, it is gone, and other groups never see it), and "max_time"
# bounds a run (config checked: 1 s to 24 h; a run past it is ended and answered).
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
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
PORT=$((20000 + RANDOM % 20000))
DATA=$WORK/data
printf '{"data_dir": "%s", "listen": "127.0.0.1:%s",
 "model": {"provider": "anthropic", "base_url": "http://127.0.0.1:%s", "api_key_env": "MY_MODEL_KEY"},
 "groups": [{"id": "keep", "home": "persist"}, {"id": "fresh"}, {"id": "short", "max_time": 2}]}\n' \
	"$DATA" "$PORT" "$MPORT" >"$WORK/config.json"
MY_MODEL_KEY=$KEY "$CLAWBOX" serve --config "$WORK/config.json" >"$WORK/serve.out" 2>"$WORK/serve.err" &
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
check "it lives in DATA/homes/keep, owned by the sandbox's uid" \
	sh -c "[ \"\$(cat '$DATA/homes/keep/mark.txt')\" = planted-by-run ] && [ \"\$(stat -c %u '$DATA/homes/keep')\" = $SANDBOX_HOST_UID ]"
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

echo "1..$T_NUM"
[ "$T_FAILED" = 0 ]
