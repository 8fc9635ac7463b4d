#!/bin/bash
# Shared memory between desktops of one host (issue 14; docs/design.md,
# "Shared memory"): vdeskctl shmem makes a region and attaches it to
# desk-n1 and desk-n2 (the bed's nodes share one libvirt, so one host),
# hot-plugged into the running guests. desk-n1 writes a word into it and
# desk-n2 reads it (tests/guest/init, vdesk.shmem=); the host sees it in
# /dev/shm/NAME. A save and restore of both keeps the content, and a job
# that evicts one member leaves the other with the region, whose content
# the evicted one finds on its return, and so does one put aside by
# vdeskctl select. Kept short: two guests running, 1 MiB.
. "$(dirname "$0")/../lib.sh"

t_setup() {
    T_BED=$(mktemp -d /tmp/vds.XXXXXX)
    # A name of its own in the host's /dev/shm, which every bed shares.
    REGION=vdt-$$-$RANDOM
    bed_vdesk_files "$T_BED"
    sed -i '/^domain = desk-n1$/a desktops = proj-s' "$T_BED/vdesk/vdesk.conf"
    VDESK_BED_PROLOG=$T_BED/vdesk/prolog VDESK_BED_EPILOG=$T_BED/vdesk/epilog \
    VDESK_BED_PLUGSTACK="required $T_BUILD/spank/vdesk.so default=auto" \
    VDESK_BED_SLURM_EXTRA=$'PrologFlags=Alloc\nPrologEpilogTimeout=120' \
        bed_up "$T_BED" || return 1
    VDCONF=$VDESK_BED/vdesk/vdesk.conf
    BED_GUEST_PCI_BRIDGE=1 bed_guest desk-n1 "vdesk.shmem=0x5eed0001" >/dev/null &&
        BED_GUEST_PCI_BRIDGE=1 bed_guest desk-n2 "vdesk.shmem=-" >/dev/null &&
        bed_wait_hb desk-n1 60 && bed_wait_hb desk-n2 60 &&
        # desk-n3: defined but off (attach then goes to its definition only);
        # proj-s: n1's other desktop (vdeskctl select), off.
        bed_guest desk-n3 >/dev/null && "$T_BUILD/tests/bedctl" destroy desk-n3 &&
        bed_guest proj-s >/dev/null && "$T_BUILD/tests/bedctl" destroy proj-s
}

t_teardown() { bed_down "$T_BED"; rm -f "/dev/shm/$REGION"; }

vdeskctl() { "$T_BUILD/cli/vdeskctl" --conf "$VDCONF" "$@"; }

# shm_word: the region's first 32-bit word as the host sees it (0x%08X,
# as the guest's devmem prints it); shm_put WORD: the host writes it there.
shm_word() { printf '0x%08X\n' "$((16#$(od -An -tx4 -N4 "/dev/shm/$REGION" | tr -d ' ')))"; }
shm_put() {
    printf '%b' "\\x${1:8:2}\\x${1:6:2}\\x${1:4:2}\\x${1:2:2}" |
        dd of="/dev/shm/$REGION" bs=4 count=1 conv=notrunc status=none
}

# sees GUEST WORD [SEEN]: the guest printed WORD read from the region (on
# its SEEN-th appearance of the device, if given).
sees() {
    grep -aq "^vdesk-shmem: word=$2 seen=${3:-[0-9]*}"$'\r'"\?$" "$VDESK_BED/guests/$1/console.log"
}
# beats GUEST N: the guest printed heartbeat N of its boot, or a later one.
beats() { local n; read -r _ n <<<"$(bed_hb "$1")"; [ "${n:-0}" -ge "$2" ]; }
wait_sees() { t_poll "${4:-30}" sees "$1" "$2" "${3:-}" || t_fail "$1 never read $2 from the region: $(grep -a 'vdesk-shmem' "$VDESK_BED/guests/$1/console.log" | tail -n 3)"; }

