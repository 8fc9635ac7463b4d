#!/bin/sh
# A plain Prolog=/Epilog= program for the tests: records what slurmd gives it
# in <bed>/env-dump/<job>.<context> (the bed is found from SLURM_CONF).
dir=$(dirname "$SLURM_CONF")/../env-dump
mkdir -p "$dir"
env | grep -E '^(SPANK_|SLURM_JOB_ID=|SLURMD_NODENAME=|SLURM_SCRIPT_CONTEXT=)' | sort \
    >"$dir/$SLURM_JOB_ID.$SLURM_SCRIPT_CONTEXT"
exit 0
