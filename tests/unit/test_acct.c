/* SPDX-License-Identifier: MIT */
/* The accounting store (lib/acct.c) on real SQLite files: records read
 * back from the one-line form the nodes write, jobcomp's environment,
 * and the promise that a run is never lost: a locked, a corrupt and a
 * newer database keep it in the spool, and the next run stores it. The
 * whole way through slurmctld runs in t_acct.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "acct.h"
#include "record.h"
#include "scale.h"

typedef struct fx {
    char dir[64];
    char db[128];
    char spool[160];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/vdacct.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->db, sizeof(f->db), "%s/acct.db", f->dir);
    snprintf(f->spool, sizeof(f->spool), "%s.spool", f->db);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static vd_acct_job *job_new(unsigned id, long long start)
{
    vd_acct_job *j = calloc(1, sizeof(*j));
    assert_non_null(j);
    snprintf(j->cluster, sizeof(j->cluster), "c1");
    j->job = id;
    j->submit = start - 5;
    j->start = start;
    j->end = start + 100;
    j->array_task = j->het_offset = VD_ACCT_NONE;
    j->gpus = 2;
    snprintf(j->user, sizeof(j->user), "alice");
    snprintf(j->state, sizeof(j->state), "COMPLETED");
    return j;
}

/* One SQL answer as an integer. */
static long long q(const char *db_path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static int spool_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strstr(e->d_name, ".json") != NULL && e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

/* What a node writes (record.h) is what the store reads back. */
static void record_line_reads_back(void **state)
{
    (void)state;
    vd_report rep = { .job = 7, .total_ms = 790, .nphases = 3 };
    snprintf(rep.op, sizeof(rep.op), "evict");
    snprintf(rep.asked, sizeof(rep.asked), "migrate");
    snprintf(rep.used, sizeof(rep.used), "save");
    snprintf(rep.devices, sizeof(rep.devices), "ua-gpu0,ua-ib0");
    snprintf(rep.outcome, sizeof(rep.outcome), "desktop desk-n1 save after \"migrate\" failed: x=1 y");
    rep.phases[0] = (vd_phase_time){ "lock", 0, 1 };
    rep.phases[1] = (vd_phase_time){ "migrate n2", 120, 0 };
    rep.phases[2] = (vd_phase_time){ "save", 496, 1 };
    snprintf(rep.migration.from, sizeof(rep.migration.from), "n1");
    snprintf(rep.migration.to, sizeof(rep.migration.to), "n2");
    char line[2048];
    vd_report_format(&rep, line, sizeof(line));
    vd_acct_rec r, s;
    /* syslog's form, and the AdminComment's (prolog/common.c drops "vdesk "). */
    vd_acct_rec_parse("n1", line, strlen(line), &s);
    assert_string_equal(s.op, "evict");
    assert_memory_equal(line, "vdesk ", 6);
    vd_acct_rec_parse("n1", line + 6, strlen(line + 6), &r);
    assert_memory_equal(&r, &s, sizeof(r));
    assert_string_equal(r.node, "n1");
    assert_string_equal(r.op, "evict");
    assert_string_equal(r.asked, "migrate");
    assert_string_equal(r.used, "save");
    assert_string_equal(r.devices, "ua-gpu0,ua-ib0");
    assert_int_equal(r.total_ms, 790);
    assert_int_equal(r.nphases, 3);
    assert_string_equal(r.phases[1].name, "migrate n2");
    assert_int_equal(r.phases[1].ms, 120);
    assert_false(r.phases[1].ok);
    assert_int_equal(r.failed_phases, 1);
    assert_string_equal(r.phases[2].name, "save");
    assert_true(strncmp(r.migrated, "n1>n2:", 6) == 0);
    assert_string_equal(r.outcome, rep.outcome);
    assert_false(r.cut);
    assert_false(r.drained);
}

/* An operation that drained the node says so in its record, whose phases
 * still end where they should; the store and the spool's JSON keep it. */
static void a_drain_is_recorded_and_stored(void **state)
{
    fx *f = *state;
    vd_report rep = { .job = 8, .total_ms = 40, .nphases = 2 };
    snprintf(rep.op, sizeof(rep.op), "evict");
    snprintf(rep.asked, sizeof(rep.asked), "save");
    snprintf(rep.outcome, sizeof(rep.outcome), "cannot evict");
    snprintf(rep.drain, sizeof(rep.drain), "vdesk: cannot evict desk-n1 on n1");
    rep.phases[0] = (vd_phase_time){ "lock", 0, 1 };
    rep.phases[1] = (vd_phase_time){ "unplug ua-gpu0", 30, 0 };
    char line[2048];
    vd_report_format(&rep, line, sizeof(line));
    vd_acct_rec r;
    vd_acct_rec_parse("n1", line, strlen(line), &r);
    assert_string_equal(r.op, "evict");
    assert_true(r.drained);
    assert_int_equal(r.nphases, 2);
    assert_string_equal(r.phases[1].name, "unplug ua-gpu0");
    assert_string_equal(r.outcome, "cannot evict");
    /* A key inside a phase's name (a visitor's holds the desktop's) is
     * part of the name. */
    const char *odd = "evict: asked=save used=save devices=- total=5ms phases=visit a drained=x:5 drained=yes "
                      "outcome=\"o\"";
    vd_acct_rec_parse("n1", odd, strlen(odd), &r);
    assert_string_equal(r.op, "evict");
    assert_int_equal(r.nphases, 1);
    assert_string_equal(r.phases[0].name, "visit a drained=x");
    assert_true(r.drained);
    vd_acct_rec_parse("n1", line, strlen(line), &r);
    vd_acct_job *j = job_new(8, 2000), *b = calloc(1, sizeof(*b));
    vd_err err;
    assert_non_null(b);
    j->recs[j->nrecs++] = r;
    json_object *o = vd_acct_job_json(j);
    assert_int_equal(vd_acct_job_from_json(o, b, &err), 0);
    json_object_put(o);
    assert_true(b->recs[0].drained);
    sqlite3 *db;
    assert_int_equal(vd_acct_open(f->db, 1000, &db, &err), 0);
    assert_int_equal(vd_acct_store(db, b, &err), 0);
    sqlite3_close(db);
    assert_int_equal(q(f->db, "SELECT drained FROM records WHERE job = 8"), 1);
    free(j);
    free(b);
}

/* A database of schema 1 (before drains were kept) is brought to 2 by the
 * next writer, its runs kept; a spool file of before reads as not drained. */
static void schema_1_is_upgraded_in_place(void **state)
{
    fx *f = *state;
    sqlite3 *db;
    vd_err err;
    assert_int_equal(vd_acct_open(f->db, 1000, &db, &err), 0);
    vd_acct_job *j = job_new(9, 3000);
    assert_int_equal(vd_acct_comment_parse("vdesk[n1] evict: asked=save used=save outcome=\"a\"", j, &err), 0);
    assert_int_equal(vd_acct_store(db, j, &err), 0);
    /* Back to what schema 1 was. */
    assert_int_equal(sqlite3_exec(db, "ALTER TABLE records DROP COLUMN drained; PRAGMA user_version = 1",
                                  NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(vd_acct_open(f->db, 1000, &db, &err), 0);
    sqlite3_close(db);
    assert_int_equal(q(f->db, "SELECT user_version FROM pragma_user_version"), VD_ACCT_SCHEMA);
    assert_int_equal(q(f->db, "SELECT count(*) FROM records WHERE job = 9 AND drained = 0"), 1);
    json_object *o = vd_acct_job_json(j);
    json_object *recs = json_object_object_get(o, "records");
    json_object_object_del(json_object_array_get_idx(recs, 0), "drained");
    vd_acct_job *b = calloc(1, sizeof(*b));
    assert_non_null(b);
    assert_int_equal(vd_acct_job_from_json(o, b, &err), 0);
    assert_false(b->recs[0].drained);
    json_object_put(o);
    free(j);
    free(b);
}

/* Hostile or cut records lose nothing: the text stays as the outcome. */
static void unreadable_and_cut_records_keep_their_text(void **state)
{
    (void)state;
    static const char *bad[] = { "", "vdesk", "hello world", "vdesk EVICT: asked=x", ": asked=x",
                                 "vdesk evict: total=12 outcome=\"x\"", "vdesk evict: phases=a:b",
                                 "vdesk evict: nokey=1 outcome=\"x\"", "vdesk evict: asked" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        vd_acct_rec r;
        vd_acct_rec_parse("n1", bad[i], strlen(bad[i]), &r);
        assert_string_equal(r.op, "?");
        assert_string_equal(r.outcome, bad[i]);
    }
    const char *cut = "vdesk evict: asked=save used=save devices=- total=5ms phases=save:5 outcome=\"desktop sa...";
    vd_acct_rec r;
    vd_acct_rec_parse("n1", cut, strlen(cut), &r);
    assert_string_equal(r.op, "evict");
    assert_true(r.cut);
    assert_string_equal(r.outcome, "desktop sa...");
    /* Shortened to nothing, or inside a key or a value (slurmapi.c, fit):
     * unknown, not failed; the half field is not kept. */
    vd_acct_rec_parse("n1", "...", 3, &r);
    assert_string_equal(r.op, "?");
    assert_true(r.cut);
    const char *half = "evict: asked=save used=sa...";
    vd_acct_rec_parse("n1", half, strlen(half), &r);
    assert_string_equal(r.op, "evict");
    assert_string_equal(r.asked, "save");
    assert_string_equal(r.used, "");
    assert_true(r.cut);
    const char *inkey = "evict: asked=save used=save devices=- total=900ms p...";
    vd_acct_rec_parse("n1", inkey, strlen(inkey), &r);
    assert_string_equal(r.used, "save");
    assert_int_equal(r.total_ms, 900);
    assert_true(r.cut);
    const char *ctl = "vdesk evict: asked=save outcome=\"a\nb\033c\"";
    vd_acct_rec_parse("n1", ctl, strlen(ctl), &r);
    assert_string_equal(r.outcome, "a b c");
}

static void comment_records_by_node_site_text_skipped(void **state)
{
    (void)state;
    vd_acct_job *j = job_new(1, 1000);
    vd_err err;
    assert_int_equal(vd_acct_comment_parse("site says hi | vdesk[n1] evict: asked=save used=save "
                                           "devices=- total=9ms phases=save:9 outcome=\"ok\" | "
                                           "vdesk[n2] evict: asked=save used=none devices=- "
                                           "total=1ms phases=- outcome=\"no desktop\"", j, &err), 0);
    assert_int_equal(j->nrecs, 2);
    assert_string_equal(j->recs[0].node, "n1");
    assert_string_equal(j->recs[0].outcome, "ok");
    assert_string_equal(j->recs[1].node, "n2");
    assert_string_equal(j->recs[1].used, "none");
    assert_int_equal(j->recs[1].nphases, 0);
    free(j);
}

static void env_of_jobcomp_script(void **state)
{
    (void)state;
    vd_acct_job *j = calloc(1, sizeof(*j));
    vd_err err;
    assert_non_null(j);
    clearenv();
    assert_int_equal(vd_acct_job_from_env(j, &err), -1);
    assert_non_null(strstr(err.msg, "JobCompType=jobcomp/script"));
    setenv("JOBID", "12x", 1);
    assert_int_equal(vd_acct_job_from_env(j, &err), -1);
    setenv("JOBID", "12", 1);
    setenv("JOBSTATE", "PENDING", 1);
    setenv("START", "1000", 1);
    setenv("END", "99999999999999999999", 1);
    setenv("ARRAYJOBID", "0", 1);
    setenv("ARRAYTASKID", "4294967294", 1);
    setenv("USERNAME", "bob\nrm", 1);
    assert_int_equal(vd_acct_job_from_env(j, &err), 0);
    assert_int_equal(j->job, 12);
    assert_string_equal(j->state, "REQUEUED");
    assert_int_equal(j->start, 1000);
    assert_int_equal(j->end, 0);            /* malformed: not known */
    assert_int_equal(j->array_job, 0);
    assert_int_equal(j->array_task, VD_ACCT_NONE);
    assert_string_equal(j->user, "bob rm");
    setenv("ARRAYJOBID", "10", 1);
    setenv("ARRAYTASKID", "3", 1);
    assert_int_equal(vd_acct_job_from_env(j, &err), 0);
    assert_int_equal(j->array_job, 10);
    assert_int_equal(j->array_task, 3);
    assert_int_equal(vd_acct_gpus("gpu:2"), 2);
    assert_int_equal(vd_acct_gpus("gpu:a100:4(S:0-1),mps:400"), 4);
    assert_int_equal(vd_acct_gpus("mps:400"), 0);
    assert_int_equal(vd_acct_gpus("gpu:x"), -1);
    /* A whole job's total, not one node's: over 1024 GPUs is fine. */
    assert_int_equal(vd_acct_gpus("gpu:a100:1032,gpu:v100:8(IDX:0-7),mps:100"), 1040);
    assert_int_equal(vd_acct_gpus(""), 0);
    assert_int_equal(vd_acct_gpus("gpux:3"), 0);
    free(j);
}

/* Stored twice (a spooled run replayed): one run, its latest records. */
static void store_is_idempotent_and_counts_gpu_seconds(void **state)
{
    fx *f = *state;
    vd_acct_job *j = job_new(5, 2000);
    vd_err err;
    assert_int_equal(vd_acct_comment_parse("vdesk[n1] evict: asked=save used=save devices=- "
                                           "total=9ms phases=lock:1,save:8 outcome=\"ok\"", j, &err), 0);
    assert_int_equal(vd_acct_keep(f->db, 1000, j, NULL, 0, &err), 0);
    assert_int_equal(vd_acct_keep(f->db, 1000, j, NULL, 0, &err), 0);
    assert_int_equal(q(f->db, "SELECT count(*) FROM jobs"), 1);
    assert_int_equal(q(f->db, "SELECT count(*) FROM records"), 1);
    assert_int_equal(q(f->db, "SELECT count(*) FROM phases"), 2);
    assert_int_equal(q(f->db, "SELECT gpu_seconds FROM jobs"), 200);
    assert_int_equal(q(f->db, "SELECT user_version FROM pragma_user_version"), VD_ACCT_SCHEMA);
    j->nrecs = 0;
    assert_int_equal(vd_acct_keep(f->db, 1000, j, NULL, 0, &err), 0);
    assert_int_equal(q(f->db, "SELECT count(*) FROM records"), 0);
    assert_int_equal(q(f->db, "SELECT count(*) FROM phases"), 0);
    /* A requeued job: two runs of one id. */
    j->start = 3000;
    assert_int_equal(vd_acct_keep(f->db, 1000, j, NULL, 0, &err), 0);
    assert_int_equal(q(f->db, "SELECT count(*) FROM jobs WHERE job = 5"), 2);
    free(j);
}

static long long restores_of_7(const fx *f)
{
    return q(f->db, "SELECT count(*) FROM records WHERE job = 7 AND op = 'restore' AND node = 'n2' AND "
             "seq >= 1000 AND total_ms = 1500 AND outcome = 'desktop back'");
}

static void spool_file_put(const fx *f, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", f->spool, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_true(fputs(text, fp) >= 0);
    assert_int_equal(fclose(fp), 0);
}

/* The epilog's restore record, sent through the spool after the job's run
 * was stored (vd_acct_drop), joins that run at the next drain; storing the
 * run again keeps it; the same record sent twice (a crash between store
 * and unlink) is stored once; one whose run has not come waits, and is set
 * aside after a week, as is one that is not a record. */
static void restore_records_join_their_run(void **state)
{
    fx *f = *state;
    vd_acct_job *j = job_new(7, 1000), *other = job_new(8, 1000);
    vd_err err;
    char note[1024];
    snprintf(j->nodes, sizeof(j->nodes), "n[1-2]");
    const char *line = "vdesk restore: asked=save used=save devices=ua-gpu0 total=1500ms "
                       "phases=lock:1,restore:1400 outcome=\"desktop back\"";
    assert_int_equal(vd_acct_drop(f->db, "c1", 7, "n2", line, &err), 1);   /* no spool here */
    assert_int_equal(vd_acct_keep(f->db, 1000, j, NULL, 0, &err), 0);
    assert_int_equal(mkdir(f->spool, 0700), 0);
    assert_int_equal(vd_acct_drop(f->db, "c1", 7, "n2", line, &err), 0);
    assert_int_equal(vd_acct_drop(f->db, "c1", 9, "n1", line, &err), 0);   /* its run is not stored */
    assert_int_equal(vd_acct_drop(f->db, "c1", 7, "n3", line, &err), 0);   /* not a node of the run */
    spool_file_put(f, "rec-10-1000-1.json", "{\"schema\":1,\"kind\":\"record\",\"cluster\":\"c1\",\"job\":10,"
                   "\"node\":\"n1\",\"time\":1000,\"record\":\"vdesk restore: outcome=\\\"x\\\"\"}");
    spool_file_put(f, "rec-11-1000-1.json", "{\"kind\":\"record\",\"job\":\"<script>\"}");
    /* A node sends restores only: an eviction from the spool would count. */
    assert_int_equal(vd_acct_drop(f->db, "c1", 7, "n1", "vdesk evict: asked=save used=save outcome=\"x\"", &err), 0);
    assert_int_equal(vd_acct_keep(f->db, 1000, other, note, sizeof(note), &err), 0);
    assert_int_equal(restores_of_7(f), 1);
    assert_int_equal(q(f->db, "SELECT count(*) FROM phases WHERE job = 7 AND seq >= 1000"), 2);
    assert_int_equal(q(f->db, "SELECT count(*) FROM records WHERE op = 'restore'"), 1);
    assert_non_null(strstr(note, "not stored yet: kept for the next run"));
    assert_non_null(strstr(note, "rec-10-1000-1.json (no run of its job with its node came, renamed .bad)"));
    assert_non_null(strstr(note, "rec-11-1000-1.json (not a node's record, renamed .bad)"));
    assert_non_null(strstr(note, "(not a restore record, renamed .bad)"));
    assert_int_equal(q(f->db, "SELECT count(*) FROM records WHERE job = 7 AND op = 'evict'"), 0);
    assert_int_equal(spool_files(f->spool), 5);   /* jobs 9 and 7 on n3 wait; three set aside */
    /* Stored again (a spooled run replayed): the restore stays. */
    assert_int_equal(vd_acct_keep(f->db, 1000, j, NULL, 0, &err), 0);
    assert_int_equal(restores_of_7(f), 1);
    assert_int_equal(vd_acct_drop(f->db, "c1", 7, "n2", line, &err), 0);
    assert_int_equal(vd_acct_keep(f->db, 1000, other, NULL, 0, &err), 0);
    assert_int_equal(restores_of_7(f), 1);
    /* A spool others may write into is no place for root's files, nor is
     * a link to a directory. */
    assert_int_equal(chmod(f->spool, 0770), 0);
    assert_int_equal(vd_acct_drop(f->db, "c1", 7, "n2", line, &err), -1);
    assert_non_null(strstr(err.msg, "writable by group or others"));
    assert_int_equal(chmod(f->spool, 0700), 0);
    char aside[200];
    snprintf(aside, sizeof(aside), "%s.real", f->spool);
    assert_int_equal(rename(f->spool, aside), 0);
    assert_int_equal(symlink(aside, f->spool), 0);
    assert_int_equal(vd_acct_drop(f->db, "c1", 7, "n2", line, &err), -1);
    assert_non_null(strstr(err.msg, "a symbolic link"));
    free(j);
    free(other);
}

static void locked_database_keeps_the_run_for_the_next(void **state)
{
    fx *f = *state;
    vd_acct_job *a = job_new(1, 1000), *b = job_new(2, 1000);
    vd_err err;
    sqlite3 *holder;
    assert_int_equal(vd_acct_open(f->db, 1000, &holder, &err), 0);
    assert_int_equal(sqlite3_exec(holder, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(vd_acct_keep(f->db, 100, a, NULL, 0, &err), 1);
    assert_non_null(strstr(err.msg, "locked"));
    assert_non_null(strstr(err.msg, "kept in"));
    assert_int_equal(spool_files(f->spool), 1);
    assert_int_equal(sqlite3_exec(holder, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(holder);
    assert_int_equal(vd_acct_keep(f->db, 1000, b, NULL, 0, &err), 0);
    assert_int_equal(spool_files(f->spool), 0);
    assert_int_equal(q(f->db, "SELECT count(*) FROM jobs"), 2);
    free(a);
    free(b);
}

static void corrupt_database_keeps_the_run_and_names_the_fix(void **state)
{
    fx *f = *state;
    vd_acct_job *a = job_new(1, 1000), *b = job_new(2, 1000);
    vd_err err;
    FILE *fp = fopen(f->db, "w");
    assert_non_null(fp);
    for (int i = 0; i < 512; i++)
        fputs("garbage!", fp);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(vd_acct_keep(f->db, 100, a, NULL, 0, &err), 1);
    assert_non_null(strstr(err.msg, f->db));
    assert_non_null(strstr(err.msg, "move it aside"));
    assert_int_equal(spool_files(f->spool), 1);
    char aside[200];
    snprintf(aside, sizeof(aside), "%s.damaged", f->db);
    assert_int_equal(rename(f->db, aside), 0);
    assert_int_equal(vd_acct_keep(f->db, 1000, b, NULL, 0, &err), 0);
    assert_int_equal(q(f->db, "SELECT count(*) FROM jobs"), 2);
    assert_int_equal(spool_files(f->spool), 0);
    free(a);
    free(b);
}

static void a_missing_directory_names_the_fix(void **state)
{
    fx *f = *state;
    char path[200];
    vd_err err;
    sqlite3 *db;
    snprintf(path, sizeof(path), "%s/none/acct.db", f->dir);
    assert_int_equal(vd_acct_open(path, 100, &db, &err), -1);
    assert_null(db);
    assert_non_null(strstr(err.msg, "install -d -o SLURMUSER -m 0750"));
}

static void newer_schema_is_refused_not_written(void **state)
{
    fx *f = *state;
    vd_acct_job *a = job_new(1, 1000);
    vd_err err;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(vd_acct_keep(f->db, 100, a, NULL, 0, &err), 1);
    assert_non_null(strstr(err.msg, "newer vdesk"));
    assert_int_equal(q(f->db, "SELECT count(*) FROM sqlite_master"), 0);
    free(a);
}

/* A spool file is untrusted: one that is not a run is set aside as .bad,
 * the others are stored. */
static void hostile_spool_file_is_set_aside(void **state)
{
    fx *f = *state;
    vd_acct_job *a = job_new(1, 1000), *b = job_new(2, 1000);
    vd_err err;
    assert_int_equal(vd_acct_spool_put(f->spool, a, &err), 0);
    char path[256];
    snprintf(path, sizeof(path), "%s/9-9-9.json", f->spool);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("{\"schema\":1,\"job\":\"x\"}", fp);
    assert_int_equal(fclose(fp), 0);
    snprintf(path, sizeof(path), "%s/notes.txt", f->spool);
    fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fclose(fp), 0);
    char note[512];
    assert_int_equal(vd_acct_keep(f->db, 1000, b, note, sizeof(note), &err), 0);
    assert_non_null(strstr(note, ": 1 spooled run(s) stored"));
    assert_non_null(strstr(note, "9-9-9.json (not a run, renamed .bad)"));
    assert_int_equal(q(f->db, "SELECT count(*) FROM jobs"), 2);
    snprintf(path, sizeof(path), "%s/9-9-9.json.bad", f->spool);
    assert_int_equal(access(path, F_OK), 0);
    snprintf(path, sizeof(path), "%s/notes.txt", f->spool);
    assert_int_equal(access(path, F_OK), 0);
    free(a);
    free(b);
}

static void json_round_trip(void **state)
{
    (void)state;
    vd_acct_job *a = job_new(77, 1000), *b = calloc(1, sizeof(*b));
    vd_err err;
    assert_non_null(b);
    assert_int_equal(vd_acct_comment_parse("vdesk[n1] restore: asked=save used=save devices=g "
                                           "total=9ms phases=a:1,b:2! outcome=\"back\"", a, &err), 0);
    json_object *o = vd_acct_job_json(a);
    assert_int_equal(vd_acct_job_from_json(o, b, &err), 0);
    json_object_put(o);
    assert_int_equal(b->job, 77);
    assert_int_equal(b->array_task, VD_ACCT_NONE);
    assert_int_equal(b->nrecs, 1);
    assert_string_equal(b->recs[0].op, "restore");
    assert_int_equal(b->recs[0].nphases, 2);
    assert_int_equal(b->recs[0].failed_phases, 1);
    assert_string_equal(b->recs[0].outcome, "back");
    free(a);
    free(b);
}

/* Jobs ending together: several processes store at once, none is lost.
 * (Each waits its busy timeout for the others: 10 s, as vdesk-jobcomp
 * does, longer under valgrind.) */
static void concurrent_writers_lose_nothing(void **state)
{
    fx *f = *state;
    enum { PROCS = 4, EACH = 10 };
    int busy_ms = (int)(10000 * test_time_scale());
    for (int p = 0; p < PROCS; p++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            int bad = 0;
            for (int i = 0; i < EACH; i++) {
                vd_acct_job *j = job_new((unsigned)(p * 1000 + i + 1), 1000);
                vd_err err;
                if (vd_acct_keep(f->db, busy_ms, j, NULL, 0, &err) != 0) {
                    fprintf(stderr, "writer %d, job %u: %s\n", p, j->job, err.msg);
                    bad = 1;
                }
                free(j);
            }
            _exit(bad);
        }
    }
    for (int p = 0; p < PROCS; p++) {
        int st;
        assert_true(wait(&st) > 0);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    assert_int_equal(q(f->db, "SELECT count(*) FROM jobs"), PROCS * EACH);
}

/* The first jobs of a new install end together: the programs that find
 * no database create it at once, and each stores its run (none waits in
 * the spool for lack of a busy handler). Released together by a pipe,
 * in rounds, since the window is short. */
static void writers_creating_the_database_together_all_store(void **state)
{
    fx *f = *state;
    enum { ROUNDS = 10, PROCS = 6 };
    int busy_ms = (int)(10000 * test_time_scale());
    for (int r = 0; r < ROUNDS; r++) {
        char db[160];
        snprintf(db, sizeof(db), "%s/new%d.db", f->dir, r);
        int go[2];
        assert_int_equal(pipe(go), 0);
        for (int p = 0; p < PROCS; p++) {
            pid_t pid = fork();
            assert_true(pid >= 0);
            if (pid == 0) {
                char c;
                close(go[1]);
                if (read(go[0], &c, 1) != 0)
                    _exit(2);
                vd_acct_job *j = job_new((unsigned)(p + 1), 1000);
                vd_err err;
                int rc = vd_acct_keep(db, busy_ms, j, NULL, 0, &err);
                if (rc != 0)
                    fprintf(stderr, "round %d, writer %d: %s\n", r, p, err.msg);
                free(j);
                _exit(rc != 0);
            }
        }
        close(go[0]);
        close(go[1]);
        for (int p = 0; p < PROCS; p++) {
            int st;
            assert_true(wait(&st) > 0);
            assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        }
        assert_int_equal(q(db, "SELECT count(*) FROM jobs"), PROCS);
    }
}

static int in_list(const char *list, const char *node)
{
    return strstr(list, node) != NULL;
}

/* The AdminComment outlives a requeue: a run counts only its own nodes. */
static void records_of_other_nodes_are_not_counted(void **state)
{
    (void)state;
    vd_acct_job *j = job_new(1, 1000);
    vd_err err;
    assert_int_equal(vd_acct_comment_parse("vdesk[n1] evict: asked=save used=save outcome=\"a\" | "
                                           "vdesk[n2] evict: asked=save used=save outcome=\"b\"", j, &err), 0);
    snprintf(j->nodes, sizeof(j->nodes), "n2");
    assert_int_equal(vd_acct_recs_keep_nodes(j, in_list), 1);
    assert_int_equal(j->nrecs, 1);
    assert_string_equal(j->recs[0].node, "n2");
    assert_non_null(strstr(j->note, "1 record(s) of nodes this run did not have"));
    free(j);
}

static void a_spool_that_is_a_link_is_refused(void **state)
{
    fx *f = *state;
    vd_acct_job *a = job_new(1, 1000);
    vd_err err;
    char other[128];
    snprintf(other, sizeof(other), "%s/elsewhere", f->dir);
    assert_int_equal(mkdir(other, 0700), 0);
    assert_int_equal(symlink(other, f->spool), 0);
    assert_int_equal(vd_acct_spool_put(f->spool, a, &err), -1);
    assert_non_null(strstr(err.msg, "a symbolic link"));
    assert_int_equal(spool_files(other), 0);
    /* The run still goes into the database, and the note says why the
     * spool was not read. */
    char note[1024];
    assert_int_equal(vd_acct_keep(f->db, 1000, a, note, sizeof(note), &err), 0);
    assert_non_null(strstr(note, "a symbolic link"));
    assert_int_equal(q(f->db, "SELECT count(*) FROM jobs"), 1);
    free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(record_line_reads_back),
        cmocka_unit_test(unreadable_and_cut_records_keep_their_text),
        cmocka_unit_test(comment_records_by_node_site_text_skipped),
        cmocka_unit_test(env_of_jobcomp_script),
        cmocka_unit_test(json_round_trip),
        cmocka_unit_test(records_of_other_nodes_are_not_counted),
        cmocka_unit_test_setup_teardown(a_drain_is_recorded_and_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(schema_1_is_upgraded_in_place, setup, teardown),
        cmocka_unit_test_setup_teardown(a_spool_that_is_a_link_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(store_is_idempotent_and_counts_gpu_seconds, setup, teardown),
        cmocka_unit_test_setup_teardown(locked_database_keeps_the_run_for_the_next, setup, teardown),
        cmocka_unit_test_setup_teardown(corrupt_database_keeps_the_run_and_names_the_fix, setup, teardown),
        cmocka_unit_test_setup_teardown(newer_schema_is_refused_not_written, setup, teardown),
        cmocka_unit_test_setup_teardown(a_missing_directory_names_the_fix, setup, teardown),
        cmocka_unit_test_setup_teardown(hostile_spool_file_is_set_aside, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_writers_lose_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(writers_creating_the_database_together_all_store, setup, teardown),
        cmocka_unit_test_setup_teardown(restore_records_join_their_run, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
