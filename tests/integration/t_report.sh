#!/bin/bash
# vdeskctl report against a hand-made history: runs written as the spool's
# JSON files (acct.h), stored by one vdesk-jobcomp run as it would after a
# damaged database, then every figure of the three views checked by hand.
. "$(dirname "$0")/../lib.sh"

T0=1767225600   # 2026-01-01 00:00:00 UTC

t_setup() {
    T_DIR=$(mktemp -d /tmp/vdr.XXXXXX)
    DB=$T_DIR/acct.db
    printf '[vdesk]\naccounting_db = %s\n' "$DB" >"$T_DIR/vdesk.conf"
    mkdir -p "$DB.spool"
    # job user account start run_s gpus [RECORD...], RECORD: node:op:asked:used:total_ms:phases
    run 1 alice lab 0 3600 2 "n1:evict:save:save:900:lock:0,save:850"
    run 2 alice lab 4000 1800 0 "n1:evict:suspend:suspend:20:lock:0,suspend:15"
    run 3 bob phys 8000 7200 1 "n2:evict:migrate:migrate:4000:lock:1,migrate n3:3900"
    run 4 bob phys 20000 600 0 "n2:evict:save::300:lock:0,save:290!"
    run 5 carol lab 30000 60 0 "n1:?::::"
    run 6 carol lab 40000 100 4
    # Cancelled while pending: Slurm gives it no start (START=0).
    run 7 carol lab $((-T0)) $((T0 + 50000)) 0
    # A record the AdminComment had to shorten to nothing: unknown, not failed.
    run 8 bob phys 60000 60 0 "n2:?:::-1:"
    sed -i 's/"outcome":"done, n2","cut":0/"outcome":"...","cut":1/' "$DB.spool/8-$((T0 + 60000))-1.json"
    TZ=UTC0 env -i VDESK_CONF="$T_DIR/vdesk.conf" JOBID=99 JOBSTATE=COMPLETED START=$((T0 + 90000)) \
        END=$((T0 + 90010)) USERNAME=dave CLUSTER=c1 "$T_BUILD/jobcomp/vdesk-jobcomp"
}
t_teardown() { rm -rf "$T_DIR"; }

# run JOB USER ACCOUNT START RUN_S GPUS [RECORD...]: one spooled run.
run() {
    local job=$1 user=$2 acct=$3 start=$((T0 + $4)) run_s=$5 gpus=$6 r recs= sep= n op asked used ms ph
    shift 6
    for r in "$@"; do
        IFS=: read -r n op asked used ms ph <<<"$r"
        recs="$recs$sep$(phases_json "$n" "$op" "$asked" "$used" "${ms:--1}" "${r#*:*:*:*:*:}")"
        sep=,
    done
    cat >"$DB.spool/$job-$start-1.json" <<EOF
{"schema":1,"cluster":"c1","job":$job,"submit":$start,"start":$start,"end":$((start + run_s)),
 "array_job":0,"array_task":4294967295,"het_job":0,"het_offset":4294967295,"uid":1000,"nnodes":1,
 "restarts":0,"name":"j$job","user":"$user","account":"$acct","partition":"desk","qos":"",
 "nodes":"n1","state":"COMPLETED","exit_code":"0:0","gpus":$gpus,"note":"","records":[$recs]}
EOF
}
phases_json() {
    local p out= sep= name ms ok
    IFS=, read -ra ps <<<"$6"
    for p in "${ps[@]}"; do
        [ -n "$p" ] || continue
        name=${p%:*} ms=${p##*:} ok=1
        case $ms in *!) ms=${ms%!} ok=0 ;; esac
        out="$out$sep{\"name\":\"$name\",\"ms\":$ms,\"ok\":$ok}"
        sep=,
    done
    printf '{"node":"%s","op":"%s","asked":"%s","used":"%s","devices":"","total_ms":%s,"migrated":"",
      "outcome":"done, %s","cut":0,"phases":[%s]}' "$1" "$2" "$3" "$4" "$5" "$1" "$out"
}

report() { TZ=UTC0 "$T_BUILD/cli/vdeskctl" --conf "$T_DIR/vdesk.conf" report "$@"; }

test_the_spooled_history_is_stored() {
    assert_eq "$(ls "$DB.spool")" "" "the spool after vdesk-jobcomp"
    assert_eq "$(sqlite3 "$DB" 'SELECT count(*) FROM jobs')" 9 "runs stored"
}

