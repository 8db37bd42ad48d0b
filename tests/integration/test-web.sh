#!/bin/bash
# test-web.sh: the daemon's chat page in headless Chromium (Debian's chromium): it loads with
# the token from the URL fragment (never sent to the server), lists the groups, shows the
# history with model text as text (an HTML-injection attempt stays inert), and what it sends
# reaches the daemon and is answered. Also the page's security headers, and the login form
# without a token.
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
CHROMIUM=$(command -v chromium || command -v chromium-browser)
if [ -z "$CHROMIUM" ]; then
	not_ok "chromium is not installed (make check installs it: scripts/deps.sh test)"
	done_testing
	exit 1
fi

cat >"$WORK/scenario.json" <<'JSON'
{"turns": [{"reply": {"text": "<img src=x onerror=\"document.title='pwned'\"><b>bold?</b> & done"}}],
 "default": {"reply": {"echo": true}}}
JSON
"$FAKE" --scenario "$WORK/scenario.json" --log "$WORK/model.log" --port-file "$WORK/mport" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
PORT=$((20000 + RANDOM % 20000))
cat >"$WORK/config.json" <<JSON
{"data_dir": "$WORK/data", "listen": "127.0.0.1:$PORT",
 "model": {"base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "groups": [{"id": "main", "main": true}, {"id": "family"}]}
JSON
"$CLAWBOX" serve --config "$WORK/config.json" >"$WORK/serve.out" 2>"$WORK/serve.err" &
SPID=$!
wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
TOKEN=$(cat "$WORK/data/api-token")
check "the daemon says where to open the chat page" grep -q "open http://127.0.0.1:$PORT/ for the chat page" "$WORK/serve.err"

curl -s -D "$WORK/headers" -o "$WORK/page" "http://127.0.0.1:$PORT/"
check "GET / serves the page" grep -q '<script src="/app.js"></script>' "$WORK/page"
check "with a strict content security policy" grep -qi "content-security-policy: default-src 'none'; script-src 'self'" "$WORK/headers"
check "no framing, no referrer, no sniffing" sh -c "grep -qi \"frame-ancestors 'none'\" '$WORK/headers' && grep -qi 'referrer-policy: no-referrer' '$WORK/headers' && grep -qi 'x-content-type-options: nosniff' '$WORK/headers'"

# A reply full of markup, stored before the page loads.
curl -s -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" --data '{"text": "show me markup"}' \
	"http://127.0.0.1:$PORT/api/v1/groups/family/messages"
wait_until 20 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/family/messages' | grep -q 'bold?'"

browse() { # URL -> DOM in $WORK/dom
	timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run \
		--user-data-dir="$WORK/chromium" --virtual-time-budget=10000 --dump-dom "$1" \
		>"$WORK/dom" 2>"$WORK/chromium.err"
}
browse "http://127.0.0.1:$PORT/#token=$TOKEN&group=family&say=hello%20from%20the%20browser"
check "the page lists the groups" sh -c "grep -q '<option value=\"main\">main</option>' '$WORK/dom' && grep -q '<option value=\"family\">family</option>' '$WORK/dom'"
check "and shows the group's history" grep -q 'show me markup' "$WORK/dom"
check "model markup is shown as text, never run or rendered" \
	sh -c "grep -q '&lt;img src=x onerror=' '$WORK/dom' && grep -q '&lt;b&gt;bold?&lt;/b&gt; &amp; done' '$WORK/dom' && ! grep -q '<img' '$WORK/dom' && ! grep -q '<title>pwned' '$WORK/dom'"
wait_until 20 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/family/messages' | grep -q 'echo: hello from the browser'"
check "what the page sent reached the daemon (sender web) and was answered" \
	sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/family/messages' | grep -q '\"text\":\"hello from the browser\",\"sender\":\"web\"'"

rm -rf "$WORK/chromium"
browse "http://127.0.0.1:$PORT/"
check "without a token the page asks for one" sh -c "grep -q '<section id=\"login\">' '$WORK/dom' && grep -q '<main id=\"chat\" hidden=\"\">' '$WORK/dom'"
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
SPID=
done_testing
