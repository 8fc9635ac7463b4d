/* SPDX-License-Identifier: MIT */
/*
 * child.h - running a step that may hang (a sysfs write stuck in a driver,
 * a call into the NVIDIA driver's library) in a child process, with a
 * timeout, so that it is never the prolog that hangs.
 */
#ifndef VDESK_CHILD_H
#define VDESK_CHILD_H

#include "err.h"

/* What the child runs: returns 0, or -1 with the cause in `err` (which
 * travels back to the parent through a pipe). */
typedef int (*vd_child_fn)(void *arg, vd_err *err);

/* Runs fn(arg) in a child and waits up to timeout_ms for it. Returns fn's
 * result with its message in err; a child that does not answer in time is
 * sent SIGKILL and left behind (one stuck in the kernel cannot die), and
 * err says "hung for N ms". */
int vd_child_run(vd_child_fn fn, void *arg, int timeout_ms, vd_err *err);

#endif
