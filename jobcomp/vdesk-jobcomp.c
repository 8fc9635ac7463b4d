/* SPDX-License-Identifier: MIT */
/*
 * vdesk-jobcomp - slurmctld's job completion program for sites without
 * slurmdbd (JobCompType=jobcomp/script, JobCompLoc=.../vdesk-jobcomp).
 *
 * slurmctld runs it once for each run of each job that ends (a requeue
 * too), with the job's fields in the environment and nothing else (no
 * SLURM_CONF, no VDESK_CONF: the compiled-in paths are the ones read). It
 * asks slurmctld for what the environment lacks (the vdesk records in the
 * AdminComment, the GPUs, array and het ids, restarts) and stores the run
 * in the accounting database (acct.h). It never loses the run: whatever
 * fails, the run is written to the database's spool for the next one.
 *
 * Exit status: 0 stored, 1 kept in the spool (logged), 2 lost (logged).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "acct.h"
#include "conf.h"
#include "slurmapi.h"

#define BUSY_MS 10000   /* another vdesk-jobcomp, or a report reading */

static void say(int prio, const char *msg)
{
    syslog(prio, "%s", msg);
}

/* The database: vdesk.conf's accounting_db. A missing file is the
 * default; a broken one keeps the run in the default database's spool,
 * which the next good run empties too. */
static void db_path(char *path, size_t size, char *fallback, size_t fsize)
{
    vd_conf *conf = calloc(1, sizeof(*conf));
    vd_err err;
    vd_conf defaults;
    vd_conf_defaults(&defaults);
    snprintf(fallback, fsize, "%s", defaults.accounting_db);
    snprintf(path, size, "%s", defaults.accounting_db);
    if (!conf) {
        say(LOG_ERR, "out of memory reading vdesk.conf; using the default accounting database");
        return;
    }
    if (access(vd_conf_path(), F_OK) == 0) {
        if (vd_conf_load(vd_conf_path(), NULL, conf, &err) == 0)
            snprintf(path, size, "%s", conf->accounting_db);
        else
            syslog(LOG_ERR, "%s (the job goes to the default accounting database)", err.msg);
    }
    free(conf);
}

/* What only slurmctld knows. A job it no longer has (MinJobAge passed) is
 * stored without them, and note says so. */
static void job_details(vd_acct_job *j)
{
    vd_slurm_job_details d;
    vd_err err;
    if (vd_slurm_job_details_get(j->job, &d, &err) < 0) {
        snprintf(j->note, sizeof(j->note), "%s: no vdesk records, GPUs unknown", err.msg);
        return;
    }
    j->restarts = d.restarts;
    if (d.array_job)
        j->array_job = d.array_job, j->array_task = d.array_task;
    if (d.het_job)
        j->het_job = d.het_job, j->het_offset = d.het_offset;
    j->gpus = d.gres_total && *d.gres_total ? vd_acct_gpus(d.gres_total) : 0;
    if (vd_acct_comment_parse(d.admin_comment, j, &err) < 0)
        snprintf(j->note, sizeof(j->note), "%s", err.msg);
    vd_slurm_job_details_free(&d);
}

int main(int argc, char **argv)
{
    openlog("vdesk-jobcomp", LOG_PID | (isatty(2) || access("/dev/log", W_OK) ? LOG_PERROR : 0), LOG_DAEMON);
    if (argc == 2 && !strcmp(argv[1], "--version")) {
        printf("vdesk-jobcomp " VD_VERSION " (reads " VD_CONF_DEFAULT ")\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "vdesk-jobcomp: takes no arguments: slurmctld runs it "
                "(JobCompType=jobcomp/script, JobCompLoc=this program); see vdeskctl(8), REPORTS\n");
        return 2;
    }
    /* Who ran what is not for every local user to read. */
    umask(027);
    vd_acct_job *j = calloc(1, sizeof(*j));
    vd_err err;
    if (!j) {
        say(LOG_ERR, "out of memory: the job is not accounted");
        return 2;
    }
    if (vd_acct_job_from_env(j, &err) < 0) {
        say(LOG_ERR, err.msg);
        free(j);
        return 2;
    }
    job_details(j);
    char path[PATH_MAX], fallback[PATH_MAX];
    db_path(path, sizeof(path), fallback, sizeof(fallback));
    int rc = vd_acct_keep(path, BUSY_MS, j, &err);
    if (rc == 0 && strcmp(path, fallback) != 0) {
        /* Runs a broken vdesk.conf sent to the default spool. */
        vd_err e2;
        char spool[PATH_MAX];
        if (vd_acct_spool_dir(fallback, spool, sizeof(spool), &e2) == 0 && access(spool, F_OK) == 0) {
            sqlite3 *db;
            int stored, bad;
            if (vd_acct_open(path, BUSY_MS, &db, &e2) == 0 &&
                vd_acct_spool_drain(db, spool, &stored, &bad, &e2) < 0)
                say(LOG_WARNING, e2.msg);
            sqlite3_close(db);
        }
    }
    if (rc != 0)
        say(rc > 0 ? LOG_WARNING : LOG_ERR, err.msg);
    free(j);
    return rc < 0 ? 2 : rc;
}
