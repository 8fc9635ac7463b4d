#!/bin/bash
# Accounting with Slurm's own: a real slurmdbd on a MariaDB server of the
# bed's (AccountingStorageTRES=gres/gpu), beside vdesk's SQLite store
# (jobcomp/vdesk-jobcomp). slurmctld sends the eviction records with the
# job's AdminComment at its end; the epilog's restore record reaches the
# AdminComment slurmdbd keeps; `vdeskctl report --slurmdbd` counts from
# there, with GPU-seconds from Slurm's TRES.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/node_bed.sh"

t_setup() { VDESK_BED_SLURMDBD=1 node_bed_acct_up; }

sql() { sqlite3 -batch -noheader -separator ' ' "$DB" "$@"; }
stored() { [ "$(sql "SELECT count(*) FROM jobs WHERE job = $1" 2>/dev/null)" = 1 ]; }
job() { sbatch --parsable -o /dev/null "$@"; }
# dbd ID FIELDS: sacct's line of job ID (the allocation, the latest run).
dbd() { sacct -X -n -P -j "$1" -o "$2" | tail -n 1; }
has_restore() { dbd "$1" AdminComment | grep -q "vdesk\[n1\] restore: "; }
report() { "$T_BUILD/cli/vdeskctl" --conf "$VDCONF" report "$@"; }
# slurmdbd lists a job by period once slurmctld has sent its eligible time,
# seconds after sacct -j shows it (the array test found it first).
in_report() { report jobs --csv --slurmdbd | grep -q "^$1,"; }
# gpu_s ID [--slurmdbd]: job ID's gpu_seconds in report jobs (column 10).
gpu_s() { report jobs --csv "${@:2}" | awk -F, -v id="$1" '$1 == id { print $10 }'; }

# Each mode: slurmdbd's AdminComment has the eviction (from slurmctld at
# the job's end) and the restore (from the epilog, after it), the same
# records the node keeps and vdesk's own store has.
test_records_reach_slurmdbd_beside_vdesks_store() {
    local mode id comment rec
    for mode in save suspend shrink; do
        id=$(job -w n1 --vdesk=$mode --wrap 'sleep 2')
        after_job "$id" n1
        t_poll 90 has_restore "$id" || t_fail "job $id ($mode): no restore record in slurmdbd: $(dbd "$id" AdminComment)"
        comment=$(dbd "$id" AdminComment)
        assert_match "$comment" "^vdesk\[n1\] evict: asked=$mode used=$mode .* \| vdesk\[n1\] restore: asked=- used=$mode " "job $id in slurmdbd"
        # The restore's figures are the node's own record's.
        rec=$(grep '"op":"restore"' "$VDESK_BED/vdesk/state/n1/records.jsonl" | grep "\"job\":$id[,}]" | tail -n 1)
        assert_match "$comment" "restore: .*total=$(sed -n 's/.*"total_ms":\([0-9]*\).*/\1/p' <<<"$rec")ms" \
            "job $id's restore time"
        # vdesk's own store has the same eviction.
        t_poll 30 stored "$id" || t_fail "job $id not in $DB"
        assert_match "$comment" "evict: .*total=$(sql "SELECT total_ms FROM records WHERE job = $id AND op = 'evict'")ms" \
            "job $id's eviction in both stores"
        assert_eq "$(dbd "$id" State)" COMPLETED "job $id's state in slurmdbd"
    done
    # slurmdbd's copy joins each node's records of a run in the report.
    t_poll 30 in_report "$id" || t_fail "job $id is not in report jobs --slurmdbd"
    assert_match "$(report jobs --csv --slurmdbd)" "^$id,.*n1:evict:$mode>$mode:[0-9]+ms n1:restore:-?>$mode:[0-9]+ms$" \
        "report jobs --slurmdbd"
}

# The GPU-seconds of a GPU job are Slurm's TRES (gres/gpu) times its run
# time, in the report from slurmdbd and in vdesk's store alike.
test_gpu_seconds_match_slurms_tres() {
    local id tres elapsed want
    id=$(job -w n1 --vdesk=save --gres=gpu:1 --wrap 'sleep 3')
    after_job "$id" n1
    t_poll 30 stored "$id" || t_fail "job $id not in $DB"
    tres=$(dbd "$id" AllocTRES | tr ',' '\n' | sed -n 's|^gres/gpu=||p')
    elapsed=$(dbd "$id" ElapsedRaw)
    assert_eq "$tres" 1 "slurmdbd's gres/gpu TRES of job $id"
    want=$((tres * elapsed))
    assert_gt "$want" 2 "job $id's GPU-seconds"
    t_poll 30 in_report "$id" || t_fail "job $id is not in report jobs --slurmdbd"
    assert_eq "$(gpu_s "$id" --slurmdbd)" "$want" \
        "report --slurmdbd: GPU-seconds of job $id against sacct"
    assert_eq "$(gpu_s "$id")" "$want" \
        "vdesk's store: GPU-seconds of job $id against sacct"
    # Per user: the same GPU-hours from both stores.
    assert_eq "$(report users --csv --slurmdbd | cut -d, -f1,4)" "$(report users --csv | cut -d, -f1,4)" \
        "GPU-hours per user in both stores"
}

