#!/bin/bash
# Kill soak: vdesk is killed with SIGKILL at a random moment of an eviction
# (every mode) or a restore, and `vdeskctl recover` runs at once, cycle after
# cycle. Counted, and all must stay 0:
#   sessions lost   the guest booted again, or its heartbeat went back,
#                   where its memory was to be kept (every mode but shutdown)
#   disk back       the boot/heartbeat record on the guest's disk went back
#   devices         a stand-in device not back in the guest
#   image errors    `qemu-img check` errors in any layer of the disk chain
#   not running     the desktop not running after recover (and restore)
# SOAK_CYCLES cycles (make check: 6; make soak: 60 by default); SOAK_SEED
# makes a run repeatable.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/node_bed.sh"

t_setup() { node_bed_up; }

# How long each operation takes on the bed, roughly (ms): the kill falls
# anywhere in it, or just after.
op_ms() {
    case $1 in
        suspend|shrink) echo 400 ;;
        *) echo 3000 ;;
    esac
}

# image_errors: the errors qemu-img finds in the layers of desk-n1's disk.
image_errors() {
    local f n=0
    for f in $("$BEDCTL" xml desk-n1 | sed -n "s/.*<source file='\([^']*\)'.*/\1/p"); do
        qemu-img check -U -q "$f" >/dev/null 2>&1 || n=$((n + 1))
    done
    echo "$n"
}

# live_hb: prints "BOOT N" once the guest's heartbeat is seen advancing:
# after a cold boot the console keeps the old boot's last lines for a while.
live_hb() {
    local b n b2 n2 end=$((SECONDS + 60))
    read -r b n <<<"$(bed_hb desk-n1)"
    while [ "$SECONDS" -lt "$end" ]; do
        sleep 0.5
        read -r b2 n2 <<<"$(bed_hb desk-n1)"
        if [ "$b2" = "$b" ] && [ "${n2:-0}" -gt "${n:-0}" ]; then echo "$b2 $n2"; return 0; fi
        b=$b2 n=$n2
    done
    echo "$b $n"
}

# bring_back: recover, and restore if the killed operation had finished
# an eviction (then nothing was interrupted, and the desktop is away).
bring_back() {
    vdeskctl --node n1 recover >>"$T_BED/soak.log" 2>&1 || true
    if vdeskctl --node n1 status 2>/dev/null | grep -q '^desktop: evicted'; then
        vdeskctl --node n1 restore --force >>"$T_BED/soak.log" 2>&1 || true
    fi
}

test_kill_at_random_moments_loses_nothing() {
    local cycles=${SOAK_CYCLES:-6} modes=(save suspend shutdown shrink) i mode side pid ms
    local boot n dboot dhb b2 n2 db2 dh2 lost=0 back=0 devs=0 imgs=0 down=0
    # Every step of a cycle may fail on purpose: the counts decide.
    set +e
    RANDOM=${SOAK_SEED:-$$}
    for ((i = 1; i <= cycles; i++)); do
        mode=${modes[RANDOM % 4]}
        side=$((RANDOM % 2))
        read -r boot n <<<"$(live_hb)"
        read -r dboot dhb <<<"$(bed_disk desk-n1)"
        if [ "$side" = 1 ]; then
            vdeskctl --node n1 evict "$mode" >>"$T_BED/soak.log" 2>&1 || true
            vdeskctl --node n1 restore >>"$T_BED/soak.log" 2>&1 &
        else
            vdeskctl --node n1 evict "$mode" >>"$T_BED/soak.log" 2>&1 &
        fi
        pid=$!
        ms=$((RANDOM % $(op_ms "$mode")))
        sleep "$(printf '0.%03d' "$ms")"
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        bring_back
        t_poll 30 sh -c "[ \"\$('$BEDCTL' state desk-n1)\" = running ]" || down=$((down + 1))
        read -r b2 n2 <<<"$(live_hb)"
        read -r db2 dh2 <<<"$(bed_disk desk-n1)"
        if [ "$mode" != shutdown ] && { [ "$b2" != "$boot" ] || [ "${n2:-0}" -lt "$n" ]; }; then
            lost=$((lost + 1))
            t_say "cycle $i ($mode, killed in $([ "$side" = 1 ] && echo restore || echo evict) at ${ms} ms): boot $boot n $n -> boot $b2 n $n2; $(tail -n 1 "$T_BED/soak.log")"
        fi
        if [ "${db2:-0}" -lt "$dboot" ] || { [ "$db2" = "$dboot" ] && [ "${dh2:-0}" -lt "$dhb" ]; }; then
            back=$((back + 1))
            t_say "cycle $i ($mode): disk went back from $dboot/$dhb to $db2/$dh2"
        fi
        [ "$("$BEDCTL" present desk-n1 ua-gpu0)$("$BEDCTL" present desk-n1 ua-ib0)" = 11 ] ||
            { devs=$((devs + 1)); t_say "cycle $i ($mode): a device is not back"; }
        imgs=$((imgs + $(image_errors)))
        # A cycle whose recovery drained the node (it said what it lost) is
        # counted above; the next cycle starts from a resumed node.
        scontrol update nodename=n1 state=resume 2>/dev/null || true
    done
    t_say "soak: $cycles cycles: sessions lost $lost, disk back $back, devices not back $devs, image errors $imgs, not running $down"
    assert_eq "$lost $back $devs $imgs $down" "0 0 0 0 0" "sessions lost, disk back, devices, image errors, not running"
}

t_main
