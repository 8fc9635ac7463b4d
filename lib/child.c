/* SPDX-License-Identifier: MIT */
#include "child.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* How long a child is waited for before it is left behind: one stuck in
 * the kernel cannot die until the driver lets go, and the caller must not
 * wait for that. A killed child that is not stuck dies at once; one that
 * answered, or closed its answer pipe, is exiting, which may take longer
 * (closing a GPU's device). */
#define KILLED_MS 250
#define EXITING_MS 1000
#define NAP_MS 10   /* between two looks, where there is no pidfd to wait on */

/* The child's answer: its result, then its message. */
typedef struct answer {
    int rc;
    vd_err err;
} answer;

/* Without close_range (kernels before 5.9, or a seccomp filter that hides
 * it): every descriptor /proc lists. */
static int close_listed(int keep)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (fd > 2 && fd != keep && fd != dirfd(d))
            close(fd);   /* even when it fails, the descriptor is gone */
    }
    return closedir(d);
}

/* Closes every descriptor but stdin, stdout, stderr and `keep`: a child
 * stuck in the kernel keeps what it has open, and the caller's descriptors
 * may include the node's lock, which every later prolog, epilog and
 * vdeskctl would then wait for. */
static int close_inherited(int keep)
{
    int rc = 0;
    if (keep > 3)
        rc = close_range(3, (unsigned)keep - 1, 0);
    if (rc == 0)
        rc = close_range(keep < 3 ? 3 : (unsigned)keep + 1, ~0U, 0);
    return rc == 0 ? 0 : close_listed(keep);
}

static void child(vd_child_fn fn, void *arg, int fd)
{
    answer a = { .rc = 0, .err = { "" } };
    if (close_inherited(fd) < 0)
        a.rc = vd_err_set(&a.err, "the child process cannot close the descriptors it inherited "
                          "(close_range and /proc/self/fd: %s); is /proc mounted?", strerror(errno));
    else
        a.rc = fn(arg, &a.err);
    _exit(write(fd, &a, sizeof(a)) == sizeof(a) ? 0 : 2);
}

static long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

/* What is left of timeout_ms at `deadline`; negative: no limit, as poll. */
static int left_ms(int timeout_ms, long deadline)
{
    long left = deadline - now_ms();
    return timeout_ms < 0 ? -1 : left > 0 ? (int)left : 0;
}

/* Waits up to timeout_ms for the child's answer. Returns 1 (answered), 0
 * (the child ended without answering) or -1 (no answer in time). */
static int await_answer(int fd, answer *a, int timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    long deadline = now_ms() + timeout_ms;
    int ready;
    do   /* a signal does not restart the wait from the beginning */
        ready = poll(&pfd, 1, left_ms(timeout_ms, deadline));
    while (ready < 0 && errno == EINTR);
    if (ready <= 0)
        return -1;
    ssize_t got;
    do
        got = read(fd, a, sizeof(*a));
    while (got < 0 && errno == EINTR);
    /* One write of less than PIPE_BUF bytes: all of it, or none. */
    return got == (ssize_t)sizeof(*a);
}

/* waitpid without waiting: 1 (reaped, status in *status), 0 (running) or
 * -1 (errno says why). */
static int reaped(pid_t pid, int *status)
{
    pid_t r;
    do
        r = waitpid(pid, status, WNOHANG);
    while (r < 0 && errno == EINTR);
    return r == pid ? 1 : r;
}

/* Waits up to ms, or until the child of `pidfd` ends: a pidfd wakes the
 * moment it does. Without one (kernels before 5.3), a short nap. */
static void nap(int pidfd, int ms)
{
    struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
    if (pidfd < 0 || poll(&pfd, 1, ms) < 0)
        nanosleep(&(struct timespec){ .tv_nsec = (ms < NAP_MS ? ms : NAP_MS) * 1000000L }, NULL);
}

/* Waits up to ms for child `pid` to end. Returns 1 (reaped, status in
 * *status), 0 (still running) or -1 (waitpid failed, errno says why). */
static int reap(pid_t pid, int ms, int *status)
{
    long deadline = now_ms() + ms;
    int pidfd = pidfd_open(pid, 0), r;
    while ((r = reaped(pid, status)) == 0 && left_ms(ms, deadline) > 0)
        nap(pidfd, left_ms(ms, deadline));
    int e = errno;
    if (pidfd >= 0)
        close(pidfd);
    errno = e;
    return r;
}

