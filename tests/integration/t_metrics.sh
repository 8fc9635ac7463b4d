#!/bin/bash
# vdeskctl metrics against a hand-made records.jsonl: every counter and sum
# checked by hand, the text format Prometheus reads, the textfile written
# whole, and what is not a record counted rather than used. The desktop's
# state during a real eviction is checked in t_node.
. "$(dirname "$0")/../lib.sh"

t_setup() {
    T_DIR=$(mktemp -d /tmp/vdm.XXXXXX)
    mkdir -m 0700 "$T_DIR/state" "$T_DIR/prom"
    printf '[vdesk]\nstate_dir = %s/state\n\n[node n1]\nuri = test:///default\ndomain = desk-n1\n' \
        "$T_DIR" >"$T_DIR/vdesk.conf"
    {
        rec 1000 evict save save 1200 '' '' '"lock",1,1' '"unplug ua-gpu0",200,1' '"save",990,1'
        rec 2000 restore '' save 3000 '' '' '"restore",2900,1'
        rec 3000 evict migrate save 5000 '' '' '"lock",0,1' '"migrate n2",4000,0' '"save",1000,1'
        rec 4000 restore '' save 500 'the session' 'vdesk: restore lost the session' '"restore",500,0'
        echo 'not json'
        echo '{"op":"evict"}'
    } >"$T_DIR/state/records.jsonl"
}
t_teardown() { rm -rf "$T_DIR"; }

# rec TIME_S OP ASKED USED TOTAL_MS LOST DRAIN PHASE...: one record line
# as lib/record.c writes it; PHASE: "NAME",MS,OK.
rec() {
    local ph= sep= p name ms ok
    for p in "${@:8}"; do
        IFS=, read -r name ms ok <<<"$p"
        ph="$ph$sep{\"name\":$name,\"ms\":$ms,\"ok\":$([ "$ok" = 1 ] && echo true || echo false)}"
        sep=,
    done
    printf '{"schema":2,"time_ms":%s000,"job":1,"op":"%s","asked":"%s","used":"%s","devices":"",' "$1" "$2" "$3" "$4"
    printf '"outcome":"x","drain":"%s","lost":"%s","total_ms":%s,"phases":[%s]}\n' "$7" "$6" "$5" "$ph"
}

metrics() { "$T_BUILD/cli/vdeskctl" --conf "$T_DIR/vdesk.conf" --node n1 metrics "$@"; }
L='node="n1",desktop="desk-n1"'

test_counters_and_sums_by_hand() {
    local out
    out=$(metrics) || t_fail "metrics failed"
    assert_match "$out" "^vdesk_desktop_away\{$L\} 0$"
    assert_match "$out" "^vdesk_desktop_phase\{$L,phase=\"present\"\} 1$"
    assert_match "$out" "^vdesk_journal_readable\{$L\} 1$"
    assert_match "$out" "^vdesk_operations_total\{$L,op=\"evict\",used=\"save\"\} 2$"
    assert_match "$out" "^vdesk_operations_total\{$L,op=\"restore\",used=\"save\"\} 2$"
    assert_match "$out" "^vdesk_operation_seconds_total\{$L,op=\"evict\",used=\"save\"\} 6.200$"
    assert_match "$out" "^vdesk_operation_failures_total\{$L,op=\"evict\",used=\"save\"\} 0$"
    assert_match "$out" "^vdesk_operation_failures_total\{$L,op=\"restore\",used=\"save\"\} 1$"
    assert_match "$out" "^vdesk_phase_seconds_total\{$L,op=\"evict\",phase=\"save\"\} 1.990$"
    assert_match "$out" "^vdesk_phase_total\{$L,op=\"evict\",phase=\"save\"\} 2$"
    assert_match "$out" "^vdesk_phase_failures_total\{$L,op=\"evict\",phase=\"migrate n2\"\} 1$"
    assert_match "$out" "^vdesk_last_operation_timestamp_seconds\{$L,op=\"restore\"\} 4000.000$"
    assert_match "$out" "^vdesk_records_unreadable\{$L\} 2$"
}

# What node_exporter's parser takes: a HELP and a TYPE before each family,
# then samples NAME{LABELS} VALUE, nothing else.
test_text_format() {
    local bad
    bad=$(metrics | grep -Ev '^# (HELP|TYPE) vdesk_[a-z_]+ .+$|^vdesk_[a-z_]+\{([a-z_]+="([^"\\]|\\.)*",?)+\} [0-9]+(\.[0-9]+)?$' || true)
    assert_eq "$bad" "" "lines that are not metrics"
    assert_eq "$(metrics | grep -c '^# TYPE')" "$(metrics | grep -c '^# HELP')" "a TYPE for each HELP"
}

test_textfile_is_replaced_whole() {
    metrics --textfile "$T_DIR/prom" || t_fail "metrics --textfile failed"
    assert_eq "$(ls -A "$T_DIR/prom")" vdesk.prom "the textfile directory (no temporary file left)"
    assert_eq "$(cat "$T_DIR/prom/vdesk.prom")" "$(metrics)" "the textfile and stdout"
    local out rc=0
    out=$(metrics --textfile "$T_DIR/none" 2>&1) || rc=$?
    assert_eq "$rc" 1 "exit status for a missing directory"
    assert_match "$out" "--textfile $T_DIR/none: cannot write .*collector.textfile.directory"
    out=$("$T_BUILD/cli/vdeskctl" --conf "$T_DIR/vdesk.conf" --node n1 status --textfile x 2>&1) &&
        t_fail "--textfile with status was accepted"
    assert_match "$out" "--textfile goes with metrics"
}

# A journal that cannot be read is said, not hidden: the state is unknown.
test_unreadable_journal_is_a_metric() {
    local out
    echo '{"phase":' >"$T_DIR/state/journal.json"
    out=$(metrics 2>/dev/null) || t_fail "metrics failed on a bad journal"
    assert_match "$out" "^vdesk_journal_readable\{$L\} 0$"
    assert_match "$(metrics 2>&1 >/dev/null)" "journal"
    rm -f "$T_DIR/state/journal.json"
    assert_eq "$("$T_BUILD/cli/vdeskctl" --conf "$T_DIR/vdesk.conf" --node n9 metrics 2>&1)" "" \
        "a node without a desktop: nothing, and no error"
}

t_main
