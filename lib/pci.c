/* SPDX-License-Identifier: MIT */
#include "pci.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "sysfs.h"

#define VFIO "vfio-pci"
#define CLASS_BRIDGE 0x0604
#define CLASS_DISPLAY 0x03
#define VENDOR_NVIDIA 0x10de
#define VENDOR_SEPARATORS ", \t"

static void sleep_ms(int ms)
{
    nanosleep(&(struct timespec){ .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L }, NULL);
}

typedef struct write_arg {
    const char *path, *value;
} write_arg;

/* Runs in the child: one write, whose errno is the answer. */
static int write_child(void *arg, vd_err *err)
{
    const write_arg *a = arg;
    int fd = open(a->path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return vd_err_set(err, "%s", strerror(errno));
    if (write(fd, a->value, strlen(a->value)) < 0) {
        int e = errno;
        close(fd);
        return vd_err_set(err, "%s", strerror(e));
    }
    return close(fd) < 0 ? vd_err_set(err, "%s", strerror(errno)) : 0;
}

/* Writes `value` to `path` in a child process and waits up to timeout_ms. */
static int timed_write(const char *path, const char *value, int timeout_ms, vd_err *err)
{
    write_arg a = { .path = path, .value = value };
    if (vd_child_run(write_child, &a, timeout_ms, err) < 0) {
        if (!strncmp(err->msg, "hung", 4))
            vd_err_prefix(err, "the driver does not let go (see dmesg)");
        return -1;
    }
    return 0;
}

/* The name of the driver bound to `bdf`, or "" (none). */
void vd_pci_driver(const vd_pci *p, const char *bdf, char *out, size_t size)
{
    char link[PATH_MAX], name[PATH_MAX];
    snprintf(link, sizeof(link), "%s/bus/pci/devices/%s/driver", p->sys, bdf);
    out[0] = '\0';
    if (vd_sysfs_link_name(link, name, sizeof(name)) < 0)
        return;
    if (snprintf(out, size, "%s", name) >= (int)size)
        snprintf(out, size, "?");   /* longer than any module name: not ours to guess */
}

/* The driver_override of `bdf` ("" when none: sysfs shows "(null)"). */
static void override_of(const vd_pci *p, const char *bdf, char *out, size_t size)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/driver_override", p->sys, bdf);
    if (vd_sysfs_line(path, out, size) < 0 || !strcmp(out, "(null)"))
        out[0] = '\0';
}

static int bdf_ok(const char *s)
{
    unsigned a, b, c, d;
    char tail;
    return strlen(s) == 12 && sscanf(s, "%4x:%2x:%2x.%1x%c", &a, &b, &c, &d, &tail) == 4;
}

int vd_pci_group_read(const vd_pci *p, const char *bdf, vd_pci_group *g, vd_err *err)
{
    char path[PATH_MAX], group[32];
    if (!bdf_ok(bdf))
        return vd_err_set(err, "'%s' is not a PCI address (0000:65:00.0)", bdf);
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/iommu_group", p->sys, bdf);
    if (vd_sysfs_link_name(path, group, sizeof(group)) < 0)
        return vd_err_set(err, "device %s: no IOMMU group (%s: %s); is the IOMMU on "
                          "(intel_iommu=on / amd_iommu=on)?", bdf, path, strerror(errno));
    memset(g, 0, sizeof(*g));
    g->id = atoi(group);
    snprintf(path, sizeof(path), "%s/kernel/iommu_groups/%d/devices", p->sys, g->id);
    DIR *d = opendir(path);
    if (!d)
        return vd_err_set(err, "device %s: cannot list IOMMU group %d (%s): %s", bdf, g->id, path, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (!bdf_ok(e->d_name))
            continue;
        if (g->n == VD_PCI_GROUP_MAX) {
            rc = vd_err_set(err, "IOMMU group %d has more than %d devices", g->id, VD_PCI_GROUP_MAX);
            break;
        }
        vd_pci_fn *f = &g->fns[g->n++];
        char cls[32] = "0";
        memcpy(f->bdf, e->d_name, sizeof(f->bdf));   /* bdf_ok: exactly 12 characters */
        vd_pci_driver(p, f->bdf, f->driver, sizeof(f->driver));
        override_of(p, f->bdf, f->override, sizeof(f->override));
        snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/class", p->sys, f->bdf);
        if (vd_sysfs_line(path, cls, sizeof(cls)) == 0)
            f->klass = (unsigned)strtoul(cls, NULL, 16);
    }
    closedir(d);
    return rc;
}

