/* SPDX-License-Identifier: MIT */
/*
 * conf.h - vdesk.conf, the node side's one configuration file.
 *
 * INI (parsed by libinih), strict: an unknown section or key, a repeated
 * key, or a bad value is an error that names the file, the line, the key
 * and what is allowed. Every [node NAME] section is checked, not only the
 * calling node's, so `vdeskctl check-config` finds a mistake for any node.
 *
 *   [vdesk]                         ; site-wide, all optional
 *   state_dir = /var/lib/vdesk      ; journal, lock, records (%n: node name)
 *   snapshot_dir = /var/lib/vdesk/snapshots
 *   snapshots_keep = 3
 *   policy = migrate,save,shutdown  ; what --vdesk=auto tries, in order
 *   timeout_unplug = 30             ; seconds, per step
 *   timeout_save = 600
 *   timeout_shutdown = 120
 *   timeout_restore = 600
 *   sysfs_root = /sys               ; where PCI devices are (tests: the emulator)
 *   dev_root = /dev
 *   proc_root = /proc               ; where the NVIDIA driver lists its GPUs
 *   nvidia_persistence = refuse     ; or manage (nvidia.h)
 *
 *   [node n1]                       ; one per node (SLURMD_NODENAME)
 *   uri = qemu:///system
 *   domain = desk-n1
 *   desktop_cores = 0-1             ; where the desktop may run during a job
 *   device = gpu ua-gpu0 0000:65:00.0   ; ROLE ALIAS [PCI], repeatable
 */
#ifndef VDESK_CONF_H
#define VDESK_CONF_H

#include <limits.h>
#include <stddef.h>

#include "err.h"
#include "mode.h"
#include "nvidia.h"

#define VD_CONF_DEFAULT "/etc/vdesk/vdesk.conf"
#define VD_MAX_DEVICES 16
#define VD_MAX_POLICY 4

typedef enum vd_role { VD_ROLE_GPU, VD_ROLE_IB, VD_ROLE_OTHER } vd_role;

typedef struct vd_device {
    vd_role role;
    char alias[64]; /* libvirt user alias of the device in the desktop VM */
    char pci[16];   /* host PCI address, "" for a device without one */
} vd_device;

typedef struct vd_conf {
    char path[PATH_MAX];
    char node[64];
    /* [vdesk] */
    char state_dir[PATH_MAX];
    char snapshot_dir[PATH_MAX];
    int snapshots_keep;
    vd_mode policy[VD_MAX_POLICY];
    int npolicy;
    int timeout_unplug, timeout_save, timeout_shutdown, timeout_restore;
    char sysfs_root[PATH_MAX];
    char dev_root[PATH_MAX];
    char proc_root[PATH_MAX];
    vd_persistence nvidia_persistence;
    /* [node NAME] of this node */
    char uri[256];
    char domain[128];
    char desktop_cores[128]; /* cpulist, "" if not set */
    vd_device devices[VD_MAX_DEVICES];
    int ndevices;
} vd_conf;

/* The node vdesk acts for: $SLURMD_NODENAME (slurmd sets it for Prolog and
 * Epilog programs, and several slurmd may share a host), else the short
 * hostname. Returns buf. */
const char *vd_node_name(char *buf, size_t size);

/* The file to read: $VDESK_CONF, else VD_CONF_DEFAULT. */
const char *vd_conf_path(void);

/* Fills `conf` with the defaults of every [vdesk] key and no node. */
void vd_conf_defaults(vd_conf *conf);

/* Loads `path` and the section of `node`. node == NULL checks the whole
 * file without selecting a node. A node without a section is an error
 * that lists the nodes the file has. */
int vd_conf_load(const char *path, const char *node, vd_conf *conf, vd_err *err);

const char *vd_role_name(vd_role role);

#endif
