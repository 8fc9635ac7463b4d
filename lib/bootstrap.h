/* SPDX-License-Identifier: MIT */
/*
 * bootstrap.h - `vdeskctl bootstrap PROFILE NAME`: a project's desktop VM
 * made from a profile (profile.h) on a node, registered in vdesk.conf and
 * booted (docs/admin.md, "Profiles and bootstrapping").
 *
 * The steps, each undone when a later one fails (the volumes deleted, the
 * domain undefined, vdesk.conf put back byte for byte):
 *   overlay  NAME.qcow2 in the profile's pool, a qcow2 on the base image
 *            (libvirt's storage API, virStorageVolCreateXML with a backing store)
 *   seed     NAME-seed.iso in the same pool: a cloud-init NoCloud image,
 *            volume label cidata, with user-data, meta-data (instance-id
 *            iid-UUID, local-hostname NAME) and network-config, made by
 *            `xorriso -as mkisofs` and uploaded through libvirt
 *   define   the domain, its XML built with libxml2 (bootstrap_domain_xml)
 *   conf     NAME appended to desktops = of [node NODE] in vdesk.conf,
 *            rewritten atomically (every other byte kept) and read again
 *   boot     vd_select(NAME): the node's current desktop goes into its
 *            managed save, NAME starts
 * Idempotent: a domain NAME made from the same profile is left as it is
 * (nothing changes); one from another profile, or not made by bootstrap,
 * is refused. The domain carries what made it in its <metadata>.
 */
#ifndef VDESK_BOOTSTRAP_H
#define VDESK_BOOTSTRAP_H

#include <stddef.h>

#include "conf.h"
#include "err.h"
#include "hv.h"
#include "profile.h"

/* The namespace of vdesk's element in a bootstrapped domain's <metadata>. */
#define VD_BOOTSTRAP_NS "urn:vdesk:bootstrap:1"

/* What bootstrap did, one line per step, for the caller to print. */
typedef void (*vd_bootstrap_say)(void *ctx, const char *line);

typedef struct vd_bootstrap_opts {
    const char *conf_path;    /* vdesk.conf */
    const char *node;         /* the node whose [node NODE] gets the desktop */
    const char *topology;     /* for the whole-cores check: NULL this machine (topo.h) */
    int timeout_ms;           /* each program it runs (cloud-init, xorriso) */
    vd_bootstrap_say say;
    void *ctx;
    /* Seams for the unit tests on libvirt's test driver, NULL otherwise:
     * seed_put replaces the upload of the seed image (that driver takes
     * none); before_step(ctx, STEP) is called before each step ("overlay",
     * "seed", "define", "conf", "boot") and fails it by returning -1. */
    int (*seed_put)(void *ctx, vd_hv *hv, const char *pool, const char *vol, const char *file,
                    vd_err *err);
    int (*before_step)(void *ctx, const char *step, vd_err *err);
} vd_bootstrap_opts;

/* Makes desktop `name` from profile `p` on node o->node (see above).
 * Refused before anything is made: a bad name, the node's own domain =,
 * a profile whose uri is not the node's, any problem vd_profile_check
 * finds (live), volumes of that name already in the pool. Returns 0 (made,
 * or already there from the same profile), -1 with the cause; whatever it
 * made is gone again then, and err says so if an undo failed. */
int vd_bootstrap(const vd_profile *p, const char *name, const vd_bootstrap_opts *o, vd_err *err);

/* The domain XML of desktop `name` (malloc'd into *xml): `uuid`, the
 * overlay as vda, the seed as read-only vdb, the node's devices of the
 * profile's roles as PCI <hostdev managed='no'> with their user aliases
 * (those without a PCI address skipped, each said in `notes`), display,
 * network, pinning, direct kernel boot, the serial console into
 * `console_log`, and vdesk's metadata (profile name). */
int vd_bootstrap_domain_xml(const vd_profile *p, const vd_conf *conf, const char *name,
                            const char *uuid, const char *overlay, const char *seed,
                            const char *console_log, char **xml, char *notes, size_t notes_size,
                            vd_err *err);

/* Appends `name` to desktops = of [node NODE] in vdesk.conf `path` (adds
 * the key after the header if the section has none), replacing the file
 * atomically with its mode and owner; every other byte stays. The old
 * text goes into *old (malloc'd, *oldlen bytes) for vd_conf_file_put. */
int vd_conf_add_desktop(const char *path, const char *node, const char *name, char **old,
                        size_t *oldlen, vd_err *err);

/* Replaces file `path` atomically with `len` bytes of `text`. */
int vd_conf_file_put(const char *path, const char *text, size_t len, vd_err *err);

#endif
