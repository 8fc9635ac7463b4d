#!/bin/bash
# Recovery snapshots (issue 14): vdeskctl snapshot, snapshots, revert,
# flatten and discard on a real QEMU guest whose disk holds a marker (the
# guest writes "boot=B hb=N" to its first sector every second, and prints
# what it found there at boot). A revert brings the marker back and keeps
# the newer state; flatten merges the chain under the running guest; bad
# input is refused with the fix.
. "$(dirname "$0")/../lib.sh"

BEDCTL=$T_BUILD/tests/bedctl

t_setup() {
    T_BED=$(mktemp -d /tmp/vds.XXXXXX)
    bed_vdesk_files "$T_BED"
    VDESK_BED_PROLOG=$T_BED/vdesk/prolog VDESK_BED_EPILOG=$T_BED/vdesk/epilog \
        bed_up "$T_BED" || return 1
    VDCONF=$VDESK_BED/vdesk/vdesk.conf
    SNAPDIR=$VDESK_BED/vdesk/snapshots/n1
    bed_guest desk-n1 >/dev/null && bed_wait_hb desk-n1 60
}

t_teardown() { bed_down "$T_BED"; }

vdeskctl() { "$T_BUILD/cli/vdeskctl" --conf "$VDCONF" --node n1 "$@"; }
chain_len() { "$BEDCTL" xml desk-n1 | grep -c "<source file="; }

# layer_of NAME: the file of snapshot NAME (vdeskctl snapshots --json).
layer_of() {
    vdeskctl snapshots --json | python3 -c '
import json, sys
for s in json.load(sys.stdin)["snapshots"]:
    if s["name"] == sys.argv[1]:
        print(s["layer"])' "$1"
}

# layers: the file of every snapshot listed, one a line.
layers() {
    vdeskctl snapshots --json | python3 -c '
import json, sys
for s in json.load(sys.stdin)["snapshots"]:
    print(s["layer"])'
}

# base_name: the name of the point whose layer is the guest's own disk
# (the first snapshot froze it).
base_name() {
    vdeskctl snapshots --json | python3 -c '
import json, sys
for s in json.load(sys.stdin)["snapshots"]:
    if s["layer"] == sys.argv[1]:
        print(s["name"])' "$VDESK_BED/guests/desk-n1/disk.qcow2"
}

# marker FILE: "BOOT HB" as the disk read through layer FILE says.
marker() {
    local raw
    raw=$(mktemp)
    qemu-img dd -U -f qcow2 -O raw bs=512 count=1 if="$1" of="$raw" 2>/dev/null
    head -c 512 "$raw" | tr -d '\000' | head -n 1 |
        sed -n 's/^vdesk-disk boot=\([0-9]*\) hb=\([0-9]*\).*/\1 \2/p'
    rm -f "$raw"
}

# boots_seen: how many times the guest has booted (its console keeps all).
boots_seen() { grep -ac '^vdesk-guest: disk said:' "$VDESK_BED/guests/desk-n1/console.log"; }

# disk_said SEEN: what the guest found on its disk at the boot after the
# SEEN-th (waiting for it).
disk_said() {
    t_poll 60 sh -c "[ \$(grep -ac '^vdesk-guest: disk said:' '$VDESK_BED/guests/desk-n1/console.log') -gt $1 ]" ||
        { echo "no boot after boot $1"; return; }
    grep -a '^vdesk-guest: disk said:' "$VDESK_BED/guests/desk-n1/console.log" | sed -n "$(($1 + 1))p" |
        sed -n 's/.*vdesk-disk boot=\([0-9]*\) hb=\([0-9]*\).*/\1 \2/p'
}

# wait_marker_past HB: the running guest's disk marker is beyond HB.
wait_marker_past() {
    local b h i
    for i in $(seq 60); do
        read -r b h <<<"$(bed_disk desk-n1)"
        [ "${h:-0}" -gt "$1" ] && return 0
        sleep 0.5
    done
    t_fail "the disk marker stayed at hb=${h:-?} (wanted beyond $1)"
}

# running_on BOOT: the guest runs boot BOOT, its heartbeat going.
running_on() {
    local b n i
    for i in $(seq 600); do
        read -r b n <<<"$(bed_hb desk-n1)"
        [ "${b:-}" = "$1" ] && [ "${n:-0}" -ge 3 ] && return 0
        sleep 0.1
    done
    t_fail "desk-n1 is not running boot $1 (last heartbeat: boot=${b:-?} n=${n:-?})"
}

