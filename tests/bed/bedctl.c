/* SPDX-License-Identifier: MIT */
/*
 * bedctl - the test bed's hands on its private libvirt daemon.
 *
 * Tests and the demo are shell scripts; whatever they do to a guest goes
 * through this program and so through libvirt's C API (lib/hv), never virsh.
 * The URI comes from -c or LIBVIRT_DEFAULT_URI (the bed's env file sets it).
 */
#include "hv.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/tree.h>
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
          "  destroy NAME                  power it off at once\n"
          "  managedsave NAME              libvirt's managed save; has-managedsave NAME prints 1 or 0\n"
          "  autostart NAME [on|off]       set libvirt's autostart flag, or print it (1 or 0)\n"
          "  suspend NAME / resume NAME    pause / resume the vCPUs\n"
          "  evict NAME MODE FILE          the bare libvirt calls of vdesk's eviction (suspend,\n"
          "                                save, shutdown, shrink) of a guest with ua-gpu0 and\n"
          "                                ua-ib0: the benchmark's baseline; FILE is the save\n"
          "                                file, the unplugged devices' XML goes to FILE.ALIAS.xml\n"
          "  restore NAME MODE FILE        the bare calls of vdesk's restore after evict\n"
          "  cycle NAME MODE FILE          evict and restore in one process\n"
          "  list-active                   names of the running or paused domains\n"
          "  migrate NAME DEST-URI DATA-URI  live-migrate peer to peer (persist at DEST, undefine\n"
          "                                here), print 'migrate MS downtime MS data BYTES'\n"
          "  save-plain NAME FILE          virDomainSaveFlags(d, FILE, NULL, 0) and nothing else\n"
          "  restore-plain FILE            virDomainRestoreFlags(conn, FILE, NULL, 0) and nothing else\n"
          "  evict, restore and the plain ones print the save or restore call's time:\n"
          "  'save MS' or 'restore MS'\n"
          "  pool NAME DIR                 define, build and start a directory storage pool (the\n"
          "                                pool vdeskctl bootstrap puts a desktop's volumes in)\n"
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

/* --- the benchmark's baselines ------------------------------------------ *
 *
 * The libvirt calls vdesk makes for one eviction and one restore, and
 * nothing else (no journal, lock, snapshot or record), through the same
 * lib/hv functions, so that a change there moves both sides. vdesk's
 * prolog and epilog are separate processes (slurmd runs each on its own),
 * and so are `bedctl evict` and `bedctl restore`: the unplugged devices'
 * XML goes from one to the other through files beside the save file. */

static const char *const stand_ins[] = { "ua-gpu0", "ua-ib0" };

/* The devices vdesk unplugs in MODE: all for save, the GPU for shrink,
 * none for suspend (a paused VM keeps them) and shutdown (the definition
 * brings them back at boot). */
static int devices_of(const char *mode)
{
    return !strcmp(mode, "save") ? 2 : !strcmp(mode, "shrink") ? 1 : 0;
}

static int known_mode(const char *mode, vd_err *err)
{
    if (strcmp(mode, "suspend") && strcmp(mode, "save") && strcmp(mode, "shutdown") && strcmp(mode, "shrink"))
        return vd_err_set(err, "unknown mode %s (suspend, save, shutdown, shrink)", mode);
    return 0;
}

static void dev_path(char *buf, size_t size, const char *file, const char *alias)
{
    snprintf(buf, size, "%s.%s.xml", file, alias);
}

static int write_text(const char *path, const char *text, vd_err *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return vd_err_set(err, "%s: cannot create", path);
    int bad = fputs(text, f) == EOF;
    if (fclose(f) != 0 || bad)
        return vd_err_set(err, "%s: cannot write", path);
    return 0;
}

/* Prints "WHAT MS": the one call whose speed the save figures are about. */
static int say_ms(const char *what, long long t0, vd_err *err)
{
    if (printf("%s %lld\n", what, now_ms() - t0) < 0 || fflush(stdout) != 0)
        return vd_err_set(err, "cannot write to stdout");
    return 0;
}

