/* SPDX-License-Identifier: MIT */
/*
 * ib.h - the node's RDMA devices through libibverbs: names, ports, state,
 * link layer, GUIDs, and the PCI function behind each (from sysfs), so that
 * an HCA's PF and its VFs can be told apart.
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
    char pci[13];         /* its PCI function, "" if unknown */
    uint64_t node_guid;   /* host order */
    char fw[64];
    vd_ib_port ports[VD_IB_MAX_PORTS];
    int nports;
} vd_ib_dev;

/* Lists the RDMA devices. No device is not an error (*n = 0); verbs that
 * cannot be used at all (no rdma-core provider, ENOSYS) set *unavailable
 * to 1 and are not an error either: the node simply has no verbs. */
int vd_ib_list(const char *sys, vd_ib_dev **out, int *n, int *unavailable, vd_err *err);

#endif
