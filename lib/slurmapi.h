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

/* A node's GPUs as Slurm offers them: how many (its Gres=gpu...), and
 * which gres indices jobs hold now. */
typedef struct vd_slurm_gpus {
    int configured;
    unsigned long long used;   /* bit i: gres index i is allocated */
} vd_slurm_gpus;

/* Parses slurmctld's node strings, `gres` ("gpu:a100:4(S:0-1),mps:400")
 * and `gres_used` ("gpu:a100:2(IDX:0,2-3),mps:0"); NULL is none. */
void vd_slurm_gpus_parse(const char *gres, const char *gres_used, vd_slurm_gpus *g);

/* Asks slurmctld for `node`'s GPUs. */
int vd_slurm_node_gpus(const char *node, vd_slurm_gpus *g, vd_err *err);

#endif
