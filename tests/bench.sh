#!/bin/bash
# tests/bench.sh BUILD - vdesk's benchmarks. Every figure is a ratio of two
# things measured side by side in this one run, on this machine.
#
#   spank: `srun true` with the vdesk plugin loaded versus not loaded, same
#          cluster; runs interleaved (A B A B ...) so that drift hits both.
#          plugstack.conf is read by srun and slurmstepd at every step, so
#          swapping its content between runs loads or skips the plugin in both.
set -u
build=$(cd "${1:?usage: bench.sh BUILD}" && pwd)
T_BUILD=$build
. "$(dirname "$0")/lib.sh"
RUNS=${VDESK_BENCH_RUNS:-100}

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# time_ms CMD...: wall time of CMD in milliseconds (three decimals).
time_ms() {
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1 || { echo "bench: '$*' failed" >&2; return 1; }
    t1=$(date +%s%N)
    echo "scale=3; ($t1 - $t0) / 1000000" | bc
}

bench_spank() {
    local ps=$VDESK_BED/slurm/plugstack.conf on off i a=() b=()
    on="required $build/spank/vdesk.so default=auto"
    off="# vdesk not loaded"
    for i in 1 2 3; do srun -w n1 true; done   # warm-up
    for i in $(seq "$RUNS"); do
        echo "$off" >"$ps"; b+=("$(time_ms srun -w n1 true)") || return 1
        echo "$on" >"$ps"; a+=("$(time_ms srun -w n1 true)") || return 1
    done
    local ma mb
    ma=$(printf '%s\n' "${a[@]}" | median)
    mb=$(printf '%s\n' "${b[@]}" | median)
    printf 'spank: srun true, median of %d runs each: plugin loaded %.1f ms, not loaded %.1f ms, ratio %.3f (target <= 1.01)\n' \
        "$RUNS" "$ma" "$mb" "$(echo "scale=4; $ma / $mb" | bc)"
}

bed=$(mktemp -d /tmp/vdb.XXXXXX)
bed_up "$bed" 2>/dev/null || { echo "bench: the test bed did not start" >&2; exit 1; }
trap 'bed_down "$bed"' EXIT
bench_spank
