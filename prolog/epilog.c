/* SPDX-License-Identifier: MIT */
/*
 * vdesk-epilog - slurmd's Epilog= on a desktop node: the last job out
 * brings the desktop VM back as it was.
 *
 * When the desktop cannot be brought back, the node is drained with a
 * reason that says what to run, everything is kept for an admin, and the
 * program exits 0: the job itself is done and not to blame. It exits 1 only
 * when it cannot even drain the node, so that Slurm does.
 */
#include <stdio.h>
#include <syslog.h>

#include "common.h"
#include "journal.h"

int main(int argc, char **argv)
{
    int args = node_args(argc, argv, "vdesk-epilog");
    if (args != 0)
        return args > 0 ? 0 : 2;
    long long t0 = vd_now_ms();
    int log_to_stderr = node_openlog("vdesk-epilog");
    vd_conf conf;
    if (node_conf_load(&conf, "vdesk-epilog") != 0)
        return 0;   /* no desktop here, or drained with the config error */
    vd_report rep;
    vd_err err;
    char released[512];
    int budget_s = node_budget();   /* Slurm counts it from the epilog's start */
    node_reconcile(&conf, job_id(), released, sizeof(released));
    if (vd_restore_within(&conf, job_id(), node_budget_left(budget_s, t0), &rep, &err) < 0)
        fprintf(stderr, "vdesk-epilog: %s\n", err.msg);
    vd_report_prefix(&rep, released);
    return node_report(&conf, &rep, "vdesk-epilog", log_to_stderr) < 0 ? 1 : 0;
}
