#!/bin/bash
# The node side on a real cluster with real guests: every mode evicts the
# desktop while a job runs and brings it back after; overlapping jobs evict
# once; a crash at every journalled step is recovered with the disk intact;
# broken config, missing guest, unusable snapshot directory and a stopped
# libvirt daemon give a clear drain reason and lose nothing.
. "$(dirname "$0")/../lib.sh"

BEDCTL=$T_BUILD/tests/bedctl

t_setup() {
    T_BED=$(mktemp -d /tmp/vdb.XXXXXX)
    bed_vdesk_files "$T_BED" hw
    VDESK_BED_PROLOG=$T_BED/vdesk/prolog VDESK_BED_EPILOG=$T_BED/vdesk/epilog \
    VDESK_BED_PLUGSTACK="required $T_BUILD/spank/vdesk.so default=auto" \
    VDESK_BED_SLURM_EXTRA=$'PrologFlags=Alloc\nPrologEpilogTimeout=120\nBatchStartTimeout=120' \
    VDESK_BED_GPU_NODES=n1 bed_up "$T_BED" || return 1
    VDCONF=$VDESK_BED/vdesk/vdesk.conf
    cp "$VDCONF" "$VDESK_BED/vdesk/good.conf"
    # n1's desktop holds the emulated workstation's GPU group and HCA.
    bed_hw workstation && bed_hw_vfio 0000:01:00.0 && bed_hw_vfio 0000:02:00.0 &&
        bed_guest desk-n1 >/dev/null && bed_wait_hb desk-n1 60
}

# hw_drivers: the drivers of the emulated GPU group and HCA, in one line.
hw_drivers() {
    local b out=
    for b in 0000:01:00.0 0000:01:00.1 0000:01:00.2 0000:01:00.3 0000:02:00.0; do
        out="$out $(bed_hw_driver "$b")"
    done
    echo "${out# }"
}
HW_HOST="nvidia snd_hda_intel xhci_hcd nvidia-gpu mlx5_core"
HW_VFIO="vfio-pci vfio-pci vfio-pci vfio-pci vfio-pci"

t_teardown() { bed_down "$T_BED"; }

vdeskctl() { "$T_BUILD/cli/vdeskctl" --conf "$VDCONF" "$@"; }
vm_state() { "$BEDCTL" state "desk-$1"; }
records() { cat "$VDESK_BED/vdesk/state/$1/records.jsonl" 2>/dev/null; }
admin_comment() { scontrol -o show job "$1" | sed -n 's/.*AdminComment=\(.*\) [A-Z][A-Za-z]*=.*/\1/p'; }
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
    t_poll 60 sh -c "scontrol -o show job $id | grep -q 'AdminComment=vdesk evict'" || return 1
    echo "$id"
}

# after_job ID NODE: waits for the job to end and the desktop to run again.
after_job() {
    t_poll 60 job_done "$1"
    t_poll 60 sh -c "[ \"\$('$BEDCTL' state desk-$2)\" = running ]"
    t_poll 30 sh -c "'$T_BUILD/cli/vdeskctl' --conf '$VDCONF' --node $2 status | grep -q '^desktop: present'"
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
    t_poll 60 sh -c "scontrol -o show job $id | grep -q 'AdminComment=vdesk evict'"
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
    after_job "$id" n1
    assert_continued n1 "$boot" "$n"
    assert_no_match "$("$BEDCTL" xml desk-n1)" "cpuset=.1./>" "pinning undone"
}

