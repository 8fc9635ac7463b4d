/* SPDX-License-Identifier: MIT */
/*
 * lib/slurmapi's reading of slurmctld's gres strings, in the forms Slurm
 * 22.05 to 24.x write them (scontrol -d show node shows the same).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "slurmapi.h"

static void gres_strings_give_count_and_indices(void **state)
{
    (void)state;
    static const struct {
        const char *gres, *used;
        int configured;
        unsigned long long bits;
    } cases[] = {
        { "gpu:1", "gpu:1(IDX:0)", 1, 0x1 },
        { "gpu:a100:4(S:0-1),mps:400", "gpu:a100:2(IDX:0,2-3),mps:0(IDX:N/A)", 4, 0xd },
        { "gpu:a100:2,gpu:v100:2", "gpu:a100:0(IDX:N/A),gpu:v100:1(IDX:3)", 4, 0x8 },
        { "mps:100", "mps:0", 0, 0 },
        { "gpu:4", "gpu:0", 4, 0 },
        { NULL, NULL, 0, 0 },
        { "(null)", "gpu:(null):1(IDX:1)", 0, 0x2 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        vd_slurm_gpus g;
        vd_slurm_gpus_parse(cases[i].gres, cases[i].used, &g);
        if (g.configured != cases[i].configured || g.used != cases[i].bits)
            fail_msg("case %zu (%s / %s): got %d GPUs, used %#llx", i, cases[i].gres,
                     cases[i].used, g.configured, g.used);
    }
}

static void no_slurmctld_is_a_clear_error(void **state)
{
    (void)state;
    vd_slurm_gpus g;
    vd_err err = { "" };
    /* SLURM_CONF names a file that does not exist: libslurm would exit the
     * process after a minute; vdesk says so at once, naming node and file. */
    assert_int_equal(setenv("SLURM_CONF", "/nonexistent/slurm.conf", 1), 0);
    assert_int_equal(vd_slurm_node_gpus("n1", &g, &err), -1);
    assert_string_equal(err.msg, "node n1: cannot ask slurmctld: no slurm.conf to reach slurmctld "
                                 "with (/nonexistent/slurm.conf); set SLURM_CONF");
    assert_int_equal(vd_slurm_node_drain("n1", "vdesk: x", &err), -1);
    assert_non_null(strstr(err.msg, "node n1: cannot drain it (reason 'vdesk: x'): no slurm.conf"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gres_strings_give_count_and_indices),
        cmocka_unit_test(no_slurmctld_is_a_clear_error),
    };
    return cmocka_run_group_tests_name("slurmapi", tests, NULL, NULL);
}
