/* SPDX-License-Identifier: MIT */
/*
 * vdeskctl - the admin's tool for the desktop VM of a node (vdeskctl(8)).
 *
 *   vdeskctl [--conf FILE] [--node NAME] status [--json]
 *   vdeskctl [--conf FILE] [--node NAME] check-config [--live]
 *   vdeskctl [--conf FILE] [--node NAME] evict MODE
 *   vdeskctl [--conf FILE] [--node NAME] restore [--force [--even-if-running]]
 *   vdeskctl [--conf FILE] [--node NAME] recover
 *   vdeskctl [--conf FILE] [--node NAME] boot [--wait SECONDS]
 *   vdeskctl [--conf FILE] [--node NAME] select [DESKTOP]
 *   vdeskctl [--conf FILE] [--node NAME] display
 *   vdeskctl [--conf FILE] [--node NAME] profile list | show PROFILE | check [--live] PROFILE
 *   vdeskctl [--conf FILE] [--node NAME] bootstrap PROFILE NAME
 *   vdeskctl [--conf FILE] [--node NAME] snapshot [DESKTOP] [--name NAME | --schedule]
 *   vdeskctl [--conf FILE] [--node NAME] snapshots [DESKTOP] [--json]
 *   vdeskctl [--conf FILE] [--node NAME] revert | discard DESKTOP SNAPSHOT
 *   vdeskctl [--conf FILE] [--node NAME] flatten [DESKTOP] [--keep N]
 *   vdeskctl [--conf FILE] [--node NAME] metrics [--textfile DIR]
 *   vdeskctl [--conf FILE] report [users|nodes|jobs|availability] [--since DATE] [--until DATE]
 *            [--user USER] [--account ACCOUNT] [--node NAME] [--json | --csv | --svg FILE]
 *            [--slurmdbd]
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "engine.h"
#include "hv.h"
#include "check.h"
#include "comment.h"
#include "display.h"
#include "inventory.h"
#include "metrics.h"
#include "profile.h"
#include "report.h"
#include "shmem.h"
#include "status.h"
#include "journal.h"
#include "pci.h"
#include "slurmapi.h"
#include "snapshots.h"

static int usage(FILE *f)
{
    fputs("usage: vdeskctl [--conf FILE] [--node NAME] COMMAND | --version\n"
          "  status [--json]     the node's desktop VM, lock, journal, jobs, devices and last\n"
          "                      records; exits 1 when something needs an admin\n"
          "  check-config [--live]\n"
          "                      check vdesk.conf (every node's section) without touching anything;\n"
          "                      --live: also this node's libvirt, domain, device aliases, PCI\n"
          "                      addresses, IOMMU groups and directories\n"
          "  evict MODE          make the desktop leave by hand (suspend, save, shutdown, shrink, auto)\n"
          "  restore [--force [--even-if-running]]\n"
          "                      bring it back; --force also releases jobs the journal lists,\n"
          "                      but not those Slurm says still run here without --even-if-running\n"
          "  recover             finish or roll back an operation a crash interrupted\n"
          "  boot [--wait SECONDS]\n"
          "                      what vdesk-boot.service runs at boot: recover, release jobs Slurm\n"
          "                      no longer runs, start the selected desktop (from its managed save\n"
          "                      if it has one); a desktop jobs keep away stays away for them;\n"
          "                      --wait: only then, ask Slurm every 10 s until they are gone and\n"
          "                      start it (vdesk-boot-wait.service)\n"
          "  display             where a viewer finds the desktop's screen now (spice://HOST:PORT);\n"
          "                      exits 3 while it runs nowhere, 4 if it has no emulated display\n"
          "  select [DESKTOP]    show, or choose, the desktop this node boots (its domain = or one of\n"
          "                      its desktops =); the current one is kept in a managed save\n"
          "  profile list | show PROFILE | check [--live] PROFILE\n"
          "                      the desktop profiles of profile_dir; show: resolved, with where each\n"
          "                      value comes from; check: files, user-data (cloud-init's schema), devices;\n"
          "                      --live: also whole cores on this machine\n"
          "  bootstrap PROFILE NAME\n"
          "                      make desktop NAME from PROFILE (overlay, cloud-init seed, domain),\n"
          "                      add it to desktops = of the node and boot it (vdesk-profile(5))\n"
          "  snapshot [DESKTOP] [--name NAME | --schedule]\n"
          "                      a recovery point of the desktop's disk now (live, disk only);\n"
          "                      --schedule: as vdesk-snapshot.timer does, then apply the retention\n"
          "  snapshots [DESKTOP] [--json]\n"
          "                      its recovery points: time, origin, size, the one it runs on\n"
          "  revert DESKTOP SNAPSHOT\n"
          "                      its disk back to SNAPSHOT (a running desktop is stopped first and\n"
          "                      started again); the state it had is kept as a snapshot\n"
          "  discard DESKTOP SNAPSHOT\n"
          "                      remove a snapshot (a kept one, or one merged out of the chain)\n"
          "  flatten [DESKTOP] [--keep N]\n"
          "                      merge the running desktop's chain, keeping the newest N points\n"
          "                      (default: snapshots_keep and snapshots_keep_days)\n"
          "  shmem create NAME SIZE | attach NAME DESKTOP [--role master|peer] |\n"
          "        detach NAME DESKTOP | list | destroy NAME\n"
          "                      memory shared by desktop VMs of this host (ivshmem): SIZE a power\n"
          "                      of two (1M); attach live and in the definition (peer by default)\n"
          "  inventory [--json | --slurm [--desktop-cores N] | --glue2 [--since DATE] [--until DATE]]\n"
          "            [--topology SRC] [--sysfs DIR --dev DIR --proc DIR]\n"
          "                      GPUs, HCAs, VFs, IOMMU groups, drivers, locality; --slurm: gres.conf\n"
          "                      lines and the desktop's cores (works without a vdesk.conf); --glue2:\n"
          "                      GLUE 2.1 entities for information discovery, with the share of the\n"
          "                      GPUs the desktop and jobs used (accounting database; last 30 days)\n"
          "  metrics [--textfile DIR]\n"
          "                      the desktop's state and its operations (counts, failures, time per\n"
          "                      phase) as Prometheus metrics; --textfile: into DIR/vdesk.prom for\n"
          "                      node_exporter's textfile collector, replaced atomically\n"
          "  report [users|nodes|jobs|availability] [--since DATE] [--until DATE] [--user USER]\n"
          "         [--account ACCOUNT] [--node NAME] [--json | --csv | --svg FILE] [--slurmdbd]\n"
          "                      what jobs cost and what vdesk did, from the accounting database\n"
          "                      (vdesk-jobcomp): per user and account (GPU-hours, jobs that evicted\n"
          "                      desktops, by mode), per node (evictions, time away, failures, slowest\n"
          "                      phase), per job, or per node where the desktop was (home, away\n"
          "                      for jobs, off when a job found it off); DATE: YYYY-MM-DD[THH:MM[:SS]],\n"
          "                      the job's end;\n"
          "                      --svg FILE: a picture of each node's desktop over the period and\n"
          "                      of GPU-hours per user; --slurmdbd: the jobs from Slurm's own accounting\n"
          "                      (GPUs from its gres/gpu TRES) instead of vdesk's database\n"
          "The configuration is --conf, else $VDESK_CONF, else " VD_CONF_DEFAULT ";\n"
          "the node is --node, else $SLURMD_NODENAME, else the short hostname.\n", f);
    return f == stderr ? 2 : 0;
}

/* inventory --glue2: the period of its shares, then the inventory. */
static int inventory_glue2_run(inv_opts *inv, const vd_conf *conf, const char *node, const report_opts *r)
{
    long long until = (long long)time(NULL), since;
    if (r->until && report_date_parse("inventory", "--until", r->until, &until) < 0)
        return 2;
    since = until - GLUE2_DEFAULT_DAYS * 86400LL;
    if (r->since && report_date_parse("inventory", "--since", r->since, &since) < 0)
        return 2;
    if (until <= since) {
        fprintf(stderr, "vdeskctl inventory: the period ends (%s) before it starts (%s)\n",
                r->until ? r->until : "now", r->since ? r->since : "30 days before");
        return 2;
    }
    inv->g = (glue2_opts){ .conf = conf, .node = node, .since = since, .until = until };
    return cmd_inventory(inv);
}

