/* SPDX-License-Identifier: MIT */
/*
 * snap.c - recovery points of a desktop's disk: the index, the list, and
 * the three ways the chain changes (take, revert, merge). snap.h has the
 * rules every function keeps.
 */
#include "snap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jsonfile.h"
#include "statedir.h"

#define INDEX_MAX_BYTES (1 << 20)
#define INDEX_MAX 1000
#define INDEX_FIX "; move it aside (its snapshots are then listed as 'unknown') and try again"

static const char *origin_names[] = { "unknown", "eviction", "schedule", "hand", "revert", "base", "merging" };

const char *vd_snap_origin_name(vd_snap_origin o)
{
    return o <= VD_SNAP_MERGING ? origin_names[o] : "unknown";
}

static int origin_parse(const char *s, vd_snap_origin *o)
{
    for (int i = VD_SNAP_EVICTION; i <= VD_SNAP_MERGING; i++)
        if (i != VD_SNAP_BASE && !strcmp(s, origin_names[i])) {
            *o = (vd_snap_origin)i;
            return 0;
        }
    return -1;
}

int vd_snap_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= VD_SNAP_NAME_MAX || name[0] == '.' || name[0] == '-')
        return 0;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* DIR/DOM-DIGITS.qcow2, the names vdesk gives its layers: another
 * desktop's "DOM-2-..." or "DOM-revert-..." is not one. (Releases before
 * 0.6 named a fallback's layer DOM-revert-DIGITS: such a file is now read
 * like the site's, never written or removed.) */
int vd_snap_ours(const char *path, const char *dir, const char *dom)
{
    size_t d = strlen(dir), m = strlen(dom);
    if (strncmp(path, dir, d) || path[d] != '/' || strncmp(path + d + 1, dom, m) || path[d + 1 + m] != '-')
        return 0;
    const char *tag = path + d + 1 + m + 1;
    size_t digits = strspn(tag, "0123456789");
    return digits > 0 && !strcmp(tag + digits, ".qcow2");
}

/* --- a layer's own header: what it is built on ---------------------------- */

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* The backing file named in a qcow2 header (docs/interop/qcow2.txt in
 * QEMU: the name's offset at byte 8, its length at 16), as a path: a
 * relative name is relative to the layer's directory. "" for none; -2 for
 * a file that is no qcow2 layer at all (nothing can read through it). */
static int backing_of(const char *path, char *out, size_t size, vd_err *err)
{
    unsigned char h[20];
    char name[1024];
    out[0] = '\0';
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return vd_err_set(err, "%s: cannot open: %s", path, strerror(errno));
    int rc = 0;
    if (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) || memcmp(h, "QFI\xfb", 4)) {
        close(fd);
        vd_err_set(err, "%s: not a qcow2 layer", path);
        return -2;
    }
    uint64_t off = rc == 0 ? be(h + 8, 8) : 0;
    uint64_t len = rc == 0 ? be(h + 16, 4) : 0;
    if (rc == 0 && off && (len == 0 || len >= sizeof(name) || off > (uint64_t)1 << 30))
        rc = vd_err_set(err, "%s: its backing file name is out of range", path);
    if (rc == 0 && off && pread(fd, name, (size_t)len, (off_t)off) != (ssize_t)len)
        rc = vd_err_set(err, "%s: cannot read its backing file name", path);
    close(fd);
    if (rc < 0 || !off)
        return rc;
    name[len] = '\0';
    const char *slash = strrchr(path, '/');
    int w = name[0] == '/' || !slash ? snprintf(out, size, "%s", name)
                                     : snprintf(out, size, "%.*s/%s", (int)(slash - path), path, name);
    return w < 0 || (size_t)w >= size ? vd_err_set(err, "%s: backing file path too long", path) : 0;
}

static long long bytes_of(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 ? (long long)st.st_blocks * 512 : -1;
}

/* --- the index: DIR/DOM.snapshots.json ------------------------------------ */

typedef struct idx {
    vd_snap *e;
    int n;
} idx;

static void idx_name(char *buf, size_t size, const char *dom)
{
    snprintf(buf, size, "%s.snapshots.json", dom);
}

static int idx_add(idx *x, const vd_snap *s, vd_err *err)
{
    if (x->n >= INDEX_MAX)
        return vd_err_set(err, "more than %d snapshots in the index", INDEX_MAX);
    vd_snap *e = realloc(x->e, (size_t)(x->n + 1) * sizeof(*e));
    if (!e)
        return vd_err_set(err, "out of memory");
    x->e = e;
    x->e[x->n++] = *s;
    return 0;
}