test_revert_brings_the_marker_back_and_keeps_the_newer_state() {
    local out snap at_snap later kept boot sb sh kb kh seen
    read -r boot _ <<<"$(bed_hb desk-n1)"
    wait_marker_past 1
    out=$(vdeskctl snapshot --name clean) || t_fail "snapshot: $out"
    assert_match "$out" "snapshot clean of desk-n1 \(hand"
    snap=$(layer_of clean)
    assert_match "$snap" "^$SNAPDIR/desk-n1-[0-9]+\.qcow2$|^$VDESK_BED/guests/desk-n1/disk.qcow2$" "layer of clean"
    at_snap=$(marker "$snap")
    read -r sb sh <<<"$at_snap"
    assert_match "$(vdeskctl snapshots)" "clean +[-0-9]+ [:0-9]+ +hand .*runs on it, kept until discarded"
    wait_marker_past $((sh + 2))
    read -r _ later <<<"$(bed_disk desk-n1)"

    seen=$(boots_seen)
    out=$(vdeskctl revert desk-n1 clean) || t_fail "revert: $out"
    assert_match "$out" "desk-n1 was running: stopped it first \(shut down\)"
    assert_match "$out" "reverted desk-n1 to snapshot clean; the state it had is kept as snapshot before-revert-"
    assert_match "$out" "started it again"
    assert_eq "$(disk_said "$seen")" "$at_snap" "what the guest found on its disk after the revert"
    running_on $((sb + 1))
    [ "$sh" -lt "$later" ] || t_fail "the marker did not move between the snapshot ($sh) and the revert ($later)"

    # The newer state is kept, aside, and reverting to it brings it back.
    kept=$(vdeskctl snapshots | sed -n 's/^\(before-revert-[-0-9]*\) .*kept aside.*/\1/p' | head -n 1)
    [ -n "$kept" ] || t_fail "no before-revert snapshot kept aside: $(vdeskctl snapshots)"
    read -r kb kh <<<"$(marker "$(layer_of "$kept")")"
    assert_eq "$kb" "$boot" "boot in the kept state"
    [ "$kh" -ge "$later" ] || t_fail "the kept state has hb=$kh, older than the disk before the revert ($later)"
    seen=$(boots_seen)
    out=$(vdeskctl revert desk-n1 "$kept") || t_fail "revert to the kept state: $out"
    assert_eq "$(disk_said "$seen")" "$kb $kh" "what the guest found after reverting to the kept state"
    running_on $((boot + 1))

    # The state between the two reverts is kept too, until discarded.
    kept=$(vdeskctl snapshots | sed -n 's/^\(before-revert-[-0-9]*\) .*kept aside.*/\1/p' | head -n 1)
    out=$(vdeskctl discard desk-n1 "$kept") || t_fail "discard $kept: $out"
    assert_match "$out" "discarded snapshot $kept of desk-n1"
    assert_no_match "$(vdeskctl snapshots)" "^$kept " "after the discard"
}

test_flatten_under_a_running_guest_keeps_its_heartbeat() {
    local boot n b m i out base sum files
    base=$VDESK_BED/guests/desk-n1/disk.qcow2
    sum=$(md5sum <"$base")
    for i in 1 2 3; do
        vdeskctl snapshot >/dev/null || t_fail "snapshot $i"
    done
    vdeskctl snapshot --name keepme >/dev/null || t_fail "snapshot keepme"
    for i in 1 2; do
        vdeskctl snapshot >/dev/null || t_fail "snapshot $((i + 3))"
    done
    read -r boot n <<<"$(bed_hb desk-n1)"
    [ "$(chain_len)" -ge 7 ] || t_fail "chain of $(chain_len) layers after 6 snapshots"
    out=$(vdeskctl flatten --keep 1) || t_fail "flatten: $out"
    assert_match "$out" "flattened desk-n1: [1-9][0-9]* snapshots? merged, keeping the newest 1"
    # Left: the active layer, the newest point, keepme (kept by name), the
    # file that holds the point under it, and what lies below.
    assert_match "$(vdeskctl snapshots)" "keepme .*kept until discarded"
    [ "$(chain_len)" -le 6 ] || t_fail "chain of $(chain_len) layers after flatten --keep 1"
    files=$(find "$SNAPDIR" -name 'desk-n1-*.qcow2' | wc -l)
    [ "$files" -ge "$(($(chain_len) - 1))" ] || t_fail "$files layer files for a chain of $(chain_len)"
    # Every file vdesk keeps is in the chain or kept aside by name: no orphan.
    for f in "$SNAPDIR"/desk-n1-*.qcow2; do
        "$BEDCTL" xml desk-n1 | grep -q "'$f'" || layers | grep -qx "$f" ||
            t_fail "$f is neither in the chain nor listed"
    done
    read -r b m <<<"$(bed_hb desk-n1)"
    assert_eq "$b" "$boot" "boot after flatten"
    t_poll 10 sh -c "[ \"\$(grep -ac '^vdesk-hb boot=$boot ' '$VDESK_BED/guests/desk-n1/console.log')\" -gt $((m + 5)) ]" ||
        t_fail "the heartbeat stopped after flatten"
    assert_eq "$(md5sum <"$base")" "$sum" "the base image was never written"
    # The scheduled snapshot applies snapshots_keep (3) by itself.
    out=$(vdeskctl snapshot --schedule) || t_fail "scheduled snapshot: $out"
    assert_match "$out" "snapshot schedule-[-0-9]+ of desk-n1 \(schedule"
    vdeskctl snapshot --schedule >/dev/null && vdeskctl snapshot --schedule >/dev/null
    out=$(vdeskctl snapshot --schedule) || t_fail "4th scheduled snapshot: $out"
    assert_match "$out" "older snapshots? merged \(retention\)"
}

