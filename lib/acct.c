/* SPDX-License-Identifier: MIT */
#include "acct.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jsonfile.h"
#include "slurmapi.h"
#include "statedir.h"

/* --- a record's one-line form (record.h, vd_report_format) --------------- */

static void copy_n(char *dst, size_t size, const char *s, size_t len)
{
    size_t n = len < size - 1 ? len : size - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    /* What came from outside is printed later: no control characters. */
    for (size_t i = 0; i < n; i++)
        if (iscntrl((unsigned char)dst[i]))
            dst[i] = ' ';
}

static int parse_long(const char *s, size_t len, const char *suffix, long *out)
{
    size_t sl = strlen(suffix);
    if (len <= sl || len - sl > 12 || memcmp(s + len - sl, suffix, sl) != 0)
        return -1;
    long v = 0;
    for (size_t i = 0; i < len - sl; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* "name:ms[!],..." into r's phases. */
static int parse_phases(const char *s, size_t len, vd_acct_rec *r)
{
    r->nphases = r->failed_phases = 0;
    if (len == 1 && *s == '-')
        return 0;
    for (size_t at = 0; at < len;) {
        const char *comma = memchr(s + at, ',', len - at);
        size_t end = comma ? (size_t)(comma - s) : len;
        const char *colon = NULL;
        for (size_t i = end; i > at; i--)
            if (s[i - 1] == ':') {
                colon = s + i - 1;
                break;
            }
        if (!colon || r->nphases == VD_ACCT_MAX_PHASES)
            return -1;
        vd_acct_phase *p = &r->phases[r->nphases];
        size_t nlen = (size_t)(colon - s) - at;
        size_t vlen = end - (size_t)(colon - s) - 1;
        p->ok = !(vlen && colon[vlen] == '!');
        if (nlen == 0 || parse_long(colon + 1, vlen - !p->ok, "", &p->ms) < 0)
            return -1;
        copy_n(p->name, sizeof(p->name), s + at, nlen);
        r->failed_phases += !p->ok;
        r->nphases++;
        at = end + 1;
    }
    return 0;
}

static int rec_field(vd_acct_rec *r, const char *key, size_t klen, const char *v, size_t vlen)
{
#define KEY(k) (klen == sizeof(k) - 1 && memcmp(key, k, klen) == 0)
    if (KEY("asked"))
        copy_n(r->asked, sizeof(r->asked), v, vlen);
    else if (KEY("used"))
        copy_n(r->used, sizeof(r->used), v, vlen);
    else if (KEY("devices"))
        copy_n(r->devices, sizeof(r->devices), v, vlen);
    else if (KEY("total"))
        return parse_long(v, vlen, "ms", &r->total_ms);
    else if (KEY("phases"))
        return parse_phases(v, vlen, r);
    else if (KEY("migrated"))
        copy_n(r->migrated, sizeof(r->migrated), v, vlen);
    else if (KEY("drained"))
        r->drained = vlen == 3 && memcmp(v, "yes", 3) == 0;
    else
        return -1;
    return 0;
#undef KEY
}

/* Whether s[0..at) ends a phase: ":MS" or ":MS!" (or is "phases=" or
 * "phases=-", none), so that a key found at `at` is not inside a phase's
 * name. */
static int after_phase(const char *s, size_t at)
{
    if (at == 7 || (at == 8 && s[7] == '-'))
        return 1;
    size_t end = at > 0 && s[at - 1] == '!' ? at - 1 : at, d = end;
    while (d > 0 && isdigit((unsigned char)s[d - 1]))
        d--;
    return d < end && d > 0 && s[d - 1] == ':';
}

/* The first of the keys that can follow phases= in the format, where a
 * phase ends (a phase's name may hold spaces, and a visitor's the
 * desktop's name). */
static const char *phases_end(const char *s, size_t len)
{
    static const char *const next[] = { " migrated=", " drained=", " outcome=\"" };
    for (size_t at = 7; at < len; at++) {
        if (s[at] != ' ' || !after_phase(s, at))
            continue;
        for (size_t i = 0; i < sizeof(next) / sizeof(next[0]); i++)
            if (len - at >= strlen(next[i]) && memcmp(s + at, next[i], strlen(next[i])) == 0)
                return s + at;
    }
    return NULL;
}

/* "OP: KEY=VALUE ... outcome=\"...\"", as the AdminComment has it, or
 * with syslog's "vdesk " before it. */
static int ends_cut(const char *s, size_t len)
{
    return len >= 3 && memcmp(s + len - 3, "...", 3) == 0;
}

static int rec_parse(const char *s, size_t len, vd_acct_rec *r)
{
    if (len >= 6 && memcmp(s, "vdesk ", 6) == 0)
        s += 6, len -= 6;
    const char *colon = memchr(s, ':', len);
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof(r->op))
        return -1;
    copy_n(r->op, sizeof(r->op), s, (size_t)(colon - s));
    for (const char *c = r->op; *c; c++)
        if (!islower((unsigned char)*c))
            return -1;
    size_t at = (size_t)(colon - s) + 1;
    while (at < len) {
        while (at < len && s[at] == ' ')
            at++;
        if (at == len)
            break;
        if (len - at >= 9 && memcmp(s + at, "outcome=\"", 9) == 0) {
            size_t from = at + 9, to = len;
            if (to > from && s[to - 1] == '"')
                to--;
            else
                r->cut = 1;
            copy_n(r->outcome, sizeof(r->outcome), s + from, to - from);
            return 0;
        }
        const char *sp = memchr(s + at, ' ', len - at);
        /* Phase names have spaces ("unplug ua-gpu0"): phases= runs to the
         * key that follows it in the format. */
        if (len - at > 7 && memcmp(s + at, "phases=", 7) == 0)
            sp = phases_end(s + at, len - at);
        size_t end = sp ? (size_t)(sp - s) : len;
        /* The AdminComment shortened the record here ("used=sa..."): what
         * was read stays, the half field goes. */
        if (!sp && ends_cut(s, len)) {
            r->cut = 1;
            return 0;
        }
        const char *eq = memchr(s + at, '=', end - at);
        if (!eq || rec_field(r, s + at, (size_t)(eq - s) - at, eq + 1, end - (size_t)(eq - s) - 1) < 0)
            return -1;
        at = end;
    }
    /* No outcome: a record the AdminComment cut short. */
    r->cut = 1;
    return 0;
}

void vd_acct_rec_parse(const char *node, const char *text, size_t len, vd_acct_rec *r)
{
    memset(r, 0, sizeof(*r));
    r->total_ms = -1;
    copy_n(r->node, sizeof(r->node), node, strlen(node));
    vd_acct_rec keep = *r;
    if (rec_parse(text, len, r) == 0)
        return;
    *r = keep;
    snprintf(r->op, sizeof(r->op), "?");
    copy_n(r->outcome, sizeof(r->outcome), text, len);
    /* "vdesk[n1] ...": a record the AdminComment had to shorten to nothing
     * is not a failure, only unknown. */
    r->cut = ends_cut(text, len);
}

int vd_acct_recs_keep_nodes(vd_acct_job *j, int (*has)(const char *list, const char *node))
{
    int k = 0, dropped = 0;
    for (int i = 0; i < j->nrecs; i++)
        if (!j->nodes[0] || has(j->nodes, j->recs[i].node))
            j->recs[k++] = j->recs[i];
        else
            dropped++;
    j->nrecs = k;
    if (dropped && !j->note[0])
        snprintf(j->note, sizeof(j->note), "%d record(s) of nodes this run did not have (an earlier run's, "
                 "before a requeue) not counted", dropped);
    return dropped;
}

static int add_comment_rec(const char *node, const char *rec, size_t len, void *arg, vd_err *err)
{
    (void)err;
    vd_acct_job *j = arg;
    if (j->nrecs == VD_ACCT_MAX_RECS) {
        snprintf(j->note, sizeof(j->note), "more than %d vdesk records in the AdminComment: "
                 "the later ones are not stored", VD_ACCT_MAX_RECS);
        return 1;
    }
    vd_acct_rec_parse(node, rec, len, &j->recs[j->nrecs++]);
    return 0;
}

int vd_acct_comment_parse(const char *comment, vd_acct_job *j, vd_err *err)
{
    return vd_admin_comment_each(comment, add_comment_rec, j, err) < 0 ? -1 : 0;
}

/* One "gpu[:TYPE]:COUNT[(...)]" item's COUNT; 0 for another gres. */
static int gres_item_gpus(const char *s, size_t len, long long *n)
{
    *n = 0;
    if (len < 3 || memcmp(s, "gpu", 3) != 0 || (len > 3 && s[3] != ':' && s[3] != '('))
        return 0;
    const char *paren = memchr(s, '(', len);
    size_t end = paren ? (size_t)(paren - s) : len;
    size_t from = end;
    while (from > 0 && isdigit((unsigned char)s[from - 1]))
        from--;
    if (from == end || from == 0 || s[from - 1] != ':' || end - from > 12)
        return -1;
    for (size_t i = from; i < end; i++)
        *n = *n * 10 + (s[i] - '0');
    return 0;
}

long vd_acct_gpus(const char *gres)
{
    long long total = 0;
    for (const char *p = gres; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        long long n;
        if (gres_item_gpus(p, len, &n) < 0)
            return -1;
        total += n;
        if (total > (1LL << 40))
            return -1;
        p = comma ? comma + 1 : p + len;
    }
    return (long)total;
}

/* --- jobcomp/script's environment ---------------------------------------- */

static int env_uint(const char *name, unsigned long long max, unsigned long long *out)
{
    const char *s = getenv(name);
    if (!s || !*s || strlen(s) > 20)
        return -1;
    unsigned long long v = 0;
    for (const char *c = s; *c; c++) {
        if (!isdigit((unsigned char)*c) || v > (max - (unsigned)(*c - '0')) / 10)
            return -1;
        v = v * 10 + (unsigned)(*c - '0');
    }
    *out = v;
    return 0;
}

static void env_str(const char *name, char *dst, size_t size)
{
    const char *s = getenv(name);
    copy_n(dst, size, s ? s : "", s ? strlen(s) : 0);
}

static long long env_time(const char *name)
{
    unsigned long long v;
    return env_uint(name, 1ULL << 40, &v) < 0 ? 0 : (long long)v;
}

static unsigned env_u32(const char *name, unsigned unknown)
{
    unsigned long long v;
    return env_uint(name, 0xffffffffULL, &v) < 0 ? unknown : (unsigned)v;
}

int vd_acct_job_from_env(vd_acct_job *j, vd_err *err)
{
    memset(j, 0, sizeof(*j));
    unsigned long long id;
    if (env_uint("JOBID", 0xfffffffdULL, &id) < 0 || id == 0)
        return vd_err_set(err, "JOBID='%s' is not a job id: vdesk-jobcomp is run by slurmctld "
                          "(JobCompType=jobcomp/script, JobCompLoc=vdesk-jobcomp), which sets it",
                          getenv("JOBID") ? getenv("JOBID") : "");
    j->job = (unsigned)id;
    j->submit = env_time("SUBMIT");
    j->start = env_time("START");
    j->end = env_time("END");
    /* Slurm's "no task" is NO_VAL - 1; any value over a real task id is none. */
    j->array_job = env_u32("ARRAYJOBID", 0);
    j->array_task = env_u32("ARRAYTASKID", VD_ACCT_NONE);
    if (j->array_job == 0 || j->array_task >= 0xfffffffe)
        j->array_job = 0, j->array_task = VD_ACCT_NONE;
    j->het_offset = VD_ACCT_NONE;
    j->uid = env_u32("UID", VD_ACCT_NONE);
    j->nnodes = env_u32("NODECNT", 0);
    j->gpus = -1;
    env_str("CLUSTER", j->cluster, sizeof(j->cluster));
    env_str("JOBNAME", j->name, sizeof(j->name));
    env_str("USERNAME", j->user, sizeof(j->user));
    env_str("ACCOUNT", j->account, sizeof(j->account));
    env_str("PARTITION", j->partition, sizeof(j->partition));
    env_str("QOS", j->qos, sizeof(j->qos));
    env_str("NODES", j->nodes, sizeof(j->nodes));
    env_str("JOBSTATE", j->state, sizeof(j->state));
    env_str("EXITCODE", j->exit_code, sizeof(j->exit_code));
    /* jobcomp/script also runs when a run ends in a requeue. */
    if (!strcmp(j->state, "PENDING"))
        snprintf(j->state, sizeof(j->state), "REQUEUED");
    return 0;
}

/* --- JSON: the spool's files --------------------------------------------- */

#define JSTR(o, k, v) json_object_object_add(o, k, json_object_new_string(v))
#define JINT(o, k, v) json_object_object_add(o, k, json_object_new_int64((int64_t)(v)))

static json_object *rec_json(const vd_acct_rec *r)
{
    json_object *o = json_object_new_object(), *ph = json_object_new_array();
    JSTR(o, "node", r->node);
    JSTR(o, "op", r->op);
    JSTR(o, "asked", r->asked);
    JSTR(o, "used", r->used);
    JSTR(o, "devices", r->devices);
    JINT(o, "total_ms", r->total_ms);
    JSTR(o, "migrated", r->migrated);
    JINT(o, "drained", r->drained);
    JSTR(o, "outcome", r->outcome);
    JINT(o, "cut", r->cut);
    for (int i = 0; i < r->nphases; i++) {
        json_object *p = json_object_new_object();
        JSTR(p, "name", r->phases[i].name);
        JINT(p, "ms", r->phases[i].ms);
        JINT(p, "ok", r->phases[i].ok);
        json_object_array_add(ph, p);
    }
    json_object_object_add(o, "phases", ph);
    return o;
}

json_object *vd_acct_job_json(const vd_acct_job *j)
{
    json_object *o = json_object_new_object(), *recs = json_object_new_array();
    JINT(o, "schema", VD_ACCT_JSON_SCHEMA);
    JSTR(o, "cluster", j->cluster);
    JINT(o, "job", j->job);
    JINT(o, "submit", j->submit);
    JINT(o, "start", j->start);
    JINT(o, "end", j->end);
    JINT(o, "array_job", j->array_job);
    JINT(o, "array_task", j->array_task);
    JINT(o, "het_job", j->het_job);
    JINT(o, "het_offset", j->het_offset);
    JINT(o, "uid", j->uid);
    JINT(o, "nnodes", j->nnodes);
    JINT(o, "restarts", j->restarts);
    JSTR(o, "name", j->name);
    JSTR(o, "user", j->user);
    JSTR(o, "account", j->account);
    JSTR(o, "partition", j->partition);
    JSTR(o, "qos", j->qos);
    JSTR(o, "nodes", j->nodes);
    JSTR(o, "state", j->state);
    JSTR(o, "exit_code", j->exit_code);
    JINT(o, "gpus", j->gpus);
    JSTR(o, "note", j->note);
    for (int i = 0; i < j->nrecs; i++)
        json_object_array_add(recs, rec_json(&j->recs[i]));
    json_object_object_add(o, "records", recs);
    return o;
}

typedef struct jreader {
    json_object *o;
    const char *bad;   /* the first key that was missing or of the wrong kind */
} jreader;

static void jr_str(jreader *r, const char *key, char *dst, size_t size)
{
    json_object *v;
    if (!json_object_object_get_ex(r->o, key, &v) || !json_object_is_type(v, json_type_string)) {
        r->bad = r->bad ? r->bad : key;
        return;
    }
    copy_n(dst, size, json_object_get_string(v), (size_t)json_object_get_string_len(v));
}

static long long jr_int(jreader *r, const char *key, long long min, long long max)
{
    json_object *v;
    if (!json_object_object_get_ex(r->o, key, &v) || !json_object_is_type(v, json_type_int)) {
        r->bad = r->bad ? r->bad : key;
        return min;
    }
    long long x = json_object_get_int64(v);
    if (x < min || x > max) {
        r->bad = r->bad ? r->bad : key;
        return min;
    }
    return x;
}

static const char *rec_from_json(json_object *o, vd_acct_rec *rec)
{
    jreader r = { .o = o };
    memset(rec, 0, sizeof(*rec));
    if (!json_object_is_type(o, json_type_object))
        return "records[]";
    jr_str(&r, "node", rec->node, sizeof(rec->node));
    jr_str(&r, "op", rec->op, sizeof(rec->op));
    jr_str(&r, "asked", rec->asked, sizeof(rec->asked));
    jr_str(&r, "used", rec->used, sizeof(rec->used));
    jr_str(&r, "devices", rec->devices, sizeof(rec->devices));
    rec->total_ms = (long)jr_int(&r, "total_ms", -1, 1LL << 40);
    jr_str(&r, "migrated", rec->migrated, sizeof(rec->migrated));
    /* Absent in files of a vdesk before it: not drained. */
    if (json_object_object_get_ex(o, "drained", NULL))
        rec->drained = (int)jr_int(&r, "drained", 0, 1);
    jr_str(&r, "outcome", rec->outcome, sizeof(rec->outcome));
    rec->cut = (int)jr_int(&r, "cut", 0, 1);
    json_object *ph;
    if (!json_object_object_get_ex(o, "phases", &ph) || !json_object_is_type(ph, json_type_array) ||
        json_object_array_length(ph) > VD_ACCT_MAX_PHASES)
        return r.bad ? r.bad : "phases";
    for (size_t i = 0; i < json_object_array_length(ph) && !r.bad; i++) {
        jreader p = { .o = json_object_array_get_idx(ph, i) };
        if (!json_object_is_type(p.o, json_type_object))
            return "phases[]";
        vd_acct_phase *x = &rec->phases[rec->nphases++];
        jr_str(&p, "name", x->name, sizeof(x->name));
        x->ms = (long)jr_int(&p, "ms", 0, 1LL << 40);
        x->ok = (int)jr_int(&p, "ok", 0, 1);
        rec->failed_phases += !x->ok;
        r.bad = p.bad;
    }
    return r.bad;
}

int vd_acct_job_from_json(json_object *o, vd_acct_job *j, vd_err *err)
{
    jreader r = { .o = o };
    memset(j, 0, sizeof(*j));
    if (!json_object_is_type(o, json_type_object))
        return vd_err_set(err, "not a JSON object");
    if (jr_int(&r, "schema", 0, 1 << 20) != VD_ACCT_JSON_SCHEMA)
        return vd_err_set(err, "schema is not %d", VD_ACCT_JSON_SCHEMA);
    jr_str(&r, "cluster", j->cluster, sizeof(j->cluster));
    j->job = (unsigned)jr_int(&r, "job", 1, 0xfffffffd);
    j->submit = jr_int(&r, "submit", 0, 1LL << 40);
    j->start = jr_int(&r, "start", 0, 1LL << 40);
    j->end = jr_int(&r, "end", 0, 1LL << 40);
    j->array_job = (unsigned)jr_int(&r, "array_job", 0, 0xffffffff);
    j->array_task = (unsigned)jr_int(&r, "array_task", 0, 0xffffffff);
    j->het_job = (unsigned)jr_int(&r, "het_job", 0, 0xffffffff);
    j->het_offset = (unsigned)jr_int(&r, "het_offset", 0, 0xffffffff);
    j->uid = (unsigned)jr_int(&r, "uid", 0, 0xffffffff);
    j->nnodes = (unsigned)jr_int(&r, "nnodes", 0, 0xffffffff);
    j->restarts = (unsigned)jr_int(&r, "restarts", 0, 0xffff);
    jr_str(&r, "name", j->name, sizeof(j->name));
    jr_str(&r, "user", j->user, sizeof(j->user));
    jr_str(&r, "account", j->account, sizeof(j->account));
    jr_str(&r, "partition", j->partition, sizeof(j->partition));
    jr_str(&r, "qos", j->qos, sizeof(j->qos));
    jr_str(&r, "nodes", j->nodes, sizeof(j->nodes));
    jr_str(&r, "state", j->state, sizeof(j->state));
    jr_str(&r, "exit_code", j->exit_code, sizeof(j->exit_code));
    j->gpus = (long)jr_int(&r, "gpus", -1, 1 << 20);
    jr_str(&r, "note", j->note, sizeof(j->note));
    if (r.bad)
        return vd_err_set(err, "'%s' is missing or not valid", r.bad);
    json_object *recs;
    if (!json_object_object_get_ex(o, "records", &recs) || !json_object_is_type(recs, json_type_array) ||
        json_object_array_length(recs) > VD_ACCT_MAX_RECS)
        return vd_err_set(err, "'records' is missing, not an array or longer than %d", VD_ACCT_MAX_RECS);
    for (size_t i = 0; i < json_object_array_length(recs); i++) {
        const char *bad = rec_from_json(json_object_array_get_idx(recs, i), &j->recs[j->nrecs++]);
        if (bad)
            return vd_err_set(err, "records[%zu]: '%s' is missing or not valid", i, bad);
    }
    return 0;
}

/* --- the database ------------------------------------------------------- */

static const char SCHEMA[] =
    "CREATE TABLE jobs ("
    " cluster TEXT NOT NULL, job INTEGER NOT NULL, start INTEGER NOT NULL,"
    " submit INTEGER NOT NULL, end_time INTEGER NOT NULL,"
    " array_job INTEGER, array_task INTEGER, het_job INTEGER, het_offset INTEGER,"
    " name TEXT NOT NULL, user TEXT NOT NULL, uid INTEGER, account TEXT NOT NULL,"
    " partition TEXT NOT NULL, qos TEXT NOT NULL, nodes TEXT NOT NULL, nnodes INTEGER NOT NULL,"
    " state TEXT NOT NULL, exit_code TEXT NOT NULL, restarts INTEGER NOT NULL,"
    " gpus INTEGER, gpu_seconds INTEGER, note TEXT NOT NULL, stored_at INTEGER NOT NULL,"
    " PRIMARY KEY (cluster, job, start));"
    "CREATE TABLE records ("
    " cluster TEXT NOT NULL, job INTEGER NOT NULL, start INTEGER NOT NULL, seq INTEGER NOT NULL,"
    " node TEXT NOT NULL, op TEXT NOT NULL, asked TEXT NOT NULL, used TEXT NOT NULL,"
    " devices TEXT NOT NULL, total_ms INTEGER, failed_phases INTEGER NOT NULL,"
    " migrated TEXT NOT NULL, outcome TEXT NOT NULL, cut INTEGER NOT NULL, drained INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (cluster, job, start, seq),"
    " FOREIGN KEY (cluster, job, start) REFERENCES jobs ON DELETE CASCADE);"
    "CREATE TABLE phases ("
    " cluster TEXT NOT NULL, job INTEGER NOT NULL, start INTEGER NOT NULL, seq INTEGER NOT NULL,"
    " n INTEGER NOT NULL, name TEXT NOT NULL, ms INTEGER NOT NULL, ok INTEGER NOT NULL,"
    " PRIMARY KEY (cluster, job, start, seq, n),"
    " FOREIGN KEY (cluster, job, start, seq) REFERENCES records ON DELETE CASCADE);"
    "CREATE INDEX jobs_end ON jobs (end_time);"
    "CREATE INDEX jobs_user ON jobs (user, end_time);"
    "CREATE INDEX records_node ON records (node, op);"
    "PRAGMA user_version = 2;";

/* From schema 1: the records' drains. */
static const char SCHEMA_1_TO_2[] =
    "ALTER TABLE records ADD COLUMN drained INTEGER NOT NULL DEFAULT 0;"
    "PRAGMA user_version = 2;";

static int db_fail(sqlite3 *db, const char *path, const char *what, vd_err *err)
{
    int code = sqlite3_extended_errcode(db);
    const char *fix = "";
    switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        fix = ": another program holds it locked (vdesk-jobcomp waits its busy timeout)";
        break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        fix = ": it is damaged; move it aside (the runs that could not be stored wait in its "
              "spool, and the next job's vdesk-jobcomp stores them into a new database)";
        break;
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
        fix = ": make it and its directory writable by slurmctld's user (SlurmUser)";
        break;
    case SQLITE_FULL:
        fix = ": its file system is full";
        break;
    }
    return vd_err_set(err, "accounting database %s: %s: %s%s", path, what, sqlite3_errmsg(db), fix);
}