static vd_snap *idx_by_layer(idx *x, const char *layer)
{
    for (int i = 0; i < x->n; i++)
        if (!strcmp(x->e[i].layer, layer))
            return &x->e[i];
    return NULL;
}

static void idx_drop(idx *x, const char *layer)
{
    for (int i = 0; i < x->n; i++)
        if (!strcmp(x->e[i].layer, layer)) {
            x->e[i] = x->e[--x->n];
            return;
        }
}

/* One entry, checked like everything read from disk. A label attaches
 * only to a layer that the chain or the directory shows (snap_of), so a
 * layer path elsewhere (the base a first snapshot froze) is harmless; it
 * must still be absolute, without "..", and the name one vdesk gives. */
static int entry_parse(json_object *o, vd_snap *s)
{
    const char *name = vd_json_str(o, "name"), *layer = vd_json_str(o, "layer"), *origin = vd_json_str(o, "origin");
    long long t = 0, job = 0;
    json_object *kept;
    memset(s, 0, sizeof(*s));
    if (!name || !layer || !origin || vd_json_int(o, "time_ms", &t) < 0 || vd_json_int(o, "job", &job) < 0 ||
        !vd_snap_name_ok(name) || layer[0] != '/' || strstr(layer, "/../") || strlen(layer) >= sizeof(s->layer) ||
        origin_parse(origin, &s->origin) < 0 || t < 0 || job < 0 || job > UINT32_MAX ||
        !json_object_object_get_ex(o, "kept", &kept) || !json_object_is_type(kept, json_type_boolean))
        return -1;
    s->kept = json_object_get_boolean(kept);
    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->layer, sizeof(s->layer), "%s", layer);
    s->time_ms = t;
    s->job = (unsigned)job;
    return 0;
}

static int idx_load(const char *dir, const char *dom, idx *x, vd_err *err)
{
    char name[320], path[PATH_MAX + 320];
    json_object *o = NULL, *arr;
    memset(x, 0, sizeof(*x));
    idx_name(name, sizeof(name), dom);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (vd_json_file_load(path, INDEX_MAX_BYTES, INDEX_FIX, &o, err) < 0)
        return -1;
    if (!o)
        return 0;
    int rc = 0;
    long long version = 0;
    if (vd_json_int(o, "version", &version) < 0 || version != 1 || !json_object_object_get_ex(o, "snapshots", &arr) ||
        !json_object_is_type(arr, json_type_array))
        rc = vd_err_set(err, "%s: not a vdesk snapshot index (version 1 with a snapshots array)" INDEX_FIX, path);
    for (size_t i = 0; rc == 0 && i < json_object_array_length(arr); i++) {
        vd_snap s;
        if (entry_parse(json_object_array_get_idx(arr, i), &s) < 0)
            rc = vd_err_set(err, "%s: entry %zu is not a snapshot vdesk wrote" INDEX_FIX, path, i);
        else
            rc = idx_add(x, &s, err);
    }
    json_object_put(o);
    if (rc < 0) {
        free(x->e);
        memset(x, 0, sizeof(*x));
    }
    return rc;
}

static json_object *entry_json(const vd_snap *s)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    if (json_object_object_add(o, "name", json_object_new_string(s->name)) < 0 ||
        json_object_object_add(o, "layer", json_object_new_string(s->layer)) < 0 ||
        json_object_object_add(o, "time_ms", json_object_new_int64(s->time_ms)) < 0 ||
        json_object_object_add(o, "origin", json_object_new_string(vd_snap_origin_name(s->origin))) < 0 ||
        json_object_object_add(o, "job", json_object_new_int64(s->job)) < 0 ||
        json_object_object_add(o, "kept", json_object_new_boolean(s->kept)) < 0) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static int idx_save(const char *dir, const char *dom, const idx *x, vd_err *err)
{
    char name[320];
    idx_name(name, sizeof(name), dom);
    json_object *o = json_object_new_object(), *arr = json_object_new_array();
    int rc = o && arr && json_object_object_add(o, "version", json_object_new_int(1)) == 0 &&
             json_object_object_add(o, "desktop", json_object_new_string(dom)) == 0 ? 0 : -1;
    for (int i = 0; rc == 0 && i < x->n; i++) {
        json_object *e = entry_json(&x->e[i]);
        rc = e && json_object_array_add(arr, e) == 0 ? 0 : -1;
        if (rc < 0)
            json_object_put(e);
    }
    if (rc == 0 && json_object_object_add(o, "snapshots", arr) == 0)
        arr = NULL;
    else
        rc = -1;
    if (rc == 0)
        rc = vd_json_file_save(dir, name, o, err);
    else
        vd_err_set(err, "%s/%s: out of memory writing it", dir, name);
    json_object_put(arr);
    json_object_put(o);
    return rc;
}

