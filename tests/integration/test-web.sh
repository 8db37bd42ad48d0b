#!/bin/bash
# test-web.sh: the daemon's web app. Here with curl: the page's security headers, the bundle
# it loads, the views' endpoints refusing what they must (no token, another origin, bad
# input). Then tests/web/web-test.mjs drives Debian's chromium with playwright-core (from npm,
# locked by tests/web/package-lock.json, installed under build/test-npm; no browser download)
# through every view against this daemon and the fake model (tests/data/scenarios/web.json),
# saving a screenshot of each under build/web-screenshots/. Approvals: the main group's
# send_message to another group is held (the default) and answered from the page's cards; the
# group ops lets only "cli" answer, so the page's answer is refused and curl (no browser
# headers: the CLI) answers instead.
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
CHROMIUM=$(command -v chromium || command -v chromium-browser)
if [ -z "$CHROMIUM" ] || ! command -v node >/dev/null; then
	not_ok "chromium and node are needed (make check installs them: scripts/deps.sh test)"
	done_testing
	exit 1
fi

# playwright-core, as locked, into build/test-npm (again only when the lock changes).
NPMDIR=$TOP/build/test-npm
if [ ! -f "$NPMDIR/node_modules/.package-lock.json" ] ||
	[ "$TOP/tests/web/package-lock.json" -nt "$NPMDIR/node_modules/.package-lock.json" ]; then
	mkdir -p "$NPMDIR"
	cp "$TOP/tests/web/package.json" "$TOP/tests/web/package-lock.json" "$NPMDIR/"
	(cd "$NPMDIR" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error) >"$WORK/npm.log" 2>&1 ||
		not_ok "npm ci of tests/web (playwright-core): $(tail -3 "$WORK/npm.log")"
fi

# Egress approvals (the proxy holding a request to an unlisted host for an approver) where this
# build has them: a group "net" whose unlisted hosts ask, unlisted.example being the test's
# httpd (hosts_file). Without them the scenario's last turns are never asked for.
EGRESS_ASK=
printf '{"data_dir": "%s/probe", "groups": [{"id": "m", "policy": {"unlisted_hosts": "ask"}}]}\n' "$WORK" >"$WORK/probe.json"
if "$CLAWBOX" serve --config "$WORK/probe.json" --check-config >/dev/null 2>&1; then
	EGRESS_ASK=1
	"$TOP/build/tests/httpd" 127.0.0.1 0 NET >"$WORK/port.net" 2>/dev/null &
	HPID=$!
	wait_until 5 test -s "$WORK/port.net"
	PB=$(cat "$WORK/port.net")
	printf '127.0.0.1 unlisted.example\n' >"$WORK/hosts"
