# shellcheck shell=bash disable=SC2154
# (SC2154: build, bed, bench_* are set by tests/bench.sh, which sources this.)
# curve: how long the job waits (the eviction) and how long the student
# waits (the restore), by guest RAM, per mode, through vdesk and through the
# bare libvirt calls that do the same. Part of tests/bench.sh.
#
# One guest per size (VDESK_BENCH_SIZES, MiB; node n1, n2, n3 in turn, so
# that each has a vdesk state of its own), 3/4 of its RAM minus 64 MiB
# filled with non-zero data (a guest filled to the brim panics on OOM).
# Per mode and rep, in an order that turns every rep:
#   vdesk  `vdeskctl evict MODE`, then `vdeskctl restore`: one process each,
#          as the prolog and the epilog are
#   bare   `bedctl evict`, then `bedctl restore`: the same libvirt calls
#          through the same lib/hv functions, two processes too
#   cycle  `bedctl cycle`: both in one process (the baseline before)
# and for save also
#   plain  `bedctl save-plain` / `restore-plain`: virDomainSaveFlags and
#          virDomainRestoreFlags with flags 0, nothing else
#   dd     `dd bs=1M conv=fsync` of non-zero data of the save file's size
#          (what it holds on the disk: file_bytes)
#          into the same directory, and `dd iflag=direct` reading it back:
#          the disk's limit
# Every step starts from a running guest whose RAM is filled, after
# `sync` (and each save from a guest restored from a save: curve_warmup);
# a save waits until the guest has run a few seconds (a save right
# after a restore is faster than one after the guest ran a while), and a
# restore reads its save file cold (dropped from the page cache: the
# student comes back hours later).
#
# Raw rows: $bench_out/curve.tsv; medians: curve-median.tsv; the plot:
# curve.svg (tests/bench/curve.gp).

curve_modes="suspend shrink save shutdown"

# curve_reps SIZE MODE: how many reps (medians of these).
curve_reps() {
    case $2 in
        suspend|shrink) echo "${VDESK_BENCH_FAST_RUNS:-9}" ;;
        *) if [ -n "${VDESK_BENCH_NODE_RUNS:-}" ]; then echo "$VDESK_BENCH_NODE_RUNS"
           elif [ "$1" -le 256 ]; then echo 5
           elif [ "$1" -le 1024 ]; then echo 3
           else echo 2; fi ;;
    esac
}

curve_fill() { echo $(($1 * 3 / 4 - 64)); }

# curve_row MODE IMPL REP EVICT RESTORE TOTAL BYTES SAVE_CALL RESTORE_CALL
# (ms; "-" where it does not apply).
curve_row() {
    local IFS=$'\t'
    echo "$c_size${IFS}$*" >>"$bench_out/curve.tsv"
}

c_vdesk() { "$build/cli/vdeskctl" --conf "$bed/vdesk/vdesk.conf" --node "$c_node" "$@"; }

# record_phase NAME: the ms of phase NAME in vdesk's last record.
record_phase() {
    local ms
    ms=$(tail -n 1 "$c_state/records.jsonl" | sed -n "s/.*\"name\":\"$1\",\"ms\":\([0-9]*\).*/\1/p")
    [ -n "$ms" ] || bench_fail "no phase '$1' in vdesk's last record ($c_state/records.jsonl)" || return 1
    echo "$ms"
}

# call_ms WHAT: the "WHAT MS" line bedctl printed in the last timed step.
call_ms() {
    local ms
    ms=$(sed -n "s/^$1 //p" "$bench_tmp/out")
    [ -n "$ms" ] || bench_fail "bedctl did not say how long its $1 call took" || return 1
    echo "$ms"
}

# file_bytes FILE: what FILE holds on the disk. A sparse (mapped-ram) save
# file's length is the guest's RAM; what was written is its allocated blocks,
# which for a raw file is its length.
file_bytes() { echo $(($(stat -c '%b * %B' "$1"))); }

curve_vdesk() {   # MODE REP
    local e r bytes=- sc=- rc=- f=$c_state/$c_dom.save
    e=$(timed c_vdesk evict "$1") || return 1
    if [ "$1" = save ]; then
        bytes=$(file_bytes "$f") && sc=$(record_phase save) && cold "$f" || return 1
        c_bytes=$bytes
    fi
    r=$(timed c_vdesk restore) || return 1
    if [ "$1" = save ]; then rc=$(record_phase restore) || return 1; fi
    curve_row "$1" vdesk "$2" "$e" "$r" "$(calc "$e + $r")" "$bytes" "$sc" "$rc"
}

