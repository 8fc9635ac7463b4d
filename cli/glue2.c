/* SPDX-License-Identifier: MIT */
/*
 * glue2.c - `vdeskctl inventory --glue2`: the node as a GLUE 2.1
 * ExecutionEnvironment with one AcceleratorEnvironment per GPU model, in
 * the JSON rendering grid information systems publish, for information
 * discovery (the EGI report's "GLUE2 scheme like grid sites with GPGPU").
 *
 * GLUE has no words for a GPU a desktop VM holds part of the time; what
 * vdesk adds goes where GLUE puts what it does not define, OtherInfo, as
 * "vdesk:Key=Value":
 *   - per model: DesktopAccelerators (the desktop's, from vdesk.conf),
 *     WithDesktopNow (on vfio-pci now), WithHostNow (on a host driver now:
 *     jobs may have them);
 *   - per node, over a period (the accounting database; --since/--until,
 *     else the last 30 days): DesktopGPUShare (the desktop's GPUs times
 *     the share of the time it was not evicted, over all GPUs), JobGPUShare
 *     (GPU-seconds of jobs on this node inside the period, over all GPUs
 *     times the period), SharePeriod.
 */
#include "glue2.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <time.h>

#include "report.h"

#define VALIDITY_S 3600   /* how long a consumer may trust it */

typedef struct model {
    unsigned vendor, device;
    int total, desktop, with_desktop, with_host;
} model;

static const char *vendor_name(unsigned vendor)
{
    switch (vendor) {
    case 0x10de: return "NVIDIA";
    case 0x1002: return "AMD";
    case 0x8086: return "Intel";
    default: return NULL;
    }
}

static void iso_time(long long t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, size, "%lld", t);
}

static int is_desktops(const vd_conf *c, const char *bdf)
{
    for (int i = 0; i < c->ndevices; i++)
        if (!strcmp(c->devices[i].pci, bdf))
            return 1;
    return 0;
}

/* The GPUs grouped by model, with where each is now. */
static int models_of(const vd_pci *p, const vd_pci_info *all, int n, const vd_conf *c, model *m, int max)
{
    int nm = 0;
    for (int i = 0; i < n; i++) {
        const vd_pci_info *d = &all[i];
        if (!vd_pci_is_gpu(p, d) || d->physfn[0])
            continue;
        int k = 0;
        while (k < nm && (m[k].vendor != d->vendor || m[k].device != d->device))
            k++;
        if (k == nm) {
            if (nm == max)
                continue;
            m[nm++] = (model){ .vendor = d->vendor, .device = d->device };
        }
        m[k].total++;
        m[k].desktop += is_desktops(c, d->bdf);
        if (!strcmp(d->driver, "vfio-pci"))
            m[k].with_desktop++;
        else if (d->driver[0])
            m[k].with_host++;
    }
    return nm;
}

static void other_info(json_object *list, const char *key, const char *fmt_value)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "vdesk:%s=%s", key, fmt_value);
    json_object_array_add(list, json_object_new_string(buf));
}

static void other_int(json_object *list, const char *key, long v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%ld", v);
    other_info(list, key, buf);
}

static void other_share(json_object *list, const char *key, double v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%.4f", v);
    other_info(list, key, buf);
}

static json_object *accelerator_json(const glue2_opts *o, const model *m, const char *ee_id, char *id,
                                     size_t id_size)
{
    char name[128], dev[16];
    snprintf(dev, sizeof(dev), "%04x:%04x", m->vendor, m->device);
    snprintf(id, id_size, "urn:glue2:AcceleratorEnvironment:%s:%s", o->node, dev);
    json_object *a = json_object_new_object(), *info = json_object_new_array(),
                *assoc = json_object_new_object(), *ees = json_object_new_array();
    json_object_object_add(a, "ID", json_object_new_string(id));
    snprintf(name, sizeof(name), "GPUs %s of %s", dev, o->node);
    json_object_object_add(a, "Name", json_object_new_string(name));
    json_object_object_add(a, "Type", json_object_new_string("GPU"));
    json_object_object_add(a, "PhysicalAccelerators", json_object_new_int(m->total));
    json_object_object_add(a, "LogicalAccelerators", json_object_new_int(m->total));
    const char *v = vendor_name(m->vendor);
    json_object_object_add(a, "Vendor", json_object_new_string(v ? v : dev));
    /* The PCI id: the model's name needs the driver, which a GPU on vfio-pci has not. */
    json_object_object_add(a, "Model", json_object_new_string(dev));
    other_int(info, "DesktopAccelerators", m->desktop);
    other_int(info, "WithDesktopNow", m->with_desktop);
    other_int(info, "WithHostNow", m->with_host);
    json_object_object_add(a, "OtherInfo", info);
    json_object_array_add(ees, json_object_new_string(ee_id));
    json_object_object_add(assoc, "ExecutionEnvironmentID", ees);
    json_object_object_add(a, "Associations", assoc);
    return a;
}

