/* SPDX-License-Identifier: MIT */
/*
 * hv.h - the hypervisor: vdesk's view of libvirt.
 *
 * A vd_hv is one connection to one libvirt daemon, plus libvirt's default
 * event loop, which vdesk drives itself while it waits for an event (a
 * device removal, a lifecycle change): no thread is started.
 *
 * Devices are named by their libvirt user alias ("ua-gpu0"), which survives
 * save, restore and migration, unlike PCI addresses inside the guest.
 *
 * Every function follows err.h: 0 on success, -1 with a message in err.
 */
#ifndef VDESK_HV_H
#define VDESK_HV_H

#include "err.h"

typedef struct vd_hv vd_hv;

/* libvirt's domain states, named for vdesk's messages and journal. */
typedef enum vd_dom_state {
    VD_DOM_MISSING = 0, /* no domain of that name */
    VD_DOM_RUNNING,
    VD_DOM_PAUSED,
    VD_DOM_SHUTOFF,     /* defined, not running (possibly with a managed save) */
    VD_DOM_PMSUSPENDED, /* the guest suspended itself to RAM */
    VD_DOM_CRASHED,     /* the guest crashed (QEMU still there or not) */
    VD_DOM_OTHER,       /* no state, or one libvirt added after this code */
} vd_dom_state;

/* The state, and whether libvirt is still busy with the domain: a job
 * runs on it (save, restore, migration, dump, snapshot), or it is passing
 * between states (starting up, shutting down). A busy domain must not be
 * acted on: a kill at the wrong moment left a save running in libvirtd,
 * and acting on the half-saved VM would throw the finished save away. */
typedef struct vd_dom_info {
    vd_dom_state state;
    int reason;         /* libvirt's state reason, for messages */
    int busy;
    int restored;       /* running since a restore from a state file */
    int save_canceled;  /* running on after a save that libvirt gave up */
    char what[64];      /* "running (restored)", "paused (saving)", ... */
} vd_dom_info;

/* Connects to `uri` (NULL: libvirt's default). The first call in a process
 * registers libvirt's default event loop implementation. */
int vd_hv_open(const char *uri, vd_hv **out, vd_err *err);
void vd_hv_close(vd_hv *hv);

/* The URI actually connected to, for messages. */
const char *vd_hv_uri(const vd_hv *hv);

/* --- what the connected driver can do -----------------------------------
 *
 * vdesk talks to any libvirt driver, as far as that driver allows. What a
 * driver allows is one row of a table in hv.c (`drivers`), chosen by the
 * connection's type (virConnectGetType: "QEMU", "LXC", "Xen", "TEST"), and
 * narrowed by what the daemon itself advertises: no <migration_features>
 * in its capabilities, no migration. A driver not in the table is assumed
 * to do everything, and libvirt's own refusals move the chain on.
 * docs/design.md, "Hypervisors", has the table in words. */
typedef enum vd_hv_can {
    VD_CAN_SUSPEND = 1u << 0,      /* pause in place and resume (QEMU: vCPUs; LXC: the freezer) */
    VD_CAN_SAVE = 1u << 1,         /* memory to a file, restored from it later */
    VD_CAN_MANAGED_SAVE = 1u << 2, /* the same, with libvirt keeping the file */
    VD_CAN_MIGRATE = 1u << 3,      /* live migration, peer to peer */
    VD_CAN_HOTPLUG = 1u << 4,      /* hot-unplug and replug of devices (PCI hostdevs) */
    VD_CAN_SNAPSHOT = 1u << 5,     /* external disk snapshots and block commit */
    VD_CAN_SHUTDOWN = 1u << 6,     /* ask the guest to shut down cleanly */
    VD_CAN_PIN = 1u << 7,          /* pin vCPUs and emulator threads to host CPUs */
    VD_CAN_ALL = (1u << 8) - 1,
} vd_hv_can;

typedef struct vd_hv_caps {
    char type[32];              /* virConnectGetType's answer */
    const char *driver;         /* libvirt's name for the driver: "qemu", "lxc", "libxl", "test" */
    unsigned can;               /* VD_CAN_* */
    unsigned shutdown_flags;    /* virDomainShutdownFlags: the method that works there */
    const char *shutdown_how;   /* that method in words, for messages */
} vd_hv_caps;

