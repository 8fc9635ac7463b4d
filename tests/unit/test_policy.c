/* SPDX-License-Identifier: MIT */
/* The mode policy (lib/policy.c): chains, escalation, timeouts, the job's
 * GPUs and the migration deadline, without a node. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>

#include "policy.h"

static vd_conf conf_with(const vd_mode *policy, int n)
{
    vd_conf c;
    vd_conf_defaults(&c);
    for (int i = 0; i < n; i++)
        c.policy[i] = policy[i];
    c.npolicy = n;
    return c;
}

static void chain_is_the_asked_mode_then_the_policy(void **state)
{
    (void)state;
    const vd_mode p[] = { VD_MODE_MIGRATE, VD_MODE_SAVE, VD_MODE_SHUTDOWN };
    vd_conf c = conf_with(p, 3);
    vd_mode chain[VD_MODE_COUNT];
    assert_int_equal(vd_policy_chain(&c, VD_MODE_AUTO, chain), 3);
    assert_int_equal(chain[0], VD_MODE_MIGRATE);
    assert_int_equal(vd_policy_chain(&c, VD_MODE_SAVE, chain), 3);   /* save not twice */
    assert_int_equal(chain[0], VD_MODE_SAVE);
    assert_int_equal(chain[1], VD_MODE_MIGRATE);
    assert_int_equal(chain[2], VD_MODE_SHUTDOWN);
    assert_int_equal(vd_policy_chain(&c, VD_MODE_SUSPEND, chain), 4);
    assert_int_equal(chain[0], VD_MODE_SUSPEND);
}

static void ranks_order_what_a_mode_frees(void **state)
{
    (void)state;
    assert_true(vd_policy_rank(VD_MODE_SHRINK) < vd_policy_rank(VD_MODE_SUSPEND));
    assert_true(vd_policy_rank(VD_MODE_SUSPEND) < vd_policy_rank(VD_MODE_SAVE));
    assert_int_equal(vd_policy_rank(VD_MODE_SAVE), vd_policy_rank(VD_MODE_MIGRATE));
    assert_int_equal(vd_policy_rank(VD_MODE_SAVE), vd_policy_rank(VD_MODE_SHUTDOWN));
    assert_int_equal(vd_policy_rank(VD_MODE_AUTO), 0);
}

static void escalation_goes_at_least_as_far_as_both(void **state)
{
    (void)state;
    const vd_mode p[] = { VD_MODE_SUSPEND, VD_MODE_SAVE, VD_MODE_SHUTDOWN };
    vd_conf c = conf_with(p, 3);
    vd_mode chain[VD_MODE_COUNT];
    /* saved already, a suspend job: far enough */
    assert_int_equal(vd_policy_escalation(&c, VD_MODE_SAVE, VD_MODE_SUSPEND, 0, 0, chain), 0);
    /* suspended, a save job: save, then shutdown; never suspend again */
    assert_int_equal(vd_policy_escalation(&c, VD_MODE_SUSPEND, VD_MODE_SAVE, 0, 0, chain), 2);
    assert_int_equal(chain[0], VD_MODE_SAVE);
    assert_int_equal(chain[1], VD_MODE_SHUTDOWN);
    /* suspended, a suspend job given GPUs the paused desktop holds */
    assert_int_equal(vd_policy_escalation(&c, VD_MODE_SUSPEND, VD_MODE_SUSPEND, 0, 1, chain), 2);
    assert_int_equal(chain[0], VD_MODE_SAVE);
    /* shrunk, a shrink job given other GPUs: more shrink first */
    assert_int_equal(vd_policy_escalation(&c, VD_MODE_SHRINK, VD_MODE_SHRINK, 0, 1, chain), 4);
    assert_int_equal(chain[0], VD_MODE_SHRINK);
    /* an interrupted escalation goes on to a mode that stops the VM */
    assert_int_equal(vd_policy_escalation(&c, VD_MODE_SHRINK, VD_MODE_SHRINK, 1, 0, chain), 2);
    assert_int_equal(chain[0], VD_MODE_SAVE);
}

