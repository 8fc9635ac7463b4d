/* SPDX-License-Identifier: MIT */
/*
 * engine.c - the desktop's state machine, top to bottom.
 *
 *   PRESENT --evict--> EVICTING --(steps)--> EVICTED --last job out--> RESTORING --> PRESENT
 *
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
#include <json-c/json.h>
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

#define LOCK_WAIT_S 600

/* One operation in progress: what every step needs. */
typedef struct op {
    const vd_conf *conf;
    vd_journal j;
    vd_hv *hv;
    vd_report *rep;
    long long t0;
    long long t_step; /* when the current step began */
    vd_pci pci;       /* where and how to rebind host PCI devices */
} op;

/* --- small helpers ------------------------------------------------------- */

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void phase_add(op *o, const char *name, long long since, int ok)
{
    vd_report *r = o->rep;
    if (r->nphases == VD_MAX_PHASES)
        return;
    vd_phase_time *p = &r->phases[r->nphases++];
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->ms = (long)(mono_ms() - since);
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

/* Journals `step` as the next thing this operation does. */
static int announce(op *o, const char *step, vd_err *err)
{
    snprintf(o->j.step, sizeof(o->j.step), "%s", step);
    if (vd_journal_save(o->conf->state_dir, &o->j, err) < 0)
        return -1;
    crash_point(step, 0);
    return 0;
}

/* STEP(o, name, err, action): announce the step, take it, time it and put
 * it in the record; evaluates to the action's result. */
static int step_begin(op *o, const char *name, vd_err *err)
{
    o->t_step = mono_ms();
    return announce(o, name, err);
}

static int step_end(op *o, const char *name, int rc)
{
    phase_add(o, name, o->t_step, rc == 0);
    if (rc == 0)
        crash_point(name, 1);
    return rc;
}

#define STEP(o, name, err, action) \
    (step_begin(o, name, err) < 0 ? -1 : step_end(o, name, (action)))

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
        if (dev->pci[0] && STEP(o, step, err, vfio ? group_to_vfio(o, dev, err)
                                                   : group_to_host(o, dev, err)) < 0)
            return -1;
    }
    return 0;
}

static int timeout_ms(int configured_s, const vd_request *req)
{
    int s = req && req->timeout_s && req->timeout_s < configured_s ? req->timeout_s : configured_s;
    return s * 1000;
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
    int idx = gres_index(o, i);
    if (!gpus || !*gpus || idx < 0)
        return 1;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", gpus);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (atoi(t) == idx)
            return 1;
    return 0;
}

static int unplug_one(op *o, const vd_device *dev, int tmo_ms, vd_err *err)
{
    char *xml = NULL;
    if (vd_hv_dev_xml(o->hv, o->conf->domain, dev->alias, &xml, err) < 0)
        return -1;
    vd_saved_dev *sd = &o->j.devs[o->j.ndevs++];
    snprintf(sd->alias, sizeof(sd->alias), "%s", dev->alias);
    sd->xml = xml;   /* journalled with the step: enough to plug it back */
    char step[64];
    snprintf(step, sizeof(step), "unplug %s", dev->alias);
    if (STEP(o, step, err, vd_hv_dev_detach(o->hv, o->conf->domain, dev->alias, tmo_ms, NULL, err)) < 0)
        return -1;
    snprintf(step, sizeof(step), "host %s", dev->alias);
    if (dev->pci[0] && STEP(o, step, err, group_to_host(o, dev, err)) < 0)
        return -1;
    size_t len = strlen(o->rep->devices);
    snprintf(o->rep->devices + len, sizeof(o->rep->devices) - len, "%s%s", len ? "," : "", dev->alias);
    return 0;
}

/* Unplugs the devices the mode must free: all of them, or for shrink only
 * the job's GPUs. Devices already unplugged (an earlier mode) are skipped. */
static int unplug(op *o, const vd_request *req, int gpus_only, vd_err *err)
{
    for (int i = 0; i < o->conf->ndevices; i++) {
        const vd_device *dev = &o->conf->devices[i];
        if (gpus_only && !is_job_gpu(o, i, req->gpus))
            continue;
        int present = 0;
        if (vd_hv_dev_present(o->hv, o->conf->domain, dev->alias, &present, err) < 0)
            return -1;
        if (present && unplug_one(o, dev, timeout_ms(o->conf->timeout_unplug, req), err) < 0)
            return -1;
    }
    return 0;
}