static int hung(pid_t pid, int timeout_ms, vd_err *err)
{
    int status;
    kill(pid, SIGKILL);
    if (reap(pid, KILLED_MS, &status) != 0)
        return vd_err_set(err, "hung for %d ms (the child process was killed)", timeout_ms);
    return vd_err_set(err, "hung for %d ms; its process %d is stuck in the kernel and cannot be "
                      "killed: it is left behind, and ends when the kernel lets it go",
                      timeout_ms, (int)pid);
}

/* The end of a child that gave no answer, as waitpid tells it. */
static int died(pid_t pid, vd_err *err)
{
    int status = 0, r = reap(pid, EXITING_MS, &status);
    if (r < 0)
        return vd_err_set(err, "the child process %d ended without answering (its exit status is "
                          "unknown: waitpid: %s)", (int)pid, strerror(errno));
    if (r == 0) {
        kill(pid, SIGKILL);
        return vd_err_set(err, "the child process %d closed its answer pipe without answering and "
                          "does not end: killed, and left behind", (int)pid);
    }
    if (WIFEXITED(status))
        return vd_err_set(err, "the child process %d ended without answering (exit status %d)",
                          (int)pid, WEXITSTATUS(status));
    return vd_err_set(err, "the child process %d ended without answering (killed by signal %d, %s)",
                      (int)pid, WTERMSIG(status), strsignal(WTERMSIG(status)));
}

/* A child that answered is about to exit; one that does not within
 * EXITING_MS (stuck closing a device) is killed and left behind: its
 * answer stands. */
static void reap_answered(pid_t pid)
{
    int status;
    if (reap(pid, EXITING_MS, &status) == 0 && kill(pid, SIGKILL) == 0)
        reap(pid, KILLED_MS, &status);
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
    answer a;
    int got = await_answer(pipefd[0], &a, timeout_ms);
    close(pipefd[0]);
    if (got < 0)
        return hung(pid, timeout_ms, err);
    if (got == 0)
        return died(pid, err);
    reap_answered(pid);
    if (a.rc < 0)
        return vd_err_set(err, "%s", a.err.msg);
    return 0;
}

/* --- running a program (vd_child_exec) --- */

int vd_child_which(const char *name, char *buf, size_t size)
{
    if (strchr(name, '/')) {
        if (access(name, X_OK) < 0 || (size_t)snprintf(buf, size, "%s", name) >= size)
            return -1;
        return 0;
    }
    const char *path = getenv("PATH");
    for (const char *p = path && *path ? path : "/usr/local/bin:/usr/bin:/bin"; *p;) {
        size_t len = strcspn(p, ":");
        int n = snprintf(buf, size, "%.*s/%s", (int)len, p, name);
        if (len && n > 0 && (size_t)n < size && access(buf, X_OK) == 0)
            return 0;
        p += len + (p[len] == ':');
    }
    return -1;
}

typedef struct exec_arg {
    char *const *argv;
    const char *prog;     /* the resolved path */
    const char *outpath;  /* where the program's output goes */
} exec_arg;

/* The program itself: dies with the child that waits for it (the timeout
 * kills that one), so that nothing of it is left running. */
static void exec_program(const exec_arg *a, int outfd)
{
    int in = open("/dev/null", O_RDONLY);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1 || in < 0 || dup2(in, 0) < 0 ||
        dup2(outfd, 1) < 0 || dup2(outfd, 2) < 0)
        _exit(126);
    execv(a->prog, a->argv);
    _exit(127);
}

/* vd_child_run's function: runs the program and says how it ended. */
static int exec_wait(void *arg, vd_err *err)
{
    const exec_arg *a = arg;
    int outfd = open(a->outpath, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (outfd < 0)
        return vd_err_set(err, "%s: cannot open its output file %s: %s", a->prog, a->outpath,
                          strerror(errno));
    pid_t pid = fork();
    if (pid == 0)
        exec_program(a, outfd);
    close(outfd);
    if (pid < 0)
        return vd_err_set(err, "%s: fork: %s", a->prog, strerror(errno));
    int status;
    pid_t r;
    do
        r = waitpid(pid, &status, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return vd_err_set(err, "%s: waitpid: %s", a->prog, strerror(errno));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status))
        return vd_err_set(err, "%s exited with status %d%s", a->prog, WEXITSTATUS(status),
                          WEXITSTATUS(status) == 127 ? " (it could not be started)" : "");
    return vd_err_set(err, "%s was killed by signal %d (%s)", a->prog, WTERMSIG(status),
                      strsignal(WTERMSIG(status)));
}

