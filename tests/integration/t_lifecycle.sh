#!/bin/bash
# The desktop's lifecycle (issue 13): what vdesk-boot.service runs at boot
# (vdeskctl boot) brings the selected desktop up, cold or from libvirt's
# managed save, turns libvirt's autostart off, restores a session a job
# left saved once Slurm no longer runs that job, and leaves the desktop
# away while a job still holds the node; vdeskctl select switches the
# desktop the node runs and boots, keeping the other's session. On a real
# cluster with real QEMU guests: n1 offers desk-n1 (its domain) and proj-a.
. "$(dirname "$0")/../lib.sh"

BEDCTL=$T_BUILD/tests/bedctl

t_setup() {
    T_BED=$(mktemp -d /tmp/vdl.XXXXXX)
    bed_vdesk_files "$T_BED"
    sed -i '/^domain = desk-n1$/a desktops = proj-a' "$T_BED/vdesk/vdesk.conf"
    VDESK_BED_PROLOG=$T_BED/vdesk/prolog VDESK_BED_EPILOG=$T_BED/vdesk/epilog \
    VDESK_BED_PLUGSTACK="required $T_BUILD/spank/vdesk.so default=auto" \
    VDESK_BED_SLURM_EXTRA=$'PrologFlags=Alloc\nPrologEpilogTimeout=120' \
        bed_up "$T_BED" || return 1
    VDCONF=$VDESK_BED/vdesk/vdesk.conf
    bed_guest desk-n1 >/dev/null && bed_wait_hb desk-n1 60 &&
        bed_guest proj-a >/dev/null && bed_wait_hb proj-a 60 && "$BEDCTL" destroy proj-a
}

t_teardown() { bed_down "$T_BED"; }

vdeskctl() { "$T_BUILD/cli/vdeskctl" --conf "$VDCONF" --node n1 "$@"; }
state() { "$BEDCTL" state "$1"; }
selected_file() { cat "$VDESK_BED/vdesk/state/n1/selected" 2>/dev/null; }
boot_of() { bed_hb "$1" | cut -d' ' -f1; }

# beats_on NAME BOOT: the guest runs boot BOOT (within a minute: a cold
# boot under TCG takes its time) and its heartbeat goes on.
beats_on() {
    local b n i
    for i in $(seq 600); do [ "$(boot_of "$1")" = "$2" ] && break; sleep 0.1; done
    read -r b n <<<"$(bed_hb "$1")"
    assert_eq "$b" "$2" "boot of $1" || return 1
    t_poll 30 sh -c "[ \"\$(grep -ac '^vdesk-hb boot=$2 ' '$VDESK_BED/guests/$1/console.log')\" -gt $((n + 5)) ]" ||
        t_fail "$1: heartbeat stopped at boot=$b n=$n"
}

# start_job MODE SECONDS: a job on n1, once its prolog is done; prints its id.
start_job() {
    local id
    id=$(sbatch --parsable -w n1 --vdesk="$1" -o /dev/null --wrap "sleep $2") || return 1
    t_poll 60 sh -c "scontrol -o show job $id | grep -q 'AdminComment=.*vdesk\[n1\] evict'" || return 1
    echo "$id"
}

test_boot_starts_the_desktop_and_turns_autostart_off() {
    local boot out
    boot=$(boot_of desk-n1)
    "$BEDCTL" autostart desk-n1 on && "$BEDCTL" autostart proj-a on && "$BEDCTL" destroy desk-n1
    out=$(vdeskctl boot) || t_fail "boot failed: $out"
    assert_match "$out" "desktop desk-n1 booted"
    assert_match "$out" "turned libvirt's autostart of desk-n1 off"
    assert_eq "$("$BEDCTL" autostart desk-n1)$("$BEDCTL" autostart proj-a)" 00 "autostart of both desktops"
    beats_on desk-n1 $((boot + 1))
    # Once more: it runs, nothing to do.
    out=$(vdeskctl boot) || t_fail "second boot failed: $out"
    assert_match "$out" "desktop desk-n1 runs"
    assert_eq "$(state proj-a)" shutoff "the desktop not selected stays off"
}

test_boot_restores_the_managed_save() {
    local boot out
    boot=$(boot_of desk-n1)
    "$BEDCTL" managedsave desk-n1
    assert_eq "$(state desk-n1)" shutoff "after managedsave"
    out=$(vdeskctl boot) || t_fail "boot failed: $out"
    assert_match "$out" "desktop desk-n1 restored from its managed save"
    beats_on desk-n1 "$boot"
    assert_eq "$("$BEDCTL" has-managedsave desk-n1)" 0 "managed save used"
}

