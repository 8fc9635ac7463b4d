/* SPDX-License-Identifier: MIT */
/*
 * journal.h - the desktop's state on disk, crash-safe.
 *
 * One JSON file, STATE_DIR/journal.json, rewritten whole for every change:
 * written to a temporary file, fsync'd, renamed over the old one, and the
 * directory fsync'd. A reader sees the old or the new state, never a mix.
 * The engine writes the step it is about to take before taking it, so after
 * a crash the journal says what may be half done (docs/design.md).
 *
 * The directory itself (its checks, the lock, the records) is statedir.h's.
 */
#ifndef VDESK_JOURNAL_H
#define VDESK_JOURNAL_H

#include <limits.h>

#include "conf.h"
#include "err.h"
#include "statedir.h"

#define VD_MAX_JOBS 64

typedef enum vd_phase {
    VD_PRESENT = 0, /* the desktop is on the node, as the student left it */
    VD_EVICTING,    /* eviction under way (step says how far) */
    VD_EVICTED,     /* the desktop is away; jobs[] hold the node */
    VD_RESTORING,   /* restore under way */
} vd_phase;

typedef struct vd_saved_dev {
    char alias[64];
    char *xml; /* the device's live XML before unplug, to plug it back */
} vd_saved_dev;

typedef struct vd_journal {
    vd_phase phase;
    char asked[16];            /* mode the evicting job asked for */
    char used[16];             /* mode applied; "none" if the VM was not running */
    char step[96];             /* last step announced */
    char save_file[PATH_MAX];  /* vdesk's save file, while the VM is saved */
    int save_used;             /* the VM was restored from save_file ("save_used";
                                * journals without the key read as 0) */
    char snapshot[PATH_MAX];   /* disk layer frozen at eviction, "" if none */
    int pinned;                /* vCPUs pinned to the desktop cores (shrink) */
    char where[64];            /* migrate: the node the desktop was sent to ("" none;
                                * journals without the key read as ""). A hint:
                                * the desktop is looked for, not taken to be there */
    unsigned jobs[VD_MAX_JOBS];
    int njobs;
    vd_saved_dev devs[VD_MAX_DEVICES];
    int ndevs;
    long long since_ms;        /* wall clock when the phase began */
} vd_journal;

const char *vd_phase_name(vd_phase phase);

/* Reads the journal; a missing file is a node whose desktop is present.
 * Every value is checked: a journal that is not one vdesk wrote (empty,
 * cut short, not JSON, a value of the wrong type or range, more jobs or
 * devices than the struct holds, a symbolic link) fails the load with a
 * message that names the file and what is wrong; *j is then empty. */
int vd_journal_load(const char *state_dir, vd_journal *j, vd_err *err);

/* Renames STATE_DIR/journal.json to journal.json.bad-EPOCH_MS (-N added
 * if that exists) and fsyncs STATE_DIR; the new path goes into `kept`.
 * The file is kept, never deleted, for whoever looks into why.
 * The engine calls this, holding the lock, when vd_journal_load fails;
 * the node then reads as present, and the engine rebuilds the state from
 * what is true on the node (converge() looks at the VM, not the journal). */
int vd_journal_set_aside(const char *state_dir, char *kept, size_t kept_size, vd_err *err);

/* Replaces the journal atomically and durably (see above), after
 * vd_state_dir_check. */
int vd_journal_save(const char *state_dir, const vd_journal *j, vd_err *err);

/* Frees the device XML the journal holds; the struct may then be reused. */
void vd_journal_clear(vd_journal *j);

/* Job list helpers. */
int vd_journal_has_job(const vd_journal *j, unsigned job);
int vd_journal_add_job(vd_journal *j, unsigned job, vd_err *err);
void vd_journal_drop_job(vd_journal *j, unsigned job);


#endif