/* --- the layers: the live chain and the files off it ----------------------- */

typedef struct layers {
    char **chain;   /* libvirt's, active first */
    int n;
    char **off;     /* this desktop's layers in DIR that the chain does not have */
    int noff;
} layers;

static void layers_free(layers *l)
{
    vd_hv_names_free(l->chain, l->n);
    vd_hv_names_free(l->off, l->noff);
    memset(l, 0, sizeof(*l));
}

static int in(char **list, int n, const char *path)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], path))
            return i;
    return -1;
}

static int off_add(layers *l, const char *path, vd_err *err)
{
    char **v = realloc(l->off, (size_t)(l->noff + 1) * sizeof(*v));
    if (!v)
        return vd_err_set(err, "out of memory");
    l->off = v;
    if (!(l->off[l->noff] = strdup(path)))
        return vd_err_set(err, "out of memory");
    l->noff++;
    return 0;
}

static int layers_read(vd_hv *hv, const char *dom, const char *dir, layers *l, vd_err *err)
{
    memset(l, 0, sizeof(*l));
    if (vd_hv_disk_chain(hv, dom, &l->chain, &l->n, err) < 0)
        return -1;
    if (l->n == 0) {
        layers_free(l);
        return vd_err_set(err, "VM %s: its first disk has no file: vdesk snapshots file-backed disks only", dom);
    }
    DIR *d = opendir(dir);
    if (!d && errno == ENOENT)
        return 0;
    if (!d)
        return vd_err_set(err, "%s: cannot list: %s", dir, strerror(errno));
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
            continue;
        if (vd_snap_ours(path, dir, dom) && in(l->chain, l->n, path) < 0)
            rc = off_add(l, path, err);
    }
    closedir(d);
    if (rc < 0)
        layers_free(l);
    return rc;
}

/* Whether two paths name one file (the same inode): a backing name may be
 * spelt otherwise than libvirt spells the chain ("./x", "a//x"). */
static int same_file(const char *a, const char *b)
{
    struct stat x, y;
    if (!strcmp(a, b))
        return 1;
    return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

static int in_chain(const layers *l, const char *path)
{
    for (int i = 0; i < l->n; i++)
        if (same_file(l->chain[i], path))
            return i;
    return -1;
}

/* Marks the layers of the chain that a layer off it reads through: its
 * backing files are followed, whatever and wherever they are, until one is
 * in the chain. A layer whose backing cannot be read pins nothing only if
 * it is no qcow2 layer at all; otherwise nothing is merged (fail closed). */
static int pins_find(const layers *l, int *pinned, vd_err *err)
{
    for (int i = 0; i < l->noff; i++) {
        char cur[PATH_MAX], b[PATH_MAX];
        snprintf(cur, sizeof(cur), "%s", l->off[i]);
        for (int depth = 0; depth < 64; depth++) {
            int rc = backing_of(cur, b, sizeof(b), err);
            if (rc == -2 && depth == 0)
                break;
            if (rc < 0)
                return vd_err_prefix(err, "cannot tell what %s reads through, so no layer is merged (discard "
                                     "it if it is not needed)", l->off[i]);
            int k = b[0] ? in_chain(l, b) : -1;
            if (k >= 0)
                pinned[k] = 1;
            if (!b[0] || k >= 0)
                break;
            snprintf(cur, sizeof(cur), "%s", b);
        }
    }
    return 0;
}

/* snapshot_dir as libvirt spells the paths it keeps (virFileSanitizePath):
 * no "//", no trailing "/". */
static const char *dir_norm(const char *dir, char *buf, size_t size)
{
    size_t n = 0;
    for (const char *p = dir; *p && n + 1 < size; p++)
        if (!(*p == '/' && n && buf[n - 1] == '/'))
            buf[n++] = *p;
    while (n > 1 && buf[n - 1] == '/')
        n--;
    buf[n] = '\0';
    return buf;
}

/* --- the list -------------------------------------------------------------- */

static void stamp(char *buf, size_t size, long long ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!localtime_r(&t, &tm) || !strftime(buf, size, "%Y%m%d-%H%M%S", &tm))
        snprintf(buf, size, "%lld", ms);
}

