/* SPDX-License-Identifier: MIT */
#include "jsonfile.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "statedir.h"

/* Names the file, what is wrong with it, and the caller's fix. Returns -1. */
static int refuse(vd_err *err, const char *path, const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int refuse(vd_err *err, const char *path, const char *fix, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return vd_err_set(err, "%s: %s%s", path, what, fix);
}

static int read_all(int fd, char *buf, size_t size, size_t *len)
{
    *len = 0;
    while (*len < size) {
        ssize_t n = read(fd, buf + *len, size - *len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        *len += (size_t)n;
    }
    return 0;
}

/* Only a regular file of the size the caller expects: not a device or
 * FIFO that would block the reader, not a file that would fill its memory. */
static int check_file(int fd, const char *path, long max, const char *fix, off_t *size, vd_err *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return vd_err_set(err, "%s: cannot stat: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return refuse(err, path, fix, "not a regular file");
    if (st.st_size > max)
        return refuse(err, path, fix, "%lld bytes, more than vdesk writes there (%ld)",
                      (long long)st.st_size, max);
    *size = st.st_size;
    return 0;
}

/* The file's text, NUL-terminated, in *text (NULL: no file). */
static int read_text(const char *path, long max, const char *fix, char **text, size_t *len, vd_err *err)
{
    off_t size = 0;
    *text = NULL;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return errno == ENOENT ? 0 : vd_state_open_failed(path, err);
    if (check_file(fd, path, max, fix, &size, err) < 0) {
        close(fd);
        return -1;
    }
    if (!(*text = malloc((size_t)size + 1))) {
        close(fd);
        return vd_err_set(err, "%s: out of memory reading it", path);
    }
    int rc = read_all(fd, *text, (size_t)size, len);
    int e = errno;
    close(fd);
    if (rc < 0) {
        free(*text);
        *text = NULL;
        return vd_err_set(err, "%s: cannot read: %s", path, strerror(e));
    }
    (*text)[*len] = '\0';
    return 0;
}

static int only_space(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)s[i]))
            return 0;
    return 1;
}

/* One JSON value and nothing after it but white space. */
static int parse_text(const char *path, const char *fix, const char *text, size_t len, json_object **o,
                      vd_err *err)
{
    *o = NULL;
    if (len == 0)
        return refuse(err, path, fix, "empty file");
    if (memchr(text, '\0', len))
        return refuse(err, path, fix, "not JSON (it holds NUL bytes)");
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return vd_err_set(err, "%s: out of memory reading it", path);
    /* The NUL counts, as in json_tokener_parse: it ends a number at the end. */
    *o = json_tokener_parse_ex(tok, text, (int)len + 1);
    enum json_tokener_error e = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (e != json_tokener_success)
        return refuse(err, path, fix, "not JSON (%s at byte %zu)", json_tokener_error_desc(e), end);
    if (end < len && !only_space(text + end, len - end))
        return refuse(err, path, fix, "not JSON (more text after the object, at byte %zu)", end);
    return 0;
}

static int write_tmp(const char *tmp, const char *text, const char *dir, vd_err *err)
{
    if (unlink(tmp) < 0 && errno != ENOENT)
        return vd_err_set(err, "%s: cannot remove the stale one: %s", tmp, strerror(errno));
    int fd = vd_state_open(tmp, O_WRONLY | O_CREAT | O_EXCL, err);
    if (fd < 0)
        return -1;
    int rc = 0;
    if (vd_state_write_line(fd, text) < 0)
        rc = vd_err_set(err, "%s: cannot write: %s (is %s full or read-only?)", tmp,
                        strerror(errno), dir);
    if (close(fd) < 0 && rc == 0)
        rc = vd_err_set(err, "%s: close: %s", tmp, strerror(errno));
    return rc;
}

int vd_json_file_load(const char *path, long max_bytes, const char *fix, json_object **o, vd_err *err)
{
    char *text;
    size_t len;
    *o = NULL;
    if (read_text(path, max_bytes, fix, &text, &len, err) < 0)
        return -1;
    if (!text)
        return 0;
    int rc = parse_text(path, fix, text, len, o, err);
    free(text);
    /* "null" parses to no object at all: not the missing file it would pass for. */
    if (rc == 0 && !json_object_is_type(*o, json_type_object))
        rc = refuse(err, path, fix, "not a JSON object (it is %s)",
                    json_type_to_name(json_object_get_type(*o)));
    if (rc < 0) {
        json_object_put(*o);
        *o = NULL;
    }
    return rc;
}

int vd_json_file_save(const char *dir, const char *name, json_object *o, vd_err *err)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) >= (int)sizeof(tmp))
        return vd_err_set(err, "%s/%s: path too long", dir, name);
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
    int rc = text ? write_tmp(tmp, text, dir, err) : vd_err_set(err, "%s: out of memory writing it", path);
    if (rc == 0 && (rename(tmp, path) < 0 || vd_state_fsync_dir(dir) < 0))
        rc = vd_err_set(err, "%s: cannot replace: %s", path, strerror(errno));
    if (rc < 0)
        unlink(tmp);
    return rc;
}

const char *vd_json_str(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v) : NULL;
}

int vd_json_int(json_object *o, const char *key, long long *out)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
        return -1;
    *out = json_object_get_int64(v);
    return 0;
}