test_bad_input_is_refused_with_the_fix() {
    local out idx rc
    out=$(vdeskctl revert desk-n1 nosuch 2>&1) && t_fail "revert to nosuch succeeded"
    assert_match "$out" "desktop desk-n1 has no snapshot called nosuch: 'vdeskctl snapshots desk-n1' lists them"
    out=$(vdeskctl snapshot --name ../x 2>&1) && t_fail "snapshot --name ../x succeeded"
    assert_match "$out" "snapshot name '../x': use 1 to 63 letters"
    out=$(vdeskctl snapshot nosuchdesk 2>&1) && t_fail "snapshot of nosuchdesk succeeded"
    assert_match "$out" "node n1 has no desktop nosuchdesk"
    vdeskctl snapshot --name dup >/dev/null || t_fail "snapshot dup"
    out=$(vdeskctl snapshot --name dup 2>&1) && t_fail "a second dup"
    assert_match "$out" "already has a snapshot called dup: choose another name"
    out=$(vdeskctl discard desk-n1 "$(base_name)" 2>&1) && t_fail "discard of the guest's own disk succeeded"
    assert_match "$out" "is the site's disk under every snapshot of desk-n1: vdesk never removes it"
    rc=0; out=$(vdeskctl flatten --keep 0 2>&1) || rc=$?
    assert_eq "$rc" 2 "exit status of flatten --keep 0"
    assert_match "$out" "--keep '0': give a whole number of recovery points from 1 to 100"
    rc=0; out=$(vdeskctl snapshots --name x 2>&1) || rc=$?
    assert_eq "$rc" 2 "exit status of snapshots --name x"
    # A saved desktop's disk must not move under its memory.
    vdeskctl evict save >/dev/null || t_fail "evict save"
    out=$(vdeskctl snapshot 2>&1) && t_fail "a snapshot of a saved desktop"
    assert_match "$out" "desktop desk-n1 is saved .* try again once the job is over"
    out=$(vdeskctl snapshot --schedule 2>&1) || t_fail "the timer's snapshot failed on a saved desktop: $out"
    assert_match "$out" "no scheduled snapshot of desk-n1: desktop desk-n1 is saved"
    vdeskctl restore >/dev/null || t_fail "restore"
    # A hostile index is refused, named, with the fix; the layers are safe.
    idx=$SNAPDIR/desk-n1.snapshots.json
    cp "$idx" "$T_BED/index.good"
    printf '{"version":1,"snapshots":[{"name":"../x","layer":"/etc/shadow","time_ms":1,"origin":"hand","job":0,"kept":true}]}' >"$idx"
    out=$(vdeskctl snapshots 2>&1) && t_fail "snapshots with a hostile index"
    assert_match "$out" "desk-n1.snapshots.json: entry 0 is not a snapshot vdesk wrote; move it aside"
    # A label names only a layer the disk or the directory shows.
    printf '{"version":1,"snapshots":[{"name":"x","layer":"/etc/shadow","time_ms":1,"origin":"hand","job":0,"kept":true}]}' >"$idx"
    out=$(vdeskctl discard desk-n1 x 2>&1) && t_fail "discard through a hostile index"
    assert_match "$out" "has no snapshot called x"
    [ -s /etc/shadow ] || t_fail "/etc/shadow"
    cp "$T_BED/index.good" "$idx"
    assert_match "$(vdeskctl snapshots)" "^dup "
}

t_main "$@"
