/* SPDX-License-Identifier: MIT */
/*
 * shmem.h - shared memory regions between desktop VMs of one host
 * (`vdeskctl shmem`; docs/design.md, "Shared memory").
 *
 * A region is a named file in the host's /dev/shm that QEMU maps into each
 * member VM as an ivshmem-plain PCI device (BAR 2). Two sources, each the
 * truth for one thing:
 *   - the registry, STATE_DIR/shmem/NAME.json ({"name", "size"}), says that
 *     the region exists and how large it is. It is read as untrusted input:
 *     no link is followed, the name inside must be the file's, the size a
 *     power of two within limits, nothing else is taken from it;
 *   - libvirt's domain XML says who is a member and with which role: the
 *     device <shmem name='NAME' role='peer|master'> with the user alias
 *     "ua-shm-NAME", in the live XML (running) and/or the definition.
 *
 * Every function returns 0 or -1 with err naming the region, desktop or
 * file and the fix (err.h). No function keeps state between calls.
 */
#ifndef VDESK_SHMEM_H
#define VDESK_SHMEM_H

#include <stddef.h>

#include "conf.h"
#include "err.h"
#include "hv.h"

#define VD_SHMEM_NAME_MAX 48               /* characters of a region's name */
#define VD_SHMEM_ALIAS_PREFIX "ua-shm-"    /* + name: the device's user alias */
#define VD_SHMEM_MIN (1ULL << 20)          /* libvirt refuses less (qemu_validate) */
#define VD_SHMEM_MAX_SIZE (64ULL << 30)    /* far beyond a desktop node's RAM share */
#define VD_SHMEM_MAX 64                    /* regions listed, members per listing */
#define VD_SHMEM_DEV_DIR "/dev/shm"        /* where libvirt's QEMU keeps the backing file */

typedef enum vd_shmem_role { VD_SHMEM_PEER, VD_SHMEM_MASTER } vd_shmem_role;

/* A region of the registry. */
typedef struct vd_shmem {
    char name[VD_SHMEM_NAME_MAX + 1];
    unsigned long long size;   /* bytes, a power of two */
} vd_shmem;

/* One VM's device of a region, as libvirt's XML has it. */
typedef struct vd_shmem_member {
    char name[VD_SHMEM_NAME_MAX + 1];   /* the region */
    char desktop[128];                  /* the domain */
    vd_shmem_role role;
    unsigned long long size;            /* bytes, as the XML says */
    int live;                           /* in the running VM */
    int defined;                        /* in its persistent definition */
} vd_shmem_member;

/* --- pure parts (unit-tested) ------------------------------------------- */

/* A region's name: 1-48 of [A-Za-z0-9_-], starting with a letter or digit.
 * It becomes a file name (/dev/shm/NAME, STATE_DIR/shmem/NAME.json) and a
 * libvirt alias, so nothing else is let through. */
int vd_shmem_name_check(const char *name, vd_err *err);

/* "1M", "1048576", "2GiB", "1024K": bytes, binary units; QEMU maps ivshmem
 * as a PCI BAR, so the size must be a power of two, and libvirt takes no
 * less than 1 MiB: from 1 MiB to 64 GiB. */
int vd_shmem_size_parse(const char *text, unsigned long long *bytes, vd_err *err);

/* "1 MiB", "4 KiB", "3 B" into buf; returns buf. */
const char *vd_shmem_size_str(unsigned long long bytes, char *buf, size_t size);

/* "master" or "peer". */
int vd_shmem_role_parse(const char *text, vd_shmem_role *role, vd_err *err);
const char *vd_shmem_role_name(vd_shmem_role role);

/* The user alias of region `name`'s device: "ua-shm-NAME". Returns buf. */
const char *vd_shmem_alias(const char *name, char *buf, size_t size);

/* Whether `alias` is a region device's alias (prefix and a valid name):
 * the engine unplugs those at save and migrate and accepts them back from
 * its journal. */
int vd_shmem_is_alias(const char *alias);

/* The <shmem> device element for region r with `role` (libxml2; malloc'd,
 * caller frees *xml). */
int vd_shmem_dev_xml(const vd_shmem *r, vd_shmem_role role, char **xml, vd_err *err);

/* The region in registry text `text` (len bytes and a NUL) of file `path`, which
 * must be region `name`'s. Refuses anything but one JSON object with a
 * valid "name" equal to `name` and a valid "size". */
int vd_shmem_parse(const char *path, const char *name, const char *text, size_t len, vd_shmem *r,
                   vd_err *err);

/* Every <shmem> device of domain XML `xml` (of domain `desktop`) into
 * out[0..*n), at most `max`; sets live (or defined) as told by `live`. */
int vd_shmem_in_xml(const char *xml, const char *desktop, int live, vd_shmem_member *out, int max,
                    int *n, vd_err *err);

/* The device XML a journal keeps for `alias` (ua-shm-NAME), read back as
 * name, size and role, checked (a <shmem> of region NAME, ivshmem-plain, no
 * server, a valid size) and built again into *out (free it). */
int vd_shmem_dev_xml_clean(const char *alias, const char *xml, char **out, vd_err *err);

/* --- the registry: STATE_DIR/shmem ------------------------------------- */

/* Region `name` into *r; an unknown region is an error that says how to
 * create it. */
int vd_shmem_load(const char *state_dir, const char *name, vd_shmem *r, vd_err *err);

/* The registry's regions, sorted by name, at most VD_SHMEM_MAX; files that
 * are not valid regions are skipped and the first such is named in
 * `skipped` (may be NULL). */
int vd_shmem_list(const char *state_dir, vd_shmem *out, int *n, char *skipped, size_t size, vd_err *err);

/* --- what vdeskctl shmem does ------------------------------------------ */

/* create NAME SIZE: a new region in the registry (no VM changes). */
int vd_shmem_create(const vd_conf *conf, const char *name, const char *size, vd_err *err);

/* attach NAME DESKTOP: the region's device into the domain `desktop` of
 * the node's libvirt: live and in its definition when it runs, only in its
 * definition when it is off (then it maps the region at its next start:
 * `how` says which). Refused: an unknown region or desktop, a member
 * already, a second master, a desktop that vdesk keeps away for a job or
 * that has a managed save (a restore would come back without it). */
int vd_shmem_attach(const vd_conf *conf, const char *name, const char *desktop, vd_shmem_role role,
                    char *how, size_t size, vd_err *err);

/* detach NAME DESKTOP: the device out of the running VM and out of its
 * definition (as its state allows). */
int vd_shmem_detach(const vd_conf *conf, const char *name, const char *desktop, char *how, size_t size,
                    vd_err *err);

/* The members of region `name` (NULL: of every region) among all domains
 * of the node's libvirt, live or defined, sorted by region and desktop. */
int vd_shmem_members(vd_hv *hv, const char *name, vd_shmem_member *out, int max, int *n, vd_err *err);

/* destroy NAME: refused while any domain has the device (named); removes
 * the registry file and the backing file /dev/shm/NAME (the memory). */
int vd_shmem_destroy(const vd_conf *conf, const char *name, vd_err *err);

/* The regions desktop `dom` maps (the live XML when it runs, else its
 * definition): what its side of the node holds beyond its own RAM. */
int vd_shmem_of_desktop(vd_hv *hv, const char *dom, vd_shmem_member *out, int max, int *n, vd_err *err);

#endif
