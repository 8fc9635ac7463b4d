/* SPDX-License-Identifier: MIT */
#include "child.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The child's answer: its result, then its message. */
typedef struct answer {
    int rc;
    vd_err err;
} answer;

static void child(vd_child_fn fn, void *arg, int fd)
{
    answer a = { .rc = 0, .err = { "" } };
    a.rc = fn(arg, &a.err);
    _exit(write(fd, &a, sizeof(a)) == sizeof(a) ? 0 : 2);
}

int vd_child_run(vd_child_fn fn, void *arg, int timeout_ms, vd_err *err)
{
    int pipefd[2];
    if (pipe(pipefd) < 0)
        return vd_err_set(err, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        return vd_err_set(err, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(pipefd[0]);
        child(fn, arg, pipefd[1]);
    }
    close(pipefd[1]);
    /* The child reports through the pipe: wake the moment it is done. */
    struct pollfd pfd = { .fd = pipefd[0], .events = POLLIN };
    int ready, status;
    do
        ready = poll(&pfd, 1, timeout_ms);
    while (ready < 0 && errno == EINTR);
    if (ready <= 0) {
        kill(pid, SIGKILL);
        close(pipefd[0]);
        return vd_err_set(err, "hung for %d ms", timeout_ms);
    }
    answer a;
    ssize_t got = read(pipefd[0], &a, sizeof(a));
    close(pipefd[0]);
    waitpid(pid, &status, 0);
    if (got != (ssize_t)sizeof(a))
        return vd_err_set(err, "the child process died (status %d)", status);
    if (a.rc < 0)
        return vd_err_set(err, "%s", a.err.msg);
    return 0;
}
