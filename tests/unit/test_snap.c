/* SPDX-License-Identifier: MIT */
/* Recovery points (lib/snap.c) without a hypervisor: which layers a
 * retention merges, which names and files vdesk accepts. The chain, the
 * index and the merges themselves run on QEMU in t_snapshot.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "snap.h"

#define DAY 86400000LL
#define NOW (1000 * DAY)

/* A chain of n layers, all vdesk's but the base, frozen a day apart, the
 * newest (index 1) a day ago. */
static void chain_make(vd_snap_layer *c, int n)
{
    memset(c, 0, (size_t)n * sizeof(*c));
    for (int i = 0; i < n; i++) {
        c[i].ours = i < n - 1;
        c[i].time_ms = NOW - i * DAY;
    }
}

static void keep_n_merges_everything_older_into_vdesks_oldest_layer(void **state)
{
    (void)state;
    vd_snap_layer c[8];
    vd_snap_keep keep = { .n = 2, .age_ms = 0 };
    int top = -1, base = -1;
    chain_make(c, 8);   /* active, points 1..6, base */
    assert_int_equal(vd_snap_plan(c, 8, &keep, NOW, &top, &base), 1);
    /* Points 3..6 go: point 2's state moves into layer 6, the base stays. */
    assert_int_equal(top, 2);
    assert_int_equal(base, 6);
    keep.n = 6;
    assert_int_equal(vd_snap_plan(c, 8, &keep, NOW, &top, &base), 0);
}

static void the_newest_point_and_the_base_always_stay(void **state)
{
    (void)state;
    vd_snap_layer c[4];
    vd_snap_keep keep = { .n = 0, .age_ms = 0 };
    int top = -1, base = -1;
    chain_make(c, 4);   /* active, points 1 and 2, base */
    assert_int_equal(vd_snap_plan(c, 4, &keep, NOW, &top, &base), 1);
    assert_int_equal(top, 1);
    assert_int_equal(base, 2);
    chain_make(c, 3);   /* active, point 1, base: nothing can go */
    assert_int_equal(vd_snap_plan(c, 3, &keep, NOW, &top, &base), 0);
    /* A base that is vdesk's file is still the bottom: never written. */
    chain_make(c, 3);
    c[2].ours = 1;
    assert_int_equal(vd_snap_plan(c, 3, &keep, NOW, &top, &base), 0);
}

static void kept_points_split_the_merge_and_do_not_count(void **state)
{
    (void)state;
    vd_snap_layer c[8];
    vd_snap_keep keep = { .n = 1, .age_ms = 0 };
    int top = -1, base = -1;
    chain_make(c, 8);
    c[3].named = 1;
    /* Point 2 goes (into layer 2, from point 1's layer); then 4..6. */
    assert_int_equal(vd_snap_plan(c, 8, &keep, NOW, &top, &base), 1);
    assert_int_equal(top, 1);
    assert_int_equal(base, 2);
    c[2].named = 1;   /* as if that run were done: 1, then two kept */
    assert_int_equal(vd_snap_plan(c, 8, &keep, NOW, &top, &base), 1);
    assert_int_equal(top, 3);
    assert_int_equal(base, 6);
    /* keep = 2 counts points 1 and 4 (2 and 3 are kept by name). */
    keep.n = 2;
    assert_int_equal(vd_snap_plan(c, 8, &keep, NOW, &top, &base), 1);
    assert_int_equal(top, 4);
    assert_int_equal(base, 6);
}

static void points_younger_than_the_age_stay(void **state)
{
    (void)state;
    vd_snap_layer c[8];
    vd_snap_keep keep = { .n = 1, .age_ms = 3 * DAY + 1 };
    int top = -1, base = -1;
    chain_make(c, 8);   /* point i is i days old */
    assert_int_equal(vd_snap_plan(c, 8, &keep, NOW, &top, &base), 1);
    assert_int_equal(top, 3);
    assert_int_equal(base, 6);
    keep.age_ms = 10 * DAY;
    assert_int_equal(vd_snap_plan(c, 8, &keep, NOW, &top, &base), 0);
}

static void a_layer_something_is_built_on_is_never_written_or_removed(void **state)
{
    (void)state;
    vd_snap_layer c[8];
    vd_snap_keep keep = { .n = 1, .age_ms = 0 };
    int top = -1, base = -1;
    chain_make(c, 8);
    c[4].pinned = 1;   /* a revert's kept state reads through layer 4 */
    /* 2..3 into 3 (not 4: written), then 5..6 with 4 as the top would
     * remove 4: only 2..3 is possible. */
    assert_int_equal(vd_snap_plan(c, 8, &keep, NOW, &top, &base), 1);
    assert_int_equal(top, 1);
    assert_int_equal(base, 3);
    c[2].named = c[3].named = 1;
    assert_int_equal(vd_snap_plan(c, 8, &keep, NOW, &top, &base), 0);
    /* The site's layer in the middle of the chain is never written. */
    chain_make(c, 6);
    c[3].ours = 0;
    assert_int_equal(vd_snap_plan(c, 6, &keep, NOW, &top, &base), 1);
    assert_int_equal(top, 1);
    assert_int_equal(base, 2);
}

static void names_are_checked(void **state)
{
    (void)state;
    const char *good[] = { "clean", "job12-20261130-203015", "a.b_c-1", "X" };
    const char *bad[] = { "", ".hidden", "-opt", "../x", "a/b", "a b", "ä",
                          "a123456789012345678901234567890123456789012345678901234567890123" };
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
        assert_true(vd_snap_name_ok(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        assert_false(vd_snap_name_ok(bad[i]));
}

static void only_vdesks_own_layer_files_are_ours(void **state)
{
    (void)state;
    assert_true(vd_snap_ours("/s/desk-17000.qcow2", "/s", "desk"));
    /* Desktop desk-revert's layer, not desk's (an old fallback's name). */
    assert_false(vd_snap_ours("/s/desk-revert-17000.qcow2", "/s", "desk"));
    assert_true(vd_snap_ours("/s/desk-revert-17000.qcow2", "/s", "desk-revert"));
    assert_false(vd_snap_ours("/s/desk-2-17000.qcow2", "/s", "desk"));   /* desktop desk-2's */
    assert_false(vd_snap_ours("/s/desk-.qcow2", "/s", "desk"));
    assert_false(vd_snap_ours("/s/desk-17000.qcow2.bak", "/s", "desk"));
    assert_false(vd_snap_ours("/s/sub/desk-17000.qcow2", "/s", "desk"));
    assert_false(vd_snap_ours("/s2/desk-17000.qcow2", "/s", "desk"));
    assert_false(vd_snap_ours("/images/desk.qcow2", "/s", "desk"));
    assert_false(vd_snap_ours("/s/desk.snapshots.json", "/s", "desk"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keep_n_merges_everything_older_into_vdesks_oldest_layer),
        cmocka_unit_test(the_newest_point_and_the_base_always_stay),
        cmocka_unit_test(kept_points_split_the_merge_and_do_not_count),
        cmocka_unit_test(points_younger_than_the_age_stay),
        cmocka_unit_test(a_layer_something_is_built_on_is_never_written_or_removed),
        cmocka_unit_test(names_are_checked),
        cmocka_unit_test(only_vdesks_own_layer_files_are_ours),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
