#!/bin/bash
# The test bed itself: a real Slurm cluster runs jobs, a real QEMU guest keeps
# a heartbeat on its console and disk, its stand-in devices hot-unplug with
# DEVICE_REMOVED and plug back, a clean shutdown keeps the disk, a broken
# start names the failing part and its log, and teardown leaves nothing.
. "$(dirname "$0")/../lib.sh"

BEDCTL=$T_BUILD/tests/bedctl

t_setup() {
    T_BED=$(mktemp -d /tmp/vdb.XXXXXX)
    bed_up "$T_BED" || return 1
    bed_guest desk-n1 >/dev/null && bed_wait_hb desk-n1 60
}

t_teardown() { [ -f "$T_BED/pids" ] && bed_down "$T_BED"; }

test_bed_starts_within_20s() {
    t_say "bed up in $BED_UP_MS ms"
    assert_lt "$BED_UP_MS" 20000 "milliseconds to start the bed"
}

test_all_three_nodes_idle() {
    assert_eq "$(sinfo -h -N -o '%N %T' | tr '\n' ' ')" "n1 idle n2 idle n3 idle "
}

test_batch_job_runs_on_chosen_node() {
    local id out
    out=$(mktemp -p "$T_BED")
    id=$(sbatch --parsable -w n2 -o "$out" --wrap 'echo "node=$SLURMD_NODENAME job=$SLURM_JOB_ID"')
    t_poll 30 job_done "$id"
    assert_eq "$(job_state "$id")" COMPLETED
    assert_eq "$(cat "$out")" "node=n2 job=$id"
}

test_srun_runs_on_three_nodes() {
    assert_eq "$(srun -N3 -n3 -l sh -c 'echo $SLURMD_NODENAME' | sort | tr '\n' ' ')" "0: n1 1: n2 2: n3 "
}

test_guest_heartbeat_advances_on_console_and_disk() {
    local a b boot n1 n2
    read -r boot n1 <<<"$(bed_hb desk-n1)"
    t_poll 20 sh -c "[ \$(grep -ac '^vdesk-hb boot=$boot ' '$VDESK_BED/guests/desk-n1/console.log') -gt $((n1 + 10)) ]"
    read -r a n2 <<<"$(bed_hb desk-n1)"
    assert_eq "$a" "$boot" "boot count while running"
    assert_gt "$n2" "$n1" "heartbeat counter"
    read -r b _ <<<"$(bed_disk desk-n1)"
    assert_eq "$b" "$boot" "boot count on the guest's disk"
}

test_device_unplug_raises_event_and_replug_works() {
    local xml out boot n1 n2
    xml=$(mktemp -p "$T_BED")
    "$BEDCTL" devxml desk-n1 ua-gpu0 >"$xml"
    assert_match "$(cat "$xml")" "<rng model=\"virtio\">"
    read -r boot n1 <<<"$(bed_hb desk-n1)"
    out=$("$BEDCTL" detach desk-n1 ua-gpu0 10000)
    t_say "$out"
    assert_match "$out" "removed ua-gpu0 in [0-9]+ ms \(DEVICE_REMOVED event\)"
    assert_eq "$("$BEDCTL" present desk-n1 ua-gpu0)" 0 "ua-gpu0 in the live XML after unplug"
    assert_eq "$("$BEDCTL" present desk-n1 ua-ib0)" 1 "ua-ib0 untouched"
    "$BEDCTL" attach desk-n1 ua-gpu0 "$xml"
    assert_eq "$("$BEDCTL" present desk-n1 ua-gpu0)" 1 "ua-gpu0 in the live XML after re-plug"
    # The guest lived through it: same boot, counter still moving.
    t_poll 10 sh -c "grep -aq '^vdesk-hb boot=$boot n=$((n1 + 5))[^0-9]' '$VDESK_BED/guests/desk-n1/console.log'"
    read -r _ n2 <<<"$(bed_hb desk-n1)"
    assert_gt "$n2" "$n1"
}

test_unplug_of_unknown_device_names_it() {
    local out
    if out=$("$BEDCTL" detach desk-n1 ua-nope 1000 2>&1); then t_fail "detach of ua-nope succeeded"; fi
    assert_match "$out" "VM desk-n1: cannot unplug device ua-nope"
}

test_clean_shutdown_keeps_disk_and_reboot_counts() {
    local boot
    read -r boot _ <<<"$(bed_hb desk-n1)"
    "$BEDCTL" shutdown desk-n1 20000
    assert_eq "$("$BEDCTL" state desk-n1)" shutoff
    assert_match "$(cat "$VDESK_BED/guests/desk-n1/console.log")" "vdesk-guest: down boot=$boot n=[1-9]"
    read -r b _ <<<"$(bed_disk desk-n1)"
    assert_eq "$b" "$boot" "boot count on disk after shutdown"
    "$BEDCTL" start desk-n1
    t_poll 30 grep -aq "^vdesk-hb boot=$((boot + 1)) " "$VDESK_BED/guests/desk-n1/console.log"
}

test_broken_start_names_part_and_log() {
    local dir out
    dir=$(mktemp -d /tmp/vdb.XXXXXX)
    out=$( (VDESK_BED_SLURM_EXTRA='NoSuchSlurmOption=1' bed_up "$dir") 2>&1) &&
        { bed_down "$dir"; t_fail "bed_up succeeded with a broken slurm.conf"; }
    assert_match "$out" "FAILED to start slurmctld"
    assert_match "$out" "log: $dir/slurm/log/slurmctld.log"
    assert_match "$out" "kept for inspection"
    assert_eq "$(bed__marked "$dir")" "" "processes left by the failed bed"
    rm -rf "$dir"
}

test_teardown_leaves_nothing() {
    local pids qemu
    pids=$(awk '{ print $2 }' "$T_BED/pids")
    qemu=$(bed_qemu_pids "$T_BED")
    assert_ne "$qemu" "" "a running QEMU to stop"
    bed_down "$T_BED" || t_fail "bed_down $T_BED failed"
    for p in $pids $qemu; do [ ! -e "/proc/$p" ] || t_fail "pid $p still exists: $(cat /proc/$p/cmdline | tr '\0' ' ')"; done
    assert_eq "$(bed__marked "$T_BED")" "" "processes carrying the bed marker"
    [ ! -e "$T_BED" ] || t_fail "$T_BED still exists"
}

t_main
