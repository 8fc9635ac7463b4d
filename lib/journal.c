/* SPDX-License-Identifier: MIT */
#include "journal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jsonfile.h"
#include "statedir.h"

static const char *phase_names[] = { "present", "evicting", "evicted", "restoring" };

const char *vd_phase_name(vd_phase phase)
{
    return phase <= VD_RESTORING ? phase_names[phase] : "invalid";
}

/* --- reading ------------------------------------------------------------ */

/* A journal holds 16 devices' XML at most: a few tens of KiB. A bigger
 * file is not one vdesk wrote. */
#define JOURNAL_MAX_BYTES (1 << 20)

/* What every refusal to read the journal ends with: the engine sets the
 * file aside and rebuilds the state from the node; by hand, recover does. */
#define LOAD_FIX "; move it aside and run 'vdeskctl recover'"

/* Names the journal, what is wrong with it, and the fix. Returns -1. */
static int refuse(vd_err *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(vd_err *err, const char *path, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return vd_err_set(err, "%s: %s" LOAD_FIX, path, what);
}

static const char *type_of(json_object *v)
{
    return json_type_to_name(json_object_get_type(v));
}

/* Copies a JSON string of fewer than `size` bytes: a cut value (a save
 * file's path) would name something else. */
static int copy_str(json_object *v, const char *what, char *dst, size_t size,
                    const char *path, vd_err *err)
{
    if (!json_object_is_type(v, json_type_string))
        return refuse(err, path, "%s is not a string (it is %s)", what, type_of(v));
    const char *s = json_object_get_string(v);
    size_t n = (size_t)json_object_get_string_len(v);
    if (strlen(s) != n)
        return refuse(err, path, "%s holds a NUL character", what);
    if (n >= size)
        return refuse(err, path, "%s is %zu characters long, more than the %zu vdesk keeps",
                      what, n, size - 1);
    memcpy(dst, s, n + 1);
    return 0;
}

/* A missing key reads as "": journals of older versions lack some. */
static int get_str(json_object *o, const char *key, char *dst, size_t size,
                   const char *path, vd_err *err)
{
    json_object *v;
    char what[64];
    if (!json_object_object_get_ex(o, key, &v))
        return 0;
    snprintf(what, sizeof(what), "\"%s\"", key);
    return copy_str(v, what, dst, size, path, err);
}

static int int_value(json_object *v, const char *what, long long min, long long max,
                     long long *out, const char *path, vd_err *err)
{
    if (!json_object_is_type(v, json_type_int))
        return refuse(err, path, "%s is not an integer (it is %s)", what, type_of(v));
    long long x = json_object_get_int64(v);
    /* json-c saturates what does not fit in an int64 to INT64_MAX. */
    int saturated = x == INT64_MAX && json_object_get_uint64(v) != (uint64_t)INT64_MAX;
    if (saturated || x < min || x > max)
        return refuse(err, path, "%s is %s, not within %lld-%lld", what,
                      json_object_to_json_string(v), min, max);
    *out = x;
    return 0;
}

/* A missing key reads as 0, as "save_used" in journals written before it. */
static int get_int(json_object *o, const char *key, long long min, long long max,
                   long long *out, const char *path, vd_err *err)
{
    json_object *v;
    char what[64];
    *out = 0;
    if (!json_object_object_get_ex(o, key, &v))
        return 0;
    snprintf(what, sizeof(what), "\"%s\"", key);
    return int_value(v, what, min, max, out, path, err);
}

static int parse_phase(const char *s, vd_phase *out)
{
    for (int i = 0; i <= VD_RESTORING; i++)
        if (!strcmp(s, phase_names[i])) {
            *out = (vd_phase)i;
            return 0;
        }
    return -1;
}

static int get_head(json_object *o, vd_journal *j, const char *path, vd_err *err)
{
    json_object *v;
    char phase[16];
    if (!json_object_object_get_ex(o, "version", &v))
        return refuse(err, path, "\"version\" is missing: not a vdesk journal");
    if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) != 1)
        return refuse(err, path, "\"version\" is %s, but this vdesk reads version 1",
                      json_object_to_json_string(v));
    if (!json_object_object_get_ex(o, "phase", &v))
        return refuse(err, path, "\"phase\" is missing");
    if (copy_str(v, "\"phase\"", phase, sizeof(phase), path, err) < 0)
        return -1;
    if (parse_phase(phase, &j->phase) < 0)
        return refuse(err, path, "\"phase\" is '%s', not present, evicting, evicted or restoring",
                      phase);
    return 0;
}

