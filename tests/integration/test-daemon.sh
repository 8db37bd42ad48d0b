#!/bin/bash
# test-daemon.sh: `clawbox serve` end to end: configuration checks that name the key, the
# HTTP API (token, origin, limits, errors that store nothing), messages in and replies out
# through real sandboxes and a fake model, per-group order under a concurrency cap, restart
# persistence, a SIGKILL of the daemon mid-invocation (one reply, no orphan, the run saw only
# the environment it needs), and a listener that stops reading (bounded, nothing lost).
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
KEY=sk-ant-test-DAEMON-1111

# Nothing here may touch the user's own daemon, port, configuration or data: every daemon of
# this file has its own HOME, XDG folders, data folder and a port of its own. To prove it, the
# default port 7878 is taken for the whole file (unless something, such as the user's own
# daemon, holds it already): a case that reached for it would fail.
DUMMY=
if python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 7878))' 2>/dev/null; then
	python3 -c 'import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 7878)); s.listen(1); time.sleep(3600)' &
	DUMMY=$!
	wait_until 5 python3 -c 'import socket; socket.create_connection(("127.0.0.1", 7878)).close()' 2>/dev/null
fi
trap '[ -n "$DUMMY" ] && kill "$DUMMY" 2>/dev/null; cleanup_work' EXIT
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
check_config 'groups[1].memroy: unknown key' \
	'{"groups": [{"id": "main", "main": true}, {"id": "family", "memroy": "256M"}]}'
check_config 'groups[0].memory: expected a size' '{"groups": [{"id": "main", "memory": "lots"}]}'
check_config 'groups[0].id: use lower-case' '{"groups": [{"id": "Main!"}]}'
check_config 'groups[1].id: "main" is used twice' '{"groups": [{"id": "main"}, {"id": "main"}]}'
check_config 'listen: expected ADDRESS:PORT' '{"listen": "7878", "groups": [{"id": "m"}]}'
check_config 'max_concurrent: expected a whole number' '{"max_concurrent": 0, "groups": [{"id": "m"}]}'
check_config 'model.provider: expected anthropic or openai' '{"model": {"provider": "x"}, "groups": [{"id": "m"}]}'
check_config 'model.apikey: unknown key' '{"model": {"apikey": "x"}, "groups": [{"id": "m"}]}'
check_config 'telegram.chats.12345: expected the id of a configured group' \
	'{"groups": [{"id": "m"}], "telegram": {"chats": {"12345": "family"}}}'
check_config 'vm.accel: expected auto, kvm or tcg' '{"vm": {"accel": "fast"}, "groups": [{"id": "m"}]}'
check_config 'vm.memory: expected a size of 256M or more' '{"vm": {"memory": "1M"}, "groups": [{"id": "m"}]}'
check_config 'vm: expected true or' '{"vm": "yes", "groups": [{"id": "m"}]}'
check_config 'vm.cpus: unknown key' '{"vm": {"cpus": 2}, "groups": [{"id": "m"}]}'
check_config 'not valid JSON' '{"groups": [}'
check_config 'groups: at least one group' '{"groups": []}'
check_config 'data_dir: expected an absolute path' '{"data_dir": "rel", "groups": [{"id": "m"}]}'
printf '{"data_dir": "%s/d0", "groups": [{"id": "m", "allow": ["exa mple.org"]}, {"id": "n", "allow": ["*.*.org"]}]}' "$WORK" >"$WORK/bad.json"
"$CLAWBOX" serve --config "$WORK/bad.json" >"$WORK/out" 2>"$WORK/err" </dev/null
check "a bad allow entry stops the start, naming the group (exit $?)" grep -q 'groups\[[01]\].allow' "$WORK/err"

# The issue's example configuration, as written, is valid.
cat >"$WORK/example.json" <<'JSON'
{"data_dir": "/tmp/x", "listen": "127.0.0.1:7878", "max_concurrent": 4,
 "model": {"provider": "anthropic", "base_url": "https://api.anthropic.com", "model": "m",
           "api_key_env": "ANTHROPIC_API_KEY"},
 "groups": [{"id": "main", "main": true},
            {"id": "family", "trigger": "@claw", "allow": ["en.wikipedia.org"], "memory": "256M"}],
 "telegram": {"token_env": "TELEGRAM_BOT_TOKEN", "base_url": "https://api.telegram.org",
              "chats": {"12345": "family"}}}
