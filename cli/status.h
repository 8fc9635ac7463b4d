/* SPDX-License-Identifier: MIT */
/* status.h - `vdeskctl status [--json]`: what an admin or a health check
 * needs to know of the node's desktop (see status.c). */
#ifndef VDESK_CLI_STATUS_H
#define VDESK_CLI_STATUS_H

#include "conf.h"

/* Prints the status of c's desktop, as text or as one JSON object.
 * Returns 0 when nothing needs an admin, 1 when something does (each
 * such thing is marked "(!)", or listed under "problems"). */
int cmd_status(const vd_conf *c, int json);

#endif
