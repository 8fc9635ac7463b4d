/* SPDX-License-Identifier: MIT */
#include "slurmdb.h"

#include <errno.h>
#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>
#include <slurm/slurmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "slurmapi.h"

/* Slurm 24.05 dropped the List typedef for list_t; the calls are the same. */
#if SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(24, 5, 0)
typedef list_t *vd_list;
typedef list_itr_t *vd_list_itr;
#else
typedef List vd_list;
typedef ListIterator vd_list_itr;
#endif

int vd_slurmdb_used(vd_err *err)
{
    slurm_conf_t *cf = NULL;
    if (vd_slurm_init(err) < 0)
        return -1;
    if (slurm_load_ctl_conf((time_t)0, &cf) != SLURM_SUCCESS || !cf)
        return vd_err_set(err, "cannot read AccountingStorageType from slurmctld: %s", slurm_strerror(errno));
    int used = cf->accounting_storage_type && !strcmp(cf->accounting_storage_type, "accounting_storage/slurmdbd");
    slurm_free_ctl_conf(cf);
    return used;
}

/* --- a connection and a query -------------------------------------------- */

static void *conn_open(vd_err *err)
{
    if (vd_slurm_init(err) < 0)
        return NULL;
    errno = 0;
    void *db = slurmdb_connection_get(NULL);
    /* libslurmdb hands out a connection even when slurmdbd did not answer;
     * errno says so, as sacct reads it. */
    if (db && errno == SLURM_SUCCESS)
        return db;
    vd_err_set(err, "cannot reach slurmdbd (slurm.conf's AccountingStorageHost/Port): %s",
               errno ? slurm_strerror(errno) : "no answer");
    if (db)
        slurmdb_connection_close(&db);
    return NULL;
}

static void conn_close(void *db)
{
    slurmdb_connection_close(&db);
}

/* Which runs a query selects: one job id (slurmdbd also matches the arrays
 * and heterogeneous jobs of that id), one array task, or one het
 * component. */
typedef struct run_id {
    unsigned job;          /* for a task or a component: the array's or the leader's id */
    unsigned array_task;   /* NO_VAL: not one task */
    unsigned het_offset;   /* NO_VAL: not one component */
} run_id;

static void cond_free(slurmdb_job_cond_t *c)
{
    if (c->cluster_list)
        slurm_list_destroy(c->cluster_list);
    if (c->step_list)
        slurm_list_destroy(c->step_list);
    c->cluster_list = c->step_list = NULL;
}

/* The query for cluster's runs of `id` (NULL: every job) in [since, until)
 * (0: open), without steps; every_run: a requeued job's earlier runs too
 * (else the latest of each job id). Lists are freed by cond_free. */
static int cond_make(slurmdb_job_cond_t *c, const char *cluster, const run_id *id, int every_run,
                     long long since, long long until)
{
    memset(c, 0, sizeof(*c));
    c->flags = JOBCOND_FLAG_NO_STEP | JOBCOND_FLAG_NO_TRUNC | (every_run ? JOBCOND_FLAG_DUP : 0);
    c->db_flags = SLURMDB_JOB_FLAG_NOTSET;   /* 0 asks for the jobs whose scheduling flags are 0: none */
    c->usage_start = since > 0 ? (time_t)since : 1;   /* 0 would mean "since midnight" */
    c->usage_end = until > 0 ? (time_t)until : time(NULL) + 1;
    char *name = strdup(cluster);
    if (!name || !(c->cluster_list = slurm_list_create(free))) {
        free(name);
        return -1;
    }
    slurm_list_append(c->cluster_list, name);
    if (!id)
        return 0;
    slurm_selected_step_t *st = calloc(1, sizeof(*st));
    if (!st || !(c->step_list = slurm_list_create(free))) {
        free(st);
        cond_free(c);
        return -1;
    }
    st->array_task_id = id->array_task;
    st->het_job_offset = id->het_offset;
    st->step_id.job_id = id->job;
    st->step_id.step_id = NO_VAL;
    st->step_id.step_het_comp = NO_VAL;
    slurm_list_append(c->step_list, st);
    return 0;
}

/* --- a node's record into a finished job's AdminComment ------------------ */

typedef enum try_result {
    TRY_DONE,    /* the record is in, and stayed */
    TRY_LATER,   /* slurmdbd has not recorded the run's end yet */
    TRY_LOST,    /* another node's write at the same moment dropped it */
    TRY_FAILED,  /* slurmdbd did not answer: maybe not for long */
    TRY_NEVER,   /* it cannot go in: no room, refused, or the job ran again since */
} try_result;