/* Prints the record and keeps it with the node's others. */
static int print_result(const vd_conf *c, int rc, const vd_report *rep, const vd_err *err)
{
    char line[2048];
    vd_err rerr;
    int kept = vd_record_keep(c->state_dir, rep, line, sizeof(line), &rerr);
    printf("%s\n", line);
    if (kept < 0)
        fprintf(stderr, "vdeskctl: record not kept: %s\n", rerr.msg);
    if (rep->drain[0])
        printf("the node needs an admin: %s\n", rep->drain);
    if (rc < 0)
        fprintf(stderr, "vdeskctl: %s\n", err->msg);
    /* The node's Comment in Slurm follows the desktop, whoever moved it. */
    if (vd_desktop_comment_later(c, &rerr) < 0)
        fprintf(stderr, "vdeskctl: %s\n", rerr.msg);
    /* Something of the desktop is gone: like the epilog, leave the node
     * to an admin, whoever ran this (a script, say). */
    if (rep->lost[0]) {
        fprintf(stderr, "vdeskctl: lost: %s\n", rep->lost);
        if (vd_slurm_node_drain(c->node, rep->drain, &rerr) < 0)
            fprintf(stderr, "vdeskctl: %s\n", rerr.msg);
    }
    return rc < 0 || rep->lost[0] ? 1 : 0;
}