/* What the index says of `layer`, or a label from the file itself. */
static void snap_of(const idx *x, const char *layer, const char *dir, const char *dom, vd_snap *s)
{
    const vd_snap *e = idx_by_layer((idx *)x, layer);
    if (e) {
        *s = *e;
    } else {
        memset(s, 0, sizeof(*s));
        snprintf(s->layer, sizeof(s->layer), "%s", layer);
        struct stat st;
        s->time_ms = lstat(layer, &st) == 0 ? (long long)st.st_mtime * 1000 : 0;
        /* DIR/DOM-TAG.qcow2 is known as TAG. */
        size_t skip = strlen(dir) + 1 + strlen(dom) + 1;
        if (vd_snap_ours(layer, dir, dom))
            snprintf(s->name, sizeof(s->name), "%.*s", (int)(strlen(layer) - skip - 6), layer + skip);
        else
            snprintf(s->name, sizeof(s->name), "unknown-%lld", s->time_ms / 1000);
    }
    s->bytes = bytes_of(layer);
}

static int by_time_desc(const void *a, const void *b)
{
    const vd_snap *x = a, *y = b;
    return x->time_ms < y->time_ms ? 1 : x->time_ms > y->time_ms ? -1 : 0;
}

static int list_build(const layers *l, const idx *x, const char *dir, const char *dom, vd_snap **out,
                      int *n, vd_err *err)
{
    int total = l->n - 1 + l->noff;
    vd_snap *v = calloc((size_t)(total > 0 ? total : 1), sizeof(*v));
    if (!v)
        return vd_err_set(err, "out of memory");
    for (int i = 1; i < l->n; i++) {
        snap_of(x, l->chain[i], dir, dom, &v[i - 1]);
        v[i - 1].depth = i;
        if (i == l->n - 1 && !vd_snap_ours(l->chain[i], dir, dom) && !idx_by_layer((idx *)x, l->chain[i])) {
            snprintf(v[i - 1].name, sizeof(v[i - 1].name), "base");
            v[i - 1].origin = VD_SNAP_BASE;
        }
    }
    for (int i = 0; i < l->noff; i++)
        snap_of(x, l->off[i], dir, dom, &v[l->n - 1 + i]);
    qsort(v + l->n - 1, (size_t)l->noff, sizeof(*v), by_time_desc);
    *out = v;
    *n = total;
    return 0;
}

int vd_snap_list(vd_hv *hv, const char *dom, const char *dir, vd_snap **snaps, int *n, vd_err *err)
{
    layers l;
    idx x;
    char nd[PATH_MAX];
    dir = dir_norm(dir, nd, sizeof(nd));
    *snaps = NULL;
    *n = 0;
    if (idx_load(dir, dom, &x, err) < 0)
        return -1;
    if (layers_read(hv, dom, dir, &l, err) < 0) {
        free(x.e);
        return -1;
    }
    int rc = list_build(&l, &x, dir, dom, snaps, n, err);
    layers_free(&l);
    free(x.e);
    return rc;
}

const vd_snap *vd_snap_find(const vd_snap *snaps, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(snaps[i].name, name))
            return &snaps[i];
    return NULL;
}

/* --- taking one ------------------------------------------------------------ */

static int name_taken(const layers *l, const idx *x, const char *dir, const char *dom, const char *name)
{
    vd_snap *v = NULL;
    int n = 0;
    vd_err ignored;
    if (list_build(l, x, dir, dom, &v, &n, &ignored) < 0)
        return 1;
    int taken = vd_snap_find(v, n, name) != NULL || !strcmp(name, "base");
    free(v);
    return taken;
}

/* "job12-20261130-203015", "schedule-…", "hand-…", "before-revert-…", made
 * unique with "-2", "-3" (two within a second). */
static int name_make(const layers *l, const idx *x, const char *dir, const char *dom, vd_snap_origin origin,
                     unsigned job, long long now, char *out, size_t size, vd_err *err)
{
    char when[32], base[VD_SNAP_NAME_MAX];
    stamp(when, sizeof(when), now);
    if (origin == VD_SNAP_EVICTION)
        snprintf(base, sizeof(base), "job%u-%s", job, when);
    else
        snprintf(base, sizeof(base), "%s-%s", origin == VD_SNAP_REVERT ? "before-revert"
                 : vd_snap_origin_name(origin), when);
    for (int i = 1; i < 100; i++) {
        if (i == 1)
            snprintf(out, size, "%s", base);
        else
            snprintf(out, size, "%.50s-%d", base, i);
        if (!name_taken(l, x, dir, dom, out))
            return 0;
    }
    return vd_err_set(err, "no free snapshot name after %s-99", base);
}