test_bad_input_names_the_fix() {
    local out
    out=$(vdeskctl --node n1 shmem attach nosuch desk-n1 2>&1) && t_fail "attach to an unknown region: $out"
    assert_match "$out" "unknown region 'nosuch': create it first with 'vdeskctl shmem create nosuch SIZE'"
    out=$(vdeskctl --node n1 shmem create "$REGION" 3M 2>&1) && t_fail "size 3M accepted: $out"
    assert_match "$out" "not a power of two, which QEMU's ivshmem requires: give e.g. 1M"
    out=$(vdeskctl --node n1 shmem create "../x" 1M 2>&1) && t_fail "name ../x accepted: $out"
    assert_match "$out" "use only letters, digits"
    vdeskctl --node n1 shmem create "$REGION" 1M >/dev/null || t_fail "create $REGION"
    out=$(vdeskctl --node n1 shmem attach "$REGION" desk-n9 2>&1) && t_fail "attach to a missing desktop: $out"
    assert_match "$out" "desktop desk-n9 is not defined on .*: give the name of a domain of this host"
    out=$(vdeskctl --node n1 shmem attach "$REGION" desk-n1 --role boss 2>&1) && t_fail "role boss: $out"
    assert_match "$out" "role 'boss': give master or peer"
    out=$(vdeskctl --node n1 shmem create "$REGION" 1M 2>&1) && t_fail "second create: $out"
    assert_match "$out" "region $REGION exists already"
    # The registry is read as untrusted: a link planted in its place is refused.
    ln -s /etc/passwd "$VDESK_BED/vdesk/state/n1/shmem/planted.json"
    out=$(vdeskctl --node n1 shmem attach planted desk-n1 2>&1) && t_fail "a planted link was followed: $out"
    assert_match "$out" "planted.json"
    rm "$VDESK_BED/vdesk/state/n1/shmem/planted.json"
    out=$(vdeskctl --node n1 shmem create small 512K 2>&1) && t_fail "512K accepted: $out"
    assert_match "$out" "give 1M to 64G"
    # desk-n2 is n2's: while n2 keeps it away (an eviction by hand here),
    # n1 cannot change it, whatever node's lock n1 holds.
    vdeskctl --node n2 evict save >/dev/null || t_fail "evict desk-n2"
    out=$(vdeskctl --node n1 shmem attach "$REGION" desk-n2 2>&1) && t_fail "attach to desk-n2 while away: $out"
    assert_match "$out" "desktop desk-n2 is away for a job on node n2"
    vdeskctl --node n2 restore >/dev/null || t_fail "restore desk-n2"
}

test_two_guests_share_a_region() {
    local out
    out=$(vdeskctl --node n1 shmem attach "$REGION" desk-n1 --role master) || t_fail "attach desk-n1: $out"
    assert_match "$out" "attached to desk-n1 as master, live and in its definition"
    out=$(vdeskctl --node n1 shmem attach "$REGION" desk-n2) || t_fail "attach desk-n2: $out"
    assert_match "$out" "attached to desk-n2 as peer"
    # desk-n1 writes its word on the device's arrival; desk-n2 and the host read it.
    wait_sees desk-n2 0x5EED0001
    assert_eq "$(shm_word)" 0x5EED0001 "the word in /dev/shm/$REGION"
    # And the other way: the host writes, both guests see it.
    shm_put 0xC0FFEE02
    wait_sees desk-n1 0xC0FFEE02 && wait_sees desk-n2 0xC0FFEE02
    out=$(vdeskctl --node n1 shmem list) || t_fail "list: $out"
    assert_match "$out" "$REGION +1 MiB +/dev/shm/$REGION: desk-n1 \(master, live\), desk-n2 \(peer, live\)"
    out=$(vdeskctl --node n1 shmem attach "$REGION" desk-n3 --role master 2>&1) && t_fail "second master: $out"
    assert_match "$out" "has a master already \(desk-n1\): attach desk-n3 with --role peer"
    # A desktop that is off gets it in its definition, for its next start.
    out=$(vdeskctl --node n1 shmem attach "$REGION" desk-n3) || t_fail "attach desk-n3 (off): $out"
    assert_match "$out" "in its definition \(it maps the region at its next start\)"
    assert_match "$(vdeskctl --node n1 shmem list)" "desk-n3 \(peer, when it runs\)"
    out=$(vdeskctl --node n1 shmem detach "$REGION" desk-n3) || t_fail "detach desk-n3: $out"
    assert_match "$out" "detached from desk-n3, from its definition"
    out=$(vdeskctl --node n1 shmem destroy "$REGION" 2>&1) && t_fail "destroy while attached: $out"
    assert_match "$out" "is attached to desk-n1, desk-n2: detach it first"
    # The region counts on the desktops' side of the node.
    out=$(vdeskctl --node n1 status 2>&1) || true
    assert_match "$out" "shared memory: $REGION 1 MiB \(master, live\); desktop side: RAM 192 MiB \+ regions 1 MiB = 193 MiB"
    out=$(vdeskctl --node n1 status --json 2>&1) || true
    assert_match "$out" '"desktop_side_bytes": ?202375168'
    out=$(vdeskctl --node n2 check-config --live 2>&1) || true
    assert_match "$out" "shared memory of desk-n2: $REGION 1 MiB \(peer\); desktop side: RAM 192 MiB \+ regions 1 MiB"
}