static unsigned read_hex(const char *sys, const char *bdf, const char *attr)
{
    char path[PATH_MAX], buf[32] = "0";
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/%s", sys, bdf, attr);
    vd_sysfs_line(path, buf, sizeof(buf));
    return (unsigned)strtoul(buf, NULL, 16);
}

static int read_int(const char *sys, const char *bdf, const char *attr, int dflt)
{
    char path[PATH_MAX], buf[32];
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/%s", sys, bdf, attr);
    return vd_sysfs_line(path, buf, sizeof(buf)) == 0 ? atoi(buf) : dflt;
}

void vd_pci_info_read(const vd_pci *p, const char *bdf, vd_pci_info *d)
{
    char path[PATH_MAX], name[32];
    memset(d, 0, sizeof(*d));
    memcpy(d->bdf, bdf, sizeof(d->bdf));
    d->vendor = read_hex(p->sys, bdf, "vendor");
    d->device = read_hex(p->sys, bdf, "device");
    d->klass = read_hex(p->sys, bdf, "class");
    vd_pci_driver(p, bdf, d->driver, sizeof(d->driver));
    d->numa = read_int(p->sys, bdf, "numa_node", -1);
    d->totalvfs = read_int(p->sys, bdf, "sriov_totalvfs", 0);
    d->numvfs = read_int(p->sys, bdf, "sriov_numvfs", 0);
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/local_cpulist", p->sys, bdf);
    vd_sysfs_line(path, d->cpulist, sizeof(d->cpulist));
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/iommu_group", p->sys, bdf);
    d->group = vd_sysfs_link_name(path, name, sizeof(name)) == 0 ? atoi(name) : -1;
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/physfn", p->sys, bdf);
    if (vd_sysfs_link_name(path, name, sizeof(name)) == 0 && bdf_ok(name))
        memcpy(d->physfn, name, sizeof(d->physfn));
}

static int by_bdf(const void *a, const void *b)
{
    return strcmp(((const vd_pci_info *)a)->bdf, ((const vd_pci_info *)b)->bdf);
}

int vd_pci_scan(const vd_pci *p, vd_pci_info **out, int *n, vd_err *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/bus/pci/devices", p->sys);
    DIR *d = opendir(path);
    if (!d)
        return vd_err_set(err, "%s: %s", path, strerror(errno));
    vd_pci_info *v = NULL;
    int count = 0, cap = 0, rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (!bdf_ok(e->d_name))
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 32;
            vd_pci_info *grown = realloc(v, (size_t)cap * sizeof(*v));
            if (!grown) {
                rc = vd_err_set(err, "out of memory scanning %s", path);
                break;
            }
            v = grown;
        }
        vd_pci_info_read(p, e->d_name, &v[count++]);
    }
    closedir(d);
    if (rc < 0) {
        free(v);
        return -1;
    }
    if (count)
        qsort(v, (size_t)count, sizeof(*v), by_bdf);
    *out = v;
    *n = count;
    return 0;
}

/* What an open file is, whatever path it was opened by. */
typedef struct file_id {
    mode_t type;     /* S_IFCHR, S_IFREG, ... */
    dev_t dev, rdev;
    ino_t ino;
} file_id;

/* The identity of the file `path` leads to. AT_STATX_DONT_SYNC: what is
 * compared never changes, and a process may hold a file of a network file
 * system whose server is gone, which a synced stat would wait for. */
static int file_id_of(const char *path, file_id *id)
{
    struct statx st;
    if (statx(AT_FDCWD, path, AT_STATX_DONT_SYNC, STATX_TYPE | STATX_INO, &st) < 0)
        return -1;
    id->type = st.stx_mode & S_IFMT;
    id->dev = makedev(st.stx_dev_major, st.stx_dev_minor);
    id->rdev = makedev(st.stx_rdev_major, st.stx_rdev_minor);
    id->ino = st.stx_ino;
    return 0;
}

