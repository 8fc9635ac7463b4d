#!/bin/bash
# The node side on a real cluster with real guests: every mode evicts the
# desktop while a job runs and brings it back after; overlapping jobs evict
# once; a crash at every journalled step is recovered with the disk intact;
# broken config, missing guest, unusable snapshot directory and a stopped
# libvirt daemon give a clear drain reason and lose nothing.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/node_bed.sh"

t_setup() { node_bed_up; }

node_reason() { sinfo -h -N -n "$1" -o '%E'; }
node_state() { sinfo -h -N -n "$1" -o '%T'; }

# hb_at_least NODE BOOT N: the guest printed beat N (or later) of boot BOOT.
hb_at_least() {
    local b n
    read -r b n <<<"$(bed_hb "desk-$1")"
    [ "$b" = "$2" ] && [ "${n:-0}" -ge "$3" ]
}

# start_job NODE MODE SECONDS: submits a job and waits until its prolog is
# done (the eviction record is in its AdminComment); prints the job id.
start_job() {
    local id
    id=$(sbatch --parsable -w "$1" --vdesk="$2" -o /dev/null --wrap "sleep $3") || return 1
    t_poll 60 sh -c "scontrol -o show job $id | grep -q 'AdminComment=.*vdesk\[n[0-9]\] evict'" || return 1
    echo "$id"
}

# The desktop came back as it was: running, same boot, the heartbeat went on
# from where it stopped and still goes on, both stand-in devices plugged in.
assert_continued() {
    local node=$1 boot=$2 n=$3 b2 n2
    assert_eq "$(vm_state "$node")" running "desk-$node"
    read -r b2 n2 <<<"$(bed_hb "desk-$node")"
    assert_eq "$b2" "$boot" "boot of desk-$node (a reboot would count up)"
    [ "$n2" -ge "$n" ] || t_fail "desk-$node: heartbeat went back from $n to $n2"
    t_poll 20 hb_at_least "$node" "$boot" $((n2 + 5)) || t_fail "desk-$node: heartbeat stopped at boot=$boot n=$n2"
    assert_eq "$("$BEDCTL" present "desk-$node" ua-gpu0)$("$BEDCTL" present "desk-$node" ua-ib0)" 11 "devices back in desk-$node"
}

test_suspend_pauses_and_resumes_without_reboot() {
    local boot n id
    read -r boot n <<<"$(bed_hb desk-n1)"
    id=$(start_job n1 suspend 3)
    assert_eq "$(vm_state n1)" paused "while job $id runs"
    assert_match "$(admin_comment "$id")" "asked=suspend used=suspend .*phases=lock:[0-9]+,suspend:[0-9]+ "
    after_job "$id" n1
    assert_continued n1 "$boot" "$n"
}

# A paused VM keeps its GPUs: for a job given GPUs (n1 offers its GPU as
# gres), suspend is not enough. vdeskctl status compares Slurm's view (the
# gres index a job holds) with the GPU's driver, and flags a clash.
test_suspend_falls_back_when_the_job_has_gpus() {
    local boot n id st rc=0
    read -r boot n <<<"$(bed_hb desk-n1)"
    id=$(sbatch --parsable -w n1 --gres=gpu:1 --vdesk=suspend -o /dev/null --wrap 'sleep 5')
    t_poll 60 sh -c "scontrol -o show job $id | grep -q 'AdminComment=.*vdesk\[n[0-9]\] evict'"
    assert_match "$(admin_comment "$id")" "asked=suspend used=save"
    assert_match "$(admin_comment "$id")" "outcome=\"desktop desk-n1 save after suspend failed: suspend keeps the desktop's GPUs, and the job was given GPUs 0\""
    assert_eq "$(vm_state n1)" shutoff
    assert_eq "$(hw_drivers)" "$HW_HOST" "the job's GPU on its host driver"
    st=$(vdeskctl --node n1 status)
    assert_match "$st" "slurm: n1 offers 1 GPU\(s\) as gres, jobs hold 0"
    assert_match "$st" "gres gpu index 0 = ua-gpu0 \(0000:01:00.0\): allocated to a job, host: nvidia$"
    # Something rebinds the job's GPU to vfio-pci: both views say so.
    bed_hw_vfio 0000:01:00.0
    st=$(vdeskctl --node n1 status) || rc=$?
    assert_eq "$rc" 1 "status exit code"
    assert_match "$st" "gres gpu index 0 = ua-gpu0 .*host: vfio-pci \(!\) a job has it while the desktop holds it"
    bed_hw_host 0000:01:00.0
    after_job "$id" n1
    assert_continued n1 "$boot" "$n"
    assert_match "$(vdeskctl --node n1 status)" "gres gpu index 0 = ua-gpu0 \(0000:01:00.0\): free, host: vfio-pci$"
}

