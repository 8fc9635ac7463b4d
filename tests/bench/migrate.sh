# shellcheck shell=bash disable=SC2154
# (SC2154: build, bench_* are set by tests/bench.sh, which sources this.)
# The migration benchmark (tests/bench.sh): the target choice over 10,000
# simulated nodes, and, on a bed of its own with one libvirt daemon and
# virtlockd per node, desk-n1 migrated to n2 and back by vdesk (the prolog
# and the epilog, devices and journal and all) against the bare peer-to-peer
# migration of the same guest (`bedctl migrate`), interleaved. Downtimes
# are QEMU's own figures (the completed job's statistics), against QEMU's
# default 300 ms downtime target. Knobs: VDESK_BENCH_MIG_SIZES ("256:128:0
# 1024:768:0 1024:384:64": guest MiB : filled MiB : MiB the guest keeps
# rewriting, vdesk.dirty=), VDESK_BENCH_MIG_RUNS (5).

mig_on() { "$build/tests/bedctl" -c "$(bed_node_uri "$VDESK_BED" "$1")" "${@:2}"; }

# mig_vdesk FILE: one round trip by vdesk; appends "AWAY_MS MIG_MS DOWN_MS
# HOME_MS HOMEMIG_MS HOMEDOWN_MS" (prolog and epilog wall times, and the
# migration's own time and downtime from each record) to FILE.
mig_vdesk() {
    local away home ra rh
    away=$(timed env SLURM_JOB_ID=1 SLURMD_NODENAME=n1 SPANK_VDESK_MODE=migrate \
        VDESK_CONF="$mig_conf" "$build/prolog/vdesk-prolog") || return 1
    ra=$(tail -n 1 "$VDESK_BED/vdesk/state/n1/records.jsonl")
    [ "$(mig_on n2 state desk-n1)" = running ] || bench_fail "vdesk did not migrate desk-n1 to n2: $ra" || return 1
    home=$(timed env SLURM_JOB_ID=1 SLURMD_NODENAME=n1 VDESK_CONF="$mig_conf" "$build/prolog/vdesk-epilog") || return 1
    rh=$(tail -n 1 "$VDESK_BED/vdesk/state/n1/records.jsonl")
    [ "$(mig_on n1 state desk-n1)" = running ] || bench_fail "vdesk did not bring desk-n1 home: $rh" || return 1
    echo "$away $(mig_json "$ra") $home $(mig_json "$rh")" >>"$1"
}
mig_json() { sed -n 's/.*"migration":{[^}]*"ms":\([0-9]*\),"downtime_ms":\([-0-9]*\).*/\1 \2/p' <<<"$1"; }

# mig_bare FILE: the same round trip by the bare calls; appends "MS DOWN_MS
# MS DOWN_MS".
mig_bare() {
    local a b
    a=$(mig_on n1 migrate desk-n1 "$(bed_peer_uri n2)" tcp://127.0.0.1) || return 1
    b=$(mig_on n2 migrate desk-n1 "$(bed_peer_uri n1)" tcp://127.0.0.1) || return 1
    echo "$(awk '{ print $2, $4 }' <<<"$a") $(awk '{ print $2, $4 }' <<<"$b")" >>"$1"
}

median_col() { awk -v c="$2" '{ print $c }' "$1" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

bench_migrate() {
    local out size mib fill dirty runs=${VDESK_BENCH_MIG_RUNS:-5} v b i
    out=$("$build/tests/placebench" 10000 1001) || bench_fail "placebench" || return 1
    printf 'migrate: target choice over %d simulated nodes, median of 1001: %s ms (max %s ms; goal: under 10 ms)\n' \
        "$(awk '{ print $2 }' <<<"$out")" "$(awk '{ print $3 }' <<<"$out")" "$(awk '{ print $4 }' <<<"$out")"
    mig_bed=$(mktemp -d /tmp/vdbm.XXXXXX) || return 1
    export VDESK_BED_MIGRATION=1
    (
        unset VDESK_BED_PORT
        bed_vdesk_files "$mig_bed"
        bed_up "$mig_bed" 2>>"$bench_out/bed.log" || exit 1
        mig_conf=$VDESK_BED/vdesk/vdesk.conf
        scontrol update nodename=n3 state=drain reason=bench
        for size in ${VDESK_BENCH_MIG_SIZES:-256:128:0 1024:768:0 1024:384:64}; do
            IFS=: read -r mib fill dirty <<<"$size"
            [ "${dirty:-0}" -gt 0 ] || dirty=
            v=$bench_tmp/mig-vdesk-$mib-$dirty b=$bench_tmp/mig-bare-$mib-$dirty
            : >"$v"; : >"$b"
            guest_start desk-n1 "$mib" "$fill" "${dirty:+vdesk.dirty=$dirty}" || exit 1
            for i in $(seq "$runs"); do
                mig_vdesk "$v" && mig_bare "$b" || exit 1
            done
            printf 'migrate: %s MiB guest, %s MiB in use, %s MiB rewritten all the time, %d round trips, medians: away: vdesk prolog %s ms (its migration %s ms), bare %s ms, ratio %s; downtime vdesk %s ms, bare %s ms, QEMU target 300 ms; home: vdesk epilog %s ms (its migration %s ms), bare %s ms, ratio %s; downtime vdesk %s ms, bare %s ms\n' \
                "$mib" "$fill" "${dirty:-0}" "$runs" "$(median_col "$v" 1)" "$(median_col "$v" 2)" "$(median_col "$b" 1)" \
                "$(calc "$(median_col "$v" 1) / $(median_col "$b" 1)" %.2f)" "$(median_col "$v" 3)" "$(median_col "$b" 2)" \
                "$(median_col "$v" 4)" "$(median_col "$v" 5)" "$(median_col "$b" 3)" \
                "$(calc "$(median_col "$v" 4) / $(median_col "$b" 3)" %.2f)" "$(median_col "$v" 6)" "$(median_col "$b" 4)"
            "$build/tests/bedctl" purge desk-n1 >/dev/null || exit 1
        done
    )
    local rc=$?
    bed_down "$mig_bed" 2>>"$bench_out/bed.log"
    return $rc
}
