/* SPDX-License-Identifier: MIT */
/*
 * engine.c - the desktop's state machine, top to bottom.
 *
 *   PRESENT --evict--> EVICTING --(steps)--> EVICTED --last job out--> RESTORING --> PRESENT
 *
 * Its phases move only as the table `transitions` below says (phase_set).
 * Migrate is one more mode of the chain: the desktop runs on at another
 * node, the journal's `where` names it, and converge() brings it home
 * first (come_home), from wherever it is found.
 * Eviction is a list of steps. Each step is written to the journal before
 * it is taken ("announced"), so a crash leaves a journal that says what may
 * be half done. Restoring is not a list of undo steps but one convergent
 * function, converge(): from whatever the VM and the journal say, bring the
 * desktop back to running with its devices. The epilog uses it after a
 * job, the prolog uses it to put the desktop back when eviction fails, and
 * recovery after a crash in either direction is the same call.
 */
#include "engine.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hv.h"
#include "journal.h"
#include "pci.h"
#include "place.h"
#include "policy.h"
#include "snap.h"
#include "shmem.h"


/* Every move of the journal's phase, and what makes it; phase_set()
 * refuses any other. */
static const struct transition {
    vd_phase from, to;
    const char *by;
} transitions[] = {
    { VD_PRESENT, VD_EVICTING, "the first job's prolog begins the chain of modes (evict_present)" },
    { VD_PRESENT, VD_EVICTED, "the first job finds the VM off or missing: nothing to evict" },
    { VD_PRESENT, VD_RESTORING, "an unreadable journal is set aside and rebuilt from what is true" },
    { VD_EVICTING, VD_EVICTED, "a mode of the chain freed the node (run_chain)" },
    { VD_EVICTING, VD_RESTORING, "no mode freed it, or a crash is recovered: converge()" },
    { VD_EVICTED, VD_RESTORING, "the last job's epilog, or vdeskctl recover: converge()" },
    { VD_RESTORING, VD_RESTORING, "converge() again, after a crash or a failure" },
    { VD_RESTORING, VD_PRESENT, "converge() brought all of the desktop back" },
};

/* One operation in progress: what every step needs. */
typedef struct op {
    const vd_conf *conf;
    vd_conf *reselected;  /* conf with the selection as it is under the lock, or NULL */
    vd_journal j;
    vd_hv *hv;
    vd_report *rep;
    long long t0;
    long long t_step; /* when the current step began */
    vd_pci pci;       /* where and how to rebind host PCI devices */
    char lost[512];   /* what this operation could not keep: record, drain, exit 1 */
    char interrupted[96]; /* the journal's step when converge() began */
    char recovered[200];  /* what recover_interrupted() finished, for the record */
    char aside[200];      /* what else it changed on the way, appended to the outcome */
    long long deadline;   /* vd_mono_ms() by which the operation ends; 0: none (engine.h) */
    long long budget_ms;  /* deadline - t0 */
    long long limit;      /* while evicting: deadline less the third kept to put it back */
    vd_dom_info vm;       /* the VM as bring_back_vm() left it, running */
} op;

/* --- small helpers ------------------------------------------------------- */

static void phase_add(op *o, const char *name, long long since, int ok)
{
    vd_report *r = o->rep;
    if (r->nphases == VD_MAX_PHASES)
        return;
    vd_phase_time *p = &r->phases[r->nphases++];
    snprintf(p->name, sizeof(p->name), "%.*s", (int)sizeof(p->name) - 1, name);
    p->ms = (long)(vd_mono_ms() - since);
    p->ok = ok;
}

static void outcome(op *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void outcome(op *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->rep->outcome, sizeof(o->rep->outcome), fmt, ap);
    va_end(ap);
}

static void drain(op *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void drain(op *o, const char *fmt, ...)
{
    if (o->rep->drain[0])
        return;   /* the first cause is the one to fix */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->rep->drain, sizeof(o->rep->drain), fmt, ap);
    va_end(ap);
}

/* Something of the student's did not survive (a session, a device): the
 * record says so, the node is drained with it, and vdeskctl exits 1. */
