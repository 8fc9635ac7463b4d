#!/bin/bash
# vdeskctl bootstrap on the bed: a desktop made from a profile (a qcow2
# overlay on a copy of the bed guest's disk, a cloud-init NoCloud seed,
# the domain with direct kernel boot) in a directory pool of the bed's
# libvirt, added to desktops = of n1 and booted in place of desk-n1, which
# is kept in its managed save. The guest's heartbeat runs and it printed
# what it found on its seed; a second run changes nothing; bad profiles
# (missing base image, unknown key, inheritance loop, user-data that
# cloud-init's schema refuses) are refused naming file and line.
. "$(dirname "$0")/../lib.sh"

BEDCTL=$T_BUILD/tests/bedctl

t_setup() {
    T_BED=$(mktemp -d /tmp/vdb.XXXXXX)
    bed_vdesk_files "$T_BED"
    bed_up "$T_BED" || return 1
    VDCONF=$VDESK_BED/vdesk/vdesk.conf
    PROF=$VDESK_BED/profiles
    POOL=$VDESK_BED/pool
    mkdir -p "$PROF" "$POOL"
    sed -i "/^\[vdesk\]/a profile_dir = $PROF" "$VDCONF"
    "$BEDCTL" pool default "$POOL" || return 1
    bed_guest desk-n1 >/dev/null && bed_wait_hb desk-n1 60 || return 1
    # The base image: a copy of the bed guest's disk (read while it runs).
    qemu-img convert -U -O qcow2 "$VDESK_BED/guests/desk-n1/disk.qcow2" "$VDESK_BED/base.qcow2" || return 1
    cat >"$PROF/bed.profile" <<EOP
# The bed's desktop, as bed_guest makes it
[profile]
description = bed desktop
base_image = $VDESK_BED/base.qcow2
memory = 192
vcpus = 1
cpus = 1
domain_type = qemu
display = vnc
network = none
kernel = $VDESK_CACHE/guest/vmlinuz
initrd = $VDESK_CACHE/guest/initrd.img
cmdline = console=ttyS0 quiet loglevel=1 panic=-1
EOP
    cat >"$PROF/proj.profile" <<EOP
[profile]
inherit = bed
description = a project
user_data = proj.yaml
EOP
    printf '#cloud-config\npackages:\n  - htop\nruncmd:\n  - [echo, hello]\n' >"$PROF/proj.yaml"
    cp "$VDCONF" "$VDESK_BED/before.conf"
}

t_teardown() { bed_down "$T_BED"; }

vdeskctl() { "$T_BUILD/cli/vdeskctl" --conf "$VDCONF" "$@"; }
console() { cat "$POOL/$1-console.log" 2>/dev/null; }
# hb NAME: "BOOT N" of the last complete heartbeat in the pool's console log.
hb() {
    grep -a $'^vdesk-hb boot=[0-9]* n=[0-9]*\r$' "$POOL/$1-console.log" 2>/dev/null | tail -n 1 |
        sed -n 's/^vdesk-hb boot=\([0-9]*\) n=\([0-9]*\).*/\1 \2/p'
}
hb_at_least() { local b n; read -r b n <<<"$(hb "$1")"; [ "${n:-0}" -ge "$2" ]; }

test_bootstrap_makes_boots_and_seeds_the_desktop() {
    local out uuid
    out=$(vdeskctl --node n1 bootstrap proj proj-n1) || t_fail "bootstrap failed: $out"
    t_say "$out"
    assert_match "$out" "overlay: volume proj-n1.qcow2 of pool default \($POOL/proj-n1.qcow2\), qcow2 on $VDESK_BED/base.qcow2 \(qcow2"
    assert_match "$out" "seed: volume proj-n1-seed.iso of pool default .*label cidata"
    assert_match "$out" "define: domain proj-n1 .*192 MiB, 1 vCPU pinned to 1"
    assert_match "$out" "conf: proj-n1 added to desktops = of \[node n1\]"
    assert_match "$out" "boot: .*proj-n1"
    assert_eq "$("$BEDCTL" state proj-n1)" running "the new desktop"
    assert_eq "$("$BEDCTL" state desk-n1)" shutoff "the old desktop, in its managed save"
    t_poll 60 hb_at_least proj-n1 3 || t_fail "no heartbeat from proj-n1: $(console proj-n1 | tail -n 5)"
    uuid=$("$BEDCTL" xml proj-n1 | sed -n 's/.*<uuid>\(.*\)<\/uuid>.*/\1/p')
    t_poll 30 sh -c "grep -aq '^vdesk-seed: ' '$POOL/proj-n1-console.log'" ||
        t_fail "no vdesk-seed line: $(console proj-n1 | grep -a '^vdesk-' | grep -av '^vdesk-hb' | tail -n 5)"
    assert_match "$(console proj-n1 | grep -a '^vdesk-seed: ' | tr -d '\r')" \
        "^vdesk-seed: instance-id=iid-$uuid hostname=proj-n1 user-data=#cloud-config$"
    # vdesk.conf: one line more, the rest byte for byte.
    assert_eq "$(diff "$VDESK_BED/before.conf" "$VDCONF" | grep '^[<>]')" "> desktops = proj-n1"
    assert_match "$(vdeskctl --node n1 select)" '\* proj-n1 +running'
}

