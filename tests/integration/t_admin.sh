#!/bin/bash
# A new admin's first day (issue 10), from installed files and the docs
# only: vdesk installed into a staging prefix (make install PREFIX=...
# SYSCONFDIR=... LOCALSTATEDIR=..., so the programs read their own
# vdesk.conf with no VDESK_CONF, as under slurmd), slurm.conf lines and the
# plugstack snippet taken from docs/admin.md and the installed examples, a
# cluster whose n1 has a desktop and n2, n3 have none. Then every mode, a
# job on a node without a desktop, a broken vdesk.conf at prolog and at
# epilog time, libvirt down, a restore --force under a running job, and
# each time the recovery the drain reason names, ending with the desktop
# back and the node resumed. Messages the docs quote are asserted word for
# word.
. "$(dirname "$0")/../lib.sh"

BEDCTL=$T_BUILD/tests/bedctl

# slurm.conf lines of docs/admin.md's "## slurm.conf" block, for the staged
# prefix; PlugStackConfig is the bed's own (it includes the snippet dir).
admin_md_slurm_lines() {
    awk '/^## slurm.conf/ { s = 1; next } s && /^```/ { if (b++) exit; next } s && b' \
        "$T_ROOT/docs/admin.md" | grep -v '^PlugStackConfig=' | sed "s|=/usr/|=$STAGE/usr/|"
}

stage_install() {
    STAGE=$(mktemp -d /tmp/vdesk-stage.XXXXXX)
    chmod 0755 "$STAGE"
    make -s -j2 -C "$T_ROOT" BUILD="$T_BUILD/stage" install PREFIX="$STAGE/usr" SYSCONFDIR="$STAGE/etc" \
        LOCALSTATEDIR="$STAGE/var" SLURM_PLUGINDIR="$STAGE/usr/lib/slurm-wlm" >"$STAGE.make.log" 2>&1 ||
        { cat "$STAGE.make.log" >&2; return 1; }
    CONF=$STAGE/etc/vdesk/vdesk.conf
    CTL=$STAGE/usr/sbin/vdeskctl
    mkdir -p "$STAGE/etc/slurm/plugstack.conf.d" "$STAGE/etc/vdesk"
    # The snippet as installed, pointing at the staged plugin.
    sed "s|^required /usr/lib/[^ ]*/vdesk.so|required $STAGE/usr/lib/slurm-wlm/vdesk.so|" \
        "$STAGE/usr/share/doc/vdesk/examples/plugstack.conf.d/vdesk.conf" \
        >"$STAGE/etc/slurm/plugstack.conf.d/vdesk.conf"
}

# vdesk.conf as an admin writes it for a cluster where only n1 has a
# desktop (vdesk.conf(5)): nothing for n2 and n3.
write_conf() {
    cat >"$CONF" <<EOF
[vdesk]
policy = save,shutdown
timeout_shutdown = 20
min_shutdown_grace = 2

[node n1]
uri = qemu:///system?socket=$T_BED/libvirt/run/libvirt-sock
domain = desk-n1
desktop_cores = 1
device = gpu ua-gpu0
device = ib ua-ib0
EOF
    cp "$CONF" "$STAGE/good.conf"
}

t_setup() {
    T_BED=$(mktemp -d /tmp/vda.XXXXXX)
    stage_install || return 1
    write_conf
    VDESK_BED_SLURM_EXTRA=$(admin_md_slurm_lines) \
    VDESK_BED_PLUGSTACK="include $STAGE/etc/slurm/plugstack.conf.d/*" VDESK_BED_CRED_EXPIRE=20 \
        bed_up "$T_BED" || return 1
    bed_guest desk-n1 >/dev/null && bed_wait_hb desk-n1 60
}

t_teardown() { bed_down "$T_BED"; rm -rf "$STAGE" "$STAGE.make.log"; }

vdeskctl() { env -u VDESK_CONF "$CTL" --node n1 "$@"; }
vm_state() { "$BEDCTL" state desk-n1; }
node_state() { scontrol -o show node "$1" | sed -n 's/.* State=\([^ ]*\) .*/\1/p'; }
node_idle() { [ "$(node_state "$1")" = IDLE ]; }
node_reason() { sinfo -h -N -n "$1" -o '%E'; }
# The node's Comment: the last field in Slurm 22.05's listing, not in 24.11's.
node_comment() { scontrol -o show node "$1" | sed -n 's/.* Comment=//p' | sed 's/ [A-Z][A-Za-z]*=.*//'; }

# back_and_resumed: the desktop runs, the node takes jobs again.
back_and_resumed() {
    t_poll 60 sh -c "[ \"\$('$BEDCTL' state desk-n1)\" = running ]"
    t_poll 30 sh -c "'$CTL' --node n1 status | grep -q '^desktop: present'"
    # scontrol's State, not sinfo's %T: sinfo 22.05 shows an idle node that
    # has a Comment as "mixed".
    t_poll 30 node_idle n1 || t_fail "n1 not idle: $(scontrol -o show node n1 | grep -o 'State=[^ ]*')"
    # The epilog writes the node's Comment after the journal says present.
    t_poll 10 comment_is n1 "vdesk\[n1\] desktop desk-n1 here" ||
        t_fail "node n1's Comment: '$(node_comment n1)'"
}

