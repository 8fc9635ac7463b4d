/* SPDX-License-Identifier: MIT */
/* snapshots.h - `vdeskctl snapshots` (see snapshots.c); the commands that change
 * snapshots are the engine's (engine.h, vd_snapshot_*). */
#ifndef VDESK_CLI_SNAPSHOTS_H
#define VDESK_CLI_SNAPSHOTS_H

#include "conf.h"

/* Lists the recovery points of desktop `dom` (NULL: the selected one),
 * wherever its daemon is now: a table, or JSON with `json`. */
int cmd_snapshots(const vd_conf *c, const char *dom, int json);

#endif
