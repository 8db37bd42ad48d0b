#!/bin/bash
# test-envs.sh: group environments (issue 12) against local mirrors only: a Debian repository
# made here (dpkg-deb, dpkg-scanpackages), an npm registry (npm pack + a metadata document)
# and a PyPI simple index (a wheel), served by python3's http.server on loopback. `clawbox env
# add` of one package from each; the next run of that group uses all three, another group
# sees none; the build sandbox reaches the mirrors and nothing else (refused and audited); a
# broken package leaves the old layer; an unchanged set is not rebuilt; the agent's
# install_packages end to end through the fake model; `clawbox run --layer` on its own.
. "$(dirname "$0")/lib.sh"

FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
KEY=sk-ant-test-ENVS-4444
PY=/usr/bin/python3

# ---- the mirrors ----
M=$WORK/mirror
MPORT=$((20000 + RANDOM % 20000))
OPORT=$((MPORT + 1))
"$TOP/tests/integration/env-mirror.sh" "$M" "$MPORT" "$OPORT"
"$PY" -m http.server --bind 127.0.0.1 "$MPORT" --directory "$M" >"$WORK/mirror.log" 2>&1 &
HPID=$!
mkdir -p "$WORK/elsewhere"
"$PY" -m http.server --bind 127.0.0.1 "$OPORT" --directory "$WORK/elsewhere" >"$WORK/elsewhere.log" 2>&1 &
OPID=$!
trap 'kill $HPID $OPID 2>/dev/null; cleanup_work' EXIT
wait_until 10 curl -sf "http://127.0.0.1:$MPORT/deb/Packages" -o /dev/null
wait_until 10 curl -s "http://127.0.0.1:$OPORT/" -o /dev/null
check "the mirrors are up (a .deb, an npm tarball, a wheel)" sh -c \
	"ls '$M'/deb/*.deb '$M'/npm/*.tgz '$M'/pypi/*.whl >/dev/null"

# ---- clawbox run --layer, without the daemon ----
L=$WORK/layer
mkdir -p "$L/usr/bin" "$L/npm/bin"
printf '#!/bin/sh\necho layer-tool\n' >"$L/usr/bin/clawbox-layer-tool"
printf '#!/bin/sh\necho npm-tool\n' >"$L/npm/bin/clawbox-npm-tool"
chmod 755 "$L/usr/bin/clawbox-layer-tool" "$L/npm/bin/clawbox-npm-tool"
run_cb run --layer "$L" -- sh -c 'clawbox-layer-tool; /usr/bin/clawbox-layer-tool; clawbox-npm-tool; ls /usr/bin/sh >/dev/null && echo host-usr; touch /usr/bin/x /opt/clawbox-env/x 2>&1 | grep -c Read-only; echo "$PATH"'
check "--layer: the layer's usr over the host's /usr, npm/bin on PATH, both read-only" \
	test "$(head -5 "$WORK/out" | tr '\n' ' ')" = "layer-tool layer-tool npm-tool host-usr 2 "
check "--layer: PATH starts with the venv and the npm prefix" \
	grep -qx '/opt/clawbox-env/venv/bin:/opt/clawbox-env/npm/bin:/usr/local/bin:.*' "$WORK/out"
run_cb run -- sh -c 'command -v clawbox-layer-tool || echo absent'
check "without --layer the sandbox has none of it" grep -qx absent "$WORK/out"
expect_rc 125 "--layer of a missing folder: set-up error" run --layer "$WORK/nosuch" -- true
check "... naming it" grep -q nosuch "$WORK/err"
expect_rc 125 "--layer with --rootfs: refused" run --layer "$L" --rootfs / -- true

# ---- the daemon ----
"$FAKE" --scenario "$TOP/tests/data/scenarios/envs.json" --log "$WORK/model.log" \
	--port-file "$WORK/mport" --key "$KEY" --forbid "$KEY" &
