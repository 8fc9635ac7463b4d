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

#endif
