#!/bin/bash
# Live migration on a bed with one libvirt daemon per node (n1, n2, n3), each
# with virtlockd, the disks on a directory all of them reach: a job with
# --vdesk=migrate moves desk-n1 to an idle node, running, and the epilog
# brings it home; no idle node hands over to the chain; a target that dies
# mid-way leaves the desktop at home; a crash at every journalled step of
# both ways is recovered; libvirt's lock manager refuses a second start; a
# job on a visitor's host moves the visitor on, or saves it for its home.
. "$(dirname "$0")/../lib.sh"

BEDCTL=$T_BUILD/tests/bedctl
DAEMONS="n1 n2 n3"

t_setup() {
    T_BED=$(mktemp -d /tmp/vdm.XXXXXX)
    export VDESK_BED_MIGRATION=1
    bed_vdesk_files "$T_BED"
    VDESK_BED_PROLOG=$T_BED/vdesk/prolog VDESK_BED_EPILOG=$T_BED/vdesk/epilog \
    VDESK_BED_PLUGSTACK="required $T_BUILD/spank/vdesk.so default=auto" \
    VDESK_BED_SLURM_EXTRA=$'PrologFlags=Alloc\nPrologEpilogTimeout=120\nBatchStartTimeout=120' \
        bed_up "$T_BED" || return 1
    VDCONF=$VDESK_BED/vdesk/vdesk.conf
    cp "$VDCONF" "$VDESK_BED/vdesk/good.conf"
    bed_guest desk-n1 >/dev/null && bed_wait_hb desk-n1 60
}

# fresh: what a test before may have left (its vdesk.conf, drained nodes,
# n2's desktop) is undone, so that one failure does not fail the rest.
fresh() {
    cp "$VDESK_BED/vdesk/good.conf" "$VDCONF"
    local node
    # one by one: slurmctld refuses the whole list if one is not drained
    for node in n1 n2 n3; do
        sinfo -h -N -n "$node" -o %T | grep -q drain && scontrol update nodename="$node" state=resume
        daemon_answers "$node" || daemon_restart "$node"
        kill -0 "$(cat "$(bed__libvirt_dir "$VDESK_BED" "$node")/run/virtlockd.pid")" 2>/dev/null ||
            bed_virtlockd_start "$node"
    done
    on n2 purge desk-n2 >/dev/null 2>&1 || true
    on n3 purge desk-n2 >/dev/null 2>&1 || true
    [ "$(where)" = n1 ] || vdeskctl --node n1 recover >/dev/null 2>&1 || true
}
t_teardown() { bed_down "$T_BED"; }

# daemon_answers NODE: NODE's libvirt daemon takes a connection and answers.
daemon_answers() { timeout 15 "$BEDCTL" -c "$(bed_node_uri "$VDESK_BED" "$1")" ping >/dev/null 2>&1; }

# daemon_restart NODE: a daemon an earlier test left dead or deaf (seen on
# Debian 12 after the slot race: n2's daemon alive, its socket refusing
# connections) is reported, with its process state and log, and replaced,
# so that it fails at most the test that left it so, not every one after.
daemon_restart() {
    local l pid
    l=$(bed__libvirt_dir "$VDESK_BED" "$1")
    pid=$(cat "$l/run/libvirtd.pid" 2>/dev/null)
    t_say "fresh: $1's libvirt daemon (pid ${pid:-?}) does not answer; $(grep -h '^State:' "/proc/$pid/status" 2>/dev/null || echo 'not running'); socket: $(ls -l "$l/run/libvirt-sock" 2>&1)"
    tail -n 15 "$l/libvirtd.log" 2>/dev/null | sed 's/^/    | /' >&2
    bed_report_dead
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && bed_libvirt_stop "$1"
    bed_libvirt_start "$1" || t_fail "$1's libvirt daemon did not start again"
}

vdeskctl() { "$T_BUILD/cli/vdeskctl" --conf "$VDCONF" "$@"; }
on() { "$BEDCTL" -c "$(bed_node_uri "$VDESK_BED" "$1")" "${@:2}"; }
records() { cat "$VDESK_BED/vdesk/state/n1/records.jsonl" 2>/dev/null; }

# where: the daemons that have desk-n1 running, e.g. "n2" (none: "").
where() {
    local n out=
    for n in $DAEMONS; do
        case $(on "$n" state desk-n1) in running | paused) out="$out $n" ;; esac
    done
    echo "${out# }"
}