# slurmdbd down when the job ends: slurmctld keeps the job's end in its
# queue, and the epilog's sender waits for slurmdbd to know it; once
# slurmdbd is back, the restore lands after the end, not under it.
test_restore_waits_for_slurmdbd() {
    local id
    bed_slurmdbd_stop || t_fail "could not stop slurmdbd"
    id=$(job -w n1 --vdesk=save --wrap 'sleep 2')
    after_job "$id" n1
    # The restore is done, and its record waits for slurmdbd.
    t_poll 30 sh -c "grep '\"op\":\"restore\"' '$VDESK_BED/vdesk/state/n1/records.jsonl' | grep -q '\"job\":$id[,}]'" ||
        t_fail "job $id: no restore record on the node"
    sleep 3
    # slurmctld held back while slurmdbd comes up: the sender finds the run
    # without its end for a while, on the same connection, and must see the
    # end once slurmctld sends it.
    local ctld up=0
    ctld=$(awk '$1 == "slurmctld" { p = $2 } END { print p }' "$VDESK_BED/pids")
    kill -STOP "$ctld"
    bed_slurmdbd_start && up=1
    sleep 3
    kill -CONT "$ctld"
    [ "$up" = 1 ] || t_fail "slurmdbd did not start again"
    t_poll 90 has_restore "$id" || t_fail "job $id: no restore record in slurmdbd: $(dbd "$id" AdminComment)"
    assert_match "$(dbd "$id" AdminComment)" "^vdesk\[n1\] evict: asked=save used=save .* \| vdesk\[n1\] restore: asked=- used=save " \
        "job $id after slurmdbd came back"
    assert_eq "$(dbd "$id" State)" COMPLETED "job $id's state"
}

# Array tasks and jobs without vdesk are runs like any other: from
# slurmdbd, each task with its array id, no records, no GPUs.
test_array_and_plain_jobs_from_slurmdbd() {
    local id out
    id=$(job -w n2 --array=0-1 --wrap true)
    t_poll 60 sh -c "[ \"\$('$T_BUILD/cli/vdeskctl' --conf '$VDCONF' report jobs --csv --slurmdbd | grep -c ',${id}_[01],.*,COMPLETED,')\" = 2 ]" ||
        t_fail "array $id not in the report: $(sacct -X -n -P -j "$id" -o JobID,State,Eligible,End)"
    out=$(report jobs --csv --slurmdbd)
    assert_match "$out" "^[0-9]+,${id}_0,root,[a-z]+,COMPLETED,.*,n2,0,0,$" "array task 0"
    assert_match "$out" "^[0-9]+,${id}_1,root,[a-z]+,COMPLETED,.*,n2,0,0,$" "array task 1"
}

# Each task of an array evicts and restores in turn, and each task's run
# in slurmdbd gets its own restore, not its sibling's (the first task has
# the array's id, which slurmdbd matches to every task).
test_array_tasks_each_get_their_own_restore() {
    local id task raw comment rec
    id=$(job -w n1 -c 2 --vdesk=save --array=0-1 --wrap 'sleep 1')
    for task in 0 1; do
        t_poll 120 has_restore "${id}_$task" || t_fail "task $task: no restore in slurmdbd: $(dbd "${id}_$task" AdminComment)"
    done
    for task in 0 1; do
        raw=$(dbd "${id}_$task" JobIDRaw)
        comment=$(dbd "${id}_$task" AdminComment)
        assert_eq "$(grep -o 'vdesk\[n1\] [a-z]*:' <<<"$comment" | tr '\n' ' ')" "vdesk[n1] evict: vdesk[n1] restore: " \
            "task $task's records"
        rec=$(grep '"op":"restore"' "$VDESK_BED/vdesk/state/n1/records.jsonl" | grep "\"job\":$raw[,}]" | tail -n 1)
        assert_match "$comment" "restore: .*total=$(sed -n 's/.*"total_ms":\([0-9]*\).*/\1/p' <<<"$rec")ms" \
            "task $task (job $raw): its own restore"
    done
    # (scontrol shows every task for the array's id: after_job cannot wait on it.)
    t_poll 60 sh -c "[ \"\$('$BEDCTL' state desk-n1)\" = running ]" || t_fail "desk-n1 is not running again"
}

# A report from slurmdbd counts the evictions per node as vdesk's store
# does, over the same jobs.
test_nodes_view_agrees_between_stores() {
    local a b last
    last=$(sql "SELECT max(job) FROM jobs")
    t_poll 30 in_report "$last" || t_fail "job $last is not in report jobs --slurmdbd"
    a=$(report nodes --csv --slurmdbd | cut -d, -f1-7)
    b=$(report nodes --csv | cut -d, -f1-7)
    assert_match "$a" "^n1,[1-9]" "report nodes --slurmdbd"
    assert_eq "$a" "$b" "the nodes view from both stores"
}

t_main
