# tests/bench/snap.sh - sourced by tests/bench.sh: recovery snapshots on a
# running 256 MiB guest, vdesk (lib/snap) against the bare libvirt calls,
# interleaved run by run (tests/bench/snapbench.c). Knobs:
# VDESK_BENCH_SNAP_RUNS (7), VDESK_BENCH_SNAP_LAYERS (the chain flatten
# merges, 5).

bench_snap() {
    local runs=${VDESK_BENCH_SNAP_RUNS:-7} layers=${VDESK_BENCH_SNAP_LAYERS:-5} dir out sv sb fv fb
    dir=$bench_tmp/snapshots
    mkdir -p "$dir" && chmod 0711 "$dir" || return 1
    guest_start snap-g 256 || return 1
    out=$("$build/tests/snapbench" snap-g "$dir" "$runs" "$layers") || { bench_fail "snapbench failed"; return 1; }
    "$build/tests/bedctl" purge snap-g >/dev/null || return 1
    read -r _ sv sb _ fv fb <<<"$out"
    printf 'snapshot: a recovery point of a running guest, median of %d: vdesk %.1f ms, bare virDomainSnapshotCreateXML %.1f ms, ratio %.2f\n' \
        "$runs" "$sv" "$sb" "$(calc "$sv / $sb")"
    printf 'flatten: a chain of %d points merged down to 1 under the running guest, median of %d: vdesk %.1f ms, bare virDomainBlockCommit waited for %.1f ms, ratio %.2f\n' \
        "$((layers + 1))" "$runs" "$fv" "$fb" "$(calc "$fv / $fb")"
}
