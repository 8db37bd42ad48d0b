# shellcheck shell=bash
# vm-lib.sh: boots the microVM guest (make guest) under qemu's microvm machine, as the machine
# facts say: TCG where KVM cannot run a stock kernel (these machines), KVM elsewhere. Sourced
# by test-vm.sh and bench/bench-vm.sh.
#
# A boot that does not reach the guest agent within VM_READY_S seconds is killed and tried
# again (at most 3 times), as the host side of `run --vm` does. Under TCG about 1 boot in 8
# stalled here with its clock at 0.000000: the kernel's TSC calibration against the PIT failed
# ("Unable to calibrate against PIT"), the TSC was marked unstable and no clock ran.
# tsc_early_khz (the host's TSC rate, which is the guest's under TCG) skips that calibration.
VM_DIR=${VM_DIR:-$TOP/build/vm}
VM_APPEND="console=ttyS0 quiet panic=-1 reboot=t no_timer_check lpj=4000000 tsc=reliable rdinit=/init"
# The host's TSC frequency, as vm-host.c passes it: the kernel then skips the calibration
# against the PIT that under TCG sometimes fails and stalls the boot.
VM_TSC_KHZ=$(awk -F: '/^cpu MHz/ { printf "%d", $2 * 1000; exit }' /proc/cpuinfo 2>/dev/null)
[ -n "$VM_TSC_KHZ" ] && VM_APPEND="$VM_APPEND tsc_early_khz=$VM_TSC_KHZ"
VM_READY_S=${VM_READY_S:-10}

# The qemu command line for an image in DIR (as the path is seen by whoever runs qemu).
vm_qemu() {
	local dir=$1
	shift
	echo qemu-system-x86_64 -M microvm -accel tcg -m 256 -smp 1 -nodefaults -no-user-config \
		-nographic -no-reboot -serial stdio -kernel "$dir/vmlinux" -initrd "$dir/initramfs.cpio"
}

# vm_run OUT TOTAL_S CMD...: runs CMD (which boots the VM) with its output in OUT; retries a
# boot that is not ready in time; waits at most TOTAL_S for the VM to end. Returns CMD's status
# (124 when nothing ever got ready); VM_ATTEMPTS says how many boots it took.
vm_run() {
	local out=$1 total=$2 pid attempt rc
	shift 2
	for attempt in 1 2 3; do
		VM_ATTEMPTS=$attempt
		timeout "$total" "$@" >"$out" 2>&1 &
		pid=$!
		local i=0
		while [ $i -lt $((VM_READY_S * 20)) ] && ! grep -q 'clawbox-guest: ready' "$out" &&
			kill -0 "$pid" 2>/dev/null; do
			sleep 0.05
			i=$((i + 1))
		done
		if grep -q 'clawbox-guest: ready' "$out"; then
			wait "$pid"
			return $?
		fi
		kill -TERM "$pid" 2>/dev/null
		wait "$pid"
		rc=$?
		echo "# boot $attempt did not reach the guest agent in ${VM_READY_S}s (status $rc); trying again"
	done
	return 124
}
