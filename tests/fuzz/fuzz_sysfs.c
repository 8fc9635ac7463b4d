/* SPDX-License-Identifier: MIT */
/*
 * fuzz_sysfs - the readers of sysfs and /proc files: lib/sysfs.c (a file's
 * first line, a link's last component), lib/pci.c (a function's attributes,
 * its driver, IOMMU group and PF; the scans over bus/pci/devices) and
 * lib/nvidia.c (the "Device Minor" of the driver's information file).
 *
 * The input is up to 14 fields separated by a line "--" ("\n--\n"), most
 * of them the contents of a file of function 0000:65:00.0 in a tree under
 * fuzz_dir(), laid out as the kernel does:
 *
 *    0 class   1 vendor   2 device   3 numa_node   4 sriov_totalvfs
 *    5 sriov_numvfs   6 local_cpulist                 (attribute files)
 *    7 driver   8 iommu_group   9 physfn               (link targets)
 *   10 PROC/driver/nvidia/gpus/BDF/information
 *   11 the name of a second entry under bus/pci/devices (and in the group)
 *   12 driver_override                                 (attribute file)
 *   13 vd_pci.gpu_vendors, vdesk.conf's list of vendor ids (missing: NULL)
 *
 * Files get the field's bytes, NULs included; names and link targets end
 * at a NUL. A missing field is a missing file; a link target the kernel
 * refuses (empty, too long) is no link. The group's directory is the one
 * the IOMMU group link names, as the lib reads the number from it.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "nvidia.h"
#include "pci.h"
#include "sysfs.h"

#define BDF "0000:65:00.0"
#define NFIELDS 14

enum { F_CLASS, F_VENDOR, F_DEVICE, F_NUMA, F_TOTALVFS, F_NUMVFS, F_CPULIST, F_DRIVER, F_GROUP,
       F_PHYSFN, F_INFO, F_NAME, F_OVERRIDE, F_VENDORS };

static const char *const attrs[] = { "class", "vendor", "device", "numa_node", "sriov_totalvfs",
                                     "sriov_numvfs", "local_cpulist" };
static const char *const links[] = { "driver", "iommu_group", "physfn" };

typedef struct tree {
    char sys[PATH_MAX], proc[PATH_MAX], fn[PATH_MAX], group[PATH_MAX];
    char *f[NFIELDS];   /* NULL: not in the input */
    size_t len[NFIELDS];
} tree;

static void path_of(char *out, const char *dir, const char *name)
{
    fuzz_path(out, PATH_MAX, "%s/%s", dir, name);
}

/* A link the kernel refuses to make is one sysfs would not have. */
static void make_link(const char *target, const char *path)
{
    if (!target || !*target)
        return;
    if (symlink(target, path) < 0 && errno != ENAMETOOLONG)
        fuzz_fail("symlink %s: %s", path, strerror(errno));
}

/* A name readdir could return: one path component. */
static int entry_name_ok(const char *s)
{
    return s && *s && strcmp(s, ".") && strcmp(s, "..") && !strchr(s, '/') && strlen(s) <= NAME_MAX;
}

/* kernel/iommu_groups/N/devices, N as the lib reads it from the link. */
static void make_group(tree *t)
{
    char link[PATH_MAX], name[PATH_MAX];
    path_of(link, t->fn, "iommu_group");
    ssize_t n = readlink(link, name, sizeof(name) - 1);
    t->group[0] = '\0';
    if (n <= 0)
        return;
    name[n] = '\0';
    const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
    fuzz_path(t->group, sizeof(t->group), "%s/kernel/iommu_groups/%d/devices", t->sys,
              (int)strtol(base, NULL, 10));
    fuzz_mkdirs(t->group);
    path_of(link, t->group, BDF);
    make_link("../../../../bus/pci/devices/" BDF, link);
}

static void make_second_entry(tree *t)
{
    char dir[PATH_MAX], path[PATH_MAX], target[PATH_MAX];
    if (!entry_name_ok(t->f[F_NAME]) || !strcmp(t->f[F_NAME], BDF))
        return;
    fuzz_path(dir, sizeof(dir), "%s/bus/pci/devices/%s", t->sys, t->f[F_NAME]);
    fuzz_mkdirs(dir);
    path_of(path, dir, "class");
    if (t->f[F_CLASS])
        fuzz_write(path, t->f[F_CLASS], t->len[F_CLASS]);
    if (!t->group[0])
        return;
    path_of(path, t->group, t->f[F_NAME]);
    path_of(target, "../../../../bus/pci/devices", t->f[F_NAME]);
    make_link(target, path);
}

static void make_tree(tree *t)
{
    char path[PATH_MAX], dir[PATH_MAX];
    const char *root = fuzz_dir();
    path_of(t->sys, root, "sys");
    path_of(t->proc, root, "proc");
    fuzz_rm_tree(t->sys);
    fuzz_rm_tree(t->proc);
    fuzz_path(t->fn, sizeof(t->fn), "%s/bus/pci/devices/" BDF, t->sys);
    fuzz_mkdirs(t->fn);
    for (int i = F_CLASS; i <= F_CPULIST; i++) {
        path_of(path, t->fn, attrs[i]);
        if (t->f[i])
            fuzz_write(path, t->f[i], t->len[i]);
    }
    for (int i = F_DRIVER; i <= F_PHYSFN; i++) {
        path_of(path, t->fn, links[i - F_DRIVER]);
        make_link(t->f[i], path);
    }
    path_of(path, t->fn, "driver_override");
    if (t->f[F_OVERRIDE])
        fuzz_write(path, t->f[F_OVERRIDE], t->len[F_OVERRIDE]);
    make_group(t);
    make_second_entry(t);
    if (!t->f[F_INFO])
        return;
    fuzz_path(dir, sizeof(dir), "%s/driver/nvidia/gpus/" BDF, t->proc);
    fuzz_mkdirs(dir);
    path_of(path, dir, "information");
    fuzz_write(path, t->f[F_INFO], t->len[F_INFO]);
}

