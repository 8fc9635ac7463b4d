/* SPDX-License-Identifier: MIT */
/*
 * topo.h - the node's cores, through hwloc: which cores are local to the
 * job's devices, and which whole cores the desktop may keep while a job
 * runs (farthest from the devices, SMT siblings together).
 *
 * CPU lists come in two numberings: the OS's (what /sys, libvirt's pinning
 * and vdesk.conf's desktop_cores use) and hwloc's logical order, which is
 * Slurm's abstract numbering (CpuSpecList, gres.conf Cores=).
 */
#ifndef VDESK_TOPO_H
#define VDESK_TOPO_H

#include <stddef.h>

#include "err.h"

typedef struct vd_topo vd_topo;

/* NULL: this machine; "synthetic:pack:2 core:8 pu:2": hwloc's synthetic
 * description; anything else: an hwloc XML file. */
int vd_topo_open(const char *source, vd_topo **out, vd_err *err);
void vd_topo_close(vd_topo *t);

/* How many cores and PUs the node has. */
void vd_topo_size(const vd_topo *t, int *cores, int *pus);

/* The CPUs local to PCI device `bdf` as the topology knows them (its
 * nearest non-I/O ancestor), OS numbering. Returns 1 if the topology has no
 * such device (a synthetic one has none: use sysfs's local_cpulist). */
int vd_topo_pci_cpus(const vd_topo *t, const char *bdf, char *out, size_t size, vd_err *err);

/* The logical indexes of the cores that have a PU in `os_cpulist`
 * ("0-15,32-47"), as a list ("0-7"), for gres.conf's Cores=. */
int vd_topo_cores_of(const vd_topo *t, const char *os_cpulist, char *out, size_t size, vd_err *err);

/* Splits the node: `ncores` whole cores for the desktop, chosen farthest
 * from the devices whose local CPUs are `dev_cpulists` (OS numbering):
 * first cores of packages without a device, then cores not local to a
 * device, highest first. desk_os: the desktop's PUs (OS numbering, for
 * desktop_cores); desk_slurm: the same PUs in Slurm's abstract numbering
 * (for CpuSpecList); job_os: everything else. At least one core stays with
 * the jobs. */
int vd_topo_split(const vd_topo *t, const char *const *dev_cpulists, int ndev, int ncores,
                  char *desk_os, char *desk_slurm, char *job_os, size_t size, vd_err *err);

/* Whether `os_cpulist` (OS numbering) is made of whole cores: each core
 * has all of its PUs in the list or none, and every CPU of the list exists.
 * Returns 0, or -1 naming the first core that is split (its CPUs and those
 * the list has) or the CPUs the node lacks. */
int vd_topo_whole_cores(const vd_topo *t, const char *os_cpulist, vd_err *err);

#endif