/* What the connected driver can do (read once per connection). For tests,
 * VDESK_TEST_DRIVER_LACKS="save,migrate" (names as vd_hv_can_name) takes
 * capabilities away from whatever the driver is (docs/design.md). */
int vd_hv_caps_get(vd_hv *hv, vd_hv_caps *caps, vd_err *err);

/* The table's row for connection type `type` (no connection: for tests
 * and docs); an unknown type gets the row that assumes everything. */
void vd_hv_caps_for_type(const char *type, vd_hv_caps *caps);

/* A capability's short name ("save", "hotplug"), as the test hook and
 * the docs name it. */
const char *vd_hv_can_name(unsigned can);

/* 0 when the driver can do all of `need`; else -1 with err saying
 * "WHAT: not supported by libvirt's DRIVER driver (LACK)" for the first
 * capability missing. */
int vd_hv_caps_need(const vd_hv_caps *caps, unsigned need, const char *what, vd_err *err);

/* The host PCI passthrough backends the driver's domain capabilities list
 * ("vfio", "xen"), comma separated, into buf; "" when it lists none. -1
 * when the driver gives no domain capabilities (LXC, the test driver). */
int vd_hv_pci_backends(vd_hv *hv, char *buf, size_t size, vd_err *err);

/* Defines a persistent domain from XML and starts it. */
int vd_hv_dom_create(vd_hv *hv, const char *xml, vd_err *err);

/* Starts a defined, shut-off domain; libvirt restores it from its managed
 * save image when there is one. timeout_ms > 0 bounds the call (see
 * "Deadlines" below); 0: libvirt's own time. */
int vd_hv_dom_start(vd_hv *hv, const char *dom, int timeout_ms, vd_err *err);

/* Domain state; a missing domain is VD_DOM_MISSING, not an error. */
int vd_hv_dom_state(vd_hv *hv, const char *dom, vd_dom_state *state, vd_err *err);
const char *vd_dom_state_name(vd_dom_state state);

/* State, reason and busy-ness of `dom` (see vd_dom_info); a missing domain
 * is VD_DOM_MISSING, not an error. */
int vd_hv_dom_info(vd_hv *hv, const char *dom, vd_dom_info *info, vd_err *err);

/* Wakes a guest that suspended itself to RAM. */
int vd_hv_dom_wakeup(vd_hv *hv, const char *dom, vd_err *err);

/* Whether the connection still reaches the daemon. */
int vd_hv_alive(vd_hv *hv);

/* Asks the guest to shut down cleanly, by the method its driver has
 * (vd_hv_caps: QEMU's default, the ACPI power button without a guest
 * agent; LXC: SIGTERM to the container's init) and waits up to
 * timeout_ms for it to be shut off. A guest still running then is an error:
 * the caller decides whether to destroy it. */
int vd_hv_dom_shutdown(vd_hv *hv, const char *dom, int timeout_ms, vd_err *err);

/* Destroys (if running), drops any managed save and undefines `dom`.
 * Used to clean up test guests; vdesk never calls it on a desktop. */
int vd_hv_dom_purge(vd_hv *hv, const char *dom, vd_err *err);

/* The domain's XML: live, or the persistent definition if `inactive`.
 * Caller frees. */
int vd_hv_dom_xml(vd_hv *hv, const char *dom, int inactive, char **xml, vd_err *err);

/* Names of all domains (running or not); free with vd_hv_names_free. */
int vd_hv_dom_list(vd_hv *hv, char ***names, int *count, vd_err *err);
void vd_hv_names_free(char **names, int count);

/* Whether the live XML of running `dom` has a device with user alias
 * `alias` (sets *present to 0 or 1). */
int vd_hv_dev_present(vd_hv *hv, const char *dom, const char *alias,
                      int *present, vd_err *err);

/* The device element with user alias `alias` from the live XML of `dom`
 * (malloc'd, caller frees): what vd_hv_dev_attach needs to put it back. */
int vd_hv_dev_xml(vd_hv *hv, const char *dom, const char *alias,
                  char **xml, vd_err *err);