static int unplug_devices(vd_hv *hv, const char *dom, const char *mode, const char *file, vd_err *err)
{
    char path[4096];
    for (int i = 0; i < devices_of(mode); i++) {
        char *xml = NULL;
        dev_path(path, sizeof(path), file, stand_ins[i]);
        int rc = vd_hv_dev_xml(hv, dom, stand_ins[i], &xml, err) < 0 || write_text(path, xml, err) < 0 ||
                 vd_hv_dev_detach(hv, dom, stand_ins[i], 10000, NULL, err) < 0 ? -1 : 0;
        free(xml);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int replug_devices(vd_hv *hv, const char *dom, const char *mode, const char *file, vd_err *err)
{
    char path[4096];
    for (int i = 0; i < devices_of(mode); i++) {
        dev_path(path, sizeof(path), file, stand_ins[i]);
        char *xml = slurp(path, err);
        int rc = xml ? vd_hv_dev_attach(hv, dom, stand_ins[i], xml, err) : -1;
        free(xml);
        if (rc < 0)
            return -1;
        if (unlink(path) < 0)
            return vd_err_set(err, "%s: cannot remove", path);
    }
    return 0;
}

static int evict(vd_hv *hv, const char *dom, const char *mode, const char *file, vd_err *err)
{
    if (known_mode(mode, err) < 0 || unplug_devices(hv, dom, mode, file, err) < 0)
        return -1;
    if (!strcmp(mode, "suspend"))
        return vd_hv_dom_suspend(hv, dom, err);
    if (!strcmp(mode, "shutdown"))
        return vd_hv_dom_shutdown(hv, dom, 20000, err);
    if (!strcmp(mode, "shrink"))   /* the bed's desktop_cores (bed_vdesk_files) */
        return vd_hv_dom_pin(hv, dom, "1", err);
    long long t0 = now_ms();
    if (vd_hv_dom_save(hv, dom, file, 0, err) < 0)
        return -1;
    return say_ms("save", t0, err);
}

/* The guest running again; vdesk's order: VM, devices, then the pinning. */
static int restore(vd_hv *hv, const char *dom, const char *mode, const char *file, vd_err *err)
{
    int rc = known_mode(mode, err);
    if (rc == 0 && !strcmp(mode, "suspend"))
        rc = vd_hv_dom_resume(hv, dom, err);
    else if (rc == 0 && !strcmp(mode, "shutdown"))
        rc = vd_hv_dom_start(hv, dom, 0, err);
    else if (rc == 0 && !strcmp(mode, "save")) {
        /* vd_hv_dom_restore brings the guest back paused (vdesk journals
         * before it runs), then it is resumed, as vdesk does; the time
         * printed is the restore call's, like vdesk's "restore" phase. */
        long long t0 = now_ms();
        rc = vd_hv_dom_restore(hv, dom, file, 0, err);
        if (rc == 0)
            rc = say_ms("restore", t0, err);
        if (rc == 0)
            rc = vd_hv_dom_resume(hv, dom, err);
        if (rc == 0 && unlink(file) < 0)
            rc = vd_err_set(err, "%s: cannot remove", file);
    }
    if (rc == 0)
        rc = replug_devices(hv, dom, mode, file, err);
    if (rc == 0 && !strcmp(mode, "shrink"))
        rc = vd_hv_dom_pin(hv, dom, NULL, err);
    return rc;
}

/* The previous baseline: both halves in one process, one connection. */
static int cycle(vd_hv *hv, const char *dom, const char *mode, const char *file, vd_err *err)
{
    return evict(hv, dom, mode, file, err) < 0 ? -1 : restore(hv, dom, mode, file, err);
}

static const char *lv_msg(void)
{
    virErrorPtr e = virGetLastError();
    return e && e->message ? e->message : "unknown libvirt error";
}

/* save-plain and restore-plain: libvirt's own calls with flags 0, as they
 * were before vdesk tuned anything, on a connection of their own (no
 * event loop): the reference that stays put when lib/hv changes. */
static int plain(const char *uri, char **argv, vd_err *err)
{
    virConnectPtr conn = virConnectOpen(uri);
    if (!conn)
        return vd_err_set(err, "cannot connect to %s: %s", uri ? uri : "libvirt", lv_msg());
    int saving = !strcmp(argv[0], "save-plain");
    virDomainPtr d = saving ? virDomainLookupByName(conn, argv[1]) : NULL;
    long long t0 = now_ms();
    int rc = 0;
    if (saving && (!d || virDomainSaveFlags(d, argv[2], NULL, 0) < 0))
        rc = vd_err_set(err, "VM %s: cannot save to %s: %s", argv[1], argv[2], lv_msg());
    else if (!saving && virDomainRestoreFlags(conn, argv[1], NULL, 0) < 0)
        rc = vd_err_set(err, "cannot restore from %s: %s", argv[1], lv_msg());
    if (rc == 0)
        rc = say_ms(saving ? "save" : "restore", t0, err);
    if (rc == 0 && !saving && unlink(argv[1]) < 0)
        rc = vd_err_set(err, "%s: cannot remove", argv[1]);
    if (d)
        virDomainFree(d);
    virConnectClose(conn);
    return rc;
}

/* A directory pool, as an admin defines the one bootstrap uses; its XML
 * built with libxml2 like every XML vdesk writes. */
static int pool(const char *uri, const char *name, const char *dir, vd_err *err)
{
    xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
    xmlNodePtr p = doc ? xmlNewDocNode(doc, NULL, BAD_CAST "pool", NULL) : NULL;
    xmlChar *xml = NULL;
    int len = 0;
    if (p) {
        xmlDocSetRootElement(doc, p);
        xmlNodePtr t = xmlNewProp(p, BAD_CAST "type", BAD_CAST "dir") &&
                       xmlNewTextChild(p, NULL, BAD_CAST "name", BAD_CAST name) ?
                       xmlNewChild(p, NULL, BAD_CAST "target", NULL) : NULL;
        if (t && xmlNewTextChild(t, NULL, BAD_CAST "path", BAD_CAST dir))
            xmlDocDumpMemory(doc, &xml, &len);
    }
    xmlFreeDoc(doc);
    if (!xml)
        return vd_err_set(err, "out of memory");
    virConnectPtr conn = virConnectOpen(uri);
    virStoragePoolPtr sp = conn ? virStoragePoolDefineXML(conn, (const char *)xml, 0) : NULL;
    int rc = 0;
    if (!sp || virStoragePoolBuild(sp, 0) < 0 || virStoragePoolCreate(sp, 0) < 0 ||
        virStoragePoolSetAutostart(sp, 1) < 0)
        rc = vd_err_set(err, "pool %s at %s: %s", name, dir, lv_msg());
    if (sp)
        virStoragePoolFree(sp);
    if (conn)
        virConnectClose(conn);
    xmlFree(xml);
    return rc;
}

/* The names of the running or paused domains, one per line. */
static int list_active(vd_hv *hv, vd_err *err)
{
    char **names = NULL;
    int n = 0, rc = 0;
    if (vd_hv_dom_list(hv, &names, &n, err) < 0)
        return -1;
    for (int i = 0; i < n && rc == 0; i++) {
        vd_dom_state s;
        rc = vd_hv_dom_state(hv, names[i], &s, err);
        if (rc == 0 && (s == VD_DOM_RUNNING || s == VD_DOM_PAUSED))
            printf("%s\n", names[i]);
    }
    vd_hv_names_free(names, n);
    return rc;
}

/* The bare migration vdesk's migrate mode makes (no unplug, journal or
 * target choice): the benchmark's baseline and the test bed's way to move
 * a guest by hand. Prints "migrate MS downtime MS data BYTES". */
static int migrate(vd_hv *hv, const char *dom, const char *dest, const char *data, vd_err *err)
{
    vd_migrate_params p = { .dest_uri = dest, .data_uri = data, .unsafe = 1 };
    vd_migrate_stats st;
    long long t0 = now_ms();
    if (vd_hv_dom_migrate(hv, dom, &p, &st, err) < 0)
        return -1;
    printf("migrate %lld downtime %lld data %lld\n", now_ms() - t0, st.downtime_ms, st.data_bytes);
    return 0;
}

/* What the boot and select tests do to a guest: a power cut, libvirt's
 * autostart flag, its managed save. Returns 1 for a command not its own. */
static int run_lifecycle(vd_hv *hv, int argc, char **argv, vd_err *err)
{
    const char *cmd = argv[0];
    int v = 0;
    if (!strcmp(cmd, "destroy") && argc == 2)
        return vd_hv_dom_destroy(hv, argv[1], err);
    if (!strcmp(cmd, "managedsave") && argc == 2)
        return vd_hv_dom_managed_save(hv, argv[1], 0, err);
    if (!strcmp(cmd, "has-managedsave") && argc == 2) {
        if (vd_hv_dom_managed_save_has(hv, argv[1], &v, err) < 0)
            return -1;
        printf("%d\n", v);
        return 0;
    }
    if (!strcmp(cmd, "autostart") && argc == 3 && (!strcmp(argv[2], "on") || !strcmp(argv[2], "off")))
        return vd_hv_dom_autostart_set(hv, argv[1], !strcmp(argv[2], "on"), err);
    if (!strcmp(cmd, "autostart") && argc == 2) {
        if (vd_hv_dom_autostart(hv, argv[1], &v, err) < 0)
            return -1;
        printf("%d\n", v);
        return 0;
    }
    return 1;
}

static int run(vd_hv *hv, int argc, char **argv, vd_err *err)
{
    const char *cmd = argv[0];
    int rc = run_lifecycle(hv, argc, argv, err);
    if (rc <= 0)
        return rc;
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
    if (!strcmp(cmd, "list-active") && argc == 1)
        return list_active(hv, err);
    if (!strcmp(cmd, "migrate") && argc == 4)
        return migrate(hv, argv[1], argv[2], argv[3], err);
    if (!strcmp(cmd, "evict") && argc == 4)
        return evict(hv, argv[1], argv[2], argv[3], err);
    if (!strcmp(cmd, "restore") && argc == 4)
        return restore(hv, argv[1], argv[2], argv[3], err);
    if (!strcmp(cmd, "suspend") && argc == 2)
        return vd_hv_dom_suspend(hv, argv[1], err);
    if (!strcmp(cmd, "resume") && argc == 2)
        return vd_hv_dom_resume(hv, argv[1], err);
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
    int rc;
    /* The plain calls must not pay for lib/hv's connection and event loop. */
    if ((!strcmp(argv[i], "save-plain") && argc - i == 3) || (!strcmp(argv[i], "restore-plain") && argc - i == 2)) {
        rc = plain(uri, argv + i, &err);
        if (rc < 0)
            fprintf(stderr, "bedctl: %s\n", err.msg);
        return rc < 0 ? 1 : 0;
    }
    if (!strcmp(argv[i], "pool") && argc - i == 3) {
        rc = pool(uri, argv[i + 1], argv[i + 2], &err);
        if (rc < 0)
            fprintf(stderr, "bedctl: %s\n", err.msg);
        return rc < 0 ? 1 : 0;
    }
    vd_hv *hv = NULL;
    rc = vd_hv_open(uri, &hv, &err);
    if (rc == 0)
        rc = run(hv, argc - i, argv + i, &err);
    vd_hv_close(hv);
    if (rc < 0) {
        fprintf(stderr, "bedctl: %s\n", err.msg);
        return 1;
    }
    return 0;
}