JSON
"$CLAWBOX" serve --config "$WORK/example.json" --check-config >"$WORK/out" 2>&1
check "the issue's example configuration is valid" grep -q "valid (2 groups)" "$WORK/out"
"$CLAWBOX" serve --config "$WORK/example.json" --listen 7878 --check-config >"$WORK/out" 2>"$WORK/err"
check "--listen without an address: exit 2, one line ($?)" \
	sh -c "[ \$(wc -l <'$WORK/err') = 1 ] && grep -q -- '--listen 7878: expected ADDRESS:PORT' '$WORK/err'"
"$CLAWBOX" serve --config "$WORK/example.json" --log-format xml --check-config >"$WORK/out" 2>"$WORK/err"
check "--log-format xml: exit 2, one line ($?)" \
	sh -c "[ \$(wc -l <'$WORK/err') = 1 ] && grep -q -- '--log-format xml: expected text or json' '$WORK/err'"

# --check-config writes nothing: no default configuration, no data folder.
mkdir -p "$WORK/empty"
HOME=$WORK/empty XDG_CONFIG_HOME=$WORK/empty/.config XDG_DATA_HOME=$WORK/empty/.local/share \
	"$CLAWBOX" serve --check-config >"$WORK/out" 2>"$WORK/err"
check "--check-config with no configuration: exit 2, one line, nothing written ($?)" \
	sh -c "[ \$(wc -l <'$WORK/err') = 1 ] && grep -q 'no configuration here yet' '$WORK/err' && [ -z \"\$(ls -A '$WORK/empty')\" ]"
printf '{"data_dir": "%s/nodata", "groups": [{"id": "m"}]}' "$WORK" >"$WORK/nodata.json"
"$CLAWBOX" serve --config "$WORK/nodata.json" --check-config >"$WORK/out" 2>&1
check "--check-config of a valid configuration makes no data folder" \
	sh -c "grep -q valid '$WORK/out' && [ ! -e '$WORK/nodata' ]"

# listen off loopback: refused unless allow_remote, and loud when allowed.
printf '{"data_dir": "%s/rdata", "listen": "0.0.0.0:%s", "groups": [{"id": "m"}]}' "$WORK" \
	$((20000 + RANDOM % 20000)) >"$WORK/remote.json"
check_config 'listen 0.0.0.0 is not a loopback address: set "allow_remote": true' "$(cat "$WORK/remote.json")"
# In a network namespace of its own even so: a daemon that did start would serve nobody.
timeout 10 unshare --net "$CLAWBOX" serve --config "$WORK/remote.json" >"$WORK/out" 2>"$WORK/err" </dev/null
check "and the daemon does not start ($?)" sh -c "[ \$(wc -l <'$WORK/err') = 1 ] && grep -q allow_remote '$WORK/err' && [ ! -e '$WORK/rdata' ]"
sed -i 's/"listen"/"allow_remote": true, "listen"/' "$WORK/remote.json"
# In a network namespace of its own, where 0.0.0.0 reaches nothing but its own loopback.
unshare --net "$CLAWBOX" serve --config "$WORK/remote.json" >"$WORK/out" 2>"$WORK/remote.err" </dev/null &
RPID=$!
wait_until 10 grep -qs "listening on" "$WORK/remote.err"
check "with allow_remote it starts, warning loudly" grep -q 'warning: LISTENING ON 0.0.0.0, NOT LOOPBACK' "$WORK/remote.err"
kill "$RPID" 2>/dev/null
wait "$RPID" 2>/dev/null

# First start with no configuration: a default is written, and the daemon says what to set.
# Its own HOME and XDG folders; the port from --listen, while the default it writes keeps 7878.
mkdir -p "$WORK/home"
PORT0=$((20000 + RANDOM % 20000))
(HOME=$WORK/home XDG_CONFIG_HOME=$WORK/home/.config XDG_DATA_HOME=$WORK/home/.local/share \
	"$CLAWBOX" serve --listen "127.0.0.1:$PORT0" >"$WORK/first.out" 2>"$WORK/first.err" &
	echo $! >"$WORK/first.pid"; wait) &
