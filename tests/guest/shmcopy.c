/* SPDX-License-Identifier: MIT */
/*
 * shmcopy FILE BYTES ROUNDS - the shared memory benchmark's copy loop
 * (tests/bench/shmem.sh): maps BYTES of FILE shared and copies a private
 * buffer into it and back out, ROUNDS times, printing each round's times.
 * The same program runs in the test guest on the ivshmem BAR
 * (/sys/bus/pci/devices/D/resource2: /dev/mem's read and write stop at
 * the end of RAM, only a mapping reaches a BAR) and on the host on
 * /dev/shm, so that the ratio compares like with like. Built static for
 * the guest's initramfs (tests/guest/mkguest.sh).
 *
 * Output, a line per round: "shmcopy: bytes=N write_ns=W read_ns=R".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: shmcopy FILE BYTES ROUNDS\n");
        return 2;
    }
    size_t n = strtoull(argv[2], NULL, 10);
    int rounds = atoi(argv[3]);
    int fd = open(argv[1], O_RDWR | O_CLOEXEC);
    if (fd < 0 || n == 0 || rounds < 1) {
        perror(argv[1]);
        return 1;
    }
    unsigned char *map = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    unsigned char *buf = malloc(n);
    if (map == MAP_FAILED || !buf) {
        perror("mmap");
        return 1;
    }
    close(fd);
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(i * 131 + 7);
    unsigned sum = 0;
    for (int r = 0; r < rounds; r++) {
        long long t0 = now_ns();
        memcpy(map, buf, n);
        long long t1 = now_ns();
        memcpy(buf, map, n);
        long long t2 = now_ns();
        sum += buf[(size_t)r * 4099 % n];   /* the copies are used: not optimised away */
        printf("shmcopy: bytes=%zu write_ns=%lld read_ns=%lld\n", n, t1 - t0, t2 - t1);
        fflush(stdout);
    }
    munmap(map, n);
    free(buf);
    return sum == 0xffffffffu ? 3 : 0;
}
