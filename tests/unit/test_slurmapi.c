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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <slurm/slurm.h>

#include "slurmapi.h"

typedef struct gres_case {
    const char *gres, *used;
    int configured;
    unsigned long long bits;
} gres_case;

/* Parses each case and compares the count, the index bits and whether the
 * input was flagged as malformed (`bad`). */
static void check_gres(const gres_case *cases, size_t n, int bad)
{
    for (size_t i = 0; i < n; i++) {
        vd_slurm_gpus g;
        alarm(5);   /* a loop over a 2^64 range would never end */
        vd_slurm_gpus_parse(cases[i].gres, cases[i].used, &g);
        alarm(0);
        if (g.bad != bad || g.configured != cases[i].configured || g.used != cases[i].bits)
            fail_msg("case %zu (%s / %s): got %d GPUs, used %#llx, bad %d", i, cases[i].gres,
                     cases[i].used, g.configured, g.used, g.bad);
    }
}

static void gres_strings_give_count_and_indices(void **state)
{
    (void)state;
    static const gres_case cases[] = {
        { "gpu:1", "gpu:1(IDX:0)", 1, 0x1 },
        { "gpu:a100:4(S:0-1),mps:400", "gpu:a100:2(IDX:0,2-3),mps:0(IDX:N/A)", 4, 0xd },
        { "gpu:a100:2,gpu:v100:2", "gpu:a100:0(IDX:N/A),gpu:v100:1(IDX:3)", 4, 0x8 },
        { "mps:100", "mps:0", 0, 0 },
        { "gpu:4", "gpu:0", 4, 0 },
        { NULL, NULL, 0, 0 },
        { "(null)", "gpu:(null):1(IDX:1)", 0, 0x2 },
    };
    check_gres(cases, sizeof(cases) / sizeof(cases[0]), 0);
}

/* Strings no Slurm writes, which a broken or hostile source could: each
 * is flagged, none shifts by a negative amount, loops past the 64 bits or
 * overflows the count. */
static void bad_gres_strings_are_flagged(void **state)
{
    (void)state;
    static const gres_case cases[] = {
        { NULL, "gpu:(IDX:-2)", 0, 0 },
        { NULL, "gpu:1(IDX:-2)", 0, 0 },
        { NULL, "gpu:1(IDX:-9223372036854775808-63)", 0, ~0ULL },
        { NULL, "gpu:1(IDX:0-9223372036854775807)", 0, ~0ULL },
        { NULL, "gpu:1(IDX:99999999999999999999999)", 0, 0 },
        { NULL, "gpu:1(IDX:64)", 0, 0 },
        { NULL, "gpu:2(IDX:1,64)", 0, 0x2 },
        { NULL, "gpu:1(IDX:60-70)", 0, 0xfULL << 60 },
        { NULL, "gpu:1(IDX:3-1)", 0, 0 },
        { NULL, "gpu:1(IDX:2x)", 0, 0 },
        { NULL, "gpu:1(IDX:2-)", 0, 0 },
        { NULL, "gpu:1(IDX:1-2-3)", 0, 0 },
        { "gpu:2147483647,gpu:1", NULL, 1, 0 },
        { "gpu:1025", NULL, 0, 0 },
        { "gpu:600,gpu:600", NULL, 1024, 0 },
        { "gpu:a100:600,gpu:v100:600", NULL, 1024, 0 },
        { "gpu:99999999999999999999", NULL, 0, 0 },
        { "gpu:-1", NULL, 0, 0 },
        { "gpu:4x", NULL, 0, 0 },
        { "gpu:a100", NULL, 0, 0 },
        { "gpu:", NULL, 0, 0 },
    };
    check_gres(cases, sizeof(cases) / sizeof(cases[0]), 1);
}

/* Slurm's gres strings can hold more than one GPU item and a 1024 limit
 * is a limit on the sum, not on each. */
