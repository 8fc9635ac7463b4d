/* SPDX-License-Identifier: MIT */
/*
 * lib/pci against the sysfs emulator (tests/sysfs): every test mounts a
 * fresh machine. VDESK_BUILD and VDESK_SRC (set by tests/check.sh) say where
 * the emulator and the machine files are.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "emu.h"
#include "pci.h"
#include "scale.h"

static void assert_drivers(const emu *e, const char *bdf, const char *expected)
{
    vd_pci_group g;
    vd_err err;
    char got[512] = "";
    assert_int_equal(vd_pci_group_read(&e->pci, bdf, &g, &err), 0);
    for (int i = 0; i < g.n; i++) {
        size_t n = strlen(got);
        snprintf(got + n, sizeof(got) - n, "%s%s=%s", n ? " " : "", g.fns[i].bdf, g.fns[i].driver);
    }
    assert_string_equal(got, expected);
}

static int exists(const emu *e, const char *rel)
{
    char p[160];
    snprintf(p, sizeof(p), "%s/%s", e->mnt, rel);
    return access(p, F_OK) == 0;
}

/* Writes `value` to sys/REL, as an admin or a desktop VM's start would. */
static void sys_put(const emu *e, const char *rel, const char *value)
{
    char p[192];
    snprintf(p, sizeof(p), "%s/%s", e->sys, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    assert_true(fputs(value, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static void assert_override(const emu *e, const char *bdf, const char *expected)
{
    char p[192], buf[64] = "";
    snprintf(p, sizeof(p), "%s/bus/pci/devices/%s/driver_override", e->sys, bdf);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    assert_string_equal(buf, expected);
}

static const char *ws_host = "0000:01:00.0=nvidia 0000:01:00.1=snd_hda_intel "
                             "0000:01:00.2=xhci_hcd 0000:01:00.3=nvidia-gpu";

static void workstation_gpu_group_to_vfio_and_back(void **state)
{
    emu *e = *state;
    vd_pci_group before;
    vd_err err = { "" };
    assert_drivers(e, "0000:01:00.0", ws_host);
    if (vd_pci_to_vfio(&e->pci, "0000:01:00.0", &before, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(before.id, 12);
    assert_int_equal(before.n, 4);
    assert_drivers(e, "0000:01:00.0", "0000:01:00.0=vfio-pci 0000:01:00.1=vfio-pci "
                                      "0000:01:00.2=vfio-pci 0000:01:00.3=vfio-pci");
    assert_true(exists(e, "dev/vfio/12"));
    assert_false(exists(e, "dev/nvidia0"));
    if (vd_pci_to_host(&e->pci, &before, &err))
        fail_msg("%s", err.msg);
    assert_drivers(e, "0000:01:00.0", ws_host);
    assert_false(exists(e, "dev/vfio/12"));
    assert_true(exists(e, "dev/nvidia0"));
}

static void server_gpus_alone_and_hca_vf(void **state)
{
    emu *e = *state;
    vd_pci_group gpu, vf;
    vd_err err = { "" };
    if (vd_pci_to_vfio(&e->pci, "0000:4b:00.0", &gpu, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(gpu.n, 1);
    assert_drivers(e, "0000:31:00.0", "0000:31:00.0=nvidia");   /* its neighbour stays */
    assert_true(exists(e, "dev/vfio/32"));
    /* A VF of the first HCA: its own group, mlx5_core on the host. */
    char p[160];
    snprintf(p, sizeof(p), "%s/bus/pci/devices/0000:17:00.0/sriov_numvfs", e->sys);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("2\n", f);
    assert_int_equal(fclose(f), 0);
    assert_drivers(e, "0000:17:00.2", "0000:17:00.2=mlx5_core");
    if (vd_pci_to_vfio(&e->pci, "0000:17:00.2", &vf, &err))
        fail_msg("%s", err.msg);
    assert_drivers(e, "0000:17:00.2", "0000:17:00.2=vfio-pci");
    assert_drivers(e, "0000:17:00.1", "0000:17:00.1=mlx5_core");
    assert_int_equal(vd_pci_to_host(&e->pci, &vf, &err), 0);
    assert_int_equal(vd_pci_to_host(&e->pci, &gpu, &err), 0);
    assert_drivers(e, "0000:4b:00.0", "0000:4b:00.0=nvidia");
}

static void busy_function_fails_and_group_goes_back(void **state)
{
    emu *e = *state;
    vd_pci_group before;
    vd_err err = { "" };
    control(e, "busy 0000:01:00.1");
    assert_int_equal(vd_pci_to_vfio(&e->pci, "0000:01:00.0", &before, &err), -1);
    assert_non_null(strstr(err.msg, "device 0000:01:00.1: unbind from snd_hda_intel"));
    assert_non_null(strstr(err.msg, "Device or resource busy"));
    assert_drivers(e, "0000:01:00.0", ws_host);   /* 01:00.0 was moved, and is back */
    char p[160], buf[32] = "";
    snprintf(p, sizeof(p), "%s/bus/pci/devices/0000:01:00.1/driver_override", e->sys);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    assert_string_equal(buf, "(null)\n");
}

static void hung_unbind_times_out_naming_the_device(void **state)
{
    emu *e = *state;
    vd_pci_group before;
    vd_err err = { "" };
    e->pci.timeout_ms = 300;
    control(e, "hang-unbind 0000:01:00.2");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = vd_pci_to_vfio(&e->pci, "0000:01:00.0", &before, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* Released before any assertion: a stuck request would keep the
     * emulator from stopping. */
    control(e, "release");
    assert_int_equal(rc, -1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_non_null(strstr(err.msg, "device 0000:01:00.2: unbind from xhci_hcd"));
    assert_non_null(strstr(err.msg, "hung for 300 ms"));
    /* Under valgrind, beside make check's other platform, forking and
     * reaping the child take longer: tests/check.sh gives that run a
     * VDESK_TEST_TIME_SCALE. */
    long bound = 3000 * test_time_scale();
    if (ms >= bound)
        fail_msg("took %ld ms (at most %ld): %s", ms, bound, err.msg);
    assert_true(ms < bound);   /* the caller did not hang with the driver */
}

/* The step's child stays stuck in the unbind (FUSE, as a driver, waits for
 * the answer whatever the signal): it must not keep the caller's
 * descriptors, among them the node's lock that every later prolog, epilog
 * and vdeskctl waits for. */
static void stuck_unbind_keeps_no_lock_of_the_caller(void **state)
{
    emu *e = *state;
    vd_pci_group before;
    vd_err err = { "" };
    char lock[] = "/tmp/vdesk-lock-XXXXXX";
    int fd = mkstemp(lock);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    e->pci.timeout_ms = 300;
    control(e, "hang-unbind 0000:01:00.2");
    int rc = vd_pci_to_vfio(&e->pci, "0000:01:00.0", &before, &err);
    int closed = close(fd), next = open(lock, O_RDWR | O_CLOEXEC);
    int locked = flock(next, LOCK_EX | LOCK_NB);   /* the next caller's try */
    /* Released before any assertion: a stuck request would keep the
     * emulator from stopping. */
    control(e, "release");
    assert_int_equal(unlink(lock), 0);
    assert_int_equal(closed, 0);
    assert_true(next >= 0);
    assert_int_equal(locked, 0);
    assert_int_equal(close(next), 0);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err.msg, "hung for 300 ms"));
    assert_non_null(strstr(err.msg, "left behind"));   /* it cannot die while stuck */
}

static void slow_unbind_within_timeout_succeeds(void **state)
{
    emu *e = *state;
    vd_pci_group before;
    vd_err err = { "" };
    control(e, "slow-unbind 0000:01:00.0 400");
    if (vd_pci_to_vfio(&e->pci, "0000:01:00.0", &before, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(vd_pci_to_host(&e->pci, &before, &err), 0);
    assert_drivers(e, "0000:01:00.0", ws_host);
}

static void failing_vfio_probe_is_reported_and_undone(void **state)
{
    emu *e = *state;
    vd_pci_group before;
    vd_err err = { "" };
    control(e, "fail-bind 0000:01:00.3");
    assert_int_equal(vd_pci_to_vfio(&e->pci, "0000:01:00.0", &before, &err), -1);
    assert_non_null(strstr(err.msg, "device 0000:01:00.3: on 'no driver' after probing, not on 'vfio-pci'"));
    assert_drivers(e, "0000:01:00.0", ws_host);
}

/* A move that fails half way puts back each member it moved exactly as it
 * was: on a driver that is not the one the kernel would pick, with the
 * same driver_override. */
static void failed_move_puts_each_member_back_exactly(void **state)
{
    emu *e = *state;
    vd_pci_group before;
    vd_err err = { "" };
    /* An admin parked the audio function on pci-stub, the USB one too but
     * cleared the override after. */
    sys_put(e, "bus/pci/devices/0000:01:00.1/driver_override", "pci-stub");
    sys_put(e, "bus/pci/drivers/snd_hda_intel/unbind", "0000:01:00.1");
    sys_put(e, "bus/pci/drivers_probe", "0000:01:00.1");
    sys_put(e, "bus/pci/devices/0000:01:00.2/driver_override", "pci-stub");
    sys_put(e, "bus/pci/drivers/xhci_hcd/unbind", "0000:01:00.2");
    sys_put(e, "bus/pci/drivers_probe", "0000:01:00.2");
    sys_put(e, "bus/pci/devices/0000:01:00.2/driver_override", "\n");
    const char *was = "0000:01:00.0=nvidia 0000:01:00.1=pci-stub 0000:01:00.2=pci-stub "
                      "0000:01:00.3=nvidia-gpu";
    assert_drivers(e, "0000:01:00.0", was);
    control(e, "fail-bind 0000:01:00.3");
    assert_int_equal(vd_pci_to_vfio(&e->pci, "0000:01:00.0", &before, &err), -1);
    assert_non_null(strstr(err.msg, "device 0000:01:00.3: on 'no driver' after probing"));
    assert_null(strstr(err.msg, "putting group 12 back failed"));
    assert_drivers(e, "0000:01:00.0", was);
    assert_override(e, "0000:01:00.0", "(null)");
    assert_override(e, "0000:01:00.1", "pci-stub");
    assert_override(e, "0000:01:00.2", "(null)");
    assert_override(e, "0000:01:00.3", "(null)");
}

/* A member already on vfio-pci (a VM of its own had it) is not touched by
 * the move, and so not by its undoing either; one on no driver goes back
 * to none. */
static void failed_move_keeps_members_on_vfio_or_on_none(void **state)
{
    emu *e = *state;
    vd_pci_group before;
    vd_err err = { "" };
    sys_put(e, "bus/pci/devices/0000:01:00.1/driver_override", "vfio-pci");
    sys_put(e, "bus/pci/drivers/snd_hda_intel/unbind", "0000:01:00.1");
    sys_put(e, "bus/pci/drivers_probe", "0000:01:00.1");
    sys_put(e, "bus/pci/drivers/xhci_hcd/unbind", "0000:01:00.2");
    const char *was = "0000:01:00.0=nvidia 0000:01:00.1=vfio-pci 0000:01:00.2= "
                      "0000:01:00.3=nvidia-gpu";
    assert_drivers(e, "0000:01:00.0", was);
    control(e, "busy 0000:01:00.3");
    assert_int_equal(vd_pci_to_vfio(&e->pci, "0000:01:00.0", &before, &err), -1);
    assert_non_null(strstr(err.msg, "device 0000:01:00.3: unbind from nvidia-gpu"));
    assert_null(strstr(err.msg, "putting group 12 back failed"));
    assert_drivers(e, "0000:01:00.0", was);
    assert_override(e, "0000:01:00.0", "(null)");
    assert_override(e, "0000:01:00.1", "vfio-pci");
    assert_override(e, "0000:01:00.2", "(null)");
    assert_override(e, "0000:01:00.3", "(null)");
    assert_true(exists(e, "dev/vfio/12"));
}

/* A process named `name` that holds `rel` (under the mount) open until
 * killed, as an X server or a VM would. */
static pid_t holder_start(const emu *e, const char *name, const char *rel)
{
    int ready[2];
    char path[160];
    snprintf(path, sizeof(path), "%s/%s", e->mnt, rel);
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_NAME, name);
        int fd = open(path, O_RDWR);
        char ok = fd >= 0 ? '1' : '0';
        if (write(ready[1], &ok, 1) != 1 || fd < 0)
            _exit(1);
        pause();
        _exit(0);
    }
    char ok = '0';
    close(ready[1]);
    assert_int_equal(read(ready[0], &ok, 1), 1);
    close(ready[0]);
    assert_int_equal(ok, '1');
    return pid;
}

static void holder_stop(pid_t pid)
{
    int st;
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
}

static long ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

static void holders_of_a_gpu_are_named(void **state)
{
    emu *e = *state;
    vd_pci_holders h;
    vd_err err;
    const char *nodes[] = { "nvidia0" };
    assert_int_equal(vd_pci_holders_find(&e->pci, nodes, 1, &h, &err), 0);
    assert_int_equal(h.count, 0);
    assert_string_equal(h.list, "");
    pid_t pid = holder_start(e, "holder-test", "dev/nvidia0");
    assert_int_equal(vd_pci_holders_find(&e->pci, nodes, 1, &h, &err), 0);
    char me[48];
    snprintf(me, sizeof(me), "%d (holder-test)", (int)pid);
    assert_string_equal(h.list, me);
    assert_int_equal(h.count, 1);
    assert_int_equal(h.persistenced, 0);
    holder_stop(pid);
}

/* A container sees the host's /dev bind-mounted elsewhere: its process
 * holds the same node under another path (ctr/dev in the emulator). */
static void holder_through_another_path_is_found(void **state)
{
    emu *e = *state;
    vd_pci_holders h;
    vd_pci_group before;
    vd_err err = { "" };
    const char *nodes[] = { "vfio/12", "nvidia0" };
    char me[48];
    pid_t pid = holder_start(e, "ctr-app", "ctr/dev/nvidia0");
    /* The holder goes before any assertion: a failed one would leave it. */
    int found = vd_pci_holders_find(&e->pci, nodes, 2, &h, &err);
    vd_err moved = { "" };
    int rc = vd_pci_to_vfio(&e->pci, "0000:01:00.0", &before, &moved);
    holder_stop(pid);
    snprintf(me, sizeof(me), "%d (ctr-app)", (int)pid);
    assert_int_equal(found, 0);
    assert_string_equal(h.list, me);
    assert_int_equal(h.count, 1);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(moved.msg, "/nvidia0 is held open by"));
    assert_non_null(strstr(moved.msg, "(ctr-app)"));
    assert_drivers(e, "0000:01:00.0", ws_host);
    /* Another file of the same file system is no holder. */
    pid = holder_start(e, "ctr-app", "ctr/dev/vfio/vfio");
    found = vd_pci_holders_find(&e->pci, nodes, 2, &h, &err);
    holder_stop(pid);
    assert_int_equal(found, 0);
    assert_int_equal(h.count, 0);
}

static void gpu_held_open_is_refused_naming_the_holder(void **state)
{
    emu *e = *state;
    vd_pci_group before;
    vd_err err = { "" };
    pid_t pid = holder_start(e, "Xorg", "dev/nvidia0");
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(vd_pci_to_vfio(&e->pci, "0000:01:00.0", &before, &err), -1);
    assert_true(ms_since(&t0) < 1000);   /* refused up front, not hung in unbind */
    char want[256];
    snprintf(want, sizeof(want), "device 0000:01:00.0: %s/nvidia0 is held open by %d (Xorg)", e->dev, (int)pid);
    assert_non_null(strstr(err.msg, want));
    assert_non_null(strstr(err.msg, "stop them first"));
    assert_drivers(e, "0000:01:00.0", ws_host);
    holder_stop(pid);
    if (vd_pci_to_vfio(&e->pci, "0000:01:00.0", &before, &err))
        fail_msg("%s", err.msg);
}

static void server_holder_blocks_only_its_own_gpu(void **state)
{
    emu *e = *state;
    vd_pci_group g;
    vd_err err = { "" };
    /* 0000:4b:00.0 is /dev/nvidia1 (Device Minor 1): a holder of nvidia0
     * is not its business. */
    pid_t pid = holder_start(e, "cuda-app", "dev/nvidia0");
    if (vd_pci_to_vfio(&e->pci, "0000:4b:00.0", &g, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(vd_pci_to_vfio(&e->pci, "0000:31:00.0", &g, &err), -1);
    assert_non_null(strstr(err.msg, "device 0000:31:00.0:"));
    assert_non_null(strstr(err.msg, "/nvidia0 is held open by"));
    holder_stop(pid);
}

static void vfio_group_held_by_a_vm_is_refused(void **state)
{
    emu *e = *state;
    vd_pci_group before;
    vd_err err = { "" };
    if (vd_pci_to_vfio(&e->pci, "0000:01:00.0", &before, &err))
        fail_msg("%s", err.msg);
    pid_t pid = holder_start(e, "qemu-system-x86", "dev/vfio/12");
    assert_int_equal(vd_pci_to_host(&e->pci, &before, &err), -1);
    assert_non_null(strstr(err.msg, "/vfio/12 is held open by"));
    assert_non_null(strstr(err.msg, "(qemu-system-x86)"));
    assert_non_null(strstr(err.msg, "a VM still uses the group"));
    holder_stop(pid);
    if (vd_pci_to_host(&e->pci, &before, &err))
        fail_msg("%s", err.msg);
    assert_drivers(e, "0000:01:00.0", ws_host);
}

/* The stand-in nvidia-persistenced (tests/sysfs/nvpd-emu.c), its log on
 * a pipe, and NVML (the stand-in library) pointed at its socket. */
typedef struct nvpd {
    pid_t pid;
    FILE *log;
    char socket[128];
} nvpd;

static void nvpd_start(const emu *e, nvpd *d)
{
    int out[2];
    char prog[PATH_MAX], line[64] = "";
    snprintf(prog, sizeof(prog), "%s/tests/nvidia-persistenced", env_or("VDESK_BUILD", "build"));
    snprintf(d->socket, sizeof(d->socket), "%s.nvpd", e->mnt);
    assert_int_equal(pipe(out), 0);
    d->pid = fork();
    assert_true(d->pid >= 0);
    if (d->pid == 0) {
        dup2(out[1], 1);
        execl(prog, prog, d->socket, e->dev, e->proc, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    d->log = fdopen(out[0], "r");
    assert_non_null(d->log);
    assert_non_null(fgets(line, sizeof(line), d->log));
    assert_string_equal(line, "ready 1\n");
    assert_int_equal(setenv("VDESK_NVPD_SOCKET", d->socket, 1), 0);
}

static void nvpd_expect(nvpd *d, const char *line)
{
    char got[64] = "";
    assert_non_null(fgets(got, sizeof(got), d->log));
    assert_string_equal(got, line);
}

static void nvpd_stop(nvpd *d)
{
    holder_stop(d->pid);
    fclose(d->log);
    unlink(d->socket);
}

static void persistenced_is_refused_by_default(void **state)
{
    emu *e = *state;
    vd_pci_group before;
    vd_err err = { "" };
    nvpd d;
    nvpd_start(e, &d);
    assert_int_equal(vd_pci_to_vfio(&e->pci, "0000:01:00.0", &before, &err), -1);
    assert_non_null(strstr(err.msg, "(nvidia-persiste)"));
    assert_non_null(strstr(err.msg, "set nvidia_persistence = manage in vdesk.conf"));
    assert_drivers(e, "0000:01:00.0", ws_host);
    nvpd_stop(&d);
}

static void persistence_is_managed_through_nvml(void **state)
{
    emu *e = *state;
    vd_pci_group before;
    vd_pci_holders h;
    vd_err err = { "" };
    const char *nodes[] = { "nvidia0" };
    nvpd d;
    nvpd_start(e, &d);
    e->pci.persistence = VD_PERSIST_MANAGE;
    if (vd_pci_to_vfio(&e->pci, "0000:01:00.0", &before, &err))
        fail_msg("%s", err.msg);
    nvpd_expect(&d, "0000:01:00.0 0 -> 0\n");   /* told to let go, through NVML */
    assert_true(exists(e, "dev/vfio/12"));
    if (vd_pci_to_host(&e->pci, &before, &err))
        fail_msg("%s", err.msg);
    nvpd_expect(&d, "0000:01:00.0 1 -> 0\n");   /* and to take it again */
    assert_drivers(e, "0000:01:00.0", ws_host);
    assert_int_equal(vd_pci_holders_find(&e->pci, nodes, 1, &h, &err), 0);
    assert_int_equal(h.persistenced, 1);
    nvpd_stop(&d);
}

static void persistence_without_nvml_daemon_fails_cleanly(void **state)
{
    emu *e = *state;
    vd_pci_group before;
    vd_err err = { "" };
    nvpd d;
    nvpd_start(e, &d);
    e->pci.persistence = VD_PERSIST_MANAGE;
    assert_int_equal(setenv("VDESK_NVPD_SOCKET", "/nonexistent/socket", 1), 0);
    assert_int_equal(vd_pci_to_vfio(&e->pci, "0000:01:00.0", &before, &err), -1);
    assert_non_null(strstr(err.msg, "device 0000:01:00.0: GPU 0000:01:00.0: turning persistence mode off: NVML: Unknown Error"));
    assert_drivers(e, "0000:01:00.0", ws_host);
    nvpd_stop(&d);
}

/* gres indices: the GPUs in address order, whichever driver has them. */
static void server_gpu_indices_follow_pci_order(void **state)
{
    emu *e = *state;
    vd_pci_group g;
    vd_err err = { "" };
    assert_int_equal(vd_pci_gpu_index(&e->pci, "0000:31:00.0", &err), 0);
    assert_int_equal(vd_pci_gpu_index(&e->pci, "0000:ca:00.0", &err), 2);
    assert_int_equal(vd_pci_gpu_index(&e->pci, "0000:e3:00.0", &err), 3);
    if (vd_pci_to_vfio(&e->pci, "0000:4b:00.0", &g, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(vd_pci_gpu_index(&e->pci, "0000:4b:00.0", &err), 1);
    assert_int_equal(vd_pci_gpu_index(&e->pci, "0000:17:00.0", &err), -1);
    assert_non_null(strstr(err.msg, "0000:17:00.0 is not a GPU of this node"));
}

/* The BMC's VGA (ASPEED, 0000:02:00.0) is a display device before the GPUs
 * in address order, but Slurm does not count it: neither does vdesk, or
 * every gres index would be off by one. */
static void bmc_vga_is_no_gres_gpu(void **state)
{
    emu *e = *state;
    vd_pci_gpu_list l;
    vd_err err = { "" };
    assert_int_equal(vd_pci_gpus(&e->pci, &l, &err), 0);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.bdf[0], "0000:31:00.0");
    assert_int_equal(vd_pci_gpu_index(&e->pci, "0000:31:00.0", &err), 0);
    assert_int_equal(vd_pci_gpu_index(&e->pci, "0000:4b:00.0", &err), 1);
    assert_int_equal(vd_pci_gpu_index(&e->pci, "0000:02:00.0", &err), -1);
    assert_non_null(strstr(err.msg, "0000:02:00.0 is not a GPU of this node"));
    vd_pci_info bmc;
    vd_pci_info_read(&e->pci, "0000:02:00.0", &bmc);
    assert_int_equal(bmc.klass, 0x030000);
    assert_false(vd_pci_is_gpu(&e->pci, &bmc));
    /* A site whose Slurm counts that vendor too says so. */
    e->pci.gpu_vendors = "0x10de, 0x1a03";
    assert_true(vd_pci_is_gpu(&e->pci, &bmc));
    assert_int_equal(vd_pci_gpu_index(&e->pci, "0000:02:00.0", &err), 0);
    assert_int_equal(vd_pci_gpu_index(&e->pci, "0000:31:00.0", &err), 1);
    e->pci.gpu_vendors = "";
    assert_int_equal(vd_pci_gpu_index(&e->pci, "0000:31:00.0", &err), 0);
    e->pci.gpu_vendors = "0x10de,nvidia";
    assert_int_equal(vd_pci_gpus(&e->pci, &l, &err), -1);
    assert_non_null(strstr(err.msg, "'nvidia' is not a PCI vendor id"));
    assert_int_equal(vd_pci_gpu_vendors_check("0x1002 10de", &err), 0);
    assert_int_equal(vd_pci_gpu_vendors_check("0x10000", &err), -1);
}

static void bad_addresses_are_refused(void **state)
{
    emu *e = *state;
    vd_pci_group g;
    vd_err err;
    assert_int_equal(vd_pci_group_read(&e->pci, "01:00.0", &g, &err), -1);
    assert_non_null(strstr(err.msg, "'01:00.0' is not a PCI address"));
    assert_int_equal(vd_pci_group_read(&e->pci, "0000:09:00.0", &g, &err), -1);
    assert_non_null(strstr(err.msg, "device 0000:09:00.0: no IOMMU group"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(workstation_gpu_group_to_vfio_and_back, ws_setup, emu_stop),
        cmocka_unit_test_setup_teardown(server_gpus_alone_and_hca_vf, srv_setup, emu_stop),
        cmocka_unit_test_setup_teardown(busy_function_fails_and_group_goes_back, ws_setup, emu_stop),
        cmocka_unit_test_setup_teardown(hung_unbind_times_out_naming_the_device, ws_setup, emu_stop),
        cmocka_unit_test_setup_teardown(stuck_unbind_keeps_no_lock_of_the_caller, ws_setup, emu_stop),
        cmocka_unit_test_setup_teardown(slow_unbind_within_timeout_succeeds, ws_setup, emu_stop),
        cmocka_unit_test_setup_teardown(failing_vfio_probe_is_reported_and_undone, ws_setup, emu_stop),
        cmocka_unit_test_setup_teardown(failed_move_puts_each_member_back_exactly, ws_setup, emu_stop),
        cmocka_unit_test_setup_teardown(failed_move_keeps_members_on_vfio_or_on_none, ws_setup, emu_stop),
        cmocka_unit_test_setup_teardown(holders_of_a_gpu_are_named, ws_setup, emu_stop),
        cmocka_unit_test_setup_teardown(holder_through_another_path_is_found, ws_setup, emu_stop),
        cmocka_unit_test_setup_teardown(gpu_held_open_is_refused_naming_the_holder, ws_setup, emu_stop),
        cmocka_unit_test_setup_teardown(server_holder_blocks_only_its_own_gpu, srv_setup, emu_stop),
        cmocka_unit_test_setup_teardown(vfio_group_held_by_a_vm_is_refused, ws_setup, emu_stop),
        cmocka_unit_test_setup_teardown(persistenced_is_refused_by_default, ws_setup, emu_stop),
        cmocka_unit_test_setup_teardown(persistence_is_managed_through_nvml, ws_setup, emu_stop),
        cmocka_unit_test_setup_teardown(persistence_without_nvml_daemon_fails_cleanly, ws_setup, emu_stop),
        cmocka_unit_test_setup_teardown(server_gpu_indices_follow_pci_order, srv_setup, emu_stop),
        cmocka_unit_test_setup_teardown(bmc_vga_is_no_gres_gpu, srv_setup, emu_stop),
        cmocka_unit_test_setup_teardown(bad_addresses_are_refused, ws_setup, emu_stop),
    };
    return cmocka_run_group_tests_name("pci", tests, NULL, NULL);
}
