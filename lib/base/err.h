/* SPDX-License-Identifier: MIT */
/*
 * err.h - how vdesk reports failures.
 *
 * lib/base: libc only; the SPANK plugin, which every srun loads, links it.
 *
 * Contract: every vdesk function that can fail takes a `vd_err *` as its last
 * argument and returns 0 on success or -1 on failure. On failure it has
 * written one human-readable line into the vd_err that names the object (VM,
 * device, file), the step that failed, the cause and, where there is one, the
 * fix. Callers pass the vd_err up unchanged or prefix it with their own
 * context (vd_err_prefix). `err` may be NULL when the caller does not care.
 */
#ifndef VDESK_ERR_H
#define VDESK_ERR_H

#include <stddef.h>

typedef struct vd_err {
    char msg[1024];
} vd_err;

/* Formats the message into err (if not NULL). Always returns -1 so that a
 * failing function can end with `return vd_err_set(err, ...);`. */
int vd_err_set(vd_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Puts "PREFIX: " in front of the message already in err. Returns -1. */
int vd_err_prefix(vd_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Clears err (if not NULL). */
void vd_err_clear(vd_err *err);

#endif
