/* SPDX-License-Identifier: MIT */
/*
 * profile.h - desktop profiles: what `vdeskctl bootstrap` builds a
 * project's desktop VM from (vdesk-profile(5)).
 *
 * One file per project, PROFILE_DIR/NAME.profile (vdesk.conf's
 * profile_dir), INI read by libinih as strictly as vdesk.conf: one
 * [profile] section; an unknown section or key, a repeated key, a line
 * that is neither a header nor KEY = VALUE, or a bad value is an error
 * "FILE:LINE: what is wrong; what is allowed / the fix". Comments as in
 * vdesk.conf ('#' or ';' at the start, or after a blank).
 *
 *   [profile]
 *   inherit = base            ; another profile of the directory, whose values
 *                             ; this one's override key by key
 *   description = Deep learning course
 *   base_image = /var/lib/vdesk/images/debian-12.qcow2   ; qcow2 or raw, backs the overlay
 *   memory = 8192             ; MiB
 *   vcpus = 4
 *   cpus = 2-3,10-11          ; host CPUs the vCPUs are pinned to: whole cores
 *   devices = gpu, ib         ; roles of the node's device = lines passed through
 *   display = spice           ; spice | vnc | none (emulated, on 127.0.0.1)
 *   network = network:default ; none | network:NAME | bridge:NAME
 *   user_data = course.yaml   ; cloud-init user-data (relative: to PROFILE_DIR)
 *   uri = qemu:///system      ; default: the node's uri
 *   pool = default            ; libvirt storage pool for the overlay and the seed
 *   domain_type = kvm         ; kvm | qemu (software emulation)
 *   kernel = /boot/vmlinuz    ; direct kernel boot (optional, with initrd, cmdline)
 *   initrd = /boot/initrd.img
 *   cmdline = console=ttyS0
 *
 * Inheritance chains are followed to VD_PROFILE_DEPTH files; a loop is an
 * error that names the cycle. Every resolved value remembers where it came
 * from (file and line, or the default), for `vdeskctl profile show` and for
 * the errors of vd_profile_check.
 */
#ifndef VDESK_PROFILE_H
#define VDESK_PROFILE_H

#include <limits.h>
#include <stddef.h>

#include "conf.h"
#include "err.h"

#define VD_PROFILE_DEPTH 8     /* files in one inheritance chain */
#define VD_PROFILE_NAME_MAX 64 /* letters, digits, - _ . (not first) */
#define VD_PROFILE_VALUE_MAX 1024

/* The keys, in the order `show` prints them. */
typedef enum vd_pkey {
    VD_PK_INHERIT, VD_PK_DESCRIPTION, VD_PK_BASE_IMAGE, VD_PK_MEMORY, VD_PK_VCPUS, VD_PK_CPUS,
    VD_PK_DEVICES, VD_PK_DISPLAY, VD_PK_NETWORK, VD_PK_USER_DATA, VD_PK_URI, VD_PK_POOL,
    VD_PK_DOMAIN_TYPE, VD_PK_KERNEL, VD_PK_INITRD, VD_PK_CMDLINE,
    VD_PK_COUNT
} vd_pkey;

typedef enum vd_profile_display { VD_DISPLAY_NONE, VD_DISPLAY_SPICE, VD_DISPLAY_VNC } vd_profile_display;
typedef enum vd_net { VD_NET_NONE, VD_NET_NETWORK, VD_NET_BRIDGE } vd_net;

/* Where a resolved value came from: chain[file] at `line`; file -1: the default. */
typedef struct vd_porigin {
    int file;
    int line;
} vd_porigin;

typedef struct vd_profile {
    char name[VD_PROFILE_NAME_MAX + 1];
    char dir[PATH_MAX];                        /* PROFILE_DIR */
    /* The files read: chain[0] is NAME's own, then what it inherits. */
    char chain[VD_PROFILE_DEPTH][PATH_MAX];
    int nchain;
    vd_porigin from[VD_PK_COUNT];
    char raw[VD_PK_COUNT][VD_PROFILE_VALUE_MAX]; /* the values as written ("" not set) */
    /* The values, resolved and checked. */
    char inherit[VD_PROFILE_NAME_MAX + 1];
    char description[256];
    char base_image[PATH_MAX];
    int memory_mib;
    int vcpus;
    char cpus[128];                            /* "" : not pinned */
    unsigned devices;                          /* bit (1u << vd_role) per role */
    vd_profile_display display;
    vd_net net;
    char net_name[64];
    char user_data[PATH_MAX];                  /* absolute, "" : none */
    char uri[256];                             /* "" : the node's */
    char pool[64];
    char domain_type[8];
    char kernel[PATH_MAX], initrd[PATH_MAX];
    char cmdline[VD_PROFILE_VALUE_MAX];
} vd_profile;

/* The key's name in the file ("base_image"). */
const char *vd_profile_key_name(vd_pkey key);

/* Whether `name` is a valid profile (or desktop) name: letters, digits,
 * '-', '_', '.', not starting with '.', 1..VD_PROFILE_NAME_MAX characters. */
int vd_profile_name_ok(const char *name);

/* Reads DIR/NAME.profile and every profile it inherits, and resolves them
 * into `p` (defaults first, then each file from the farthest ancestor to
 * NAME's own). Errors name the file and line and say what to fix: syntax
 * and values, a missing inherited profile, an inheritance loop (the whole
 * cycle), a chain deeper than VD_PROFILE_DEPTH, and keys that do not go
 * together (initrd or cmdline without kernel). A profile without
 * base_image anywhere in its chain is refused. Nothing outside the
 * profile files is looked at (vd_profile_check does that). */
int vd_profile_load(const char *dir, const char *name, vd_profile *p, vd_err *err);

/* "FILE:LINE" of the value of `key`, or "default" (into buf). */
const char *vd_profile_origin(const vd_profile *p, vd_pkey key, char *buf, size_t size);

/* The names of DIR's *.profile files, sorted (free with vd_hv_names_free's
 * twin, vd_profile_names_free). A missing directory is an error that says
 * how to create it. */
int vd_profile_list(const char *dir, char ***names, int *count, vd_err *err);
void vd_profile_names_free(char **names, int count);

/* What vd_profile_check reports, one problem or note per line. */
typedef void (*vd_profile_say)(void *ctx, int problem, const char *line);

/* Checks what the profile names outside itself, each problem one call of
 * say(ctx, 1, "FILE:LINE: ...; fix") and each note say(ctx, 0, ...):
 *  - base_image, kernel, initrd, user_data: regular files this process can read;
 *    base_image a qcow2 or raw image;
 *  - user_data: cloud-init's own schema check (`cloud-init schema
 *    --config-file`, at most timeout_ms), whose error names the user-data
 *    file and line as cloud-init reports them; without cloud-init, a note
 *    that it was not schema-checked and how to install it;
 *  - with `conf` (a node's section): devices roles the node has (a role it
 *    lacks, or a device without PCI address, is a note: bootstrap skips it);
 *  - with `topology` (vd_topo_open's source; "" : this machine) and `live`:
 *    cpus whole cores of the node's topology.
 * Returns the number of problems (0: fine), -1 on an error of its own. */
int vd_profile_check(const vd_profile *p, const vd_conf *conf, int live, const char *topology,
                     int timeout_ms, vd_profile_say say, void *ctx, vd_err *err);

/* The image format of `path` from its header: "qcow2" or "raw", and its
 * virtual size in bytes (qcow2's header field, a raw file's length). */
int vd_image_probe(const char *path, const char **format, unsigned long long *bytes, vd_err *err);

#endif
