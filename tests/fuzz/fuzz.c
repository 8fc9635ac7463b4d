/* SPDX-License-Identifier: MIT */
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static char dir[PATH_MAX];
static pid_t dir_owner;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int rc = flag == FTW_DP ? rmdir(path) : unlink(path);
    return rc < 0 && errno != ENOENT ? -1 : 0;
}

void fuzz_rm_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return;
        fuzz_fail("%s: %s", path, strerror(errno));
    }
    if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fuzz_fail("cannot remove %s: %s", path, strerror(errno));
}

/* Only the process that made the directory removes it: a forked child
 * that exits must not take its parent's directory along. */
static void dir_cleanup(void)
{
    if (dir[0] && getpid() == dir_owner)
        fuzz_rm_tree(dir);
}

static const char *scratch_base(void)
{
    const char *tmp = getenv("TMPDIR");
    if (access("/dev/shm", W_OK | X_OK) == 0)
        return "/dev/shm";
    return tmp && *tmp ? tmp : "/tmp";
}

const char *fuzz_dir(void)
{
    if (dir[0] && getpid() == dir_owner)
        return dir;
    int n = snprintf(dir, sizeof(dir), "%s/vdesk-fuzz-%ld-XXXXXX", scratch_base(), (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(dir))
        fuzz_fail("scratch directory name too long");
    if (!mkdtemp(dir))
        fuzz_fail("mkdtemp %s: %s", dir, strerror(errno));
    if (!dir_owner && atexit(dir_cleanup) != 0)
        fuzz_fail("atexit failed");
    dir_owner = getpid();
    return dir;
}

void fuzz_path(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size)
        fuzz_fail("path too long: %s...", out);
}

void fuzz_write(const char *path, const void *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        fuzz_fail("%s: %s", path, strerror(errno));
    for (const char *p = data; size > 0;) {
        ssize_t n = write(fd, p, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            fuzz_fail("write %s: %s", path, strerror(errno));
        p += n;
        size -= (size_t)n;
    }
    if (close(fd) < 0)
        fuzz_fail("close %s: %s", path, strerror(errno));
}

void fuzz_mkdirs(const char *path)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof(p), "%s", path) >= (int)sizeof(p))
        fuzz_fail("%s: path too long", path);
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c != '\0')
            continue;
        char was = *c;
        *c = '\0';
        if (mkdir(p, 0700) < 0 && errno != EEXIST)
            fuzz_fail("mkdir %s: %s", p, strerror(errno));
        *c = was;
        if (!was)
            return;
    }
}

char *fuzz_str(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        fuzz_fail("out of memory");
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

size_t fuzz_split(const uint8_t *data, size_t size, const char *sep, size_t seplen, char **parts,
                  size_t *lens, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < max; i++)
        parts[i] = NULL;
    while (n < max) {
        const uint8_t *at = n + 1 < max ? memmem(data, size, sep, seplen) : NULL;
        size_t len = at ? (size_t)(at - data) : size;
        if (lens)
            lens[n] = len;
        parts[n++] = fuzz_str(data, len);
        if (!at)
            break;
        data = at + seplen;
        size -= len + seplen;
    }
    return n;
}

void fuzz_free_parts(char **parts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(parts[i]);
}
