/* SPDX-License-Identifier: MIT */
/* glue2.h - `vdeskctl inventory --glue2`: the node's GPUs as GLUE 2.1
 * entities (JSON) for information discovery, with the share of them the
 * desktop and jobs used (glue2.c says how each figure is made). */
#ifndef VDESK_CLI_GLUE2_H
#define VDESK_CLI_GLUE2_H

#include "conf.h"
#include "pci.h"
#include "topo.h"

#define GLUE2_DEFAULT_DAYS 30   /* the shares' period when none is given: up to now */

typedef struct glue2_opts {
    const vd_conf *conf;        /* the desktop's devices, the accounting database */
    const char *node;           /* this node, as Slurm names it */
    long long since, until;     /* the shares' period (epoch s), since < until */
} glue2_opts;

/* Prints the entities of the scanned devices (all, n) on topology t.
 * Returns 0, or 1 when the accounting database cannot be read (the
 * message names it and nothing is printed). */
int inventory_glue2(const glue2_opts *o, const vd_pci *p, const vd_pci_info *all, int n, const vd_topo *t);

#endif
