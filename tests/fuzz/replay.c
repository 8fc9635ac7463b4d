/* SPDX-License-Identifier: MIT */
/*
 * replay - runs a fuzz target's LLVMFuzzerTestOneInput over saved inputs,
 * without libFuzzer (so make check needs gcc only, not clang).
 *
 *   fuzz_TARGET FILE|DIR...
 *
 * A directory stands for its files (not its subdirectories or dot files),
 * in name order. Each input runs in a forked child, so that one crash
 * does not hide the inputs after it; a child that dies of a signal, exits
 * non-zero (a sanitizer's report, a leak) or runs past TIMEOUT_S fails.
 * Ends with "fuzz_TARGET: N passed, N failed" (tests/check.sh counts it).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz.h"

/* libFuzzer's own default is 20 minutes; a seed runs in milliseconds. */
#define TIMEOUT_S 30

const char *__ubsan_default_options(void);

/* Crash reports with a stack, as libFuzzer prints them. */
const char *__ubsan_default_options(void)
{
    return "print_stacktrace=1";
}

typedef struct tally {
    int passed, failed;
} tally;

/* The file's bytes in a buffer of exactly its size (one byte for an empty
 * file, not a NULL pointer), as libFuzzer gives them: ASan then sees a
 * read past the input's end. */
static int read_input(const char *path, uint8_t **data, size_t *size)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0 || !(*data = malloc(st.st_size ? (size_t)st.st_size : 1))) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *size = 0;
    while (*size < (size_t)st.st_size) {
        ssize_t n = read(fd, *data + *size, (size_t)st.st_size - *size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        *size += (size_t)n;
    }
    int short_read = *size != (size_t)st.st_size;
    if (close(fd) < 0 || short_read) {
        free(*data);
        errno = short_read ? EIO : errno;
        return -1;
    }
    return 0;
}

/* Runs in the child: exit, not _exit, so that LeakSanitizer looks and the
 * target's scratch directory is removed. */
static _Noreturn void run_child(const uint8_t *data, size_t size)
{
    alarm(TIMEOUT_S);
    LLVMFuzzerTestOneInput(data, size);
    exit(0);
}

static void report(const char *path, int status)
{
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
        printf("FAIL %s: still running after %d s\n", path, TIMEOUT_S);
    else if (WIFSIGNALED(status))
        printf("FAIL %s: killed by signal %d (%s)\n", path, WTERMSIG(status),
               strsignal(WTERMSIG(status)));
    else
        printf("FAIL %s: exit status %d\n", path, WEXITSTATUS(status));
}

static void replay_file(const char *path, tally *t)
{
    uint8_t *data;
    size_t size;
    int status;
    if (read_input(path, &data, &size) < 0) {
        printf("FAIL %s: cannot read: %s\n", path, strerror(errno));
        t->failed++;
        return;
    }
    fflush(NULL);   /* else the child flushes the parent's buffered lines too */
    pid_t pid = fork();
    if (pid == 0)
        run_child(data, size);
    free(data);
    if (pid < 0 || waitpid(pid, &status, 0) < 0) {
        printf("FAIL %s: cannot run it: %s\n", path, strerror(errno));
        t->failed++;
        return;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        t->passed++;
        return;
    }
    report(path, status);
    t->failed++;
}

static int visible(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

static void replay_dir(const char *path, tally *t)
{
    struct dirent **names;
    int n = scandir(path, &names, visible, alphasort);
    if (n < 0) {
        printf("FAIL %s: cannot list: %s\n", path, strerror(errno));
        t->failed++;
        return;
    }
    for (int i = 0; i < n; i++) {
        char file[PATH_MAX];
        struct stat st;
        snprintf(file, sizeof(file), "%s/%s", path, names[i]->d_name);
        if (stat(file, &st) == 0 && S_ISREG(st.st_mode))
            replay_file(file, t);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    tally t = { 0, 0 };
    const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
            replay_dir(argv[i], &t);
        else
            replay_file(argv[i], &t);
    }
    if (t.passed + t.failed == 0) {   /* an empty corpus tests nothing: say so */
        printf("FAIL no inputs (usage: %s FILE|DIR...)\n", name);
        t.failed = 1;
    }
    printf("%s: %d passed, %d failed\n", name, t.passed, t.failed);
    return t.failed ? 1 : 0;
}
