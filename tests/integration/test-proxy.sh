#!/bin/bash
# test-proxy.sh: --net proxy / --allow: the sandbox's only way out. Servers are the test's
# own: an HTTP server and a TLS server on loopback, and one in a network namespace this test
# makes (a "public" test host, 198.51.100.2, reachable only from this machine). Names are
# resolved from a hosts file given to the proxy (--hosts), so no DNS server is involved.
. "$(dirname "$0")/lib.sh"

AUDIT=$WORK/audit.jsonl
HOSTS=$WORK/hosts
NS=cbtest$$
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	ip netns del "$NS" 2>/dev/null
	ip link del "${NS}h" 2>/dev/null
	cleanup_work
}
trap cleanup EXIT

# start_httpd VAR ADDRESS NAME [NETNS]: starts a server, sets VAR to its port. Not in a
# subshell, so that its pid reaches the clean-up list.
start_httpd() {
	local f=$WORK/port.$3
	if [ -n "${4:-}" ]; then
		ip netns exec "$4" "$HTTPD" "$2" 0 "$3" >"$f" 2>/dev/null &
	else
		"$HTTPD" "$2" 0 "$3" >"$f" 2>/dev/null &
	fi
	PIDS+=($!)
	wait_until 5 test -s "$f"
	printf -v "$1" '%s' "$(cat "$f")"
}

start_httpd PORT 127.0.0.1 web

# A test host "on the internet": a network namespace of our own behind a veth pair.
ip netns add "$NS"
ip link add "${NS}h" type veth peer name "${NS}n"
ip link set "${NS}n" netns "$NS"
ip addr add 198.51.100.1/24 dev "${NS}h"
ip link set "${NS}h" up
ip netns exec "$NS" ip addr add 198.51.100.2/24 dev "${NS}n"
ip netns exec "$NS" ip link set "${NS}n" up
ip netns exec "$NS" ip link set lo up
start_httpd NSPORT 198.51.100.2 nsweb "$NS"
# The namespace's own mounts (/run/netns) are ours, not a sandbox's.
HOST_MOUNTS_BEFORE=$(wc -l </proc/self/mountinfo)

cat >"$HOSTS" <<HOSTS
198.51.100.2 web.test api.wiki.test
127.0.0.1 loop.test
169.254.169.254 metadata.test
10.0.0.1 lan.test
::ffff:127.0.0.1 mapped.test
HOSTS

# curl inside a sandbox with the proxy; prints "STATUS BODY..." on one line.
proxied() { # CLAWBOX-ARGS... -- CURL-ARGS...
	local args=() 
	while [ "$1" != "--" ]; do args+=("$1"); shift; done
	shift
	"$CLAWBOX" run --hosts "$HOSTS" --audit "$AUDIT" "${args[@]}" -- \
		curl -s -S --max-time 10 -o /tmp/body -w '%{http_code}' "$@" \
		>"$WORK/out" 2>"$WORK/err" </dev/null
	RC=$?
}

# A raw request through the sandbox's proxy port (for what curl would normalize away).
raw() { # CLAWBOX-ARGS... -- REQUEST
	local args=()
	while [ "$1" != "--" ]; do args+=("$1"); shift; done
	shift
	"$CLAWBOX" run --hosts "$HOSTS" --audit "$AUDIT" "${args[@]}" -- bash -c \
		'exec 3<>/dev/tcp/127.0.0.1/3128; printf "%b" "$1" >&3; timeout 5 cat <&3' _ "$1" \
		>"$WORK/out" 2>"$WORK/err" </dev/null
	RC=$?
}

status_is() { head -c 12 "$WORK/out" | grep -q "$1"; }
last_audit() { tail -n 1 "$AUDIT"; }

# Allowed traffic
"$CLAWBOX" run --hosts "$HOSTS" --allow web.test:$NSPORT -- curl -s -S --max-time 10 \
	http://web.test:$NSPORT/hello >"$WORK/out" 2>"$WORK/err" </dev/null