# heartbeats: every beat of the current boot on the console, in order.
beats() {
    grep -a $'^vdesk-hb boot=[0-9]* n=[0-9]*\r$' "$VDESK_BED/guests/desk-n1/console.log" |
        sed -n 's/^vdesk-hb boot=\([0-9]*\) n=\([0-9]*\).*/\1 \2/p'
}

# assert_beats_whole BOOT FROM: from beat FROM of boot BOOT on, every beat is
# there once, in order: the guest never restarted, went back or lost one.
assert_beats_whole() {
    local bad
    bad=$(beats | awk -v b="$1" -v from="$2" '
        $1 == b && $2 >= from { if (seen && $2 != last + 1) { print "beat " last " then " $2; exit } last = $2; seen = 1 }
        $1 > b { print "boot " $1; exit }')
    [ -z "$bad" ] || t_fail "desk-n1's heartbeat broke: $bad"
}

hb_after() {
    local b n
    read -r b n <<<"$(bed_hb desk-n1)"
    [ "$b" = "$1" ] && [ "${n:-0}" -ge "$2" ]
}

# at_home BOOT N: desk-n1 runs on n1 alone, same boot, its heartbeat goes
# on past N, both stand-in devices are plugged in again.
at_home() {
    assert_eq "$(where)" n1 "where desk-n1 runs"
    t_poll 20 hb_after "$1" $(($2 + 3)) || t_fail "desk-n1's heartbeat stopped: $(bed_hb desk-n1)"
    assert_eq "$(on n1 present desk-n1 ua-gpu0)$(on n1 present desk-n1 ua-ib0)" 11 "devices at home"
    assert_match "$(vdeskctl --node n1 status)" "desktop: present"
}

start_job() {
    local id
    id=$(sbatch --parsable -w "$1" --vdesk="$2" -o /dev/null --wrap "sleep $3") || return 1
    t_poll 60 sh -c "scontrol -o show job $id | grep -q 'AdminComment=.*vdesk\[n1\] evict'" || return 1
    echo "$id"
}
job_gone() { t_poll 60 job_done "$1" && t_poll 60 sh -c "'$T_BUILD/cli/vdeskctl' --conf '$VDCONF' --node n1 status | grep -q '^desktop: present'"; }

# The whole way: away to an idle node while the job runs, running, without
# the devices; the node's Comment says where; home after, devices back;
# the heartbeat never restarts, goes back or skips.
test_migrate_job_moves_the_desktop_away_and_home() {
    local boot n id to rec out evp
    fresh
    read -r boot n <<<"$(bed_hb desk-n1)"
    # A layer of vdesk's under the eviction's: its recovery point is then
    # a layer a merge could write into (below).
    vdeskctl --node n1 snapshot >/dev/null || t_fail "snapshot before the job"
    id=$(start_job n1 migrate 6)
    to=$(where)
    case $to in n2 | n3) ;; *) t_fail "desk-n1 runs on '$to' during job $id, not on an idle node" ;; esac
    assert_eq "$(on n1 state desk-n1)" missing "n1 keeps no definition of a desktop that left"
    assert_eq "$(on "$to" present desk-n1 ua-gpu0)$(on "$to" present desk-n1 ua-ib0)" 00 "devices away"
    t_poll 20 hb_after "$boot" $((n + 3)) || t_fail "desk-n1 does not run on $to: $(bed_hb desk-n1)"
    assert_match "$(admin_comment "$id")" "asked=migrate used=migrate devices=ua-gpu0,ua-ib0 .*migrate $to:[0-9]+ migrated=n1>$to:[0-9]+ms,downtime=[0-9]+ms,data=[0-9]+MiB,iterations=[0-9]+ outcome=\"desktop desk-n1 migrated to $to\""
    assert_match "$(scontrol show node n1 | grep Comment)" "desktop desk-n1 on $to for job $id"
    assert_match "$(vdeskctl --node n1 status)" "on $to"
    # any node says where it is
    assert_match "$(vdeskctl --node n3 status)" "desk-n1 +home n1 +running on $to \(away\)"
    # A recovery point of the desktop where it runs (issue 14), in home's
    # snapshot directory on the shared storage; it stays after the return.
    out=$(vdeskctl --node n1 snapshot --name away) || t_fail "snapshot while on $to: $out"
    assert_match "$out" "snapshot away of desk-n1 \(hand, "
    assert_match "$(vdeskctl --node n1 snapshots)" "^away .*runs on it"
    # The eviction's recovery point is the restore's fallback while the
    # desktop is away: no merge or discard touches it.
    evp=$(vdeskctl --node n1 snapshots | sed -n "s/^\(job$id-[-0-9]*\) .*/\1/p")
    [ -n "$evp" ] || t_fail "no recovery point of job $id listed: $(vdeskctl --node n1 snapshots)"
    out=$(vdeskctl --node n1 discard desk-n1 "$evp" 2>&1) && t_fail "the eviction's point discarded while away"
    assert_match "$out" "is the recovery point of the eviction desktop desk-n1 is away for"
    out=$(vdeskctl --node n1 flatten --keep 1) || t_fail "flatten while on $to: $out"
    assert_match "$(vdeskctl --node n1 snapshots)" "^$evp "
    job_gone "$id"
    at_home "$boot" "$n"
    assert_beats_whole "$boot" "$n"
    assert_match "$(vdeskctl --node n1 snapshots)" "^away .*kept until discarded"
    rec=$(records | tail -n 1)
    assert_match "$rec" "\"op\":\"restore\".*\"home from $to\".*\"migration\":\\{\"from\":\"$to\",\"to\":\"n1\",\"ms\":[0-9]+,\"downtime_ms\":[0-9]+,\"data_bytes\":[1-9][0-9]*,\"iterations\":[0-9]+\\}"
}