MPID=$!
wait_until 5 test -s "$WORK/mport"
PORT=$((20000 + RANDOM % 20000))
DATA=$WORK/data
cat >"$WORK/config.json" <<JSON
{"data_dir": "$DATA", "listen": "127.0.0.1:$PORT",
 "model": {"provider": "anthropic", "base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "envs": {"mirrors": {"debian": "deb [trusted=yes] http://127.0.0.1:$MPORT/deb ./",
                      "npm": "http://127.0.0.1:$MPORT/npm-meta/",
                      "pypi": "http://127.0.0.1:$MPORT/pypi/simple/"},
          "max_packages": 6, "build_timeout": 300},
 "groups": [{"id": "dev", "agent_may_install": true}, {"id": "other"}]}
JSON
ANTHROPIC_API_KEY=$KEY "$CLAWBOX" serve --config "$WORK/config.json" >>"$WORK/serve.out" 2>>"$WORK/serve.err" &
SPID=$!
wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
TOKEN=$(cat "$DATA/api-token")
CL=(--url "http://127.0.0.1:$PORT" --token-file "$DATA/api-token")
api() { # METHOD PATH [BODY]: status in CODE, body in WORK/body
	CODE=$(curl -s -o "$WORK/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN" \
		${3:+--data-binary "$3"} "http://127.0.0.1:$PORT$2")
}
env_state() { api GET "/api/v1/groups/$1/env"; grep -o '"state":"[a-z]*"' "$WORK/body" | cut -d'"' -f4; }
# wait_built GROUP: until its build is over (built or failed); a loaded machine may take a while.
wait_built() { wait_until 240 sh -c "s=\$(curl -s -H 'Authorization: Bearer $TOKEN' http://127.0.0.1:$PORT/api/v1/groups/$1/env | grep -o '\"state\":\"[a-z]*\"'); [ -n \"\$s\" ] && [ \"\$s\" != '\"state\":\"building\"' ]"; }
ask_group() { # GROUP TEXT REPLY: post a message, wait for the reply
	api POST "/api/v1/groups/$1/messages" "{\"text\": \"$2\"}"
	wait_until 90 sh -c "curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$PORT/api/v1/groups/$1/messages' | grep -q '$3'"
	api GET "/api/v1/groups/$1/messages"
	check "$1: the run answered ($3)" grep -q "$3" "$WORK/body"
}

for bad in 'apt:-oops' 'npm:../x' 'pip:a b' 'apt:a/b' 'deb:x' 'apt:' 'pip:.hidden'; do
	expect_rc 1 "clawbox env add '$bad': refused" env "${CL[@]}" dev add "$bad"
done
check "... with a line naming the package" grep -q 'package pip:.hidden: expected' "$WORK/err"
api GET /api/v1/groups/nosuch/env
check "the env of an unknown group: 404 ($CODE)" test "$CODE" = 404
api POST /api/v1/groups/dev/env '{"add": ["apt:a", "apt:b", "apt:c", "apt:d", "apt:e", "apt:f", "apt:g"]}'
check "past envs.max_packages: 400 ($CODE)" sh -c "[ $CODE = 400 ] && grep -q 'at most 6' '$WORK/body'"

T0=$(date +%s%N)
run_cb env "${CL[@]}" dev add apt:clawbox-hello npm:clawbox-hello-npm pip:clawbox-hello-py
check "clawbox env add of one package from each: accepted, building" sh -c "[ $RC = 0 ] && grep -q 'state: building' '$WORK/out'"
wait_built dev
T1=$(date +%s%N)
echo "# environment build of one .deb, npm package and wheel: $(((T1 - T0) / 1000000)) ms"
check "the build succeeded" test "$(env_state dev)" = built
LAYER1=$(readlink -f "$DATA/envs/dev/current")
check "current points at a build folder" sh -c "[ -d '$LAYER1' ] && case '$LAYER1' in */.build-*) true;; *) false;; esac"
check "the layer holds the three" sh -c "[ -x '$LAYER1/usr/bin/clawbox-hello' ] && [ -e '$LAYER1/npm/bin/clawbox-hello-npm' ] && [ -x '$LAYER1/venv/bin/clawbox-hello-py' ]"
run_cb env "${CL[@]}" dev
check "clawbox env shows the packages, the state and the disk use" sh -c \
	"grep -q 'packages: apt:clawbox-hello npm:clawbox-hello-npm pip:clawbox-hello-py' '$WORK/out' && grep -q '^state: built' '$WORK/out' && grep -q 'disk use [0-9.]* MiB of 2048 MiB; 3 of 6 packages' '$WORK/out'"