test_save_unplugs_saves_and_restores_the_same_session() {
    local boot n id rec
    read -r boot n <<<"$(bed_hb desk-n1)"
    assert_eq "$(hw_drivers)" "$HW_VFIO" "the desktop holds the GPU group and the HCA"
    id=$(start_job n1 save 4)
    assert_eq "$(vm_state n1)" shutoff "while job $id runs"
    [ -s "$VDESK_BED/vdesk/state/n1/desk-n1.save" ] || t_fail "no save file while the job runs"
    assert_match "$(vdeskctl --node n1 metrics)" '^vdesk_desktop_away\{node="n1",desktop="desk-n1"\} 1$'
    assert_match "$(vdeskctl --node n1 metrics)" '^vdesk_desktop_jobs\{node="n1",desktop="desk-n1"\} 1$'
    # Each device unplugged, its whole IOMMU group given back to the host,
    # then the save (the phase order in the record).
    assert_match "$(admin_comment "$id")" "devices=ua-gpu0,ua-ib0 .*phases=lock:[0-9]+,snapshot:[0-9]+,unplug ua-gpu0:[0-9]+,host ua-gpu0:[0-9]+,unplug ua-ib0:[0-9]+,host ua-ib0:[0-9]+,save:[0-9]+"
    assert_eq "$(hw_drivers)" "$HW_HOST" "the job has the GPU group and the HCA"
    [ -e "$VDESK_BED/hw/dev/nvidia0" ] || t_fail "no /dev/nvidia0 for the job"
    assert_match "$(vdeskctl --node n1 status)" "gpu +ua-gpu0 +0000:01:00.0 +VM not running, host: nvidia \(vdesk holds"
    # A device on the wrong side is flagged, and status fails for scripts.
    bed_hw_vfio 0000:02:00.0
    local st rc=0
    st=$(vdeskctl --node n1 status) || rc=$?
    assert_eq "$rc" 1 "vdeskctl status exit code with a device on the wrong side"
    assert_match "$st" "ib +ua-ib0 +0000:02:00.0 .*host: vfio-pci \(!\)"
    assert_match "$st" "1 device\(s\) on the wrong side: the jobs should have them on their host drivers"
    echo "" >"$VDESK_BED/hw/sys/bus/pci/devices/0000:02:00.0/driver_override"
    echo 0000:02:00.0 >"$VDESK_BED/hw/sys/bus/pci/drivers/vfio-pci/unbind"
    echo 0000:02:00.0 >"$VDESK_BED/hw/sys/bus/pci/drivers_probe"
    [ ! -e "$VDESK_BED/hw/dev/vfio/12" ] || t_fail "/dev/vfio/12 still there during the job"
    after_job "$id" n1
    assert_eq "$(hw_drivers)" "$HW_VFIO" "the desktop has the devices back"
    [ -e "$VDESK_BED/hw/dev/vfio/12" ] || t_fail "no /dev/vfio/12 after the job"
    assert_continued n1 "$boot" "$n"
    rec=$(records n1 | grep "\"job\":$id,\"op\":\"restore\"")
    assert_match "$rec" '"name":"restore".*"name":"vfio ua-gpu0".*"name":"replug ua-gpu0".*"name":"vfio ua-ib0".*"name":"replug ua-ib0"'
    [ ! -e "$VDESK_BED/vdesk/state/n1/desk-n1.save" ] || t_fail "save file left after a good restore"
}

test_shutdown_keeps_the_disk() {
    local boot id
    read -r boot _ <<<"$(bed_hb desk-n1)"
    id=$(start_job n1 shutdown 3)
    assert_eq "$(vm_state n1)" shutoff "while job $id runs"
    assert_match "$(cat "$VDESK_BED/guests/desk-n1/console.log")" "vdesk-guest: down boot=$boot"
    assert_eq "$(hw_drivers)" "$HW_HOST" "the job has the devices of the stopped VM"
    after_job "$id" n1
    assert_eq "$(hw_drivers)" "$HW_VFIO" "back on vfio-pci before the VM started"
    t_poll 30 hb_at_least n1 $((boot + 1)) 1
    read -r b _ <<<"$(bed_disk desk-n1)"
    assert_eq "$b" $((boot + 1)) "boot count kept on the disk across the shutdown"
}

test_shrink_keeps_desktop_on_its_cores_without_gpu() {
    local boot n id
    read -r boot n <<<"$(bed_hb desk-n1)"
    id=$(start_job n1 shrink 3)
    assert_eq "$(vm_state n1)" running "while job $id runs"
    assert_eq "$("$BEDCTL" present desk-n1 ua-gpu0)$("$BEDCTL" present desk-n1 ua-ib0)" 01 "gpu out, ib kept"
    assert_match "$("$BEDCTL" xml desk-n1)" "<vcpupin vcpu=.0. cpuset=.1./>"
    assert_match "$("$BEDCTL" xml desk-n1)" "<emulatorpin cpuset=.1./>"
    # The desktop's disk work runs on its cores too (the guest's disk has an I/O thread).
    assert_match "$("$BEDCTL" xml desk-n1)" "<iothreadpin iothread=.1. cpuset=.1./>"
    after_job "$id" n1
    assert_continued n1 "$boot" "$n"
    assert_no_match "$("$BEDCTL" xml desk-n1)" "cpuset=.1./>" "pinning undone"
}

# Old layers are merged into the oldest layer vdesk made, never into the
# base image below it (the site's: it may be a golden image that other
# desktops share). The chain is then the active layer, snapshots_keep
# frozen ones, vdesk's oldest layer, and the base.
test_snapshots_beyond_keep_are_merged_while_the_desktop_lives() {
    local boot n i chain files base sum
    read -r boot n <<<"$(bed_hb desk-n1)"
    base=$VDESK_BED/guests/desk-n1/disk.qcow2
    sum=$(md5sum <"$base")
    for i in 1 2 3 4; do
        vdeskctl --node n1 evict save >/dev/null
        vdeskctl --node n1 restore >/dev/null
        chain=$("$BEDCTL" xml desk-n1 | grep -c "<source file=")
        [ "$chain" -le 4 ] || t_fail "disk chain of $chain layers after cycle $i (snapshots_keep = 2)"
    done
    assert_eq "$chain" 4 "active layer + 2 snapshots + vdesk's oldest layer + the base"
    # The merge runs once the desktop is back, not while a job waits.
    assert_match "$(records n1 | grep '"op":"restore"' | tail -n 1)" '"name":"prune snapshots","ms":[0-9]+,"ok":true'
    assert_no_match "$(records n1 | grep '"op":"evict"' | tail -n 4)" '"name":"prune snapshots"' "a merge in the prolog"
    files=$(find "$VDESK_BED/vdesk/snapshots/n1" -name "*.qcow2" | wc -l)   # (and the index, DOM.snapshots.json)
    assert_eq "$files" 3 "overlay files vdesk keeps (the bottom layer is the original disk)"
    assert_eq "$(md5sum <"$base")" "$sum" "the base image was never written"
    "$BEDCTL" xml desk-n1 | grep -q "<source file='$base'/>" || t_fail "the base image left the chain"
    assert_continued n1 "$boot" "$n"
    read -r b _ <<<"$(bed_disk desk-n1)"
    assert_eq "$b" "$boot" "disk after merging"
}

