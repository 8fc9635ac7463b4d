/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "mode.h"

static void every_name_round_trips(void **state)
{
    (void)state;
    vd_err err;
    for (int m = 0; m < VD_MODE_COUNT; m++) {
        vd_mode got = VD_MODE_COUNT;
        assert_int_equal(vd_mode_parse(vd_mode_name((vd_mode)m), &got, &err), 0);
        assert_int_equal(got, m);
        assert_true(strlen(vd_mode_help((vd_mode)m)) > 10);
    }
    assert_string_equal(vd_mode_name(VD_MODE_COUNT), "invalid");
}

static void unknown_mode_lists_the_allowed_ones(void **state)
{
    (void)state;
    vd_err err;
    vd_mode m;
    assert_int_equal(vd_mode_parse("Suspend", &m, &err), -1);
    assert_string_equal(err.msg, "unknown mode 'Suspend' (modes: suspend, save, migrate, shutdown, shrink, auto)");
    assert_int_equal(vd_mode_parse("", &m, &err), -1);
}

static void set_parse_and_format(void **state)
{
    (void)state;
    vd_err err;
    vd_mode_set set = 0;
    char buf[128];
    assert_int_equal(vd_mode_set_parse("auto,save,suspend", &set, &err), 0);
    assert_int_equal(set, VD_MODE_BIT(VD_MODE_AUTO) | VD_MODE_BIT(VD_MODE_SAVE) | VD_MODE_BIT(VD_MODE_SUSPEND));
    vd_mode_set_format(set, buf, sizeof(buf));
    assert_string_equal(buf, "suspend, save, auto");
    vd_mode_set_format(VD_MODE_SET_ALL, buf, 12);
    assert_string_equal(buf, "suspend");   /* never a cut-off name */
}

static void set_parse_errors(void **state)
{
    (void)state;
    static const struct { const char *in, *msg; } cases[] = {
        { "", "mode list '' has an empty item" },
        { "save,", "mode list 'save,' has an empty item" },
        { ",save", "mode list ',save' has an empty item" },
        { "save,,auto", "mode list 'save,,auto' has an empty item" },
        { "save,save", "mode list 'save,save' names 'save' twice" },
        { "save,nap", "unknown mode 'nap'" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        vd_err err;
        vd_mode_set set = 42;
        assert_int_equal(vd_mode_set_parse(cases[i].in, &set, &err), -1);
        assert_int_equal(set, 42);
        assert_non_null(strstr(err.msg, cases[i].msg));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_name_round_trips),
        cmocka_unit_test(unknown_mode_lists_the_allowed_ones),
        cmocka_unit_test(set_parse_and_format),
        cmocka_unit_test(set_parse_errors),
    };
    return cmocka_run_group_tests_name("mode", tests, NULL, NULL);
}
