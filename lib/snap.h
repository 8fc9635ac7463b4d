/* SPDX-License-Identifier: MIT */
/*
 * snap.h - recovery points of a desktop's disk (docs/design.md, "Recovery
 * snapshots").
 *
 * A snapshot freezes the first disk's active layer and puts a new qcow2
 * overlay, DIR/DOM-MS.qcow2, on top (vd_hv_disk_snapshot): the frozen
 * layer holds the disk as it was at that moment, and is a recovery point.
 * The disk is a chain: active layer first, the site's base image last.
 *
 * What a layer is (who made it, when, its name) is kept in an index,
 * DIR/DOM.snapshots.json, written atomically under the node's lock. The
 * index is only a label: the chain itself comes from libvirt, the layers
 * off the chain from the directory, and what each is built on from the
 * layer's own qcow2 header. A layer the index does not know is listed with
 * origin "unknown" and kept; an index entry without its file is not listed.
 *
 * Rules that hold for every function here:
 *  - only files directly inside DIR whose names vdesk gives its layers
 *    (DOM-DIGITS.qcow2) are ever written into or removed; the base image,
 *    and any layer elsewhere, is only read;
 *  - a layer that a layer off the chain is built on is never written into
 *    or removed (a state kept by a revert reads through it);
 *  - a layer leaves the disk only after libvirt's chain, read again, no
 *    longer has it.
 */
#ifndef VDESK_SNAP_H
#define VDESK_SNAP_H

#include <limits.h>

#include "err.h"
#include "hv.h"

typedef enum vd_snap_origin {
    VD_SNAP_UNKNOWN,   /* a layer the index does not know */
    VD_SNAP_EVICTION,  /* a job's eviction (save, shutdown, migrate) */
    VD_SNAP_SCHEDULE,  /* vdesk-snapshot.timer */
    VD_SNAP_HAND,      /* vdeskctl snapshot */
    VD_SNAP_REVERT,    /* the state a revert left: kept until discarded */
    VD_SNAP_BASE,      /* the disk under vdesk's first layer: never written */
    VD_SNAP_MERGING,   /* a layer a merge was ending: never a recovery point */
} vd_snap_origin;

const char *vd_snap_origin_name(vd_snap_origin o);

#define VD_SNAP_NAME_MAX 64

typedef struct vd_snap {
    char name[VD_SNAP_NAME_MAX];
    char layer[PATH_MAX];      /* the frozen file that holds this state */
    long long time_ms;         /* when it was frozen (wall clock); 0: unknown */
    vd_snap_origin origin;
    unsigned job;              /* the evicting job, 0 for the others */
    int kept;                  /* named by hand (--name) or kept by a revert: only a
                                * discard removes it, never the retention */
    int depth;                 /* in the live chain: 1 the newest frozen layer; 0 off it */
    long long bytes;           /* the layer file's space on disk; -1: unknown */
} vd_snap;

/* Retention (vdesk.conf snapshots_keep, snapshots_keep_age): the newest
 * `n` eviction and scheduled points stay, and any younger than `age_ms`
 * (0: no age rule). Points made by hand or kept by a revert stay until
 * discarded, and the newest point always stays. */
typedef struct vd_snap_keep {
    int n;
    long long age_ms;
} vd_snap_keep;

/* Whether a snapshot name is one vdesk accepts: 1 to 63 of [A-Za-z0-9._-],
 * not starting with '.' or '-'. */
int vd_snap_name_ok(const char *name);

/* Whether `path` is a layer vdesk made for `dom` in `dir` (rules above). */
int vd_snap_ours(const char *path, const char *dir, const char *dom);

/* The recovery points of `dom`: those of the live chain newest first
 * (depth 1, 2, ..., the base last), then those off it, newest first.
 * A disk with no frozen layer has none (*n = 0). Free with free(). */
int vd_snap_list(vd_hv *hv, const char *dom, const char *dir, vd_snap **snaps, int *n, vd_err *err);

/* The point called `name` in a list, or NULL. */
const vd_snap *vd_snap_find(const vd_snap *snaps, int n, const char *name);

/* Freezes the active layer as a recovery point (running or shut-off
 * domains; never one with a save file of its memory: the caller checks).
 * `name` NULL: one is made from the origin, the job and the time
 * ("job12-20261130-203015"); a given name makes the point a kept one. A
 * name in use is refused. The point is in
 * *made. The layer exists even if the index could not be written: then
 * *made has the name and the return is 1, with the reason in err. */
int vd_snap_take(vd_hv *hv, const char *dom, const char *dir, vd_snap_origin origin, unsigned job,
                 const char *name, vd_snap *made, vd_err *err);

/* Points the shut-off domain's first disk at `layer` (a point of
 * vd_snap_list) with a new overlay on top, so it boots from that state and
 * the layer itself stays as it is. The state it had (the active layer) is
 * kept as point `kept` (origin revert), with every layer it reads through,
 * until vd_snap_discard. Refused when the active layer is not vdesk's (it
 * would be kept where no list shows it) and for a "merging" layer. An
 * unreadable index does not stop it: the kept state is then unlabelled. */
int vd_snap_revert(vd_hv *hv, const char *dom, const char *dir, const char *layer, char *kept,
                   size_t kept_size, vd_err *err);

/* Removes point `name`: a point off the chain that no other layer is built
 * on (its file goes), or a point of the running domain's chain below the
 * newest (merged away: the layer above is committed into it). Never the
 * base, the point the desktop runs on, or `protect` (vd_snap_flatten). */
int vd_snap_discard(vd_hv *hv, const char *dom, const char *dir, const char *name, const char *protect,
                    int timeout_ms, vd_err *err);

/* Applies `keep` to the running domain's chain: each run of points it
 * lets go is merged by one block commit (at most timeout_ms each). The
 * number of points merged away goes into *merged. `protect` (NULL: none)
 * is a layer whose file stays as it is: the recovery point of the eviction
 * the desktop is away for (journal.h, snapshot). Layers an interrupted
 * merge left off the chain are removed. */
int vd_snap_flatten(vd_hv *hv, const char *dom, const char *dir, const vd_snap_keep *keep,
                    const char *protect, int timeout_ms, int *merged, vd_err *err);

/* --- the merge plan, pure (unit-tested) --- */

/* One layer of the live chain as the plan sees it; [0] is the active one. */
typedef struct vd_snap_layer {
    long long time_ms;  /* when it was frozen */
    int named;          /* vd_snap.kept: stays until discarded */
    int pinned;         /* a layer off the chain is built on it */
    int ours;           /* vd_snap_ours */
} vd_snap_layer;

/* The next merge that `keep` asks for on chain[0..n-1]: 1 with the range
 * in *top and *base (commit chain[*top] .. chain[*base - 1] into
 * chain[*base]: the points *top + 1 .. *base go, point *top's state moves
 * into chain[*base]'s file), or 0 when nothing is to be merged. */
int vd_snap_plan(const vd_snap_layer *chain, int n, const vd_snap_keep *keep, long long now_ms,
                 int *top, int *base);

#endif
