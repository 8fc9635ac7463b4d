/* SPDX-License-Identifier: MIT */
/*
 * acct.h - vdesk's own accounting store: each finished job (each run of a
 * requeued one) with the records vdesk's nodes wrote for it, in an SQLite
 * database, for sites without slurmdbd (docs/design.md, "Accounting").
 *
 * The writer is jobcomp/vdesk-jobcomp, which slurmctld runs once per job
 * end (JobCompType=jobcomp/script). Several can run at once, and one can
 * be killed at any moment, so:
 *   - the database is in WAL mode and every job is one transaction
 *     (BEGIN IMMEDIATE ... COMMIT): a crash leaves the job stored or not;
 *   - storing is idempotent: a run is keyed by (cluster, job, start), and
 *     storing it again replaces it;
 *   - a job that cannot be stored (the database locked past the busy
 *     timeout, corrupt, unwritable, from a newer vdesk) is written to the
 *     spool, DB.spool/, one JSON file per run, written atomically; every
 *     later store empties the spool first. A record is never dropped.
 *
 * Schema (PRAGMA user_version = VD_ACCT_SCHEMA; docs/design.md has it
 * whole): jobs (one row per run), records (one per node and operation:
 * evict, restore, recover), phases (one per phase of a record).
 *
 * The restores reach the store through the same spool: the epilog drops
 * its record there (vd_acct_drop), and the next drain stores it with the
 * job's run (numbered from VD_ACCT_DROP_SEQ; storing the run again keeps
 * them).
 */
#ifndef VDESK_ACCT_H
#define VDESK_ACCT_H

#include <json-c/json.h>
#include <sqlite3.h>

#include "err.h"

#define VD_ACCT_SCHEMA 2       /* the database's; 1 had no records.drained */
#define VD_ACCT_JSON_SCHEMA 1  /* the spool's files ("drained" may be absent) */
#define VD_ACCT_MAX_RECS 64      /* records of one job (nodes x operations) */
#define VD_ACCT_MAX_PHASES 24
#define VD_ACCT_NONE 0xffffffffu /* no array task, no het component */
#define VD_ACCT_DROP_SEQ 1000    /* records the nodes sent (vd_acct_drop) are numbered from here */

typedef struct vd_acct_phase {
    char name[48];
    long ms;
    int ok;
} vd_acct_phase;

/* One node's record of one operation, as the node wrote it (record.h's
 * one-line form, "vdesk evict: asked=save used=save ... outcome=\"...\""). */
typedef struct vd_acct_rec {
    char node[64];
    char op[16];          /* evict, restore, recover; "?" when unreadable */
    char asked[16], used[16];
    char devices[256];
    long total_ms;        /* -1: not known */
    vd_acct_phase phases[VD_ACCT_MAX_PHASES];
    int nphases;
    int failed_phases;    /* phases marked '!' (a fallback, or a failure) */
    char migrated[256];   /* "n1>n2:1234ms,downtime=..." or "" */
    int drained;          /* the operation drained the node */
    char outcome[1024];   /* unreadable records keep their text here */
    int cut;              /* the AdminComment had it shortened ("..."):
                           * what is missing is unknown, not failed */
} vd_acct_rec;

/* One run of a job, as jobcomp/script and slurmctld describe it. */
typedef struct vd_acct_job {
    char cluster[64];
    unsigned job;
    long long submit, start, end;  /* epoch seconds; 0: not known */
    unsigned array_job, array_task;/* 0 and VD_ACCT_NONE: not an array job */
    unsigned het_job, het_offset;  /* 0 and VD_ACCT_NONE: not heterogeneous */
    unsigned uid, nnodes, restarts;
    char name[256], user[64], account[64], partition[64], qos[64];
    char nodes[1024], state[32], exit_code[16];
    long gpus;                     /* GPUs of the whole job; -1: not known */
    char note[1088];               /* what could not be learnt, "" */
    vd_acct_rec recs[VD_ACCT_MAX_RECS];
    int nrecs;
} vd_acct_job;

