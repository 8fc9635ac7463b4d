/* SPDX-License-Identifier: MIT */
#include "slurmapi.h"

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>
#include <string.h>
#include <unistd.h>

/* slurm_init() reads slurm.conf once per process; calling it again is
 * harmless, so each call makes sure of it rather than keeping a flag. */
static void init(void)
{
    slurm_init(NULL);
}

int vd_slurm_job_comment(unsigned job, const char *text, vd_err *err)
{
    init();
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
    init();
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