wait_until 5 grep -qs "listening on" "$WORK/first.err"
check "first start: listening where --listen says" grep -q "listening on http://127.0.0.1:$PORT0" "$WORK/first.err"
check "the default configuration it wrote listens on 7878" \
	grep -q '"listen": "127.0.0.1:7878"' "$WORK/home/.config/clawbox/config.json"
FT=$(cat "$WORK/home/.local/share/clawbox/api-token" 2>/dev/null)
curl -s -o /dev/null -X POST -H "Authorization: Bearer $FT" --data '{"text": "hi"}' \
	"http://127.0.0.1:$PORT0/api/v1/groups/main/messages"
wait_until 10 sh -c "curl -s -H 'Authorization: Bearer $FT' http://127.0.0.1:$PORT0/api/v1/groups/main/messages | grep -q 'no model configured'"
curl -s -H "Authorization: Bearer $FT" "http://127.0.0.1:$PORT0/api/v1/groups/main/messages" >"$WORK/body"
check "with no model, a message is answered with the config keys and the variable to set" \
	sh -c "jq -r '.messages[] | select(.direction == \"out\") | .text' '$WORK/body' | grep -q '^\[clawbox: no model configured: set model.base_url .* or model.api_key_file in $WORK/home/.config/clawbox/config.json, or ANTHROPIC_API_KEY in the daemon.s environment'"
check "and not ask's flags" sh -c "! grep -q -e '--key-file' -e '--base-url' '$WORK/body'"
check "GET /api/v1/groups says model_configured: false" sh -c \
	"curl -s -H 'Authorization: Bearer $FT' http://127.0.0.1:$PORT0/api/v1/groups | jq -e '.model_configured == false' >/dev/null"
kill "$(cat "$WORK/first.pid")" 2>/dev/null
wait_until 5 bash -c "! kill -0 $(cat "$WORK/first.pid") 2>/dev/null"
check "first start writes a default configuration (0600)" \
	test "$(stat -c %a "$WORK/home/.config/clawbox/config.json" 2>/dev/null)" = 600
check "and says which key or base_url to set" grep -q "ANTHROPIC_API_KEY.*base_url" "$WORK/first.err"
check "the data folder holds the store and a 0600 token" sh -c \
	"test -s '$WORK/home/.local/share/clawbox/clawbox.db' && test \"\$(stat -c %a '$WORK/home/.local/share/clawbox/api-token')\" = 600"

# ---- the daemon with a fake model ----
cat >"$WORK/scenario.json" <<'JSON'
{"turns": [], "default": {"reply": {"echo": true}, "delay_ms": 150}}
JSON
"$FAKE" --scenario "$WORK/scenario.json" --log "$WORK/model.log" --port-file "$WORK/mport" \
	--key "$KEY" --forbid "$KEY" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
MPORT=$(cat "$WORK/mport")
PORT=$((20000 + RANDOM % 20000))
DATA=$WORK/data
{
	printf '{"data_dir": "%s", "listen": "127.0.0.1:%s", "max_concurrent": 4,\n' "$DATA" "$PORT"
	printf ' "limits": {"queue_per_group": 1000},\n' # the unread-listener check posts 400
	printf ' "model": {"provider": "anthropic", "base_url": "http://127.0.0.1:%s", "api_key_env": "MY_MODEL_KEY"},\n' "$MPORT"
	printf ' "groups": [{"id": "main", "main": true}'
	for g in $(seq 1 10); do printf ', {"id": "g%s"}' "$g"; done
	printf ']}\n'
} >"$WORK/config.json"