static void lost(op *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lost(op *o, const char *fmt, ...)
{
    size_t len = strlen(o->lost);
    if (len + 3 >= sizeof(o->lost))
        return;
    if (len)
        len += (size_t)snprintf(o->lost + len, sizeof(o->lost) - len, "; ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->lost + len, sizeof(o->lost) - len, fmt, ap);
    va_end(ap);
}

/* Something else the operation changed or left out on the way: appended
 * to the outcome (op_end). */
static void note_aside(op *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_aside(op *o, const char *fmt, ...)
{
    size_t len = strlen(o->aside);
    if (len + 3 >= sizeof(o->aside))
        return;
    if (len)
        len += (size_t)snprintf(o->aside + len, sizeof(o->aside) - len, "; ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->aside + len, sizeof(o->aside) - len, fmt, ap);
    va_end(ap);
}

/* Whether the desktop's libvirt driver can do all of `need` (VD_CAN_*,
 * hv.h): 1 yes; 0 no, `err` says "WHAT: not supported by libvirt's lxc
 * driver (...)"; -1 libvirt cannot say. A driver is asked before the
 * action, so that what it cannot do is refused by that reason, not by
 * whichever call happens to fail first. */
static int driver_can(op *o, unsigned need, const char *what, vd_err *err)
{
    vd_hv_caps caps;
    if (vd_hv_caps_get(o->hv, &caps, err) < 0)
        return -1;
    return vd_hv_caps_need(&caps, need, what, err) == 0;
}

/* Test hook (docs/design.md): VDESK_TEST_CRASH=STEP kills the process right
 * after STEP is journalled, STEP+ right after it is done. */
static void crash_point(const char *step, int done)
{
    const char *want = getenv("VDESK_TEST_CRASH");
    if (!want)
        return;
    size_t n = strlen(step);
    if (!strncmp(want, step, n) && want[n] == (done ? '+' : '\0'))
        raise(SIGKILL);
}

/* Test hook (docs/design.md): VDESK_TEST_PAUSE="POINT MS" sleeps MS ms at
 * POINT, so that a test can act in between (another desktop arriving at
 * the target just chosen, say). */
static void pause_point(const char *point)
{
    const char *want = getenv("VDESK_TEST_PAUSE");
    size_t n = strlen(point);
    if (want && !strncmp(want, point, n) && want[n] == ' ')
        nanosleep(&(struct timespec){ .tv_sec = atoi(want + n + 1) / 1000,
                                      .tv_nsec = (long)(atoi(want + n + 1) % 1000) * 1000000 }, NULL);
}

/* Moves the journal's phase (not yet saved), if `transitions` allows it. */
static int phase_set(op *o, vd_phase to, vd_err *err)
{
    for (size_t i = 0; i < sizeof(transitions) / sizeof(transitions[0]); i++)
        if (transitions[i].from == o->j.phase && transitions[i].to == to) {
            o->j.phase = to;
            return 0;
        }
    return vd_err_set(err, "vdesk bug: the desktop cannot go from %s to %s (engine.c, transitions); "
                      "nothing was changed, run 'vdeskctl recover'", vd_phase_name(o->j.phase),
                      vd_phase_name(to));
}

/* The desktop is whole again: the journal says so, and nothing else. */
static int phase_present(op *o, vd_err *err)
{
    if (phase_set(o, VD_PRESENT, err) < 0)
        return -1;
    vd_journal_clear(&o->j);
    return vd_journal_save(o->conf->state_dir, &o->j, err);
}

/* Journals `step` as the next thing this operation does. */
static int announce(op *o, const char *step, vd_err *err)
{
    /* A step names a device: cut short, it would name another one. */
    if (snprintf(o->j.step, sizeof(o->j.step), "%s", step) >= (int)sizeof(o->j.step))
        return vd_err_set(err, "step '%s': name too long for the journal", step);
    if (vd_journal_save(o->conf->state_dir, &o->j, err) < 0)
        return -1;
    crash_point(step, 0);
    return 0;
}

/* Every step is two calls around its action, so that each journal write
 * shows where it happens:
 *
 *     if (step_begin(o, "save", err) < 0)      journalled, its clock started
 *         return -1;
 *     return step_end(o, "save", vd_hv_dom_save(...));   timed, recorded
 */
static int step_begin(op *o, const char *name, vd_err *err)
{
    o->t_step = vd_mono_ms();
    return announce(o, name, err);
}

/* The step's time and result into the record; returns rc. */
static int step_end(op *o, const char *name, int rc)
{
    phase_add(o, name, o->t_step, rc == 0);
    if (rc == 0)
        crash_point(name, 1);
    return rc;
}

static int in_list(const char *path, char **list, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(path, list[i]))
            return 1;
    return 0;
}

static const vd_device *conf_device(const vd_conf *c, const char *alias)
{
    for (int i = 0; i < c->ndevices; i++)
        if (!strcmp(c->devices[i].alias, alias))
            return &c->devices[i];
    return NULL;
}

/* The device's whole IOMMU group back to its host drivers, so the job gets it. */
static int group_to_host(op *o, const vd_device *dev, vd_err *err)
{
    vd_pci_group g;
    if (vd_pci_group_read(&o->pci, dev->pci, &g, err) < 0 || vd_pci_to_host(&o->pci, &g, err) < 0)
        return vd_err_prefix(err, "giving %s (%s) back to the host", dev->alias, dev->pci);
    return 0;
}

/* The device's whole IOMMU group onto vfio-pci, so the VM can have it. */
static int group_to_vfio(op *o, const vd_device *dev, vd_err *err)
{
    vd_pci_group before;
    if (vd_pci_to_vfio(&o->pci, dev->pci, &before, err) < 0)
        return vd_err_prefix(err, "taking %s (%s) for the VM", dev->alias, dev->pci);
    return 0;
}

/* Every configured host PCI device: to the host after the VM stopped, to
 * vfio-pci before it starts cold (its definition still has them). */
static int devices_to(op *o, int vfio, vd_err *err)
{
    for (int i = 0; i < o->conf->ndevices; i++) {
        const vd_device *dev = &o->conf->devices[i];
        char step[80];
        snprintf(step, sizeof(step), "%s %s", vfio ? "vfio" : "host", dev->alias);
        if (!dev->pci[0])
            continue;
        if (step_begin(o, step, err) < 0)
            return -1;
        if (step_end(o, step, vfio ? group_to_vfio(o, dev, err) : group_to_host(o, dev, err)) < 0)
            return -1;
    }
    return 0;
}

/* `want_ms`, or less when the operation's budget has less left (never less
 * than a second: a step given no time at all would fail for nothing). */
static int left_ms(const op *o, int want_ms)
{
    if (!o->deadline)
        return want_ms;
    long long left = (o->limit ? o->limit : o->deadline) - vd_mono_ms();
    if (left < 1000)
        left = 1000;
    return left < want_ms ? (int)left : want_ms;
}

/* A step's timeout: the job's and the site's (timeout_ms), within budget. */
static int step_ms(const op *o, int configured_s, int floor_s, const vd_request *req)
{
    return left_ms(o, vd_policy_timeout_ms(configured_s, floor_s, req ? req->timeout_s : 0));
}

static int save_path(const op *o, char *buf, size_t size, vd_err *err)
{
    if (snprintf(buf, size, "%s/%s.save", o->conf->state_dir, o->conf->domain) >= (int)size)
        return vd_err_set(err, "%s: path of the save file too long", o->conf->state_dir);
    return 0;
}

/* --- eviction steps ------------------------------------------------------ */

/* The gres index of GPU device `i`: its place among the node's GPUs in PCI
 * address order, the order `vdeskctl inventory --slurm` writes gres.conf
 * in; a GPU without a host PCI address counts in vdesk.conf's order. -1:
 * its place cannot be known. */
static int gres_index(const op *o, int i)
{
    const vd_device *d = &o->conf->devices[i];
    if (d->pci[0])
        return vd_pci_gpu_index(&o->pci, d->pci, NULL);
    int idx = 0;
    for (int k = 0; k < i; k++)
        idx += o->conf->devices[k].role == VD_ROLE_GPU;
    return idx;
}

/* Whether device `i` of vdesk.conf is one of the job's GPUs (SLURM_JOB_GPUS
 * "0,2", gres indices). A job without SLURM_JOB_GPUS takes every GPU, and
 * so does one whose GPUs cannot be told apart: when unsure, free it. */
static int is_job_gpu(const op *o, int i, const char *gpus)
{
    if (o->conf->devices[i].role != VD_ROLE_GPU)
        return 0;
    return vd_policy_job_gpu(gres_index(o, i), gpus);
}

/* The journal's entry for `alias`, made if there is none: a device that a
 * failed mode left plugged and the next mode unplugs has one entry. */
static vd_saved_dev *saved_dev(op *o, const char *alias, vd_err *err)
{
    for (int i = 0; i < o->j.ndevs; i++)
        if (!strcmp(o->j.devs[i].alias, alias))
            return &o->j.devs[i];
    if (o->j.ndevs == VD_MAX_DEVICES) {
        vd_err_set(err, "device %s: the journal already holds %d devices", alias, VD_MAX_DEVICES);
        return NULL;
    }
    vd_saved_dev *sd = &o->j.devs[o->j.ndevs++];
    snprintf(sd->alias, sizeof(sd->alias), "%s", alias);
    sd->xml = NULL;
    return sd;
}

static int unplug_one(op *o, const vd_device *dev, int tmo_ms, vd_err *err)
{
    vd_saved_dev *sd = saved_dev(o, dev->alias, err);
    if (!sd)
        return -1;
    char *xml = NULL;
    if (vd_hv_dev_xml(o->hv, o->conf->domain, dev->alias, &xml, err) < 0)
        return -1;
    free(sd->xml);
    sd->xml = xml;   /* journalled with the step: enough to plug it back */
    char step[80];
    snprintf(step, sizeof(step), "unplug %s", dev->alias);
    if (step_begin(o, step, err) < 0 ||
        step_end(o, step, vd_hv_dev_detach(o->hv, o->conf->domain, dev->alias, tmo_ms, NULL, err)) < 0)
        return -1;
    snprintf(step, sizeof(step), "host %s", dev->alias);
    if (dev->pci[0] && step_begin(o, step, err) < 0)
        return -1;
    if (dev->pci[0] && step_end(o, step, group_to_host(o, dev, err)) < 0)
        return -1;
    size_t len = strlen(o->rep->devices);
    snprintf(o->rep->devices + len, sizeof(o->rep->devices) - len, "%s%s", len ? "," : "", dev->alias);
    return 0;
}

/* The devices of the shared memory regions the desktop maps (shmem.h)
 * leave with it when it is saved or moved, a master's like a peer's: QEMU
 * refuses to save or migrate a peer's, and restoring a master's would
 * write its copy of the region, as old as the save, over what the other
 * members wrote since. The region itself stays in the host's /dev/shm.
 * Their XML goes to the journal like any device's, and restore plugs them
 * back (docs/design.md, "Shared memory"). */
static int unplug_shmem(op *o, const vd_request *req, vd_err *err)
{
    vd_shmem_member m[VD_SHMEM_MAX];
    int n = 0;
    if (vd_shmem_of_desktop(o->hv, o->conf->domain, m, VD_SHMEM_MAX, &n, err) < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        vd_device dev = { .role = VD_ROLE_OTHER, .pci = "" };
        int present = 0;
        if (!m[i].live)
            continue;
        vd_shmem_alias(m[i].name, dev.alias, sizeof(dev.alias));
        if (vd_hv_dev_present(o->hv, o->conf->domain, dev.alias, &present, err) < 0)
            return -1;
        /* One vdesk did not add (another alias) cannot be unplugged by
         * name: a peer's makes libvirt refuse the save or migration, which
         * names it; a master's would be saved, and come back old. */
        if (!present && m[i].role == VD_SHMEM_MASTER)
            return vd_err_set(err, "VM %s maps region %s as master under another alias than %s (not attached "
                              "by 'vdeskctl shmem attach'): saved with it, it would come back as old as the save "
                              "over what the others wrote; detach it and attach it with 'vdeskctl shmem attach'",
                              o->conf->domain, m[i].name, dev.alias);
        if (!present)
            continue;
        if (driver_can(o, VD_CAN_HOTPLUG, "unplug of a shared memory region", err) != 1 ||
            unplug_one(o, &dev, step_ms(o, o->conf->timeout_unplug, 1, req), err) < 0)
            return -1;
    }
    return 0;
}

/* The user aliases of the shared memory devices in `dom`'s definition
 * that vdesk made (ua-shm-NAME), at most VD_SHMEM_MAX. */
static int shmem_defined(op *o, const char *dom, char (*alias)[64], int *n, vd_err *err)
{
    vd_shmem_member m[VD_SHMEM_MAX];
    char *xml = NULL;
    int nm = 0;
    *n = 0;
    if (vd_hv_dom_xml(o->hv, dom, 1, &xml, err) < 0)
        return -1;
    int rc = vd_shmem_in_xml(xml, dom, 0, m, VD_SHMEM_MAX, &nm, err);
    free(xml);
    for (int i = 0; i < nm && rc == 0; i++)
        vd_shmem_alias(m[i].name, alias[(*n)++], 64);
    return rc;
}

/* Unplugs the devices the mode must free: all of them (and the shared
 * memory regions), or for shrink only the job's GPUs. Devices already
 * unplugged (an earlier mode) are skipped. */
static int unplug(op *o, const vd_request *req, int gpus_only, vd_err *err)
{
    for (int i = 0; i < o->conf->ndevices; i++) {
        const vd_device *dev = &o->conf->devices[i];
        if (gpus_only && !is_job_gpu(o, i, req->gpus))
            continue;
        int present = 0;
        char what[80];
        snprintf(what, sizeof(what), "unplug %s", dev->alias);
        if (vd_hv_dev_present(o->hv, o->conf->domain, dev->alias, &present, err) < 0)
            return -1;
        if (present && driver_can(o, VD_CAN_HOTPLUG, what, err) != 1)
            return -1;
        if (present && unplug_one(o, dev, step_ms(o, o->conf->timeout_unplug, 1, req), err) < 0)
            return -1;
    }
    return gpus_only ? 0 : unplug_shmem(o, req, err);
}

/* Whether the desktop holds a GPU the job was given: one in its live XML
 * (an earlier shrink may have given some away already). When libvirt
 * cannot tell, it is held. */
static int holds_job_gpu(const op *o, const vd_request *req)
{
    if (!req->gpus || !*req->gpus)
        return 0;   /* a job without GPUs takes none from the desktop */
    for (int i = 0; i < o->conf->ndevices; i++) {
        int present = 1;
        if (is_job_gpu(o, i, req->gpus) &&
            (!o->hv || vd_hv_dev_present(o->hv, o->conf->domain, o->conf->devices[i].alias,
                                         &present, NULL) < 0 || present))
            return 1;
    }
    return 0;
}

static int mode_suspend(op *o, const vd_request *req, vd_err *err)
{
    /* A paused VM keeps its passthrough devices: a job given GPUs would get
     * GPUs that are still on vfio-pci. Slurm offers them; vdesk must free them. */
    if (holds_job_gpu(o, req))
        return vd_err_set(err, "suspend keeps the desktop's GPUs, and the job was given GPUs %s",
                          req->gpus);
    if (step_begin(o, "suspend", err) < 0)
        return -1;
    return step_end(o, "suspend", vd_hv_dom_suspend(o->hv, o->conf->domain, err));
}

static int autostart_off(op *o, const char *dom, vd_err *err);

static int mode_save(op *o, const vd_request *req, vd_err *err)
{
    /* An autostart at the daemon's next start would boot the disk next to
     * the save file: the session would be lost (save_file_settle). */
    if (autostart_off(o, o->conf->domain, err) < 0 || unplug(o, req, 0, err) < 0)
        return -1;
    if (save_path(o, o->j.save_file, sizeof(o->j.save_file), err) < 0)
        return -1;
    if (step_begin(o, "save", err) < 0)
        return -1;
    return step_end(o, "save", vd_hv_dom_save(o->hv, o->conf->domain, o->j.save_file,
                                              step_ms(o, o->conf->timeout_save, 1, req), err));
}

static int mode_shutdown(op *o, const vd_request *req, vd_err *err)
{
    vd_err why;
    /* The guest may ignore the power button: then cut the power. Its disk
     * keeps what it had written; the snapshot keeps the state before. */
    if (step_begin(o, "shutdown", err) < 0)
        return -1;
    int grace = step_ms(o, o->conf->timeout_shutdown, o->conf->min_shutdown_grace, req);
    if (step_end(o, "shutdown", vd_hv_dom_shutdown(o->hv, o->conf->domain, grace, &why)) < 0) {
        if (step_begin(o, "destroy", err) < 0 ||
            step_end(o, "destroy", vd_hv_dom_destroy(o->hv, o->conf->domain, err)) < 0)
            return -1;
        snprintf(o->j.used, sizeof(o->j.used), "destroy");
        if (o->conf->destroy_drains)
            drain(o, "vdesk: desktop %s powered off (destroy) on %s: %s; 'scontrol update "
                  "nodename=%s state=resume' when seen", o->conf->domain, o->conf->node, why.msg,
                  o->conf->node);
    }
    return devices_to(o, 0, err);
}

static int mode_shrink(op *o, const vd_request *req, vd_err *err)
{
    if (!o->conf->desktop_cores[0])
        return vd_err_set(err, "shrink needs desktop_cores = in [node %s] of %s", o->conf->node, o->conf->path);
    if (unplug(o, req, 1, err) < 0)
        return -1;
    o->j.pinned = 1;
    if (step_begin(o, "pin", err) < 0)
        return -1;
    return step_end(o, "pin", vd_hv_dom_pin(o->hv, o->conf->domain, o->conf->desktop_cores, err));
}

/* Below, with the way home: it shares the restore's waiting for libvirt. */
static int mode_migrate(op *o, const vd_request *req, vd_err *err);
static int save_file_aside(op *o, const char *why, vd_err *err);

static int apply(op *o, vd_mode mode, const vd_request *req, vd_err *err)
{
    snprintf(o->j.used, sizeof(o->j.used), "%s", vd_mode_name(mode));
    switch (mode) {
    case VD_MODE_SUSPEND: return mode_suspend(o, req, err);
    case VD_MODE_SAVE: return mode_save(o, req, err);
    case VD_MODE_SHUTDOWN: return mode_shutdown(o, req, err);
    case VD_MODE_SHRINK: return mode_shrink(o, req, err);
    case VD_MODE_MIGRATE: return mode_migrate(o, req, err);
    default:
        return vd_err_set(err, "mode %s cannot be applied", vd_mode_name(mode));
    }
}

/* The recovery point of an eviction (snap.h): the disk as it was when the
 * job came, for the restore to fall back on. */
static void snapshot(op *o)
{
    vd_err why;
    vd_snap made;
    /* A driver without disk snapshots (a container's disk is a directory)
     * gives no recovery point: said in the record, nothing an admin can
     * fix, so no drain. */
    if (driver_can(o, VD_CAN_SNAPSHOT, "recovery point", &why) == 0) {
        phase_add(o, "snapshot", vd_mono_ms(), 0);
        note_aside(o, "%s", why.msg);
        return;
    }
    /* The snapshot directory holds the disk's layers: like the state
     * directory, nobody but root may plant or swap a file in it. */
    int rc = vd_snapshot_dir_check(o->conf->snapshot_dir, &why) == 0 && step_begin(o, "snapshot", &why) == 0
                 ? vd_snap_take(o->hv, o->conf->domain, o->conf->snapshot_dir, VD_SNAP_EVICTION, o->rep->job,
                                NULL, &made, &why)
                 : -2;
    if (rc != -2 && step_end(o, "snapshot", rc < 0 ? -1 : 0) == 0) {
        snprintf(o->j.snapshot, sizeof(o->j.snapshot), "%s", made.layer);
        if (rc == 1)
            note_aside(o, "snapshot %s has no label: %s", made.layer, why.msg);
        return;
    }
    /* The job can still have the node; an admin must fix the directory. */
    o->j.snapshot[0] = '\0';
    drain(o, "vdesk: no snapshot of %s: %s; fix %s, then 'scontrol update nodename=%s state=resume'",
          o->conf->domain, why.msg, o->conf->snapshot_dir, o->conf->node);
}

static vd_snap_keep keep_of(const vd_conf *c)
{
    return (vd_snap_keep){ .n = c->snapshots_keep, .age_ms = c->snapshots_keep_days * 86400000LL };
}

/* Keeps the disk's chain short while the VM runs, as the retention of
 * vdesk.conf says (vd_snap_flatten). It runs once the desktop is back,
 * not in the prolog: the job that evicts does not wait for it, nor does
 * the student, and a live merge needs the VM running. Never fatal: a
 * failure is a failed phase in the record, and the next restore tries
 * again. A crash during it leaves the journal PRESENT: QEMU finishes or
 * drops the block job, and the next merge reads the chain afresh. */
static void prune(op *o)
{
    vd_err why;
    int merged = 0;
    vd_snap_keep keep = keep_of(o->conf);
    if (driver_can(o, VD_CAN_SNAPSHOT, "merge", &why) == 0 || step_begin(o, "prune snapshots", &why) < 0)
        return;
    step_end(o, "prune snapshots", vd_snap_flatten(o->hv, o->conf->domain, o->conf->snapshot_dir, &keep, NULL,
                                                   left_ms(o, o->conf->timeout_save * 1000), &merged, &why));
}

/* --- restore: one convergent function ------------------------------------ */

static int file_exists(const char *path)
{
    struct stat st;
    return path[0] && stat(path, &st) == 0;
}

/* Why the VM could not be brought back, which decides what may follow. */
typedef enum back_fail {
    BACK_FAILED,   /* it truly cannot come back: the snapshot may be booted */
    BACK_BUSY,     /* libvirt is busy with it, or unreachable: touch nothing */
    BACK_DEVICES,  /* a cold boot needs devices that cannot go to it */
} back_fail;

/* The longest vdesk itself lets libvirt work on the VM in one step. */
static int settle_budget_ms(const vd_conf *c)
{
    long long s = c->timeout_save;
    if (c->timeout_restore > s)
        s = c->timeout_restore;
    if (c->timeout_shutdown > s)
        s = c->timeout_shutdown;
    /* a migration in or out, of a desktop of up to 16 GiB */
    if ((long long)c->timeout_migrate * 16 > s)
        s = (long long)c->timeout_migrate * 16;
    return s * 1000 > INT_MAX ? INT_MAX : (int)(s * 1000);
}

/* The VM's state once libvirt is done with it. A vdesk killed in the middle
 * of a save, a restore or a destroy leaves libvirt finishing the job; what
 * vdesk does next must follow from the end state, not from the passing one
 * (acting on a VM that was still saving threw good save files away). */
static int settle(op *o, vd_dom_info *st, vd_err *err)
{
    int budget = left_ms(o, settle_budget_ms(o->conf));
    long long deadline = vd_mono_ms() + budget;
    for (;;) {
        if (vd_hv_dom_info(o->hv, o->conf->domain, st, err) < 0)
            return -1;
        if (!st->busy)
            return 0;
        if (vd_mono_ms() >= deadline)
            return vd_err_set(err, "VM %s is still %s after %d s: libvirt has not finished with it; "
                              "see 'virsh domjobinfo %s', then run 'vdeskctl recover'", o->conf->domain,
                              st->what, budget / 1000, o->conf->domain);
        nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000000 }, NULL);
    }
}

/* --- migrate: the desktop runs on at another node ------------------------
 *
 * The desktop leaves with its definition (hv.h): afterwards exactly one
 * daemon has it. The journal's `where` names the node it was sent to, but
 * only as a hint: coming home looks for it, home first (docs/design.md,
 * "Migration"). */

/* This node's entry in the peer table: how peers reach its daemon. */
static const vd_peer *self_peer(const op *o)
{
    return vd_conf_peer(o->conf, o->conf->node);
}

/* The migration's deadline: timeout_migrate per GiB of the desktop's RAM,
 * rounded up, at least 10 s, within the budget. */
static int migrate_ms(const op *o, unsigned long long kib)
{
    long long s = vd_policy_migrate_s(o->conf->timeout_migrate, kib);
    return left_ms(o, s * 1000 > INT_MAX ? INT_MAX : (int)(s * 1000));
}

static void migration_note(op *o, const char *from, const char *to, long long t0,
                           const vd_migrate_stats *st)
{
    struct vd_report_migration *m = &o->rep->migration;
    snprintf(m->from, sizeof(m->from), "%s", from);
    snprintf(m->to, sizeof(m->to), "%s", to);
    m->ms = vd_mono_ms() - t0;
    m->downtime_ms = st->downtime_ms;
    m->data_bytes = st->data_bytes;
    m->iterations = st->iterations;
}

/* Where a visitor that cannot move on is saved: its home's snapshot
 * directory, which every node reaches. */
static int visitor_save_path(const vd_conf *c, const char *home, const char *dom, char *buf,
                             size_t size, vd_err *err)
{
    char dir[PATH_MAX];
    if (vd_conf_snapshot_dir_of(c, home, dir, sizeof(dir)) < 0 ||
        snprintf(buf, size, "%s/%s.visitor.save", dir, dom) >= (int)size)
        return vd_err_set(err, "%s: path of the visitor save file of %s too long", c->snapshot_dir, dom);
    return 0;
}

static vd_migrate_params migrate_params_to(const op *o, const vd_peer *to, int timeout_ms)
{
    return (vd_migrate_params){ .dest_uri = to->migrate_uri, .data_uri = to->migrate_address,
                                .downtime_ms = o->conf->migrate_downtime,
                                .bandwidth_mib = o->conf->migrate_bandwidth,
                                .unsafe = o->conf->migrate_unsafe, .timeout_ms = timeout_ms };
}

/* What peer p's daemon says about its room; -1 when it does not answer
 * (it is then no candidate). */
static int target_room(const op *o, const vd_peer *p, vd_place_cand *c, vd_err *err)
{
    vd_hv *hv;
    int active = 0;
    if (vd_hv_open(p->migrate_uri, &hv, err) < 0)
        return -1;
    int rc = 0;
    if (vd_hv_free_memory_kib(hv, &c->free_kib, err) < 0 || vd_hv_active_count(hv, &active, err) < 0)
        rc = -1;
    vd_hv_close(hv);
    c->slots_free = p->desktop_slots - active;
    c->order = (int)(p - o->conf->peers);
    return rc;
}

/* The target among the request's idle nodes (vd_place_pick); `why` says
 * why there is none. */
static const vd_peer *target_pick(op *o, const vd_request *req, unsigned long long need_kib,
                                  vd_err *err)
{
    vd_place_cand cand[VD_MAX_NODES] = { { 0, 0, 0 } };
    const vd_peer *peer[VD_MAX_NODES];
    int n = 0, asked = 0;
    char skipped[256] = "";
    for (int i = 0; i < req->ntargets && n < VD_MAX_NODES; i++) {
        const vd_peer *p = vd_conf_peer(o->conf, req->targets[i]);
        vd_err why;
        if (!p || !p->migrate_uri[0] || !strcmp(p->name, o->conf->node))
            continue;
        asked++;
        if (target_room(o, p, &cand[n], &why) == 0)
            peer[n++] = p;
        else if (!skipped[0])
            snprintf(skipped, sizeof(skipped), "; %s does not answer: %.160s", p->name, why.msg);
    }
    int best = vd_place_pick(cand, n, need_kib);
    if (best >= 0)
        return peer[best];
    if (!asked)
        vd_err_set(err, "no idle node to migrate to (Slurm offered %d with feature '%s' and "
                   "migrate_uri in %s)", req->ntargets, o->conf->migrate_feature, o->conf->path);
    else
        vd_err_set(err, "none of %d idle node(s) has room for %llu MiB and a free desktop slot%s",
                   asked, need_kib / 1024, skipped);
    return NULL;
}

/* Two desktops that chose the same target at the same moment both saw a
 * free slot. Once here, the first `desktop_slots` to have arrived stay
 * (vd_hv_dom_arrived_after: the target's own order, which both see the
 * same); a later one goes back where it came from, and the chain moves on.
 * A way back that fails leaves it there, over the target's slots: said in
 * the record, nothing lost. */
static int slot_check(op *o, const vd_request *req, const vd_peer *self, const vd_peer *to,
                      unsigned long long kib, vd_err *err)
{
    vd_hv *there;
    vd_err why = { "" };
    int before = 0;
    char reason[400] = "";
    if (vd_hv_open(to->migrate_uri, &there, &why) < 0)
        return 0;   /* it got there; whether it is alone there cannot be told */
    /* A job may have taken the target since Slurm called it idle: its
     * prolog may have looked for visitors before this one arrived. */
    if (req->target_idle && req->target_idle(to->name, o->conf->migrate_feature) == 0)
        snprintf(reason, sizeof(reason), "%s was given a job while %s moved there", to->name,
                 o->conf->domain);
    else if (vd_hv_dom_arrival_place(there, o->conf->domain, &before, &why) == 0 &&
             before >= to->desktop_slots)
        snprintf(reason, sizeof(reason), "%s filled up (desktop_slots = %d) while %s moved there",
                 to->name, to->desktop_slots, o->conf->domain);
    if (!reason[0]) {
        vd_hv_close(there);
        return 0;
    }
    char step[96];
    snprintf(step, sizeof(step), "back from %s", to->name);
    vd_migrate_params mp = migrate_params_to(o, self, migrate_ms(o, kib));
    vd_migrate_stats st;
    int rc = step_begin(o, step, err);
    if (rc == 0)
        rc = step_end(o, step, vd_hv_dom_migrate(there, o->conf->domain, &mp, &st, &why));
    vd_hv_close(there);
    if (rc < 0) {
        /* It stays there (journalled as there): said, nothing lost. */
        drain(o, "vdesk: %s, and %s could not come back from it (%s); see 'vdeskctl status', then "
              "'scontrol update nodename=%s state=resume'", reason, o->conf->domain,
              why.msg[0] ? why.msg : err->msg, o->conf->node);
        return 0;
    }
    o->j.where[0] = '\0';
    o->rep->migration.to[0] = '\0';
    if (vd_journal_save(o->conf->state_dir, &o->j, err) < 0)
        return -1;
    return vd_err_set(err, "%s: it came back", reason);
}

/* A migration reported failed may have finished anyway (a watchdog's
 * abort that came too late, a watchdog left behind on a hung daemon):
 * once home's daemon is done with the desktop, whether home still has it
 * says which. */
static int migrate_went_anyway(op *o)
{
    vd_dom_info st;
    vd_err why;
    return settle(o, &st, &why) == 0 && st.state == VD_DOM_MISSING;
}

static int mode_migrate(op *o, const vd_request *req, vd_err *err)
{
    const vd_peer *self = self_peer(o), *to;
    unsigned long long kib;
    if (!self || !self->migrate_uri[0])
        return vd_err_set(err, "migrate needs migrate_uri = in [node %s] of %s", o->conf->node,
                          o->conf->path);
    /* Peers find a node's desktop by its domain = (the peer table): one
     * selected from desktops = would be lost to them once away. */
    if (strcmp(o->conf->domain, self->domain) != 0)
        return vd_err_set(err, "%s is one of the desktops = of [node %s], which do not migrate (only "
                          "its domain = %s does)", o->conf->domain, o->conf->node, self->domain);
    if (vd_hv_dom_memory_kib(o->hv, o->conf->domain, &kib, err) < 0 ||
        !(to = target_pick(o, req, kib, err)))
        return -1;
    pause_point("picked");
    /* Neither a GPU's state nor an IB function's migrates: they stay. */
    if (unplug(o, req, 0, err) < 0)
        return -1;
    snprintf(o->j.where, sizeof(o->j.where), "%s", to->name);
    char step[96];
    snprintf(step, sizeof(step), "migrate %s", to->name);
    vd_migrate_params mp = migrate_params_to(o, to, migrate_ms(o, kib));
    vd_migrate_stats st;
    long long t0 = vd_mono_ms();
    if (step_begin(o, step, err) < 0) {
        o->j.where[0] = '\0';
        return -1;
    }
    int rc = vd_hv_dom_migrate(o->hv, o->conf->domain, &mp, &st, err);
    if (rc < 0 && migrate_went_anyway(o))
        rc = 0;   /* the watchdog's abort came too late: it is there */
    if (step_end(o, step, rc) < 0) {
        o->j.where[0] = '\0';   /* it runs on here (hv.h): the next mode takes over */
        vd_err why;
        if (vd_journal_save(o->conf->state_dir, &o->j, &why) < 0)
            vd_err_prefix(err, "%s; and", why.msg);
        return -1;
    }
    migration_note(o, o->conf->node, to->name, t0, &st);
    return slot_check(o, req, self, to, kib, err);
}

/* The daemon that has the desktop now, other than home: the journal's
 * `where` first, then every peer that migrates. *found NULL: none has it. */
static int desktop_find(op *o, const vd_peer **found, vd_hv **hv, vd_dom_info *st, vd_err *err)
{
    const vd_peer *first = o->j.where[0] ? vd_conf_peer(o->conf, o->j.where) : NULL;
    *found = NULL;
    *hv = NULL;
    for (int i = -1; i < o->conf->npeers; i++) {
        const vd_peer *p = i < 0 ? first : &o->conf->peers[i];
        vd_err why;
        if (!p || !p->migrate_uri[0] || !strcmp(p->name, o->conf->node) || (i >= 0 && p == first))
            continue;
        if (vd_hv_open(p->migrate_uri, hv, &why) < 0)
            continue;   /* a node that is down has no running desktop */
        if (vd_hv_dom_info(*hv, o->conf->domain, st, &why) == 0 && st->state != VD_DOM_MISSING) {
            *found = p;
            return 0;
        }
        vd_hv_close(*hv);
        *hv = NULL;
    }
    return vd_err_set(err, "desktop %s is neither here nor on any node of %s that answers: a node "
                      "holding it may be down; start it, then run 'vdeskctl recover'",
                      o->conf->domain, o->conf->path);
}

/* Waits until the peer's daemon is done with the desktop (a migration in
 * or out), like settle() at home. */
static int settle_on(op *o, vd_hv *hv, vd_dom_info *st, vd_err *err)
{
    long long deadline = vd_mono_ms() + left_ms(o, settle_budget_ms(o->conf));
    while (st->busy) {
        if (vd_mono_ms() >= deadline)
            return vd_err_set(err, "VM %s is still %s on %s: run 'vdeskctl recover' later",
                              o->conf->domain, st->what, vd_hv_uri(hv));
        nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000000 }, NULL);
        if (vd_hv_dom_info(hv, o->conf->domain, st, err) < 0)
            return -1;
    }
    return 0;
}

