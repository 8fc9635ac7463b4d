/* SPDX-License-Identifier: MIT */
/*
 * comment.h - the desktop's state in the node's Comment in Slurm, where
 * `scontrol show node` and `sinfo -O Comment` show it to admins.
 */
#ifndef VDESK_COMMENT_H
#define VDESK_COMMENT_H

#include "conf.h"
#include "err.h"

/* Writes vd_desktop_describe's words as the node's "vdesk[NODE] ..." part
 * of its Comment (vd_slurm_node_comment). Called after an operation has
 * released the node's lock, so two operations in a row could write in the
 * wrong order: the state is read again after the write and written once
 * more if it changed meanwhile. */
int vd_desktop_comment(const vd_conf *conf, vd_err *err);

/* vd_desktop_comment in a detached process, so that neither a job nor an
 * admin waits for slurmctld (two RPCs, tens of ms) to show a state that
 * the journal already holds. The writers of one node take turns (a lock
 * in state_dir, waited for 30 s at most) and each describes the desktop as
 * it is when its turn comes, so the last one writes the latest state. The
 * process holds no descriptor of the caller's (slurmd reads the prolog's
 * output to its end) and reports its failures to syslog only. 0 once it
 * is started; -1 (err says why) when it could not be. The process is a
 * fork without exec: call it when no thread of the caller's can be inside
 * libslurm or syslog (a watchdog left behind on a hung libvirt daemon is
 * inside libvirt only). */
int vd_desktop_comment_later(const vd_conf *conf, vd_err *err);

#endif