test_overlapping_jobs_evict_once_restore_once() {
    local a b c before
    before=$(records n1 | wc -l)
    a=$(sbatch --parsable -w n1 -n1 --vdesk=suspend -o /dev/null --wrap 'sleep 4')
    b=$(sbatch --parsable -w n1 -n1 --vdesk=suspend -o /dev/null --wrap 'sleep 7')
    c=$(sbatch --parsable -w n1 -n1 --vdesk=suspend -o /dev/null --wrap 'sleep 2')
    t_poll 60 job_running "$c"   # starts when a ends, while b still runs
    assert_eq "$(vm_state n1)" paused "with job $c running"
    t_poll 60 job_done "$b"
    t_poll 60 job_done "$c"
    t_poll 30 sh -c "[ \"\$('$BEDCTL' state desk-n1)\" = running ]"
    local new
    new=$(records n1 | tail -n +$((before + 1)))
    assert_eq "$(grep -c '"used":"suspend","devices":"","outcome":"desktop desk-n1 suspend"' <<<"$new")" 1 "evictions"
    assert_eq "$(grep -c '"outcome":"desktop already away' <<<"$new")" 2 "jobs that found it away"
    assert_eq "$(grep -c '"outcome":"desktop desk-n1 back' <<<"$new")" 1 "restores"
    assert_eq "$(grep -c 'desktop stays away' <<<"$new")" 2 "epilogs of earlier jobs"
}

test_second_epilog_is_a_noop() {
    local id out
    id=$(start_job n1 suspend 1)
    after_job "$id" n1
    out=$(SLURM_JOB_ID=$id SLURMD_NODENAME=n1 VDESK_CONF=$VDCONF "$T_BUILD/prolog/vdesk-epilog" 2>&1)
    assert_match "$out" "outcome=\"desktop present: nothing to restore\""
    assert_eq "$(vm_state n1)" running
}

# crash_and_recover STEP: the prolog of a save job dies (SIGKILL) at STEP;
# Slurm drains the node and requeues the job; `vdeskctl recover` brings the
# desktop back with its session (same boot) and disk. The bed's epilog
# stands aside meanwhile, so that the journal is exactly what the crash left.
crash_and_recover() {
    local step=$1 boot n id out
    read -r boot n <<<"$(bed_hb desk-n1)"
    echo "$step" >"$VDESK_BED/vdesk/crash"
    id=$(sbatch --parsable -H -w n1 --vdesk=save -o /dev/null --wrap true)
    echo "$id" >"$VDESK_BED/vdesk/skip-epilog"
    scontrol release "$id"
    t_poll 30 sh -c "scontrol -o show job $id | grep -q 'Reason=launch_failed_requeued_held\|JobState=\(PENDING\|REQUEUE\)' && sinfo -h -N -n n1 -o %T | grep -q drain" ||
        t_fail "crash at '$step': job $id not requeued or node not drained: $(scontrol -o show job "$id" | grep -o 'JobState=[^ ]* Reason=[^ ]*')"
    assert_match "$(vdeskctl --node n1 status)" "desktop: evicting \(mode [a-z-]*, step '${step%+}', 1 job\(s\): $id\)"
    out=$(vdeskctl --node n1 recover)
    rm -f "$VDESK_BED/vdesk/skip-epilog"
    assert_match "$out" "outcome=\"recovered an operation interrupted while evicting at step '${step%+}'\"$"
    assert_eq "$(vm_state n1)" running "after recover from a crash at '$step'"
    assert_continued n1 "$boot" "$n"
    read -r b _ <<<"$(bed_disk desk-n1)"
    assert_eq "$b" "$boot" "disk of desk-n1 after a crash at '$step'"
    assert_match "$(vdeskctl --node n1 status)" "desktop: present"
    scancel "$id"
    scontrol update nodename=n1 state=resume
    t_poll 20 sh -c "sinfo -h -N -n n1 -o %T | grep -qx idle"
}

# gpu_hold: an "nvidia-smi" holding n1's /dev/nvidia0 open, in the
# background ($! is its PID); gpu_release PID ends it.
gpu_hold() {
    cp /bin/sleep "$T_BED/nvidia-smi"
    "$T_BED/nvidia-smi" 600 3<"$VDESK_BED/hw/dev/nvidia0" &
}
gpu_release() {
    kill "$1"
    wait "$1" 2>/dev/null || true   # killed: 143
}