/* A device file is its device, through whichever node (a container makes
 * its own /dev/nvidia0); any other file is itself, under whichever path (a
 * bind mount, a hard link). */
static int same_file(const file_id *a, const file_id *b)
{
    if (a->type != b->type)
        return 0;
    if (a->type == S_IFCHR || a->type == S_IFBLK)
        return a->rdev == b->rdev;
    return a->dev == b->dev && a->ino == b->ino;
}

/* Whether process `pid` has one of the files `nodes` open. */
static int holds(const char *pid, const file_id *nodes, int n)
{
    char fddir[PATH_MAX], fd[PATH_MAX * 2];
    snprintf(fddir, sizeof(fddir), "/proc/%s/fd", pid);
    DIR *fds = opendir(fddir);
    if (!fds)
        return 0;   /* gone, or not ours to see */
    struct dirent *f;
    int found = 0;
    while (!found && (f = readdir(fds))) {
        file_id id;
        snprintf(fd, sizeof(fd), "%s/%s", fddir, f->d_name);
        if (f->d_name[0] == '.' || file_id_of(fd, &id) < 0)
            continue;   /* closed since, or not ours to see */
        for (int i = 0; i < n && !found; i++)
            found = same_file(&nodes[i], &id);
    }
    closedir(fds);
    return found;
}

/* The next vendor id of a gpu_vendors list at *s, which moves past it.
 * Returns 1 (the id in *id), 0 (the end) or -1 (a bad entry at *s). */
static int next_vendor(const char **s, unsigned *id)
{
    char *end;
    *s += strspn(*s, VENDOR_SEPARATORS);
    if (!**s)
        return 0;
    if (!isxdigit((unsigned char)**s))
        return -1;   /* strtoul would take a sign */
    unsigned long v = strtoul(*s, &end, 16);
    if (v > 0xffff || (*end && !strchr(VENDOR_SEPARATORS, *end)))
        return -1;
    *id = (unsigned)v;
    *s = end;
    return 1;
}

int vd_pci_gpu_vendors_check(const char *list, vd_err *err)
{
    const char *s = list ? list : "";
    unsigned id;
    int r;
    while ((r = next_vendor(&s, &id)) > 0)
        ;
    if (r == 0)
        return 0;
    return vd_err_set(err, "gpu_vendors '%s': '%.*s' is not a PCI vendor id; write the hex ids of "
                      "the vendors whose GPUs Slurm counts, such as 0x10de,0x1002", list,
                      (int)strcspn(s, VENDOR_SEPARATORS), s);
}

/* Whether `vendor` makes gres GPUs: one of p->gpu_vendors, or NVIDIA when
 * the site lists none. */
static int gpu_vendor(const vd_pci *p, unsigned vendor)
{
    const char *s = p->gpu_vendors ? p->gpu_vendors : "";
    unsigned id;
    int any = 0;
    if (vd_pci_gpu_vendors_check(s, NULL) < 0)
        return 0;   /* none, rather than some: vd_pci_gpus names the bad entry */
    while (next_vendor(&s, &id) > 0) {
        if (id == vendor)
            return 1;
        any = 1;
    }
    return !any && vendor == VENDOR_NVIDIA;
}

int vd_pci_is_gpu(const vd_pci *p, const vd_pci_info *d)
{
    return (d->klass >> 16) == CLASS_DISPLAY && !d->physfn[0] && gpu_vendor(p, d->vendor);
}

