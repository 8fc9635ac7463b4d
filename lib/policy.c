/* SPDX-License-Identifier: MIT */
#include "policy.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

int vd_policy_chain(const vd_conf *c, vd_mode asked, vd_mode *chain)
{
    int n = 0;
    if (asked != VD_MODE_AUTO)
        chain[n++] = asked;
    for (int i = 0; i < c->npolicy && n < VD_MODE_COUNT; i++) {
        int dup = 0;
        for (int k = 0; k < n; k++)
            dup |= chain[k] == c->policy[i];
        if (!dup)
            chain[n++] = c->policy[i];
    }
    return n;
}

int vd_policy_rank(vd_mode m)
{
    switch (m) {
    case VD_MODE_SHRINK: return 1;
    case VD_MODE_SUSPEND: return 2;
    case VD_MODE_SAVE:
    case VD_MODE_SHUTDOWN:
    case VD_MODE_MIGRATE: return 3;
    default: return 0;
    }
}

int vd_policy_escalation(const vd_conf *c, vd_mode used, vd_mode asked, int cut, int force,
                         vd_mode *chain)
{
    int ru = vd_policy_rank(used), ra = vd_policy_rank(asked);
    if (!cut && !force && ra <= ru)
        return 0;
    vd_mode all[VD_MODE_COUNT];
    /* A shrunk desktop first gives up more GPUs, if the job lets it. */
    vd_mode first = used == VD_MODE_SHRINK && ra <= 1 ? VD_MODE_SHRINK : asked;
    int n = 0, na = vd_policy_chain(c, first, all);
    int floor = cut ? 3 : ru > ra ? ru : ra;
    for (int i = 0; i < na; i++)
        if (vd_policy_rank(all[i]) >= floor && !(used == VD_MODE_SUSPEND && vd_policy_rank(all[i]) <= 2))
            chain[n++] = all[i];
    return n;
}

int vd_policy_timeout_ms(int configured_s, int floor_s, int job_s)
{
    long long s = configured_s;
    if (job_s > 0 && job_s < s)
        s = job_s < floor_s ? floor_s : job_s;
    return s * 1000 > INT_MAX ? INT_MAX : (int)(s * 1000);
}

int vd_policy_job_gpu(int gres_index, const char *job_gpus)
{
    if (!job_gpus || !*job_gpus || gres_index < 0)
        return 1;
    for (const char *s = job_gpus; *s;) {
        size_t len = strcspn(s, ",");
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s + len && len > 0 && v == gres_index)
            return 1;
        s += len + (s[len] == ',');
    }
    return 0;
}

long long vd_policy_migrate_s(int timeout_migrate, unsigned long long kib)
{
    unsigned long long gib = (kib + (1ULL << 20) - 1) >> 20;
    long long s = (long long)timeout_migrate * (long long)(gib ? (gib > 1000000 ? 1000000 : gib) : 1);
    return s < 10 ? 10 : s;
}

unsigned vd_policy_mode_needs(vd_mode m)
{
    switch (m) {
    case VD_MODE_SUSPEND: return VD_CAN_SUSPEND;
    /* the file is restored after the job: both halves or neither */
    case VD_MODE_SAVE: return VD_CAN_SAVE;
    case VD_MODE_SHUTDOWN: return VD_CAN_SHUTDOWN;
    case VD_MODE_SHRINK: return VD_CAN_PIN;
    case VD_MODE_MIGRATE: return VD_CAN_MIGRATE;
    default: return 0;
    }
}