curve_bare() {   # MODE REP [IMPL: the name in curve.tsv]
    local e r bytes=- sc=- rc=- f=$c_state/bare.save
    e=$(timed "$build/tests/bedctl" evict "$c_dom" "$1" "$f") || return 1
    if [ "$1" = save ]; then
        sc=$(call_ms save) && bytes=$(file_bytes "$f") && cold "$f" || return 1
    fi
    r=$(timed "$build/tests/bedctl" restore "$c_dom" "$1" "$f") || return 1
    if [ "$1" = save ]; then rc=$(call_ms restore) || return 1; fi
    curve_row "$1" "${3:-bare}" "$2" "$e" "$r" "$(calc "$e + $r")" "$bytes" "$sc" "$rc"
}

curve_cycle() {   # MODE REP
    local t
    t=$(timed "$build/tests/bedctl" cycle "$c_dom" "$1" "$c_state/cycle.save") || return 1
    curve_row "$1" cycle "$2" - - "$t" - - -
}

curve_plain() {   # save REP
    local e r bytes sc rc f=$c_state/plain.save
    e=$(timed "$build/tests/bedctl" save-plain "$c_dom" "$f") &&
        sc=$(call_ms save) && bytes=$(file_bytes "$f") && cold "$f" || return 1
    r=$(timed "$build/tests/bedctl" restore-plain "$f") && rc=$(call_ms restore) || return 1
    curve_row save plain "$2" "$e" "$r" "$(calc "$e + $r")" "$bytes" "$sc" "$rc"
}

# curve_source MIB: $c_src holds at least MIB MiB of non-zero data, in RAM
# (/dev/shm), so that dd reads nothing from the disk it writes to.
curve_source() {
    local have=0 i
    [ -f "$c_src" ] && have=$(($(stat -c %s "$c_src") / 1048576))
    [ "$have" -ge "$1" ] && return 0
    head -c 64M /dev/urandom >"$c_src.chunk" && : >"$c_src" || return 1
    for i in $(seq $((($1 + 63) / 64))); do
        cat "$c_src.chunk" >>"$c_src" || return 1
    done
    rm -f "$c_src.chunk"
}

curve_dd() {   # save REP: as much as vdesk's last save file
    local mib=$(((c_bytes + 1048575) / 1048576)) e r f=$c_state/dd.bench
    curve_source "$mib" || bench_fail "cannot make $mib MiB of data in $c_src" || return 1
    e=$(timed dd if="$c_src" of="$f" bs=1M count="$mib" conv=fsync status=none) &&
        r=$(timed dd if="$f" of=/dev/null bs=1M iflag=direct status=none) || return 1
    rm -f "$f"
    curve_row save dd "$2" "$e" "$r" "$(calc "$e + $r")" $((mib * 1048576)) "$e" "$r"
}

# curve_step IMPL MODE REP: one measurement from a ready guest.
curve_step() {
    guest_wait "$c_dom" || return 1
    if [ "$2" = save ]; then sleep "${VDESK_BENCH_SETTLE:-2}"; else sleep 0.5; fi
    sync
    "curve_$1" "$2" "$3" || bench_fail "$1 $2 on the $c_size MiB guest failed" || return 1
    # Off and on again: the guest boots anew and fills its RAM again.
    if [ "$2" = shutdown ] && [ "$1" != dd ]; then guest_boot["$c_dom"]=$((guest_boot["$c_dom"] + 1)); fi
    return 0
}

# curve_warmup save REP: the first save of a guest that booted is slower
# (here up to 3x at 4 GiB) than that of a guest restored from a save, which
# every measured step has in front of it: one bare save and restore first,
# kept apart (impl "warmup"), so that no impl pays it in the medians.
curve_warmup() { curve_bare "$1" "$2" warmup; }