/* Hot-unplugs the device from the running guest (live only: the persistent
 * definition keeps it, so a cold boot brings it back) and waits up to
 * timeout_ms for it to be gone. Gone means libvirt's DEVICE_REMOVED event
 * arrived (*by_event = 1) or, failing that, the alias left the live XML
 * (*by_event = 0): the detach call's own return code proves nothing.
 * by_event may be NULL. A guest that does not let go within the timeout is
 * an error that says so. */
int vd_hv_dev_detach(vd_hv *hv, const char *dom, const char *alias,
                     int timeout_ms, int *by_event, vd_err *err);

/* Waits up to timeout_ms for a removal that may be pending (a detach asked
 * by a process that was killed before it saw the end) to complete, without
 * asking for one. *present says whether the device is still there. */
int vd_hv_dev_wait_gone(vd_hv *hv, const char *dom, const char *alias, int timeout_ms,
                        int *present, vd_err *err);

/* The device element with user alias `alias` from the persistent (inactive)
 * definition: a hot-unplug is live only, so the definition still has it. */
int vd_hv_dev_xml_inactive(vd_hv *hv, const char *dom, const char *alias,
                           char **xml, vd_err *err);

/* The host PCI address ("0000:01:00.0") a <hostdev> element (as
 * vd_hv_dev_xml_inactive returns it) passes through, into bdf; "" when it
 * is not a PCI host device. */
int vd_hv_hostdev_pci(const char *dev_xml, char *bdf, size_t size, vd_err *err);

/* Hot-plugs the device described by `xml` (whose user alias is `alias`)
 * into the running guest, live only, and checks that the alias is in the
 * live XML afterwards. */
int vd_hv_dev_attach(vd_hv *hv, const char *dom, const char *alias,
                     const char *xml, vd_err *err);

/* Adds the device described by `xml` (user alias `alias`) to the domain
 * for good: with `live` also to the running guest, in one call
 * (VIR_DOMAIN_AFFECT_LIVE | AFFECT_CONFIG), else to its definition only;
 * then checks that the alias is where it was asked to be. */
int vd_hv_dev_add(vd_hv *hv, const char *dom, const char *alias, const char *xml, int live,
                  vd_err *err);

/* Removes the device with user alias `alias` from the domain's persistent
 * definition (the running guest is vd_hv_dev_detach's). */
int vd_hv_dev_undefine(vd_hv *hv, const char *dom, const char *alias, vd_err *err);

/* --- what the engine does to a desktop VM ------------------------------ */

/* Deadlines. Save, restore and start are single libvirt calls without a
 * timeout of their own. With timeout_ms > 0 a watchdog thread acts at the
 * deadline from a connection of its own: it aborts the save job (the VM
 * then runs on, and the save file is not to be used), or destroys the
 * domain that is being restored or started (nothing is lost: the save file
 * and the disk stay). The call then fails saying so, even if libvirt
 * finished at the same moment, so that a caller never takes a VM the
 * watchdog stopped for a running one. */

/* Pauses / resumes the vCPUs; RAM, QEMU and devices stay. */
int vd_hv_dom_suspend(vd_hv *hv, const char *dom, vd_err *err);
int vd_hv_dom_resume(vd_hv *hv, const char *dom, vd_err *err);

/* Saves the running guest's RAM and device state to `path` (vdesk's own
 * file, not libvirt's managed save, so that vdesk decides when it may be
 * deleted) and stops it. The domain stays defined, shut off. */
int vd_hv_dom_save(vd_hv *hv, const char *dom, const char *path, int timeout_ms, vd_err *err);

/* The form vd_hv_dom_save writes into directory `dir`, in words: chosen
 * at build time from libvirt's headers (the sparse, parallel format from
 * libvirt 11.2 on); at run time a QEMU without mapped-ram gets raw with
 * bypass instead, and a `dir` that does not take O_DIRECT raw through the
 * page cache. vd_hv_dom_restore reads a sparse image in parallel with
 * bypass, as it was written, and a raw one through the page cache. */
const char *vd_hv_save_form(const char *dir);

/* Brings a guest saved by vd_hv_dom_save back, paused: the caller journals
 * that the file is used before the guest runs a single instruction, and
 * then resumes it (a guest that ran from the file and was then stopped
 * must never be restored from it again: its disk has moved on). A driver
 * that cannot restore paused (libvirt's test driver) restores as saved.
 * The file is left. */
