/* SPDX-License-Identifier: MIT */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "acct.h"
#include "child.h"
#include "comment.h"
#include "journal.h"
#include "slurmapi.h"
#include "slurmdb.h"

int node_openlog(const char *prog)
{
    /* Without a syslog socket (a minimal node, a container) syslog(3)
     * drops every line: they go to stderr, which slurmd keeps, instead. */
    int to_stderr = access("/dev/log", W_OK) != 0;
    openlog(prog, LOG_PID | (to_stderr ? LOG_PERROR : 0), LOG_DAEMON);
    if (to_stderr)   /* debug lines ("no desktop here") would fill slurmd's log */
        setlogmask(LOG_UPTO(LOG_INFO));
    return to_stderr;
}

int node_args(int argc, char **argv, const char *prog)
{
    if (argc < 2)
        return 0;
    if (argc == 2 && !strcmp(argv[1], "--version")) {
        printf("%s " VD_VERSION " (reads " VD_CONF_DEFAULT ")\n", prog);
        return 1;
    }
    fprintf(stderr, "%s: takes no arguments (slurmd runs it as Prolog=/Epilog=; see "
            "vdeskctl(8)); --version prints the version\n", prog);
    return -1;
}

unsigned job_id(void)
{
    const char *s = getenv("SLURM_JOB_ID");
    char *end;
    unsigned long v = s ? strtoul(s, &end, 10) : 0;
    return s && *s && !*end && v <= 0xffffffffUL ? (unsigned)v : 0;
}

int node_conf_load(vd_conf *conf, const char *prog)
{
    char node[64];
    vd_err err;
    vd_node_name(node, sizeof(node));
    int rc = vd_conf_find(vd_conf_path(), node, conf, &err);
    if (rc == 0)
        return 0;
    if (rc == VD_CONF_NO_DESKTOP) {
        /* Prolog= is cluster-wide: most nodes have no desktop. */
        syslog(LOG_DEBUG, "no desktop on this node: %s", err.msg);
        return VD_CONF_NO_DESKTOP;
    }
    syslog(LOG_ERR, "%s", err.msg);
    fprintf(stderr, "%s: %s\n", prog, err.msg);
    char reason[1200];
    snprintf(reason, sizeof(reason), "vdesk: %.900s; fix it (vdeskctl check-config), then "
             "'scontrol update nodename=%.63s state=resume'", err.msg, node);
    vd_err derr;
    if (vd_slurm_node_drain(node, reason, &derr) < 0)
        syslog(LOG_ERR, "%s", derr.msg);
    return -1;
}

void node_comment(const vd_conf *conf)
{
    vd_err err;
    if (vd_desktop_comment_later(conf, &err) < 0)
        syslog(LOG_WARNING, "%s", err.msg);
}

int node_report(const vd_conf *conf, const vd_report *rep, const char *prog, int log_to_stderr)
{
    char line[2048];
    vd_err err;
    int rc = 0;
    vd_err kept;
    int kept_rc = vd_record_keep(conf->state_dir, rep, line, sizeof(line), &kept);
    syslog(rep->drain[0] ? LOG_WARNING : LOG_INFO, "job %u: %s", rep->job, line);
    if (!log_to_stderr)   /* else syslog just wrote it there */
        fprintf(stderr, "%s: job %u: %s\n", prog, rep->job, line);
    if (kept_rc < 0)
        syslog(LOG_ERR, "%s", kept.msg);
    /* The drain first: it is what an admin must see, and the AdminComment
     * below reads the job back to merge with the other nodes' records. */
    if (rep->drain[0]) {
        syslog(LOG_ERR, "draining %s: %s", conf->node, rep->drain);
        if (vd_slurm_node_drain(conf->node, rep->drain, &err) < 0) {
            syslog(LOG_ERR, "%s", err.msg);
            rc = -1;
        }
    }
    node_comment(conf);
    /* slurmctld refuses updates to a job once it completes, before the
     * Epilog runs: only the eviction record can reach the job itself.
     * One record per node in the AdminComment: "vdesk[NODE] evict: ...". */
    const char *rec = !strncmp(line, "vdesk ", 6) ? line + 6 : line;
    if (rep->job && !strcmp(rep->op, "evict") &&
        vd_slurm_job_comment(rep->job, conf->node, rec, &err) < 0)
        syslog(LOG_WARNING, "%s", err.msg);
    /* The restore record reaches slurmdbd's copy of the job where the site
     * runs slurmdbd (slurmdb.h), and vdesk's own store through its spool
     * where the node sees it (acct.h, vd_acct_drop); not "present:
     * nothing to restore", unless it drained the node. */
    if (rep->job && !strcmp(rep->op, "restore") && ((rep->used[0] && strcmp(rep->used, "none")) || rep->drain[0])) {
        node_slurmdb_later(conf, rep->job, rec);
        node_acct_drop(conf, rep->job, line);
    }
    return rc;
}

