/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"

static int dir_setup(void **state)
{
    static char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/vdesk-test-journal-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    *state = dir;
    return 0;
}

static int dir_teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", (char *)*state);
    return system(cmd) == 0 ? 0 : -1;
}

static void missing_journal_is_present(void **state)
{
    vd_journal j;
    vd_err err;
    assert_int_equal(vd_journal_load(*state, &j, &err), 0);
    assert_int_equal(j.phase, VD_PRESENT);
    assert_int_equal(j.njobs, 0);
}

static void save_and_load_round_trip(void **state)
{
    vd_journal j = { .phase = VD_EVICTED, .pinned = 1, .since_ms = 42 };
    vd_err err = { "" };
    snprintf(j.used, sizeof(j.used), "save");
    snprintf(j.step, sizeof(j.step), "unplug ua-gpu0");
    snprintf(j.save_file, sizeof(j.save_file), "/var/lib/vdesk/desk.save");
    assert_int_equal(vd_journal_add_job(&j, 7, &err), 0);
    assert_int_equal(vd_journal_add_job(&j, 9, &err), 0);
    assert_int_equal(vd_journal_add_job(&j, 7, &err), 0);   /* once only */
    snprintf(j.devs[0].alias, sizeof(j.devs[0].alias), "ua-gpu0");
    j.devs[0].xml = strdup("<hostdev mode='subsystem'>\n  <alias name=\"ua-gpu0\"/>\n</hostdev>");
    j.ndevs = 1;
    if (vd_journal_save(*state, &j, &err))
        fail_msg("%s", err.msg);

    vd_journal k;
    assert_int_equal(vd_journal_load(*state, &k, &err), 0);
    assert_int_equal(k.phase, VD_EVICTED);
    assert_string_equal(k.used, "save");
    assert_string_equal(k.step, "unplug ua-gpu0");
    assert_string_equal(k.save_file, "/var/lib/vdesk/desk.save");
    assert_int_equal(k.pinned, 1);
    assert_int_equal(k.since_ms, 42);
    assert_int_equal(k.njobs, 2);
    assert_true(vd_journal_has_job(&k, 9));
    assert_int_equal(k.ndevs, 1);
    assert_string_equal(k.devs[0].xml, j.devs[0].xml);
    vd_journal_drop_job(&k, 7);
    assert_false(vd_journal_has_job(&k, 7));
    assert_int_equal(k.njobs, 1);
    vd_journal_clear(&j);
    vd_journal_clear(&k);

    /* No temporary file is left beside the journal. */
    char tmp[128];
    snprintf(tmp, sizeof(tmp), "%s/.journal.json.tmp", (char *)*state);
    assert_int_not_equal(access(tmp, F_OK), 0);
}

static void corrupt_journal_says_what_to_do(void **state)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/journal.json", (char *)*state);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"version\": 1, \"phase\": \"sideways\"", f);
    fclose(f);
    vd_journal j;
    vd_err err;
    assert_int_equal(vd_journal_load(*state, &j, &err), -1);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "vdeskctl recover"));
}

static void unwritable_state_dir_is_an_error(void **state)
{
    (void)state;
    vd_journal j = { .phase = VD_EVICTING };
    vd_err err;
    assert_int_equal(vd_journal_save("/proc/vdesk-no-such-dir", &j, &err), -1);
    assert_non_null(strstr(err.msg, "/proc/vdesk-no-such-dir"));
}

static void lock_is_exclusive_and_times_out(void **state)
{
    int a = -1, b = -1;
    vd_err err;
    assert_int_equal(vd_lock_take(*state, 1, &a, &err), 0);
    /* flock locks belong to open file descriptions: a second open conflicts. */
    assert_int_equal(vd_lock_take(*state, 0, &b, &err), -1);
    assert_non_null(strstr(err.msg, "another vdesk operation holds the node's lock"));
    vd_lock_release(a);
    assert_int_equal(vd_lock_take(*state, 0, &b, &err), 0);
    vd_lock_release(b);
}

static void records_are_appended(void **state)
{
    vd_err err;
    assert_int_equal(vd_record_append(*state, "{\"a\":1}", &err), 0);
    assert_int_equal(vd_record_append(*state, "{\"a\":2}", &err), 0);
    char path[128], buf[64] = "";
    snprintf(path, sizeof(path), "%s/records.jsonl", (char *)*state);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_string_equal(buf, "{\"a\":1}\n{\"a\":2}\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(missing_journal_is_present, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(save_and_load_round_trip, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(corrupt_journal_says_what_to_do, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(unwritable_state_dir_is_an_error, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(lock_is_exclusive_and_times_out, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(records_are_appended, dir_setup, dir_teardown),
    };
    return cmocka_run_group_tests_name("journal", tests, NULL, NULL);
}
