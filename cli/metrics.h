/* SPDX-License-Identifier: MIT */
/* metrics.h - `vdeskctl metrics [--textfile DIR]`: the node's desktop and
 * its operations as Prometheus metrics (see metrics.c). */
#ifndef VDESK_CLI_METRICS_H
#define VDESK_CLI_METRICS_H

#include "conf.h"

/* Prints the metrics of c's node, or (textfile_dir) replaces
 * textfile_dir/vdesk.prom with them atomically. Returns the exit status:
 * 0, or 1 when they could not be written (the message says where and why). */
int cmd_metrics(const vd_conf *c, const char *textfile_dir);

#endif