/* A desktop saved as a visitor (visitors_leave) comes back from that file
 * when it is found off; found running, the file is a save that did not
 * finish (or was overtaken) and is kept aside, never restored. */
static int visitor_file_settle(op *o, vd_err *err)
{
    char path[PATH_MAX];
    vd_dom_state s;
    struct stat fst;
    if (visitor_save_path(o->conf, o->conf->node, o->conf->domain, path, sizeof(path), err) < 0)
        return -1;
    if (lstat(path, &fst) < 0 || !strcmp(o->j.save_file, path))
        return 0;
    /* The file is restored with the student's disk and devices: only one
     * vdesk (root) could have written, in a directory nobody else may. */
    if (vd_snapshot_dir_check(o->conf->snapshot_dir, err) < 0)
        return vd_err_prefix(err, "not using %s", path);
    if (!S_ISREG(fst.st_mode) || (fst.st_mode & S_IWOTH) || (fst.st_mode & S_IWGRP))
        return vd_err_set(err, "%s is not a regular file only its owner may write: not restoring "
                          "%s from it; see what it is, remove it, then run 'vdeskctl recover'",
                          path, o->conf->domain);
    if (vd_hv_dom_state(o->hv, o->conf->domain, &s, err) < 0)
        return -1;
    char was[sizeof(o->j.save_file)];
    snprintf(was, sizeof(was), "%s", o->j.save_file);
    int was_used = o->j.save_used;
    snprintf(o->j.save_file, sizeof(o->j.save_file), "%s", path);
    o->j.save_used = 0;
    if (s != VD_DOM_SHUTOFF) {
        int rc = save_file_aside(o, "unused", err);
        snprintf(o->j.save_file, sizeof(o->j.save_file), "%s", was);
        o->j.save_used = was_used;
        return rc;
    }
    /* Its own save file, if it has one, is older than the visitor's. */
    if (file_exists(was) && !was_used)
        lost(o, "%s had a save file %s from before it left; it comes back from the newer one it was "
             "saved to as a visitor, and the older one is kept", o->conf->domain, was);
    return vd_journal_save(o->conf->state_dir, &o->j, err);
}

/* The definition at home, off, while the desktop runs elsewhere: renamed
 * DOMAIN.stale-MS (kept for an admin, its disks untouched), so that the
 * desktop can come home under its own name. */
static int stale_home_set_aside(op *o, vd_err *err)
{
    vd_dom_state s = VD_DOM_OTHER;
    char aside[sizeof(o->conf->domain) + 32];
    if (vd_hv_dom_state(o->hv, o->conf->domain, &s, err) < 0)
        return -1;
    if (s == VD_DOM_MISSING)
        return 0;
    if (s != VD_DOM_SHUTOFF)
        return vd_err_set(err, "%s is %s here and also found on another node: not bringing either "
                          "over the other; see 'vdeskctl status'", o->conf->domain, vd_dom_state_name(s));
    snprintf(aside, sizeof(aside), "%s.stale-%lld", o->conf->domain, vd_now_ms());
    if (step_begin(o, "set aside stale definition", err) < 0 ||
        step_end(o, "set aside stale definition", vd_hv_dom_rename(o->hv, o->conf->domain, aside, err)) < 0)
        return -1;
    drain(o, "vdesk: %s was defined again on %s while it ran on %s; that definition is kept as %s: "
          "remove it when seen, then 'scontrol update nodename=%s state=resume'", o->conf->domain,
          o->conf->node, o->j.where[0] ? o->j.where : "another node", aside, o->conf->node);
    return 0;
}

/* Brings a migrated desktop home, live if it runs (a paused one comes
 * paused), its definition alone if it is off; from here on converge()
 * treats it like any desktop at home. A desktop already home (the
 * migration never happened, or was aborted) only has `where` cleared. */
static int come_home(op *o, vd_err *err)
{
    vd_dom_info st;
    if (settle(o, &st, err) < 0)
        return -1;
    /* A definition at home that is off while the desktop was sent away is
     * not the desktop (someone defined it again, or its start was refused
     * by the lock manager): the running one elsewhere is, and comes home
     * over it. */
    int sent = o->j.where[0] || !strcmp(o->j.used, "migrate");
    const vd_peer *at = NULL, *self = self_peer(o);
    vd_hv *away = NULL;
    if (st.state == VD_DOM_MISSING && (!self || !self->migrate_uri[0]))
        return vd_err_set(err, "VM %s is not defined on %s, and [node %s] of %s has no migrate_uri "
                          "to look for it elsewhere: define it again, then run 'vdeskctl recover'",
                          o->conf->domain, vd_hv_uri(o->hv), o->conf->node, o->conf->path);
    if (st.state == VD_DOM_MISSING && desktop_find(o, &at, &away, &st, err) < 0)
        return -1;
    /* Off at home and found elsewhere: the one elsewhere is the desktop. */
    if (st.state == VD_DOM_SHUTOFF && sent && self && self->migrate_uri[0])
        desktop_find(o, &at, &away, &st, NULL);
    if (at) {
        if (stale_home_set_aside(o, err) < 0) {
            vd_hv_close(away);
            return -1;
        }
        int rc = settle_on(o, away, &st, err);
        unsigned long long kib = 0;
        if (rc == 0 && vd_hv_dom_memory_kib(away, o->conf->domain, &kib, err) < 0)
            rc = -1;
        vd_migrate_params mp = migrate_params_to(o, self, migrate_ms(o, kib));
        mp.offline = st.state == VD_DOM_SHUTOFF;
        vd_migrate_stats ms;
        char step[96];
        snprintf(step, sizeof(step), "home from %s", at->name);
        long long t0 = vd_mono_ms();
        if (rc == 0)
            rc = step_begin(o, step, err);
        if (rc == 0)
            rc = step_end(o, step, vd_hv_dom_migrate(away, o->conf->domain, &mp, &ms, err));
        if (rc == 0)
            migration_note(o, at->name, o->conf->node, t0, &ms);
        vd_hv_close(away);
        if (rc < 0)
            return vd_err_prefix(err, "bringing %s home from %s", o->conf->domain, at->name);
    }
    if (visitor_file_settle(o, err) < 0)
        return -1;
    if (!o->j.where[0])
        return 0;
    o->j.where[0] = '\0';
    return vd_journal_save(o->conf->state_dir, &o->j, err);
}

/* --- visitors: other nodes' desktops that migrated here ------------------
 *
 * A job wants the whole node, so a visitor leaves too: home if Slurm says
 * its home is idle, else on to another idle node, else it is saved to its
 * home's snapshot directory (shared storage, like its disk), where its home
 * finds the file when it brings the desktop back (come_home). The visitor's
 * state stays its home's: this node journals nothing for it, and its home
 * looks for it wherever it went. */

/* A target for visitor `dom` from this job's idle nodes: its home first
 * when Slurm has it idle, else by vd_place_pick; never this node. */
static const vd_peer *visitor_target(op *o, const vd_request *req, const vd_peer *home,
                                     unsigned long long kib, vd_err *err)
{
    for (int i = 0; i < req->ntargets; i++)
        if (!strcmp(req->targets[i], home->name) && home->migrate_uri[0]) {
            vd_place_cand c;
            vd_err why;
            if (target_room(o, home, &c, &why) == 0 && vd_place_pick(&c, 1, kib) == 0)
                return home;
        }
    return target_pick(o, req, kib, err);
}

/* A visitor's moves are not this node's state: they are timed into the
 * record, not journalled (its home's journal and come_home() cover them). */
