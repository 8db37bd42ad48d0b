# vm-lib.sh: boots the microVM guest (make guest) under qemu's microvm machine, as the facts in
# DESIGN's machine notes say: TCG where KVM cannot run a stock kernel (these machines), KVM
# elsewhere. Sourced by test-vm.sh and bench/bench-vm.sh.
VM_DIR=${VM_DIR:-$TOP/build/vm}
VM_APPEND="console=ttyS0 quiet panic=-1 reboot=t no_timer_check lpj=4000000 tsc=reliable rdinit=/init"

# vm_boot TIMEOUT EXTRA-KERNEL-ARGS... : boots, output on stdout, the VM's end on qemu's exit.
vm_boot() {
	local t=$1
	shift
	timeout "$t" qemu-system-x86_64 -M microvm -accel tcg -m 256 -smp 1 -nodefaults \
		-no-user-config -nographic -no-reboot -serial stdio \
		-kernel "$VM_DIR/vmlinux" -initrd "$VM_DIR/initramfs.cpio" \
		-append "$VM_APPEND $*"
}