/* OSName and OSVersion from os-release's ID= and VERSION_ID=. */
static void os_release(char *name, char *version, size_t size)
{
    char line[256];
    snprintf(name, size, "linux");
    version[0] = '\0';
    FILE *f = fopen("/etc/os-release", "r");
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        char *dst = !strncmp(line, "ID=", 3) ? name : !strncmp(line, "VERSION_ID=", 11) ? version : NULL;
        if (!dst)
            continue;
        char *v = strchr(line, '=') + 1;
        v[strcspn(v, "\n")] = '\0';
        if (*v == '"' && strlen(v) >= 2 && v[strlen(v) - 1] == '"') {
            v[strlen(v) - 1] = '\0';
            v++;
        }
        snprintf(dst, size, "%s", v);
    }
    fclose(f);
}

/* The node's shares over the period, when the accounting database has
 * them: 0 (added), 1 (no database: nothing said), -1 (it cannot be read). */
static int shares(const glue2_opts *o, int gpus, int desktop_gpus, json_object *info)
{
    long long since = o->since, until = o->until;
    double not_evicted, job_gpu_s;
    int rc = report_node_use(o->conf, o->node, since, until, &not_evicted, &job_gpu_s);
    if (rc != 0 || gpus == 0)
        return rc;
    char a[32], b[32], period[80];
    other_share(info, "DesktopGPUShare", (double)desktop_gpus / gpus * not_evicted);
    other_share(info, "JobGPUShare", job_gpu_s / ((double)gpus * (double)(until - since)));
    iso_time(since, a, sizeof(a));
    iso_time(until, b, sizeof(b));
    snprintf(period, sizeof(period), "%s/%s", a, b);
    other_info(info, "SharePeriod", period);
    return 0;
}

static json_object *environment_json(const glue2_opts *o, const vd_topo *t, const char *id, int gpus,
                                     json_object *accel_ids)
{
    json_object *e = json_object_new_object(), *assoc = json_object_new_object();
    struct utsname u;
    struct sysinfo si;
    char now[32], os[64], ver[64];
    int cores, pus;
    vd_topo_size(t, &cores, &pus);
    iso_time((long long)time(NULL), now, sizeof(now));
    os_release(os, ver, sizeof(os));
    json_object_object_add(e, "ID", json_object_new_string(id));
    json_object_object_add(e, "Name", json_object_new_string(o->node));
    json_object_object_add(e, "CreationTime", json_object_new_string(now));
    json_object_object_add(e, "Validity", json_object_new_int(VALIDITY_S));
    if (uname(&u) == 0)
        json_object_object_add(e, "Platform", json_object_new_string(!strcmp(u.machine, "x86_64") ? "amd64"
                                                                     : u.machine));
    json_object_object_add(e, "VirtualMachine", json_object_new_boolean(0));
    json_object_object_add(e, "TotalInstances", json_object_new_int(1));
    /* GLUE's PhysicalCPUs are sockets, which vd_topo does not count: left out. */
    json_object_object_add(e, "LogicalCPUs", json_object_new_int(pus));
    if (sysinfo(&si) == 0)
        json_object_object_add(e, "MainMemorySize",
                               json_object_new_int64((int64_t)((unsigned long long)si.totalram * si.mem_unit >> 20)));
    json_object_object_add(e, "OSFamily", json_object_new_string("linux"));
    json_object_object_add(e, "OSName", json_object_new_string(os));
    if (ver[0])
        json_object_object_add(e, "OSVersion", json_object_new_string(ver));
    json_object *info = json_object_new_array();
    other_int(info, "Cores", cores);
    other_int(info, "GPUs", gpus);
    if (o->conf->desktop_cores[0])
        other_info(info, "DesktopCores", o->conf->desktop_cores);
    json_object_object_add(e, "OtherInfo", info);
    json_object_object_add(assoc, "AcceleratorEnvironmentID", accel_ids);
    json_object_object_add(e, "Associations", assoc);
    return e;
}

int inventory_glue2(const glue2_opts *o, const vd_pci *p, const vd_pci_info *all, int n, const vd_topo *t)
{
    model m[64];   /* more models than that on one node: the rest are left out */
    int nm = models_of(p, all, n, o->conf, m, 64), gpus = 0, desktop = 0;
    char ee_id[192], id[192];
    snprintf(ee_id, sizeof(ee_id), "urn:glue2:ExecutionEnvironment:%s", o->node);
    json_object *accels = json_object_new_array(), *ids = json_object_new_array();
    for (int k = 0; k < nm; k++) {
        json_object_array_add(accels, accelerator_json(o, &m[k], ee_id, id, sizeof(id)));
        json_object_array_add(ids, json_object_new_string(id));
        gpus += m[k].total;
        desktop += m[k].desktop;
    }
    json_object *ee = environment_json(o, t, ee_id, gpus, ids);
    int rc = shares(o, gpus, desktop, json_object_object_get(ee, "OtherInfo"));
    json_object *root = json_object_new_object(), *ees = json_object_new_array();
    json_object_array_add(ees, ee);
    json_object_object_add(root, "ExecutionEnvironment", ees);
    json_object_object_add(root, "AcceleratorEnvironment", accels);
    if (rc >= 0 && (printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE)) < 0 ||
                    fflush(stdout) != 0))
        rc = -1;
    json_object_put(root);
    return rc < 0 ? 1 : 0;
}
