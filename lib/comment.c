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

#include "child.h"
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

/* The detached process: waits its turn, then writes. */
static int comment_writer(void *arg, vd_err *err)
{
    const vd_conf *conf = arg;
    char path[PATH_MAX];
    if (turn_take(conf, path, sizeof(path)) < 0)
        syslog(LOG_WARNING, "node %s: %s/comment.lock: %m; writing the Comment without waiting "
               "its turn", conf->node, conf->state_dir);
    return vd_desktop_comment(conf, err);
}

int vd_desktop_comment_later(const vd_conf *conf, vd_err *err)
{
    char what[128];
    snprintf(what, sizeof(what), "node %s: the process that writes its Comment", conf->node);
    /* turn_take waits 30 s at most, and each of the two RPCs has
     * MessageTimeout (10 s by default). */
    return vd_child_detach(comment_writer, (void *)conf, TURN_WAIT_S + 60, what, err);
}
