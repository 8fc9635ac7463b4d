/* SPDX-License-Identifier: MIT */
/*
 * policy.h - which modes an eviction tries, in what order, and how long
 * each step may take: pure functions of vdesk.conf and the job's request,
 * unit-tested on their own (tests/unit/test_policy.c). The engine applies
 * them; it decides nothing of this itself.
 */
#ifndef VDESK_POLICY_H
#define VDESK_POLICY_H

#include "conf.h"
#include "hv.h"
#include "mode.h"

/* The modes to try, in order, into chain[VD_MODE_COUNT]: the one asked
 * (auto: none), then the policy chain of vdesk.conf without repeats.
 * Returns how many. */
int vd_policy_chain(const vd_conf *c, vd_mode asked, vd_mode *chain);

/* How far a mode takes the desktop from the job: a mode ranks at least as
 * high as another when it frees all the other frees (shrink 1, suspend 2,
 * save, shutdown and migrate 3; auto 0). */
int vd_policy_rank(vd_mode m);

/* A second job on a node whose desktop is away (`used`) asks for `asked`:
 * the modes that take it further, into chain[VD_MODE_COUNT], returning
 * how many (0: it is far enough, or nothing frees more). Every mode ranks
 * at least as high as both (or 3 when `cut`: an escalation that was
 * interrupted was going there); a paused desktop only goes further by a
 * mode that stops it; a shrunk one first gives up more GPUs if the job
 * asked no more than shrink. `force` (the job was given GPUs the desktop
 * still holds) escalates even when `asked` ranks no higher. */
int vd_policy_escalation(const vd_conf *c, vd_mode used, vd_mode asked, int cut, int force,
                         vd_mode *chain);

/* A step's timeout in ms: `configured_s`, or the job's `job_s` when it is
 * shorter (never below the site's `floor_s`; 0: the job asked nothing). A
 * job may shorten a step, never lengthen it. */
int vd_policy_timeout_ms(int configured_s, int floor_s, int job_s);

/* Whether GPU `gres_index` is among the job's GPUs (SLURM_JOB_GPUS, "0,2"):
 * a job without the list takes every GPU, and so does a GPU whose index
 * cannot be known (-1): when unsure, free it. */
int vd_policy_job_gpu(int gres_index, const char *job_gpus);

/* The migration's deadline in seconds: timeout_migrate per GiB of the
 * desktop's RAM (KiB), rounded up, at least 10. */
long long vd_policy_migrate_s(int timeout_migrate, unsigned long long kib);

/* What a mode needs of the hypervisor's driver (VD_CAN_*, hv.h): the
 * engine refuses a mode whose driver lacks any of it, by that reason, and
 * the chain moves on. Unplugging devices (save, migrate, shrink with the
 * job's GPUs) needs hotplug only when a device is there to unplug: the
 * engine asks that of each device. */
unsigned vd_policy_mode_needs(vd_mode m);

#endif