/* vd_sysfs_line into buffers of exactly these sizes. */
static void check_line(const char *path)
{
    static const size_t sizes[] = { 1, 2, 13, 32, 128, 4096 };
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char *buf = malloc(sizes[i]);
        if (!buf)
            fuzz_fail("out of memory");
        int rc = vd_sysfs_line(path, buf, sizes[i]);
        if (strlen(buf) >= sizes[i] || strchr(buf, '\n') || (rc < 0 && buf[0]))
            fuzz_fail("%s into %zu bytes: rc %d, '%s'", path, sizes[i], rc, buf);
        free(buf);
    }
}

static void check_link(const char *path)
{
    static const size_t sizes[] = { 1, 13, 32, 64, 256 };
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char *out = malloc(sizes[i]);
        if (!out)
            fuzz_fail("out of memory");
        int rc = vd_sysfs_link_name(path, out, sizes[i]);
        if (strlen(out) >= sizes[i] || strchr(out, '/') || (rc < 0 && out[0]))
            fuzz_fail("link %s into %zu bytes: rc %d, '%s'", path, sizes[i], rc, out);
        free(out);
    }
}

static void check_files(const tree *t)
{
    char path[PATH_MAX];
    for (int i = F_CLASS; i <= F_CPULIST; i++) {
        path_of(path, t->fn, attrs[i]);
        check_line(path);
    }
    path_of(path, t->fn, "driver_override");
    check_line(path);
    for (int i = F_DRIVER; i <= F_PHYSFN; i++) {
        path_of(path, t->fn, links[i - F_DRIVER]);
        check_link(path);
    }
}

static void check_info(const vd_pci *p, const char *bdf)
{
    vd_pci_info d;
    char bdf13[13];
    memcpy(bdf13, bdf, sizeof(bdf13));   /* the lib copies 13 bytes: as ib.c passes it */
    vd_pci_info_read(p, bdf13, &d);
    if (strlen(d.driver) >= sizeof(d.driver) || (d.physfn[0] && strlen(d.physfn) != 12) ||
        strlen(d.cpulist) >= sizeof(d.cpulist))
        fuzz_fail("info of %s: driver '%s', physfn '%s'", bdf, d.driver, d.physfn);
    for (size_t size = 1; size <= 64; size *= 4) {
        char *out = malloc(size);
        if (!out)
            fuzz_fail("out of memory");
        vd_pci_driver(p, bdf13, out, size);
        if (strlen(out) >= size)
            fuzz_fail("driver of %s into %zu bytes: '%s'", bdf, size, out);
        free(out);
    }
}

static void check_scans(const vd_pci *p)
{
    vd_pci_info *v = NULL;
    vd_pci_gpu_list l;
    vd_err err = { "" };
    int n = 0;
    if (vd_pci_scan(p, &v, &n, &err) == 0)
        for (int i = 0; i < n; i++)
            if (strlen(v[i].bdf) != 12)
                fuzz_fail("scan listed '%s'", v[i].bdf);
    free(v);
    if (vd_pci_gpus(p, &l, &err) == 0 && (l.n < 0 || l.n > VD_PCI_GPUS_MAX))
        fuzz_fail("%d GPUs", l.n);
    vd_pci_gpu_index(p, BDF, &err);
}

/* bdf: ours, or the second entry's name as a caller might pass it. */
static void check_group(const vd_pci *p, const char *bdf)
{
    vd_pci_group g;
    vd_err err = { "" };
    int minor;
    if (vd_pci_group_read(p, bdf, &g, &err) == 0) {
        if (g.n < 0 || g.n > VD_PCI_GROUP_MAX)
            fuzz_fail("group of %d functions", g.n);
        for (int i = 0; i < g.n; i++) {
            const vd_pci_fn *f = &g.fns[i];
            if (strlen(f->bdf) != 12 || strlen(f->override) >= sizeof(f->override))
                fuzz_fail("group member '%s'", f->bdf);
        }
    }
    vd_nvidia_minor(p->proc, bdf, &minor, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tree *t = calloc(1, sizeof(*t));
    if (!t)
        fuzz_fail("out of memory");
    size_t n = fuzz_split(data, size, "\n--\n", 4, t->f, t->len, NFIELDS);
    make_tree(t);
    vd_pci p = { .sys = t->sys, .dev = "/nonexistent", .proc = t->proc, .timeout_ms = 1000,
                 .gpu_vendors = t->f[F_VENDORS] };
    vd_pci_gpu_vendors_check(p.gpu_vendors, NULL);
    check_files(t);
    check_info(&p, BDF);
    check_scans(&p);
    check_group(&p, BDF);
    if (t->f[F_NAME]) {
        check_group(&p, t->f[F_NAME]);
        if (strlen(t->f[F_NAME]) == 12)
            check_info(&p, t->f[F_NAME]);
    }
    fuzz_free_parts(t->f, n);
    free(t);
    return 0;
}