static int exec_sql(sqlite3 *db, const char *path, const char *sql, vd_err *err)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : db_fail(db, path, sql, err);
}

static int user_version(sqlite3 *db, const char *path, int *v, vd_err *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return db_fail(db, path, "reading its schema version", err);
    int rc = sqlite3_step(st);
    *v = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : db_fail(db, path, "reading its schema version", err);
}

static int schema_newer(const char *path, int v, vd_err *err)
{
    return vd_err_set(err, "accounting database %s has schema %d, and this vdesk knows %d at most: "
                      "it was written by a newer vdesk; install that one here too", path, v, VD_ACCT_SCHEMA);
}

static int schema_ensure(sqlite3 *db, const char *path, vd_err *err)
{
    int v;
    /* Most opens find the schema current: they read it without the write
     * lock, which jobs ending together would otherwise queue for twice
     * (and a newer one is refused without it). */
    if (user_version(db, path, &v, err) < 0)
        return -1;
    if (v == VD_ACCT_SCHEMA)
        return 0;
    if (v > VD_ACCT_SCHEMA)
        return schema_newer(path, v, err);
    if (exec_sql(db, path, "BEGIN IMMEDIATE", err) < 0)
        return -1;
    if (user_version(db, path, &v, err) < 0)
        goto fail;
    if (v == 0 && exec_sql(db, path, SCHEMA, err) < 0)
        goto fail;
    if (v == 1 && exec_sql(db, path, SCHEMA_1_TO_2, err) < 0)
        goto fail;
    if (v > VD_ACCT_SCHEMA) {
        schema_newer(path, v, err);
        goto fail;
    }
    return exec_sql(db, path, "COMMIT", err);
fail:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

/* journal_mode answers the mode it is in: WAL may be refused (a file
 * system without shared memory), and then readers would block writers.
 * Turning it on in a new database needs the database alone, and SQLite
 * answers BUSY at once, without its busy handler, to programs creating
 * it together (jobs ending at one moment on a new install): tried again
 * for the busy timeout. */
static int wal_on(sqlite3 *db, const char *path, int busy_ms, vd_err *err)
{
    enum { RETRY_MS = 10 };
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK)
        return db_fail(db, path, "turning WAL on", err);
    int rc;
    long long deadline = vd_mono_ms() + busy_ms;
    while (((rc = sqlite3_step(st)) & 0xff) == SQLITE_BUSY && vd_mono_ms() < deadline) {
        sqlite3_reset(st);
        sqlite3_sleep(RETRY_MS);
    }
    int wal = rc == SQLITE_ROW && sqlite3_column_text(st, 0) &&
              !strcmp((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return db_fail(db, path, "turning WAL on", err);
    return wal ? 0 : vd_err_set(err, "accounting database %s: its file system does not allow "
                                "SQLite's WAL mode; put it on a local file system", path);
}

int vd_acct_open(const char *path, int busy_ms, sqlite3 **db, vd_err *err)
{
    *db = NULL;
    /* The database itself is never reached through a symbolic link (the
     * directories above it may be links: /var/lib often is). */
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return vd_err_set(err, "accounting database %s is not a regular file (a symbolic link?): "
                          "give accounting_db the real file", path);
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir)
        *slash = '\0';
    if (slash && slash != dir && stat(dir, &st) < 0)
        return vd_err_set(err, "accounting database %s: its directory %s: %s; make it for slurmctld's "
                          "user: install -d -o SLURMUSER -m 0750 %s (admin.md, \"Accounting\")", path, dir,
                          strerror(errno), dir);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(path, db, flags, NULL) != SQLITE_OK) {
        db_fail(*db, path, "cannot open it", err);
        sqlite3_close(*db);
        *db = NULL;
        return -1;
    }
    sqlite3_busy_timeout(*db, busy_ms);
    sqlite3_extended_result_codes(*db, 1);
    /* An in-memory database (vdeskctl report --slurmdbd) has no WAL. */
    if ((strcmp(path, ":memory:") && wal_on(*db, path, busy_ms, err) < 0) ||
        exec_sql(*db, path, "PRAGMA synchronous = FULL", err) < 0 ||
        exec_sql(*db, path, "PRAGMA foreign_keys = ON", err) < 0 ||
        schema_ensure(*db, path, err) < 0) {
        sqlite3_close(*db);
        *db = NULL;
        return -1;
    }
    return 0;
}

