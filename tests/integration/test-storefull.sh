#!/bin/bash
# test-storefull.sh: a reply the store cannot take, on a real full file system: the daemon's
# data folder is a small tmpfs (in a mount namespace of the daemon's own, so nothing changes
# in ours), which the group's agent fills. The message runs again after 1, 2, 4, 8 s, not at
# once (191-199 runs in 8 s before); after 5 runs it is given up, and marked failed with the
# reason once there is space again; the group then answers as before.
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
KEY=sk-ant-test-STOREFULL-5555

if ! is_root; then
	ok "# SKIP a tmpfs of its own needs root"
	done_testing
	exit 0
fi
"$FAKE" --scenario "$TOP/tests/data/scenarios/fill-disk.json" --log "$WORK/model.log" \
	--port-file "$WORK/mport" --key "$KEY" --forbid "$KEY" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
PORT=$((20000 + RANDOM % 20000))
DATA=$WORK/data
mkdir -p "$DATA"
cat >"$WORK/config.json" <<JSON
{"data_dir": "$DATA", "listen": "127.0.0.1:$PORT",
 "model": {"provider": "anthropic", "base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "groups": [{"id": "main", "main": true}]}
JSON
ANTHROPIC_API_KEY=$KEY unshare -m --propagation private sh -c \
	"mount -t tmpfs -o size=6m,mode=0700 clawbox-test '$DATA' && exec '$CLAWBOX' serve --config '$WORK/config.json'" \
	>"$WORK/serve.out" 2>"$WORK/serve.err" &
SPID=$!
wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
INSIDE=/proc/$SPID/root$DATA # the daemon's view of its data folder
TOKEN=$(cat "$INSIDE/api-token")
api() { # METHOD PATH [BODY]: body in WORK/body
	curl -s -o "$WORK/body" -X "$1" -H "Authorization: Bearer $TOKEN" \
		${3:+--data-binary "$3"} "http://127.0.0.1:$PORT$2"
}
failures() { grep -c 'cannot store the reply' "$WORK/serve.err"; }

api POST /api/v1/groups/main/messages '{"text": "fill the disk"}'
wait_until 30 sh -c "grep -q 'cannot store the reply' '$WORK/serve.err'"
check "the reply could not be stored: the file system is full" \
	grep -q 'cannot store the reply to message 1: database or disk is full' "$WORK/serve.err"
sleep 8
n8=$(failures)
check "8 s later it has run again with a backoff, not at once ($n8 runs, at most 4)" \
	test "$n8" -ge 2 -a "$n8" -le 4
wait_until 30 sh -c "[ \$(grep -c 'cannot store the reply' '$WORK/serve.err') -ge 5 ]"
sleep 4
check "after 5 runs it is not run again ($(failures))" test "$(failures)" = 5
check "at most 5 model requests for those runs" test "$(wc -l <"$WORK/model.log")" -le 6

rm -f "$INSIDE/groups/main/fill"
wait_until 10 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/main/messages' | grep -q 'could not be stored after 5 runs'"
api GET "/api/v1/groups/main/messages?after=0"
check "with space again, the message is marked failed with the reason" \
	grep -q '"text":"\[clawbox: the reply could not be stored after 5 runs (database or disk is full); the message was not run again\]"' "$WORK/body"
api POST /api/v1/groups/main/messages '{"text": "are you back"}'
wait_until 30 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/main/messages' | grep -q 'echo: are you back'"
check "and the group answers again" sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/main/messages' | grep -q 'echo: are you back'"
api GET /metrics
check "nothing is left queued" grep -q '^clawbox_messages_queued 0' "$WORK/body"

kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=
check_clean "nothing of any sandbox is left"
done_testing
