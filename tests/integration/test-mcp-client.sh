#!/bin/bash
# test-mcp-client.sh: our agent as an MCP client (issue 13). The MCP filesystem server from npm
# runs inside the agent's sandbox over stdio: its tools are offered as mcp__fs__*, listing and
# reading work, its own root confinement holds. Misbehaving servers (mcp-bad-server.py) are cut
# off at their limits: one that never answers initialize is left out; one that hangs on a call
# and one that floods are stopped and named, and the agent goes on; past the tool count or a
# schema's size, tools are left out. Each call is an event (tool_call, tool_result).
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
ENGINES=${CLAWBOX_NPM_ENGINES:-$TOP/build/npm-engines}
FS=$ENGINES/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js
KEY=sk-ant-test-MCP-7777
if [ ! -f "$FS" ]; then
	npm install --prefix "$ENGINES" --no-audit --no-fund @modelcontextprotocol/server-filesystem >"$WORK/npm.log" 2>&1
	if [ ! -f "$FS" ]; then
		echo "ok 1 - # SKIP npm cannot install @modelcontextprotocol/server-filesystem here (no registry)"
		echo "1..1"
		exit 0
	fi
fi

"$FAKE" --scenario "$TOP/tests/data/scenarios/mcp-client.json" --log "$WORK/model.log" \
	--port-file "$WORK/mport" --key "$KEY" --forbid "$KEY" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
mkdir -p "$WORK/ws"
echo "hello content 7" >"$WORK/ws/hello.txt"
is_root && chown -R "$SANDBOX_HOST_UID:$SANDBOX_HOST_UID" "$WORK/ws"
BAD=/opt/mcp-test/mcp-bad-server.py
start=$(date +%s)
ANTHROPIC_API_KEY=$KEY "$CLAWBOX" ask --json --base-url "http://127.0.0.1:$(cat "$WORK/mport")" \
	--workspace "$WORK/ws" --session "$WORK/session" \
	--mount "$ENGINES/node_modules:/opt/mcp/node_modules:ro" \
	--mount "$TOP/tests/integration/mcp-bad-server.py:$BAD:ro" \
	--mcp-timeout 3 \
	--mcp-server "fs=node /opt/mcp/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js /workspace" \
	--mcp-server "hang=python3 $BAD hang" --mcp-server "flood=python3 $BAD flood" \
	--mcp-server "mute=python3 $BAD mute" --mcp-server "many=python3 $BAD many" \
	"use the tools" >"$WORK/events" 2>"$WORK/err" </dev/null
rc=$?
took=$(($(date +%s) - start))
check "the agent answered (exit $rc, $took s)" sh -c "[ $rc = 0 ] && grep -q '\"type\":\"done\",\"status\":\"answered\"' '$WORK/events'"
check "every request to the model was as scripted ($(grep -c . "$WORK/model.log") requests)" \
	sh -c "[ \$(grep -c '\"ok\":true' '$WORK/model.log') = 7 ] && ! grep -q '\"ok\":false' '$WORK/model.log'"
for n in 1 2 3 4 5 6 7; do
	check "request $n as scripted" sh -c "grep '\"n\":$n,' '$WORK/model.log' | grep -q '\"ok\":true'"
done
check "each call is an event: tool_call for mcp__fs__read_text_file" \
	grep -q '"type":"tool_call","id":"toolu_m2","name":"mcp__fs__read_text_file"' "$WORK/events"
check "and its tool_result" grep -q '"type":"tool_result","id":"toolu_m2","name":"mcp__fs__read_text_file","is_error":false' "$WORK/events"
check "the hanging server's call is an error result" grep -q '"id":"toolu_m4","name":"mcp__hang__work","is_error":true' "$WORK/events"
check "the mute server was named and left out" grep -q 'MCP server mute (python3): stopped: it did not answer in time' "$WORK/events"
check "tools past the count were left out, and said so" grep -q 'MCP server many: tools past 64 left out' "$WORK/events"
check "a tool with a 40 KiB schema was left out, and said so" grep -q 'tool huge left out (its schema' "$WORK/events"
check "the limits held the run to well under a minute ($took s)" test "$took" -lt 60
check "no MCP server is left running" bash -c "! pgrep -f 'mcp-bad-serve[r]' >/dev/null && ! pgrep -f 'server-filesyste[m]' >/dev/null"
expect_rc 2 "--mcp-server without a command is a usage error" ask --base-url http://127.0.0.1:9 \
	--workspace "$WORK/ws" --session "$WORK/s2" --mcp-server "x=" hi
check "named in one line" grep -q 'mcp-server x=: x: no command' "$WORK/err"
expect_rc 2 "--mcp-server with __ in its name is a usage error" ask --base-url http://127.0.0.1:9 \
	--workspace "$WORK/ws" --session "$WORK/s2" --mcp-server "a__b=true" hi

# ---- through the daemon: a group's "mcp_servers" ----
kill "$MPID"; wait "$MPID" 2>/dev/null
rm -f "$WORK/mport"
"$FAKE" --scenario "$TOP/tests/data/scenarios/mcp-daemon.json" --log "$WORK/model2.log" \
	--port-file "$WORK/mport" --key "$KEY" --forbid "$KEY" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
PORT=$((20000 + RANDOM % 20000))
DATA=$WORK/data
cat >"$WORK/config.json" <<JSON
{"data_dir": "$DATA", "listen": "127.0.0.1:$PORT",
 "model": {"provider": "anthropic", "base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "groups": [{"id": "main", "main": true},
            {"id": "g", "mcp_servers": [{"name": "helper",
              "command": ["python3", "/workspace/group/mcp-bad-server.py", "many"]}]}]}
JSON
mkdir -p "$DATA/groups/g"
cp "$TOP/tests/integration/mcp-bad-server.py" "$DATA/groups/g/"
is_root && chown -R "$SANDBOX_HOST_UID:$SANDBOX_HOST_UID" "$DATA/groups"
chmod 700 "$DATA" "$DATA/groups" 2>/dev/null
sed 's/"name": "helper"/"name": "a__b"/' "$WORK/config.json" >"$WORK/bad.json"
"$CLAWBOX" serve --config "$WORK/bad.json" >"$WORK/bad.out" 2>&1
check "a bad mcp_servers name is refused at start, named" grep -q 'groups\[1\].mcp_servers: each' "$WORK/bad.out"
ANTHROPIC_API_KEY=$KEY "$CLAWBOX" serve --config "$WORK/config.json" >"$WORK/serve.out" 2>"$WORK/serve.err" &
SPID=$!
wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
TOKEN=$(cat "$DATA/api-token")
curl -s -H "Authorization: Bearer $TOKEN" --data-binary '{"text": "use your helper"}' \
	"http://127.0.0.1:$PORT/api/v1/groups/g/messages" -o /dev/null
has() { curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/groups/$1/messages" | grep -q "$2"; }
wait_until 60 has g 'helper done'
check "a group's MCP server ran in its sandbox and its tool answered through the daemon" \
	sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/g/messages' | grep -q 'helper done'"
check "both requests as scripted" sh -c "[ \$(grep -c '\"ok\":true' '$WORK/model2.log') = 2 ]"
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=
[ -n "${MCP_KEEP:-}" ] && cp -r "$WORK" "$MCP_KEEP"
check_clean "nothing of any sandbox is left"
done_testing
