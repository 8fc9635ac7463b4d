#!/bin/bash
# tests/platforms.sh BUILD SUITE PACKAGES
# make check: the whole suite on this machine (make check-here), then again
# in a Debian SUITE root (tests/root.sh, cached in BUILD/cache/SUITE, its
# build in BUILD/cache/SUITE/build). Each leg ends with its own summary line;
# the last line is the combined total.
set -u
build=${1:?usage: platforms.sh BUILD SUITE PACKAGES}
suite=${2:?usage: platforms.sh BUILD SUITE PACKAGES}
pkgs=${3:?usage: platforms.sh BUILD SUITE PACKAGES}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$build/cache" && build=$(cd "$build" && pwd)
pass=0 fail=0 lines=()

host=$(. /etc/os-release 2>/dev/null && echo "${ID:-linux} ${VERSION_ID:-?} (${VERSION_CODENAME:-?}), this machine")

# leg NAME COMMAND...: run one leg, echo it, keep its "total:" line.
leg() {
    local name=$1 log rc p f t0=$SECONDS; shift
    log=$(mktemp)
    echo "=== platform $name"
    "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    read -r p f < <(sed -n 's/^total: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$log" | tail -n 1)
    rm -f "$log"
    if [ -z "${p:-}" ]; then p=0 f=1; echo "platform $name: no summary (exit status $rc): counted as 1 failure"; fi
    [ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || f=1
    pass=$((pass + p)); fail=$((fail + f))
    lines+=("$name: $p passed, $f failed in $(((SECONDS - t0) / 60)) min $(((SECONDS - t0) % 60)) s")
}

# The second leg's root is made and its packages installed (downloads and
# dpkg, mostly waiting on the network and the disk) while the first leg
# runs, at the lowest CPU and I/O priority so that the first leg's timed
# tests do not feel it. The second leg waits for it, and would make or
# finish the root itself if this failed.
prep_log=$build/cache/$suite.prepare.log
(
    t0=$SECONDS rc=0
    nice -n 19 ionice -c 3 "$here/root.sh" "$suite" "$build/cache/$suite" "$pkgs" -- true || rc=$?
    echo "root $suite: prepared in $((SECONDS - t0)) s, exit status $rc"
    exit "$rc"
) >"$prep_log" 2>&1 &
prep=$!

leg "$host" make --no-print-directory check-here BUILD="$build"
case $suite in bookworm) v=12 ;; trixie) v=13 ;; *) v=? ;; esac
wait "$prep"
echo "=== root $suite, prepared beside the first leg:"
cat "$prep_log"
leg "debian $v ($suite), in a root in $build/cache/$suite" \
    "$here/root.sh" "$suite" "$build/cache/$suite" "$pkgs" -- make --no-print-directory check-here BUILD=/build
echo "=== platforms"
printf '%s\n' "${lines[@]}"
echo "total: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
