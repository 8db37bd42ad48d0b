#!/bin/bash
# test-contract.sh: the `clawbox run` command contract: help and version, exit statuses,
# one clear line for every bad option, the environment, mounts, --workdir, --rootfs, stdio,
# signal forwarding.
. "$(dirname "$0")/lib.sh"

P=(--mount "$PROBE_DIR:/probe")

# --help / --version / dispatch
run_cb --help
check "clawbox --help lists run" grep -q "run" "$WORK/out"
run_cb --version
check "clawbox --version prints a version" grep -Eq '^clawbox [0-9]+\.[0-9]+' "$WORK/out"
run_cb run --help
check "clawbox run --help documents the options and exit statuses" \
	sh -c "[ $RC = 0 ] && grep -q -- '--mount HOST:PATH' '$WORK/out' && grep -q '124' '$WORK/out'"
expect_rc 2 "unknown subcommand" frobnicate
check "unknown subcommand: one line" test "$(wc -l <"$WORK/err")" = 1

# Exit statuses
expect_rc 0 "true exits 0" run -- true
expect_rc 42 "the command's own status passes through" run -- sh -c 'exit 42'
expect_rc 143 "death by SIGTERM is 128+15" run -- sh -c 'kill -TERM $$'
expect_rc 137 "death by SIGKILL is 128+9" run -- sh -c 'kill -KILL $$'
expect_rc 127 "command not found" run -- no-such-command-anywhere
check "not found: one line naming it" sh -c "one_error_line() { :; }; grep -q 'no-such-command-anywhere: command not found' '$WORK/err' && [ \$(wc -l <'$WORK/err') = 1 ]"
expect_rc 127 "absolute path not found" run -- /nonexistent/bin
mkdir -p "$WORK/noexec" && echo 'echo hi' >"$WORK/noexec/script" && chmod 644 "$WORK/noexec/script"
chmod 755 "$WORK/noexec"
expect_rc 126 "a file that is not executable" run --mount "$WORK/noexec:/x" -- /x/script
expect_rc 126 "a folder as the command" run -- /usr

# Bad input: exit 125, exactly one line on stderr, nothing on stdout.
bad() {
	local desc=$1
	shift
	expect_rc 125 "bad input: $desc" run "$@"
	check "bad input: $desc: one clear line" one_error_line
}
bad "no command"
bad "unknown option" --frob -- true
bad "option missing its value" --memory
bad "--memory abc" --memory abc -- true
bad "--memory 0" --memory 0 -- true
bad "--memory 1K (too small)" --memory 1K -- true
bad "--memory overflow" --memory 99999999999999999999G -- true
bad "--pids 0" --pids 0 -- true
bad "--pids -1" --pids -1 -- true
bad "--cpus x" --cpus x -- true
bad "--cpus 0" --cpus 0 -- true
bad "--cpus 1.2345" --cpus 1.2345 -- true
bad "--timeout 0" --timeout 0 -- true
bad "--timeout -5" --timeout -5 -- true
bad "--net host" --net host -- true
bad "--net with an unknown mode" --net bridge -- true
bad "--env without =" --env FOO -- true
bad "--env bad name" --env 1FOO=x -- true
bad "--mount without a path" --mount /tmp -- true
bad "--mount relative path" --mount /tmp:relative -- true
bad "--mount onto /" --mount /tmp:/ -- true
bad "--mount with .." --mount /tmp:/a/../b -- true
bad "--mount onto /proc" --mount /tmp:/proc/x -- true
bad "--mount onto /dev" --mount /tmp:/dev -- true
bad "--mount bad mode" --mount /tmp:/x:rx -- true
bad "--mount missing source" --mount /nonexistent-dir:/x -- true
bad "--mount twice onto one path" --mount /tmp:/x --mount /usr:/x -- true
bad "--mount onto a read-only system folder" --mount "$WORK/noexec:/usr/clawbox-new" -- true
bad "--workdir relative" --workdir rel -- true
bad "--workdir missing" --workdir /nonexistent -- true
bad "--rootfs missing" --rootfs /nonexistent -- true
bad "--rootfs a file" --rootfs /etc/hostname -- true
bad "empty command" -- ""
# The lines for two common mistakes say what is wrong and name the command the user ran.
for m in wr RW; do
	run_cb run --mount "/tmp:/x:$m" -- true
	check "--mount /tmp:/x:$m: the mode is called wrong, with the valid ones (exit $RC)" \
		sh -c "[ $RC = 125 ] && grep -q '^clawbox run: --mount /tmp:/x:$m: the mode .* must be ro or rw' '$WORK/err'"
done
run_cb run --allow http://example.org -- true
check "--allow URL: 'HOST[:PORT], not a URL', from clawbox run, not the proxy (exit $RC)" \
	sh -c "[ $RC = 125 ] && [ \"\$(cat '$WORK/err')\" = 'clawbox run: --allow http://example.org: HOST[:PORT], not a URL' ]"