int vd_hv_dom_restore(vd_hv *hv, const char *dom, const char *path, int timeout_ms, vd_err *err);

/* --- lifecycle: what the boot unit and vdeskctl select need ---------- */

/* libvirt's autostart flag of `dom` (the daemon starts it when it starts):
 * read, and set. vdesk starts its desktops itself (vdeskctl boot), since
 * an autostart next to a vdesk save file would boot the disk and lose the
 * session in the file. */
int vd_hv_dom_autostart(vd_hv *hv, const char *dom, int *on, vd_err *err);
int vd_hv_dom_autostart_set(vd_hv *hv, const char *dom, int on, vd_err *err);

/* libvirt's managed save: the guest's state kept by libvirt, which the next
 * start of the domain restores by itself. Used to put aside a desktop the
 * node stops booting (vdeskctl select), so that selecting it again brings
 * the session back. Under a watchdog that aborts it at timeout_ms (the VM
 * runs on). */
int vd_hv_dom_managed_save(vd_hv *hv, const char *dom, int timeout_ms, vd_err *err);
/* A driver without managed save (vd_hv_caps) has none: *has = 0. */
int vd_hv_dom_managed_save_has(vd_hv *hv, const char *dom, int *has, vd_err *err);

/* Whether the persistent definition of `dom` has a device with user alias
 * `alias` (*defined 0 or 1): a node's second desktop may lack one. */
int vd_hv_dev_defined(vd_hv *hv, const char *dom, const char *alias, int *defined, vd_err *err);

/* The desktop's emulated display (SPICE or VNC) as the running domain has
 * it: what a viewer connects to, the port libvirt chose for autoport. */
typedef struct vd_display {
    char type[16];      /* "spice", "vnc"; "" when the domain has none */
    int port;           /* -1: none (not running, or a TLS-only port) */
    char listen[128];   /* the address it listens on, "" for libvirt's default */
} vd_display;
int vd_hv_dom_display(vd_hv *hv, const char *dom, vd_display *d, vd_err *err);

/* Stops the guest at once (power cut); the disk keeps what was written. */
int vd_hv_dom_destroy(vd_hv *hv, const char *dom, vd_err *err);

/* Crash-consistent snapshot of the guest's first disk: an external qcow2
 * overlay `dir/DOM-TAG.qcow2` becomes the active layer, so the layer below
 * is frozen as the snapshot; its path goes into `frozen`. No libvirt
 * snapshot metadata is kept (it would block migration). Running or shut
 * off domains alike. */
int vd_hv_disk_snapshot(vd_hv *hv, const char *dom, const char *dir, const char *tag,
                        char *frozen, size_t frozen_size, vd_err *err);

/* For a shut-off domain: points its first disk at the frozen layer
 * `frozen` and puts a fresh overlay on top (vd_hv_disk_snapshot), so that
 * the next start boots from the snapshot and the snapshot itself stays
 * untouched. The layer it replaces is left on disk. */
int vd_hv_disk_revert(vd_hv *hv, const char *dom, const char *frozen, const char *dir,
                      const char *tag, vd_err *err);

/* The first disk's backing chain, active layer first, base last (paths,
 * malloc'd; free with vd_hv_names_free). */
int vd_hv_disk_chain(vd_hv *hv, const char *dom, char ***paths, int *n, vd_err *err);

/* Merges the layers from `top` down into `base` (a layer below it in the
 * first disk's chain; NULL: the bottom of the chain) by a block commit;
 * `top` must not be the active layer. Waits up to timeout_ms for the block
 * job to end, and aborts it then. The end of the job is not proof that the
 * layers left the chain: callers read the chain again (vd_hv_disk_chain)
 * before removing any file. Running domains only. */
int vd_hv_disk_commit(vd_hv *hv, const char *dom, const char *top, const char *base,
                      int timeout_ms, vd_err *err);

/* Pins every vCPU, the emulator threads and the I/O threads to `cpulist`
 * ("0-1"); NULL unpins (all host CPUs). Live only. */
int vd_hv_dom_pin(vd_hv *hv, const char *dom, const char *cpulist, vd_err *err);

