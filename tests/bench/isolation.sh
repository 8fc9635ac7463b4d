# shellcheck shell=bash disable=SC2154
# (SC2154: build, bed, bench_* are set by tests/bench.sh, which sources this.)
# isolation: does a shrunk desktop leave the job's CPUs alone?
#
# A desktop guest computes all the time (vdesk.busy=1) and is evicted in
# shrink mode (`vdeskctl evict shrink`: its vCPUs and emulator threads
# pinned to desktop_cores). A CPU-bound job (cpuwork) pinned with taskset
# to the other CPUs runs beside it (A) and beside the same desktop paused
# (B: nothing of it runs), and, for reference, beside the paused desktop
# and a plain busy loop of the host's pinned to desktop_cores (C: what two
# busy CPUs cost each other on this machine without QEMU); back to back,
# the order turned every round. The ratio of the medians A/B is the job's
# slowdown (goal <= 1.02).
#
# It also shows the confinement itself: each QEMU thread's allowed CPUs
# before and after the shrink, and whether all are inside desktop_cores.
# Part of tests/bench.sh; the runs (ns, "A B C" a round) go to
# $bench_out/isolation-runs.txt.

# qemu_threads PID: "TID<TAB>CPUS<TAB>NAME" for each thread of the
# process, in the order they were made.
qemu_threads() {
    local tid t
    for tid in $(printf '%s\n' /proc/"$1"/task/* | sed 's,.*/,,' | sort -n); do
        t=/proc/$1/task/$tid
        printf '%s\t%s\t%s\n' "$tid" \
            "$(awk '$1 == "Cpus_allowed_list:" { print $2 }' "$t/status" 2>/dev/null)" \
            "$(cat "$t/comm" 2>/dev/null)"
    done
}

# thread_ticks PID TID: the thread's CPU time so far (utime + stime, ticks).
thread_ticks() {
    local stat
    stat=$(cat "/proc/$1/task/$2/stat") || return 1
    stat=${stat##*) }   # the name may hold spaces and parentheses
    awk '{ print $12 + $13 }' <<<"$stat"
}

# outside_ticks: the CPU time (ticks) of the QEMU threads iso_show found
# outside desktop_cores, so far; a thread that ended counts 0.
outside_ticks() {
    local tid sum=0 t
    for tid in "${iso_outside[@]}"; do
        t=$(thread_ticks "$iso_pid" "$tid" 2>/dev/null) || t=0
        sum=$((sum + t))
    done
    echo "$sum"
}

# iso_show PID CORES BEFORE AFTER: the table and the verdict.
iso_show() {
    local pid=$1 cores=$2 before=$3 after=$4 tid cpus name was n=0 out=()
    iso_outside=()
    # shellcheck disable=SC2016 # the backquotes are text
    printf 'isolation: QEMU of desk-n1 (pid %s), allowed CPUs of each thread before -> after `vdeskctl evict shrink` (desktop_cores = %s):\n' \
        "$pid" "$cores"
    while IFS=$'\t' read -r tid cpus name; do
        was=$(awk -F'\t' -v t="$tid" '$1 == t { print $2 }' <<<"$before")
        n=$((n + 1))
        if cpus_inside "$cpus" "$cores"; then
            printf 'isolation:   %-8s %-18s %5s -> %s\n' "$tid" "$name" "${was:-new}" "$cpus"
        else
            printf 'isolation:   %-8s %-18s %5s -> %s   outside\n' "$tid" "$name" "${was:-new}" "$cpus"
            out+=("$name")
            iso_outside+=("$tid")
        fi
    done <<<"$after"
    if [ "${#out[@]}" -eq 0 ]; then
        printf 'isolation: all %d QEMU threads on CPUs %s after shrink: yes\n' "$n" "$cores"
    else
        printf 'isolation: all %d QEMU threads on CPUs %s after shrink: no (%d outside: %s)\n' \
            "$n" "$cores" "${#out[@]}" "$(printf '%s\n' "${out[@]}" | sort | uniq -c | awk '{ c = $1; $1 = ""; printf "%s%s x%d", s, substr($0, 2), c; s = ", " }')"
    fi
    # Those are QEMU's own helpers (RCU, the thread pool's workers, the
    # monitor's I/O thread): libvirt confines them by the emulator's cgroup
    # (virDomainPinEmulator), on a host where it manages cgroups, as
    # libvirtd under systemd does. The bed's private libvirtd has none, and
    # without a cgroup the emulator pin reaches QEMU's main thread only.
    [ "${#out[@]}" -eq 0 ] ||
        printf 'isolation: the threads outside are QEMU'"'"'s helpers, which libvirt confines through the emulator cgroup where it manages cgroups (libvirtd under systemd); the bed'"'"'s libvirtd has no cgroups: their CPU time while the job ran is below\n'
    return 0
}

# iso_desktop ON: the desktop running (1) or paused (0).
iso_desktop() {
    local state
    state=$("$build/tests/bedctl" state desk-n1) || return 1
    if [ "$1" = 1 ] && [ "$state" != running ]; then
        "$build/tests/bedctl" resume desk-n1
    elif [ "$1" = 0 ] && [ "$state" != paused ]; then
        "$build/tests/bedctl" suspend desk-n1
    fi
}

# iso_hog_stop: ends the host busy loop, if one runs (bench.sh's cleanup
# calls it too).
iso_hog_stop() {
    [ -n "${iso_hog:-}" ] || return 0
    kill "$iso_hog" 2>/dev/null
    wait "$iso_hog" 2>/dev/null
    iso_hog=
}

# iso_run BESIDE: one run of the job beside the desktop running (desk),
# paused (off), or paused with a plain busy loop of the host's pinned to
# desktop_cores instead (hog: what the machine itself costs, shared caches
# or hyperthreads, with no QEMU at all); the job's ns into iso_last. Beside
# the desktop, adds the vCPU thread's ticks to iso_ticks and the wall time
# they were counted in to iso_us (globals: no subshell).
iso_run() {
    local t0 t1 r
    iso_desktop "$([ "$1" = desk ] && echo 1 || echo 0)" || return 1
    if [ "$1" = hog ]; then
        taskset -c "$iso_cores" sh -c 'while :; do :; done' &
        iso_hog=$!
    fi
    sleep 0.3   # the vCPU or the loop at full speed, or settled idle
    local w0=${EPOCHREALTIME/./}
    if ! { t0=$(thread_ticks "$iso_pid" "$iso_vcpu") &&
           r=$(taskset -c "$iso_job" "$build/tests/cpuwork" "$iso_rounds") &&
           t1=$(thread_ticks "$iso_pid" "$iso_vcpu"); }; then
        iso_hog_stop
        return 1
    fi
    local w1=${EPOCHREALTIME/./}
    iso_hog_stop
    iso_last=${r%% *}
    if [ "$1" = desk ]; then
        iso_ticks=$((iso_ticks + t1 - t0))
        iso_us=$((iso_us + w1 - w0))
    fi
}

# iso_measure FILE PAIRS: PAIRS rounds of the three runs, in an order that
# turns every round; "DESK OFF HOG" (ns) a line into FILE.
iso_measure() {
    local i k order=(desk off hog) w
    local -A got=()
    iso_run off && iso_run desk || return 1   # warm-up
    iso_ticks=0 iso_us=0
    : >"$1"
    for i in $(seq "$2"); do
        for k in 0 1 2; do
            w=${order[$(((i + k) % 3))]}
            iso_run "$w" || return 1
            got[$w]=$iso_last
        done
        echo "${got[desk]} ${got[off]} ${got[hog]}" >>"$1"
    done
}

bench_isolation() {
    local conf=$bed/vdesk/vdesk.conf before after f=$bench_out/isolation-runs.txt
    iso_rounds=${VDESK_BENCH_ISO_ROUNDS:-1000} iso_ticks=0 iso_us=0
    iso_cores=$(conf_node_value n1 desktop_cores)
    [ -n "$iso_cores" ] || bench_fail "no desktop_cores for node n1 in $conf" || return 1
    iso_job=$(cpus_minus "$(cat /sys/devices/system/cpu/online)" "$iso_cores")
    [ -n "$iso_job" ] || bench_fail "no CPU is left for the job outside desktop_cores $iso_cores" || return 1
    guest_start desk-n1 192 "" vdesk.busy=1 || return 1
    iso_pid=$(cat "$VDESK_BED/libvirt/run/qemu/desk-n1.pid") || return 1
    before=$(qemu_threads "$iso_pid")
    "$build/cli/vdeskctl" --conf "$conf" --node n1 evict shrink >/dev/null || bench_fail "vdeskctl evict shrink failed" || return 1
    after=$(qemu_threads "$iso_pid")
    iso_show "$iso_pid" "$iso_cores" "$before" "$after"
    iso_vcpu=$(awk -F'\t' '$3 ~ /^CPU [0-9]+\// { print $1; exit }' <<<"$after")
    [ -n "$iso_vcpu" ] || bench_fail "no vCPU thread in QEMU $iso_pid" || return 1
    local out0 out1 w0=$SECONDS
    out0=$(outside_ticks) || return 1
    iso_measure "$f" "${VDESK_BENCH_ISO_PAIRS:-30}" || return 1
    out1=$(outside_ticks) || return 1
    iso_desktop 1 &&
        "$build/cli/vdeskctl" --conf "$conf" --node n1 restore >/dev/null ||
        bench_fail "the isolation desktop did not come back" || return 1
    "$build/tests/bedctl" purge desk-n1 || return 1
    local n ma mb r q1 q3 lo hi busy
    read -r n ma mb r q1 q3 lo hi <<<"$(cut -d ' ' -f 1,2 "$f" | pair_stats /dev/stdin)" || return 1
    busy=$(calc "$iso_ticks / $(getconf CLK_TCK) * 1e6 / ($iso_us > 0 ? $iso_us : 1) * 100" %.0f)
    printf 'isolation: cpuwork on CPUs %s beside the busy desktop shrunk to CPUs %s vs beside it paused, %d pairs interleaved: %.1f ms vs %.1f ms (medians), ratio %.3f (target <= 1.02); per-pair ratio IQR %.3f-%.3f; bootstrap 95%% interval of the ratio %.3f-%.3f; the desktop'"'"'s vCPU thread ran %s%% of the time beside the job\n' \
        "$iso_job" "$iso_cores" "$n" "$(calc "$ma / 1e6" %.1f)" "$(calc "$mb / 1e6" %.1f)" "$r" "$q1" "$q3" "$lo" "$hi" "$busy"
    read -r n ma mb r q1 q3 lo hi <<<"$(awk '{ print $3, $2 }' "$f" | pair_stats /dev/stdin)" || return 1
    printf 'isolation: reference, the machine alone: cpuwork beside a host busy loop pinned to CPUs %s (no QEMU) vs beside nothing, same rounds: %.1f ms vs %.1f ms, ratio %.3f; per-pair ratio IQR %.3f-%.3f; bootstrap 95%% interval %.3f-%.3f\n' \
        "$iso_cores" "$(calc "$ma / 1e6" %.1f)" "$(calc "$mb / 1e6" %.1f)" "$r" "$q1" "$q3" "$lo" "$hi"
    # What the shrunk desktop costs the job beyond what any busy neighbour
    # on those CPUs costs on this machine (shared caches, a hypervisor's
    # hyperthreads): the part that is vdesk's to confine.
    read -r n ma mb r q1 q3 lo hi <<<"$(awk '{ print $1, $3 }' "$f" | pair_stats /dev/stdin)" || return 1
    printf 'isolation: beside the shrunk busy desktop vs beside the host busy loop on the same CPUs: %.1f ms vs %.1f ms, ratio %.3f (target <= 1.02); per-pair ratio IQR %.3f-%.3f; bootstrap 95%% interval %.3f-%.3f\n' \
        "$(calc "$ma / 1e6" %.1f)" "$(calc "$mb / 1e6" %.1f)" "$r" "$q1" "$q3" "$lo" "$hi"
    printf 'isolation: the %d QEMU threads outside CPUs %s used %s ms of CPU in the %d s of measuring\n' \
        "${#iso_outside[@]}" "$iso_cores" "$(calc "($out1 - $out0) * 1000 / $(getconf CLK_TCK)" %.0f)" "$((SECONDS - w0))"
}