# A process holding the GPU when the job ends (an nvidia-smi left running,
# say) would hang the unbind. The epilog names it instead; the desktop runs
# again with what can come back (the HCA); 'vdeskctl recover' plugs the GPU
# back once the process is gone. Nothing is lost on the way.
test_gpu_held_after_the_job_is_named_and_recovered() {
    local boot n id holder out
    read -r boot n <<<"$(bed_hb desk-n1)"
    id=$(start_job n1 save 3)
    gpu_hold
    holder=$!
    t_poll 60 job_done "$id"
    t_poll 30 sh -c "sinfo -h -N -n n1 -o %T | grep -q drain"
    assert_match "$(node_reason n1)" "^vdesk: cannot bring desktop desk-n1 back on n1: desk-n1 runs again, but not all of it is back: .*device 0000:01:00.0: .*/nvidia0 is held open by $holder \(nvidia-smi\)"
    assert_eq "$(vm_state n1)" running "the desktop, without its GPU"
    assert_eq "$("$BEDCTL" present desk-n1 ua-gpu0)$("$BEDCTL" present desk-n1 ua-ib0)" 01 "GPU out, HCA back"
    assert_eq "$(hw_drivers)" "nvidia snd_hda_intel xhci_hcd nvidia-gpu vfio-pci" "drivers"
    [ ! -e "$VDESK_BED/vdesk/state/n1/desk-n1.save" ] || t_fail "the save file outlived the restore"
    # An unfinished restore needs an admin: status says so by its exit status too.
    out=$(vdeskctl --node n1 status) && t_fail "status exits 0 with the restore unfinished"
    assert_match "$out" "desktop: restoring"
    assert_match "$out" "gpu +ua-gpu0 .*unplugged, host: nvidia .*vdesk holds its XML"
    gpu_release "$holder"
    vdeskctl --node n1 recover >/dev/null
    assert_continued n1 "$boot" "$n"
    assert_eq "$(hw_drivers)" "$HW_VFIO" "drivers after recover"
    scontrol update nodename=n1 state=resume
}

# The same for a desktop that was shut down: a cold boot needs its devices,
# so it stays off (disk untouched, no snapshot revert) until recover.
test_gpu_held_keeps_a_shut_down_desktop_off_until_recover() {
    local id holder boot
    read -r boot _ <<<"$(bed_hb desk-n1)"
    id=$(start_job n1 shutdown 2)
    gpu_hold
    holder=$!
    t_poll 60 job_done "$id"
    t_poll 30 sh -c "sinfo -h -N -n n1 -o %T | grep -q drain"
    assert_match "$(node_reason n1)" "desk-n1 stays off until its devices can go to it: .*held open by $holder \(nvidia-smi\)"
    assert_eq "$(vm_state n1)" shutoff
    assert_no_match "$(records n1 | tail -n 1)" "revert to snapshot"
    gpu_release "$holder"
    vdeskctl --node n1 recover >/dev/null
    t_poll 30 sh -c "[ \"\$('$BEDCTL' state desk-n1)\" = running ]"
    assert_eq "$(hw_drivers)" "$HW_VFIO" "drivers after recover"
    # The console keeps the last boot's lines until the new boot prints.
    t_poll 60 hb_at_least n1 $((boot + 1)) 2 || t_fail "desk-n1 did not boot again: $(bed_hb desk-n1)"
    assert_eq "$("$BEDCTL" present desk-n1 ua-gpu0)$("$BEDCTL" present desk-n1 ua-ib0)" 11 "devices after the cold boot"
    scontrol update nodename=n1 state=resume
}

test_crash_at_every_journalled_step_is_recovered() {
    local step
    # host ua-gpu0: while giving the GPU's group to its host drivers.
    for step in begin snapshot snapshot+ "unplug ua-gpu0" \
                "unplug ua-gpu0+" "host ua-gpu0" "host ua-gpu0+" "unplug ua-ib0+" save save+; do
        crash_and_recover "$step"
    done
}

# The merge of old layers runs after the desktop is back: a crash during
# it (or right after) leaves a running desktop, a journal that says so and
# a disk that is whole; the next restore merges again.
test_crash_while_merging_old_layers_loses_nothing() {
    local step boot n out i chain
    read -r boot n <<<"$(bed_hb desk-n1)"
    for step in "prune snapshots" "prune snapshots+"; do
        # Enough layers that the next restore merges (snapshots_keep = 2).
        for i in 1 2 3; do
            vdeskctl --node n1 evict save >/dev/null || t_fail "evict $i"
            vdeskctl --node n1 restore >/dev/null || t_fail "restore $i"
        done
        vdeskctl --node n1 evict save >/dev/null || t_fail "evict before the crash"
        VDESK_TEST_CRASH=$step vdeskctl --node n1 restore >/dev/null 2>&1 &&
            t_fail "the restore survived VDESK_TEST_CRASH=$step"
        assert_eq "$(vm_state n1)" running "after a crash at '$step'"
        assert_match "$(vdeskctl --node n1 status)" "desktop: present"
        out=$(vdeskctl --node n1 evict save) || t_fail "evict after the crash at '$step': $out"
        out=$(vdeskctl --node n1 restore) || t_fail "restore after the crash at '$step': $out"
        assert_no_match "$out" "prune snapshots:[0-9]+!" "the merge after the crash at '$step'"
        chain=$("$BEDCTL" xml desk-n1 | grep -c "<source file=")
        [ "$chain" -le 4 ] || t_fail "disk chain of $chain layers after the crash at '$step'"
    done
    assert_continued n1 "$boot" "$n"
    read -r b _ <<<"$(bed_disk desk-n1)"
    assert_eq "$b" "$boot" "disk after the crashes"
}

# Outside Slurm no epilog follows a crash: `vdeskctl recover` does the work.
test_vdeskctl_recover_finishes_what_a_crash_left() {
    local step boot n out
    for step in "unplug ua-ib0+" save+; do
        read -r boot n <<<"$(bed_hb desk-n1)"
        SLURM_JOB_ID=999 SLURMD_NODENAME=n1 SPANK_VDESK_MODE=save VDESK_CONF=$VDCONF \
            VDESK_TEST_CRASH=$step "$T_BUILD/prolog/vdesk-prolog" 2>/dev/null &&
            t_fail "the prolog survived VDESK_TEST_CRASH=$step"
        out=$(vdeskctl --node n1 status) && t_fail "status exits 0 after the crash at '$step'"
        assert_match "$(tr "\n" " " <<<"$out")" "desktop: evicting .*interrupted operation: run .vdeskctl recover."
        out=$(vdeskctl --node n1 recover)
        assert_match "$out" "outcome=\"recovered an operation interrupted while evicting at step '${step%+}'\""
        assert_continued n1 "$boot" "$n"
        assert_match "$(vdeskctl --node n1 status)" "desktop: present"
    done
}

