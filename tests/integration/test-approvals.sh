#!/bin/bash
# test-approvals.sh: policy per group and approvals of host actions, end to end through
# `clawbox serve` with the fake model. A group's policy.tools limits what the agent is offered
# and what the daemon runs (a request sent past the agent, straight to the socket, is refused
# too); the main group's messages to other groups are held for an approver (the default) and
# run once approved, not when denied, not for other input, not past their expiry; "for this
# run" and "always" widen a grant to one destination, and an "always" rule can be removed; an
# answer from someone who is not an approver is refused and audited; a daemon killed with
# SIGKILL while a request is held leaves it denied after the restart, never granted.
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
KEY=sk-ant-test-APPROVALS-5555

# Contradictions and bad values in a policy: one line naming the key, exit 2.
check_config() { # EXPECTED JSON
	printf '%s' "$2" >"$WORK/bad.json"
	"$CLAWBOX" serve --config "$WORK/bad.json" --check-config >"$WORK/out" 2>"$WORK/err"
	local rc=$?
	if [ $rc = 2 ] && grep -qF -- "$1" "$WORK/err" && [ "$(wc -l <"$WORK/err")" = 1 ]; then
		ok "config error: $1"
	else
		not_ok "config error: $1 (exit $rc: $(cat "$WORK/err"))"
	fi
}
check_config 'groups[1].policy.other_groups.send_message: only the main group may act on other groups' \
	'{"groups": [{"id": "main", "main": true}, {"id": "f", "policy": {"other_groups": {"send_message": "allow"}}}]}'
check_config 'groups[0].policy.host_actions.send_file: "allow" for a tool policy.tools does not grant' \
	'{"groups": [{"id": "m", "policy": {"tools": ["read"], "host_actions": {"send_file": "allow"}}}]}'
check_config 'groups[0].approvers: empty, but the policy asks for approvals' \
	'{"groups": [{"id": "m", "approvers": [], "policy": {"host_actions": {"send_message": "ask"}}}]}'
check_config 'groups[0].policy.host_actions.send_mesage: not a host action' \
	'{"groups": [{"id": "m", "policy": {"host_actions": {"send_mesage": "ask"}}}]}'
check_config 'groups[0].policy.host_actions.send_message: expected "allow", "ask" or "deny"' \
	'{"groups": [{"id": "m", "policy": {"host_actions": {"send_message": "maybe"}}}]}'
check_config 'groups[0].policy.tools[1]: not a tool' \
	'{"groups": [{"id": "m", "policy": {"tools": ["read", "rm"]}}]}'
check_config 'groups[0].approvers[1]: expected "cli", "web" or KIND:USER_ID' \
	'{"groups": [{"id": "m", "approvers": ["web", "browser"]}]}'
check_config 'groups[0].policy.unlisted_hosts: expected "deny" or "ask"' \
	'{"groups": [{"id": "m", "policy": {"unlisted_hosts": "allow"}}]}'
check_config 'groups[0].policy.tool: unknown key' '{"groups": [{"id": "m", "policy": {"tool": []}}]}'

"$FAKE" --scenario "$TOP/tests/data/scenarios/approvals.json" --log "$WORK/model.log" \
	--port-file "$WORK/mport" --key "$KEY" --forbid "$KEY" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
PORT=$((20000 + RANDOM % 20000))
DATA=$WORK/data
cat >"$WORK/config.json" <<JSON
{"data_dir": "$DATA", "listen": "127.0.0.1:$PORT",
 "model": {"provider": "anthropic", "base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "groups": [{"id": "main", "main": true},
            {"id": "family", "policy": {"tools": ["bash", "read", "send_message"]}},
            {"id": "ops", "approvers": ["telegram:42"],
             "policy": {"host_actions": {"send_message": "ask"}, "approval_timeout": 3}}]}