/* What run_read found of job's latest run. */
typedef struct run_seen {
    run_id id;       /* how to select exactly that run for the write */
    int ended;       /* slurmdbd has its end */
    char *comment;   /* its AdminComment (a copy; NULL: none) */
} run_seen;

static int newer(const slurmdb_job_rec_t *a, const slurmdb_job_rec_t *b)
{
    return !b || a->submit > b->submit || (a->submit == b->submit && a->start > b->start);
}

/* The latest run of job, which must be the one on node (a run after it,
 * a requeue, has the AdminComment now, and writing the earlier one's
 * record there would be wrong): TRY_DONE with it in *seen, TRY_LATER when
 * slurmdbd has no run of it on node yet, TRY_NEVER, TRY_FAILED. */
static try_result run_read(void *db, const char *cluster, unsigned job, const char *node, run_seen *seen,
                           vd_err *err)
{
    slurmdb_job_cond_t c;
    run_id id = { job, NO_VAL, NO_VAL };
    memset(seen, 0, sizeof(*seen));
    /* slurmdbd keeps one transaction open on a client's connection:
     * without ending it, every read sees the first one's snapshot. */
    slurmdb_connection_commit(db, 0);
    if (cond_make(&c, cluster, &id, 1, 0, 0) < 0)
        return vd_err_set(err, "job %u: out of memory asking slurmdbd for it", job), TRY_FAILED;
    errno = 0;
    vd_list jobs = slurmdb_jobs_get(db, &c);
    cond_free(&c);
    if (!jobs)
        return vd_err_set(err, "job %u: slurmdbd does not answer: %s", job,
                          errno ? slurm_strerror(errno) : "no list"), TRY_FAILED;
    slurmdb_job_rec_t *latest = NULL, *mine = NULL, *r;
    vd_list_itr it = slurm_list_iterator_create(jobs);
    /* An array's first task has the array's id: slurmdbd answers with
     * every task then. */
    while ((r = slurm_list_next(it)))
        if (r->jobid == job) {
            latest = newer(r, latest) ? r : latest;
            if (r->nodes && vd_slurm_hostlist_has(r->nodes, node) && newer(r, mine))
                mine = r;
        }
    slurm_list_iterator_destroy(it);
    try_result t = TRY_DONE;
    if (!mine)
        t = TRY_LATER, vd_err_set(err, "job %u: slurmdbd has no run of it on %s", job, node);
    else if (mine != latest)
        t = TRY_NEVER, vd_err_set(err, "job %u: it ran again since (a requeue): this run's record is not "
                                  "written over the next run's", job);
    else {
        seen->ended = mine->end != 0;
        if (mine->array_job_id && mine->array_task_id != NO_VAL)
            seen->id = (run_id){ mine->array_job_id, mine->array_task_id, NO_VAL };
        else if (mine->het_job_id && mine->het_job_offset != NO_VAL)
            seen->id = (run_id){ mine->het_job_id, NO_VAL, mine->het_job_offset };
        else
            seen->id = (run_id){ job, NO_VAL, NO_VAL };
        if (mine->admin_comment && !(seen->comment = strdup(mine->admin_comment)))
            t = TRY_FAILED, vd_err_set(err, "job %u: out of memory reading its AdminComment", job);
    }
    slurm_list_destroy(jobs);
    return t;
}

/* Sets the AdminComment of the run `id` selects (slurmdbd changes the
 * latest run of each job the query matches: one, as run_read chose it). */
static try_result run_write(void *db, const char *cluster, unsigned job, const run_id *id, const char *text,
                            vd_err *err)
{
    slurmdb_job_cond_t c;
    slurmdb_job_rec_t rec;
    if (cond_make(&c, cluster, id, 0, 0, 0) < 0)
        return vd_err_set(err, "job %u: out of memory asking slurmdbd for it", job), TRY_FAILED;
    memset(&rec, 0, sizeof(rec));
    rec.derived_ec = NO_VAL;   /* 0 would set the derived exit code */
    rec.admin_comment = (char *)text;
    errno = 0;
    vd_list done = slurmdb_job_modify(db, &c, &rec);
    cond_free(&c);
    int e = errno;
    int n = done ? slurm_list_count(done) : 0;
    if (done)
        slurm_list_destroy(done);
    if (n <= 0) {
        vd_err_set(err, "job %u: slurmdbd refused to change its AdminComment: %s", job,
                   e ? slurm_strerror(e) : "no job changed");
        return e == ESLURM_ACCESS_DENIED ? TRY_NEVER : TRY_FAILED;
    }
    /* The change reaches MariaDB when the connection commits. */
    int rc = slurmdb_connection_commit(db, 1);
    if (rc != SLURM_SUCCESS)
        return vd_err_set(err, "job %u: slurmdbd did not commit its AdminComment: %s", job,
                          slurm_strerror(rc)), TRY_FAILED;
    return TRY_DONE;
}