test_users_view_by_hand() {
    local out
    out=$(report users --csv)
    assert_eq "$(sed -n 1p <<<"$out")" "user,account,jobs,gpu_hours,evicting_jobs,suspend,save,shutdown,shrink,migrate"
    # alice: 2 GPUs x 1 h; bob: 1 GPU x 2 h, one failed eviction; carol: 4 GPUs x 100 s.
    assert_match "$out" "^alice,lab,2,2.00,2,1,1,0,0,0$"
    assert_match "$out" "^bob,phys,3,2.00,1,0,0,0,0,1$"
    assert_match "$out" "^carol,lab,3,0.11,0,0,0,0,0,0$"
    assert_match "$out" "^dave,,1,0.00,0,0,0,0,0,0$"
    assert_eq "$(report users --json | grep -c '"user"')" 4 "users in the JSON"
}

test_nodes_view_by_hand() {
    local out
    out=$(report nodes --csv --since 2026-01-01 --until 2026-01-02)
    # n1: save (1 h away) and suspend (0.5 h away); an unreadable record.
    # n2: a migration (2 h away), a failed save whose fallback phase failed.
    assert_eq "$(sed -n 1p <<<"$out")" \
        "node,evictions,suspend,save,shutdown,shrink,migrate,failed,fallbacks,away_hours,home_pct,mean_evict_ms,max_evict_ms,slowest_phase"
    # The mean and the longest eviction are of the evictions alone.
    assert_match "$out" "^n1,2,1,1,0,0,0,1,0,1.50,93.80,460,900,save 850ms$"
    assert_match "$out" "^n2,1,0,0,0,0,1,1,1,2.00,91.70,4000,4000,migrate n3 3900ms$"
    # Without a period, the span of the runs: from the first that started
    # (job 7 never did) to the last end (dave's, at 25:00:10).
    out=$(report nodes --csv)
    assert_match "$out" "^n1,2,1,1,0,0,0,1,0,1.50,94.00,460,900,save 850ms$"
}

# Where each desktop was over a day: away for the jobs that evicted it,
# off for those that found it off, home the rest; and the operations that
# drained the node (a history of its own).
test_availability_view_by_hand() {
    local DB=$T_DIR/avail.db out
    mkdir -p "$DB.spool"
    printf '[vdesk]\naccounting_db = %s\n' "$DB" >"$T_DIR/avail.conf"
    run 11 alice lab 0 2880 0 "n1:evict:save:save:900:lock:0,save:850"
    run 12 alice lab 3000 1440 0 "n1:evict:suspend:suspend:20:lock:0,suspend:15"
    run 13 bob phys 5000 8640 0 "n1:evict:auto:none:5:lock:0"
    run 14 bob phys 20000 17280 1 "n2:evict:migrate:migrate:4000:lock:1,migrate n3:3900"
    # n3: two evicting jobs that overlap (the second found the desktop
    # away already), and one that found it off, partly under them.
    run 15 carol lab 30000 2880 0 "n3:evict:save:save:900:lock:0,save:850"
    run 16 carol lab 31440 2880 0 "n3:evict:suspend:suspend:20:lock:0,suspend:15"
    run 17 carol lab 34000 1184 0 "n3:evict:auto:none:5:lock:0"
    # n4: a job from the day before, and one that goes on into the next:
    # each counts for its part inside the day.
    run 18 dave lab -43200 51840 0 "n4:evict:save:save:900:lock:0,save:850"
    run 19 dave lab 82080 8640 0 "n4:evict:save:save:900:lock:0,save:850"
    # Job 12's suspend drained n1 (a fallback that lost something).
    sed -i 's/"cut":0/"cut":0,"drained":1/' "$DB.spool/12-$((T0 + 3000))-1.json"
    TZ=UTC0 env -i VDESK_CONF="$T_DIR/avail.conf" JOBID=98 JOBSTATE=COMPLETED START=$((T0 + 80000)) \
        END=$((T0 + 80010)) USERNAME=dave CLUSTER=c1 "$T_BUILD/jobcomp/vdesk-jobcomp"
    out=$("$T_BUILD/cli/vdeskctl" --conf "$T_DIR/avail.conf" report availability --csv \
        --since 2026-01-01 --until 2026-01-02)
    assert_eq "$(sed -n 1p <<<"$out")" "node,home_pct,away_pct,off_pct,away_hours,off_hours,drains"
    # n1: 4320 s away (5 %), 8640 s off (10 %) of 86400 s; n2: 17280 s away.
    assert_match "$out" "^n1,85.00,5.00,10.00,1.20,2.40,1$"
    assert_match "$out" "^n2,80.00,20.00,0.00,4.80,0.00,0$"
    # n3: away 30000-34320 (4320 s, 5 %), off 34320-35184 (864 s, 1 %).
    assert_match "$out" "^n3,94.00,5.00,1.00,1.20,0.24,0$"
    # n4: 8640 s of the first job, 4320 s of the second.
    assert_match "$out" "^n4,85.00,15.00,0.00,3.60,0.00,0$"
    # A database of schema 1 (before drains were kept), not yet upgraded by
    # a jobcomp run, still reads: nothing drained.
    cp "$DB" "$T_DIR/v1.db"
    sqlite3 "$T_DIR/v1.db" "ALTER TABLE records DROP COLUMN drained; PRAGMA user_version = 1"
    printf '[vdesk]\naccounting_db = %s\n' "$T_DIR/v1.db" >"$T_DIR/v1.conf"
    assert_match "$("$T_BUILD/cli/vdeskctl" --conf "$T_DIR/v1.conf" report availability --csv \
        --since 2026-01-01 --until 2026-01-02)" "^n1,85.00,5.00,10.00,1.20,2.40,0$" "a schema 1 database"
    # The nodes view does not count a desktop that was off as away, nor
    # twice the time two jobs overlap (n3: 4320 s, not 2880 + 2880).
    out=$("$T_BUILD/cli/vdeskctl" --conf "$T_DIR/avail.conf" report nodes --csv --since 2026-01-01 --until 2026-01-02)
    assert_match "$out" "^n1,2,1,1,0,0,0,0,0,1.20,95.00,"
    assert_match "$out" "^n3,2,1,1,0,0,0,0,0,1.20,95.00,"
}

