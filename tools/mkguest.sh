#!/bin/sh
# mkguest.sh OUTDIR CLAWBOX: the microVM's guest from Debian's kernel (linux-image-amd64):
#   OUTDIR/vmlinux          uncompressed, for qemu's PVH boot of -M microvm (the facts in
#                           measured here: the compressed vmlinuz boots 3x slower)
#   OUTDIR/initramfs.cpio   /init = clawbox itself (the guest agent), /modules/*.ko and their
#                           load order: the virtio and 9p drivers the guest needs
# Nothing else of the host goes in.
set -eu
out=$1
clawbox=$2
kver=${KVER:-$(ls /lib/modules | sort -V | tail -n 1)}
vmlinuz=/boot/vmlinuz-$kver
mods=/lib/modules/$kver
[ -r "$vmlinuz" ] || { echo "mkguest: $vmlinuz not found (install linux-image-amd64)" >&2; exit 1; }
mkdir -p "$out"

# The kernel: the first compressed stream in the bzImage that unpacks to an ELF image.
found=
for magic in '\xfd7zXZ\x00' '\x1f\x8b\x08' '\x28\xb5\x2f\xfd'; do
	for off in $(LC_ALL=C grep -obUaP "$magic" "$vmlinuz" | cut -d: -f1); do
		case $magic in
		*xfd7z*) dec="xz -dc --single-stream" ;;
		*x1f*) dec="gzip -dc" ;;
		*) dec="zstd -dc" ;;
		esac
		tail -c +$((off + 1)) "$vmlinuz" | $dec >"$out/vmlinux.tmp" 2>/dev/null || true
		if [ "$(head -c 4 "$out/vmlinux.tmp" | od -An -c | tr -d ' ')" = '177ELF' ]; then
			mv "$out/vmlinux.tmp" "$out/vmlinux"
			found=1
			break 2
		fi
	done
done
rm -f "$out/vmlinux.tmp"
[ -n "$found" ] || { echo "mkguest: no kernel image found in $vmlinuz" >&2; exit 1; }

# The initramfs.
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/modules" "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/mnt"
cp "$clawbox" "$root/init"
# In dependency order (modules.dep): virtio needs virtio_ring, 9p needs netfs and fscache.
for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_mmio \
	drivers/char/virtio_console fs/netfs/netfs fs/fscache/fscache net/9p/9pnet \
	net/9p/9pnet_virtio fs/9p/9p; do
	[ -f "$mods/kernel/$m.ko" ] || continue # built in, in some kernels
	cp "$mods/kernel/$m.ko" "$root/modules/"
	basename "$m.ko" >>"$root/modules/order"
done
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$out/initramfs.cpio"
echo "$kver" >"$out/kernel-version"