# No node to go to: the chain (save, shutdown) takes over, and says why.
test_no_idle_node_hands_over_to_the_chain() {
    local boot n id
    fresh
    read -r boot n <<<"$(bed_hb desk-n1)"
    scontrol update nodename=n2,n3 state=drain reason=t_migrate
    id=$(start_job n1 migrate 2)
    scontrol update nodename=n2,n3 state=resume
    assert_match "$(admin_comment "$id")" "asked=migrate used=save .*outcome=\"desktop desk-n1 save after migrate failed: no idle node to migrate to"
    job_gone "$id"
    at_home "$boot" "$n"
}

# locked_by_virtlockd NODE: desk-n1's active disk layer, as NODE's daemon
# runs it, has a POSIX write lock held by a virtlockd.
locked_by_virtlockd() {
    local disk ino pid
    disk=$(on "$1" xml desk-n1 | sed -n "s/.*<source file='\([^']*\)'.*/\1/p" | head -n 1)
    ino=$(stat -c %i "$disk") || return 1
    for pid in $(awk -v i=":$ino" '$2 == "POSIX" && $4 == "WRITE" && substr($6, length($6) - length(i) + 1) == i { print $5 }' /proc/locks); do
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = virtlockd ] && return 0
    done
    return 1
}

# libvirt itself refuses a second copy: starting desk-n1 at home while it
# runs on another node fails on the disk's lock (QEMU's own image lock
# refuses first on one host; virtlockd, which holds the disk on the node
# that runs it, refuses across hosts); the epilog then sets that
# definition aside and brings the real desktop home over it.
test_start_at_home_while_away_is_refused_by_the_lock_manager() {
    local boot n id to out
    fresh
    read -r boot n <<<"$(bed_hb desk-n1)"
    id=$(start_job n1 migrate 8)
    to=$(where)
    locked_by_virtlockd "$to" || t_fail "desk-n1's disk on $to is not locked by virtlockd"
    out=$(on n1 create "$VDESK_BED/guests/desk-n1/domain.xml" 2>&1) &&
        t_fail "a second desk-n1 started at home while it runs on $to"
    assert_match "$out" "lock|Lockspace resource"
    assert_eq "$(where)" "$to" "the desktop after the refused start"
    job_gone "$id"
    at_home "$boot" "$n"
    assert_beats_whole "$boot" "$n"
    assert_match "$(sinfo -h -N -n n1 -o '%E')" "desk-n1 was defined again on n1 while it ran on $to; that definition is kept as desk-n1.stale-"
    scontrol update nodename=n1 state=resume
}

