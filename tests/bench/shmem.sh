# shellcheck shell=bash disable=SC2154
# (SC2154: build, bench_* are set by tests/bench.sh, which sources this.)
# The shared memory benchmark (tests/bench.sh): two guests, shm-a and shm-b,
# share a region (vdeskctl shmem) and each copies a buffer into all of it
# and back out through a mapping of its PCI BAR (tests/guest/shmcopy.c,
# vdesk.shmem_bench=), both at the same time, against the same program on
# the host copying into and out of a file of the same size in /dev/shm (a
# memcpy into shared memory). TCG makes a guest's absolute figure
# meaningless: the ratio is what to watch. Knobs: VDESK_BENCH_SHM_MIB (16),
# VDESK_BENCH_SHM_ROUNDS (5).

# shm_times: "WRITE_NS READ_NS" of each shmcopy line read.
shm_times() { sed -n 's/.*shmcopy: bytes=[0-9]* write_ns=\([0-9]*\) read_ns=\([0-9]*\).*/\1 \2/p'; }

# shm_guest DOM FILE: the guest's rounds, once it printed them all.
shm_guest() {
    local con=$VDESK_BED/guests/$1/console.log
    t_poll 300 grep -aq '^vdesk-shmem-bench: done' "$con" ||
        bench_fail "$1 did not finish its shared memory rounds: $(grep -a vdesk-shmem "$con" | tail -n 2)" || return 1
    grep -a '^vdesk-shmem-bench: shmcopy' "$con" | shm_times >>"$2"
    [ -s "$2" ] || bench_fail "$1 printed no copy times: $(grep -a vdesk-shmem "$con" | tail -n 2)"
}

bench_shmem() {
    local mib=${VDESK_BENCH_SHM_MIB:-16} rounds=${VDESK_BENCH_SHM_ROUNDS:-5} region=vdbench-$$ d
    # shellcheck disable=SC2034  # (bench_cleanup, in tests/bench.sh, removes its backing file)
    shm_region=$region
    local ctl=("$build/cli/vdeskctl" --conf "$bed/vdesk/vdesk.conf" --node n1)
    "${ctl[@]}" shmem create "$region" "${mib}M" >/dev/null || return 1
    # Attached while off, so that each maps the region from its boot: a
    # Linux guest on the bed finds no room for a hot-plugged BAR over 2 MiB
    # (docs/design.md, "Shared memory"). Both then run their rounds at once.
    for d in shm-a shm-b; do
        rm -f "$VDESK_BED/guests/$d/console.log"
        BED_GUEST_PCI_BRIDGE=1 bed_guest "$d" "vdesk.shmem=- vdesk.shmem_bench=$rounds" >/dev/null &&
            "$build/tests/bedctl" destroy "$d" && "${ctl[@]}" shmem attach "$region" "$d" >/dev/null || return 1
    done
    for d in shm-a shm-b; do "$build/tests/bedctl" start "$d" >/dev/null || return 1; done
    : >"$bench_tmp/shm-guest"
    shm_guest shm-a "$bench_tmp/shm-guest" && shm_guest shm-b "$bench_tmp/shm-guest" || return 1
    for d in shm-a shm-b; do "$build/tests/bedctl" purge "$d" >/dev/null; done
    "${ctl[@]}" shmem destroy "$region" >/dev/null || return 1
    truncate -s "${mib}M" "$bench_shm/shm-host" &&
        "$build/tests/shmcopy" "$bench_shm/shm-host" $((mib << 20)) "$rounds" | shm_times >"$bench_tmp/shm-host" &&
        rm -f "$bench_shm/shm-host" || return 1
    cp "$bench_tmp/shm-guest" "$bench_out/shmem-guest.txt" && cp "$bench_tmp/shm-host" "$bench_out/shmem-host.txt"
    local gw gr hw hr
    gw=$(median_col "$bench_tmp/shm-guest" 1) gr=$(median_col "$bench_tmp/shm-guest" 2)
    hw=$(median_col "$bench_tmp/shm-host" 1) hr=$(median_col "$bench_tmp/shm-host" 2)
    printf 'shmem: a %d MiB region, memcpy in and out through the BAR by two TCG guests at once, median of %d rounds each: write %.0f MiB/s, read %.0f MiB/s; the same memcpy on the host into /dev/shm: write %.0f MiB/s, read %.0f MiB/s; ratio guest/host write %.4f, read %.4f\n' \
        "$mib" "$rounds" "$(calc "$mib * 1e9 / $gw" %.1f)" "$(calc "$mib * 1e9 / $gr" %.1f)" \
        "$(calc "$mib * 1e9 / $hw" %.1f)" "$(calc "$mib * 1e9 / $hr" %.1f)" "$(calc "$hw / $gw" %.5f)" \
        "$(calc "$hr / $gr" %.5f)"
}