/* Whether the desktop holds a GPU the job was given. */
static int holds_job_gpu(const op *o, const vd_request *req)
{
    if (!req->gpus || !*req->gpus)
        return 0;   /* a job without GPUs takes none from the desktop */
    for (int i = 0; i < o->conf->ndevices; i++)
        if (is_job_gpu(o, i, req->gpus))
            return 1;
    return 0;
}

static int mode_suspend(op *o, const vd_request *req, vd_err *err)
{
    /* A paused VM keeps its passthrough devices: a job given GPUs would get
     * GPUs that are still on vfio-pci. Slurm offers them; vdesk must free them. */
    if (holds_job_gpu(o, req))
        return vd_err_set(err, "suspend keeps the desktop's GPUs, and the job was given GPUs %s",
                          req->gpus);
    return STEP(o, "suspend", err, vd_hv_dom_suspend(o->hv, o->conf->domain, err));
}

static int mode_save(op *o, const vd_request *req, vd_err *err)
{
    if (unplug(o, req, 0, err) < 0)
        return -1;
    if (save_path(o, o->j.save_file, sizeof(o->j.save_file), err) < 0)
        return -1;
    return STEP(o, "save", err, vd_hv_dom_save(o->hv, o->conf->domain, o->j.save_file, err));
}

static int mode_shutdown(op *o, const vd_request *req, vd_err *err)
{
    vd_err why;
    /* The guest may ignore the power button: then cut the power. Its disk
     * keeps what it had written; the snapshot keeps the state before. */
    if (STEP(o, "shutdown", &why, vd_hv_dom_shutdown(o->hv, o->conf->domain,
             timeout_ms(o->conf->timeout_shutdown, req), &why)) < 0 &&
        STEP(o, "destroy", err, vd_hv_dom_destroy(o->hv, o->conf->domain, err)) < 0)
        return -1;
    return devices_to(o, 0, err);
}

static int mode_shrink(op *o, const vd_request *req, vd_err *err)
{
    if (!o->conf->desktop_cores[0])
        return vd_err_set(err, "shrink needs desktop_cores = in [node %s] of %s", o->conf->node, o->conf->path);
    if (unplug(o, req, 1, err) < 0)
        return -1;
    o->j.pinned = 1;
    return STEP(o, "pin", err, vd_hv_dom_pin(o->hv, o->conf->domain, o->conf->desktop_cores, err));
}

static int apply(op *o, vd_mode mode, const vd_request *req, vd_err *err)
{
    snprintf(o->j.used, sizeof(o->j.used), "%s", vd_mode_name(mode));
    switch (mode) {
    case VD_MODE_SUSPEND: return mode_suspend(o, req, err);
    case VD_MODE_SAVE: return mode_save(o, req, err);
    case VD_MODE_SHUTDOWN: return mode_shutdown(o, req, err);
    case VD_MODE_SHRINK: return mode_shrink(o, req, err);
    case VD_MODE_MIGRATE:
        return vd_err_set(err, "migrate is not available in this version of vdesk");
    default:
        return vd_err_set(err, "mode %s cannot be applied", vd_mode_name(mode));
    }
}

/* The modes to try, in order: the one asked (auto: the policy chain), then
 * the rest of the policy chain as fallbacks. */
static int chain_build(const vd_conf *c, vd_mode asked, vd_mode *chain)
{
    int n = 0;
    if (asked != VD_MODE_AUTO)
        chain[n++] = asked;
    for (int i = 0; i < c->npolicy; i++) {
        int dup = 0;
        for (int k = 0; k < n; k++)
            dup |= chain[k] == c->policy[i];
        if (!dup)
            chain[n++] = c->policy[i];
    }
    return n;
}

static void snapshot(op *o)
{
    vd_err why;
    char tag[32];
    snprintf(tag, sizeof(tag), "%lld", vd_now_ms());
    if (vd_mkdirs(o->conf->snapshot_dir, &why) == 0 &&
        STEP(o, "snapshot", &why, vd_hv_disk_snapshot(o->hv, o->conf->domain, o->conf->snapshot_dir,
             tag, o->j.snapshot, sizeof(o->j.snapshot), &why)) == 0)
        return;
    /* The job can still have the node; an admin must fix the directory. */
    o->j.snapshot[0] = '\0';
    drain(o, "vdesk: no snapshot of %s: %s; fix %s, then 'scontrol update nodename=%s state=resume'",
          o->conf->domain, why.msg, o->conf->snapshot_dir, o->conf->node);
}

