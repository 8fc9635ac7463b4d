/* SPDX-License-Identifier: MIT */
/*
 * status.c - `vdeskctl status [--json]`: the node's desktop VM, who holds
 * the node's lock, the journal and what Slurm says of its jobs, the devices
 * and the last records.
 *
 * Everything is read once into a status_view; the text and the JSON are two
 * renderings of it. The exit status says whether an admin must act (a
 * health check can use it): 0 nothing to do, 1 something named under
 * "(!)" (JSON: "problems").
 */
#include "status.h"

#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hv.h"
#include "journal.h"
#include "pci.h"
#include "../lib/shmem.h"
#include "slurmapi.h"

#define RECORDS_SHOWN 5
#define PROBLEMS_MAX 16

typedef struct dev_view {
    const vd_device *d;
    int present;       /* in the VM: 1, unplugged: 0, VM not running: -1 */
    char drv[64];      /* host driver, "" for none, only with a host PCI address */
    int wrong;         /* the driver contradicts the journal */
    int held;          /* vdesk keeps its XML to plug it back */
} dev_view;

typedef struct job_view {
    unsigned id;
    int holds;         /* vd_slurm_job_holds: 1, 0, -1 cannot say */
    char state[256];   /* Slurm's word, or why it cannot say */
} job_view;

typedef struct gpu_view {
    const vd_device *d;
    int idx;           /* gres index: the GPU's place in PCI order */
    char drv[64];
    int clash;         /* a job has it while the desktop holds it */
} gpu_view;

typedef struct gres_view {
    int known;         /* slurmctld answered */
    char error[1024];
    vd_slurm_gpus g;
    int gpus_here;     /* GPUs sysfs shows (0: none or unknown) */
    gpu_view gpu[VD_MAX_DEVICES];
    int ngpu;
} gres_view;

/* Where a migrating desktop of the cluster runs, as the daemons say. */
typedef struct desk_view {
    const vd_peer *home;
    char on[64];       /* the node whose daemon has it, "" none found */
    vd_dom_state state;
    int copies;        /* daemons that have it running or paused */
} desk_view;

typedef struct status_view {
    const vd_conf *c;
    int reachable;                 /* libvirt answered */
    char vm_error[1024];
    vd_dom_state state;
    int autostart;                 /* libvirt's flag of the desktop, -1 not known */
    int locked;
    char holder[300];
    int journal_ok;
    char journal_error[1024];
    vd_journal j;
    job_view jobs[VD_MAX_JOBS];
    dev_view devs[VD_MAX_DEVICES];
    int wrong;                     /* devices on the wrong side */
    gres_view gres;
    desk_view desks[VD_MAX_NODES];
    int ndesks;
    char silent[256];              /* peers whose daemons did not answer */
    int disk_locked;               /* 1 locked by virtlockd, 0 not, -1 not known here */
    vd_shmem_member shm[VD_SHMEM_MAX];  /* regions the desktop maps (lib/shmem.h) */
    int nshm;
    unsigned long long vm_kib;     /* the desktop's RAM, 0 not known */
    char problems[PROBLEMS_MAX][600];
    int nproblems;
} status_view;

