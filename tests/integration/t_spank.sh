#!/bin/bash
# The SPANK plugin on a real cluster: --help of sbatch/srun/salloc, every mode
# reaching a plain Prolog/Epilog and the plugin's job_prolog, refusals before
# anything is queued, bad plugstack arguments, srun nested in a batch job.
. "$(dirname "$0")/../lib.sh"

PLUGIN=$T_BUILD/spank/vdesk.so
ALL_MODES="suspend save migrate shutdown shrink auto"

t_setup() {
    T_BED=$(mktemp -d /tmp/vdb.XXXXXX)
    VDESK_BED_PROLOG=$T_ROOT/tests/integration/dump-env.sh \
    VDESK_BED_EPILOG=$T_ROOT/tests/integration/dump-env.sh \
    VDESK_BED_PLUGSTACK="required $PLUGIN default=auto max_timeout=600" \
        bed_up "$T_BED"
}

t_teardown() { bed_down "$T_BED"; }

# client_conf NAME PLUGSTACK-LINE: a slurm.conf for clients only, whose
# plugstack.conf holds PLUGSTACK-LINE; prints its path.
client_conf() {
    local d=$VDESK_BED/client-$1
    mkdir -p "$d"
    printf '%s\n' "$2" >"$d/plugstack.conf"
    sed "s|^PlugStackConfig=.*|PlugStackConfig=$d/plugstack.conf|" "$SLURM_CONF" >"$d/slurm.conf"
    echo "$d/slurm.conf"
}

njobs() { scontrol -o show jobs 2>/dev/null | grep -c '^JobId='; }

# dumped JOB CONTEXT VAR: a variable as the plain Prolog/Epilog saw it.
dumped() {
    t_poll 10 test -s "$VDESK_BED/env-dump/$1.$2" || return 1
    sed -n "s/^$3=//p" "$VDESK_BED/env-dump/$1.$2"
}

plugin_log() { grep -h "vdesk: job $1 $2 on " "$VDESK_BED"/slurm/log/slurmd-n*.log; }

run_batch() {
    local id
    id=$(sbatch --parsable -o /dev/null "$@" --wrap true) || return 1
    t_poll 30 job_done "$id" || return 1
    echo "$id"
}

test_help_lists_options_in_sbatch_srun_salloc() {
    local cmd out
    for cmd in sbatch srun salloc; do
        out=$($cmd --help)
        assert_match "$out" "--vdesk=MODE +What to do with the desktop VM" "$cmd --help"
        assert_match "$out" "--vdesk-timeout=SECONDS" "$cmd --help"
    done
}

test_every_mode_reaches_prolog_epilog_and_plugin() {
    local m id
    for m in $ALL_MODES; do
        id=$(run_batch -w n1 --vdesk="$m")
        assert_eq "$(dumped "$id" prolog_slurmd SPANK_VDESK_MODE)" "$m" "Prolog of job $id"
        assert_eq "$(dumped "$id" epilog_slurmd SPANK_VDESK_MODE)" "$m" "Epilog of job $id"
        assert_match "$(plugin_log "$id" prolog)" "mode=$m \(asked\)"
        assert_match "$(plugin_log "$id" epilog)" "mode=$m \(asked\)"
    done
}

test_default_mode_when_none_given() {
    local id
    id=$(run_batch -w n2)
    assert_eq "$(dumped "$id" prolog_slurmd SPANK_VDESK_MODE)" auto
    assert_eq "$(dumped "$id" prolog_slurmd SPANK_VDESK_TIMEOUT)" "" "no timeout asked"
    assert_match "$(plugin_log "$id" prolog)" "mode=auto \(default\) timeout=config"
}

test_timeout_reaches_node_side() {
    local id
    id=$(run_batch -w n2 --vdesk=save --vdesk-timeout=45)
    assert_eq "$(dumped "$id" prolog_slurmd SPANK_VDESK_TIMEOUT)" 45
    assert_match "$(plugin_log "$id" prolog)" "mode=save \(asked\) timeout=45"
    # The plugin's version, for an admin comparing nodes (issue 10 item 12).
    assert_match "$(plugin_log "$id" prolog)" "timeout=45 \(vdesk [0-9]+\.[0-9]+\.[0-9]+\)$"
}

test_srun_and_salloc_pass_the_mode() {
    local id
    id=$(srun -w n3 --vdesk=shutdown sh -c 'echo $SLURM_JOB_ID')
    assert_eq "$(dumped "$id" prolog_slurmd SPANK_VDESK_MODE)" shutdown "srun job $id"
    id=$(salloc -w n3 --vdesk=shrink sh -c 'srun true; echo $SLURM_JOB_ID' 2>/dev/null | tail -n 1)
    assert_eq "$(dumped "$id" prolog_slurmd SPANK_VDESK_MODE)" shrink "salloc job $id"
}

