/* SPDX-License-Identifier: MIT */
/*
 * report.c - `vdeskctl report [users|nodes|jobs|availability]`: the accounting
 * database (acct.h) as a table, JSON or CSV. Read-only: it opens the
 * database read-only and never waits on a writer for long (WAL lets it
 * read while vdesk-jobcomp writes).
 *
 * Each view is one SQL query over the runs the filters select (`sel`) and
 * their eviction records (`ev`); the rows are gathered as JSON objects and
 * printed in the format asked, so the three formats never disagree.
 */
#include "report.h"

#include <errno.h>
#include <json-c/json.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "acct.h"
#include "slurmapi.h"
#include "slurmdb.h"

/* Bound by every view: ?1 since, ?2 until (epoch seconds, NULL: open),
 * ?3 user, ?4 account, ?5 node (NULL: all). A run is in the period when it
 * ended in it; --node keeps the runs that have a record of that node. */
#define SELECTED \
    "WITH sel AS (SELECT * FROM jobs j WHERE (?1 IS NULL OR j.end_time >= ?1)" \
    " AND (?2 IS NULL OR j.end_time < ?2) AND (?3 IS NULL OR j.user = ?3)" \
    " AND (?4 IS NULL OR j.account = ?4) AND (?5 IS NULL OR EXISTS (SELECT 1 FROM records r" \
    " WHERE (r.cluster, r.job, r.start) = (j.cluster, j.job, j.start) AND r.node = ?5)))," \
    " ev AS (SELECT r.*, CASE WHEN s.start > 0 AND s.end_time >= s.start THEN s.end_time - s.start" \
    " ELSE 0 END AS run_s FROM records r JOIN sel s USING (cluster, job, start)" \
    " WHERE r.op IN ('evict', '?') AND (?5 IS NULL OR r.node = ?5))"

/* An eviction that moved the desktop off the node (a mode was applied;
 * "none": it was off), and one that failed (or cannot be read; a record
 * the AdminComment shortened is unknown, not failed). */
#define EVICTED "(op = 'evict' AND used NOT IN ('', '-', 'none'))"
#define FAILED "(cut = 0 AND (op = '?' OR (op = 'evict' AND used IN ('', '-'))))"
#define MODE_COUNT(m) "(SELECT count(*) FROM ev WHERE (ev.cluster, ev.job, ev.start) = " \
    "(s.cluster, s.job, s.start) AND " EVICTED " AND used = '" m "') AS " m

static const char USERS[] = SELECTED
    ", pj AS (SELECT s.user, s.account, s.gpu_seconds, " MODE_COUNT("suspend") ", " MODE_COUNT("save")
    ", " MODE_COUNT("shutdown") ", " MODE_COUNT("shrink") ", " MODE_COUNT("migrate") " FROM sel s)"
    " SELECT user, account, count(*) AS jobs, round(sum(coalesce(gpu_seconds, 0)) / 3600.0, 2) AS gpu_hours,"
    " sum(suspend + save + shutdown + shrink + migrate > 0) AS evicting_jobs, sum(suspend) AS suspend,"
    " sum(save) AS save, sum(shutdown) AS shutdown, sum(shrink) AS shrink, sum(migrate) AS migrate"
    " FROM pj GROUP BY user, account ORDER BY gpu_hours DESC, user, account";

/* Away: the desktop left for the run of the job (its eviction's own time
 * is in mean/max_evict_ms), jobs that overlap on a node counted once;
 * home_pct over the period asked, else over the runs' own span (SPAN_S:
 * that period in seconds). */
#define SPAN_S \
    ", span AS (SELECT max(coalesce(?2, (SELECT max(end_time) FROM sel)) - coalesce(?1, (SELECT min(start)" \
    " FROM sel WHERE start > 0)), 1) AS s)"

/* The merged time of each node's intervals (iv: node, kind, a, b) of
 * kind away (SET "away"), or of any kind (SET "busy"): SET_s (node, t).
 * Overlapping intervals count once (a second job on a node whose desktop
 * is away already records an eviction too). */
#define ISLANDS(set) \
    set " AS (SELECT node, a, b, max(b) OVER (PARTITION BY node ORDER BY a, b ROWS BETWEEN UNBOUNDED" \
    " PRECEDING AND 1 PRECEDING) AS before FROM iv WHERE b > a AND (kind = 'away' OR '" set "' = 'busy'))," \
    set "_s AS (SELECT node, sum(e - s) AS t FROM (SELECT node, min(a) AS s, max(b) AS e FROM (SELECT *," \
    " sum(before IS NULL OR a > before) OVER (PARTITION BY node ORDER BY a, b) AS island FROM " set ")" \
    " GROUP BY node, island) GROUP BY node)"
