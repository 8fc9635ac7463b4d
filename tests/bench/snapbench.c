/* SPDX-License-Identifier: MIT */
/*
 * snapbench DOM DIR RUNS LAYERS - recovery points on a running guest, vdesk
 * against the bare libvirt calls, interleaved run by run (tests/bench.sh):
 *
 *   snapshot: vd_snap_take (chain read, index, label, the snapshot) versus
 *             virDomainSnapshotCreateXML with the same flags and XML;
 *   flatten:  vd_snap_flatten keeping 1 point of a chain LAYERS deep (plan,
 *             block commit, chain read again, files removed, index) versus
 *             virDomainBlockCommit of the same range, waited for.
 *
 * libvirt's default URI (the bed's). Prints one line:
 * "snap VD_MS BARE_MS flatten VD_MS BARE_MS" (medians).
 */
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hv.h"
#include "snap.h"
#include "statedir.h"

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

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The bare call: the same snapshot XML and flags as vd_hv_disk_snapshot. */
static int bare_snapshot(virDomainPtr d, const char *dom, const char *dir)
{
    char xml[2048];
    long long tag = vd_now_ms();
    snprintf(xml, sizeof(xml),
             "<domainsnapshot><name>bare-%lld</name><disks><disk name='vda' snapshot='external'>"
             "<driver type='qcow2'/><source file='%s/%s-%lld.qcow2'/></disk></disks></domainsnapshot>",
             tag, dir, dom, tag);
    virDomainSnapshotPtr s = virDomainSnapshotCreateXML(d, xml, VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY |
                                                        VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA |
                                                        VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC);
    if (!s)
        return -1;
    virDomainSnapshotFree(s);
    return 0;
}

/* The bare merge: commit chain[1] .. chain[n-3] into chain[n-2], as
 * flatten --keep 1 does, and wait for the job to end. The chain read
 * before is the caller's (not timed), and so is removing the files. */
static int bare_commit(virDomainPtr d, char **chain, int n)
{
    if (n < 4)
        return -1;
    int rc = virDomainBlockCommit(d, "vda", chain[n - 2], chain[1], 0, 0);
    virDomainBlockJobInfo info;
    while (rc == 0 && virDomainGetBlockJobInfo(d, "vda", &info, 0) > 0)
        nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
    return rc;
}

static int layers_add(vd_hv *hv, const char *dom, const char *dir, int layers)
{
    vd_snap made;
    vd_err err;
    for (int i = 0; i < layers; i++)
        if (vd_snap_take(hv, dom, dir, VD_SNAP_SCHEDULE, 0, NULL, &made, &err) < 0)
            return fprintf(stderr, "snapbench: %s\n", err.msg), -1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 5)
        return fprintf(stderr, "usage: snapbench DOM DIR RUNS LAYERS\n"), 2;
    const char *dom = argv[1], *dir = argv[2];
    int runs = atoi(argv[3]), layers = atoi(argv[4]);
    if (runs < 1 || layers < 3)
        return fprintf(stderr, "snapbench: RUNS at least 1, LAYERS at least 3\n"), 2;
    vd_hv *hv = NULL;
    vd_err err = { .msg = "" };
    virConnectPtr conn = virConnectOpen(NULL);
    virDomainPtr d = conn ? virDomainLookupByName(conn, dom) : NULL;
    if (!d || vd_hv_open(NULL, &hv, &err) < 0)
        return fprintf(stderr, "snapbench: no domain %s on libvirt's default URI\n", dom), 1;
    double *sv = calloc((size_t)runs, sizeof(double)), *sb = calloc((size_t)runs, sizeof(double));
    double *fv = calloc((size_t)runs, sizeof(double)), *fb = calloc((size_t)runs, sizeof(double));
    vd_snap_keep keep1 = { .n = 1, .age_ms = 0 };
    int rc = sv && sb && fv && fb ? 0 : 1;
    for (int r = 0; rc == 0 && r < runs; r++) {
        vd_snap made;
        int merged = 0;
        double t = now_ms();
        rc |= vd_snap_take(hv, dom, dir, VD_SNAP_HAND, 0, NULL, &made, &err) < 0;
        sv[r] = now_ms() - t;
        t = now_ms();
        rc |= bare_snapshot(d, dom, dir) < 0;
        sb[r] = now_ms() - t;
        rc |= layers_add(hv, dom, dir, layers) < 0;
        t = now_ms();
        rc |= vd_snap_flatten(hv, dom, dir, &keep1, NULL, 120000, &merged, &err) < 0;
        fv[r] = now_ms() - t;
        rc |= layers_add(hv, dom, dir, layers) < 0;
        char **chain = NULL;
        int n = 0;
        rc |= vd_hv_disk_chain(hv, dom, &chain, &n, &err) < 0;
        t = now_ms();
        rc |= rc ? 1 : bare_commit(d, chain, n) < 0;
        fb[r] = now_ms() - t;
        for (int i = 1; rc == 0 && i < n - 2; i++)
            rc |= unlink(chain[i]) < 0;
        vd_hv_names_free(chain, n);
        /* Put the chain back in shape for the next run (not timed). */
        rc |= vd_snap_flatten(hv, dom, dir, &keep1, NULL, 120000, &merged, &err) < 0;
        if (rc)
            fprintf(stderr, "snapbench: run %d failed: %s / %s\n", r, err.msg, virGetLastErrorMessage());
    }
    if (rc == 0)
        printf("snap %.2f %.2f flatten %.2f %.2f\n", median(sv, runs), median(sb, runs), median(fv, runs),
               median(fb, runs));
    free(sv), free(sb), free(fv), free(fb);
    vd_hv_close(hv);
    virDomainFree(d);
    virConnectClose(conn);
    return rc;
}