static int by_name(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* Whether function `bdf` is a gres GPU, reading only the class of any
 * other than a display device: the prolog asks this for every GPU. */
static int gpu_at(const vd_pci *p, const char *bdf)
{
    char path[PATH_MAX], pf[32];
    vd_pci_info f = { .klass = read_hex(p->sys, bdf, "class") };
    if ((f.klass >> 16) != CLASS_DISPLAY)
        return 0;
    f.vendor = read_hex(p->sys, bdf, "vendor");
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/physfn", p->sys, bdf);
    if (vd_sysfs_link_name(path, pf, sizeof(pf)) == 0)
        snprintf(f.physfn, sizeof(f.physfn), "%.12s", pf);
    return vd_pci_is_gpu(p, &f);
}

int vd_pci_gpus(const vd_pci *p, vd_pci_gpu_list *l, vd_err *err)
{
    char path[PATH_MAX];
    if (vd_pci_gpu_vendors_check(p->gpu_vendors, err) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/bus/pci/devices", p->sys);
    DIR *d = opendir(path);
    if (!d)
        return vd_err_set(err, "%s: %s", path, strerror(errno));
    struct dirent *e;
    l->n = 0;
    while ((e = readdir(d)) && l->n < VD_PCI_GPUS_MAX)
        if (bdf_ok(e->d_name) && gpu_at(p, e->d_name))
            memcpy(l->bdf[l->n++], e->d_name, sizeof(l->bdf[0]));
    closedir(d);
    qsort(l->bdf, (size_t)l->n, sizeof(l->bdf[0]), by_name);
    return 0;
}

int vd_pci_gpu_list_index(const vd_pci_gpu_list *l, const char *bdf)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->bdf[i], bdf))
            return i;
    return -1;
}

int vd_pci_gpu_index(const vd_pci *p, const char *bdf, vd_err *err)
{
    vd_pci_gpu_list l;
    if (vd_pci_gpus(p, &l, err) < 0)
        return -1;
    int idx = vd_pci_gpu_list_index(&l, bdf);
    return idx >= 0 ? idx : vd_err_set(err, "%s is not a GPU of this node (%s/bus/pci/devices)",
                                       bdf, p->sys);
}

/* The files of those `devnodes` that exist, into ids; returns how many. A
 * node that does not exist has no holder (the device has no node). */
static int node_ids(const vd_pci *p, const char *const *devnodes, int n, file_id *ids)
{
    char path[PATH_MAX];
    int known = 0;
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%s", p->dev, devnodes[i]);
        known += file_id_of(path, &ids[known]) == 0;
    }
    return known;
}

/* One pass over /proc: every process holding one of `nodes`, into h. */
static int scan_proc(const file_id *nodes, int n, vd_pci_holders *h, vd_err *err)
{
    DIR *proc = opendir("/proc");
    if (!proc)
        return vd_err_set(err, "/proc: %s", strerror(errno));
    size_t used = 0;
    struct dirent *e;
    while ((e = readdir(proc))) {
        if (!atoi(e->d_name) || !holds(e->d_name, nodes, n))
            continue;
        char comm[64] = "?", path[PATH_MAX];
        snprintf(path, sizeof(path), "/proc/%s/comm", e->d_name);
        if (vd_sysfs_line(path, comm, sizeof(comm)) < 0)
            snprintf(comm, sizeof(comm), "?");
        h->count++;
        h->persistenced += !strcmp(comm, VD_NVIDIA_PERSISTENCED_COMM);
        int w = snprintf(h->list + used, sizeof(h->list) - used, "%s%s (%s)", used ? ", " : "",
                         e->d_name, comm);
        if (w > 0 && (size_t)w < sizeof(h->list) - used)
            used += (size_t)w;
    }
    closedir(proc);
    return 0;
}

int vd_pci_holders_find(const vd_pci *p, const char *const *devnodes, int n, vd_pci_holders *h,
                        vd_err *err)
{
    memset(h, 0, sizeof(*h));
    if (n <= 0)
        return 0;
    file_id *ids = calloc((size_t)n, sizeof(*ids));
    if (!ids)
        return vd_err_set(err, "out of memory looking for the holders of %s/%s", p->dev, devnodes[0]);
    int known = node_ids(p, devnodes, n, ids);
    int rc = known ? scan_proc(ids, known, h, err) : 0;
    free(ids);
    return rc;
}

static const char *proc_root(const vd_pci *p)
{
    return p->proc ? p->proc : "/proc";
}

/* The device node through which processes use function `bdf` of IOMMU
 * group `group` on `driver` ("nvidia0" on nvidia, "vfio/GROUP" on
 * vfio-pci) into out; "" when vdesk knows none for that driver. */