static const char NODES[] = SELECTED SPAN_S
    ", iv AS (SELECT node, 'away' AS kind, start AS a, start + run_s AS b FROM ev WHERE " EVICTED "), "
    ISLANDS("away")
    " SELECT node, sum(" EVICTED ") AS evictions, sum(" EVICTED " AND used = 'suspend') AS suspend,"
    " sum(" EVICTED " AND used = 'save') AS save, sum(" EVICTED " AND used = 'shutdown') AS shutdown,"
    " sum(" EVICTED " AND used = 'shrink') AS shrink, sum(" EVICTED " AND used = 'migrate') AS migrate,"
    " sum(" FAILED ") AS failed, sum(failed_phases > 0) AS fallbacks,"
    " round(coalesce((SELECT t FROM away_s WHERE away_s.node = ev.node), 0) / 3600.0, 2) AS away_hours,"
    " round(100.0 * (1 - min(1.0, coalesce((SELECT t FROM away_s WHERE away_s.node = ev.node), 0) * 1.0"
    " / (SELECT s FROM span))), 1) AS home_pct,"
    " CAST(avg(CASE WHEN " EVICTED " THEN total_ms END) AS INTEGER) AS mean_evict_ms,"
    " max(CASE WHEN " EVICTED " THEN total_ms END) AS max_evict_ms,"
    " (SELECT p.name || ' ' || p.ms || 'ms' FROM phases p JOIN ev e2 USING (cluster, job, start, seq)"
    "  WHERE e2.node = ev.node ORDER BY p.ms DESC LIMIT 1) AS slowest_phase"
    " FROM ev GROUP BY node ORDER BY node";

static const char JOBS[] = SELECTED
    " SELECT s.job, CASE WHEN s.array_job IS NULL THEN '' ELSE s.array_job || '_' || s.array_task END AS array,"
    " s.user, s.account, s.state, CASE WHEN s.start > 0 THEN datetime(s.start, 'unixepoch') END AS start_utc,"
    " datetime(s.end_time, 'unixepoch') AS end_utc, s.nodes, s.gpus, s.gpu_seconds,"
    " coalesce((SELECT group_concat(r.node || ':' || r.op || ':' || r.asked || '>' || r.used || ':'"
    " || coalesce(r.total_ms, '?') || 'ms', ' ') FROM records r"
    " WHERE (r.cluster, r.job, r.start) = (s.cluster, s.job, s.start)), '') AS vdesk"
    " FROM sel s ORDER BY s.end_time, s.job, s.start";

/* The picture's time line: each eviction of a selected run, with the
 * run's span (when the desktop was away for the job). */
static const char EVICTIONS[] = SELECTED
    " SELECT node, job, start, start + run_s AS stop, used, " FAILED " AS failed, " EVICTED " AS evicted"
    " FROM ev WHERE start > 0 ORDER BY node, start";

/* Where each node's desktop was over the period: away while jobs that
 * evicted it ran, off while jobs that found it off ran (their eviction
 * used "none") and no evicting one did, home the rest. Unlike the other
 * views, a run counts for the part of it inside the period, and the runs
 * of one node are merged where they overlap (a second job on a node whose
 * desktop is away already records an eviction too). vdesk looks at the
 * desktop when jobs start and end, so a desktop off while no job runs
 * counts as home. drains: the operations of the period's runs that
 * drained the node. */