static void a_job_shortens_a_step_never_below_the_floor(void **state)
{
    (void)state;
    assert_int_equal(vd_policy_timeout_ms(120, 30, 0), 120000);
    assert_int_equal(vd_policy_timeout_ms(120, 30, 60), 60000);
    assert_int_equal(vd_policy_timeout_ms(120, 30, 5), 30000);
    assert_int_equal(vd_policy_timeout_ms(120, 30, 600), 120000);   /* never longer */
    assert_int_equal(vd_policy_timeout_ms(86400 * 30, 1, 0), INT_MAX);
}

static void the_jobs_gpus_by_gres_index(void **state)
{
    (void)state;
    assert_true(vd_policy_job_gpu(0, NULL));
    assert_true(vd_policy_job_gpu(3, ""));
    assert_true(vd_policy_job_gpu(-1, "0,2"));    /* unknown index: free it */
    assert_true(vd_policy_job_gpu(2, "0,2"));
    assert_false(vd_policy_job_gpu(1, "0,2"));
    assert_false(vd_policy_job_gpu(1, "10,11"));
    assert_false(vd_policy_job_gpu(1, "1x,x1"));   /* not a number */
    assert_true(vd_policy_job_gpu(11, "10,11"));
}

static void migration_deadline_by_ram(void **state)
{
    (void)state;
    assert_int_equal(vd_policy_migrate_s(60, 192 * 1024), 60);        /* a part of a GiB: one */
    assert_int_equal(vd_policy_migrate_s(60, 4ULL << 20), 240);
    assert_int_equal(vd_policy_migrate_s(60, (4ULL << 20) + 1), 300); /* rounded up */
    assert_int_equal(vd_policy_migrate_s(1, 1024), 10);               /* at least 10 s */
    assert_true(vd_policy_migrate_s(86400, ~0ULL) > 0);               /* no overflow */
}

/* What each mode asks of the driver: LXC's row (suspend, shutdown) keeps
 * those two and refuses the rest. */
static void each_mode_needs_of_the_driver(void **state)
{
    (void)state;
    vd_hv_caps lxc;
    vd_err err;
    vd_hv_caps_for_type("LXC", &lxc);
    assert_int_equal(vd_policy_mode_needs(VD_MODE_SUSPEND), VD_CAN_SUSPEND);
    assert_int_equal(vd_policy_mode_needs(VD_MODE_SAVE), VD_CAN_SAVE);
    assert_int_equal(vd_policy_mode_needs(VD_MODE_MIGRATE), VD_CAN_MIGRATE);
    assert_int_equal(vd_policy_mode_needs(VD_MODE_AUTO), 0);
    assert_int_equal(vd_hv_caps_need(&lxc, vd_policy_mode_needs(VD_MODE_SUSPEND), "suspend", &err), 0);
    assert_int_equal(vd_hv_caps_need(&lxc, vd_policy_mode_needs(VD_MODE_SHUTDOWN), "shutdown", &err), 0);
    assert_int_equal(vd_hv_caps_need(&lxc, vd_policy_mode_needs(VD_MODE_SHRINK), "shrink", &err), -1);
    assert_string_equal(err.msg, "shrink: not supported by libvirt's lxc driver (no pinning of a running "
                        "domain to host CPUs)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chain_is_the_asked_mode_then_the_policy),
        cmocka_unit_test(ranks_order_what_a_mode_frees),
        cmocka_unit_test(escalation_goes_at_least_as_far_as_both),
        cmocka_unit_test(a_job_shortens_a_step_never_below_the_floor),
        cmocka_unit_test(the_jobs_gpus_by_gres_index),
        cmocka_unit_test(migration_deadline_by_ram),
        cmocka_unit_test(each_mode_needs_of_the_driver),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