start_daemon() {
	CLAWBOX_TEST_CANARY=daemon-only MY_MODEL_KEY=$KEY "$CLAWBOX" serve --config "$WORK/config.json" \
		${LOGFMT:+--log-format "$LOGFMT"} >>"$WORK/serve.out" 2>>"$WORK/serve.err" &
	SPID=$!
	wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
	TOKEN=$(cat "$DATA/api-token" 2>/dev/null)
}
api() { # METHOD PATH [BODY] [curl args...]: status in $CODE, body in $WORK/body
	local m=$1 p=$2 b=${3:-}
	shift 3 2>/dev/null || shift $#
	CODE=$(curl -s -o "$WORK/body" -w '%{http_code}' -X "$m" -H "Authorization: Bearer $TOKEN" \
		${b:+--data-binary "$b"} "$@" "http://127.0.0.1:$PORT$p")
}
start_daemon
check "the daemon answers /healthz" test -n "$TOKEN"
api GET /api/v1/groups ""
check "with a model, model_configured: true" sh -c "jq -e '.model_configured == true' '$WORK/body' >/dev/null"

# A second daemon on the same data folder refuses to start, saying whose it is.
"$CLAWBOX" serve --config "$WORK/config.json" --listen "127.0.0.1:$((PORT + 1))" >"$WORK/out" 2>"$WORK/err" </dev/null
check "a second daemon on the same data folder: exit 1, naming the first ($?)" \
	sh -c "[ \$(wc -l <'$WORK/err') = 1 ] && grep -q 'data folder $DATA is in use by another clawbox serve (pid $SPID)' '$WORK/err'"
check "and the first still answers" curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null

api POST /api/v1/groups/main/messages '{"text": "hello daemon", "sender": "ana"}'
check "POST a message: 202 with its id ($CODE)" sh -c "[ $CODE = 202 ] && grep -q '\"id\"' '$WORK/body'"
reply_count() { api GET "/api/v1/groups/$1/messages?after=0"; grep -o '"direction":"out"' "$WORK/body" | wc -l; }
wait_until 20 sh -c "[ \$(curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/main/messages' | grep -o '\"direction\":\"out\"' | wc -l) -ge 1 ]"
api GET "/api/v1/groups/main/messages?after=0"
check "the reply is stored as an outgoing message" grep -q '"text":"echo: hello daemon"' "$WORK/body"
check "with the sender of the question kept" grep -q '"sender":"ana"' "$WORK/body"
check "the model got the key from the proxy, and no request held it in its body" \
	sh -c "grep -q '\"ok\":true' '$WORK/model.log' && ! grep -q '\"ok\":false' '$WORK/model.log'"
api GET /api/v1/groups ""
api GET /api/v1/groups/main/runs
check "the run is recorded (runs: the agent's sessions)" \
	grep -q '"message_id":[0-9]*,"started_ms":[0-9]*,"ended_ms":[0-9]*,"status":"answered","exit_status":0' "$WORK/body"
api GET "/api/v1/audit?after=0"
check "the run's egress is in the audit (the model API, through the proxy)" \
	grep -q '"group":"main","action":"egress","decision":"allow","reason":"POST model.clawbox.internal:80' "$WORK/body"
api GET /api/v1/groups ""
check "GET /api/v1/groups lists the configured groups" \
	sh -c "[ $CODE = 200 ] && grep -q '\"id\":\"g10\"' '$WORK/body' && grep -q '\"main\":true' '$WORK/body'"

# The command-line clients, on the same API.
CLI=(--config "$WORK/config.json")
printf 'from the terminal\nand a second line\n' | "$CLAWBOX" chat "${CLI[@]}" main >"$WORK/chat.out" 2>"$WORK/chat.err"
check "clawbox chat: each line answered, streamed back ($?)" \
	test "$(cat "$WORK/chat.out")" = "$(printf 'echo: from the terminal\necho: and a second line')"