# Both members saved and restored (vdesk unplugs the device first: QEMU
# refuses to save a peer's), the region's content is what it was.
test_save_and_restore_of_the_group_keep_the_content() {
    local out n
    shm_put 0xAB5E0003
    wait_sees desk-n2 0xAB5E0003
    for n in n1 n2; do
        out=$(vdeskctl --node "$n" evict save) || t_fail "evict save $n: $out"
        assert_match "$out" "ua-shm-$REGION" "the record lists the region's device"
    done
    assert_eq "$("$T_BUILD/tests/bedctl" state desk-n1)$("$T_BUILD/tests/bedctl" state desk-n2)" shutoffshutoff
    assert_eq "$(shm_word)" 0xAB5E0003 "the region while both are saved"
    for n in n1 n2; do
        out=$(vdeskctl --node "$n" restore) || t_fail "restore $n: $out"
        assert_eq "$("$T_BUILD/tests/bedctl" present "desk-$n" "ua-shm-$REGION")" 1 "device back in desk-$n"
    done
    # The device came back (its second appearance) with the content kept.
    wait_sees desk-n1 0xAB5E0003 2 && wait_sees desk-n2 0xAB5E0003 2
    assert_eq "$(shm_word)" 0xAB5E0003
}

# A job takes n1: desk-n1 is saved, desk-n2 keeps the region and writes
# to it; desk-n1 comes back to what desk-n2 wrote, not to its own copy.
test_job_evicting_one_member_leaves_the_other_consistent() {
    local id
    id=$(sbatch --parsable -w n1 --vdesk=save -o /dev/null --wrap "sleep 4") || t_fail "sbatch"
    t_poll 60 sh -c "scontrol -o show job $id | grep -q 'AdminComment=.*vdesk\[n1\] evict'" ||
        t_fail "job $id never evicted desk-n1"
    assert_eq "$("$T_BUILD/tests/bedctl" state desk-n1)" shutoff "desk-n1 during job $id"
    # Away, it still holds the region's memory on the desktops' side.
    assert_match "$(vdeskctl --node n1 status 2>&1)" "shared memory: $REGION 1 MiB \(master, when it runs\)"
    shm_put 0xD00D0004
    wait_sees desk-n2 0xD00D0004 2
    t_poll 60 job_done "$id" || t_fail "job $id did not end"
    t_poll 60 sh -c "[ \"\$('$T_BUILD/tests/bedctl' state desk-n1)\" = running ]" || t_fail "desk-n1 not back"
    wait_sees desk-n1 0xD00D0004 3
    assert_eq "$(shm_word)" 0xD00D0004 "the region after desk-n1's restore"
}

# select puts desk-n1 aside in a managed save (its region's device out
# first) and brings it back with the device, to the region as it is then.
test_select_puts_a_member_aside_and_back() {
    local out
    out=$(vdeskctl --node n1 select proj-s) || t_fail "select proj-s: $out"
    assert_eq "$("$T_BUILD/tests/bedctl" has-managedsave desk-n1)" 1 "desk-n1 in its managed save"
    shm_put 0x5E1EC705
    wait_sees desk-n2 0x5E1EC705 2
    # A guest still booting does not let go of its devices: proj-s runs first.
    t_poll 60 beats proj-s 10 || t_fail "proj-s did not come up"
    out=$(vdeskctl --node n1 select desk-n1) || t_fail "select desk-n1: $out"
    assert_eq "$("$T_BUILD/tests/bedctl" present desk-n1 "ua-shm-$REGION")" 1 "device back in desk-n1"
    wait_sees desk-n1 0x5E1EC705 4
}

# A crash right after the region's device came out: the journal names it
# (vdesk's alias, not a device of vdesk.conf) and recover plugs it back.
test_crash_after_the_regions_unplug_is_recovered() {
    local out
    out=$(VDESK_TEST_CRASH="unplug ua-shm-$REGION+" vdeskctl --node n1 evict save 2>&1) &&
        t_fail "evict survived the crash: $out"
    assert_eq "$("$T_BUILD/tests/bedctl" present desk-n1 "ua-shm-$REGION")" 0 "device out at the crash"
    out=$(vdeskctl --node n1 recover 2>&1) || t_fail "recover: $out"
    assert_no_match "$out" "journal unreadable|needs an admin" "the journal with the region's device is vdesk's own"
    assert_eq "$("$T_BUILD/tests/bedctl" present desk-n1 "ua-shm-$REGION")" 1 "device back after recover"
    wait_sees desk-n1 0x5E1EC705 5
}

test_detach_and_destroy_free_the_region() {
    local out
    for d in desk-n1 desk-n2; do
        out=$(vdeskctl --node n1 shmem detach "$REGION" "$d") || t_fail "detach $d: $out"
        assert_match "$out" "detached from $d, from the running VM and its definition"
        assert_eq "$("$T_BUILD/tests/bedctl" present "$d" "ua-shm-$REGION")" 0 "device out of $d"
    done
    out=$(vdeskctl --node n1 shmem destroy "$REGION") || t_fail "destroy: $out"
    [ ! -e "/dev/shm/$REGION" ] || t_fail "/dev/shm/$REGION still there"
    assert_match "$(vdeskctl --node n1 shmem list)" "no regions"
}

t_main
