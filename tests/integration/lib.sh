# shellcheck shell=bash
# lib.sh: TAP helpers for the integration tests, sourced by each tests/integration/test-*.sh.
# Tests drive the real ./clawbox binary and the static probe (build/tests/probe).

set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
CLAWBOX=${CLAWBOX:-$TOP/clawbox}
PROBE=${PROBE:-$TOP/build/tests/probe}
HTTPD=${HTTPD:-$TOP/build/tests/httpd} # a loopback server that logs what it got
SANDBOX_HOST_UID=65533
T_NUM=0
T_FAILED=0

if [ ! -x "$CLAWBOX" ] || [ ! -x "$PROBE" ]; then
	echo "not ok 1 - $CLAWBOX or $PROBE is missing: run the tests with 'make check'"
	echo "1..1"
	exit 1
fi

WORK=$(mktemp -d /tmp/clawbox-test.XXXXXX)
chmod 755 "$WORK"
# At exit: the daemon (SPID), fake model (MPID) and fake Telegram (TPID) a test started, if any,
# then the work folder.
SPID= MPID= TPID=
cleanup_work() {
	local p
	[ -n "$SPID" ] && kill -9 "$SPID" 2>/dev/null
	for p in $MPID $TPID; do kill "$p" 2>/dev/null; done
	[ -n "$SPID$MPID$TPID" ] && wait 2>/dev/null
	[ -n "${KEEP_WORK:-}" ] && { echo "# kept $WORK"; return; }
	rm -rf "$WORK"
}
trap cleanup_work EXIT

ok() { T_NUM=$((T_NUM + 1)); echo "ok $T_NUM - $*"; }
not_ok() { T_NUM=$((T_NUM + 1)); T_FAILED=$((T_FAILED + 1)); echo "not ok $T_NUM - $*"; }

# check DESCRIPTION COMMAND...: ok when COMMAND succeeds.
check() {
	local desc=$1
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

# run_cb ARGS...: runs clawbox, stdout to $WORK/out, stderr to $WORK/err, status in $RC.
run_cb() {
	"$CLAWBOX" "$@" >"$WORK/out" 2>"$WORK/err" </dev/null
	RC=$?
}

# expect_rc WANT DESCRIPTION CLAWBOX-ARGS...
expect_rc() {
	local want=$1 desc=$2
	shift 2
	run_cb "$@"
	if [ "$RC" = "$want" ]; then
		ok "$desc (exit $RC)"
	else
		not_ok "$desc (exit $RC, want $want; stderr: $(head -c 300 "$WORK/err" | tr '\n' ' '))"
	fi
}

# One clear line on stderr, nothing on stdout.
one_error_line() {
	[ "$(wc -l <"$WORK/err")" = 1 ] && [ ! -s "$WORK/out" ]
}

# The probe, in a folder of its own that the sandbox user can read.
PROBE_DIR=$WORK/probe
mkdir -p "$PROBE_DIR"
cp "$PROBE" "$PROBE_DIR/probe"
chmod 755 "$PROBE_DIR" "$PROBE_DIR/probe"

# Forwards a probe's TAP lines into ours (renumbered); a probe that prints no plan or exits
# non-zero without a "not ok" line counts as one failure.
relay_tap() {
	local name=$1 file=$2 rc=$3 line bad=0
	while IFS= read -r line; do
		case "$line" in
		"ok "*) ok "$name: ${line#ok * - }" ;;
		"not ok "*) not_ok "$name: ${line#not ok * - }"; bad=1 ;;
		"#"*) echo "$line" ;;
		esac
	done <"$file"
	if ! grep -q '^1\.\.[0-9]' "$file"; then
		not_ok "$name: probe printed no plan (exit $rc): $(head -c 300 "$WORK/err" | tr '\n' ' ')"
	elif [ "$rc" != 0 ] && [ "$bad" = 0 ]; then
		not_ok "$name: probe exited $rc"
	fi
}

