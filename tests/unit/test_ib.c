/* SPDX-License-Identifier: MIT */
/*
 * lib/ib on a machine without RDMA hardware (every test machine here): no
 * device, or no verbs at all, is a normal, empty answer, not an error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "ib.h"

static void no_hardware_is_an_empty_answer(void **state)
{
    (void)state;
    vd_ib_dev *v = (vd_ib_dev *)1;
    int n = -1, unavailable = -1;
    vd_err err = { "" };
    if (vd_ib_list("/sys", &v, &n, &unavailable, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(n, 0);
    assert_null(v);
    assert_true(unavailable == 0 || unavailable == 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_hardware_is_an_empty_answer),
    };
    return cmocka_run_group_tests_name("ib", tests, NULL, NULL);
}