test_next_prolog_recovers_a_crashed_one() {
    local boot n id
    read -r boot n <<<"$(bed_hb desk-n1)"
    echo "save+" >"$VDESK_BED/vdesk/crash"
    id=$(sbatch --parsable -H -w n1 --vdesk=save -o /dev/null --wrap true)
    echo "$id" >"$VDESK_BED/vdesk/skip-epilog"
    scontrol release "$id"
    t_poll 30 sh -c "scontrol -o show job $id | grep -q 'Reason=launch_failed_requeued_held\|JobState=\(PENDING\|REQUEUE\)' && sinfo -h -N -n n1 -o %T | grep -q drain" ||
        t_fail "job $id not requeued or node not drained: $(scontrol -o show job "$id" | grep -o 'JobState=[^ ]* Reason=[^ ]*')"
    assert_match "$(vdeskctl --node n1 status)" "desktop: evicting \(mode [a-z-]*, step 'save', 1 job\(s\): $id\)"
    scancel "$id"
    scontrol update nodename=n1 state=resume
    id=$(start_job n1 suspend 2)
    rm -f "$VDESK_BED/vdesk/skip-epilog"
    assert_match "$(records n1 | grep "\"job\":$id,\"op\":\"evict\"")" "\"outcome\":\"recovered an operation interrupted while evicting at step 'save'; desktop desk-n1 suspend\""
    after_job "$id" n1
    assert_continued n1 "$boot" "$n"
}

# The save file is written in the fastest form the platform has: the sparse
# (mapped-ram) format in parallel channels from libvirt 11.2 on, raw before;
# libvirt's header says which (its image format field, at byte 28: 0 raw,
# 6 sparse). check-config --live names the same form.
test_save_file_is_in_the_fastest_form_the_platform_has() {
    local boot n live st fmt
    read -r boot n <<<"$(bed_hb desk-n1)"
    live=$(vdeskctl --node n1 check-config --live) || t_fail "check-config --live: $live"
    if pkg-config --atleast-version=11.2 libvirt; then
        assert_match "$live" "save files: sparse \(mapped-ram\), 4 parallel channels, bypassing the page cache"
    else
        assert_match "$live" "save files: raw, bypassing the page cache"
    fi
    vdeskctl --node n1 evict save >/dev/null || t_fail "evict save"
    st=$VDESK_BED/vdesk/state/n1
    assert_eq "$(head -c 16 "$st/desk-n1.save")" LibvirtQemudSave "save file header"
    fmt=$(od -An -tu4 -j28 -N4 "$st/desk-n1.save" | tr -d ' ')
    case $live in
        *"save files: sparse"*) assert_eq "$fmt" 6 "image format of the save file" ;;
        *) assert_eq "$fmt" 0 "image format of the save file" ;;
    esac
    vdeskctl --node n1 restore >/dev/null || t_fail "restore"
    assert_continued n1 "$boot" "$n"
}

# A raw save file (written before an upgrade to libvirt 11.2, or in a
# directory without O_DIRECT) is read back in its own form: libvirt says
# which from the image's header; only a sparse one is read in parallel.
test_raw_save_file_restores_whatever_the_platform() {
    local boot n st
    read -r boot n <<<"$(bed_hb desk-n1)"
    st=$VDESK_BED/vdesk/state/n1
    vdeskctl --node n1 evict save >/dev/null || t_fail "evict save"
    # The same session, saved again by plain libvirt calls (flags 0: raw).
    "$BEDCTL" restore-plain "$st/desk-n1.save" >/dev/null || t_fail "restore-plain"
    "$BEDCTL" save-plain desk-n1 "$st/desk-n1.save" >/dev/null || t_fail "save-plain"
    assert_eq "$(od -An -tu4 -j28 -N4 "$st/desk-n1.save" | tr -d ' ')" 0 "image format (raw)"
    vdeskctl --node n1 restore >/dev/null || t_fail "restore of a raw save file"
    assert_eq "$(vm_state n1)" running "after restoring the raw file"
    assert_continued n1 "$boot" "$n"
}

test_failed_restore_boots_the_snapshot_and_keeps_the_save_file() {
    local boot out st
    read -r boot _ <<<"$(bed_hb desk-n1)"
    vdeskctl --node n1 evict save >/dev/null
    st=$VDESK_BED/vdesk/state/n1
    # A save file that no longer restores (a full disk during the save, say).
    truncate -s 4096 "$st/desk-n1.save"
    # The session is lost: restore says so, exits 1 and drains the node.
    if out=$(vdeskctl --node n1 restore 2>&1); then t_fail "restore exited 0 after losing the session"; fi
    assert_match "$out" "outcome=\"restore failed \(.*\); booted the snapshot .*; LOST: the session of desk-n1 could not be brought back: booted the snapshot instead\""
    assert_match "$(node_reason n1)" "^vdesk: desktop desk-n1 lost data on n1"
    # Tried twice (a transient error must not cost the session), then the snapshot.
    assert_match "$out" "phases=lock:[0-9]+,restore:[0-9]+!,restore:[0-9]+!,revert to snapshot"
    assert_eq "$(vm_state n1)" running
    t_poll 30 hb_at_least n1 $((boot + 1)) 3 || t_fail "desk-n1 did not boot the snapshot: $(bed_hb desk-n1)"
    ls "$st"/desk-n1.save.failed-* >/dev/null 2>&1 || t_fail "the broken save file was not kept"
    assert_match "$(vdeskctl --node n1 status)" "desktop: present"
    assert_eq "$("$BEDCTL" present desk-n1 ua-gpu0)$("$BEDCTL" present desk-n1 ua-ib0)" 11 "devices after a cold boot"
    scontrol update nodename=n1 state=resume
}

