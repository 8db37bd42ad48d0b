#!/bin/bash
# test-vm.sh: the first step of the outer layer (issue 6). The guest (Debian's kernel and an
# initramfs whose /init is clawbox) boots under qemu -M microvm within a deadline, loads its
# drivers, runs a command in a fresh sandbox made by the same sandbox code as on the host
# (namespaces, cgroup v2, seccomp, landlock, pivot_root), passes the command's exit status out,
# and powers off: no qemu process is left. Its kernel is not the host's.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm-lib.sh"

if [ ! -s "$VM_DIR/vmlinux" ] || ! command -v qemu-system-x86_64 >/dev/null; then
	not_ok "the guest image or qemu is missing (make check builds it; scripts/deps.sh test installs qemu-system-x86 and linux-image-amd64)"
	done_testing
	exit 1
fi

start=$(date +%s%N)
# shellcheck disable=SC2046 # vm_qemu prints the command line, one word each
vm_run "$WORK/console" 60 $(vm_qemu "$VM_DIR") -append "$VM_APPEND clawbox.run=/init"
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
check "the VM boots, runs and powers off within the deadline (qemu exit $rc, $ms ms, boot $VM_ATTEMPTS)" test "$rc" = 0
check "the guest init is clawbox, and ready" grep -q 'clawbox-guest: ready kernel=' "$WORK/console"
guest_kernel=$(sed -n 's/.*clawbox-guest: ready kernel=\([^ ]*\).*/\1/p' "$WORK/console" | tr -d '\r')
check "the guest's kernel ($guest_kernel) is not the host's ($(uname -r))" \
	sh -c "[ -n '$guest_kernel' ] && [ '$guest_kernel' != '$(uname -r)' ]"
check "its virtio and 9p drivers load" sh -c "! grep -q 'cannot load' '$WORK/console'"
check "the command ran in a sandbox in the guest and its status came out (2: usage)" \
	sh -c "grep -q 'usage: clawbox' '$WORK/console' && grep -q 'clawbox-guest: exit 2' '$WORK/console'"
check "no qemu process is left" sh -c "! pgrep -f 'qemu-system-x86_6[4] -M microvm' >/dev/null"

