/* SPDX-License-Identifier: MIT */
#include "pci.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define VFIO "vfio-pci"
#define CLASS_BRIDGE 0x0604

static void sleep_ms(int ms)
{
    nanosleep(&(struct timespec){ .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L }, NULL);
}

/* Writes `value` to `path` in a child process and waits up to timeout_ms.
 * Returns 0, or -1 with the cause in err (errno's text, or "hung"). */
static int timed_write(const char *path, const char *value, int timeout_ms, vd_err *err)
{
    int pipefd[2];
    if (pipe(pipefd) < 0)
        return vd_err_set(err, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        return vd_err_set(err, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(pipefd[0]);
        int e = 0, fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, value, strlen(value)) < 0)
            e = errno;
        if (fd >= 0 && close(fd) < 0 && !e)
            e = errno;
        if (write(pipefd[1], &e, sizeof(e)) != sizeof(e))
            _exit(2);
        _exit(0);
    }
    close(pipefd[1]);
    /* The child reports through the pipe: wake the moment it is done. */
    struct pollfd pfd = { .fd = pipefd[0], .events = POLLIN };
    int e = -1, status, ready;
    do
        ready = poll(&pfd, 1, timeout_ms);
    while (ready < 0 && errno == EINTR);
    if (ready <= 0) {
        /* Stuck in the kernel: the child may never die; leave it. */
        kill(pid, SIGKILL);
        close(pipefd[0]);
        return vd_err_set(err, "hung for %d ms (the driver does not let go; see dmesg)", timeout_ms);
    }
    if (read(pipefd[0], &e, sizeof(e)) != sizeof(e))
        e = EIO;
    close(pipefd[0]);
    waitpid(pid, &status, 0);
    return e ? vd_err_set(err, "%s", strerror(e)) : 0;
}

static int read_line(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    int ok = fgets(buf, (int)size, f) != NULL;
    fclose(f);
    if (!ok)
        return -1;
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

/* The name of the driver bound to `bdf`, or "" (none). */
void vd_pci_driver(const vd_pci *p, const char *bdf, char *out, size_t size)
{
    char link[PATH_MAX], target[PATH_MAX];
    snprintf(link, sizeof(link), "%s/bus/pci/devices/%s/driver", p->sys, bdf);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    out[0] = '\0';
    if (n <= 0)
        return;
    target[n] = '\0';
    const char *base = strrchr(target, '/');
    if (snprintf(out, size, "%s", base ? base + 1 : target) >= (int)size)
        snprintf(out, size, "?");   /* longer than any module name: not ours to guess */
}

static int bdf_ok(const char *s)
{
    unsigned a, b, c, d;
    char tail;
    return strlen(s) == 12 && sscanf(s, "%4x:%2x:%2x.%1x%c", &a, &b, &c, &d, &tail) == 4;
}

int vd_pci_group_read(const vd_pci *p, const char *bdf, vd_pci_group *g, vd_err *err)
{
    char path[PATH_MAX], target[PATH_MAX];
    if (!bdf_ok(bdf))
        return vd_err_set(err, "'%s' is not a PCI address (0000:65:00.0)", bdf);
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/iommu_group", p->sys, bdf);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n <= 0)
        return vd_err_set(err, "device %s: no IOMMU group (%s: %s); is the IOMMU on "
                          "(intel_iommu=on / amd_iommu=on)?", bdf, path, strerror(errno));
    target[n] = '\0';
    memset(g, 0, sizeof(*g));
    g->id = atoi(strrchr(target, '/') ? strrchr(target, '/') + 1 : target);
    snprintf(path, sizeof(path), "%s/kernel/iommu_groups/%d/devices", p->sys, g->id);
    DIR *d = opendir(path);
    if (!d)
        return vd_err_set(err, "device %s: cannot list IOMMU group %d (%s): %s", bdf, g->id, path, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (!bdf_ok(e->d_name))
            continue;
        if (g->n == VD_PCI_GROUP_MAX) {
            rc = vd_err_set(err, "IOMMU group %d has more than %d devices", g->id, VD_PCI_GROUP_MAX);
            break;
        }
        vd_pci_fn *f = &g->fns[g->n++];
        char cls[32] = "0";
        memcpy(f->bdf, e->d_name, sizeof(f->bdf));   /* bdf_ok: exactly 12 characters */
        vd_pci_driver(p, f->bdf, f->driver, sizeof(f->driver));
        snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/class", p->sys, f->bdf);
        if (read_line(path, cls, sizeof(cls)) == 0)
            f->klass = (unsigned)strtoul(cls, NULL, 16);
    }
    closedir(d);
    return rc;
}

static unsigned read_hex(const char *sys, const char *bdf, const char *attr)
{
    char path[PATH_MAX], buf[32] = "0";
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/%s", sys, bdf, attr);
    read_line(path, buf, sizeof(buf));
    return (unsigned)strtoul(buf, NULL, 16);
}

static int read_int(const char *sys, const char *bdf, const char *attr, int dflt)
{
    char path[PATH_MAX], buf[32];
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/%s", sys, bdf, attr);
    return read_line(path, buf, sizeof(buf)) == 0 ? atoi(buf) : dflt;
}

static void info_read(const vd_pci *p, const char *bdf, vd_pci_info *d)
{
    char path[PATH_MAX], target[PATH_MAX];
    memset(d, 0, sizeof(*d));
    memcpy(d->bdf, bdf, sizeof(d->bdf));
    d->vendor = read_hex(p->sys, bdf, "vendor");
    d->device = read_hex(p->sys, bdf, "device");
    d->klass = read_hex(p->sys, bdf, "class");
    vd_pci_driver(p, bdf, d->driver, sizeof(d->driver));
    d->numa = read_int(p->sys, bdf, "numa_node", -1);
    d->totalvfs = read_int(p->sys, bdf, "sriov_totalvfs", 0);
    d->numvfs = read_int(p->sys, bdf, "sriov_numvfs", 0);
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/local_cpulist", p->sys, bdf);
    read_line(path, d->cpulist, sizeof(d->cpulist));
    d->group = -1;
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/iommu_group", p->sys, bdf);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n > 0) {
        target[n] = '\0';
        d->group = atoi(strrchr(target, '/') ? strrchr(target, '/') + 1 : target);
    }
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/physfn", p->sys, bdf);
    n = readlink(path, target, sizeof(target) - 1);
    if (n > 0) {
        target[n] = '\0';
        const char *pf = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
        if (bdf_ok(pf))
            memcpy(d->physfn, pf, sizeof(d->physfn));
    }
}