static int visitor_phase(op *o, const char *what, const char *dom, long long t0, int rc)
{
    char name[sizeof(o->rep->phases[0].name)];
    snprintf(name, sizeof(name), "visitor %.24s %.14s", dom, what);   /* cut: a phase name */
    phase_add(o, name, t0, rc == 0);
    return rc;
}

static int visitor_save(op *o, const char *dom, const vd_peer *home, vd_err *err)
{
    char path[PATH_MAX], dir[PATH_MAX];
    if (visitor_save_path(o->conf, home->name, dom, path, sizeof(path), err) < 0 ||
        vd_conf_snapshot_dir_of(o->conf, home->name, dir, sizeof(dir)) < 0 ||
        vd_snapshot_dir_check(dir, err) < 0)
        return -1;
    long long t0 = vd_mono_ms();
    int rc = vd_hv_dom_save(o->hv, dom, path, step_ms(o, o->conf->timeout_save, 1, NULL), err);
    return visitor_phase(o, "save", dom, t0, rc);
}

/* Moves visitor `dom` (home: `home`) off this node; says how in `done`. */
static int visitor_leave(op *o, const vd_request *req, const char *dom, const vd_peer *home,
                         char *done, size_t size, vd_err *err)
{
    unsigned long long kib = 0;
    vd_err why;
    const vd_peer *to = NULL;
    if (vd_hv_dom_memory_kib(o->hv, dom, &kib, &why) == 0)
        to = visitor_target(o, req, home, kib, &why);
    if (to) {
        char what[80];
        vd_migrate_params mp = migrate_params_to(o, to, migrate_ms(o, kib));
        vd_migrate_stats st;
        long long t0 = vd_mono_ms();
        snprintf(what, sizeof(what), "to %s", to->name);
        if (visitor_phase(o, what, dom, t0, vd_hv_dom_migrate(o->hv, dom, &mp, &st, &why)) == 0) {
            snprintf(done, size, "visitor %s %s %s", dom, to == home ? "went home to" : "moved on to",
                     to->name);
            return 0;
        }
    }
    if (visitor_save(o, dom, home, err) < 0)
        return vd_err_prefix(err, "visitor %s could not move (%s) nor be saved", dom, why.msg);
    snprintf(done, size, "visitor %s saved for its home %s (%.100s)", dom, home->name, why.msg);
    return 0;
}

/* Every running desktop here whose home is another node leaves. Failures
 * are recorded and drain the node; they do not undo this node's own
 * eviction (the job may still run beside a visitor an admin then moves). */
static void visitors_leave(op *o, const vd_request *req)
{
    char **names = NULL;
    int n = 0;
    vd_err why;
    if (!o->hv || vd_hv_dom_list(o->hv, &names, &n, &why) < 0)
        return;
    for (int i = 0; i < n; i++) {
        const vd_peer *home = vd_conf_home_of(o->conf, names[i]);
        vd_dom_state s;
        char done[200];
        if (!home || !strcmp(home->name, o->conf->node) ||
            vd_hv_dom_state(o->hv, names[i], &s, &why) < 0 ||
            (s != VD_DOM_RUNNING && s != VD_DOM_PAUSED))
            continue;
        size_t len = strlen(o->rep->outcome);
        if (visitor_leave(o, req, names[i], home, done, sizeof(done), &why) < 0) {
            drain(o, "vdesk: %.300s; 'vdeskctl status' on %s says where it belongs, then 'scontrol "
                  "update nodename=%s state=resume'", why.msg, home->name, o->conf->node);
            snprintf(done, sizeof(done), "%.190s", why.msg);
        }
        snprintf(o->rep->outcome + len, sizeof(o->rep->outcome) - len, "%s%s", len ? "; " : "", done);
    }
    vd_hv_names_free(names, n);
}

/* Whether the VM is the one restored from the save file: vdesk journals
 * that right after the restore, before the guest runs; if it was killed in
 * between, a restore under way and a VM that is paused (restores are
 * paused) or running as restored say the same. A VM booted some other way
 * meanwhile (autostart, an admin) runs as booted: not from the file. */
static int note_save_used(op *o, const vd_dom_info *st, vd_err *err)
{
    if (o->j.save_used || !o->j.save_file[0] || strcmp(o->interrupted, "restore") ||
        (st->state != VD_DOM_PAUSED && !st->restored))
        return 0;
    o->j.save_used = 1;
    return vd_journal_save(o->conf->state_dir, &o->j, err);
}

/* Whether the mode used kept the desktop's memory for it to come back to. */
static int memory_kept(const op *o)
{
    return !strcmp(o->j.used, "suspend") || !strcmp(o->j.used, "shrink") ||
           !strcmp(o->j.used, "save");
}

static int restore_from_file(op *o, vd_err *err)
{
    if (step_begin(o, "restore", err) < 0)
        return -1;
    int rc = step_end(o, "restore", vd_hv_dom_restore(o->hv, o->conf->domain, o->j.save_file,
                                                      step_ms(o, o->conf->timeout_restore, 1, NULL), err));
    /* A restore that timed out may still have brought the VM (paused):
     * then it is the file's, and the file must not be used again. */
    vd_dom_info st;
    if (rc < 0 && (vd_hv_dom_info(o->hv, o->conf->domain, &st, NULL) < 0 ||
                   st.state == VD_DOM_SHUTOFF || st.state == VD_DOM_MISSING))
        return -1;
    o->j.save_used = 1;
    return vd_journal_save(o->conf->state_dir, &o->j, err);
}

/* A save file that the desktop's driver cannot restore (vdesk never
 * writes one there: the file is from before uri = named this driver) is
 * kept for an admin and forgotten; the desktop boots from its disk. */
static int save_file_unusable(op *o, const vd_err *why, vd_err *err)
{
    char was[sizeof(o->j.save_file)];
    snprintf(was, sizeof(was), "%s", o->j.save_file);
    if (save_file_aside(o, "unusable", err) < 0)
        return -1;
    lost(o, "save file %s not used (%s): kept as %s, %s booted from its disk", was, why->msg,
         o->j.save_file, o->conf->domain);
    o->j.save_file[0] = '\0';
    return vd_journal_save(o->conf->state_dir, &o->j, err);
}

/* A shut-off VM comes back from its save file if it has one it has not
 * run from yet (and its driver can restore), else by booting, its devices
 * on vfio-pci first. */
static int start_off(op *o, back_fail *why_not, vd_err *err)
{
    int unusable = 0;
    if (!o->j.save_used && file_exists(o->j.save_file)) {
        vd_err why;
        int can = driver_can(o, VD_CAN_SAVE, "restore from a save file", &why);
        if (can < 0)
            return vd_err_set(err, "%s", why.msg);
        if (can)
            return restore_from_file(o, err);
        if (save_file_unusable(o, &why, err) < 0)
            return -1;
        unusable = 1;   /* the loss is said, once */
    }
    if (!unusable && memory_kept(o) && !o->j.save_used)
        lost(o, "the session of %s was gone before vdesk came back for it (the VM was found shut off "
             "and no save file was left): booted from its disk", o->conf->domain);
    if (devices_to(o, 1, err) < 0) {
        *why_not = BACK_DEVICES;
        return -1;
    }
    if (step_begin(o, "start", err) < 0)
        return -1;
    return step_end(o, "start", vd_hv_dom_start(o->hv, o->conf->domain,
                                                step_ms(o, o->conf->timeout_restore, 1, NULL), err));
}

/* One action towards running, chosen by the state the VM is in. */
static int act(op *o, const vd_dom_info *st, back_fail *why_not, vd_err *err)
{
    const char *dom = o->conf->domain;
    switch (st->state) {
    case VD_DOM_RUNNING:
        return 0;
    case VD_DOM_PAUSED:
        if (step_begin(o, "resume", err) < 0)
            return -1;
        return step_end(o, "resume", vd_hv_dom_resume(o->hv, dom, err));
    case VD_DOM_PMSUSPENDED:
        if (step_begin(o, "wake up", err) < 0)
            return -1;
        return step_end(o, "wake up", vd_hv_dom_wakeup(o->hv, dom, err));
    case VD_DOM_CRASHED:
        lost(o, "the guest of %s had crashed: restarted from its disk", dom);
        if (step_begin(o, "destroy", err) < 0)
            return -1;
        return step_end(o, "destroy", vd_hv_dom_destroy(o->hv, dom, err));
    case VD_DOM_SHUTOFF:
        return start_off(o, why_not, err);
    default:
        return vd_err_set(err, "VM %s is %s: vdesk does not know how to bring it back", dom, st->what);
    }
}

#define BRING_BACK_ACTIONS 6

/* Brings the VM itself back to running: from the save file, by booting, by
 * resuming, whichever its state calls for, reading the state again after
 * every action. An action that fails is tried once more after the state is
 * read anew (a transient libvirt error must not cost the session); the
 * same action failing twice in the same state means the VM cannot come
 * back this way. */
static int bring_back_vm(op *o, back_fail *why_not, vd_err *err)
{
    vd_err last = { "" };
    vd_dom_state failed_in = VD_DOM_MISSING;
    int failures = 0;   /* in a row, in state failed_in */
    *why_not = BACK_BUSY;
    for (int i = 0; i <= BRING_BACK_ACTIONS; i++) {
        vd_dom_info st;
        if (settle(o, &st, err) < 0 || note_save_used(o, &st, err) < 0)
            return -1;
        o->vm = st;
        if (st.state == VD_DOM_RUNNING)
            return 0;
        if (st.state == VD_DOM_MISSING)
            return vd_err_set(err, "VM %s is not defined on %s any more; define it again, then run "
                              "'vdeskctl recover'", o->conf->domain, vd_hv_uri(o->hv));
        if (i == BRING_BACK_ACTIONS || (failures == 2 && failed_in == st.state))
            break;
        back_fail f = BACK_FAILED;
        if (act(o, &st, &f, &last) == 0) {
            failures = 0;
            continue;
        }
        if (f == BACK_DEVICES) {
            *why_not = BACK_DEVICES;
            return vd_err_set(err, "%s", last.msg);
        }
        failures = failed_in == st.state ? failures + 1 : 1;
        failed_in = st.state;
        nanosleep(&(struct timespec){ .tv_nsec = 300 * 1000000 }, NULL);
    }
    /* A paused VM still holds the session (paused on a disk error, say: an
     * admin frees space and resumes it), and a budget that ran out proves
     * nothing about the VM: neither is a reason to boot the snapshot. */
    int out_of_time = o->deadline && vd_mono_ms() >= o->deadline;
    *why_not = failed_in == VD_DOM_PAUSED || out_of_time ? BACK_BUSY : BACK_FAILED;
    if (failed_in == VD_DOM_PAUSED)
        return vd_err_set(err, "%s stays paused and keeps its session (%s): resume it by hand once the "
                          "cause is gone, then run 'vdeskctl recover'", o->conf->domain,
                          last.msg[0] ? last.msg : "it does not stay running");
    return vd_err_set(err, "%s%s", out_of_time ? "out of time (PrologEpilogTimeout): " : "",
                      last.msg[0] ? last.msg : "the VM does not stay running");
}

/* Plugs back one device the eviction took out, its group on vfio-pci first.
 * A journal rebuilt from what is true has no XML: the VM's definition has
 * it (an unplug is live only). */
static int replug_one(op *o, vd_saved_dev *sd, vd_err *err)
{
    int present = 0;
    if (vd_hv_dev_present(o->hv, o->conf->domain, sd->alias, &present, err) < 0)
        return -1;
    if (present)
        return 0;
    if ((!sd->xml || !sd->xml[0]) &&
        vd_hv_dev_xml_inactive(o->hv, o->conf->domain, sd->alias, &sd->xml, err) < 0)
        return -1;
    /* A region's device is rebuilt from what it must be, not taken as the
     * journal has it: the journal is untrusted, and no other device may
     * come in under a region's alias. */
    char *clean = NULL;
    if (vd_shmem_is_alias(sd->alias)) {
        if (vd_shmem_dev_xml_clean(sd->alias, sd->xml, &clean, err) < 0)
            return -1;
        free(sd->xml);
        sd->xml = clean;
    }
    char step[80];
    const vd_device *dev = conf_device(o->conf, sd->alias);
    snprintf(step, sizeof(step), "vfio %s", sd->alias);
    if (dev && dev->pci[0] &&
        (step_begin(o, step, err) < 0 || step_end(o, step, group_to_vfio(o, dev, err)) < 0))
        return -1;
    snprintf(step, sizeof(step), "replug %s", sd->alias);
    if (step_begin(o, step, err) < 0)
        return -1;
    return step_end(o, step, vd_hv_dev_attach(o->hv, o->conf->domain, sd->alias, sd->xml, err));
}

/* A detach asked by a vdesk that was killed may still be under way: the
 * device is in the live XML now and gone a moment later. Let it finish
 * before deciding that the device is there. */
static int pending_unplug_settle(op *o, vd_err *err)
{
    const char *alias = o->interrupted + 7;
    int present = 0, tmo = o->conf->timeout_unplug * 1000;
    if (strncmp(o->interrupted, "unplug ", 7) != 0 ||
        vd_hv_dev_present(o->hv, o->conf->domain, alias, &present, err) < 0 || !present)
        return present ? -1 : 0;
    /* Finish the unplug that was asked, then the device comes back with
     * the others: a removal that libvirt was still waiting for ends either
     * way. A detach refused at once means one is pending: wait for it. A
     * guest that would not let go keeps the device, which is then present. */
    long long t = vd_mono_ms();
    vd_err why;
    if (vd_hv_dev_detach(o->hv, o->conf->domain, alias, tmo, NULL, &why) == 0 || vd_mono_ms() - t > tmo / 2)
        return vd_hv_alive(o->hv) ? 0 : vd_err_set(err, "%s", why.msg);
    return vd_hv_dev_wait_gone(o->hv, o->conf->domain, alias, tmo, &present, err);
}

/* Every device that can come back does, even when one cannot; the first
 * failure is the one reported. A device's saved XML stays in the journal
 * until the device is back in the live XML. */
static int replug(op *o, vd_err *err)
{
    if (pending_unplug_settle(o, err) < 0)
        return -1;
    int rc = 0;
    for (int i = 0; i < o->j.ndevs; i++) {
        vd_err one;
        if (replug_one(o, &o->j.devs[i], &one) < 0 && rc == 0)
            rc = vd_err_set(err, "%s", one.msg);
    }
    return rc;
}

/* The snapshot must be a layer of the VM's own disk: a journal naming any
 * other file is not followed. */
static int snapshot_check(op *o, vd_err *err)
{
    char **chain = NULL;
    int n = 0;
    if (vd_hv_disk_chain(o->hv, o->conf->domain, &chain, &n, err) < 0)
        return -1;
    int ok = in_list(o->j.snapshot, chain, n);
    vd_hv_names_free(chain, n);
    return ok ? 0 : vd_err_set(err, "snapshot %s is not a layer of the disk of %s: not reverting to it",
                               o->j.snapshot, o->conf->domain);
}

/* Moves the save file aside under a new name and forgets it. */
static int save_file_aside(op *o, const char *why, vd_err *err)
{
    char kept[sizeof(o->j.save_file)];
    if (snprintf(kept, sizeof(kept), "%s.%s-%lld", o->j.save_file, why, vd_now_ms()) >= (int)sizeof(kept))
        return vd_err_set(err, "%s: path too long to move aside", o->j.save_file);
    if (rename(o->j.save_file, kept) < 0)
        return vd_err_set(err, "%s: cannot move aside: %s", o->j.save_file, strerror(errno));
    snprintf(o->j.save_file, sizeof(o->j.save_file), "%s", kept);
    return 0;
}

