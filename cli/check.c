/* SPDX-License-Identifier: MIT */
/*
 * check.c - `vdeskctl check-config [--live]`.
 *
 * Without --live: the whole file's syntax and values, and whether this
 * node has a desktop. With --live, on the node itself: whatever the file
 * names must exist as the file says, so that the first job does not find
 * out: the libvirt daemon at uri =, the domain, each device's alias in its
 * definition and the host PCI address it passes through, each PCI
 * address's IOMMU group and driver, the directories' owners and modes,
 * and what the libvirt driver at uri = cannot do (each mode, hotplug,
 * snapshots, managed save: a line "no  WHAT: not supported by ..." each).
 * Each problem is one line, "(!) WHAT: FIX"; the exit status is 1 if any.
 * A driver lacking something is a problem only where vdesk.conf relies on
 * it: a policy none of whose modes the driver can do, or devices to free
 * on a driver that cannot unplug them.
 */
#include "check.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "hv.h"
#include "../lib/shmem.h"
#include "pci.h"
#include "policy.h"

typedef struct checker {
    const vd_conf *c;
    int problems;
    int can_save;   /* the driver saves: the save file's form is worth a line */
} checker;

static void ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void ok(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("  ok  ", stdout);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
}

/* What the driver cannot do, where vdesk does without it. */
static void lacks(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void lacks(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("  no  ", stdout);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
}

static void bad(checker *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad(checker *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("  (!) ", stdout);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    k->problems++;
}

/* A directory vdesk keeps its state or disk layers in: root's, and
 * writable by no one else (vdesk refuses it otherwise, at the first job). */
static void check_dir(checker *k, const char *key, const char *dir, unsigned mode)
{
    struct stat st;
    if (lstat(dir, &st) < 0) {
        if (errno == ENOENT)
            ok("%s %s does not exist yet: vdesk makes it (mode %04o) at the first operation", key,
               dir, mode);
        else
            bad(k, "%s %s: %s: fix the path in %s", key, dir, strerror(errno), k->c->path);
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        bad(k, "%s %s is not a directory%s: remove it or point %s = elsewhere", key, dir,
            S_ISLNK(st.st_mode) ? " (a symbolic link)" : "", key);
        return;
    }
    if (st.st_uid != 0 || (st.st_mode & 022)) {   /* the prolog runs as root */
        bad(k, "%s %s is owned by uid %u with mode %04o: run 'chown root:root %s; chmod %04o %s'",
            key, dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777), dir, mode, dir);
        return;
    }
    ok("%s %s (uid %u, mode %04o)", key, dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
}

/* The device's alias in the domain's definition, and the host address
 * its <hostdev> passes through against `pci =` of vdesk.conf. */
static void check_alias(checker *k, vd_hv *hv, const vd_device *d)
{
    char *xml = NULL, bdf[16];
    vd_err err;
    if (vd_hv_dev_xml_inactive(hv, k->c->domain, d->alias, &xml, &err) < 0) {
        bad(k, "device %s: %s: give the device <alias name='%s'/> in the domain's XML (virsh edit "
            "%s)", d->alias, err.msg, d->alias, k->c->domain);
        return;
    }
    int rc = vd_hv_hostdev_pci(xml, bdf, sizeof(bdf), &err);
    free(xml);
    if (rc < 0)
        bad(k, "device %s: %s", d->alias, err.msg);
    else if (d->pci[0] && bdf[0] && strcmp(bdf, d->pci) != 0)
        bad(k, "device %s passes through host PCI %s, but vdesk.conf says %s: fix one of them",
            d->alias, bdf, d->pci);
    else
        ok("device %s in %s's definition%s%s", d->alias, k->c->domain, bdf[0] ? ", host PCI " : "",
           bdf);
}

/* The PCI function exists, has an IOMMU group, and what shares it. */
static void check_pci(checker *k, const vd_device *d)
{
    const vd_conf *c = k->c;
    vd_pci p = { .sys = c->sysfs_root, .dev = c->dev_root, .proc = c->proc_root, .timeout_ms = 1000,
                 .gpu_vendors = c->gpu_vendors };
    vd_pci_info info;
    vd_pci_group g;
    vd_err err;
    vd_pci_info_read(&p, d->pci, &info);
    if (!info.vendor) {
        bad(k, "device %s: no PCI function %s under %s/bus/pci/devices: 'vdeskctl inventory' lists "
            "the node's devices; fix pci = in %s", d->alias, d->pci, c->sysfs_root, c->path);
        return;
    }
    if (info.group < 0) {
        bad(k, "device %s (%s) has no IOMMU group: enable the IOMMU (intel_iommu=on or amd_iommu=on "
            "on the kernel command line) and reboot", d->alias, d->pci);
        return;
    }
    if (vd_pci_group_read(&p, d->pci, &g, &err) < 0) {
        bad(k, "device %s: %s", d->alias, err.msg);
        return;
    }
    char members[512] = "";
    for (int i = 0; i < g.n; i++) {
        size_t len = strlen(members);
        snprintf(members + len, sizeof(members) - len, "%s%s (%s)", i ? ", " : "", g.fns[i].bdf,
                 g.fns[i].driver[0] ? g.fns[i].driver : "no driver");
    }
    ok("device %s: %s, IOMMU group %d: %s", d->alias, d->pci, g.id, members);
}

/* Each desktop the node offers: defined, started by vdesk alone, and with
 * a screen that survives losing the GPU. */
static void check_offered_one(checker *k, vd_hv *hv, const char *dom)
{
    vd_err err;
    vd_dom_state s;
    vd_display d;
    int on = 0;
    if (vd_hv_dom_state(hv, dom, &s, &err) < 0 || s == VD_DOM_MISSING) {
        bad(k, "desktop %s of [node %s] is not defined at %s: define it, or fix domain = or "
            "desktops = in %s", dom, k->c->node, k->c->uri, k->c->path);
        return;
    }
    if (vd_hv_dom_autostart(hv, dom, &on, &err) == 0 && on)
        bad(k, "libvirt's autostart is on for %s: it would boot the desktop next to its save file "
            "after a crash and lose the session; 'vdeskctl boot' (vdesk-boot.service) turns it off "
            "and starts the desktop itself", dom);
    if (vd_hv_dom_display(hv, dom, &d, &err) == 0 && !d.type[0])
        printf("  note: desktop %s has no emulated display (SPICE or VNC): while a job has its GPU "
               "the student sees nothing (admin.md, \"The student's screen\")\n", dom);
    else if (d.type[0])
        ok("desktop %s: %s display", dom, d.type);
}

static void check_offered(checker *k, vd_hv *hv)
{
    check_offered_one(k, hv, vd_conf_default_domain(k->c));
    for (int i = 0; i < k->c->ndesktops; i++)
        if (strcmp(k->c->desktops[i], vd_conf_default_domain(k->c)))
            check_offered_one(k, hv, k->c->desktops[i]);
}

/* Each mode against the driver; returns the set (1 << mode) it can do. */
static unsigned check_modes(const vd_hv_caps *caps)
{
    static const vd_mode modes[] = { VD_MODE_SUSPEND, VD_MODE_SAVE, VD_MODE_SHUTDOWN, VD_MODE_SHRINK,
                                     VD_MODE_MIGRATE };
    unsigned can = 0;
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        vd_err why;
        const char *name = vd_mode_name(modes[i]);
        if (vd_hv_caps_need(caps, vd_policy_mode_needs(modes[i]), name, &why) == 0) {
            ok("mode %s", name);
            can |= 1u << modes[i];
        } else {
            lacks("%s: a job that asks for it gets the next mode of policy =", why.msg);
        }
    }
    return can;
}

/* policy = must hold a mode the driver can do, or no job gets the node. */
static void check_policy(checker *k, const vd_hv_caps *caps, unsigned can)
{
    const vd_conf *c = k->c;
    char list[128] = "", able[128] = "";
    int usable = 0;
    for (int i = 0; i < c->npolicy; i++) {
        size_t len = strlen(list);
        snprintf(list + len, sizeof(list) - len, "%s%s", i ? "," : "", vd_mode_name(c->policy[i]));
        usable |= (can >> c->policy[i]) & 1;
    }
    for (int m = 0; m < VD_MODE_COUNT; m++) {
        size_t len = strlen(able);
        if ((can >> m) & 1)
            snprintf(able + len, sizeof(able) - len, "%s%s", len ? "," : "", vd_mode_name((vd_mode)m));
    }
    if (c->npolicy && !usable)
        bad(k, "policy = %s: libvirt's %s driver can do none of these modes: put one it can (%s) into "
            "policy = in %s", list, caps->driver, able, c->path);
}

/* The rest of what vdesk would use: device hotplug (a problem where
 * vdesk.conf names devices), disk snapshots, managed save. */
static void check_features(checker *k, const vd_hv_caps *caps)
{
    vd_err why;
    if (vd_hv_caps_need(caps, VD_CAN_HOTPLUG, "device hotplug", &why) < 0) {
        if (k->c->ndevices)
            bad(k, "%s, and [node %s] names %d device(s) to free for jobs: remove the device = lines "
                "from %s", why.msg, k->c->node, k->c->ndevices, k->c->path);
        else
            lacks("%s", why.msg);
    }
    if (vd_hv_caps_need(caps, VD_CAN_SNAPSHOT, "disk snapshots", &why) < 0)
        lacks("%s: no recovery point is taken before a mode that stops the desktop", why.msg);
    if (vd_hv_caps_need(caps, VD_CAN_MANAGED_SAVE, "managed save", &why) < 0)
        lacks("%s: 'vdeskctl select' cannot keep the old desktop's session", why.msg);
    if (caps->can & VD_CAN_SHUTDOWN)
        ok("a clean shutdown is asked by %s", caps->shutdown_how);
}

/* The host's PCI passthrough backends, as the driver's domain
 * capabilities list them: said, not judged (the devices' own checks are). */
static void check_passthrough(const checker *k, vd_hv *hv)
{
    char backends[64];
    vd_err why;
    int pci = 0;
    for (int i = 0; i < k->c->ndevices; i++)
        pci |= k->c->devices[i].pci[0] != '\0';
    if (!pci)
        return;
    if (vd_hv_pci_backends(hv, backends, sizeof(backends), &why) < 0)
        lacks("PCI passthrough backends: %s", why.msg);
    else if (!backends[0])
        lacks("PCI passthrough: the driver's domain capabilities list no backend (no VFIO or IOMMU?)");
    else
        ok("PCI passthrough backends: %s", backends);
}

/* What the libvirt driver at uri = can do, against what vdesk.conf asks. */
static void check_driver(checker *k, vd_hv *hv)
{
    vd_hv_caps caps;
    vd_err err;
    if (vd_hv_caps_get(hv, &caps, &err) < 0) {
        bad(k, "%s: check the daemon at uri = in %s", err.msg, k->c->path);
        return;
    }
    ok("libvirt's %s driver (connection type %s)", caps.driver, caps.type);
    unsigned can = check_modes(&caps);
    check_policy(k, &caps, can);
    check_features(k, &caps);
    check_passthrough(k, hv);
    k->can_save = (caps.can & VD_CAN_SAVE) != 0;
}

/* The shared memory regions the desktop maps count on the desktops' side
 * of the node, with its RAM: the job's side is what the node has beyond. */
static void check_shmem(checker *k, vd_hv *hv)
{
    vd_shmem_member m[VD_SHMEM_MAX];
    unsigned long long kib = 0, sum = 0;
    char a[32], b[32], t[512] = "";
    int n = 0;
    vd_err err;
    if (vd_shmem_of_desktop(hv, k->c->domain, m, VD_SHMEM_MAX, &n, &err) < 0) {
        bad(k, "shared memory of %s: %s", k->c->domain, err.msg);
        return;
    }
    if (!n)
        return;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(t);
        sum += m[i].size;
        snprintf(t + len, sizeof(t) - len, "%s%.48s %s (%s)", i ? ", " : "", m[i].name,
                 vd_shmem_size_str(m[i].size, a, sizeof(a)), vd_shmem_role_name(m[i].role));
    }
    if (vd_hv_dom_memory_kib(hv, k->c->domain, &kib, &err) < 0)
        kib = 0;
    ok("shared memory of %s: %s; desktop side: RAM %s + regions %s (not limited by vdesk: size "
       "the job's side without them)", k->c->domain, t, vd_shmem_size_str(kib << 10, a, sizeof(a)),
       vd_shmem_size_str(sum, b, sizeof(b)));
}

