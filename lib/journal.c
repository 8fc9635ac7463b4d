/* SPDX-License-Identifier: MIT */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *phase_names[] = { "present", "evicting", "evicted", "restoring" };

const char *vd_phase_name(vd_phase phase)
{
    return phase <= VD_RESTORING ? phase_names[phase] : "invalid";
}

long long vd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int vd_mkdirs(const char *dir, vd_err *err)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
        return vd_err_set(err, "%s: path too long", dir);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0700) < 0 && errno != EEXIST)
            return vd_err_set(err, "%s: cannot create directory: %s", path, strerror(errno));
        *p = c;
        if (!c)
            return 0;
    }
}

static void path_in(char *out, size_t size, const char *dir, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

/* --- reading ------------------------------------------------------------ */

static void get_str(json_object *o, const char *key, char *dst, size_t size)
{
    json_object *v;
    if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        snprintf(dst, size, "%s", json_object_get_string(v));
}

static long long get_int(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
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

static int from_json(json_object *o, vd_journal *j, const char *path, vd_err *err)
{
    char phase[32] = "";
    get_str(o, "phase", phase, sizeof(phase));
    if (get_int(o, "version") != 1 || parse_phase(phase, &j->phase) < 0)
        return vd_err_set(err, "%s: not a vdesk journal of version 1 (phase '%s'); "
                          "move it aside and run 'vdeskctl recover'", path, phase);
    get_str(o, "asked", j->asked, sizeof(j->asked));
    get_str(o, "used", j->used, sizeof(j->used));
    get_str(o, "step", j->step, sizeof(j->step));
    get_str(o, "save_file", j->save_file, sizeof(j->save_file));
    get_str(o, "snapshot", j->snapshot, sizeof(j->snapshot));
    j->pinned = (int)get_int(o, "pinned");
    j->since_ms = get_int(o, "since_ms");
    json_object *arr;
    if (json_object_object_get_ex(o, "jobs", &arr))
        for (size_t i = 0; i < json_object_array_length(arr) && j->njobs < VD_MAX_JOBS; i++)
            j->jobs[j->njobs++] = (unsigned)json_object_get_int64(json_object_array_get_idx(arr, i));
    if (json_object_object_get_ex(o, "devices", &arr))
        for (size_t i = 0; i < json_object_array_length(arr) && j->ndevs < VD_MAX_DEVICES; i++) {
            json_object *d = json_object_array_get_idx(arr, i);
            vd_saved_dev *sd = &j->devs[j->ndevs];
            json_object *xml = NULL;
            get_str(d, "alias", sd->alias, sizeof(sd->alias));
            json_object_object_get_ex(d, "xml", &xml);
            if (!(sd->xml = strdup(xml ? json_object_get_string(xml) : "")))
                return vd_err_set(err, "out of memory reading %s", path);
            j->ndevs++;
        }
    return 0;
}

int vd_journal_load(const char *state_dir, vd_journal *j, vd_err *err)
{
    char path[PATH_MAX];
    path_in(path, sizeof(path), state_dir, "journal.json");
    memset(j, 0, sizeof(*j));
    if (access(path, F_OK) != 0) {
        if (errno == ENOENT)
            return 0;
        return vd_err_set(err, "%s: %s", path, strerror(errno));
    }
    json_object *o = json_object_from_file(path);
    if (!o)
        return vd_err_set(err, "%s: unreadable or not JSON (%s); move it aside and run "
                          "'vdeskctl recover'", path, json_util_get_last_err());
    int rc = from_json(o, j, path, err);
    json_object_put(o);
    if (rc < 0)
        vd_journal_clear(j);
    return rc;
}

/* --- writing ------------------------------------------------------------ */

static json_object *to_json(const vd_journal *j)
{
    json_object *o = json_object_new_object();
    json_object *jobs = json_object_new_array();
    json_object *devs = json_object_new_array();
    json_object_object_add(o, "version", json_object_new_int(1));
    json_object_object_add(o, "phase", json_object_new_string(vd_phase_name(j->phase)));
    json_object_object_add(o, "asked", json_object_new_string(j->asked));
    json_object_object_add(o, "used", json_object_new_string(j->used));
    json_object_object_add(o, "step", json_object_new_string(j->step));
    json_object_object_add(o, "save_file", json_object_new_string(j->save_file));
    json_object_object_add(o, "snapshot", json_object_new_string(j->snapshot));
    json_object_object_add(o, "pinned", json_object_new_int(j->pinned));
    json_object_object_add(o, "since_ms", json_object_new_int64(j->since_ms));
    for (int i = 0; i < j->njobs; i++)
        json_object_array_add(jobs, json_object_new_int64(j->jobs[i]));
    for (int i = 0; i < j->ndevs; i++) {
        json_object *d = json_object_new_object();
        json_object_object_add(d, "alias", json_object_new_string(j->devs[i].alias));
        json_object_object_add(d, "xml", json_object_new_string(j->devs[i].xml ? j->devs[i].xml : ""));
        json_object_array_add(devs, d);
    }
    json_object_object_add(o, "jobs", jobs);
    json_object_object_add(o, "devices", devs);
    return o;
}

static int write_all_sync(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return fsync(fd);
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int vd_journal_save(const char *state_dir, const vd_journal *j, vd_err *err)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    path_in(path, sizeof(path), state_dir, "journal.json");
    path_in(tmp, sizeof(tmp), state_dir, ".journal.json.tmp");
    if (vd_mkdirs(state_dir, err) < 0)
        return -1;
    json_object *o = to_json(j);
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = 0;
    if (fd < 0 || write_all_sync(fd, text, strlen(text)) < 0 || write_all_sync(fd, "\n", 1) < 0)
        rc = vd_err_set(err, "%s: cannot write: %s (is %s full or read-only?)", tmp, strerror(errno), state_dir);
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = vd_err_set(err, "%s: close: %s", tmp, strerror(errno));
    json_object_put(o);
    if (rc == 0 && (rename(tmp, path) < 0 || fsync_dir(state_dir) < 0))
        rc = vd_err_set(err, "%s: cannot replace: %s", path, strerror(errno));
    if (rc < 0)
        unlink(tmp);
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

/* --- lock and records ------------------------------------------------- */

int vd_lock_take(const char *state_dir, int timeout_s, int *fd, vd_err *err)
{
    char path[PATH_MAX];
    path_in(path, sizeof(path), state_dir, "lock");
    if (vd_mkdirs(state_dir, err) < 0)
        return -1;
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (f < 0)
        return vd_err_set(err, "%s: cannot open: %s", path, strerror(errno));
    for (int waited_ms = 0;; waited_ms += 100) {
        if (flock(f, LOCK_EX | LOCK_NB) == 0) {
            *fd = f;
            return 0;
        }
        if (errno != EWOULDBLOCK || waited_ms >= timeout_s * 1000) {
            close(f);
            return vd_err_set(err, "%s: another vdesk operation holds the node's lock for over %d s "
                              "(see 'vdeskctl status')", path, timeout_s);
        }
        nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000000 }, NULL);
    }
}

void vd_lock_release(int fd)
{
    if (fd >= 0)
        close(fd);
}

int vd_record_append(const char *state_dir, const char *json_line, vd_err *err)
{
    char path[PATH_MAX];
    path_in(path, sizeof(path), state_dir, "records.jsonl");
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0 || write_all_sync(fd, json_line, strlen(json_line)) < 0 || write_all_sync(fd, "\n", 1) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return vd_err_set(err, "%s: cannot append: %s", path, strerror(e));
    }
    return close(fd) < 0 ? vd_err_set(err, "%s: close: %s", path, strerror(errno)) : 0;
}