test_bootstrap_again_changes_nothing() {
    local out b n b2 n2
    cp "$VDCONF" "$VDESK_BED/after.conf"
    read -r b n <<<"$(hb proj-n1)"
    out=$(vdeskctl --node n1 bootstrap proj proj-n1) || t_fail "second bootstrap failed: $out"
    assert_match "$out" "desktop proj-n1 exists \(made from profile proj, running\): nothing changed"
    cmp -s "$VDCONF" "$VDESK_BED/after.conf" || t_fail "vdesk.conf changed: $(diff "$VDESK_BED/after.conf" "$VDCONF")"
    t_poll 20 hb_at_least proj-n1 $((n + 3)) || t_fail "proj-n1 stopped beating"
    read -r b2 n2 <<<"$(hb proj-n1)"
    assert_eq "$b2" "$b" "boot of proj-n1 (a second bootstrap must not restart it)"
    out=$(vdeskctl --node n1 bootstrap bed proj-n1 2>&1) && t_fail "another profile was accepted: $out"
    assert_match "$out" "domain proj-n1 exists .*made from profile proj, not bed"
}

# bad PROFILE-TEXT: writes bad.profile.
bad() { printf '%s\n' "$1" >"$PROF/bad.profile"; }

test_bad_profiles_name_file_line_and_fix() {
    local out
    bad $'[profile]\ninherit = bed\n\nbase_image = /nonexistent/disk.qcow2'
    out=$(vdeskctl --node n1 bootstrap bad proj-bad 2>&1) && t_fail "accepted: $out"
    assert_match "$out" "$PROF/bad.profile:4: base_image = /nonexistent/disk.qcow2: .*No such file or directory"
    out=$(vdeskctl --node n1 profile check bad) && t_fail "check passed: $out"
    assert_match "$out" "\(!\) $PROF/bad.profile:4: base_image"
    bad $'[profile]\ninherit = bed\ncolour = blue'
    out=$(vdeskctl profile show bad 2>&1) && t_fail "accepted: $out"
    assert_match "$out" "$PROF/bad.profile:3: unknown key 'colour' in \[profile\] \(keys: inherit, "
    printf '[profile]\ninherit = loop-b\n' >"$PROF/loop-a.profile"
    printf '[profile]\ninherit = loop-a\n' >"$PROF/loop-b.profile"
    bad $'[profile]\ninherit = loop-a'
    out=$(vdeskctl profile check bad 2>&1) && t_fail "accepted: $out"
    assert_match "$out" "$PROF/loop-b.profile:2: inherit = loop-a makes a loop: loop-a -> loop-b -> loop-a"
    printf '#cloud-config\npackages:\n  - htop\nruncmd: 5\n' >"$PROF/bad.yaml"
    bad $'[profile]\ninherit = bed\nuser_data = bad.yaml'
    out=$(vdeskctl --node n1 profile check bad) && t_fail "check passed: $out"
    assert_match "$out" "$PROF/bad.profile:3: user_data = bad.yaml: $PROF/bad.yaml:4: cloud-init's schema refuses it: .*runcmd"
    out=$(vdeskctl --node n1 bootstrap bad proj-bad 2>&1) && t_fail "accepted: $out"
    assert_match "$out" "bad.yaml:4: cloud-init's schema refuses it"
    assert_eq "$("$BEDCTL" state proj-bad)" missing "nothing made for a refused profile"
    out=$(vdeskctl --node n1 profile check --live proj) || t_fail "the good profile: $out"
    assert_match "$out" "valid for cloud-init's schema"
    assert_match "$(vdeskctl profile list)" "proj +a project; inherits bed"
}

t_main