static int by_bdf(const void *a, const void *b)
{
    return strcmp(((const vd_pci_info *)a)->bdf, ((const vd_pci_info *)b)->bdf);
}

int vd_pci_scan(const vd_pci *p, vd_pci_info **out, int *n, vd_err *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/bus/pci/devices", p->sys);
    DIR *d = opendir(path);
    if (!d)
        return vd_err_set(err, "%s: %s", path, strerror(errno));
    vd_pci_info *v = NULL;
    int count = 0, cap = 0, rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (!bdf_ok(e->d_name))
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 32;
            vd_pci_info *grown = realloc(v, (size_t)cap * sizeof(*v));
            if (!grown) {
                rc = vd_err_set(err, "out of memory scanning %s", path);
                break;
            }
            v = grown;
        }
        info_read(p, e->d_name, &v[count++]);
    }
    closedir(d);
    if (rc < 0) {
        free(v);
        return -1;
    }
    if (count)
        qsort(v, (size_t)count, sizeof(*v), by_bdf);
    *out = v;
    *n = count;
    return 0;
}

int vd_pci_holders(const vd_pci *p, const char *const *devnodes, int n, char *out, size_t size,
                   vd_err *err)
{
    DIR *proc = opendir("/proc");
    if (!proc)
        return vd_err_set(err, "/proc: %s", strerror(errno));
    size_t used = 0;
    out[0] = '\0';
    struct dirent *e;
    while ((e = readdir(proc))) {
        char fddir[PATH_MAX], link[PATH_MAX * 2], target[PATH_MAX];
        if (!atoi(e->d_name))
            continue;
        snprintf(fddir, sizeof(fddir), "/proc/%s/fd", e->d_name);
        DIR *fds = opendir(fddir);
        if (!fds)
            continue;   /* gone, or not ours to see */
        struct dirent *f;
        int holds = 0;
        while (!holds && (f = readdir(fds))) {
            snprintf(link, sizeof(link), "%s/%s", fddir, f->d_name);
            ssize_t len = readlink(link, target, sizeof(target) - 1);
            if (len <= 0)
                continue;
            target[len] = '\0';
            for (int i = 0; i < n && !holds; i++) {
                char node[PATH_MAX];
                snprintf(node, sizeof(node), "%s/%s", p->dev, devnodes[i]);
                holds = !strcmp(target, node);
            }
        }
        closedir(fds);
        if (!holds)
            continue;
        char comm[64] = "?", path[PATH_MAX];
        snprintf(path, sizeof(path), "/proc/%s/comm", e->d_name);
        read_line(path, comm, sizeof(comm));
        int w = snprintf(out + used, size - used, "%s%s (%s)", used ? ", " : "", e->d_name, comm);
        if (w < 0 || (size_t)w >= size - used)
            break;
        used += (size_t)w;
    }
    closedir(proc);
    return 0;
}

