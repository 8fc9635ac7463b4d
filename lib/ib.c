/* SPDX-License-Identifier: MIT */
#include "ib.h"

#include <endian.h>
#include <errno.h>
#include <infiniband/verbs.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* /sys/class/infiniband/NAME/device links to the PCI function. */
static void pci_of(const char *sys, const char *name, char *out, size_t size)
{
    char link[PATH_MAX], target[PATH_MAX];
    snprintf(link, sizeof(link), "%s/class/infiniband/%s/device", sys, name);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    out[0] = '\0';
    if (n <= 0)
        return;
    target[n] = '\0';
    const char *base = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
    if (strlen(base) == 12)
        snprintf(out, size, "%.12s", base);
}

static void query(struct ibv_device *dev, const char *sys, vd_ib_dev *d)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->name, sizeof(d->name), "%s", ibv_get_device_name(dev));
    d->node_guid = be64toh(ibv_get_device_guid(dev));
    pci_of(sys, d->name, d->pci, sizeof(d->pci));
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

int vd_ib_list(const char *sys, vd_ib_dev **out, int *n, int *unavailable, vd_err *err)
{
    int count = 0;
    *out = NULL;
    *n = 0;
    *unavailable = 0;
    errno = 0;
    struct ibv_device **list = ibv_get_device_list(&count);
    if (!list) {
        if (errno == ENOSYS || errno == 0) {
            *unavailable = 1;   /* no verbs here: as good as no device */
            return 0;
        }
        return vd_err_set(err, "libibverbs: cannot list RDMA devices: %s", strerror(errno));
    }
    vd_ib_dev *v = count ? calloc((size_t)count, sizeof(*v)) : NULL;
    if (count && !v) {
        ibv_free_device_list(list);
        return vd_err_set(err, "out of memory listing RDMA devices");
    }
    for (int i = 0; i < count; i++)
        query(list[i], sys, &v[i]);
    ibv_free_device_list(list);
    *out = v;
    *n = count;
    return 0;
}
