/* SPDX-License-Identifier: MIT */
/*
 * conf.h - vdesk.conf, the node side's one configuration file.
 *
 * INI (parsed by libinih, each line read and checked by vdesk first),
 * strict: an unknown section or key, a repeated section or key, a node
 * section without uri or domain, a line that is neither a section header
 * nor KEY = VALUE, or a bad value is an error that names the file, the line,
 * the key and what is allowed. Every [node NAME] section is checked, not
 * only the calling node's, so `vdeskctl check-config` finds a mistake for
 * any node. A comment is a line starting with '#' or ';', or the rest of a
 * line from a blank followed by '#' or ';'. Numbers are plain decimal.
 *
 *   [vdesk]                         ; site-wide, all optional
 *   state_dir = /var/lib/vdesk      ; journal, lock, records (%n: node name)
 *   snapshot_dir = /var/lib/vdesk/snapshots
 *   snapshots_keep = 3              ; eviction and scheduled snapshots kept
 *   snapshots_keep_days = 0         ; ... and all younger than this (0: off)
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
 *   ; What the node accepts from a job's SPANK environment: a patched client
 *   ; can set any value there, so the node re-checks it. The first two
 *   ; mirror the plugin's allow= and max_timeout= in plugstack.conf.
 *   allow = suspend,save,migrate,shutdown,shrink,auto   ; modes a job may ask for
 *   max_timeout = 3600              ; highest --vdesk-timeout, 1..86400
 *   min_shutdown_grace = 30         ; least clean-shutdown time, whatever the job
 *   gpu_vendors = 0x10de            ; vendors whose display devices are gres GPUs
 *                                   ; asks; 0..timeout_shutdown (default: 30,
 *                                   ; or timeout_shutdown if that is lower)
 *   on_destroy = record             ; guest ignored the power button and was
 *                                   ; powered off: record it, or drain the node
 *
 *   ; Live migration (docs/design.md, "Migration"): where a desktop goes
 *   ; while a job has its node.
 *   migrate_feature = vdesk         ; Slurm node feature of nodes that take visitors
 *   migrate_downtime = 300          ; ms, the longest pause at the switch-over
 *   migrate_bandwidth = 0           ; MiB/s, 0: unlimited
 *   timeout_migrate = 60            ; seconds per GiB of the desktop's RAM
 *                                   ; (at least 10 s): then the migration is aborted
 *   migrate_unsafe = no             ; yes: migrate although libvirt cannot tell
 *                                   ; that the disks are shared (test beds)
 *
 *   ; Profiles (profile.h): where `vdeskctl profile` and `bootstrap` find
 *   ; PROFILE.profile files.
 *   profile_dir = SYSCONFDIR/vdesk/profiles
 *
 *   ; Accounting (acct.h): the SQLite database vdesk-jobcomp, which
 *   ; slurmctld runs at each job's end as SlurmUser, keeps finished jobs
 *   ; in (read on the controller's host; not expanded by %n). Its
 *   ; directory is SlurmUser's, not state_dir (root's alone).
 *   accounting_db = LOCALSTATEDIR/lib/vdesk-accounting/accounting.db
 *
 *   [node n1]                       ; one per node (SLURMD_NODENAME)
 *   uri = qemu:///system
 *   domain = desk-n1                ; letters, digits, - _ . (not first), <= 64
 *   desktops = proj-a, proj-b       ; other desktops the node may boot, one at a
 *                                   ; time (vdeskctl select; not migrated)
 *   desktop_cores = 0-1             ; decimal cpulist, CPUs < VD_MAX_CPUS
 *   device = gpu ua-gpu0 0000:65:00.0   ; ROLE ALIAS [PCI], repeatable;
 *                                   ; PCI as in sysfs: DDDD:BB:DD.F, lower case
 *   migrate_uri = qemu+tls://n1/system  ; how peers' libvirt daemons reach this
 *                                   ; node's ("": no desktop migrates to or from it)
 *   migrate_address = tcp://n1-ib   ; where QEMU sends memory to it ("": libvirt's choice)
 *   desktop_slots = 2               ; desktops it may run at once, its own included
 *
 * Every node section also goes into the peer table (vd_peer), so that a
 * node knows where the other nodes' libvirt daemons and desktops are.
 */
#ifndef VDESK_CONF_H
#define VDESK_CONF_H

#include <limits.h>
#include <stddef.h>

#include "cpulist.h"
#include "err.h"
#include "mode.h"
#include "nvidia.h"

/* SYSCONFDIR/vdesk/vdesk.conf of the install prefix (Makefile: /etc for
 * PREFIX=/usr, PREFIX/etc otherwise): slurmd starts Prolog and Epilog
 * programs with a clean environment, so the compiled-in path is the one
 * they read. */
#include "config.h"
#define VD_CONF_DEFAULT VD_SYSCONFDIR "/vdesk/vdesk.conf"
#define VD_MAX_DEVICES 16
#define VD_MAX_POLICY 4
#define VD_MAX_DESKTOPS 8

