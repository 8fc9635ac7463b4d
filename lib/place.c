/* SPDX-License-Identifier: MIT */
#include "place.h"

static int has_room(const vd_place_cand *c, unsigned long long need_kib)
{
    if (need_kib > (1ULL << 50))
        return 0;   /* a petabyte: not a desktop, and the sum below must not wrap */
    return c->slots_free > 0 && c->free_kib >= need_kib + need_kib / 10 + VD_PLACE_MARGIN_KIB;
}

/* Whether a is a better target than b (both have room). */
static int better(const vd_place_cand *a, const vd_place_cand *b)
{
    if (a->free_kib != b->free_kib)
        return a->free_kib > b->free_kib;
    return a->order < b->order;
}

int vd_place_pick(const vd_place_cand *c, int n, unsigned long long need_kib)
{
    int best = -1;
    for (int i = 0; i < n; i++)
        if (has_room(&c[i], need_kib) && (best < 0 || better(&c[i], &c[best])))
            best = i;
    return best;
}
