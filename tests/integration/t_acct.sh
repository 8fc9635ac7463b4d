#!/bin/bash
# Accounting without slurmdbd: slurmctld runs jobcomp/vdesk-jobcomp
# (JobCompType=jobcomp/script) at each job's end, and the run lands in
# vdesk's SQLite database with the records vdesk's nodes wrote: each mode,
# GPU-seconds from what Slurm gave the job, jobs without vdesk, array jobs
# and requeued jobs; a damaged database keeps the runs for the next one.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/node_bed.sh"

# A requeued job starts again once its old credential expired: 20 s here
# instead of 120.
t_setup() { VDESK_BED_CRED_EXPIRE=20 node_bed_acct_up; }

sql() { sqlite3 -batch -noheader -separator ' ' "$DB" "$@"; }
# stored ID [N]: the database has N runs (1) of job ID.
stored() { [ "$(sql "SELECT count(*) FROM jobs WHERE job = $1" 2>/dev/null)" = "${2:-1}" ]; }
job() { sbatch --parsable -o /dev/null "$@"; }
elapsed() {   # Slurm's own run time of job $1, in seconds
    local s e
    s=$(scontrol -o show job "$1" | sed -n 's/.* StartTime=\([^ ]*\) .*/\1/p')
    e=$(scontrol -o show job "$1" | sed -n 's/.* EndTime=\([^ ]*\) .*/\1/p')
    echo $(($(date -d "$e" +%s) - $(date -d "$s" +%s)))
}

# Each mode's eviction record is stored with its phases; the GPU job's
# GPU-seconds are Slurm's allocation times Slurm's run time.
test_each_mode_is_stored_with_its_record() {
    local mode id ids=() row gpus
    # A GPU job is never suspended (its GPU must go to the job): only the
    # save job asks for one.
    for mode in save:1 suspend:0 shrink:0; do
        id=$(job -w n1 --vdesk="${mode%:*}" --gres=gpu:"${mode#*:}" --wrap 'sleep 2')
        t_poll 90 stored "$id" || t_fail "job $id ($mode) not in $DB"
        after_job "$id" n1
        ids+=("$id:$mode")
    done
    for row in "${ids[@]}"; do
        IFS=: read -r id mode gpus <<<"$row"
        assert_eq "$(sql "SELECT state, user, partition, nodes, nnodes, gpus FROM jobs WHERE job = $id")" \
            "COMPLETED root desk n1 1 $gpus" "job $id"
        assert_eq "$(sql "SELECT gpu_seconds FROM jobs WHERE job = $id")" "$((gpus * $(elapsed "$id")))" \
            "GPU-seconds of job $id against Slurm's times"
        assert_eq "$(sql "SELECT node, op, asked, used, cut FROM records WHERE job = $id")" \
            "n1 evict $mode $mode 0" "job $id's record"
        # The store's figures are the record's, phase by phase.
        assert_match "$(admin_comment "$id")" "total=$(sql "SELECT total_ms FROM records WHERE job = $id")ms \
phases=$(sql "SELECT group_concat(name || ':' || ms || iif(ok, '', '!'), ',') FROM
             (SELECT * FROM phases WHERE job = $id ORDER BY n)") " "job $id's phases"
        assert_gt "$(sql "SELECT count(*) FROM phases WHERE job = $id")" 1 "job $id's phases"
    done
}

# A job with no vdesk record (on nodes without a desktop), and an
# array job whose tasks end at once on two nodes (two jobcomp runs at the
# same moment): every run is there, with its array ids.
test_jobs_without_vdesk_and_array_tasks() {
    local a id
    a=$(job -w n2,n3 -N 2 --wrap 'sleep 1')
    id=$(job --array=1-4 -p desk -x n1 --wrap 'sleep 1')
    t_poll 90 stored "$a" || t_fail "job $a not stored"
    t_poll 120 sh -c "[ \"\$(sqlite3 '$DB' 'SELECT count(*) FROM jobs WHERE array_job = $id')\" = 4 ]" ||
        t_fail "array job $id: $(sql "SELECT job, array_task FROM jobs WHERE array_job = $id")"
    assert_eq "$(sql "SELECT nnodes, gpus, count(r.seq) FROM jobs LEFT JOIN records r USING (cluster, job, start) WHERE job = $a")" \
        "2 0 $(admin_comment "$a" | grep -o 'vdesk\[' | wc -l)" "job $a: its records are its AdminComment's"
    assert_eq "$(sql "SELECT group_concat(array_task) FROM (SELECT array_task FROM jobs WHERE array_job = $id ORDER BY 1)")" \
        "1,2,3,4" "array tasks"
}