check "... and says maintainer scripts are not run" grep -q 'maintainer scripts are not run' "$WORK/out"
check "the build reached the mirror through the proxy (audited)" \
	grep -q "\"port\":$MPORT.*\"decision\":\"allow\"" "$DATA/envs/dev/build-audit.jsonl"
check "the postinst did not run anywhere" sh -c "! ls /tmp/POSTINST-RAN 2>/dev/null && ! find '$DATA/envs' -name POSTINST-RAN | grep -q ."

run_cb env "${CL[@]}" dev add apt:clawbox-hello
check "an unchanged set is not rebuilt" sh -c "grep -q 'unchanged: not rebuilt' '$WORK/out' && [ \"\$(readlink -f '$DATA/envs/dev/current')\" = '$LAYER1' ]"

ask_group dev "use the tools" "dev tools done"
ask_group other "try tools" "other done"
api GET "/api/v1/audit?after=0"
check "other's install_packages refused and audited" grep -q '"group":"other","action":"install_packages","decision":"deny"' "$WORK/body"
check "... and other has no environment" test "$(env_state other)" = none

ask_group dev "install more" "install asked"
api GET "/api/v1/audit?after=0"
check "dev's install_packages allowed and audited" grep -q '"group":"dev","action":"install_packages","decision":"allow"' "$WORK/body"
wait_built dev
api GET /api/v1/groups/dev/env
check "the agent's request was built" sh -c "[ \"\$(readlink -f '$DATA/envs/dev/current')\" != '$LAYER1' ] && grep -q '\"built_packages\":\[[^]]*apt:clawbox-second' '$WORK/body'"
LAYER2=$(readlink -f "$DATA/envs/dev/current")
ask_group dev "use second" "second done"

run_cb env "${CL[@]}" dev add apt:clawbox-nosuch
wait_built dev
check "a broken package: the build failed" test "$(env_state dev)" = failed
check "... saying why" grep -q 'build failed (exit [0-9]*).*previous layer stays' "$WORK/body"
check "... and the old layer stays in place" sh -c "[ \"\$(readlink -f '$DATA/envs/dev/current')\" = '$LAYER2' ] && [ -x '$LAYER2/usr/bin/clawbox-second' ]"
check "... and no half-built folder is left" test "$(find "$DATA/envs/dev" -maxdepth 1 -name '.build-*' | wc -l)" = 2

run_cb env "${CL[@]}" dev remove apt:clawbox-nosuch
wait_built dev
run_cb env "${CL[@]}" dev add pip:clawbox-elsewhere
wait_built dev
check "a package whose file lies elsewhere: the build failed" test "$(env_state dev)" = failed
check "the request elsewhere was refused by the build's proxy and audited" \
	grep -q "\"port\":$OPORT.*\"decision\":\"deny\"" "$DATA/envs/dev/build-audit.jsonl"
api GET "/api/v1/audit?after=0"
check "... also in the daemon's audit (env_egress)" grep -q "\"group\":\"dev\",\"action\":\"env_egress\",\"decision\":\"deny\",\"reason\":\"GET 127.0.0.1:$OPORT" "$WORK/body"
check "... and never reached that server" sh -c "! grep -q 'GET /clawbox_elsewhere' '$WORK/elsewhere.log'"
check "the old layer still stays" sh -c "[ -x \"\$(readlink -f '$DATA/envs/dev/current')/usr/bin/clawbox-second\" ]"