test_jobs_view_and_filters() {
    local out
    out=$(report jobs --user bob)
    assert_eq "$(wc -l <<<"$out")" 4 "bob's runs and the header"
    assert_match "$out" "^3 +bob +phys +COMPLETED +2026-01-01 02:13:20 +2026-01-01 04:13:20 +n1 +1 +7200 +n2:evict:migrate>migrate:4000ms$"
    out=$(report jobs --csv --node n1)
    assert_eq "$(cut -d, -f1 <<<"$out" | tr '\n' ' ')" "job 1 2 5 " "runs with a record of n1"
    out=$(report jobs --csv --since 2026-01-01T05:00 --account lab)
    assert_eq "$(cut -d, -f1 <<<"$out" | tr '\n' ' ')" "job 5 6 7 " "lab's runs that ended after 05:00"
    assert_match "$(report jobs --json --user carol)" '"vdesk":"n1:\?:>:\?ms"'
    assert_match "$(report jobs --csv --user carol)" "^7,,carol,lab,COMPLETED,,2026-01-01 13:53:20,"
}

# The picture: a block per eviction in its mode's colour over the run's
# span, a red mark per failed one, each node's figures as the nodes view
# has them, a bar per user; rendered, it is not blank.
test_picture_draws_the_history() {
    local f=$T_DIR/report.svg out
    out=$(report --svg "$f" 2>&1) || t_fail "report --svg: $out"
    out=$(cat "$f")
    assert_eq "$(grep -c '<rect class="evicted"' "$f")" 3 "eviction blocks (save and suspend on n1, migrate on n2)"
    # n1's unreadable record and n2's failed save; not the shortened one.
    assert_eq "$(grep -c '<rect class="failed"' "$f")" 2 "failed evictions"
    assert_match "$out" "<title>n2: migrate for job 3, 2026-01-01 02:13 to 2026-01-01 04:13</title>"
    assert_match "$out" ">94.0% not evicted, 2 evictions, 1 failed<"
    assert_match "$out" ">92.0% not evicted, 1 evictions, 1 failed<"
    assert_match "$out" ">carol \(lab\)</text>"
    assert_eq "$(grep -c '<rect class="gpu"' "$f")" 4 "users' bars"
    assert_match "$out" ">0.11 GPU-hours<"
    rsvg-convert "$f" -o "$T_DIR/report.png" || t_fail "rsvg-convert could not render $f"
    assert_gt "$(convert "$T_DIR/report.png" -format %c histogram:info:- | wc -l)" 8 "colours in the rendered picture"
    # The filters select as for the tables.
    report --svg "$f" --node n2 || t_fail "report --svg --node n2"
    assert_eq "$(grep -c '<rect class="home"' "$f")" 1 "nodes drawn with --node n2"
    report --svg "$f" --since 2026-03-01 --until 2026-03-02 || t_fail "report --svg of an empty period"
    assert_match "$(cat "$f")" "no evictions in this period"
}

