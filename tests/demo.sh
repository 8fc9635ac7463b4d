#!/bin/bash
# tests/demo.sh BUILD - vdesk end to end on a throwaway local cluster.
#
# A desktop guest runs on node n1; a user submits a job with --vdesk=save to
# n1; the demo prints a timeline with the guest's heartbeat before, during
# and after the job, and what the node side received from the submitter.
set -u
build=$(cd "${1:?usage: demo.sh BUILD}" && pwd)
T_BUILD=$build
. "$(dirname "$0")/lib.sh"

T0=$(date +%s%N)
say() { printf '[%6.2f s] %s\n' "$(echo "scale=2; ($(date +%s%N) - $T0) / 1000000000" | bc)" "$*"; }
hb() { local b n; read -r b n <<<"$(bed_hb desk-n1)"; echo "boot=$b beat=$n, state $("$build/tests/bedctl" state desk-n1)"; }

bed=$(mktemp -d /tmp/vdb.XXXXXX)
trap 'say "tearing the test bed down"; bed_down "$bed"; say "done: nothing of the bed is left running"' EXIT

say "starting the test bed: munged, slurmctld, slurmd n1 n2 n3, a private libvirtd"
bed_vdesk_files "$bed" hw
VDESK_BED_PROLOG=$bed/vdesk/prolog VDESK_BED_EPILOG=$bed/vdesk/epilog \
VDESK_BED_PLUGSTACK="required $build/spank/vdesk.so default=auto" \
VDESK_BED_SLURM_EXTRA=$'PrologFlags=Alloc\nPrologEpilogTimeout=120\nBatchStartTimeout=120' \
    bed_up "$bed" 2>/dev/null || { echo "demo: the test bed did not start (see above)" >&2; exit 1; }
say "cluster: $(sinfo -h -N -o '%N=%T' | tr '\n' ' ')"
vdeskctl() { "$build/cli/vdeskctl" --conf "$bed/vdesk/vdesk.conf" --node n1 "$@"; }
gpu() {
    local b out=
    for b in 0000:01:00.0 0000:01:00.1 0000:01:00.2 0000:01:00.3; do out="$out ${b#0000:}=$(bed_hw_driver "$b")"; done
    echo "GPU group 12:$out; HCA 02:00.0=$(bed_hw_driver 0000:02:00.0)"
}
say "n1's passthrough hardware: the emulated workstation (no real GPU here): sysfs at $bed/hw"
bed_hw workstation && bed_hw_vfio 0000:01:00.0 && bed_hw_vfio 0000:02:00.0 ||
    { echo "demo: the sysfs emulator did not start" >&2; exit 1; }

say "starting the desktop VM desk-n1 for node n1 (QEMU, software emulation)"
bed_guest desk-n1 >/dev/null && bed_wait_hb desk-n1 60 || { echo "demo: desktop guest did not start" >&2; exit 1; }
sleep 2
say "desktop desk-n1: $(hb), devices ua-gpu0=$("$build/tests/bedctl" present desk-n1 ua-gpu0) ua-ib0=$("$build/tests/bedctl" present desk-n1 ua-ib0)"
say "  $(gpu)"

say "user: sbatch -w n1 --vdesk=save --wrap 'sleep 4'"
job=$(sbatch --parsable -w n1 --vdesk=save -o /dev/null --wrap 'sleep 4')
t_poll 60 sh -c "scontrol -o show job $job | grep -q 'AdminComment=vdesk'"
say "job $job is $(job_state "$job") on n1; the prolog evicted the desktop:"
say "  scontrol show job $job: AdminComment=$(scontrol -o show job "$job" | sed -n 's/.*AdminComment=\(vdesk evict.*"\).*/\1/p')"
say "  desktop desk-n1 during the job: state $("$build/tests/bedctl" state desk-n1)"
say "  $(gpu)"
vdeskctl status | sed -n '/^desktop:/p;/save file:/p' | while read -r l; do say "  vdeskctl status: $l"; done
t_poll 60 job_done "$job"
say "job $job is $(job_state "$job"); the epilog brings the desktop back"
t_poll 60 sh -c "'$build/cli/vdeskctl' --conf '$bed/vdesk/vdesk.conf' --node n1 status | grep -q '^desktop: present'"
say "  $(tail -n 1 "$bed/vdesk/state/n1/records.jsonl" | sed 's/.*"outcome":"\([^"]*\)".*"total_ms":\([0-9]*\).*/restore: \1 in \2 ms/')"
sleep 2
say "desktop desk-n1 after the job: $(hb), devices ua-gpu0=$("$build/tests/bedctl" present desk-n1 ua-gpu0) ua-ib0=$("$build/tests/bedctl" present desk-n1 ua-ib0)"
say "  $(gpu)"
say "same boot, heartbeat carried on: the student's session survived the job"