static const char *db_path_of(sqlite3 *db)
{
    const char *p = sqlite3_db_filename(db, "main");
    return p && *p ? p : "(in memory)";
}

/* Runs st with its bindings, then finalizes it. */
static int step_done(sqlite3 *db, sqlite3_stmt *st, const char *what, vd_err *err)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_fail(db, db_path_of(db), what, err);
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, vd_err *err)
{
    return sqlite3_prepare_v2(db, sql, -1, st, NULL) == SQLITE_OK ? 0
           : db_fail(db, db_path_of(db), "preparing a statement", err);
}

static void bind_key(sqlite3_stmt *st, const vd_acct_job *j)
{
    sqlite3_bind_text(st, 1, j->cluster, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, j->job);
    sqlite3_bind_int64(st, 3, j->start);
}

static void bind_opt(sqlite3_stmt *st, int i, long long v, long long none)
{
    if (v == none)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_int64(st, i, v);
}

static int store_job_row(sqlite3 *db, const vd_acct_job *j, vd_err *err)
{
    sqlite3_stmt *st;
    /* An update in place of a run stored before: deleting its row would
     * take the records the nodes sent with it. */
    if (prepare(db, "INSERT INTO jobs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
                " ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)"
                " ON CONFLICT (cluster, job, start) DO UPDATE SET submit = excluded.submit,"
                " end_time = excluded.end_time, array_job = excluded.array_job, array_task = excluded.array_task,"
                " het_job = excluded.het_job, het_offset = excluded.het_offset, name = excluded.name,"
                " user = excluded.user, uid = excluded.uid, account = excluded.account,"
                " partition = excluded.partition, qos = excluded.qos, nodes = excluded.nodes,"
                " nnodes = excluded.nnodes, state = excluded.state, exit_code = excluded.exit_code,"
                " restarts = excluded.restarts, gpus = excluded.gpus, gpu_seconds = excluded.gpu_seconds,"
                " note = excluded.note, stored_at = excluded.stored_at", &st, err) < 0)
        return -1;
    bind_key(st, j);
    sqlite3_bind_int64(st, 4, j->submit);
    sqlite3_bind_int64(st, 5, j->end);
    bind_opt(st, 6, j->array_job, 0);
    bind_opt(st, 7, j->array_task, VD_ACCT_NONE);
    bind_opt(st, 8, j->het_job, 0);
    bind_opt(st, 9, j->het_offset, VD_ACCT_NONE);
    sqlite3_bind_text(st, 10, j->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 11, j->user, -1, SQLITE_STATIC);
    bind_opt(st, 12, j->uid, VD_ACCT_NONE);
    sqlite3_bind_text(st, 13, j->account, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 14, j->partition, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 15, j->qos, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 16, j->nodes, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 17, j->nnodes);
    sqlite3_bind_text(st, 18, j->state, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 19, j->exit_code, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 20, j->restarts);
    bind_opt(st, 21, j->gpus, -1);
    /* GPU-seconds of the run: Slurm's allocation times its wall time. */
    bind_opt(st, 22, j->gpus >= 0 && j->start && j->end >= j->start ? j->gpus * (j->end - j->start) : -1, -1);
    sqlite3_bind_text(st, 23, j->note, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 24, (long long)time(NULL));
    return step_done(db, st, "storing a job", err);
}

