/* SPDX-License-Identifier: MIT */
/*
 * emu.h - for unit tests: a fresh sysfs emulator (tests/sysfs) per test,
 * mounted on a temporary directory and unmounted after. VDESK_BUILD and
 * VDESK_SRC (set by tests/check.sh) say where the emulator and the machine
 * files are. Include after cmocka.h.
 */
#ifndef VDESK_TEST_EMU_H
#define VDESK_TEST_EMU_H

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pci.h"

typedef struct emu {
    char mnt[64];
    char sys[96];
    char dev[96];
    char proc[96];
    pid_t pid;
    vd_pci pci;
} emu;

static inline const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

static inline int mounted(const emu *e)
{
    char p[160];
    snprintf(p, sizeof(p), "%s/bus/pci/devices", e->sys);
    return access(p, F_OK) == 0;
}

static inline int emu_start(void **state, const char *machine)
{
    emu *e = calloc(1, sizeof(*e));
    char prog[PATH_MAX], ini[PATH_MAX];
    snprintf(e->mnt, sizeof(e->mnt), "/tmp/vdesk-emu-XXXXXX");
    if (!e || !mkdtemp(e->mnt))
        return -1;
    snprintf(prog, sizeof(prog), "%s/tests/vdesk-sysfs-emu", env_or("VDESK_BUILD", "build"));
    snprintf(ini, sizeof(ini), "%s/tests/sysfs/%s.ini", env_or("VDESK_SRC", "."), machine);
    e->pid = fork();
    if (e->pid == 0) {
        execl(prog, prog, ini, e->mnt, "-f", "-o", "max_threads=16", (char *)NULL);
        _exit(127);
    }
    snprintf(e->sys, sizeof(e->sys), "%s/sys", e->mnt);
    snprintf(e->dev, sizeof(e->dev), "%s/dev", e->mnt);
    snprintf(e->proc, sizeof(e->proc), "%s/proc", e->mnt);
    e->pci = (vd_pci){ .sys = e->sys, .dev = e->dev, .proc = e->proc, .timeout_ms = 2000 };
    for (int i = 0; i < 200 && !mounted(e); i++)
        nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000000 }, NULL);
    if (!mounted(e)) {
        print_error("the sysfs emulator %s did not mount %s\n", prog, ini);
        return -1;
    }
    *state = e;
    return 0;
}

static inline int ws_setup(void **state) { return emu_start(state, "workstation"); }
static inline int srv_setup(void **state) { return emu_start(state, "server"); }

static inline int emu_stop(void **state)
{
    emu *e = *state;
    pid_t u = fork();
    if (u == 0) {
        execlp("fusermount3", "fusermount3", "-u", e->mnt, (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(u, &st, 0);
    kill(e->pid, SIGTERM);
    waitpid(e->pid, &st, 0);
    rmdir(e->mnt);
    free(e);
    return 0;
}

/* Writes a fault command to the emulator. */
static inline void control(const emu *e, const char *cmd)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/.control", e->mnt);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    assert_true(fputs(cmd, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

#endif