static void problem(status_view *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(status_view *v, const char *fmt, ...)
{
    if (v->nproblems == PROBLEMS_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->problems[v->nproblems++], sizeof(v->problems[0]), fmt, ap);
    va_end(ap);
}

/* Where a host PCI device should be: with the desktop (vfio-pci) unless the
 * desktop is away in a mode that gave its devices back. */
static int expect_vfio(const vd_journal *j)
{
    return j->phase == VD_PRESENT || !strcmp(j->used, "suspend") || !strcmp(j->used, "none");
}

static void read_vm(status_view *v, vd_hv **hv)
{
    vd_err err;
    v->state = VD_DOM_OTHER;
    v->autostart = -1;
    if (vd_hv_open(v->c->uri, hv, &err) < 0) {
        snprintf(v->vm_error, sizeof(v->vm_error), "%s", err.msg);
        problem(v, "libvirt unreachable at %s: start the libvirt daemon (systemctl start libvirtd); "
                "what vdesk knows of the desktop is below, but not whether its VM runs", v->c->uri);
        return;
    }
    v->reachable = 1;
    if (vd_hv_dom_state(*hv, v->c->domain, &v->state, &err) < 0) {
        snprintf(v->vm_error, sizeof(v->vm_error), "%s", err.msg);
        problem(v, "desktop VM %s: %s; check domain = in %s", v->c->domain, err.msg, v->c->path);
        return;
    }
    if (v->state != VD_DOM_MISSING && vd_hv_dom_autostart(*hv, v->c->domain, &v->autostart, &err) < 0)
        v->autostart = -1;
    if (v->autostart == 1)
        problem(v, "libvirt's autostart is on for %s: at the daemon's start it would boot the desktop "
                "next to a save file and lose that session; run 'vdeskctl boot' (it turns autostart "
                "off and starts the desktop itself)", v->c->domain);
}

/* The journal's jobs as Slurm sees them: one that no longer runs here
 * keeps the desktop away for nothing. */
static void read_jobs(status_view *v)
{
    char gone[400] = "";
    for (int i = 0; i < v->j.njobs && v->j.phase == VD_EVICTED; i++) {
        job_view *jv = &v->jobs[i];
        vd_err err;
        jv->id = v->j.jobs[i];
        if (jv->id == 0) {
            jv->holds = 1;
            snprintf(jv->state, sizeof(jv->state), "evicted by hand: 'vdeskctl restore' brings it back");
            continue;
        }
        jv->holds = vd_slurm_job_holds(jv->id, v->c->node, jv->state, sizeof(jv->state), &err);
        if (jv->holds < 0)
            snprintf(jv->state, sizeof(jv->state), "Slurm cannot say: %.200s", err.msg);
        size_t len = strlen(gone);
        if (jv->holds == 0)
            snprintf(gone + len, sizeof(gone) - len, "%s%u (%s)", len ? ", " : "", jv->id, jv->state);
    }
    if (gone[0])
        problem(v, "job(s) %s no longer run here but hold the desktop away: run 'vdeskctl recover' "
                "(the next job's prolog or epilog also releases them)", gone);
}

/* The journal, and who holds the lock if anyone. An operation that starts
 * between the two reads would look interrupted: an unfinished phase with
 * the lock free is read once more. */
static void load_journal(status_view *v, vd_err *err)
{
    for (int tries = 0;; tries++) {
        v->journal_ok = vd_journal_load(v->c->state_dir, &v->j, err) == 0;
        v->locked = vd_lock_holder(v->c->state_dir, v->holder, sizeof(v->holder));
        int unfinished = v->j.phase == VD_EVICTING || v->j.phase == VD_RESTORING;
        if (!v->journal_ok || !unfinished || v->locked || tries == 1)
            return;
        vd_journal_clear(&v->j);
    }
}

static void read_journal(status_view *v)
{
    vd_err err;
    load_journal(v, &err);
    if (!v->journal_ok) {
        snprintf(v->journal_error, sizeof(v->journal_error), "%s", err.msg);
        problem(v, "journal: %s; %s", err.msg, geteuid() != 0
                ? "run vdeskctl status as root to read it" : "'vdeskctl recover', when no job runs here, sets it aside "
                "and brings the desktop back from its VM, save file and devices");
        return;
    }
    if ((v->j.phase == VD_EVICTING || v->j.phase == VD_RESTORING) && !v->locked)
        problem(v, "interrupted operation: run 'vdeskctl recover'");
    if (v->j.phase == VD_EVICTED && v->j.njobs == 0)
        problem(v, "desktop away for no job: run 'vdeskctl recover' to bring it back");
    read_jobs(v);
}

static void read_device(status_view *v, vd_hv *hv, int i)
{
    const vd_conf *c = v->c;
    dev_view *dv = &v->devs[i];
    vd_err err;
    dv->d = &c->devices[i];
    dv->present = -1;
    if (hv && (v->state == VD_DOM_RUNNING || v->state == VD_DOM_PAUSED) &&
        vd_hv_dev_present(hv, c->domain, dv->d->alias, &dv->present, &err) < 0)
        dv->present = -1;
    for (int k = 0; k < v->j.ndevs; k++)
        dv->held |= !strcmp(v->j.devs[k].alias, dv->d->alias);
    if (!dv->d->pci[0])
        return;
    vd_pci p = { .sys = c->sysfs_root, .dev = c->dev_root, .timeout_ms = 1000,
                 .gpu_vendors = c->gpu_vendors };
    vd_pci_driver(&p, dv->d->pci, dv->drv, sizeof(dv->drv));
    int on_vfio = strcmp(dv->drv, "vfio-pci") == 0;
    dv->wrong = v->journal_ok && on_vfio != expect_vfio(&v->j) && v->j.phase != VD_EVICTING &&
                v->j.phase != VD_RESTORING;
    v->wrong += dv->wrong;
}

/* Slurm's view against the devices': a GPU a job was allocated must not be
 * on vfio-pci (the desktop's), and the gres indices must be the GPUs in PCI
 * order for vdesk to know which GPU a job got. */
static void read_gres(status_view *v)
{
    const vd_conf *c = v->c;
    gres_view *g = &v->gres;
    vd_err err;
    vd_pci p = { .sys = c->sysfs_root, .dev = c->dev_root, .proc = c->proc_root, .timeout_ms = 1000,
                 .gpu_vendors = c->gpu_vendors };
    if (vd_slurm_node_gpus(c->node, &g->g, &err) < 0) {
        snprintf(g->error, sizeof(g->error), "%s", err.msg);
        return;   /* not a contradiction: nothing to compare with */
    }
    g->known = 1;
    vd_pci_gpu_list gpus;
    if (vd_pci_gpus(&p, &gpus, NULL) < 0)
        gpus.n = 0;   /* no sysfs to compare with: only Slurm's side is shown */
    g->gpus_here = gpus.n;
    if (gpus.n > 0 && g->g.configured > 0 && gpus.n != g->g.configured)
        problem(v, "the node has %d GPU(s) but Slurm offers %d: gres indices cannot be matched to "
                "GPUs in PCI order; see 'vdeskctl inventory --slurm'", gpus.n, g->g.configured);
    for (int i = 0; i < c->ndevices; i++) {
        const vd_device *d = &c->devices[i];
        int idx = d->role == VD_ROLE_GPU && d->pci[0] ? vd_pci_gpu_list_index(&gpus, d->pci) : -1;
        if (idx < 0)
            continue;
        gpu_view *e = &g->gpu[g->ngpu++];
        e->d = d;
        e->idx = idx;
        vd_pci_driver(&p, d->pci, e->drv, sizeof(e->drv));
        e->clash = (g->g.used >> idx & 1) && !strcmp(e->drv, "vfio-pci");
        if (e->clash)
            problem(v, "gres gpu index %d (%s, %s) is allocated to a job while the desktop holds it "
                    "on vfio-pci", idx, d->alias, d->pci);
    }
}

/* --- the cluster's migrating desktops ----------------------------------- */

static desk_view *desk_of(status_view *v, const char *dom)
{
    for (int i = 0; i < v->ndesks; i++)
        if (!strcmp(v->desks[i].home->domain, dom))
            return &v->desks[i];
    return NULL;
}

/* One peer's daemon: which of the desktops it has, in what state. */
static void read_peer(status_view *v, const vd_peer *p)
{
    vd_hv *hv = NULL;
    vd_err err;
    char **names = NULL;
    int n = 0;
    if (vd_hv_open(p->migrate_uri, &hv, &err) < 0 || vd_hv_dom_list(hv, &names, &n, &err) < 0) {
        size_t len = strlen(v->silent);
        snprintf(v->silent + len, sizeof(v->silent) - len, "%s%s", len ? ", " : "", p->name);
        vd_hv_close(hv);
        return;
    }
    for (int i = 0; i < n; i++) {
        desk_view *d = desk_of(v, names[i]);
        vd_dom_state s;
        if (!d || vd_hv_dom_state(hv, names[i], &s, &err) < 0)
            continue;
        int active = s == VD_DOM_RUNNING || s == VD_DOM_PAUSED;
        d->copies += active;
        if (active || !d->on[0]) {
            snprintf(d->on, sizeof(d->on), "%s", p->name);
            d->state = s;
        }
    }
    vd_hv_names_free(names, n);
    vd_hv_close(hv);
}

/* Every desktop of a node that migrates, found on the daemons of all such
 * nodes: `vdeskctl status` on any node says where each one is. */
static void read_desktops(status_view *v)
{
    const vd_conf *c = v->c;
    if (!c->migrate_uri[0])
        return;
    for (int i = 0; i < c->npeers; i++)
        if (c->peers[i].migrate_uri[0])
            v->desks[v->ndesks++] = (desk_view){ .home = &c->peers[i], .state = VD_DOM_MISSING };
    for (int i = 0; i < c->npeers; i++)
        if (c->peers[i].migrate_uri[0])
            read_peer(v, &c->peers[i]);
    for (int i = 0; i < v->ndesks; i++)
        if (v->desks[i].copies > 1)
            problem(v, "desktop %s runs on %d nodes at once: its disk is not protected by libvirt's "
                    "lock manager; see admin.md, \"Live migration\"", v->desks[i].home->domain,
                    v->desks[i].copies);
}

/* Whether a running VM's disk (`path`) has a POSIX write lock held by
 * virtlockd: libvirt's lock manager then refuses a second start of it
 * anywhere the lock is seen. -1: cannot tell. */
static int disk_locked_by_virtlockd(const char *path)
{
    struct stat st;
    FILE *f = stat(path, &st) == 0 ? fopen("/proc/locks", "r") : NULL;
    if (!f)
        return -1;
    char line[256];
    int locked = 0;
    while (!locked && fgets(line, sizeof(line), f)) {
        unsigned long long ino;
        int pid;
        char kind[16], comm[32] = "", p[64];
        if (sscanf(line, "%*s %15s %*s %*s %d %*x:%*x:%llu", kind, &pid, &ino) != 3 ||
            strcmp(kind, "POSIX") || ino != (unsigned long long)st.st_ino)
            continue;
        snprintf(p, sizeof(p), "/proc/%d/comm", pid);
        FILE *c = fopen(p, "r");
        if (c && fgets(comm, sizeof(comm), c))
            locked = !strncmp(comm, "virtlockd", 9);
        if (c)
            fclose(c);
    }
    fclose(f);
    return locked;
}

static void read_disk_lock(status_view *v, vd_hv *hv)
{
    char **chain = NULL;
    int n = 0;
    vd_err err;
    v->disk_locked = -1;
    if (!hv || !v->c->migrate_uri[0] || (v->state != VD_DOM_RUNNING) ||
        vd_hv_disk_chain(hv, v->c->domain, &chain, &n, &err) < 0)
        return;
    v->disk_locked = n > 0 ? disk_locked_by_virtlockd(chain[0]) : -1;
    if (v->disk_locked == 0)
        problem(v, "the disk of %s (%s) is not locked by virtlockd: a second copy of a migrating "
                "desktop could start on it; set lock_manager = \"lockd\" in qemu.conf and run "
                "virtlockd (admin.md, \"Live migration\")", v->c->domain, chain[0]);
    vd_hv_names_free(chain, n);
}

/* The regions the desktop maps: memory of the desktops' side of the node
 * beyond the VM's own RAM (docs/admin.md, "Shared memory between desktops"). */
static void read_shmem(status_view *v, vd_hv *hv)
{
    vd_err err;
    if (!v->reachable || v->state == VD_DOM_MISSING || v->vm_error[0])
        return;
    if (vd_shmem_of_desktop(hv, v->c->domain, v->shm, VD_SHMEM_MAX, &v->nshm, &err) < 0)
        problem(v, "shared memory of %s: %s", v->c->domain, err.msg);
    if (vd_hv_dom_memory_kib(hv, v->c->domain, &v->vm_kib, &err) < 0)
        v->vm_kib = 0;
}

static unsigned long long shmem_bytes(const status_view *v)
{
    unsigned long long sum = 0;
    for (int i = 0; i < v->nshm; i++)
        sum += v->shm[i].size;
    return sum;
}

static void status_read(status_view *v, const vd_conf *c)
{
    vd_hv *hv = NULL;
    memset(v, 0, sizeof(*v));
    v->c = c;
    read_vm(v, &hv);
    read_journal(v);
    for (int i = 0; i < c->ndevices; i++)
        read_device(v, hv, i);
    if (v->wrong)
        problem(v, "%d device(s) on the wrong side: %s; run 'vdeskctl recover', or check what "
                "rebound them", v->wrong, expect_vfio(&v->j)
                ? "the desktop should hold them on vfio-pci"
                : "the jobs should have them on their host drivers");
    read_gres(v);
    read_shmem(v, hv);
    read_disk_lock(v, hv);
    read_desktops(v);
    vd_hv_close(hv);
}

/* --- text ---------------------------------------------------------------- */

static const char *presence(int present)
{
    return present == 1 ? "in the VM" : present == 0 ? "unplugged" : "VM not running";
}

static void text_vm(const status_view *v)
{
    const vd_conf *c = v->c;
    printf("node %s, config %s\n", c->node, c->path);
    if (!v->reachable)
        printf("VM %s: libvirt unreachable: %s\n", c->domain, v->vm_error);
    else if (v->vm_error[0])
        printf("VM %s: %s\n", c->domain, v->vm_error);
    else
        printf("VM %s on %s: %s\n", c->domain, c->uri, vd_dom_state_name(v->state));
    if (c->ndesktops || strcmp(c->domain, vd_conf_default_domain(c))) {
        printf("selected: %s (vdeskctl select; default %s; offered:", c->domain, vd_conf_default_domain(c));
        printf(" %s", vd_conf_default_domain(c));
        for (int i = 0; i < c->ndesktops; i++)
            if (strcmp(c->desktops[i], vd_conf_default_domain(c)))
                printf(", %s", c->desktops[i]);
        printf(")\n");
    }
    if (v->locked)
        printf("lock: held by %s\n", v->holder);
}

static void text_shmem(const status_view *v)
{
    char a[32], b[32], t[32];
    if (!v->nshm)
        return;
    printf("shared memory:");
    for (int i = 0; i < v->nshm; i++)
        printf("%s %s %s (%s, %s)", i ? "," : "", v->shm[i].name, vd_shmem_size_str(v->shm[i].size, a, sizeof(a)),
               vd_shmem_role_name(v->shm[i].role), v->shm[i].live ? "live" : "when it runs");
    if (v->vm_kib)
        printf("; desktop side: RAM %s + regions %s = %s", vd_shmem_size_str(v->vm_kib << 10, a, sizeof(a)),
               vd_shmem_size_str(shmem_bytes(v), b, sizeof(b)),
               vd_shmem_size_str((v->vm_kib << 10) + shmem_bytes(v), t, sizeof(t)));
    printf("\n");
}

static json_object *json_shmem(const status_view *v)
{
    json_object *a = json_object_new_array();
    for (int i = 0; i < v->nshm; i++) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(v->shm[i].name));
        json_object_object_add(o, "bytes", json_object_new_int64((int64_t)v->shm[i].size));
        json_object_object_add(o, "role", json_object_new_string(vd_shmem_role_name(v->shm[i].role)));
        json_object_object_add(o, "live", json_object_new_boolean(v->shm[i].live));
        json_object_array_add(a, o);
    }
    return a;
}