static void node_of(const vd_pci *p, int group, const char *bdf, const char *driver, char *out,
                    size_t size)
{
    int minor;
    out[0] = '\0';
    if (!strcmp(driver, VFIO))
        snprintf(out, size, "vfio/%d", group);
    else if (!strcmp(driver, "nvidia") && vd_nvidia_minor(proc_root(p), bdf, &minor, NULL) == 0)
        snprintf(out, size, "nvidia%d", minor);
}

/* Who holds `node`, asked again for up to a second: a holder that was just
 * told to let go (nvidia-persistenced) closes the node on its own time. */
static int holders_settle(const vd_pci *p, const char *node, vd_pci_holders *h, vd_err *err)
{
    const char *nodes[] = { node };
    for (int i = 0; i < 20; i++, sleep_ms(50))
        if (vd_pci_holders_find(p, nodes, 1, h, err) < 0 || h->count == 0)
            return h->count == 0 ? 0 : -1;
    return 0;
}

static const char *holder_hint(const vd_pci *p, const char *node, const vd_pci_holders *h)
{
    if (!strncmp(node, "vfio/", 5))
        return "a VM still uses the group: unplug the device from it (or stop it) first";
    if (h->persistenced && p->persistence == VD_PERSIST_REFUSE)
        return "nvidia-persistenced keeps the GPU open: set nvidia_persistence = manage in "
               "vdesk.conf, or run the daemon without persistence for this GPU";
    return "stop them first (an X server, nvidia-smi, DCGM, a job's leftover process?)";
}

/* Both nvidia and vfio-pci wait in unbind until their device node is
 * closed: a holder would hang the step, so it is named instead. */
static int let_go(const vd_pci *p, int group, const vd_pci_fn *f, const char *driver, vd_err *err)
{
    char node[32];
    vd_pci_holders h;
    node_of(p, group, f->bdf, driver, node, sizeof(node));
    if (!node[0])
        return 0;
    const char *nodes[] = { node };
    if (vd_pci_holders_find(p, nodes, 1, &h, err) < 0)
        return vd_err_prefix(err, "device %s: looking for holders of %s/%s", f->bdf, p->dev, node);
    if (h.count && h.count == h.persistenced && p->persistence == VD_PERSIST_MANAGE &&
        !strcmp(driver, "nvidia")) {
        if (vd_nvidia_persistence_set(f->bdf, 0, p->timeout_ms, err) < 0 ||
            holders_settle(p, node, &h, err) < 0)
            return vd_err_prefix(err, "device %s", f->bdf);
    }
    if (h.count == 0)
        return 0;
    return vd_err_set(err, "device %s: %s/%s is held open by %s, and %s would wait in unbind until "
                      "they let go; %s", f->bdf, p->dev, node, h.list, driver,
                      holder_hint(p, node, &h));
}

/* One sysfs write of a rebind step, with the error naming device and step. */
static int step(const vd_pci *p, const char *bdf, const char *what, const char *file,
                const char *value, vd_err *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", p->sys, file);
    vd_err why;
    if (timed_write(path, value, p->timeout_ms, &why) < 0)
        return vd_err_set(err, "device %s: %s (%s): %s", bdf, what, path, why.msg);
    return 0;
}

/* One /proc scan for the whole group: whether anyone holds a member's
 * device node. Only then is each member looked at on its own, to name the
 * holders or to ask nvidia-persistenced to let go. */
static int group_held(const vd_pci *p, const vd_pci_group *g, int *held, vd_err *err)
{
    char names[VD_PCI_GROUP_MAX][32], drv[64];
    const char *nodes[VD_PCI_GROUP_MAX];
    int n = 0;
    vd_pci_holders h;
    for (int i = 0; i < g->n; i++) {
        vd_pci_driver(p, g->fns[i].bdf, drv, sizeof(drv));
        node_of(p, g->id, g->fns[i].bdf, drv, names[n], sizeof(names[n]));
        if (names[n][0]) {
            nodes[n] = names[n];
            n++;
        }
    }
    *held = 0;
    if (n && vd_pci_holders_find(p, nodes, n, &h, err) < 0)
        return vd_err_prefix(err, "IOMMU group %d: looking for processes holding it", g->id);
    *held = n && h.count > 0;
    return 0;
}

