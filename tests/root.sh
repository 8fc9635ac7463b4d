#!/bin/bash
# tests/root.sh SUITE DIR PACKAGES -- COMMAND...
# Runs COMMAND in the project's source tree inside a Debian SUITE root
# (bookworm, trixie) kept in DIR, made by debootstrap from Debian's own
# archive and cached between runs. PACKAGES (one word, space separated) are
# installed into it when missing. Needs root.
#
# Everything is mounted in a private mount namespace, so no mount outlives
# the command and none is seen outside it: removing DIR later is safe
# (debootstrap's own mounts too). The command runs in its own PID
# namespace under tini: whatever the tests leave running (daemons, QEMU)
# dies with it, even when the run is interrupted. Inside, as
# ../shared/reference/platforms.md found necessary:
#   - the root is bind-mounted onto itself (unshare inside it then works);
#   - /proc, /sys (recursively: slurmd wants /sys/fs/cgroup), /dev, /dev/pts;
#   - /etc/hosts and /etc/resolv.conf copied in (Slurm resolves localhost);
#   - the source tree bind-mounted at /src, DIR/build at /build (the
#     root's own build directory, out of the source tree); COMMAND runs in /src.
set -euo pipefail
suite=${1:?usage: root.sh SUITE DIR PACKAGES -- COMMAND...}
dir=${2:?usage: root.sh SUITE DIR PACKAGES -- COMMAND...}
pkgs=${3?usage: root.sh SUITE DIR PACKAGES -- COMMAND...}
shift 3
[ "${1:-}" = -- ] && shift
[ $# -gt 0 ] || { echo "root.sh: no command" >&2; exit 2; }
src=$(cd "$(dirname "$0")/.." && pwd)

say() { printf 'root %s: %s\n' "$suite" "$*" >&2; }
[ "$(id -u)" = 0 ] || { say "needs root (debootstrap, chroot, mount): run as root"; exit 1; }

# The archive this machine already uses, so a site mirror is honoured.
mirror() {
    local u
    u=$(grep -hoE '^(URIs:|deb) +(https?://[^ ]+/debian)/?( |$)' /etc/apt/sources.list \
            /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
        awk '{ print $2; exit }')
    echo "${u:-http://deb.debian.org/debian}"
}

need_host_pkg() {
    dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q 'ok installed' && return
    say "installing $1 on this machine"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$1" >/dev/null ||
        { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "$1" >/dev/null; }
}

# A root is made in DIR.new and renamed when complete: an interrupted
# debootstrap never leaves a half root that looks cached.
make_root() {
    [ -x "$dir/root/usr/bin/apt-get" ] && [ -f "$dir/root/.vdesk-complete" ] && return
    need_host_pkg debootstrap
    local m t0=$SECONDS
    m=$(mirror)
    rm -rf --one-file-system "$dir/root.new"
    mkdir -p "$dir"
    say "debootstrap --variant=minbase $suite from $m (once; cached in $dir)"
    # In a private mount namespace: what debootstrap mounts in the new root
    # (proc, sys) goes away with it, even if it is killed.
    if ! unshare -m --propagation private -- debootstrap --variant=minbase "$suite" "$dir/root.new" \
            "$m" >"$dir/debootstrap.log" 2>&1; then
        say "debootstrap failed; its log:"; tail -n 20 "$dir/debootstrap.log" >&2; exit 1
    fi
    printf 'deb %s %s main\ndeb %s %s-updates main\n' "$m" "$suite" "$m" "$suite" \
        >"$dir/root.new/etc/apt/sources.list"
    touch "$dir/root.new/.vdesk-complete"
    rm -rf "$dir/root"
    mv "$dir/root.new" "$dir/root"
    say "root made in $((SECONDS - t0)) s"
}

# The namespace's setup, then COMMAND (run by the inner shell).
# shellcheck disable=SC2016
inner='
set -eu
r=$1 src=$2 pkgs=$3; shift 3
mount --bind "$r" "$r"
mount -t proc proc "$r/proc"
mount --rbind /sys "$r/sys"
mount --bind /dev "$r/dev"
mount --bind /dev/pts "$r/dev/pts"
mkdir -p "$r/src" "$r/build" "$r/dev/shm" "$r/../build"
mount --bind "$src" "$r/src"
mount --bind "$r/../build" "$r/build"
mountpoint -q /dev/shm && mount --bind /dev/shm "$r/dev/shm"
cp --remove-destination /etc/hosts /etc/resolv.conf "$r/etc/"
# An install that was interrupted last time is finished first.
chroot "$r" env DEBIAN_FRONTEND=noninteractive dpkg --configure -a >/dev/null 2>&1 || true
missing=$(for p in $pkgs; do
    chroot "$r" dpkg-query -W -f="\${Status}\n" "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"
done)
if [ -n "$missing" ]; then
    echo "root: installing" $missing >&2
    chroot "$r" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    chroot "$r" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        $missing >"$r/tmp/apt.log" 2>&1 || { tail -n 30 "$r/tmp/apt.log" >&2; exit 1; }
    # Packages start nothing here: no init, and the tests start their own daemons.
fi
# tini is PID 1 of the namespace: it reaps what daemons leave behind.
exec chroot "$r" tini -- env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 VDESK_BED_PORTS="${VDESK_BED_PORTS:-20000-27999}" sh -c "cd /src && exec \"\$@\"" root-cmd "$@"
'

make_root
# No daemon starts while packages are installed (there is no init to start
# them in a chroot, and policy-rc.d tells invoke-rc.d so).
printf '#!/bin/sh\nexit 101\n' >"$dir/root/usr/sbin/policy-rc.d"
chmod 0755 "$dir/root/usr/sbin/policy-rc.d"
exec unshare -m -p -f --kill-child --propagation private -- \
    sh -c "$inner" root-ns "$dir/root" "$src" "$pkgs" "$@"
