/* SPDX-License-Identifier: MIT */
#include "comment.h"

#include <string.h>

#include "engine.h"
#include "slurmapi.h"

int vd_desktop_comment(const vd_conf *conf, vd_err *err)
{
    char state[256], now[256];
    vd_desktop_describe(conf, state, sizeof(state));
    for (int tries = 0; tries < 2; tries++) {
        if (vd_slurm_node_comment(conf->node, state, err) < 0)
            return -1;
        vd_desktop_describe(conf, now, sizeof(now));
        if (!strcmp(now, state))
            return 0;
        memcpy(state, now, sizeof(state));
    }
    return 0;   /* still changing: the operation under way writes its own */
}