/* The program's output, from the file it wrote, into out. */
static void read_output(int fd, char *out, size_t size)
{
    if (!out || !size)
        return;
    size_t used = 0;
    ssize_t n;
    while (used + 1 < size && (n = pread(fd, out + used, size - 1 - used, (off_t)used)) > 0)
        used += (size_t)n;
    out[used] = '\0';
}

int vd_child_exec(char *const argv[], int timeout_ms, char *out, size_t size, vd_err *err)
{
    char prog[PATH_MAX], outpath[] = "/tmp/vdesk-exec-XXXXXX";
    if (out && size)
        out[0] = '\0';
    if (vd_child_which(argv[0], prog, sizeof(prog)) < 0)
        return vd_err_set(err, "%s: not found (not installed, or not on PATH)", argv[0]);
    int fd = mkstemp(outpath);
    if (fd < 0)
        return vd_err_set(err, "%s: cannot create a file for its output: %s", argv[0], strerror(errno));
    exec_arg a = { .argv = argv, .prog = prog, .outpath = outpath };
    vd_err why;
    int rc = vd_child_run(exec_wait, &a, timeout_ms, &why);
    read_output(fd, out, size);
    close(fd);
    unlink(outpath);
    if (rc < 0 && !strncmp(why.msg, "hung for", 8))
        return vd_err_set(err, "%s: %s", prog, why.msg);
    return rc < 0 ? vd_err_set(err, "%s", why.msg) : 0;
}

/* --- detached: vd_child_detach ------------------------------------------- */

/* Points 0, 1 and 2 at /dev/null and closes every other descriptor. */
static int detach_fds(void)
{
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
        return -1;
    for (int fd = 0; fd < 3; fd++)
        if (dup2(null, fd) < 0)
            return -1;
    return close_inherited(-1);
}

/* Unblocked SIGALRM, the default action, and the alarm: the first thing
 * a detached process does, so that nothing after it (closelog() on a lock
 * another thread of the caller held at fork time) can outlast the limit. */
static void limit_set(int seconds)
{
    sigset_t alrm;
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    sigprocmask(SIG_UNBLOCK, &alrm, NULL);
    signal(SIGALRM, SIG_DFL);
    alarm(seconds > 0 ? (unsigned)seconds : 1);
}

/* The detached supervisor: runs fn in a worker that the alarm ends, and
 * says in syslog how the worker ended when that was not by returning. */
static void detached_run(vd_child_fn fn, void *arg, int limit_s, const char *what)
{
    limit_set(limit_s + 10);
    signal(SIGCHLD, SIG_DFL);   /* ignored, the worker could not be waited for */
    pid_t worker = fork();
    if (worker == 0) {
        vd_err err;
        limit_set(limit_s);
        closelog();   /* its socket goes with the other descriptors */
        if (chdir("/") < 0 || detach_fds() < 0)
            _exit(1);
        if (fn(arg, &err) < 0)
            syslog(LOG_WARNING, "%s: %s", what, err.msg);
        _exit(0);
    }
    closelog();
    if (chdir("/") < 0 || detach_fds() < 0 || worker < 0)
        return;
    int status;
    while (waitpid(worker, &status, 0) < 0)
        if (errno != EINTR)
            return;
    if (WIFSIGNALED(status))
        syslog(LOG_WARNING, "%s: stopped by %s (its limit is %d s)", what,
               WTERMSIG(status) == SIGALRM ? "its time limit" : strsignal(WTERMSIG(status)), limit_s);
}

int vd_child_detach(vd_child_fn fn, void *arg, int limit_s, const char *what, vd_err *err)
{
    pid_t child = fork();
    if (child < 0)
        return vd_err_set(err, "%s cannot start: %s", what, strerror(errno));
    if (child == 0) {
        if (setsid() < 0)
            _exit(1);
        pid_t supervisor = fork();
        if (supervisor == 0) {
            detached_run(fn, arg, limit_s, what);
            _exit(0);
        }
        _exit(supervisor < 0 ? 1 : 0);
    }
    int status;
    while (waitpid(child, &status, 0) < 0) {
        if (errno == ECHILD)   /* SIGCHLD ignored: reaped already, status unknown */
            return 0;
        if (errno != EINTR)
            return vd_err_set(err, "%s: lost it: %s", what, strerror(errno));
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return vd_err_set(err, "%s could not start", what);
    return 0;
}