# virtlockd protects the disk of a running desktop; killed, it protects
# nothing (the lock dies with it), and status says so until a virtlockd
# takes the lock again (a pause and resume of the guest).
test_status_says_when_the_disk_is_not_locked() {
    local pid out
    fresh
    assert_match "$(vdeskctl --node n1 status)" "disk of desk-n1: locked by virtlockd"
    pid=$(cat "$VDESK_BED/libvirt/run/virtlockd.pid")
    kill -KILL "$pid"
    t_poll 10 sh -c "! kill -0 $pid"
    out=$(vdeskctl --node n1 status) && t_fail "status exits 0 with the disk unlocked"
    assert_match "$out" "disk of desk-n1: NOT locked by virtlockd \(!\)"
    assert_match "$out" "is not locked by virtlockd: a second copy of a migrating desktop could start on it"
    bed_virtlockd_start n1 || t_fail "virtlockd did not start again"
    on n1 suspend desk-n1
    on n1 resume desk-n1
    assert_match "$(vdeskctl --node n1 status)" "disk of desk-n1: locked by virtlockd"
}

# desk_n2 up|down: n2's own desktop (a job on n2 evicts it first).
desk_n2() {
    if [ "$1" = up ]; then
        # Booted, not only started: a guest still booting ignores the
        # request to give its GPU back (seen on Debian 13 once the prolog
        # got faster: the job came 10 s into the boot).
        LIBVIRT_DEFAULT_URI=$(bed_node_uri "$VDESK_BED" n2) bed_guest desk-n2 >/dev/null &&
            bed_wait_hb desk-n2 60
    else
        on n2 purge desk-n2
    fi
}

# A job lands on the node a visitor runs on: the visitor moves on to the
# idle node left, and its home's epilog later finds it there.
test_job_on_a_visitors_host_moves_it_on() {
    local boot n a b
    fresh
    desk_n2 up
    read -r boot n <<<"$(bed_hb desk-n1)"
    scontrol update nodename=n3 state=drain reason=t_migrate
    a=$(start_job n1 migrate 30)
    scontrol update nodename=n3 state=resume
    assert_eq "$(where)" n2 "desk-n1 during job $a"
    b=$(sbatch --parsable -w n2 --vdesk=save -o /dev/null --wrap 'sleep 3')
    t_poll 60 sh -c "scontrol -o show job $b | grep -q 'AdminComment=.*vdesk\[n2\] evict'"
    assert_match "$(admin_comment "$b")" "visitor desk-n1 to n3:[0-9]+ .*outcome=\"desktop desk-n2 save; visitor desk-n1 moved on to n3\""
    assert_eq "$(where)" n3 "desk-n1 after job $b came to n2"
    t_poll 60 job_done "$b"
    scancel "$a"
    job_gone "$a"
    at_home "$boot" "$n"
    assert_beats_whole "$boot" "$n"
    assert_match "$(records | tail -n 1)" "\"home from n3\""
    desk_n2 down
}

# No idle node for the visitor: it is saved where its home finds it, and
# comes home from that file, its session whole.
test_visitor_with_nowhere_to_go_is_saved_for_its_home() {
    local boot n a b
    fresh
    desk_n2 up
    read -r boot n <<<"$(bed_hb desk-n1)"
    scontrol update nodename=n3 state=drain reason=t_migrate
    a=$(start_job n1 migrate 30)
    b=$(sbatch --parsable -w n2 --vdesk=save -o /dev/null --wrap 'sleep 3')
    t_poll 60 sh -c "scontrol -o show job $b | grep -q 'AdminComment=.*vdesk\[n2\] evict'"
    assert_match "$(admin_comment "$b")" "visitor desk-n1 save:[0-9]+ .*visitor desk-n1 saved for its home n1"
    assert_eq "$(on n2 state desk-n1)" shutoff "the saved visitor"
    [ -s "$VDESK_BED/vdesk/snapshots/n1/desk-n1.visitor.save" ] || t_fail "no visitor save file in n1's snapshot_dir"
    t_poll 60 job_done "$b"
    scancel "$a"
    job_gone "$a"
    scontrol update nodename=n3 state=resume
    at_home "$boot" "$n"
    assert_beats_whole "$boot" "$n"
    assert_match "$(records | tail -n 1)" "\"home from n2\".*\"restore\""
    [ ! -e "$VDESK_BED/vdesk/snapshots/n1/desk-n1.visitor.save" ] || t_fail "the visitor save file outlived the restore"
    desk_n2 down
}

