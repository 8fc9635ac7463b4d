# shellcheck shell=bash
# The integration tests' harness. A test file sources this, defines
# t_setup / t_teardown (optional) and functions named test_*, and ends with
# `t_main`. Each test runs in a subshell under `set -e`; an assert that fails
# says what it expected. t_tidy (optional) runs after a test that failed and
# puts back what it may have left, so that one failure is not reported again
# by the tests after it. The file ends with "FILE: N passed, N failed" and
# exits non-zero if any test failed.

T_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
T_BUILD=${T_BUILD:-$T_ROOT/build}
BED_BUILD=$T_BUILD
# shellcheck source=tests/bed/bed.sh
. "$T_ROOT/tests/bed/bed.sh"

t_say() { printf '    %s\n' "$*" >&2; }
t_fail() { t_say "$*"; return 1; }
assert_eq() { [ "$1" = "$2" ] || t_fail "expected '$2', got '$1'${3:+: $3}"; }
assert_ne() { [ "$1" != "$2" ] || t_fail "expected something other than '$2'${3:+: $3}"; }
assert_match() { printf '%s\n' "$1" | grep -Eq -- "$2" || t_fail "expected /$2/ in: $1${3:+ ($3)}"; }
assert_no_match() { ! printf '%s\n' "$1" | grep -Eq -- "$2" || t_fail "did not expect /$2/ in: $1${3:+ ($3)}"; }
assert_lt() { [ "$1" -lt "$2" ] || t_fail "expected $1 < $2${3:+: $3}"; }
assert_gt() { [ "$1" -gt "$2" ] || t_fail "expected $1 > $2${3:+: $3}"; }

# t_poll SECONDS COMMAND...: retry COMMAND every 100 ms until it succeeds.
t_poll() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || { t_say "timed out waiting for: $*"; return 1; }
        sleep 0.1
    done
}

# admin_comment ID: the job's AdminComment, where vdesk's nodes put their records.
admin_comment() { scontrol -o show job "$1" | sed -n 's/.*AdminComment=\(.*\) [A-Z][A-Za-z]*=.*/\1/p'; }

# job_state ID: the job's state (RUNNING, COMPLETED, ...) from scontrol.
job_state() { scontrol -o show job "$1" 2>/dev/null | sed -n 's/.* JobState=\([A-Z_]*\) .*/\1/p'; }
job_done() { case $(job_state "$1") in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|PREEMPTED|OUT_OF_MEMORY) return 0;; esac; return 1; }
job_running() { [ "$(job_state "$1")" = RUNNING ]; }

t_main() {
    local file pass=0 fail=0 names name rc
    file=$(basename "$0" .sh)
    # T_ONLY=REGEX runs only the tests whose names match (by hand, not in CI).
    names=$(grep -o '^test_[A-Za-z0-9_]*()' "$0" | tr -d '()' | grep -E -- "${T_ONLY:-.}")
    # An interrupted file still tears its bed down.
    declare -F t_teardown >/dev/null &&
        trap 'trap - INT TERM HUP PIPE; t_teardown; exit 130' INT TERM HUP PIPE
    if declare -F t_setup >/dev/null && ! t_setup; then
        for name in $names; do echo "FAIL $file/$name (setup failed)"; fail=$((fail + 1)); done
    else
        for name in $names; do
            local t0=$SECONDS
            ( set -e; "$name" )
            rc=$?
            if [ "$rc" -eq 0 ]; then
                echo "ok   $file/$name ($((SECONDS - t0)) s)"; pass=$((pass + 1))
            else
                echo "FAIL $file/$name"; fail=$((fail + 1))
                bed_report_dead
                if declare -F t_tidy >/dev/null && ! ( t_tidy ); then t_say "t_tidy after $name failed"; fi
            fi
        done
    fi
    declare -F t_teardown >/dev/null && t_teardown
    echo "$file: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}