static int store_phases(sqlite3 *db, const vd_acct_job *j, int seq, const vd_acct_rec *r, vd_err *err)
{
    for (int n = 0; n < r->nphases; n++) {
        sqlite3_stmt *st;
        if (prepare(db, "INSERT INTO phases VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", &st, err) < 0)
            return -1;
        bind_key(st, j);
        sqlite3_bind_int(st, 4, seq);
        sqlite3_bind_int(st, 5, n);
        sqlite3_bind_text(st, 6, r->phases[n].name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, r->phases[n].ms);
        sqlite3_bind_int(st, 8, r->phases[n].ok);
        if (step_done(db, st, "storing a phase", err) < 0)
            return -1;
    }
    return 0;
}

static int store_rec(sqlite3 *db, const vd_acct_job *j, int seq, const vd_acct_rec *r, vd_err *err)
{
    sqlite3_stmt *st;
    if (prepare(db, "INSERT INTO records (cluster, job, start, seq, node, op, asked, used, devices, total_ms,"
                " failed_phases, migrated, outcome, cut, drained) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
                " ?10, ?11, ?12, ?13, ?14, ?15)", &st, err) < 0)
        return -1;
    bind_key(st, j);
    sqlite3_bind_int(st, 4, seq);
    sqlite3_bind_text(st, 5, r->node, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, r->op, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, r->asked, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, r->used, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, r->devices, -1, SQLITE_STATIC);
    bind_opt(st, 10, r->total_ms, -1);
    sqlite3_bind_int(st, 11, r->failed_phases);
    sqlite3_bind_text(st, 12, r->migrated, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 13, r->outcome, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 14, r->cut);
    sqlite3_bind_int(st, 15, r->drained);
    if (step_done(db, st, "storing a record", err) < 0)
        return -1;
    return store_phases(db, j, seq, r, err);
}

