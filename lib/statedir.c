/* SPDX-License-Identifier: MIT */
#include "statedir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

long long vd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long vd_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int mkdirs_mode(const char *dir, mode_t mode, vd_err *err);

int vd_mkdirs(const char *dir, vd_err *err)
{
    return mkdirs_mode(dir, 0700, err);
}

static int mkdirs_mode(const char *dir, mode_t mode, vd_err *err)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
        return vd_err_set(err, "%s: path too long", dir);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, mode) < 0 && errno != EEXIST)
            return vd_err_set(err, "%s: cannot create directory: %s", path, strerror(errno));
        *p = c;
        if (!c)
            return 0;
    }
}

/* The directory must be vdesk's alone: whoever else can write to it can
 * forge the journal that root acts on, or plant links in it. */
/* What a directory is to vdesk, for its checks and messages. */
typedef struct dir_kind {
    const char *what;   /* "state directory" */
    const char *key;    /* its key in vdesk.conf */
    mode_t mode;        /* for new directories, and in the fix */
    const char *forged; /* what others could do if they could write there */
} dir_kind;

static const dir_kind STATE_DIR = { "state directory", "state_dir", 0700, "forge the journal vdesk acts on" };
/* QEMU, which runs as its own user under libvirt's DAC driver, opens the
 * disk layers here by path: it must be able to traverse the directory. */
static const dir_kind SNAPSHOT_DIR = { "snapshot directory", "snapshot_dir", 0711,
                                       "swap the disk layers of the desktop" };

static int check_owner(const char *dir, const struct stat *st, const dir_kind *k, vd_err *err)
{
    uid_t me = geteuid();
    if (st->st_uid == me && !(st->st_mode & (S_IWGRP | S_IWOTH)))
        return 0;
    char owner[32];
    if (me == 0)
        snprintf(owner, sizeof(owner), "root:root");
    else
        snprintf(owner, sizeof(owner), "%u", (unsigned)me);
    return vd_err_set(err, "%s %s: owned by uid %u with mode %04o, but it must be "
                      "owned by uid %u and writable by it alone, or others could %s: "
                      "chown %s %s && chmod %04o %s", k->what, dir,
                      (unsigned)st->st_uid, (unsigned)(st->st_mode & 07777), (unsigned)me,
                      k->forged, owner, dir, (unsigned)k->mode, dir);
}

static int dir_check(const char *dir, const dir_kind *k, vd_err *err)
{
    char path[PATH_MAX];
    struct stat st;
    if (mkdirs_mode(dir, k->mode, err) < 0)
        return -1;
    /* lstat("link/") would follow the link: look at the name itself. */
    snprintf(path, sizeof(path), "%s", dir);
    for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--)
        path[n - 1] = '\0';
    if (lstat(path, &st) < 0)
        return vd_err_set(err, "%s %s: %s", k->what, dir, strerror(errno));
    if (S_ISLNK(st.st_mode))
        return vd_err_set(err, "%s %s: is a symbolic link; vdesk keeps its files "
                          "only in a real directory: set %s in vdesk.conf to the "
                          "directory itself", k->what, dir, k->key);
    if (!S_ISDIR(st.st_mode))
        return vd_err_set(err, "%s %s: not a directory: move it away or set "
                          "%s in vdesk.conf to another path", k->what, dir, k->key);
    return check_owner(dir, &st, k, err);
}

int vd_state_dir_check(const char *dir, vd_err *err)
{
    return dir_check(dir, &STATE_DIR, err);
}

int vd_snapshot_dir_check(const char *dir, vd_err *err)
{
    return dir_check(dir, &SNAPSHOT_DIR, err);
}

void vd_state_path(char *out, size_t size, const char *dir, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

int vd_state_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Says why a file in the state directory did not open. Returns -1. */
int vd_state_open_failed(const char *path, vd_err *err)
{
    if (errno == ELOOP)
        return vd_err_set(err, "%s: is a symbolic link, which vdesk does not follow in its state "
                          "directory: see where it points, then remove it", path);
    return vd_err_set(err, "%s: cannot open: %s", path, strerror(errno));
}

/* Opens a file in the state directory without following a symbolic link:
 * one planted there would have root read or write where it points. */
int vd_state_open(const char *path, int flags, vd_err *err)
{
    int fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
    return fd < 0 ? vd_state_open_failed(path, err) : fd;
}

int vd_state_write_all(int fd, const char *buf, size_t len)
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
    return 0;
}

/* Writes text and its newline in one write and syncs once: a second write
 * and fsync for the newline cost a disk flush each time. */
int vd_state_write_line(int fd, const char *text)
{
    size_t len = strlen(text);
    char *line = malloc(len + 1);
    if (!line) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(line, text, len);
    line[len] = '\n';
    int rc = vd_state_write_all(fd, line, len + 1);
    free(line);
    return rc < 0 ? -1 : fsync(fd);
}

/* --- lock and records ------------------------------------------------- */