test_libvirt_stopped_during_a_job_loses_nothing() {
    local boot n id
    read -r boot n <<<"$(bed_hb desk-n1)"
    id=$(start_job n1 save 3)
    bed_libvirt_stop
    t_poll 60 job_done "$id"
    t_poll 30 sh -c "sinfo -h -N -n n1 -o %T | grep -q drain"
    assert_match "$(node_reason n1)" "^vdesk: libvirt unreachable on n1 .*vdeskctl recover"
    [ -s "$VDESK_BED/vdesk/state/n1/desk-n1.save" ] || t_fail "the save file is gone"
    assert_match "$(vdeskctl --node n1 status)" "desktop: (evicted|restoring)"
    bed_libvirt_start
    vdeskctl --node n1 recover >/dev/null
    assert_continued n1 "$boot" "$n"
    scontrol update nodename=n1 state=resume
}

test_broken_config_drains_with_file_and_line() {
    local id
    echo "colour = blue" >>"$VDCONF"
    id=$(sbatch --parsable -w n1 --vdesk=save -o /dev/null --wrap true)
    t_poll 30 sh -c "sinfo -h -N -n n1 -o %T | grep -q drain"
    assert_match "$(node_reason n1)" "^vdesk: $VDCONF:[0-9]+: unknown key 'colour' in \[node n3\].*vdeskctl check-config"
    assert_eq "$(vm_state n1)" running "the desktop is untouched"
    cp "$VDESK_BED/vdesk/good.conf" "$VDCONF"
    scancel "$id"
    scontrol update nodename=n1 state=resume
}

test_missing_guest_drains_but_job_runs() {
    local id
    id=$(sbatch --parsable -w n3 --vdesk=save -o /dev/null --wrap true)
    t_poll 30 job_done "$id"
    assert_eq "$(job_state "$id")" COMPLETED
    assert_match "$(node_reason n3)" "^vdesk: desktop VM desk-n3 is not defined on n3"
    scontrol update nodename=n3 state=resume
}

test_unusable_snapshot_dir_drains_but_evicts() {
    local id
    bed_guest desk-n2 >/dev/null && bed_wait_hb desk-n2 60
    mkdir -p "$VDESK_BED/vdesk/snapshots"
    echo "not a directory" >"$VDESK_BED/vdesk/snapshots/n2"
    id=$(start_job n2 save 2)
    assert_eq "$(vm_state n2)" shutoff "evicted all the same"
    assert_match "$(node_reason n2)" "^vdesk: no snapshot of desk-n2: .*snapshots/n2"
    after_job "$id" n2
    scontrol update nodename=n2 state=resume
}

# --- what the hardening of the node side added (issue 9) -----------------

# n2_fresh: n2 as a node with a working snapshot directory, not drained.
n2_fresh() {
    "$BEDCTL" purge desk-n2 >/dev/null 2>&1 || true
    rm -rf "$VDESK_BED/guests/desk-n2" "$VDESK_BED/vdesk/state/n2" "$VDESK_BED/vdesk/snapshots/n2"
    scontrol update nodename=n2 state=resume 2>/dev/null || true
    t_poll 20 sh -c "sinfo -h -N -n n2 -o %T | grep -qx idle" || t_fail "n2 is $(node_state n2): $(node_reason n2)"
}

# A guest that ignores the ACPI power button is powered off, and the record
# says destroy, not shutdown. The site's policy (on_destroy = record) does
# not drain for it. A job's timeout cannot cut the grace below the site's
# min_shutdown_grace (2 s on the bed).
test_guest_ignoring_the_power_button_is_destroyed_and_said_so() {
    local id
    n2_fresh
    bed_guest desk-n2 vdesk.ignore_power=1 >/dev/null && bed_wait_hb desk-n2 60
    id=$(sbatch --parsable -w n2 --vdesk=shutdown --vdesk-timeout=1 -o /dev/null --wrap 'sleep 2')
    t_poll 60 sh -c "scontrol -o show job $id | grep -q 'AdminComment=.*vdesk\[n2\] evict'"
    assert_match "$(admin_comment "$id")" "asked=shutdown used=destroy .*shutdown:[0-9]+!,destroy:[0-9]+"
    assert_match "$(admin_comment "$id")" "shutdown:(19[0-9][0-9]|2[0-9][0-9][0-9])!" "the site's 2 s, not the job's 1 s"
    assert_match "$(admin_comment "$id")" "outcome=\"desktop desk-n2 destroy\""
    assert_match "$(cat "$VDESK_BED/guests/desk-n2/console.log")" "ignoring the power button"
    after_job "$id" n2
    assert_no_match "$(node_state n2)" "drain" "on_destroy = record"
    "$BEDCTL" purge desk-n2
}

# A guest that does not let go of a device (no ACPI hotplug in the guest):
# libvirt's detach returns, the device stays in the live XML. The mode fails
# on it, the chain moves on, and the device never left the desktop.
test_guest_keeping_its_device_fails_the_mode_and_loses_nothing() {
    local id
    n2_fresh
    bed_guest desk-n2 acpiphp.disable=1 >/dev/null && bed_wait_hb desk-n2 60
    id=$(sbatch --parsable -w n2 --vdesk=save --vdesk-timeout=3 -o /dev/null --wrap 'sleep 2')
    t_poll 60 sh -c "scontrol -o show job $id | grep -q 'AdminComment=.*vdesk\[n2\] evict'"
    assert_match "$(admin_comment "$id")" "used=shutdown .*outcome=\"desktop desk-n2 shutdown after save failed: .*device ua-gpu0 was not released by the guest"
    after_job "$id" n2
    assert_eq "$("$BEDCTL" present desk-n2 ua-gpu0)$("$BEDCTL" present desk-n2 ua-ib0)" 11 "devices of desk-n2"
    "$BEDCTL" purge desk-n2
}