int vd_acct_store(sqlite3 *db, const vd_acct_job *j, vd_err *err)
{
    const char *path = db_path_of(db);
    if (exec_sql(db, path, "BEGIN IMMEDIATE", err) < 0)
        return -1;
    /* The run's old records from the AdminComment go first (a spooled run
     * stored twice, say): REPLACE alone would leave records the new one no
     * longer has. Those the nodes sent (restores, seq >= VD_ACCT_DROP_SEQ)
     * came after and stay. */
    sqlite3_stmt *st;
    int rc = prepare(db, "DELETE FROM records WHERE cluster = ?1 AND job = ?2 AND start = ?3 AND seq < ?4",
                     &st, err);
    if (rc == 0) {
        bind_key(st, j);
        sqlite3_bind_int(st, 4, VD_ACCT_DROP_SEQ);
        rc = step_done(db, st, "replacing a job", err);
    }
    if (rc == 0)
        rc = store_job_row(db, j, err);
    for (int i = 0; i < j->nrecs && rc == 0; i++)
        rc = store_rec(db, j, i, &j->recs[i], err);
    if (rc == 0 && exec_sql(db, path, "COMMIT", err) == 0)
        return 0;
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return vd_err_prefix(err, "job %u", j->job);
}

/* --- the spool ---------------------------------------------------------- */