# release_held JOB: a failed prolog makes Slurm requeue a batch job and
# hold it (admin.md): release it, as the docs say.
release_held() {
    t_poll 60 sh -c "scontrol -o show job $1 | grep -Eq 'JobState=PENDING .*Reason=(launch_failed_requeued_held|JobHeldAdmin)'" ||
        t_fail "job $1 not held after its failed prolog: $(scontrol -o show job "$1" | grep -o 'JobState=[^ ]* Reason=[^ ]*')"
    scontrol release "$1"
    # It starts after the old credential has expired (BeginTime): the bed
    # makes that 20 s instead of 120 (VDESK_BED_CRED_EXPIRE). Slurm 24.11
    # kills a job let start earlier ("Job credential revoked").
}

# booted BOOT: the desktop's heartbeat comes from boot BOOT.
booted() { local b n; read -r b n <<<"$(bed_hb desk-n1)"; [ "$b" = "$1" ]; }

# comment_is NODE REGEX: the node's Comment matches.
comment_is() { node_comment "$1" | grep -Eq -- "$2"; }

# evicted JOB: its prolog is done (its record is in the AdminComment).
evicted() { admin_comment "$1" | grep -q 'vdesk\[n1\] evict'; }

# job NODE MODE SECONDS: submits a job and prints its id.
job() { sbatch --parsable -w "$1" --vdesk="$2" -o /dev/null --wrap "sleep $3"; }

test_the_staged_install_reads_its_own_config() {
    assert_match "$("$CTL" --version)" "^vdeskctl [0-9.]+ \(default config $CONF\)$"
    assert_match "$("$STAGE/usr/libexec/vdesk/vdesk-prolog" --version)" "reads $CONF"
    assert_match "$(admin_md_slurm_lines)" "^Prolog=$STAGE/usr/libexec/vdesk/vdesk-prolog"
    # A node without a desktop: check-config says what vdesk does there.
    assert_eq "$(env -u VDESK_CONF "$CTL" --node n2 check-config)" "$CONF: OK
node n2: no desktop (no [node n2] section): the prolog and epilog do nothing there"
    assert_eq "$(vdeskctl --node n2 status)" "node n2: no desktop ($CONF: no [node n2] section (nodes in the file: n1)): vdesk does nothing on this node"
    local out
    out=$(vdeskctl check-config --live) || t_fail "check-config --live: $out"
    assert_match "$out" "ok  domain desk-n1: running"
    assert_match "$out" "ok  device ua-gpu0 in desk-n1's definition"
    assert_match "$out" "n1: 0 problem\(s\)$"
}

test_every_mode_from_the_installed_plugin() {
    local m id boot n b2 n2
    for m in suspend save shutdown; do
        read -r boot n <<<"$(bed_hb desk-n1)"
        id=$(job n1 "$m" 4)
        t_poll 60 evicted "$id"
        assert_match "$(admin_comment "$id")" "vdesk\[n1\] evict: asked=$m used=$m"
        # The node's Comment is written by a process of its own, after the
        # prolog (the job does not wait for slurmctld to show it).
        case $m in
        suspend) assert_eq "$(vm_state)" paused; t_poll 10 comment_is n1 "desktop desk-n1 suspended for job $id" ;;
        save) assert_eq "$(vm_state)" shutoff; t_poll 10 comment_is n1 "desktop desk-n1 saved for job $id" ;;
        shutdown) assert_eq "$(vm_state)" shutoff; t_poll 10 comment_is n1 "desktop desk-n1 shut down for job $id" ;;
        esac
        assert_match "$(node_comment n1)" "desktop desk-n1 (suspended|saved|shut down) for job $id"
        t_poll 60 job_done "$id"
        back_and_resumed
        # The console keeps the last boot's lines until the new boot prints.
        if [ "$m" = shutdown ]; then t_poll 60 booted $((boot + 1)) || t_fail "no new boot after shutdown"
        else read -r b2 n2 <<<"$(bed_hb desk-n1)"; assert_eq "$b2" "$boot" "the $m session continues"; fi
    done
}

test_a_node_without_a_desktop_runs_jobs_quietly() {
    local id
    id=$(job n2 save 1)
    t_poll 60 job_done "$id"
    assert_eq "$(job_state "$id")" COMPLETED
    assert_eq "$(node_state n2)" IDLE
    assert_no_match "$(scontrol -o show job "$id")" "vdesk\["
    assert_eq "$(vm_state)" running "n1's desktop is not n2's business"
}

# The site's AdminComment stays; vdesk adds its own record after it.
test_site_admin_comment_is_kept() {
    local id
    id=$(sbatch --parsable -H -w n1 --vdesk=suspend -o /dev/null --wrap 'sleep 2')
    scontrol update jobid="$id" admincomment="site: accounting tag 42"
    scontrol release "$id"
    t_poll 60 job_done "$id"
    assert_match "$(admin_comment "$id")" "^site: accounting tag 42 \| vdesk\[n1\] evict: asked=suspend"
    back_and_resumed
}

