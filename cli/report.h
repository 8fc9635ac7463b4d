/* SPDX-License-Identifier: MIT */
/* report.h - `vdeskctl report`: what vdesk did and what jobs cost, from
 * the accounting database (acct.h) that vdesk-jobcomp fills. */
#ifndef VDESK_CLI_REPORT_H
#define VDESK_CLI_REPORT_H

#include <json-c/json.h>
#include <sqlite3.h>

#include "conf.h"

typedef enum report_format { REPORT_TABLE, REPORT_JSON, REPORT_CSV } report_format;

typedef struct report_opts {
    const char *view;      /* "users" (default), "nodes", "jobs" */
    const char *since, *until;  /* dates (YYYY-MM-DD[THH:MM[:SS]]), NULL: open */
    const char *user, *account, *node;   /* NULL: all */
    report_format format;
    const char *svg;       /* --svg FILE: the picture instead of a view */
    int slurmdbd;          /* --slurmdbd: the runs from Slurm's accounting */
} report_opts;

/* Prints the view of the database that c->accounting_db names, or with
 * o->slurmdbd of the period's runs as slurmdbd has them (read into a
 * database in memory, so that the same views count them): 0, or 1 (the
 * message names the database or slurmdbd, and the fix), 2 for bad
 * options. */
int cmd_report(const vd_conf *c, const report_opts *o);

/* "YYYY-MM-DD[THH:MM[:SS]]", local time, into epoch seconds; -1 with a
 * message ("vdeskctl CMD: OPT ...") when it is not such a date. */
int report_date_parse(const char *cmd, const char *opt, const char *s, long long *out);

/* For inventory --glue2: over [since, until), the share of the time
 * node's desktop was not evicted (the nodes view's home_pct, as a
 * fraction) and the GPU-seconds on node inside the period (each run's
 * GPUs times the part of it in the period, shared evenly among its nodes). Returns 0, 1 when there
 * is no database (nothing is known), -1 when it cannot be read (the
 * message names it). */
int report_node_use(const vd_conf *c, const char *node, long long since, long long until,
                    double *not_evicted, double *job_gpu_s);

/* For the picture (picture.c): the rows of one view ("users", "nodes",
 * and the picture's own "evictions" and "span") under o's filters, as
 * JSON objects; NULL when the query failed (the message names path). */
json_object *report_view(sqlite3 *db, const char *view, const long long *since, const long long *until,
                         const report_opts *o, const char *path);

/* Writes o->svg: where each node's desktop was over the period (at home,
 * away by mode, failed evictions) and GPU-hours per user. Returns 0, or 1
 * with a message naming the file. */
int report_picture(sqlite3 *db, const long long *since, const long long *until, const report_opts *o,
                   const char *path);

#endif
