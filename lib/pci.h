/* SPDX-License-Identifier: MIT */
/*
 * pci.h - moving passthrough devices between their host drivers and
 * vfio-pci, the way the kernel and libvirt do it, one whole IOMMU group at a
 * time (a GPU's audio, USB and UCSI functions go with it).
 *
 * To vfio-pci, for each member of the group not already there (bridges
 * excepted): write "vfio-pci" to driver_override, BDF to the current
 * driver's unbind, BDF to drivers_probe, check the driver link; then check
 * that /dev/vfio/GROUP exists. Back: clear driver_override, unbind from
 * vfio-pci, drivers_probe, check that each member is on the driver it had.
 * A failure part way puts each member it touched back exactly as it was:
 * on the driver it had (by name: the kernel's pick need not be it; or on
 * none), with the driver_override it had. A member already on vfio-pci is
 * not touched.
 *
 * Before a function leaves its driver, the processes holding its device
 * node (/dev/nvidiaN on nvidia, /dev/vfio/GROUP on vfio-pci) are looked
 * up: both drivers wait in unbind until the node is closed, so a holder
 * would hang the step. A holder is found by what it has open, not by the
 * path it opened: the same device number (a container's own node for the
 * device, or /dev bind-mounted elsewhere, counts), or for a node that is
 * no device file (the tests' emulator), the same file. Held means refused,
 * naming the holders; except that with VD_PERSIST_MANAGE,
 * nvidia-persistenced is asked (through NVML) to let go of the GPU, and
 * persistence goes back on when the GPU returns to nvidia.
 *
 * Every write runs in a child process with a timeout: an unbind stuck in a
 * driver cannot be killed, so it must not be the caller that hangs. Every
 * error names the device, the step and the cause.
 *
 * The sysfs and /dev roots are parameters, so that tests point them at the
 * emulator (tests/sysfs).
 */
#ifndef VDESK_PCI_H
#define VDESK_PCI_H

#include <stddef.h>

#include "err.h"
#include "nvidia.h"

#define VD_PCI_GROUP_MAX 16

typedef struct vd_pci {
    const char *sys;   /* "/sys" */
    const char *dev;   /* "/dev" */
    const char *proc;  /* "/proc": where the NVIDIA driver lists its GPUs; NULL: "/proc" */
    int timeout_ms;    /* per sysfs write, and per NVML call */
    vd_persistence persistence;
    /* The PCI vendors whose display devices are gres GPUs, as the site's
     * Slurm counts them: hex ids separated by commas or blanks ("0x10de,
     * 0x1002"), in place of the default. NULL or "": NVIDIA (0x10de) only,
     * which is what Slurm's NVML autodetection finds; so a BMC's VGA
     * (ASPEED 0x1a03, Matrox 0x102b) is none. The config key that sets it
     * is vdesk.conf's; vd_pci_gpu_vendors_check validates a value. */
    const char *gpu_vendors;
} vd_pci;

typedef struct vd_pci_fn {
    char bdf[13];
    char driver[64];   /* "" when no driver is bound */
    char override[64]; /* its driver_override, "" when none */
    unsigned klass;
} vd_pci_fn;

typedef struct vd_pci_group {
    int id;
    vd_pci_fn fns[VD_PCI_GROUP_MAX];
    int n;
} vd_pci_group;

/* The driver bound to `bdf` ("" when none) into out. */
void vd_pci_driver(const vd_pci *p, const char *bdf, char *out, size_t size);

/* One PCI function as sysfs shows it. */
typedef struct vd_pci_info {
    char bdf[13];
    unsigned vendor, device, klass;
    char driver[64];
    int group;             /* -1: no IOMMU group */
    int numa;
    char cpulist[128];     /* local_cpulist, OS numbering */
    char physfn[13];       /* the PF of a VF, "" otherwise */
    int totalvfs, numvfs;
} vd_pci_info;

/* One PCI function `bdf` as sysfs shows it (missing attributes: 0, -1 or ""). */
void vd_pci_info_read(const vd_pci *p, const char *bdf, vd_pci_info *d);

/* Every PCI function under p->sys, in address order (malloc'd array). */
int vd_pci_scan(const vd_pci *p, vd_pci_info **out, int *n, vd_err *err);

/* Whether `d` is a gres GPU: display class, of a vendor in p->gpu_vendors,
 * not a VF. */
int vd_pci_is_gpu(const vd_pci *p, const vd_pci_info *d);

/* Whether `list` is a valid gpu_vendors value (see vd_pci); err names the
 * bad entry. */
int vd_pci_gpu_vendors_check(const char *list, vd_err *err);

/* The node's GPUs (vd_pci_is_gpu), in address order: the order of their
 * gres indices. Fails when p->gpu_vendors is not valid. */
#define VD_PCI_GPUS_MAX 64
typedef struct vd_pci_gpu_list {
    char bdf[VD_PCI_GPUS_MAX][13];
    int n;
} vd_pci_gpu_list;

int vd_pci_gpus(const vd_pci *p, vd_pci_gpu_list *l, vd_err *err);

/* The place of `bdf` in the list, or -1. */
int vd_pci_gpu_list_index(const vd_pci_gpu_list *l, const char *bdf);

/* The place of GPU `bdf` among the node's GPUs in address order, from 0:
 * the index gres.conf gives it when it lists them in that order (as
 * `vdeskctl inventory --slurm` does). Returns -1 (with err) when `bdf` is
 * not a GPU of the node. */
int vd_pci_gpu_index(const vd_pci *p, const char *bdf, vd_err *err);

/* The IOMMU group of `bdf`, with each member's current driver. */
int vd_pci_group_read(const vd_pci *p, const char *bdf, vd_pci_group *g, vd_err *err);

/* Who holds some device nodes open, found by scanning /proc/PID/fd. */
typedef struct vd_pci_holders {
    char list[512];      /* "PID (COMM), ..."; "" if none */
    int count;
    int persistenced;    /* how many of them are nvidia-persistenced */
} vd_pci_holders;

/* Processes holding any of `devnodes` (names under p->dev: "nvidia0",
 * "vfio/12"), by whatever path they opened it; a node that does not exist
 * has no holder. */
int vd_pci_holders_find(const vd_pci *p, const char *const *devnodes, int n, vd_pci_holders *h,
                        vd_err *err);

/* Moves the group of `bdf` to vfio-pci; `before` receives the group as it
 * was (to give to vd_pci_to_host). */
int vd_pci_to_vfio(const vd_pci *p, const char *bdf, vd_pci_group *before, vd_err *err);

/* Gives the group back to the host: to the drivers recorded in `before`,
 * or, for members recorded on vfio-pci (the desktop VM held them), to
 * whichever host driver the kernel probes once the override is cleared. */
int vd_pci_to_host(const vd_pci *p, const vd_pci_group *before, vd_err *err);

#endif