/* Restore failed: boot the snapshot taken at eviction instead. The save
 * file and the disk layer written since are kept for an admin. */
static int fall_back_to_snapshot(op *o, vd_err *err)
{
    if (!o->j.snapshot[0])
        return vd_err_set(err, "no snapshot to fall back to");
    vd_dom_info st;
    if (snapshot_check(o, err) < 0 || settle(o, &st, err) < 0)
        return -1;
    if (st.state == VD_DOM_RUNNING || st.state == VD_DOM_PAUSED)
        return vd_err_set(err, "VM %s is %s: not reverting a VM that may hold the session; run "
                          "'vdeskctl recover' again", o->conf->domain, st.what);
    if (st.state != VD_DOM_SHUTOFF &&
        (step_begin(o, "destroy", err) < 0 ||
         step_end(o, "destroy", vd_hv_dom_destroy(o->hv, o->conf->domain, err)) < 0))
        return -1;
    if (file_exists(o->j.save_file) && !o->j.save_used && save_file_aside(o, "failed", err) < 0)
        return -1;
    o->j.save_file[0] = '\0';
    char kept[200];
    if (step_begin(o, "revert to snapshot", err) < 0 ||
        step_end(o, "revert to snapshot", vd_snap_revert(o->hv, o->conf->domain, o->conf->snapshot_dir,
                                                         o->j.snapshot, kept, sizeof(kept), err)) < 0)
        return -1;
    note_aside(o, "the disk as the restore found it is kept as snapshot %s", kept);
    if (devices_to(o, 1, err) < 0 || step_begin(o, "start", err) < 0 ||
        step_end(o, "start", vd_hv_dom_start(o->hv, o->conf->domain,
                                             step_ms(o, o->conf->timeout_restore, 1, NULL), err)) < 0 ||
        settle(o, &st, err) < 0)
        return -1;
    return st.state == VD_DOM_RUNNING ? 0 : vd_err_set(err, "VM %s is %s after booting the snapshot",
                                                       o->conf->domain, st.what);
}

/* The VM runs. Its save file is history if the VM was restored from it.
 * Otherwise the VM was started some other way (libvirt's autostart after a
 * reboot, an admin) or the save never finished: the file is not the
 * session that runs, must never be restored (the disk has moved on) and is
 * never deleted either: it is kept aside for an admin. */
static int save_file_settle(op *o, vd_err *err)
{
    if (!o->j.save_file[0])
        return 0;   /* suspend, shrink, a snapshot boot: nothing to journal */
    if (file_exists(o->j.save_file) && o->j.save_used && unlink(o->j.save_file) < 0)
        return vd_err_set(err, "%s: cannot remove after restore: %s", o->j.save_file, strerror(errno));
    if (file_exists(o->j.save_file) && !o->j.save_used) {
        /* Killed while saving, and libvirt gave up on the save (the VM runs
         * on, "save canceled"): the VM that runs is the session, and the
         * file a failed save. A save that finished and a VM booted since
         * (autostart) is not that: the session is in the file. */
        int unfinished = !strcmp(o->interrupted, "save") && o->vm.save_canceled;
        if (save_file_aside(o, unfinished ? "failed" : "unused", err) < 0)
            return -1;
        if (!unfinished)
            lost(o, "%s was started outside vdesk while its session was saved: that session was not "
                 "restored and is kept in %s", o->conf->domain, o->j.save_file);
    }
    o->j.save_file[0] = '\0';
    o->j.save_used = 0;
    return vd_journal_save(o->conf->state_dir, &o->j, err);
}

/* A guest that a vdesk killed since had asked to shut down goes down a
 * moment later: taking it for running would leave the desktop off for
 * good. Let it go down (within the shutdown timeout), then it boots. */
static int pending_shutdown_settle(op *o, vd_err *err)
{
    if (strcmp(o->interrupted, "shutdown") != 0)
        return 0;
    long long deadline = vd_mono_ms() + left_ms(o, o->conf->timeout_shutdown * 1000);
    vd_dom_state s;
    do {
        if (vd_hv_dom_state(o->hv, o->conf->domain, &s, err) < 0)
            return -1;
        if (s != VD_DOM_RUNNING)
            return 0;
        nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000000 }, NULL);
    } while (vd_mono_ms() < deadline);
    return 0;   /* it ignores the button: it runs on, as it was */
}

/* The desktop was off when the job came and stays off; its devices go back
 * to the side where the desktop finds them when it starts. */
static int converge_off(op *o, vd_err *err)
{
    vd_dom_state s = VD_DOM_MISSING;
    if (o->hv && vd_hv_dom_state(o->hv, o->conf->domain, &s, err) < 0)
        return -1;
    if (s == VD_DOM_SHUTOFF && devices_to(o, 1, err) < 0)
        return -1;
    return phase_present(o, err);
}

/* Only a VM that cannot come back is worth its snapshot, and only once
 * libvirt is done with it. A device that cannot come back (a process holds
 * the GPU, say) leaves the desktop as it is, running without it or, for a
 * cold boot, off, and the journal RESTORING, so that 'vdeskctl recover'
 * finishes the job once the cause is gone. */
static int converge(op *o, vd_err *err)
{
    snprintf(o->interrupted, sizeof(o->interrupted), "%s", o->j.step);
    if (phase_set(o, VD_RESTORING, err) < 0)
        return -1;
    if (!strcmp(o->j.used, "none"))
        return converge_off(o, err);
    if (!o->j.used[0] && !o->j.ndevs)
        return phase_present(o, err);   /* nothing was done yet */
    vd_err why;
    back_fail f;
    if (pending_shutdown_settle(o, err) < 0)
        return -1;
    /* Wherever a migration left it (or was leaving it), it comes home
     * first; then it is a desktop like any other. */
    const vd_peer *self = self_peer(o);
    if ((o->j.where[0] || (self && self->migrate_uri[0])) && come_home(o, err) < 0)
        return -1;
    if (bring_back_vm(o, &f, &why) < 0) {
        if (f == BACK_DEVICES)
            return vd_err_set(err, "%s stays off until its devices can go to it: %s", o->conf->domain,
                              why.msg);
        if (f == BACK_BUSY)
            return vd_err_set(err, "%s", why.msg);
        char first[sizeof(why.msg)];
        snprintf(first, sizeof(first), "%s", why.msg);
        if (fall_back_to_snapshot(o, &why) < 0)
            return vd_err_set(err, "cannot bring %s back: %s; snapshot fallback failed too: %s",
                              o->conf->domain, first, why.msg);
        outcome(o, "restore failed (%s); booted the snapshot %s instead", first, o->j.snapshot);
        lost(o, "the session of %s could not be brought back: booted the snapshot instead",
             o->conf->domain);
    }
    if (save_file_settle(o, err) < 0)
        return -1;
    int rc = replug(o, &why);
    if (rc == 0 && o->j.pinned)
        rc = step_begin(o, "unpin", &why);
    if (rc == 0 && o->j.pinned)
        rc = step_end(o, "unpin", vd_hv_dom_pin(o->hv, o->conf->domain, NULL, &why));
    if (rc < 0)
        return vd_err_set(err, "%s runs again, but not all of it is back: %s", o->conf->domain,
                          why.msg);
    return phase_present(o, err);
}

/* --- operations ---------------------------------------------------------- */

/* What the journal names is acted on (a file restored, renamed, removed; a
 * device plugged in): it may only name vdesk's own save file and the
 * devices of vdesk.conf. The snapshot is checked against the disk's chain
 * before any revert (snapshot_check). */
static int journal_check(const op *o, vd_err *err)
{
    char want[PATH_MAX];
    char visitor[PATH_MAX];
    if (o->j.save_file[0] && (save_path(o, want, sizeof(want), err) < 0 ||
                              visitor_save_path(o->conf, o->conf->node, o->conf->domain, visitor,
                                                sizeof(visitor), err) < 0 ||
                              (strcmp(o->j.save_file, want) && strcmp(o->j.save_file, visitor))))
        return vd_err_set(err, "%s/journal.json: save_file '%s' is not vdesk's save file %s",
                          o->conf->state_dir, o->j.save_file, want);
    const vd_peer *where = o->j.where[0] ? vd_conf_peer(o->conf, o->j.where) : NULL;
    if (o->j.where[0] && (!where || !where->migrate_uri[0] || !strcmp(o->j.where, o->conf->node)))
        return vd_err_set(err, "%s/journal.json: where '%s' is not a node of %s that takes migrated "
                          "desktops", o->conf->state_dir, o->j.where, o->conf->path);
    for (int i = 0; i < o->j.ndevs; i++)
        if (!conf_device(o->conf, o->j.devs[i].alias) && !vd_shmem_is_alias(o->j.devs[i].alias))
            return vd_err_set(err, "%s/journal.json: device '%s' is not one of [node %s] in %s "
                              "nor a shared memory region's (ua-shm-NAME)",
                              o->conf->state_dir, o->j.devs[i].alias, o->conf->node, o->conf->path);
    return 0;
}

/* The journal cannot be understood: keep it for an admin, and start from
 * what is true. Taking the desktop for present would leave a saved desktop
 * off for good; instead converge() finds it from the VM's state, vdesk's
 * save file, and the devices of vdesk.conf (their XML from the VM's
 * definition). */
static int journal_rebuild(op *o, const vd_err *why, vd_err *err)
{
    char kept[PATH_MAX];
    vd_journal_clear(&o->j);
    if (vd_journal_set_aside(o->conf->state_dir, kept, sizeof(kept), err) < 0 ||
        phase_set(o, VD_RESTORING, err) < 0)
        return vd_err_prefix(err, "%s", why->msg);
    snprintf(o->j.used, sizeof(o->j.used), "unknown");
    snprintf(o->j.step, sizeof(o->j.step), "rebuilt");
    if (save_path(o, o->j.save_file, sizeof(o->j.save_file), err) < 0)
        return -1;
    if (!file_exists(o->j.save_file))
        o->j.save_file[0] = '\0';
    for (int i = 0; i < o->conf->ndevices; i++)
        if (!saved_dev(o, o->conf->devices[i].alias, err))
            return -1;
    drain(o, "vdesk: journal unreadable on %s (%s), kept as %s; desktop %s brought back from what is "
          "true: check it, then 'scontrol update nodename=%s state=resume'", o->conf->node, why->msg,
          kept, o->conf->domain, o->conf->node);
    return vd_journal_save(o->conf->state_dir, &o->j, err);
}

/* The operation's deadline from its budget (engine.h, "Budgets"). */
static void budget_set(op *o, int budget_s)
{
    if (budget_s <= 0)
        return;
    long long ms = (long long)budget_s * 1000, margin = ms / 10 < 5000 ? 5000 : ms / 10;
    o->budget_ms = ms - margin < 3000 ? 3000 : ms - margin;
    o->deadline = o->t0 + o->budget_ms;
}

/* The caller read STATE_DIR/selected before it had the lock; a select
 * that held the lock meanwhile may have switched desktops. The one that
 * runs now is the one to act on: read again, under the lock. */
static int selection_settle(op *o, vd_err *err)
{
    char now[sizeof(o->conf->domain)];
    int rc = vd_conf_selected_read(o->conf->state_dir, now, sizeof(now), err);
    if (rc < 0)
        return -1;
    if (rc == 0)
        snprintf(now, sizeof(now), "%s", vd_conf_default_domain(o->conf));
    if (!strcmp(now, o->conf->domain))
        return 0;
    if (!vd_conf_offers(o->conf, now))
        return vd_err_set(err, "%s/selected chooses desktop %s, which %s does not offer for node %s",
                          o->conf->state_dir, now, o->conf->path, o->conf->node);
    if (!(o->reselected = malloc(sizeof(*o->reselected))))
        return vd_err_set(err, "out of memory");
    *o->reselected = *o->conf;
    snprintf(o->reselected->domain, sizeof(o->reselected->domain), "%s", now);
    o->conf = o->reselected;
    return 0;
}

static int op_begin(op *o, const vd_conf *conf, vd_report *rep, const char *name, unsigned job,
                    int budget_s, int *lock, vd_err *err)
{
    memset(o, 0, sizeof(*o));
    memset(rep, 0, sizeof(*rep));
    o->conf = conf;
    o->rep = rep;
    o->t0 = vd_mono_ms();
    budget_set(o, budget_s);
    o->pci = (vd_pci){ .sys = conf->sysfs_root, .dev = conf->dev_root, .proc = conf->proc_root,
                       .timeout_ms = conf->timeout_unplug * 1000,
                       .persistence = conf->nvidia_persistence, .gpu_vendors = conf->gpu_vendors };
    rep->job = job;
    snprintf(rep->op, sizeof(rep->op), "%s", name);
    long long t = vd_mono_ms();
    int wait_s = o->deadline && o->budget_ms / 3000 < VD_LOCK_WAIT_S ? (int)(o->budget_ms / 3000) : VD_LOCK_WAIT_S;
    if (vd_lock_take(conf->state_dir, wait_s, lock, err) < 0)
        return -1;
    char who[64];
    if (job)
        snprintf(who, sizeof(who), "%s for job %u", name, job);
    else
        snprintf(who, sizeof(who), "%s by hand", name);
    vd_lock_note(*lock, who);
    phase_add(o, "lock", t, 1);
    if (selection_settle(o, err) < 0) {
        vd_lock_release(*lock);
        return -1;
    }
    vd_err why;
    if ((vd_journal_load(conf->state_dir, &o->j, &why) < 0 || journal_check(o, &why) < 0) &&
        journal_rebuild(o, &why, err) < 0) {
        vd_journal_clear(&o->j);
        vd_lock_release(*lock);
        return -1;
    }
    return 0;
}

static int hv_connect(op *o, vd_err *err)
{
    if (o->hv)
        return 0;
    if (vd_hv_open(o->conf->uri, &o->hv, err) == 0)
        return 0;
    drain(o, "vdesk: libvirt unreachable on %s (%s): start the libvirt daemon, run 'vdeskctl recover', "
          "then 'scontrol update nodename=%s state=resume'", o->conf->node, o->conf->uri, o->conf->node);
    return -1;
}

static void op_end(op *o, int lock)
{
    /* The operation after a recovery (a prolog's eviction) has its own
     * outcome: the record keeps both. */
    size_t n = strlen(o->recovered);
    if (n && strncmp(o->rep->outcome, o->recovered, n) != 0) {
        char own[sizeof(o->rep->outcome)];
        snprintf(own, sizeof(own), "%s", o->rep->outcome);
        snprintf(o->rep->outcome, sizeof(o->rep->outcome), "%s; %.300s", o->recovered, own);
    }
    if (o->aside[0]) {
        size_t len = strlen(o->rep->outcome);
        snprintf(o->rep->outcome + len, sizeof(o->rep->outcome) - len, "%s%s", len ? "; " : "",
                 o->aside);
    }
    if (o->lost[0]) {
        snprintf(o->rep->lost, sizeof(o->rep->lost), "%s", o->lost);
        size_t len = strlen(o->rep->outcome);
        snprintf(o->rep->outcome + len, sizeof(o->rep->outcome) - len, "%sLOST: %s", len ? "; " : "",
                 o->lost);
        /* The loss is what an admin must read first, whatever else drained. */
        char before[sizeof(o->rep->drain)];
        snprintf(before, sizeof(before), "%s", o->rep->drain);
        char full[1400];
        snprintf(full, sizeof(full), "vdesk: desktop %s lost data on %s: %.200s; see 'vdeskctl status', "
                 "then 'scontrol update nodename=%s state=resume'%s%.120s", o->conf->domain,
                 o->conf->node, o->lost, o->conf->node, before[0] ? "; also: " : "", before);
        snprintf(o->rep->drain, sizeof(o->rep->drain), "%.*s", (int)sizeof(o->rep->drain) - 1, full);
    }
    o->rep->total_ms = (long)(vd_mono_ms() - o->t0);
    vd_hv_close(o->hv);
    vd_journal_clear(&o->j);
    vd_lock_release(lock);
    free(o->reselected);
    o->reselected = NULL;
}