test_snapshots_beyond_keep_are_merged_while_the_desktop_lives() {
    local boot n i chain files
    read -r boot n <<<"$(bed_hb desk-n1)"
    for i in 1 2 3 4; do
        vdeskctl --node n1 evict save >/dev/null
        vdeskctl --node n1 restore >/dev/null
        chain=$("$BEDCTL" xml desk-n1 | grep -c "<source file=")
        [ "$chain" -le 3 ] || t_fail "disk chain of $chain layers after cycle $i (snapshots_keep = 2)"
    done
    assert_eq "$chain" 3 "active layer + 2 snapshots"
    assert_match "$(records n1 | grep '"op":"evict"' | tail -n 1)" '"name":"prune snapshots","ms":[0-9]+,"ok":true'
    files=$(ls "$VDESK_BED/vdesk/snapshots/n1" | wc -l)
    assert_eq "$files" 2 "overlay files vdesk keeps (the bottom layer is the original disk)"
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
# desktop back with its session (same boot) and disk.
crash_and_recover() {
    local step=$1 boot n id out
    read -r boot n <<<"$(bed_hb desk-n1)"
    echo "$step" >"$VDESK_BED/vdesk/crash"
    id=$(sbatch --parsable -w n1 --vdesk=save -o /dev/null --wrap true)
    t_poll 30 sh -c "scontrol -o show job $id | grep -q 'Reason=launch_failed_requeued_held\|JobState=\(PENDING\|REQUEUE\)' && sinfo -h -N -n n1 -o %T | grep -q drain" ||
        t_fail "crash at '$step': job $id not requeued or node not drained: $(scontrol -o show job "$id" | grep -o 'JobState=[^ ]* Reason=[^ ]*')"
    # Slurm may already be running the epilog, which converges too.
    assert_match "$(vdeskctl --node n1 status)" "desktop: (evicting|restoring|present)"
    out=$(vdeskctl --node n1 recover)
    t_say "crash at '$step': $(grep -o 'outcome=.*' <<<"$out")"
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
    out=$(vdeskctl --node n1 status)
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
    for step in begin snapshot snapshot+ "unplug ua-gpu0" "unplug ua-gpu0+" "unplug ua-ib0+" save save+; do
        crash_and_recover "$step"
    done
}

# Outside Slurm no epilog follows a crash: `vdeskctl recover` does the work.
test_vdeskctl_recover_finishes_what_a_crash_left() {
    local step boot n out
    for step in "unplug ua-ib0+" save+; do
        read -r boot n <<<"$(bed_hb desk-n1)"
        SLURM_JOB_ID=999 SLURMD_NODENAME=n1 SPANK_VDESK_MODE=save VDESK_CONF=$VDCONF \
            VDESK_TEST_CRASH=$step "$T_BUILD/prolog/vdesk-prolog" 2>/dev/null &&
            t_fail "the prolog survived VDESK_TEST_CRASH=$step"
        out=$(vdeskctl --node n1 status)
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
    id=$(sbatch --parsable -w n1 --vdesk=save -o /dev/null --wrap true)
    t_poll 30 sh -c "sinfo -h -N -n n1 -o %T | grep -q drain"
    scancel "$id"
    scontrol update nodename=n1 state=resume
    id=$(start_job n1 suspend 2)
    assert_match "$(records n1 | grep "\"job\":$id,\"op\":\"evict\"")" "recovered an operation interrupted while evicting at step 'save'|desktop desk-n1 suspend"
    after_job "$id" n1
    assert_continued n1 "$boot" "$n"
}

test_failed_restore_boots_the_snapshot_and_keeps_the_save_file() {
    local boot out st
    read -r boot _ <<<"$(bed_hb desk-n1)"
    vdeskctl --node n1 evict save >/dev/null
    st=$VDESK_BED/vdesk/state/n1
    # A save file that no longer restores (a full disk during the save, say).
    truncate -s 4096 "$st/desk-n1.save"
    out=$(vdeskctl --node n1 restore)
    assert_match "$out" "outcome=\"restore failed \(.*\); booted the snapshot .*\""
    assert_match "$out" "phases=lock:[0-9]+,restore:[0-9]+!,destroy:[0-9]+|phases=lock:[0-9]+,restore:[0-9]+!,revert to snapshot"
    assert_eq "$(vm_state n1)" running
    t_poll 30 hb_at_least n1 $((boot + 1)) 3 || t_fail "desk-n1 did not boot the snapshot: $(bed_hb desk-n1)"
    ls "$st"/desk-n1.save.failed-* >/dev/null 2>&1 || t_fail "the broken save file was not kept"
    assert_match "$(vdeskctl --node n1 status)" "desktop: present"
    assert_eq "$("$BEDCTL" present desk-n1 ua-gpu0)$("$BEDCTL" present desk-n1 ua-ib0)" 11 "devices after a cold boot"
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
