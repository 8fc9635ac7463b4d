/* SPDX-License-Identifier: MIT */
/*
 * ib.h - the node's RDMA devices: names, ports, state, link layer, GUIDs,
 * the PCI function behind each, and which are SR-IOV VFs of which PF.
 *
 * libibverbs is asked first. Devices the kernel has (sysfs's
 * class/infiniband) that verbs cannot see, because rdma-core or its
 * provider is missing, are still listed, from sysfs, marked verbs = 0: an
 * admin then learns what to install instead of reading "no devices". The
 * PF/VF relation always comes from sysfs (physfn, sriov_*).
 */
#ifndef VDESK_IB_H
#define VDESK_IB_H

#include <stdint.h>

#include "err.h"

#define VD_IB_MAX_PORTS 4

typedef struct vd_ib_port {
    int num;
    char state[16];       /* ACTIVE, DOWN, ... (ibv_port_state_str) */
    char link_layer[16];  /* InfiniBand, Ethernet */
    unsigned lid;
} vd_ib_port;

typedef struct vd_ib_dev {
    char name[64];        /* mlx5_0 */
    int verbs;            /* 1: seen and queried through libibverbs */
    char pci[13];         /* its PCI function, "" if unknown */
    char pf[64];          /* for a VF: the RDMA name of its PF ("" if not listed) */
    char pf_pci[13];      /* for a VF: its PF's PCI function; "" for a PF */
    int numvfs, totalvfs; /* for a PF with SR-IOV */
    uint64_t node_guid;   /* host order */
    char fw[64];
    vd_ib_port ports[VD_IB_MAX_PORTS];
    int nports;
} vd_ib_dev;

/* Lists the RDMA devices under `sys` ("/sys"), in name order. No device
 * is not an error (*n = 0); verbs that cannot be used at all (no rdma-core
 * provider, ENOSYS) set *unavailable to 1 and are not an error either. */
int vd_ib_list(const char *sys, vd_ib_dev **out, int *n, int *unavailable, vd_err *err);

#endif
