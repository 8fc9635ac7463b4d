#!/bin/bash
# tests/bench.sh BUILD - vdesk's benchmarks (make bench; docs/benchmarks.md).
# Every figure sets two things measured side by side in this one run, on
# this machine, interleaved where they can be.
#
#   spank:     `srun true` with the vdesk plugin loaded versus not
#              (tests/bench/spank.sh)
#   isolation: a CPU-bound job on the job's CPUs beside a busy desktop shrunk
#              to desktop_cores, versus beside it paused; and where each
#              QEMU thread may run after the shrink (tests/bench/isolation.sh)
#   node/save: the curve: eviction and restore times by guest RAM and mode,
#              vdesk versus the bare libvirt calls, save and restore versus
#              the plain libvirt calls and the disk (tests/bench/curve.sh)
#   migrate:   target choice over 10,000 simulated nodes; desk-n1 to n2 and
#              back by vdesk versus the bare peer-to-peer migration, on a
#              bed of its own with a daemon per node (tests/bench/migrate.sh)
#   snapshot:  a recovery point, and a chain flattened under a running
#              guest, through lib/snap versus the bare libvirt calls
#              (tests/bench/snap.sh)
#   shmem:     two guests copying into and out of a shared memory region
#              through its PCI BAR at once versus the same memcpy on the host
#              into /dev/shm (tests/bench/shmem.sh)
#   pci:       one whole-IOMMU-group rebind (to vfio-pci and back) on the
#              sysfs emulator through lib/pci (a child process and a timeout
#              per write, every result checked) versus the same writes bare
#
# Output: BUILD/bench/ (bench.txt: this text; the raw data; curve.svg,
# copied to docs/benchmarks-curve-CODENAME.svg). Knobs (environment):
# VDESK_BENCH_SIZES ("256 1024 4096" MiB), VDESK_BENCH_RUNS (spank pairs,
# 200), VDESK_BENCH_NODE_RUNS (save and shutdown reps; by size: 5, 3, 2),
# VDESK_BENCH_FAST_RUNS (suspend and shrink reps, 9), VDESK_BENCH_ISO_PAIRS
# (30), VDESK_BENCH_ISO_ROUNDS (cpuwork's, 1000), VDESK_BENCH_PCI_RUNS (30),
# VDESK_BENCH_SHM_MIB (16), VDESK_BENCH_SHM_ROUNDS (5),
# VDESK_BENCH_SETTLE (s a guest runs before a save, 2).
set -u
build=$(cd "${1:?usage: bench.sh BUILD}" && pwd) || exit 1
export T_BUILD=$build   # tests/lib.sh's
here=$(cd "$(dirname "$0")" && pwd)
bench_src=$here/bench
# shellcheck source=tests/lib.sh
. "$here/lib.sh"
# shellcheck source=tests/bench/common.sh
. "$bench_src/common.sh"
# shellcheck source=tests/bench/spank.sh
. "$bench_src/spank.sh"
# shellcheck source=tests/bench/isolation.sh
. "$bench_src/isolation.sh"
# shellcheck source=tests/bench/curve.sh
. "$bench_src/curve.sh"
# shellcheck source=tests/bench/migrate.sh
. "$bench_src/migrate.sh"
# shellcheck source=tests/bench/snap.sh
. "$bench_src/snap.sh"
# shellcheck source=tests/bench/shmem.sh
. "$bench_src/shmem.sh"

bench_die() { echo "bench: $*" >&2; exit 1; }

bench_pci() {
    local out n a b
    bed_hw workstation || return 1
    out=$("$build/tests/pcibench" "$bed/hw/sys" "$bed/hw/dev" "$bed/hw/proc" 0000:01:00.0 "${VDESK_BENCH_PCI_RUNS:-30}") || return 1
    read -r n a b <<<"$out"
    printf 'pci: rebind of a %d-function IOMMU group to vfio-pci and back on the emulator, median of %d: vdesk %.1f ms, bare writes %.1f ms, ratio %.2f\n' \
        "$n" "${VDESK_BENCH_PCI_RUNS:-30}" "$a" "$b" "$(calc "$a / $b" %.4f)"
}