/* A tag for the new overlay's file that no file in `dir` has. */
static void tag_make(const char *dir, const char *dom, char *tag, size_t size)
{
    for (long long ms = vd_now_ms();; ms++) {
        char path[PATH_MAX];
        struct stat st;
        snprintf(tag, size, "%lld", ms);
        if (snprintf(path, sizeof(path), "%s/%s-%s.qcow2", dir, dom, tag) >= (int)sizeof(path) ||
            lstat(path, &st) < 0)
            return;
    }
}

int vd_snap_take(vd_hv *hv, const char *dom, const char *dir, vd_snap_origin origin, unsigned job,
                 const char *name, vd_snap *made, vd_err *err)
{
    layers l;
    idx x;
    char nd[PATH_MAX];
    dir = dir_norm(dir, nd, sizeof(nd));
    memset(made, 0, sizeof(*made));
    if (name && !vd_snap_name_ok(name))
        return vd_err_set(err, "snapshot name '%s': use 1 to 63 letters, digits, '.', '_' or '-', not "
                          "starting with '.' or '-'", name);
    if (layers_read(hv, dom, dir, &l, err) < 0)
        return -1;
    vd_err why;
    int indexed = idx_load(dir, dom, &x, &why);
    long long now = vd_now_ms();
    int rc = 0;
    if (name && indexed == 0 && name_taken(&l, &x, dir, dom, name))
        rc = vd_err_set(err, "desktop %s already has a snapshot called %s: choose another name", dom, name);
    else if (name)
        snprintf(made->name, sizeof(made->name), "%s", name);
    else if (indexed == 0)
        rc = name_make(&l, &x, dir, dom, origin, job, now, made->name, sizeof(made->name), err);
    char tag[32];
    tag_make(dir, dom, tag, sizeof(tag));
    if (rc == 0)
        rc = vd_hv_disk_snapshot(hv, dom, dir, tag, made->layer, sizeof(made->layer), err);
    if (rc == 0) {
        made->time_ms = now;
        made->origin = origin;
        made->job = job;
        made->kept = name != NULL;
        made->depth = 1;
        made->bytes = bytes_of(made->layer);
        /* The layer exists whatever the index says; it only lacks its label. */
        if (indexed < 0)
            rc = 1, *err = why;
        else if (idx_add(&x, made, &why) < 0 || idx_save(dir, dom, &x, &why) < 0)
            rc = 1, *err = why;
    }
    if (indexed == 0)
        free(x.e);
    layers_free(&l);
    return rc;
}

/* --- revert ---------------------------------------------------------------- */

int vd_snap_revert(vd_hv *hv, const char *dom, const char *dir, const char *layer, char *kept,
                   size_t kept_size, vd_err *err)
{
    layers l;
    idx x;
    vd_err why;
    char nd[PATH_MAX];
    dir = dir_norm(dir, nd, sizeof(nd));
    kept[0] = '\0';
    /* The restore's last resort must not depend on a label file: without
     * a readable index the revert goes on, unlabelled. */
    int indexed = idx_load(dir, dom, &x, &why);
    if (indexed < 0)
        memset(&x, 0, sizeof(x));
    if (layers_read(hv, dom, dir, &l, err) < 0) {
        free(x.e);
        return -1;
    }
    int rc = 0;
    vd_snap was = { .origin = VD_SNAP_REVERT, .kept = 1 };
    const vd_snap *to = idx_by_layer(&x, layer);
    if (in(l.chain, l.n, layer) < 1 && in(l.off, l.noff, layer) < 0)
        rc = vd_err_set(err, "%s is not a recovery point of %s", layer, dom);
    else if (to && to->origin == VD_SNAP_MERGING)
        rc = vd_err_set(err, "%s was being merged when a merge stopped half way: it is no recovery point; "
                        "'vdeskctl flatten' removes it", layer);
    else if (!vd_snap_ours(l.chain[0], dir, dom))
        rc = vd_err_set(err, "the disk %s runs on, %s, is not a layer vdesk made: a revert would leave it where "
                        "'vdeskctl snapshots' cannot show it; take a snapshot first, then revert", dom, l.chain[0]);
    snprintf(was.layer, sizeof(was.layer), "%s", l.chain[0]);
    was.time_ms = vd_now_ms();
    if (rc == 0)
        rc = name_make(&l, &x, dir, dom, VD_SNAP_REVERT, 0, was.time_ms, was.name, sizeof(was.name), err);
    char tag[40];
    tag_make(dir, dom, tag, sizeof(tag));
    if (rc == 0)
        rc = vd_hv_disk_revert(hv, dom, layer, dir, tag, err);
    /* The state left behind stays on disk with or without its label: a
     * crash here lists it as "unknown", never loses it. */
    if (rc == 0) {
        snprintf(kept, kept_size, "%s", was.name);
        idx_drop(&x, was.layer);
        if (indexed < 0 || idx_add(&x, &was, &why) < 0 || idx_save(dir, dom, &x, &why) < 0) {
            /* Listed then by its file's tag, as snap_of names it. */
            vd_snap as;
            snap_of(&(idx){ .e = NULL, .n = 0 }, l.chain[0], dir, dom, &as);
            snprintf(kept, kept_size, "%s", as.name);
        }
    }
    layers_free(&l);
    free(x.e);
    return rc;
}