/* Merges the frozen layers older than the newest `snapshots_keep` into the
 * bottom of `chain` (active layer first, then frozen ones, newest first) and
 * removes the overlay files vdesk made for them. */
static int merge_old_layers(op *o, char **chain, int n, vd_err *err)
{
    int keep = o->conf->snapshots_keep;
    if (vd_hv_disk_commit(o->hv, o->conf->domain, chain[keep], o->conf->timeout_save * 1000, err) < 0)
        return -1;
    size_t dirlen = strlen(o->conf->snapshot_dir);
    for (int i = keep; i < n - 1; i++)
        if (!strncmp(chain[i], o->conf->snapshot_dir, dirlen) && chain[i][dirlen] == '/' &&
            unlink(chain[i]) < 0)
            return vd_err_set(err, "%s: merged, but cannot remove: %s", chain[i], strerror(errno));
    return 0;
}

/* Keeps the disk's chain short while the VM runs. Never fatal: a failure is
 * a failed phase in the record, and the next eviction tries again. */
static void prune(op *o)
{
    vd_err why;
    char **chain = NULL;
    int n = 0;
    long long t = mono_ms();
    if (vd_hv_disk_chain(o->hv, o->conf->domain, &chain, &n, &why) < 0) {
        phase_add(o, "prune snapshots", t, 0);
        return;
    }
    if (n - 1 > o->conf->snapshots_keep)
        STEP(o, "prune snapshots", &why, merge_old_layers(o, chain, n, &why));
    vd_hv_names_free(chain, n);
}

/* --- restore: one convergent function ------------------------------------ */

static int wait_running(op *o, vd_err *err)
{
    vd_dom_state s = VD_DOM_OTHER;
    for (int i = 0; i < 50; i++) {
        if (vd_hv_dom_state(o->hv, o->conf->domain, &s, err) < 0)
            return -1;
        if (s == VD_DOM_RUNNING)
            return 0;
        nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000000 }, NULL);
    }
    return vd_err_set(err, "VM %s is %s, not running, after being brought back", o->conf->domain,
                      vd_dom_state_name(s));
}

static int file_exists(const char *path)
{
    struct stat st;
    return path[0] && stat(path, &st) == 0;
}

/* Brings the VM itself back: from the save file, by booting, or by
 * resuming, whichever its state calls for. A cold boot needs its devices on
 * vfio-pci first; *devices says that this is what failed. */
static int bring_back_vm(op *o, int *devices, vd_err *err)
{
    vd_dom_state s;
    if (vd_hv_dom_state(o->hv, o->conf->domain, &s, err) < 0)
        return -1;
    if (s == VD_DOM_MISSING)
        return vd_err_set(err, "VM %s is not defined on %s any more", o->conf->domain, vd_hv_uri(o->hv));
    if (s == VD_DOM_SHUTOFF && file_exists(o->j.save_file))
        return STEP(o, "restore", err, vd_hv_dom_restore(o->hv, o->j.save_file, err));
    if (s == VD_DOM_SHUTOFF && devices_to(o, 1, err) < 0)
        return *devices = -1;
    if (s == VD_DOM_SHUTOFF)
        return STEP(o, "start", err, vd_hv_dom_start(o->hv, o->conf->domain, err));
    if (s == VD_DOM_PAUSED)
        return STEP(o, "resume", err, vd_hv_dom_resume(o->hv, o->conf->domain, err));
    return 0;
}

/* Plugs back one device the eviction took out, its group on vfio-pci first. */
static int replug_one(op *o, const vd_saved_dev *sd, vd_err *err)
{
    int present = 0;
    if (vd_hv_dev_present(o->hv, o->conf->domain, sd->alias, &present, err) < 0)
        return -1;
    if (present)
        return 0;
    char step[80];
    const vd_device *dev = conf_device(o->conf, sd->alias);
    snprintf(step, sizeof(step), "vfio %s", sd->alias);
    if (dev && dev->pci[0] && STEP(o, step, err, group_to_vfio(o, dev, err)) < 0)
        return -1;
    snprintf(step, sizeof(step), "replug %s", sd->alias);
    return STEP(o, step, err, vd_hv_dev_attach(o->hv, o->conf->domain, sd->alias, sd->xml, err));
}

/* Every device that can come back does, even when one cannot; the first
 * failure is the one reported. */
