#!/bin/bash
# Production permissions: QEMU runs as libvirt-qemu with libvirt's DAC
# driver and dynamic ownership, as Debian's libvirt does, and vdesk's own
# directories have the modes vdesk gives them (state 0700, snapshots 0711).
# Save, snapshot, merge, restore and shutdown all work, and the session
# and disk come through.
. "$(dirname "$0")/../lib.sh"

BEDCTL=$T_BUILD/tests/bedctl

t_setup() {
    T_BED=$(mktemp -d /tmp/vdb.XXXXXX)
    bed_vdesk_files "$T_BED"
    VDESK_BED_QEMU_USER=libvirt-qemu bed_up "$T_BED" || return 1
    VDCONF=$VDESK_BED/vdesk/vdesk.conf
    bed_guest desk-n1 >/dev/null && bed_wait_hb desk-n1 60
}
t_teardown() { bed_down "$T_BED"; }
vdeskctl() { "$T_BUILD/cli/vdeskctl" --conf "$VDCONF" --node n1 "$@"; }

test_qemu_runs_unprivileged() {
    local pid
    pid=$(bed_qemu_pids "$VDESK_BED" | head -n 1)
    # libvirt-qemu, as the bed's libvirtd sees it (the host may not know the name).
    [ -n "$pid" ] || { t_fail "no QEMU"; return 1; }
    assert_ne "$(ps -o uid= -p "$pid" | tr -d ' ')" 0 "the uid QEMU runs as"
}

test_save_snapshot_merge_restore_as_libvirt_qemu() {
    local boot n i b2 n2 out
    read -r boot n <<<"$(bed_hb desk-n1)"
    for i in 1 2 3 4; do
        out=$(vdeskctl evict save) || t_fail "evict $i: $out"
        assert_no_match "$out" "no snapshot|prune snapshots:[0-9]+!" "evict $i"
        out=$(vdeskctl restore) || t_fail "restore $i: $out"
        assert_no_match "$out" "prune snapshots:[0-9]+!" "restore $i"
    done
    assert_match "$(stat -c %a "$VDESK_BED/vdesk/state/n1")" "^700$" "state dir mode"
    assert_match "$(stat -c %a "$VDESK_BED/vdesk/snapshots/n1")" "^711$" "snapshot dir mode"
    assert_eq "$("$BEDCTL" xml desk-n1 | grep -c "<source file=")" 4 "layers after merging"
    read -r b2 n2 <<<"$(bed_hb desk-n1)"
    assert_eq "$b2" "$boot" "same boot after four save cycles"
    [ "$n2" -ge "$n" ] || t_fail "heartbeat went back"
}

test_shutdown_and_cold_boot_as_libvirt_qemu() {
    local boot
    read -r boot _ <<<"$(bed_hb desk-n1)"
    vdeskctl evict shutdown >/dev/null || t_fail "evict shutdown"
    assert_eq "$("$BEDCTL" state desk-n1)" shutoff
    vdeskctl restore >/dev/null || t_fail "restore"
    t_poll 60 sh -c "grep -aq 'vdesk-hb boot=$((boot + 1)) ' '$VDESK_BED/guests/desk-n1/console.log'" ||
        t_fail "no new boot"
}

t_main