#define DROP_PREFIX "rec-"
#define DROP_MAX_AGE_S (7 * 86400)   /* a node's record whose run never came */

static int drop_take(sqlite3 *db, const char *path, const char *name, int *bad, char *note, size_t note_size,
                     vd_err *err);

int vd_acct_spool_dir(const char *db_path, char *buf, size_t size, vd_err *err)
{
    int n = snprintf(buf, size, "%s.spool", db_path);
    return n > 0 && (size_t)n < size ? 0 : vd_err_set(err, "accounting database path too long: %s", db_path);
}

/* A run: JOB-START-HASH.json; a node's record: rec-JOB-MS-HASH.json. */
static void note_add(char *note, size_t size, const char *name, const char *why)
{
    size_t len = strlen(note);
    if (len < size)
        snprintf(note + len, size - len, "%s%s (%s)", len ? "; " : "", name, why);
}

/* djb2 of s, from h: the spool's file names tell clusters (and nodes) apart. */
static unsigned name_hash(unsigned h, const char *s)
{
    for (; *s; s++)
        h = h * 33 + (unsigned char)*s;
    return h;
}

/* A spool file that is not what its name says goes aside as NAME.bad,
 * counted and named in the note; it is never read again. */
static void set_aside(const char *path, const char *name, int *bad, char *note, size_t note_size, const char *why)
{
    char to[PATH_MAX + 8];
    snprintf(to, sizeof(to), "%s.bad", path);
    if (rename(path, to) == 0) {
        (*bad)++;
        note_add(note, note_size, name, why);
    }
}

static int spool_name_ok(const char *name)
{
    if (!strncmp(name, DROP_PREFIX, strlen(DROP_PREFIX)))
        name += strlen(DROP_PREFIX);
    size_t len = strlen(name);
    if (len < 6 || strcmp(name + len - 5, ".json") != 0 || name[0] == '.')
        return 0;
    for (size_t i = 0; i < len - 5; i++)
        if (!isdigit((unsigned char)name[i]) && name[i] != '-')
            return 0;
    return 1;
}

/* The spool is a real directory of the user who writes the database,
 * never a link to somewhere else. 1: it is; 0: it does not exist. */
