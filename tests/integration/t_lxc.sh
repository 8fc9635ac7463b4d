#!/bin/bash
# A container desktop on libvirt's LXC driver (docs/design.md,
# "Hypervisors"): n1's desktop is ct-n1, a busybox container in the bed's
# own libvirt daemon, whose init writes a heartbeat into its root. A job
# with --vdesk=suspend freezes it (the freezer cgroup) and it goes on after;
# shutdown stops it (SIGTERM to its init) and the epilog starts it again;
# save and migrate are refused by capability, the record says so, and the
# chain moves on to shutdown (policy = save,shutdown). check-config --live
# says what the driver cannot do.
#
# Where the kernel or the sandbox cannot run containers at all (no PID or
# mount namespaces, no freezer cgroup, not root) the file says why and runs
# nothing; anything else that goes wrong is a failure.
. "$(dirname "$0")/../lib.sh"

BEDCTL=$T_BUILD/tests/bedctl
FILE=$(basename "$0" .sh)

# lxc_cannot_run: why containers cannot run here (printed), or nothing.
lxc_cannot_run() {
    [ "$(id -u)" = 0 ] || { echo "not root (uid $(id -u)): libvirt's LXC driver needs root"; return; }
    local out
    out=$(unshare --mount --pid --uts --ipc --fork true 2>&1) ||
        { echo "no mount/PID/UTS/IPC namespaces for a container (unshare: $out)"; return; }
    awk '$1 == "freezer" && $4 == 1 { found = 1 } END { exit !found }' /proc/cgroups 2>/dev/null ||
        { echo "the kernel has no freezer cgroup controller enabled (/proc/cgroups): suspend cannot freeze a container"; return; }
    grep -qE ' /sys/fs/cgroup/freezer cgroup |cgroup2 ' /proc/self/mounts ||
        { echo "no freezer cgroup hierarchy mounted under /sys/fs/cgroup (the sandbox gives none)"; return; }
}

ct_uri() { bed_lxc_uri "$VDESK_BED"; }
ct_state() { "$BEDCTL" -c "$(ct_uri)" state ct-n1; }
node_state() { sinfo -h -N -n "$1" -o '%T'; }
vdeskctl() { "$T_BUILD/cli/vdeskctl" --conf "$VDCONF" "$@"; }

# hb_past BOOT N: the container's heartbeat is at boot BOOT, beat N or later.
hb_past() {
    local b n
    read -r b n <<<"$(bed_lxc_hb ct-n1)"
    [ "$b" = "$1" ] && [ "${n:-0}" -ge "$2" ]
}

t_setup() {
    T_BED=$(mktemp -d /tmp/vdl.XXXXXX)
    export VDESK_BED_LXC_NODES=n1
    bed_vdesk_files "$T_BED"
    VDESK_BED_PROLOG=$T_BED/vdesk/prolog VDESK_BED_EPILOG=$T_BED/vdesk/epilog \
    VDESK_BED_PLUGSTACK="required $T_BUILD/spank/vdesk.so default=auto" \
    VDESK_BED_SLURM_EXTRA=$'PrologFlags=Alloc\nPrologEpilogTimeout=120\nBatchStartTimeout=120' \
        bed_up "$T_BED" || return 1
    VDCONF=$VDESK_BED/vdesk/vdesk.conf
    bed_lxc ct-n1 >/dev/null || return 1
    t_poll 20 hb_past 1 5 || { t_say "ct-n1 writes no heartbeat: $(bed_lxc_hb ct-n1)"; return 1; }
}
t_teardown() { bed_down "$T_BED"; }

# start_job MODE SECONDS: a job on n1; waits for its prolog's record.
start_job() {
    local id
    id=$(sbatch --parsable -w n1 --vdesk="$1" -o /dev/null --wrap "sleep $2") || return 1
    t_poll 60 sh -c "scontrol -o show job $id | grep -q 'AdminComment=.*vdesk\[n1\] evict'" || return 1
    echo "$id"
}

# after_job ID: the job ended and the container runs again, present.
after_job() {
    t_poll 60 job_done "$1"
    t_poll 30 sh -c "[ \"\$('$BEDCTL' -c '$(ct_uri)' state ct-n1)\" = running ]"
    t_poll 30 sh -c "'$T_BUILD/cli/vdeskctl' --conf '$VDCONF' --node n1 status | grep -q '^desktop: present'"
}

