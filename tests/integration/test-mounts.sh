#!/bin/bash
# test-mounts.sh: extra host folders for a group, through the mount allowlist only: under an
# allowed root, writable only where the root is, no blocked name on the way, no symlink out,
# never the daemon's own data; without the allowlist file, none at all. Each decision audited,
# and each refusal told to the agent (its system prompt) and the user (the reply).
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}

H=$WORK/host
mkdir -p "$H/projects/site" "$H/projects/.ssh" "$H/private" "$H/rwroot" "$WORK/data" "$WORK/etc"
echo SITE-CONTENT >"$H/projects/site/index.txt"
echo KEY >"$H/projects/.ssh/id"
ln -s /etc "$H/projects/evil"
chmod -R a+rX "$H"
# No chown of the writable folder: as root, the sandbox's :rw mounts are idmapped to the
# folder's owner (test-idmap.sh), so a root-owned folder takes the agent's writes.
cat >"$WORK/allow.json" <<JSON
{"roots": [{"path": "$H/projects"}, {"path": "$H/rwroot", "writable": true},
           {"path": "$WORK/data"}]}
JSON
"$FAKE" --scenario "$TOP/tests/data/scenarios/mounts.json" --log "$WORK/model.log" \
	--port-file "$WORK/mport" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
PORT=$((20000 + RANDOM % 20000))
cat >"$WORK/etc/config.json" <<JSON
{"data_dir": "$WORK/data", "listen": "127.0.0.1:$PORT",
 "model": {"base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "groups": [{"id": "main", "main": true, "mounts": [
   {"host": "$H/projects/site", "path": "/workspace/site"},
   {"host": "$H/projects/.ssh", "path": "/workspace/ssh"},
   {"host": "$H/projects/evil", "path": "/workspace/evil"},
   {"host": "$H/private", "path": "/workspace/private"},
   {"host": "$H/projects/site", "path": "/workspace/site-rw", "rw": true},
   {"host": "$H/rwroot", "path": "/workspace/rw", "rw": true},
   {"host": "$WORK/data/groups", "path": "/workspace/data"}]}]}
JSON
printf '{"groups": [{"id": "m", "mounts": [{"host": "rel", "path": "/workspace/x"}]}]}' >"$WORK/bad.json"
"$CLAWBOX" serve --config "$WORK/bad.json" --check-config >/dev/null 2>"$WORK/err"
check "a relative mount host is a config error naming it" grep -q 'groups\[0\].mounts\[0\].host' "$WORK/err"

# The user who starts the daemon has a memory file of their own for `clawbox ask`; the
# daemon's runs must not read it (they get DATA/global/AGENTS.md or nothing).
mkdir -p "$WORK/home/.config/clawbox"
echo "USER-OWN-MEMORY-7f3a" >"$WORK/home/.config/clawbox/AGENTS.md"
start_daemon() { # [ALLOWLIST]
	HOME=$WORK/home XDG_CONFIG_HOME= "$CLAWBOX" serve --config "$WORK/etc/config.json" --mount-allowlist "$1" \
		>>"$WORK/serve.out" 2>>"$WORK/serve.err" &
	SPID=$!
	wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
	TOKEN=$(cat "$WORK/data/api-token" 2>/dev/null)
}
get() { curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$1"; }
start_daemon "$WORK/allow.json"
curl -s -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" --data '{"text": "look around"}' \
	"http://127.0.0.1:$PORT/api/v1/groups/main/messages"
wait_until 30 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/main/messages' | grep -q 'mounts checked'"
check "the agent saw exactly the allowed mounts, read-only and writable as allowed" \
	sh -c "grep -q '\"ok\":true' '$WORK/model.log' && ! grep -q '\"ok\":false' '$WORK/model.log'"
check "its write landed in the writable root" grep -q written "$H/rwroot/out.txt"
if is_root; then
	check "in a root-owned folder, as a root-owned file" test "$(stat -c %u "$H/rwroot/out.txt")" = 0
	check "the group's own folder is root's, not the sandbox uid's" \
		test "$(stat -c %u "$WORK/data/groups/main")" = 0
fi
# A refused mount is said to the agent (a line of its system prompt, inside paths only) and
# to the user (in the stored reply, with the reason), not only in the daemon's log.
jq -r 'select(.n == 1) | .request.system' "$WORK/model.log" >"$WORK/system"
check "the agent's system prompt names the folders left out" \
	grep -qx 'The host left out folders .*: /workspace/ssh /workspace/evil /workspace/private /workspace/site-rw /workspace/data' "$WORK/system"
check "the daemon's run does not read the memory file of the user who started it" \
	sh -c "[ -s '$WORK/system' ] && ! grep -q USER-OWN-MEMORY '$WORK/model.log'"
check "and no host path" sh -c "! grep -qF '$H' '$WORK/system' && ! grep -q '/workspace/site ' '$WORK/system'"
get "/api/v1/groups/main/messages?after=0" | jq -r '.messages[] | select(.direction == "out") | .text' >"$WORK/reply"
check "the reply tells the user which mount was left out and why" \
	grep -qF "[clawbox: mount /workspace/ssh ($H/projects/.ssh) left out: $H/projects/.ssh: \".ssh\" is a blocked name; mount /workspace/evil" "$WORK/reply"
get "/api/v1/audit?after=0" >"$WORK/audit"
for what in "\"action\":\"mount\",\"decision\":\"allow\",\"reason\":\"$H/projects/site\"" \
	'"decision":"deny","reason":"[^"]*\\"\.ssh\\" is a blocked name' \
	'"decision":"deny","reason":"/etc is under no allowed root' \
	"\"decision\":\"deny\",\"reason\":\"$H/private is under no allowed root" \
	'"decision":"deny","reason":"[^"]*/site: its root [^"]* is not writable' \
	"\"action\":\"mount\",\"decision\":\"allow\",\"reason\":\"$H/rwroot\"" \
	'"decision":"deny","reason":"[^"]*: the daemon.s own data or configuration'; do
	check "audited: $what" grep -q "$what" "$WORK/audit"
done
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=

start_daemon "$WORK/no-such-allowlist.json"
curl -s -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" --data '{"text": "again"}' \
	"http://127.0.0.1:$PORT/api/v1/groups/main/messages"
wait_until 30 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/main/messages' | grep -q 'echo: again'"
check "without an allowlist file no extra mount is made" \
	test "$(get "/api/v1/audit?after=0" | grep -o 'no mount allowlist: extra mounts are off' | wc -l)" = 7
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=
check_clean "nothing left"
done_testing
