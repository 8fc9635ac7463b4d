/* SPDX-License-Identifier: MIT */
/*
 * metrics.c - `vdeskctl metrics [--textfile DIR]`: the node's desktop and
 * what vdesk did to it, in Prometheus' text format, for the textfile
 * collector of node_exporter (DIR/vdesk.prom, replaced atomically, as
 * the collector requires) or for stdout.
 *
 * Sources: the journal (the desktop's state now) and records.jsonl (every
 * operation, rotated by logrotate: the counters start again after a
 * rotation, which Prometheus' rate() takes as a reset). Both are untrusted
 * input: a line of records.jsonl that is not a record is counted, not
 * used. Read-only, no lock, no libvirt: it answers while the node is busy.
 */
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "jsonfile.h"
#include "statedir.h"

#define MAX_SERIES 512      /* (op, used) and (op, phase) pairs kept */
#define MAX_LINE (64 * 1024)

typedef struct series {
    char op[16], key[64];   /* key: the mode used, or the phase's name */
    long long count, failed;
    double seconds;
} series;

typedef struct agg {
    series ops[MAX_SERIES], phases[MAX_SERIES];
    int nops, nphases;
    long long unreadable, dropped;
    long long last_ms[3];   /* evict, restore, other */
} agg;

static series *series_get(series *v, int *n, const char *op, const char *key, long long *dropped)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp(v[i].op, op) && !strcmp(v[i].key, key))
            return &v[i];
    if (*n == MAX_SERIES) {
        (*dropped)++;
        return NULL;
    }
    series *s = &v[(*n)++];
    memset(s, 0, sizeof(*s));
    snprintf(s->op, sizeof(s->op), "%s", op);
    snprintf(s->key, sizeof(s->key), "%s", key);
    return s;
}

/* A count or time read from a record: an integer, not negative. */
static int jint(json_object *o, const char *key, long long *out)
{
    return vd_json_int(o, key, out) == 0 && *out >= 0 ? 0 : -1;
}

/* An operation failed when it lost something, drained the node, or (an
 * eviction) applied no mode. */
static int rec_failed(json_object *o, const char *op, const char *used)
{
    const char *lost = vd_json_str(o, "lost"), *drain = vd_json_str(o, "drain");
    return (lost && *lost) || (drain && *drain) || (!strcmp(op, "evict") && !*used);
}

static void add_phases(agg *a, json_object *o, const char *op)
{
    json_object *ph;
    if (!json_object_object_get_ex(o, "phases", &ph) || !json_object_is_type(ph, json_type_array))
        return;
    for (size_t i = 0; i < json_object_array_length(ph); i++) {
        json_object *p = json_object_array_get_idx(ph, i), *ok;
        const char *name = vd_json_str(p, "name");
        long long ms;
        if (!name || jint(p, "ms", &ms) < 0)
            continue;
        series *s = series_get(a->phases, &a->nphases, op, name, &a->dropped);
        if (!s)
            continue;
        s->count++;
        s->seconds += (double)ms / 1000.0;
        s->failed += json_object_object_get_ex(p, "ok", &ok) && !json_object_get_boolean(ok);
    }
}

static void add_record(agg *a, const char *line)
{
    json_object *o = json_tokener_parse(line);
    const char *op = o ? vd_json_str(o, "op") : NULL, *used = o ? vd_json_str(o, "used") : NULL;
    long long ms, t;
    if (!o || !json_object_is_type(o, json_type_object) || !op || !used || !*op ||
        strlen(op) >= 16 || jint(o, "total_ms", &ms) < 0 || jint(o, "time_ms", &t) < 0) {
        a->unreadable++;
        json_object_put(o);
        return;
    }
    series *s = series_get(a->ops, &a->nops, op, used, &a->dropped);
    if (s) {
        s->count++;
        s->seconds += (double)ms / 1000.0;
        s->failed += rec_failed(o, op, used);
    }
    int k = !strcmp(op, "evict") ? 0 : !strcmp(op, "restore") ? 1 : 2;
    a->last_ms[k] = t > a->last_ms[k] ? t : a->last_ms[k];
    add_phases(a, o, op);
    json_object_put(o);
}

static int records_read(const char *state_dir, agg *a, vd_err *err)
{
    char path[PATH_MAX];
    vd_state_path(path, sizeof(path), state_dir, "records.jsonl");
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : vd_err_set(err, "%s: %s", path, strerror(errno));
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return vd_err_set(err, "%s: %s", path, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0)
        if (n > MAX_LINE)
            a->unreadable++;
        else
            add_record(a, line);
    free(line);
    fclose(f);
    return 0;
}