bench_preflight() {
    local t
    for t in gnuplot taskset srun qemu-img; do
        command -v "$t" >/dev/null || bench_die "$t is missing (make bench installs what it needs)"
    done
    for t in tests/bedctl tests/cpuwork tests/pcibench tests/placebench tests/shmcopy cli/vdeskctl spank/vdesk.so; do
        [ -x "$build/$t" ] || [ -f "$build/$t" ] || bench_die "$build/$t is missing: run make"
    done
    [ "$(cat /sys/devices/system/cpu/online)" != 0 ] || bench_die "the isolation benchmark needs 2 CPUs or more"
}

# Everything the run started goes, whichever way it ends (Ctrl-C too).
bench_cleanup() {
    trap '' INT TERM HUP
    iso_hog_stop
    if [ -n "${bed:-}" ] && [ -d "$bed" ]; then
        bed_down "$bed" 2>>"$bench_out/bed.log"
        [ -e "$bed/pids" ] || rm -rf "$bed"   # a bed that never started
    fi
    rm -rf "${bench_shm:-}" "${bench_tmp:-}"
    [ -z "${shm_region:-}" ] || rm -f "/dev/shm/$shm_region"
    # tee ends when the last copy of its pipe closes: now, or, after an
    # interrupt that left bash holding copies, when this shell exits.
    if [ -n "${bench_tee:-}" ]; then
        exec >&- 2>&-
        for _ in $(seq 20); do kill -0 "$bench_tee" 2>/dev/null || break; sleep 0.1; done
    fi
}

bench_out=$build/bench
mkdir -p "$bench_out" || bench_die "cannot create $bench_out"
bench_preflight
bench_tmp=$(mktemp -d /tmp/vdbench.XXXXXX) || bench_die "no scratch directory"
bench_shm=$(mktemp -d /dev/shm/vdbench.XXXXXX) || bench_die "no directory in /dev/shm"
bed=$(mktemp -d /tmp/vdb.XXXXXX) || bench_die "no directory for the bed"
trap bench_cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM HUP
# tee ignores Ctrl-C: it must outlive the bench, which still writes while
# it cleans up.
exec > >(trap '' INT TERM HUP; exec tee "$bench_out/bench.txt") 2>&1
bench_tee=$!

bench_version=$(sed -n 's/^#define VD_VERSION "\(.*\)"/\1/p' "$build/config.h")
bench_libvirt=$(libvirtd --version | awk '{ print $NF }')
bench_qemu=$(qemu-system-x86_64 --version | awk 'NR == 1 { print $4 }')
t0=$SECONDS
: >"$bench_out/bed.log"
bed_vdesk_files "$bed"
bed_up "$bed" 2>>"$bench_out/bed.log" || bench_die "the test bed did not start (see $bench_out/bed.log)"
printf 'bench: vdesk %s, %s, %s CPUs, %s GiB RAM, libvirt %s, QEMU %s (TCG guests), %s, load average %s at the start\n' \
    "$bench_version" "$(. /etc/os-release && echo "$PRETTY_NAME")" "$(nproc)" \
    "$(awk '/^MemTotal:/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)" "$bench_libvirt" "$bench_qemu" \
    "$(date '+%F %H:%M')" "$(cut -d ' ' -f 1 /proc/loadavg)"
bench_spank || bench_die "spank benchmark failed"
bench_isolation || bench_die "isolation benchmark failed"
bench_curve || bench_die "curve benchmark failed"
bench_shmem || bench_die "shared memory benchmark failed"
bench_pci || bench_die "pci benchmark failed"
bench_snap || bench_die "snapshot benchmark failed"
bench_migrate || bench_die "migrate benchmark failed"
echo "bench: done in $((SECONDS - t0)) s, load average $(cut -d ' ' -f 1 /proc/loadavg) at the end; output in $bench_out"
