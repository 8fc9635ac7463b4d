/* SPDX-License-Identifier: MIT */
/*
 * vdesk-sysfs-emu - a FUSE file system that behaves like the parts of the
 * kernel's sysfs and /dev that vdesk's device code touches, for machines
 * that have no GPU, HCA, IOMMU or vfio-pci.
 *
 *   vdesk-sysfs-emu MACHINE.ini MOUNTPOINT [FUSE options]
 *
 * MOUNTPOINT/sys and MOUNTPOINT/dev then hold:
 *   sys/bus/pci/devices/BDF/{vendor,device,class,numa_node,local_cpulist,
 *       driver_override,driver@,iommu_group@,sriov_totalvfs,sriov_numvfs,
 *       sriov_drivers_autoprobe,virtfnN@,physfn@}
 *   sys/bus/pci/drivers/NAME/{bind,unbind,new_id,remove_id,BDF@}
 *   sys/bus/pci/drivers_probe
 *   sys/kernel/iommu_groups/N/devices/BDF@
 *   sys/class/infiniband/mlx5_K/{device@,node_guid,ports/1/{state,lid,
 *       link_layer}} (one per function on mlx5_core, numbered in address order)
 *   dev/vfio/vfio, dev/vfio/N (while a member of group N is on vfio-pci),
 *   dev/nvidiaN (while that GPU is on nvidia)
 *   ctr/dev/...: dev/ again, as a container sees the host's /dev bind-mounted:
 *       the same files (same inode numbers) under other paths
 *   proc/driver/nvidia/gpus/BDF/information (while on nvidia: "Device Minor")
 * with the kernel's rules: driver_override decides a probe alone; otherwise
 * a driver's static and dynamic (new_id) ids must match; unbind needs the
 * device bound to that driver; bind needs it unbound; new_id probes the
 * unbound devices it matches; sriov_numvfs needs 0 before a new count, and
 * the VFs it creates get their own IOMMU groups and are probed if
 * sriov_drivers_autoprobe is 1. As with the real drivers, an unbind from
 * nvidia waits while /dev/nvidiaN is open, and one from vfio-pci while
 * /dev/vfio/N is: the holder must let go first.
 *
 * Faults, written to MOUNTPOINT/.control, one command a write:
 *   slow-unbind BDF MS | hang-unbind BDF | busy BDF (unbind: EBUSY) |
 *   fail-bind BDF (vfio-pci's probe fails) |
 *   clear BDF | release            (release lets hung unbinds finish)
 */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fuse.h>
#include <ini.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_DRV 16
#define MAX_DEV 64
#define MAX_IDS 16
#define MAX_GROUP 256
#define FH_GROUP 1000   /* file handles: 1 + device index, or FH_GROUP + group */

typedef struct drv {
    char name[32];
    unsigned ids[MAX_IDS];   /* vendor << 16 | device */
    int nids;
    unsigned dyn[MAX_IDS];
    int ndyn;
} drv;

typedef struct dev {
    char bdf[13];
    unsigned id, klass;
    int group, numa;
    char cpulist[64];
    int drv;                 /* index in drivers, -1: none */
    char override[32];
    char devnode[16];        /* "nvidia0": /dev node while bound to nvidia */
    int totalvfs, numvfs, autoprobe;
    unsigned vf_id;
    int pf;                  /* index of the PF for a VF, -1 */
    int present;
    int opens;               /* of /dev/nvidiaN */
    int slow_ms, hang, busy, fail_bind;
} dev;

typedef struct machine {
    pthread_mutex_t lock;
    pthread_cond_t released;
    pthread_cond_t closed;   /* a device node was closed */
    unsigned release_gen;
    int group_opens[MAX_GROUP];
    drv drv[MAX_DRV];
    int ndrv;
    dev dev[MAX_DEV];
    int ndev;
    int next_group;
} machine;

static machine *M(void)
{
    return fuse_get_context()->private_data;
}

/* --- model ------------------------------------------------------------- */

static int drv_find(machine *m, const char *name, size_t len)
{
    for (int i = 0; i < m->ndrv; i++)
        if (strlen(m->drv[i].name) == len && !strncmp(m->drv[i].name, name, len))
            return i;
    return -1;
}

static int dev_find(machine *m, const char *bdf, size_t len)
{
    for (int i = 0; i < m->ndev; i++)
        if (m->dev[i].present && len == 12 && !strncmp(m->dev[i].bdf, bdf, 12))
            return i;
    return -1;
}

static int drv_matches(const drv *d, unsigned id)
{
    for (int i = 0; i < d->nids; i++)
        if (d->ids[i] == id)
            return 1;
    for (int i = 0; i < d->ndyn; i++)
        if (d->dyn[i] == id)
            return 1;
    return 0;
}

