#!/bin/bash
# test-egress.sh: egress verdicts, requests held by the proxy for an approver, and taint, end to
# end through `clawbox serve` with the fake model; the destinations are the test's own httpd
# servers on loopback, named in a hosts file the proxies resolve from (no DNS).
#
# A request to an unlisted host (unlisted_hosts "ask") is held by the proxy, never resolved,
# until an approver answers: approved, it goes out with exactly the body shown; denied or
# expired, the agent gets a 403 saying why and nothing reaches the server; another body asks
# again; "for this run" and "always" widen a grant to one destination, and a rule can be
# removed; an answer from someone not an approver is refused; a daemon killed while a request is
# held leaves it denied after the restart. Injected sessions: after a page from an untrusted
# host, the agent's attempts to send the group's notes out (a POST to an allowed host, a URL
# query to it, DNS names of an unlisted host) are held or refused, and a clean session posting
# the same notes to the same allowed host completes without asking.
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
KEY=sk-ant-test-EGRESS-7777
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	cleanup_work
}
trap cleanup EXIT

check_config() { # EXPECTED JSON: one line naming the key, exit 2
	printf '%s' "$2" >"$WORK/bad.json"
	"$CLAWBOX" serve --config "$WORK/bad.json" --check-config >"$WORK/out" 2>"$WORK/err"
	local rc=$?
	if [ $rc = 2 ] && grep -qF -- "$1" "$WORK/err" && [ "$(wc -l <"$WORK/err")" = 1 ]; then
		ok "config error: $1"
	else
		not_ok "config error: $1 (exit $rc: $(cat "$WORK/err"))"
	fi
}
check_config 'groups[0].egress[1].host: A.example has a rule already (egress[0])' \
	'{"groups": [{"id": "m", "egress": [{"host": "a.example", "verdict": "allow"}, {"host": "A.example", "verdict": "deny"}]}]}'
check_config 'groups[0].egress[0].verdict: "deny" for a.example, which groups[0].allow[0] allows' \
	'{"groups": [{"id": "m", "allow": ["a.example"], "egress": [{"host": "a.example", "verdict": "deny"}]}]}'
check_config 'groups[0].egress[0].when_tainted: never applies, the host is trusted' \
	'{"groups": [{"id": "m", "egress": [{"host": "a.example", "verdict": "allow", "trusted": true, "when_tainted": "deny"}]}]}'
check_config 'groups[0].approvers: empty, but groups[0].egress asks for approvals' \
	'{"groups": [{"id": "m", "approvers": [], "egress": [{"host": "a.example", "verdict": "ask"}]}]}'
check_config 'groups[0].approvers: empty, but the policy asks for approvals' \
	'{"groups": [{"id": "m", "approvers": [], "policy": {"unlisted_hosts": "ask"}}]}'
check_config 'groups[0].policy.unlisted_hosts: expected "deny" or "ask"' \
	'{"groups": [{"id": "m", "policy": {"unlisted_hosts": "allow"}}]}'
check_config 'groups[0].egress[0].verdict: expected "allow", "ask" or "deny"' \
	'{"groups": [{"id": "m", "egress": [{"host": "a.example", "verdict": "maybe"}]}]}'
check_config 'groups[0].egress[0].trust: unknown key' \
	'{"groups": [{"id": "m", "egress": [{"host": "a.example", "verdict": "allow", "trust": true}]}]}'
check_config 'groups[0].egress[0].host: expected HOST or HOST:PORT' \
	'{"groups": [{"id": "m", "egress": [{"host": "http://a.example/", "verdict": "allow"}]}]}'
check_config 'groups[0].egress[0].host: expected HOST or HOST:PORT' \
	'{"groups": [{"id": "m", "egress": [{"host": "a.example:99999", "verdict": "allow"}]}]}'

