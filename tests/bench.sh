#!/bin/bash
# tests/bench.sh BUILD - vdesk's benchmarks. Every figure is a ratio of two
# things measured side by side in this one run, on this machine.
#
#   spank: `srun true` with the vdesk plugin loaded versus not loaded, same
#          cluster; runs interleaved (A B A B ...) so that drift hits both.
#          plugstack.conf is read by srun and slurmstepd at every step, so
#          swapping its content between runs loads or skips the plugin in both.
#   node:  per mode, one whole evict+restore of a desktop guest through vdesk
#          (`vdeskctl evict MODE` + `vdeskctl restore`: two processes, lock,
#          journal with fsync, snapshot, record) versus the bare libvirt calls
#          that do the same to the guest in one process (`bedctl cycle`),
#          interleaved on the same guest.
#   pci:   one whole-IOMMU-group rebind (to vfio-pci and back) on the sysfs
#          emulator through lib/pci (a child process and a timeout per
#          write, every result checked) versus the same writes made bare.
#   save:  vdesk's save throughput (save file size / save phase time) versus
#          the disk's sequential write bandwidth (dd with fsync) into the same
#          directory.
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

# guest_ready: desk-n1 runs, with init up (heartbeats of the current boot).
guest_ready() {
    local b n
    [ "$("$build/tests/bedctl" state desk-n1)" = running ] || return 1
    read -r b n <<<"$(bed_hb desk-n1)"
    [ "${b:-0}" -ge 1 ] && [ "${n:-0}" -ge 3 ] && [ "$b" -ge "${1:-0}" ]
}

ready_after() {   # waits for a running guest; after a reboot, for its new boot
    local b
    read -r b _ <<<"$(bed_hb desk-n1)"
    t_poll 60 guest_ready "$b" || { echo "bench: desk-n1 did not come back" >&2; return 1; }
    sleep 0.3
}

bench_node() {
    local conf=$bed/vdesk/vdesk.conf mode reps i a b
    vdesk_cycle() {
        "$build/cli/vdeskctl" --conf "$conf" --node n1 evict "$1" >/dev/null &&
            "$build/cli/vdeskctl" --conf "$conf" --node n1 restore >/dev/null
    }
    for mode in suspend shrink save shutdown; do
        case $mode in suspend) reps=15 ;; shrink) reps=9 ;; *) reps=${VDESK_BENCH_NODE_RUNS:-5} ;; esac
        a=() b=()
        for i in $(seq "$reps"); do
            ready_after || return 1
            b+=("$(time_ms "$build/tests/bedctl" cycle desk-n1 "$mode" "$bed/bare.save")") || return 1
            [ "$mode" = shutdown ] && { t_poll 60 sh -c "grep -ac 'vdesk-guest: up' '$VDESK_BED/guests/desk-n1/console.log' | grep -qx $((2 * i))"; }
            ready_after || return 1
            a+=("$(time_ms vdesk_cycle "$mode")") || return 1
            [ "$mode" = shutdown ] && { t_poll 60 sh -c "grep -ac 'vdesk-guest: up' '$VDESK_BED/guests/desk-n1/console.log' | grep -qx $((2 * i + 1))"; }
        done
        local ma mb
        ma=$(printf '%s\n' "${a[@]}" | median)
        mb=$(printf '%s\n' "${b[@]}" | median)
        printf 'node: %-8s evict+restore, median of %2d: vdesk %8.1f ms, bare libvirt %8.1f ms, ratio %.3f (target <= 1.05)\n' \
            "$mode" "$reps" "$ma" "$mb" "$(echo "scale=4; $ma / $mb" | bc)"
    done
}

bench_save_throughput() {
    local conf=$bed/vdesk/vdesk.conf dir=$bed/vdesk/state/n1 bytes save_ms mb dd_ms
    ready_after || return 1
    "$build/cli/vdeskctl" --conf "$conf" --node n1 evict save >/dev/null || return 1
    bytes=$(stat -c %s "$dir/desk-n1.save")
    save_ms=$(tail -n 1 "$dir/records.jsonl" | sed -n 's/.*"name":"save","ms":\([0-9]*\).*/\1/p')
    "$build/cli/vdeskctl" --conf "$conf" --node n1 restore >/dev/null || return 1
    mb=$(( (bytes + 1048575) / 1048576 ))
    dd_ms=$(time_ms dd if=/dev/zero of="$dir/dd.bench" bs=1M count="$mb" conv=fsync status=none)
    rm -f "$dir/dd.bench"
    printf 'save: %d MiB in %d ms = %.0f MiB/s; dd with fsync into the same directory %.0f MiB/s; ratio %.3f\n' \
        "$mb" "$save_ms" "$(echo "scale=2; $bytes / 1048576 * 1000 / $save_ms" | bc)" \
        "$(echo "scale=2; $mb * 1000 / $dd_ms" | bc)" \
        "$(echo "scale=4; ($bytes / 1048576 * 1000 / $save_ms) / ($mb * 1000 / $dd_ms)" | bc)"
}

bench_pci() {
    local out
    bed_hw workstation || return 1
    out=$("$build/tests/pcibench" "$bed/hw/sys" "$bed/hw/dev" "$bed/hw/proc" 0000:01:00.0 "${VDESK_BENCH_PCI_RUNS:-30}") || return 1
    read -r n a b <<<"$out"
    printf 'pci: rebind of a %d-function IOMMU group to vfio-pci and back on the emulator, median of %d: vdesk %.1f ms, bare writes %.1f ms, ratio %.2f\n' \
        "$n" "${VDESK_BENCH_PCI_RUNS:-30}" "$a" "$b" "$(echo "scale=4; $a / $b" | bc)"
}

bed=$(mktemp -d /tmp/vdb.XXXXXX)
bed_vdesk_files "$bed"
bed_up "$bed" 2>/dev/null || { echo "bench: the test bed did not start" >&2; exit 1; }
trap 'bed_down "$bed"' EXIT
bench_spank
bed_guest desk-n1 >/dev/null && bed_wait_hb desk-n1 60 || { echo "bench: no guest" >&2; exit 1; }
bench_node
bench_save_throughput
bench_pci
