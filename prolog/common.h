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

/* SLURM_JOB_ID as a number, 0 if absent or malformed. */
unsigned job_id(void);

/* Loads vdesk.conf for this node. On failure the node is drained with a
 * reason that names the file and line, and the error is logged. */
int node_conf_load(vd_conf *conf, const char *prog);

/* Writes the record: syslog, records.jsonl and, for an eviction, the job's
 * AdminComment (slurmctld refuses updates of finished jobs); then
 * drains the node if the report asks for it. Returns -1 if the drain was
 * needed but could not be set (the caller then fails, so Slurm drains). */
int node_report(const vd_conf *conf, const vd_report *rep, const char *prog);

/* Slurm's PrologEpilogTimeout (0: none, or slurmctld cannot say): the
 * budget of this program's operation (engine.h, "Budgets"). */
int node_budget(void);

#endif
