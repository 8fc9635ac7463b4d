/* SPDX-License-Identifier: MIT */
#include "topo.h"

#include <hwloc.h>
#include <stdlib.h>
#include <string.h>

struct vd_topo {
    hwloc_topology_t t;
};

/* The live machine's PCI devices come from hwloc's Linux component, which
 * reads sysfs, not from its libpciaccess one: the latter leaks the objects
 * of each load with hwloc 2.12 (Debian 13), and both find the same devices.
 * hwloc 2.9 (Debian 12), without the leak, refuses the blacklist: it then
 * loads as it always has, so the result is of no consequence. */
static void use_sysfs_for_pci(hwloc_topology_t t)
{
#if HWLOC_API_VERSION >= 0x00020100
    if (hwloc_topology_set_components(t, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, "pci") < 0)
        return;
#else
    (void)t;
#endif
}

int vd_topo_open(const char *source, vd_topo **out, vd_err *err)
{
    vd_topo *v = calloc(1, sizeof(*v));
    if (!v || hwloc_topology_init(&v->t) < 0) {
        free(v);
        return vd_err_set(err, "hwloc: cannot initialise a topology");
    }
    int rc = 0;
    if (source && !strncmp(source, "synthetic:", 10))
        rc = hwloc_topology_set_synthetic(v->t, source + 10);
    else if (source)
        rc = hwloc_topology_set_xml(v->t, source);
    else
        use_sysfs_for_pci(v->t);
    /* hwloc 2 finds no I/O devices unless asked. */
    if (rc == 0)
        rc = hwloc_topology_set_io_types_filter(v->t, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    if (rc == 0)
        rc = hwloc_topology_load(v->t);
    if (rc < 0) {
        hwloc_topology_destroy(v->t);
        free(v);
        return vd_err_set(err, "hwloc: cannot load the topology of %s (a synthetic description "
                          "such as 'synthetic:pack:2 core:8 pu:2', or an hwloc XML file)",
                          source ? source : "this machine");
    }
    *out = v;
    return 0;
}

void vd_topo_close(vd_topo *t)
{
    if (!t)
        return;
    hwloc_topology_destroy(t->t);
    free(t);
}

void vd_topo_size(const vd_topo *t, int *cores, int *pus)
{
    *cores = hwloc_get_nbobjs_by_type(t->t, HWLOC_OBJ_CORE);
    *pus = hwloc_get_nbobjs_by_type(t->t, HWLOC_OBJ_PU);
}

static int parse_list(const char *list, hwloc_bitmap_t b, vd_err *err)
{
    if (hwloc_bitmap_list_sscanf(b, list) < 0)
        return vd_err_set(err, "'%s' is not a CPU list (0-15,32-47)", list);
    return 0;
}

static int print_list(hwloc_const_bitmap_t b, char *out, size_t size, vd_err *err)
{
    if (hwloc_bitmap_list_snprintf(out, size, b) >= (int)size)
        return vd_err_set(err, "CPU list too long for its buffer");
    return 0;
}

int vd_topo_pci_cpus(const vd_topo *t, const char *bdf, char *out, size_t size, vd_err *err)
{
    hwloc_obj_t dev = hwloc_get_pcidev_by_busidstring(t->t, bdf);
    if (!dev)
        return 1;
    hwloc_obj_t near = hwloc_get_non_io_ancestor_obj(t->t, dev);
    if (!near || !near->cpuset)
        return vd_err_set(err, "hwloc: PCI device %s has no CPU locality", bdf);
    return print_list(near->cpuset, out, size, err);
}

int vd_topo_cores_of(const vd_topo *t, const char *os_cpulist, char *out, size_t size, vd_err *err)
{
    hwloc_bitmap_t cpus = hwloc_bitmap_alloc(), idx = hwloc_bitmap_alloc();
    int rc = cpus && idx ? parse_list(os_cpulist, cpus, err) : vd_err_set(err, "out of memory");
    hwloc_obj_t core = NULL;
    while (rc == 0 && (core = hwloc_get_next_obj_by_type(t->t, HWLOC_OBJ_CORE, core)))
        if (hwloc_bitmap_intersects(core->cpuset, cpus))
            hwloc_bitmap_set(idx, core->logical_index);
    if (rc == 0)
        rc = print_list(idx, out, size, err);
    hwloc_bitmap_free(cpus);
    hwloc_bitmap_free(idx);
    return rc;
}

/* How near a core is to the devices: 2 local to one, 1 in a package with
 * one, 0 neither. */
static int nearness(const vd_topo *t, hwloc_obj_t core, hwloc_const_bitmap_t devs)
{
    if (hwloc_bitmap_intersects(core->cpuset, devs))
        return 2;
    hwloc_obj_t pkg = hwloc_get_ancestor_obj_by_type(t->t, HWLOC_OBJ_PACKAGE, core);
    return pkg && hwloc_bitmap_intersects(pkg->cpuset, devs) ? 1 : 0;
}

typedef struct ranked {
    hwloc_obj_t core;
    int near;
} ranked;

static int by_distance(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->near != y->near)
        return x->near - y->near;                            /* farthest first */
    return (int)y->core->logical_index - (int)x->core->logical_index;   /* then highest */
}

