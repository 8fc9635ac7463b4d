# shellcheck shell=bash disable=SC2154
# (SC2154: build, bed, bench_* are set by tests/bench.sh, which sources this.)
# What the parts of tests/bench.sh share: timing, statistics, formatting,
# and waiting for a desktop guest. Sourced after tests/lib.sh; needs
# $build (the build directory), $bench_src (tests/bench) and $bench_tmp (a
# scratch directory of this run).

bench_fail() { echo "bench: $*" >&2; return 1; }

# timed CMD...: CMD's wall-clock time in ms (three decimals) on stdout;
# what CMD printed is left in $bench_tmp/out (stdout) and $bench_tmp/err.
# EPOCHREALTIME, not date: no process of its own inside the window.
timed() {
    local t0 t1 us
    t0=${EPOCHREALTIME/./}
    "$@" >"$bench_tmp/out" 2>"$bench_tmp/err" ||
        bench_fail "'$*' failed: $(tail -n 3 "$bench_tmp/err" | tr '\n' ' ')" || return 1
    t1=${EPOCHREALTIME/./}
    us=$((t1 - t0))
    printf '%d.%03d\n' $((us / 1000)) $((us % 1000))
}

# pair_stats FILE: "N MEDIAN_A MEDIAN_B RATIO Q1 Q3 LO HI" of its "A B" lines.
pair_stats() { awk -f "$bench_src/stats.awk" -v what=pairs "$1"; }

# calc EXPR: awk arithmetic, printed with format FMT (default %.3f).
calc() { awk -v fmt="${2:-%.3f}" "BEGIN { printf fmt \"\\n\", $1 }"; }

# cpus LIST: the CPUs of a cpulist ("0-3,6"), one per line.
cpus() {
    printf '%s\n' "$1" | tr ',' '\n' | awk -F- 'NF { for (c = $1; c <= (NF > 1 ? $2 : $1); c++) print c }'
}

# cpus_inside LIST SET: whether every CPU of LIST is in SET.
cpus_inside() {
    [ -z "$(comm -23 <(cpus "$1" | sort) <(cpus "$2" | sort))" ]
}

# cpus_minus LIST SET: the CPUs of LIST not in SET, as a comma list.
cpus_minus() {
    comm -23 <(cpus "$1" | sort) <(cpus "$2" | sort) | sort -n | paste -sd,
}

# conf_node_value NODE KEY: KEY's value in [node NODE] of the bed's vdesk.conf.
conf_node_value() {
    awk -v sec="[node $1]" -v key="$2" '
        /^\[/ { in_sec = ($0 == sec) }
        in_sec && $1 == key && $2 == "=" { sub(/^[^=]*= */, ""); print; exit }
    ' "$bed/vdesk/vdesk.conf"
}

# --- the desktop guest ------------------------------------------------------
#
# A guest's init prints "vdesk-guest: up boot=B" at each boot, then, with
# vdesk.fill=MIB, "vdesk-guest: filled MIB MiB" when its RAM holds the data.
# The console log keeps every boot, so boot B is filled when there are B
# "filled" lines. guest_boot[DOM] is the boot the bench expects: a mode that
# switches the guest off and on again makes it one more.

declare -A guest_boot=()

guest__ready() {
    local dom=$1 con=$VDESK_BED/guests/$1/console.log b n
    read -r b n <<<"$(bed_hb "$dom")"
    [ "${b:-0}" -eq "${guest_boot[$dom]}" ] && [ "${n:-0}" -ge 3 ] || return 1
    if [ -n "${guest_fill[$dom]:-}" ]; then
        [ "$(grep -ac '^vdesk-guest: filled' "$con")" -ge "${guest_boot[$dom]}" ] || return 1
    fi
    [ "$("$build/tests/bedctl" state "$dom")" = running ]
}

declare -A guest_fill=()

# guest_start DOM MIB [FILL_MIB] [ARGS]: creates and starts a guest of MIB
# MiB with FILL_MIB of it filled, and waits until it is.
guest_start() {
    local dom=$1 mib=$2 fill=${3:-} args=${4:-}
    guest_boot[$dom]=1
    guest_fill[$dom]=$fill
    # A guest of the same name before (purged) left its console log, which
    # QEMU appends to: the counting starts afresh.
    rm -f "$VDESK_BED/guests/$dom/console.log"
    BED_GUEST_MIB=$mib bed_guest "$dom" "${fill:+vdesk.fill=$fill }$args" >/dev/null ||
        bench_fail "guest $dom ($mib MiB) did not start" || return 1
    guest_wait "$dom"
}

# guest_wait DOM: until the guest runs its expected boot, filled; the fill
# takes about 7 s a GiB here (TCG).
guest_wait() {
    local tmo=$((60 + ${guest_fill[$1]:-0} / 20))
    t_poll "$tmo" guest__ready "$1" ||
        bench_fail "$1 is not running boot ${guest_boot[$1]} with its RAM filled after $tmo s" \
            "(console: $(tail -n 2 "$VDESK_BED/guests/$1/console.log" | tr -d '\r' | tr '\n' ' '))"
}

# cold FILE: drops FILE from the page cache, as hours after it was written:
# a restore reads its save file from the disk.
cold() {
    sync "$1" && dd if="$1" iflag=nocache count=0 status=none
}