# A reboot during a job: the session is in vdesk's save file, the job holds
# the node. boot leaves it for the job; once Slurm no longer runs the job
# (its epilog never ran here), boot brings the session back.
test_boot_waits_for_the_job_then_restores_the_saved_session() {
    local boot id out
    boot=$(boot_of desk-n1)
    id=$(start_job save 300) || return 1
    echo "$id" >"$VDESK_BED/vdesk/skip-epilog"
    assert_eq "$(state desk-n1)" shutoff "while job $id runs"
    out=$(vdeskctl boot) || t_fail "boot failed: $out"
    assert_match "$out" "stays away \(was save\) for job $id"
    assert_eq "$(state desk-n1)" shutoff "boot did not fight job $id"
    out=$(vdeskctl select proj-a 2>&1) && t_fail "select while job $id holds the node: $out"
    assert_match "$out" "away for job $id"
    scancel "$id"
    t_poll 60 job_done "$id"
    out=$(vdeskctl boot --wait 60) || t_fail "boot --wait failed: $out"
    assert_match "$out" "released job\(s\) that Slurm no longer runs here: $id"
    assert_eq "$(state desk-n1)" running "after boot --wait"
    beats_on desk-n1 "$boot"
    rm -f "$VDESK_BED/vdesk/skip-epilog"
    out=$(vdeskctl boot --wait 60) || t_fail "boot --wait with nothing to wait for: $out"
    assert_match "$out" "nothing to wait for"
}

test_select_switches_the_desktop_and_keeps_the_other_session() {
    local boot_n1 boot_a out id
    boot_n1=$(boot_of desk-n1)
    boot_a=$(boot_of proj-a)
    out=$(vdeskctl select proj-a) || t_fail "select proj-a failed: $out"
    assert_match "$out" "selected proj-a: desktop proj-a booted; desk-n1 kept in its managed save"
    assert_eq "$(state desk-n1) $("$BEDCTL" has-managedsave desk-n1)" "shutoff 1" "desk-n1 put aside"
    assert_eq "$(selected_file)" proj-a "STATE_DIR/selected"
    beats_on proj-a $((boot_a + 1))
    assert_match "$(vdeskctl select)" "^\* proj-a +running"
    assert_match "$(vdeskctl status)" "^selected: proj-a \(vdeskctl select; default desk-n1"
    # A job evicts the desktop that runs, the selected one.
    id=$(start_job suspend 3) || return 1
    assert_eq "$(state proj-a)" paused "proj-a while job $id runs"
    t_poll 60 job_done "$id"
    t_poll 60 sh -c "[ \"\$('$BEDCTL' state proj-a)\" = running ]" || t_fail "proj-a not back after job $id"
    # The next boot starts the selected desktop, not the default.
    "$BEDCTL" destroy proj-a
    out=$(vdeskctl boot) || t_fail "boot failed: $out"
    assert_match "$out" "desktop proj-a booted"
    assert_eq "$(state desk-n1)" shutoff "desk-n1 at boot while proj-a is selected"
    # A guest still booting does not let go of its devices (ACPI hotplug):
    # select would refuse, and proj-a run on.
    beats_on proj-a $((boot_a + 2))
    # Back: desk-n1's session comes out of its managed save, devices in.
    out=$(vdeskctl select desk-n1) || t_fail "select desk-n1 failed: $out"
    assert_match "$out" "desktop desk-n1 restored from its managed save"
    beats_on desk-n1 "$boot_n1"
    assert_eq "$("$BEDCTL" present desk-n1 ua-gpu0)$("$BEDCTL" present desk-n1 ua-ib0)" 11 "devices in desk-n1"
    assert_eq "$(state proj-a) $("$BEDCTL" has-managedsave proj-a)" "shutoff 1" "proj-a put aside"
}

test_select_refuses_what_the_node_does_not_offer() {
    local out
    out=$(vdeskctl select proj-b 2>&1) && t_fail "select proj-b succeeded: $out"
    assert_match "$out" "node n1 does not offer desktop proj-b: add it to desktops = in \[node n1\]"
    # A selection vdesk.conf no longer offers stops the node's programs,
    # naming the fix.
    echo proj-b >"$VDESK_BED/vdesk/state/n1/selected"
    out=$(vdeskctl status 2>&1) && t_fail "status with a selection not offered: $out"
    assert_match "$out" "chooses desktop proj-b, which .* no longer offers"
    # The fix the message names: once proj-b does not run, remove the
    # choice and boot.
    assert_match "$out" "remove .*/selected and run 'vdeskctl boot'"
    rm "$VDESK_BED/vdesk/state/n1/selected"
    out=$(vdeskctl boot) || t_fail "boot after the selection was removed: $out"
    vdeskctl status >/dev/null || t_fail "status after the selection was fixed"
}

# The bed's desktops here have no emulated display: display says so and
# what to add, and check-config --live notes it (t_display has one).
test_display_says_what_is_missing() {
    local out rc
    out=$(vdeskctl display 2>&1) && rc=0 || rc=$?
    assert_eq "$rc" 4 "display of a desktop without one: $out"
    assert_match "$out" "has no emulated display: add <graphics type='spice'"
    out=$(vdeskctl check-config --live 2>&1) || t_fail "check-config --live: $out"
    assert_match "$out" "note: desktop desk-n1 has no emulated display"
    assert_no_match "$out" "not defined"
}

t_main
