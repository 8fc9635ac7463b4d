# shellcheck shell=bash disable=SC2154
# (SC2154: build, bed, bench_* are set by tests/bench.sh, which sources this.)
# spank: `srun true` with the vdesk plugin loaded versus not, same cluster.
# plugstack.conf is read by srun and slurmstepd at every step, so swapping
# its content between runs loads the plugin in both or in neither. Pairs
# run back to back (B A, B A, ...) so that drift hits both sides; the
# per-pair ratios and a bootstrap of the ratio of medians tell a 1%
# difference from noise. The pairs (ms, loaded then not) go to
# $bench_out/spank-pairs.txt. Part of tests/bench.sh.

bench_spank() {
    local ps=$VDESK_BED/slurm/plugstack.conf runs=${VDESK_BENCH_RUNS:-200} a b f=$bench_out/spank-pairs.txt
    local on="required $build/spank/vdesk.so default=auto" off="# vdesk not loaded"
    for _ in 1 2 3; do
        srun -w n1 true || bench_fail "srun -w n1 true failed on the bed" || return 1
    done
    : >"$f"
    for _ in $(seq "$runs"); do
        echo "$off" >"$ps" && b=$(timed srun -w n1 true) || return 1
        echo "$on" >"$ps" && a=$(timed srun -w n1 true) || return 1
        echo "$a $b" >>"$f"
    done
    echo "# vdesk not loaded" >"$ps"
    local n ma mb r q1 q3 lo hi
    read -r n ma mb r q1 q3 lo hi <<<"$(pair_stats "$f")" || return 1
    printf 'spank: srun true, %d pairs interleaved: plugin loaded %.1f ms, not loaded %.1f ms (medians), ratio %.3f (target <= 1.01); per-pair ratio IQR %.3f-%.3f; bootstrap 95%% interval of the ratio %.3f-%.3f\n' \
        "$n" "$ma" "$mb" "$r" "$q1" "$q3" "$lo" "$hi"
}
