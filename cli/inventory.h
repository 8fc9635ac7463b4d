/* SPDX-License-Identifier: MIT */
/* inventory.h - `vdeskctl inventory`: the node's GPUs, HCAs, VFs, IOMMU
 * groups, drivers and locality, for people, for scripts, and for Slurm. */
#ifndef VDESK_CLI_INVENTORY_H
#define VDESK_CLI_INVENTORY_H

#include "glue2.h"

typedef struct inv_opts {
    const char *sys, *dev;  /* sysfs and /dev roots */
    const char *proc;       /* where the NVIDIA driver lists its GPUs ("/proc") */
    const char *topology;   /* NULL: this machine (vd_topo_open) */
    int json, slurm;
    int desktop_cores;      /* cores to suggest for the desktop (--slurm) */
    const char *gpu_vendors; /* vdesk.conf's gpu_vendors, NULL: NVIDIA only */
    int glue2;              /* --glue2: GLUE 2.1 entities (glue2.h) */
    glue2_opts g;
} inv_opts;

int cmd_inventory(const inv_opts *o);

#endif
