#!/bin/bash
# bench-engines.sh: a message answered through `clawbox serve` by each engine (ours, Claude
# Code, Codex), the same one-tool task (one shell command, then the answer) against the fake
# model answering at once: median and p95 of RUNS, message in to reply out (`clawbox chat`).
# Each engine has its own daemon and fake model (Codex speaks the OpenAI Responses API). And the
# peak RSS of the largest process of one `ask --engine` run (the engine itself: getrusage of
# the waited-for descendants). The CLIs come from build/npm-engines (see .ci/run); an engine
# that is not there is said so and left out.
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-10}
WARM=2
ENGINES=${CLAWBOX_NPM_ENGINES:-$PWD/build/npm-engines}
mkdir -p build/bench
cc -O2 -o build/bench/spawn-time bench/spawn-time.c
W=$(mktemp -d /tmp/clawbox-bench-engines.XXXXXX)
chmod 755 "$W"
PIDS=""
trap 'kill $PIDS 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
export PATH=$ENGINES/node_modules/.bin:$PATH

# scenario NAME TOOL INPUT-JSON: RUNS+WARM+1 tool calls, each followed by the answer.
scenario() {
	python3 - "$W/$1.json" "$2" "$3" "$((RUNS + WARM + 1))" <<'PY'
import json, sys
path, tool, inp, n = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
turns = []
for i in range(n):
    turns.append({"reply": {"tool_calls": [{"id": "call_b%d" % i, "name": tool, "input": inp}]}})
    turns.append({"reply": {"text": "bench answer"}})
json.dump({"turns": turns, "default": {"reply": {"text": "bench answer"}}}, open(path, "w"))
PY
}

# daemon NAME PROVIDER ENGINE: a fake model and a daemon with one group NAME; prints the config.
daemon() {
	local name=$1 provider=$2 engine=$3
	build/tests/fake-model --scenario "$W/$name.json" --log /dev/null --port-file "$W/$name.mport" &
	PIDS="$PIDS $!"
	for _ in $(seq 50); do [ -s "$W/$name.mport" ] && break; sleep 0.05; done
	local port=$((20000 + RANDOM % 20000))
	cat >"$W/$name.config" <<JSON
{"data_dir": "$W/$name.data", "listen": "127.0.0.1:$port",
 "model": {"provider": "$provider", "base_url": "http://127.0.0.1:$(cat "$W/$name.mport")",
           "model": "$([ "$provider" = openai ] && echo gpt-4.1 || echo claude-fake-1)"},
 "groups": [{"id": "main", "main": true}, {"id": "$name", "engine": "$engine"}]}
JSON
	OPENAI_API_KEY=sk-bench ANTHROPIC_API_KEY=sk-ant-bench ./clawbox serve --config "$W/$name.config" >"$W/$name.log" 2>&1 &
	PIDS="$PIDS $!"
	for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" -o /dev/null && break; sleep 0.05; done
}

names=() cmds=()
scenario ours bash '{"command": "echo hi"}'
daemon ours anthropic clawbox
names+=("clawbox (ours)")
cmds+=(sh -c "./clawbox chat --config '$W/ours.config' ours <'$W/line' | grep -q 'bench answer'")
if command -v claude >/dev/null; then
	scenario cc Bash '{"command": "echo hi"}'
	daemon cc anthropic claude-code
	names+=("claude-code")
	cmds+=(::: sh -c "./clawbox chat --config '$W/cc.config' cc <'$W/line' | grep -q 'bench answer'")
else
	echo "claude-code: not installed (npm install --prefix $ENGINES @anthropic-ai/claude-code): left out"
fi
if command -v codex >/dev/null; then
	scenario cx exec_command '{"cmd": "echo hi"}'
	daemon cx openai codex
	names+=("codex")
	cmds+=(::: sh -c "./clawbox chat --config '$W/cx.config' cx <'$W/line' | grep -q 'bench answer'")
else
	echo "codex: not installed (npm install --prefix $ENGINES @openai/codex): left out"
fi
printf 'do the task\n' >"$W/line"
mapfile -t results < <(build/bench/spawn-time -n "$RUNS" -w "$WARM" -- "${cmds[@]}")

# Peak RSS: one ask per engine, under getrusage(RUSAGE_CHILDREN).
peak() { # ENGINE PROVIDER MODEL-NAME
	local engine=$1 provider=$2 name=$3
	mkdir -p "$W/rss-$name"
	python3 - "$engine" "$provider" "$(cat "$W/$name.mport")" "$W/rss-$name" <<'PY'
import resource, subprocess, sys
engine, provider, port, ws = sys.argv[1:]
env = {"PATH": __import__("os").environ["PATH"], "HOME": ws,
       "ANTHROPIC_API_KEY": "sk-ant-bench", "OPENAI_API_KEY": "sk-bench"}
args = ["./clawbox", "ask", "--provider", provider, "--base-url", "http://127.0.0.1:" + port,
        "--workspace", ws, "--session", ws + "/s", "--model",
        "gpt-4.1" if provider == "openai" else "claude-fake-1", "do the task"]
if engine != "clawbox":
    args[2:2] = ["--engine", engine]
subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PY
}
echo
echo "a message through clawbox serve, one shell tool call then the answer; the fake model answers at once"
printf "%-22s %9s %9s %16s\n" engine median p95 "peak RSS (KiB)" # of the largest process: the engine (ours: the proxy)
i=0
for n in "${names[@]}"; do
	read -r med p95 <<<"${results[$i]}"
	case $n in
	claude-code) r=$(peak claude-code anthropic cc) ;;
	codex) r=$(peak codex openai cx) ;;
	*) r=$(peak clawbox anthropic ours) ;;
	esac
	printf '%-22s %6s ms %6s ms %16s\n' "$n" "$med" "$p95" "$r"
	i=$((i + 1))
done