static void pause_ms(long ms)
{
    nanosleep(&(struct timespec){ .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 }, NULL);
}

static try_result comment_try(void *db, const char *cluster, unsigned job, const char *node,
                              const char *record, unsigned *seed, vd_err *err)
{
    run_seen seen;
    char merged[VD_ADMIN_COMMENT_MAX + 1];
    try_result t = run_read(db, cluster, job, node, &seen, err);
    if (t == TRY_DONE && !seen.ended)
        t = TRY_LATER, vd_err_set(err, "job %u: slurmdbd has not recorded its end", job);
    if (t == TRY_DONE && vd_admin_comment_merge(seen.comment, node, record, merged, sizeof(merged), err) < 0)
        t = TRY_NEVER;
    free(seen.comment);
    if (t == TRY_DONE)
        t = run_write(db, cluster, job, &seen.id, merged, err);
    if (t != TRY_DONE)
        return t;
    /* The other nodes of the job write at about the same moment: one that
     * read before this write and wrote after it dropped it. */
    pause_ms(100 + rand_r(seed) % 300);
    if ((t = run_read(db, cluster, job, node, &seen, err)) != TRY_DONE)
        return t == TRY_LATER ? TRY_FAILED : t;
    int kept = vd_admin_comment_has(seen.comment, node, record);
    free(seen.comment);
    if (!kept)
        vd_err_set(err, "job %u: node %s's record keeps disappearing from the AdminComment in slurmdbd "
                   "(another tool rewriting it at the same time?)", job, node);
    return kept ? TRY_DONE : TRY_LOST;
}

int vd_slurmdb_job_comment(const char *cluster, unsigned job, const char *node, const char *record,
                           int wait_s, vd_err *err)
{
    unsigned seed = (unsigned)getpid() ^ (unsigned)time(NULL);
    long long deadline = (long long)time(NULL) + (wait_s > 0 ? wait_s : 0);
    void *db = NULL;
    try_result r = TRY_FAILED;
    /* slurmctld sends the job's end when slurmdbd answers again, and
     * writes the whole AdminComment then: until slurmdbd has the end,
     * writing would be undone. A slurmdbd that is down or restarting is
     * waited for the same way. */
    for (int lost = 0; lost < 5;) {
        if (!db)
            db = conn_open(err);
        r = db ? comment_try(db, cluster, job, node, record, &seed, err) : TRY_FAILED;
        if (r == TRY_DONE || r == TRY_NEVER)
            break;
        if (r == TRY_FAILED && db) {
            conn_close(db);   /* a new connection next time */
            db = NULL;
        }
        lost += r == TRY_LOST;
        if (time(NULL) >= deadline)
            break;
        pause_ms(1000);
    }
    if (db)
        conn_close(db);
    return r == TRY_DONE ? 0 : vd_err_prefix(err, "job %u: node %s's record not in slurmdbd", job, node);
}

/* --- the runs of a period ------------------------------------------------ */

/* The id slurmdbd gave gres/gpu (AccountingStorageTRES), 0 when it has
 * none. */
static int gpu_tres_id(void *db, unsigned *id, vd_err *err)
{
    slurmdb_tres_cond_t c;
    memset(&c, 0, sizeof(c));
    *id = 0;
    errno = 0;
    vd_list all = slurmdb_tres_get(db, &c);
    if (!all)
        return vd_err_set(err, "slurmdbd sent no TRES list: %s", errno ? slurm_strerror(errno) : "no list");
    slurmdb_tres_rec_t *t;
    vd_list_itr it = slurm_list_iterator_create(all);
    while ((t = slurm_list_next(it)))
        if (t->type && t->name && !strcmp(t->type, "gres") && !strcmp(t->name, "gpu"))
            *id = t->id;
    slurm_list_iterator_destroy(it);
    slurm_list_destroy(all);
    return 0;
}