# A broken vdesk.conf at prolog time drains n1 and holds the job; the drain
# reason's advice (fix, check-config, resume; release the job) gets it run.
test_broken_config_at_prolog_time() {
    local id out line
    line=$(($(wc -l <"$CONF") + 1))
    printf 'polcy = save\n' >>"$CONF"
    id=$(job n1 save 2)
    t_poll 60 sh -c "sinfo -h -N -n n1 -o %T | grep -q drain"
    assert_match "$(node_reason n1)" "^vdesk: $CONF:$line: unknown key 'polcy' in \[node n1\]"
    out=$(env -u VDESK_CONF "$CTL" check-config 2>&1) && t_fail "check-config accepted the broken file"
    assert_match "$out" "$CONF:$line: unknown key 'polcy'"
    cp "$STAGE/good.conf" "$CONF"
    env -u VDESK_CONF "$CTL" check-config >/dev/null
    scontrol update nodename=n1 state=resume
    release_held "$id"
    t_poll 90 job_done "$id"
    assert_eq "$(job_state "$id")" COMPLETED "job $id: $(scontrol -o show job "$id" | grep -o 'Reason=.*ExitCode=[^ ]*' | cut -c1-300)"
    back_and_resumed
}

# A broken vdesk.conf at epilog time leaves the desktop away, held by a
# finished job: status says so and recover brings it back.
test_broken_config_at_epilog_time() {
    local id out rc=0 boot n b2 n2
    read -r boot n <<<"$(bed_hb desk-n1)"
    id=$(job n1 save 8)
    t_poll 60 evicted "$id"
    printf 'polcy = save\n' >>"$CONF"
    t_poll 60 job_done "$id"
    t_poll 30 sh -c "sinfo -h -N -n n1 -o %T | grep -q drain"
    cp "$STAGE/good.conf" "$CONF"
    scontrol update nodename=n1 state=resume
    assert_eq "$(vm_state)" shutoff "the desktop is still away"
    out=$(vdeskctl status) || rc=$?
    assert_eq "$rc" 1 "status exit code with a finished job holding the desktop"
    assert_match "$out" "job $id: COMPLETED \(!\) no longer holds the node"
    assert_match "$out" "\(!\) job\(s\) $id \(COMPLETED\) no longer run here but hold the desktop away: run 'vdeskctl recover'"
    out=$(vdeskctl recover)
    assert_match "$out" "outcome=\"released job\(s\) that Slurm no longer runs here: $id \(COMPLETED\); desktop desk-n1 back \(was save\)\""
    back_and_resumed
    read -r b2 n2 <<<"$(bed_hb desk-n1)"
    assert_eq "$b2" "$boot" "the saved session came back"
}

test_restore_force_refuses_while_a_job_runs() {
    local id out
    id=$(job n1 save 30)
    t_poll 60 evicted "$id"
    out=$(vdeskctl restore --force 2>&1) && t_fail "restore --force under a running job succeeded"
    assert_eq "$out" "vdeskctl restore --force: job(s) still on node n1: $id (RUNNING); the desktop would come back under them. Cancel them first (scancel), or add --even-if-running"
    assert_eq "$(vm_state)" shutoff "the desktop stayed away"
    scancel "$id"
    t_poll 60 job_done "$id"
    back_and_resumed
}

# libvirt down: status fails and says so; a job's prolog drains n1 naming
# the fix; start libvirtd, recover, resume.
test_libvirt_down() {
    local out rc=0 id
    bed_libvirt_stop
    out=$(vdeskctl status) || rc=$?
    assert_eq "$rc" 1 "status exit code with libvirt down"
    assert_match "$out" "^VM desk-n1: libvirt unreachable: "
    assert_match "$(vdeskctl status --json)" "\"libvirt_reachable\": ?false"
    id=$(job n1 save 2)
    t_poll 60 sh -c "sinfo -h -N -n n1 -o %T | grep -q drain"
    assert_match "$(node_reason n1)" "^vdesk: libvirt unreachable on n1 "
    bed_libvirt_start
    vdeskctl recover >/dev/null
    scontrol update nodename=n1 state=resume
    release_held "$id"
    t_poll 90 job_done "$id"
    back_and_resumed
    vdeskctl status >/dev/null || t_fail "status still finds something to do"
}

# An operation in progress is shown as such, and recover says it waits.
test_lock_holder_is_shown() {
    local out pid
    flock "$STAGE/var/lib/vdesk/lock" sleep 3 &
    pid=$!
    t_poll 5 sh -c "! flock -n '$STAGE/var/lib/vdesk/lock' true"
    out=$(vdeskctl status)
    assert_match "$out" "^lock: held by "
    out=$(vdeskctl recover 2>&1)
    assert_match "$out" "vdeskctl recover: waiting up to 600 s for the operation that holds the node's lock"
    wait "$pid"
}

t_main