/* Unbinds `f` from the driver it is on, if any. */
static int unbind_fn(const vd_pci *p, const vd_pci_fn *f, vd_err *err)
{
    char file[128], what[96], now[64];
    vd_pci_driver(p, f->bdf, now, sizeof(now));
    if (!now[0])
        return 0;
    snprintf(file, sizeof(file), "bus/pci/drivers/%s/unbind", now);
    snprintf(what, sizeof(what), "unbind from %s", now);
    return step(p, f->bdf, what, file, f->bdf, err);
}

static int set_override(const vd_pci *p, const vd_pci_fn *f, const char *driver, const char *what,
                        vd_err *err)
{
    char file[128];
    snprintf(file, sizeof(file), "bus/pci/devices/%s/driver_override", f->bdf);
    return step(p, f->bdf, what, file, *driver ? driver : "\n", err);
}

/* Moves one function of `group` to `driver` ("" clears the override: the
 * host's own). `expect` is the driver it must end on; "" means any but
 * vfio-pci. `held`: someone holds a node of the group (group_held). */
static int move_fn(const vd_pci *p, int group, int held, const vd_pci_fn *f, const char *driver,
                   const char *expect, vd_err *err)
{
    char now[64];
    vd_pci_driver(p, f->bdf, now, sizeof(now));
    if (held && now[0] && let_go(p, group, f, now, err) < 0)
        return -1;
    if (set_override(p, f, driver, "set driver_override", err) < 0 || unbind_fn(p, f, err) < 0)
        return -1;
    if (step(p, f->bdf, "drivers_probe", "bus/pci/drivers_probe", f->bdf, err) < 0)
        return -1;
    vd_pci_driver(p, f->bdf, now, sizeof(now));
    if (*expect ? strcmp(now, expect) != 0 : !strcmp(now, VFIO))
        return vd_err_set(err, "device %s: on '%s' after probing, not on '%s' (the driver's probe "
                          "failed? see dmesg)", f->bdf, now[0] ? now : "no driver",
                          *expect ? expect : "its host driver");
    return 0;
}

static int is_bridge(const vd_pci_fn *f)
{
    return (f->klass >> 8) == CLASS_BRIDGE;
}

static int vfio_node_appears(const vd_pci *p, int group)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/vfio/%d", p->dev, group);
    for (int i = 0; i < 20; i++, sleep_ms(50))
        if (access(path, F_OK) == 0)
            return 1;
    return 0;
}

static void persistence_back_on(const vd_pci *p, const char *bdf);

/* Whether `f` is on the driver recorded for it, after binding it there. */
static int bound_back(const vd_pci *p, const vd_pci_fn *f, vd_err *err)
{
    char now[64];
    vd_pci_driver(p, f->bdf, now, sizeof(now));
    if (!strcmp(now, f->driver))
        return 0;
    return vd_err_set(err, "device %s: on '%s' after binding it to %s (its probe failed? see dmesg)",
                      f->bdf, now[0] ? now : "no driver", f->driver);
}

/* Binds `f` to its recorded driver by name, not by probing: the kernel's
 * choice need not be the one it had. A driver that does not take it on
 * its ids had it through an override since cleared: so again. */
static int bind_back(const vd_pci *p, const vd_pci_fn *f, vd_err *err)
{
    char file[128], what[96];
    snprintf(file, sizeof(file), "bus/pci/drivers/%s/bind", f->driver);
    snprintf(what, sizeof(what), "bind to %s", f->driver);
    if (step(p, f->bdf, what, file, f->bdf, err) == 0)
        return bound_back(p, f, err);
    if (!strcmp(f->override, f->driver) ||
        set_override(p, f, f->driver, "set driver_override", err) < 0 ||
        step(p, f->bdf, what, file, f->bdf, err) < 0 ||
        set_override(p, f, f->override, "restore driver_override", err) < 0)
        return -1;
    return bound_back(p, f, err);
}

/* Puts `f` back exactly as the group read recorded it: its
 * driver_override, then its driver, or none. */
