/* SPDX-License-Identifier: MIT */
/*
 * common.h - what vdesk-prolog and vdesk-epilog share: reading slurmd's
 * environment, loading the configuration, and telling Slurm and the
 * node's log what happened.
 */
#ifndef VDESK_PROLOG_COMMON_H
#define VDESK_PROLOG_COMMON_H

#include "conf.h"
#include "engine.h"

/* `PROG --version` prints the version and returns 1 (the caller exits 0);
 * slurmd gives no arguments, and any other is refused (returns -1). */
int node_args(int argc, char **argv, const char *prog);

/* SLURM_JOB_ID as a number, 0 if absent or malformed. */
unsigned job_id(void);

/* Loads vdesk.conf for this node. Returns VD_CONF_NO_DESKTOP, after a
 * debug line, when the file has no section for this node: the program
 * then has nothing to do. On failure the node is drained with a reason
 * that names the file and line, and the error is logged. */
int node_conf_load(vd_conf *conf, const char *prog);

/* Releases the jobs in the journal that Slurm no longer runs here
 * (vd_jobs_reconcile), but `job`; `note` says which, for the record
 * ("" if none). Call it before the operation, and give the operation what
 * is left of the budget (node_budget_left). */
void node_reconcile(const vd_conf *conf, unsigned job, char *note, size_t size);

/* Writes the record: syslog, records.jsonl and, for an eviction, the job's
 * AdminComment (slurmctld refuses updates of finished jobs), for a restore
 * slurmdbd's copy of the job (node_slurmdb_later) and the accounting
 * store's spool (node_acct_drop); then drains the node if
 * the report asks for it. Returns -1 if the drain was needed but could not
 * be set (the caller then fails, so Slurm drains). */
int node_report(const vd_conf *conf, const vd_report *rep, const char *prog, int log_to_stderr);

/* Sends job's record `line` to the accounting store's spool when this node
 * sees it (vd_acct_drop); what fails is logged, never fatal: the record
 * stays in records.jsonl. */
void node_acct_drop(const vd_conf *conf, unsigned job, const char *line);

/* Sends job's record `rec` ("restore save: ...") to the AdminComment
 * slurmdbd keeps of the job, when slurm.conf has slurmdbd, in a detached
 * process (vd_child_detach): it waits for slurmdbd to learn of the job's
 * end. What fails is logged: the record stays in records.jsonl. */
void node_slurmdb_later(const vd_conf *conf, unsigned job, const char *rec);

/* openlog(3) for PROG: syslog when the node has /dev/log, else stderr
 * (slurmd's log). Returns 1 in the second case. */
int node_openlog(const char *prog);

/* What is left of a budget of budget_s seconds (0: none) after what
 * was spent since since_ms (vd_now_ms): at least 1 s. */
int node_budget_left(int budget_s, long long since_ms);

/* The desktop's state into the node's Comment (vd_desktop_describe). */
void node_comment(const vd_conf *conf);

/* Slurm's PrologEpilogTimeout (0: none, or slurmctld cannot say): the
 * budget of this program's operation (engine.h, "Budgets"). */
int node_budget(void);

#endif
