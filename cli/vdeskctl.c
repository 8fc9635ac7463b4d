/* SPDX-License-Identifier: MIT */
/*
 * vdeskctl - the admin's tool for the desktop VM of a node (vdeskctl(8)).
 *
 *   vdeskctl [--conf FILE] [--node NAME] status
 *   vdeskctl [--conf FILE] check-config
 *   vdeskctl [--conf FILE] [--node NAME] evict MODE
 *   vdeskctl [--conf FILE] [--node NAME] restore [--force]
 *   vdeskctl [--conf FILE] [--node NAME] recover
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "conf.h"
#include "engine.h"
#include "hv.h"
#include "inventory.h"
#include "journal.h"
#include "pci.h"
#include "slurmapi.h"

static int usage(FILE *f)
{
    fputs("usage: vdeskctl [--conf FILE] [--node NAME] COMMAND\n"
          "  status              the node's desktop VM, journal, devices and last records\n"
          "  check-config        check vdesk.conf (every node's section) without touching anything\n"
          "  evict MODE          make the desktop leave by hand (suspend, save, shutdown, shrink, auto)\n"
          "  restore [--force]   bring it back; --force also releases jobs that still hold the node\n"
          "  recover             finish or roll back an operation a crash interrupted\n"
          "  inventory [--json | --slurm [--desktop-cores N]] [--topology SRC]\n"
          "            [--sysfs DIR --dev DIR --proc DIR]\n"
          "                      GPUs, HCAs, VFs, IOMMU groups, drivers, locality; --slurm: gres.conf\n"
          "                      lines and the desktop's cores (works without a vdesk.conf)\n"
          "The configuration is --conf, else $VDESK_CONF, else " VD_CONF_DEFAULT ";\n"
          "the node is --node, else $SLURMD_NODENAME, else the short hostname.\n", f);
    return f == stderr ? 2 : 0;
}

/* Where a host PCI device should be: with the desktop (vfio-pci) unless the
 * desktop is away in a mode that gave its devices back. */
static int expect_vfio(const vd_journal *j)
{
    return j->phase == VD_PRESENT || !strcmp(j->used, "suspend") || !strcmp(j->used, "none");
}

/* Prints one device; returns 1 if its driver contradicts the journal. */
static int print_device(const vd_conf *c, vd_hv *hv, const vd_journal *j, const vd_device *d)
{
    int present = -1, held = 0, wrong = 0;
    vd_err err;
    if (hv && vd_hv_dev_present(hv, c->domain, d->alias, &present, &err) < 0)
        present = -1;
    for (int k = 0; k < j->ndevs; k++)
        held |= !strcmp(j->devs[k].alias, d->alias);
    char host[96] = "";
    if (d->pci[0]) {
        vd_pci p = { .sys = c->sysfs_root, .dev = c->dev_root, .timeout_ms = 1000,
                     .gpu_vendors = c->gpu_vendors };
        char drv[64];
        vd_pci_driver(&p, d->pci, drv, sizeof(drv));
        int on_vfio = strcmp(drv, "vfio-pci") == 0;
        wrong = on_vfio != expect_vfio(j) && j->phase != VD_EVICTING && j->phase != VD_RESTORING;
        snprintf(host, sizeof(host), ", host: %s%s", drv[0] ? drv : "no driver", wrong ? " (!)" : "");
    }
    printf("  %-5s %-12s %-13s %s%s%s\n", vd_role_name(d->role), d->alias,
           d->pci[0] ? d->pci : "(no host PCI)",
           present == 1 ? "in the VM" : present == 0 ? "unplugged" : "VM not running", host,
           held ? " (vdesk holds its XML to plug it back)" : "");
    return wrong;
}

static int print_devices(const vd_conf *c, vd_hv *hv, const vd_journal *j)
{
    int wrong = 0;
    for (int i = 0; i < c->ndevices; i++)
        wrong += print_device(c, hv, j, &c->devices[i]);
    if (wrong)
        printf("  (!) %d device(s) on the wrong side: %s; run 'vdeskctl recover', or check what "
               "rebound them\n", wrong, expect_vfio(j)
               ? "the desktop should hold them on vfio-pci"
               : "the jobs should have them on their host drivers");
    return wrong;
}

/* Slurm's view against the devices': a GPU a job was allocated must not be
 * on vfio-pci (the desktop's), and the gres indices must be the GPUs in PCI
 * order for vdesk to know which GPU a job got. Returns the problems found. */
