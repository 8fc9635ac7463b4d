/* SPDX-License-Identifier: MIT */
/*
 * lib/engine in-process, on libvirt's test driver (test:///default): the
 * modes, the chain and its fallbacks, the journal after each operation,
 * converge() from states a crash or an admin leaves behind, and the
 * recovery rules of docs/design.md. The driver runs inside this process in
 * milliseconds; it has no hotplug, no disk snapshots and no job
 * information, so those paths are tested on the bed with QEMU
 * (tests/integration/t_node.sh). Devices with host PCI addresses move on
 * the sysfs emulator (tests/sysfs).
 *
 * The driver's state lives as long as a connection to it: each test holds
 * one (the fixture), so the engine's own connections see the same domains.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "emu.h"
#include "engine.h"
#include "hv.h"
#include "journal.h"

#define URI "test:///default"
#define DOM "test"   /* the driver's own running domain */

#define OK(call) do { if ((call) != 0) fail_msg("%s: %s", #call, err.msg); } while (0)

typedef struct fixture {
    vd_hv *hv;
    vd_conf conf;
    char dir[64];
    emu *e;          /* the sysfs emulator, for tests with PCI devices */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    vd_err err;
    if (!f || vd_hv_open(URI, &f->hv, &err) < 0)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/vdesk-engine-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    vd_conf *c = &f->conf;
    vd_conf_defaults(c);
    snprintf(c->path, sizeof(c->path), "test_engine.conf");
    snprintf(c->node, sizeof(c->node), "n1");
    snprintf(c->state_dir, sizeof(c->state_dir), "%s/state", f->dir);
    snprintf(c->snapshot_dir, sizeof(c->snapshot_dir), "%s/snapshots", f->dir);
    snprintf(c->uri, sizeof(c->uri), URI);
    snprintf(c->domain, sizeof(c->domain), DOM);
    c->policy[0] = VD_MODE_SAVE;
    c->policy[1] = VD_MODE_SHUTDOWN;
    c->npolicy = 2;
    *state = f;
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    fixture *f = *state;
    unsetenv("VDESK_TEST_DRIVER_LACKS");
    if (f->e) {
        void *e = f->e;
        emu_stop(&e);
    }
    vd_hv_close(f->hv);
    nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* The workstation emulator, its GPU group on vfio-pci as a running
 * desktop keeps it, and the GPU in vdesk.conf. */
static int setup_ws(void **state)
{
    if (setup(state) < 0)
        return -1;
    fixture *f = *state;
    void *e = NULL;
    if (ws_setup(&e) < 0)
        return -1;
    f->e = e;
    vd_conf *c = &f->conf;
    snprintf(c->sysfs_root, sizeof(c->sysfs_root), "%s", f->e->sys);
    snprintf(c->dev_root, sizeof(c->dev_root), "%s", f->e->dev);
    snprintf(c->proc_root, sizeof(c->proc_root), "%s", f->e->proc);
    c->devices[0] = (vd_device){ .role = VD_ROLE_GPU, .alias = "ua-gpu0", .pci = "0000:01:00.0" };
    c->ndevices = 1;
    vd_pci_group before;
    vd_err err;
    if (vd_pci_to_vfio(&f->e->pci, "0000:01:00.0", &before, &err) < 0) {
        print_error("%s\n", err.msg);
        return -1;
    }
    return 0;
}

static vd_dom_info info_of(fixture *f)
{
    vd_dom_info st;
    vd_err err;
    OK(vd_hv_dom_info(f->hv, DOM, &st, &err));
    return st;
}

static vd_journal journal_of(const fixture *f)
{
    vd_journal j;
    vd_err err;
    OK(vd_journal_load(f->conf.state_dir, &j, &err));
    return j;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* How many files in the state dir start with `prefix`. */
static int count_files(const fixture *f, const char *prefix)
{
    DIR *d = opendir(f->conf.state_dir);
    int n = 0;
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        n += !strncmp(e->d_name, prefix, strlen(prefix));
    closedir(d);
    return n;
}

#define SAVE_MAX (PATH_MAX + 16)

static void save_path(const fixture *f, char *buf)
{
    snprintf(buf, SAVE_MAX, "%.*s/%s.save", PATH_MAX - 8, f->conf.state_dir, DOM);
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_true(fputs(text, fp) >= 0);
    assert_int_equal(fclose(fp), 0);
}

static void evict(fixture *f, unsigned job, vd_mode mode, vd_report *rep)
{
    vd_request req = { .job = job, .mode = mode };
    vd_err err;
    OK(vd_evict(&f->conf, &req, rep, &err));
}

/* --- the modes ------------------------------------------------------- */

static void suspend_and_back(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    evict(f, 7, VD_MODE_SUSPEND, &rep);
    assert_string_equal(rep.used, "suspend");
    assert_int_equal(info_of(f).state, VD_DOM_PAUSED);
    vd_journal j = journal_of(f);
    assert_int_equal(j.phase, VD_EVICTED);
    assert_int_equal(j.njobs, 1);
    assert_int_equal(j.jobs[0], 7);
    vd_journal_clear(&j);
    OK(vd_restore(&f->conf, 7, &rep, &err));
    assert_int_equal(info_of(f).state, VD_DOM_RUNNING);
    assert_string_equal(rep.lost, "");
    j = journal_of(f);
    assert_int_equal(j.phase, VD_PRESENT);
    vd_journal_clear(&j);
}

static void save_and_back_from_the_file(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    char save[SAVE_MAX];
    save_path(f, save);
    evict(f, 8, VD_MODE_SAVE, &rep);
    assert_string_equal(rep.used, "save");
    assert_int_equal(info_of(f).state, VD_DOM_SHUTOFF);
    assert_true(exists(save));
    vd_journal j = journal_of(f);
    assert_string_equal(j.save_file, save);
    vd_journal_clear(&j);
    OK(vd_restore(&f->conf, 8, &rep, &err));
    vd_dom_info st = info_of(f);
    assert_int_equal(st.state, VD_DOM_RUNNING);
    assert_true(st.restored);          /* from the file, not booted */
    assert_false(exists(save));        /* history once restored */
    assert_string_equal(rep.lost, "");
    assert_string_equal(rep.drain, "");
}

static void two_jobs_one_eviction_last_out_restores(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    evict(f, 1, VD_MODE_SAVE, &rep);
    evict(f, 2, VD_MODE_SAVE, &rep);
    assert_non_null(strstr(rep.outcome, "already away (save)"));
    OK(vd_restore(&f->conf, 1, &rep, &err));
    assert_int_equal(info_of(f).state, VD_DOM_SHUTOFF);
    assert_non_null(strstr(rep.outcome, "1 other job(s)"));
    OK(vd_restore(&f->conf, 2, &rep, &err));
    assert_int_equal(info_of(f).state, VD_DOM_RUNNING);
    OK(vd_restore(&f->conf, 2, &rep, &err));   /* a second epilog: nothing */
    assert_non_null(strstr(rep.outcome, "nothing to restore"));
}

/* --- issue 10 item 3: jobs that Slurm no longer runs release the desktop -- */

/* Slurm as the tests see it: job 21 finished, 22 runs, 23 cannot be asked
 * about (slurmctld down). */
static int fake_holds(unsigned job, const char *node, char *state, size_t size, vd_err *err)
{
    assert_string_equal(node, "n1");
    if (job == 23)
        return vd_err_set(err, "slurmctld does not answer");
    snprintf(state, size, "%s", job == 21 ? "COMPLETED" : "RUNNING");
    return job == 21 ? 0 : 1;
}

static void finished_job_whose_epilog_failed_no_longer_holds_the_desktop(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    char released[256];
    evict(f, 21, VD_MODE_SAVE, &rep);
    /* Job 21's epilog never restored (a broken vdesk.conf): before the fix
     * the next job joined "already away", and its epilog left the desktop
     * off, still held by 21. */
    assert_int_equal(vd_jobs_reconcile(&f->conf, 24, fake_holds, 1, released, sizeof(released), &err), 1);
    assert_string_equal(released, "21 (COMPLETED)");
    vd_journal j = journal_of(f);
    assert_int_equal(j.phase, VD_EVICTED);
    assert_int_equal(j.njobs, 0);
    vd_journal_clear(&j);
    evict(f, 24, VD_MODE_SAVE, &rep);
    assert_non_null(strstr(rep.outcome, "already away (save) for 1 job(s)"));
    OK(vd_restore(&f->conf, 24, &rep, &err));
    assert_int_equal(info_of(f).state, VD_DOM_RUNNING);
    assert_true(info_of(f).restored);
}

static void running_or_unknown_jobs_keep_the_desktop_away(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    char released[256];
    evict(f, 22, VD_MODE_SUSPEND, &rep);
    evict(f, 23, VD_MODE_SUSPEND, &rep);
    evict(f, 0, VD_MODE_SUSPEND, &rep);   /* and by hand: never Slurm's to release */
    assert_int_equal(vd_jobs_reconcile(&f->conf, 0, fake_holds, 1, released, sizeof(released), &err), 0);
    assert_string_equal(released, "");
    vd_journal j = journal_of(f);
    assert_int_equal(j.njobs, 3);
    vd_journal_clear(&j);
    OK(vd_recover(&f->conf, 0, &rep, &err));   /* drops the hold by hand only */
    assert_int_equal(info_of(f).state, VD_DOM_PAUSED);
}

/* Job 26 was requeued: Slurm says PENDING when asked first, then (it
 * started here again meanwhile, and its prolog joined the desktop that is
 * away) RUNNING when asked under the lock. Before the fix it was dropped on
 * the first answer, and the desktop came back under the running job. */
static int asked_26;

static int requeued_then_running(unsigned job, const char *node, char *state, size_t size,
                                 vd_err *err)
{
    (void)node;
    (void)err;
    int running = job != 26 || asked_26++ > 0;
    snprintf(state, size, "%s", running ? "RUNNING" : "PENDING");
    return running;
}

static void job_started_again_meanwhile_is_kept(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    char released[256];
    evict(f, 26, VD_MODE_SAVE, &rep);
    asked_26 = 0;
    assert_int_equal(vd_jobs_reconcile(&f->conf, 0, requeued_then_running, 1, released,
                                       sizeof(released), &err), 0);
    assert_int_equal(asked_26, 2);   /* asked twice: without, then under the lock */
    assert_string_equal(released, "");
    vd_journal j = journal_of(f);
    assert_int_equal(j.njobs, 1);
    vd_journal_clear(&j);
    OK(vd_recover(&f->conf, 0, &rep, &err));
    assert_int_equal(info_of(f).state, VD_DOM_SHUTOFF);   /* still away for job 26 */
}

/* What the caller adds before the outcome gives way; a LOST: at the end of
 * a long outcome stays (before: the outcome was cut to 600 characters). */
static void prefix_note_never_cuts_a_loss(void **state)
{
    (void)state;
    vd_report rep = { .job = 1 };
    char note[500];
    memset(rep.outcome, 'o', 990);
    snprintf(rep.outcome + 990, sizeof(rep.outcome) - 990, "; LOST: x");
    memset(note, 'n', sizeof(note) - 1);
    note[sizeof(note) - 1] = '\0';
    vd_report_prefix(&rep, note);
    size_t len = strlen(rep.outcome);
    assert_int_equal(len, sizeof(rep.outcome) - 1);
    assert_string_equal(rep.outcome + len - 9, "; LOST: x");
    assert_int_equal(rep.outcome[0], 'n');
    vd_report short_rep = { .outcome = "desktop back" };
    vd_report_prefix(&short_rep, "released job(s) 5");
    assert_string_equal(short_rep.outcome, "released job(s) 5; desktop back");
}

static void recover_brings_back_a_desktop_away_for_no_job(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    char released[256];
    evict(f, 21, VD_MODE_SUSPEND, &rep);
    assert_int_equal(vd_jobs_reconcile(&f->conf, 0, fake_holds, 1, released, sizeof(released), &err), 1);
    /* Before the fix: "job 0 holds no desktop: nothing to do", exit 0. */
    OK(vd_recover(&f->conf, 0, &rep, &err));
    assert_int_equal(info_of(f).state, VD_DOM_RUNNING);
    assert_non_null(strstr(rep.outcome, "back"));
    vd_journal j = journal_of(f);
    assert_int_equal(j.phase, VD_PRESENT);
    vd_journal_clear(&j);
}

/* --- item 1: a save file is deleted only after a restore from it ---------- */

static void vm_started_outside_vdesk_keeps_the_saved_session(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    char save[SAVE_MAX];
    save_path(f, save);
    evict(f, 3, VD_MODE_SAVE, &rep);
    /* libvirt's autostart after a reboot, or an admin's 'virsh start'. */
    OK(vd_hv_dom_start(f->hv, DOM, 0, &err));
    OK(vd_restore(&f->conf, 3, &rep, &err));
    assert_int_equal(info_of(f).state, VD_DOM_RUNNING);
    assert_false(exists(save));
    assert_int_equal(count_files(f, DOM ".save.unused-"), 1);   /* kept, not deleted */
    assert_non_null(strstr(rep.lost, "started outside vdesk"));
    assert_non_null(strstr(rep.outcome, "LOST"));
    assert_non_null(strstr(rep.drain, "lost"));
}

/* Killed while saving; the VM runs now, but not on after a canceled save
 * (libvirt's state reason would say so): it was booted since, and the
 * file may hold the whole session. It is kept aside and reported lost. A
 * save libvirt canceled (the VM ran on) is only a failed save; the test
 * driver cannot make that state, the bed's kill tests (t_node.sh) do. */
static void interrupted_save_and_a_booted_vm_keep_the_file_as_a_loss(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    char save[SAVE_MAX];
    save_path(f, save);
    OK(vd_mkdirs(f->conf.state_dir, &err));
    write_file(save, "a save");
    vd_journal j = { .phase = VD_EVICTING, .used = "save", .jobs = { 4 }, .njobs = 1 };
    snprintf(j.step, sizeof(j.step), "save");
    snprintf(j.save_file, sizeof(j.save_file), "%.*s", PATH_MAX - 1, save);
    OK(vd_journal_save(f->conf.state_dir, &j, &err));
    OK(vd_recover(&f->conf, 0, &rep, &err));
    assert_int_equal(info_of(f).state, VD_DOM_RUNNING);
    assert_int_equal(count_files(f, DOM ".save.unused-"), 1);
    assert_int_equal(count_files(f, DOM ".save.failed-"), 0);
    assert_non_null(strstr(rep.lost, "started outside vdesk"));
    j = journal_of(f);
    assert_int_equal(j.phase, VD_PRESENT);
    vd_journal_clear(&j);
}

/* --- item 4: a recovery point before the first mode that stops the VM --- */

static int has_phase(const vd_report *rep, const char *name)
{
    for (int i = 0; i < rep->nphases; i++)
        if (!strcmp(rep->phases[i].name, name))
            return 1;
    return 0;
}

static void snapshot_before_save_even_when_shrink_came_first(void **state)
{
    fixture *f = *state;
    vd_report rep;
    f->conf.desktop_cores[0] = '\0';   /* shrink fails: no desktop cores */
    f->conf.policy[0] = VD_MODE_SHRINK;
    f->conf.policy[1] = VD_MODE_SAVE;
    evict(f, 5, VD_MODE_AUTO, &rep);
    assert_string_equal(rep.used, "save");
    assert_non_null(strstr(rep.outcome, "after shrink failed"));
    /* The test driver cannot make disk snapshots: the attempt is what shows. */
    assert_true(has_phase(&rep, "snapshot"));
}

static void no_snapshot_for_suspend(void **state)
{
    fixture *f = *state;
    vd_report rep;
    evict(f, 5, VD_MODE_SUSPEND, &rep);
    assert_false(has_phase(&rep, "snapshot"));
}

/* --- item 13: a second job's needs when the desktop is away ------------- */

static void second_job_asking_save_escalates_from_suspend(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    char save[SAVE_MAX];
    save_path(f, save);
    evict(f, 10, VD_MODE_SUSPEND, &rep);
    assert_int_equal(info_of(f).state, VD_DOM_PAUSED);
    evict(f, 11, VD_MODE_SAVE, &rep);
    assert_string_equal(rep.used, "save");
    assert_int_equal(info_of(f).state, VD_DOM_SHUTOFF);
    assert_true(exists(save));
    vd_journal j = journal_of(f);
    assert_int_equal(j.njobs, 2);
    assert_string_equal(j.used, "save");
    vd_journal_clear(&j);
    OK(vd_restore(&f->conf, 10, &rep, &err));
    OK(vd_restore(&f->conf, 11, &rep, &err));
    vd_dom_info st = info_of(f);
    assert_int_equal(st.state, VD_DOM_RUNNING);
    assert_true(st.restored);
}

static void second_job_asking_suspend_joins_a_saved_desktop(void **state)
{
    fixture *f = *state;
    vd_report rep;
    evict(f, 12, VD_MODE_SAVE, &rep);
    evict(f, 13, VD_MODE_SUSPEND, &rep);
    assert_non_null(strstr(rep.outcome, "already away (save)"));
    assert_int_equal(info_of(f).state, VD_DOM_SHUTOFF);
}

/* The desktop cannot go further (the save fails: its file's place is
 * taken): it is paused again as the first job left it, and the second
 * job's prolog fails. */
static void second_job_that_cannot_escalate_leaves_the_desktop_suspended(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    char save[SAVE_MAX];
    save_path(f, save);
    f->conf.policy[0] = VD_MODE_SUSPEND;
    f->conf.npolicy = 1;
    evict(f, 14, VD_MODE_SUSPEND, &rep);
    assert_int_equal(mkdir(save, 0700), 0);
    vd_request req = { .job = 15, .mode = VD_MODE_SAVE };
    assert_int_equal(vd_evict(&f->conf, &req, &rep, &err), -1);
    assert_non_null(strstr(err.msg, "is away (suspend) but cannot go further for job 15: save failed"));
    assert_int_equal(info_of(f).state, VD_DOM_PAUSED);
    vd_journal j = journal_of(f);
    assert_string_equal(j.used, "suspend");
    assert_int_equal(j.njobs, 1);   /* job 15 does not hold the node */
    vd_journal_clear(&j);
    assert_int_equal(rmdir(save), 0);
    OK(vd_restore(&f->conf, 14, &rep, &err));
    assert_int_equal(info_of(f).state, VD_DOM_RUNNING);
}

/* A second job's escalation was cut short (killed): the journal says
 * saved, but the VM runs. The next job finds out and finishes it instead
 * of joining a desktop that is still there. */
static void escalation_cut_short_is_finished_by_the_next_job(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    vd_journal j = { .phase = VD_EVICTED, .used = "save", .jobs = { 16 }, .njobs = 1 };
    snprintf(j.step, sizeof(j.step), "unplug ua-gpu0");
    OK(vd_journal_save(f->conf.state_dir, &j, &err));
    evict(f, 17, VD_MODE_AUTO, &rep);
    assert_int_equal(info_of(f).state, VD_DOM_SHUTOFF);
    assert_non_null(strstr(rep.outcome, "desktop test save (was shrink) for job 17"));
    j = journal_of(f);
    assert_int_equal(j.njobs, 2);
    vd_journal_clear(&j);
}

/* --- item 14: devices of a desktop that is off go to the host ----------- */

static void shut_off_desktop_gives_its_gpu_to_the_job(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    char drv[64];
    OK(vd_hv_dom_destroy(f->hv, DOM, &err));
    evict(f, 20, VD_MODE_SAVE, &rep);
    assert_string_equal(rep.used, "none");
    vd_pci_driver(&f->e->pci, "0000:01:00.0", drv, sizeof(drv));
    assert_string_equal(drv, "nvidia");
    OK(vd_restore(&f->conf, 20, &rep, &err));
    vd_pci_driver(&f->e->pci, "0000:01:00.0", drv, sizeof(drv));
    assert_string_equal(drv, "vfio-pci");   /* where the desktop finds it */
    assert_int_equal(info_of(f).state, VD_DOM_SHUTOFF);   /* and it stays off */
}

/* --- items 10, 22, 26: a journal that cannot be trusted ----------------- */

static void garbage_journal_saved_desktop_comes_back(const char *garbage, void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    char save[PATH_MAX], jpath[PATH_MAX + 16];
    save_path(f, save);
    evict(f, 30, VD_MODE_SAVE, &rep);
    snprintf(jpath, sizeof(jpath), "%s/journal.json", f->conf.state_dir);
    write_file(jpath, garbage);
    OK(vd_restore(&f->conf, 30, &rep, &err));
    vd_dom_info st = info_of(f);
    assert_int_equal(st.state, VD_DOM_RUNNING);
    assert_true(st.restored);                        /* the session, not a boot */
    assert_false(exists(save));
    assert_int_equal(count_files(f, "journal.json.bad-"), 1);   /* kept for an admin */
    assert_non_null(strstr(rep.drain, "journal unreadable"));
    vd_journal j = journal_of(f);
    assert_int_equal(j.phase, VD_PRESENT);
    vd_journal_clear(&j);
}

static void truncated_journal(void **state)
{
    garbage_journal_saved_desktop_comes_back("{\"version\":1,\"phase\":\"evic", state);
}

static void journal_with_wrong_types(void **state)
{
    garbage_journal_saved_desktop_comes_back("{\"version\":1,\"phase\":\"evicted\",\"jobs\":\"\"}", state);
}

static void journal_path_outside_the_state_dir_is_not_followed(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    char bait[PATH_MAX], jtext[PATH_MAX * 2];
    evict(f, 31, VD_MODE_SAVE, &rep);
    snprintf(bait, sizeof(bait), "%s/elsewhere.save", f->dir);
    write_file(bait, "not vdesk's");
    snprintf(jtext, sizeof(jtext), "{\"version\":1,\"phase\":\"evicted\",\"used\":\"save\",\"save_file\":\"%s\","
             "\"jobs\":[31],\"devices\":[]}", bait);
    char jpath[PATH_MAX + 16];
    snprintf(jpath, sizeof(jpath), "%s/journal.json", f->conf.state_dir);
    write_file(jpath, jtext);
    OK(vd_restore(&f->conf, 31, &rep, &err));
    assert_true(exists(bait));                 /* neither restored, renamed nor removed */
    assert_true(info_of(f).restored);          /* vdesk's own save file was */
    assert_non_null(strstr(rep.drain, "is not vdesk's save file"));
}

/* A journal that says the desktop was sent to a node the file does not
 * name as a migration peer (a planted journal, say) is not followed there:
 * it is set aside, and the desktop comes back from what is true. */
static void journal_naming_an_unknown_node_is_not_followed(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    evict(f, 32, VD_MODE_SAVE, &rep);
    char jpath[PATH_MAX + 16];
    snprintf(jpath, sizeof(jpath), "%s/journal.json", f->conf.state_dir);
    write_file(jpath, "{\"version\":1,\"phase\":\"evicted\",\"used\":\"migrate\",\"where\":\"evil\","
               "\"jobs\":[32],\"devices\":[]}");
    OK(vd_restore(&f->conf, 32, &rep, &err));
    assert_true(info_of(f).restored);          /* the session, from vdesk's save file */
    assert_non_null(strstr(rep.drain, "where 'evil' is not a node"));
    assert_int_equal(count_files(f, "journal.json.bad-"), 1);
}

/* --- item 17: one journal entry per device, whatever fails ------------- */

static void failing_unplug_in_two_modes_journals_the_device_once(void **state)
{
    fixture *f = *state;
    vd_err err;
    vd_report rep;
    const char *xml =
        "<domain type='test'><name>vd-dev</name><memory>65536</memory><os><type>hvm</type></os>"
        "<devices><rng model='virtio'><backend model='random'>/dev/urandom</backend>"
        "<alias name='ua-gpu0'/></rng></devices></domain>";
    OK(vd_hv_dom_create(f->hv, xml, &err));
    int present = 0;
    OK(vd_hv_dev_present(f->hv, "vd-dev", "ua-gpu0", &present, &err));
    if (!present)
        skip();   /* this libvirt's test driver drops user aliases */
    snprintf(f->conf.domain, sizeof(f->conf.domain), "vd-dev");
    snprintf(f->conf.desktop_cores, sizeof(f->conf.desktop_cores), "0");
    f->conf.devices[0] = (vd_device){ .role = VD_ROLE_GPU, .alias = "ua-gpu0" };
    f->conf.ndevices = 1;
    f->conf.policy[0] = VD_MODE_SAVE;
    f->conf.policy[1] = VD_MODE_SHRINK;
    vd_request req = { .job = 40, .mode = VD_MODE_AUTO };
    /* The test driver cannot hot-unplug: both modes fail at the unplug,
     * and the desktop is put back as it was. */
    assert_int_equal(vd_evict(&f->conf, &req, &rep, &err), -1);
    assert_non_null(strstr(err.msg, "save failed"));
    assert_non_null(strstr(err.msg, "shrink failed"));
    vd_dom_state s;
    OK(vd_hv_dom_state(f->hv, "vd-dev", &s, &err));
    assert_int_equal(s, VD_DOM_RUNNING);
}

/* --- item 5: the operation fits Slurm's PrologEpilogTimeout ------------ */

static void lock_wait_fits_the_budget(void **state)
{
    fixture *f = *state;
    vd_err err;
    vd_report rep;
    int held;
    OK(vd_lock_take(f->conf.state_dir, 1, &held, &err));   /* another operation */
    vd_request req = { .job = 50, .mode = VD_MODE_SUSPEND, .budget_s = 6 };
    time_t t0 = time(NULL);
    assert_int_equal(vd_evict(&f->conf, &req, &rep, &err), -1);
    assert_true(time(NULL) - t0 < 5);   /* not the 600 s of an unbounded wait */
    assert_non_null(strstr(err.msg, "holds the node's lock"));
    assert_int_equal(info_of(f).state, VD_DOM_RUNNING);   /* untouched */
    vd_lock_release(held);
    req.budget_s = 600;
    OK(vd_evict(&f->conf, &req, &rep, &err));
    assert_string_equal(rep.used, "suspend");
}

/* --- item 19: libvirt's message, not freed memory --------------------- */

static void failed_create_says_why(void **state)
{
    fixture *f = *state;
    vd_err err;
    /* Defining the running domain again succeeds; starting it cannot. */
    const char *xml = "<domain type='test'><name>test</name><uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid><memory>65536</memory>"
                      "<os><type>hvm</type></os></domain>";
    assert_int_equal(vd_hv_dom_create(f->hv, xml, &err), -1);
    assert_non_null(strstr(err.msg, "VM test: cannot start: "));
    assert_non_null(strstr(err.msg, "already"));
}

/* --- lifecycle: vdeskctl boot and select ------------------------------- */

static int autostart_of(fixture *f, const char *dom)
{
    int on = -1;
    vd_err err;
    OK(vd_hv_dom_autostart(f->hv, dom, &on, &err));
    return on;
}

static void boot_turns_autostart_off_and_starts_the_desktop(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    OK(vd_hv_dom_autostart_set(f->hv, DOM, 1, &err));
    OK(vd_hv_dom_destroy(f->hv, DOM, &err));
    OK(vd_boot(&f->conf, &rep, &err));
    assert_int_equal(info_of(f).state, VD_DOM_RUNNING);
    assert_int_equal(autostart_of(f, DOM), 0);
    assert_non_null(strstr(rep.outcome, "booted"));
    assert_non_null(strstr(rep.outcome, "autostart of " DOM " off"));
    assert_true(has_phase(&rep, "start"));
    /* Again: it runs, nothing to do, nothing turned off. */
    OK(vd_boot(&f->conf, &rep, &err));
    assert_non_null(strstr(rep.outcome, "runs"));
    assert_null(strstr(rep.outcome, "autostart"));
}

static void boot_restores_a_managed_save(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    int has = 0;
    OK(vd_hv_dom_managed_save(f->hv, DOM, 0, &err));
    assert_int_equal(info_of(f).state, VD_DOM_SHUTOFF);
    OK(vd_boot(&f->conf, &rep, &err));
    assert_int_equal(info_of(f).state, VD_DOM_RUNNING);
    assert_non_null(strstr(rep.outcome, "restored from its managed save"));
    OK(vd_hv_dom_managed_save_has(f->hv, DOM, &has, &err));
    assert_int_equal(has, 0);
}

/* A reboot during job 21: the desktop stays saved for it; once Slurm no
 * longer runs the job (the reconcile), the next boot brings it back. */
static void boot_leaves_the_desktop_away_while_a_job_holds_the_node(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    char released[256];
    evict(f, 21, VD_MODE_SAVE, &rep);
    assert_int_equal(vd_boot(&f->conf, &rep, &err), 1);
    assert_int_equal(info_of(f).state, VD_DOM_SHUTOFF);
    assert_non_null(strstr(rep.outcome, "stays away"));
    assert_non_null(strstr(rep.outcome, "job 21"));
    vd_journal j = journal_of(f);
    assert_int_equal(j.phase, VD_EVICTED);
    vd_journal_clear(&j);
    assert_int_equal(vd_jobs_reconcile(&f->conf, 0, fake_holds, 1, released, sizeof(released), &err), 1);
    OK(vd_boot(&f->conf, &rep, &err));
    assert_int_equal(info_of(f).state, VD_DOM_RUNNING);
    assert_string_equal(rep.lost, "");   /* from the save file, not booted */
    j = journal_of(f);
    assert_int_equal(j.phase, VD_PRESENT);
    vd_journal_clear(&j);
}

/* The review's finding: an autostart next to a vdesk save file boots the
 * disk and the session is lost. A save turns the autostart off. */
static void save_turns_autostart_off(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    OK(vd_hv_dom_autostart_set(f->hv, DOM, 1, &err));
    evict(f, 8, VD_MODE_SAVE, &rep);
    assert_string_equal(rep.used, "save");
    assert_int_equal(autostart_of(f, DOM), 0);
    assert_non_null(strstr(rep.outcome, "autostart"));
    OK(vd_restore(&f->conf, 8, &rep, &err));
}

#define DOM2 "proj-a"

/* A second desktop the node offers, defined and shut off. */
static void second_desktop(fixture *f)
{
    vd_err err;
    OK(vd_hv_dom_create(f->hv, "<domain type='test'><name>" DOM2 "</name><memory>65536</memory>"
                        "<os><type>hvm</type></os></domain>", &err));
    OK(vd_hv_dom_destroy(f->hv, DOM2, &err));
    snprintf(f->conf.desktops[0], sizeof(f->conf.desktops[0]), DOM2);
    f->conf.ndesktops = 1;
    snprintf(f->conf.domain_default, sizeof(f->conf.domain_default), DOM);
}

static vd_dom_state state_of(fixture *f, const char *dom)
{
    vd_dom_state s;
    vd_err err;
    OK(vd_hv_dom_state(f->hv, dom, &s, &err));
    return s;
}

static void select_switches_and_keeps_the_old_session(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    char chosen[128];
    int has = 0;
    second_desktop(f);
    OK(vd_hv_dom_autostart_set(f->hv, DOM2, 1, &err));
    OK(vd_select(&f->conf, DOM2, &rep, &err));
    assert_int_equal(state_of(f, DOM2), VD_DOM_RUNNING);
    assert_int_equal(state_of(f, DOM), VD_DOM_SHUTOFF);
    OK(vd_hv_dom_managed_save_has(f->hv, DOM, &has, &err));
    assert_int_equal(has, 1);
    assert_int_equal(autostart_of(f, DOM2), 0);
    assert_true(has_phase(&rep, "managed save"));
    assert_non_null(strstr(rep.outcome, "selected " DOM2));
    assert_int_equal(vd_conf_selected_read(f->conf.state_dir, chosen, sizeof(chosen), &err), 1);
    assert_string_equal(chosen, DOM2);
    /* Back: the first desktop's session comes out of its managed save. */
    vd_conf now = f->conf;
    snprintf(now.domain, sizeof(now.domain), DOM2);
    OK(vd_select(&now, DOM, &rep, &err));
    assert_int_equal(state_of(f, DOM), VD_DOM_RUNNING);
    assert_int_equal(state_of(f, DOM2), VD_DOM_SHUTOFF);
    assert_non_null(strstr(rep.outcome, "restored from its managed save"));
    assert_int_equal(vd_conf_selected_read(f->conf.state_dir, chosen, sizeof(chosen), &err), 1);
    assert_string_equal(chosen, DOM);
}

static void select_refuses_what_it_cannot_do(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    char chosen[128];
    /* Not offered by vdesk.conf. */
    assert_int_equal(vd_select(&f->conf, DOM2, &rep, &err), -1);
    assert_non_null(strstr(err.msg, "desktops ="));
    /* Offered, but libvirt has no such domain. */
    snprintf(f->conf.desktops[0], sizeof(f->conf.desktops[0]), "gone");
    f->conf.ndesktops = 1;
    assert_int_equal(vd_select(&f->conf, "gone", &rep, &err), -1);
    assert_non_null(strstr(err.msg, "not defined"));
    /* While a job has the node. */
    second_desktop(f);
    evict(f, 9, VD_MODE_SUSPEND, &rep);
    assert_int_equal(vd_select(&f->conf, DOM2, &rep, &err), -1);
    assert_non_null(strstr(err.msg, "away for job 9"));
    assert_int_equal(state_of(f, DOM2), VD_DOM_SHUTOFF);
    assert_int_equal(vd_conf_selected_read(f->conf.state_dir, chosen, sizeof(chosen), &err), 0);
    OK(vd_restore(&f->conf, 9, &rep, &err));
}

/* --- what the driver cannot do (hv.h, vd_hv_caps) ---------------------- */

/* The driver of the engine's own connections lacks `what` (the test hook:
 * the test driver itself does save, managed save and suspend). */
static void driver_lacks(const char *what)
{
    assert_int_equal(setenv("VDESK_TEST_DRIVER_LACKS", what, 1), 0);
}

/* policy = save,shutdown on a driver without save (LXC): save is refused
 * by that reason before anything is done for it, and shutdown frees the
 * node; no recovery point is said, not drained for. */
static void save_refused_by_the_driver_moves_on_to_shutdown(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    char save[SAVE_MAX];
    save_path(f, save);
    driver_lacks("save,managed-save");
    evict(f, 60, VD_MODE_SAVE, &rep);
    assert_string_equal(rep.used, "shutdown");
    assert_non_null(strstr(rep.outcome, "shutdown after save: not supported by libvirt's test driver "
                           "(no save and restore of a domain's memory)"));
    assert_non_null(strstr(rep.outcome, "recovery point: not supported by libvirt's test driver"));
    assert_string_equal(rep.drain, "");
    assert_false(has_phase(&rep, "save"));
    assert_false(exists(save));
    assert_int_equal(info_of(f).state, VD_DOM_SHUTOFF);
    OK(vd_restore(&f->conf, 60, &rep, &err));
    vd_dom_info st = info_of(f);
    assert_int_equal(st.state, VD_DOM_RUNNING);
    assert_false(st.restored);   /* booted: there is no file */
    assert_string_equal(rep.lost, "");
}

/* The test driver has no migration at all: refused by capability (before
 * any migrate_uri is looked for), and the policy's save is used. */
static void migrate_refused_by_the_driver(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    evict(f, 61, VD_MODE_MIGRATE, &rep);
    assert_string_equal(rep.used, "save");
    assert_non_null(strstr(rep.outcome, "save after migrate: not supported by libvirt's test driver "
                           "(no live migration)"));
    OK(vd_restore(&f->conf, 61, &rep, &err));
    assert_true(info_of(f).restored);
}

/* Nothing of the chain is possible: the job cannot have the node, the
 * desktop runs on untouched, and the error says why, mode by mode. */
static void nothing_the_driver_can_do_leaves_the_desktop_running(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    driver_lacks("save,shutdown,suspend");
    vd_request req = { .job = 62, .mode = VD_MODE_SUSPEND };
    assert_int_equal(vd_evict(&f->conf, &req, &rep, &err), -1);
    assert_non_null(strstr(err.msg, "suspend: not supported by libvirt's test driver"));
    assert_non_null(strstr(err.msg, "; save: not supported"));
    assert_non_null(strstr(err.msg, "; shutdown: not supported"));
    assert_non_null(strstr(rep.drain, "cannot evict"));
    assert_int_equal(info_of(f).state, VD_DOM_RUNNING);
    assert_false(has_phase(&rep, "snapshot"));
    vd_journal j = journal_of(f);
    assert_int_equal(j.phase, VD_PRESENT);
    vd_journal_clear(&j);
}

/* A save file on a driver that cannot restore (the uri changed while the
 * desktop was saved): not tried, kept for an admin, said as a loss; the
 * desktop boots from its disk. */
static void save_file_the_driver_cannot_restore_is_kept_and_the_desktop_boots(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    evict(f, 63, VD_MODE_SAVE, &rep);
    driver_lacks("save");
    OK(vd_restore(&f->conf, 63, &rep, &err));
    vd_dom_info st = info_of(f);
    assert_int_equal(st.state, VD_DOM_RUNNING);
    assert_false(st.restored);
    assert_false(has_phase(&rep, "restore"));
    assert_int_equal(count_files(f, DOM ".save.unusable-"), 1);
    assert_non_null(strstr(rep.lost, "not supported by libvirt's test driver"));
    assert_null(strstr(rep.lost, "was gone"));   /* one loss, said once */
    vd_journal j = journal_of(f);
    assert_int_equal(j.phase, VD_PRESENT);
    assert_string_equal(j.save_file, "");
    vd_journal_clear(&j);
}

/* A shrink on a driver that cannot pin, and a device to unplug on one
 * without hotplug: both refused by name. */
static void shrink_and_unplug_refused_by_the_driver(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    snprintf(f->conf.desktop_cores, sizeof(f->conf.desktop_cores), "0");
    f->conf.npolicy = 0;
    driver_lacks("pin");
    vd_request req = { .job = 64, .mode = VD_MODE_SHRINK };
    assert_int_equal(vd_evict(&f->conf, &req, &rep, &err), -1);
    assert_non_null(strstr(err.msg, "shrink: not supported by libvirt's test driver (no pinning"));
    const char *xml =
        "<domain type='test'><name>vd-dev</name><memory>65536</memory><os><type>hvm</type></os>"
        "<devices><rng model='virtio'><backend model='random'>/dev/urandom</backend>"
        "<alias name='ua-gpu0'/></rng></devices></domain>";
    OK(vd_hv_dom_create(f->hv, xml, &err));
    int present = 0;
    OK(vd_hv_dev_present(f->hv, "vd-dev", "ua-gpu0", &present, &err));
    if (!present)
        skip();   /* this libvirt's test driver drops user aliases */
    snprintf(f->conf.domain, sizeof(f->conf.domain), "vd-dev");
    f->conf.devices[0] = (vd_device){ .role = VD_ROLE_GPU, .alias = "ua-gpu0" };
    f->conf.ndevices = 1;
    req = (vd_request){ .job = 65, .mode = VD_MODE_SAVE };
    assert_int_equal(vd_evict(&f->conf, &req, &rep, &err), -1);
    assert_non_null(strstr(err.msg, "save failed: unplug ua-gpu0: not supported by libvirt's test driver "
                           "(no hot-unplug of devices)"));
}

/* select keeps the old desktop's session in a managed save: refused on a
 * driver without one, and the old desktop runs on, still selected. */
static void select_refused_without_managed_save(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    char chosen[128];
    second_desktop(f);
    driver_lacks("managed-save");
    assert_int_equal(vd_select(&f->conf, DOM2, &rep, &err), -1);
    assert_non_null(strstr(err.msg, "keeping its session in a managed save: not supported by libvirt's "
                           "test driver"));
    assert_int_equal(state_of(f, DOM), VD_DOM_RUNNING);
    assert_int_equal(state_of(f, DOM2), VD_DOM_SHUTOFF);
    assert_int_equal(vd_conf_selected_read(f->conf.state_dir, chosen, sizeof(chosen), &err), 0);
}

/* Review finding: the selection is read before the lock; a select that held
 * the lock meanwhile switched desktops. The prolog acts on the one that
 * runs now, not on the one it read. */
static void evict_acts_on_the_desktop_selected_while_it_waited(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    second_desktop(f);
    OK(vd_select(&f->conf, DOM2, &rep, &err));   /* then the select ran */
    assert_int_equal(state_of(f, DOM2), VD_DOM_RUNNING);
    evict(f, 31, VD_MODE_SUSPEND, &rep);      /* f->conf still says test */
    assert_int_equal(state_of(f, DOM2), VD_DOM_PAUSED);
    assert_int_equal(state_of(f, DOM), VD_DOM_SHUTOFF);
    assert_string_equal(rep.used, "suspend");
    OK(vd_restore(&f->conf, 31, &rep, &err));
    assert_int_equal(state_of(f, DOM2), VD_DOM_RUNNING);
}

/* A select killed after it unplugged the devices leaves its step in the
 * journal at PRESENT: the next operation finishes it. */
static void interrupted_select_is_finished_by_recover(void **state)
{
    fixture *f = *state;
    vd_report rep;
    vd_err err;
    vd_journal j = journal_of(f);
    snprintf(j.step, sizeof(j.step), "managed save");
    OK(vd_journal_save(f->conf.state_dir, &j, &err));
    vd_journal_clear(&j);
    OK(vd_recover(&f->conf, 0, &rep, &err));
    assert_non_null(strstr(rep.outcome, "finished a boot or select interrupted at step 'managed save'"));
    j = journal_of(f);
    assert_string_equal(j.step, "");
    assert_int_equal(j.phase, VD_PRESENT);
    vd_journal_clear(&j);
    assert_int_equal(info_of(f).state, VD_DOM_RUNNING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(suspend_and_back, setup, teardown),
        cmocka_unit_test_setup_teardown(save_and_back_from_the_file, setup, teardown),
        cmocka_unit_test_setup_teardown(two_jobs_one_eviction_last_out_restores, setup, teardown),
        cmocka_unit_test_setup_teardown(vm_started_outside_vdesk_keeps_the_saved_session, setup, teardown),
        cmocka_unit_test_setup_teardown(interrupted_save_and_a_booted_vm_keep_the_file_as_a_loss, setup, teardown),
        cmocka_unit_test_setup_teardown(snapshot_before_save_even_when_shrink_came_first, setup, teardown),
        cmocka_unit_test_setup_teardown(no_snapshot_for_suspend, setup, teardown),
        cmocka_unit_test_setup_teardown(second_job_asking_save_escalates_from_suspend, setup, teardown),
        cmocka_unit_test_setup_teardown(second_job_asking_suspend_joins_a_saved_desktop, setup, teardown),
        cmocka_unit_test_setup_teardown(second_job_that_cannot_escalate_leaves_the_desktop_suspended, setup, teardown),
        cmocka_unit_test_setup_teardown(escalation_cut_short_is_finished_by_the_next_job, setup, teardown),
        cmocka_unit_test_setup_teardown(shut_off_desktop_gives_its_gpu_to_the_job, setup_ws, teardown),
        cmocka_unit_test_setup_teardown(truncated_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(journal_with_wrong_types, setup, teardown),
        cmocka_unit_test_setup_teardown(journal_naming_an_unknown_node_is_not_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(journal_path_outside_the_state_dir_is_not_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(failing_unplug_in_two_modes_journals_the_device_once, setup, teardown),
        cmocka_unit_test_setup_teardown(lock_wait_fits_the_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_create_says_why, setup, teardown),
        cmocka_unit_test_setup_teardown(finished_job_whose_epilog_failed_no_longer_holds_the_desktop, setup, teardown),
        cmocka_unit_test_setup_teardown(running_or_unknown_jobs_keep_the_desktop_away, setup, teardown),
        cmocka_unit_test_setup_teardown(recover_brings_back_a_desktop_away_for_no_job, setup, teardown),
        cmocka_unit_test_setup_teardown(job_started_again_meanwhile_is_kept, setup, teardown),
        cmocka_unit_test(prefix_note_never_cuts_a_loss),
        cmocka_unit_test_setup_teardown(boot_turns_autostart_off_and_starts_the_desktop, setup, teardown),
        cmocka_unit_test_setup_teardown(boot_restores_a_managed_save, setup, teardown),
        cmocka_unit_test_setup_teardown(boot_leaves_the_desktop_away_while_a_job_holds_the_node, setup, teardown),
        cmocka_unit_test_setup_teardown(save_turns_autostart_off, setup, teardown),
        cmocka_unit_test_setup_teardown(select_switches_and_keeps_the_old_session, setup, teardown),
        cmocka_unit_test_setup_teardown(select_refuses_what_it_cannot_do, setup, teardown),
        cmocka_unit_test_setup_teardown(evict_acts_on_the_desktop_selected_while_it_waited, setup, teardown),
        cmocka_unit_test_setup_teardown(interrupted_select_is_finished_by_recover, setup, teardown),
        cmocka_unit_test_setup_teardown(save_refused_by_the_driver_moves_on_to_shutdown, setup, teardown),
        cmocka_unit_test_setup_teardown(migrate_refused_by_the_driver, setup, teardown),
        cmocka_unit_test_setup_teardown(nothing_the_driver_can_do_leaves_the_desktop_running, setup, teardown),
        cmocka_unit_test_setup_teardown(save_file_the_driver_cannot_restore_is_kept_and_the_desktop_boots, setup, teardown),
        cmocka_unit_test_setup_teardown(shrink_and_unplug_refused_by_the_driver, setup, teardown),
        cmocka_unit_test_setup_teardown(select_refused_without_managed_save, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
