/* SPDX-License-Identifier: MIT */
#include "sysfs.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int vd_sysfs_line(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "re");
    buf[0] = '\0';
    if (!f)
        return -1;
    int ok = fgets(buf, (int)size, f) != NULL;
    fclose(f);
    buf[ok ? strcspn(buf, "\n") : 0] = '\0';
    return ok ? 0 : -1;
}

int vd_sysfs_link_name(const char *path, char *out, size_t size)
{
    char target[PATH_MAX];
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    out[0] = '\0';
    if (n <= 0)
        return -1;
    target[n] = '\0';
    const char *base = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
    if (strlen(base) >= size)
        return -1;
    memcpy(out, base, strlen(base) + 1);
    return 0;
}