static void check_libvirt(checker *k)
{
    const vd_conf *c = k->c;
    vd_hv *hv = NULL;
    vd_err err;
    vd_dom_state s;
    if (vd_hv_open(c->uri, &hv, &err) < 0) {
        bad(k, "libvirt at %s: %s: start the daemon (systemctl start libvirtd) or fix uri = in %s",
            c->uri, err.msg, c->path);
        return;
    }
    ok("libvirt at %s answers", c->uri);
    check_driver(k, hv);
    if (vd_hv_dom_state(hv, c->domain, &s, &err) < 0) {
        bad(k, "domain %s: %s: define it (virsh define) or fix domain = in %s", c->domain, err.msg,
            c->path);
    } else {
        ok("domain %s: %s", c->domain, vd_dom_state_name(s));
        for (int i = 0; i < c->ndevices; i++)
            check_alias(k, hv, &c->devices[i]);
        check_shmem(k, hv);
    }
    check_offered(k, hv);
    vd_hv_close(hv);
}

static int check_live(const vd_conf *c)
{
    checker k = { .c = c };
    printf("node %s, live:\n", c->node);
    if (geteuid() != 0)
        bad(&k, "running as uid %u: the prolog runs as root, and so must this check to see what "
            "it sees (libvirt's system daemon, the state directory): run it as root",
            (unsigned)geteuid());
    check_libvirt(&k);
    for (int i = 0; i < c->ndevices; i++)
        if (c->devices[i].pci[0])
            check_pci(&k, &c->devices[i]);
    check_dir(&k, "state_dir", c->state_dir, 0700);
    check_dir(&k, "snapshot_dir", c->snapshot_dir, 0711);
    if (k.can_save && access(c->state_dir, W_OK) == 0)
        ok("save files: %s", vd_hv_save_form(c->state_dir));
    printf("%s: %d problem(s)\n", c->node, k.problems);
    return k.problems ? 1 : 0;
}

int cmd_check_config(const char *path, const char *node, int live)
{
    vd_conf *conf = malloc(sizeof(*conf));
    vd_err err;
    int rc = 1;
    if (!conf) {
        fprintf(stderr, "vdeskctl: out of memory\n");
        return 1;
    }
    if (vd_conf_load(path, NULL, conf, &err) < 0) {
        fprintf(stderr, "vdeskctl: %s\n", err.msg);
        goto out;
    }
    printf("%s: OK\n", path);
    int found = vd_conf_find(path, node, conf, &err);
    if (found < 0) {
        /* What the whole-file check cannot see: the node's own paths. */
        fprintf(stderr, "vdeskctl: node %s: %s\n", node, err.msg);
    } else if (found == 0) {
        printf("node %s: desktop %s on %s, %d device(s), state in %s\n", node, conf->domain,
               conf->uri, conf->ndevices, conf->state_dir);
        rc = live ? check_live(conf) : 0;
    } else {
        printf("node %s: no desktop (no [node %s] section): the prolog and epilog do nothing "
               "there\n", node, node);
        rc = 0;
    }
out:
    free(conf);
    return rc;
}
