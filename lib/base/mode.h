/* SPDX-License-Identifier: MIT */
/*
 * mode.h - what vdesk does with the desktop VM while a job runs.
 *
 * The one table of modes, shared by the SPANK plugin (submit-time checks)
 * and the node side. lib/base: libc only; the plugin links it.
 */
#ifndef VDESK_MODE_H
#define VDESK_MODE_H

#include "err.h"

typedef enum vd_mode {
    VD_MODE_SUSPEND = 0, /* pause in place: frees CPU only */
    VD_MODE_SAVE,        /* unplug devices, RAM to disk, stop: frees everything */
    VD_MODE_MIGRATE,     /* unplug devices, live-migrate to an idle node */
    VD_MODE_SHUTDOWN,    /* clean guest shutdown; the disk keeps the state */
    VD_MODE_SHRINK,      /* keep running on the desktop cores, without the job's GPUs */
    VD_MODE_AUTO,        /* the admin's policy chain */
    VD_MODE_COUNT
} vd_mode;

/* A set of modes, one bit per vd_mode. */
typedef unsigned vd_mode_set;
#define VD_MODE_SET_ALL ((1u << VD_MODE_COUNT) - 1)
#define VD_MODE_BIT(m) (1u << (m))

/* "suspend", "save", ... */
const char *vd_mode_name(vd_mode mode);

/* One-line description, for --help and messages. */
const char *vd_mode_help(vd_mode mode);

/* Parses a mode name (exact, lower case). On error the message names the
 * value and lists the allowed ones. */
int vd_mode_parse(const char *s, vd_mode *mode, vd_err *err);

/* Parses "save,suspend,auto" (no empty items, no duplicates). */
int vd_mode_set_parse(const char *s, vd_mode_set *set, vd_err *err);

/* Writes "suspend, save, auto" (the modes in `set`, table order) into buf;
 * if buf is too small, as many whole names as fit. */
void vd_mode_set_format(vd_mode_set set, char *buf, unsigned size);

#endif