curve_mode() {   # MODE
    local impls=(vdesk bare cycle) rep k n
    if [ "$1" = save ]; then
        impls+=(plain)
        curve_step warmup save 0 || return 1
    fi
    n=${#impls[@]}
    for rep in $(seq "$(curve_reps "$c_size" "$1")"); do
        for k in $(seq 0 $((n - 1))); do
            curve_step "${impls[$(((rep - 1 + k) % n))]}" "$1" "$rep" || return 1
        done
        if [ "$1" = save ]; then curve_step dd save "$rep" || return 1; fi
    done
}

# curve_medians [SIZE]: stats.awk's medians of curve.tsv (one size or all).
curve_medians() {
    awk -F'\t' -v s="${1:-}" 'NR == 1 || s == "" || $1 == s' "$bench_out/curve.tsv" |
        awk -f "$bench_src/stats.awk" -v what=groups
}

# curve_print SIZE FILL SECONDS: the text lines of one size.
curve_print() {
    local size=$1 mode impl n e r t b sc rc
    local -A m=()
    while IFS=$'\t' read -r _ mode impl n e r t b sc rc; do
        m[$mode.$impl.n]=$n m[$mode.$impl.e]=$e m[$mode.$impl.r]=$r m[$mode.$impl.t]=$t
        m[$mode.$impl.b]=$b m[$mode.$impl.sc]=$sc m[$mode.$impl.rc]=$rc
    done < <(curve_medians "$size")
    printf 'curve: guest %d MiB, %d MiB of it filled with non-zero data; medians of %s (suspend, shrink: %s); %d s for this size\n' \
        "$size" "$2" "${m[save.vdesk.n]}" "${m[suspend.vdesk.n]}" "$3"
    for mode in $curve_modes; do
        printf 'node: %5d MiB %-8s evict (job waits):         vdesk %9.1f ms  bare %9.1f ms  overhead %+8.1f ms  ratio %.3f\n' \
            "$size" "$mode" "${m[$mode.vdesk.e]}" "${m[$mode.bare.e]}" \
            "$(calc "${m[$mode.vdesk.e]} - ${m[$mode.bare.e]}" %.1f)" "$(calc "${m[$mode.vdesk.e]} / ${m[$mode.bare.e]}")"
        printf 'node: %5d MiB %-8s restore (student waits):   vdesk %9.1f ms  bare %9.1f ms  overhead %+8.1f ms  ratio %.3f\n' \
            "$size" "$mode" "${m[$mode.vdesk.r]}" "${m[$mode.bare.r]}" \
            "$(calc "${m[$mode.vdesk.r]} - ${m[$mode.bare.r]}" %.1f)" "$(calc "${m[$mode.vdesk.r]} / ${m[$mode.bare.r]}")"
        printf 'node: %5d MiB %-8s evict+restore:             vdesk %9.1f ms  bare %9.1f ms  overhead %+8.1f ms  ratio %.3f; one process (bedctl cycle, the old baseline) %.1f ms, ratio %.3f\n' \
            "$size" "$mode" "${m[$mode.vdesk.t]}" "${m[$mode.bare.t]}" \
            "$(calc "${m[$mode.vdesk.t]} - ${m[$mode.bare.t]}" %.1f)" "$(calc "${m[$mode.vdesk.t]} / ${m[$mode.bare.t]}")" \
            "${m[$mode.cycle.t]}" "$(calc "${m[$mode.vdesk.t]} / ${m[$mode.cycle.t]}")"
    done
    # MiB/s of the save (sc) or restore (rc) call of an impl, and its ratio to dd's.
    tp() { calc "${m[save.$1.b]} / 1048576 / (${m[save.$1.$2]} / 1000)" "${3:-%.0f}"; }
    vs_dd() { calc "$(tp "$1" "$2" %.6f) / $(tp dd "$2" %.6f)"; }
    printf 'save: %5d MiB save file %d MiB; the save call: vdesk %s MiB/s, bare %s MiB/s, plain %s MiB/s; dd conv=fsync %s MiB/s; ratio to dd: vdesk %s, bare %s, plain %s\n' \
        "$size" "$(calc "${m[save.vdesk.b]} / 1048576" %.0f)" "$(tp vdesk sc)" "$(tp bare sc)" "$(tp plain sc)" \
        "$(tp dd sc)" "$(vs_dd vdesk sc)" "$(vs_dd bare sc)" "$(vs_dd plain sc)"
    printf 'save: %5d MiB the restore call, save file read cold: vdesk %s MiB/s, bare %s MiB/s, plain %s MiB/s; dd iflag=direct %s MiB/s; ratio to dd: vdesk %s, bare %s, plain %s\n' \
        "$size" "$(tp vdesk rc)" "$(tp bare rc)" "$(tp plain rc)" \
        "$(tp dd rc)" "$(vs_dd vdesk rc)" "$(vs_dd bare rc)" "$(vs_dd plain rc)"
    printf 'save: %5d MiB whole processes: plain (flags 0) save %.1f ms, restore %.1f ms; dd write %.1f ms, read %.1f ms\n' \
        "$size" "${m[save.plain.e]}" "${m[save.plain.r]}" "${m[save.dd.e]}" "${m[save.dd.r]}"
    printf 'save: %5d MiB the first save after boot (bare, the warm-up, not in the medians): the save call %.0f ms = %s MiB/s, the restore call %.0f ms\n' \
        "$size" "${m[save.warmup.sc]}" "$(tp warmup sc)" "${m[save.warmup.rc]}"
}

# curve_size SIZE NODE: all modes on a guest of SIZE MiB on node NODE.
curve_size() {
    local t0=$SECONDS fill
    c_size=$1 c_node=$2 c_dom=desk-$2 c_state=$bed/vdesk/state/$2 c_bytes=0
    fill=$(curve_fill "$1")
    [ "$fill" -gt 0 ] || bench_fail "a guest of $1 MiB is too small to fill (VDESK_BENCH_SIZES)" || return 1
    mkdir -p "$c_state" && chmod 0700 "$c_state" || return 1
    guest_start "$c_dom" "$1" "$fill" || return 1
    local mode
    for mode in $curve_modes; do
        curve_mode "$mode" || return 1
    done
    "$build/tests/bedctl" purge "$c_dom" || return 1
    rm -f "$c_src"
    curve_print "$1" "$fill" $((SECONDS - t0))
}

# curve_plot: the medians into curve-median.tsv, two tables (eviction,
# restore: seconds) and the SVG, copied to docs/.
curve_plot() {
    local side col sizes lo hi note
    { printf 'size_mib\tmode\timpl\tn\tevict_ms\trestore_ms\ttotal_ms\tbytes\tsave_call_ms\trestore_call_ms\n'
      curve_medians; } >"$bench_out/curve-median.tsv" || return 1
    for side in evict:5 restore:6; do
        col=${side#*:}
        awk -F'\t' -v col="$col" '
            NR > 1 { v[$1, $2 "." $3] = $col; if (!($1 in seen)) { seen[$1]; sz[++ns] = $1 } }
            END {
                nk = split("suspend.vdesk suspend.bare shrink.vdesk shrink.bare save.vdesk save.bare " \
                           "shutdown.vdesk shutdown.bare save.plain save.dd", k, " ")
                for (i = 1; i <= ns; i++) {
                    line = sz[i]
                    for (j = 1; j <= nk; j++) {
                        x = v[sz[i], k[j]]
                        line = line "\t" ((x == "" || x == "-") ? "NaN" : x / 1000)
                    }
                    print line
                }
            }' "$bench_out/curve-median.tsv" | sort -n >"$bench_out/curve-${side%%:*}.dat" || return 1
    done
    sizes=$(cut -f 1 "$bench_out/curve-evict.dat")
    lo=$(calc "$(head -n 1 <<<"$sizes") / 1.3" %.0f)
    hi=$(calc "$(tail -n 1 <<<"$sizes") * 1.3" %.0f)
    note="vdesk $bench_version, make bench $(date +%F) on $(nproc) CPUs: libvirt $bench_libvirt, QEMU $bench_qemu (TCG); guests 3/4 full of non-zero data; medians"
    gnuplot -e "evict='$bench_out/curve-evict.dat'; restore='$bench_out/curve-restore.dat'; out='$bench_out/curve.svg'; note='$note'; xmin=$lo; xmax=$hi" \
        "$bench_src/curve.gp" || bench_fail "gnuplot failed" || return 1
    # One image per platform: make bench runs here and in the other Debian's root.
    local doc
    doc=benchmarks-curve-$(. /etc/os-release && echo "${VERSION_CODENAME:-$ID}").svg
    cp "$bench_out/curve.svg" "$bench_src/../../docs/$doc" || return 1
    echo "curve: $bench_out/curve.tsv (raw), curve-median.tsv, curve.svg (copied to docs/$doc)"
}

bench_curve() {
    local sizes=${VDESK_BENCH_SIZES:-256 1024 4096} nodes=(n1 n2 n3) i=0 size
    printf 'size_mib\tmode\timpl\trep\tevict_ms\trestore_ms\ttotal_ms\tbytes\tsave_call_ms\trestore_call_ms\n' \
        >"$bench_out/curve.tsv" || return 1
    c_src=$bench_shm/dd-source
    for size in $sizes; do
        [ "$i" -lt "${#nodes[@]}" ] || bench_fail "at most ${#nodes[@]} sizes (one per node of the bed): $sizes" || return 1
        case $size in ''|*[!0-9]*) bench_fail "VDESK_BENCH_SIZES: '$size' is not a number of MiB"; return 1 ;; esac
        curve_size "$size" "${nodes[$i]}" || return 1
        i=$((i + 1))
    done
    curve_plot
}
