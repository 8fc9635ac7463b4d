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
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "common.h"
#include "journal.h"
#include "slurmapi.h"

/* What a job sent is echoed in logs and records: one line, printable. */
static void printable(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            *s = '?';
}

/* What the job asks for, checked again against the site's policy in
 * vdesk.conf: the SPANK plugin checks it at submission, but a patched client
 * or any libslurm program can set the job's SPANK environment to anything.
 * A request the site forbids is not obeyed; the job gets the site's policy
 * chain (auto) and the configured timeouts, and its record says why. */
static void request_check(const vd_conf *conf, vd_request *req, char *refused, size_t size)
{
    const char *mode = getenv("SPANK_VDESK_MODE");
    const char *tmo = getenv("SPANK_VDESK_TIMEOUT");
    vd_err err;
    char allowed[128];
    req->mode = VD_MODE_AUTO;
    req->timeout_s = 0;
    refused[0] = '\0';
    if (mode && *mode && vd_mode_parse(mode, &req->mode, &err) < 0) {
        snprintf(refused, size, "refused mode '%.32s' (unknown)", mode);
        printable(refused);
        req->mode = VD_MODE_AUTO;
    } else if (req->mode != VD_MODE_AUTO && !(conf->allow & VD_MODE_BIT(req->mode))) {
        /* auto is the site's own policy: always allowed */
        vd_mode_set_format(conf->allow, allowed, sizeof(allowed));
        snprintf(refused, size, "refused mode %s (allow = %s in %.100s)", vd_mode_name(req->mode),
                 allowed, conf->path);
        req->mode = VD_MODE_AUTO;
    }
    if (!tmo || !*tmo)
        return;
    char *end;
    errno = 0;
    long v = strtol(tmo, &end, 10);
    size_t len = strlen(refused);
    if (*tmo < '0' || *tmo > '9' || *end || errno || v < 1 || v > conf->max_timeout) {
        snprintf(refused + len, size - len, "%srefused timeout '%.24s' (1 to max_timeout = %d)",
                 len ? "; " : "", tmo, conf->max_timeout);
        printable(refused);
    } else
        req->timeout_s = (int)v;
}

/* Whether the job may get migrate, or the node may host visitors (which
 * leave for an idle node too). */
static int may_migrate(const vd_conf *conf, const vd_request *req)
{
    int in_policy = 0;
    for (int i = 0; i < conf->npolicy; i++)
        in_policy |= conf->policy[i] == VD_MODE_MIGRATE;
    return req->mode == VD_MODE_MIGRATE || in_policy || conf->migrate_uri[0];
}

/* The nodes Slurm says may take the desktop now, never the job's own
 * (SLURM_JOB_NODELIST, which slurmd sets). Without an answer there is no
 * target, and the chain moves on. */
static void targets_find(const vd_conf *conf, vd_request *req)
{
    vd_err err;
    if (!may_migrate(conf, req))
        return;
    if (vd_slurm_idle_nodes(conf->migrate_feature, getenv("SLURM_JOB_NODELIST"), &req->targets,
                            &req->ntargets, &err) < 0)
        syslog(LOG_WARNING, "job %u: no migration targets: %s", req->job, err.msg);
}

int main(int argc, char **argv)
{
    int args = node_args(argc, argv, "vdesk-prolog");
    if (args != 0)
        return args > 0 ? 0 : 2;
    long long t0 = vd_now_ms();
    int log_to_stderr = node_openlog("vdesk-prolog");
    vd_conf conf;
    int rc = node_conf_load(&conf, "vdesk-prolog");
    if (rc != 0)
        return rc == VD_CONF_NO_DESKTOP ? 0 : 1;
    char refused[256], released[512];
    vd_request req = { .job = job_id(), .gpus = getenv("SLURM_JOB_GPUS"), .budget_s = node_budget(),
                       .target_idle = vd_slurm_node_visitable };
    request_check(&conf, &req, refused, sizeof(refused));
    if (refused[0])
        syslog(LOG_WARNING, "job %u: %s", req.job, refused);
    node_reconcile(&conf, req.job, released, sizeof(released));
    targets_find(&conf, &req);
    req.budget_s = node_budget_left(req.budget_s, t0);
    vd_report rep;
    vd_err err;
    rc = vd_evict(&conf, &req, &rep, &err);
    vd_slurm_names_free(req.targets, req.ntargets);
    if (rc < 0)
        fprintf(stderr, "vdesk-prolog: %s\n", err.msg);
    vd_report_prefix(&rep, released);
    vd_report_prefix(&rep, refused);
    if (node_report(&conf, &rep, "vdesk-prolog", log_to_stderr) < 0)
        rc = -1;
    return rc == 0 ? 0 : 1;
}