/* The kernel's driver_match_device for PCI: override first, then ids. */
static int may_bind(machine *m, const dev *d, int k)
{
    if (d->override[0])
        return !strcmp(d->override, m->drv[k].name);
    return drv_matches(&m->drv[k], d->id);
}

static int bind(machine *m, dev *d, int k)
{
    if (d->fail_bind && !strcmp(m->drv[k].name, "vfio-pci"))
        return -EIO;   /* vfio-pci's probe refused the device */
    d->drv = k;
    return 0;
}

/* drivers_probe and autoprobe: bind to the first driver that may. */
static void probe(machine *m, dev *d)
{
    if (d->drv >= 0)
        return;
    for (int k = 0; k < m->ndrv; k++)
        if (may_bind(m, d, k) && bind(m, d, k) == 0)
            return;
}

static int on_driver(const machine *m, const dev *d, const char *name)
{
    return d->drv >= 0 && !strcmp(m->drv[d->drv].name, name);
}

static int held_open(const machine *m, const dev *d)
{
    if (on_driver(m, d, "nvidia"))
        return d->opens > 0;
    if (on_driver(m, d, "vfio-pci"))
        return d->group >= 0 && d->group < MAX_GROUP && m->group_opens[d->group] > 0;
    return 0;
}

/* Unbind; a hung unbind waits (without the lock) for `release`. */
static int unbind(machine *m, dev *d)
{
    if (d->busy)
        return -EBUSY;
    if (d->slow_ms) {
        pthread_mutex_unlock(&m->lock);
        nanosleep(&(struct timespec){ .tv_sec = d->slow_ms / 1000,
                                      .tv_nsec = (d->slow_ms % 1000) * 1000000L }, NULL);
        pthread_mutex_lock(&m->lock);
    }
    unsigned gen = m->release_gen;
    while (d->hang && gen == m->release_gen)
        pthread_cond_wait(&m->released, &m->lock);
    /* The drivers' remove() waits for their users to close the device. */
    while (held_open(m, d))
        pthread_cond_wait(&m->closed, &m->lock);
    d->drv = -1;
    return 0;
}

static int vfio_idx(machine *m)
{
    return drv_find(m, "vfio-pci", 8);
}

static int group_on_vfio(machine *m, int group)
{
    int v = vfio_idx(m);
    for (int i = 0; i < m->ndev; i++)
        if (m->dev[i].present && m->dev[i].group == group && m->dev[i].drv == v && v >= 0)
            return 1;
    return 0;
}

static int set_numvfs(machine *m, int pfi, int n)
{
    dev *pf = &m->dev[pfi];
    if (n < 0 || n > pf->totalvfs)
        return -ERANGE;
    if (pf->numvfs && n)
        return -EBUSY;   /* the kernel wants 0 before a new count */
    for (int i = 0; i < m->ndev; i++)
        if (m->dev[i].pf == pfi)
            m->dev[i].present = 0;
    unsigned dom, bus, slot, fn;
    sscanf(pf->bdf, "%x:%x:%x.%x", &dom, &bus, &slot, &fn);
    /* VFs are entries of the same array: copy what they inherit first. */
    char cpulist[sizeof(pf->cpulist)];
    snprintf(cpulist, sizeof(cpulist), "%s", pf->cpulist);
    unsigned vf_id = pf->vf_id, klass = pf->klass;
    int numa = pf->numa, autoprobe = pf->autoprobe;
    unsigned devfn = slot << 3 | fn;
    for (int k = 0; k < n; k++) {
        char bdf[13];
        unsigned vfn = devfn + 1 + (unsigned)k;
        snprintf(bdf, sizeof(bdf), "%04x:%02x:%02x.%x", dom, bus, (vfn >> 3) & 0x1f, vfn & 7);
        int i = -1;
        for (int j = 0; j < m->ndev && i < 0; j++)
            if (!strcmp(m->dev[j].bdf, bdf) && m->dev[j].pf == pfi)
                i = j;
        if (i < 0) {
            if (m->ndev == MAX_DEV)
                return -ENOSPC;
            i = m->ndev++;
        }
        dev *vf = &m->dev[i];
        memset(vf, 0, sizeof(*vf));
        snprintf(vf->bdf, sizeof(vf->bdf), "%s", bdf);
        vf->id = vf_id;
        vf->klass = klass;
        vf->group = m->next_group++;
        vf->numa = numa;
        memcpy(vf->cpulist, cpulist, sizeof(cpulist));
        vf->drv = -1;
        vf->pf = pfi;
        vf->present = 1;
        vf->autoprobe = 1;
        if (autoprobe)
            probe(m, vf);
    }
    m->dev[pfi].numvfs = n;
    return 0;
}

/* --- machine file ------------------------------------------------------ */

static int parse_ids(const char *v, unsigned *ids, int *n)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", v);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        unsigned a, b;
        if (*n == MAX_IDS || sscanf(t, " %x:%x", &a, &b) != 2)
            return -1;
        ids[(*n)++] = a << 16 | b;
    }
    return 0;
}

