/* SPDX-License-Identifier: MIT */
#include "inventory.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ib.h"
#include "nvidia.h"
#include "pci.h"
#include "topo.h"

enum kind { K_OTHER, K_GPU, K_HCA };

/* GPUs as Slurm counts them (vd_pci_is_gpu): a BMC's VGA is none, and
 * listing it would shift every gres index after it. */
static enum kind kind_of(const vd_pci *p, const vd_pci_info *d)
{
    if (vd_pci_is_gpu(p, d))
        return K_GPU;
    /* InfiniBand controllers; ConnectX in Ethernet mode is a network one. */
    if ((d->klass >> 8) == 0x0207 || (d->vendor == 0x15b3 && (d->klass >> 16) == 0x02))
        return K_HCA;
    return K_OTHER;
}

/* The device's local CPUs: from the topology's PCI object when it has one
 * (an XML topology, this machine), else sysfs's local_cpulist. */
static void locality(const vd_topo *t, vd_pci_info *d)
{
    char cpus[sizeof(d->cpulist)];
    vd_err err;
    if (vd_topo_pci_cpus(t, d->bdf, cpus, sizeof(cpus), &err) == 0)
        memcpy(d->cpulist, cpus, sizeof(cpus));
}

static const char *cores_of(const vd_topo *t, const char *cpulist, char *buf, size_t size)
{
    vd_err err;
    if (!cpulist[0] || vd_topo_cores_of(t, cpulist, buf, size, &err) < 0)
        snprintf(buf, size, "?");
    return buf;
}

static json_object *fn_json(const vd_pci_info *d, const vd_topo *t)
{
    char id[16], cores[128];
    json_object *o = json_object_new_object();
    snprintf(id, sizeof(id), "%04x:%04x", d->vendor, d->device);
    json_object_object_add(o, "bdf", json_object_new_string(d->bdf));
    json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "driver", json_object_new_string(d->driver));
    json_object_object_add(o, "iommu_group", json_object_new_int(d->group));
    json_object_object_add(o, "numa_node", json_object_new_int(d->numa));
    json_object_object_add(o, "local_cpulist", json_object_new_string(d->cpulist));
    json_object_object_add(o, "cores", json_object_new_string(cores_of(t, d->cpulist, cores, sizeof(cores))));
    return o;
}

/* One GPU or HCA with its IOMMU group and, for a PF, its VFs. */
static json_object *device_json(const vd_pci_info *all, int n, const vd_pci_info *d, const vd_topo *t)
{
    json_object *o = fn_json(d, t), *group = json_object_new_array(), *vfs = json_object_new_array();
    for (int i = 0; i < n; i++) {
        if (all[i].group == d->group && d->group >= 0)
            json_object_array_add(group, fn_json(&all[i], t));
        if (!strcmp(all[i].physfn, d->bdf))
            json_object_array_add(vfs, fn_json(&all[i], t));
    }
    json_object_object_add(o, "group_members", group);
    if (d->totalvfs) {
        json_object_object_add(o, "sriov_totalvfs", json_object_new_int(d->totalvfs));
        json_object_object_add(o, "vfs", vfs);
    } else {
        json_object_put(vfs);
    }
    return o;
}

static void print_human(const vd_pci *p, const vd_pci_info *all, int n, const vd_topo *t,
                        const char *proc)
{
    char cores[128];
    int cn, pn;
    vd_topo_size(t, &cn, &pn);
    printf("node: %d cores, %d CPUs\n", cn, pn);
    for (int i = 0; i < n; i++) {
        const vd_pci_info *d = &all[i];
        enum kind k = kind_of(p, d);
        if (k == K_OTHER || d->physfn[0])
            continue;
        printf("%-3s %s %04x:%04x  driver %-12s  IOMMU group %-3d  NUMA %-2d  cores %s\n",
               k == K_GPU ? "GPU" : "HCA", d->bdf, d->vendor, d->device,
               d->driver[0] ? d->driver : "(none)", d->group, d->numa,
               cores_of(t, d->cpulist, cores, sizeof(cores)));
        int minor;
        if (k == K_GPU && vd_nvidia_minor(proc, d->bdf, &minor, NULL) == 0)
            printf("      device node /dev/nvidia%d\n", minor);
        for (int j = 0; j < n; j++)
            if (j != i && all[j].group == d->group && d->group >= 0)
                printf("      group member %s %04x:%04x  driver %s\n", all[j].bdf, all[j].vendor,
                       all[j].device, all[j].driver[0] ? all[j].driver : "(none)");
        if (d->totalvfs)
            printf("      SR-IOV: %d of %d VFs\n", d->numvfs, d->totalvfs);
        for (int j = 0; j < n; j++)
            if (!strcmp(all[j].physfn, d->bdf))
                printf("      VF %s  driver %-12s  IOMMU group %d\n", all[j].bdf,
                       all[j].driver[0] ? all[j].driver : "(none)", all[j].group);
    }
}