/* One sysfs write of a rebind step, with the error naming device and step. */
static int step(const vd_pci *p, const char *bdf, const char *what, const char *file,
                const char *value, vd_err *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", p->sys, file);
    vd_err why;
    if (timed_write(path, value, p->timeout_ms, &why) < 0)
        return vd_err_set(err, "device %s: %s (%s): %s", bdf, what, path, why.msg);
    return 0;
}

/* Moves one function to `driver` ("" clears the override: the host's own).
 * `expect` is the driver it must end on; "" means any but vfio-pci. */
static int move_fn(const vd_pci *p, const vd_pci_fn *f, const char *driver, const char *expect,
                   vd_err *err)
{
    char file[128], what[96], now[32];
    snprintf(file, sizeof(file), "bus/pci/devices/%s/driver_override", f->bdf);
    if (step(p, f->bdf, "set driver_override", file, *driver ? driver : "\n", err) < 0)
        return -1;
    vd_pci_driver(p, f->bdf, now, sizeof(now));
    if (now[0]) {
        snprintf(file, sizeof(file), "bus/pci/drivers/%s/unbind", now);
        snprintf(what, sizeof(what), "unbind from %s", now);
        if (step(p, f->bdf, what, file, f->bdf, err) < 0)
            return -1;
    }
    if (step(p, f->bdf, "drivers_probe", "bus/pci/drivers_probe", f->bdf, err) < 0)
        return -1;
    vd_pci_driver(p, f->bdf, now, sizeof(now));
    if (*expect ? strcmp(now, expect) != 0 : !strcmp(now, VFIO))
        return vd_err_set(err, "device %s: on '%s' after probing, not on '%s' (the driver's probe "
                          "failed? see dmesg)", f->bdf, now[0] ? now : "no driver",
                          *expect ? expect : "its host driver");
    return 0;
}

static int is_bridge(const vd_pci_fn *f)
{
    return (f->klass >> 8) == CLASS_BRIDGE;
}

static int vfio_node_appears(const vd_pci *p, int group)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/vfio/%d", p->dev, group);
    for (int i = 0; i < 20; i++, sleep_ms(50))
        if (access(path, F_OK) == 0)
            return 1;
    return 0;
}

int vd_pci_to_vfio(const vd_pci *p, const char *bdf, vd_pci_group *before, vd_err *err)
{
    if (vd_pci_group_read(p, bdf, before, err) < 0)
        return -1;
    int moved = 0, rc = 0;
    for (; moved < before->n && rc == 0; moved++) {
        const vd_pci_fn *f = &before->fns[moved];
        if (!is_bridge(f) && strcmp(f->driver, VFIO) != 0)
            rc = move_fn(p, f, VFIO, VFIO, err);
    }
    if (rc == 0 && !vfio_node_appears(p, before->id))
        rc = vd_err_set(err, "IOMMU group %d: all on vfio-pci but %s/vfio/%d did not appear",
                        before->id, p->dev, before->id);
    if (rc == 0)
        return 0;
    /* Put back what was moved, the failing one included. */
    vd_err undo;
    vd_pci_group partial = *before;
    partial.n = moved;
    if (vd_pci_to_host(p, &partial, &undo) < 0)
        vd_err_prefix(err, "and putting group %d back failed too (%s)", before->id, undo.msg);
    return -1;
}

int vd_pci_to_host(const vd_pci *p, const vd_pci_group *before, vd_err *err)
{
    int rc = 0;
    for (int i = 0; i < before->n; i++) {
        const vd_pci_fn *f = &before->fns[i];
        if (is_bridge(f))
            continue;
        char now[64], file[128];
        vd_err one;
        int r;
        vd_pci_driver(p, f->bdf, now, sizeof(now));
        snprintf(file, sizeof(file), "bus/pci/devices/%s/driver_override", f->bdf);
        /* The host driver it had, when known; else whichever the kernel
         * picks once the override is gone. */
        const char *host = strcmp(f->driver, VFIO) != 0 ? f->driver : "";
        if (strcmp(now, VFIO) != 0 && (!*host || !strcmp(now, host)))
            /* On its driver already (a step that failed early): only the
             * override may be left to clear. */
            r = step(p, f->bdf, "clear driver_override", file, "\n", &one);
        else
            r = move_fn(p, f, "", host, &one);
        /* Keep going: every member that can go back should. */
        if (r < 0 && rc == 0)
            rc = vd_err_set(err, "%s", one.msg);
    }
    return rc;
}
