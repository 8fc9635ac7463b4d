/* SPDX-License-Identifier: MIT */
/*
 * snapshots.c - `vdeskctl snapshots [DESKTOP]`: a desktop's recovery
 * points, newest first, with when, why, how much disk, and where each is:
 * the one the desktop runs on, further down its chain, or kept aside (by
 * a revert) until discarded. Read-only, no lock; it reads libvirt and the
 * snapshot directory (0711, the index 0600: root's, like vdesk.conf says).
 */
#include "snapshots.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "snap.h"
#include "hv.h"

/* The daemon that has `dom` now: home, else (the migrating desktop) the
 * peer it went to. NULL when none that answers has it. */
static vd_hv *desktop_daemon(const vd_conf *c, const char *dom, vd_err *err)
{
    vd_hv *hv = NULL;
    vd_dom_state s = VD_DOM_MISSING;
    if (vd_hv_open(c->uri, &hv, err) == 0 && vd_hv_dom_state(hv, dom, &s, err) == 0 && s != VD_DOM_MISSING)
        return hv;
    vd_hv_close(hv);
    hv = NULL;
    for (int i = 0; strcmp(dom, vd_conf_default_domain(c)) == 0 && i < c->npeers; i++) {
        const vd_peer *p = &c->peers[i];
        vd_err why;
        if (!strcmp(p->name, c->node) || !p->migrate_uri[0] || vd_hv_open(p->migrate_uri, &hv, &why) < 0)
            continue;
        if (vd_hv_dom_state(hv, dom, &s, &why) == 0 && s != VD_DOM_MISSING)
            return hv;
        vd_hv_close(hv);
        hv = NULL;
    }
    vd_err_set(err, "desktop %s is defined neither on %s nor on a peer that answers", dom, c->uri);
    return NULL;
}

static const char *where_words(const vd_snap *s, char *buf, size_t size)
{
    if (s->depth == 1)
        return "runs on it";
    if (s->depth > 1)
        snprintf(buf, size, "chain %d", s->depth);
    else
        snprintf(buf, size, "kept aside");
    return buf;
}

static void when_words(long long ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!ms || !localtime_r(&t, &tm) || !strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm))
        snprintf(buf, size, "-");
}

static void print_table(const char *dom, const char *uri, const vd_snap *v, int n)
{
    printf("desktop %s (%s): %d recovery point%s, newest first\n", dom, uri, n, n == 1 ? "" : "s");
    if (!n)
        return;
    printf("%-32s %-19s %-9s %10s  %s\n", "NAME", "TIME", "ORIGIN", "SIZE", "WHERE");
    for (int i = 0; i < n; i++) {
        char when[32], where[32], size[24];
        when_words(v[i].time_ms, when, sizeof(when));
        if (v[i].bytes < 0)
            snprintf(size, sizeof(size), "-");
        else
            snprintf(size, sizeof(size), "%.1f MiB", (double)v[i].bytes / 1048576.0);
        printf("%-32s %-19s %-9s %10s  %s", v[i].name, when, vd_snap_origin_name(v[i].origin), size,
               where_words(&v[i], where, sizeof(where)));
        if (v[i].job)
            printf(" (job %u)", v[i].job);
        if (v[i].kept)
            printf(", kept until discarded");
        printf("\n");
    }
}

static int print_json(const char *dom, const char *uri, const vd_snap *v, int n)
{
    json_object *o = json_object_new_object(), *arr = json_object_new_array();
    int rc = o && arr ? 0 : -1;
    for (int i = 0; rc == 0 && i < n; i++) {
        json_object *e = json_object_new_object();
        rc = e && json_object_object_add(e, "name", json_object_new_string(v[i].name)) == 0 &&
             json_object_object_add(e, "layer", json_object_new_string(v[i].layer)) == 0 &&
             json_object_object_add(e, "time_ms", json_object_new_int64(v[i].time_ms)) == 0 &&
             json_object_object_add(e, "origin", json_object_new_string(vd_snap_origin_name(v[i].origin))) == 0 &&
             json_object_object_add(e, "job", json_object_new_int64(v[i].job)) == 0 &&
             json_object_object_add(e, "kept", json_object_new_boolean(v[i].kept)) == 0 &&
             json_object_object_add(e, "bytes", json_object_new_int64(v[i].bytes)) == 0 &&
             json_object_object_add(e, "depth", json_object_new_int(v[i].depth)) == 0 &&
             json_object_object_add(e, "current", json_object_new_boolean(v[i].depth == 1)) == 0 &&
             json_object_array_add(arr, e) == 0 ? 0 : -1;
        if (rc < 0)
            json_object_put(e);
    }
    if (rc == 0 && json_object_object_add(o, "desktop", json_object_new_string(dom)) == 0 &&
        json_object_object_add(o, "uri", json_object_new_string(uri)) == 0 &&
        json_object_object_add(o, "snapshots", arr) == 0) {
        arr = NULL;
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
    } else {
        rc = -1;
        fprintf(stderr, "vdeskctl snapshots: out of memory\n");
    }
    json_object_put(arr);
    json_object_put(o);
    return rc;
}

int cmd_snapshots(const vd_conf *c, const char *dom, int json)
{
    vd_err err;
    vd_snap *v = NULL;
    int n = 0;
    dom = dom ? dom : c->domain;
    if (!vd_conf_offers(c, dom)) {
        fprintf(stderr, "vdeskctl snapshots: node %s has no desktop %s (its domain = and desktops = in %s)\n",
                c->node, dom, c->path);
        return 1;
    }
    vd_hv *hv = desktop_daemon(c, dom, &err);
    if (!hv || vd_snap_list(hv, dom, c->snapshot_dir, &v, &n, &err) < 0) {
        fprintf(stderr, "vdeskctl snapshots: %s%s\n", err.msg,
                geteuid() ? " (the snapshot directory and its index are root's: run it as root)" : "");
        vd_hv_close(hv);
        return 1;
    }
    char uri[256];
    snprintf(uri, sizeof(uri), "%s", vd_hv_uri(hv));
    int rc = 0;
    if (json)
        rc = print_json(dom, uri, v, n);
    else
        print_table(dom, uri, v, n);
    free(v);
    vd_hv_close(hv);
    return rc < 0 ? 1 : 0;
}