/* A crash left an operation half done: finish it the only safe way, by
 * bringing the desktop back, before anything else happens. */
static int devices_complete(op *o, vd_err *err);

/* A boot or select killed half way (their steps are journalled at
 * PRESENT): a desktop left running without the devices it was being
 * put aside with gets them back. */
static int lifecycle_settle(op *o, vd_err *err)
{
    vd_dom_state s;
    char was[sizeof(o->j.step)];
    snprintf(was, sizeof(was), "%s", o->j.step);
    if (hv_connect(o, err) < 0 || vd_hv_dom_state(o->hv, o->conf->domain, &s, err) < 0)
        return -1;
    if (s == VD_DOM_RUNNING && devices_complete(o, err) < 0)
        return vd_err_prefix(err, "finishing a boot or select interrupted at step '%s'", was);
    o->j.step[0] = '\0';
    if (vd_journal_save(o->conf->state_dir, &o->j, err) < 0)
        return -1;
    snprintf(o->recovered, sizeof(o->recovered), "finished a boot or select interrupted at step '%.60s'",
             was);
    outcome(o, "%s", o->recovered);
    return 0;
}

/* put_aside's steps: the only ones journalled at PRESENT that leave the
 * desktop running short of its devices (a merge's are journalled there
 * too, and are the next restore's). */
static int aside_interrupted(const op *o)
{
    return o->j.phase == VD_PRESENT &&
           (!strcmp(o->j.step, "managed save") || !strncmp(o->j.step, "unplug ", 7));
}

static int recover_interrupted(op *o, vd_err *err)
{
    if (aside_interrupted(o))
        return lifecycle_settle(o, err);
    if (o->j.phase != VD_EVICTING && o->j.phase != VD_RESTORING)
        return 0;
    char was[sizeof(o->j.step) + 32];
    snprintf(was, sizeof(was), "%s at step '%s'", vd_phase_name(o->j.phase), o->j.step);
    if (hv_connect(o, err) < 0 || converge(o, err) < 0)
        return vd_err_prefix(err, "recovering an operation interrupted while %s", was);
    snprintf(o->recovered, sizeof(o->recovered), "recovered an operation interrupted while %s", was);
    outcome(o, "%s", o->recovered);
    return 0;
}

/* A recovery point matters when the VM stops or leaves the node; a paused
 * guest's disk does not change, and a shrunk one keeps running. */
static int stops_vm(vd_mode m)
{
    return m == VD_MODE_SAVE || m == VD_MODE_SHUTDOWN || m == VD_MODE_MIGRATE;
}

/* Tries the modes of `chain` in order until one frees the node; the disk
 * snapshot is taken before the first mode that stops the VM, wherever it
 * is in the chain. `tried` collects why each failed. */
static int run_chain(op *o, const vd_request *req, const vd_mode *chain, int n, char *tried,
                     size_t size)
{
    int snapped = 0, rc = -1;
    /* The modes get the budget but the third kept for putting it back. */
    o->limit = o->deadline ? o->deadline - o->budget_ms / 3 : 0;
    for (int i = 0; i < n && rc < 0; i++) {
        vd_err why;
        size_t len = strlen(tried);
        if (o->limit && vd_mono_ms() >= o->limit) {
            snprintf(tried + len, size - len, "%sno time left for %s (the rest of the budget, "
                     "PrologEpilogTimeout, is for putting the desktop back)", len ? "; " : "",
                     vd_mode_name(chain[i]));
            break;
        }
        /* What the driver cannot do is refused before anything is done
         * for it (the snapshot included): said, and the chain moves on. */
        if (driver_can(o, vd_policy_mode_needs(chain[i]), vd_mode_name(chain[i]), &why) != 1) {
            if (snprintf(tried + len, size - len, "%s%s", len ? "; " : "", why.msg) >= (int)(size - len))
                memcpy(tried + size - 4, "...", 4);
            continue;
        }
        if (stops_vm(chain[i]) && !snapped++)
            snapshot(o);
        if (apply(o, chain[i], req, &why) == 0) {
            char used[sizeof(o->j.used) + sizeof(o->j.where) + 16];
            snprintf(used, sizeof(used), "%s%s", o->j.where[0] ? "migrated to " : o->j.used, o->j.where);
            outcome(o, "desktop %s %s%s%s", o->conf->domain, used, tried[0] ? " after " : "", tried);
            rc = 0;
        } else if (snprintf(tried + len, size - len, "%s%s failed: %s", len ? "; " : "",
                            vd_mode_name(chain[i]), why.msg) >= (int)(size - len)) {
            memcpy(tried + size - 4, "...", 4);
        }
    }
    o->limit = 0;
    return rc;
}

/* Not here, but running on another node: away already, though the journal
 * did not say so (it was lost, or set aside). It is adopted as migrated
 * there, with every device of vdesk.conf to plug back when it comes home.
 * 1: adopted; 0: it is nowhere else. */
static int away_already(op *o, vd_err *err)
{
    const vd_peer *self = self_peer(o), *at;
    vd_hv *away = NULL;
    vd_dom_info st;
    if (!self || !self->migrate_uri[0] || desktop_find(o, &at, &away, &st, NULL) < 0)
        return 0;
    vd_hv_close(away);
    if (st.state != VD_DOM_RUNNING && st.state != VD_DOM_PAUSED)
        return 0;
    if (phase_set(o, VD_EVICTED, err) < 0)
        return -1;
    snprintf(o->j.used, sizeof(o->j.used), "migrate");
    snprintf(o->j.where, sizeof(o->j.where), "%s", at->name);
    for (int i = 0; i < o->conf->ndevices; i++)
        if (!saved_dev(o, o->conf->devices[i].alias, err))
            return -1;
    outcome(o, "desktop %s is on %s already (the journal had it here): it stays there and comes home "
            "after the job", o->conf->domain, at->name);
    if (vd_journal_save(o->conf->state_dir, &o->j, err) < 0)
        return -1;
    return 1;
}

static int evict_present(op *o, const vd_request *req, vd_err *err)
{
    vd_dom_state s;
    if (vd_hv_dom_state(o->hv, o->conf->domain, &s, err) < 0)
        return -1;
    snprintf(o->j.asked, sizeof(o->j.asked), "%s", vd_mode_name(req->mode));
    o->j.since_ms = vd_now_ms();
    int adopted = s == VD_DOM_MISSING ? away_already(o, err) : 0;
    if (adopted)
        return adopted < 0 ? -1 : devices_to(o, 0, err);
    if (s == VD_DOM_MISSING || s == VD_DOM_SHUTOFF) {
        if (s == VD_DOM_MISSING)
            drain(o, "vdesk: desktop VM %s is not defined on %s (%s): define it or fix %s, then "
                  "'scontrol update nodename=%s state=resume'", o->conf->domain, o->conf->node,
                  o->conf->uri, o->conf->path, o->conf->node);
        if (phase_set(o, VD_EVICTED, err) < 0)
            return -1;
        snprintf(o->j.used, sizeof(o->j.used), "none");
        outcome(o, "desktop VM %s was %s: nothing to evict", o->conf->domain, vd_dom_state_name(s));
        if (vd_journal_save(o->conf->state_dir, &o->j, err) < 0)
            return -1;
        /* Nothing runs the devices: the job gets them, not vfio-pci. */
        return devices_to(o, 0, err);
    }

    if (phase_set(o, VD_EVICTING, err) < 0 || announce(o, "begin", err) < 0)
        return -1;
    vd_mode chain[VD_MODE_COUNT];
    int n = vd_policy_chain(o->conf, req->mode, chain);
    char tried[512] = "";
    if (run_chain(o, req, chain, n, tried, sizeof(tried)) == 0) {
        snprintf(o->j.step, sizeof(o->j.step), "done");
        if (phase_set(o, VD_EVICTED, err) < 0)
            return -1;
        return vd_journal_save(o->conf->state_dir, &o->j, err);
    }
    /* Nothing freed the node: put the desktop back as it was. */
    vd_err back;
    int rc = converge(o, &back);
    drain(o, "vdesk: cannot evict %s on %s (%s)%s%s; fix it, then 'scontrol update nodename=%s state=resume'",
          o->conf->domain, o->conf->node, tried, rc < 0 ? "; putting it back failed too: " : "",
          rc < 0 ? back.msg : "", o->conf->node);
    return vd_err_set(err, "cannot evict desktop %s: %s", o->conf->domain, tried);
}

/* The desktop is away already, but maybe not far enough for this job: it
 * asks for a mode that frees more, or it was given GPUs the desktop still
 * holds (a paused VM keeps all of its devices; a shrunk one keeps the
 * GPUs of the jobs before). Then the desktop goes further, by a mode at
 * least as strong as both the mode used and the one asked. */
/* A second job's escalation failed: the desktop as the jobs before had it
 * (the devices the modes tried took out stay in the journal for restore),
 * unless a mode stopped it on the way; then it is recorded as stopped. */
static int evict_again_undo(op *o, vd_mode used, vd_err *err)
{
    vd_dom_state s = VD_DOM_RUNNING;
    vd_err why;
    if (vd_hv_dom_state(o->hv, o->conf->domain, &s, &why) == 0 && s != VD_DOM_SHUTOFF)
        snprintf(o->j.used, sizeof(o->j.used), "%s", vd_mode_name(used));
    if (s != VD_DOM_SHUTOFF && used == VD_MODE_SUSPEND &&
        (step_begin(o, "suspend", &why) < 0 ||
         step_end(o, "suspend", vd_hv_dom_suspend(o->hv, o->conf->domain, &why)) < 0))
        drain(o, "vdesk: desktop %s runs again on %s while jobs hold the node: %s; 'vdeskctl evict "
              "suspend', then 'scontrol update nodename=%s state=resume'", o->conf->domain,
              o->conf->node, why.msg, o->conf->node);
    if (vd_journal_save(o->conf->state_dir, &o->j, &why) < 0)
        vd_err_prefix(err, "%s; and", why.msg);
    return -1;
}

/* The mode that describes the desktop now: the journal's, unless a second
 * job's escalation was cut short (the journal says stopped, the VM runs):
 * then what the VM shows, and *cut is set. -1: nothing of it is here. */
static int mode_now(op *o, vd_mode *used, int *cut, vd_err *err)
{
    *cut = 0;
    if (vd_mode_parse(o->j.used, used, NULL) == 0 && vd_policy_rank(*used) < 3)
        return 0;
    if (strcmp(o->j.used, "save") && strcmp(o->j.used, "shutdown") && strcmp(o->j.used, "destroy"))
        return -1;   /* off when the first job came ("none") */
    vd_dom_state s;
    if (hv_connect(o, err) < 0 || vd_hv_dom_state(o->hv, o->conf->domain, &s, err) < 0)
        return -2;
    if (s == VD_DOM_SHUTOFF || s == VD_DOM_MISSING)
        return -1;
    *used = s == VD_DOM_PAUSED ? VD_MODE_SUSPEND : VD_MODE_SHRINK;
    *cut = 1;
    return 0;
}

/* The desktop is away already, but maybe not far enough for this job: it
 * asks for a mode that frees more, or it was given GPUs the desktop still
 * holds (a paused VM keeps all of its devices; a shrunk one keeps the
 * GPUs of the jobs before). Then the desktop goes further, by a mode at
 * least as strong as both the mode used and the one asked. */
static int evict_again(op *o, const vd_request *req, vd_err *err)
{
    vd_mode used;
    int cut, rc = mode_now(o, &used, &cut, err);
    if (rc < 0)
        return rc == -1 ? 0 : -1;
    if (hv_connect(o, err) < 0)
        return -1;
    int force = holds_job_gpu(o, req);
    if (!cut && vd_policy_rank(req->mode) <= vd_policy_rank(used) && !force)
        return 0;
    vd_mode chain[VD_MODE_COUNT] = { VD_MODE_AUTO };
    int n = vd_policy_escalation(o->conf, used, req->mode, cut, force, chain);
    /* A paused guest cannot let go of a device: it runs for the unplug. */
    if (used == VD_MODE_SUSPEND &&
        (step_begin(o, "resume", err) < 0 ||
         step_end(o, "resume", vd_hv_dom_resume(o->hv, o->conf->domain, err)) < 0))
        return -1;
    char tried[512] = "";
    if (run_chain(o, req, chain, n, tried, sizeof(tried)) == 0) {
        outcome(o, "desktop %s %s (was %s) for job %u", o->conf->domain, o->j.used, vd_mode_name(used),
                req->job);
        snprintf(o->j.step, sizeof(o->j.step), "done");
        return vd_journal_save(o->conf->state_dir, &o->j, err);
    }
    vd_err_set(err, "desktop %s is away (%s) but cannot go further for job %u: %s", o->conf->domain,
               vd_mode_name(used), req->job, n ? tried : "no mode of the policy frees more");
    return evict_again_undo(o, used, err);
}

int vd_evict(const vd_conf *conf, const vd_request *req, vd_report *rep, vd_err *err)
{
    op o;
    int lock;
    if (op_begin(&o, conf, rep, "evict", req->job, req->budget_s, &lock, err) < 0)
        return -1;
    snprintf(rep->asked, sizeof(rep->asked), "%s", vd_mode_name(req->mode));
    int rc = recover_interrupted(&o, err);
    if (rc == 0 && o.j.phase == VD_EVICTED) {
        rc = evict_again(&o, req, err);
        if (rc == 0)
            rc = vd_journal_add_job(&o.j, req->job, err);
        if (rc == 0)
            rc = vd_journal_save(conf->state_dir, &o.j, err);
        if (rc == 0 && !rep->outcome[0])
            outcome(&o, "desktop already away (%s) for %d job(s)", o.j.used, o.j.njobs);
    } else if (rc == 0) {
        rc = vd_journal_add_job(&o.j, req->job, err);
        if (rc == 0)
            rc = hv_connect(&o, err);
        if (rc == 0)
            rc = evict_present(&o, req, err);
    }
    /* The job wants the whole node: other nodes' desktops leave too. */
    if (rc == 0 && self_peer(&o) && self_peer(&o)->migrate_uri[0] && hv_connect(&o, err) == 0)
        visitors_leave(&o, req);
    snprintf(rep->used, sizeof(rep->used), "%s", o.j.used);
    if (rc < 0 && !rep->drain[0])
        drain(&o, "vdesk: eviction failed on %s: %s; run 'vdeskctl status', then 'scontrol update "
              "nodename=%s state=resume'", conf->node, err->msg, conf->node);
    if (rc < 0)
        outcome(&o, "%s", err->msg);
    op_end(&o, lock);
    return rc;
}

