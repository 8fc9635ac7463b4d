/* SPDX-License-Identifier: MIT */
/*
 * engine.h - evict the desktop VM before a job, restore it after.
 *
 * The state machine lives in engine.c, top to bottom; docs/design.md
 * describes it with the journal format and the recovery rules. The engine
 * does not talk to Slurm: it fills a vd_report (record.h), and the caller
 * (prolog, epilog, vdeskctl) keeps the record and sets a drain reason from it.
 */
#ifndef VDESK_ENGINE_H
#define VDESK_ENGINE_H

#include "conf.h"
#include "err.h"
#include "mode.h"
#include "record.h"
#include "snap.h"

/* The longest an operation waits for another to release the node's lock
 * (less within a budget). */
#define VD_LOCK_WAIT_S 600

/* What the evicting job asks for. */
typedef struct vd_request {
    unsigned job;        /* 0: by hand (vdeskctl) */
    vd_mode mode;        /* VD_MODE_AUTO: the policy chain of vdesk.conf */
    int timeout_s;       /* 0: the configured step timeouts */
    const char *gpus;    /* SLURM_JOB_GPUS ("0,2"), NULL: every GPU (shrink) */
    int budget_s;        /* the whole operation's time, 0: unbounded (see below) */
    /* migrate: the nodes Slurm says are idle, carry migrate_feature and are
     * not the job's (vd_slurm_idle_nodes), any order; the engine asks each
     * one's libvirt for room and picks by vd_place_pick. */
    char **targets;
    int ntargets;
    /* Whether `node` may still take a visitor (Slurm: idle, with
     * `feature`): 1, 0, or -1 cannot say; NULL: not asked. Asked once the
     * desktop arrived, since a job may have taken the node meanwhile. */
    int (*target_idle)(const char *node, const char *feature);
} vd_request;

/* Budgets. Slurm kills a prolog or epilog that runs past its
 * PrologEpilogTimeout, wherever it is: with the VM half saved, say. Given
 * that time as budget_s, the engine keeps a margin (a tenth, at least 5 s)
 * and fits into the rest the wait for the node's lock (a third at most),
 * every step's timeout, and the modes of the chain: it tries no further
 * mode once only a third is left, which is kept for putting the desktop
 * back. So vdesk, not Slurm's kill, decides what happens at the deadline. */

/* Prolog: makes the desktop leave for job req->job, or records that it is
 * already away. Returns 0 when the job can have the node (rep->drain may
 * still ask an admin to look at something), -1 when it cannot: the desktop
 * could not be evicted and was put back as it was. */
int vd_evict(const vd_conf *conf, const vd_request *req, vd_report *rep, vd_err *err);

/* Epilog: job `job` is done; the last job out brings the desktop back.
 * A job that holds nothing (a second epilog) is a no-op. Returns -1 when
 * the desktop could not be brought back even from its snapshot; everything
 * is kept for an admin and rep->drain says what to do. */
int vd_restore(const vd_conf *conf, unsigned job, vd_report *rep, vd_err *err);

/* The same within budget_s seconds (0: unbounded), for the epilog. */
int vd_restore_within(const vd_conf *conf, unsigned job, int budget_s, vd_report *rep, vd_err *err);

/* vdeskctl restore --force / recover: finishes or rolls back an interrupted
 * operation, and with `force` also releases jobs that still hold the node. */
int vd_recover(const vd_conf *conf, int force, vd_report *rep, vd_err *err);

/* The boot unit's start (vdeskctl boot): finishes an operation a crash
 * interrupted, turns libvirt's autostart off for every desktop the node
 * offers, and starts the selected desktop (from its managed save if it has
 * one, else cold, its devices on vfio-pci first). A desktop that jobs keep
 * away (a reboot during a job) stays away for their epilogs; one away for
 * no job comes back. Run vd_jobs_reconcile first, so that jobs Slurm no
 * longer runs let go. Returns 0 (the desktop runs, or was off and is
 * started), 1 (it stays away for jobs), or -1. */
int vd_boot(const vd_conf *conf, vd_report *rep, vd_err *err);

/* vdeskctl select: the node boots desktop `name` (its domain or one of its
 * desktops) from now on, and runs it now: the current desktop's devices
 * come out, it is kept in libvirt's managed save, and `name` starts (from
 * its own managed save if it has one). Refused while the desktop is away;
 * if `name` does not start, the old one comes back and stays selected. */
int vd_select(const vd_conf *conf, const char *name, vd_report *rep, vd_err *err);

/* Recovery points by hand (docs/design.md, "Recovery snapshots"; snap.h).
 * `dom` NULL: the node's selected desktop; else one it offers. Each runs
 * under the node's lock, on the daemon that has the desktop now (a
 * migrated desktop at its peer), and refuses a desktop whose memory is in
 * a save file (saved for a job, or in a managed save): that memory belongs
 * to the disk as it is. */

/* vdeskctl snapshot: a recovery point now (`name` NULL: one is made). A
 * scheduled one (vdesk-snapshot.timer) then applies the retention. */
int vd_snapshot_take(const vd_conf *conf, const char *dom, vd_snap_origin origin, const char *name,
                     vd_report *rep, vd_err *err);

/* vdeskctl revert: the desktop's disk goes back to snapshot `name`; a
 * running desktop is stopped first (said in the outcome) and started
 * again. The state it had is kept as a snapshot until discarded. Refused
 * while the desktop is away or not home. */
int vd_snapshot_revert(const vd_conf *conf, const char *dom, const char *name, vd_report *rep, vd_err *err);

/* vdeskctl flatten: merges the running desktop's chain down to the newest
 * keep_n points (0: the retention of vdesk.conf), by live block commits. */
int vd_snapshot_flatten(const vd_conf *conf, const char *dom, int keep_n, vd_report *rep, vd_err *err);

/* vdeskctl discard: removes snapshot `name` (vd_snap_discard). */
int vd_snapshot_discard(const vd_conf *conf, const char *dom, const char *name, vd_report *rep, vd_err *err);

/* Whether job `job` still holds `node`: 1 yes, 0 no, -1 cannot say; the
 * job's state in words in `state` (slurmapi.h, vd_slurm_job_holds). */
typedef int (*vd_job_holds_fn)(unsigned job, const char *node, char *state, size_t size,
                               vd_err *err);

/* A job that no longer runs on the node cannot keep the desktop away: its
 * epilog failed (a broken vdesk.conf, say) or never ran. Asks `holds` about
 * each job the journal of a desktop that is away lists, but `except` (the
 * caller's own job) and 0 (an eviction by hand), and releases those it says
 * no longer hold the node; a job it cannot say about is kept (and the rest
 * are not asked about). Slurm is asked first without the node's lock, so a
 * slow slurmctld holds up no other operation; only when that finds a job to
 * release is the lock taken (waiting up to wait_s) and Slurm asked again,
 * on the journal as it is then. Returns the number released, their ids and
 * states in `released` ("12 (COMPLETED), 13 (unknown to Slurm)"), or -1.
 * A desktop then away for no job is brought back by the next epilog or
 * recover. */
int vd_jobs_reconcile(const vd_conf *conf, unsigned except, vd_job_holds_fn holds, int wait_s,
                      char *released, size_t size, vd_err *err);

/* The desktop's state in a few words, from its journal, for the node's
 * Comment in Slurm: "desktop desk-n1 here", "desktop desk-n1 saved for job
 * 12", "desktop desk-n1 on n3 for job 12" (migrated), "desktop desk-n1
 * evicting (interrupted? see vdeskctl status)". */
void vd_desktop_describe(const vd_conf *conf, char *buf, size_t size);

#endif