# A second job given the GPU that a suspended desktop holds: the desktop
# goes further (save, the next mode of the policy), and both jobs' ends
# bring back the same session.
test_second_job_with_gpus_on_a_suspended_node_escalates() {
    local boot n a b
    read -r boot n <<<"$(bed_hb desk-n1)"
    a=$(start_job n1 suspend 8)
    assert_eq "$(vm_state n1)" paused
    b=$(sbatch --parsable -w n1 -n1 --gres=gpu:1 --vdesk=suspend -o /dev/null --wrap 'sleep 2')
    t_poll 60 sh -c "scontrol -o show job $b | grep -q 'AdminComment=.*vdesk\[n1\] evict'"
    assert_match "$(admin_comment "$b")" "used=save .*outcome=\"desktop desk-n1 save \(was suspend\) for job $b\""
    assert_eq "$(vm_state n1)" shutoff "saved for job $b"
    assert_eq "$(hw_drivers)" "$HW_HOST" "job $b has the GPU"
    t_poll 60 job_done "$b"
    assert_eq "$(vm_state n1)" shutoff "job $a still holds the node"
    after_job "$a" n1
    assert_continued n1 "$boot" "$n"
}

# A mode or timeout the site does not allow, set in the job's SPANK
# environment by a patched client, is not obeyed by the node.
test_forbidden_request_arriving_at_the_node_is_refused() {
    local conf out rec
    conf=$VDESK_BED/vdesk/strict.conf
    sed 's/^policy = .*/&\nallow = suspend,save,auto\nmax_timeout = 60/' "$VDCONF" >"$conf"
    out=$(SLURM_JOB_ID=997 SLURMD_NODENAME=n1 SPANK_VDESK_MODE=shutdown SPANK_VDESK_TIMEOUT=-5 \
          VDESK_CONF=$conf "$T_BUILD/prolog/vdesk-prolog" 2>&1) || t_fail "prolog failed: $out"
    assert_match "$out" "job 997: vdesk evict: asked=auto used=save "
    assert_match "$out" "outcome=\"refused mode shutdown \(allow = suspend, save, auto in $conf\); refused timeout '-5' \(1 to max_timeout = 60\); desktop desk-n1 save\""
    SLURM_JOB_ID=997 SLURMD_NODENAME=n1 VDESK_CONF=$conf "$T_BUILD/prolog/vdesk-epilog" >/dev/null 2>&1
    assert_eq "$(vm_state n1)" running
    rm -f "$conf"
}

# wait_step STEP: the journal of n1 names STEP as the step under way.
# A tight loop: some steps last a few tens of milliseconds.
wait_step() {
    local end=$((SECONDS + 30))
    until grep -q "\"step\": *\"$1\"" "$VDESK_BED/vdesk/state/n1/journal.json" 2>/dev/null; do
        [ "$SECONDS" -lt "$end" ] || { t_fail "step '$1' never came"; return 1; }
    done
}

# Killed while libvirt saves, recovered at once: the save finishes in
# libvirtd, and recover restores it (same boot), instead of resuming a VM
# that was still saving and throwing the good save file away.
test_kill_during_save_then_recover_at_once_keeps_the_session() {
    local boot n pid out
    read -r boot n <<<"$(bed_hb desk-n1)"
    vdeskctl --node n1 evict save >/dev/null 2>&1 &
    pid=$!
    wait_step save
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    out=$(vdeskctl --node n1 recover) || t_fail "recover failed: $out"
    assert_no_match "$out" "LOST"
    assert_continued n1 "$boot" "$n"
    # Either the save finished and was restored (no file left), or libvirt
    # gave it up and the VM ran on (the partial file is kept aside).
    t_say "kill during save: $(grep -o 'phases=.*' <<<"$out")"
    [ -z "$(ls "$VDESK_BED/vdesk/state/n1/" | grep '\.save' | grep -v '\.save\.failed-')" ] ||
        t_fail "save files left: $(ls "$VDESK_BED/vdesk/state/n1/")"
    rm -f "$VDESK_BED/vdesk/state/n1/"*.save.failed-*
}

# Killed while libvirt restores: the VM is "paused, starting up" under
# libvirt's job; recover waits for it instead of destroying it.
test_kill_during_restore_then_recover_at_once_keeps_the_session() {
    local boot n pid out
    read -r boot n <<<"$(bed_hb desk-n1)"
    vdeskctl --node n1 evict save >/dev/null
    vdeskctl --node n1 restore >/dev/null 2>&1 &
    pid=$!
    wait_step restore
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    out=$(vdeskctl --node n1 recover) || t_fail "recover failed: $out"
    assert_no_match "$out" "LOST|revert"
    assert_continued n1 "$boot" "$n"
    [ ! -e "$VDESK_BED/vdesk/state/n1/desk-n1.save" ] || t_fail "the save file outlived the restore"
}

# Killed right after asking for an unplug: the removal completes after
# recover looked. The device must come back all the same.
test_kill_during_unplug_brings_the_device_back() {
    local boot n
    read -r boot n <<<"$(bed_hb desk-n1)"
    vdeskctl --node n1 evict save >/dev/null 2>&1 &
    pid=$!
    wait_step "unplug ua-ib0"
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    vdeskctl --node n1 recover >/dev/null || t_fail "recover failed"
    sleep 2   # a removal still under way would land now
    assert_continued n1 "$boot" "$n"
    assert_match "$(vdeskctl --node n1 status)" "desktop: present"
}

