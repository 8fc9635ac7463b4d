/* SPDX-License-Identifier: MIT */
/*
 * record.h - what one operation did to a desktop, for people and programs:
 * one line ("vdesk evict: asked=save used=save ... outcome=...") for
 * syslog and the job's AdminComment, and one JSON object per line in
 * STATE_DIR/records.jsonl, with a schema version (docs/design.md, "The
 * record"). The engine fills a vd_report; vd_record_keep writes it.
 */
#ifndef VDESK_RECORD_H
#define VDESK_RECORD_H

#include <stddef.h>

#include "err.h"

/* The JSON's "schema": 1 was 0.5's records (which had no key), 2 adds
 * "schema" and "migration". */
#define VD_RECORD_SCHEMA 2

#define VD_MAX_PHASES 24

typedef struct vd_phase_time {
    char name[48];
    long ms;
    int ok;
} vd_phase_time;

/* What an operation did: the job's record. */
typedef struct vd_report {
    unsigned job;
    char op[16];          /* evict, restore, recover */
    char asked[16];
    char used[16];        /* mode applied, "none", or "" */
    char outcome[1024];   /* one line: what happened */
    char devices[256];    /* aliases moved, comma-separated */
    char drain[512];      /* non-empty: drain the node with this reason */
    char lost[512];       /* non-empty: what of the desktop did not survive (a
                             session, a device); vdeskctl exits 1 */
    vd_phase_time phases[VD_MAX_PHASES];
    int nphases;
    long total_ms;
    /* a migration this operation made (away or home); to[0] == 0: none */
    struct vd_report_migration {
        char from[64], to[64];
        long long ms, downtime_ms, data_bytes, iterations;   /* -1: not known */
    } migration;
} vd_report;

/* Puts `note` ("" for none) before the report's outcome: what the caller
 * did or refused before the operation. */
void vd_report_prefix(vd_report *rep, const char *note);

/* One line, "key=value ..." , for AdminComment and syslog. */
void vd_report_format(const vd_report *rep, char *buf, size_t size);

/* The same as one JSON object, for records.jsonl. Caller frees. */
char *vd_report_json(const vd_report *rep);

/* Formats the report into `line` (vd_report_format) and appends its JSON
 * to STATE_DIR/records.jsonl: the one way prologs, epilogs and vdeskctl
 * keep a record. The line is filled even when the append fails. */
int vd_record_keep(const char *state_dir, const vd_report *rep, char *line, size_t size, vd_err *err);

#endif