static int get_fields(json_object *o, vd_journal *j, const char *path, vd_err *err)
{
    long long pinned, save_used, since;
    if (get_str(o, "asked", j->asked, sizeof(j->asked), path, err) < 0 ||
        get_str(o, "used", j->used, sizeof(j->used), path, err) < 0 ||
        get_str(o, "step", j->step, sizeof(j->step), path, err) < 0 ||
        get_str(o, "save_file", j->save_file, sizeof(j->save_file), path, err) < 0 ||
        get_str(o, "snapshot", j->snapshot, sizeof(j->snapshot), path, err) < 0 ||
        get_str(o, "where", j->where, sizeof(j->where), path, err) < 0 ||
        get_int(o, "pinned", 0, 1, &pinned, path, err) < 0 ||
        get_int(o, "save_used", 0, 1, &save_used, path, err) < 0 ||
        get_int(o, "since_ms", 0, INT64_MAX, &since, path, err) < 0)
        return -1;
    j->pinned = (int)pinned;
    j->save_used = (int)save_used;
    j->since_ms = since;
    return 0;
}

/* The array under `key` (none: 0 entries). More entries than vdesk holds
 * is an error: dropping some would forget a job or a device. */
static int get_array(json_object *o, const char *key, const char *noun, size_t max,
                     json_object **arr, size_t *n, const char *path, vd_err *err)
{
    *n = 0;
    if (!json_object_object_get_ex(o, key, arr))
        return 0;
    if (!json_object_is_type(*arr, json_type_array))
        return refuse(err, path, "\"%s\" is not an array (it is %s)", key, type_of(*arr));
    *n = json_object_array_length(*arr);
    if (*n > max)
        return refuse(err, path, "\"%s\" lists %zu %s, more than the %zu vdesk holds",
                      key, *n, noun, max);
    return 0;
}