/* --- merging --------------------------------------------------------------- */

static int keeps(const vd_snap_layer *c, int j, int rank, const vd_snap_keep *keep, long long now)
{
    return j == 1 || c[j].named || rank <= keep->n || (keep->age_ms > 0 && now - c[j].time_ms < keep->age_ms);
}

int vd_snap_plan(const vd_snap_layer *c, int n, const vd_snap_keep *keep, long long now, int *top, int *base)
{
    int rank = 0, p = -1;
    /* Point j can go when the plan keeps it not, and its file may be
     * written into (ours, nothing built on it); the base (n - 1) never. */
    for (int j = 1; j < n; j++) {
        if (!c[j].named)
            rank++;
        int go = j < n - 1 && !keeps(c, j, rank, keep, now) && c[j].ours && !c[j].pinned;
        if (go && p < 0)
            p = j;
        if (p >= 0 && (!go || j == n - 1)) {
            int q = go ? j : j - 1;
            /* The layer above the run is removed once merged down. */
            if (c[p - 1].ours && !c[p - 1].pinned) {
                *top = p - 1;
                *base = q;
                return 1;
            }
            p = -1;
        }
    }
    return 0;
}

/* The plan's view of the live chain. */
static int plan_layers(const layers *l, const idx *x, const char *dir, const char *dom, const char *protect,
                       vd_snap_layer **out, vd_err *err)
{
    vd_snap_layer *c = calloc((size_t)l->n, sizeof(*c));
    int *pinned = calloc((size_t)l->n, sizeof(*pinned));
    int rc = c && pinned ? pins_find(l, pinned, err) : vd_err_set(err, "out of memory");
    for (int i = 0; rc == 0 && i < l->n; i++) {
        vd_snap s;
        snap_of(x, l->chain[i], dir, dom, &s);
        /* The journal's recovery point, while the desktop is away, is the
         * restore's fallback: its file stays as it is. */
        int kept_for_restore = protect && protect[0] && same_file(l->chain[i], protect);
        c[i] = (vd_snap_layer){ .time_ms = s.time_ms, .pinned = pinned[i] || kept_for_restore,
                                .named = s.kept,
                                .ours = vd_snap_ours(l->chain[i], dir, dom) };
    }
    free(pinned);
    if (rc < 0) {
        free(c);
        return -1;
    }
    *out = c;
    return 0;
}

/* Before a commit, the layers whose state it ends (top+1 .. base: base is
 * written into, the others leave the chain) are labelled "merging": a
 * crash or an aborted job may leave them half merged or off the chain,
 * and such a layer is never a recovery point again (revert refuses it,
 * flatten removes it once it is off the chain). */
static int merge_mark(const layers *l, idx *x, const char *dir, const char *dom, int top, int base, vd_err *err)
{
    for (int i = top + 1; i <= base; i++) {
        vd_snap s;
        snap_of(x, l->chain[i], dir, dom, &s);
        s.origin = VD_SNAP_MERGING;
        s.kept = 0;
        idx_drop(x, l->chain[i]);
        if (idx_add(x, &s, err) < 0)
            return -1;
    }
    return idx_save(dir, dom, x, err) < 0 ? vd_err_prefix(err, "no layer merged") : 0;
}

/* Commits chain[top .. base-1] into chain[base], then removes the files
 * the chain, read again, no longer has; point `top`'s label moves to the
 * file that now holds its state. */
