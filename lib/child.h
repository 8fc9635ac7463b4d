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
 * result with its message in err. The child keeps only stdin, stdout and
 * stderr of the caller's descriptors: one stuck in the kernel keeps what it
 * has open, and the caller's may include a lock. A child that does not
 * answer in time is sent SIGKILL and reaped, or, when it is stuck in the
 * kernel and cannot die, left behind; err then begins "hung for N ms" and
 * names the process left behind. One that ends without answering is
 * reaped, and err says how it ended. */
int vd_child_run(vd_child_fn fn, void *arg, int timeout_ms, vd_err *err);

#endif
