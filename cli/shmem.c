/* SPDX-License-Identifier: MIT */
/*
 * shmem.c - `vdeskctl shmem ...`: regions of memory shared by desktop VMs
 * of one host (lib/shmem.h).
 */
#include "shmem.h"

#include <stdio.h>
#include <string.h>

#include "../lib/shmem.h"

/* The largest region a running guest of the bed mapped when hot-plugged. */
#define HOTPLUG_FITS (2ULL << 20)

static int usage(void)
{
    fputs("usage: vdeskctl shmem create NAME SIZE | attach NAME DESKTOP [--role master|peer] |\n"
          "                      detach NAME DESKTOP | list | destroy NAME\n", stderr);
    return 2;
}

static int failed(const char *what, const vd_err *err)
{
    fprintf(stderr, "vdeskctl shmem %s: %s\n", what, err->msg);
    return 1;
}

/* One line per region: size, backing file, members with role and where
 * the device is (live: in the running VM; "when it runs": only in its
 * definition, mapped at its next start or when vdesk brings it back). */
static void list_one(const vd_shmem *r, const vd_shmem_member *m, int n)
{
    char sz[32];
    int shown = 0;
    printf("%-20s %-9s " VD_SHMEM_DEV_DIR "/%s:", r->name, vd_shmem_size_str(r->size, sz, sizeof(sz)), r->name);
    for (int i = 0; i < n; i++) {
        if (strcmp(m[i].name, r->name))
            continue;
        printf("%s %s (%s, %s%s)", shown++ ? "," : "", m[i].desktop, vd_shmem_role_name(m[i].role),
               m[i].live ? "live" : "when it runs", m[i].size != r->size ? ", SIZE DIFFERS" : "");
    }
    printf("%s\n", shown ? "" : " no members");
}

static int list(const vd_conf *conf)
{
    vd_shmem r[VD_SHMEM_MAX];
    vd_shmem_member m[VD_SHMEM_MAX];
    int nr = 0, nm = 0;
    char skipped[1024];
    vd_hv *hv = NULL;
    vd_err err;
    if (vd_shmem_list(conf->state_dir, r, &nr, skipped, sizeof(skipped), &err) < 0 ||
        vd_hv_open(conf->uri, &hv, &err) < 0)
        return failed("list", &err);
    int rc = vd_shmem_members(hv, NULL, m, VD_SHMEM_MAX, &nm, &err);
    vd_hv_close(hv);
    if (rc < 0)
        return failed("list", &err);
    printf("%-20s %-9s backing file: members (role, where)\n", "region", "size");
    for (int i = 0; i < nr; i++)
        list_one(&r[i], m, nm);
    if (!nr)
        printf("(no regions: vdeskctl shmem create NAME SIZE)\n");
    if (skipped[0])
        fprintf(stderr, "vdeskctl shmem list: skipped %s\n", skipped);
    return skipped[0] ? 1 : 0;
}

/* A guest sizes its PCI bridge's window at boot: a large BAR plugged in
 * later may find no room (docs/design.md, "Shared memory"). */
static void hotplug_note(const vd_conf *conf, const char *name, const char *how)
{
    vd_shmem r;
    vd_err err;
    if (strncmp(how, "live", 4) || vd_shmem_load(conf->state_dir, name, &r, &err) < 0 || r.size <= HOTPLUG_FITS)
        return;
    printf("note: a guest may have no room for a hot-plugged region over 2 MiB (BAR 2 without an "
           "address): if it does not see it, restart the desktop\n");
}

int cmd_shmem(const vd_conf *conf, const char *role_text, int argc, char **argv)
{
    vd_err err;
    char how[128];
    vd_shmem_role role = VD_SHMEM_PEER;
    const char *sub = argc > 1 ? argv[1] : "";
    if (role_text && strcmp(sub, "attach")) {
        fprintf(stderr, "vdeskctl: --role goes with shmem attach\n");
        return 2;
    }
    if (role_text && vd_shmem_role_parse(role_text, &role, &err) < 0)
        return failed("attach", &err);
    if (!strcmp(sub, "list") && argc == 2)
        return list(conf);
    if (!strcmp(sub, "create") && argc == 4) {
        if (vd_shmem_create(conf, argv[2], argv[3], &err) < 0)
            return failed("create", &err);
        printf("region %s created (%s); attach desktops with 'vdeskctl shmem attach %s DESKTOP'\n", argv[2],
               argv[3], argv[2]);
        return 0;
    }
    if (!strcmp(sub, "attach") && argc == 4) {
        if (vd_shmem_attach(conf, argv[2], argv[3], role, how, sizeof(how), &err) < 0)
            return failed("attach", &err);
        printf("region %s attached to %s as %s, %s\n", argv[2], argv[3], vd_shmem_role_name(role), how);
        hotplug_note(conf, argv[2], how);
        return 0;
    }
    if (!strcmp(sub, "detach") && argc == 4) {
        if (vd_shmem_detach(conf, argv[2], argv[3], how, sizeof(how), &err) < 0)
            return failed("detach", &err);
        printf("region %s detached from %s, %s\n", argv[2], argv[3], how);
        return 0;
    }
    if (!strcmp(sub, "destroy") && argc == 3) {
        if (vd_shmem_destroy(conf, argv[2], &err) < 0)
            return failed("destroy", &err);
        printf("region %s destroyed (its memory, " VD_SHMEM_DEV_DIR "/%s, freed)\n", argv[2], argv[2]);
        return 0;
    }
    return usage();
}