# Nothing of any sandbox left on the host: cgroups, running init processes, mounts. Says what it found
# (as a TAP comment) when something is left.
HOST_MOUNTS_BEFORE=$(wc -l </proc/self/mountinfo)
sandbox_cgroups() { ls -d /sys/fs/cgroup/*/clawbox-run-* /sys/fs/cgroup/clawbox-run-* 2>/dev/null; }
# What something else left before this file began (a run killed along with its watchdog) is
# not this file's doing: said once, then left out of the count.
CGROUPS_BEFORE=$(sandbox_cgroups)
[ -n "$CGROUPS_BEFORE" ] && echo "# sandbox cgroups left from before these tests: $(echo $CGROUPS_BEFORE)"
no_leftovers() {
	local cg procs mounts
	cg=$(sandbox_cgroups | grep -vxF -e "${CGROUPS_BEFORE:-/nothing}")
	# Running ones: a zombie whose launcher was SIGKILLed waits for the host's pid 1 to
	# reap it and holds nothing but its pid.
	procs=$(ps -eo pid=,stat=,comm= | awk '$3 == "clawbox-init" && $2 !~ /^Z/ { print $1 }')
	mounts=$(wc -l </proc/self/mountinfo)
	if [ -n "$cg" ] || [ -n "$procs" ] || [ "$mounts" != "$HOST_MOUNTS_BEFORE" ]; then
		LEFTOVER="cgroups: ${cg:-none}; clawbox-init: ${procs:-none}; mounts: $mounts (was $HOST_MOUNTS_BEFORE)"
		return 1
	fi
	return 0
}

# proxy_of LAUNCHER: the pid of the egress proxy serving LAUNCHER's sandbox: its child named
# clawbox-proxy once its clawbox-init exists. The first clawbox-proxy a run starts is the short
# `--check` pass over the options, gone a few ms later; a pgrep that finds that one finds
# nothing a moment after.
proxy_of() {
	local k init='' proxy=''
	for k in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		case "$(cat /proc/"$k"/comm 2>/dev/null)" in
		clawbox-init) init=$k ;;
		clawbox-proxy) proxy=$k ;;
		esac
	done
	[ -n "$init" ] && [ -n "$proxy" ] && echo "$proxy"
}

# lay_escape_traps: what the escape probe looks for on the host side (test-escape.sh, test-vm.sh):
# SECRET in a needle file and in a file outside every mount, a read-only and a writable folder,
# and symlinks that point out of their mount (absolute and relative, to a file and a folder).
lay_escape_traps() {
	SECRET="clawbox-secret-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	mkdir -p "$WORK/needle" "$WORK/ro" "$WORK/rw" "$WORK/links"
	printf '%s\n' "$SECRET" >"$WORK/needle/needle"
	printf 'outside %s\n' "$SECRET" >"$WORK/outside-secret"
	echo "read me" >"$WORK/ro/file"
	chmod -R a+rX "$WORK/needle" "$WORK/ro" "$WORK/links"
	# As root, the sandbox runs as a dedicated uid: a writable mount must be writable by it.
	if is_root; then chown "$SANDBOX_HOST_UID:$SANDBOX_HOST_UID" "$WORK/rw"; fi
	ln -s "$WORK/outside-secret" "$WORK/links/abs"
	ln -s ../outside-secret "$WORK/links/rel"
	ln -s "$WORK" "$WORK/links/dir-abs"
	ln -s .. "$WORK/links/dir-rel"
}

# check_clean DESCRIPTION: no_leftovers, reporting what was left.
check_clean() {
	if no_leftovers; then ok "$1"; else not_ok "$1 ($LEFTOVER)"; fi
}

# wait_until SECONDS COMMAND...: polls every 50 ms.
wait_until() {
	local limit=$(($1 * 20)) i=0
	shift
	while ! "$@"; do
		i=$((i + 1))
		[ $i -ge $limit ] && return 1
		sleep 0.05
	done
}

done_testing() {
	echo "1..$T_NUM"
	[ "$T_FAILED" = 0 ]
}

is_root() { [ "$(id -u)" = 0 ]; }
