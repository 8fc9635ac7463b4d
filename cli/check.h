/* SPDX-License-Identifier: MIT */
/* check.h - `vdeskctl check-config [--live]` (see check.c). */
#ifndef VDESK_CLI_CHECK_H
#define VDESK_CLI_CHECK_H

/* Checks `path` as a whole, then says whether `node` has a desktop; with
 * `live`, also checks on this machine everything its section names.
 * Returns the exit status: 0 OK, 1 a problem (each printed with its fix). */
int cmd_check_config(const char *path, const char *node, int live);

#endif