/* The PUs of `set` as Slurm's abstract CPU IDs (hwloc's logical order). */
static void logical_pus(const vd_topo *t, hwloc_const_bitmap_t set, hwloc_bitmap_t out)
{
    hwloc_obj_t pu = NULL;
    while ((pu = hwloc_get_next_obj_by_type(t->t, HWLOC_OBJ_PU, pu)))
        if (hwloc_bitmap_isset(set, pu->os_index))
            hwloc_bitmap_set(out, pu->logical_index);
}

int vd_topo_split(const vd_topo *t, const char *const *dev_cpulists, int ndev, int ncores,
                  char *desk_os, char *desk_slurm, char *job_os, size_t size, vd_err *err)
{
    int total = hwloc_get_nbobjs_by_type(t->t, HWLOC_OBJ_CORE);
    if (ncores < 1 || ncores >= total)
        return vd_err_set(err, "the desktop can have 1 to %d of the node's %d cores (at least one "
                          "stays with the jobs), not %d", total - 1, total, ncores);
    hwloc_bitmap_t devs = hwloc_bitmap_alloc(), one = hwloc_bitmap_alloc();
    hwloc_bitmap_t desk = hwloc_bitmap_alloc(), job = hwloc_bitmap_alloc(), logical = hwloc_bitmap_alloc();
    ranked *r = calloc((size_t)total, sizeof(*r));
    int rc = devs && one && desk && job && logical && r ? 0 : vd_err_set(err, "out of memory");
    for (int i = 0; rc == 0 && i < ndev; i++)
        if ((rc = parse_list(dev_cpulists[i], one, err)) == 0)
            hwloc_bitmap_or(devs, devs, one);
    for (int i = 0; rc == 0 && i < total; i++) {
        r[i].core = hwloc_get_obj_by_type(t->t, HWLOC_OBJ_CORE, (unsigned)i);
        r[i].near = nearness(t, r[i].core, devs);
    }
    if (rc == 0) {
        qsort(r, (size_t)total, sizeof(*r), by_distance);
        for (int i = 0; i < ncores; i++)
            hwloc_bitmap_or(desk, desk, r[i].core->cpuset);   /* the whole core: SMT siblings too */
        hwloc_bitmap_andnot(job, hwloc_topology_get_topology_cpuset(t->t), desk);
        logical_pus(t, desk, logical);
        rc = print_list(desk, desk_os, size, err);
    }
    if (rc == 0)
        rc = print_list(logical, desk_slurm, size, err);
    if (rc == 0)
        rc = print_list(job, job_os, size, err);
    free(r);
    hwloc_bitmap_free(devs);
    hwloc_bitmap_free(one);
    hwloc_bitmap_free(desk);
    hwloc_bitmap_free(job);
    hwloc_bitmap_free(logical);
    return rc;
}

/* A core split between a desktop and whatever else runs on the node shares
 * its caches and execution units with it: pinning is by whole cores. */
int vd_topo_whole_cores(const vd_topo *t, const char *os_cpulist, vd_err *err)
{
    hwloc_bitmap_t cpus = hwloc_bitmap_alloc(), missing = hwloc_bitmap_alloc();
    int rc = cpus && missing ? parse_list(os_cpulist, cpus, err) : vd_err_set(err, "out of memory");
    char have[256], want[256];
    if (rc == 0) {
        hwloc_bitmap_andnot(missing, cpus, hwloc_topology_get_topology_cpuset(t->t));
        if (!hwloc_bitmap_iszero(missing) && print_list(missing, have, sizeof(have), err) == 0)
            rc = vd_err_set(err, "CPU(s) %s are not in the node's topology", have);
    }
    hwloc_obj_t core = NULL;
    while (rc == 0 && (core = hwloc_get_next_obj_by_type(t->t, HWLOC_OBJ_CORE, core))) {
        if (!hwloc_bitmap_intersects(core->cpuset, cpus) || hwloc_bitmap_isincluded(core->cpuset, cpus))
            continue;
        hwloc_bitmap_and(missing, core->cpuset, cpus);
        if (print_list(core->cpuset, want, sizeof(want), err) == 0 &&
            print_list(missing, have, sizeof(have), err) == 0)
            rc = vd_err_set(err, "core %u has CPUs %s, the list only %s: name every CPU of a core "
                            "or none (SMT siblings share the core)", core->logical_index, want, have);
        else
            rc = -1;
    }
    hwloc_bitmap_free(cpus);
    hwloc_bitmap_free(missing);
    return rc;
}