static int replug(op *o, vd_err *err)
{
    int rc = 0;
    for (int i = 0; i < o->j.ndevs; i++) {
        vd_err one;
        if (replug_one(o, &o->j.devs[i], &one) < 0 && rc == 0)
            rc = vd_err_set(err, "%s", one.msg);
    }
    return rc;
}

/* Restore failed: boot the snapshot taken at eviction instead. The save
 * file and the disk layer written since are kept for an admin. */
static int fall_back_to_snapshot(op *o, vd_err *err)
{
    if (!o->j.snapshot[0])
        return vd_err_set(err, "no snapshot to fall back to");
    vd_dom_state s;
    if (vd_hv_dom_state(o->hv, o->conf->domain, &s, err) < 0)
        return -1;
    if (s != VD_DOM_SHUTOFF && STEP(o, "destroy", err, vd_hv_dom_destroy(o->hv, o->conf->domain, err)) < 0)
        return -1;
    if (file_exists(o->j.save_file)) {
        char kept[PATH_MAX + 32];
        snprintf(kept, sizeof(kept), "%s.failed-%lld", o->j.save_file, vd_now_ms());
        if (rename(o->j.save_file, kept) < 0)
            return vd_err_set(err, "%s: cannot move aside: %s", o->j.save_file, strerror(errno));
        o->j.save_file[0] = '\0';
    }
    char tag[32];
    snprintf(tag, sizeof(tag), "revert-%lld", vd_now_ms());
    if (STEP(o, "revert to snapshot", err, vd_hv_disk_revert(o->hv, o->conf->domain, o->j.snapshot,
             o->conf->snapshot_dir, tag, err)) < 0)
        return -1;
    if (devices_to(o, 1, err) < 0 ||
        STEP(o, "start", err, vd_hv_dom_start(o->hv, o->conf->domain, err)) < 0)
        return -1;
    return wait_running(o, err);
}

/* The VM runs again: its save file is history, and restoring from it
 * later would go back in time. */
static int save_file_drop(op *o, vd_err *err)
{
    if (!o->j.save_file[0])
        return 0;   /* suspend, shrink, a snapshot boot: nothing to journal */
    if (file_exists(o->j.save_file) && unlink(o->j.save_file) < 0)
        return vd_err_set(err, "%s: cannot remove after restore: %s", o->j.save_file, strerror(errno));
    o->j.save_file[0] = '\0';
    return vd_journal_save(o->conf->state_dir, &o->j, err);
}

/* Only a VM that cannot come back is worth its snapshot. A device that
 * cannot (a process holds the GPU, say) leaves the desktop as it is,
 * running without it or, for a cold boot, off, and the journal RESTORING,
 * so that 'vdeskctl recover' finishes the job once the cause is gone. */
static int converge(op *o, vd_err *err)
{
    o->j.phase = VD_RESTORING;
    if (!strcmp(o->j.used, "none") || (!o->j.used[0] && !o->j.ndevs)) {
        /* The VM was not running when the job came, or nothing was done. */
        vd_journal_clear(&o->j);
        return vd_journal_save(o->conf->state_dir, &o->j, err);
    }
    vd_err why;
    int devices = 0, rc = bring_back_vm(o, &devices, &why);
    if (rc < 0 && devices)
        return vd_err_set(err, "%s stays off until its devices can go to it: %s", o->conf->domain,
                          why.msg);
    if (rc == 0)
        rc = wait_running(o, &why);
    if (rc < 0) {
        char first[sizeof(why.msg)];
        snprintf(first, sizeof(first), "%s", why.msg);
        if (fall_back_to_snapshot(o, &why) < 0) {
            vd_err_set(err, "cannot bring %s back: %s; snapshot fallback failed too: %s",
                       o->conf->domain, first, why.msg);
            return -1;   /* the journal stays RESTORING, with everything in it */
        }
        outcome(o, "restore failed (%s); booted the snapshot %s instead", first, o->j.snapshot);
    }
    if (save_file_drop(o, err) < 0)
        return -1;
    rc = replug(o, &why);
    if (rc == 0 && o->j.pinned)
        rc = STEP(o, "unpin", &why, vd_hv_dom_pin(o->hv, o->conf->domain, NULL, &why));
    if (rc < 0)
        return vd_err_set(err, "%s runs again, but not all of it is back: %s", o->conf->domain,
                          why.msg);
    vd_journal_clear(&o->j);
    return vd_journal_save(o->conf->state_dir, &o->j, err);
}