static int merge(vd_hv *hv, const char *dom, const char *dir, const layers *l, idx *x, int top, int base,
                 int timeout_ms, vd_err *err)
{
    if (merge_mark(l, x, dir, dom, top, base, err) < 0 ||
        vd_hv_disk_commit(hv, dom, l->chain[top], l->chain[base], timeout_ms, err) < 0)
        return -1;
    char **now = NULL;
    int m = 0;
    if (vd_hv_disk_chain(hv, dom, &now, &m, err) < 0)
        return vd_err_prefix(err, "after merging into %s; no layer removed", l->chain[base]);
    vd_snap moved;
    int labelled = idx_by_layer(x, l->chain[top]) != NULL;
    if (labelled)
        moved = *idx_by_layer(x, l->chain[top]);
    int rc = 0;
    for (int i = top; i < base && rc == 0; i++)
        if (in(now, m, l->chain[i]) >= 0)
            rc = vd_err_set(err, "%s is still in the disk chain of %s after the merge: no layer removed",
                            l->chain[i], dom);
    for (int i = top; i <= base && rc == 0; i++) {
        idx_drop(x, l->chain[i]);
        if (i < base && unlink(l->chain[i]) < 0 && errno != ENOENT)
            rc = vd_err_set(err, "%s: merged, but cannot remove: %s", l->chain[i], strerror(errno));
    }
    vd_hv_names_free(now, m);
    if (labelled) {
        snprintf(moved.layer, sizeof(moved.layer), "%s", l->chain[base]);
        vd_err why;
        if (idx_add(x, &moved, &why) < 0 && rc == 0)
            rc = vd_err_set(err, "%s", why.msg);
    }
    vd_err why;
    if (idx_save(dir, dom, x, &why) < 0 && rc == 0)
        rc = vd_err_set(err, "%s", why.msg);
    return rc;
}

/* One planned merge, or 0 when the plan has none; `pick` overrides the
 * plan (a discard names its point). */
static int merge_next(vd_hv *hv, const char *dom, const char *dir, const vd_snap_keep *keep, const char *pick,
                      const char *protect, int timeout_ms, int *merged, vd_err *err)
{
    layers l;
    idx x;
    vd_snap_layer *c = NULL;
    int top = 0, base = 0, rc;
    if (idx_load(dir, dom, &x, err) < 0)
        return -1;
    if (layers_read(hv, dom, dir, &l, err) < 0) {
        free(x.e);
        return -1;
    }
    rc = plan_layers(&l, &x, dir, dom, protect, &c, err);
    if (rc == 0 && pick) {
        int j = in(l.chain, l.n, pick);
        const char *why = j < 1 ? "it is not in the disk's chain"
                          : j == 1 ? "the desktop runs on it; take a newer snapshot first"
                          : j == l.n - 1 || !c[j].ours ? "it is the site's disk, which vdesk never writes"
                          : protect && protect[0] && same_file(l.chain[j], protect)
                              ? "it is the recovery point of the eviction the desktop is away for"
                          : c[j].pinned ? "a layer kept off the chain reads through it; discard that first"
                          : !c[j - 1].ours ? "the layer above it is not vdesk's, and would have to be removed"
                          : c[j - 1].pinned ? "a layer kept off the chain reads through the layer above it; discard that first"
                          : NULL;
        if (why)
            rc = vd_err_set(err, "%s cannot be merged away: %s", pick, why);
        else
            top = j - 1, base = j, rc = 1;
    } else if (rc == 0) {
        rc = vd_snap_plan(c, l.n, keep, vd_now_ms(), &top, &base);
    }
    if (rc == 1) {
        rc = merge(hv, dom, dir, &l, &x, top, base, timeout_ms, err) < 0 ? -1 : 1;
        if (rc == 1)
            *merged += base - top;
    }
    free(c);
    layers_free(&l);
    free(x.e);
    return rc;
}

static int built_on(const layers *l, const char *layer, char *by, size_t size, vd_err *err);

/* Layers a merge left off the chain half done (a crash, an aborted job):
 * labelled "merging", never a recovery point; removed once nothing off the
 * chain reads through them. */
static int leftovers_remove(vd_hv *hv, const char *dom, const char *dir, vd_err *err)
{
    layers l;
    idx x;
    if (idx_load(dir, dom, &x, err) < 0)
        return -1;
    if (layers_read(hv, dom, dir, &l, err) < 0) {
        free(x.e);
        return -1;
    }
    int rc = 0, gone = 0;
    for (int i = 0; rc == 0 && i < l.noff; i++) {
        const vd_snap *e = idx_by_layer(&x, l.off[i]);
        char by[PATH_MAX];
        int b = e && e->origin == VD_SNAP_MERGING ? built_on(&l, l.off[i], by, sizeof(by), err) : 1;
        if (b < 0)
            rc = -1;
        else if (b == 0 && unlink(l.off[i]) < 0 && errno != ENOENT)
            rc = vd_err_set(err, "%s: left by an interrupted merge, cannot remove: %s", l.off[i], strerror(errno));
        else if (b == 0)
            idx_drop(&x, l.off[i]), gone++;
    }
    if (gone && idx_save(dir, dom, &x, err) < 0)
        rc = -1;
    layers_free(&l);
    free(x.e);
    return rc;
}