typedef enum vd_role { VD_ROLE_GPU, VD_ROLE_IB, VD_ROLE_OTHER } vd_role;

typedef struct vd_device {
    vd_role role;
    char alias[64]; /* libvirt user alias of the device in the desktop VM */
    char pci[16];   /* host PCI address, "" for a device without one */
} vd_device;

/* What a node knows about every node of the file, itself included. */
#define VD_MAX_NODES 256
typedef struct vd_peer {
    char name[64];
    char domain[128];          /* its home desktop */
    char migrate_uri[256];     /* "": takes no visitors, sends none away */
    char migrate_address[128];
    int desktop_slots;
} vd_peer;

typedef struct vd_conf {
    char path[PATH_MAX];
    char node[64];
    /* [vdesk] */
    char state_dir[PATH_MAX];
    char snapshot_dir[PATH_MAX];
    char snapshot_tmpl[PATH_MAX];  /* snapshot_dir as written, %n not expanded */
    int snapshots_keep;
    int snapshots_keep_days;       /* 0: no age rule (snap.h, vd_snap_keep) */
    vd_mode policy[VD_MAX_POLICY];
    int npolicy;
    int timeout_unplug, timeout_save, timeout_shutdown, timeout_restore;
    char sysfs_root[PATH_MAX];
    char dev_root[PATH_MAX];
    char proc_root[PATH_MAX];
    vd_persistence nvidia_persistence;
    /* [vdesk] what a job may ask for, re-checked on the node */
    vd_mode_set allow;          /* modes a job may ask for */
    int max_timeout;            /* highest --vdesk-timeout, seconds */
    int min_shutdown_grace;     /* least clean-shutdown time, <= timeout_shutdown */
    int destroy_drains;         /* guest powered off after ignoring ACPI: 0 record, 1 drain */
    char gpu_vendors[128];      /* PCI vendor ids of gres GPUs, "" = NVIDIA (pci.h) */
    /* [vdesk] migration */
    char migrate_feature[64];
    int migrate_downtime;       /* ms */
    int migrate_bandwidth;      /* MiB/s, 0: unlimited */
    int timeout_migrate;        /* seconds per GiB of RAM */
    int migrate_unsafe;
    /* [vdesk] profiles (profile.h) */
    char profile_dir[PATH_MAX];
    /* [vdesk] accounting (acct.h): where vdesk-jobcomp keeps finished jobs */
    char accounting_db[PATH_MAX];
    /* [node NAME] of this node */
    char uri[256];
    char domain[128];        /* the desktop: the selected one (vd_conf_find) */
    char domain_default[128];/* domain = as written: what the node boots unselected */
    char desktops[VD_MAX_DESKTOPS][128];  /* desktops =, the others it may boot */
    int ndesktops;
    char desktop_cores[128]; /* cpulist, "" if not set */
    vd_device devices[VD_MAX_DEVICES];
    int ndevices;
    char migrate_uri[256];
    char migrate_address[128];
    int desktop_slots;
    /* every [node NAME] section, in file order */
    vd_peer peers[VD_MAX_NODES];
    int npeers;
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

/* The same, for programs that run on every node (Prolog= is cluster-wide):
 * returns VD_CONF_NO_DESKTOP when the file is valid but has no [node NODE]
 * section (the node has no desktop; `conf` holds the [vdesk] values and
 * err the message that names the file and its nodes). With a node, the
 * desktop chosen by `vdeskctl select` (STATE_DIR/selected) becomes
 * conf->domain; a choice the file no longer offers is an error that says
 * so, since acting on another desktop than the one running is worse. */
#define VD_CONF_NO_DESKTOP 1
int vd_conf_find(const char *path, const char *node, vd_conf *conf, vd_err *err);

const char *vd_role_name(vd_role role);

/* Whether the node may boot desktop `name`: its domain or one of its
 * desktops. */
int vd_conf_offers(const vd_conf *conf, const char *name);

/* domain = as written (domain_default; conf->domain for a vd_conf not
 * read from a file). */
const char *vd_conf_default_domain(const vd_conf *conf);

/* The node's choice (vdeskctl select), as vd_conf_find applies it: reads
 * STATE_DIR/selected into buf (1) or finds none (0), or -1. Writing it
 * replaces the file atomically; name must be offered. */
int vd_conf_selected_read(const char *state_dir, char *buf, size_t size, vd_err *err);
int vd_conf_selected_write(const vd_conf *conf, const char *name, vd_err *err);

/* The peer table's entry of node `name`, NULL if the file has none. */
const vd_peer *vd_conf_peer(const vd_conf *conf, const char *name);

/* snapshot_dir as node `node` sees it (%n expanded to its name): where a
 * visiting desktop of that node is saved (docs/design.md, "Migration"). */
int vd_conf_snapshot_dir_of(const vd_conf *conf, const char *node, char *out, size_t size);

/* The node whose home desktop is `domain`, NULL if none. */
const vd_peer *vd_conf_home_of(const vd_conf *conf, const char *domain);

#endif
