/* SPDX-License-Identifier: MIT */
/*
 * pcibench SYS DEV PROC BDF RUNS - the time of one whole-group rebind (to
 * vfio-pci and back) through lib/pci, holder checks included, versus the
 * same sysfs writes made directly in this process with no child, timeout or
 * check: vdesk's own overhead. Prints the medians in ms.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pci.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int put(const char *sys, const char *file, const char *value)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", sys, file);
    int fd = open(path, O_WRONLY);
    int rc = fd >= 0 && write(fd, value, strlen(value)) == (ssize_t)strlen(value) ? 0 : -1;
    if (fd >= 0)
        close(fd);
    return rc;
}

/* The bare writes for one group member: override, unbind, probe. */
static int bare_move(const char *sys, const vd_pci_fn *f, const char *override, const char *from)
{
    char file[160];
    snprintf(file, sizeof(file), "bus/pci/devices/%s/driver_override", f->bdf);
    if (put(sys, file, override) < 0)
        return -1;
    snprintf(file, sizeof(file), "bus/pci/drivers/%s/unbind", from);
    if (put(sys, file, f->bdf) < 0)
        return -1;
    return put(sys, "bus/pci/drivers_probe", f->bdf);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 6)
        return fprintf(stderr, "usage: pcibench SYS DEV PROC BDF RUNS\n"), 2;
    vd_pci p = { .sys = argv[1], .dev = argv[2], .proc = argv[3], .timeout_ms = 5000 };
    const char *bdf = argv[4];
    int runs = atoi(argv[5]);
    double *a = calloc((size_t)runs, sizeof(double)), *b = calloc((size_t)runs, sizeof(double));
    vd_pci_group before;
    vd_err err;
    if (!a || !b || vd_pci_group_read(&p, bdf, &before, &err) < 0)
        return fprintf(stderr, "pcibench: %s\n", err.msg), 1;
    for (int i = 0; i < runs; i++) {
        double t0 = now_ms();
        if (vd_pci_to_vfio(&p, bdf, &before, &err) < 0 || vd_pci_to_host(&p, &before, &err) < 0)
            return fprintf(stderr, "pcibench: %s\n", err.msg), 1;
        double t1 = now_ms();
        for (int k = 0; k < before.n; k++)
            if (bare_move(p.sys, &before.fns[k], "vfio-pci", before.fns[k].driver) < 0)
                return fprintf(stderr, "pcibench: bare write failed\n"), 1;
        for (int k = 0; k < before.n; k++)
            if (bare_move(p.sys, &before.fns[k], "\n", "vfio-pci") < 0)
                return fprintf(stderr, "pcibench: bare write failed\n"), 1;
        a[i] = t1 - t0;
        b[i] = now_ms() - t1;
    }
    qsort(a, (size_t)runs, sizeof(double), cmp);
    qsort(b, (size_t)runs, sizeof(double), cmp);
    printf("%d %.3f %.3f\n", before.n, a[runs / 2], b[runs / 2]);
    free(a);
    free(b);
    return 0;
}