/* A whole number from min to max for option `opt`; what it counts
 * (`unit`) goes into the error: "give whole seconds from 1 to 86400". */
static int int_parse(const char *opt, const char *unit, const char *s, long min, long max, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s < '0' || *s > '9' || *end || errno || v < min || v > max) {
        fprintf(stderr, "vdeskctl: %s '%s': give %s from %ld to %ld\n", opt, s, unit, min, max);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* A node without a section: nothing to show or do there, and no error for
 * status (it runs on every node as a health check). */
static int no_desktop(const char *cmd, const char *node, const vd_err *why)
{
    if (!strcmp(cmd, "status")) {
        printf("node %s: no desktop (%s): vdesk does nothing on this node\n", node, why->msg);
        return 0;
    }
    /* metrics runs from a timer on every node: nothing to say is no error. */
    if (!strcmp(cmd, "metrics"))
        return 0;
    fprintf(stderr, "vdeskctl %s: node %s has no desktop: %s; give --node NAME for another node\n",
            cmd, node, why->msg);
    return 1;
}

/* An operation in progress (a prolog, say) makes this one wait: say so,
 * rather than hang silently. */
static void say_if_waiting(const vd_conf *c, const char *cmd)
{
    char holder[300];
    if (vd_lock_holder(c->state_dir, holder, sizeof(holder)) == 1)
        fprintf(stderr, "vdeskctl %s: waiting up to %d s for the operation that holds the node's "
                "lock (%s)\n", cmd, VD_LOCK_WAIT_S, holder);
}

/* Jobs the journal lists that Slurm no longer runs here let go of the
 * desktop before recover or restore look at it (engine.h). */
static void reconcile(const vd_conf *c, char *note, size_t size)
{
    char released[400];
    vd_err err;
    note[0] = '\0';
    int n = vd_jobs_reconcile(c, 0, vd_slurm_job_holds, VD_LOCK_WAIT_S, released, sizeof(released),
                              &err);
    if (n < 0)
        fprintf(stderr, "vdeskctl: %s\n", err.msg);
    if (n > 0)
        snprintf(note, size, "released job(s) that Slurm no longer runs here: %s", released);
}

/* Whether the journal still lists jobs that keep the desktop away (an
 * eviction by hand is no job: Slurm never releases it, an admin does). */
static int jobs_hold(const vd_conf *c)
{
    vd_journal j;
    vd_err err;
    if (vd_journal_load(c->state_dir, &j, &err) < 0)
        return 0;   /* the next boot rebuilds it and says so */
    int held = 0;
    for (int i = 0; i < j.njobs && j.phase != VD_PRESENT; i++)
        held |= j.jobs[i] != 0;
    vd_journal_clear(&j);
    return held;
}

/* boot --wait: the jobs a reboot left in the journal end in Slurm without
 * an epilog here when slurmctld fails them for the reboot; ask Slurm until
 * they are gone (or an epilog brought the desktop back), then boot again. */
static int boot_wait(const vd_conf *c, int wait_s)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char note[512];
    for (;;) {
        reconcile(c, note, sizeof(note));
        if (!jobs_hold(c))
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec >= wait_s) {
            fprintf(stderr, "vdeskctl boot: jobs still hold node %s after %d s; their epilogs bring "
                    "the desktop back\n", c->node, wait_s);
            return 0;
        }
        sleep(10);
    }
    vd_report rep;
    vd_err err;
    int rc = vd_boot(c, &rep, &err);
    vd_report_prefix(&rep, note);
    return print_result(c, rc < 0 ? -1 : 0, &rep, &err);
}

