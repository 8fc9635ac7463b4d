/* SPDX-License-Identifier: MIT */
/* report.h - `vdeskctl report`: what vdesk did and what jobs cost, from
 * the accounting database (acct.h) that vdesk-jobcomp fills. */
#ifndef VDESK_CLI_REPORT_H
#define VDESK_CLI_REPORT_H

#include "conf.h"

typedef enum report_format { REPORT_TABLE, REPORT_JSON, REPORT_CSV } report_format;

typedef struct report_opts {
    const char *view;      /* "users" (default), "nodes", "jobs" */
    const char *since, *until;  /* dates (YYYY-MM-DD[THH:MM[:SS]]), NULL: open */
    const char *user, *account, *node;   /* NULL: all */
    report_format format;
} report_opts;

/* Prints the view of the database that c->accounting_db names: 0, or 1
 * (the message names the database and the fix), 2 for bad options. */
int cmd_report(const vd_conf *c, const report_opts *o);

#endif
