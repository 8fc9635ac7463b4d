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
VDESK_BED_PROLOG=$T_ROOT/tests/integration/dump-env.sh \
VDESK_BED_EPILOG=$T_ROOT/tests/integration/dump-env.sh \
VDESK_BED_PLUGSTACK="required $build/spank/vdesk.so default=auto" \
    bed_up "$bed" 2>/dev/null || { echo "demo: the test bed did not start (see above)" >&2; exit 1; }
say "cluster: $(sinfo -h -N -o '%N=%T' | tr '\n' ' ')"

say "starting the desktop VM desk-n1 for node n1 (QEMU, software emulation)"
bed_guest desk-n1 >/dev/null && bed_wait_hb desk-n1 60 || { echo "demo: desktop guest did not start" >&2; exit 1; }
sleep 2
say "desktop desk-n1: $(hb)"

say "user: sbatch -w n1 --vdesk=save --wrap 'sleep 3'"
job=$(sbatch --parsable -w n1 --vdesk=save -o /dev/null --wrap 'sleep 3')
t_poll 20 job_running "$job"
say "job $job is RUNNING on n1"
say "  n1 Prolog received: $(grep SPANK_VDESK "$VDESK_BED/env-dump/$job.prolog_slurmd" | tr '\n' ' ')"
say "  vdesk plugin on n1: $(grep -ho "vdesk: job $job prolog.*" "$VDESK_BED"/slurm/log/slurmd-n1.log)"
say "  desktop desk-n1 during the job: $(hb)"
if [ ! -x "$build/prolog/vdesk-prolog" ]; then
    say "  (the node-side eviction, issue #4, is not built yet: the desktop keeps running)"
fi
sleep 1.5
say "  desktop desk-n1 during the job: $(hb)"
t_poll 30 job_done "$job"
say "job $job is $(job_state "$job")"
say "  n1 Epilog received: $(grep SPANK_VDESK "$VDESK_BED/env-dump/$job.epilog_slurmd" | tr '\n' ' ')"
sleep 1
say "desktop desk-n1 after the job: $(hb)"