# Two jobs start at the same moment on n1 and n2, both asking to migrate,
# and the one idle node, n3, has one desktop slot: one desktop gets it, the
# other does not land there too (it comes back, or finds no room, and is
# saved); both come home with their sessions.
test_two_desktops_evicted_at_once_take_one_slot() {
    local b1 n1 b2 n2 a b
    fresh
    desk_n2 up
    bed_wait_hb desk-n2 60
    cp "$VDCONF" "$VDCONF.good"
    printf 'desktop_slots = 1\n' >>"$VDCONF"   # the file ends with [node n3]
    read -r b1 n1 <<<"$(bed_hb desk-n1)"
    read -r b2 n2 <<<"$(bed_hb desk-n2)"
    a=$(sbatch --parsable -H -w n1 --vdesk=migrate -o /dev/null --wrap 'sleep 10')
    b=$(sbatch --parsable -H -w n2 --vdesk=migrate -o /dev/null --wrap 'sleep 10')
    scontrol release "$a,$b"
    t_poll 90 sh -c "scontrol -o show job $a | grep -q 'AdminComment=.*vdesk\[n1\] evict' &&
                     scontrol -o show job $b | grep -q 'AdminComment=.*vdesk\[n2\] evict'"
    assert_eq "$(on n3 list-active | sort | tr '\n' ' ')" "$( (admin_comment "$a"; admin_comment "$b") |
        sed -n 's/.*vdesk\[n\([12]\)\] evict: .* migrated=n[12]>n3:.*/desk-n\1/p' | sort | tr '\n' ' ')" \
        "the desktops on n3 are those whose records say they went there"
    assert_eq "$(on n3 list-active | wc -l)" 1 "desktops on n3 (desktop_slots = 1)"
    assert_match "$(admin_comment "$a") $(admin_comment "$b")" "used=save"
    mv "$VDCONF.good" "$VDCONF"
    t_poll 60 job_done "$a"
    t_poll 60 job_done "$b"
    job_gone "$a"
    t_poll 60 sh -c "[ \"\$('$BEDCTL' -c '$(bed_node_uri "$VDESK_BED" n2)' state desk-n2)\" = running ]"
    at_home "$b1" "$n1"
    assert_beats_whole "$b1" "$n1"
    t_poll 20 sh -c "grep -aq 'vdesk-hb boot=$b2 n=$((n2 + 3))' '$VDESK_BED/guests/desk-n2/console.log'" ||
        t_fail "desk-n2's heartbeat did not go on"
    desk_n2 down
}

