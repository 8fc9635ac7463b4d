#!/bin/bash
# Build the test guest's boot files into DIR: vmlinuz (Debian's cloud kernel,
# downloaded, never installed) and initrd.img (busybox-static + tests/guest/init
# + the virtio, ACPI button, evdev, cdrom and isofs modules of the same kernel).
# Idempotent: does nothing when DIR is up to date.
set -euo pipefail
out=${1:?usage: mkguest.sh DIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ] &&
   [ "$out/initrd.img" -nt "$here/init" ] && [ "$out/initrd.img" -nt "$0" ] &&
   [ "$out/initrd.img" -nt "$here/shmcopy.c" ]; then
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
# Debian 12 ships /lib/modules/V/*.ko; Debian 13 (merged /usr)
# /usr/lib/modules/V/*.ko.xz, which busybox's insmod cannot read.
mods=$dl/x/lib/modules
[ -d "$mods" ] || mods=$dl/x/usr/lib/modules
[ -d "$mods" ] || { echo "mkguest: no lib/modules or usr/lib/modules in $pkg" >&2; exit 1; }
kver=$(ls "$mods")
cp "$dl/x/boot/vmlinuz-$kver" "$out/vmlinuz"

root="$dl/root"
mkdir -p "$root/bin" "$root/lib/modules" "$root/proc" "$root/sys" "$root/dev"
cp /bin/busybox "$root/bin/busybox"
install -m 0755 "$here/init" "$root/init"
# The shared memory benchmark's copy loop (tests/guest/shmcopy.c), static.
${CC:-cc} -static -O2 -o "$root/bin/shmcopy" "$here/shmcopy.c"
# Each module that the kernel does not have built in, in load order.
: >"$root/lib/modules/order"
# cdrom, isofs: the cloud-init seed (vdeskctl bootstrap) is an ISO 9660 image on a
# virtio disk (isofs needs cdrom).
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci \
         virtio_blk virtio-rng button evdev cdrom isofs; do
    f=$(find "$mods/$kver" \( -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" \) | head -n 1)
    if [ -z "$f" ]; then
        grep -q "/$m.ko\$" "$mods/$kver/modules.builtin" 2>/dev/null && continue
        echo "mkguest: module $m.ko neither in $pkg nor built into its kernel" >&2; exit 1
    fi
    case $f in
        *.xz) xz -dc "$f" >"$root/lib/modules/$m.ko" ;;
        *.zst) zstd -qdc "$f" >"$root/lib/modules/$m.ko" ;;
        *) cp "$f" "$root/lib/modules/" ;;
    esac
    echo "$m" >>"$root/lib/modules/order"
done
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out/initrd.img.tmp"
mv "$out/initrd.img.tmp" "$out/initrd.img"
echo "$pkg" > "$out/kernel-package"
rm -rf "$dl"
echo "mkguest: guest boot files for $pkg in $out"