# refused CMD ARGS...: CMD fails, queues nothing; prints its stderr.
refused() {
    local before out
    before=$(njobs)
    # From /tmp: a batch job that is wrongly accepted must not leave its
    # slurm-N.out in the source tree.
    if out=$(cd /tmp && "$@" 2>&1 </dev/null); then t_fail "'$*' succeeded"; return 1; fi
    assert_eq "$(njobs)" "$before" "jobs queued by '$*'"
    printf '%s\n' "$out"
}

test_invalid_mode_refused_before_queueing() {
    local cmd out
    for cmd in "sbatch --wrap true" "srun true" "salloc true"; do
        # shellcheck disable=SC2086
        out=$(refused ${cmd%% *} --vdesk=teleport ${cmd#* })
        assert_match "$out" "vdesk: --vdesk=teleport: unknown mode \(allowed here: suspend, save, migrate, shutdown, shrink, auto\)" "$cmd"
    done
}

test_bad_timeout_refused() {
    local v out
    for v in 0 abc 601 -5; do
        out=$(refused sbatch --vdesk-timeout="$v" --wrap true)
        assert_match "$out" "--vdesk-timeout=$v: must be whole seconds from 1 to 600"
    done
}

test_forbidden_mode_refused_with_allowed_list() {
    local conf out
    conf=$(client_conf strict "required $PLUGIN default=save allow=suspend,save")
    out=$(SLURM_CONF=$conf refused sbatch --vdesk=migrate --wrap true)
    assert_match "$out" "vdesk: --vdesk=migrate is not allowed on this cluster \(allowed here: suspend, save\)"
    out=$(SLURM_CONF=$conf refused srun --vdesk=shrink true)
    assert_match "$out" "--vdesk=shrink is not allowed"
    assert_match "$(SLURM_CONF=$conf sbatch --help)" "suspend, save \(default: save\)"
}

test_bad_plugstack_arguments_refuse_to_load() {
    local args expect conf out
    while IFS='|' read -r args expect; do
        conf=$(client_conf bad "required $PLUGIN $args")
        out=$(SLURM_CONF=$conf refused sbatch --wrap true)
        assert_match "$out" "$expect" "plugstack arguments '$args'"
    done <<'EOF2'
colour=blue|vdesk: plugstack.conf: unknown argument 'colour=blue' \(known: default=MODE
default|vdesk: plugstack.conf: unknown argument 'default'
default=teleport|bad argument 'default=teleport': unknown mode 'teleport'
allow=save,,suspend|bad argument 'allow=save,,suspend': mode list 'save,,suspend' has an empty item
allow=save,save|names 'save' twice
max_timeout=0|bad argument 'max_timeout=0': must be whole seconds
default=shrink allow=save,suspend|default=shrink is not in allow=
EOF2
}

test_nested_srun_keeps_the_job_mode() {
    local id out
    out=$VDESK_BED/nested.out
    id=$(sbatch --parsable -w n1 --vdesk=save -o "$out" --wrap '
        srun sh -c "echo inherited=\$SLURM_SPANK__SLURM_SPANK_OPTION_vdesk_vdesk"
        srun --vdesk=save true && echo same=ok
        srun --vdesk=shutdown true || echo different=refused')
    t_poll 30 job_done "$id"
    assert_match "$(cat "$out")" "inherited=save"
    assert_match "$(cat "$out")" "same=ok"
    assert_match "$(cat "$out")" "different=refused"
    assert_match "$(cat "$out")" "--vdesk=shutdown: job $id already runs with --vdesk=save"
    assert_eq "$(dumped "$id" epilog_slurmd SPANK_VDESK_MODE)" save "the job's epilog"
}

test_plugin_exports_only_spank_symbols_and_links_no_heavy_library() {
    local syms libs
    syms=$(nm -D --defined-only "$PLUGIN" | awk '{ print $3 }' | sort | tr '\n' ' ')
    assert_eq "$syms" "plugin_name plugin_type plugin_version slurm_spank_init slurm_spank_init_post_opt slurm_spank_job_epilog slurm_spank_job_prolog spank_plugin_version "
    libs=$(ldd "$PLUGIN")
    assert_no_match "$libs" "libvirt|hwloc|ibverbs|xml2|slurm"
}

t_main