static void gpu_counts_up_to_the_limit_are_fine(void **state)
{
    (void)state;
    vd_slurm_gpus g;
    vd_slurm_gpus_parse("gpu:a100:512,gpu:v100:512", "gpu:a100:0(IDX:N/A),gpu:v100:1(IDX:63)", &g);
    assert_int_equal(g.configured, 1024);
    assert_int_equal(g.bad, 0);
    assert_true(g.used == 1ULL << 63);
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

static void merge_ok(const char *old, const char *node, const char *record, const char *want)
{
    char out[VD_ADMIN_COMMENT_MAX + 1];
    vd_err err = { "" };
    if (vd_admin_comment_merge(old, node, record, out, sizeof(out), &err) < 0)
        fail_msg("merge of '%s' for %s: %s", old ? old : "(null)", node, err.msg);
    if (strcmp(out, want) != 0)
        fail_msg("merge of '%s' for %s:\n  got  '%s'\n  want '%s'", old ? old : "(null)", node,
                 out, want);
}

/* slurmdbd's copy of a finished job: the epilog's restore joins the
 * eviction slurmctld sent, and each replaces only its own operation. */
static void admin_comment_keeps_each_operation(void **state)
{
    (void)state;
    const char *ev = "vdesk[n1] evict: asked=save used=save total=5ms";
    char want[256];
    snprintf(want, sizeof(want), "%s | vdesk[n1] restore: asked=- used=save total=9ms", ev);
    merge_ok(ev, "n1", "restore: asked=- used=save total=9ms", want);
    /* the restore sent again (a retry) replaces itself, not the eviction */
    merge_ok(want, "n1", "restore: asked=- used=save total=9ms", want);
    /* a new eviction (a requeued run) replaces the old one only */
    merge_ok(want, "n1", "evict: asked=save used=save total=7ms",
             "vdesk[n1] restore: asked=- used=save total=9ms | vdesk[n1] evict: asked=save used=save total=7ms");
    assert_true(vd_admin_comment_has(want, "n1", "restore: x"));
    assert_true(vd_admin_comment_has(want, "n1", "evict: x"));
    assert_false(vd_admin_comment_has(ev, "n1", "restore: x"));
    assert_false(vd_admin_comment_has(want, "n2", "restore: x"));
    assert_false(vd_admin_comment_has(NULL, "n1", "restore: x"));
}

/* One vdesk record per node in the job's AdminComment; what the site put
 * there stays as it was. */
static void admin_comment_keeps_nodes_and_site_text(void **state)
{
    (void)state;
    merge_ok(NULL, "n1", "evict save", "vdesk[n1] evict save");
    merge_ok("", "n1", "evict save", "vdesk[n1] evict save");
    /* the site's text, untouched, before ours */
    merge_ok("billing=physics", "n1", "evict save", "billing=physics | vdesk[n1] evict save");
    merge_ok(" spaced | odd |", "n1", "x", " spaced | odd | | vdesk[n1] x");
    /* two nodes kept */
    merge_ok("vdesk[n1] evict save", "n2", "evict shrink",
             "vdesk[n1] evict save | vdesk[n2] evict shrink");
    /* the same node replaced, its record moves last (newest) */
    merge_ok("site | vdesk[n1] old | vdesk[n2] b", "n1", "new", "site | vdesk[n2] b | vdesk[n1] new");
    merge_ok("vdesk[n1] a | site | vdesk[n1] stale twin", "n1", "c", "site | vdesk[n1] c");
    /* not ours: a prefix of another node's name, or not vdesk's form */
    merge_ok("vdesk[n10] a | vdesk[n1]x | vdesk-n1 b", "n1", "c",
             "vdesk[n10] a | vdesk[n1]x | vdesk-n1 b | vdesk[n1] c");
    /* a separator inside a record would split it on the next read */
    merge_ok(NULL, "n1", "outcome=\"a | b\"\nnext", "vdesk[n1] outcome=\"a / b\" next");
    /* site text ending in " |" (found by fuzzing): the node's record stays
     * its own, and merging it again replaces it */
    merge_ok("site |", "n1", "evict ok", "site | | vdesk[n1] evict ok");
    merge_ok("site | | vdesk[n1] evict ok", "n1", "evict ok", "site | | vdesk[n1] evict ok");
}

static void admin_comment_refuses_bad_input(void **state)
{
    (void)state;
    char out[VD_ADMIN_COMMENT_MAX + 1];
    vd_err err = { "" };
    static const char *nodes[] = { "", "n]1", "n 1", "n|1" };
    for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
        assert_int_equal(vd_admin_comment_merge(NULL, nodes[i], "x", out, sizeof(out), &err), -1);
        assert_non_null(strstr(err.msg, "node name"));
    }
    assert_int_equal(vd_admin_comment_merge(NULL, "n1", "x", out, 8, &err), -1);
    assert_non_null(strstr(err.msg, "n1"));
    /* The site's text alone leaves no room: refused, not cut. */
    char *site = malloc(VD_ADMIN_COMMENT_MAX);
    assert_non_null(site);
    memset(site, 's', VD_ADMIN_COMMENT_MAX - 10);
    site[VD_ADMIN_COMMENT_MAX - 10] = '\0';
    assert_int_equal(vd_admin_comment_merge(site, "n1", "evict", out, sizeof(out), &err), -1);
    assert_non_null(strstr(err.msg, "site"));
    assert_non_null(strstr(err.msg, "n1"));
    free(site);
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* Too long: the oldest vdesk records are shortened first, then dropped;
 * the site's text and the newest record stay whole. */
static void admin_comment_overflow_shortens_oldest_first(void **state)
{
    (void)state;
    char out[VD_ADMIN_COMMENT_MAX + 1], old[VD_ADMIN_COMMENT_MAX + 1];
    vd_err err = { "" };
    char *site = repeat('s', 2000), *a = repeat('a', 1000), *b = repeat('b', 1000);
    char *c = repeat('c', 900), *big = repeat('x', 3000);

    /* one record alone is capped */
    assert_int_equal(vd_admin_comment_merge(NULL, "n1", big, out, sizeof(out), &err), 0);
    assert_int_equal(strlen(out), VD_ADMIN_RECORD_MAX);
    assert_string_equal(out + strlen(out) - 3, "...");
    /* cut between characters, not inside a two-byte one */
    char utf8[1201];
    for (int i = 0; i < 600; i++)
        memcpy(utf8 + 2 * i, "\xc3\xa9", 2);
    utf8[1200] = '\0';
    assert_int_equal(vd_admin_comment_merge(NULL, "n1", utf8, out, sizeof(out), &err), 0);
    assert_int_equal(strlen(out), VD_ADMIN_RECORD_MAX - 1);
    assert_string_equal(out + strlen(out) - 5, "\xc3\xa9...");

    /* 2000 + 1010 + 1010 + 910 and three separators: 843 too many. The
     * oldest, n1's, loses them; n2's, the newest and the site's stay. */
    snprintf(old, sizeof(old), "%s | vdesk[n1] %s | vdesk[n2] %s", site, a, b);
    assert_int_equal(vd_admin_comment_merge(old, "n3", c, out, sizeof(out), &err), 0);
    char *want = malloc(VD_ADMIN_COMMENT_MAX + 1);
    assert_non_null(want);
    snprintf(want, VD_ADMIN_COMMENT_MAX + 1, "%s | vdesk[n1] %.154s... | vdesk[n2] %s | vdesk[n3] %s",
             site, a, b, c);
    assert_int_equal(strlen(want), VD_ADMIN_COMMENT_MAX);
    assert_string_equal(out, want);
    free(want);
    free(site);
    free(a);
    free(b);
    free(c);
    free(big);
}

/* A job on 300 nodes: each node's prolog merges its record in turn. The
 * older records are shortened to "vdesk[NODE] ...", the oldest dropped;
 * the site's text and the newest record stay whole. */
static void admin_comment_of_a_big_job_stays_bounded(void **state)
{
    (void)state;
    char *cur = strdup("keep me"), out[VD_ADMIN_COMMENT_MAX + 1], node[16], rec[64];
    vd_err err = { "" };
    assert_non_null(cur);
    for (int i = 1; i <= 300; i++) {
        snprintf(node, sizeof(node), "n%d", i);
        snprintf(rec, sizeof(rec), "evict save total=%dms outcome=\"desktop desk-n%d save\"", i, i);
        if (vd_admin_comment_merge(cur, node, rec, out, sizeof(out), &err) < 0)
            fail_msg("node %s: %s", node, err.msg);
        assert_true(strlen(out) <= VD_ADMIN_COMMENT_MAX);
        free(cur);
        assert_non_null(cur = strdup(out));
    }
    assert_memory_equal(out, "keep me | ", 10);
    assert_null(strstr(out, "vdesk[n1] "));
    assert_non_null(strstr(out, " | vdesk[n299] ... | "));
    int records = 0;
    for (const char *p = out; (p = strstr(p, "vdesk[")); p++)
        records++;
    assert_true(records > 200);
    const char *last = " | vdesk[n300] evict save total=300ms outcome=\"desktop desk-n300 save\"";
    assert_string_equal(out + strlen(out) - strlen(last), last);
    free(cur);
}

/* Which nodes may take a visiting desktop: idle with the feature, and no
 * flag that says Slurm has other plans for it. */
static void idle_nodes_with_the_feature_take_visitors(void **state)
{
    (void)state;
    assert_true(vd_slurm_node_takes_visitor(NODE_STATE_IDLE, "vdesk", "vdesk"));
    assert_true(vd_slurm_node_takes_visitor(NODE_STATE_IDLE, "gpu,vdesk,ib", "vdesk"));
    assert_false(vd_slurm_node_takes_visitor(NODE_STATE_IDLE, "gpu,vdesk2", "vdesk"));
    assert_false(vd_slurm_node_takes_visitor(NODE_STATE_IDLE, "xvdesk", "vdesk"));
    assert_false(vd_slurm_node_takes_visitor(NODE_STATE_IDLE, "", "vdesk"));
    assert_false(vd_slurm_node_takes_visitor(NODE_STATE_IDLE, NULL, "vdesk"));
    assert_false(vd_slurm_node_takes_visitor(NODE_STATE_ALLOCATED, "vdesk", "vdesk"));
    assert_false(vd_slurm_node_takes_visitor(NODE_STATE_MIXED, "vdesk", "vdesk"));
    assert_false(vd_slurm_node_takes_visitor(NODE_STATE_DOWN, "vdesk", "vdesk"));
    const unsigned flags[] = { NODE_STATE_DRAIN, NODE_STATE_COMPLETING, NODE_STATE_NO_RESPOND,
                               NODE_STATE_RES, NODE_STATE_MAINT, NODE_STATE_FAIL,
                               NODE_STATE_PLANNED, NODE_STATE_REBOOT_REQUESTED,
                               NODE_STATE_POWERED_DOWN, NODE_STATE_POWERING_UP };
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        if (vd_slurm_node_takes_visitor(NODE_STATE_IDLE | flags[i], "vdesk", "vdesk"))
            fail_msg("an idle node with state flag %#x takes a visitor", flags[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(idle_nodes_with_the_feature_take_visitors),
        cmocka_unit_test(gres_strings_give_count_and_indices),
        cmocka_unit_test(no_slurmctld_is_a_clear_error),
        cmocka_unit_test(bad_gres_strings_are_flagged),
        cmocka_unit_test(gpu_counts_up_to_the_limit_are_fine),
        cmocka_unit_test(admin_comment_keeps_nodes_and_site_text),
        cmocka_unit_test(admin_comment_keeps_each_operation),
        cmocka_unit_test(admin_comment_refuses_bad_input),
        cmocka_unit_test(admin_comment_overflow_shortens_oldest_first),
        cmocka_unit_test(admin_comment_of_a_big_job_stays_bounded),
    };
    return cmocka_run_group_tests_name("slurmapi", tests, NULL, NULL);
}
