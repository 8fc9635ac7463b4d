#!/bin/bash
# tests/fuzz/run.sh BUILD SECONDS TARGET...   (make fuzz; docs/HACKING.md)
# Runs each libFuzzer target BUILD/fuzz/fuzz_TARGET for SECONDS, one after
# the other (one core each), on its scratch corpus BUILD/fuzz/corpus/TARGET,
# which starts as a copy of tests/fuzz/corpus/TARGET and keeps what the
# runs find: new inputs stay in BUILD, never in the tree. Crashes go to
# BUILD/fuzz/crashes/TARGET-crash-*, logs to BUILD/fuzz/logs/TARGET.log.
# Ends with a summary: executions per target and whether it crashed.
# FUZZ_FLAGS: more libFuzzer flags, e.g. "-fork=1 -ignore_crashes=1" to go on
# past a crash (found ones are counted from BUILD/fuzz/crashes).
set -u
build=${1:?usage: run.sh BUILD SECONDS TARGET...}
seconds=${2:?usage: run.sh BUILD SECONDS TARGET...}
shift 2
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$build/fuzz/crashes" "$build/fuzz/logs" || exit 1
# A UB report is a crash with a stack, like ASan's.
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}
summary=() failed=0
read -r -a extra <<<"${FUZZ_FLAGS:-}"

# seed TARGET: copies the tree's seeds the scratch corpus lacks (a seed
# edited in the tree replaces the old copy).
seed() {
    local dst=$build/fuzz/corpus/$1 f
    mkdir -p "$dst" || return 1
    for f in "$root/tests/fuzz/corpus/$1"/*; do
        [ -f "$f" ] || continue
        cmp -s "$f" "$dst/$(basename "$f")" || cp "$f" "$dst/" || return 1
    done
}

stat_of() {   # stat_of LOG NAME: a value of libFuzzer's -print_final_stats
    sed -n "s/^stat::$2: *//p" "$1" | tail -n 1
}

# executions LOG: the final stats' count; in fork mode, which prints none,
# the last status line's "#N".
executions() {
    local n
    n=$(stat_of "$1" number_of_executed_units)
    [ -n "$n" ] || n=$(sed -n 's/^#\([0-9][0-9]*\)[:[:space:]].*/\1/p' "$1" | tail -n 1)
    echo "${n:-?}"
}

crashes() {   # crashes TARGET: how many artifacts it has
    find "$build/fuzz/crashes" -maxdepth 1 -name "$1-*" -type f | wc -l
}

for t in "$@"; do
    bin=$build/fuzz/fuzz_$t log=$build/fuzz/logs/$t.log
    dict=()
    [ -f "$root/tests/fuzz/$t.dict" ] && dict=(-dict="$root/tests/fuzz/$t.dict")
    seed "$t" || { echo "fuzz_$t: cannot seed $build/fuzz/corpus/$t" >&2; exit 1; }
    echo "== fuzz_$t: ${seconds}s, corpus $build/fuzz/corpus/$t, log $log"
    before=$(crashes "$t") start=$SECONDS
    "$bin" -max_total_time="$seconds" -print_final_stats=1 "${dict[@]}" "${extra[@]}" \
        -artifact_prefix="$build/fuzz/crashes/$t-" "$build/fuzz/corpus/$t" >"$log" 2>&1
    rc=$? new=$(($(crashes "$t") - before)) took=$((SECONDS - start))
    files=$(find "$build/fuzz/corpus/$t" -maxdepth 1 -type f | wc -l)
    if [ "$rc" -eq 0 ] && [ "$new" -eq 0 ]; then
        result=ok
    else
        failed=1
        art=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        result="CRASH (exit $rc) ${art:-$new new in $build/fuzz/crashes/$t-*}"
        grep -aE '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|fuzz: )' "$log" | head -n 5 |
            sed 's/^/  | /'
    fi
    summary+=("$(printf '%-14s %12s executions in %4ss %6s inputs  %s' "fuzz_$t" \
        "$(executions "$log")" "$took" "$files" "$result")")
done
echo "== summary (${seconds}s each)"
printf '%s\n' "${summary[@]}"
exit "$failed"
