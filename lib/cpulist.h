/* SPDX-License-Identifier: MIT */
/*
 * cpulist.h - CPU lists as Linux writes them ("0-3,8,10-11"): checked
 * strictly where they come from an admin (vdesk.conf's desktop_cores), and
 * turned into the CPU bitmaps libvirt pins with.
 */
#ifndef VDESK_CPULIST_H
#define VDESK_CPULIST_H

#include <stddef.h>

#include "err.h"

/* A list names CPUs below this: a bigger number is a typo, and hwloc would
 * allocate a bitmap up to it. */
#define VD_MAX_CPUS 4096

/* 0 if `list` is decimal CPU numbers below VD_MAX_CPUS and ranges LO-HI
 * with LO <= HI, separated by commas (no blanks, signs, 0x or leading
 * zeros); else -1 with what is wrong in `why`. hwloc and strtol would
 * take much that is not meant. */
int vd_cpulist_check(const char *list, char *why, size_t whylen);

/* The bitmap of `list` (NULL: all `ncpus` CPUs), one bit per CPU, lowest
 * bit of the first byte for CPU 0: libvirt's cpumap, *maplen bytes for
 * `ncpus` CPUs (caller frees *map). A CPU at or above ncpus is an error
 * that names it: the host does not have it. */
int vd_cpulist_map(const char *list, int ncpus, unsigned char **map, int *maplen, vd_err *err);

#endif