/* Parses one record's text (len bytes, not NUL-terminated) written by
 * `node` into r. Untrusted: whatever cannot be read is kept as the
 * outcome, with op "?", so that nothing is lost. Never fails. */
void vd_acct_rec_parse(const char *node, const char *text, size_t len, vd_acct_rec *r);

/* Adds every vdesk record of an AdminComment (slurmapi.h's format) to j.
 * More than VD_ACCT_MAX_RECS: the rest is dropped and j->note says so. */
int vd_acct_comment_parse(const char *comment, vd_acct_job *j, vd_err *err);

/* Fills j from jobcomp/script's environment (JOBID, JOBSTATE, START,
 * END, ...; slurm.md lists them). JOBID must be a job id; the others are
 * taken as given when well-formed and left unknown when not. A requeued
 * run (JOBSTATE=PENDING) is stored as state REQUEUED. */
int vd_acct_job_from_env(vd_acct_job *j, vd_err *err);

/* GPUs in a job's gres total ("gpu:2", "gpu:a100:4,gpu:v100:2,mps:100");
 * -1: malformed. */
long vd_acct_gpus(const char *gres);

/* j as JSON (the spool's files, and vdeskctl report --json), and back;
 * from_json reads untrusted input and refuses what is not a job. */
json_object *vd_acct_job_json(const vd_acct_job *j);
int vd_acct_job_from_json(json_object *o, vd_acct_job *j, vd_err *err);

/* Opens (creating) the database at path: WAL, busy timeout `busy_ms`,
 * the schema made or checked (":memory:": one in memory, without WAL). A
 * database written by a newer vdesk, or not a database, is an error
 * naming the file and the fix. */
int vd_acct_open(const char *path, int busy_ms, sqlite3 **db, vd_err *err);

/* Stores one run, replacing what was stored for it. */
int vd_acct_store(sqlite3 *db, const vd_acct_job *j, vd_err *err);

/* The spool of the database at db_path: DB_PATH.spool. */
int vd_acct_spool_dir(const char *db_path, char *buf, size_t size, vd_err *err);

/* Writes j into the spool (made 0700 if missing). */
int vd_acct_spool_put(const char *dir, const vd_acct_job *j, vd_err *err);

/* Stores every run in the spool and removes its file. A file that is not
 * a run is renamed NAME.bad and counted in *bad, not retried; one that
 * cannot be read now is left for a later run. Both are named in `note`.
 * *stored counts the runs stored. Stops at the first run that cannot be
 * stored. The spool must be a directory of this user, not writable by
 * others; a missing one is empty. */
int vd_acct_spool_drain(sqlite3 *db, const char *dir, int *stored, int *bad, char *note,
                        size_t note_size, vd_err *err);

/* The whole of a jobcomp run: the spool emptied into the database, then
 * j stored; when the database cannot take it, j goes to the spool.
 * Returns 0 (stored), 1 (spooled: err says why it was not stored) or -1
 * (neither: err says why; the caller logs the run itself). `note` says
 * what the spool held ("" when nothing). */
int vd_acct_keep(const char *db_path, int busy_ms, const vd_acct_job *j, char *note, size_t note_size,
                 vd_err *err);

/* A node's record of an operation after its job ended (the epilog's
 * restore: slurmctld takes no more AdminComment then) into the spool of
 * the database at db_path, for the next vdesk-jobcomp run to store with
 * the job's run (the latest that started before it and had the node).
 * The spool must be reachable from the node (shared storage, as the
 * desktop disks are for migration): 1 when there is no spool directory
 * here (nothing sent), 0 sent, -1 error (a spool that is not a directory,
 * or writable by everyone, is refused). Run as root, the file is given to
 * the spool's owner. */
int vd_acct_drop(const char *db_path, const char *cluster, unsigned job, const char *node, const char *record,
                 vd_err *err);

/* Drops the records of nodes that are not in j->nodes (Slurm's host list;
 * `has` answers membership): the AdminComment outlives a requeue, and a
 * run must not count the evictions of the run before it on other nodes.
 * Returns how many went, and says so in j->note when it has none. */
int vd_acct_recs_keep_nodes(vd_acct_job *j, int (*has)(const char *list, const char *node));

#endif
