/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "err.h"

static void set_formats_and_returns_minus_one(void **state)
{
    (void)state;
    vd_err e;
    assert_int_equal(vd_err_set(&e, "VM %s: %d", "desk", 3), -1);
    assert_string_equal(e.msg, "VM desk: 3");
}

static void null_err_is_allowed(void **state)
{
    (void)state;
    assert_int_equal(vd_err_set(NULL, "x"), -1);
    assert_int_equal(vd_err_prefix(NULL, "x"), -1);
    vd_err_clear(NULL);
}

static void prefix_prepends_context(void **state)
{
    (void)state;
    vd_err e;
    vd_err_set(&e, "not found");
    assert_int_equal(vd_err_prefix(&e, "VM %s", "desk-n1"), -1);
    assert_string_equal(e.msg, "VM desk-n1: not found");
    vd_err_clear(&e);
    assert_string_equal(e.msg, "");
}

static void prefix_marks_truncation(void **state)
{
    (void)state;
    vd_err e;
    char long_msg[2000];
    memset(long_msg, 'a', sizeof(long_msg) - 1);
    long_msg[sizeof(long_msg) - 1] = '\0';
    vd_err_set(&e, "%s", long_msg);
    assert_int_equal(strlen(e.msg), sizeof(e.msg) - 1);
    vd_err_prefix(&e, "ctx");
    assert_int_equal(strncmp(e.msg, "ctx: aaa", 8), 0);
    assert_string_equal(e.msg + sizeof(e.msg) - 4, "...");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(set_formats_and_returns_minus_one),
        cmocka_unit_test(null_err_is_allowed),
        cmocka_unit_test(prefix_prepends_context),
        cmocka_unit_test(prefix_marks_truncation),
    };
    return cmocka_run_group_tests_name("err", tests, NULL, NULL);
}