static const char *guid_str(uint64_t guid, char *buf, size_t size)
{
    snprintf(buf, size, "%016llx", (unsigned long long)guid);
    return buf;
}

/* RDMA devices; none, or no verbs at all, is a normal answer. */
static void print_ib(const char *sys)
{
    vd_ib_dev *v = NULL;
    int n = 0, unavailable = 0;
    vd_err err;
    char guid[24];
    if (vd_ib_list(sys, &v, &n, &unavailable, &err) < 0) {
        printf("RDMA: %s\n", err.msg);
        return;
    }
    if (n == 0)
        printf("RDMA: %s\n", unavailable ? "verbs unavailable (no rdma-core provider)" : "no devices");
    for (int i = 0; i < n; i++) {
        const vd_ib_dev *d = &v[i];
        printf("RDMA %s  PCI %s  node GUID %s  firmware %s", d->name, d->pci[0] ? d->pci : "?",
               guid_str(d->node_guid, guid, sizeof(guid)), d->fw[0] ? d->fw : "?");
        if (d->pf_pci[0])
            printf("  VF of %s (%s)", d->pf[0] ? d->pf : "?", d->pf_pci);
        if (d->totalvfs)
            printf("  SR-IOV %d of %d VFs", d->numvfs, d->totalvfs);
        printf("\n");
        if (!d->verbs)
            printf("      (from sysfs: libibverbs cannot open it; is rdma-core's ibverbs-providers "
                   "installed?)\n");
        for (int p = 0; p < d->nports; p++)
            printf("      port %d  %s  %s  LID %u\n", d->ports[p].num, d->ports[p].state,
                   d->ports[p].link_layer, d->ports[p].lid);
    }
    free(v);
}

static json_object *ib_dev_json(const vd_ib_dev *d)
{
    char guid[24];
    json_object *o = json_object_new_object(), *ports = json_object_new_array();
    json_object_object_add(o, "name", json_object_new_string(d->name));
    json_object_object_add(o, "verbs", json_object_new_boolean(d->verbs));
    json_object_object_add(o, "pci", json_object_new_string(d->pci));
    json_object_object_add(o, "node_guid", json_object_new_string(guid_str(d->node_guid, guid, sizeof(guid))));
    json_object_object_add(o, "firmware", json_object_new_string(d->fw));
    if (d->pf_pci[0]) {
        json_object_object_add(o, "pf", json_object_new_string(d->pf));
        json_object_object_add(o, "pf_pci", json_object_new_string(d->pf_pci));
    }
    if (d->totalvfs) {
        json_object_object_add(o, "sriov_numvfs", json_object_new_int(d->numvfs));
        json_object_object_add(o, "sriov_totalvfs", json_object_new_int(d->totalvfs));
    }
    for (int p = 0; p < d->nports; p++) {
        json_object *po = json_object_new_object();
        json_object_object_add(po, "port", json_object_new_int(d->ports[p].num));
        json_object_object_add(po, "state", json_object_new_string(d->ports[p].state));
        json_object_object_add(po, "link_layer", json_object_new_string(d->ports[p].link_layer));
        json_object_object_add(po, "lid", json_object_new_int((int)d->ports[p].lid));
        json_object_array_add(ports, po);
    }
    json_object_object_add(o, "ports", ports);
    return o;
}

static json_object *ib_json(const char *sys)
{
    vd_ib_dev *v = NULL;
    int n = 0, unavailable = 0;
    vd_err err;
    json_object *o = json_object_new_object(), *devs = json_object_new_array();
    if (vd_ib_list(sys, &v, &n, &unavailable, &err) < 0)
        json_object_object_add(o, "error", json_object_new_string(err.msg));
    json_object_object_add(o, "verbs_available", json_object_new_boolean(!unavailable));
    for (int i = 0; i < n; i++)
        json_object_array_add(devs, ib_dev_json(&v[i]));
    json_object_object_add(o, "devices", devs);
    free(v);
    return o;
}

