#!/bin/bash
# Build the test guest's boot files into DIR: vmlinuz (Debian's cloud kernel,
# downloaded, never installed) and initrd.img (busybox-static + tests/guest/init
# + the virtio, ACPI button and evdev modules of the same kernel).
# Idempotent: does nothing when DIR is up to date.
set -euo pipefail
out=${1:?usage: mkguest.sh DIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ] &&
   [ "$out/initrd.img" -nt "$here/init" ] && [ "$out/initrd.img" -nt "$0" ]; then
    exit 0
fi

kernel_pkg() {
    apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}
pkg=$(kernel_pkg)
if [ -z "$pkg" ] && [ "$(id -u)" = 0 ]; then   # a fresh machine has no package lists yet
    apt-get update -q >/dev/null && pkg=$(kernel_pkg)
fi
[ -n "$pkg" ] || { echo "mkguest: cannot resolve linux-image-cloud-amd64 (run apt-get update as root)" >&2; exit 1; }

dl="$out/dl"
rm -rf "$dl" && mkdir -p "$dl"
chmod 0777 "$dl"   # apt's _apt user downloads into it
if ! (cd "$dl" && apt-get download -q "$pkg" >/dev/null 2>"$dl/apt.err"); then
    echo "mkguest: apt-get download $pkg failed:" >&2; cat "$dl/apt.err" >&2; exit 1
fi
dpkg-deb -x "$dl"/*.deb "$dl/x"
kver=$(ls "$dl/x/lib/modules")
cp "$dl/x/boot/vmlinuz-$kver" "$out/vmlinuz"

root="$dl/root"
mkdir -p "$root/bin" "$root/lib/modules" "$root/proc" "$root/sys" "$root/dev"
cp /bin/busybox "$root/bin/busybox"
install -m 0755 "$here/init" "$root/init"
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci \
         virtio_blk virtio-rng button evdev; do
    f=$(find "$dl/x/lib/modules/$kver" -name "$m.ko" | head -n 1)
    [ -n "$f" ] || { echo "mkguest: module $m.ko not in $pkg" >&2; exit 1; }
    cp "$f" "$root/lib/modules/"
done
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out/initrd.img.tmp"
mv "$out/initrd.img.tmp" "$out/initrd.img"
echo "$pkg" > "$out/kernel-package"
rm -rf "$dl"
echo "mkguest: guest boot files for $pkg in $out"