# The deterministic form of the race above: n1's prolog chose n3 (its one
# slot free), and desk-n2 takes the slot before desk-n1 arrives
# (VDESK_TEST_PAUSE holds the prolog between the choice and the move).
# desk-n1 comes back and is saved instead; nothing lost.
test_a_desktop_that_arrives_after_the_slot_was_taken_comes_back() {
    local boot n out rec
    fresh
    desk_n2 up
    bed_wait_hb desk-n2 60
    printf 'desktop_slots = 1\n' >>"$VDCONF"   # the file ends with [node n3]
    scontrol update nodename=n2 state=drain reason=t_migrate
    read -r boot n <<<"$(bed_hb desk-n1)"
    SLURM_JOB_ID=998 SLURMD_NODENAME=n1 SPANK_VDESK_MODE=migrate VDESK_CONF=$VDCONF \
        VDESK_TEST_PAUSE="picked 5000" "$T_BUILD/prolog/vdesk-prolog" >"$T_BED/prolog.out" 2>&1 &
    local pid=$!
    sleep 1
    out=$(on n2 migrate desk-n2 "$(bed_peer_uri n3)" tcp://127.0.0.1) || t_fail "desk-n2 to n3: $out"
    wait "$pid" || t_fail "the prolog failed: $(tail -n 3 "$T_BED/prolog.out")"
    rec=$(records | tail -n 1)
    assert_match "$rec" "\"migrate n3\".*\"back from n3\".*\"save\""
    assert_match "$rec" "\"used\":\"save\""
    assert_match "$rec" "n3 filled up \(desktop_slots = 1\) while desk-n1 moved there: it came back"
    assert_eq "$(on n3 list-active | tr '\n' ' ')" "desk-n2 " "desktops on n3"
    assert_eq "$(on n1 state desk-n1)" shutoff "desk-n1, saved at home"
    SLURM_JOB_ID=998 SLURMD_NODENAME=n1 VDESK_CONF=$VDCONF "$T_BUILD/prolog/vdesk-epilog" >/dev/null 2>&1 ||
        t_fail "the epilog"
    at_home "$boot" "$n"
    assert_beats_whole "$boot" "$n"
}

# The home's journal is lost while its desktop is away: the next job's
# prolog finds the desktop where it runs instead of taking it for gone, and
# that job's epilog brings it home with its devices.
test_a_lost_journal_finds_the_desktop_where_it_runs() {
    local boot n rec
    fresh
    scontrol update nodename=n3 state=drain reason=t_migrate
    read -r boot n <<<"$(bed_hb desk-n1)"
    SLURM_JOB_ID=996 SLURMD_NODENAME=n1 SPANK_VDESK_MODE=migrate VDESK_CONF=$VDCONF \
        "$T_BUILD/prolog/vdesk-prolog" >/dev/null 2>&1 || t_fail "the prolog of job 996"
    # Seen in full runs on both platforms, and only here: n2's libvirt
    # daemon, which answered fresh(), refuses connections when the prolog
    # asks it for room, and the prolog saves the desktop instead (as it
    # should with no reachable target). That is the bed's daemon, not what
    # this test is about: say so, replace the daemon, and try once more.
    # (Once it refused `where` and answered the ping just after: whether
    # it answers now does not tell.)
    if [ "$(where 2>/dev/null)" != n2 ]; then
        t_say "desk-n1 is not on n2 after job 996's prolog ($(records | tail -n 1 | grep -o '"outcome":"[^"]*"'));" \
            "n2's daemon answers now: $(daemon_answers n2 && echo yes || echo no); replacing it and trying again"
        daemon_restart n2
        SLURM_JOB_ID=996 SLURMD_NODENAME=n1 VDESK_CONF=$VDCONF "$T_BUILD/prolog/vdesk-epilog" >/dev/null 2>&1 ||
            t_fail "the epilog of job 996"
        read -r boot n <<<"$(bed_hb desk-n1)"
        SLURM_JOB_ID=994 SLURMD_NODENAME=n1 SPANK_VDESK_MODE=migrate VDESK_CONF=$VDCONF \
            "$T_BUILD/prolog/vdesk-prolog" >/dev/null 2>&1 || t_fail "the prolog of job 994"
    fi
    assert_eq "$(where)" n2 "desk-n1 after the prolog ($(records | tail -n 1))"
    rm "$VDESK_BED/vdesk/state/n1/journal.json"
    SLURM_JOB_ID=995 SLURMD_NODENAME=n1 SPANK_VDESK_MODE=save VDESK_CONF=$VDCONF \
        "$T_BUILD/prolog/vdesk-prolog" >/dev/null 2>&1 || t_fail "the prolog of job 995"
    rec=$(records | tail -n 1)
    assert_match "$rec" "desktop desk-n1 is on n2 already \(the journal had it here\)"
    assert_eq "$(where)" n2 "desk-n1 after job 995's prolog"
    assert_match "$(vdeskctl --node n1 status)" "on n2"
    SLURM_JOB_ID=995 SLURMD_NODENAME=n1 VDESK_CONF=$VDCONF "$T_BUILD/prolog/vdesk-epilog" >/dev/null 2>&1 ||
        t_fail "the epilog of job 995"
    at_home "$boot" "$n"
    assert_beats_whole "$boot" "$n"
}

# The target's daemon dies while the memory is on its way (bandwidth held
# low so that it takes seconds): the migration fails, the desktop never
# left, and the chain saves it instead.
test_target_lost_mid_way_keeps_the_desktop_home() {
    local boot n id pid
    fresh
    read -r boot n <<<"$(bed_hb desk-n1)"
    cp "$VDCONF" "$VDCONF.good"
    sed -i 's/^migrate_unsafe = yes$/&\nmigrate_bandwidth = 8/' "$VDCONF"
    scontrol update nodename=n3 state=drain reason=t_migrate
    pid=$(cat "$VDESK_BED/libvirt-n2/run/libvirtd.pid")
    id=$(sbatch --parsable -w n1 --vdesk=migrate -o /dev/null --wrap 'sleep 2')
    t_poll 60 sh -c "grep -q '\"migrate n2\"' '$VDESK_BED/vdesk/state/n1/journal.json'"
    sleep 1
    kill -KILL "$pid"
    t_poll 90 sh -c "scontrol -o show job $id | grep -q 'AdminComment=.*vdesk\[n1\] evict'"
    assert_match "$(admin_comment "$id")" "used=save .*migrate n2:[0-9]+!.*migrate failed: VM desk-n1: cannot migrate to"
    job_gone "$id"
    mv "$VDCONF.good" "$VDCONF"
    scontrol update nodename=n3 state=resume
    at_home "$boot" "$n"
    bed_libvirt_start n2 || t_fail "n2's daemon did not start again"
}

# crash_at DIR STEP: the prolog (away) or the epilog (home) dies by SIGKILL
# right after journalling STEP (STEP+: after taking it); vdeskctl recover
# on n1 then brings the desktop home, with its session.
crash_at() {
    local way=$1 step=$2 boot n out
    read -r boot n <<<"$(bed_hb desk-n1)"
    if [ "$way" = away ]; then
        SLURM_JOB_ID=999 SLURMD_NODENAME=n1 SPANK_VDESK_MODE=migrate VDESK_CONF=$VDCONF \
            VDESK_TEST_CRASH=$step "$T_BUILD/prolog/vdesk-prolog" 2>/dev/null &&
            t_fail "the prolog survived VDESK_TEST_CRASH=$step"
    else
        SLURM_JOB_ID=999 SLURMD_NODENAME=n1 SPANK_VDESK_MODE=migrate VDESK_CONF=$VDCONF \
            "$T_BUILD/prolog/vdesk-prolog" >/dev/null 2>&1 || t_fail "the prolog before '$step'"
        SLURM_JOB_ID=999 SLURMD_NODENAME=n1 VDESK_CONF=$VDCONF VDESK_TEST_CRASH=$step \
            "$T_BUILD/prolog/vdesk-epilog" 2>/dev/null && t_fail "the epilog survived VDESK_TEST_CRASH=$step"
    fi
    out=$(vdeskctl --node n1 status) && t_fail "status exits 0 after the crash at '$step'"
    out=$(vdeskctl --node n1 recover) || t_fail "recover after the crash at '$step': $out"
    assert_match "$out" "outcome=\"recovered an operation interrupted while [a-z]+ at step '${step%+}'\""
    at_home "$boot" "$n"
    assert_beats_whole "$boot" "$n"
    [ "$(on n2 state desk-n1)" = missing ] || t_fail "n2 kept desk-n1 after the crash at '$step'"
}

test_crash_at_every_journalled_step_of_a_migration_is_recovered() {
    local step
    fresh
    scontrol update nodename=n3 state=drain reason=t_migrate
    for step in "migrate n2" "migrate n2+"; do crash_at away "$step"; done
    for step in "begin restore" "home from n2" "home from n2+" "replug ua-gpu0"; do crash_at home "$step"; done
    # Killed in the middle of the move itself (held to 8 MiB/s, so that it
    # takes seconds): libvirt ends the migration on its own, one way or the
    # other, and recover waits for that before it looks.
    local boot n pid out
    read -r boot n <<<"$(bed_hb desk-n1)"
    sed -i 's/^migrate_unsafe = yes$/&\nmigrate_bandwidth = 8/' "$VDCONF"
    SLURM_JOB_ID=997 SLURMD_NODENAME=n1 SPANK_VDESK_MODE=migrate VDESK_CONF=$VDCONF \
        "$T_BUILD/prolog/vdesk-prolog" >/dev/null 2>&1 &
    pid=$!
    t_poll 60 sh -c "grep -q '\"migrate n2\"' '$VDESK_BED/vdesk/state/n1/journal.json'"
    sleep 2
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    cp "$VDESK_BED/vdesk/good.conf" "$VDCONF"
    out=$(vdeskctl --node n1 recover) || t_fail "recover after a kill during the migration: $out"
    assert_match "$out" "recovered an operation interrupted while evicting at step 'migrate n2'"
    at_home "$boot" "$n"
    assert_beats_whole "$boot" "$n"
    [ "$(on n2 state desk-n1)" = missing ] || t_fail "n2 kept desk-n1 after the kill during the migration"
    scontrol update nodename=n3 state=resume
}

t_main
