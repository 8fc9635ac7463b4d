/* SPDX-License-Identifier: MIT */
/*
 * vdesk-prolog - slurmd's Prolog= on a desktop node: makes the desktop VM
 * leave before the job starts, as the job asked (SPANK_VDESK_MODE from the
 * vdesk SPANK plugin; `auto` if the plugin did not run).
 *
 * Exits 0 when the job can have the node; 1 when it cannot, after draining
 * the node with a reason that says why and what to run (Slurm then requeues
 * a batch job).
 */
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>

#include "common.h"

static vd_mode request_mode(void)
{
    const char *s = getenv("SPANK_VDESK_MODE");
    vd_mode m = VD_MODE_AUTO;
    vd_err err;
    if (s && vd_mode_parse(s, &m, &err) < 0) {
        syslog(LOG_WARNING, "SPANK_VDESK_MODE: %s; using auto", err.msg);
        m = VD_MODE_AUTO;
    }
    return m;
}

int main(void)
{
    openlog("vdesk-prolog", LOG_PID, LOG_DAEMON);
    vd_conf conf;
    if (node_conf_load(&conf, "vdesk-prolog") < 0)
        return 1;
    const char *t = getenv("SPANK_VDESK_TIMEOUT");
    vd_request req = {
        .job = job_id(),
        .mode = request_mode(),
        .timeout_s = t ? atoi(t) : 0,
        .gpus = getenv("SLURM_JOB_GPUS"),
    };
    vd_report rep;
    vd_err err;
    int rc = vd_evict(&conf, &req, &rep, &err);
    if (rc < 0)
        fprintf(stderr, "vdesk-prolog: %s\n", err.msg);
    if (node_report(&conf, &rep, "vdesk-prolog") < 0)
        rc = -1;
    return rc == 0 ? 0 : 1;
}