static int on_ini(void *user, const char *section, const char *name, const char *v)
{
    machine *m = user;
    if (!strncmp(section, "driver ", 7)) {
        int k = drv_find(m, section + 7, strlen(section + 7));
        if (k < 0) {
            if (m->ndrv == MAX_DRV)
                return 0;
            k = m->ndrv++;
            snprintf(m->drv[k].name, sizeof(m->drv[k].name), "%s", section + 7);
        }
        return !strcmp(name, "ids") && parse_ids(v, m->drv[k].ids, &m->drv[k].nids) == 0;
    }
    if (strncmp(section, "device ", 7) != 0 || strlen(section + 7) != 12)
        return 0;
    int i = dev_find(m, section + 7, 12);
    if (i < 0) {
        if (m->ndev == MAX_DEV)
            return 0;
        i = m->ndev++;
        dev *d = &m->dev[i];
        snprintf(d->bdf, sizeof(d->bdf), "%s", section + 7);
        d->drv = d->pf = -1;
        d->present = d->autoprobe = 1;
    }
    dev *d = &m->dev[i];
    unsigned a, b;
    if (!strcmp(name, "id") && sscanf(v, "%x:%x", &a, &b) == 2)
        d->id = a << 16 | b;
    else if (!strcmp(name, "vf_id") && sscanf(v, "%x:%x", &a, &b) == 2)
        d->vf_id = a << 16 | b;
    else if (!strcmp(name, "class"))
        d->klass = (unsigned)strtoul(v, NULL, 16);
    else if (!strcmp(name, "driver") && (d->drv = drv_find(m, v, strlen(v))) >= 0)
        ;
    else if (!strcmp(name, "iommu_group"))
        d->group = atoi(v);
    else if (!strcmp(name, "numa_node"))
        d->numa = atoi(v);
    else if (!strcmp(name, "local_cpulist"))
        snprintf(d->cpulist, sizeof(d->cpulist), "%s", v);
    else if (!strcmp(name, "sriov_totalvfs"))
        d->totalvfs = atoi(v);
    else if (!strcmp(name, "dev"))
        snprintf(d->devnode, sizeof(d->devnode), "%s", v);
    else
        return 0;
    if (d->group >= m->next_group)
        m->next_group = d->group + 1;
    return 1;
}

/* --- paths ------------------------------------------------------------- */

enum kind { K_NONE, K_DIR, K_FILE, K_LINK };

typedef struct node {
    enum kind kind;
    int writable, readable;
    char text[256];   /* file content or link target */
} node;

#define DEVS "/sys/bus/pci/devices/"
#define DRVS "/sys/bus/pci/drivers/"
#define GRPS "/sys/kernel/iommu_groups/"

static int prefix(const char *p, const char *pre, const char **rest)
{
    size_t n = strlen(pre);
    if (strncmp(p, pre, n) != 0)
        return 0;
    *rest = p + n;
    return 1;
}