static int restore_locked(op *o, unsigned job, int force, vd_err *err)
{
    if (recover_interrupted(o, err) < 0)
        return -1;
    if (o->j.phase == VD_PRESENT) {
        if (!o->rep->outcome[0])
            outcome(o, "desktop present: nothing to restore");
        return 0;
    }
    snprintf(o->rep->used, sizeof(o->rep->used), "%s", o->j.used);
    /* Away for no job (vd_jobs_reconcile released them): it comes back. */
    if (!force && o->j.njobs > 0 && !vd_journal_has_job(&o->j, job)) {
        outcome(o, "job %u holds no desktop (jobs holding it: %d): nothing to do", job, o->j.njobs);
        return 0;
    }
    if (force)
        o->j.njobs = 0;
    vd_journal_drop_job(&o->j, job);
    if (o->j.njobs > 0) {
        outcome(o, "desktop stays away: %d other job(s) hold the node", o->j.njobs);
        return vd_journal_save(o->conf->state_dir, &o->j, err);
    }
    /* From here on the restore is under way: if it fails (libvirt down,
     * say), the journal says so, and recover or the next prolog finish it. */
    if (phase_set(o, VD_RESTORING, err) < 0 || announce(o, "begin restore", err) < 0)
        return -1;
    int snapped = o->j.snapshot[0] != '\0';
    if (hv_connect(o, err) < 0 || converge(o, err) < 0)
        return -1;
    if (!o->rep->outcome[0] && o->rep->migration.to[0])
        outcome(o, "desktop %s back from %s (was migrate)", o->conf->domain, o->rep->migration.from);
    else if (!o->rep->outcome[0])
        outcome(o, "desktop %s back (was %s)", o->conf->domain, o->rep->used);
    /* The epilog holds the node (and its lock) while it merges: a third of
     * what is left of the budget at most; an unfinished merge is aborted,
     * and the next restore merges again. */
    if (snapped) {
        long long now = vd_mono_ms();
        o->limit = o->deadline > now ? now + (o->deadline - now) / 3 : 0;
        prune(o);
        o->limit = 0;
    }
    return 0;
}

static int restore_op(const vd_conf *conf, unsigned job, int force, const char *name,
                      int budget_s, vd_report *rep, vd_err *err)
{
    op o;
    int lock;
    if (op_begin(&o, conf, rep, name, job, budget_s, &lock, err) < 0)
        return -1;
    int rc = restore_locked(&o, job, force, err);
    if (rc < 0) {
        drain(&o, "vdesk: cannot bring desktop %s back on %s: %s; see 'vdeskctl status', fix, run "
              "'vdeskctl recover', then 'scontrol update nodename=%s state=resume'", conf->domain,
              conf->node, err->msg, conf->node);
        outcome(&o, "%s", err->msg);
    }
    op_end(&o, lock);
    return rc;
}

int vd_restore(const vd_conf *conf, unsigned job, vd_report *rep, vd_err *err)
{
    return restore_op(conf, job, 0, "restore", 0, rep, err);
}

int vd_restore_within(const vd_conf *conf, unsigned job, int budget_s, vd_report *rep, vd_err *err)
{
    return restore_op(conf, job, 0, "restore", budget_s, rep, err);
}

int vd_recover(const vd_conf *conf, int force, vd_report *rep, vd_err *err)
{
    return restore_op(conf, 0, force, "recover", 0, rep, err);
}

/* Of the jobs of journal `j` (a desktop that is away), those `holds`
 * says no longer hold the node, but `except` and 0 (by hand); with
 * `released` (may be NULL) saying which. Asking stops at the first job
 * slurmctld cannot say about: it would not answer for the others either. */
static int jobs_gone(const vd_conf *conf, const vd_journal *j, unsigned except,
                     vd_job_holds_fn holds, unsigned *gone, char *released, size_t size)
{
    int n = 0;
    for (int i = 0; i < j->njobs && j->phase == VD_EVICTED; i++) {
        char state[48];
        vd_err why;
        if (j->jobs[i] == 0 || j->jobs[i] == except)
            continue;
        int h = holds(j->jobs[i], conf->node, state, sizeof(state), &why);
        if (h < 0)
            break;
        if (h > 0)
            continue;
        size_t len = released ? strlen(released) : 0;
        if (released)
            snprintf(released + len, size - len, "%s%u (%s)", n ? ", " : "", j->jobs[i], state);
        gone[n++] = j->jobs[i];
    }
    return n;
}

int vd_jobs_reconcile(const vd_conf *conf, unsigned except, vd_job_holds_fn holds, int wait_s,
                      char *released, size_t size, vd_err *err)
{
    unsigned gone[VD_MAX_JOBS];
    vd_journal j;
    vd_err why;
    int lock;
    released[0] = '\0';
    /* First without the lock: Slurm may be slow, and most of the time
     * there is nothing to release. */
    if (vd_journal_load(conf->state_dir, &j, &why) < 0)
        return 0;   /* the operation that follows sets it aside and rebuilds it */
    int n = jobs_gone(conf, &j, except, holds, gone, NULL, 0);
    vd_journal_clear(&j);
    if (n == 0)
        return 0;
    if (vd_lock_take(conf->state_dir, wait_s, &lock, err) < 0)
        return -1;
    vd_lock_note(lock, "releasing finished jobs");
    /* Then under the lock, on the journal as it is now, asking again: a
     * requeued job may have started here again meanwhile. */
    int rc = vd_journal_load(conf->state_dir, &j, err);
    n = rc == 0 ? jobs_gone(conf, &j, except, holds, gone, released, size) : 0;
    for (int i = 0; i < n; i++)
        vd_journal_drop_job(&j, gone[i]);
    if (rc == 0 && n > 0)
        rc = vd_journal_save(conf->state_dir, &j, err);
    vd_journal_clear(&j);
    vd_lock_release(lock);
    if (rc < 0)
        released[0] = '\0';
    return rc < 0 ? -1 : n;
}

/* --- the desktop in words ----------------------------------------------- */

/* --- lifecycle: the boot unit and vdeskctl select ------------------------
 *
 * vdesk, not libvirt, starts a node's desktop (docs/design.md, "Boot and
 * selection"): at boot it finishes what a crash interrupted, leaves the
 * desktop away while jobs hold the node, and otherwise starts the selected
 * desktop, from its managed save if it has one. */

/* libvirt's autostart would boot a desktop next to its save file: off for
 * every desktop the node offers. */
static int autostart_off(op *o, const char *dom, vd_err *err)
{
    int on = 0;
    vd_dom_state s;
    if (vd_hv_dom_state(o->hv, dom, &s, err) < 0)
        return -1;
    if (s == VD_DOM_MISSING)
        return 0;
    if (vd_hv_dom_autostart(o->hv, dom, &on, err) < 0)
        return -1;
    if (!on)
        return 0;
    if (vd_hv_dom_autostart_set(o->hv, dom, 0, err) < 0)
        return vd_err_prefix(err, "vdesk starts %s itself, libvirt's autostart must be off", dom);
    note_aside(o, "turned libvirt's autostart of %s off (vdesk starts it)", dom);
    return 0;
}

static int offered_autostart_off(op *o, vd_err *err)
{
    if (autostart_off(o, vd_conf_default_domain(o->conf), err) < 0)
        return -1;
    for (int i = 0; i < o->conf->ndesktops; i++)
        if (autostart_off(o, o->conf->desktops[i], err) < 0)
            return -1;
    return 0;
}

/* Every device of vdesk.conf, and every shared memory device, that the
 * running desktop's definition has and its live XML lacks goes in: started
 * from a managed save made without them (select), or left so by a crash in
 * the middle of a select. */