static int spool_check(const char *dir, vd_err *err)
{
    struct stat st;
    if (lstat(dir, &st) < 0)
        return errno == ENOENT ? 0 : vd_err_set(err, "accounting spool %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022))
        return vd_err_set(err, "accounting spool %s must be a directory of uid %u, not writable by "
                          "others (it is %s, uid %u, mode %o): move it aside", dir, (unsigned)geteuid(),
                          S_ISLNK(st.st_mode) ? "a symbolic link" : S_ISDIR(st.st_mode) ? "a directory"
                          : "not a directory", (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
    return 1;
}

int vd_acct_spool_put(const char *dir, const vd_acct_job *j, vd_err *err)
{
    int ok = spool_check(dir, err);
    if (ok < 0)
        return -1;
    if (!ok && mkdir(dir, 0700) < 0 && errno != EEXIST)
        return vd_err_set(err, "accounting spool %s: cannot make it: %s", dir, strerror(errno));
    char name[96];
    /* The cluster is in the file; two clusters' runs of one id and start
     * are told apart by a hash of its name. */
    snprintf(name, sizeof(name), "%u-%lld-%u.json", j->job, j->start, name_hash(5381, j->cluster));
    json_object *o = vd_acct_job_json(j);
    int rc = o ? vd_json_file_save(dir, name, o, err) : vd_err_set(err, "out of memory");
    json_object_put(o);
    return rc < 0 ? vd_err_prefix(err, "accounting spool %s", dir) : 0;
}


static int spool_take(sqlite3 *db, const char *dir, const char *name, int *bad, char *note,
                      size_t note_size, vd_err *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    json_object *o = NULL;
    vd_err why;
    /* A file that cannot be read now (permissions, no descriptors left) is
     * left for a later run: only what is read and is not a run is bad. */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT && errno != ELOOP)
            note_add(note, note_size, name, strerror(errno));
        if (errno != ELOOP)
            return 0;
    } else {
        close(fd);
    }
    if (!strncmp(name, DROP_PREFIX, strlen(DROP_PREFIX)))
        return drop_take(db, path, name, bad, note, note_size, err);
    vd_acct_job *j = calloc(1, sizeof(*j));
    if (!j)
        return vd_err_set(err, "out of memory");
    int rc = vd_json_file_load(path, 4 << 20, "", &o, &why);
    if (rc == 0 && !o) {            /* taken by another run meanwhile */
        free(j);
        return 0;
    }
    if (rc < 0 || vd_acct_job_from_json(o, j, &why) < 0) {
        set_aside(path, name, bad, note, note_size, "not a run, renamed .bad");
        json_object_put(o);
        free(j);
        return 0;
    }
    json_object_put(o);
    rc = vd_acct_store(db, j, err);
    free(j);
    if (rc == 0 && unlink(path) < 0 && errno != ENOENT)
        return vd_err_set(err, "accounting spool %s: stored but cannot remove it: %s", path, strerror(errno));
    return rc;
}

int vd_acct_spool_drain(sqlite3 *db, const char *dir, int *stored, int *bad, char *note,
                        size_t note_size, vd_err *err)
{
    *stored = *bad = 0;
    if (note_size)
        note[0] = '\0';
    int ok = spool_check(dir, err);
    if (ok <= 0)
        return ok;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : vd_err_set(err, "accounting spool %s: %s", dir, strerror(errno));
    /* The runs first, then the nodes' records: a restore must find its own
     * run, not an earlier one of a requeued job. */
    int rc = 0;
    for (int records = 0; records <= 1 && rc == 0; records++) {
        struct dirent *e;
        rewinddir(d);
        while (rc == 0 && (e = readdir(d))) {
            int is_record = strncmp(e->d_name, DROP_PREFIX, strlen(DROP_PREFIX)) == 0;
            if (!spool_name_ok(e->d_name) || is_record != records)
                continue;
            int bad_before = *bad;
            rc = spool_take(db, dir, e->d_name, bad, note, note_size, err);
            *stored += rc == 0 && *bad == bad_before && !records;
        }
    }
    closedir(d);
    return rc;
}

/* --- the nodes' records (restores): vd_acct_drop ------------------------- */

/* Writes text to name in the directory dfd (dir, for messages) through
 * .name.tmp, the file given to the directory's owner when written by root.
 * The directory belongs to another user: everything is relative to dfd,
 * opened once without following a link, and the file is made with O_EXCL
 * and O_NOFOLLOW, so that no link that user puts there is followed. */
static int drop_write(int dfd, const char *dir, const char *name, const char *text, const struct stat *dst,
                      vd_err *err)
{
    char tmp[128];
    snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return vd_err_set(err, "%s/%s: cannot create: %s", dir, tmp, strerror(errno));
    int rc = (geteuid() == 0 && fchown(fd, dst->st_uid, dst->st_gid) < 0) ||
             vd_state_write_all(fd, text, strlen(text)) < 0 || fsync(fd) < 0 ? -1 : 0;
    int e = errno;
    if (close(fd) < 0 && rc == 0) {
        rc = -1;
        e = errno;
    }
    if (rc == 0 && renameat(dfd, tmp, dfd, name) < 0) {
        rc = -1;
        e = errno;
    }
    if (rc < 0) {
        unlinkat(dfd, tmp, 0);
        return vd_err_set(err, "%s/%s: cannot write it: %s", dir, name, strerror(e));
    }
    return 0;
}

int vd_acct_drop(const char *db_path, const char *cluster, unsigned job, const char *node, const char *record,
                 vd_err *err)
{
    char dir[PATH_MAX], name[96];
    struct stat st;
    if (vd_acct_spool_dir(db_path, dir, sizeof(dir), err) < 0)
        return -1;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0 && errno == ENOENT)
        return 1;                   /* this node does not see the spool */
    if (dfd < 0) {
        int e = errno;
        return vd_err_set(err, "accounting spool %s: %s (make it a directory of vdesk-jobcomp's user, mode "
                          "0700)", dir, lstat(dir, &st) == 0 && S_ISLNK(st.st_mode) ? "a symbolic link"
                          : lstat(dir, &st) == 0 && !S_ISDIR(st.st_mode) ? "not a directory" : strerror(e));
    }
    /* What vdesk-jobcomp drains (spool_check): no group or other writes. */
    if (fstat(dfd, &st) < 0 || (st.st_mode & 022)) {
        close(dfd);
        return vd_err_set(err, "accounting spool %s is writable by group or others: the record of job %u "
                          "is not sent there (chmod 0700 it)", dir, job);
    }
    json_object *o = json_object_new_object();
    if (!o) {
        close(dfd);
        return vd_err_set(err, "out of memory");
    }
    long long now_ms = vd_now_ms();
    json_object_object_add(o, "schema", json_object_new_int(VD_ACCT_JSON_SCHEMA));
    json_object_object_add(o, "kind", json_object_new_string("record"));
    json_object_object_add(o, "cluster", json_object_new_string(cluster));
    json_object_object_add(o, "job", json_object_new_int64(job));
    json_object_object_add(o, "node", json_object_new_string(node));
    json_object_object_add(o, "time", json_object_new_int64(now_ms / 1000));
    json_object_object_add(o, "record", json_object_new_string(record));
    snprintf(name, sizeof(name), DROP_PREFIX "%u-%lld-%u.json", job, now_ms,
             name_hash(name_hash(5381, cluster) * 33 + '/', node));
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    int rc = text ? drop_write(dfd, dir, name, text, &st, err) : vd_err_set(err, "out of memory");
    json_object_put(o);
    close(dfd);
    return rc < 0 ? vd_err_prefix(err, "accounting spool") : 0;
}

/* The run a node's record belongs to: the latest run of the job that
 * started before it was written and had the node. 1: found; 0: not (yet). */
