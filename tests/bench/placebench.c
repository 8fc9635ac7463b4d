/* SPDX-License-Identifier: MIT */
/*
 * placebench N RUNS - the migration target choice over N simulated nodes:
 * Slurm's view (state, features) filtered by vd_slurm_node_takes_visitor,
 * then vd_place_pick over the candidates' room, as the prolog and engine
 * do it, less the network calls. Prints "place N MEDIAN_MS MAX_MS PICKED".
 */
#include <slurm/slurm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "place.h"
#include "slurmapi.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return fprintf(stderr, "usage: placebench N RUNS\n"), 2;
    int n = atoi(argv[1]), runs = atoi(argv[2]);
    if (n < 1 || runs < 1)
        return fprintf(stderr, "placebench: N and RUNS must be positive\n"), 2;
    unsigned *state = malloc(sizeof(*state) * (size_t)n);
    const char **feat = malloc(sizeof(*feat) * (size_t)n);
    vd_place_cand *all = malloc(sizeof(*all) * (size_t)n), *cand = malloc(sizeof(*cand) * (size_t)n);
    double *ms = malloc(sizeof(*ms) * (size_t)runs);
    if (!state || !feat || !all || !cand || !ms)
        return fprintf(stderr, "placebench: out of memory\n"), 1;
    srand(42);
    static const unsigned states[] = { NODE_STATE_IDLE, NODE_STATE_ALLOCATED, NODE_STATE_MIXED,
                                       NODE_STATE_IDLE | NODE_STATE_DRAIN, NODE_STATE_DOWN };
    static const char *features[] = { "vdesk", "gpu,ib,vdesk", "gpu", "" };
    for (int i = 0; i < n; i++) {
        state[i] = states[rand() % 5];
        feat[i] = features[rand() % 4];
        all[i] = (vd_place_cand){ (unsigned long long)(rand() % 512) << 20, rand() % 3, i };
    }
    int picked = -1;
    for (int r = 0; r < runs; r++) {
        double t0 = now_ms();
        int m = 0;
        for (int i = 0; i < n; i++)
            if (vd_slurm_node_takes_visitor(state[i], feat[i], "vdesk"))
                cand[m++] = all[i];
        int k = vd_place_pick(cand, m, 16ULL << 20);
        picked = k < 0 ? -1 : cand[k].order;
        ms[r] = now_ms() - t0;
    }
    qsort(ms, (size_t)runs, sizeof(*ms), cmp);
    printf("place %d %.3f %.3f %d\n", n, ms[runs / 2], ms[runs - 1], picked);
    free(state);
    free(feat);
    free(all);
    free(cand);
    free(ms);
    return picked < 0;
}