int vd_lock_take(const char *state_dir, int timeout_s, int *fd, vd_err *err)
{
    char path[PATH_MAX];
    vd_state_path(path, sizeof(path), state_dir, "lock");
    if (vd_state_dir_check(state_dir, err) < 0)
        return -1;
    int f = vd_state_open(path, O_RDWR | O_CREAT, err);
    if (f < 0)
        return -1;
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
    if (fd < 0)
        return;
    /* The note goes with the lock: a holder that wrote none later (a
     * crash before its note, flock(1)) is then not shown as the last one. */
    if (ftruncate(fd, 0) < 0) {
        /* only vd_lock_holder's view suffers */
    }
    close(fd);
}

void vd_lock_note(int fd, const char *who)
{
    char line[256];
    int n = snprintf(line, sizeof(line), "%ld %lld %.200s\n", (long)getpid(), vd_now_ms() / 1000, who);
    /* Written over what is there, then cut to length: a reader never finds
     * the file empty while it is held. */
    if (n < 0 || pwrite(fd, line, (size_t)n, 0) != n || ftruncate(fd, n) < 0)
        return;   /* only status's view of the holder suffers */
}

/* "PID SECONDS WHO" as vd_lock_note wrote it, in words. */
static void holder_words(const char *line, char *buf, size_t size)
{
    char *end, *rest;
    errno = 0;
    long long pid = strtoll(line, &end, 10);
    long long since = end != line ? strtoll(end, &rest, 10) : 0;
    if (errno || end == line || rest == end || pid <= 0 || pid > INT_MAX || since <= 0 || *rest != ' ') {
        snprintf(buf, size, "an operation that did not say what it is");
        return;
    }
    char who[201], when[32];
    snprintf(who, sizeof(who), "%s", rest + 1);
    who[strcspn(who, "\n")] = '\0';
    for (char *c = who; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
            *c = '?';   /* the lock file is no more trusted than the journal */
    time_t t = (time_t)since;
    struct tm tm;
    if (!localtime_r(&t, &tm) || !strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm))
        snprintf(when, sizeof(when), "?");
    long long age = vd_now_ms() / 1000 - since;
    snprintf(buf, size, "pid %lld, %s, since %s (%lld s)", pid, who, when, age < 0 ? 0 : age);
}

int vd_lock_holder(const char *state_dir, char *buf, size_t size)
{
    char path[PATH_MAX], line[256];
    vd_state_path(path, sizeof(path), state_dir, "lock");
    buf[0] = '\0';
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 0;
    if (flock(fd, LOCK_SH | LOCK_NB) == 0 || errno != EWOULDBLOCK) {
        close(fd);   /* free, or not a lock vdesk could take either */
        return 0;
    }
    ssize_t n = pread(fd, line, sizeof(line) - 1, 0);
    close(fd);
    line[n > 0 ? n : 0] = '\0';
    holder_words(line, buf, size);
    return 1;
}

int vd_record_append(const char *state_dir, const char *json_line, vd_err *err)
{
    char path[PATH_MAX];
    vd_state_path(path, sizeof(path), state_dir, "records.jsonl");
    int fd = vd_state_open(path, O_WRONLY | O_CREAT | O_APPEND, err);
    if (fd < 0)
        return -1;
    if (vd_state_write_line(fd, json_line) < 0) {
        int e = errno;
        close(fd);
        return vd_err_set(err, "%s: cannot append: %s", path, strerror(e));
    }
    return close(fd) < 0 ? vd_err_set(err, "%s: close: %s", path, strerror(errno)) : 0;
}

int vd_file_replace(const char *path, const char *data, size_t len, mode_t mode, uid_t uid, gid_t gid,
                    vd_err *err)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", path, (long)getpid()) >= (int)sizeof(tmp))
        return vd_err_set(err, "%s: path too long", path);
    if (unlink(tmp) < 0 && errno != ENOENT)
        return vd_err_set(err, "cannot remove the stale %s: %s", tmp, strerror(errno));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return vd_err_set(err, "cannot write %s: %s", tmp, strerror(errno));
    /* The mode asked, not what the umask leaves of it: others read these
     * files (a metrics collector, every srun's plugin). Only root can give
     * the file away (first: a change of owner clears set-id bits); anyone
     * else keeps it. */
    int rc = ((uid != (uid_t)-1 || gid != (gid_t)-1) && geteuid() == 0 && fchown(fd, uid, gid) < 0) ||
             fchmod(fd, mode) < 0 || vd_state_write_all(fd, data, len) < 0 || fsync(fd) < 0 ? -1 : 0;
    int e = errno;
    if (close(fd) < 0 && rc == 0) {
        rc = -1;
        e = errno;
    }
    if (rc == 0 && rename(tmp, path) < 0) {
        rc = -1;
        e = errno;
    }
    if (rc < 0) {
        unlink(tmp);
        return vd_err_set(err, "cannot write %s: %s", path, strerror(e));
    }
    /* The rename's durability; the file is whole either way. */
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    (void)vd_state_fsync_dir(slash ? dir : ".");
    return 0;
}
