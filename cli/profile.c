/* SPDX-License-Identifier: MIT */
/*
 * profile.c - `vdeskctl profile list | show PROFILE | check PROFILE` and
 * `vdeskctl bootstrap PROFILE NAME` (vdesk-profile(5), docs/admin.md,
 * "Profiles and bootstrapping").
 */
#include "profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/profile.h"
#include "bootstrap.h"
#include "conf.h"

#define CHECK_MS 60000   /* cloud-init's schema check, xorriso */

/* profile_dir, and the node's section if the file has one: profiles are
 * looked at before a node is set up, so a missing file or section is no
 * error here (conf->node[0] == '\0' then). */
static void conf_for_profiles(const char *path, const char *node, vd_conf *conf)
{
    vd_err err;
    int rc = vd_conf_find(path, node, conf, &err);
    if (rc < 0 && vd_conf_load(path, NULL, conf, &err) < 0)
        vd_conf_defaults(conf);
    if (rc != 0)
        conf->node[0] = '\0';
}

static int list(const vd_conf *conf)
{
    char **names;
    int n;
    vd_err err;
    if (vd_profile_list(conf->profile_dir, &names, &n, &err) < 0) {
        fprintf(stderr, "vdeskctl profile list: %s\n", err.msg);
        return 1;
    }
    int bad = 0;
    vd_profile *p = malloc(sizeof(*p));
    if (!p) {
        vd_profile_names_free(names, n);
        fprintf(stderr, "vdeskctl profile list: out of memory\n");
        return 1;
    }
    printf("profiles in %s:%s\n", conf->profile_dir, n ? "" : " none");
    for (int i = 0; i < n; i++) {
        if (vd_profile_load(conf->profile_dir, names[i], p, &err) < 0) {
            printf("  %-20s (!) %s\n", names[i], err.msg);
            bad = 1;
        } else {
            printf("  %-20s %s%s%s\n", names[i], p->description[0] ? p->description : "(no description)",
                   p->inherit[0] ? "; inherits " : "", p->inherit);
        }
    }
    free(p);
    vd_profile_names_free(names, n);
    return bad;
}

static void show(const vd_profile *p)
{
    char where[PATH_MAX + 16];
    printf("profile %s (%s", p->name, p->chain[0]);
    for (int i = 1; i < p->nchain; i++)
        printf(" -> %s", p->chain[i]);
    printf(")\n[profile]\n");
    for (int k = 0; k < VD_PK_COUNT; k++) {
        const char *v = k == VD_PK_USER_DATA ? p->user_data : p->raw[k];
        if (!v[0] && p->from[k].file < 0)
            printf("# %-12s (not set)\n", vd_profile_key_name((vd_pkey)k));
        else
            printf("%-12s = %-40s # %s\n", vd_profile_key_name((vd_pkey)k), v,
                   vd_profile_origin(p, (vd_pkey)k, where, sizeof(where)));
    }
}

static void print_check(void *ctx, int problem, const char *line)
{
    (void)ctx;
    printf("  %s %s\n", problem ? "(!)" : "ok ", line);
}

static int check(const vd_profile *p, const vd_conf *conf, int live)
{
    vd_err err;
    printf("profile %s: syntax, values and inheritance ok (%d file%s)\n", p->name, p->nchain,
           p->nchain > 1 ? "s" : "");
    int problems = vd_profile_check(p, conf->node[0] ? conf : NULL, live, NULL, CHECK_MS, print_check,
                                    NULL, &err);
    if (problems < 0) {
        fprintf(stderr, "vdeskctl profile check: %s\n", err.msg);
        return 1;
    }
    if (!live && p->cpus[0])
        printf("  note: cpus = %s checked for syntax only; --live checks it against this machine's cores\n",
               p->cpus);
    printf("profile %s: %d problem%s\n", p->name, problems, problems == 1 ? "" : "s");
    return problems ? 1 : 0;
}

int cmd_profile(const char *path, const char *node, int live, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "";
    int one = !strcmp(sub, "show") || !strcmp(sub, "check");
    if (!(argc == 2 && !strcmp(sub, "list")) && !(argc == 3 && one)) {
        fprintf(stderr, "usage: vdeskctl profile list | show PROFILE | check [--live] PROFILE\n");
        return 2;
    }
    if (live && strcmp(sub, "check")) {
        fprintf(stderr, "vdeskctl: --live goes with check-config or profile check\n");
        return 2;
    }
    vd_conf *conf = malloc(sizeof(*conf));
    vd_profile *p = malloc(sizeof(*p));
    int rc = 1;
    vd_err err;
    if (!conf || !p)
        fprintf(stderr, "vdeskctl profile: out of memory\n");
    else if (conf_for_profiles(path, node, conf), !one)
        rc = list(conf);
    else if (vd_profile_load(conf->profile_dir, argv[2], p, &err) < 0)
        fprintf(stderr, "vdeskctl profile %s: %s\n", sub, err.msg);
    else if (!strcmp(sub, "show")) {
        show(p);
        rc = 0;
    } else
        rc = check(p, conf, live);
    free(conf);
    free(p);
    return rc;
}

static void print_step(void *ctx, const char *line)
{
    (void)ctx;
    printf("  %s\n", line);
    fflush(stdout);
}

int cmd_bootstrap(const char *path, const char *node, const char *profile, const char *name)
{
    vd_conf *conf = malloc(sizeof(*conf));
    vd_profile *p = malloc(sizeof(*p));
    vd_err err;
    int rc = 1;
    if (!conf || !p) {
        fprintf(stderr, "vdeskctl bootstrap: out of memory\n");
    } else if (vd_conf_load(path, node, conf, &err) < 0) {
        fprintf(stderr, "vdeskctl bootstrap: %s\n", err.msg);
    } else if (vd_profile_load(conf->profile_dir, profile, p, &err) < 0) {
        fprintf(stderr, "vdeskctl bootstrap: %s\n", err.msg);
    } else {
        vd_bootstrap_opts o = { .conf_path = path, .node = node, .timeout_ms = CHECK_MS, .say = print_step };
        printf("bootstrap %s from profile %s on node %s:\n", name, profile, node);
        fflush(stdout);
        if (vd_bootstrap(p, name, &o, &err) < 0)
            fprintf(stderr, "vdeskctl bootstrap: %s\n", err.msg);
        else
            rc = 0;
    }
    free(conf);
    free(p);
    return rc;
}