static int print_slurm_gpus(const vd_conf *c)
{
    vd_slurm_gpus g;
    vd_err err;
    vd_pci p = { .sys = c->sysfs_root, .dev = c->dev_root, .proc = c->proc_root, .timeout_ms = 1000,
                 .gpu_vendors = c->gpu_vendors };
    if (vd_slurm_node_gpus(c->node, &g, &err) < 0) {
        printf("slurm: %s\n", err.msg);
        return 0;   /* not a contradiction: nothing to compare with */
    }
    vd_pci_gpu_list gpus;
    if (vd_pci_gpus(&p, &gpus, NULL) < 0)
        gpus.n = 0;   /* no sysfs to compare with: only Slurm's side is shown */
    int wrong = 0;
    printf("slurm: %s offers %d GPU(s) as gres, jobs hold", c->node, g.configured);
    for (int i = 0; i < 64; i++)
        if (g.used >> i & 1)
            printf(" %d", i);
    printf("%s\n", g.used ? "" : " none");
    if (gpus.n > 0 && g.configured > 0 && gpus.n != g.configured) {
        printf("  (!) the node has %d GPU(s) but Slurm offers %d: gres indices cannot be matched to "
               "GPUs in PCI order; see 'vdeskctl inventory --slurm'\n", gpus.n, g.configured);
        wrong++;
    }
    for (int i = 0; i < c->ndevices; i++) {
        const vd_device *d = &c->devices[i];
        char drv[64];
        int idx = d->role == VD_ROLE_GPU && d->pci[0] ? vd_pci_gpu_list_index(&gpus, d->pci) : -1;
        if (idx < 0)
            continue;
        vd_pci_driver(&p, d->pci, drv, sizeof(drv));
        int clash = (g.used >> idx & 1) && !strcmp(drv, "vfio-pci");
        printf("  gres gpu index %d = %s (%s): %s, host: %s%s\n", idx, d->alias, d->pci,
               g.used >> idx & 1 ? "allocated to a job" : "free", drv[0] ? drv : "no driver",
               clash ? " (!) a job has it while the desktop holds it" : "");
        wrong += clash;
    }
    return wrong;
}

static void print_records(const char *state_dir, int last)
{
    char path[PATH_MAX + 16], line[4096], ring[5][4096];
    int n = 0;
    snprintf(path, sizeof(path), "%s/records.jsonl", state_dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("records: none yet (%s)\n", path);
        return;
    }
    while (fgets(line, sizeof(line), f))
        snprintf(ring[n++ % last], sizeof(ring[0]), "%s", line);
    fclose(f);
    printf("last %d records (%s):\n", n < last ? n : last, path);
    for (int i = n < last ? 0 : n - last; i < n; i++)
        printf("  %s", ring[i % last]);
}

static int cmd_status(const vd_conf *c)
{
    vd_journal j;
    vd_err err;
    vd_hv *hv = NULL;
    printf("node %s, config %s\n", c->node, c->path);
    vd_dom_state s = VD_DOM_OTHER;
    if (vd_hv_open(c->uri, &hv, &err) < 0)
        printf("VM %s: %s\n", c->domain, err.msg);
    else if (vd_hv_dom_state(hv, c->domain, &s, &err) < 0)
        printf("VM %s: %s\n", c->domain, err.msg);
    else
        printf("VM %s on %s: %s\n", c->domain, c->uri, vd_dom_state_name(s));
    if (vd_journal_load(c->state_dir, &j, &err) < 0) {
        printf("journal: %s\n", err.msg);
        vd_hv_close(hv);
        return 1;
    }
    printf("desktop: %s", vd_phase_name(j.phase));
    if (j.phase != VD_PRESENT)
        printf(" (mode %s, step '%s', %d job(s):", j.used[0] ? j.used : "-", j.step, j.njobs);
    for (int i = 0; i < j.njobs && j.phase != VD_PRESENT; i++)
        printf(" %u", j.jobs[i]);
    printf("%s\n", j.phase != VD_PRESENT ? ")" : "");
    if (j.phase == VD_EVICTING || j.phase == VD_RESTORING)
        printf("  interrupted operation: run 'vdeskctl recover'\n");
    if (j.save_file[0])
        printf("  save file: %s\n", j.save_file);
    if (j.snapshot[0])
        printf("  snapshot: %s\n", j.snapshot);
    printf("devices:\n");
    int wrong = print_devices(c, s == VD_DOM_RUNNING || s == VD_DOM_PAUSED ? hv : NULL, &j);
    wrong += print_slurm_gpus(c);
    print_records(c->state_dir, 5);
    vd_journal_clear(&j);
    vd_hv_close(hv);
    return wrong ? 1 : 0;   /* scripts and health checks can act on it */
}

