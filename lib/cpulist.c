/* SPDX-License-Identifier: MIT */
#include "cpulist.h"

#include <hwloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIGITS "0123456789"

/* One CPU number of a cpulist, s[0..len). */
static int cpu_number(const char *s, size_t len, long *out, char *why, size_t whylen)
{
    if (len == 0) {
        snprintf(why, whylen, "an item or a range end is empty");
        return -1;
    }
    if (strspn(s, DIGITS) < len || (s[0] == '0' && len > 1)) {
        snprintf(why, whylen, "'%.*s' is not a decimal CPU number (digits only: no sign, "
                 "no leading zero, no 0x)", (int)len, s);
        return -1;
    }
    long n = 0;
    for (size_t i = 0; i < len && n < VD_MAX_CPUS; i++)   /* stops before it can overflow */
        n = n * 10 + (s[i] - '0');
    if (n >= VD_MAX_CPUS) {
        snprintf(why, whylen, "CPU %.*s is not below VD_MAX_CPUS (%d)", (int)len, s, VD_MAX_CPUS);
        return -1;
    }
    *out = n;
    return 0;
}

/* Checked here, not by hwloc: hwloc allocates a bitmap up to the highest
 * CPU named (half a gigabyte for 4294967294) and takes signs and 0x. */
int vd_cpulist_check(const char *v, char *why, size_t whylen)
{
    for (const char *s = v;; ) {
        size_t len = strcspn(s, ",");
        const char *dash = memchr(s, '-', len);
        long lo, hi;
        if (cpu_number(s, dash ? (size_t)(dash - s) : len, &lo, why, whylen) < 0)
            return -1;
        hi = lo;
        if (dash && cpu_number(dash + 1, len - (size_t)(dash + 1 - s), &hi, why, whylen) < 0)
            return -1;
        if (lo > hi) {
            snprintf(why, whylen, "range %ld-%ld goes down", lo, hi);
            return -1;
        }
        if (!s[len])
            return 0;
        s += len + 1;
    }
}

int vd_cpulist_map(const char *list, int ncpus, unsigned char **map, int *maplen, vd_err *err)
{
    char why[160];
    *map = NULL;
    if (ncpus <= 0)
        return vd_err_set(err, "no CPUs to map");
    if (list && vd_cpulist_check(list, why, sizeof(why)) < 0)
        return vd_err_set(err, "bad CPU list '%s': %s", list, why);
    hwloc_bitmap_t b = hwloc_bitmap_alloc();
    if (!b)
        return vd_err_set(err, "out of memory");
    int rc = 0;
    if (list ? hwloc_bitmap_list_sscanf(b, list) < 0 : hwloc_bitmap_set_range(b, 0, ncpus - 1) < 0)
        rc = vd_err_set(err, "bad CPU list '%s'", list);
    else if (hwloc_bitmap_last(b) >= ncpus)
        rc = vd_err_set(err, "CPU list '%s' names CPU %d, but the host has %d", list,
                        hwloc_bitmap_last(b), ncpus);
    *maplen = (ncpus + 7) / 8;
    if (rc == 0 && !(*map = calloc((size_t)*maplen, 1)))
        rc = vd_err_set(err, "out of memory");
    for (int cpu = rc == 0 ? hwloc_bitmap_first(b) : -1; cpu >= 0; cpu = hwloc_bitmap_next(b, cpu))
        (*map)[cpu / 8] |= (unsigned char)(1u << (cpu % 8));
    hwloc_bitmap_free(b);
    return rc;
}
