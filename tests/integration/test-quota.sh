#!/bin/bash
# test-quota.sh: a group folder's quota. The group's agent (scripted by the fake model) writes
# 2 MiB into a folder with a quota of 1M: its next message is refused with a reply that says
# why (and is logged and audited), `clawbox groups` and GET /api/v1/groups show the use; once
# the files are deleted, the group runs again. Another group is not affected.
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
KEY=sk-ant-test-QUOTA-6666

printf '%s' '{"folder_quota": "tiny", "groups": [{"id": "m"}]}' >"$WORK/bad.json"
"$CLAWBOX" serve --config "$WORK/bad.json" --check-config >/dev/null 2>"$WORK/err"
check "a bad folder_quota: one line naming the key" sh -c \
	"grep -q 'folder_quota: expected a size of at least 1M' '$WORK/err' && [ \$(wc -l <'$WORK/err') = 1 ]"
printf '%s' '{"groups": [{"id": "m", "folder_quota": "100K"}]}' >"$WORK/bad.json"
"$CLAWBOX" serve --config "$WORK/bad.json" --check-config >/dev/null 2>"$WORK/err"
check "a group's quota below 1M is refused" grep -q 'groups\[0\].folder_quota: expected a size of at least 1M' "$WORK/err"

"$FAKE" --scenario "$TOP/tests/data/scenarios/quota.json" --log "$WORK/model.log" \
	--port-file "$WORK/mport" --key "$KEY" --forbid "$KEY" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
PORT=$((20000 + RANDOM % 20000))
DATA=$WORK/data
cat >"$WORK/config.json" <<JSON
{"data_dir": "$DATA", "listen": "127.0.0.1:$PORT", "folder_quota": "5G",
 "model": {"provider": "anthropic", "base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "groups": [{"id": "main", "main": true}, {"id": "small", "folder_quota": "1M"}]}
JSON
ANTHROPIC_API_KEY=$KEY "$CLAWBOX" serve --config "$WORK/config.json" >"$WORK/serve.out" 2>"$WORK/serve.err" &
SPID=$!
wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
TOKEN=$(cat "$DATA/api-token")
post() { curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" --data-binary "{\"text\": \"$2\"}" "http://127.0.0.1:$PORT/api/v1/groups/$1/messages"; }
messages() { curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/groups/$1/messages?after=0"; }
has_message() { messages "$1" | grep -q -- "$2"; }

post small "write two megabytes"
wait_until 30 has_message small 'two megabytes written'
check "the run that wrote 2 MiB ended as usual" has_message small 'two megabytes written'
check "and it was logged that the folder is over its quota" \
	wait_until 5 grep -q '\[small\] its folder uses 2.0 MiB of its 1.0 MiB quota' "$WORK/serve.err"
curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/groups" >"$WORK/groups"
check "GET /api/v1/groups: the folder's bytes and quota" grep -q \
	'"id":"small","main":false,"trigger":"","folder_bytes":2[0-9]\{6\},"folder_quota":1048576' "$WORK/groups"
check "and the default for a group that sets none" grep -q '"id":"main",[^}]*"folder_quota":5368709120' "$WORK/groups"
"$CLAWBOX" groups --config "$WORK/config.json" >"$WORK/cli.out" 2>&1
check "clawbox groups shows the use" \
	grep -q '^small  folder 2.0 MiB of 1.0 MiB (over its quota: messages refused)$' "$WORK/cli.out"

post small "are you there"
wait_until 15 has_message small 'quota: delete files'
check "the next message is refused, with the reason as its reply" has_message small \
	'"text":"\[clawbox: the group.s folder uses 2.0 MiB of its 1.0 MiB quota: delete files from it to run again\]"'
check "no model request for it" test "$(wc -l <"$WORK/model.log")" = 2
check "logged" grep -q '\[small\] message [0-9]* refused: the group.s folder uses' "$WORK/serve.err"
curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/audit?after=0" >"$WORK/audit"
check "audited" grep -q '"group":"small","action":"quota","decision":"deny"' "$WORK/audit"
post main "main still runs"
wait_until 30 has_message main 'echo: main still runs'
check "another group is not affected" has_message main 'echo: main still runs'

rm -f "$DATA/groups/small/big"
post small "back again"
wait_until 30 has_message small 'echo: back again'
check "after deleting the files, the group runs again" has_message small 'echo: back again'

kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=
check_clean "nothing of any sandbox is left"
done_testing