fi
sed -e "s/@PB@/${PB:-0}/g" "$TOP/tests/data/scenarios/web.json" >"$WORK/scenario.json"
"$FAKE" --scenario "$WORK/scenario.json" --log "$WORK/model.log" --port-file "$WORK/mport" &
MPID=$!
MPID="$MPID ${HPID:-}" # lib.sh ends it at exit
wait_until 5 test -s "$WORK/mport"
printf 'sk-web-test-secret\n' >"$WORK/model-key"
chmod 600 "$WORK/model-key"
mkdir -p "$WORK/srv-web-test"
printf '{"roots": [{"path": "%s"}]}\n' "$WORK/srv-web-test" >"$WORK/mounts.json"
PORT=$((20000 + RANDOM % 20000))
NET_GROUP= HOSTS_FILE=
if [ -n "$EGRESS_ASK" ]; then
	# 127.0.0.1:PB named (ask) only so that the proxy's SSRF guard lets the request reach
	# the test's server; what is held is the request to the unlisted name.
	NET_GROUP=",
            {\"id\": \"net\", \"policy\": {\"unlisted_hosts\": \"ask\"},
             \"egress\": [{\"host\": \"127.0.0.1:$PB\", \"verdict\": \"ask\"}]}"
	HOSTS_FILE="\"hosts_file\": \"$WORK/hosts\", "
fi
# Prices for the agent's model (the runs' costs), a cost budget on main and a token budget on
# family (lines on the usage charts); family's folder mounted untrusted, so its run is tainted.
# The configuration in a folder of its own: the daemon mounts nothing inside the folder of its
# configuration, and the mounted folder is beside it.
mkdir -p "$WORK/etc"
cat >"$WORK/etc/config.json" <<JSON
{"data_dir": "$WORK/data", "listen": "127.0.0.1:$PORT", $HOSTS_FILE
 "model": {"base_url": "http://127.0.0.1:$(cat "$WORK/mport")", "api_key_file": "$WORK/model-key"},
 "prices": {"claude-sonnet-4-5": {"input": 3, "output": 15, "cache_write": 3.75, "cache_read": 0.3}},
 "groups": [{"id": "main", "main": true, "budget": {"cost_usd": 5}},
            {"id": "family", "timezone": "Europe/Berlin", "budget": {"tokens": 4000},
             "mounts": [{"host": "$WORK/srv-web-test", "path": "/workspace/srv", "untrusted": true}]},
            {"id": "long"},
            {"id": "ops", "approvers": ["cli"], "policy": {"host_actions": {"send_message": "ask"}}}$NET_GROUP]}
JSON
"$CLAWBOX" serve --config "$WORK/etc/config.json" --mount-allowlist "$WORK/mounts.json" \
	>"$WORK/serve.out" 2>"$WORK/serve.err" &
SPID=$!
wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
TOKEN=$(cat "$WORK/data/api-token")
URL=http://127.0.0.1:$PORT
check "the daemon prints a ready-to-open link with the token in the fragment" \
	grep -q "open $URL/#token=$TOKEN for the web app" "$WORK/serve.err"

curl -s -D "$WORK/headers" -o "$WORK/page" "$URL/"
check "GET / serves the page, one script of its own" grep -q '<script src="/app.js"></script>' "$WORK/page"
check "with a strict content security policy" grep -qi "content-security-policy: default-src 'none'; script-src 'self'" "$WORK/headers"
check "no framing, no referrer, no sniffing" sh -c "grep -qi \"frame-ancestors 'none'\" '$WORK/headers' && grep -qi 'referrer-policy: no-referrer' '$WORK/headers' && grep -qi 'x-content-type-options: nosniff' '$WORK/headers'"
check "and no inline script in it" sh -c "! grep -q '<script>' '$WORK/page' && ! grep -qi ' on[a-z]*=' '$WORK/page'"
curl -s -o "$WORK/app.js" "$URL/app.js"
check "the bundle carries marked and DOMPurify" sh -c "grep -q 'DOMPurify' '$WORK/app.js' && grep -q 'marked' '$WORK/app.js'"

code() { curl -s -o "$WORK/body" -w '%{http_code}' "$@"; }
AUTH="Authorization: Bearer $TOKEN"
for ep in /api/v1/status /api/v1/settings /api/v1/runs /api/v1/runs/1 /api/v1/usage/daily \
	/api/v1/audit/query /api/v1/files/1; do
	check "$ep needs the token" test "$(code "$URL$ep")" = 401
	check "$ep refuses another origin" test "$(code -H "$AUTH" -H 'Origin: http://evil.example' "$URL$ep")" = 403
done
check "POST /api/v1/runs/1/stop needs the token" test "$(code -X POST "$URL/api/v1/runs/1/stop")" = 401
check "POST /api/v1/tasks/preview refuses another origin" \
	test "$(code -X POST -H "$AUTH" -H 'Origin: http://evil.example' --data '{"group":"main","cron":"* * * * *"}' "$URL/api/v1/tasks/preview")" = 403
check "/login-hint needs no token and says only where the token is" \
	sh -c "test \"\$(curl -s '$URL/login-hint')\" = '{\"token_file\":\"$WORK/data/api-token\"}'"
check "status: the model is configured" sh -c "test \"\$(curl -s -H '$AUTH' '$URL/api/v1/status' | grep -o '\"model_configured\":[a-z]*')\" = '\"model_configured\":true'"
check "settings never carry the key" sh -c "curl -s -H '$AUTH' '$URL/api/v1/settings' >'$WORK/settings' && grep -q 'model-key' '$WORK/settings' && ! grep -q 'sk-web-test-secret' '$WORK/settings'"
check "stop: no such run is a 404" test "$(code -X POST -H "$AUTH" "$URL/api/v1/runs/999/stop")" = 404
check "a transcript of no run is a 404" test "$(code -H "$AUTH" "$URL/api/v1/runs/999")" = 404
check "a file no message carried is a 404" test "$(code -H "$AUTH" "$URL/api/v1/files/1")" = 404
check "usage: a bad day count is a 400" test "$(code -H "$AUTH" "$URL/api/v1/usage/daily?days=0")" = 400
check "audit: a bad time is a 400" test "$(code -H "$AUTH" "$URL/api/v1/audit/query?since=yesterday")" = 400
check "runs: an unknown group is a 404" test "$(code -H "$AUTH" "$URL/api/v1/runs?group=nosuch")" = 404
check "preview: a bad schedule is a 400 that says why" \
	sh -c "test \"\$(curl -s -o '$WORK/body' -w '%{http_code}' -X POST -H '$AUTH' --data '{\"group\":\"main\",\"every_seconds\":0}' '$URL/api/v1/tasks/preview')\" = 400 && grep -q error '$WORK/body'"
check "pause: no such task is a 404" test "$(code -X POST -H "$AUTH" "$URL/api/v1/tasks/999/pause")" = 404

# The histories the browser looks at, made before it does (the scenario's first turns).
curl -s -o /dev/null -X POST -H "$AUTH" --data '{"text": "show me markup"}' "$URL/api/v1/groups/family/messages"
wait_until 30 sh -c "curl -s -H '$AUTH' '$URL/api/v1/groups/family/messages' | grep -q 'bold?'"
curl -s -o /dev/null -X POST -H "$AUTH" --data '{"text": "fill the history"}' "$URL/api/v1/groups/long/messages"
wait_until 60 sh -c "curl -s -H '$AUTH' '$URL/api/v1/groups/long/messages' | grep -q 'history done'"
check "the histories are there (a send_file and 48 messages from one run)" \
	sh -c "curl -s -H '$AUTH' '$URL/api/v1/groups/long/messages' | grep -o '\"id\"' | wc -l | grep -qx 51"

# A second daemon without a model, for the banner.
PORT2=$((PORT + 1))
cat >"$WORK/config2.json" <<JSON
{"data_dir": "$WORK/data2", "listen": "127.0.0.1:$PORT2", "groups": [{"id": "main", "main": true}]}
JSON
env -u ANTHROPIC_API_KEY -u OPENAI_API_KEY "$CLAWBOX" serve --config "$WORK/config2.json" \
	>"$WORK/serve2.out" 2>"$WORK/serve2.err" &
SPID2=$!
TPID=$SPID2 # killed at exit by lib.sh like a fake Telegram would be
wait_until 5 curl -sf "http://127.0.0.1:$PORT2/healthz" -o /dev/null

SHOTS=$TOP/build/web-screenshots
rm -rf "$SHOTS"
mkdir -p "$SHOTS"
URL=$URL TOKEN=$TOKEN TOKEN_FILE=$WORK/data/api-token NOMODEL_URL=http://127.0.0.1:$PORT2 \
	NOMODEL_TOKEN=$(cat "$WORK/data2/api-token") CHROMIUM=$CHROMIUM TEST_NPM=$NPMDIR SHOTS=$SHOTS \
	WORK=$WORK EGRESS_ASK=$EGRESS_ASK EGRESS_PORT=${PB:-} timeout 300 node "$TOP/tests/web/web-test.mjs" >"$WORK/browser.tap" 2>"$WORK/browser.err"
relay_tap browser "$WORK/browser.tap" $?
[ -s "$WORK/browser.err" ] && sed 's/^/# /' "$WORK/browser.err" | head -20
check "a screenshot of each view under build/web-screenshots" \
	sh -c "for v in chat chat-paused chat-resumed runs runs-cost-taint run-transcript audit usage usage-cost tasks approvals settings settings-channels phone-chat login no-model; do test -s '$SHOTS/'\$v.png || exit 1; done"
if ! check "the daemon lived through it all" kill -0 "$SPID"; then
	sed 's/^/# serve: /' "$WORK/serve.err" | tail -40
fi
if grep -q '"ok":false' "$WORK/model.log"; then
	not_ok "every request the model got was as expected"
	grep '"ok":false' "$WORK/model.log" | grep -o '"n":[0-9]*\|"failures":\[[^]]*\]' | sed 's/^/# model: /' | head -10
else
	ok "every request the model got was as expected"
fi

[ -n "${HPID:-}" ] && kill "$HPID" 2>/dev/null
kill -TERM "$SPID2" "$SPID"
wait "$SPID2" "$SPID" 2>/dev/null
SPID=
done_testing