check "allowed name: curl through the proxy reaches the test host" grep -q "server: nsweb" "$WORK/out"
check "the server got Host from the URL, Connection: close" \
	sh -c "grep -q 'header: Host: web.test:$NSPORT' '$WORK/out' && grep -q 'header: Connection: close' '$WORK/out'"
"$CLAWBOX" run --hosts "$HOSTS" --allow '*.wiki.test' --allow web.test:$NSPORT -- curl -s -S \
	--max-time 10 -H 'Proxy-Authorization: Basic c2VjcmV0' -H 'Host: other.example' \
	http://web.test:$NSPORT/h >"$WORK/out" 2>&1 </dev/null
check "Proxy-* headers are not passed on and Host cannot be forged" \
	sh -c "! grep -qi 'proxy-authorization' '$WORK/out' && ! grep -q 'other.example' '$WORK/out' && grep -q 'server: nsweb' '$WORK/out'"
proxied --allow "127.0.0.1:$PORT" -- --noproxy '' "http://127.0.0.1:$PORT/exact"
check "a loopback address named exactly in --allow passes (status $(cat "$WORK/out"))" test "$(cat "$WORK/out")" = 200
check "audit: allowed request with its address and bytes" \
	sh -c "last_audit() { tail -n 1 '$AUDIT'; }; last_audit | grep -q '\"decision\":\"allow\"' && last_audit | grep -q '\"address\":\"127.0.0.1\"' && last_audit | grep -q '\"bytes_out\":[1-9]'"

# An allowed loopback address is the host's, through the proxy, for ordinary clients with no
# option of their own (NO_PROXY no longer sends it to the sandbox's own loopback); localhost
# stays the sandbox's own.
"$CLAWBOX" run --audit "$AUDIT" --allow "127.0.0.1:$PORT" -- sh -c "
	curl -s -S --max-time 10 http://127.0.0.1:$PORT/by-curl; echo
	wget -q -O - -T 10 http://127.0.0.1:$PORT/by-wget; echo
	python3 -c 'import urllib.request,sys; sys.stdout.write(urllib.request.urlopen(\"http://127.0.0.1:$PORT/by-python\", timeout=10).read().decode())'
	echo; echo NO_PROXY=\$NO_PROXY" >"$WORK/out" 2>"$WORK/err" </dev/null
for c in curl wget python; do
	check "--allow 127.0.0.1:PORT: plain $c reaches the host's server" \
		grep -q "^request: .* /by-$c\$" "$WORK/out"
done
check "and each request went through the proxy (audited)" \
	test "$(grep -c "\"decision\":\"allow\".*\"address\":\"127.0.0.1\"\|\"address\":\"127.0.0.1\".*\"decision\":\"allow\"" "$AUDIT")" -ge 3
check "NO_PROXY keeps localhost and ::1 but not the allowed 127.0.0.1" grep -qx "NO_PROXY=localhost,::1" "$WORK/out"