/* What the detached process of node_slurmdb_later needs. */
typedef struct slurmdb_send {
    const vd_conf *conf;
    unsigned job;
    const char *rec;
} slurmdb_send;

#define SLURMDB_END_WAIT_S 60   /* slurmctld's accounting queue behind slurmdbd */

/* The cluster's name: slurmd gives Prolog and Epilog SLURM_CLUSTER_NAME;
 * else slurm.conf's ClusterName, from slurmctld. */
static int node_cluster(char *buf, size_t size, vd_err *err)
{
    const char *env = getenv("SLURM_CLUSTER_NAME");
    if (env && env[0] && strlen(env) < size) {
        snprintf(buf, size, "%s", env);
        return 0;
    }
    return vd_slurm_cluster_name(buf, size, err);
}

static int slurmdb_sender(void *arg, vd_err *err)
{
    const slurmdb_send *s = arg;
    char cluster[64];
    int used = vd_slurmdb_used(err);
    if (used == 0)   /* no slurmdbd here: nothing to do */
        return 0;
    if (used < 0 || node_cluster(cluster, sizeof(cluster), err) < 0)
        return vd_err_prefix(err, "the restore record is not sent to slurmdbd");
    if (vd_slurmdb_job_comment(cluster, s->job, s->conf->node, s->rec, SLURMDB_END_WAIT_S, err) < 0)
        return vd_err_prefix(err, "the record stays in %s/records.jsonl", s->conf->state_dir);
    syslog(LOG_INFO, "job %u: restore record sent to slurmdbd", s->job);
    return 0;
}

void node_slurmdb_later(const vd_conf *conf, unsigned job, const char *rec)
{
    vd_err err;
    /* Asking slurmctld whether there is a slurmdbd, waiting for slurmdbd
     * to hear of the job's end, and each call's MessageTimeout must not
     * hold the node in COMPLETING: all of it runs detached. */
    slurmdb_send s = { conf, job, rec };
    char what[96];
    snprintf(what, sizeof(what), "job %u: the restore record for slurmdbd", job);
    if (vd_child_detach(slurmdb_sender, &s, SLURMDB_END_WAIT_S + 120, what, &err) < 0)
        syslog(LOG_WARNING, "%s", err.msg);
}

void node_acct_drop(const vd_conf *conf, unsigned job, const char *line)
{
    char cluster[64];
    vd_err err;
    if (node_cluster(cluster, sizeof(cluster), &err) < 0 ||
        vd_acct_drop(conf->accounting_db, cluster, job, conf->node, line, &err) < 0)
        syslog(LOG_WARNING, "job %u: the restore record is not sent to the accounting store: %s", job, err.msg);
}

#define RECONCILE_WAIT_S 5

void node_reconcile(const vd_conf *conf, unsigned job, char *note, size_t size)
{
    char released[400];
    vd_err err;
    note[0] = '\0';
    /* A busy lock means another operation runs now: it or the next one
     * releases them. */
    int n = vd_jobs_reconcile(conf, job, vd_slurm_job_holds, RECONCILE_WAIT_S, released,
                              sizeof(released), &err);
    if (n < 0)
        syslog(LOG_WARNING, "%s", err.msg);
    if (n <= 0)
        return;
    snprintf(note, size, "released job(s) that Slurm no longer runs here: %s", released);
    syslog(LOG_NOTICE, "%s", note);
}

int node_budget(void)
{
    int s = 0;
    vd_err err;
    if (vd_slurm_prolog_timeout(&s, &err) < 0)
        syslog(LOG_WARNING, "%s; each step keeps its own timeout", err.msg);
    return s;
}

int node_budget_left(int budget_s, long long since_ms)
{
    if (budget_s <= 0)
        return 0;
    long long spent_s = (vd_now_ms() - since_ms + 999) / 1000;
    return spent_s >= budget_s ? 1 : budget_s - (int)spent_s;
}