"$CLAWBOX" groups "${CLI[@]}" >"$WORK/cli.out" 2>&1
check "clawbox groups, with each folder's use of its quota (1 GiB by default)" sh -c "grep -q '^main  (main)  folder [0-9.]* [KMG]*i*B* of 1.0 GiB$' '$WORK/cli.out' && grep -q '^g10  folder [0-9.]* [a-zA-Z]* of 1.0 GiB$' '$WORK/cli.out'"
"$CLAWBOX" tasks "${CLI[@]}" add g2 --every 3600 "hourly check" >"$WORK/cli.out" 2>&1
check "clawbox tasks add" grep -q '^task #[0-9]*: every 3600 s$' "$WORK/cli.out"
tid=$(sed -n 's/^task #\([0-9]*\):.*/\1/p' "$WORK/cli.out")
"$CLAWBOX" tasks "${CLI[@]}" >"$WORK/cli.out" 2>&1
check "clawbox tasks lists it" grep -q "^#$tid g2 \[active\] every 3600 s next [0-9T:-]*Z: hourly check$" "$WORK/cli.out"
"$CLAWBOX" tasks "${CLI[@]}" cancel "$tid" >"$WORK/cli.out" 2>&1
check "clawbox tasks cancel" grep -q "cancelled" "$WORK/cli.out"
"$CLAWBOX" tasks "${CLI[@]}" add g2 --every 0 "never" >"$WORK/cli.out" 2>&1
check "tasks add --every 0: exit 2, says what is expected ($?)" \
	sh -c "[ \$(wc -l <'$WORK/cli.out') = 1 ] && grep -q -- '--every 0: expected a whole number of seconds from 1' '$WORK/cli.out'"
"$CLAWBOX" tasks "${CLI[@]}" add g2 --at tomorrow "never" >"$WORK/cli.out" 2>&1
check "tasks add --at tomorrow: exit 2, says what is expected ($?)" \
	sh -c "[ \$(wc -l <'$WORK/cli.out') = 1 ] && grep -q -- '--at tomorrow: expected a date and time such as 2026-11-27T09:00:00Z' '$WORK/cli.out'"
reqs() { curl -s "http://127.0.0.1:$PORT/metrics" | sed -n 's/^clawbox_http_requests_total //p'; }
before=$(reqs)
echo hi | "$CLAWBOX" chat "${CLI[@]}" ../x >"$WORK/cli.out" 2>&1
check "clawbox chat ../x: no such group ($?)" \
	sh -c "[ \$(wc -l <'$WORK/cli.out') = 1 ] && grep -q 'no such group: \.\./x' '$WORK/cli.out'"
check "and nothing of it reached the API" test "$(reqs)" = $((before + 1))
"$CLAWBOX" tasks "${CLI[@]}" cancel 999999 >"$WORK/cli.out" 2>&1
check "an unknown task: exit 1, the daemon's reason ($?)" grep -q "404: no such task" "$WORK/cli.out"
"$CLAWBOX" audit "${CLI[@]}" >"$WORK/cli.out" 2>&1
check "clawbox audit" grep -q "g2 allow api:cancel_task" "$WORK/cli.out"
"$CLAWBOX" usage "${CLI[@]}" >"$WORK/cli.out" 2>&1
check "clawbox usage, per group" grep -Eq '^main +3 +30 +15 ' "$WORK/cli.out"
"$CLAWBOX" groups --url "http://127.0.0.1:1" --token-file "$DATA/api-token" >"$WORK/cli.out" 2>&1
check "no daemon: one clear line ($?)" sh -c "[ \$(wc -l <'$WORK/cli.out') = 1 ] && grep -q 'nothing listens there' '$WORK/cli.out'"