# Names come from the nodes' records and Slurm: the picture escapes them,
# and one the store cut in the middle of a character stays valid UTF-8.
test_picture_escapes_names() {
    local DB=$T_DIR/h.db
    mkdir -p "$DB.spool"
    run 1 "<b>&x'" "$(printf 'ü%.0s' $(seq 40))" 0 60 1 "n1:evict:save:save:9:save:9"
    printf '[vdesk]\naccounting_db = %s\n' "$DB" >"$T_DIR/h.conf"
    env -i VDESK_CONF="$T_DIR/h.conf" JOBID=2 JOBSTATE=COMPLETED START=$((T0 + 100)) END=$((T0 + 110)) \
        USERNAME=x CLUSTER=c1 "$T_BUILD/jobcomp/vdesk-jobcomp" 2>/dev/null || t_fail "vdesk-jobcomp"
    "$T_BUILD/cli/vdeskctl" --conf "$T_DIR/h.conf" report --svg "$T_DIR/h.svg" || t_fail "report --svg"
    assert_match "$(cat "$T_DIR/h.svg")" "&lt;b&gt;&amp;x' \((ü)+\?*\)"
    assert_no_match "$(cat "$T_DIR/h.svg")" "<b>"
    rsvg-convert "$T_DIR/h.svg" -o "$T_DIR/h.png" || t_fail "rsvg-convert could not render it"
}

test_bad_input_names_the_fix() {
    local out rc
    out=$(report weekly 2>&1) && t_fail "an unknown view was accepted"
    assert_match "$out" "unknown view 'weekly': give users, nodes or jobs"
    rc=0; out=$(report --since yesterday 2>&1) || rc=$?
    assert_eq "$rc" 2 "exit status of a bad date"
    assert_match "$out" "--since 'yesterday': give a date as YYYY-MM-DD"
    out=$(report --since 2026-02-01 --until 2026-01-01 2>&1) && t_fail "an empty period was accepted"
    assert_match "$out" "--until 2026-01-01 is not after --since 2026-02-01"
    out=$(report --json --csv 2>&1) && t_fail "--json with --csv was accepted"
    assert_match "$out" "give one"
    out=$(report nodes --svg "$T_DIR/x.svg" 2>&1) && t_fail "a view with --svg was accepted"
    assert_match "$out" "--svg draws the nodes and the users in one picture; give no view"
    rc=0; out=$(report --svg "$T_DIR/no/such/dir/x.svg" 2>&1) || rc=$?
    assert_eq "$rc" 1 "exit status of a picture that cannot be written"
    assert_match "$out" "cannot write $T_DIR/no/such/dir/x.svg.tmp-[0-9]+: No such file or directory \(give a file in a directory you may write\)"
    out=$("$T_BUILD/cli/vdeskctl" --conf "$T_DIR/vdesk.conf" status --csv 2>&1) && t_fail "--csv with status"
    assert_match "$out" "go with report"
    printf '[vdesk]\naccounting_db = %s/none.db\n' "$T_DIR" >"$T_DIR/other.conf"
    out=$("$T_BUILD/cli/vdeskctl" --conf "$T_DIR/other.conf" report 2>&1) && t_fail "a missing database"
    assert_match "$out" "no accounting database at $T_DIR/none.db .*JobCompType=jobcomp/script"
    [ ! -e "$T_DIR/none.db" ] || t_fail "report made a database"
    sqlite3 "$T_DIR/n.db" 'CREATE TABLE t (x)' && printf '[vdesk]\naccounting_db = %s/n.db\n' "$T_DIR" >"$T_DIR/other.conf"
    out=$("$T_BUILD/cli/vdeskctl" --conf "$T_DIR/other.conf" report 2>&1) && t_fail "a database not vdesk's"
    assert_match "$out" "not vdesk's, or empty"
}

t_main
