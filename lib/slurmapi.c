/* SPDX-License-Identifier: MIT */
#include "slurmapi.h"

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* libslurm exits the process (after retrying for a minute) when it finds
 * no slurm.conf, so vdesk looks first: $SLURM_CONF, the packaged default,
 * or the copy slurmd keeps in configless mode. slurm_init() itself reads
 * the file once per process; calling it again is harmless. */
static int init(vd_err *err)
{
    const char *env = getenv("SLURM_CONF");
    const char *paths[] = { env && *env ? env : "/etc/slurm/slurm.conf", "/run/slurm/conf/slurm.conf" };
    for (size_t i = 0; i < (env && *env ? 1 : 2); i++)
        if (access(paths[i], R_OK) == 0) {
            slurm_init(paths[i]);
            return 0;
        }
    return vd_err_set(err, "no slurm.conf to reach slurmctld with (%s%s); set SLURM_CONF", paths[0],
                      env && *env ? "" : " or /run/slurm/conf/slurm.conf");
}

int vd_slurm_job_comment(unsigned job, const char *text, vd_err *err)
{
    if (init(err) < 0)
        return vd_err_prefix(err, "job %u", job);
    job_desc_msg_t desc;
    slurm_init_job_desc_msg(&desc);
    desc.job_id = job;
    desc.admin_comment = (char *)text;
    if (slurm_update_job(&desc) != SLURM_SUCCESS)
        return vd_err_set(err, "job %u: cannot set its AdminComment: %s", job,
                          slurm_strerror(slurm_get_errno()));
    return 0;
}

int vd_slurm_node_drain(const char *node, const char *reason, vd_err *err)
{
    if (init(err) < 0)
        return vd_err_prefix(err, "node %s: cannot drain it (reason '%s')", node, reason);
    update_node_msg_t msg;
    slurm_init_update_node_msg(&msg);
    msg.node_names = (char *)node;
    msg.node_state = NODE_STATE_DRAIN;
    msg.reason = (char *)reason;
    msg.reason_uid = getuid();
    if (slurm_update_node(&msg) != SLURM_SUCCESS)
        return vd_err_set(err, "node %s: cannot drain it (reason '%s'): %s", node, reason,
                          slurm_strerror(slurm_get_errno()));
    return 0;
}

/* Calls fn on each item of a gres list: commas inside parentheses
 * ("IDX:0,2") belong to the item. */
static void gres_items(const char *list, void (*fn)(const char *item, size_t len, vd_slurm_gpus *g),
                       vd_slurm_gpus *g)
{
    const char *start = list;
    int depth = 0;
    for (const char *c = list; list; c++) {
        if (*c == '(')
            depth++;
        else if (*c == ')')
            depth--;
        if (*c == '\0' || (*c == ',' && depth == 0)) {
            fn(start, (size_t)(c - start), g);
            start = c + 1;
        }
        if (*c == '\0')
            break;
    }
}

/* "gpu[:TYPE]:COUNT[(...)]": the count after the last colon before '('. */
static int gpu_count(const char *item, size_t len)
{
    char buf[256];
    if (len >= sizeof(buf) || strncmp(item, "gpu:", 4) != 0)
        return 0;
    memcpy(buf, item, len);
    buf[len] = '\0';
    buf[strcspn(buf, "(")] = '\0';
    const char *count = strrchr(buf, ':') + 1;
    return atoi(count);
}

static void add_configured(const char *item, size_t len, vd_slurm_gpus *g)
{
    g->configured += gpu_count(item, len);
}

/* "gpu:a100:2(IDX:0,2-3)": the indices, as ranges. */
static void add_used(const char *item, size_t len, vd_slurm_gpus *g)
{
    char buf[256];
    if (len >= sizeof(buf) || strncmp(item, "gpu:", 4) != 0)
        return;
    memcpy(buf, item, len);
    buf[len] = '\0';
    char *idx = strstr(buf, "(IDX:");
    if (!idx)
        return;
    idx += 5;
    idx[strcspn(idx, ")")] = '\0';
    char *save = NULL;
    for (char *t = strtok_r(idx, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *end;
        long lo = strtol(t, &end, 10), hi = *end == '-' ? strtol(end + 1, NULL, 10) : lo;
        if (end == t)
            continue;   /* "N/A" */
        for (long i = lo; i <= hi && i < 64; i++)
            g->used |= 1ULL << i;
    }
}

void vd_slurm_gpus_parse(const char *gres, const char *gres_used, vd_slurm_gpus *g)
{
    memset(g, 0, sizeof(*g));
    if (gres)
        gres_items(gres, add_configured, g);
    if (gres_used)
        gres_items(gres_used, add_used, g);
}

/* The gres indices the running jobs on `node` hold: each job's detail
 * for that node ("gpu:1(IDX:0)"), which slurmctld keeps even when the
 * node's own gres_used has no indices (Slurm 22.05 without typed GPUs). */
static int jobs_gpus(const char *node, vd_slurm_gpus *g, vd_err *err)
{
    job_info_msg_t *jobs = NULL;
    if (slurm_load_jobs(0, &jobs, SHOW_ALL | SHOW_DETAIL) != SLURM_SUCCESS)
        return vd_err_set(err, "node %s: cannot list its jobs: %s", node,
                          slurm_strerror(slurm_get_errno()));
    for (uint32_t i = 0; i < jobs->record_count; i++) {
        const slurm_job_info_t *j = &jobs->job_array[i];
        if ((j->job_state & JOB_STATE_BASE) != JOB_RUNNING || !j->nodes || !j->gres_detail_cnt)
            continue;
        hostlist_t hl = slurm_hostlist_create(j->nodes);
        int at = hl ? slurm_hostlist_find(hl, node) : -1;
        if (hl)
            slurm_hostlist_destroy(hl);
        if (at >= 0 && (uint32_t)at < j->gres_detail_cnt)
            gres_items(j->gres_detail_str[at], add_used, g);
    }
    slurm_free_job_info_msg(jobs);
    return 0;
}

int vd_slurm_node_gpus(const char *node, vd_slurm_gpus *g, vd_err *err)
{
    node_info_msg_t *resp = NULL;
    if (init(err) < 0)
        return vd_err_prefix(err, "node %s: cannot ask slurmctld", node);
    if (slurm_load_node_single(&resp, (char *)node, SHOW_ALL | SHOW_DETAIL) != SLURM_SUCCESS)
        return vd_err_set(err, "node %s: cannot ask slurmctld: %s", node,
                          slurm_strerror(slurm_get_errno()));
    if (!resp || resp->record_count < 1) {
        slurm_free_node_info_msg(resp);
        return vd_err_set(err, "node %s: slurmctld does not know it", node);
    }
    vd_slurm_gpus_parse(resp->node_array[0].gres, resp->node_array[0].gres_used, g);
    slurm_free_node_info_msg(resp);
    return jobs_gpus(node, g, err);
}
