/* SPDX-License-Identifier: MIT */
/*
 * fuzz_conf - vdesk.conf text (lib/conf.h). The input is the whole file,
 * loaded twice: node NULL (vdeskctl check-config) and node "n1" (a prolog).
 *
 * vd_conf_load takes a path: the input goes into one memfd per process,
 * rewritten for each input and opened again through /proc/self/fd, so no
 * disk file is written per run.
 *
 * What a successful load hands on is checked against what vdesk.conf(5)
 * promises, since the engine trusts it: the domain cannot leave STATE_DIR,
 * the cpulist is small decimal numbers, devices have 'ua-' aliases and
 * canonical PCI addresses, grace fits the shutdown timeout.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conf.h"
#include "fuzz.h"

static char conf_path[64];

/* The memfd's path; made on first use (in each replay child). */
static const char *conf_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static pid_t owner;
    if (fd < 0 || owner != getpid()) {
        fd = memfd_create("vdesk.conf", MFD_CLOEXEC);
        if (fd < 0)
            fuzz_fail("memfd_create: %s", strerror(errno));
        owner = getpid();
        snprintf(conf_path, sizeof(conf_path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) < 0)
        fuzz_fail("ftruncate: %s", strerror(errno));
    for (off_t at = 0; (size_t)at < size;) {
        ssize_t n = pwrite(fd, data + at, size - (size_t)at, at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fuzz_fail("pwrite: %s", n < 0 ? strerror(errno) : "wrote nothing");
        at += n;
    }
    return conf_path;
}

static void check_cpulist(const char *list)
{
    const char *s = list;
    while (*s) {
        char *end;
        if (*s < '0' || *s > '9')
            fuzz_fail("desktop_cores '%s': not a decimal list", list);
        long n = strtol(s, &end, 10);
        if (n >= VD_MAX_CPUS || (*end && *end != ',' && *end != '-'))
            fuzz_fail("desktop_cores '%s' passed", list);
        s = *end ? end + 1 : end;
    }
}

static void check_devices(const vd_conf *c)
{
    if (c->ndevices < 0 || c->ndevices > VD_MAX_DEVICES)
        fuzz_fail("%d devices", c->ndevices);
    for (int i = 0; i < c->ndevices; i++) {
        const vd_device *d = &c->devices[i];
        if (strncmp(d->alias, "ua-", 3) != 0 || !d->alias[3] || strchr(d->alias, '/'))
            fuzz_fail("device alias '%s' passed", d->alias);
        if (d->pci[0] && (strlen(d->pci) != 12 || strspn(d->pci, "0123456789abcdef:.") != 12))
            fuzz_fail("device PCI '%s' passed", d->pci);
    }
}

/* The [node n1] values the engine builds paths and libvirt calls from. */
static void check_node(const vd_conf *c)
{
    size_t n = strlen(c->domain);
    if (n == 0 || n > 64 || c->domain[0] == '.' || strchr(c->domain, '/'))
        fuzz_fail("domain '%s' passed", c->domain);
    if (!strstr(c->uri, "://"))
        fuzz_fail("uri '%s' passed", c->uri);
    check_cpulist(c->desktop_cores);
    check_devices(c);
}

static void check_site(const vd_conf *c)
{
    if (c->state_dir[0] != '/' || c->snapshot_dir[0] != '/')
        fuzz_fail("state_dir '%s' / snapshot_dir '%s' passed", c->state_dir, c->snapshot_dir);
    if (c->npolicy < 1 || c->npolicy > VD_MAX_POLICY)
        fuzz_fail("policy of %d modes", c->npolicy);
    for (int i = 0; i < c->npolicy; i++)
        if (c->policy[i] >= VD_MODE_SHRINK)
            fuzz_fail("policy names %s", vd_mode_name(c->policy[i]));
    if (!c->allow || (c->allow & ~VD_MODE_SET_ALL))
        fuzz_fail("allow set %#x", c->allow);
    if (c->min_shutdown_grace < 0 || c->min_shutdown_grace > c->timeout_shutdown)
        fuzz_fail("min_shutdown_grace %d, timeout_shutdown %d", c->min_shutdown_grace,
                  c->timeout_shutdown);
    if (c->max_timeout < 1 || c->max_timeout > 86400)
        fuzz_fail("max_timeout %d", c->max_timeout);
}

/* Loads and checks; returns whether the load succeeded. */
static int load(const char *path, const char *node)
{
    vd_conf *c = malloc(sizeof(*c));
    vd_err err = { "" };
    if (!c)
        fuzz_fail("out of memory");
    int rc = vd_conf_load(path, node, c, &err);
    if (rc < 0 && !err.msg[0])
        fuzz_fail("load failed without a message");
    if (rc == 0) {
        check_site(c);
        if (node)
            check_node(c);
    }
    free(c);
    return rc == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = conf_file(data, size);
    int all = load(path, NULL);
    int n1 = load(path, "n1");
    /* node NULL checks every section: what it refuses, no node may accept. */
    if (n1 && !all)
        fuzz_fail("accepted for node n1 but refused as a whole");
    return 0;
}
