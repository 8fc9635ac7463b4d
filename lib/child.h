/* SPDX-License-Identifier: MIT */
/*
 * child.h - running a step that may hang (a sysfs write stuck in a driver,
 * a call into the NVIDIA driver's library) in a child process, with a
 * timeout, so that it is never the prolog that hangs.
 */
#ifndef VDESK_CHILD_H
#define VDESK_CHILD_H

#include <stddef.h>

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

/* Runs fn(arg) in a detached process, for work that must not hold up the
 * caller (slurmd waits for the prolog's output to end, and a slow
 * slurmctld or slurmdbd must not stretch it): a session of its own and a
 * second fork, so that nothing waits for it and slurmd's kill of the
 * prolog's process group misses it; only /dev/null as descriptors (slurmd
 * reads the prolog's output to its end); ended by SIGALRM after limit_s.
 * What fails, and a run that the limit (or anything else) killed, goes to
 * syslog, after `what`. Returns 0 once it is started,
 * -1 (err names `what`) when it could not be. It is a fork without exec:
 * call it when no thread of the caller's can be inside libslurm or syslog
 * (a watchdog left behind on a hung libvirt daemon is inside libvirt
 * only). */
int vd_child_detach(vd_child_fn fn, void *arg, int limit_s, const char *what, vd_err *err);

/* Runs the program `argv[0]` (an absolute path, or a name found on PATH;
 * no shell) with `argv`, stdin from /dev/null, its stdout and stderr
 * together into `out` (at most size - 1 bytes kept, NUL-terminated, may be
 * NULL), and waits up to timeout_ms for it, through vd_child_run: a program
 * that runs over is killed with the child that waits for it. Returns 0 when
 * it exits with status 0; else -1, err naming the program and how it ended
 * (exit status N, a signal, hung, not found). */
int vd_child_exec(char *const argv[], int timeout_ms, char *out, size_t size, vd_err *err);

/* Whether program `name` is installed: its path on PATH (or `name` itself
 * if it holds a '/') into buf; 0 found, -1 not (no message). */
int vd_child_which(const char *name, char *buf, size_t size);

#endif
