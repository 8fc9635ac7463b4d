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
    VD_DOM_OTHER,       /* shutting down, crashed, pmsuspended, ... */
} vd_dom_state;

/* Connects to `uri` (NULL: libvirt's default). The first call in a process
 * registers libvirt's default event loop implementation. */
int vd_hv_open(const char *uri, vd_hv **out, vd_err *err);
void vd_hv_close(vd_hv *hv);

/* The URI actually connected to, for messages. */
const char *vd_hv_uri(const vd_hv *hv);

/* Defines a persistent domain from XML and starts it. */
int vd_hv_dom_create(vd_hv *hv, const char *xml, vd_err *err);

/* Starts a defined, shut-off domain; libvirt restores it from its managed
 * save image when there is one. */
int vd_hv_dom_start(vd_hv *hv, const char *dom, vd_err *err);

/* Domain state; a missing domain is VD_DOM_MISSING, not an error. */
int vd_hv_dom_state(vd_hv *hv, const char *dom, vd_dom_state *state, vd_err *err);
const char *vd_dom_state_name(vd_dom_state state);

/* Asks the guest to shut down cleanly (libvirt's default method: the ACPI
 * power button on QEMU without a guest agent) and waits up to
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

/* Hot-plugs the device described by `xml` (whose user alias is `alias`)
 * into the running guest, live only, and checks that the alias is in the
 * live XML afterwards. */
int vd_hv_dev_attach(vd_hv *hv, const char *dom, const char *alias,
                     const char *xml, vd_err *err);

/* --- what the engine does to a desktop VM ------------------------------ */

/* Pauses / resumes the vCPUs; RAM, QEMU and devices stay. */
int vd_hv_dom_suspend(vd_hv *hv, const char *dom, vd_err *err);
int vd_hv_dom_resume(vd_hv *hv, const char *dom, vd_err *err);

/* Saves the running guest's RAM and device state to `path` (vdesk's own
 * file, not libvirt's managed save, so that vdesk decides when it may be
 * deleted) and stops it. The domain stays defined, shut off. */
int vd_hv_dom_save(vd_hv *hv, const char *dom, const char *path, vd_err *err);

/* Brings a guest saved by vd_hv_dom_save back, running. The file is left. */
int vd_hv_dom_restore(vd_hv *hv, const char *path, vd_err *err);

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

/* Merges the layers from `top` down into the bottom of the first disk's
 * chain (a block commit; `top` must not be the active layer) and waits up to
 * timeout_ms for the block job to end. Running domains only. */
int vd_hv_disk_commit(vd_hv *hv, const char *dom, const char *top, int timeout_ms, vd_err *err);

/* Pins every vCPU and the emulator threads to `cpulist` ("0-1"); NULL
 * unpins (all host CPUs). Live only. */
int vd_hv_dom_pin(vd_hv *hv, const char *dom, const char *cpulist, vd_err *err);

#endif
