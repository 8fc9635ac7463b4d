/* SPDX-License-Identifier: MIT */
/*
 * lib/child: a step run in a child process with a timeout. The child must
 * not keep the caller's descriptors (a child stuck in the kernel would keep
 * the node's lock with them), a child that does not answer in time is
 * killed and reaped, and one that dies says how.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "scale.h"

static int answers(void *arg, vd_err *err)
{
    return *(int *)arg ? vd_err_set(err, "it failed: %d", *(int *)arg) : 0;
}

static void the_answer_comes_back(void **state)
{
    (void)state;
    vd_err err = { "" };
    int ok = 0, bad = 42;
    assert_int_equal(vd_child_run(answers, &ok, 2000, &err), 0);
    assert_int_equal(vd_child_run(answers, &bad, 2000, &err), -1);
    assert_string_equal(err.msg, "it failed: 42");
}

/* What the child is to check: which of the parent's descriptors it sees. */
typedef struct fds {
    int locked;      /* the parent's flock'd file */
    int std_open[3]; /* whether the parent has 0, 1 and 2 open */
} fds;

static int fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static int sees_only_stdio(void *arg, vd_err *err)
{
    const fds *f = arg;
    if (fd_open(f->locked))
        return vd_err_set(err, "the child has the parent's descriptor %d", f->locked);
    for (int i = 0; i < 3; i++)
        if (fd_open(i) != f->std_open[i])
            return vd_err_set(err, "descriptor %d: %s in the child", i, fd_open(i) ? "open" : "closed");
    return 0;
}

static void the_child_keeps_no_inherited_descriptor(void **state)
{
    (void)state;
    char path[] = "/tmp/vdesk-child-lock-XXXXXX";
    vd_err err = { "" };
    fds f;
    f.locked = mkstemp(path);
    assert_true(f.locked >= 0);
    assert_int_equal(unlink(path), 0);   /* nothing left behind, whatever fails */
    assert_int_equal(flock(f.locked, LOCK_EX), 0);   /* as the node's lock is held */
    for (int i = 0; i < 3; i++)
        f.std_open[i] = fd_open(i);
    if (vd_child_run(sees_only_stdio, &f, 2000, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(close(f.locked), 0);
}

/* The child's pid, shared with the parent: the child has no descriptor of
 * the parent's to tell it through. */
static int sleeps(void *arg, vd_err *err)
{
    (void)err;
    *(volatile pid_t *)arg = getpid();
    pause();
    return 0;
}

static void a_hung_child_is_killed_and_reaped(void **state)
{
    (void)state;
    vd_err err = { "" };
    pid_t *pid = mmap(NULL, sizeof(*pid), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(pid != MAP_FAILED);
    *pid = 0;
    assert_int_equal(vd_child_run(sleeps, pid, 200, &err), -1);
    assert_true(!strncmp(err.msg, "hung for 200 ms", 15));
    assert_true(*pid > 0);
    /* Reaped: no zombie left behind, nothing left to wait for. */
    assert_int_equal(waitpid(*pid, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    assert_int_equal(kill(*pid, 0), -1);
    assert_int_equal(errno, ESRCH);
    assert_int_equal(munmap(pid, sizeof(*pid)), 0);
}

static int exits(void *arg, vd_err *err)
{
    (void)err;
    _exit(*(int *)arg);
}

/* SIGKILL: no sanitizer or valgrind handler turns it into an exit. */
static int is_killed(void *arg, vd_err *err)
{
    (void)arg;
    (void)err;
    kill(getpid(), SIGKILL);
    pause();
    return 0;
}

static void a_child_that_dies_says_how(void **state)
{
    (void)state;
    vd_err err = { "" };
    int code = 7;
    assert_int_equal(vd_child_run(exits, &code, 2000, &err), -1);
    assert_non_null(strstr(err.msg, "ended without answering"));
    assert_non_null(strstr(err.msg, "exit status 7"));
    assert_int_equal(vd_child_run(is_killed, NULL, 2000, &err), -1);
    assert_non_null(strstr(err.msg, "killed by signal 9"));
}

/* vd_child_detach: the function runs in a process of its own that the
 * caller does not wait for, and the limit ends it. */
static int pid_to_file(void *arg, vd_err *err)
{
    const char *path = arg;
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return vd_err_set(err, "%s: %s", tmp, strerror(errno));
    fprintf(f, "%d\n", (int)getpid());
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return vd_err_set(err, "%s: %s", path, strerror(errno));
    if (strstr(path, "hang"))
        for (;;)
            pause();
    return 0;
}

static int pid_wait(const char *path, int seconds)
{
    for (int i = 0; i < seconds * 20; i++) {
        FILE *f = fopen(path, "r");
        int pid = 0;
        if (f && fscanf(f, "%d", &pid) == 1) {
            fclose(f);
            return pid;
        }
        if (f)
            fclose(f);
        nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000000 }, NULL);
    }
    return 0;
}

static void a_detached_run_is_bounded(void **state)
{
    (void)state;
    int scale = (int)test_time_scale();
    char dir[] = "/tmp/vdchild.XXXXXX", ran[64], hang[64];
    vd_err err;
    assert_non_null(mkdtemp(dir));
    snprintf(ran, sizeof(ran), "%s/ran", dir);
    snprintf(hang, sizeof(hang), "%s/hang", dir);
    assert_int_equal(vd_child_detach(pid_to_file, ran, 10, "test", &err), 0);
    int pid = pid_wait(ran, 10 * scale);
    assert_true(pid > 0 && pid != getpid());
    /* The one that hangs is ended by its 1 s limit. */
    assert_int_equal(vd_child_detach(pid_to_file, hang, 1, "test", &err), 0);
    pid = pid_wait(hang, 10 * scale);
    assert_true(pid > 0);
    int gone = 0;
    for (int i = 0; i < 20 * 10 * scale && !gone; i++) {
        gone = kill(pid, 0) < 0 && errno == ESRCH;
        nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000000 }, NULL);
    }
    assert_true(gone);
    unlink(ran);
    unlink(hang);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_answer_comes_back),
        cmocka_unit_test(the_child_keeps_no_inherited_descriptor),
        cmocka_unit_test(a_hung_child_is_killed_and_reaped),
        cmocka_unit_test(a_child_that_dies_says_how),
        cmocka_unit_test(a_detached_run_is_bounded),
    };
    return cmocka_run_group_tests_name("child", tests, NULL, NULL);
}