static const char *dir_norm(const char *dir, char *buf, size_t size);

int vd_snap_flatten(vd_hv *hv, const char *dom, const char *dir, const vd_snap_keep *keep, const char *protect,
                    int timeout_ms, int *merged, vd_err *err)
{
    char nd[PATH_MAX];
    int rc;
    dir = dir_norm(dir, nd, sizeof(nd));
    *merged = 0;
    /* Each merge changes the chain: plan again on the chain as it is. */
    for (int i = 0; i < 100 && (rc = merge_next(hv, dom, dir, keep, NULL, protect, timeout_ms, merged, err)) == 1;
         i++)
        ;
    return rc < 0 || leftovers_remove(hv, dom, dir, err) < 0 ? -1 : 0;
}

/* Whether another layer off the chain is built on `layer`. */
static int built_on(const layers *l, const char *layer, char *by, size_t size, vd_err *err)
{
    for (int i = 0; i < l->noff; i++) {
        char b[PATH_MAX];
        if (!strcmp(l->off[i], layer))
            continue;
        int rc = backing_of(l->off[i], b, sizeof(b), err);
        if (rc == -2)
            continue;   /* no qcow2 layer: it reads through nothing */
        if (rc < 0)
            return vd_err_prefix(err, "cannot tell whether it reads through %s", layer);
        if (b[0] && same_file(b, layer)) {
            snprintf(by, size, "%s", l->off[i]);
            return 1;
        }
    }
    return 0;
}

static int discard_off(const layers *l, idx *x, const char *dir, const char *dom, const vd_snap *s,
                       vd_err *err)
{
    char by[PATH_MAX];
    int b = built_on(l, s->layer, by, sizeof(by), err);
    if (b < 0)
        return -1;
    if (b > 0) {
        vd_snap o;
        snap_of(x, by, dir, dom, &o);
        return vd_err_set(err, "snapshot %s of %s is what snapshot %s is built on: discard %s first", s->name,
                          dom, o.name, o.name);
    }
    if (unlink(s->layer) < 0 && errno != ENOENT)
        return vd_err_set(err, "%s: cannot remove: %s", s->layer, strerror(errno));
    idx_drop(x, s->layer);
    return idx_save(dir, dom, x, err);
}

int vd_snap_discard(vd_hv *hv, const char *dom, const char *dir, const char *name, const char *protect,
                    int timeout_ms, vd_err *err)
{
    char nd[PATH_MAX];
    dir = dir_norm(dir, nd, sizeof(nd));
    layers l;
    idx x;
    vd_snap *v = NULL;
    int n = 0, merged = 0;
    if (idx_load(dir, dom, &x, err) < 0)
        return -1;
    if (layers_read(hv, dom, dir, &l, err) < 0) {
        free(x.e);
        return -1;
    }
    int rc = list_build(&l, &x, dir, dom, &v, &n, err);
    const vd_snap *s = rc == 0 ? vd_snap_find(v, n, name) : NULL;
    if (rc == 0 && !s)
        rc = vd_err_set(err, "desktop %s has no snapshot called %s: 'vdeskctl snapshots %s' lists them", dom,
                        name, dom);
    else if (rc == 0 && protect && protect[0] && same_file(s->layer, protect))
        rc = vd_err_set(err, "snapshot %s is the recovery point of the eviction desktop %s is away for: discard "
                        "it once the desktop is back", name, dom);
    else if (rc == 0 && !vd_snap_ours(s->layer, dir, dom))
        rc = vd_err_set(err, "%s is the site's disk under every snapshot of %s: vdesk never removes it", name, dom);
    else if (rc == 0 && s->depth == 0)
        rc = discard_off(&l, &x, dir, dom, s, err);
    char layer[PATH_MAX];
    if (rc == 0 && s->depth > 0)
        snprintf(layer, sizeof(layer), "%s", s->layer);
    int on_chain = rc == 0 && s->depth > 0;
    free(v);
    layers_free(&l);
    free(x.e);
    if (on_chain)
        rc = merge_next(hv, dom, dir, NULL, layer, protect, timeout_ms, &merged, err) < 0 ? -1 : 0;
    return rc;
}