static int restore_fn(const vd_pci *p, int group, int held, const vd_pci_fn *f, vd_err *err)
{
    char now[64], override[64];
    vd_pci_driver(p, f->bdf, now, sizeof(now));
    override_of(p, f->bdf, override, sizeof(override));
    int moved = strcmp(now, f->driver) != 0;
    if (moved && held && now[0] && let_go(p, group, f, now, err) < 0)
        return -1;
    if (strcmp(override, f->override) != 0 &&
        set_override(p, f, f->override, "restore driver_override", err) < 0)
        return -1;
    if (moved && (unbind_fn(p, f, err) < 0 || (f->driver[0] && bind_back(p, f, err) < 0)))
        return -1;
    persistence_back_on(p, f->bdf);
    return 0;
}

/* Undoes a move to vfio-pci that failed at member `moved` - 1: each member
 * it may have touched goes back as it was, whatever the others do. */
static int undo_move(const vd_pci *p, const vd_pci_group *g, int moved, vd_err *err)
{
    int held, rc = 0;
    if (group_held(p, g, &held, err) < 0)
        return -1;
    for (int i = 0; i < moved; i++) {
        vd_err one;
        if (!is_bridge(&g->fns[i]) && restore_fn(p, g->id, held, &g->fns[i], &one) < 0 && rc == 0)
            rc = vd_err_set(err, "%s", one.msg);
    }
    return rc;
}

int vd_pci_to_vfio(const vd_pci *p, const char *bdf, vd_pci_group *before, vd_err *err)
{
    int held;
    if (vd_pci_group_read(p, bdf, before, err) < 0 || group_held(p, before, &held, err) < 0)
        return -1;
    int moved = 0, rc = 0;
    for (; moved < before->n && rc == 0; moved++) {
        const vd_pci_fn *f = &before->fns[moved];
        if (!is_bridge(f) && strcmp(f->driver, VFIO) != 0)
            rc = move_fn(p, before->id, held, f, VFIO, VFIO, err);
    }
    if (rc == 0 && !vfio_node_appears(p, before->id))
        rc = vd_err_set(err, "IOMMU group %d: all on vfio-pci but %s/vfio/%d did not appear",
                        before->id, p->dev, before->id);
    if (rc == 0)
        return 0;
    /* Put back what was moved, the failing one included. */
    vd_err undo;
    if (undo_move(p, before, moved, &undo) < 0)
        vd_err_prefix(err, "and putting group %d back failed too (%s)", before->id, undo.msg);
    return -1;
}

/* With VD_PERSIST_MANAGE a GPU back on nvidia gets persistence again (jobs
 * start faster with it). Failing that is worth a log line, not a failure:
 * the GPU works without it. */
static void persistence_back_on(const vd_pci *p, const char *bdf)
{
    char now[32];
    vd_err err;
    vd_pci_driver(p, bdf, now, sizeof(now));
    if (p->persistence != VD_PERSIST_MANAGE || strcmp(now, "nvidia") != 0)
        return;
    if (vd_nvidia_persistence_set(bdf, 1, p->timeout_ms, &err) < 0)
        syslog(LOG_WARNING, "vdesk: %s", err.msg);
}

int vd_pci_to_host(const vd_pci *p, const vd_pci_group *before, vd_err *err)
{
    int rc = 0, held;
    if (group_held(p, before, &held, err) < 0)
        return -1;
    for (int i = 0; i < before->n; i++) {
        const vd_pci_fn *f = &before->fns[i];
        if (is_bridge(f))
            continue;
        char now[64], file[128];
        vd_err one;
        int r;
        vd_pci_driver(p, f->bdf, now, sizeof(now));
        snprintf(file, sizeof(file), "bus/pci/devices/%s/driver_override", f->bdf);
        /* The host driver it had, when known; else whichever the kernel
         * picks once the override is gone. */
        const char *host = strcmp(f->driver, VFIO) != 0 ? f->driver : "";
        if (strcmp(now, VFIO) != 0 && (!*host || !strcmp(now, host)))
            /* On its driver already (a step that failed early): only the
             * override may be left to clear. */
            r = step(p, f->bdf, "clear driver_override", file, "\n", &one);
        else
            r = move_fn(p, before->id, held, f, "", host, &one);
        /* Keep going: every member that can go back should. */
        if (r < 0 && rc == 0)
            rc = vd_err_set(err, "%s", one.msg);
        if (r == 0)
            persistence_back_on(p, f->bdf);
    }
    return rc;
}