/* One gres.conf line per GPU, in PCI address order: that order is the gres
 * index vdesk expects in SLURM_JOB_GPUS (vd_pci_gpu_index). File= is the
 * GPU's own device node while the NVIDIA driver has it; a GPU on vfio-pci
 * has none, and the driver's own numbering (PCI order) is assumed. */
static void print_gres(const vd_pci_info *d, int index, const vd_topo *t, const char *proc)
{
    char cores[128];
    int minor;
    cores_of(t, d->cpulist, cores, sizeof(cores));
    if (vd_nvidia_minor(proc, d->bdf, &minor, NULL) == 0)
        printf("Name=gpu File=/dev/nvidia%d Cores=%s   # %s\n", minor, cores, d->bdf);
    else
        printf("Name=gpu File=/dev/nvidia%d Cores=%s   # %s: on %s now, so its minor is assumed "
               "from PCI order; check it while the host has it\n", index, cores, d->bdf,
               d->driver[0] ? d->driver : "no driver");
}

/* gres.conf lines and the desktop's cores for slurm.conf and vdesk.conf. */
static int print_slurm(const vd_pci *p, const vd_pci_info *all, int n, const vd_topo *t, int ncores,
                       const char *proc)
{
    const char **local = calloc((size_t)n + 1, sizeof(*local));
    char dos[512], dslurm[512], job[512];
    int nlocal = 0, gpu = 0;
    vd_err err;
    if (!local)
        return 1;
    for (int i = 0; i < n; i++) {
        const vd_pci_info *d = &all[i];
        enum kind k = kind_of(p, d);
        if (k == K_OTHER || d->physfn[0])
            continue;
        if (d->cpulist[0])
            local[nlocal++] = d->cpulist;
        if (k == K_GPU && !gpu)
            printf("# gres.conf\n");
        if (k == K_GPU)
            print_gres(d, gpu++, t, proc);
    }
    if (!gpu)
        printf("# gres.conf: no GPU on this node (gpu_vendors = %s): no Name=gpu lines; leave "
               "Gres=gpu off this node's NodeName line\n", p->gpu_vendors ? p->gpu_vendors : "10de");
    int rc = vd_topo_split(t, local, nlocal, ncores, dos, dslurm, job, sizeof(dos), &err);
    free(local);
    if (rc < 0) {
        fprintf(stderr, "vdeskctl inventory --slurm: %s; choose with --desktop-cores N (now %d)\n",
                err.msg, ncores);
        return 1;
    }
    printf("# slurm.conf, on this node's NodeName line: keep jobs off the desktop's cores\n");
    printf("CpuSpecList=%s\n", dslurm);
    printf("# vdesk.conf, in this node's [node] section\n");
    printf("desktop_cores = %s\n", dos);
    return 0;
}

int cmd_inventory(const inv_opts *o)
{
    vd_pci p = { .sys = o->sys, .dev = o->dev, .timeout_ms = 1000, .gpu_vendors = o->gpu_vendors };
    vd_pci_info *all = NULL;
    vd_topo *t = NULL;
    vd_err err;
    int n = 0;
    if (vd_pci_scan(&p, &all, &n, &err) < 0 || vd_topo_open(o->topology, &t, &err) < 0) {
        fprintf(stderr, "vdeskctl: %s\n", err.msg);
        free(all);
        return 1;
    }
    for (int i = 0; i < n; i++)
        locality(t, &all[i]);
    int rc = 0;
    if (o->glue2) {
        rc = inventory_glue2(&o->g, &p, all, n, t);
    } else if (o->slurm) {
        rc = print_slurm(&p, all, n, t, o->desktop_cores, o->proc);
    } else if (o->json) {
        json_object *root = json_object_new_object();
        json_object_object_add(root, "rdma", ib_json(o->sys));
        json_object *gpus = json_object_new_array(), *hcas = json_object_new_array();
        for (int i = 0; i < n; i++) {
            enum kind k = kind_of(&p, &all[i]);
            if (k != K_OTHER && !all[i].physfn[0])
                json_object_array_add(k == K_GPU ? gpus : hcas, device_json(all, n, &all[i], t));
        }
        json_object_object_add(root, "gpus", gpus);
        json_object_object_add(root, "hcas", hcas);
        printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
        json_object_put(root);
    } else {
        print_human(&p, all, n, t, o->proc);
        print_ib(o->sys);
    }
    vd_topo_close(t);
    free(all);
    return rc;
}