/* A label value: backslash, double quote and line feed escaped. */
static void label(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', f);
        if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static void head(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void who(FILE *f, const vd_conf *c)
{
    fputs("node=\"", f);
    label(f, c->node);
    fputs("\",desktop=\"", f);
    label(f, c->domain);
    fputc('"', f);
}

static void series_print(FILE *f, const vd_conf *c, const series *v, int n, const char *name,
                         const char *key, int what)
{
    for (int i = 0; i < n; i++) {
        fprintf(f, "%s{", name);
        who(f, c);
        fputs(",op=\"", f);
        label(f, v[i].op);
        fprintf(f, "\",%s=\"", key);
        label(f, v[i].key);
        if (what == 0)
            fprintf(f, "\"} %lld\n", v[i].count);
        else if (what == 1)
            fprintf(f, "\"} %.3f\n", v[i].seconds);
        else
            fprintf(f, "\"} %lld\n", v[i].failed);
    }
}

static void state_print(FILE *f, const vd_conf *c, const vd_journal *j, int journal_ok)
{
    static const vd_phase phases[] = { VD_PRESENT, VD_EVICTING, VD_EVICTED, VD_RESTORING };
    head(f, "vdesk_desktop_phase", "gauge", "The desktop's phase in the node's journal (1: the current one).");
    for (size_t i = 0; i < sizeof(phases) / sizeof(*phases); i++) {
        fputs("vdesk_desktop_phase{", f);
        who(f, c);
        fprintf(f, ",phase=\"%s\"} %d\n", vd_phase_name(phases[i]), journal_ok && j->phase == phases[i]);
    }
    head(f, "vdesk_desktop_away", "gauge", "1 while jobs keep the desktop off its node (or an operation moves it).");
    fputs("vdesk_desktop_away{", f);
    who(f, c);
    fprintf(f, "} %d\n", journal_ok && j->phase != VD_PRESENT);
    head(f, "vdesk_desktop_jobs", "gauge", "Jobs the journal lists as holding the desktop away.");
    fputs("vdesk_desktop_jobs{", f);
    who(f, c);
    fprintf(f, "} %d\n", journal_ok ? j->njobs : 0);
    head(f, "vdesk_journal_readable", "gauge", "0 when the journal cannot be read (vdeskctl status says why).");
    fputs("vdesk_journal_readable{", f);
    who(f, c);
    fprintf(f, "} %d\n", journal_ok);
}

static void agg_print(FILE *f, const vd_conf *c, const agg *a)
{
    head(f, "vdesk_operations_total", "counter", "Operations since records.jsonl was rotated, by op and mode used.");
    series_print(f, c, a->ops, a->nops, "vdesk_operations_total", "used", 0);
    head(f, "vdesk_operation_failures_total", "counter",
         "Operations that lost something, drained the node, or (evict) applied no mode.");
    series_print(f, c, a->ops, a->nops, "vdesk_operation_failures_total", "used", 2);
    head(f, "vdesk_operation_seconds_total", "counter", "Time spent in operations, by op and mode used.");
    series_print(f, c, a->ops, a->nops, "vdesk_operation_seconds_total", "used", 1);
    head(f, "vdesk_phase_total", "counter", "Phases run, by op and phase.");
    series_print(f, c, a->phases, a->nphases, "vdesk_phase_total", "phase", 0);
    head(f, "vdesk_phase_seconds_total", "counter", "Time spent in each phase, by op and phase.");
    series_print(f, c, a->phases, a->nphases, "vdesk_phase_seconds_total", "phase", 1);
    head(f, "vdesk_phase_failures_total", "counter", "Phases that failed (a fallback followed, or the operation failed).");
    series_print(f, c, a->phases, a->nphases, "vdesk_phase_failures_total", "phase", 2);
    static const char *ops[] = { "evict", "restore", "other" };
    head(f, "vdesk_last_operation_timestamp_seconds", "gauge", "When the last operation of each kind ended.");
    for (int k = 0; k < 3; k++)
        if (a->last_ms[k]) {
            fputs("vdesk_last_operation_timestamp_seconds{", f);
            who(f, c);
            fprintf(f, ",op=\"%s\"} %.3f\n", ops[k], (double)a->last_ms[k] / 1000.0);
        }
    head(f, "vdesk_records_unreadable", "gauge", "Lines of records.jsonl that are not vdesk records.");
    fputs("vdesk_records_unreadable{", f);
    who(f, c);
    fprintf(f, "} %lld\n", a->unreadable + a->dropped);
}

/* DIR/vdesk.prom, replaced whole (vd_file_replace): the collector never
 * reads half a file. */
static int textfile_write(const char *dir, const vd_conf *c, const vd_journal *j, int journal_ok,
                          const agg *a, vd_err *err)
{
    char path[PATH_MAX], *text = NULL;
    size_t len = 0;
    if (snprintf(path, sizeof(path), "%s/vdesk.prom", dir) >= (int)sizeof(path))
        return vd_err_set(err, "--textfile %s: path too long", dir);
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return vd_err_set(err, "--textfile %s: out of memory", dir);
    state_print(f, c, j, journal_ok);
    agg_print(f, c, a);
    int bad = ferror(f) | (fclose(f) != 0);
    vd_err why;
    int rc = bad ? vd_err_set(err, "--textfile %s: out of memory", dir)
             : vd_file_replace(path, text, len, 0644, (uid_t)-1, (gid_t)-1, &why) < 0
                 ? vd_err_set(err, "--textfile %s: %s (give node_exporter's --collector.textfile.directory)", dir,
                              why.msg)
                 : 0;
    free(text);
    return rc;
}

int cmd_metrics(const vd_conf *c, const char *textfile_dir)
{
    agg *a = calloc(1, sizeof(*a));
    vd_journal j;
    vd_err err, jerr;
    if (!a) {
        fprintf(stderr, "vdeskctl metrics: out of memory\n");
        return 1;
    }
    int journal_ok = vd_journal_load(c->state_dir, &j, &jerr) == 0;
    int rc = records_read(c->state_dir, a, &err);
    if (rc == 0 && textfile_dir)
        rc = textfile_write(textfile_dir, c, &j, journal_ok, a, &err);
    if (rc == 0 && !textfile_dir) {
        state_print(stdout, c, &j, journal_ok);
        agg_print(stdout, c, a);
        rc = fflush(stdout) == 0 ? 0 : vd_err_set(&err, "stdout: %s", strerror(errno));
    }
    if (rc < 0)
        fprintf(stderr, "vdeskctl metrics: %s\n", err.msg);
    if (!journal_ok)
        fprintf(stderr, "vdeskctl metrics: %s\n", jerr.msg);
    if (journal_ok)
        vd_journal_clear(&j);
    free(a);
    return rc < 0 ? 1 : 0;
}