static int devices_complete(op *o, vd_err *err)
{
    char shm[VD_SHMEM_MAX][64];
    int nshm = 0;
    if (shmem_defined(o, o->conf->domain, shm, &nshm, err) < 0)
        return -1;
    for (int i = 0; i < o->conf->ndevices + nshm; i++) {
        int defined = i >= o->conf->ndevices;   /* a shared memory device: read from the definition */
        vd_saved_dev sd = { .xml = NULL };
        snprintf(sd.alias, sizeof(sd.alias), "%s",
                 defined ? shm[i - o->conf->ndevices] : o->conf->devices[i].alias);
        if (!defined && vd_hv_dev_defined(o->hv, o->conf->domain, sd.alias, &defined, err) < 0)
            return -1;
        int rc = defined ? replug_one(o, &sd, err) : 0;
        free(sd.xml);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* The selected desktop runs, whole: booted, restored from its managed save
 * or resumed, whichever its state calls for. */
static int desktop_up(op *o, vd_err *err)
{
    const char *dom = o->conf->domain;
    vd_dom_info st;
    int saved = 0;
    back_fail f;
    if (settle(o, &st, err) < 0)
        return -1;
    if (st.state == VD_DOM_MISSING)
        return vd_err_set(err, "desktop %s is not defined on %s: define it, or choose another with "
                          "'vdeskctl select DESKTOP'", dom, vd_hv_uri(o->hv));
    if (st.state == VD_DOM_SHUTOFF && vd_hv_dom_managed_save_has(o->hv, dom, &saved, err) < 0)
        return -1;
    if (bring_back_vm(o, &f, err) < 0 || devices_complete(o, err) < 0)
        return -1;
    o->j.step[0] = '\0';
    if (vd_journal_save(o->conf->state_dir, &o->j, err) < 0)
        return -1;
    outcome(o, "desktop %s %s", dom, st.state == VD_DOM_RUNNING ? "runs"
            : st.state != VD_DOM_SHUTOFF ? "resumed" : saved ? "restored from its managed save" : "booted");
    return 0;
}

/* "12, 13 (by hand)": who keeps the desktop away. */
static void holders(const vd_journal *j, char *buf, size_t size)
{
    buf[0] = '\0';
    for (int i = 0, n = 0; i < j->njobs; i++) {
        size_t len = strlen(buf);
        n = j->jobs[i] ? snprintf(buf + len, size - len, "%sjob %u", len ? ", " : "", j->jobs[i])
                       : snprintf(buf + len, size - len, "%san eviction by hand", len ? ", " : "");
        if (n < 0 || (size_t)n >= size - len)
            break;
    }
}

static int boot_locked(op *o, vd_err *err)
{
    if (recover_interrupted(o, err) < 0)
        return -1;
    if (hv_connect(o, err) < 0 || offered_autostart_off(o, err) < 0)
        return -1;
    if (o->j.phase == VD_PRESENT)
        return desktop_up(o, err);
    /* A reboot during a job: its epilog brings the desktop back, and the
     * reconcile before this released the jobs Slurm no longer runs. */
    if (o->j.njobs > 0) {
        char who[256];
        holders(&o->j, who, sizeof(who));
        outcome(o, "desktop %s stays away (was %s) for %s: the last one's end brings it back "
                "('vdeskctl restore' for one by hand)", o->conf->domain, o->j.used, who);
        return 1;
    }
    return restore_locked(o, 0, 0, err);
}

int vd_boot(const vd_conf *conf, vd_report *rep, vd_err *err)
{
    op o;
    int lock;
    if (op_begin(&o, conf, rep, "boot", 0, 0, &lock, err) < 0)
        return -1;
    int rc = boot_locked(&o, err);
    if (rc < 0)
        outcome(&o, "%s", err->msg);
    op_end(&o, lock);
    return rc;
}

/* One device out of the desktop that select puts aside, if it is in. */
static int unplug_aside(op *o, const char *alias, vd_err *err)
{
    const char *dom = o->conf->domain;
    int present = 0;
    char step[80];
    snprintf(step, sizeof(step), "unplug %s", alias);
    if (vd_hv_dev_present(o->hv, dom, alias, &present, err) < 0)
        return -1;
    if (!present)
        return 0;
    if (step_begin(o, step, err) < 0)
        return -1;
    return step_end(o, step, vd_hv_dev_detach(o->hv, dom, alias, o->conf->timeout_unplug * 1000, NULL, err));
}

/* The desktop the node stops booting keeps its session in a managed save;
 * its devices come out first (a passed-through device cannot be saved) and
 * go back in if the save fails. */
static int put_aside(op *o, vd_err *err)
{
    const char *dom = o->conf->domain;
    vd_dom_state s;
    if (vd_hv_dom_state(o->hv, dom, &s, err) < 0)
        return -1;
    if (s == VD_DOM_SHUTOFF || s == VD_DOM_MISSING)
        return 0;
    if (driver_can(o, VD_CAN_MANAGED_SAVE, "keeping its session in a managed save", err) != 1)
        return -1;
    /* The shared memory devices too: QEMU saves no peer's, and a master's
     * would bring its old copy back over the region ("Shared memory"). */
    char shm[VD_SHMEM_MAX][64];
    int nshm = 0;
    int rc = shmem_defined(o, dom, shm, &nshm, err);
    for (int i = 0; i < o->conf->ndevices + nshm && rc == 0; i++)
        rc = unplug_aside(o, i < o->conf->ndevices ? o->conf->devices[i].alias : shm[i - o->conf->ndevices],
                          err);
    if (rc == 0 && step_begin(o, "managed save", err) == 0 &&
        step_end(o, "managed save", vd_hv_dom_managed_save(o->hv, dom, o->conf->timeout_save * 1000,
                                                           err)) == 0)
        return 0;
    vd_err why;
    if (devices_complete(o, &why) < 0)
        vd_err_prefix(err, "%s; and its devices did not all go back in: %s", dom, why.msg);
    return -1;
}

/* The node boots `to` from now on, and runs it now instead of the current
 * one; a `to` that does not start gives the node its old desktop back. */
static int switch_to(op *o, const vd_conf *to, vd_err *err)
{
    const vd_conf *from = o->conf;
    if (put_aside(o, err) < 0)
        return vd_err_prefix(err, "%s was not put aside, it runs on", from->domain);
    o->conf = to;
    vd_err first;
    if (vd_conf_selected_write(to, to->domain, &first) == 0 && autostart_off(o, to->domain, &first) == 0 &&
        desktop_up(o, &first) == 0) {
        char up[200];
        snprintf(up, sizeof(up), "%.199s", o->rep->outcome);
        outcome(o, "selected %s: %s; %s kept in its managed save", to->domain, up, from->domain);
        return 0;
    }
    /* `to` may run although it did not come up whole (a device that would
     * not attach, say): its session goes back to its managed save, or it
     * would run on unselected, never evicted, holding the devices. */
    vd_err why;
    if (put_aside(o, &why) < 0) {
        vd_err was = first;
        vd_err_set(&first, "%.500s; and it could not be put aside again: %.400s", was.msg, why.msg);
    }
    o->conf = from;
    if (vd_conf_selected_write(from, from->domain, &why) < 0 || desktop_up(o, &why) < 0)
        return vd_err_set(err, "%s did not start (%s), and %s did not come back either: %s", to->domain,
                          first.msg, from->domain, why.msg);
    return vd_err_set(err, "%s did not start: %s; %s runs again and stays selected", to->domain,
                      first.msg, from->domain);
}

static int select_locked(op *o, vd_conf *to, vd_err *err)
{
    vd_dom_state s;
    if (recover_interrupted(o, err) < 0 || hv_connect(o, err) < 0)
        return -1;
    if (o->j.phase != VD_PRESENT) {
        char who[256];
        holders(&o->j, who, sizeof(who));
        return vd_err_set(err, "desktop %s is away for %s: select another once it is back", o->conf->domain,
                          who[0] ? who : "no job (run 'vdeskctl recover')");
    }
    if (!strcmp(to->domain, o->conf->domain)) {
        if (autostart_off(o, to->domain, err) < 0)
            return -1;
        return desktop_up(o, err);
    }
    if (vd_hv_dom_state(o->hv, to->domain, &s, err) < 0)
        return -1;
    if (s == VD_DOM_MISSING)
        return vd_err_set(err, "desktop %s is not defined on %s: define it first", to->domain,
                          vd_hv_uri(o->hv));
    return switch_to(o, to, err);
}

int vd_select(const vd_conf *conf, const char *name, vd_report *rep, vd_err *err)
{
    if (!vd_conf_offers(conf, name))
        return vd_err_set(err, "node %s does not offer desktop %s: add it to desktops = in [node %s] "
                          "of %s", conf->node, name, conf->node, conf->path);
    vd_conf *to = malloc(sizeof(*to));
    if (!to)
        return vd_err_set(err, "out of memory");
    *to = *conf;
    snprintf(to->domain, sizeof(to->domain), "%s", name);
    op o;
    int lock;
    if (op_begin(&o, conf, rep, "select", 0, 0, &lock, err) < 0) {
        free(to);
        return -1;
    }
    int rc = select_locked(&o, to, err);
    if (rc < 0)
        outcome(&o, "%s", err->msg);
    op_end(&o, lock);
    free(to);
    return rc;
}

/* --- recovery points by hand: vdeskctl snapshot, revert, flatten, discard --
 *
 * snap.h keeps the rules for the disk's layers; these operations add the
 * node's: they run under the node's lock, on the daemon that has the
 * desktop now (home, or the node it migrated to: its layers are on shared
 * storage, in home's snapshot directory), and never change a disk whose
 * memory is in a save file (vdesk's or libvirt's managed save), since that
 * memory belongs to the disk as it is. */

typedef struct snap_op {
    op o;
    int lock;
    const char *dom;   /* the desktop acted on */
    int current;       /* it is the node's selected desktop, the journal's */
    vd_hv *hv;         /* the daemon that has it: o.hv, or a peer's */
    vd_hv *peer;       /* that peer's connection, closed at the end */
    vd_dom_state state;
} snap_op;

/* The recovery point of the eviction the desktop is away for: the
 * restore's fallback, which no merge or discard may touch meanwhile. */
static const char *snap_protected(const snap_op *s)
{
    return s->current && s->o.j.phase != VD_PRESENT && s->o.j.snapshot[0] ? s->o.j.snapshot : NULL;
}

static int snap_locate(snap_op *s, vd_err *err)
{
    op *o = &s->o;
    vd_dom_info st;
    const vd_peer *at = NULL;
    s->hv = o->hv;
    if (vd_hv_dom_info(o->hv, s->dom, &st, err) < 0)
        return -1;
    if (st.state == VD_DOM_MISSING && s->current && o->conf->migrate_uri[0] &&
        desktop_find(o, &at, &s->peer, &st, err) == 0)
        s->hv = s->peer;
    if (st.state == VD_DOM_MISSING)
        return vd_err_set(err, "desktop %s is not defined on %s%s", s->dom, vd_hv_uri(o->hv),
                          s->current && o->conf->migrate_uri[0] ? " nor on any peer that answers" : "");
    s->state = st.state;
    return 0;
}

/* Its disk must not change under a save of its memory. */
static int snap_disk_free(snap_op *s, vd_err *err)
{
    op *o = &s->o;
    int managed = 0;
    if (s->current && o->j.phase == VD_EVICTED && o->j.save_file[0] && !o->j.where[0])
        return vd_err_set(err, "desktop %s is saved (%s) for the job that holds node %s: its memory belongs "
                          "to the disk as it is; try again once the job is over", s->dom, o->j.save_file,
                          o->conf->node);
    if (s->state == VD_DOM_SHUTOFF && vd_hv_dom_managed_save_has(s->hv, s->dom, &managed, err) < 0)
        return -1;
    if (managed)
        return vd_err_set(err, "desktop %s is kept in libvirt's managed save (put aside by 'vdeskctl "
                          "select'): its memory belongs to the disk as it is; select it first", s->dom);
    return 0;
}

static int snap_begin(snap_op *s, const vd_conf *conf, const char *dom, const char *name, vd_report *rep,
                      vd_err *err)
{
    memset(s, 0, sizeof(*s));
    memset(rep, 0, sizeof(*rep));
    snprintf(rep->op, sizeof(rep->op), "%s", name);
    if (dom && !vd_conf_offers(conf, dom))
        return vd_err_set(err, "node %s has no desktop %s: its desktops are domain = and desktops = in "
                          "[node %s] of %s", conf->node, dom, conf->node, conf->path);
    if (op_begin(&s->o, conf, rep, name, 0, 0, &s->lock, err) < 0)
        return -1;
    op *o = &s->o;
    s->dom = dom ? dom : o->conf->domain;
    s->current = !strcmp(s->dom, o->conf->domain);
    if (recover_interrupted(o, err) == 0 && hv_connect(o, err) == 0 &&
        driver_can(o, VD_CAN_SNAPSHOT, "snapshots", err) == 1 && vd_snapshot_dir_check(o->conf->snapshot_dir, err) == 0 &&
        snap_locate(s, err) == 0)
        return 0;
    outcome(o, "%s", err->msg);
    vd_hv_close(s->peer);
    op_end(o, s->lock);
    return -1;
}

static int snap_end(snap_op *s, int rc, vd_err *err)
{
    if (rc < 0)
        outcome(&s->o, "%s", err->msg);
    vd_hv_close(s->peer);
    op_end(&s->o, s->lock);
    return rc;
}

int vd_snapshot_take(const vd_conf *conf, const char *dom, vd_snap_origin origin, const char *name,
                     vd_report *rep, vd_err *err)
{
    snap_op s;
    vd_snap made;
    if (snap_begin(&s, conf, dom, "snapshot", rep, err) < 0)
        return -1;
    op *o = &s.o;
    long long t = vd_mono_ms();
    /* The timer's snapshot skips a disk that does not change (off) or must
     * not (saved): every hour of a long job is no failed unit. */
    vd_err why;
    int saved = origin == VD_SNAP_SCHEDULE && snap_disk_free(&s, &why) < 0;
    if (saved || (origin == VD_SNAP_SCHEDULE && s.state == VD_DOM_SHUTOFF)) {
        outcome(o, "no scheduled snapshot of %s: %s", s.dom, saved ? why.msg : "it is off, its disk does not change");
        return snap_end(&s, 0, err);
    }
    int rc = snap_disk_free(&s, err) < 0 ? -1 : vd_snap_take(s.hv, s.dom, o->conf->snapshot_dir, origin, 0,
                                                               name, &made, err);
    phase_add(o, "snapshot", t, rc >= 0);
    if (rc >= 0)
        outcome(o, "snapshot %s of %s (%s, %s)%s%s", made.name[0] ? made.name : made.layer, s.dom,
                vd_snap_origin_name(origin), vd_hv_uri(s.hv), rc == 1 ? ": not labelled: " : "",
                rc == 1 ? err->msg : "");
    /* A scheduled snapshot applies retention too: the timer is what keeps
     * a desktop that never meets a job from growing its chain forever. */
    if (rc >= 0 && origin == VD_SNAP_SCHEDULE && s.state == VD_DOM_RUNNING) {
        int merged = 0;
        vd_snap_keep keep = keep_of(o->conf);
        t = vd_mono_ms();
        int m = vd_snap_flatten(s.hv, s.dom, o->conf->snapshot_dir, &keep, snap_protected(&s),
                                o->conf->timeout_save * 1000, &merged, &why);
        phase_add(o, "prune snapshots", t, m == 0);
        if (m < 0)
            note_aside(o, "retention not applied: %s", why.msg);
        else if (merged)
            note_aside(o, "%d older snapshot%s merged (retention)", merged, merged > 1 ? "s" : "");
    }
    return snap_end(&s, rc < 0 ? -1 : 0, err);
}

/* A running desktop is stopped before its disk goes back: cleanly if it
 * will (timeout_shutdown), else switched off, which the kept state then
 * holds as a power cut would. */
static int snap_stop(snap_op *s, vd_err *err)
{
    op *o = &s->o;
    long long t = vd_mono_ms();
    if (s->state == VD_DOM_SHUTOFF)
        return 0;
    vd_err why;
    int rc = s->state == VD_DOM_RUNNING
                 ? vd_hv_dom_shutdown(s->hv, s->dom, o->conf->timeout_shutdown * 1000, &why) : -1;
    int clean = rc == 0;
    phase_add(o, "shutdown", t, rc == 0);
    if (rc < 0) {
        t = vd_mono_ms();
        rc = vd_hv_dom_destroy(s->hv, s->dom, err);
        phase_add(o, "destroy", t, rc == 0);
    }
    if (rc == 0)
        note_aside(o, "%s was %s: stopped it first (%s)", s->dom, s->state == VD_DOM_RUNNING ? "running" : "paused",
                   clean ? "shut down" : "switched off");
    return rc;
}

static int revert_locked(snap_op *s, const char *name, vd_err *err)
{
    op *o = &s->o;
    vd_snap *v = NULL;
    int n = 0;
    char kept[200];
    if (s->current && o->j.phase != VD_PRESENT)
        return vd_err_set(err, "desktop %s is away (%s): revert it once it is back", s->dom, o->j.used);
    if (s->hv != o->hv)
        return vd_err_set(err, "desktop %s runs on another node: revert it once it is home", s->dom);
    if (snap_disk_free(s, err) < 0 || vd_snap_list(s->hv, s->dom, o->conf->snapshot_dir, &v, &n, err) < 0)
        return -1;
    const vd_snap *to = vd_snap_find(v, n, name);
    int rc = to ? 0 : vd_err_set(err, "desktop %s has no snapshot called %s: 'vdeskctl snapshots %s' lists them",
                                 s->dom, name, s->dom);
    char layer[PATH_MAX];
    if (to)
        snprintf(layer, sizeof(layer), "%s", to->layer);
    free(v);
    int was = s->state;
    long long t = vd_mono_ms();
    if (rc == 0 && snap_stop(s, err) == 0) {
        rc = vd_snap_revert(s->hv, s->dom, o->conf->snapshot_dir, layer, kept, sizeof(kept), err);
        phase_add(o, "revert", t, rc == 0);
        if (rc < 0 && was != VD_DOM_SHUTOFF)
            vd_err_prefix(err, "%s is off now (stopped for the revert), on its disk as it was: "
                          "'vdeskctl boot' starts it", s->dom);
    } else {
        rc = -1;
    }
    if (rc < 0)
        return -1;
    outcome(o, "reverted %s to snapshot %s; the state it had is kept as snapshot %s until 'vdeskctl discard "
            "%s %s'", s->dom, name, kept, s->dom, kept);
    if (was == VD_DOM_SHUTOFF || !s->current)
        return 0;
    char said[sizeof(o->rep->outcome)];
    snprintf(said, sizeof(said), "%s", o->rep->outcome);
    rc = desktop_up(o, err);
    outcome(o, "%.700s; %s", said, rc == 0 ? "started it again" : "it did not start again");
    return rc;
}

int vd_snapshot_revert(const vd_conf *conf, const char *dom, const char *name, vd_report *rep, vd_err *err)
{
    snap_op s;
    if (snap_begin(&s, conf, dom, "revert", rep, err) < 0)
        return -1;
    return snap_end(&s, revert_locked(&s, name, err), err);
}

int vd_snapshot_flatten(const vd_conf *conf, const char *dom, int keep_n, vd_report *rep, vd_err *err)
{
    snap_op s;
    if (snap_begin(&s, conf, dom, "flatten", rep, err) < 0)
        return -1;
    op *o = &s.o;
    vd_snap_keep keep = keep_of(o->conf);
    int merged = 0, rc = 0;
    if (keep_n > 0)
        keep = (vd_snap_keep){ .n = keep_n, .age_ms = 0 };
    if (s.state != VD_DOM_RUNNING && s.state != VD_DOM_PAUSED)
        rc = vd_err_set(err, "desktop %s is not running: flatten merges layers of a running desktop (a live "
                        "block commit); start it first", s.dom);
    long long t = vd_mono_ms();
    if (rc == 0) {
        rc = vd_snap_flatten(s.hv, s.dom, o->conf->snapshot_dir, &keep, snap_protected(&s),
                             o->conf->timeout_save * 1000, &merged, err);
        phase_add(o, "flatten", t, rc == 0);
    }
    if (rc == 0)
        outcome(o, "flattened %s: %d snapshot%s merged, keeping the newest %d%s", s.dom, merged,
                merged == 1 ? "" : "s", keep.n, keep.age_ms ? " and those younger than snapshots_keep_days" : "");
    return snap_end(&s, rc, err);
}

int vd_snapshot_discard(const vd_conf *conf, const char *dom, const char *name, vd_report *rep, vd_err *err)
{
    snap_op s;
    if (snap_begin(&s, conf, dom, "discard", rep, err) < 0)
        return -1;
    op *o = &s.o;
    long long t = vd_mono_ms();
    vd_snap *v = NULL;
    int n = 0;
    int rc = vd_snap_list(s.hv, s.dom, o->conf->snapshot_dir, &v, &n, err);
    const vd_snap *found = rc == 0 ? vd_snap_find(v, n, name) : NULL;
    /* A point of the chain goes by a live block commit. */
    if (found && found->depth > 0 && s.state != VD_DOM_RUNNING && s.state != VD_DOM_PAUSED)
        rc = vd_err_set(err, "snapshot %s is in the disk chain of %s, and merging it away needs the desktop "
                        "running (a live block commit): discard it once the desktop runs", name, s.dom);
    free(v);
    if (rc == 0)
        rc = vd_snap_discard(s.hv, s.dom, o->conf->snapshot_dir, name, snap_protected(&s),
                             o->conf->timeout_save * 1000, err);
    phase_add(o, "discard", t, rc == 0);
    if (rc == 0)
        outcome(o, "discarded snapshot %s of %s", name, s.dom);
    return snap_end(&s, rc, err);
}

static const char *mode_words(const char *used)
{
    static const struct { const char *mode, *words; } w[] = {
        { "suspend", "suspended" }, { "save", "saved" }, { "shutdown", "shut down" },
        { "shrink", "shrunk" }, { "migrate", "migrated" }, { "destroy", "destroyed" },
        { "none", "off (it was not running)" },
    };
    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
        if (!strcmp(used, w[i].mode))
            return w[i].words;
    return "away";
}

void vd_desktop_describe(const vd_conf *conf, char *buf, size_t size)
{
    vd_journal j;
    vd_err err;
    if (vd_journal_load(conf->state_dir, &j, &err) < 0) {
        snprintf(buf, size, "desktop %s unknown: journal unreadable, see vdeskctl status", conf->domain);
        return;
    }
    int n = 0;
    if (j.phase == VD_PRESENT)
        n = snprintf(buf, size, "desktop %s here", conf->domain);
    else if (j.phase == VD_EVICTED && j.where[0])
        n = snprintf(buf, size, "desktop %s on %s for", conf->domain, j.where);
    else if (j.phase == VD_EVICTED)
        n = snprintf(buf, size, "desktop %s %s for", conf->domain, mode_words(j.used));
    else
        n = snprintf(buf, size, "desktop %s %s at step '%s' (see vdeskctl status)", conf->domain,
                     vd_phase_name(j.phase), j.step);
    for (int i = 0; j.phase == VD_EVICTED && i < j.njobs && n > 0 && (size_t)n < size; i++)
        n += j.jobs[i] ? snprintf(buf + n, size - (size_t)n, "%s job %u", i ? "," : "", j.jobs[i])
                       : snprintf(buf + n, size - (size_t)n, "%s an admin", i ? "," : "");
    if (j.phase == VD_EVICTED && !j.njobs && n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, " no job (vdeskctl recover brings it back)");
    vd_journal_clear(&j);
}
