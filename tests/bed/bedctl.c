/* SPDX-License-Identifier: MIT */
/*
 * bedctl - the test bed's hands on its private libvirt daemon.
 *
 * Tests and the demo are shell scripts; whatever they do to a guest goes
 * through this program and so through libvirt's C API (lib/hv), never virsh.
 * The URI comes from -c or LIBVIRT_DEFAULT_URI (the bed's env file sets it).
 */
#include "hv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int usage(void)
{
    fputs("usage: bedctl [-c URI] COMMAND ...\n"
          "  ping                          connect and disconnect\n"
          "  create XMLFILE                define and start a domain\n"
          "  state NAME                    print running|paused|shutoff|missing|other\n"
          "  present NAME ALIAS            print 1 if the device is in the live XML, else 0\n"
          "  xml NAME                      print the live XML\n"
          "  devxml NAME ALIAS             print the device's live XML\n"
          "  detach NAME ALIAS [MS]        hot-unplug and wait for DEVICE_REMOVED (default 10000 ms)\n"
          "  attach NAME ALIAS XMLFILE     hot-plug the device in XMLFILE\n"
          "  shutdown NAME [MS]            ACPI shutdown, wait until shut off (default 20000 ms)\n"
          "  start NAME                    start a defined domain (from its managed save, if any)\n"
          "  cycle NAME MODE FILE          bare libvirt evict+restore (suspend, save, shutdown,\n"
          "                                shrink) of a guest with ua-gpu0 and ua-ib0: the\n"
          "                                benchmark's baseline; FILE is the save file\n"
          "  purge NAME                    destroy and undefine one domain\n"
          "  purge-all                     destroy and undefine every domain\n",
          stderr);
    return 2;
}

