/* SPDX-License-Identifier: MIT */
#include "comment.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "journal.h"
#include "slurmapi.h"

int vd_desktop_comment(const vd_conf *conf, vd_err *err)
{
    char state[256], now[256];
    vd_desktop_describe(conf, state, sizeof(state));
    for (int tries = 0; tries < 2; tries++) {
        if (vd_slurm_node_comment(conf->node, state, err) < 0)
            return -1;
        vd_desktop_describe(conf, now, sizeof(now));
        if (!strcmp(now, state))
            return 0;
        memcpy(state, now, sizeof(state));
    }
    return 0;   /* still changing: the operation under way writes its own */
}

/* Points 0, 1 and 2 at /dev/null and closes every other descriptor. */
static int detach_fds(void)
{
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
        return -1;
    for (int fd = 0; fd < 3; fd++)
        if (dup2(null, fd) < 0)
            return -1;
    if (close_range(3, ~0U, 0) == 0)
        return 0;
    long max = sysconf(_SC_OPEN_MAX);   /* a kernel before 5.9 */
    for (int fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
        if (close(fd) < 0 && errno != EBADF)
            return -1;
    return 0;
}

#define TURN_WAIT_S 30   /* a writer stuck on slurmctld holds the turn no longer */

/* Waits for this node's turn to write (STATE_DIR/comment.lock): the lock's
 * descriptor, or -1 when there is none to wait for (errno says why). */
static int turn_take(const vd_conf *conf, char *path, size_t size)
{
    vd_err err;
    if (snprintf(path, size, "%s/comment.lock", conf->state_dir) >= (int)size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (vd_state_dir_check(conf->state_dir, &err) < 0) {
        errno = EPERM;
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC, 0600);
    for (int i = 0; fd >= 0 && i < TURN_WAIT_S * 10; i++) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return fd;
        if (errno != EWOULDBLOCK && errno != EINTR)
            break;
        nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000000 }, NULL);
    }
    if (fd >= 0) {
        int e = errno;
        close(fd);   /* nothing was written through it */
        errno = e;
    }
    return -1;
}

/* The grandchild: waits its turn, then writes; syslog is all it has. */
static void comment_writer(const vd_conf *conf)
{
    char path[PATH_MAX];
    vd_err err;
    if (turn_take(conf, path, sizeof(path)) < 0)
        syslog(LOG_WARNING, "node %s: %s/comment.lock: %m; writing the Comment without waiting "
               "its turn", conf->node, conf->state_dir);
    if (vd_desktop_comment(conf, &err) < 0)
        syslog(LOG_WARNING, "%s", err.msg);
}

int vd_desktop_comment_later(const vd_conf *conf, vd_err *err)
{
    pid_t child = fork();
    if (child < 0)
        return vd_err_set(err, "node %s: cannot start the process that writes its Comment: %s",
                          conf->node, strerror(errno));
    if (child == 0) {
        /* A session of its own, and a second fork: nothing waits for it,
         * and slurmd's kill of the prolog's process group misses it. */
        if (setsid() < 0)
            _exit(1);
        pid_t writer = fork();
        if (writer == 0) {
            closelog();   /* its socket goes with the other descriptors */
            if (detach_fds() == 0)
                comment_writer(conf);
            _exit(0);
        }
        _exit(writer < 0 ? 1 : 0);
    }
    int status;
    while (waitpid(child, &status, 0) < 0) {
        if (errno == ECHILD)   /* SIGCHLD ignored: reaped already, status unknown */
            return 0;
        if (errno != EINTR)
            return vd_err_set(err, "node %s: lost the process that writes its Comment: %s",
                              conf->node, strerror(errno));
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return vd_err_set(err, "node %s: the process that writes its Comment could not start",
                          conf->node);
    return 0;
}