# A requeued job is two runs: the first stored as REQUEUED, with its
# eviction record; the second, moved to n2 (no desktop), ends with n1's old
# record still in the AdminComment, and must not count it again.
test_requeued_job_is_two_runs() {
    local id
    id=$(job -w n1 --requeue --vdesk=suspend --wrap 'sleep 8')
    t_poll 60 sh -c "scontrol -o show job $id | grep -q 'AdminComment=.*vdesk\[n1\] evict'"
    scontrol requeue "$id"
    t_poll 60 stored "$id" || t_fail "the requeued run of $id not stored"
    assert_eq "$(sql "SELECT state FROM jobs WHERE job = $id")" REQUEUED
    scontrol update jobid="$id" ReqNodeList=n2 || t_fail "job $id not moved to n2"
    t_poll 240 stored "$id" 2 || t_fail "the second run of $id not stored: $(sql "SELECT state FROM jobs WHERE job = $id")"
    assert_eq "$(sql "SELECT group_concat(state || ' ' || nodes) FROM (SELECT * FROM jobs WHERE job = $id ORDER BY start)")" \
        "REQUEUED n1,COMPLETED n2"
    assert_eq "$(sql "SELECT restarts FROM jobs WHERE job = $id AND state = 'COMPLETED'")" 1
    assert_match "$(admin_comment "$id")" "vdesk\[n1\] evict: asked=suspend used=suspend" "the old record is still there"
    assert_eq "$(sql "SELECT j.state, count(r.seq) FROM jobs j LEFT JOIN records r USING (cluster, job, start)
                      WHERE job = $id GROUP BY j.start ORDER BY j.start" | tr '\n' ',')" "REQUEUED 1,COMPLETED 0," \
        "records of each run"
    assert_match "$(sql "SELECT note FROM jobs WHERE job = $id AND state = 'COMPLETED'")" "1 record\(s\) of nodes this run did not have"
    after_job "$id" n1
}

# The database damaged: the run waits in the spool, and the first run
# after the admin moved the file aside stores both.
test_damaged_database_keeps_the_runs_for_the_next() {
    local a b
    mv "$DB" "$DB.good"
    head -c 8192 /dev/urandom >"$DB"
    a=$(job -w n2 --wrap true)
    t_poll 60 sh -c "ls '$DB.spool' | grep -q '^$a-'" || t_fail "job $a not in the spool"
    assert_match "$(cat "$DB.spool/$a"-*.json)" '"state": *"COMPLETED"' "job $a's spooled run"
    mv "$DB" "$DB.damaged"
    mv "$DB.good" "$DB"
    b=$(job -w n2 --wrap true)
    t_poll 60 stored "$b" || t_fail "job $b not stored"
    stored "$a" || t_fail "job $a, spooled, not stored by the next run"
    assert_eq "$(ls "$DB.spool")" "" "the spool after the next run"
}

# The restores: the epilog runs after slurmctld has finished the job, so it
# sends its record through the spool when the node sees it (a directory
# the admin made, on storage the nodes share; here the same disk), and the
# next jobcomp run stores it with the job's run, beside the eviction.
test_restore_record_joins_its_run_through_the_spool() {
    local id next rec
    install -d -m 0700 "$DB.spool"
    id=$(job -w n1 --vdesk=save --wrap 'sleep 2')
    t_poll 90 stored "$id" || t_fail "job $id not stored"
    after_job "$id" n1
    t_poll 30 sh -c "ls '$DB.spool' | grep -q '^rec-$id-'" ||
        t_fail "job $id's restore record is not in the spool: $(ls "$DB.spool")"
    next=$(job -w n2 --wrap true)
    t_poll 60 stored "$next" || t_fail "job $next not stored"
    assert_eq "$(ls "$DB.spool")" "" "the spool after the next run"
    assert_eq "$(sql "SELECT node, op, used FROM records WHERE job = $id ORDER BY seq" | tr '\n' ',')" \
        "n1 evict save,n1 restore save," "job $id's records"
    # The store's restore is the node's own record, phase by phase.
    rec=$(grep '"op":"restore"' "$VDESK_BED/vdesk/state/n1/records.jsonl" | grep "\"job\":$id[,}]" | tail -n 1)
    assert_match "$rec" "\"total_ms\":$(sql "SELECT total_ms FROM records WHERE job = $id AND op = 'restore'")[,}]" \
        "the restore's time"
    assert_gt "$(sql "SELECT count(*) FROM phases p JOIN records r USING (cluster, job, start, seq)
                      WHERE job = $id AND r.op = 'restore'")" 1 "the restore's phases"
    assert_match "$("$T_BUILD/cli/vdeskctl" --conf "$VDCONF" report jobs --csv)" "^$id,.*n1:evict:save>save:[0-9]+ms n1:restore:-?>save:[0-9]+ms$"
}

t_main