# Two layers deep: qemu itself confined in a host sandbox (its own namespaces, no network
# device, the seccomp allowlist, landlock, cgroup limits, nothing of the host but the system
# folders and the image, read-only), and the guest still makes its sandbox inside.
mkdir -p "$WORK/vm"
cp "$VM_DIR/vmlinux" "$VM_DIR/initramfs.cpio" "$WORK/vm/"
chmod 755 "$WORK/vm"
chmod 644 "$WORK/vm"/*
# shellcheck disable=SC2046 # as above
vm_run "$WORK/console2" 60 "$CLAWBOX" run --memory 1G --timeout 60 --mount "$WORK/vm:/vm" -- \
	$(vm_qemu /vm) -append "$VM_APPEND clawbox.run=/init"
rc=$?
check "qemu runs confined in a host sandbox (exit $rc)" test "$rc" = 0
check "and the guest's sandbox runs inside it: two layers deep" \
	sh -c "grep -q 'usage: clawbox' '$WORK/console2' && grep -q 'clawbox-guest: exit 2' '$WORK/console2'"
check_clean "nothing of either layer is left"

# clawbox run --vm: the contract, with the sandbox inside the VM.
vmrun() { # ARGS...: clawbox run --vm, out/err/RC as run_cb
	"$CLAWBOX" run --vm --vm-image "$VM_DIR" "$@" >"$WORK/out" 2>"$WORK/err" </dev/null
	RC=$?
}
vmrun -- sh -c 'echo to-stdout; echo to-stderr >&2; uname -r; id -u; exit 3'
check "run --vm: the command's status comes out (exit $RC)" test "$RC" = 3
check "its stdout and stderr, apart" \
	sh -c "grep -q '^to-stdout$' '$WORK/out' && grep -q '^to-stderr$' '$WORK/err' && ! grep -q to-stderr '$WORK/out'"
check "it ran on the guest's kernel, as uid 1000" \
	sh -c "grep -q '^$guest_kernel$' '$WORK/out' && grep -q '^1000$' '$WORK/out'"
vmrun -- sh -c 'grep -E "^(CapEff|NoNewPrivs|Seccomp):" /proc/self/status; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "'
check "inside: no capabilities, no_new_privs, seccomp filter, loopback only" \
	sh -c "grep -q 'CapEff:.0000000000000000' '$WORK/out' && grep -q 'NoNewPrivs:.1' '$WORK/out' && grep -q 'Seccomp:.2' '$WORK/out' && [ \"\$(tail -n 1 '$WORK/out')\" = lo ]"
echo "piped in" | "$CLAWBOX" run --vm --vm-image "$VM_DIR" -- sh -c 'cat; echo end' >"$WORK/out" 2>"$WORK/err"
check "run --vm: the command reads the caller's stdin ($?)" \
	test "$(cat "$WORK/out")" = "$(printf 'piped in\nend')"
mkfifo "$WORK/held"
sleep 60 >"$WORK/held" &
HOLDER=$!
t0=$(date +%s)
"$CLAWBOX" run --vm --vm-image "$VM_DIR" -- echo done-early <"$WORK/held" >"$WORK/out" 2>"$WORK/err"
RC=$?
check "a stdin still open does not hold the run once the command ended ($RC, $(($(date +%s) - t0)) s)" \
	sh -c "[ $RC = 0 ] && grep -q '^done-early$' '$WORK/out' && [ $(($(date +%s) - t0)) -lt 30 ]"
kill $HOLDER 2>/dev/null
vmrun -- sh -c 'head -c 20000000 /dev/urandom >/tmp/r; sha256sum </tmp/r >&2; cat /tmp/r'
check "20 MB of output arrive whole through the VM's port (exit $RC)" \
	sh -c "[ $RC = 0 ] && [ \"\$(sha256sum <'$WORK/out' | cut -d' ' -f1)\" = \"\$(cut -d' ' -f1 <'$WORK/err')\" ] && [ \$(stat -c %s '$WORK/out') = 20000000 ]"
vmrun -- no-such-command
check "a missing command: 127 (exit $RC)" test "$RC" = 127
vmrun --timeout 2 -- sleep 30
check "--timeout: 124 (exit $RC)" test "$RC" = 124
vmrun -- sh -c 'kill -9 $$'
check "killed by a signal: 128+9 (exit $RC)" test "$RC" = 137
# --mount: each folder a 9p export of its own, read-only unless :rw, at both layers.
mkdir -p "$WORK/share-ro" "$WORK/share-rw"
echo shared-content >"$WORK/share-ro/in.txt"
chmod -R a+rX "$WORK/share-ro"
is_root && chown "$SANDBOX_HOST_UID" "$WORK/share-rw"
vmrun --mount "$WORK/share-ro:/data" --mount "$WORK/share-rw:/out:rw" -- sh -c \
	'cat /data/in.txt; echo written >/out/new.txt && echo rw-ok; echo x >/data/nope 2>/dev/null || echo ro-refused'
check "--mount: a read-only share is readable (exit $RC)" grep -q '^shared-content$' "$WORK/out"
check "and refuses writes" sh -c "grep -q '^ro-refused$' '$WORK/out' && [ ! -e '$WORK/share-ro/nope' ]"
check "a :rw share's writes land on the host" \
	sh -c "grep -q '^rw-ok$' '$WORK/out' && [ \"\$(cat '$WORK/share-rw/new.txt')\" = written ]"
echo beside >"$WORK/share-ro/beside.txt"
echo file-rw >"$WORK/share-rw/one.txt"
is_root && chown "$SANDBOX_HOST_UID" "$WORK/share-rw/one.txt"
vmrun --mount "$WORK/share-ro/in.txt:/in.txt" --mount "$WORK/share-rw/one.txt:/one.txt:rw" -- \
	sh -c 'cat /in.txt; echo appended >>/one.txt && echo file-rw-ok'
check "--vm: a file mount shows the file (exit $RC)" sh -c "[ $RC = 0 ] && grep -q '^shared-content$' '$WORK/out'"
check "a :rw file mount's writes land in the host's file" \
	sh -c "grep -q '^file-rw-ok$' '$WORK/out' && [ \"\$(tail -1 '$WORK/share-rw/one.txt')\" = appended ]"
vmrun --mount "$WORK/share-ro/in.txt:/in.txt" -- sh -c 'ls /in.txt; cat /beside.txt 2>/dev/null; echo done'
check "and nothing beside it reaches the sandbox" sh -c "! grep -q beside '$WORK/out' && grep -q '^done$' '$WORK/out'"
mkfifo "$WORK/fifo"
vmrun --mount "$WORK/fifo:/n" -- true
check "a mount that is neither folder nor file: 125, one line (exit $RC)" \
	sh -c "[ $RC = 125 ] && [ \$(wc -l <'$WORK/err') = 1 ]"
# The accelerator: KVM where it boots the guest, else TCG, found out once and remembered. A
# device node that is no KVM stands in for a KVM that cannot run the guest (as on these
# machines, where a real one hangs until the deadline).
mknod "$WORK/notkvm" c 1 3 && chmod 666 "$WORK/notkvm"
mkdir -p "$WORK/kvmhome"
kvmrun() { HOME=$WORK/kvmhome CLAWBOX_VM_KVM_DEVICE=$WORK/notkvm vmrun "$@"; }
kvmrun -- echo on-tcg
check "auto: a KVM that cannot boot the guest falls back to TCG, and says so (exit $RC)" \
	sh -c "[ $RC = 0 ] && grep -q '^on-tcg$' '$WORK/out' && grep -q 'did not boot the guest.*using TCG, as remembered in' '$WORK/err'"
check "the fallback is remembered for this host kernel" \
	grep -q "^tcg $(uname -r) $WORK/notkvm$" "$WORK/kvmhome/.cache/clawbox/vm-accel"
kvmrun -- echo again
check "the next run goes straight to TCG, quietly (exit $RC)" \
	sh -c "[ $RC = 0 ] && grep -q '^again$' '$WORK/out' && [ ! -s '$WORK/err' ]"
kvmrun --vm-accel kvm -- true
check "--vm-accel kvm: KVM or an error, one line, 125 (exit $RC)" \
	sh -c "[ $RC = 125 ] && [ \$(wc -l <'$WORK/err') = 1 ] && grep -q 'vm-accel kvm: qemu ended at once' '$WORK/err'"
chmod 660 "$WORK/notkvm"
kvmrun --vm-accel kvm -- true
check "a KVM device qemu's sandbox user cannot open: said plainly (exit $RC)" \
	sh -c "[ $RC = 125 ] && grep -q 'not open to qemu' '$WORK/err'"
vmrun --vm-accel fast -- true
check "--vm-accel fast: a usage error naming the choices (exit $RC)" grep -q 'expected auto, kvm or tcg' "$WORK/err"
"$CLAWBOX" run --vm --vm-image "$WORK/nowhere" -- true >"$WORK/out" 2>"$WORK/err"
RC=$?
check "no guest image: 125 and how to build one (exit $RC)" \
	sh -c "[ $RC = 125 ] && grep -q 'make guest' '$WORK/err'"
# --debug as root: the guest's console on stderr (before: qemu's sandbox user could not open
# -serial file:/dev/stderr again, "Permission denied", and the run failed with 125).
vmrun --debug -- echo debug-ran
check "run --vm --debug: runs, with the guest's console on stderr (exit $RC)" \
	sh -c "[ $RC = 0 ] && grep -q '^debug-ran$' '$WORK/out' && grep -q 'clawbox-guest: ready kernel=' '$WORK/err' && ! grep -q 'Permission denied' '$WORK/err'"
check "run --vm --debug says it is booting the VM, and with which accelerator" \
	grep -q -- '--vm: booting the VM (tcg, up to [0-9.]* s)\.\.\.' "$WORK/err"
script -qec "'$CLAWBOX' run --vm --vm-image '$VM_DIR' -- true" /dev/null >"$WORK/tty.out" 2>&1 </dev/null
check "on a terminal, run --vm says 'booting the VM (tcg...)...' without --debug" \
	grep -q -- '--vm: booting the VM (tcg' "$WORK/tty.out"
vmrun -- true
cp "$WORK/err" "$WORK/err.plain"
check "... and not when stderr is a file (a script's stderr is the command's own)" \
	sh -c "[ $RC = 0 ] && ! grep -q booting '$WORK/err.plain'"
# Each retry is said: with a deadline no boot can meet, all VM_ATTEMPTS boots time out. In a
# pid namespace of its own, so that what is left is ours to count (other qemus may run here).
unshare -pf --mount-proc sh -c "CLAWBOX_VM_READY_MS=50 '$CLAWBOX' run --vm --debug \
	--vm-image '$VM_DIR' -- true 2>'$WORK/err'; echo \$? >'$WORK/rc'; sleep 0.5;
	pgrep -c qemu-system >'$WORK/left'" >"$WORK/out" </dev/null
RC=$(cat "$WORK/rc")
check "boots that time out: each retry said, then 125 with why (exit $RC)" \
	sh -c "[ $RC = 125 ] && grep -q 'boot 1 of 3: the VM did not reach its guest agent in time; booting again' '$WORK/err' && grep -q 'boot 2 of 3: .*booting again' '$WORK/err' && ! grep -q 'boot 3 of 3: .*booting again' '$WORK/err' && grep -q 'did not reach its guest agent in time' '$WORK/err'"
check "and no qemu is left after the failed boots ($(cat "$WORK/left"))" \
	test "$(cat "$WORK/left")" = 0
# The escape probe of the sandbox issue, inside the VM's sandbox, with the same traps (but the
# leaked descriptor: none crosses into a VM).
lay_escape_traps
ABSTRACT="clawbox-vm-test-$$"
"$PROBE" listen "$ABSTRACT" >"$WORK/lport" &
LISTENER=$!
wait_until 5 test -s "$WORK/lport"
CLAWBOX_TEST_SECRET="$SECRET" "$CLAWBOX" run --vm --vm-image "$VM_DIR" \
	--mount "$PROBE_DIR:/probe" --mount "$WORK/needle:/needle" \
	--mount "$WORK/ro:/data/ro" --mount "$WORK/rw:/data/rw:rw" --mount "$WORK/links:/links" \
	-- /probe/probe escape --needle /needle/needle --abstract "$ABSTRACT" \
	--tcp "$(cat "$WORK/lport")" --host-pid $$ --ro /data/ro --rw /data/rw --links /links \
	>"$WORK/tap" 2>"$WORK/err" </dev/null
probe_rc=$?
kill "$LISTENER" 2>/dev/null
# Landlock's signal scoping (ABI 6) came with Linux 6.12; on an older guest kernel the command
# can signal the sandbox's init (which ignores what it does not forward). Said, not hidden: a
# guest kernel with the scoping makes the line count again.
old_kernel=$(printf '%s\n' "$guest_kernel" "6.12" | sort -V | head -1)
if [ "$old_kernel" != "6.12" ] && grep -q '^not ok .* - init cannot be signalled' "$WORK/tap"; then
	echo "# the guest's kernel $guest_kernel has no landlock signal scoping: $(grep '^not ok .* - init cannot be signalled' "$WORK/tap")"
	sed -i '/^not ok .* - init cannot be signalled/d' "$WORK/tap"
	[ "$probe_rc" = 1 ] && ! grep -q '^not ok' "$WORK/tap" && probe_rc=0
fi
relay_tap "vm escape" "$WORK/tap" "$probe_rc"

# --net proxy: the egress proxy stays on the host with the key; the guest relays the sandbox's
# connections to it over the VM's one port.
"$HTTPD" 127.0.0.1 0 vmweb "$WORK/web.log" >"$WORK/web.port" 2>/dev/null &
WEB_PID=$!
wait_until 5 test -s "$WORK/web.port"
WEB=$(cat "$WORK/web.port")
vmrun --allow "127.0.0.1:$WEB" -- sh -c "curl -s -S --max-time 20 --noproxy '' http://127.0.0.1:$WEB/from-vm; head -c 3000000 /dev/zero | curl -s -S --max-time 30 --noproxy '' --data-binary @- http://127.0.0.1:$WEB/upload"
check "--net proxy: curl in the VM's sandbox reaches an allowed host through the host's proxy (exit $RC)" \
	sh -c "[ $RC = 0 ] && grep -q 'server: vmweb' '$WORK/out' && grep -q 'request: [0-9]* /from-vm' '$WORK/web.log'"
check "3 MB up through the VM's port arrive whole" grep -q '^body-bytes: 3000000$' "$WORK/out"
vmrun --allow "127.0.0.1:$WEB" -- sh -c "for i in 1 2 3 4 5 6 7 8; do curl -s -S --max-time 20 --noproxy '' -o /dev/null -w '%{http_code}\\n' http://127.0.0.1:$WEB/par\$i & done; wait"
check "8 connections at once, all answered (exit $RC)" \
	sh -c "[ \$(grep -c '^200$' '$WORK/out') = 8 ]"
vmrun --allow "127.0.0.1:$WEB" -- sh -c "curl -s --max-time 10 --noproxy '' -o /dev/null -w '%{http_code} ' http://127.0.0.2:$WEB/ssrf-vm; curl -s --max-time 10 --noproxy '' -o /dev/null -w '%{http_code} ' http://127.0.0.1:1/port; curl -s --max-time 5 --noproxy '*' http://127.0.0.1:$WEB/direct; echo direct=\$?"
check "the proxy's rules hold for the VM: SSRF and other ports refused (403), no way around it ($(tr '\n' ' ' <"$WORK/out"))" \
	sh -c "grep -q '^403 403 direct=7$' '$WORK/out' && ! grep -q -e /ssrf-vm -e /direct '$WORK/web.log'"
VMKEY="sk-vm-test-$$-$RANDOM"
CB_VM_KEY="$VMKEY" "$CLAWBOX" run --vm --vm-image "$VM_DIR" --model-upstream "http://127.0.0.1:$WEB" \
	--model-key-env CB_VM_KEY -- sh -c 'curl -s -S --max-time 20 -H "x-api-key: made-up" -d "{}" http://model.clawbox.internal/v1/messages; env; cat /proc/*/environ /proc/*/cmdline 2>/dev/null; true' \
	>"$WORK/out" 2>"$WORK/err" </dev/null
RC=$?
check "the model API through the VM: the host's proxy adds the key (exit $RC)" \
	sh -c "[ $RC = 0 ] && grep -q '/v1/messages' '$WORK/web.log' && grep -qi 'x-api-key: $VMKEY' '$WORK/web.log'"
check "the key is nowhere in the VM's sandbox, nor what it made up sent on" \
	sh -c "! grep -q '$VMKEY' '$WORK/out' '$WORK/err' && ! grep -q made-up '$WORK/web.log'"
check "no proxy is left after the runs" sh -c "! pgrep -x clawbox-proxy >/dev/null"
kill "$WEB_PID" 2>/dev/null

# Ended from outside mid-run: SIGTERM to clawbox run --vm, and qemu killed under it.
mkdir -p "$WORK/flag"
is_root && chown "$SANDBOX_HOST_UID" "$WORK/flag"
vm_sleeper() { # starts a run that says so in $WORK/flag, then sleeps
	rm -f "$WORK/flag/started"
	"$CLAWBOX" run --vm --vm-image "$VM_DIR" --mount "$WORK/flag:/flag:rw" -- \
		sh -c 'touch /flag/started; sleep 60' >/dev/null 2>"$WORK/err" </dev/null &
	VM_SLEEPER=$!
	wait_until 40 test -e "$WORK/flag/started"
}
vm_sleeper
kill -TERM $VM_SLEEPER
t0=$(date +%s%N)
wait $VM_SLEEPER
RC=$?
ms=$((($(date +%s%N) - t0) / 1000000))
check "SIGTERM mid-run: clawbox run --vm ends at once, 143 ($RC, $ms ms)" test "$RC" = 143 -a "$ms" -lt 5000
check "and takes its VM with it" wait_until 5 sh -c "! pgrep -f 'qemu-system-x86_6[4] -M microvm' >/dev/null"
vm_sleeper
pkill -KILL -f 'qemu-system-x86_6[4] -M microvm'
wait $VM_SLEEPER
RC=$?
check "qemu killed mid-run: 125 and one line saying so ($RC: $(head -c 200 "$WORK/err"))" \
	sh -c "[ $RC = 125 ] && [ \$(wc -l <'$WORK/err') = 1 ] && grep -q 'the VM ended without' '$WORK/err'"

# clawbox vm-service: one long-lived VM, many runs in it, each a fresh sandbox.
mkdir -p "$WORK/svc/ro" "$WORK/svc/rw"
echo svc-content >"$WORK/svc/ro/in.txt"
chmod -R a+rX "$WORK/svc"
# No chown: the share is root's, and qemu's sandbox sees it through an idmapped mount.
SVC="$WORK/vm.sock"
"$CLAWBOX" vm-service --socket "$SVC" --vm-image "$VM_DIR" --share "$WORK/svc:rw" \
	>"$WORK/svc.log" 2>&1 &
SVC_PID=$!
wait_until 60 grep -q 'ready: the VM' "$WORK/svc.log"
check "vm-service: boots its VM and says so" grep -q "ready: the VM (kernel $guest_kernel, " "$WORK/svc.log"
check "vm-service: says it is booting first, and with which accelerator" \
	grep -q "booting the VM (tcg, up to [0-9.]* s)\.\.\." "$WORK/svc.log"
check "its socket is its owner's alone (0600)" sh -c "[ \$(stat -c %a '$SVC') = 600 ]"
svcrun() { # ARGS...: clawbox run --vm-service, out/err/RC as vmrun
	"$CLAWBOX" run --vm-service "$SVC" "$@" >"$WORK/out" 2>"$WORK/err" </dev/null
	RC=$?
}
echo "from stdin" | "$CLAWBOX" run --vm-service "$SVC" --mount "$WORK/svc/ro:/data" \
	--mount "$WORK/svc/rw:/out:rw" -- sh -c 'cat; cat /data/in.txt; uname -r; echo w >/out/f && echo rw-ok; echo x >/data/no 2>/dev/null || echo ro-refused; echo e >&2; exit 5' \
	>"$WORK/out" 2>"$WORK/err"
RC=$?
check "a run in the service's VM: status, stdin, stdout and stderr (exit $RC)" \
	sh -c "[ $RC = 5 ] && grep -q '^from stdin$' '$WORK/out' && grep -q '^e$' '$WORK/err' && grep -q '^$guest_kernel$' '$WORK/out'"
check "mounts from its share: read-only stays so, :rw writes land on the host" \
	sh -c "grep -q '^svc-content$' '$WORK/out' && grep -q '^ro-refused$' '$WORK/out' && grep -q '^rw-ok$' '$WORK/out' && [ -f '$WORK/svc/rw/f' ] && [ ! -e '$WORK/svc/ro/no' ]"
svcrun --mount "$PROBE_DIR:/probe" -- true
check "a mount outside the shares is refused: 125, one line (exit $RC)" \
	sh -c "[ $RC = 125 ] && [ \$(wc -l <'$WORK/err') = 1 ] && grep -q 'not in a folder shared' '$WORK/err'"
for i in 1 2 3 4; do
	"$CLAWBOX" run --vm-service "$SVC" -- sh -c "sleep 1; echo par$i; exit $i" >"$WORK/par$i" 2>&1 &
	eval "PAR$i=\$!"
done
par_ok=0
for i in 1 2 3 4; do
	eval "wait \$PAR$i"
	[ $? = $i ] && grep -q "^par$i$" "$WORK/par$i" && par_ok=$((par_ok + 1))
done
check "4 runs at once in the one VM, each its own status and output ($par_ok of 4)" test $par_ok = 4
"$HTTPD" 127.0.0.1 0 svcweb "$WORK/svcweb.log" >"$WORK/svcweb.port" 2>/dev/null &
SVCWEB_PID=$!
wait_until 5 test -s "$WORK/svcweb.port"
SVCWEB=$(cat "$WORK/svcweb.port")
svcrun --allow "127.0.0.1:$SVCWEB" -- curl -s -S --max-time 20 --noproxy '' "http://127.0.0.1:$SVCWEB/via-service"
check "--net proxy through the service: the proxy is the client's, on the host (exit $RC)" \
	sh -c "[ $RC = 0 ] && grep -q 'server: svcweb' '$WORK/out'"
kill "$SVCWEB_PID" 2>/dev/null
"$CLAWBOX" run --vm-service "$SVC" -- sleep 60 >/dev/null 2>"$WORK/err" &
SLEEPER=$!
sleep 2
pkill -KILL -f 'qemu-system-x86_6[4] -M microvm'
wait $SLEEPER
RC=$?
check "the VM killed under a run: the run ends with 75, try again ($RC)" \
	sh -c "[ $RC = 75 ] && grep -q 'a new one is being started' '$WORK/err'"
wait_until 60 sh -c "[ \$(grep -c 'ready: the VM' '$WORK/svc.log') = 2 ]"
svcrun -- echo after-restart
check "and the service boots a new VM that takes the next run (exit $RC)" \
	sh -c "[ $RC = 0 ] && grep -q '^after-restart$' '$WORK/out'"
kill -TERM $SVC_PID
wait $SVC_PID
RC=$?
check "SIGTERM: the service stops (exit $RC), its socket gone" sh -c "[ $RC = 0 ] && [ ! -e '$SVC' ]"

# clawbox serve with "vm": every run's sandbox inside the daemon's one VM.
FAKE=${FAKE_MODEL:-$TOP/build/tests/fake-model}
VKEY=sk-ant-test-VM-$$
cat >"$WORK/vm-scenario.json" <<'JSON'
{"turns": [
  {"expect": {"last_contains": ["which kernel"]},
   "reply": {"tool_calls": [{"id": "toolu_v1", "name": "bash", "input": {"command": "uname -r >kernel.txt; cat /proc/1/cgroup >>kernel.txt"}},
                            {"id": "toolu_v2", "name": "send_message", "input": {"text": "a word from the VM"}}]}},
  {"reply": {"text": "noted in kernel.txt"}}],
 "default": {"reply": {"echo": true}, "delay_ms": 4000}}
JSON
"$FAKE" --scenario "$WORK/vm-scenario.json" --log "$WORK/vm-model.log" --port-file "$WORK/vm-mport" \
	--key "$VKEY" --forbid "$VKEY" 2>/dev/null &
VM_MPID=$!
wait_until 5 test -s "$WORK/vm-mport"
VPORT=$((20000 + RANDOM % 20000))
VDATA=$WORK/vmdata
printf '{"data_dir": "%s", "listen": "127.0.0.1:%s", "vm": {"image": "%s", "memory": "1G"},\n "model": {"provider": "anthropic", "base_url": "http://127.0.0.1:%s", "api_key_env": "VM_MODEL_KEY"},\n "groups": [{"id": "main", "main": true}]}\n' \
	"$VDATA" "$VPORT" "$VM_DIR" "$(cat "$WORK/vm-mport")" >"$WORK/vm-config.json"
VM_MODEL_KEY=$VKEY "$CLAWBOX" serve --config "$WORK/vm-config.json" >"$WORK/vm-serve.out" 2>"$WORK/vm-serve.err" &
VSPID=$!
wait_until 10 curl -sf "http://127.0.0.1:$VPORT/healthz" -o /dev/null
VTOKEN=$(cat "$VDATA/api-token" 2>/dev/null)
vapi() { # METHOD PATH [BODY]
	curl -s -o "$WORK/vbody" -X "$1" -H "Authorization: Bearer $VTOKEN" ${3:+--data-binary "$3"} \
		"http://127.0.0.1:$VPORT$2"
}
vapi POST /api/v1/groups/main/messages '{"text": "which kernel do you run on?"}'
wait_until 90 sh -c "curl -s -H 'Authorization: Bearer $VTOKEN' 'http://127.0.0.1:$VPORT/api/v1/groups/main/messages' | grep -q 'noted in kernel.txt'"
vapi GET "/api/v1/groups/main/messages?after=0"
check "serve with \"vm\": a message is answered end to end" grep -q '"text":"noted in kernel.txt"' "$WORK/vbody"
check "a host action from the VM's sandbox reaches the daemon through the relayed socket" \
	grep -q '"direction":"out","text":"a word from the VM"' "$WORK/vbody"
check "the agent's tool ran in the daemon's VM, on the guest's kernel" \
	sh -c "[ \"\$(head -1 '$VDATA/groups/main/kernel.txt')\" = '$guest_kernel' ]"
check "the model key was added on the host, never sent by the agent" \
	sh -c "grep -q '\"ok\":true' '$WORK/vm-model.log' && ! grep -q '\"ok\":false' '$WORK/vm-model.log'"
vm_shares() { # the --share arguments of the daemon's vm-service, one a line
	local pid
	for pid in $(pgrep -f 'clawbox vm-servic[e]'); do
		tr '\0' '\n' <"/proc/$pid/cmdline" | sed -n '/^--share$/{n;p}'
	done
}
vm_shares | sort -u >"$WORK/vm-shares"
check "the VM sees the groups' and sessions' folders, not the daemon's database ($(tr '\n' ' ' <"$WORK/vm-shares"))" \
	sh -c "grep -qx '$VDATA/groups:rw' '$WORK/vm-shares' && grep -qx '$VDATA/sessions:rw' '$WORK/vm-shares' && ! grep -qx -e '$VDATA' -e '$VDATA:rw' '$WORK/vm-shares'"
# qemu killed mid-invocation: the run ends, its message is queued again, the service boots a
# new VM and the message is answered once.
vapi POST /api/v1/groups/main/messages '{"text": "second question"}'
wait_until 60 grep -q '"first_text":"second question"\|second question' "$WORK/vm-model.log"
pkill -KILL -f 'qemu-system-x86_6[4] -M microvm'
wait_until 120 sh -c "curl -s -H 'Authorization: Bearer $VTOKEN' 'http://127.0.0.1:$VPORT/api/v1/groups/main/messages' | grep -q 'echo: second question'"
vapi GET "/api/v1/groups/main/messages?after=0"
check "qemu killed mid-invocation: the message is answered after the VM is back, once" \
	sh -c "[ \$(grep -o '\"text\":\"echo: second question\"' '$WORK/vbody' | wc -l) = 1 ] && [ \$(grep -o '\"direction\":\"out\"' '$WORK/vbody' | wc -l) = 3 ]"
vapi GET "/api/v1/audit?after=0"
check "and the retry is in the audit" grep -q '"action":"vm","decision":"retry"' "$WORK/vbody"
check "as is the host action, allowed for the group itself" \
	grep -q '"group":"main","action":"send_message","decision":"allow"' "$WORK/vbody"
kill -TERM $VSPID
wait $VSPID
check "the daemon stops its VM with it" \
	wait_until 10 sh -c "! pgrep -f 'qemu-system-x86_6[4] -M microvm' >/dev/null && ! pgrep -f 'clawbox vm-servic[e]' >/dev/null"
kill $VM_MPID 2>/dev/null

check "no qemu, no socket folder left" \
	sh -c "! pgrep -f 'qemu-system-x86_6[4] -M microvm' >/dev/null && ! ls -d /tmp/clawbox-vm.* >/dev/null 2>&1"
check_clean "no sandbox left on the host"
done_testing