/* --- operations ---------------------------------------------------------- */

static int op_begin(op *o, const vd_conf *conf, vd_report *rep, const char *name, unsigned job,
                    int *lock, vd_err *err)
{
    memset(o, 0, sizeof(*o));
    memset(rep, 0, sizeof(*rep));
    o->conf = conf;
    o->rep = rep;
    o->t0 = mono_ms();
    o->pci = (vd_pci){ .sys = conf->sysfs_root, .dev = conf->dev_root, .proc = conf->proc_root,
                       .timeout_ms = conf->timeout_unplug * 1000,
                       .persistence = conf->nvidia_persistence };
    rep->job = job;
    snprintf(rep->op, sizeof(rep->op), "%s", name);
    long long t = mono_ms();
    if (vd_lock_take(conf->state_dir, LOCK_WAIT_S, lock, err) < 0)
        return -1;
    phase_add(o, "lock", t, 1);
    if (vd_journal_load(conf->state_dir, &o->j, err) < 0) {
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
    o->rep->total_ms = (long)(mono_ms() - o->t0);
    vd_hv_close(o->hv);
    vd_journal_clear(&o->j);
    vd_lock_release(lock);
}

/* A crash left an operation half done: finish it the only safe way, by
 * bringing the desktop back, before anything else happens. */
static int recover_interrupted(op *o, vd_err *err)
{
    if (o->j.phase != VD_EVICTING && o->j.phase != VD_RESTORING)
        return 0;
    char was[96];
    snprintf(was, sizeof(was), "%s at step '%s'", vd_phase_name(o->j.phase), o->j.step);
    if (hv_connect(o, err) < 0 || converge(o, err) < 0)
        return vd_err_prefix(err, "recovering an operation interrupted while %s", was);
    outcome(o, "recovered an operation interrupted while %s", was);
    return 0;
}

static int evict_present(op *o, const vd_request *req, vd_err *err)
{
    vd_dom_state s;
    if (vd_hv_dom_state(o->hv, o->conf->domain, &s, err) < 0)
        return -1;
    snprintf(o->j.asked, sizeof(o->j.asked), "%s", vd_mode_name(req->mode));
    o->j.since_ms = vd_now_ms();
    if (s == VD_DOM_MISSING || s == VD_DOM_SHUTOFF) {
        if (s == VD_DOM_MISSING)
            drain(o, "vdesk: desktop VM %s is not defined on %s (%s): define it or fix %s, then "
                  "'scontrol update nodename=%s state=resume'", o->conf->domain, o->conf->node,
                  o->conf->uri, o->conf->path, o->conf->node);
        o->j.phase = VD_EVICTED;
        snprintf(o->j.used, sizeof(o->j.used), "none");
        outcome(o, "desktop VM %s was %s: nothing to evict", o->conf->domain, vd_dom_state_name(s));
        return vd_journal_save(o->conf->state_dir, &o->j, err);
    }

    o->j.phase = VD_EVICTING;
    if (announce(o, "begin", err) < 0)
        return -1;
    vd_mode chain[VD_MODE_COUNT];
    int n = chain_build(o->conf, req->mode, chain);
    /* A recovery point matters when the VM stops or leaves the node; a
     * paused guest's disk does not change, and a shrunk one keeps running. */
    int stays = chain[0] == VD_MODE_SHRINK || (chain[0] == VD_MODE_SUSPEND && !holds_job_gpu(o, req));
    if (!stays) {
        snapshot(o);
        prune(o);
    }
    char tried[512] = "";
    for (int i = 0; i < n; i++) {
        vd_err why;
        if (apply(o, chain[i], req, &why) == 0) {
            o->j.phase = VD_EVICTED;
            snprintf(o->j.step, sizeof(o->j.step), "done");
            outcome(o, "desktop %s %s%s%s", o->conf->domain, vd_mode_name(chain[i]),
                    tried[0] ? " after " : "", tried);
            return vd_journal_save(o->conf->state_dir, &o->j, err);
        }
        size_t len = strlen(tried);
        if (snprintf(tried + len, sizeof(tried) - len, "%s%s failed: %s", len ? "; " : "",
                     vd_mode_name(chain[i]), why.msg) >= (int)(sizeof(tried) - len))
            memcpy(tried + sizeof(tried) - 4, "...", 4);
    }
    /* Nothing freed the node: put the desktop back as it was. */
    vd_err back;
    int rc = converge(o, &back);
    drain(o, "vdesk: cannot evict %s on %s (%s)%s%s; fix it, then 'scontrol update nodename=%s state=resume'",
          o->conf->domain, o->conf->node, tried, rc < 0 ? "; putting it back failed too: " : "",
          rc < 0 ? back.msg : "", o->conf->node);
    return vd_err_set(err, "cannot evict desktop %s: %s", o->conf->domain, tried);
}

int vd_evict(const vd_conf *conf, const vd_request *req, vd_report *rep, vd_err *err)
{
    op o;
    int lock;
    if (op_begin(&o, conf, rep, "evict", req->job, &lock, err) < 0)
        return -1;
    snprintf(rep->asked, sizeof(rep->asked), "%s", vd_mode_name(req->mode));
    int rc = recover_interrupted(&o, err);
    if (rc == 0 && o.j.phase == VD_EVICTED) {
        rc = vd_journal_add_job(&o.j, req->job, err);
        if (rc == 0)
            rc = vd_journal_save(conf->state_dir, &o.j, err);
        outcome(&o, "desktop already away (%s) for %d job(s)", o.j.used, o.j.njobs);
    } else if (rc == 0) {
        rc = vd_journal_add_job(&o.j, req->job, err);
        if (rc == 0)
            rc = hv_connect(&o, err);
        if (rc == 0)
            rc = evict_present(&o, req, err);
    }
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
    if (!force && !vd_journal_has_job(&o->j, job)) {
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
    o->j.phase = VD_RESTORING;
    if (announce(o, "begin restore", err) < 0)
        return -1;
    if (hv_connect(o, err) < 0 || converge(o, err) < 0)
        return -1;
    if (!o->rep->outcome[0])
        outcome(o, "desktop %s back (was %s)", o->conf->domain, o->rep->used);
    return 0;
}

static int restore_op(const vd_conf *conf, unsigned job, int force, const char *name,
                      vd_report *rep, vd_err *err)
{
    op o;
    int lock;
    if (op_begin(&o, conf, rep, name, job, &lock, err) < 0)
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
    return restore_op(conf, job, 0, "restore", rep, err);
}

int vd_recover(const vd_conf *conf, int force, vd_report *rep, vd_err *err)
{
    return restore_op(conf, 0, force, "recover", rep, err);
}

/* --- the record ---------------------------------------------------------- */

void vd_report_format(const vd_report *rep, char *buf, size_t size)
{
    int n = snprintf(buf, size, "vdesk %s: asked=%s used=%s devices=%s total=%ldms phases=",
                     rep->op, rep->asked[0] ? rep->asked : "-", rep->used[0] ? rep->used : "-",
                     rep->devices[0] ? rep->devices : "-", rep->total_ms);
    for (int i = 0; i < rep->nphases && n > 0 && (size_t)n < size; i++)
        n += snprintf(buf + n, size - (size_t)n, "%s%s:%ld%s", i ? "," : "", rep->phases[i].name,
                      rep->phases[i].ms, rep->phases[i].ok ? "" : "!");
    if (n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, " outcome=\"%s\"", rep->outcome);
}

char *vd_report_json(const vd_report *rep)
{
    json_object *o = json_object_new_object();
    json_object *phases = json_object_new_array();
    json_object_object_add(o, "time_ms", json_object_new_int64(vd_now_ms()));
    json_object_object_add(o, "job", json_object_new_int64(rep->job));
    json_object_object_add(o, "op", json_object_new_string(rep->op));
    json_object_object_add(o, "asked", json_object_new_string(rep->asked));
    json_object_object_add(o, "used", json_object_new_string(rep->used));
    json_object_object_add(o, "devices", json_object_new_string(rep->devices));
    json_object_object_add(o, "outcome", json_object_new_string(rep->outcome));
    json_object_object_add(o, "drain", json_object_new_string(rep->drain));
    json_object_object_add(o, "total_ms", json_object_new_int64(rep->total_ms));
    for (int i = 0; i < rep->nphases; i++) {
        json_object *p = json_object_new_object();
        json_object_object_add(p, "name", json_object_new_string(rep->phases[i].name));
        json_object_object_add(p, "ms", json_object_new_int64(rep->phases[i].ms));
        json_object_object_add(p, "ok", json_object_new_boolean(rep->phases[i].ok));
        json_object_array_add(phases, p);
    }
    json_object_object_add(o, "phases", phases);
    char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return s;
}
