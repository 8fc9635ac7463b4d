/* SPDX-License-Identifier: MIT */
/*
 * cpuwork [ROUNDS] - the isolation benchmark's job: a fixed amount of
 * CPU-bound work, hashing a 1 MiB buffer ROUNDS times (default 1000).
 *
 * The buffer is written back as it is hashed, so the work lives in the
 * caches a neighbour on another core shares, not in registers alone.
 * Prints the elapsed wall-clock time in ns, then the hash (which keeps the
 * compiler from dropping the work): wall-clock time, because a job that
 * loses its CPU to someone else runs longer but uses no more CPU time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define WORDS (1u << 17)   /* 1 MiB of 64-bit words */

static uint64_t buf[WORDS];

static long long now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        perror("cpuwork: clock_gettime");
        exit(1);
    }
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* One pass: FNV-1a style over the words, each replaced by the running
 * hash; every step depends on the one before. */
static uint64_t pass(uint64_t h)
{
    for (unsigned i = 0; i < WORDS; i++) {
        h = (h ^ buf[i]) * 0x100000001b3ULL;
        h ^= h >> 29;
        buf[i] = h;
    }
    return h;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? strtol(argv[1], NULL, 10) : 1000;
    if (argc > 2 || rounds < 1) {
        fputs("usage: cpuwork [ROUNDS]\n", stderr);
        return 2;
    }
    for (unsigned i = 0; i < WORDS; i++)
        buf[i] = i * 0x9e3779b97f4a7c15ULL;
    uint64_t h = 0xcbf29ce484222325ULL;
    long long t0 = now_ns();
    for (long r = 0; r < rounds; r++)
        h = pass(h);
    long long t1 = now_ns();
    if (printf("%lld %016llx\n", t1 - t0, (unsigned long long)h) < 0)
        return 1;
    return 0;
}
