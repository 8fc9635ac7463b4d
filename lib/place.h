/* SPDX-License-Identifier: MIT */
/*
 * place.h - where a migrating desktop goes: the target rule, pure.
 *
 * The prolog asks Slurm which nodes are idle (slurmapi.h,
 * vd_slurm_idle_nodes), the engine asks each one's libvirt daemon how much
 * room it has, and this file decides, so that the rule is one function,
 * unit-tested and benchmarked without a cluster (docs/design.md,
 * "Migration").
 */
#ifndef VDESK_PLACE_H
#define VDESK_PLACE_H

/* One node that could take the desktop, as its libvirt daemon answered. */
typedef struct vd_place_cand {
    unsigned long long free_kib;  /* the host's free memory */
    int slots_free;               /* desktop_slots less the VMs it runs */
    int order;                    /* its place among vdesk.conf's node sections */
} vd_place_cand;

/* A target must keep this much memory free beyond the desktop's own: QEMU's
 * overhead and the host's page cache (a tenth of the desktop, at least). */
#define VD_PLACE_MARGIN_KIB (256ULL * 1024)

/* The index in c[0..n) of the node to migrate a desktop of need_kib to,
 * or -1 when none has room. Room: a free slot, and free memory of at
 * least need_kib plus a tenth of it plus VD_PLACE_MARGIN_KIB. Of the nodes
 * with room the one with the most free memory wins, then the lower order
 * (vdesk.conf's), then the lower index: the same inputs always give the
 * same target. */
int vd_place_pick(const vd_place_cand *c, int n, unsigned long long need_kib);

#endif