#define OFF "(op = 'evict' AND used = 'none')"
static const char AVAILABILITY[] = SELECTED
    ", runs AS (SELECT * FROM jobs j WHERE j.start > 0 AND (?1 IS NULL OR j.end_time > ?1)"
    " AND (?2 IS NULL OR j.start < ?2) AND (?3 IS NULL OR j.user = ?3) AND (?4 IS NULL OR j.account = ?4)),"
    " per AS (SELECT max(coalesce(?2, (SELECT max(end_time) FROM runs)) - coalesce(?1, (SELECT min(start)"
    " FROM runs)), 1) AS s),"
    " iv AS (SELECT r.node, CASE WHEN " EVICTED " THEN 'away' ELSE 'off' END AS kind,"
    " max(j.start, coalesce(?1, j.start)) AS a, min(j.end_time, coalesce(?2, j.end_time)) AS b"
    " FROM records r JOIN runs j USING (cluster, job, start)"
    " WHERE (" EVICTED " OR " OFF ") AND (?5 IS NULL OR r.node = ?5)), "
    ISLANDS("away") ", " ISLANDS("busy") ","
    " dr AS (SELECT r.node, count(*) AS drains FROM records r JOIN sel s USING (cluster, job, start)"
    " WHERE r.drained AND (?5 IS NULL OR r.node = ?5) GROUP BY r.node),"
    " nodes AS (SELECT node FROM iv UNION SELECT node FROM dr),"
    " t AS (SELECT n.node, coalesce(aw.t, 0) AS away_s, coalesce(bu.t, 0) - coalesce(aw.t, 0) AS off_s,"
    " coalesce(dr.drains, 0) AS drains FROM nodes n LEFT JOIN away_s aw USING (node)"
    " LEFT JOIN busy_s bu USING (node) LEFT JOIN dr USING (node))"
    " SELECT node, round(100.0 * max(0.0, 1 - min(1.0, (away_s + off_s) * 1.0 / s)), 1) AS home_pct,"
    " round(100.0 * min(1.0, away_s * 1.0 / s), 1) AS away_pct, round(100.0 * min(1.0, off_s * 1.0 / s), 1)"
    " AS off_pct, round(away_s / 3600.0, 2) AS away_hours, round(off_s / 3600.0, 2) AS off_hours, drains"
    " FROM t, per ORDER BY node";

/* The span of the selected runs: the picture's period when none is given. */
static const char SPAN[] = SELECTED
    " SELECT min(CASE WHEN start > 0 THEN start END) AS first, max(end_time) AS last FROM sel";

static const struct { const char *name, *sql; } VIEWS[] = {
    { "users", USERS }, { "nodes", NODES }, { "jobs", JOBS }, { "availability", AVAILABILITY },
    { "evictions", EVICTIONS }, { "span", SPAN },
};

static const char *view_sql(const char *name)
{
    for (size_t i = 0; i < sizeof(VIEWS) / sizeof(*VIEWS); i++)
        if (!strcmp(VIEWS[i].name, name))
            return VIEWS[i].sql;
    return NULL;
}

int report_date_parse(const char *cmd, const char *opt, const char *s, long long *out)
{
    static const char *forms[] = { "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d" };
    for (size_t i = 0; i < sizeof(forms) / sizeof(*forms); i++) {
        struct tm tm = { .tm_isdst = -1 };
        const char *end = strptime(s, forms[i], &tm);
        if (end && !*end) {
            time_t t = mktime(&tm);
            if (t == (time_t)-1)
                break;
            *out = (long long)t;
            return 0;
        }
    }
    fprintf(stderr, "vdeskctl %s: %s '%s': give a date as YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS] "
            "(local time)\n", cmd, opt, s);
    return -1;
}

static json_object *column_json(sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: return json_object_new_int64(sqlite3_column_int64(st, i));
    case SQLITE_FLOAT: return json_object_new_double(sqlite3_column_double(st, i));
    case SQLITE_NULL: return NULL;
    default: return json_object_new_string((const char *)sqlite3_column_text(st, i));
    }
}

/* Runs the view into an array of objects (column order kept). */
static int rows_get(sqlite3 *db, const char *sql, const long long *since, const long long *until,
                    const report_opts *o, json_object **rows, const char *path)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "vdeskctl report: accounting database %s: %s\n", path, sqlite3_errmsg(db));
        return -1;
    }
    if (since)
        sqlite3_bind_int64(st, 1, *since);
    if (until)
        sqlite3_bind_int64(st, 2, *until);
    sqlite3_bind_text(st, 3, o->user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, o->account, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, o->node, -1, SQLITE_STATIC);
    *rows = json_object_new_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_object *row = json_object_new_object();
        for (int i = 0; i < sqlite3_column_count(st); i++)
            json_object_object_add(row, sqlite3_column_name(st, i), column_json(st, i));
        json_object_array_add(*rows, row);
    }
    if (rc != SQLITE_DONE)
        fprintf(stderr, "vdeskctl report: accounting database %s: %s\n", path, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static const char *cell(json_object *v, char *buf, size_t size)
{
    if (!v)
        return "";
    if (json_object_is_type(v, json_type_double)) {
        snprintf(buf, size, "%.2f", json_object_get_double(v));
        return buf;
    }
    return json_object_get_string(v);
}

static void csv_field(const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"')
            putchar('"');
        putchar(*s);
    }
    putchar('"');
}

