#!/bin/bash
# tests/check.sh [--unit-only|--integration-only] BUILD
# Runs every test and ends with one line "total: N passed, N failed".
#   units:       each cmocka binary, then its ASan/UBSan build, then under valgrind;
#                then the fuzz targets' seed corpus (tests/fuzz/replay.c)
#   integration: each tests/integration/t_*.sh on a fresh test bed
set -u
mode=all
case ${1:-} in --unit-only) mode=unit; shift ;; --integration-only) mode=integration; shift ;; esac
build=${1:?usage: check.sh [--unit-only|--integration-only] BUILD}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$build" && pwd)
pass=0 fail=0 failed=()
# Tests that need the sysfs emulator find it and its machine files here.
export VDESK_BUILD=$build VDESK_SRC=$root

# count LOG: add a runner's closing counts (cmocka's or "N passed, N failed").
count() {
    local p f
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p; s/^.*: \([0-9]*\) passed, [0-9]* failed$/\1/p' "$1" | tail -n 1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:$/\1/p; s/^.*: [0-9]* passed, \([0-9]*\) failed$/\1/p' "$1" | tail -n 1)
    if [ -z "$p" ] && [ -z "$f" ]; then
        echo "  (no summary: the runner crashed; counted as 1 failure)"; f=1
    fi
    pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0}))
}

run() {
    local name=$1 log; shift
    log=$(mktemp)
    "$@" >"$log" 2>&1
    report "$name" "$log" $?
}

# report NAME LOG RC: what one runner printed, and its counts.
report() {
    local name=$1 log=$2 rc=$3
    echo "== $name"
    if [ "$rc" -eq 0 ]; then
        grep -E '^(ok  |\[  PASSED  \]|.*: [0-9]+ passed, [0-9]+ failed$|    )' "$log"
    else
        sed 's/^/  | /' "$log" | tail -n 80   # the whole story of a failure
    fi
    count "$log"
    [ "$rc" -eq 0 ] || { [ "$fail" -gt 0 ] || fail=1; echo "  exit status $rc"; }
    [ "$rc" -eq 0 ] || failed+=("$(failures "$name" "$log" "$rc")")
    rm -f "$log"
}

# failures NAME LOG RC: each failed test of a runner with what it said just
# before (an integration test's messages come before its FAIL line), for the
# list at the end: CI shows the end of a long output.
failures() {
    local said
    said=$(awk '/listed below:$/ { exit }
                /^(FAIL |\[  FAILED  \] [A-Za-z_])/ { for (i = n - 4; i < n; i++) if (i >= 0) print "    | " last[i % 4]; print "    " $0; n = 0; next }
                /^ok / { n = 0; next }
                { last[n % 4] = $0; n++ }' "$2" | head -n 60)
    echo "  $1 (exit status $3):"
    if [ -n "$said" ]; then echo "$said"; else tail -n 5 "$2" | sed 's/^/    | /'; fi
}

if [ "$mode" != integration ]; then
    # NVML is the stand-in (tests/sysfs/nvml-emu.c): this machine has no driver.
    export LD_LIBRARY_PATH=$build/tests/nvml${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    # The units time nothing and each keeps to its own temporary
    # directories: they run side by side, one per core, and are reported
    # in order.
    lanes=$(nproc 2>/dev/null || echo 1)
    names=() logs=() pids=()
    for t in "$build"/tests/test_*; do
        for v in plain asan valgrind; do
            case $v in
            plain) name="unit $(basename "$t")"; set -- "$t" ;;
            asan) name="unit $(basename "$t") (ASan/UBSan)"; set -- "$build/tests/asan/$(basename "$t")" ;;
            valgrind) name="unit $(basename "$t") (valgrind)"
                # Its few timed asserts allow for valgrind's pace.
                set -- env VDESK_TEST_TIME_SCALE=5 valgrind -q --error-exitcode=9 --leak-check=full \
                    --suppressions="$root/tests/valgrind.supp" --errors-for-leak-kinds=definite "$t" ;;
            esac
            while [ "$(jobs -rp | wc -l)" -ge "$lanes" ]; do wait -n; done
            log=$(mktemp)
            ( "$@" >"$log" 2>&1; echo $? >"$log.rc" ) &
            names+=("$name") logs+=("$log") pids+=($!)
        done
    done
    for i in "${!names[@]}"; do
        wait "${pids[$i]}"
        report "${names[$i]}" "${logs[$i]}" "$(cat "${logs[$i]}.rc" 2>/dev/null || echo 1)"
        rm -f "${logs[$i]}.rc"
    done
    # The fuzz targets' seed corpus (tests/fuzz/corpus/TARGET), replayed by
    # gcc ASan/UBSan builds, one child per input: "fuzz_TARGET: N passed, N failed".
    for t in "$build"/tests/fuzz/fuzz_*; do
        name=$(basename "$t")
        run "fuzz replay $name" "$t" "$root/tests/fuzz/corpus/${name#fuzz_}"/*
    done
fi
if [ "$mode" != unit ]; then
    for t in "$root"/tests/integration/t_*.sh; do
        run "integration $(basename "$t" .sh)" env T_BUILD="$build" bash "$t"
    done
fi
if [ "${#failed[@]}" -gt 0 ]; then
    echo "failed:"
    printf '%s\n' "${failed[@]}"
fi
echo "total: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