static char *slurp(const char *path, vd_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        vd_err_set(err, "%s: cannot open", path);
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while (mem && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (fwrite(chunk, 1, n, mem) != n)
            break;
    int bad = ferror(f) || !mem;
    fclose(f);
    if (mem && fclose(mem) != 0)
        bad = 1;
    if (bad) {
        free(buf);
        vd_err_set(err, "%s: cannot read", path);
        return NULL;
    }
    return buf;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int purge_all(vd_hv *hv, vd_err *err)
{
    char **names = NULL;
    int n = 0, rc = 0;
    if (vd_hv_dom_list(hv, &names, &n, err) < 0)
        return -1;
    for (int i = 0; i < n && rc == 0; i++)
        rc = vd_hv_dom_purge(hv, names[i], err);
    vd_hv_names_free(names, n);
    return rc;
}

static int file_cmd(vd_hv *hv, const char *path, const char *dom, const char *alias, vd_err *err)
{
    char *xml = slurp(path, err);
    if (!xml)
        return -1;
    int rc = dom ? vd_hv_dev_attach(hv, dom, alias, xml, err) : vd_hv_dom_create(hv, xml, err);
    free(xml);
    return rc;
}

/* The benchmark's baseline: the libvirt calls vdesk makes for one
 * evict+restore, and nothing else (no journal, lock, snapshot or record). */
static int cycle(vd_hv *hv, const char *dom, const char *mode, const char *file, vd_err *err)
{
    const char *both[] = { "ua-gpu0", "ua-ib0" };
    char *xml[2] = { NULL, NULL };
    int ndev = !strcmp(mode, "save") ? 2 : !strcmp(mode, "shrink") ? 1 : 0;
    int rc = 0;
    for (int i = 0; i < ndev && rc == 0; i++)
        rc = vd_hv_dev_xml(hv, dom, both[i], &xml[i], err) < 0 ||
             vd_hv_dev_detach(hv, dom, both[i], 10000, NULL, err) < 0 ? -1 : 0;
    if (rc == 0 && !strcmp(mode, "suspend"))
        rc = vd_hv_dom_suspend(hv, dom, err) < 0 || vd_hv_dom_resume(hv, dom, err) < 0 ? -1 : 0;
    else if (rc == 0 && !strcmp(mode, "save"))
        rc = vd_hv_dom_save(hv, dom, file, 0, err) < 0 || vd_hv_dom_restore(hv, dom, file, 0, err) < 0 ? -1 : 0;
    else if (rc == 0 && !strcmp(mode, "shutdown"))
        rc = vd_hv_dom_shutdown(hv, dom, 20000, err) < 0 || vd_hv_dom_start(hv, dom, 0, err) < 0 ? -1 : 0;
    else if (rc == 0 && !strcmp(mode, "shrink"))
        rc = vd_hv_dom_pin(hv, dom, "1", err) < 0 || vd_hv_dom_pin(hv, dom, NULL, err) < 0 ? -1 : 0;
    for (int i = 0; i < ndev && rc == 0; i++)
        rc = vd_hv_dev_attach(hv, dom, both[i], xml[i], err);
    free(xml[0]);
    free(xml[1]);
    if (rc == 0 && !strcmp(mode, "save"))
        unlink(file);
    return rc;
}

static int run(vd_hv *hv, int argc, char **argv, vd_err *err)
{
    const char *cmd = argv[0];
    if (!strcmp(cmd, "ping") && argc == 1)
        return 0;
    if (!strcmp(cmd, "purge-all") && argc == 1)
        return purge_all(hv, err);
    if (!strcmp(cmd, "purge") && argc == 2)
        return vd_hv_dom_purge(hv, argv[1], err);
    if (!strcmp(cmd, "create") && argc == 2)
        return file_cmd(hv, argv[1], NULL, NULL, err);
    if (!strcmp(cmd, "attach") && argc == 4)
        return file_cmd(hv, argv[3], argv[1], argv[2], err);
    if (!strcmp(cmd, "state") && argc == 2) {
        vd_dom_state s;
        if (vd_hv_dom_state(hv, argv[1], &s, err) < 0)
            return -1;
        printf("%s\n", vd_dom_state_name(s));
        return 0;
    }
    if (!strcmp(cmd, "present") && argc == 3) {
        int present;
        if (vd_hv_dev_present(hv, argv[1], argv[2], &present, err) < 0)
            return -1;
        printf("%d\n", present);
        return 0;
    }
    if (!strcmp(cmd, "cycle") && argc == 4)
        return cycle(hv, argv[1], argv[2], argv[3], err);
    if (!strcmp(cmd, "xml") && argc == 2) {
        char *xml = NULL;
        if (vd_hv_dom_xml(hv, argv[1], 0, &xml, err) < 0)
            return -1;
        printf("%s", xml);
        free(xml);
        return 0;
    }
    if (!strcmp(cmd, "devxml") && argc == 3) {
        char *xml = NULL;
        if (vd_hv_dev_xml(hv, argv[1], argv[2], &xml, err) < 0)
            return -1;
        printf("%s\n", xml);
        free(xml);
        return 0;
    }
    if (!strcmp(cmd, "shutdown") && (argc == 2 || argc == 3))
        return vd_hv_dom_shutdown(hv, argv[1], argc == 3 ? atoi(argv[2]) : 20000, err);
    if (!strcmp(cmd, "start") && argc == 2)
        return vd_hv_dom_start(hv, argv[1], 0, err);
    if (!strcmp(cmd, "detach") && (argc == 3 || argc == 4)) {
        int ms = argc == 4 ? atoi(argv[3]) : 10000;
        long long t0 = now_ms();
        int by_event = 0;
        if (vd_hv_dev_detach(hv, argv[1], argv[2], ms, &by_event, err) < 0)
            return -1;
        printf("removed %s in %lld ms (%s)\n", argv[2], now_ms() - t0,
               by_event ? "DEVICE_REMOVED event" : "gone from live XML, no event");
        return 0;
    }
    return vd_err_set(err, "unknown command or wrong arguments: %s (see bedctl without arguments)", cmd);
}

int main(int argc, char **argv)
{
    const char *uri = NULL;
    int i = 1;
    if (argc > 2 && !strcmp(argv[1], "-c")) {
        uri = argv[2];
        i = 3;
    }
    if (i >= argc)
        return usage();
    vd_err err = { "" };
    vd_hv *hv = NULL;
    int rc = vd_hv_open(uri, &hv, &err);
    if (rc == 0)
        rc = run(hv, argc - i, argv + i, &err);
    vd_hv_close(hv);
    if (rc < 0) {
        fprintf(stderr, "bedctl: %s\n", err.msg);
        return 1;
    }
    return 0;
}