got() { grep -q -- "$2" "$WORK/$1.log" 2>/dev/null; } # SERVER(a, b, c, t) PATTERN
start_httpd_log() { # VAR NAME LOGFILE
	"$HTTPD" 127.0.0.1 0 "$2" "$3" >"$WORK/port.$2" 2>/dev/null &
	PIDS+=($!)
	wait_until 5 test -s "$WORK/port.$2"
	printf -v "$1" '%s' "$(cat "$WORK/port.$2")"
}
start_httpd_log PA A "$WORK/a.log" # the allowed sink of the injected sessions
start_httpd_log PB B "$WORK/b.log" # the unlisted host's server
start_httpd_log PC C "$WORK/c.log" # the untrusted page
start_httpd_log PT T "$WORK/t.log" # a trusted host
printf '127.0.0.1 unlisted.example sink.example page.example trusted.example\n' >"$WORK/hosts"
sed -e "s/@PA@/$PA/g" -e "s/@PB@/$PB/g" -e "s/@PC@/$PC/g" -e "s/@PT@/$PT/g" \
	"$TOP/tests/data/scenarios/egress.json" >"$WORK/scenario.json"

# ---- The proxy alone, its control channel held by the test (egress-control.py) ----
sed -e "s/@PA@/$PA/g" -e "s/@PB@/$PB/g" "$TOP/tests/data/scenarios/egress-control.json" \
	>"$WORK/control.json"
"$FAKE" --scenario "$WORK/control.json" --log "$WORK/cmodel.log" --port-file "$WORK/cport" \
	--key "$KEY" &
PIDS+=($!)
wait_until 5 test -s "$WORK/cport"
mkdir -p "$WORK/ws"
is_root && chown "$SANDBOX_HOST_UID:$SANDBOX_HOST_UID" "$WORK/ws"
ask_ctl() { # FRAMES-LOG PROMPT ASK-ARGS...: clawbox ask with a control channel the test holds
	local log=$1 prompt=$2
	shift 2
	(cd "$WORK/ws" && ANTHROPIC_API_KEY=$KEY timeout 120 python3 "$TOP/tests/integration/egress-control.py" \
		"$log" "$CLAWBOX" ask --session "$WORK/sess-$prompt" --new \
		--base-url "http://127.0.0.1:$(cat "$WORK/cport")" --hosts "$WORK/hosts" \
		--audit "$WORK/caudit" "$@" "$prompt" >"$WORK/out" 2>"$WORK/err" </dev/null)
}
: >"$WORK/b.log"
EGRESS_WAIT_ASKS=4 EGRESS_SETTLE=2 EGRESS_ANSWERS=allow,malformed,deny,close ask_ctl "$WORK/f1" "c1 cap" \
	--egress '{"unlisted": "ask", "rules": [{"host": "127.0.0.1:'"$PB"'", "verdict": "ask"}]}' \
	--proxy-control-fd @FD@
check "five requests at once: four held and asked about, the fifth refused at once" \
	test "$(grep -c '"t":"egress_ask"' "$WORK/f1")" = 4
check "the asks say method, host, port, path, size, sha256, preview and why" \
	grep -q '"t":"egress_ask","id":[0-9]*,"method":"POST","host":"unlisted.example","port":'"$PB"',"path":"/p[1-5]","why":"unlisted host","body_size":2,"body_sha256":"[0-9a-f]\{64\}","preview":"x[1-5]"' "$WORK/f1"
check "only the one answered allow reached the server (a malformed answer, a deny and the channel's end deny)" \
	test "$(grep -c '^request: ' "$WORK/b.log")" = 1
check "the run went on: the agent saw each outcome" grep -q 'c1 done' "$WORK/out"
check "audited: the held request's approval in its line" grep -q '"decision":"allow","reason":"held (unlisted host), approved: by test"' "$WORK/caudit"

: >"$WORK/a.log"
EGRESS_ANSWERS=deny ask_ctl "$WORK/f2" "c2 tainted" --tainted "a sender not among the owners" \
	--allow "sink.example:$PA" --allow "127.0.0.1:$PA" --proxy-control-fd @FD@
check "started tainted: a body to an allowed host is asked about, saying why" \
	grep -q '"method":"POST","host":"sink.example","port":'"$PA"',"path":"/post","why":"tainted: a sender not among the owners' "$WORK/f2"
check "a GET without input went out; its response is reported as a taint cause" \
	grep -q '{"t":"taint","cause":"response from untrusted host sink.example"}' "$WORK/f2"
check "denied: the body never reached the host" sh -c "grep -q 'request: 1 /get' '$WORK/a.log' && ! grep -q secret-x '$WORK/a.log'"
check "audited: the start's taint" grep -q '"decision":"taint","reason":"a sender not among the owners"' "$WORK/caudit"

