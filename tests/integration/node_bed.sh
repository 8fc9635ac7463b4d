# tests/integration/node_bed.sh - sourced by the tests of the node side
# (t_node.sh, t_soak.sh): a bed whose n1 is a desktop node with the
# emulated workstation's GPU group and HCA, and the helpers to look at it.

BEDCTL=$T_BUILD/tests/bedctl

node_bed_up() {
    T_BED=${T_BED:-$(mktemp -d /tmp/vdb.XXXXXX)}
    bed_vdesk_files "$T_BED" hw
    VDESK_BED_PROLOG=$T_BED/vdesk/prolog VDESK_BED_EPILOG=$T_BED/vdesk/epilog \
    VDESK_BED_PLUGSTACK="required $T_BUILD/spank/vdesk.so default=auto" \
    VDESK_BED_SLURM_EXTRA=$'PrologFlags=Alloc\nPrologEpilogTimeout=120\nBatchStartTimeout=120'${NODE_BED_SLURM_EXTRA:+$'\n'$NODE_BED_SLURM_EXTRA} \
    VDESK_BED_GPU_NODES=n1 bed_up "$T_BED" || return 1
    VDCONF=$VDESK_BED/vdesk/vdesk.conf
    cp "$VDCONF" "$VDESK_BED/vdesk/good.conf"
    # n1's desktop holds the emulated workstation's GPU group and HCA.
    bed_hw workstation && bed_hw_vfio 0000:01:00.0 && bed_hw_vfio 0000:02:00.0 &&
        bed_guest desk-n1 >/dev/null && bed_wait_hb desk-n1 60
}

# node_bed_acct_up: node_bed_up in a new $T_BED, with slurmctld's
# jobcomp/script running vdesk-jobcomp into the SQLite store $DB, which the
# controller's vdesk.conf names ([vdesk] comes first); n1's desktop only
# (n2 and n3 are plain compute nodes: no desktop, no vdesk record).
node_bed_acct_up() {
    T_BED=$(mktemp -d /tmp/vdb.XXXXXX)
    DB=$T_BED/acct.db
    NODE_BED_SLURM_EXTRA=$'JobCompType=jobcomp/script\nJobCompLoc='$T_BED/vdesk/jobcomp node_bed_up || return 1
    sed -i "s|^\[vdesk\]$|&\naccounting_db = $DB|" "$VDCONF"
    sed -i '/^\[node n2\]$/,$d' "$VDCONF"
    cp "$VDCONF" "$VDESK_BED/vdesk/good.conf"
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

# after_job ID NODE: waits for the job to end and the desktop to run again.
after_job() {
    t_poll 60 job_done "$1"
    t_poll 60 sh -c "[ \"\$('$BEDCTL' state desk-$2)\" = running ]"
    t_poll 30 sh -c "'$T_BUILD/cli/vdeskctl' --conf '$VDCONF' --node $2 status | grep -q '^desktop: present'"
}

t_teardown() { bed_down "$T_BED"; }

# After a failed test: a crash step no prolog took yet, jobs, the test's
# vdesk.conf, an operation left half done and a drained node would fail
# the tests after it too.
t_tidy() {
    local n
    rm -f "$VDESK_BED/vdesk/crash" "$VDESK_BED/vdesk/skip-epilog"
    cp "$VDESK_BED/vdesk/good.conf" "$VDCONF"
    squeue -h -o %i | xargs -r scancel
    t_poll 120 sh -c '[ -z "$(squeue -h -o %i)" ]' || t_say "t_tidy: jobs still there: $(squeue -h)"
    for n in $(sed -n 's/^\[node \([^]]*\)\]$/\1/p' "$VDCONF"); do
        vdeskctl --node "$n" status >/dev/null 2>&1 || vdeskctl --node "$n" recover >&2 || true
    done
    for n in $(sinfo -h -N -o %N | sort -u); do
        scontrol update nodename="$n" state=resume 2>/dev/null || true
    done
}

vdeskctl() { "$T_BUILD/cli/vdeskctl" --conf "$VDCONF" "$@"; }
vm_state() { "$BEDCTL" state "desk-$1"; }
records() { cat "$VDESK_BED/vdesk/state/$1/records.jsonl" 2>/dev/null; }
