/* SPDX-License-Identifier: MIT */
#include "ib.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <infiniband/verbs.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pci.h"
#include "sysfs.h"

/* class/infiniband/NAME/device is the PCI function; sysfs's view of it
 * says whether it is a VF (physfn) and how many VFs a PF has. */
static void pci_and_sriov(const char *sys, vd_ib_dev *d)
{
    char link[PATH_MAX], name[32];
    snprintf(link, sizeof(link), "%s/class/infiniband/%s/device", sys, d->name);
    if (vd_sysfs_link_name(link, name, sizeof(name)) < 0 || strlen(name) != 12)
        return;
    vd_pci p = { .sys = sys };
    vd_pci_info info;
    vd_pci_info_read(&p, name, &info);
    memcpy(d->pci, info.bdf, sizeof(d->pci));
    memcpy(d->pf_pci, info.physfn, sizeof(d->pf_pci));
    d->totalvfs = info.totalvfs;
    d->numvfs = info.numvfs;
}

static void verbs_query(struct ibv_device *dev, vd_ib_dev *d)
{
    d->verbs = 1;
    d->node_guid = be64toh(ibv_get_device_guid(dev));
    struct ibv_context *ctx = ibv_open_device(dev);
    struct ibv_device_attr attr;
    if (!ctx)
        return;   /* listed, but not ours to open: name and GUID only */
    if (ibv_query_device(ctx, &attr) == 0) {
        snprintf(d->fw, sizeof(d->fw), "%s", attr.fw_ver);
        for (int p = 1; p <= attr.phys_port_cnt && d->nports < VD_IB_MAX_PORTS; p++) {
            struct ibv_port_attr pa;
            if (ibv_query_port(ctx, (uint8_t)p, &pa) != 0)
                continue;
            vd_ib_port *port = &d->ports[d->nports++];
            port->num = p;
            port->lid = pa.lid;
            snprintf(port->state, sizeof(port->state), "%s", ibv_port_state_str(pa.state));
            snprintf(port->link_layer, sizeof(port->link_layer), "%s",
                     pa.link_layer == IBV_LINK_LAYER_ETHERNET ? "Ethernet" : "InfiniBand");
        }
    }
    ibv_close_device(ctx);
}

/* A device verbs cannot see, read the way ibstat reads it: node_guid
 * ("0c42:a103:0000:0004"), ports/N/{state ("4: ACTIVE"), link_layer, lid}. */
static void sysfs_query(const char *sys, vd_ib_dev *d)
{
    char path[PATH_MAX], buf[64], hex[20] = "";
    snprintf(path, sizeof(path), "%s/class/infiniband/%s/node_guid", sys, d->name);
    if (vd_sysfs_line(path, buf, sizeof(buf)) == 0) {
        size_t h = 0;
        for (const char *c = buf; *c && h < sizeof(hex) - 1; c++)
            if (*c != ':')
                hex[h++] = *c;
        hex[h] = '\0';
        d->node_guid = strtoull(hex, NULL, 16);
    }
    for (int p = 1; p <= VD_IB_MAX_PORTS; p++) {
        vd_ib_port port = { .num = p };
        snprintf(path, sizeof(path), "%s/class/infiniband/%s/ports/%d/state", sys, d->name, p);
        if (vd_sysfs_line(path, buf, sizeof(buf)) < 0)
            break;
        const char *name = strchr(buf, ':') ? strchr(buf, ':') + 1 : buf;
        snprintf(port.state, sizeof(port.state), "%.15s", name + strspn(name, " "));
        snprintf(path, sizeof(path), "%s/class/infiniband/%s/ports/%d/link_layer", sys, d->name, p);
        if (vd_sysfs_line(path, buf, sizeof(buf)) == 0)
            snprintf(port.link_layer, sizeof(port.link_layer), "%.15s", buf);
        snprintf(path, sizeof(path), "%s/class/infiniband/%s/ports/%d/lid", sys, d->name, p);
        if (vd_sysfs_line(path, buf, sizeof(buf)) == 0)
            port.lid = (unsigned)strtoul(buf, NULL, 16);
        d->ports[d->nports++] = port;
    }
}

typedef struct list {
    vd_ib_dev *v;
    int n, cap;
} list;

/* Adds `name` unless listed: *d is the new entry, or NULL if it was. */
static int list_add(list *l, const char *name, vd_ib_dev **d, vd_err *err)
{
    *d = NULL;
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->v[i].name, name))
            return 0;
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 8;
        vd_ib_dev *grown = realloc(l->v, (size_t)cap * sizeof(*grown));
        if (!grown)
            return vd_err_set(err, "out of memory listing RDMA devices");
        l->v = grown;
        l->cap = cap;
    }
    *d = &l->v[l->n++];
    memset(*d, 0, sizeof(**d));
    snprintf((*d)->name, sizeof((*d)->name), "%s", name);
    return 0;
}

/* Returns -1 only for a real error; no verbs at all sets *unavailable. */
static int add_verbs(list *l, int *unavailable, vd_err *err)
{
    int count = 0;
    errno = 0;
    struct ibv_device **devs = ibv_get_device_list(&count);
    if (!devs) {
        if (errno == ENOSYS || errno == 0) {
            *unavailable = 1;   /* no verbs here: as good as no device */
            return 0;
        }
        return vd_err_set(err, "libibverbs: cannot list RDMA devices: %s", strerror(errno));
    }
    int rc = 0;
    for (int i = 0; i < count && rc == 0; i++) {
        vd_ib_dev *d;
        if ((rc = list_add(l, ibv_get_device_name(devs[i]), &d, err)) == 0 && d)
            verbs_query(devs[i], d);
    }
    ibv_free_device_list(devs);
    return rc;
}

static int add_sysfs(list *l, const char *sys, vd_err *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/class/infiniband", sys);
    DIR *dir = opendir(path);
    if (!dir)
        return 0;   /* no RDMA subsystem: no devices */
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(dir))) {
        if (e->d_name[0] == '.')
            continue;
        vd_ib_dev *d;
        if ((rc = list_add(l, e->d_name, &d, err)) == 0 && d)
            sysfs_query(sys, d);
    }
    closedir(dir);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strverscmp(((const vd_ib_dev *)a)->name, ((const vd_ib_dev *)b)->name);
}

int vd_ib_list(const char *sys, vd_ib_dev **out, int *n, int *unavailable, vd_err *err)
{
    list l = { 0 };
    *out = NULL;
    *n = 0;
    *unavailable = 0;
    if (add_verbs(&l, unavailable, err) < 0 || add_sysfs(&l, sys, err) < 0) {
        free(l.v);
        return -1;
    }
    for (int i = 0; i < l.n; i++)
        pci_and_sriov(sys, &l.v[i]);
    for (int i = 0; i < l.n; i++)
        for (int k = 0; k < l.n && l.v[i].pf_pci[0]; k++)
            if (!strcmp(l.v[k].pci, l.v[i].pf_pci))
                snprintf(l.v[i].pf, sizeof(l.v[i].pf), "%s", l.v[k].name);
    if (l.n)
        qsort(l.v, (size_t)l.n, sizeof(*l.v), by_name);
    *out = l.v;
    *n = l.n;
    return 0;
}