(cd "$WORK/ws" && ANTHROPIC_API_KEY=$KEY timeout 60 "$CLAWBOX" ask --session "$WORK/sess-c3" --new \
	--base-url "http://127.0.0.1:$(cat "$WORK/cport")" --hosts "$WORK/hosts" --audit "$WORK/caudit" \
	--egress '{"unlisted": "ask", "rules": [{"host": "127.0.0.1:'"$PB"'", "verdict": "ask"}]}' \
	"c3 plain" >"$WORK/out" 2>"$WORK/err" </dev/null)
check "without a control channel, ask is a denial the agent and the audit see" \
	grep -q '"decision":"deny","reason":"egress: unlisted host: needs an approval, and no approver can be asked from here' "$WORK/caudit"
EGRESS_ANSWERS=allow ask_ctl "$WORK/f4" "c4 tunnel" \
	--egress '{"unlisted": "ask", "rules": [{"host": "127.0.0.1:'"$PB"'", "verdict": "ask"}]}' \
	--proxy-control-fd @FD@
check "a CONNECT tunnel to an unlisted host is held as CONNECT, no path, no body" \
	grep -q '"method":"CONNECT","host":"unlisted.example","port":'"$PB"',"path":"","why":"unlisted host","body_size":0' "$WORK/f4"
check "approved, the tunnel carried the request" got b "request: 1 /tunnel"
check "the proxy-alone runs' model requests were as expected" sh -c "! grep -q '\"ok\":false' '$WORK/cmodel.log' && [ \$(wc -l <'$WORK/cmodel.log') = 8 ]"

# ---- Through the daemon ----
"$FAKE" --scenario "$WORK/scenario.json" --log "$WORK/model.log" \
	--port-file "$WORK/mport" --key "$KEY" --forbid "$KEY" --forbid NOTE-SECRET-4711 &
MPID=$!
wait_until 5 test -s "$WORK/mport"
PORT=$((20000 + RANDOM % 20000))
DATA=$WORK/data
# The loopback addresses are named (an ask rule, allow entries) only so that the SSRF guard
# lets a request reach the test's servers; the names are what the verdicts are about.
cat >"$WORK/config.json" <<JSON
{"data_dir": "$DATA", "listen": "127.0.0.1:$PORT", "hosts_file": "$WORK/hosts",
 "model": {"provider": "anthropic", "base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "groups": [{"id": "web", "policy": {"unlisted_hosts": "ask"},
             "egress": [{"host": "127.0.0.1:$PB", "verdict": "ask"}]},
            {"id": "ops", "approvers": ["telegram:42"],
             "policy": {"unlisted_hosts": "ask", "approval_timeout": 3},
             "egress": [{"host": "127.0.0.1:$PB", "verdict": "ask"}]},
            {"id": "inj", "allow": ["page.example:$PC", "sink.example:$PA", "127.0.0.1:$PA", "127.0.0.1:$PC"],
             "egress": [{"host": "trusted.example:$PT", "verdict": "allow", "trusted": true},
                        {"host": "127.0.0.1:$PT", "verdict": "allow", "trusted": true}]}]}
JSON
"$CLAWBOX" serve --config "$WORK/config.json" --check-config >"$WORK/out" 2>&1
check "the test's configuration is accepted ($(cat "$WORK/out"))" test $? = 0
for g in web ops inj; do mkdir -p "$DATA/groups/$g"; done
printf 'NOTE-SECRET-4711 the group notes\n' >"$DATA/groups/inj/notes.txt"
is_root && chown -R "$SANDBOX_HOST_UID:$SANDBOX_HOST_UID" "$DATA/groups"
chmod 700 "$DATA" "$DATA/groups" 2>/dev/null

