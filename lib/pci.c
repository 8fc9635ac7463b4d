/* SPDX-License-Identifier: MIT */
#include "pci.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "sysfs.h"

#define VFIO "vfio-pci"
#define CLASS_BRIDGE 0x0604

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

/* Whether process `pid` has one of `devnodes` open. */
static int holds(const vd_pci *p, const char *pid, const char *const *devnodes, int n)
{
    char fddir[PATH_MAX], link[PATH_MAX * 2], target[PATH_MAX], node[PATH_MAX];
    snprintf(fddir, sizeof(fddir), "/proc/%s/fd", pid);
    DIR *fds = opendir(fddir);
    if (!fds)
        return 0;   /* gone, or not ours to see */
    struct dirent *f;
    int found = 0;
    while (!found && (f = readdir(fds))) {
        snprintf(link, sizeof(link), "%s/%s", fddir, f->d_name);
        ssize_t len = readlink(link, target, sizeof(target) - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        for (int i = 0; i < n && !found; i++) {
            snprintf(node, sizeof(node), "%s/%s", p->dev, devnodes[i]);
            found = !strcmp(target, node);
        }
    }
    closedir(fds);
    return found;
}

int vd_pci_is_gpu(const vd_pci_info *d)
{
    return (d->klass >> 16) == 0x03 && !d->physfn[0];
}

static int by_name(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* Only class and physfn per function: the prolog asks this for every GPU. */
int vd_pci_gpus(const vd_pci *p, vd_pci_gpu_list *l, vd_err *err)
{
    char path[PATH_MAX], cls[32], pf[32];
    snprintf(path, sizeof(path), "%s/bus/pci/devices", p->sys);
    DIR *d = opendir(path);
    if (!d)
        return vd_err_set(err, "%s: %s", path, strerror(errno));
    struct dirent *e;
    l->n = 0;
    while ((e = readdir(d)) && l->n < VD_PCI_GPUS_MAX) {
        if (!bdf_ok(e->d_name))
            continue;
        snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/class", p->sys, e->d_name);
        vd_pci_info f = { .klass = 0 };
        if (vd_sysfs_line(path, cls, sizeof(cls)) == 0)
            f.klass = (unsigned)strtoul(cls, NULL, 16);
        snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/physfn", p->sys, e->d_name);
        if (vd_sysfs_link_name(path, pf, sizeof(pf)) == 0)
            snprintf(f.physfn, sizeof(f.physfn), "%.12s", pf);
        if (vd_pci_is_gpu(&f))
            memcpy(l->bdf[l->n++], e->d_name, sizeof(l->bdf[0]));
    }
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

int vd_pci_holders_find(const vd_pci *p, const char *const *devnodes, int n, vd_pci_holders *h,
                        vd_err *err)
{
    DIR *proc = opendir("/proc");
    if (!proc)
        return vd_err_set(err, "/proc: %s", strerror(errno));
    memset(h, 0, sizeof(*h));
    size_t used = 0;
    struct dirent *e;
    while ((e = readdir(proc))) {
        if (!atoi(e->d_name) || !holds(p, e->d_name, devnodes, n))
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

/* Moves one function of `group` to `driver` ("" clears the override: the
 * host's own). `expect` is the driver it must end on; "" means any but
 * vfio-pci. `held`: someone holds a node of the group (group_held). */
static int move_fn(const vd_pci *p, int group, int held, const vd_pci_fn *f, const char *driver,
                   const char *expect, vd_err *err)
{
    char file[128], what[96], now[32];
    vd_pci_driver(p, f->bdf, now, sizeof(now));
    if (held && now[0] && let_go(p, group, f, now, err) < 0)
        return -1;
    snprintf(file, sizeof(file), "bus/pci/devices/%s/driver_override", f->bdf);
    if (step(p, f->bdf, "set driver_override", file, *driver ? driver : "\n", err) < 0)
        return -1;
    vd_pci_driver(p, f->bdf, now, sizeof(now));
    if (now[0]) {
        snprintf(file, sizeof(file), "bus/pci/drivers/%s/unbind", now);
        snprintf(what, sizeof(what), "unbind from %s", now);
        if (step(p, f->bdf, what, file, f->bdf, err) < 0)
            return -1;
    }
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
    vd_pci_group partial = *before;
    partial.n = moved;
    if (vd_pci_to_host(p, &partial, &undo) < 0)
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