/* The header is the first row's keys; every row has the same ones. */
static void print_delimited(json_object *rows, const char **names, int n, int csv)
{
    size_t nrows = json_object_array_length(rows);
    int width[64] = { 0 };
    char buf[64];
    for (int c = 0; c < n && !csv; c++) {
        width[c] = (int)strlen(names[c]);
        for (size_t r = 0; r < nrows; r++) {
            json_object *v = json_object_object_get(json_object_array_get_idx(rows, r), names[c]);
            int w = (int)strlen(cell(v, buf, sizeof(buf)));
            width[c] = w > width[c] ? w : width[c];
        }
    }
    for (size_t r = 0; r <= nrows; r++) {
        for (int c = 0; c < n; c++) {
            const char *s = names[c];
            if (r > 0)
                s = cell(json_object_object_get(json_object_array_get_idx(rows, r - 1), names[c]), buf,
                         sizeof(buf));
            if (csv) {
                if (c)
                    putchar(',');
                csv_field(s);
            } else if (c + 1 < n) {
                printf("%-*s  ", width[c], s);
            } else {
                fputs(s, stdout);
            }
        }
        putchar('\n');
    }
}

static int print_rows(json_object *rows, sqlite3 *db, const char *sql, report_format f)
{
    if (f == REPORT_JSON)
        return puts(json_object_to_json_string_ext(rows, JSON_C_TO_STRING_PRETTY)) < 0 ? -1 : 0;
    /* Column names from the statement: an empty result still has a header. */
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    const char *names[64];
    int n = sqlite3_column_count(st) < 64 ? sqlite3_column_count(st) : 64;
    for (int i = 0; i < n; i++)
        names[i] = sqlite3_column_name(st, i);
    print_delimited(rows, names, n, f == REPORT_CSV);
    sqlite3_finalize(st);
    return fflush(stdout) == 0 ? 0 : -1;
}

