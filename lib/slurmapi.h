/* SPDX-License-Identifier: MIT */
/*
 * slurmapi.h - what the node side tells Slurm, through libslurm.
 *
 * Both calls go to slurmctld and need SLURM_CONF (slurmd passes it to
 * Prolog/Epilog programs) and root, or SlurmUser.
 */
#ifndef VDESK_SLURMAPI_H
#define VDESK_SLURMAPI_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* A job's AdminComment holds one vdesk record per node, each its own
 * segment, next to whatever the site keeps there:
 *
 *     SITE TEXT | vdesk[n1] RECORD | vdesk[n2] RECORD
 *
 * Segments are separated by " | "; a vdesk segment starts "vdesk[NODE] ".
 * Any other segment is the site's and is written back as it was, in its
 * place. A record's first word is its operation ("evict: asked=..."): a
 * node's new record replaces its old one of the same operation (any old
 * one of the node's, when either is not evict, restore or recover) and
 * goes last, so the vdesk segments run from oldest to newest. slurmctld's
 * copy holds the evictions; slurmdbd's also the restores (slurmdb.h). slurmctld sets no limit on an
 * AdminComment (slurmdbd keeps it in a TEXT column, 64 KiB), so vdesk sets
 * its own, for the comment to stay readable in `scontrol show job`. */
#define VD_ADMIN_COMMENT_MAX 4096  /* characters in the whole comment */
#define VD_ADMIN_RECORD_MAX 1024   /* characters in one "vdesk[NODE] RECORD" */

/* Merges node's record into the AdminComment `old` (NULL: none), into
 * `out` (at most size - 1 and VD_ADMIN_COMMENT_MAX characters). In the
 * record, '|' becomes '/' and control characters spaces, so that it stays
 * one segment. A record is cut at VD_ADMIN_RECORD_MAX ("..." at the end);
 * when the whole is too long, the oldest vdesk records are shortened
 * first, then dropped, then this node's is shortened; the site's text
 * never is: if it leaves no room, the merge fails. */
int vd_admin_comment_merge(const char *old, const char *node, const char *record,
                           char *out, size_t size, vd_err *err);

/* Whether `comment` holds a record of node's that `record` would replace
 * (the same operation's). */
int vd_admin_comment_has(const char *comment, const char *node, const char *record);

/* Calls fn for each vdesk record of `comment` (NULL or "": none), oldest
 * first, with the node's name and the record (not NUL-terminated: `len`
 * bytes); the site's text is skipped. Stops at the first fn that does not
 * return 0 and returns what it returned. The comment is untrusted: a
 * segment that is not exactly "vdesk[NODE] ..." with a valid node name is
 * the site's. */
typedef int (*vd_admin_record_fn)(const char *node, const char *rec, size_t len, void *arg, vd_err *err);
int vd_admin_comment_each(const char *comment, vd_admin_record_fn fn, void *arg, vd_err *err);

/* Finds slurm.conf and initialises libslurm with it ($SLURM_CONF, the
 * packaged default, or slurmd's copy in configless mode): libslurm exits
 * the process when it finds none, so every call here checks first. */
int vd_slurm_init(vd_err *err);

/* Puts `text` as node's record into the job's AdminComment, which
 * `scontrol show job` shows (read, vd_admin_comment_merge, update).
 * slurmctld has no conditional update: two nodes' prologs that write at
 * once can lose one record; this reads the comment back and retries a few
 * times, which makes that unlikely but not impossible. */
int vd_slurm_job_comment(unsigned job, const char *node, const char *text, vd_err *err);

/* What slurmctld keeps of a job that its job completion program needs
 * (jobcomp/script gives it none of this). Strings are copies, NULL when
 * the job has none; vd_slurm_job_details_free frees them. */
typedef struct vd_slurm_job_details {
    unsigned restarts;
    unsigned array_job, array_task;  /* 0: not an array job */
    unsigned het_job, het_offset;    /* 0: not heterogeneous */
    char *gres_total;                /* "gpu:2": what the job was given */
    char *admin_comment;
} vd_slurm_job_details;

/* Asks slurmctld for job's details. A job it no longer has (MinJobAge
 * passed) or no slurm.conf is an error that says so. */
int vd_slurm_job_details_get(unsigned job, vd_slurm_job_details *d, vd_err *err);
void vd_slurm_job_details_free(vd_slurm_job_details *d);