JSON
"$CLAWBOX" serve --config "$WORK/config.json" --check-config >"$WORK/out" 2>&1
check "the test's configuration is accepted ($(cat "$WORK/out"))" test $? = 0
mkdir -p "$DATA/groups/family"
cp "$PROBE" "$DATA/groups/family/probe"
chmod 755 "$DATA/groups/family/probe"
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
cb() { "$CLAWBOX" "$1" --url "http://127.0.0.1:$PORT" --token-file "$DATA/api-token" "${@:2}"; }
not() { ! "$@"; }
messages() { api GET "/api/v1/groups/$1/messages?after=0"; cat "$WORK/body"; }
has_message() { messages "$1" | grep -q -- "$2"; } # GROUP PATTERN
say() { api POST "/api/v1/groups/$1/messages" "{\"text\": \"$2\"}"; }
wait_reply() { wait_until 40 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/$1/messages?after=0' | grep -q '$2'"; }
pending_id() { # PREVIEW-PATTERN: waits for a pending approval whose arguments match; its id
	wait_until 30 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/approvals' | grep -q '$1'"
	api GET /api/v1/approvals
	jq -r --arg p "$1" '.approvals[] | select(.preview | test($p)) | .id' "$WORK/body" | head -1
}

start_daemon

cb policy main >"$WORK/pol" 2>&1
check "clawbox policy main: messages to other groups ask by default" \
	grep -q 'send_message *allow (default) *ask (default)' "$WORK/pol"
cb policy family >"$WORK/pol" 2>&1
check "clawbox policy family: its tools, and deny for other groups" sh -c \
	"grep -q 'tools: bash read send_message$' '$WORK/pol' && grep -q 'send_message *allow (default) *deny (default)' '$WORK/pol' && grep -q 'schedule_task *deny (not granted) deny (not granted)' '$WORK/pol'"
cb policy ops >"$WORK/pol" 2>&1
check "clawbox policy ops: ask on itself, a Telegram approver only, 3 s" sh -c \
	"grep -q 'send_message *ask  ' '$WORK/pol' && grep -q 'approvers: telegram:42$' '$WORK/pol' && grep -q 'approval timeout: 3 s' '$WORK/pol'"

# Tools: not offered, refused by the agent, and refused by the daemon when sent around it.
say family "f1 tools"
wait_reply family 'f1 done'
check "the family's run ended" has_message family 'f1 done'
check "the family's agent was offered only its policy's tools" \
	test "$(head -1 "$WORK/model.log" | jq -c '[.request.tools[].name]')" = '["bash","read","send_message"]'
api GET "/api/v1/audit?after=0"
check "audited: schedule_task not granted" grep -q '"group":"family","action":"schedule_task","decision":"deny","reason":"not granted' "$WORK/body"
api GET /api/v1/tasks
check "and no task was made" sh -c "! grep -q '\"prompt\":\"x\"' '$WORK/body'"

# Held, approved once; the same action with other input is held again, and denied.
say main "m1 once"
id1=$(pending_id 'hello-A')
check "main's message to the family is held as approval $id1" test -n "$id1"
check "nothing reached the family yet" not has_message family hello-A
cb approvals >"$WORK/list" 2>&1
check "clawbox approvals shows what, where, why, size and sha256" sh -c \
	"grep -q '#$id1 pending main: send_message -> group:family' '$WORK/list' && grep -q 'why: the policy of main asks before send_message to another group' '$WORK/list' && grep -q 'arguments (35 bytes, sha256 [0-9a-f]\{64\}): {\"group\":\"family\",\"text\":\"hello-A\"}' '$WORK/list' && grep -q 'expires in [0-9]* s' '$WORK/list'"
api POST "/api/v1/approvals/$id1" '{"decision": "approve", "scope": "once", "extra": 1}'
check "an answer with an unknown field is refused, 400 ($CODE)" test "$CODE" = 400
api POST "/api/v1/approvals/$id1" '{"decision": "approv"}'
check "an abbreviated decision is refused, 400 ($CODE)" test "$CODE" = 400
check "and neither ran it" not has_message family hello-A
cb approve "$id1" >"$WORK/out" 2>&1
check "clawbox approve $id1 ($(cat "$WORK/out"))" grep -q "approval $id1: approved" "$WORK/out"
wait_until 10 has_message family hello-A
check "approved: the message reached the family" has_message family hello-A
cb approve "$id1" >"$WORK/out" 2>&1
check "a second answer changes nothing ($(cat "$WORK/out"))" grep -q "is approved, not pending" "$WORK/out"
id2=$(pending_id 'hello-B')
check "the same action with other input is held again (approval $id2)" sh -c "[ -n '$id2' ] && [ '$id2' != '$id1' ]"
api GET "/api/v1/approvals?all=1"
check "their fingerprints differ" test "$(jq -r ".approvals[] | select(.id == $id1 or .id == $id2) | .fingerprint" "$WORK/body" | sort -u | wc -l)" = 2
cb deny "$id2" >"$WORK/out" 2>&1
check "clawbox deny $id2" grep -q "approval $id2: denied" "$WORK/out"
wait_reply main 'm1 done'
check "denied: the agent was told, and hello-B never reached the family" sh -c \
	"curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/family/messages?after=0' | grep -vq hello-B && curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/family/messages?after=0' | grep -q hello-A"

# "For this run": the same destination passes for the rest of the run; another does not.
say main "m2 run"
id3=$(pending_id 'run-1')
cb approve "$id3" --for-run >"$WORK/out" 2>&1
check "clawbox approve $id3 --for-run" grep -q "approved run" "$WORK/out"
id4=$(pending_id 'run-3')
check "run-2 went through without asking, run-3 to another group is held" sh -c \
	"[ -n '$id4' ] && curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/family/messages?after=0' | grep -q run-2"
api GET "/api/v1/approvals?all=1"
check "run-2 never became a request" bash -c "! grep -q run-2 '$WORK/body'"
cb deny "$id4" >/dev/null 2>&1
wait_reply main 'm2 done'
check "run-3 denied, it never reached ops" not has_message ops run-3

# "Always": a rule, listed, used by the next run, removed.
say main "m3 always"
id5=$(pending_id 'always-1')
cb approve "$id5" --always >/dev/null 2>&1
wait_reply main 'm3 done'
cb policy main >"$WORK/pol" 2>&1
check "clawbox policy lists the rule" grep -q "rule 1: send_message to group:family: allow (by cli, approval $id5)" "$WORK/pol"
say main "m4 rule"
wait_reply main 'm4 done'
check "the next run's message passed by the rule, without asking" has_message family always-2
api GET "/api/v1/approvals?all=1"
check "and made no request" bash -c "! grep -q always-2 '$WORK/body'"
cb policy main --remove 1 >"$WORK/out" 2>&1
check "clawbox policy main --remove 1" grep -q "rule 1 of main removed" "$WORK/out"
cb policy main >"$WORK/pol" 2>&1
check "the rule is gone" grep -q "rules added by approvers: none" "$WORK/pol"

# Not an approver; then expiry.
say ops "o1 self"
id6=$(pending_id 'ops-self')
cb approve "$id6" >"$WORK/out" 2>&1
check "an answer from someone who is not an approver is refused (exit $?)" grep -q "cli is not an approver of ops" "$WORK/out"
wait_reply ops 'o1 done'
check "the request expired into a denial; the message was not sent" not has_message ops '"text":"ops-self"'
api GET "/api/v1/approvals?all=1"
check "approval $id6 is expired" test "$(jq -r ".approvals[] | select(.id == $id6) | .status" "$WORK/body")" = expired
api GET "/api/v1/audit?after=0"
check "audited: the refused answer" grep -q "answer to approval $id6 by cli refused: not an approver of ops" "$WORK/body"
check "audited: held, approved, denied, expired" sh -c \
	"grep -q '\"decision\":\"ask\",\"reason\":\"held as approval $id1' '$WORK/body' && grep -q 'approval $id1 approved by cli (once)' '$WORK/body' && grep -q 'approval $id2 denied: denied by cli' '$WORK/body' && grep -q 'approval $id6 expired' '$WORK/body'"

# A daemon killed while a request is held: after the restart it is denied, never granted.
say main "m5 crash"
id7=$(pending_id 'crash-1')
check "held before the crash (approval $id7)" test -n "$id7"
kill -KILL "$SPID"
wait "$SPID" 2>/dev/null
start_daemon
api GET "/api/v1/approvals?all=1"
check "after SIGKILL and restart, approval $id7 is denied" \
	test "$(jq -r ".approvals[] | select(.id == $id7) | .status" "$WORK/body")" = denied
cb approve "$id7" >"$WORK/out" 2>&1
check "and cannot be approved any more ($(cat "$WORK/out"))" grep -q "is denied, not pending" "$WORK/out"
wait_reply main 'after restart'
check "crash-1 never reached the family" not has_message family crash-1

check "every model request was what the scenario expected" sh -c "! grep -q '\"ok\":false' '$WORK/model.log'"
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
kill "$MPID" 2>/dev/null
wait_until 60 no_leftovers # the killed daemon's sandbox ends once its launcher is gone
check_clean "nothing of any sandbox is left"
done_testing
