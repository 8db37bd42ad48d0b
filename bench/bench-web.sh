#!/bin/bash
# bench-web.sh: the web app. Its size as the browser loads it (gzip -9 of each embedded file;
# budget: under 150 KB for everything the page loads), page load to interactive on loopback
# (Playwright timing in Debian's chromium, median of 10 fresh loads: navigation start to the
# app's first view drawn with the group's history), and the daemon's resident memory with 5
# pages open, following their groups while replies stream in.
set -eu
cd "$(dirname "$0")/.."
W=$(mktemp -d /tmp/clawbox-bench-web.XXXXXX)
chmod 755 "$W"
MPID= SPID=
trap 'kill $MPID $SPID 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT

NPMDIR=build/test-npm # playwright-core, as test-web.sh installs it
if [ ! -f "$NPMDIR/node_modules/.package-lock.json" ]; then
	mkdir -p "$NPMDIR"
	cp tests/web/package.json tests/web/package-lock.json "$NPMDIR/"
	(cd "$NPMDIR" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null)
fi

total=0
for f in src/daemon/web/index.html build/web/app.js src/daemon/web/style.css; do
	raw=$(wc -c <"$f")
	gz=$(gzip -9c "$f" | wc -c)
	total=$((total + gz))
	printf 'web: %-28s %7d bytes, %6d gzipped\n' "$f" "$raw" "$gz"
done
printf 'web: everything the page loads: %d KB gzipped (budget 150 KB): %s\n' $((total / 1024)) \
	"$([ "$total" -lt $((150 * 1024)) ] && echo within || echo OVER)"

# Replies of 64 KiB, streamed by the fake model, for the 5 pages to follow.
python3 -c 'import json; print(json.dumps({"turns": [], "default": {"reply": {"text": ("streamed words " * 4400)[:65536]}}}))' >"$W/scenario.json"
build/tests/fake-model --scenario "$W/scenario.json" --log /dev/null --port-file "$W/port" &
MPID=$!
for _ in $(seq 50); do [ -s "$W/port" ] && break; sleep 0.05; done
PORT=$((20000 + RANDOM % 20000))
{
	printf '{"data_dir": "%s/data", "listen": "127.0.0.1:%s", "max_concurrent": 5,\n' "$W" "$PORT"
	printf ' "model": {"base_url": "http://127.0.0.1:%s"},\n "groups": [{"id": "main", "main": true}' "$(cat "$W/port")"
	for g in 1 2 3 4 5; do printf ', {"id": "g%s"}' "$g"; done
	printf ']}\n'
} >"$W/config.json"
./clawbox serve --config "$W/config.json" >"$W/serve.log" 2>&1 &
SPID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null && break; sleep 0.05; done
# Some history to draw: 20 answered messages in main.
for i in $(seq 20); do
	curl -s -o /dev/null -X POST -H "Authorization: Bearer $(cat "$W/data/api-token")" \
		--data "{\"text\": \"message $i\"}" "http://127.0.0.1:$PORT/api/v1/groups/main/messages"
done
for _ in $(seq 600); do
	n=$(curl -s -H "Authorization: Bearer $(cat "$W/data/api-token")" "http://127.0.0.1:$PORT/api/v1/groups/main/messages" | grep -o '"direction":"out"' | wc -l)
	[ "$n" -ge 20 ] && break
	sleep 0.1
done
URL=http://127.0.0.1:$PORT TOKEN=$(cat "$W/data/api-token") SPID=$SPID CHROMIUM=$(command -v chromium) \
	TEST_NPM=$PWD/$NPMDIR node bench/bench-web.mjs