/* slurm.conf's ClusterName as slurmctld has it (jobcomp/script's CLUSTER
 * is empty without slurmdbd). */
int vd_slurm_cluster_name(char *buf, size_t size, vd_err *err);

/* Slurm's name of a job's base state, as squeue prints it ("COMPLETED"). */
const char *vd_slurm_state_name(uint32_t state);

/* Whether Slurm's host list ("n[1-3],gpu7") names node; 0 for a list
 * libslurm cannot read. */
int vd_slurm_hostlist_has(const char *hostlist, const char *node);

/* Drains `node` with `reason` (which starts with "vdesk: " and says what
 * to run). Jobs already running on it go on. */
int vd_slurm_node_drain(const char *node, const char *reason, vd_err *err);

/* More GPUs than this on one node is a malformed string, not a node. */
#define VD_SLURM_GPUS_MAX 1024

/* A node's GPUs as Slurm offers them: how many (its Gres=gpu...), and
 * which gres indices jobs hold now. */
typedef struct vd_slurm_gpus {
    int configured;            /* at most VD_SLURM_GPUS_MAX */
    unsigned long long used;   /* bit i: gres index i is allocated */
    int bad;                   /* a string was malformed: a count that is not a
                                * number or over VD_SLURM_GPUS_MAX (in all), an
                                * index outside 0-63; the rest was read */
} vd_slurm_gpus;

/* Parses slurmctld's node strings, `gres` ("gpu:a100:4(S:0-1),mps:400")
 * and `gres_used` ("gpu:a100:2(IDX:0,2-3),mps:0"); NULL is none. What is
 * malformed sets `bad` and counts nothing (a sum over the limit is capped);
 * only indices 0-63 are set. */
void vd_slurm_gpus_parse(const char *gres, const char *gres_used, vd_slurm_gpus *g);

/* Asks slurmctld for `node`'s GPUs. Malformed strings (`bad`) fail it:
 * the GPUs are then unknown, and the message shows the strings. */
int vd_slurm_node_gpus(const char *node, vd_slurm_gpus *g, vd_err *err);

/* Slurm's PrologEpilogTimeout in seconds, asked of slurmctld; 0 when it
 * is not set (Slurm then never kills a prolog or epilog). */
int vd_slurm_prolog_timeout(int *seconds, vd_err *err);

/* Puts `state` ("desktop desk-n1 saved for job 12") into the node's
 * Comment as its "vdesk[NODE] STATE" segment, merged like the AdminComment
 * (vd_admin_comment_merge): what a site keeps there stays. `scontrol show
 * node` and `sinfo -N -O NodeList,Comment` show it. */
int vd_slurm_node_comment(const char *node, const char *state, vd_err *err);

/* Whether job `job` still holds `node`: it runs there, is suspended there,
 * or is completing there (its epilog is yet to run). Returns 1 if so; 0
 * if it does not (it finished, was requeued, or slurmctld answers "invalid
 * job id", as after MinJobAge); -1 when slurmctld cannot say (no answer,
 * an answer without the job's record, a node list that cannot be read):
 * then nothing is to be concluded. `state` gets Slurm's word for the job ("RUNNING",
 * "COMPLETED", "unknown to Slurm"), or "" on -1. */
int vd_slurm_job_holds(unsigned job, const char *node, char *state, size_t size, vd_err *err);

/* Whether a node in Slurm `state` (node_info_t's node_state) with
 * `features` ("a,b") may take a visiting desktop: idle, and none of
 * drain, completing, not responding, reserved, maintenance, failing,
 * planned for a job, reboot asked, powered (or powering) down or up; and
 * `feature` among its features. Pure: unit-tested. */
int vd_slurm_node_takes_visitor(unsigned state, const char *features, const char *feature);

/* The nodes that may take a visiting desktop now (the rule above), less
 * those of `exclude` (the job's node list, "n[1-4]"; NULL: none), as a
 * malloc'd list for vd_slurm_names_free, in slurmctld's order. */
int vd_slurm_idle_nodes(const char *feature, const char *exclude, char ***names, int *n, vd_err *err);
void vd_slurm_names_free(char **names, int n);

/* Whether `node` may take a visiting desktop now (the rule above): 1, 0,
 * or -1 when slurmctld does not say. */
int vd_slurm_node_visitable(const char *node, const char *feature);

#endif
