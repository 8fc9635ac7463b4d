/* SPDX-License-Identifier: MIT */
/*
 * slurmdb.h - Slurm's own accounting (slurmdbd), through libslurmdb, for
 * sites that run it (docs/design.md, "Accounting"):
 *
 *   - a node's record of an operation that comes after its job ended (the
 *     epilog's restore: slurmctld takes no more AdminComment by then) goes
 *     into the AdminComment slurmdbd keeps of the job, beside the eviction
 *     records slurmctld sent at the job's end;
 *   - `vdeskctl report --slurmdbd` reads the runs of a period back, with
 *     their records and the GPUs Slurm's TRES accounting (gres/gpu) gave
 *     them.
 *
 * Both need SLURM_CONF with AccountingStorageType=accounting_storage/slurmdbd,
 * and root or SlurmUser for writing (slurmdbd lets only its operators and
 * admins change another user's job).
 */
#ifndef VDESK_SLURMDB_H
#define VDESK_SLURMDB_H

#include "acct.h"
#include "err.h"

/* Whether slurm.conf sends accounting to slurmdbd: 1 yes, 0 no, -1 when
 * slurm.conf cannot be read (err says why). */
int vd_slurmdb_used(vd_err *err);

/* Puts `record` as node's record of its operation (the record's first
 * word: "restore ...") into the AdminComment slurmdbd has of the job's
 * latest run, merged as slurmapi.h describes (a node's new record of an
 * operation replaces its old one of the same operation; its others stay).
 * slurmctld writes the whole AdminComment once more when it tells slurmdbd
 * that the job ended, so this waits up to wait_s for slurmdbd to know the
 * end; then reads the comment back, and tries again when another node's
 * write at the same moment dropped the record. The run must have had the
 * node and be the job's latest (a requeued job's next run is left alone),
 * and the write selects that one run (an array task, a het component).
 * cluster: the job's (slurmd's SLURM_CLUSTER_NAME, slurm.conf's ClusterName). */
int vd_slurmdb_job_comment(const char *cluster, unsigned job, const char *node, const char *record,
                           int wait_s, vd_err *err);

/* Calls fn for each run (a requeued job's too) that slurmdbd has of this
 * cluster's jobs (slurmctld's ClusterName) that ran in [since, until)
 * (epoch seconds; 0: open), ended or not, as vd_acct_job: its records from its AdminComment, its
 * GPUs from its TRES (gres/gpu; 0 without, -1 when slurmdbd counts no
 * gres/gpu: AccountingStorageTRES lacks it). Stops at the first fn that
 * does not return 0 and returns that. */
typedef int (*vd_slurmdb_job_fn)(const vd_acct_job *j, void *arg, vd_err *err);
int vd_slurmdb_jobs_each(long long since, long long until, vd_slurmdb_job_fn fn, void *arg, vd_err *err);

#endif
