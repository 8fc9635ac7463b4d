#!/bin/bash
# tests/platforms.sh BUILD SUITE PACKAGES
# make check: the whole suite on this machine (make check-here) and, side by
# side, in a Debian SUITE root (tests/root.sh, cached in BUILD/cache/SUITE,
# its build in BUILD/cache/SUITE/build). Each leg ends with its own summary
# line; the summary at the end lists each leg's failures, and its last line
# is the combined total.
set -u
build=${1:?usage: platforms.sh BUILD SUITE PACKAGES}
suite=${2:?usage: platforms.sh BUILD SUITE PACKAGES}
pkgs=${3:?usage: platforms.sh BUILD SUITE PACKAGES}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$build/cache" && build=$(cd "$build" && pwd)
pass=0 fail=0 lines=()

host=$(. /etc/os-release 2>/dev/null && echo "${ID:-linux} ${VERSION_ID:-?} (${VERSION_CODENAME:-?}), this machine")

# tally NAME LOG RC SECONDS: a finished leg's "total:" line and its list
# of failures, for the summary at the end.
tally() {
    local name=$1 log=$2 rc=$3 t=$4 p f
    read -r p f < <(sed -n 's/^total: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$log" | tail -n 1)
    if [ -z "${p:-}" ]; then p=0 f=1; echo "platform $name: no summary (exit status $rc): counted as 1 failure"; fi
    [ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || f=1
    pass=$((pass + p)); fail=$((fail + f))
    lines+=("$name: $p passed, $f failed in $((t / 60)) min $((t % 60)) s")
    [ "$f" -eq 0 ] || lines+=("$(sed -n '/^failed:$/,/^total: /p' "$log" | sed '$d')")
}

# The two legs run side by side: most of a leg's time is spent waiting
# (guests booting, jobs starting, timeouts running out), and together they
# keep both cores busy where one leg alone used half of them. The second
# leg's root is first made and its packages installed, at the lowest CPU
# and I/O priority: downloads and dpkg, while the first leg builds and
# runs. The first leg's output streams; the second's follows as it comes
# once the first is done. Their test beds take ports of their own
# (VDESK_BED_PORTS). Interrupted, the second leg stops too (root.sh's
# namespace takes its tests with it).
case $suite in bookworm) v=12 ;; trixie) v=13 ;; *) v=? ;; esac
name2="debian $v ($suite), in a root in $build/cache/$suite"
prep_log=$build/cache/$suite.prepare.log log1=$(mktemp) log2=$(mktemp)
(
    t0=$SECONDS rc=0
    nice -n 19 ionice -c 3 "$here/root.sh" "$suite" "$build/cache/$suite" "$pkgs" -- true >"$prep_log" 2>&1 || rc=$?
    echo "root $suite: prepared in $((SECONDS - t0)) s, exit status $rc" >>"$prep_log"
    # If that failed, root.sh makes or finishes the root itself, and says why.
    t0=$SECONDS rc=0
    VDESK_BED_PORTS=24000-27999 "$here/root.sh" "$suite" "$build/cache/$suite" "$pkgs" -- \
        make --no-print-directory check-here BUILD=/build >"$log2" 2>&1 || rc=$?
    echo "$rc $((SECONDS - t0))" >"$log2.end"
) &
second=$!
trap '[ -z "$second" ] || { pkill -TERM -P "$second"; kill -TERM "$second"; } 2>/dev/null; rm -f "$log1" "$log2" "$log2.end"' EXIT
trap 'exit 130' INT TERM HUP

echo "=== platform $host"
t0=$SECONDS
VDESK_BED_PORTS=20000-23999 make --no-print-directory check-here BUILD="$build" 2>&1 | tee "$log1"
tally "$host" "$log1" "${PIPESTATUS[0]}" $((SECONDS - t0))
echo "=== platform $name2 (beside the first)"
tail -n +1 -f --pid="$second" "$log2"
wait "$second"
second=
echo "=== root $suite, prepared beside the first leg:"
cat "$prep_log"
read -r rc t <"$log2.end" 2>/dev/null || { rc=1 t=0; }
tally "$name2" "$log2" "$rc" "$t"
echo "=== platforms"
printf '%s\n' "${lines[@]}"
echo "total: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