# A change while a build runs: built once more after it, with both.
run_cb env "${CL[@]}" dev remove pip:clawbox-elsewhere apt:clawbox-second
check "a change starts a build" grep -q 'state: building' "$WORK/out"
run_cb env "${CL[@]}" dev add apt:clawbox-second
wait_built dev
api GET /api/v1/groups/dev/env
check "a change during a build is built after it" sh -c "grep -q '\"state\":\"built\"' '$WORK/body' && grep -q '\"built_packages\":\[\"apt:clawbox-hello\",\"apt:clawbox-second\",\"npm:clawbox-hello-npm\",\"pip:clawbox-hello-py\"\]' '$WORK/body'"
check "old build folders are removed: the current layer and the one before are kept" \
	test "$(find "$DATA/envs/dev" -maxdepth 1 -name '.build-*' | wc -l)" = 2
run_cb env "${CL[@]}" dev remove apt:clawbox-hello apt:clawbox-second npm:clawbox-hello-npm pip:clawbox-hello-py
check "no packages left: no layer" sh -c "grep -q '^state: none' '$WORK/out' && ! [ -e '$DATA/envs/dev/current' ]"

check "every model request was what the scenario expected" \
	sh -c "[ \$(grep -c '\"ok\":true' '$WORK/model.log') -eq 8 ] && ! grep -q '\"ok\":false' '$WORK/model.log'"
kill -TERM "$SPID"; wait "$SPID" 2>/dev/null; SPID=

# ---- the caps: build time (a mirror that never answers), layer size ----
SPORT=$((OPORT + 1))
"$PY" -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16); held = []
while True: held.append(s.accept()[0])' "$SPORT" &
SLPID=$!
trap 'kill $HPID $OPID $SLPID 2>/dev/null; cleanup_work' EXIT
DATA2=$WORK/data2
start_q() { # TIMEOUT: a daemon with one group q, the caps of this part (1M; TIMEOUT s)
	cat >"$WORK/config2.json" <<JSON
{"data_dir": "$DATA2", "listen": "127.0.0.1:$PORT",
 "model": {"provider": "anthropic", "base_url": "http://127.0.0.1:$(cat "$WORK/mport")"},
 "envs": {"mirrors": {"debian": "deb [trusted=yes] http://127.0.0.1:$SPORT/deb ./",
                      "pypi": "http://127.0.0.1:$MPORT/pypi/simple/"},
          "max_size": "1M", "build_timeout": $1},
 "groups": [{"id": "q"}]}
JSON
	ANTHROPIC_API_KEY=$KEY "$CLAWBOX" serve --config "$WORK/config2.json" >>"$WORK/serve2.out" 2>>"$WORK/serve2.err" &
	SPID=$!
	wait_until 5 curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null
	TOKEN=$(cat "$DATA2/api-token")
	CL=(--url "http://127.0.0.1:$PORT" --token-file "$DATA2/api-token")
}
start_q 3
run_cb env "${CL[@]}" q add apt:clawbox-hello
wait_built q
api GET /api/v1/groups/q/env
check "a build past build_timeout (a mirror that never answers) fails, saying so" \
	grep -q 'past the time cap of 3 s' "$WORK/body"
kill -TERM "$SPID"; wait "$SPID" 2>/dev/null; SPID=
start_q 600
run_cb env "${CL[@]}" q remove apt:clawbox-hello
run_cb env "${CL[@]}" q add pip:clawbox-hello-py
wait_built q
api GET /api/v1/groups/q/env
check "a layer past max_size is not taken (a venv is more than 1M)" sh -c \
	"grep -q 'past the cap of 1048576' '$WORK/body' && ! [ -e '$DATA2/envs/q/current' ] && [ \$(find '$DATA2/envs/q' -maxdepth 1 -name '.build-*' | wc -l) = 0 ]"
kill -TERM "$SPID"; wait "$SPID" 2>/dev/null; SPID=
echo "1..$T_NUM"
[ "$T_FAILED" = 0 ]