/* The count of TRES `id` in "1=2,4=1,1001=2"; 0 when it is not there. */
static long tres_count(const char *s, unsigned id)
{
    for (const char *p = s; p && *p;) {
        char *end;
        unsigned long k = strtoul(p, &end, 10);
        if (end != p && *end == '=') {
            char *vend;
            unsigned long long v = strtoull(end + 1, &vend, 10);
            if (k == id && vend != end + 1 && (*vend == ',' || !*vend))
                return v > 1000000 ? -1 : (long)v;
        }
        p = strchr(p, ',');
        p = p ? p + 1 : NULL;
    }
    return 0;
}

static void copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

static void exit_code_str(char *buf, size_t size, uint32_t status)
{
    if (status == NO_VAL)
        buf[0] = '\0';
    else
        snprintf(buf, size, "%u:%u", (status >> 8) & 0xff, status & 0x7f);
}

/* r as vd_acct_job, its records from its AdminComment. */
static void job_from_rec(const slurmdb_job_rec_t *r, unsigned gpu_id, vd_acct_job *j)
{
    vd_err err;
    memset(j, 0, sizeof(*j));
    copy(j->cluster, sizeof(j->cluster), r->cluster);
    j->job = r->jobid;
    j->submit = r->submit, j->start = r->start, j->end = r->end;
    j->array_task = j->het_offset = VD_ACCT_NONE;
    if (r->array_job_id && r->array_task_id != NO_VAL)
        j->array_job = r->array_job_id, j->array_task = r->array_task_id;
    if (r->het_job_id && r->het_job_offset != NO_VAL)
        j->het_job = r->het_job_id, j->het_offset = r->het_job_offset;
    j->uid = r->uid;
    j->nnodes = r->alloc_nodes;
    copy(j->name, sizeof(j->name), r->jobname);
    copy(j->user, sizeof(j->user), r->user);
    copy(j->account, sizeof(j->account), r->account);
    copy(j->partition, sizeof(j->partition), r->partition);
    copy(j->nodes, sizeof(j->nodes), r->nodes && strcmp(r->nodes, "None assigned") ? r->nodes : "");
    /* slurmdbd keeps a run that ended in a requeue with the requeue flag. */
    copy(j->state, sizeof(j->state), r->state & JOB_REQUEUE ? "REQUEUED" : vd_slurm_state_name(r->state));
    exit_code_str(j->exit_code, sizeof(j->exit_code), r->exitcode);
    j->gpus = gpu_id ? tres_count(r->tres_alloc_str, gpu_id) : -1;
    if (vd_acct_comment_parse(r->admin_comment, j, &err) < 0)
        copy(j->note, sizeof(j->note), err.msg);
    else if (!gpu_id)
        copy(j->note, sizeof(j->note), "slurmdbd counts no gres/gpu (AccountingStorageTRES): GPUs unknown");
    /* The AdminComment outlives a requeue: this run's nodes only. */
    vd_acct_recs_keep_nodes(j, vd_slurm_hostlist_has);
}

int vd_slurmdb_jobs_each(long long since, long long until, vd_slurmdb_job_fn fn, void *arg, vd_err *err)
{
    char cluster[64];
    /* One slurmdbd may keep several clusters: this one's only. */
    if (vd_slurm_cluster_name(cluster, sizeof(cluster), err) < 0)
        return -1;
    void *db = conn_open(err);
    if (!db)
        return -1;
    unsigned gpu_id;
    slurmdb_job_cond_t c;
    int rc = gpu_tres_id(db, &gpu_id, err);
    if (rc == 0 && cond_make(&c, cluster, NULL, 1, since, until) < 0)
        rc = vd_err_set(err, "out of memory asking slurmdbd for jobs");
    vd_list jobs = NULL;
    if (rc == 0) {
        errno = 0;
        jobs = slurmdb_jobs_get(db, &c);
        cond_free(&c);
        if (!jobs)
            rc = vd_err_set(err, "slurmdbd sent no job list: %s", errno ? slurm_strerror(errno) : "no list");
    }
    vd_acct_job *j = jobs ? malloc(sizeof(*j)) : NULL;
    if (jobs && !j)
        rc = vd_err_set(err, "out of memory reading jobs from slurmdbd");
    if (j) {
        slurmdb_job_rec_t *r;
        vd_list_itr it = slurm_list_iterator_create(jobs);
        while (rc == 0 && (r = slurm_list_next(it)))
            if (r->start) {   /* never ran: nothing of vdesk's, no GPU time */
                job_from_rec(r, gpu_id, j);
                rc = fn(j, arg, err);
            }
        slurm_list_iterator_destroy(it);
    }
    free(j);
    if (jobs)
        slurm_list_destroy(jobs);
    conn_close(db);
    return rc;
}