/* Prints the record and keeps it with the node's others. */
static int print_result(const vd_conf *c, int rc, const vd_report *rep, const vd_err *err)
{
    char line[2048];
    vd_err rerr;
    vd_report_format(rep, line, sizeof(line));
    printf("%s\n", line);
    char *json = vd_report_json(rep);
    if (!json || vd_record_append(c->state_dir, json, &rerr) < 0)
        fprintf(stderr, "vdeskctl: record not kept: %s\n", json ? rerr.msg : "out of memory");
    free(json);
    if (rep->drain[0])
        printf("the node needs an admin: %s\n", rep->drain);
    if (rc < 0)
        fprintf(stderr, "vdeskctl: %s\n", err->msg);
    /* Something of the desktop is gone: like the epilog, leave the node
     * to an admin, whoever ran this (a script, say). */
    if (rep->lost[0]) {
        fprintf(stderr, "vdeskctl: lost: %s\n", rep->lost);
        if (vd_slurm_node_drain(c->node, rep->drain, &rerr) < 0)
            fprintf(stderr, "vdeskctl: %s\n", rerr.msg);
    }
    return rc < 0 || rep->lost[0] ? 1 : 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "conf", required_argument, NULL, 'c' }, { "node", required_argument, NULL, 'n' },
        { "force", no_argument, NULL, 'f' }, { "help", no_argument, NULL, 'h' },
        { "json", no_argument, NULL, 'j' }, { "slurm", no_argument, NULL, 's' },
        { "topology", required_argument, NULL, 't' }, { "sysfs", required_argument, NULL, 'S' },
        { "dev", required_argument, NULL, 'D' }, { "desktop-cores", required_argument, NULL, 'k' },
        { "proc", required_argument, NULL, 'P' },
        { 0, 0, 0, 0 },
    };
    const char *path = vd_conf_path();
    char node[64];
    int force = 0, o;
    inv_opts inv = { .sys = NULL, .dev = NULL, .proc = NULL, .desktop_cores = 2 };
    vd_node_name(node, sizeof(node));
    while ((o = getopt_long(argc, argv, "c:n:fh", opts, NULL)) != -1) {
        switch (o) {
        case 'c': path = optarg; break;
        case 'n': snprintf(node, sizeof(node), "%s", optarg); break;
        case 'f': force = 1; break;
        case 'h': return usage(stdout);
        case 'j': inv.json = 1; break;
        case 's': inv.slurm = 1; break;
        case 't': inv.topology = optarg; break;
        case 'S': inv.sys = optarg; break;
        case 'D': inv.dev = optarg; break;
        case 'P': inv.proc = optarg; break;
        case 'k': inv.desktop_cores = atoi(optarg); break;
        default: return usage(stderr);
        }
    }
    if (optind >= argc)
        return usage(stderr);
    const char *cmd = argv[optind];
    /* The acting commands stop and start the desktop and rebind its devices:
     * without root they fail late, half way, with misleading messages. */
    if ((!strcmp(cmd, "evict") || !strcmp(cmd, "restore") || !strcmp(cmd, "recover")) && geteuid() != 0) {
        fprintf(stderr, "vdeskctl %s: must run as root (it acts on the desktop VM and its "
                "devices); status, check-config and inventory need no root\n", cmd);
        return 1;
    }
    openlog("vdeskctl", LOG_PID, LOG_DAEMON);
    vd_conf conf;
    vd_err err;
    if (!strcmp(cmd, "inventory") && optind + 1 == argc) {
        /* A fresh node has no vdesk.conf yet: use its roots only if it has one. */
        if (vd_conf_load(path, NULL, &conf, &err) < 0)
            vd_conf_defaults(&conf);
        inv.sys = inv.sys ? inv.sys : conf.sysfs_root;
        inv.dev = inv.dev ? inv.dev : conf.dev_root;
        inv.proc = inv.proc ? inv.proc : conf.proc_root;
        inv.gpu_vendors = conf.gpu_vendors;
        return cmd_inventory(&inv);
    }
    if (!strcmp(cmd, "check-config")) {
        if (vd_conf_load(path, NULL, &conf, &err) < 0) {
            fprintf(stderr, "vdeskctl: %s\n", err.msg);
            return 1;
        }
        printf("%s: OK\n", path);
        return 0;
    }
    if (vd_conf_load(path, node, &conf, &err) < 0) {
        fprintf(stderr, "vdeskctl: %s\n", err.msg);
        return 1;
    }
    vd_report rep;
    int rc;
    if (!strcmp(cmd, "status") && optind + 1 == argc)
        return cmd_status(&conf);
    if (!strcmp(cmd, "evict") && optind + 2 == argc) {
        vd_request req = { .job = 0 };
        if (vd_mode_parse(argv[optind + 1], &req.mode, &err) < 0) {
            fprintf(stderr, "vdeskctl: %s\n", err.msg);
            return 2;
        }
        rc = vd_evict(&conf, &req, &rep, &err);
    } else if (!strcmp(cmd, "restore") && optind + 1 == argc) {
        rc = force ? vd_recover(&conf, 1, &rep, &err) : vd_restore(&conf, 0, &rep, &err);
    } else if (!strcmp(cmd, "recover") && optind + 1 == argc) {
        rc = vd_recover(&conf, 0, &rep, &err);
    } else {
        return usage(stderr);
    }
    return print_result(&conf, rc, &rep, &err);
}
