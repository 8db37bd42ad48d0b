#!/bin/bash
# test-escape.sh: the probe tries every escape from inside a sandbox, with traps laid on the
# host side: a secret in the caller's environment, an fd left open, an abstract unix socket and
# a loopback TCP port listening, a setuid-root binary, symlinks pointing out of a mount.
. "$(dirname "$0")/lib.sh"

lay_escape_traps

# A setuid-root copy of the probe (as root only: nobody else can make one).
SUID_ARGS=()
if is_root; then
	mkdir -p "$WORK/suid"
	cp "$PROBE" "$WORK/suid/probe-suid"
	chown root:root "$WORK/suid/probe-suid"
	chmod 4755 "$WORK/suid/probe-suid"
	chmod 755 "$WORK/suid"
	SUID_ARGS=(--mount "$WORK/suid:/suid" )
fi

# Host listeners the sandbox must not reach.
ABSTRACT="clawbox-test-$$"
"$PROBE" listen "$ABSTRACT" >"$WORK/port" &
LISTENER=$!
wait_until 5 test -s "$WORK/port"
PORT=$(cat "$WORK/port")
cleanup() { kill "$LISTENER" 2>/dev/null; cleanup_work; }
trap cleanup EXIT

args=(escape --needle /needle/needle --leaked-fd 7 --abstract "$ABSTRACT" --tcp "$PORT"
	--host-pid $$ --ro /data/ro --rw /data/rw --links /links)
is_root && args+=(--suid /suid/probe-suid)

# The secret sits in the caller's environment; fd 7 is a file the caller left open.
CLAWBOX_TEST_SECRET="$SECRET" "$CLAWBOX" run \
	--mount "$PROBE_DIR:/probe" --mount "$WORK/needle:/needle" \
	--mount "$WORK/ro:/data/ro" --mount "$WORK/rw:/data/rw:rw" --mount "$WORK/links:/links" \
	"${SUID_ARGS[@]}" -- /probe/probe "${args[@]}" \
	>"$WORK/tap" 2>"$WORK/err" 7<"$WORK/outside-secret" </dev/null
relay_tap escape "$WORK/tap" $?

check_clean "nothing left behind after the escape run"

# /tmp is a fresh tmpfs in every sandbox.
"$CLAWBOX" run --mount "$PROBE_DIR:/probe" -- /probe/probe tmp-mark
"$CLAWBOX" run --mount "$PROBE_DIR:/probe" -- /probe/probe tmp-empty >"$WORK/tap" 2>"$WORK/err"
relay_tap tmp "$WORK/tap" $?

# Every namespace differs from the host's (user, mnt, pid, net, uts, ipc, cgroup, time).
"$CLAWBOX" run --mount "$PROBE_DIR:/probe" -- /probe/probe ns >"$WORK/ns-in" 2>"$WORK/err"
"$PROBE" ns >"$WORK/ns-out"
while read -r ns id; do
	host=$(awk -v n="$ns" '$1 == n { print $2 }' "$WORK/ns-out")
	if [ -n "$id" ] && [ "$id" != "$host" ]; then
		ok "own $ns namespace ($id)"
	else
		not_ok "own $ns namespace (inside '$id', host '$host')"
	fi
done <"$WORK/ns-in"
check "8 namespaces listed" test "$(wc -l <"$WORK/ns-in")" = 8

# The same escapes from a normal user's launch (no root anywhere, rlimit fallback here).
if is_root; then
	NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
	chmod 755 "$TOP" 2>/dev/null
	"${NOBODY[@]}" "$CLAWBOX" run --mount "$PROBE_DIR:/probe" --mount "$WORK/ro:/data/ro" \
		-- /probe/probe escape --ro /data/ro --host-pid $$ --tcp "$PORT" \
		--abstract "$ABSTRACT" >"$WORK/tap" 2>"$WORK/err" </dev/null
	relay_tap unprivileged "$WORK/tap" $?
	check "unprivileged launch warns once about the rlimit fallback" \
		grep -q "rlimits" "$WORK/err"
	check_clean "nothing left behind after the unprivileged run"
fi

done_testing