# libvirt's autostart (or an admin) started the desktop while its session
# was saved: the saved session is kept aside, not deleted, and said lost.
test_desktop_started_behind_vdesks_back_keeps_the_save_file() {
    local out rc=0 boot
    read -r boot _ <<<"$(bed_hb desk-n1)"
    vdeskctl --node n1 evict save >/dev/null
    "$BEDCTL" start desk-n1
    out=$(vdeskctl --node n1 restore) || rc=$?
    assert_eq "$rc" 1 "restore exit code when something was lost"
    assert_match "$out" "LOST: desk-n1 was started outside vdesk while its session was saved"
    ls "$VDESK_BED/vdesk/state/n1/"desk-n1.save.unused-* >/dev/null 2>&1 || t_fail "the saved session is gone"
    assert_match "$(node_reason n1)" "^vdesk: desktop desk-n1 lost data on n1"
    assert_eq "$(vm_state n1)" running
    rm -f "$VDESK_BED/vdesk/state/n1/"desk-n1.save.unused-*
    # The cold boot found the emulated groups on their host drivers (a real
    # VM with a hostdev could not have started so): as the desktop has them.
    bed_hw_vfio 0000:01:00.0 && bed_hw_vfio 0000:02:00.0
    scontrol update nodename=n1 state=resume
    t_poll 60 hb_at_least n1 $((boot + 1)) 2 || t_fail "desk-n1 did not boot: $(bed_hb desk-n1)"
}

# A journal that cannot be read: the saved desktop still comes back, from
# its save file, and the bad journal is kept for an admin.
test_unreadable_journal_still_brings_a_saved_desktop_back() {
    local boot n out st=$VDESK_BED/vdesk/state/n1
    read -r boot n <<<"$(bed_hb desk-n1)"
    vdeskctl --node n1 evict save >/dev/null
    printf '{"version":1,"phase":"evicted","jobs":""}' >"$st/journal.json"
    out=$(vdeskctl --node n1 recover) || true
    assert_continued n1 "$boot" "$n"
    ls "$st"/journal.json.bad-* >/dev/null 2>&1 || t_fail "the bad journal was not kept"
    assert_match "$out" "the node needs an admin: vdesk: journal unreadable on n1 \($st/journal.json: \"jobs\" is not an array"
    rm -f "$st"/journal.json.bad-*
}

# A job on two nodes: each node's eviction record is kept in the one
# AdminComment, next to what the site put there.
test_multi_node_job_keeps_a_record_per_node() {
    local id ac
    n2_fresh
    bed_guest desk-n2 >/dev/null && bed_wait_hb desk-n2 60
    id=$(sbatch --parsable -H -N2 -w n1,n2 --vdesk=suspend -o /dev/null --wrap 'sleep 3')
    scontrol update jobid="$id" admincomment="site: accounting tag 42"
    scontrol release "$id"
    t_poll 60 sh -c "scontrol -o show job $id | grep -q 'vdesk\[n1\] evict.*vdesk\[n2\] evict\|vdesk\[n2\] evict.*vdesk\[n1\] evict'"
    ac=$(admin_comment "$id")
    assert_match "$ac" "^site: accounting tag 42 \| vdesk\[n[12]\] evict: asked=suspend used=suspend"
    t_poll 60 job_done "$id"
    t_poll 60 sh -c "[ \"\$('$BEDCTL' state desk-n2)\" = running ]"
    "$BEDCTL" purge desk-n2
}

# libvirtd dies while vdesk waits for a device that the guest does not let
# go: the wait ends with the connection, not after timeout_unplug (10 s).
test_libvirt_dying_during_an_unplug_ends_the_wait() {
    local pid t0 elapsed
    n2_fresh
    bed_guest desk-n2 acpiphp.disable=1 >/dev/null && bed_wait_hb desk-n2 60
    "$T_BUILD/cli/vdeskctl" --conf "$VDCONF" --node n2 evict save >"$T_BED/unplug.out" 2>&1 &
    pid=$!
    t_poll 20 grep -q '"step": *"unplug ua-gpu0"' "$VDESK_BED/vdesk/state/n2/journal.json"
    sleep 1
    t0=$SECONDS
    bed_libvirt_stop
    wait "$pid" || true
    elapsed=$((SECONDS - t0))
    assert_lt "$elapsed" 5 "seconds vdeskctl went on waiting once libvirtd was gone"
    assert_match "$(cat "$T_BED/unplug.out")" "the connection to .* closed while waiting for device ua-gpu0"
    bed_libvirt_start
    vdeskctl --node n2 recover >/dev/null || true
    assert_eq "$(vm_state n2)" running
    assert_eq "$("$BEDCTL" present desk-n2 ua-gpu0)" 1 "the device the guest kept"
    "$BEDCTL" purge desk-n2
}

test_libvirt_down_fails_prolog_and_loses_nothing() {
    local id pid
    bed_wait_hb desk-n1 60
    pid=$(cat "$VDESK_BED/libvirt/run/libvirtd.pid")
    kill -KILL "$pid"
    id=$(sbatch --parsable -w n1 --vdesk=save -o /dev/null --wrap true)
    t_poll 30 sh -c "sinfo -h -N -n n1 -o %T | grep -q drain"
    assert_match "$(node_reason n1)" "^vdesk: libvirt unreachable on n1"
    # QEMU outlives its daemon: the desktop still runs.
    assert_ne "$(bed_qemu_pids "$VDESK_BED")" ""
    kill -0 "$(bed_qemu_pids "$VDESK_BED" | head -n 1)" || t_fail "the desktop's QEMU died with libvirtd"
    scancel "$id"
}

t_main