test_check_config_live_says_what_lxc_cannot_do() {
    local out
    out=$(vdeskctl --node n1 check-config --live) || t_fail "check-config --live: $out"
    assert_match "$out" "ok  libvirt's lxc driver \(connection type LXC\)"
    assert_match "$out" "ok  mode suspend"
    assert_match "$out" "ok  mode shutdown"
    assert_match "$out" "no  save: not supported by libvirt's lxc driver \(no save and restore"
    assert_match "$out" "no  migrate: not supported by libvirt's lxc driver \(no live migration\)"
    assert_match "$out" "no  shrink: not supported by libvirt's lxc driver"
    assert_match "$out" "no  disk snapshots: not supported by libvirt's lxc driver"
    assert_match "$out" "a clean shutdown is asked by SIGTERM to the container's init"
    assert_no_match "$out" "save files:" "no save files on a driver that cannot save"
}

test_suspend_freezes_the_container_and_it_goes_on() {
    local boot n id b1 n1 b2 n2
    read -r boot n <<<"$(bed_lxc_hb ct-n1)"
    id=$(start_job suspend 3)
    assert_eq "$(ct_state)" paused "while job $id runs"
    assert_match "$(admin_comment "$id")" "asked=suspend used=suspend .*phases=lock:[0-9]+,suspend:[0-9]+ "
    read -r b1 n1 <<<"$(bed_lxc_hb ct-n1)"
    sleep 1
    read -r b2 n2 <<<"$(bed_lxc_hb ct-n1)"
    assert_eq "$b2 $n2" "$b1 $n1" "heartbeat while frozen"
    after_job "$id"
    assert_eq "$b2" "$boot" "boot of ct-n1"
    [ "$n2" -ge "$n" ] || t_fail "heartbeat went back from $n to $n2"
    t_poll 10 hb_past "$boot" $((n2 + 5)) || t_fail "heartbeat did not go on after job $id: $(bed_lxc_hb ct-n1)"
}

test_shutdown_stops_the_container_and_starts_it_again() {
    local boot n id
    read -r boot n <<<"$(bed_lxc_hb ct-n1)"
    id=$(start_job shutdown 3)
    assert_eq "$(ct_state)" shutoff "while job $id runs"
    # A clean shutdown (its init's TERM trap wrote a last beat), not a power cut.
    assert_match "$(admin_comment "$id")" "asked=shutdown used=shutdown .*phases=lock:[0-9]+,snapshot:[0-9]+!,shutdown:[0-9]+"
    assert_match "$(cat "$VDESK_BED/guests/ct-n1/root/hb")" "^vdesk-hb boot=$boot n=[0-9]+ stopped$"
    after_job "$id"
    t_poll 10 hb_past $((boot + 1)) 3 || t_fail "ct-n1 did not boot again: $(bed_lxc_hb ct-n1)"
}

# policy = save,shutdown: save is refused by capability, before anything is
# done for it; shutdown frees the node, and nobody is asked to look.
test_save_is_refused_by_capability_and_the_chain_moves_on() {
    local boot n id rec
    read -r boot n <<<"$(bed_lxc_hb ct-n1)"
    id=$(start_job save 3)
    rec=$(admin_comment "$id")
    assert_match "$rec" "asked=save used=shutdown "
    assert_match "$rec" "desktop ct-n1 shutdown after save: not supported by libvirt's lxc driver \(no save and restore of a domain's memory\)"
    assert_no_match "$rec" "[,=]save:[0-9]" "no save step was taken"
    assert_eq "$(ct_state)" shutoff
    assert_eq "$(ls "$VDESK_BED/vdesk/state/n1" | grep -c '\.save')" 0 "save files"
    after_job "$id"
    assert_no_match "$(node_state n1)" drain
    t_poll 10 hb_past $((boot + 1)) 3 || t_fail "ct-n1 did not boot again: $(bed_lxc_hb ct-n1)"
}

test_migrate_is_refused_by_capability() {
    local boot n id
    read -r boot n <<<"$(bed_lxc_hb ct-n1)"
    id=$(start_job migrate 2)
    assert_match "$(admin_comment "$id")" "asked=migrate used=shutdown .*migrate: not supported by libvirt's lxc driver \(no live migration\); save: not supported by libvirt's lxc driver"
    after_job "$id"
    t_poll 10 hb_past $((boot + 1)) 3 || t_fail "ct-n1 did not boot again: $(bed_lxc_hb ct-n1)"
}

why=$(lxc_cannot_run)
if [ -n "$why" ]; then
    # Four spaces: tests/check.sh shows the line in make check's output.
    echo "    SKIP $FILE: containers cannot run here: $why"
    echo "$FILE: 0 passed, 0 failed"
    exit 0
fi
dpkg -s libvirt-daemon-driver-lxc >/dev/null 2>&1 ||
    { echo "FAIL $FILE: libvirt's LXC driver is not installed (libvirt-daemon-driver-lxc): run make deps"
      echo "$FILE: 0 passed, 1 failed"; exit 1; }
t_main