static int get_jobs(json_object *o, vd_journal *j, const char *path, vd_err *err)
{
    json_object *arr;
    size_t n;
    if (get_array(o, "jobs", "jobs", VD_MAX_JOBS, &arr, &n, path, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char what[32];
        long long job;
        snprintf(what, sizeof(what), "jobs[%zu]", i);
        if (int_value(json_object_array_get_idx(arr, i), what, 0, UINT32_MAX, &job, path, err) < 0)
            return -1;
        j->jobs[j->njobs++] = (unsigned)job;
    }
    return 0;
}

/* libvirt's user aliases: "ua-" and at least one of [A-Za-z0-9_-]. The
 * engine puts them into XML and libvirt calls. */
static int alias_ok(const char *alias)
{
    if (strncmp(alias, "ua-", 3) != 0 || !alias[3])
        return 0;
    for (const char *c = alias + 3; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-')
            return 0;
    return 1;
}

static int get_device(json_object *d, size_t i, vd_saved_dev *sd, const char *path, vd_err *err)
{
    char what[48], xml[48];
    json_object *v;
    snprintf(what, sizeof(what), "devices[%zu].alias", i);
    snprintf(xml, sizeof(xml), "devices[%zu].xml", i);
    if (!json_object_is_type(d, json_type_object))
        return refuse(err, path, "devices[%zu] is not an object (it is %s)", i, type_of(d));
    if (!json_object_object_get_ex(d, "alias", &v))
        return refuse(err, path, "%s is missing", what);
    if (copy_str(v, what, sd->alias, sizeof(sd->alias), path, err) < 0)
        return -1;
    if (!alias_ok(sd->alias))
        return refuse(err, path, "%s '%s' is not a libvirt user alias (ua-[A-Za-z0-9_-]+)",
                      what, sd->alias);
    if (!json_object_object_get_ex(d, "xml", &v))
        return refuse(err, path, "%s is missing", xml);
    if (!json_object_is_type(v, json_type_string))
        return refuse(err, path, "%s is not a string (it is %s)", xml, type_of(v));
    if (!(sd->xml = strdup(json_object_get_string(v))))
        return vd_err_set(err, "%s: out of memory reading %s", path, xml);
    return 0;
}

static int get_devices(json_object *o, vd_journal *j, const char *path, vd_err *err)
{
    json_object *arr;
    size_t n;
    if (get_array(o, "devices", "devices", VD_MAX_DEVICES, &arr, &n, path, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (get_device(json_object_array_get_idx(arr, i), i, &j->devs[i], path, err) < 0)
            return -1;
        j->ndevs++;
    }
    return 0;
}

static int from_json(json_object *o, vd_journal *j, const char *path, vd_err *err)
{
    if (!json_object_is_type(o, json_type_object))
        return refuse(err, path, "not a JSON object (it is %s)", type_of(o));
    if (get_head(o, j, path, err) < 0 || get_fields(o, j, path, err) < 0 ||
        get_jobs(o, j, path, err) < 0 || get_devices(o, j, path, err) < 0)
        return -1;
    return 0;
}

int vd_journal_load(const char *state_dir, vd_journal *j, vd_err *err)
{
    char path[PATH_MAX];
    json_object *o = NULL;
    vd_state_path(path, sizeof(path), state_dir, "journal.json");
    memset(j, 0, sizeof(*j));
    if (vd_json_file_load(path, JOURNAL_MAX_BYTES, LOAD_FIX, &o, err) < 0)
        return -1;
    if (!o)
        return 0;   /* no journal: the desktop is present */
    int rc = from_json(o, j, path, err);
    json_object_put(o);
    if (rc < 0)
        vd_journal_clear(j);
    return rc;
}

int vd_journal_set_aside(const char *state_dir, char *kept, size_t kept_size, vd_err *err)
{
    char path[PATH_MAX];
    vd_state_path(path, sizeof(path), state_dir, "journal.json");
    long long now = vd_now_ms();
    /* link() refuses to replace a file kept before (in the same ms). */
    for (int n = 0; n < 100; n++) {
        int len = n ? snprintf(kept, kept_size, "%s.bad-%lld-%d", path, now, n)
                    : snprintf(kept, kept_size, "%s.bad-%lld", path, now);
        if (len < 0 || (size_t)len >= kept_size)
            return vd_err_set(err, "%s: cannot set it aside: the new name does not fit in %zu bytes",
                              path, kept_size);
        if (link(path, kept) == 0)
            return unlink(path) < 0 || vd_state_fsync_dir(state_dir) < 0
                ? vd_err_set(err, "%s: kept as %s, but cannot remove it: %s", path, kept, strerror(errno))
                : 0;
        if (errno != EEXIST)
            break;
    }
    return vd_err_set(err, "%s: cannot set it aside as %s: %s", path, kept, strerror(errno));
}

/* --- writing ------------------------------------------------------------ */

/* Adds val to o (an object, under key, or an array). On failure it frees
 * val and clears *ok, so that to_json checks once, at the end. */
static void put(json_object *o, const char *key, json_object *val, int *ok)
{
    int rc = -1;
    if (o && val)
        rc = key ? json_object_object_add(o, key, val) : json_object_array_add(o, val);
    if (rc < 0) {
        json_object_put(val);
        *ok = 0;
    }
}

static json_object *dev_json(const vd_saved_dev *d, int *ok)
{
    json_object *o = json_object_new_object();
    put(o, "alias", json_object_new_string(d->alias), ok);
    put(o, "xml", json_object_new_string(d->xml ? d->xml : ""), ok);
    return o;
}

static json_object *to_json(const vd_journal *j)
{
    int ok = 1;
    json_object *o = json_object_new_object();
    json_object *jobs = json_object_new_array();
    json_object *devs = json_object_new_array();
    put(o, "version", json_object_new_int(1), &ok);
    put(o, "phase", json_object_new_string(vd_phase_name(j->phase)), &ok);
    put(o, "asked", json_object_new_string(j->asked), &ok);
    put(o, "used", json_object_new_string(j->used), &ok);
    put(o, "step", json_object_new_string(j->step), &ok);
    put(o, "save_file", json_object_new_string(j->save_file), &ok);
    put(o, "save_used", json_object_new_int(j->save_used), &ok);
    put(o, "snapshot", json_object_new_string(j->snapshot), &ok);
    put(o, "pinned", json_object_new_int(j->pinned), &ok);
    put(o, "where", json_object_new_string(j->where), &ok);
    put(o, "since_ms", json_object_new_int64(j->since_ms), &ok);
    for (int i = 0; i < j->njobs; i++)
        put(jobs, NULL, json_object_new_int64(j->jobs[i]), &ok);
    for (int i = 0; i < j->ndevs; i++)
        put(devs, NULL, dev_json(&j->devs[i], &ok), &ok);
    put(o, "jobs", jobs, &ok);
    put(o, "devices", devs, &ok);
    if (!ok) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* Writes tmp afresh: a stale one (a crash) is removed, and O_EXCL makes
 * sure that what is written is a new file of vdesk's, not one planted. */
int vd_journal_save(const char *state_dir, const vd_journal *j, vd_err *err)
{
    if (vd_state_dir_check(state_dir, err) < 0)
        return -1;
    json_object *o = to_json(j);
    int rc = o ? vd_json_file_save(state_dir, "journal.json", o, err)
               : vd_err_set(err, "%s/journal.json: out of memory writing it", state_dir);
    json_object_put(o);
    return rc;
}

void vd_journal_clear(vd_journal *j)
{
    for (int i = 0; i < j->ndevs; i++)
        free(j->devs[i].xml);
    memset(j, 0, sizeof(*j));
}

int vd_journal_has_job(const vd_journal *j, unsigned job)
{
    for (int i = 0; i < j->njobs; i++)
        if (j->jobs[i] == job)
            return 1;
    return 0;
}

int vd_journal_add_job(vd_journal *j, unsigned job, vd_err *err)
{
    if (vd_journal_has_job(j, job))
        return 0;
    if (j->njobs == VD_MAX_JOBS)
        return vd_err_set(err, "more than %d jobs hold the node", VD_MAX_JOBS);
    j->jobs[j->njobs++] = job;
    return 0;
}

void vd_journal_drop_job(vd_journal *j, unsigned job)
{
    for (int i = 0; i < j->njobs; i++)
        if (j->jobs[i] == job) {
            j->jobs[i] = j->jobs[--j->njobs];
            return;
        }
}