run_cb ask --base-url http://127.0.0.1:9 --allow https://example.org/x hello
check "the same from clawbox ask (exit $RC)" \
	sh -c "[ $RC != 0 ] && [ \"\$(cat '$WORK/err')\" = 'clawbox ask: --allow https://example.org/x: HOST[:PORT], not a URL' ]"
check_clean "nothing left behind after bad input"

# Environment: empty but PATH, HOME, LANG, TERM (and --env); nothing of the caller's.
CLAWBOX_CALLER_SECRET=hunter2 run_cb run -- /usr/bin/env
check "environment is PATH, HOME, LANG, TERM only" \
	test "$(cut -d= -f1 "$WORK/out" | sort | tr '\n' ' ')" = "HOME LANG PATH TERM "
check "caller's variables do not pass" sh -c "! grep -q hunter2 '$WORK/out'"
check "HOME is /home/user" grep -qx 'HOME=/home/user' "$WORK/out"
run_cb run --env FOO=bar --env FOO=baz --env 'PATH=/bin' -- /usr/bin/env
check "--env sets, later wins, and may replace PATH" \
	sh -c "grep -qx FOO=baz '$WORK/out' && grep -qx PATH=/bin '$WORK/out' && [ \$(grep -c ^FOO= '$WORK/out') = 1 ]"

# Working folder, stdio, large output
run_cb run -- pwd
check "default working folder is home" grep -qx /home/user "$WORK/out"
run_cb run --workdir /usr/share -- pwd
check "--workdir" grep -qx /usr/share "$WORK/out"
echo "through stdin" | "$CLAWBOX" run -- cat >"$WORK/out"
check "stdin passes through" grep -qx "through stdin" "$WORK/out"
"$CLAWBOX" run -- sh -c 'head -c 3000000 /dev/zero' | wc -c >"$WORK/out"
check "3 MB of output arrive whole" grep -qx 3000000 "$WORK/out"
# Reopening an inherited stdout file by /dev/stdout needs a landlock rule for that file (DAC
# must allow it too: as root, the file must belong to the sandbox's host uid).
: >"$WORK/stdout-file"
is_root && chown "$SANDBOX_HOST_UID" "$WORK/stdout-file"
"$CLAWBOX" run -- sh -c 'echo reopened >/dev/stdout' >>"$WORK/stdout-file" 2>"$WORK/err"
check "/dev/stdout reopens (landlock allows the inherited file)" grep -qx reopened "$WORK/stdout-file"
# A pipe belongs to whoever made it: launched by a normal user, their own pipes reopen (as root,
# the root-owned pipe is closed to the sandbox's uid by plain file permissions).
AS_USER=()
is_root && AS_USER=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
"${AS_USER[@]}" sh -c "'$CLAWBOX' run -- sh -c 'echo to-stderr >/dev/stderr' 2>&1 | cat" >"$WORK/out"
check "/dev/stderr reopens on the caller's own pipe" grep -qx to-stderr "$WORK/out"
# ...but stdin from a file cannot be reopened for writing.
echo "keep" >"$WORK/stdin-file"
is_root && chown "$SANDBOX_HOST_UID" "$WORK/stdin-file"
"$CLAWBOX" run -- sh -c 'echo overwritten >/dev/stdin' <"$WORK/stdin-file" >/dev/null 2>&1
check "stdin from a file cannot be reopened for writing" grep -qx keep "$WORK/stdin-file"

# Mounts: read-only by default, :rw, a single file, a symlinked source, nested mounts.
mkdir -p "$WORK/m/ro" "$WORK/m/rw" "$WORK/m/nested"
echo "hello" >"$WORK/m/ro/greeting"
echo "single" >"$WORK/m/one-file"
echo "inner" >"$WORK/m/nested/inner"
chmod -R a+rX "$WORK/m"
is_root && chown "$SANDBOX_HOST_UID" "$WORK/m/rw"
ln -s "$WORK/m/ro" "$WORK/m/link-to-ro"
run_cb run --mount "$WORK/m/ro:/data" -- cat /data/greeting
check "read-only mount is readable" grep -qx hello "$WORK/out"
expect_rc 1 "read-only mount refuses writes" run --mount "$WORK/m/ro:/data" -- touch /data/new
expect_rc 0 "explicit :ro mount" run --mount "$WORK/m/ro:/data:ro" -- test -f /data/greeting
expect_rc 0 ":rw mount takes writes" run --mount "$WORK/m/rw:/out:rw" -- sh -c 'echo written >/out/result'
check ":rw writes reach the host" grep -qx written "$WORK/m/rw/result"
if is_root; then
	check ":rw files belong to the sandbox's host uid" test "$(stat -c %u "$WORK/m/rw/result")" = "$SANDBOX_HOST_UID"