start_daemon() {
	ANTHROPIC_API_KEY=$KEY "$CLAWBOX" serve --config "$WORK/config.json" >>"$WORK/serve.out" 2>>"$WORK/serve.err" &
	SPID=$!
	wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
	TOKEN=$(cat "$DATA/api-token" 2>/dev/null)
}
api() { # METHOD PATH [BODY]: status in CODE, body in WORK/body
	CODE=$(curl -s -o "$WORK/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN" \
		${3:+--data-binary "$3"} "http://127.0.0.1:$PORT$2")
}
cb() { "$CLAWBOX" "$1" --url "http://127.0.0.1:$PORT" --token-file "$DATA/api-token" "${@:2}"; }
not() { ! "$@"; }
say() { api POST "/api/v1/groups/$1/messages" "{\"text\": \"$2\"}"; }
wait_reply() { wait_until 60 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/$1/messages?after=0' | grep -q '$2'"; }
pending_id() { # PATTERN: waits for a pending approval whose preview or destination matches; its id
	wait_until 30 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/approvals' | grep -q '$1'"
	api GET /api/v1/approvals
	jq -r --arg p "$1" '.approvals[] | select((.preview + " " + .destination) | test($p)) | .id' "$WORK/body" | head -1
}
approval() { # ID FIELD
	api GET "/api/v1/approvals?all=1"
	jq -r --argjson id "$1" ".approvals[] | select(.id == \$id) | .$2" "$WORK/body"
}

start_daemon

cb policy web >"$WORK/pol" 2>&1
check "clawbox policy web: unlisted hosts ask, the rule listed" sh -c \
	"grep -q 'unlisted hosts: ask' '$WORK/pol' && grep -q '127.0.0.1:$PB  *ask  *no  *ask (default)' '$WORK/pol'"
cb policy inj >"$WORK/pol" 2>&1
check "clawbox policy inj: a trusted host, and the allow entries (untrusted, ask when tainted)" sh -c \
	"grep -q 'trusted.example:$PT  *allow  *yes' '$WORK/pol' && grep -q 'sink.example:$PA  *allow  *no  *ask (default)  \[from allow\]' '$WORK/pol' && grep -q 'unlisted hosts: deny' '$WORK/pol'"

# Held, approved once: it goes out with the body the approver saw.
say web "w1 held"
id1=$(pending_id note-1)
check "a POST to an unlisted host is held as approval $id1" test -n "$id1"
check "nothing reached the server yet" not got b note-1
check "the approver sees method, host, port, path" test "$(approval "$id1" destination)" = "POST unlisted.example:$PB/in"
check "and the body's preview, size and sha256, and why" sh -c \
	"[ '$(approval "$id1" preview)' = note-1 ] && [ '$(approval "$id1" size)' = 6 ] && [ '$(approval "$id1" sha256)' = '$(printf note-1 | sha256sum | cut -d' ' -f1)' ] && [ '$(approval "$id1" why)' = 'egress from web: unlisted host' ] && [ '$(approval "$id1" action)' = egress ]"
cb approvals >"$WORK/list" 2>&1
check "clawbox approvals lists it" grep -q "#$id1 pending web: egress -> POST unlisted.example:$PB/in" "$WORK/list"
cb approve "$id1" >"$WORK/out" 2>&1
check "clawbox approve $id1 ($(cat "$WORK/out"))" grep -q "approval $id1: approved" "$WORK/out"
wait_until 10 got b note-1
check "approved: the request reached the server, with its body" got b "body: note-1"

# The same destination with another body asks again; denied, nothing goes out.
id2=$(pending_id note-2)
check "another body is held again (approval $id2)" sh -c "[ -n '$id2' ] && [ '$id2' != '$id1' ]"
check "their fingerprints differ" sh -c "[ '$(approval "$id1" fingerprint)' != '$(approval "$id2" fingerprint)' ]"
cb deny "$id2" >"$WORK/out" 2>&1
check "clawbox deny $id2" grep -q "approval $id2: denied" "$WORK/out"

# For this run: the next request to that destination passes without asking.
id3=$(pending_id note-3)
check "held again after the denial (approval $id3)" test -n "$id3"
cb approve "$id3" --for-run >"$WORK/out" 2>&1
check "clawbox approve $id3 --for-run" grep -q "approved run" "$WORK/out"
wait_reply web 'w1 done'
check "denied: note-2 never reached the server; note-3 and note-4 did" sh -c \
	"! grep -q note-2 '$WORK/b.log' && grep -q 'body: note-3' '$WORK/b.log' && grep -q 'body: note-4' '$WORK/b.log'"
api GET "/api/v1/approvals?all=1"
check "note-4 passed by the run's grant: never a request" bash -c "! grep -q note-4 '$WORK/body'"

# Always: a rule, used by the next run, listed and removed; then it asks again.
say web "w2 always"
id5=$(pending_id note-5)
cb approve "$id5" --always >/dev/null 2>&1
wait_reply web 'w2 done'
say web "w3 rule"
wait_reply web 'w3 done'
check "the next run's request passed by the rule" got b "body: note-6"
api GET "/api/v1/approvals?all=1"
check "and made no request" bash -c "! grep -q note-6 '$WORK/body'"
cb policy web >"$WORK/pol" 2>&1
rule=$(sed -n "s/.*rule \([0-9]*\): egress to POST unlisted.example:$PB\/in: allow (by cli, approval $id5)/\1/p" "$WORK/pol")
check "clawbox policy lists the rule ($rule)" test -n "$rule"
cb policy web --remove "$rule" >"$WORK/out" 2>&1
check "clawbox policy web --remove $rule" grep -q "rule $rule of web removed" "$WORK/out"
say web "w4 removed"
id7=$(pending_id note-7)
check "with the rule removed, it is held again (approval $id7)" test -n "$id7"
cb deny "$id7" >/dev/null 2>&1
wait_reply web 'w4 done'
check "note-7 never reached the server" not got b note-7

# Not an approver, then expiry.
say ops "o1 expiry"
id8=$(pending_id note-8)
cb approve "$id8" >"$WORK/out" 2>&1
check "an answer from someone not an approver is refused" grep -q "cli is not an approver of ops" "$WORK/out"
wait_reply ops 'o1 done'
check "expired into a denial: note-8 never reached the server" sh -c \
	"! grep -q note-8 '$WORK/b.log' && [ '$(approval "$id8" status)' = expired ]"

# The injected session: a page from an untrusted host, then three ways to send the notes out.
say inj "i1 injected"
id9=$(pending_id 'NOTE-SECRET-4711')
check "tainted: the notes POSTed to an allowed host are held (approval $id9)" sh -c \
	"[ -n '$id9' ] && [ '$(approval "$id9" why)' = 'egress from inj: tainted: response from untrusted host page.example' ]"
cb deny "$id9" >/dev/null 2>&1
id10=$(pending_id '/c[?]d=')
check "tainted: the notes in a URL query to an allowed host are held (approval $id10)" test -n "$id10"
cb deny "$id10" >/dev/null 2>&1
wait_reply inj 'i1 done'
api GET "/api/v1/audit?after=0"
check "audited: the DNS-name request refused, the taint and its cause" sh -c \
	"grep -q 'exfil.example:80 is not in the allowlist' '$WORK/body' && grep -q '\"action\":\"taint:egress\",\"decision\":\"tainted\",\"reason\":\"run [0-9]*: response from untrusted host page.example' '$WORK/body'"
check "nothing of the notes reached the allowed host" sh -c "! grep -q 'NOTE-SECRET\|/c?d=' '$WORK/a.log'"
check "the page was fetched" got c "/page.html"

say inj "i2 clean"
wait_reply inj 'i2 done'
check "a clean session (a trusted host read) posts the same notes without asking" got a "body: NOTE-SECRET-4711"
api GET "/api/v1/approvals?all=1"
check "and made no approval request" test "$(jq '[.approvals[] | select(.group == "inj")] | length' "$WORK/body")" = 2

# A daemon killed while a request is held: after the restart it is denied, never granted.
say web "w5 crash"
id11=$(pending_id note-9)
check "held before the crash (approval $id11)" test -n "$id11"
kill -KILL "$SPID"
wait "$SPID" 2>/dev/null
start_daemon
check "after SIGKILL and restart, approval $id11 is denied" test "$(approval "$id11" status)" = denied
cb approve "$id11" >"$WORK/out" 2>&1
check "and cannot be approved any more ($(cat "$WORK/out"))" grep -q "is denied, not pending" "$WORK/out"
wait_reply web 'after restart'
check "note-9 never reached the server" not got b note-9

check "every model request was what the scenario expected" sh -c "! grep -q '\"ok\":false' '$WORK/model.log'"
kill -TERM "$SPID"
wait "$SPID" 2>/dev/null
kill "$MPID" 2>/dev/null
wait_until 60 no_leftovers
check_clean "nothing of any sandbox is left"
[ -n "${EGRESS_KEEP:-}" ] && cp -r "$WORK" "$EGRESS_KEEP"
done_testing
