/* SPDX-License-Identifier: MIT */
/*
 * fuzz_gres - what lib/slurmapi reads from slurmctld: a node's gres
 * strings and a job's AdminComment. Every input goes to both:
 *
 *   vd_slurm_gpus_parse: the input split at its first NUL or newline into
 *       gres and gres_used ("gpu:a100:4(S:0-1)\ngpu:a100:2(IDX:0,2-3)");
 *       no separator: gres only.
 *   vd_admin_comment_merge: the input split at NULs into the old comment,
 *       the node (default n1) and the record (default "evict ok"), merged
 *       into a buffer of the full size and one whose size comes from the
 *       input's length (the tight cases).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "slurmapi.h"

/* gres and gres_used are read independently: the whole is the union. */
static void check_gpus(const char *gres, const char *used)
{
    vd_slurm_gpus all, g1, g2;
    vd_slurm_gpus_parse(gres, used, &all);
    vd_slurm_gpus_parse(gres, NULL, &g1);
    vd_slurm_gpus_parse(NULL, used, &g2);
    if (all.configured < 0 || all.configured > VD_SLURM_GPUS_MAX)
        fuzz_fail("'%s': %d GPUs configured", gres ? gres : "(null)", all.configured);
    if (all.configured != g1.configured || all.used != (g1.used | g2.used) ||
        all.bad != (g1.bad || g2.bad) || g2.configured || g1.used)
        fuzz_fail("gres '%s' and gres_used '%s' read together differ from apart",
                  gres ? gres : "(null)", used ? used : "(null)");
}

static void gres_case(const uint8_t *data, size_t size)
{
    size_t cut = 0;
    while (cut < size && data[cut] != '\0' && data[cut] != '\n')
        cut++;
    char *gres = fuzz_str(data, cut);
    char *used = cut < size ? fuzz_str(data + cut + 1, size - cut - 1) : NULL;
    check_gpus(gres, used);
    free(gres);
    free(used);
}

/* On success: within both limits, and this node's record is in it. */
static void merge_into(const char *old, const char *node, const char *rec, size_t size)
{
    char *out = malloc(size), *again = malloc(size);   /* exactly size: ASan guards the end */
    char head[300];
    vd_err err = { "" };
    if (!out || !again)
        fuzz_fail("out of memory");
    if (vd_admin_comment_merge(old, node, rec, out, size, &err) == 0) {
        snprintf(head, sizeof(head), "vdesk[%s] ", node);
        size_t len = strlen(out);
        if (len >= size || len > VD_ADMIN_COMMENT_MAX || !strstr(out, head))
            fuzz_fail("merge of node '%s' into %zu bytes gave %zu characters: '%s'", node, size,
                      len, out);
        /* A prolog run twice for the same record (a retry) changes nothing. */
        if (vd_admin_comment_merge(out, node, rec, again, size, &err) < 0 || strcmp(out, again))
            fuzz_fail("merging node '%s' again is not stable: '%s' then '%s' (%s)", node, out,
                      again, err.msg);
    } else if (!err.msg[0]) {
        fuzz_fail("merge failed without a message");
    }
    free(out);
    free(again);
}

static void comment_case(const uint8_t *data, size_t size)
{
    char *parts[3];
    size_t n = fuzz_split(data, size, "\0", 1, parts, NULL, 3);
    const char *node = n > 1 ? parts[1] : "n1";
    const char *rec = n > 2 ? parts[2] : "evict ok";
    merge_into(parts[0], node, rec, VD_ADMIN_COMMENT_MAX + 1);
    merge_into(parts[0], node, rec, 1 + size % 600);
    fuzz_free_parts(parts, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gres_case(data, size);
    comment_case(data, size);
    return 0;
}