fi
run_cb run --mount "$WORK/m/one-file:/etc/one-file" -- cat /etc/one-file
check "a single file can be mounted" grep -qx single "$WORK/out"
run_cb run --mount "$WORK/m/link-to-ro:/data" -- cat /data/greeting
check "a symlinked source is resolved once, to its target" grep -qx hello "$WORK/out"
run_cb run --mount "$WORK/m/rw:/w:rw" --mount "$WORK/m/nested:/w/sub" -- cat /w/sub/inner
check "nested mounts (parent first, whatever the order given)" grep -qx inner "$WORK/out"
run_cb run --mount "$WORK/m/nested:/w/sub" --mount "$WORK/m/rw:/w:rw" -- cat /w/sub/inner
check "nested mounts given child first" grep -qx inner "$WORK/out"
# A symlink inside a writable mount must not redirect a later mount point out of it.
is_root && mkdir -p "$WORK/m/evil" && chown "$SANDBOX_HOST_UID" "$WORK/m/evil"
ln -s /etc "$WORK/m/evil/sub"
expect_rc 125 "a mount point through a symlink is refused" \
	run --mount "$WORK/m/evil:/w:rw" --mount "$WORK/m/nested:/w/sub/x" -- true
check "refusal names the mount point" grep -q "/w/sub/x" "$WORK/err"

# A FIFO planted (as by an earlier sandbox) where a file mount point goes must not hang the
# set-up: it is refused at once.
mkdir -p "$WORK/m/fifo"
mkfifo "$WORK/m/fifo/target"
is_root && chown -R "$SANDBOX_HOST_UID" "$WORK/m/fifo"
start=$(date +%s)
timeout 20 "$CLAWBOX" run --mount "$WORK/m/fifo:/w:rw" --mount "$WORK/m/one-file:/w/target" \
	-- true >"$WORK/out" 2>"$WORK/err" </dev/null
rc=$?
check "a FIFO as a file mount point is refused, not waited on (exit $rc in $(($(date +%s) - start)) s)" \
	sh -c "[ $rc = 125 ] && [ $(($(date +%s) - start)) -lt 5 ]"

# --rootfs: a folder with just the static probe, no libc, no /usr.
mkdir -p "$WORK/rootfs/bin" "$WORK/rootfs/etc"
cp "$PROBE" "$WORK/rootfs/bin/probe"
echo "from-rootfs" >"$WORK/rootfs/etc/marker"
chmod -R a+rX "$WORK/rootfs"
expect_rc 0 "--rootfs runs a command from the given root" run --rootfs "$WORK/rootfs" -- /bin/probe exists /etc/marker
expect_rc 1 "--rootfs hides the host's system folders" run --rootfs "$WORK/rootfs" -- /bin/probe exists /usr/bin
expect_rc 0 "--rootfs still gets /proc, /dev and /tmp" run --rootfs "$WORK/rootfs" -- /bin/probe exists /dev/null

# Init reaps orphans: a grandchild that exits after its parent leaves no zombie behind.
run_cb run -- sh -c '(sleep 0.1 &); sleep 0.6; cat /proc/[0-9]*/stat'
check "init reaps orphaned children (no zombie inside)" \
	sh -c "[ $RC = 0 ] && ! awk '{ print \$3 }' '$WORK/out' | grep -qx Z"
run_cb run -- sh -c 'cat /proc/1/comm'
check "the command's parent is the sandbox init" grep -qx clawbox-init "$WORK/out"

# Signals reach the command; the launcher returns its status.
"$CLAWBOX" run -- sleep 30 &
pid=$!
wait_until 5 sh -c "ps -eo stat=,comm= | awk '\$2 == \"clawbox-init\" && \$1 !~ /^Z/' | grep -q ."
sleep 0.2
kill -TERM $pid
wait $pid
rc=$?
check "SIGTERM to clawbox run reaches the command (exit $rc)" test $rc = 143

# SIGTERM at any moment, set-up included, ends it at once (during set-up there is no command to
# pass it to, and a pid-namespace init would ignore it). Delays from 0 to ~10 ms land some of
# the signals in the set-up.
slow=0
for delay in 0 0.001 0.002 0.003 0.004 0.005 0.006 0.008 0.010 0.012; do
	start=$(date +%s%N)
	"$CLAWBOX" run -- sleep 30 >/dev/null 2>&1 &
	pid=$!
	sleep $delay
	kill -TERM $pid
	wait $pid
	rc=$?
	ms=$((($(date +%s%N) - start) / 1000000))
	if [ $rc != 143 ] || [ $ms -gt 3000 ]; then slow=$((slow + 1)); echo "# delay $delay: exit $rc after $ms ms"; fi
done
check "SIGTERM at any moment ends clawbox run promptly with 143 ($slow of 10 did not)" test $slow = 0
check_clean "nothing left behind after the contract tests"

done_testing