static void file(node *n, int rw, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void file(node *n, int rw, const char *fmt, ...)
{
    n->kind = K_FILE;
    n->readable = rw != 2;
    n->writable = rw >= 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(n->text, sizeof(n->text), fmt, ap);
    va_end(ap);
}

static void link_to(node *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void link_to(node *n, const char *fmt, ...)
{
    n->kind = K_LINK;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(n->text, sizeof(n->text), fmt, ap);
    va_end(ap);
}

/* Attribute `a` of device d (rw: 0 read-only, 1 read-write, 2 write-only). */
static void dev_attr(machine *m, dev *d, const char *a, node *n)
{
    int di = (int)(d - m->dev);
    if (!*a)
        n->kind = K_DIR;
    else if (!strcmp(a, "vendor"))
        file(n, 0, "0x%04x\n", d->id >> 16);
    else if (!strcmp(a, "device"))
        file(n, 0, "0x%04x\n", d->id & 0xffff);
    else if (!strcmp(a, "class"))
        file(n, 0, "0x%06x\n", d->klass);
    else if (!strcmp(a, "numa_node"))
        file(n, 0, "%d\n", d->numa);
    else if (!strcmp(a, "local_cpulist"))
        file(n, 0, "%s\n", d->cpulist);
    else if (!strcmp(a, "driver_override"))
        file(n, 1, "%s\n", d->override[0] ? d->override : "(null)");
    else if (!strcmp(a, "driver") && d->drv >= 0)
        link_to(n, "../../drivers/%s", m->drv[d->drv].name);
    else if (!strcmp(a, "iommu_group"))
        link_to(n, "../../../../kernel/iommu_groups/%d", d->group);
    else if (d->totalvfs && !strcmp(a, "sriov_totalvfs"))
        file(n, 0, "%d\n", d->totalvfs);
    else if (d->totalvfs && !strcmp(a, "sriov_numvfs"))
        file(n, 1, "%d\n", d->numvfs);
    else if (d->totalvfs && !strcmp(a, "sriov_drivers_autoprobe"))
        file(n, 1, "%d\n", d->autoprobe);
    else if (d->pf >= 0 && !strcmp(a, "physfn"))
        link_to(n, "../%s", m->dev[d->pf].bdf);
    else if (!strncmp(a, "virtfn", 6)) {
        int k = atoi(a + 6), seen = 0;
        for (int i = 0; i < m->ndev; i++)
            if (m->dev[i].present && m->dev[i].pf == di && seen++ == k)
                link_to(n, "../%s", m->dev[i].bdf);
    }
}

/* The RDMA device number of d: functions on mlx5_core, in address order. */
static int ib_index(const machine *m, const dev *d)
{
    int k = 0;
    if (!d->present || !on_driver(m, d, "mlx5_core"))
        return -1;
    for (int i = 0; i < m->ndev; i++)
        k += m->dev[i].present && on_driver(m, &m->dev[i], "mlx5_core") &&
             strcmp(m->dev[i].bdf, d->bdf) < 0;
    return k;
}

static dev *ib_find(machine *m, const char *name, size_t len)
{
    if (len < 6 || strncmp(name, "mlx5_", 5) != 0)
        return NULL;
    for (int i = 0; i < m->ndev; i++)
        if (ib_index(m, &m->dev[i]) == atoi(name + 5))
            return &m->dev[i];
    return NULL;
}

/* sys/class/infiniband/NAME/...: one port, up, its LID from the number. */
static void ib_attr(machine *m, dev *d, const char *a, node *n)
{
    int k = ib_index(m, d);
    if (!*a || !strcmp(a, "ports") || !strcmp(a, "ports/1"))
        n->kind = K_DIR;
    else if (!strcmp(a, "device"))
        link_to(n, "../../../bus/pci/devices/%s", d->bdf);
    else if (!strcmp(a, "node_guid"))
        file(n, 0, "0c42:a103:00%02x:%04x\n", k, (unsigned)(d - m->dev));
    else if (!strcmp(a, "ports/1/state"))
        file(n, 0, "%s\n", d->pf >= 0 ? "1: DOWN" : "4: ACTIVE");
    else if (!strcmp(a, "ports/1/lid"))
        file(n, 0, "0x%x\n", d->pf >= 0 ? 0 : k + 1);
    else if (!strcmp(a, "ports/1/link_layer"))
        file(n, 0, "InfiniBand\n");
}

/* proc/driver/nvidia/gpus/BDF/information, as the NVIDIA driver writes it. */
static void nvidia_info(const dev *d, node *n)
{
    file(n, 0, "Model: \t\t Emulated GPU %04x\nBus Type: \t PCIe\nBus Location: \t %s\n"
               "Device Minor: \t %d\nGPU Excluded:\t No\n", d->id & 0xffff, d->bdf,
         atoi(d->devnode + strcspn(d->devnode, "0123456789")));
}

/* The container's view of dev/ (see the top): its files are those of dev/. */
#define CTR "/ctr"

static const char *canon(const char *p)
{
    size_t n = strlen(CTR "/dev");
    if (!strncmp(p, CTR "/dev", n) && (p[n] == '\0' || p[n] == '/'))
        return p + strlen(CTR);
    return p;
}

/* Inode numbers from paths (FNV-1a), stable across lookups, so that two
 * paths to one file (dev/nvidia0, ctr/dev/nvidia0) are seen as one file, as
 * a bind mount or a hard link is. Never 0 or 1 (the root's). */
static uint64_t ino_of(const char *p)
{
    uint64_t h = 14695981039346656037ULL;
    for (; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h | 1ULL << 62;
}

#define IB "/sys/class/infiniband/"
#define NVPROC "/proc/driver/nvidia/gpus/"

static void lookup(machine *m, const char *p, node *n)
{
    const char *r;
    memset(n, 0, sizeof(*n));
    static const char *dirs[] = { "/", "/sys", "/sys/bus", "/sys/bus/pci", "/sys/bus/pci/devices",
                                  "/sys/bus/pci/drivers", "/sys/kernel", "/sys/kernel/iommu_groups",
                                  "/dev", "/dev/vfio", "/sys/class", "/sys/class/infiniband", CTR,
                                  "/proc", "/proc/driver", "/proc/driver/nvidia",
                                  "/proc/driver/nvidia/gpus" };
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
        if (!strcmp(p, dirs[i])) {
            n->kind = K_DIR;
            return;
        }
    if (!strcmp(p, "/sys/bus/pci/drivers_probe") || !strcmp(p, "/.control")) {
        file(n, 2, "%s", "");
        return;
    }
    if (!strcmp(p, "/dev/vfio/vfio")) {
        file(n, 1, "%s", "");
        return;
    }
    if (prefix(p, "/dev/vfio/", &r)) {
        if (group_on_vfio(m, atoi(r)))
            file(n, 1, "%s", "");
        return;
    }
    if (prefix(p, "/dev/", &r)) {
        for (int i = 0; i < m->ndev; i++)
            if (m->dev[i].present && !strcmp(m->dev[i].devnode, r) && m->dev[i].drv >= 0 &&
                !strcmp(m->drv[m->dev[i].drv].name, "nvidia"))
                file(n, 1, "%s", "");
        return;
    }
    if (prefix(p, DEVS, &r)) {
        int i = dev_find(m, r, strcspn(r, "/"));
        if (i >= 0)
            dev_attr(m, &m->dev[i], r[12] == '/' ? r + 13 : "", n);
        return;
    }
    if (prefix(p, IB, &r)) {
        size_t len = strcspn(r, "/");
        dev *d = ib_find(m, r, len);
        if (d)
            ib_attr(m, d, r[len] == '/' ? r + len + 1 : "", n);
        return;
    }
    if (prefix(p, NVPROC, &r)) {
        int i = dev_find(m, r, strcspn(r, "/"));
        if (i < 0 || !on_driver(m, &m->dev[i], "nvidia") || !m->dev[i].devnode[0])
            return;
        if (!r[12])
            n->kind = K_DIR;
        else if (!strcmp(r + 12, "/information"))
            nvidia_info(&m->dev[i], n);
        return;
    }
    if (prefix(p, DRVS, &r)) {
        size_t len = strcspn(r, "/");
        int k = drv_find(m, r, len);
        const char *a = r[len] == '/' ? r + len + 1 : "";
        if (k < 0)
            return;
        if (!*a)
            n->kind = K_DIR;
        else if (!strcmp(a, "bind") || !strcmp(a, "unbind") || !strcmp(a, "new_id") ||
                 !strcmp(a, "remove_id"))
            file(n, 2, "%s", "");
        else {
            int i = dev_find(m, a, strlen(a));
            if (i >= 0 && m->dev[i].drv == k)
                link_to(n, "../../devices/%s", m->dev[i].bdf);
        }
        return;
    }
    if (prefix(p, GRPS, &r)) {
        int g = atoi(r), any = 0;
        const char *a = strchr(r, '/');
        for (int i = 0; i < m->ndev; i++)
            any |= m->dev[i].present && m->dev[i].group == g;
        if (!any)
            return;
        if (!a || !strcmp(a, "/devices"))
            n->kind = K_DIR;
        else if (!strncmp(a, "/devices/", 9)) {
            int i = dev_find(m, a + 9, strlen(a + 9));
            if (i >= 0 && m->dev[i].group == g)
                link_to(n, "../../../../bus/pci/devices/%s", m->dev[i].bdf);
        }
    }
}

/* --- FUSE operations ---------------------------------------------------- */

static void lookup_locked(machine *m, const char *p, node *n)
{
    pthread_mutex_lock(&m->lock);
    lookup(m, p, n);
    pthread_mutex_unlock(&m->lock);
}

static int op_getattr(const char *p, struct stat *st, struct fuse_file_info *fi)
{
    (void)fi;
    node n;
    const char *c = canon(p);
    lookup_locked(M(), c, &n);
    memset(st, 0, sizeof(*st));
    /* A directory of the container's view is its own; a file is dev/'s. */
    st->st_ino = ino_of(n.kind == K_DIR ? p : c);
    switch (n.kind) {
    case K_DIR: st->st_mode = S_IFDIR | 0755; st->st_nlink = 2; return 0;
    case K_LINK: st->st_mode = S_IFLNK | 0777; st->st_size = (off_t)strlen(n.text); return 0;
    case K_FILE:
        st->st_mode = S_IFREG | (n.readable ? 0444 : 0) | (n.writable ? 0200 : 0);
        st->st_size = 4096;   /* as sysfs says of every attribute */
        st->st_nlink = 1;
        return 0;
    default: return -ENOENT;
    }
}

static int op_readlink(const char *p, char *buf, size_t size)
{
    node n;
    p = canon(p);
    lookup_locked(M(), p, &n);
    if (n.kind != K_LINK)
        return -EINVAL;
    snprintf(buf, size, "%s", n.text);
    return 0;
}

static void fill(void *buf, fuse_fill_dir_t f, const char *name)
{
    f(buf, name, NULL, 0, 0);
}

static int op_readdir(const char *p, void *buf, fuse_fill_dir_t f, off_t off,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    (void)off;
    (void)fi;
    (void)flags;
    machine *m = M();
    node n;
    char name[32];
    const char *r;
    p = canon(p);
    pthread_mutex_lock(&m->lock);
    lookup(m, p, &n);
    int rc = n.kind == K_DIR ? 0 : -ENOTDIR;
    if (rc == 0) {
        fill(buf, f, ".");
        fill(buf, f, "..");
    }
    if (rc == 0 && !strcmp(p, "/")) {
        fill(buf, f, "sys");
        fill(buf, f, "dev");
        fill(buf, f, "proc");
        fill(buf, f, CTR + 1);
    } else if (rc == 0 && !strcmp(p, CTR)) {
        fill(buf, f, "dev");
    } else if (rc == 0 && !strcmp(p, "/sys")) {
        fill(buf, f, "bus");
        fill(buf, f, "class");
        fill(buf, f, "kernel");
    } else if (rc == 0 && !strcmp(p, "/sys/class")) {
        fill(buf, f, "infiniband");
    } else if (rc == 0 && !strcmp(p, "/sys/class/infiniband")) {
        for (int i = 0; i < m->ndev; i++)
            if (ib_index(m, &m->dev[i]) >= 0) {
                snprintf(name, sizeof(name), "mlx5_%d", ib_index(m, &m->dev[i]));
                fill(buf, f, name);
            }
    } else if (rc == 0 && prefix(p, IB, &r)) {
        static const char *top[] = { "device", "node_guid", "ports" },
                          *port[] = { "state", "lid", "link_layer" };
        int leaf = strchr(r, '/') != NULL;
        if (!strcmp(strchr(r, '/') ? strchr(r, '/') : "", "/ports"))
            fill(buf, f, "1");
        else
            for (size_t a = 0; a < 3; a++)
                fill(buf, f, leaf ? port[a] : top[a]);
    } else if (rc == 0 && !strcmp(p, "/proc")) {
        fill(buf, f, "driver");
    } else if (rc == 0 && !strcmp(p, "/proc/driver")) {
        fill(buf, f, "nvidia");
    } else if (rc == 0 && !strcmp(p, "/proc/driver/nvidia")) {
        fill(buf, f, "gpus");
    } else if (rc == 0 && !strcmp(p, "/proc/driver/nvidia/gpus")) {
        for (int i = 0; i < m->ndev; i++)
            if (m->dev[i].present && on_driver(m, &m->dev[i], "nvidia") && m->dev[i].devnode[0])
                fill(buf, f, m->dev[i].bdf);
    } else if (rc == 0 && prefix(p, NVPROC, &r)) {
        fill(buf, f, "information");
    } else if (rc == 0 && !strcmp(p, "/sys/bus")) {
        fill(buf, f, "pci");
    } else if (rc == 0 && !strcmp(p, "/sys/bus/pci")) {
        fill(buf, f, "devices");
        fill(buf, f, "drivers");
        fill(buf, f, "drivers_probe");
    } else if (rc == 0 && !strcmp(p, "/sys/kernel")) {
        fill(buf, f, "iommu_groups");
    } else if (rc == 0 && !strcmp(p, "/sys/bus/pci/devices")) {
        for (int i = 0; i < m->ndev; i++)
            if (m->dev[i].present)
                fill(buf, f, m->dev[i].bdf);
    } else if (rc == 0 && !strcmp(p, "/sys/bus/pci/drivers")) {
        for (int k = 0; k < m->ndrv; k++)
            fill(buf, f, m->drv[k].name);
    } else if (rc == 0 && !strcmp(p, "/sys/kernel/iommu_groups")) {
        for (int i = 0; i < m->ndev; i++) {
            int first = 1;
            for (int j = 0; j < i; j++)
                first &= !(m->dev[j].present && m->dev[j].group == m->dev[i].group);
            if (m->dev[i].present && first) {
                snprintf(name, sizeof(name), "%d", m->dev[i].group);
                fill(buf, f, name);
            }
        }
    } else if (rc == 0 && !strcmp(p, "/dev")) {
        fill(buf, f, "vfio");
        for (int i = 0; i < m->ndev; i++) {
            node d;
            snprintf(name, sizeof(name), "/dev/%s", m->dev[i].devnode);
            if (m->dev[i].devnode[0] && (lookup(m, name, &d), d.kind == K_FILE))
                fill(buf, f, m->dev[i].devnode);
        }
    } else if (rc == 0 && !strcmp(p, "/dev/vfio")) {
        fill(buf, f, "vfio");
        for (int g = 0; g < m->next_group; g++)
            if (group_on_vfio(m, g)) {
                snprintf(name, sizeof(name), "%d", g);
                fill(buf, f, name);
            }
    } else if (rc == 0 && prefix(p, DEVS, &r)) {
        static const char *attrs[] = { "vendor", "device", "class", "numa_node", "local_cpulist",
                                       "driver_override", "driver", "iommu_group", "sriov_totalvfs",
                                       "sriov_numvfs", "sriov_drivers_autoprobe", "physfn" };
        for (size_t a = 0; a < sizeof(attrs) / sizeof(attrs[0]); a++) {
            char path[128];
            node x;
            snprintf(path, sizeof(path), "%s/%s", p, attrs[a]);
            lookup(m, path, &x);
            if (x.kind != K_NONE)
                fill(buf, f, attrs[a]);
        }
        int di = dev_find(m, r, 12), k = 0;
        for (int i = 0; i < m->ndev; i++)
            if (m->dev[i].present && m->dev[i].pf == di) {
                snprintf(name, sizeof(name), "virtfn%d", k++);
                fill(buf, f, name);
            }
    } else if (rc == 0 && prefix(p, DRVS, &r)) {
        int k = drv_find(m, r, strlen(r));
        fill(buf, f, "bind");
        fill(buf, f, "unbind");
        fill(buf, f, "new_id");
        fill(buf, f, "remove_id");
        for (int i = 0; i < m->ndev; i++)
            if (m->dev[i].present && m->dev[i].drv == k)
                fill(buf, f, m->dev[i].bdf);
    } else if (rc == 0 && prefix(p, GRPS, &r)) {
        if (!strchr(r, '/')) {
            fill(buf, f, "devices");
        } else {
            for (int i = 0; i < m->ndev; i++)
                if (m->dev[i].present && m->dev[i].group == atoi(r))
                    fill(buf, f, m->dev[i].bdf);
        }
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* Counts the opens of device nodes: the drivers' unbind waits on them. */
static void node_open(machine *m, const char *p, struct fuse_file_info *fi)
{
    const char *r;
    fi->fh = 0;
    if (prefix(p, "/dev/vfio/", &r) && strcmp(r, "vfio") != 0 && atoi(r) < MAX_GROUP) {
        m->group_opens[atoi(r)]++;
        fi->fh = FH_GROUP + (uint64_t)atoi(r);
    } else if (prefix(p, "/dev/", &r)) {
        for (int i = 0; i < m->ndev; i++)
            if (m->dev[i].present && m->dev[i].devnode[0] && !strcmp(m->dev[i].devnode, r)) {
                m->dev[i].opens++;
                fi->fh = 1 + (uint64_t)i;
            }
    }
}

static int op_open(const char *p, struct fuse_file_info *fi)
{
    struct stat st;
    p = canon(p);
    int rc = op_getattr(p, &st, NULL);
    fi->direct_io = 1;   /* content changes under the reader, as in sysfs */
    if (rc == 0) {
        machine *m = M();
        pthread_mutex_lock(&m->lock);
        node_open(m, p, fi);
        pthread_mutex_unlock(&m->lock);
    }
    return rc;
}

static int op_release(const char *p, struct fuse_file_info *fi)
{
    (void)p;
    machine *m = M();
    pthread_mutex_lock(&m->lock);
    if (fi->fh >= FH_GROUP)
        m->group_opens[fi->fh - FH_GROUP]--;
    else if (fi->fh)
        m->dev[fi->fh - 1].opens--;
    pthread_cond_broadcast(&m->closed);
    pthread_mutex_unlock(&m->lock);
    return 0;
}

static int op_read(const char *p, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)fi;
    node n;
    p = canon(p);
    lookup_locked(M(), p, &n);
    if (n.kind != K_FILE)
        return -ENOENT;
    if (!n.readable)
        return -EACCES;
    size_t len = strlen(n.text);
    if ((size_t)off >= len)
        return 0;
    if (size > len - (size_t)off)
        size = len - (size_t)off;
    memcpy(buf, n.text + off, size);
    return (int)size;
}

static int control(machine *m, const char *cmd)
{
    char verb[32] = "", bdf[16] = "";
    int ms = 0;
    if (sscanf(cmd, "%31s %15s %d", verb, bdf, &ms) < 1)
        return -EINVAL;
    if (!strcmp(verb, "release")) {
        m->release_gen++;
        for (int i = 0; i < m->ndev; i++)
            m->dev[i].hang = 0;
        pthread_cond_broadcast(&m->released);
        return 0;
    }
    int i = dev_find(m, bdf, strlen(bdf));
    if (i < 0)
        return -ENODEV;
    dev *d = &m->dev[i];
    if (!strcmp(verb, "slow-unbind"))
        d->slow_ms = ms;
    else if (!strcmp(verb, "hang-unbind"))
        d->hang = 1;
    else if (!strcmp(verb, "busy"))
        d->busy = 1;
    else if (!strcmp(verb, "fail-bind"))
        d->fail_bind = 1;
    else if (!strcmp(verb, "clear"))
        d->slow_ms = d->hang = d->busy = d->fail_bind = 0;
    else
        return -EINVAL;
    return 0;
}

/* One write to a sysfs attribute: the whole value, maybe with a newline. */
static int attr_write(machine *m, const char *p, const char *v)
{
    const char *r;
    if (!strcmp(p, "/.control"))
        return control(m, v);
    if (!strcmp(p, "/sys/bus/pci/drivers_probe")) {
        int i = dev_find(m, v, strlen(v));
        if (i < 0)
            return -ENODEV;
        probe(m, &m->dev[i]);
        return 0;
    }
    if (prefix(p, DRVS, &r)) {
        size_t len = strcspn(r, "/");
        int k = drv_find(m, r, len);
        const char *a = r + len + (r[len] == '/');
        if (k < 0)
            return -ENOENT;
        if (!strcmp(a, "new_id") || !strcmp(a, "remove_id")) {
            unsigned ven, did;
            if (sscanf(v, "%x %x", &ven, &did) != 2)
                return -EINVAL;
            drv *dr = &m->drv[k];
            unsigned id = ven << 16 | did;
            if (!strcmp(a, "remove_id")) {
                for (int j = 0; j < dr->ndyn; j++)
                    if (dr->dyn[j] == id) {
                        dr->dyn[j] = dr->dyn[--dr->ndyn];
                        return 0;
                    }
                return -ENODEV;
            }
            if (dr->ndyn == MAX_IDS)
                return -ENOSPC;
            dr->dyn[dr->ndyn++] = id;
            for (int i = 0; i < m->ndev; i++)   /* the kernel probes at once */
                if (m->dev[i].present && m->dev[i].drv < 0 && may_bind(m, &m->dev[i], k))
                    bind(m, &m->dev[i], k);
            return 0;
        }
        int i = dev_find(m, v, strlen(v));
        if (i < 0)
            return -ENODEV;
        dev *d = &m->dev[i];
        if (!strcmp(a, "unbind"))
            return d->drv == k ? unbind(m, d) : -ENODEV;
        if (!strcmp(a, "bind"))
            return d->drv >= 0 ? -EBUSY : may_bind(m, d, k) ? bind(m, d, k) : -ENODEV;
        return -EACCES;
    }
    if (prefix(p, DEVS, &r)) {
        int i = dev_find(m, r, strcspn(r, "/"));
        if (i < 0 || r[12] != '/')
            return -ENOENT;
        dev *d = &m->dev[i];
        const char *a = r + 13;
        if (!strcmp(a, "driver_override")) {
            if (strlen(v) >= sizeof(d->override))
                return -EINVAL;
            snprintf(d->override, sizeof(d->override), "%s", v);
            return 0;
        }
        if (d->totalvfs && !strcmp(a, "sriov_numvfs"))
            return set_numvfs(m, i, atoi(v));
        if (d->totalvfs && !strcmp(a, "sriov_drivers_autoprobe")) {
            d->autoprobe = atoi(v) != 0;
            return 0;
        }
    }
    return -EACCES;
}

static int op_write(const char *p, const char *buf, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    (void)off;
    (void)fi;
    machine *m = M();
    char v[256];
    p = canon(p);
    if (size >= sizeof(v))
        return -EINVAL;
    memcpy(v, buf, size);
    v[size] = '\0';
    v[strcspn(v, "\n")] = '\0';
    pthread_mutex_lock(&m->lock);
    int rc = attr_write(m, p, v);
    pthread_mutex_unlock(&m->lock);
    return rc < 0 ? rc : (int)size;
}

static int op_truncate(const char *p, off_t size, struct fuse_file_info *fi)
{
    (void)p;
    (void)size;
    (void)fi;
    return 0;   /* `echo x > attr` truncates first; sysfs ignores that too */
}

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    (void)conn;
    cfg->entry_timeout = cfg->attr_timeout = cfg->negative_timeout = 0;
    cfg->direct_io = 1;
    cfg->use_ino = 1;   /* ino_of's numbers, not one per path */
    return fuse_get_context()->private_data;
}

static const struct fuse_operations ops = {
    .init = op_init,
    .getattr = op_getattr,
    .readlink = op_readlink,
    .readdir = op_readdir,
    .open = op_open,
    .release = op_release,
    .read = op_read,
    .write = op_write,
    .truncate = op_truncate,
};

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: vdesk-sysfs-emu MACHINE.ini MOUNTPOINT [FUSE options]\n");
        return 2;
    }
    machine *m = calloc(1, sizeof(*m));
    if (!m)
        return 1;
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->released, NULL);
    pthread_cond_init(&m->closed, NULL);
    int line = ini_parse(argv[1], on_ini, m);
    if (line != 0) {
        fprintf(stderr, "vdesk-sysfs-emu: %s:%d: not understood\n", argv[1], line);
        free(m);
        return 1;
    }
    /* vfio-pci binds by driver_override or new_id only: no ids, and so no
     * section in the machine file (inih reports no empty sections). */
    if (drv_find(m, "vfio-pci", 8) < 0 && m->ndrv < MAX_DRV)
        snprintf(m->drv[m->ndrv++].name, sizeof(m->drv[0].name), "vfio-pci");
    argv[1] = argv[0];   /* FUSE sees: PROG MOUNTPOINT [options] */
    int rc = fuse_main(argc - 1, argv + 1, &ops, m);
    free(m);
    return rc;
}