/* restore --force releases every job: refused while Slurm says one still
 * runs here (or cannot say), which the admin overrides with --even-if-running. */
static int jobs_still_running(const vd_conf *c)
{
    vd_journal j;
    vd_err err;
    char list[1024] = "";
    if (vd_journal_load(c->state_dir, &j, &err) < 0)
        return 0;   /* the restore rebuilds it and says so */
    for (int i = 0; i < j.njobs; i++) {
        char state[64];
        vd_err why;
        if (j.jobs[i] == 0)
            continue;
        int h = vd_slurm_job_holds(j.jobs[i], c->node, state, sizeof(state), &why);
        if (h == 0)
            continue;
        size_t len = strlen(list);
        snprintf(list + len, sizeof(list) - len, "%s%u (%.200s)", len ? ", " : "", j.jobs[i],
                 h > 0 ? state : why.msg);
    }
    vd_journal_clear(&j);
    if (!list[0])
        return 0;
    fprintf(stderr, "vdeskctl restore --force: job(s) still on node %s: %s; the desktop would come "
            "back under them. Cancel them first (scancel), or add --even-if-running\n", c->node, list);
    return 1;
}

/* One offered desktop's line: its state, and what a start would do. */
static void select_show_one(const vd_conf *c, vd_hv *hv, const char *dom)
{
    vd_dom_state s = VD_DOM_OTHER;
    int saved = 0, on = 0;
    vd_err err;
    const char *what = "libvirt unreachable";
    if (hv && vd_hv_dom_state(hv, dom, &s, &err) == 0) {
        what = vd_dom_state_name(s);
        if (s == VD_DOM_MISSING)
            what = "not defined";
        if (s == VD_DOM_SHUTOFF && vd_hv_dom_managed_save_has(hv, dom, &saved, &err) == 0 && saved)
            what = "shut off, session in its managed save";
        if (s != VD_DOM_MISSING && vd_hv_dom_autostart(hv, dom, &on, &err) < 0)
            on = 0;
    }
    printf("%s %-20s %s%s%s\n", strcmp(dom, c->domain) ? " " : "*", dom, what,
           strcmp(dom, vd_conf_default_domain(c)) ? "" : " (default)",
           on ? "; libvirt autostart ON: 'vdeskctl boot' turns it off" : "");
}