static sqlite3 *db_open(const char *path)
{
    sqlite3 *db = NULL;
    if (access(path, F_OK) != 0 && errno != ENOENT) {
        fprintf(stderr, "vdeskctl report: accounting database %s: %s (run it as root, or as the "
                "user that may read it)\n", path, strerror(errno));
        return NULL;
    }
    if (access(path, F_OK) != 0) {
        fprintf(stderr, "vdeskctl report: no accounting database at %s (accounting_db in vdesk.conf): "
                "vdesk-jobcomp makes it when the first job ends, once slurm.conf has "
                "JobCompType=jobcomp/script and JobCompLoc=.../vdesk-jobcomp (admin.md, "
                "\"Accounting\")\n", path);
        return NULL;
    }
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        fprintf(stderr, "vdeskctl report: accounting database %s: %s\n", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    /* A database of schema 1 is made 2 by the next vdesk-jobcomp run; until
     * then its records read as never drained (the report opens it
     * read-only: a temporary view stands for the table). */
    if (v == 1) {
        if (sqlite3_exec(db, "CREATE TEMP VIEW records AS SELECT *, 0 AS drained FROM main.records",
                         NULL, NULL, NULL) != SQLITE_OK) {
            fprintf(stderr, "vdeskctl report: accounting database %s (schema 1): %s\n", path, sqlite3_errmsg(db));
            sqlite3_close(db);
            return NULL;
        }
        v = VD_ACCT_SCHEMA;
    }
    if (v != VD_ACCT_SCHEMA) {
        fprintf(stderr, "vdeskctl report: accounting database %s: %s (schema %d; this vdesk reads %d)\n",
                path, v < 0 ? sqlite3_errmsg(db) : v > VD_ACCT_SCHEMA ? "written by a newer vdesk"
                : "not vdesk's, or empty", v, VD_ACCT_SCHEMA);
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

static int run_store(const vd_acct_job *j, void *arg, vd_err *err)
{
    /* vdesk's store holds the runs that ended: so does this one. */
    return j->end ? vd_acct_store(arg, j, err) : 0;
}

/* The runs slurmdbd has of the period, in a database in memory. */
static sqlite3 *slurmdbd_load(const long long *since, const long long *until)
{
    sqlite3 *db = NULL;
    vd_err err;
    if (vd_acct_open(":memory:", 0, &db, &err) < 0 ||
        vd_slurmdb_jobs_each(since ? *since : 0, until ? *until : 0, run_store, db, &err) < 0) {
        fprintf(stderr, "vdeskctl report --slurmdbd: %s\n", err.msg);
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

json_object *report_view(sqlite3 *db, const char *view, const long long *since, const long long *until,
                         const report_opts *o, const char *path)
{
    json_object *rows = NULL;
    const char *sql = view_sql(view);
    if (!sql || rows_get(db, sql, since, until, o, &rows, path) < 0) {
        json_object_put(rows);
        return NULL;
    }
    return rows;
}

int report_node_use(const vd_conf *c, const char *node, long long since, long long until,
                    double *not_evicted, double *job_gpu_s)
{
    if (access(c->accounting_db, F_OK) != 0 && errno == ENOENT)
        return 1;
    sqlite3 *db = db_open(c->accounting_db);
    if (!db)
        return -1;
    report_opts o = { .node = node };
    json_object *nodes = report_view(db, "nodes", &since, &until, &o, c->accounting_db);
    sqlite3_stmt *st = NULL;
    int rc = -1;
    /* The part of each run inside the period: a week's job counts its
     * hours in a day's period, not its week. */
    if (!nodes || sqlite3_prepare_v2(db, "SELECT nodes, nnodes, gpus * (min(end_time, ?2) - max(start, ?1))"
                                     " FROM jobs WHERE start > 0 AND start < ?2 AND end_time > ?1 AND gpus > 0",
                                     -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "vdeskctl: accounting database %s: %s\n", c->accounting_db, sqlite3_errmsg(db));
        goto out;
    }
    json_object *row = json_object_array_get_idx(nodes, 0);
    /* No eviction of this node in the period: never away. */
    *not_evicted = row ? json_object_get_double(json_object_object_get(row, "home_pct")) / 100 : 1;
    *job_gpu_s = 0;
    sqlite3_bind_int64(st, 1, since);
    sqlite3_bind_int64(st, 2, until);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        const char *list = (const char *)sqlite3_column_text(st, 0);
        int nn = sqlite3_column_int(st, 1);
        if (list && vd_slurm_hostlist_has(list, node) == 1)
            *job_gpu_s += (double)sqlite3_column_int64(st, 2) / (nn > 0 ? nn : 1);
    }
    if (r == SQLITE_DONE)
        rc = 0;
    else
        fprintf(stderr, "vdeskctl: accounting database %s: %s\n", c->accounting_db, sqlite3_errmsg(db));
out:
    sqlite3_finalize(st);
    json_object_put(nodes);
    sqlite3_close(db);
    return rc;
}

int cmd_report(const vd_conf *c, const report_opts *o)
{
    const char *view = o->view ? o->view : "users";
    const char *sql = view_sql(view);
    if (o->svg && o->view) {
        fprintf(stderr, "vdeskctl report: --svg draws the nodes and the users in one picture; give no view "
                "with it\n");
        return 2;
    }
    if (!sql || !strcmp(view, "evictions") || !strcmp(view, "span")) {
        fprintf(stderr, "vdeskctl report: unknown view '%s': give users, nodes or jobs, or availability\n", view);
        return 2;
    }
    long long since, until;
    if ((o->since && report_date_parse("report", "--since", o->since, &since) < 0) ||
        (o->until && report_date_parse("report", "--until", o->until, &until) < 0))
        return 2;
    if (o->since && o->until && until <= since) {
        fprintf(stderr, "vdeskctl report: --until %s is not after --since %s\n", o->until, o->since);
        return 2;
    }
    const char *source = o->slurmdbd ? "slurmdbd" : c->accounting_db;
    sqlite3 *db = o->slurmdbd ? slurmdbd_load(o->since ? &since : NULL, o->until ? &until : NULL)
                              : db_open(c->accounting_db);
    if (!db)
        return 1;
    if (o->svg) {
        int prc = report_picture(db, o->since ? &since : NULL, o->until ? &until : NULL, o, source);
        sqlite3_close(db);
        return prc;
    }
    json_object *rows = NULL;
    int rc = rows_get(db, sql, o->since ? &since : NULL, o->until ? &until : NULL, o, &rows, source);
    if (rc == 0)
        rc = print_rows(rows, db, sql, o->format);
    json_object_put(rows);
    sqlite3_close(db);
    return rc == 0 ? 0 : 1;
}
