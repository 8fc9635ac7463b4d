/* SPDX-License-Identifier: MIT */
/*
 * slurmapi.h - what the node side tells Slurm, through libslurm.
 *
 * Both calls go to slurmctld and need SLURM_CONF (slurmd passes it to
 * Prolog/Epilog programs) and root, or SlurmUser.
 */
#ifndef VDESK_SLURMAPI_H
#define VDESK_SLURMAPI_H

#include "err.h"

/* Sets the job's AdminComment, which `scontrol show job` shows. */
int vd_slurm_job_comment(unsigned job, const char *text, vd_err *err);

/* Drains `node` with `reason` (which starts with "vdesk: " and says what
 * to run). Jobs already running on it go on. */
int vd_slurm_node_drain(const char *node, const char *reason, vd_err *err);

#endif
