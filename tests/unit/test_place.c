/* SPDX-License-Identifier: MIT */
/* The migration target rule (lib/place.c): room, then most free memory,
 * then vdesk.conf's order; the same inputs always pick the same node. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "place.h"

#define GIB (1024ULL * 1024)   /* in KiB */

static void no_candidates_no_target(void **state)
{
    (void)state;
    assert_int_equal(vd_place_pick(NULL, 0, 4 * GIB), -1);
}

static void most_free_memory_wins(void **state)
{
    (void)state;
    vd_place_cand c[] = { { 10 * GIB, 1, 0 }, { 30 * GIB, 1, 1 }, { 20 * GIB, 1, 2 } };
    assert_int_equal(vd_place_pick(c, 3, 4 * GIB), 1);
}

static void a_tie_goes_to_the_configured_order(void **state)
{
    (void)state;
    vd_place_cand c[] = { { 30 * GIB, 1, 5 }, { 30 * GIB, 2, 2 }, { 30 * GIB, 1, 9 } };
    assert_int_equal(vd_place_pick(c, 3, 4 * GIB), 1);
    /* the same order twice: the first listed */
    vd_place_cand d[] = { { 30 * GIB, 1, 3 }, { 30 * GIB, 1, 3 } };
    assert_int_equal(vd_place_pick(d, 2, 4 * GIB), 0);
}

static void no_slot_or_too_little_memory_is_no_room(void **state)
{
    (void)state;
    /* 4 GiB needs 4 GiB + a tenth + the margin */
    unsigned long long need = 4 * GIB, edge = need + need / 10 + VD_PLACE_MARGIN_KIB;
    vd_place_cand c[] = { { 64 * GIB, 0, 0 }, { edge - 1, 1, 1 }, { 64 * GIB, -1, 2 } };
    assert_int_equal(vd_place_pick(c, 3, need), -1);
    c[1].free_kib = edge;
    assert_int_equal(vd_place_pick(c, 3, need), 1);
}

static void absurd_sizes_do_not_wrap(void **state)
{
    (void)state;
    vd_place_cand c[] = { { ~0ULL, 1, 0 } };
    assert_int_equal(vd_place_pick(c, 1, ~0ULL - 5), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_candidates_no_target),
        cmocka_unit_test(most_free_memory_wins),
        cmocka_unit_test(a_tie_goes_to_the_configured_order),
        cmocka_unit_test(no_slot_or_too_little_memory_is_no_room),
        cmocka_unit_test(absurd_sizes_do_not_wrap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