# Clients that ignore the proxy variables (Node 20's fetch, curl --noproxy, Python with no
# proxy handler) connect to 127.0.0.1:PORT itself: init listens there inside and hands each
# connection to the proxy, which tunnels it to the host's 127.0.0.1:PORT (and [::1]:PORT),
# judged like any CONNECT. Another port is still the sandbox's own loopback, where nothing is.
start_httpd PORT6 ::1 web6
: >"$AUDIT"
"$CLAWBOX" run --audit "$AUDIT" --allow "127.0.0.1:$PORT" --allow "[::1]:$PORT6" -- sh -c "
	node -e 'fetch(\"http://127.0.0.1:$PORT/by-node\").then(r => r.text()).then(t =>
		console.log(t)).catch(e => console.log(\"node:\", e.cause || e))'
	curl -s -S --max-time 10 --noproxy '*' http://127.0.0.1:$PORT/by-noproxy; echo
	python3 -c 'import urllib.request,sys; o=urllib.request.build_opener(urllib.request.ProxyHandler({})); sys.stdout.write(o.open(\"http://127.0.0.1:$PORT/by-direct-python\", timeout=10).read().decode())'
	echo
	curl -s -S --max-time 10 --noproxy '*' -g 'http://[::1]:$PORT6/by-v6'; echo
	curl -s --max-time 10 --noproxy '*' -o /dev/null -w 'other %{http_code}\n' http://127.0.0.1:$((PORT + 1))/
	echo other-rc=\$?" >"$WORK/out" 2>"$WORK/err" </dev/null
for c in node noproxy direct-python v6; do
	check "--allow 127.0.0.1:PORT / [::1]:PORT: $c, with no proxy, reaches the host's server" \
		grep -q "^request: .* /by-$c\$" "$WORK/out"
done
check "each went through the proxy as a tunnel to the allowed address (audited)" \
	test "$(grep -c '"method":"CONNECT".*"decision":"allow"' "$AUDIT")" -ge 4
check "an address the proxy forwards is the one allowed: [::1]:PORT6 audited as ::1" \
	grep -q '"address":"::1"' "$AUDIT"
check "a port that is not allowed is not forwarded: the sandbox's own loopback refuses it" \
	grep -qx "other-rc=7" "$WORK/out"
"$CLAWBOX" run --allow "127.0.0.1:$PORT" -- sh -c "
	python3 -m http.server --bind 127.0.0.1 8765 >/dev/null 2>&1 & 
	for i in \$(seq 100); do curl -s -o /dev/null http://localhost:8765/ && break; sleep 0.1; done
	curl -s -o /dev/null -w 'local %{http_code}\n' http://localhost:8765/
	curl -s -o /dev/null -w 'other %{http_code}\n' http://127.0.0.1:$((PORT + 1))/
	kill \$!" >"$WORK/out" 2>"$WORK/err" </dev/null
check "localhost is still the sandbox's own loopback" grep -qx "local 200" "$WORK/out"
check "another port of 127.0.0.1 is the proxy's refusal, not the sandbox's loopback" grep -qx "other 403" "$WORK/out"
run_cb run --allow "example.org" -- sh -c 'echo $NO_PROXY'
check "without a loopback --allow, NO_PROXY is as before" grep -qx "localhost,127.0.0.1,::1" "$WORK/out"

# HTTPS through a CONNECT tunnel to a TLS server of the test's own.
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -days 1 \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
	>/dev/null 2>&1
chmod 644 "$WORK/cert.pem"
for try in 1 2 3 4 5; do
	TLSPORT=$((20000 + RANDOM % 30000))
	openssl s_server -accept "127.0.0.1:$TLSPORT" -www -cert "$WORK/cert.pem" \
		-key "$WORK/key.pem" >/dev/null 2>&1 </dev/null &
	TLSPID=$!
	sleep 0.3
	kill -0 $TLSPID 2>/dev/null && break
done
PIDS+=("$TLSPID")
"$CLAWBOX" run --hosts "$HOSTS" --audit "$AUDIT" --allow "127.0.0.1:$TLSPORT" \
	--mount "$WORK/cert.pem:/cert.pem" -- curl -s -S --max-time 10 --noproxy '' \
	--proxy http://127.0.0.1:3128 --cacert /cert.pem "https://127.0.0.1:$TLSPORT/" \
	>"$WORK/out" 2>"$WORK/err" </dev/null
check "CONNECT tunnel: TLS to the test's server through the proxy (rc $?)" grep -qi "s_server" "$WORK/out"
check "audit: the tunnel is recorded as CONNECT, allowed" \
	sh -c "tail -n 1 '$AUDIT' | grep -q '\"method\":\"CONNECT\".*\"decision\":\"allow\"'"

# Refused, each with a clear HTTP status and an audit line saying why.
deny() { # DESCRIPTION STATUS REASON-PATTERN
	if [ "$(head -c 3 "$WORK/out")" = "$2" ] || grep -q "^HTTP/1.1 $2" "$WORK/out"; then
		ok "$1 ($2)"
	else
		not_ok "$1 (got: $(head -c 120 "$WORK/out" | tr '\r\n' '  '); $(head -c 200 "$WORK/err"))"
	fi
	if tail -n 1 "$AUDIT" | grep -q '"decision":"deny"' && tail -n 1 "$AUDIT" | grep -qi "$3"; then
		ok "$1: audited ($3)"
	else
		not_ok "$1: audited ($3): $(tail -n 1 "$AUDIT")"
	fi
}
proxied --allow web.test:$NSPORT -- http://example.org/
deny "a host not in the allowlist" 403 "not in the allowlist"
proxied --allow web.test:$NSPORT -- --noproxy '' "http://198.51.100.2:$NSPORT/"
deny "the allowed host's address, used directly" 403 "not in the allowlist"
proxied --allow web.test:$NSPORT -- "http://web.test:$((NSPORT + 1))/"
deny "the allowed name on another port" 403 "not in the allowlist"
proxied --allow "loop.test:$PORT" -- "http://loop.test:$PORT/"
deny "a name that resolves to 127.0.0.1" 403 "loopback"
proxied --allow metadata.test -- http://metadata.test/latest/meta-data/
deny "a name that resolves to 169.254.169.254" 403 "link-local"
proxied --allow lan.test -- http://lan.test/
deny "a name that resolves to 10.0.0.1" 403 "private"
proxied --allow "mapped.test:$PORT" -- "http://mapped.test:$PORT/"
deny "a name that resolves to ::ffff:127.0.0.1" 403 "embedding IPv4"
proxied --allow "[::ffff:127.0.0.2]:$PORT" --allow web.test -- --noproxy '' "http://[::ffff:127.0.0.1]:$PORT/"
deny "an IPv4-mapped IPv6 literal" 403 "not in the allowlist"
raw --allow "127.0.0.1:$PORT" -- "GET http://2130706433:$PORT/ HTTP/1.1\r\nHost: x\r\n\r\n"
deny "127.0.0.1 in decimal" 400 "numeric host"
raw --allow "127.0.0.1:$PORT" -- "GET http://0177.0.0.1:$PORT/ HTTP/1.1\r\nHost: x\r\n\r\n"
deny "127.0.0.1 in octal" 400 "numeric host"
raw --allow "127.0.0.1:$PORT" -- "GET http://0x7f.1:$PORT/ HTTP/1.1\r\nHost: x\r\n\r\n"
deny "127.0.0.1 in hex" 400 "numeric host"
raw --allow "web.test:$NSPORT" -- "GET http://web.test.:$NSPORT/ HTTP/1.1\r\nHost: x\r\n\r\n"
deny "a trailing dot" 400 "trailing dot"
raw --allow "web.test:$NSPORT" -- "GET http://user@web.test:$NSPORT/ HTTP/1.1\r\nHost: x\r\n\r\n"
deny "userinfo in the URL" 400 "userinfo"
raw --allow "web.test:$NSPORT" -- "CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n"
deny "CONNECT to a host not in the allowlist" 403 "not in the allowlist"
raw --allow "web.test:$NSPORT" -- "POST http://web.test:$NSPORT/ HTTP/1.1\r\nHost: web.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
deny "request smuggling (Content-Length with chunked)" 400 "malformed"
raw --allow "web.test:$NSPORT" -- "GET http://web.test:$NSPORT/ HTTP/1.1\r\nX: $(head -c 20000 /dev/zero | tr '\0' a)\r\n\r\n"
deny "an over-long header" 431 "request head too large"
raw --allow "web.test:$NSPORT" -- "GET /relative HTTP/1.1\r\nHost: web.test\r\n\r\n"
deny "an origin-form request (not a proxy request)" 400 "absolute URL"

# Limits: a body over 64 MiB gets 413; more than 64 connections at once, 503; both audited.
"$CLAWBOX" run --hosts "$HOSTS" --audit "$AUDIT" --allow "web.test:$NSPORT" --memory 1G -- sh -c \
	"head -c 68000000 /dev/zero >/tmp/big && curl -s -S --max-time 30 -o /dev/null \
	 -w '%{http_code}' --data-binary @/tmp/big http://web.test:$NSPORT/upload" \
	>"$WORK/out" 2>"$WORK/err" </dev/null
deny "a request body over the limit" 413 "request body too large"
# A chunked body (as git posts large packs) ends: the proxy re-frames it chunk by chunk and
# must write the last chunk, or the server waits for more until a timeout.
"$CLAWBOX" run --hosts "$HOSTS" --audit "$AUDIT" --allow "web.test:$NSPORT" -- sh -c \
	"head -c 200000 /dev/zero >/tmp/f && curl -s -S --max-time 10 -H 'Transfer-Encoding: chunked' \
	 --data-binary @/tmp/f http://web.test:$NSPORT/upload" >"$WORK/out" 2>"$WORK/err" </dev/null
check "a chunked request body reaches the server whole and the answer comes back" \
	grep -q "body-bytes: 200000" "$WORK/out"
"$CLAWBOX" run --hosts "$HOSTS" --audit "$AUDIT" --allow "web.test:$NSPORT" -- bash -c '
	for i in $(seq 66); do eval "exec $((i + 9))<>/dev/tcp/127.0.0.1/3128"; done
	sleep 0.5
	printf "GET http://web.test:'"$NSPORT"'/ HTTP/1.1\r\n\r\n" >&75
	timeout 3 cat <&75' >"$WORK/out" 2>"$WORK/err" </dev/null
if grep -q "^HTTP/1.1 503" "$WORK/out"; then
	ok "more than 64 connections at once (503)"
else
	not_ok "more than 64 connections at once (got: $(head -c 120 "$WORK/out" | tr '\r\n' '  '))"
fi
check "more than 64 connections at once: audited" grep -q "more than 64 connections at once" "$AUDIT"

# The idle and traffic limits (configurable on clawbox run).
"$CLAWBOX" run --hosts "$HOSTS" --audit "$AUDIT" --allow "web.test:$NSPORT" \
	--proxy-idle-timeout 1 -- bash -c '
	exec 3<>/dev/tcp/127.0.0.1/3128
	printf "CONNECT web.test:'"$NSPORT"' HTTP/1.1\r\n\r\n" >&3
	start=$(date +%s); timeout 10 cat <&3 >/dev/null; echo "closed after $(( $(date +%s) - start )) s"' \
	>"$WORK/out" 2>"$WORK/err" </dev/null
check "an idle tunnel is closed after --proxy-idle-timeout ($(cat "$WORK/out"))" \
	sh -c "grep -Eq 'closed after [0-4] s' '$WORK/out'"
check "the idle close is audited" grep -q '"reason":"idle for 1 s"' "$AUDIT"
"$CLAWBOX" run --hosts "$HOSTS" --audit "$AUDIT" --allow "web.test:$NSPORT" \
	--proxy-max-bytes 1M -- curl -s -S --max-time 10 -o /tmp/got -w '%{size_download}' \
	"http://web.test:$NSPORT/big/5" >"$WORK/out" 2>"$WORK/err" </dev/null
check "--proxy-max-bytes 1M stops a 5 MiB download (got $(cat "$WORK/out") bytes)" \
	sh -c "[ \"\$(cat '$WORK/out')\" -lt 2000000 ]"
check "the traffic limit is audited" grep -q "traffic limit is reached" "$AUDIT"
expect_rc 125 "--proxy-idle-timeout 0 is refused" run --allow web.test --proxy-idle-timeout 0 -- true

# No way around the proxy.
"$CLAWBOX" run --allow web.test:$NSPORT --hosts "$HOSTS" -- curl -s -S --max-time 5 \
	--noproxy '*' "http://198.51.100.2:$NSPORT/" >"$WORK/out" 2>"$WORK/err" </dev/null
rc=$?
check "curl --noproxy '*' has no route (rc $rc)" sh -c "[ $rc != 0 ] && ! grep -q nsweb '$WORK/out'"
"$CLAWBOX" run --allow web.test --hosts "$HOSTS" -- sh -c 'getent hosts example.org || exit 3' \
	>"$WORK/out" 2>&1 </dev/null
check "no DNS from inside (exit $?)" test $? != 0
"$CLAWBOX" run --allow web.test --mount "$PROBE_DIR:/probe" -- /probe/probe escape \
	>"$WORK/tap" 2>"$WORK/err" </dev/null
relay_tap "escape with --net proxy" "$WORK/tap" $?

# Options
expect_rc 125 "a bad --allow entry is refused before anything starts" run --allow 'exa mple.org' -- true
check "the bad --allow entry is named" grep -q "exa mple.org" "$WORK/err"
expect_rc 125 "--net none with --allow" run --net none --allow example.org -- true
expect_rc 125 "--audit without the proxy" run --audit "$WORK/x.jsonl" -- true

# Credentials: the model API is http://model.clawbox.internal inside; the proxy adds the key.
KEY="sk-test-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
start_httpd_log() { # VAR NAME LOGFILE
	"$HTTPD" 127.0.0.1 0 "$2" "$3" >"$WORK/port.$2" 2>/dev/null &
	PIDS+=($!)
	wait_until 5 test -s "$WORK/port.$2"
	printf -v "$1" '%s' "$(cat "$WORK/port.$2")"
}
start_httpd_log UPPORT model "$WORK/model.log"
MODEL_PID=${PIDS[-1]}
start_httpd_log OTHERPORT other "$WORK/other.log"
MODEL=(--model-upstream "http://127.0.0.1:$UPPORT" --model-key-env CB_TEST_KEY)
export CB_TEST_KEY="$KEY"

"$CLAWBOX" run --audit "$AUDIT" "${MODEL[@]}" -- curl -s -S --max-time 10 -X POST \
	-H 'x-api-key: key-the-sandbox-made-up' -H 'Authorization: Bearer also-made-up' \
	-H 'content-type: application/json' -d '{"model":"m"}' \
	http://model.clawbox.internal/v1/messages >"$WORK/out" 2>"$WORK/err" </dev/null
check "the model request reaches the upstream" grep -q "request: 2 /v1/messages" "$WORK/model.log"
check "the upstream receives the key" grep -q "x-api-key: $KEY" "$WORK/model.log"
check "the key headers the sandbox sent are dropped" \
	sh -c "! grep -q 'made-up' '$WORK/model.log'"
check "the request body arrives" grep -q 'body: {"model":"m"}' "$WORK/model.log"
check "the sandbox gets the answer" grep -q "server: model" "$WORK/out"
check "audit: the model request is recorded" \
	sh -c "tail -n 1 '$AUDIT' | grep -q '\"host\":\"model.clawbox.internal\".*\"decision\":\"allow\"'"

"$CLAWBOX" run "${MODEL[@]}" -- curl -s -S -N --max-time 10 \
	http://model.clawbox.internal/v1/models/stream >"$WORK/out" 2>"$WORK/err" </dev/null
check "a streamed (chunked) answer arrives whole" \
	sh -c "[ \$(grep -c '^event: part' '$WORK/out') = 3 ] && grep -q 'data: 3' '$WORK/out'"

# The sandbox, as if prompt-injected, looks for the key everywhere it can.
"$CLAWBOX" run "${MODEL[@]}" -- sh -c '
	env; cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null
	grep -rs . /tmp /home /etc/passwd 2>/dev/null
	curl -s -S --max-time 5 http://model.clawbox.internal/v1/x
	curl -s -S --max-time 5 -X CONNECT http://model.clawbox.internal/
	curl -s -S --max-time 5 http://model.clawbox.internal:8080/' \
	>"$WORK/out" 2>&1 </dev/null
check "no trace of the key inside: environment, /proc, files, answers" \
	sh -c "! grep -q '$KEY' '$WORK/out' && ! grep -q 'CB_TEST_KEY' '$WORK/out'"

# A redirect from the upstream to another origin: the proxy does not follow it, and when the
# sandbox follows it (through the proxy), no key goes along.
"$CLAWBOX" run "${MODEL[@]}" --allow "127.0.0.1:$OTHERPORT" -- curl -s -S -L --max-time 10 \
	--noproxy '' -x http://127.0.0.1:3128 "http://model.clawbox.internal/v1/models/redirect/$OTHERPORT" \
	>"$WORK/out" 2>"$WORK/err" </dev/null
check "the redirect is passed back, then followed by the client" grep -q "server: other" "$WORK/out"
check "the other origin got no key" \
	sh -c "grep -q 'request: 1 /landing' '$WORK/other.log' && ! grep -qi -e '$KEY' -e 'x-api-key' -e 'authorization' '$WORK/other.log'"

# An HTTPS upstream with a certificate of its own (a private model server): the key goes
# over TLS, verified against --model-ca-file.
HTTPD_TLS_CERT="$WORK/cert.pem" HTTPD_TLS_KEY="$WORK/key.pem" \
	"$HTTPD" 127.0.0.1 0 tlsmodel "$WORK/tlsmodel.log" >"$WORK/port.tlsmodel" 2>/dev/null &
PIDS+=($!)
wait_until 5 test -s "$WORK/port.tlsmodel"
TLSUP=$(cat "$WORK/port.tlsmodel")
"$CLAWBOX" run --model-upstream "https://127.0.0.1:$TLSUP" --model-key-env CB_TEST_KEY \
	--model-ca-file "$WORK/cert.pem" -- curl -s -S --max-time 10 \
	http://model.clawbox.internal/v1/models/tls >"$WORK/out" 2>"$WORK/err" </dev/null
check "HTTPS upstream: the answer comes back" grep -q "server: tlsmodel" "$WORK/out"
check "HTTPS upstream: the key arrived over TLS" grep -q "x-api-key: $KEY" "$WORK/tlsmodel.log"
"$CLAWBOX" run --model-upstream "https://127.0.0.1:$TLSUP" --model-key-env CB_TEST_KEY \
	-- curl -s -S --max-time 10 -w '%{http_code}' http://model.clawbox.internal/v1/models/untrusted \
	>"$WORK/out" 2>&1 </dev/null
check "HTTPS upstream with an untrusted certificate: 502, no request sent" \
	sh -c "grep -q 502 '$WORK/out' && ! grep -q '/v1/models/untrusted' '$WORK/tlsmodel.log'"

# GET https://... in a plain request (a client without TLS, like the agent): the proxy
# fetches it with TLS, from the address it checked, trusting --fetch-ca-file.
raw_fetch() { # PORT METHOD URL [BODY]: a raw request to the sandbox's proxy, by bash
	local body=${4:-}
	"$CLAWBOX" run --allow "127.0.0.1:$1" --allow "$FETCH_ALLOW" ${FETCH_CA:+--fetch-ca-file "$FETCH_CA"} -- \
		bash -c 'exec 3<>/dev/tcp/127.0.0.1/3128; printf "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %s\r\n\r\n%s" "$1" "$2" "${#3}" "$3" >&3; timeout 10 cat <&3' \
		_ "$2" "$3" "$body" >"$WORK/out" 2>"$WORK/err" </dev/null
}
FETCH_ALLOW=fetch.example FETCH_CA="$WORK/cert.pem"
raw_fetch "$TLSUP" GET "https://127.0.0.1:$TLSUP/fetched?x=1"
check "https fetch: the proxy fetched it over TLS" \
	sh -c "head -1 '$WORK/out' | grep -q '^HTTP/1.1 200' && grep -q 'server: tlsmodel' '$WORK/out'"
check "https fetch: the server got the path and query" grep -q "request: 1 /fetched?x=1" "$WORK/tlsmodel.log"
raw_fetch "$TLSUP" POST "https://127.0.0.1:$TLSUP/posted" "data"
check "https fetch: other methods are refused (405)" \
	sh -c "head -1 '$WORK/out' | grep -q '^HTTP/1.1 405' && ! grep -q /posted '$WORK/tlsmodel.log'"
raw_fetch "$TLSUP" GET "https://fetch.example:$TLSUP/nowhere"
check "https fetch: not allowed by port is refused (403)" grep -q '^HTTP/1.1 403' "$WORK/out"
raw_fetch "$TLSUP" GET "https://127.0.0.2:$TLSUP/ssrf"
check "https fetch: the SSRF guard holds (403)" \
	sh -c "grep -q '^HTTP/1.1 403' '$WORK/out' && ! grep -q /ssrf '$WORK/tlsmodel.log'"
FETCH_CA=
raw_fetch "$TLSUP" GET "https://127.0.0.1:$TLSUP/untrusted-fetch"
check "https fetch: an untrusted certificate is a 502, nothing sent" \
	sh -c "grep -q '^HTTP/1.1 502' '$WORK/out' && ! grep -q /untrusted-fetch '$WORK/tlsmodel.log'"

# The key never shows on a command line.
"$CLAWBOX" run "${MODEL[@]}" -- sleep 3 2>"$WORK/sleeper.err" &
sleeper=$!
wait_until 5 proxy_of $sleeper >/dev/null
pp=$(proxy_of $sleeper)
[ -z "$pp" ] && echo "# no clawbox-proxy appeared; the run said: $(head -c 300 "$WORK/sleeper.err" | tr '\n' ' ')"
if is_root; then
	# Seen from its exec on; it drops root once its key and files are loaded.
	check "launched by root, the proxy runs as uid 65532, not root" \
		wait_until 3 sh -c "grep -Eq '^Uid:[[:space:]]+65532[[:space:]]+65532[[:space:]]+65532' /proc/$pp/status && grep -q '^NoNewPrivs:[[:space:]]*1' /proc/$pp/status"
fi
check "the proxy's command line holds no key" \
	sh -c "[ -n '$pp' ] && ! tr '\\0' ' ' </proc/$pp/cmdline | grep -q '$KEY'"
wait $sleeper

# When the upstream fails, the answer says so without the key.
kill "$MODEL_PID" 2>/dev/null
wait_until 3 sh -c "! kill -0 $MODEL_PID 2>/dev/null"
"$CLAWBOX" run "${MODEL[@]}" -- curl -s -S --max-time 10 -w '%{http_code}' \
	-d '{}' http://model.clawbox.internal/v1/messages >"$WORK/out" 2>&1 </dev/null
if grep -q 502 "$WORK/out" && grep -q 'model upstream' "$WORK/out" && ! grep -q "$KEY" "$WORK/out"; then
	ok "upstream down: 502 naming the upstream, no key"
else
	not_ok "upstream down: 502 naming the upstream, no key (got: $(head -c 200 "$WORK/out"))"
fi

# Key sources
printf '%s\n' "$KEY" >"$WORK/keyfile"
chmod 600 "$WORK/keyfile"
unset CB_TEST_KEY
expect_rc 0 "a 0600 key file is accepted" run --model-upstream "http://127.0.0.1:$UPPORT" \
	--model-key-file "$WORK/keyfile" -- true
chmod 644 "$WORK/keyfile"
expect_rc 125 "a key file others can read is refused" run --model-upstream \
	"http://127.0.0.1:$UPPORT" --model-key-file "$WORK/keyfile" -- true
check "the refusal says why, without the key" \
	sh -c "grep -q '0600' '$WORK/err' && ! grep -q '$KEY' '$WORK/err'"
expect_rc 125 "an unset key variable is refused" run --model-upstream \
	"http://127.0.0.1:$UPPORT" --model-key-env CB_NOT_SET -- true
expect_rc 125 "--model-key-env without --model-upstream" run --model-key-env X -- true
"$CLAWBOX" run --allow web.test -- curl -s -S --max-time 5 http://model.clawbox.internal/ \
	>"$WORK/out" 2>&1 </dev/null
check "without an upstream, model.clawbox.internal is refused" grep -q "no model upstream" "$WORK/out"

# Nothing left: no proxy process after the run, nor after SIGKILL of clawbox run.
check "no clawbox-proxy left after the runs" sh -c "! pgrep -x clawbox-proxy >/dev/null"
"$CLAWBOX" run --allow web.test -- sleep 30 &
launcher=$!
wait_until 5 proxy_of $launcher >/dev/null
kill -KILL $launcher
wait $launcher 2>/dev/null
check "the proxy goes with a SIGKILLed clawbox run" wait_until 3 sh -c "! pgrep -x clawbox-proxy >/dev/null"
check_clean "nothing of the sandboxes left"

done_testing
