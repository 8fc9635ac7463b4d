/* SPDX-License-Identifier: MIT */
/*
 * fuzz_journal - STATE_DIR/journal.json as the engine reads it after a
 * crash (lib/journal.h). The input is the file's contents, in a state
 * directory of this process's own (fuzz_dir).
 *
 * A journal that loads must also survive the engine's next step: saving
 * what was read must succeed, and loading that must give the same journal,
 * or a restart after a crash would act on something else.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "journal.h"

static int same_devs(const vd_journal *a, const vd_journal *b)
{
    if (a->ndevs != b->ndevs)
        return 0;
    for (int i = 0; i < a->ndevs; i++)
        if (strcmp(a->devs[i].alias, b->devs[i].alias) ||
            strcmp(a->devs[i].xml ? a->devs[i].xml : "", b->devs[i].xml ? b->devs[i].xml : ""))
            return 0;
    return 1;
}

static int same(const vd_journal *a, const vd_journal *b)
{
    return a->phase == b->phase && !strcmp(a->asked, b->asked) && !strcmp(a->used, b->used) &&
           !strcmp(a->step, b->step) && !strcmp(a->save_file, b->save_file) &&
           a->save_used == b->save_used && !strcmp(a->snapshot, b->snapshot) &&
           a->pinned == b->pinned && a->since_ms == b->since_ms && a->njobs == b->njobs &&
           !memcmp(a->jobs, b->jobs, sizeof(a->jobs[0]) * (size_t)a->njobs) && same_devs(a, b);
}

/* What the engine may index with the counts it read. */
static void check_bounds(const vd_journal *j)
{
    if (j->njobs < 0 || j->njobs > VD_MAX_JOBS || j->ndevs < 0 || j->ndevs > VD_MAX_DEVICES)
        fuzz_fail("loaded %d jobs, %d devices", j->njobs, j->ndevs);
    if (j->phase > VD_RESTORING)
        fuzz_fail("loaded phase %d", (int)j->phase);
}

static void round_trip(const char *dir, vd_journal *first)
{
    vd_journal again;
    vd_err err = { "" };
    if (vd_journal_save(dir, first, &err) < 0)
        fuzz_fail("a journal that loaded does not save: %s", err.msg);
    if (vd_journal_load(dir, &again, &err) < 0)
        fuzz_fail("a journal vdesk saved does not load: %s", err.msg);
    if (!same(first, &again))
        fuzz_fail("the journal saved and loaded back differs from the one loaded");
    vd_journal_clear(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *dir = fuzz_dir();
    char path[PATH_MAX];
    vd_journal j;
    vd_err err = { "" };
    snprintf(path, sizeof(path), "%s/journal.json", dir);
    fuzz_write(path, data, size);
    if (vd_journal_load(dir, &j, &err) < 0) {
        if (!err.msg[0] || j.njobs || j.ndevs)
            fuzz_fail("a failed load left a message '%s', %d jobs, %d devices", err.msg, j.njobs,
                      j.ndevs);
        return 0;
    }
    check_bounds(&j);
    round_trip(dir, &j);
    vd_journal_clear(&j);
    return 0;
}