/* vdeskctl select: which desktop the node boots, of those it offers. */
static int select_show(const vd_conf *c)
{
    vd_hv *hv = NULL;
    vd_err err;
    if (vd_hv_open(c->uri, &hv, &err) < 0)
        fprintf(stderr, "vdeskctl select: %s\n", err.msg);
    printf("node %s boots %s (* below); 'vdeskctl select DESKTOP' chooses another:\n", c->node,
           c->domain);
    select_show_one(c, hv, vd_conf_default_domain(c));
    for (int i = 0; i < c->ndesktops; i++)
        if (strcmp(c->desktops[i], vd_conf_default_domain(c)))
            select_show_one(c, hv, c->desktops[i]);
    vd_hv_close(hv);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "conf", required_argument, NULL, 'c' }, { "node", required_argument, NULL, 'n' },
        { "force", no_argument, NULL, 'f' }, { "help", no_argument, NULL, 'h' },
        { "json", no_argument, NULL, 'j' }, { "version", no_argument, NULL, 'V' }, { "slurm", no_argument, NULL, 's' },
        { "topology", required_argument, NULL, 't' }, { "sysfs", required_argument, NULL, 'S' },
        { "dev", required_argument, NULL, 'D' }, { "desktop-cores", required_argument, NULL, 'k' },
        { "proc", required_argument, NULL, 'P' }, { "even-if-running", no_argument, NULL, 'E' },
        { "live", no_argument, NULL, 'L' }, { "wait", required_argument, NULL, 'w' },
        { "name", required_argument, NULL, 'N' }, { "schedule", no_argument, NULL, 'C' },
        { "keep", required_argument, NULL, 'K' },
        { "role", required_argument, NULL, 'r' },
        { "since", required_argument, NULL, 1 }, { "until", required_argument, NULL, 2 },
        { "user", required_argument, NULL, 3 }, { "account", required_argument, NULL, 4 },
        { "csv", no_argument, NULL, 5 }, { "textfile", required_argument, NULL, 6 },
        { "svg", required_argument, NULL, 7 }, { "glue2", no_argument, NULL, 8 },
        { "slurmdbd", no_argument, NULL, 9 },
        { 0, 0, 0, 0 },
    };
    const char *path = vd_conf_path();
    char node[64];
    int force = 0, even = 0, live = 0, wait_s = 0, schedule = 0, keep = 0, csv = 0, o;
    report_opts rep_o = { 0 };
    const char *node_given = NULL, *textfile = NULL;
    const char *snap_name = NULL, *role = NULL;
    inv_opts inv = { .sys = NULL, .dev = NULL, .proc = NULL, .desktop_cores = 2 };
    vd_node_name(node, sizeof(node));
    while ((o = getopt_long(argc, argv, "c:n:fh", opts, NULL)) != -1) {
        switch (o) {
        case 'c': path = optarg; break;
        case 'n': snprintf(node, sizeof(node), "%s", optarg); node_given = optarg; break;
        case 1: rep_o.since = optarg; break;
        case 2: rep_o.until = optarg; break;
        case 3: rep_o.user = optarg; break;
        case 4: rep_o.account = optarg; break;
        case 5: csv = 1; break;
        case 6: textfile = optarg; break;
        case 7: rep_o.svg = optarg; break;
        case 8: inv.glue2 = 1; break;
        case 9: rep_o.slurmdbd = 1; break;
        case 'f': force = 1; break;
        case 'E': even = 1; break;
        case 'L': live = 1; break;
        case 'r': role = optarg; break;
        case 'w':
            if (int_parse("--wait", "whole seconds", optarg, 1, 86400, &wait_s) < 0)
                return 2;
            break;
        case 'N': snap_name = optarg; break;
        case 'C': schedule = 1; break;
        case 'K':
            if (int_parse("--keep", "a whole number of recovery points", optarg, 1, 100, &keep) < 0)
                return 2;
            break;
        case 'h': return usage(stdout);
        case 'V': printf("vdeskctl " VD_VERSION " (default config " VD_CONF_DEFAULT ")\n"); return 0;
        case 'j': inv.json = 1; break;
        case 's': inv.slurm = 1; break;
        case 't': inv.topology = optarg; break;
        case 'S': inv.sys = optarg; break;
        case 'D': inv.dev = optarg; break;
        case 'P': inv.proc = optarg; break;
        case 'k':
            if (int_parse("--desktop-cores", "a whole number of cores", optarg, 1, VD_MAX_CPUS,
                          &inv.desktop_cores) < 0)
                return 2;
            break;
        default: return usage(stderr);
        }
    }
    if (optind >= argc)
        return usage(stderr);
    const char *cmd = argv[optind];
    /* Options that belong to one command are refused elsewhere, not ignored. */
    if (((snap_name || schedule) && strcmp(cmd, "snapshot")) || (snap_name && schedule) ||
        (keep && strcmp(cmd, "flatten"))) {
        fprintf(stderr, "vdeskctl: %s\n", snap_name && schedule ? "--name and --schedule: give one (a scheduled "
                "snapshot is named by its time)" : keep ? "--keep goes with flatten" : "--name and --schedule go with snapshot");
        return 2;
    }
    if ((rep_o.user || rep_o.account || csv || rep_o.svg || rep_o.slurmdbd) && strcmp(cmd, "report")) {
        fprintf(stderr, "vdeskctl: --user, --account, --csv, --svg and --slurmdbd go with report\n");
        return 2;
    }
    if ((rep_o.since || rep_o.until) && strcmp(cmd, "report") && !(inv.glue2 && !strcmp(cmd, "inventory"))) {
        fprintf(stderr, "vdeskctl: --since and --until go with report and inventory --glue2\n");
        return 2;
    }
    if (inv.glue2 && strcmp(cmd, "inventory")) {
        fprintf(stderr, "vdeskctl: --glue2 goes with inventory\n");
        return 2;
    }
    if (!strcmp(cmd, "report")) {
        if (csv + inv.json + !!rep_o.svg > 1) {
            fprintf(stderr, "vdeskctl report: --json, --csv and --svg are different outputs; give one\n");
            return 2;
        }
        if (optind + 2 < argc)
            return usage(stderr);
        rep_o.view = optind + 2 == argc ? argv[optind + 1] : NULL;
        rep_o.node = node_given;
        rep_o.format = csv ? REPORT_CSV : inv.json ? REPORT_JSON : REPORT_TABLE;
        vd_conf rc_conf;
        vd_err rc_err;
        if (vd_conf_load(path, NULL, &rc_conf, &rc_err) < 0) {
            fprintf(stderr, "vdeskctl report: %s\n", rc_err.msg);
            return 1;
        }
        return cmd_report(&rc_conf, &rep_o);
    }
    if (textfile && strcmp(cmd, "metrics")) {
        fprintf(stderr, "vdeskctl: --textfile goes with metrics\n");
        return 2;
    }
    if (role && strcmp(cmd, "shmem")) {
        fprintf(stderr, "vdeskctl: --role goes with shmem attach\n");
        return 2;
    }
    if ((force && strcmp(cmd, "restore")) || (even && !force) ||
        (live && strcmp(cmd, "check-config") && strcmp(cmd, "profile")) || (wait_s && strcmp(cmd, "boot"))) {
        fprintf(stderr, "vdeskctl: %s\n", even && !force ? "--even-if-running goes with restore --force"
                : force ? "--force goes with restore" : live ? "--live goes with check-config or profile check"
                : "--wait goes with boot");
        return 2;
    }
    /* The acting commands stop and start the desktop and rebind its devices:
     * without root they fail late, half way, with misleading messages. */
    int acting = !strcmp(cmd, "evict") || !strcmp(cmd, "restore") || !strcmp(cmd, "recover") ||
                 !strcmp(cmd, "boot") || (!strcmp(cmd, "select") && optind + 2 == argc) ||
                 !strcmp(cmd, "bootstrap") || !strcmp(cmd, "snapshot") || !strcmp(cmd, "revert") ||
                 !strcmp(cmd, "discard") || !strcmp(cmd, "flatten") ||
                 (!strcmp(cmd, "shmem") && optind + 1 < argc && strcmp(argv[optind + 1], "list"));
    if (acting && geteuid() != 0) {
        fprintf(stderr, "vdeskctl %s: must run as root (it acts on the desktop VM and its "
                "devices); status, check-config and inventory need no root\n", cmd);
        return 1;
    }
    openlog("vdeskctl", LOG_PID, LOG_DAEMON);
    vd_conf conf;
    vd_err err;
    if (!strcmp(cmd, "inventory") && optind + 1 == argc && inv.json + inv.slurm + inv.glue2 > 1) {
        fprintf(stderr, "vdeskctl inventory: %s are two different outputs; give one\n",
                !inv.glue2 ? "--json and --slurm" : inv.json ? "--json and --glue2" : "--slurm and --glue2");
        return 2;
    }
    if (!strcmp(cmd, "inventory") && optind + 1 == argc) {
        /* A fresh node has no vdesk.conf yet: use its roots only if it has
         * one. --glue2 counts the desktop's GPUs from the node's section:
         * a file it cannot read would make them wrong. */
        if (inv.glue2 && access(path, F_OK) == 0) {
            if (vd_conf_find(path, node, &conf, &err) < 0) {
                fprintf(stderr, "vdeskctl inventory: %s\n", err.msg);
                return 1;
            }
        } else if (vd_conf_load(path, NULL, &conf, &err) < 0) {
            vd_conf_defaults(&conf);
        }
        inv.sys = inv.sys ? inv.sys : conf.sysfs_root;
        inv.dev = inv.dev ? inv.dev : conf.dev_root;
        inv.proc = inv.proc ? inv.proc : conf.proc_root;
        inv.gpu_vendors = conf.gpu_vendors;
        return inv.glue2 ? inventory_glue2_run(&inv, &conf, node, &rep_o) : cmd_inventory(&inv);
    }
    if (!strcmp(cmd, "check-config") && optind + 1 == argc)
        return cmd_check_config(path, node, live);
    if (!strcmp(cmd, "profile"))
        return cmd_profile(path, node, live, argc - optind, argv + optind);
    if (!strcmp(cmd, "bootstrap") && optind + 3 == argc)
        return cmd_bootstrap(path, node, argv[optind + 1], argv[optind + 2]);
    int found = vd_conf_find(path, node, &conf, &err);
    if (found < 0) {
        fprintf(stderr, "vdeskctl: %s\n", err.msg);
        return 1;
    }
    if (found == VD_CONF_NO_DESKTOP)
        return no_desktop(cmd, node, &err);
    vd_report rep;
    int rc;
    char note[512] = "";
    if (!strcmp(cmd, "status") && optind + 1 == argc)
        return cmd_status(&conf, inv.json);
    if (!strcmp(cmd, "metrics") && optind + 1 == argc)
        return cmd_metrics(&conf, textfile);
    if (!strcmp(cmd, "select") && optind + 1 == argc)
        return select_show(&conf);
    if (!strcmp(cmd, "display") && optind + 1 == argc)
        return cmd_display(&conf);
    if (!strcmp(cmd, "snapshots") && optind + 2 >= argc)
        return cmd_snapshots(&conf, optind + 2 == argc ? argv[optind + 1] : NULL, inv.json);
    if (!strcmp(cmd, "shmem"))
        return cmd_shmem(&conf, role, argc - optind, argv + optind);
    say_if_waiting(&conf, cmd);
    if (!strcmp(cmd, "evict") && optind + 2 == argc) {
        vd_request req = { .job = 0, .target_idle = vd_slurm_node_visitable };
        if (vd_mode_parse(argv[optind + 1], &req.mode, &err) < 0) {
            fprintf(stderr, "vdeskctl: %s\n", err.msg);
            return 2;
        }
        /* By hand, as for a job: the idle nodes Slurm offers, never this one. */
        vd_err why;
        if (conf.migrate_uri[0] &&
            vd_slurm_idle_nodes(conf.migrate_feature, conf.node, &req.targets, &req.ntargets, &why) < 0)
            fprintf(stderr, "vdeskctl: no migration targets: %s\n", why.msg);
        rc = vd_evict(&conf, &req, &rep, &err);
        vd_slurm_names_free(req.targets, req.ntargets);
    } else if (!strcmp(cmd, "restore") && optind + 1 == argc) {
        reconcile(&conf, note, sizeof(note));
        if (force && !even && jobs_still_running(&conf))
            return 1;
        /* --force without --even-if-running releases only what the
         * reconcile found gone: a job whose prolog ran since still holds the
         * node, under the lock, and the desktop stays away for it. */
        if (force && !even)
            rc = vd_recover(&conf, 0, &rep, &err);
        else
            rc = force ? vd_recover(&conf, 1, &rep, &err) : vd_restore(&conf, 0, &rep, &err);
    } else if (!strcmp(cmd, "boot") && optind + 1 == argc) {
        /* --wait (vdesk-boot-wait.service) comes after the boot itself:
         * it has something to do only while jobs keep the desktop away. */
        if (wait_s > 0 && !jobs_hold(&conf)) {
            printf("vdeskctl boot --wait: no job keeps the desktop of node %s away: nothing to "
                   "wait for\n", conf.node);
            return 0;
        }
        if (wait_s > 0)
            return boot_wait(&conf, wait_s);
        reconcile(&conf, note, sizeof(note));
        rc = vd_boot(&conf, &rep, &err) < 0 ? -1 : 0;
    } else if (!strcmp(cmd, "select") && optind + 2 == argc) {
        rc = vd_select(&conf, argv[optind + 1], &rep, &err);
    } else if (!strcmp(cmd, "snapshot") && optind + 2 >= argc) {
        rc = vd_snapshot_take(&conf, optind + 2 == argc ? argv[optind + 1] : NULL,
                              schedule ? VD_SNAP_SCHEDULE : VD_SNAP_HAND, snap_name, &rep, &err);
    } else if (!strcmp(cmd, "flatten") && optind + 2 >= argc) {
        rc = vd_snapshot_flatten(&conf, optind + 2 == argc ? argv[optind + 1] : NULL, keep, &rep, &err);
    } else if (!strcmp(cmd, "revert") && optind + 3 == argc) {
        rc = vd_snapshot_revert(&conf, argv[optind + 1], argv[optind + 2], &rep, &err);
    } else if (!strcmp(cmd, "discard") && optind + 3 == argc) {
        rc = vd_snapshot_discard(&conf, argv[optind + 1], argv[optind + 2], &rep, &err);
    } else if (!strcmp(cmd, "recover") && optind + 1 == argc) {
        reconcile(&conf, note, sizeof(note));
        rc = vd_recover(&conf, 0, &rep, &err);
    } else {
        return usage(stderr);
    }
    vd_report_prefix(&rep, note);
    return print_result(&conf, rc, &rep, &err);
}