/* A copy of `s` fit for a terminal: the journal is not trusted to hold
 * only what vdesk wrote. */
static const char *shown(const char *s, char *buf, size_t size)
{
    size_t i = 0;
    for (; s[i] && i + 1 < size; i++)
        buf[i] = (unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f ? '?' : s[i];
    buf[i] = '\0';
    return buf;
}

static void text_journal(const status_view *v)
{
    const vd_journal *j = &v->j;
    char b1[PATH_MAX], b2[PATH_MAX];
    if (!v->journal_ok) {
        printf("journal: %s\n", v->journal_error);
        return;
    }
    printf("desktop: %s", vd_phase_name(j->phase));
    if (j->phase != VD_PRESENT)
        printf(" (mode %s, step '%s', %d job(s):", j->used[0] ? shown(j->used, b1, sizeof(b1)) : "-",
               shown(j->step, b2, sizeof(b2)), j->njobs);
    for (int i = 0; i < j->njobs && j->phase != VD_PRESENT; i++)
        printf(" %u", j->jobs[i]);
    printf("%s\n", j->phase != VD_PRESENT ? ")" : "");
    if ((j->phase == VD_EVICTING || j->phase == VD_RESTORING) && v->locked)
        printf("  operation in progress (%s): wait for it\n", v->holder);
    else if (j->phase == VD_EVICTING || j->phase == VD_RESTORING)
        printf("  interrupted operation: run 'vdeskctl recover'\n");
    for (int i = 0; i < j->njobs && j->phase == VD_EVICTED; i++)
        printf("  job %u: %s%s\n", v->jobs[i].id, v->jobs[i].state,
               v->jobs[i].holds == 0 ? " (!) no longer holds the node" : "");
    if (j->where[0])
        printf("  on %s (migrated there; it comes home when the last job ends)\n",
               shown(j->where, b1, sizeof(b1)));
    if (j->save_file[0])
        printf("  save file: %s\n", shown(j->save_file, b1, sizeof(b1)));
    if (j->snapshot[0])
        printf("  snapshot: %s\n", shown(j->snapshot, b1, sizeof(b1)));
}

static void text_desktops(const status_view *v)
{
    if (!v->ndesks)
        return;
    printf("desktops (where each node's libvirt daemon says they are):\n");
    for (int i = 0; i < v->ndesks; i++) {
        const desk_view *d = &v->desks[i];
        if (!d->on[0])
            printf("  %-14s home %-8s not found%s\n", d->home->domain, d->home->name,
                   v->silent[0] ? " (a node that does not answer may have it)" : "");
        else
            printf("  %-14s home %-8s %s on %s%s\n", d->home->domain, d->home->name,
                   vd_dom_state_name(d->state), d->on, strcmp(d->on, d->home->name) ? " (away)" : "");
    }
    if (v->silent[0])
        printf("  no answer from the daemons of: %s\n", v->silent);
    if (v->disk_locked >= 0)
        printf("  disk of %s: %s\n", v->c->domain, v->disk_locked ? "locked by virtlockd"
                                                                  : "NOT locked by virtlockd (!)");
}

static void text_devices(const status_view *v)
{
    printf("devices:\n");
    for (int i = 0; i < v->c->ndevices; i++) {
        const dev_view *dv = &v->devs[i];
        char host[96] = "";
        if (dv->d->pci[0])
            snprintf(host, sizeof(host), ", host: %s%s", dv->drv[0] ? dv->drv : "no driver",
                     dv->wrong ? " (!)" : "");
        printf("  %-5s %-12s %-13s %s%s%s\n", vd_role_name(dv->d->role), dv->d->alias,
               dv->d->pci[0] ? dv->d->pci : "(no host PCI)", presence(dv->present), host,
               dv->held ? " (vdesk holds its XML to plug it back)" : "");
    }
    if (v->wrong)
        printf("  (!) %d device(s) on the wrong side: %s; run 'vdeskctl recover', or check what "
               "rebound them\n", v->wrong, expect_vfio(&v->j)
               ? "the desktop should hold them on vfio-pci"
               : "the jobs should have them on their host drivers");
}

static void text_gres(const status_view *v)
{
    const gres_view *g = &v->gres;
    if (!g->known) {
        printf("slurm: %s\n", g->error);
        return;
    }
    printf("slurm: %s offers %d GPU(s) as gres, jobs hold", v->c->node, g->g.configured);
    for (int i = 0; i < 64; i++)
        if (g->g.used >> i & 1)
            printf(" %d", i);
    printf("%s\n", g->g.used ? "" : " none");
    if (g->gpus_here > 0 && g->g.configured > 0 && g->gpus_here != g->g.configured)
        printf("  (!) the node has %d GPU(s) but Slurm offers %d: gres indices cannot be matched to "
               "GPUs in PCI order; see 'vdeskctl inventory --slurm'\n", g->gpus_here, g->g.configured);
    for (int i = 0; i < g->ngpu; i++)
        printf("  gres gpu index %d = %s (%s): %s, host: %s%s\n", g->gpu[i].idx, g->gpu[i].d->alias,
               g->gpu[i].d->pci, g->g.used >> g->gpu[i].idx & 1 ? "allocated to a job" : "free",
               g->gpu[i].drv[0] ? g->gpu[i].drv : "no driver",
               g->gpu[i].clash ? " (!) a job has it while the desktop holds it" : "");
}

typedef char record_line[4096];

/* The last RECORDS_SHOWN lines of records.jsonl, oldest first, in a new
 * array (caller frees); *n is how many, -1 when there is no file yet. */
static record_line *last_records(const char *state_dir, int *n, char *path, size_t size)
{
    record_line *ring = calloc(2 * RECORDS_SHOWN, sizeof(record_line)), *out;
    char line[sizeof(record_line)];
    int total = 0;
    snprintf(path, size, "%s/records.jsonl", state_dir);
    *n = -1;
    FILE *f = ring ? fopen(path, "r") : NULL;
    if (!f)
        return ring;
    while (fgets(line, sizeof(line), f))
        memcpy(ring[total++ % RECORDS_SHOWN], line, sizeof(line));
    fclose(f);
    *n = total < RECORDS_SHOWN ? total : RECORDS_SHOWN;
    out = ring + RECORDS_SHOWN;   /* the second half: the same lines in order */
    for (int i = 0; i < *n; i++)
        memcpy(out[i], ring[(total - *n + i) % RECORDS_SHOWN], sizeof(record_line));
    memmove(ring, out, sizeof(record_line) * (size_t)*n);
    return ring;
}

static void text_records(const status_view *v)
{
    char path[PATH_MAX + 16];
    int n;
    record_line *r = last_records(v->c->state_dir, &n, path, sizeof(path));
    if (n < 0)
        printf("records: none in %s (none yet, or logrotate just moved them to its .1)\n", path);
    else
        printf("last %d records (%s):\n", n, path);
    for (int i = 0; r && i < n; i++) {
        r[i][strcspn(r[i], "\n")] = '\0';
        printf("  %s\n", shown(r[i], r[i], sizeof(r[i])));
    }
    free(r);
}

static void text_problems(const status_view *v)
{
    /* Those the sections above flag in place are not repeated. */
    for (int i = 0; i < v->nproblems; i++)
        if (!strstr(v->problems[i], "interrupted operation") && !strstr(v->problems[i], "wrong side") &&
            !strstr(v->problems[i], "gres gpu index") && !strstr(v->problems[i], "but Slurm offers"))
            printf("(!) %s\n", v->problems[i]);
}

/* --- JSON ---------------------------------------------------------------- */

static void add_str(json_object *o, const char *key, const char *value)
{
    json_object_object_add(o, key, json_object_new_string(value));
}

static json_object *json_vm(const status_view *v)
{
    json_object *o = json_object_new_object();
    add_str(o, "domain", v->c->domain);
    add_str(o, "uri", v->c->uri);
    json_object_object_add(o, "libvirt_reachable", json_object_new_boolean(v->reachable));
    add_str(o, "state", v->reachable && !v->vm_error[0] ? vd_dom_state_name(v->state) : "unknown");
    add_str(o, "error", v->vm_error);
    add_str(o, "default", vd_conf_default_domain(v->c));
    json_object *offered = json_object_new_array();
    json_object_array_add(offered, json_object_new_string(vd_conf_default_domain(v->c)));
    for (int i = 0; i < v->c->ndesktops; i++)
        if (strcmp(v->c->desktops[i], vd_conf_default_domain(v->c)))
            json_object_array_add(offered, json_object_new_string(v->c->desktops[i]));
    json_object_object_add(o, "offered", offered);
    json_object_object_add(o, "autostart", v->autostart < 0 ? NULL : json_object_new_boolean(v->autostart));
    return o;
}

static json_object *json_journal(const status_view *v)
{
    json_object *o = json_object_new_object(), *jobs = json_object_new_array();
    const vd_journal *j = &v->j;
    json_object_object_add(o, "readable", json_object_new_boolean(v->journal_ok));
    add_str(o, "error", v->journal_error);
    add_str(o, "desktop", v->journal_ok ? vd_phase_name(j->phase) : "unknown");
    add_str(o, "mode", j->used);
    add_str(o, "step", j->step);
    add_str(o, "where", j->where);
    for (int i = 0; i < j->njobs; i++) {
        json_object *jo = json_object_new_object();
        json_object_object_add(jo, "id", json_object_new_int64(j->jobs[i]));
        int known = j->phase == VD_EVICTED;
        json_object_object_add(jo, "holds_node", known && v->jobs[i].holds >= 0
                               ? json_object_new_boolean(v->jobs[i].holds) : NULL);
        add_str(jo, "slurm", known ? v->jobs[i].state : "");
        json_object_array_add(jobs, jo);
    }
    json_object_object_add(o, "jobs", jobs);
    add_str(o, "save_file", j->save_file);
    add_str(o, "snapshot", j->snapshot);
    return o;
}

static json_object *json_devices(const status_view *v)
{
    json_object *a = json_object_new_array();
    for (int i = 0; i < v->c->ndevices; i++) {
        const dev_view *dv = &v->devs[i];
        json_object *o = json_object_new_object();
        add_str(o, "role", vd_role_name(dv->d->role));
        add_str(o, "alias", dv->d->alias);
        add_str(o, "pci", dv->d->pci);
        add_str(o, "in_vm", presence(dv->present));
        add_str(o, "host_driver", dv->drv);
        json_object_object_add(o, "wrong_side", json_object_new_boolean(dv->wrong));
        json_object_object_add(o, "xml_held", json_object_new_boolean(dv->held));
        json_object_array_add(a, o);
    }
    return a;
}

static json_object *json_gres(const status_view *v)
{
    const gres_view *g = &v->gres;
    json_object *o = json_object_new_object(), *used = json_object_new_array();
    json_object_object_add(o, "known", json_object_new_boolean(g->known));
    add_str(o, "error", g->error);
    json_object_object_add(o, "gpus_offered", json_object_new_int(g->g.configured));
    for (int i = 0; i < 64; i++)
        if (g->g.used >> i & 1)
            json_object_array_add(used, json_object_new_int(i));
    json_object_object_add(o, "indices_held", used);
    return o;
}

static json_object *json_records(const status_view *v)
{
    char path[PATH_MAX + 16];
    int n;
    json_object *a = json_object_new_array();
    record_line *r = last_records(v->c->state_dir, &n, path, sizeof(path));
    for (int i = 0; r && i < n; i++) {
        json_object *o = json_tokener_parse(r[i]);
        json_object_array_add(a, o ? o : json_object_new_string(r[i]));
    }
    free(r);
    return a;
}

static json_object *json_desktops(const status_view *v)
{
    json_object *a = json_object_new_array();
    for (int i = 0; i < v->ndesks; i++) {
        const desk_view *d = &v->desks[i];
        json_object *o = json_object_new_object();
        add_str(o, "domain", d->home->domain);
        add_str(o, "home", d->home->name);
        json_object_object_add(o, "on", d->on[0] ? json_object_new_string(d->on) : NULL);
        add_str(o, "state", d->on[0] ? vd_dom_state_name(d->state) : "not found");
        json_object_array_add(a, o);
    }
    return a;
}

static int print_json(const status_view *v)
{
    json_object *o = json_object_new_object(), *p = json_object_new_array();
    add_str(o, "node", v->c->node);
    add_str(o, "config", v->c->path);
    add_str(o, "version", VD_VERSION);
    json_object_object_add(o, "vm", json_vm(v));
    json_object_object_add(o, "lock_holder", v->locked ? json_object_new_string(v->holder) : NULL);
    json_object_object_add(o, "journal", json_journal(v));
    json_object_object_add(o, "devices", json_devices(v));
    json_object_object_add(o, "slurm_gres", json_gres(v));
    json_object_object_add(o, "records", json_records(v));
    json_object_object_add(o, "desktops", json_desktops(v));
    json_object_object_add(o, "shared_memory", json_shmem(v));
    json_object_object_add(o, "desktop_side_bytes", v->vm_kib ? json_object_new_int64((int64_t)
                           ((v->vm_kib << 10) + shmem_bytes(v))) : NULL);
    json_object_object_add(o, "disk_locked", v->disk_locked < 0 ? NULL
                                             : json_object_new_boolean(v->disk_locked));
    for (int i = 0; i < v->nproblems; i++)
        json_object_array_add(p, json_object_new_string(v->problems[i]));
    json_object_object_add(o, "problems", p);
    int rc = puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY)) < 0 ? -1 : 0;
    json_object_put(o);
    return rc;
}

int cmd_status(const vd_conf *c, int json)
{
    status_view *v = calloc(1, sizeof(*v));
    if (!v) {
        fprintf(stderr, "vdeskctl status: out of memory\n");
        return 1;
    }
    status_read(v, c);
    int rc = 0;
    if (json) {
        rc = print_json(v);
    } else {
        text_vm(v);
        text_shmem(v);
        text_journal(v);
        text_devices(v);
        text_desktops(v);
        text_gres(v);
        text_records(v);
        text_problems(v);
    }
    int problems = v->nproblems;
    vd_journal_clear(&v->j);
    free(v);
    return rc < 0 || problems ? 1 : 0;
}