/* --- live migration (docs/design.md, "Migration") ---
 *
 * Peer to peer: the source daemon connects to the target daemon itself, so
 * the caller needs no connection to the target for the move; vdesk opens
 * one only to look (room, stats). The domain's definition moves with it
 * (PERSIST_DEST | UNDEFINE_SOURCE): after a migration exactly one daemon
 * has the desktop, so no crash recovery can boot a second copy of it on
 * the same disk elsewhere, and libvirt's lock manager refuses one that
 * someone starts by hand. */
typedef struct vd_migrate_params {
    const char *dest_uri;  /* the target daemon as the source daemon reaches it */
    const char *data_uri;  /* where QEMU sends the memory ("tcp://host"), NULL: libvirt's choice */
    int downtime_ms;       /* the longest pause at the switch-over, 0: QEMU's 300 ms */
    int bandwidth_mib;     /* MiB/s, 0: unlimited */
    int unsafe;            /* storage libvirt cannot tell is shared (a test bed's local disk) */
    int timeout_ms;        /* the migration is aborted then; the VM runs on at the source */
    int offline;           /* a shut-off domain: only its definition moves */
} vd_migrate_params;

typedef struct vd_migrate_stats {
    long long total_ms;     /* libvirt's own time for the job */
    long long downtime_ms;  /* the guest's pause at the switch-over */
    long long data_bytes;   /* memory sent */
    long long iterations;   /* passes over the dirty memory */
} vd_migrate_stats;

/* Live-migrates `dom` to p->dest_uri. On failure or timeout the VM runs on
 * at the source, as it was (libvirt's contract for an aborted migration).
 * On success *stats holds the job's figures, read from the target (the
 * source no longer has the domain); any of them the driver does not give
 * stay -1. */
int vd_hv_dom_migrate(vd_hv *hv, const char *dom, const vd_migrate_params *p, vd_migrate_stats *stats,
                      vd_err *err);

/* The domain's memory (KiB, its maximum) and the daemon's free memory
 * (KiB), for choosing a target with room. */
int vd_hv_dom_memory_kib(vd_hv *hv, const char *dom, unsigned long long *kib, vd_err *err);
int vd_hv_free_memory_kib(vd_hv *hv, unsigned long long *kib, vd_err *err);

/* Renames a shut-off domain (its definition only; disks are untouched). */
int vd_hv_dom_rename(vd_hv *hv, const char *dom, const char *new_name, vd_err *err);

/* `dom`'s place in the order its daemon's running (or paused) domains
 * arrived, 0 for the first: *before is how many came before it. Domain
 * ids grow as domains start or arrive by migration (from the moment the
 * daemon prepares the incoming one), and every client sees the same. */
int vd_hv_dom_arrival_place(vd_hv *hv, const char *dom, int *before, vd_err *err);

/* How many domains run (or are paused) on the daemon. */
int vd_hv_active_count(vd_hv *hv, int *count, vd_err *err);

/* --- bootstrapping (bootstrap.h): definitions and storage volumes ---
 *
 * Volumes are named by pool and volume name; the pool must exist and be
 * active (an error says how to fix it otherwise). */

/* Defines a persistent domain from XML, without starting it. */
int vd_hv_dom_define(vd_hv *hv, const char *xml, vd_err *err);

/* The element of namespace `ns` in the <metadata> of `dom`'s persistent
 * definition (malloc'd into *xml; NULL when it has none). */
int vd_hv_dom_metadata(vd_hv *hv, const char *dom, const char *ns, char **xml, vd_err *err);

/* Whether volume `vol` is in `pool` (*exists), and its path if so. */
int vd_hv_vol_path(vd_hv *hv, const char *pool, const char *vol, char *path, size_t size, int *exists,
                   vd_err *err);

/* Creates a volume from its XML (virStorageVolCreateXML); its path into `path`. */
int vd_hv_vol_create(vd_hv *hv, const char *pool, const char *xml, char *path, size_t size, vd_err *err);

/* Writes `file`'s bytes into volume `vol` through libvirt's stream
 * (virStorageVolUpload), so that the caller needs no access to the
 * pool's storage. */
int vd_hv_vol_upload(vd_hv *hv, const char *pool, const char *vol, const char *file, vd_err *err);

/* Deletes volume `vol` of `pool`; one already gone is no error. */
int vd_hv_vol_delete(vd_hv *hv, const char *pool, const char *vol, vd_err *err);

#endif