# API refusals: a clear 4xx and nothing stored.
count_in() { api GET "/api/v1/groups/main/messages?after=0"; grep -o '"direction":"in"' "$WORK/body" | wc -l; }
before=$(count_in)
CODE=$(curl -s -o "$WORK/body" -w '%{http_code}' -X POST --data '{"text":"x"}' "http://127.0.0.1:$PORT/api/v1/groups/main/messages")
check "no token: 401 ($CODE)" test "$CODE" = 401
CODE=$(curl -s -o "$WORK/body" -w '%{http_code}' -X POST -H "Authorization: Bearer ${TOKEN}x" --data '{"text":"x"}' "http://127.0.0.1:$PORT/api/v1/groups/main/messages")
check "a wrong token: 401 ($CODE)" test "$CODE" = 401
CODE=$(curl -s -o "$WORK/body" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" -H "Origin: http://evil.example" --data '{"text":"x"}' "http://127.0.0.1:$PORT/api/v1/groups/main/messages")
check "a request from another origin: 403 ($CODE)" test "$CODE" = 403
head -c 70000 /dev/zero | tr '\0' a | sed 's/^/{"text":"/; s/$/"}/' >"$WORK/big.json"
CODE=$(curl -s -o "$WORK/body" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" --data-binary @"$WORK/big.json" "http://127.0.0.1:$PORT/api/v1/groups/main/messages")
check "an oversized body: 413 ($CODE)" test "$CODE" = 413
check "as JSON, not libevent's HTML" sh -c "jq -e '.error | test(\"larger than 64 KiB\")' '$WORK/body' >/dev/null"
for m in OPTIONS PUT PATCH; do
	CODE=$(curl -s -o "$WORK/body" -w '%{http_code} %{content_type}' -X $m -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/groups")
	check "$m: 405 as JSON ($CODE)" sh -c "[ '$CODE' = '405 application/json' ] && jq -e .error '$WORK/body' >/dev/null"
done
CODE=$(curl -s -o "$WORK/body" -w '%{http_code} %{content_type}' -X FROB "http://127.0.0.1:$PORT/api/v1/groups")
check "an unknown method: 501 as JSON ($CODE)" sh -c "[ '$CODE' = '501 application/json' ] && jq -e .error '$WORK/body' >/dev/null"
exec 4<>"/dev/tcp/127.0.0.1/$PORT"
# In a subshell: the daemon may close after the request line, before the rest is written,
# and a SIGPIPE must end the writer, not this file.
(printf 'GET  HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' >&4) 2>/dev/null
timeout 5 cat <&4 | tr -d '\r' >"$WORK/raw"
exec 4<&-
check "a request line libevent cannot read: its 400 as JSON too" sh -c \
	"head -n 1 '$WORK/raw' | grep -qx 'HTTP/1.1 400 Bad Request' && grep -qix 'content-type: application/json' '$WORK/raw' && tail -n 1 '$WORK/raw' | jq -e '.error == \"bad request\"' >/dev/null"
api POST /api/v1/groups/main/messages '{"text": '
check "malformed JSON: 400 ($CODE)" test "$CODE" = 400
api POST /api/v1/groups/main/messages '{"text": 5}'
check "text not a string: 400 ($CODE)" test "$CODE" = 400
api POST /api/v1/groups/nosuch/messages '{"text": "x"}'
check "an unknown group: 404 ($CODE)" test "$CODE" = 404
check "none of them stored anything" test "$(count_in)" = "$before"
CODE=$(curl -s -o "$WORK/body" -w '%{http_code}' "http://127.0.0.1:$PORT/metrics")
check "/metrics in Prometheus text, counting the refusals" \
	sh -c "[ $CODE = 200 ] && grep -q '^clawbox_http_refused_total [1-9]' '$WORK/body' && grep -q '^clawbox_messages_out_total [0-9]' '$WORK/body'"

# 50 messages across 10 groups at once: every one answered, per-group order kept, never more
# than max_concurrent sandboxes at a time.
for i in 1 2 3 4 5; do
	for g in $(seq 1 10); do
		curl -s -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" \
			--data "{\"text\": \"g$g message $i\"}" "http://127.0.0.1:$PORT/api/v1/groups/g$g/messages" &
	done
	wait_until 5 true
done
max=0
for _ in $(seq 1 600); do
	# Live sandboxes: their inits, not counting an init's child between its fork and its exec
	# (it is named clawbox-init too for that moment).
	# This daemon's only: other suites may run sandboxes on the same machine meanwhile.
	n=$(ps -eo pid=,ppid=,stat=,comm= | awk -v daemon="$SPID" '{ parent[$1] = $2 }
		$4 == "clawbox-init" && $3 !~ /^Z/ { init[$1] = $2 }
		END { n = 0
			for (p in init) {
				if (init[p] in init) continue
				for (a = parent[p]; a > 1 && a != daemon; a = parent[a]) ;
				if (a == daemon) n++
			}
			print n }')
	[ "$n" -gt "$max" ] && max=$n
	done_all=1
	for g in 1 10; do
		[ "$(curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/groups/g$g/messages" | grep -o '"direction":"out"' | wc -l)" -ge 5 ] || done_all=0
	done
	[ $done_all = 1 ] && [ "$(curl -s "http://127.0.0.1:$PORT/metrics" | sed -n 's/^clawbox_messages_out_total //p')" -ge 53 ] && break
	sleep 0.05
done
check "all 50 answered" test "$(curl -s "http://127.0.0.1:$PORT/metrics" | sed -n 's/^clawbox_messages_out_total //p')" -ge 53
check "never more than 4 sandboxes at once (saw $max)" test "$max" -le 4
check "and more than one at a time (saw $max)" test "$max" -ge 2
order_ok=1
for g in $(seq 1 10); do
	api GET "/api/v1/groups/g$g/messages?after=0"
	# In each group: the replies, in order, answer the messages in the order they came.
	ins=$(grep -o '"direction":"in","text":"[^"]*"' "$WORK/body" | sed 's/.*"text":"//; s/"$//')
	outs=$(grep -o '"direction":"out","text":"echo: [^"]*"' "$WORK/body" | sed 's/.*"text":"echo: //; s/"$//')
	[ "$ins" = "$outs" ] && [ "$(echo "$ins" | wc -l)" = 5 ] || { order_ok=0; echo "# g$g: in [$ins] out [$outs]"; }
done
check "each group's replies come in its messages' order" test $order_ok = 1

# A task that falls due: fired, and said in the log.
at=$(date -u -d '+2 seconds' +%Y-%m-%dT%H:%M:%SZ)
"$CLAWBOX" tasks "${CLI[@]}" add main --at "$at" "fire once" >"$WORK/cli.out" 2>&1
wait_until 15 grep -q "task fired group=main task=$(sed -n 's/^task #\([0-9]*\):.*/\1/p' "$WORK/cli.out")\$" "$WORK/serve.err"
check "the log says the task fired" grep -q "task fired group=main task=[0-9]*$" "$WORK/serve.err"
wait_until 20 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/main/messages' | grep -q 'echo: fire once'"

# Restart: everything is still there.
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=
# The log so far: a timestamp on every line, a line per message received and per run started
# and finished (with its duration and exit), and a clean stop is news, not a warning.
stamp='^20[0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\.[0-9]{3}Z clawbox serve: '
check "every line of the daemon's log has a timestamp" sh -c "[ -s '$WORK/serve.err' ] && ! grep -Evq '$stamp' '$WORK/serve.err'"
check "one line per message received" \
	test "$(grep -Ec "${stamp}message received group=g[0-9]+ message=[0-9]+ bytes=[0-9]+ from=api$" "$WORK/serve.err")" = 50
check "a line per run started and finished, with its duration and exit" sh -c \
	"grep -Eq '${stamp}run started group=g4 message=[0-9]+ pid=[0-9]+$' '$WORK/serve.err' &&
	 grep -Eq '${stamp}run finished group=g4 message=[0-9]+ duration_ms=[0-9]+ exit=0 status=answered$' '$WORK/serve.err'"
check "a clean stop is not a warning" sh -c \
	"grep -q 'SIGTERM: stopping' '$WORK/serve.err' && ! grep -q 'warning: .*stopping' '$WORK/serve.err'"
check_clean "after a clean stop nothing of any sandbox is left"
start_daemon
api GET "/api/v1/groups/g3/messages?after=0"
check "after a restart the history is kept" test "$(grep -o '"direction":"out"' "$WORK/body" | wc -l)" = 5

# SIGKILL mid-invocation: the restart answers the message exactly once, no orphan sandbox.
kill "$MPID"
wait "$MPID" 2>/dev/null
cat >"$WORK/slow.json" <<'JSON'
{"turns": [], "default": {"reply": {"echo": true}, "delay_ms": 2500}}
JSON
rm -f "$WORK/mport2"
"$FAKE" --scenario "$WORK/slow.json" --log "$WORK/model2.log" --port-file "$WORK/mport2" --key "$KEY" &
MPID=$!
wait_until 5 test -s "$WORK/mport2"
sed -i "s/127.0.0.1:$MPORT/127.0.0.1:$(cat "$WORK/mport2")/" "$WORK/config.json"
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
start_daemon
api POST /api/v1/groups/main/messages '{"text": "survive a crash"}'
wait_until 10 pgrep -x clawbox-init >/dev/null
wait_until 10 grep -q "survive a crash" "$WORK/model2.log"
askpid=$(pgrep -P "$SPID" -f 'clawbox ask --jso[n]' | head -n 1) # this daemon's: other suites may run theirs
check "a run's ask gets the model key and nothing else of the daemon's environment" \
	sh -c "[ -n '$askpid' ] && tr '\\0' '\\n' </proc/$askpid/environ | grep -q '^MY_MODEL_KEY=' && ! tr '\\0' '\\n' </proc/$askpid/environ | grep -q CANARY"
kill -9 "$SPID"
wait "$SPID" 2>/dev/null
SPID=
wait_until 10 no_leftovers
check_clean "SIGKILL of the daemon mid-invocation leaves no sandbox"
# This file's (their arguments name its folder): other suites may run theirs meanwhile.
if wait_until 5 bash -c "! pgrep -f 'clawbox-prox[y].*$WORK/|clawbox ask --jso[n].*$WORK/' >/dev/null"; then
	ok "nor any agent or proxy"
else
	not_ok "nor any agent or proxy: $(pgrep -a -f "clawbox-prox[y].*$WORK/|clawbox ask --jso[n].*$WORK/" | tr '\n' ';')"
fi
LOG_BEFORE=$(wc -l <"$WORK/serve.err")
LOGFMT=json start_daemon
check "the restart says it queued the interrupted message again" grep -q "queued again" "$WORK/serve.err"
wait_until 20 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/main/messages' | grep -q 'echo: survive a crash'"
api GET "/api/v1/groups/main/messages?after=0"
check "the message is answered exactly once" \
	test "$(grep -o '"text":"echo: survive a crash"' "$WORK/body" | wc -l)" = 1

# A listener that stops reading: the daemon holds at most 4 MiB for it, not all 12 MiB posted
# (what the kernel's socket buffers do not take), and once it reads again every message
# arrives, once, in order.
unread() { curl -s "http://127.0.0.1:$PORT/metrics" | sed -n 's/^clawbox_stream_unread_bytes //p'; }
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf 'GET /api/v1/groups/g7/events?after=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n' \
	"$TOKEN" >&3
pad=$(head -c 30000 /dev/zero | tr '\0' x)
for i in $(seq 1 400); do
	curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" --data-binary "{\"text\": \"stall $i $pad\"}" \
		"http://127.0.0.1:$PORT/api/v1/groups/g7/messages"
done
sleep 0.5 # a few ticks of the stream timer
held=$(unread)
check "a listener that does not read is held to 4 MiB unread, not 12 ($held bytes)" \
	sh -c "[ -n '$held' ] && [ '$held' -gt $((3 << 20)) ] && [ '$held' -le $(((4 << 20) + (64 << 10))) ]"
cat <&3 >"$WORK/stream.out" &
CATPID=$!
wait_until 30 sh -c "[ \$(grep -o '\"text\":\"stall [0-9]*' '$WORK/stream.out' | wc -l) -ge 400 ]"
kill "$CATPID" 2>/dev/null
exec 3<&-
check "when it reads again, all 400 messages arrive once, in order" \
	test "$(grep -o '"text":"stall [0-9]*' "$WORK/stream.out" | cut -d' ' -f2 | tr '\n' ' ')" = "$(seq 1 400 | tr '\n' ' ')"
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=
# --log-format json: one object per line, with its fields as keys.
tail -n +$((LOG_BEFORE + 1)) "$WORK/serve.err" >"$WORK/json.log"
check "--log-format json: every line is an object with time, level and msg" sh -c \
	"jq -s -e 'length > 400 and all(.[]; has(\"time\") and (.level | test(\"^(info|warning|error)\$\")) and (.msg | type == \"string\"))' '$WORK/json.log' >/dev/null"
check "and the fields as keys (a finished run's duration a number)" sh -c \
	"jq -e 'select(.msg == \"run finished\" and .group == \"g7\") | (.duration_ms | type == \"number\") and .exit == 0' '$WORK/json.log' | grep -qx true"
check "the stop too" sh -c "jq -r 'select(.level == \"info\") | .msg' '$WORK/json.log' | grep -q '^SIGTERM: stopping'"
check_clean "nothing left at the end"
done_testing