static int drop_run_find(sqlite3 *db, vd_acct_job *key, const char *node, long long written, vd_err *err)
{
    sqlite3_stmt *st;
    if (prepare(db, "SELECT start, nodes FROM jobs WHERE cluster = ?1 AND job = ?2 AND start <= ?3"
                " ORDER BY start DESC", &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, key->cluster, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, key->job);
    sqlite3_bind_int64(st, 3, written);
    int r, found = 0;
    while (!found && (r = sqlite3_step(st)) == SQLITE_ROW) {
        const char *nodes = (const char *)sqlite3_column_text(st, 1);
        if (nodes && vd_slurm_hostlist_has(nodes, node) == 1) {
            key->start = sqlite3_column_int64(st, 0);
            found = 1;
        }
    }
    if (!found && r != SQLITE_DONE)
        found = db_fail(db, db_path_of(db), "finding a job's run", err);
    sqlite3_finalize(st);
    return found;
}

/* Stores r with run key, once: a node restores once per run, so a record
 * of the node's already there (the spool file left after a crash between
 * the two) is not stored again. */
static int drop_store(sqlite3 *db, const vd_acct_job *key, const vd_acct_rec *r, vd_err *err)
{
    sqlite3_stmt *st;
    if (exec_sql(db, db_path_of(db), "BEGIN IMMEDIATE", err) < 0)
        return -1;
    int rc = prepare(db, "SELECT (SELECT count(*) FROM records WHERE cluster = ?1 AND job = ?2 AND start = ?3"
                     " AND seq >= ?4 AND node = ?5 AND op = ?6),"
                     " max(?4, coalesce((SELECT max(seq) + 1 FROM records WHERE cluster = ?1 AND job = ?2"
                     " AND start = ?3), 0))", &st, err);
    int seen = 0, seq = VD_ACCT_DROP_SEQ;
    if (rc == 0) {
        bind_key(st, key);
        sqlite3_bind_int(st, 4, VD_ACCT_DROP_SEQ);
        sqlite3_bind_text(st, 5, r->node, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, r->op, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            seen = sqlite3_column_int(st, 0) > 0;
            seq = sqlite3_column_int(st, 1);
        } else {
            rc = db_fail(db, db_path_of(db), "numbering a record", err);
        }
        sqlite3_finalize(st);
    }
    if (rc == 0 && !seen)
        rc = store_rec(db, key, seq, r, err);
    if (rc == 0 && exec_sql(db, db_path_of(db), "COMMIT", err) == 0)
        return 0;
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

/* A node's record (vd_acct_drop) into its run. One whose run is not
 * stored yet waits for a later drain; after DROP_MAX_AGE_S it is set
 * aside as .bad. Untrusted: whatever is not such a record is set aside. */
static int drop_take(sqlite3 *db, const char *path, const char *name, int *bad, char *note, size_t note_size,
                     vd_err *err)
{
    json_object *o = NULL;
    vd_err why;
    if (vd_json_file_load(path, 64 << 10, "", &o, &why) == 0 && !o)
        return 0;                   /* taken by another run meanwhile */
    const char *cluster = o ? vd_json_str(o, "cluster") : NULL, *node = o ? vd_json_str(o, "node") : NULL;
    const char *kind = o ? vd_json_str(o, "kind") : NULL, *text = o ? vd_json_str(o, "record") : NULL;
    long long job = -1, written = -1;
    vd_acct_job *key = calloc(1, sizeof(*key));
    if (!key) {
        json_object_put(o);
        return vd_err_set(err, "out of memory");
    }
    int rc = 0;
    if (!kind || strcmp(kind, "record") || !cluster || strlen(cluster) >= sizeof(key->cluster) || !node ||
        !node[0] || strlen(node) >= sizeof(key->recs[0].node) || !text || vd_json_int(o, "job", &job) < 0 ||
        job <= 0 || job > 0xfffffffeLL || vd_json_int(o, "time", &written) < 0) {
        set_aside(path, name, bad, note, note_size, "not a node's record, renamed .bad");
        goto out;
    }
    /* A node sends its restores only: anything else would count as an
     * eviction, or a failed one. */
    vd_acct_rec_parse(node, text, strlen(text), &key->recs[0]);
    if (strcmp(key->recs[0].op, "restore")) {
        set_aside(path, name, bad, note, note_size, "not a restore record, renamed .bad");
        goto out;
    }
    snprintf(key->cluster, sizeof(key->cluster), "%s", cluster);
    key->job = (unsigned)job;
    int found = drop_run_find(db, key, node, written, err);
    if (found < 0) {
        rc = -1;
    } else if (!found && written < (long long)time(NULL) - DROP_MAX_AGE_S) {
        set_aside(path, name, bad, note, note_size, "no run of its job with its node came, renamed .bad");
    } else if (!found) {
        note_add(note, note_size, name, "its job's run is not stored yet: kept for the next run");
    } else {
        rc = drop_store(db, key, &key->recs[0], err);
        if (rc == 0 && unlink(path) < 0 && errno != ENOENT)
            rc = vd_err_set(err, "accounting spool: %s stored but cannot remove it: %s", path, strerror(errno));
    }
out:
    free(key);
    json_object_put(o);
    return rc;
}

int vd_acct_keep(const char *db_path, int busy_ms, const vd_acct_job *j, char *note, size_t note_size,
                 vd_err *err)
{
    char spool[PATH_MAX];
    if (note_size)
        note[0] = '\0';
    if (vd_acct_spool_dir(db_path, spool, sizeof(spool), err) < 0)
        return -1;
    sqlite3 *db;
    vd_err why, how;
    int stored = 0, bad = 0, rc = vd_acct_open(db_path, busy_ms, &db, &why);
    char drained[512] = "";
    /* A spool that cannot be emptied (a run in it the database refuses, or
     * the spool itself wrong) does not keep this run out of the database. */
    vd_err spool_err = { "" };
    if (rc == 0 && vd_acct_spool_drain(db, spool, &stored, &bad, drained, sizeof(drained), &spool_err) < 0 &&
        !spool_err.msg[0])
        snprintf(spool_err.msg, sizeof(spool_err.msg), "the spool could not be emptied");
    if (rc == 0)
        rc = vd_acct_store(db, j, &why);
    sqlite3_close(db);
    if (note_size && (stored || drained[0] || spool_err.msg[0]))
        snprintf(note, note_size, "%s: %d spooled run(s) stored%s%s%s%s", spool, stored,
                 drained[0] ? "; " : "", drained, spool_err.msg[0] ? "; " : "", spool_err.msg);
    if (rc == 0)
        return 0;
    if (vd_acct_spool_put(spool, j, &how) < 0)
        return vd_err_set(err, "%s; and %s", why.msg, how.msg);
    vd_err_set(err, "%s; job %u kept in %s for the next run", why.msg, j->job, spool);
    return 1;
}
