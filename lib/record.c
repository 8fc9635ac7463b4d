/* SPDX-License-Identifier: MIT */
#include "record.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "statedir.h"

void vd_report_prefix(vd_report *rep, const char *note)
{
    /* The note gives way: the outcome (and a LOST: at its end) stays whole. */
    size_t len = strlen(rep->outcome), n = strlen(note);
    if (!n || len + 2 >= sizeof(rep->outcome) - 1)
        return;
    if (n > sizeof(rep->outcome) - 1 - len - 2)
        n = sizeof(rep->outcome) - 1 - len - 2;
    memmove(rep->outcome + n + 2, rep->outcome, len + 1);
    memcpy(rep->outcome, note, n);
    memcpy(rep->outcome + n, "; ", 2);
}

void vd_report_format(const vd_report *rep, char *buf, size_t size)
{
    int n = snprintf(buf, size, "vdesk %s: asked=%s used=%s devices=%s total=%ldms phases=",
                     rep->op, rep->asked[0] ? rep->asked : "-", rep->used[0] ? rep->used : "-",
                     rep->devices[0] ? rep->devices : "-", rep->total_ms);
    for (int i = 0; i < rep->nphases && n > 0 && (size_t)n < size; i++)
        n += snprintf(buf + n, size - (size_t)n, "%s%s:%ld%s", i ? "," : "", rep->phases[i].name,
                      rep->phases[i].ms, rep->phases[i].ok ? "" : "!");
    const struct vd_report_migration *m = &rep->migration;
    if (m->to[0] && n > 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, " migrated=%s>%s:%lldms,downtime=%lldms,data=%lldMiB,"
                      "iterations=%lld", m->from, m->to, m->ms, m->downtime_ms,
                      m->data_bytes < 0 ? -1 : m->data_bytes >> 20, m->iterations);
    /* The reason is in slurmctld's node record; the accounting counts it. */
    if (rep->drain[0] && n > 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, " drained=yes");
    if (n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, " outcome=\"%s\"", rep->outcome);
}

char *vd_report_json(const vd_report *rep)
{
    json_object *o = json_object_new_object();
    json_object *phases = json_object_new_array();
    json_object_object_add(o, "schema", json_object_new_int(VD_RECORD_SCHEMA));
    json_object_object_add(o, "time_ms", json_object_new_int64(vd_now_ms()));
    json_object_object_add(o, "job", json_object_new_int64(rep->job));
    json_object_object_add(o, "op", json_object_new_string(rep->op));
    json_object_object_add(o, "asked", json_object_new_string(rep->asked));
    json_object_object_add(o, "used", json_object_new_string(rep->used));
    json_object_object_add(o, "devices", json_object_new_string(rep->devices));
    json_object_object_add(o, "outcome", json_object_new_string(rep->outcome));
    json_object_object_add(o, "drain", json_object_new_string(rep->drain));
    json_object_object_add(o, "lost", json_object_new_string(rep->lost));
    json_object_object_add(o, "total_ms", json_object_new_int64(rep->total_ms));
    for (int i = 0; i < rep->nphases; i++) {
        json_object *p = json_object_new_object();
        json_object_object_add(p, "name", json_object_new_string(rep->phases[i].name));
        json_object_object_add(p, "ms", json_object_new_int64(rep->phases[i].ms));
        json_object_object_add(p, "ok", json_object_new_boolean(rep->phases[i].ok));
        json_object_array_add(phases, p);
    }
    json_object_object_add(o, "phases", phases);
    const struct vd_report_migration *m = &rep->migration;
    if (m->to[0]) {
        json_object *mo = json_object_new_object();
        json_object_object_add(mo, "from", json_object_new_string(m->from));
        json_object_object_add(mo, "to", json_object_new_string(m->to));
        json_object_object_add(mo, "ms", json_object_new_int64(m->ms));
        json_object_object_add(mo, "downtime_ms", json_object_new_int64(m->downtime_ms));
        json_object_object_add(mo, "data_bytes", json_object_new_int64(m->data_bytes));
        json_object_object_add(mo, "iterations", json_object_new_int64(m->iterations));
        json_object_object_add(o, "migration", mo);
    }
    char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return s;
}

int vd_record_keep(const char *state_dir, const vd_report *rep, char *line, size_t size, vd_err *err)
{
    vd_report_format(rep, line, size);
    char *json = vd_report_json(rep);
    if (!json)
        return vd_err_set(err, "%s/records.jsonl: out of memory formatting the record", state_dir);
    int rc = vd_record_append(state_dir, json, err);
    free(json);
    return rc;
}
