/* SPDX-License-Identifier: MIT */
#include "bootstrap.h"

#include <ctype.h>
#include <errno.h>
#include <ftw.h>
#include <libgen.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "child.h"
#include "engine.h"
#include "statedir.h"

/* --- the domain XML (libxml2) ------------------------------------------ */

/* A builder that remembers the first allocation failure, so that the
 * calls read as the XML they make and the result is checked once. */
typedef struct xb {
    xmlDocPtr doc;
    int oom;
} xb;

static xmlNodePtr el(xb *b, xmlNodePtr parent, const char *name, const char *text)
{
    xmlNodePtr n = parent ? xmlNewTextChild(parent, NULL, BAD_CAST name, BAD_CAST text) : NULL;
    b->oom |= !n;
    return n;
}

static void attr(xb *b, xmlNodePtr n, const char *name, const char *value)
{
    b->oom |= !n || !xmlNewProp(n, BAD_CAST name, BAD_CAST value);
}

static xmlNodePtr el_attr(xb *b, xmlNodePtr parent, const char *name, const char *a, const char *v)
{
    xmlNodePtr n = el(b, parent, name, NULL);
    attr(b, n, a, v);
    return n;
}

static void note(char *notes, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(char *notes, size_t size, const char *fmt, ...)
{
    size_t used = strlen(notes);
    if (used + 1 >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(notes + used, size - used, fmt, ap);
    va_end(ap);
}

static void os_part(xb *b, xmlNodePtr dom, const vd_profile *p)
{
    xmlNodePtr os = el(b, dom, "os", NULL);
    xmlNodePtr type = el(b, os, "type", "hvm");
    attr(b, type, "arch", "x86_64");
    attr(b, type, "machine", "q35");   /* PCIe with ACPI hotplug: vdesk unplugs devices */
    if (p->kernel[0])
        el(b, os, "kernel", p->kernel);
    if (p->initrd[0])
        el(b, os, "initrd", p->initrd);
    if (p->cmdline[0])
        el(b, os, "cmdline", p->cmdline);
    xmlNodePtr f = el(b, dom, "features", NULL);
    el(b, f, "acpi", NULL);   /* the power button: vdesk's clean shutdown */
    el(b, f, "apic", NULL);
    if (!strcmp(p->domain_type, "kvm"))
        el_attr(b, dom, "cpu", "mode", "host-passthrough");
    el(b, dom, "on_poweroff", "destroy");
    el(b, dom, "on_reboot", "restart");
    el(b, dom, "on_crash", "destroy");
}

/* Every vCPU and the emulator on the profile's cores: the desktop stays
 * off the cores the jobs get. */
static void cpu_part(xb *b, xmlNodePtr dom, const vd_profile *p)
{
    char n[16];
    snprintf(n, sizeof(n), "%d", p->memory_mib);
    attr(b, el(b, dom, "memory", n), "unit", "MiB");
    snprintf(n, sizeof(n), "%d", p->vcpus);
    attr(b, el(b, dom, "vcpu", n), "placement", "static");
    if (!p->cpus[0])
        return;
    xmlNodePtr tune = el(b, dom, "cputune", NULL);
    for (int i = 0; i < p->vcpus; i++) {
        xmlNodePtr pin = el(b, tune, "vcpupin", NULL);
        snprintf(n, sizeof(n), "%d", i);
        attr(b, pin, "vcpu", n);
        attr(b, pin, "cpuset", p->cpus);
    }
    el_attr(b, tune, "emulatorpin", "cpuset", p->cpus);
}

static void disk(xb *b, xmlNodePtr devs, const char *format, const char *path, const char *dev, int ro)
{
    xmlNodePtr d = el(b, devs, "disk", NULL);
    attr(b, d, "type", "file");
    attr(b, d, "device", "disk");
    xmlNodePtr drv = el_attr(b, d, "driver", "name", "qemu");
    attr(b, drv, "type", format);
    el_attr(b, d, "source", "file", path);
    xmlNodePtr t = el_attr(b, d, "target", "dev", dev);
    attr(b, t, "bus", "virtio");
    if (ro)
        el(b, d, "readonly", NULL);
}

/* The node's devices of the profile's roles, with vdesk.conf's user
 * aliases: the engine unplugs them by alias. managed='no': vdesk binds
 * whole IOMMU groups itself (docs/admin.md). */
static void hostdevs(xb *b, xmlNodePtr devs, const vd_profile *p, const vd_conf *conf, char *notes,
                     size_t size)
{
    for (int i = 0; conf && i < conf->ndevices; i++) {
        const vd_device *d = &conf->devices[i];
        if (!(p->devices & (1u << d->role)))
            continue;
        unsigned dom, bus, slot, fn;
        if (!d->pci[0] || sscanf(d->pci, "%4x:%2x:%2x.%1x", &dom, &bus, &slot, &fn) != 4) {
            note(notes, size, "%s device %s skipped: no PCI address in vdesk.conf; ",
                 vd_role_name(d->role), d->alias);
            continue;
        }
        xmlNodePtr h = el(b, devs, "hostdev", NULL);
        attr(b, h, "mode", "subsystem");
        attr(b, h, "type", "pci");
        attr(b, h, "managed", "no");
        xmlNodePtr a = el(b, el(b, h, "source", NULL), "address", NULL);
        char v[4][8];
        snprintf(v[0], sizeof(v[0]), "0x%04x", dom);
        snprintf(v[1], sizeof(v[1]), "0x%02x", bus);
        snprintf(v[2], sizeof(v[2]), "0x%02x", slot);
        snprintf(v[3], sizeof(v[3]), "0x%x", fn);
        attr(b, a, "domain", v[0]);
        attr(b, a, "bus", v[1]);
        attr(b, a, "slot", v[2]);
        attr(b, a, "function", v[3]);
        el_attr(b, h, "alias", "name", d->alias);
    }
}

/* An emulated display beside any passed-through GPU, on the host only:
 * it survives the GPU's unplug for a job. */
static void display(xb *b, xmlNodePtr devs, const vd_profile *p)
{
    if (p->display == VD_DISPLAY_NONE)
        return;
    int spice = p->display == VD_DISPLAY_SPICE;
    xmlNodePtr g = el_attr(b, devs, "graphics", "type", spice ? "spice" : "vnc");
    attr(b, g, "autoport", "yes");
    xmlNodePtr l = el_attr(b, g, "listen", "type", "address");
    attr(b, l, "address", "127.0.0.1");
    el_attr(b, el(b, devs, "video", NULL), "model", "type", spice ? "qxl" : "virtio");
}

static void network(xb *b, xmlNodePtr devs, const vd_profile *p)
{
    if (p->net == VD_NET_NONE)
        return;
    int bridge = p->net == VD_NET_BRIDGE;
    xmlNodePtr i = el_attr(b, devs, "interface", "type", bridge ? "bridge" : "network");
    el_attr(b, i, "source", bridge ? "bridge" : "network", p->net_name);
    el_attr(b, i, "model", "type", "virtio");
}

static void metadata(xb *b, xmlNodePtr dom, const vd_profile *p)
{
    xmlNodePtr m = el(b, el(b, dom, "metadata", NULL), "bootstrap", NULL);
    xmlNsPtr ns = m ? xmlNewNs(m, BAD_CAST VD_BOOTSTRAP_NS, BAD_CAST "vdesk") : NULL;
    b->oom |= !ns;
    if (ns)
        xmlSetNs(m, ns);
    attr(b, m, "profile", p->name);
}

int vd_bootstrap_domain_xml(const vd_profile *p, const vd_conf *conf, const char *name,
                            const char *uuid, const char *overlay, const char *seed,
                            const char *console_log, char **xml, char *notes, size_t notes_size,
                            vd_err *err)
{
    xb b = { .doc = xmlNewDoc(BAD_CAST "1.0"), .oom = 0 };
    xmlNodePtr dom = b.doc ? xmlNewDocNode(b.doc, NULL, BAD_CAST "domain", NULL) : NULL;
    *xml = NULL;
    if (notes_size)
        notes[0] = '\0';
    if (!dom) {
        xmlFreeDoc(b.doc);
        return vd_err_set(err, "out of memory building the domain XML");
    }
    xmlDocSetRootElement(b.doc, dom);
    attr(&b, dom, "type", p->domain_type);
    el(&b, dom, "name", name);
    el(&b, dom, "uuid", uuid);
    if (p->description[0])
        el(&b, dom, "description", p->description);
    metadata(&b, dom, p);
    cpu_part(&b, dom, p);
    os_part(&b, dom, p);
    xmlNodePtr devs = el(&b, dom, "devices", NULL);
    disk(&b, devs, "qcow2", overlay, "vda", 0);
    disk(&b, devs, "raw", seed, "vdb", 1);
    hostdevs(&b, devs, p, conf, notes, notes_size);
    display(&b, devs, p);
    network(&b, devs, p);
    xmlNodePtr serial = el_attr(&b, devs, "serial", "type", "file");
    xmlNodePtr src = el_attr(&b, serial, "source", "path", console_log);
    attr(&b, src, "append", "on");
    el_attr(&b, serial, "target", "port", "0");
    xmlChar *out = NULL;
    int len = 0;
    if (!b.oom)
        xmlDocDumpFormatMemory(b.doc, &out, &len, 1);
    xmlFreeDoc(b.doc);
    if (!out || !(*xml = strdup((const char *)out))) {
        xmlFree(out);
        return vd_err_set(err, "out of memory building the domain XML");
    }
    xmlFree(out);
    return 0;
}

/* A volume of `bytes` in format `type`; with `base`, a qcow2 overlay whose
 * backing store is `base` in `base_format` (given: libvirt will not probe
 * it). */
static int volume_xml(const char *name, const char *type, unsigned long long bytes, const char *base,
                      const char *base_format, char **xml, vd_err *err)
{
    xb b = { .doc = xmlNewDoc(BAD_CAST "1.0"), .oom = 0 };
    xmlNodePtr v = b.doc ? xmlNewDocNode(b.doc, NULL, BAD_CAST "volume", NULL) : NULL;
    char size[32];
    *xml = NULL;
    if (!v) {
        xmlFreeDoc(b.doc);
        return vd_err_set(err, "out of memory building the volume XML");
    }
    xmlDocSetRootElement(b.doc, v);
    snprintf(size, sizeof(size), "%llu", bytes);
    el(&b, v, "name", name);
    attr(&b, el(&b, v, "capacity", size), "unit", "bytes");
    el_attr(&b, el(&b, v, "target", NULL), "format", "type", type);
    if (base) {
        xmlNodePtr bs = el(&b, v, "backingStore", NULL);
        el(&b, bs, "path", base);
        el_attr(&b, bs, "format", "type", base_format);
    }
    xmlChar *out = NULL;
    int len = 0;
    if (!b.oom)
        xmlDocDumpMemory(b.doc, &out, &len);
    xmlFreeDoc(b.doc);
    if (!out || !(*xml = strdup((const char *)out))) {
        xmlFree(out);
        return vd_err_set(err, "out of memory building the volume XML");
    }
    xmlFree(out);
    return 0;
}

/* --- vdesk.conf ---------------------------------------------------------- */

static int slurp(const char *path, char **text, size_t *len, vd_err *err)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t size = 0;
    FILE *mem = f ? open_memstream(&buf, &size) : NULL;
    char chunk[4096];
    size_t n;
    int bad = !f || !mem;
    while (!bad && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        bad = fwrite(chunk, 1, n, mem) != n;
    int e = errno;
    bad |= f && ferror(f);
    if (f)
        fclose(f);
    if (mem && fclose(mem) != 0)
        bad = 1;
    if (bad) {
        free(buf);
        return vd_err_set(err, "%s: cannot read: %s", path, strerror(e));
    }
    *text = buf;
    *len = size;
    return 0;
}

int vd_conf_file_put(const char *link, const char *text, size_t len, vd_err *err)
{
    char path[PATH_MAX];
    struct stat st;
    /* vdesk.conf is often a link to a copy shared by the cluster: the
     * rename replaces the file it points to, not the link; with its mode
     * as it was, and its owner (bootstrap runs as root): users' vdeskctl
     * status and every srun's plugin read it. */
    if (!realpath(link, path) || stat(path, &st) < 0)
        return vd_err_set(err, "%s: %s", link, strerror(errno));
    return vd_file_replace(path, text, len, st.st_mode & 07777, st.st_uid, st.st_gid, err);
}

/* The text of a line as vdesk.conf's reader sees it (conf.c's clean_line):
 * its start after the blanks, and its length without comment and blanks. */
static void line_text(const char *line, size_t len, size_t *start, size_t *tlen)
{
    size_t s = 0;
    while (s < len && isspace((unsigned char)line[s]))
        s++;
    size_t e = s;
    if (e < len && line[e] != '#' && line[e] != ';')
        for (e = s + 1; e < len && !((line[e] == '#' || line[e] == ';') && isspace((unsigned char)line[e - 1])); e++)
            ;
    while (e > s && isspace((unsigned char)line[e - 1]))
        e--;
    *start = s;
    *tlen = e - s;
}

/* Whether the text (start, tlen) of a line is KEY = or KEY: */
static int is_key(const char *t, size_t tlen, const char *key)
{
    size_t k = strlen(key);
    if (tlen <= k || strncmp(t, key, k) != 0)
        return 0;
    while (k < tlen && (t[k] == ' ' || t[k] == '\t'))
        k++;
    return k < tlen && (t[k] == '=' || t[k] == ':');
}

/* Where to insert, in `text`: after the value of desktops = in [node
 * NODE] (*append 1), or after the section header (*append 0). */
static int find_spot(const char *text, size_t len, const char *node, size_t *at, int *append)
{
    char header[128];
    snprintf(header, sizeof(header), "[node %s]", node);
    int in = 0, found = 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t llen = nl ? (size_t)(nl - (text + pos)) : len - pos, s, tlen;
        line_text(text + pos, llen, &s, &tlen);
        const char *t = text + pos + s;
        if (tlen && t[0] == '[') {
            in = tlen == strlen(header) && !strncmp(t, header, tlen);
            if (in) {
                found = 1;
                *at = pos + llen + (nl ? 1 : 0);
                *append = 0;
            }
        } else if (in && is_key(t, tlen, "desktops")) {
            *at = pos + s + tlen;
            *append = 1;
            return 0;
        }
        pos += llen + 1;
    }
    return found ? 0 : -1;
}

int vd_conf_add_desktop(const char *path, const char *node, const char *name, char **old,
                        size_t *oldlen, vd_err *err)
{
    char *text, *out = NULL;
    size_t len, outlen = 0, at;
    int append;
    *old = NULL;
    if (slurp(path, &text, &len, err) < 0)
        return -1;
    if (find_spot(text, len, node, &at, &append) < 0) {
        free(text);
        return vd_err_set(err, "%s: no [node %s] section", path, node);
    }
    FILE *mem = open_memstream(&out, &outlen);
    int bad = !mem;
    if (mem) {
        bad |= fwrite(text, 1, at, mem) != at;
        /* A header on the file's last line, without its newline. */
        if (!append && at > 0 && text[at - 1] != '\n')
            bad |= fputc('\n', mem) == EOF;
        bad |= append ? fprintf(mem, ", %s", name) < 0 : fprintf(mem, "desktops = %s\n", name) < 0;
        bad |= fwrite(text + at, 1, len - at, mem) != len - at;
        bad |= fclose(mem) != 0;
    }
    int rc = bad ? vd_err_set(err, "out of memory") : vd_conf_file_put(path, out, outlen, err);
    free(out);
    if (rc < 0) {
        free(text);
        return -1;
    }
    *old = text;
    *oldlen = len;
    return 0;
}

/* --- the steps ----------------------------------------------------------- */

/* One run: what it made so far, undone in reverse order on failure. */
typedef struct run {
    const vd_profile *p;
    const char *name;
    const vd_bootstrap_opts *o;
    vd_conf *conf;
    vd_hv *hv;
    char overlay_vol[96], seed_vol[96];
    char overlay[PATH_MAX], seed[PATH_MAX];
    char uuid[40];
    char tmpdir[64];
    int made_overlay, made_seed, defined;
    char *conf_old;      /* vdesk.conf before the conf step */
    size_t conf_oldlen;
    char *conf_new;      /* and as the conf step left it */
    size_t conf_newlen;
} run;

static void say(const run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const run *r, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (r->o->say)
        r->o->say(r->o->ctx, line);
}

static int step(const run *r, const char *name, vd_err *err)
{
    if (r->o->before_step && r->o->before_step(r->o->ctx, name, err) < 0)
        return vd_err_prefix(err, "step %s", name);
    return 0;
}

static int make_overlay(run *r, vd_err *err)
{
    const char *format;
    unsigned long long bytes;
    char *xml;
    if (step(r, "overlay", err) < 0 || vd_image_probe(r->p->base_image, &format, &bytes, err) < 0 ||
        volume_xml(r->overlay_vol, "qcow2", bytes, r->p->base_image, format, &xml, err) < 0)
        return -1;
    int rc = vd_hv_vol_create(r->hv, r->p->pool, xml, r->overlay, sizeof(r->overlay), err);
    free(xml);
    if (rc < 0)
        return -1;
    r->made_overlay = 1;
    say(r, "overlay: volume %s of pool %s (%s), qcow2 on %s (%s, %llu MiB)", r->overlay_vol,
        r->p->pool, r->overlay, r->p->base_image, format, bytes >> 20);
    return 0;
}

static int write_file(const char *dir, const char *file, const char *text, vd_err *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    FILE *f = fopen(path, "w");
    if (!f)
        return vd_err_set(err, "%s: cannot create: %s", path, strerror(errno));
    int bad = fputs(text, f) == EOF;
    bad |= fclose(f) != 0;
    return bad ? vd_err_set(err, "%s: cannot write", path) : 0;
}

static int copy_user_data(const run *r, vd_err *err)
{
    char *text;
    size_t len;
    if (!r->p->user_data[0])
        return write_file(r->tmpdir, "user-data", "#cloud-config\n", err);
    if (slurp(r->p->user_data, &text, &len, err) < 0)
        return -1;
    char *z = realloc(text, len + 1);
    if (!z) {
        free(text);
        return vd_err_set(err, "out of memory");
    }
    z[len] = '\0';
    int rc = write_file(r->tmpdir, "user-data", z, err);
    free(z);
    return rc;
}

/* NoCloud's three files; the network is configured by DHCP on every NIC
 * when the profile has one. */
static int seed_files(const run *r, vd_err *err)
{
    char meta[256];
    snprintf(meta, sizeof(meta), "instance-id: iid-%s\nlocal-hostname: %s\n", r->uuid, r->name);
    const char *net = r->p->net == VD_NET_NONE ? "version: 2\nethernets: {}\n"
        : "version: 2\nethernets:\n  all:\n    match:\n      name: \"e*\"\n    dhcp4: true\n";
    if (copy_user_data(r, err) < 0 || write_file(r->tmpdir, "meta-data", meta, err) < 0 ||
        write_file(r->tmpdir, "network-config", net, err) < 0)
        return -1;
    return 0;
}

static int make_iso(const run *r, const char *iso, vd_err *err)
{
    char ud[PATH_MAX], md[PATH_MAX], nc[PATH_MAX], out[2048];
    snprintf(ud, sizeof(ud), "%s/user-data", r->tmpdir);
    snprintf(md, sizeof(md), "%s/meta-data", r->tmpdir);
    snprintf(nc, sizeof(nc), "%s/network-config", r->tmpdir);
    char *argv[] = { "xorriso", "-as", "mkisofs", "-quiet", "-output", (char *)iso, "-volid", "cidata",
                     "-joliet", "-rock", ud, md, nc, NULL };
    if (vd_child_exec(argv, r->o->timeout_ms, out, sizeof(out), err) == 0)
        return 0;
    if (strstr(err->msg, "not found"))
        return vd_err_set(err, "xorriso is not installed: it makes the cloud-init seed image; "
                          "install it (apt-get install xorriso)");
    out[strcspn(out, "\n")] = '\0';
    return vd_err_prefix(err, "making the seed image %s with xorriso (%.300s)", iso, out);
}

static int put_seed(run *r, const char *iso, vd_err *err)
{
    struct stat st;
    char *xml;
    if (stat(iso, &st) < 0)
        return vd_err_set(err, "%s: %s", iso, strerror(errno));
    if (volume_xml(r->seed_vol, "raw", (unsigned long long)st.st_size, NULL, NULL, &xml, err) < 0)
        return -1;
    int rc = vd_hv_vol_create(r->hv, r->p->pool, xml, r->seed, sizeof(r->seed), err);
    free(xml);
    if (rc < 0)
        return -1;
    r->made_seed = 1;
    if (r->o->seed_put)
        return r->o->seed_put(r->o->ctx, r->hv, r->p->pool, r->seed_vol, iso, err);
    return vd_hv_vol_upload(r->hv, r->p->pool, r->seed_vol, iso, err);
}

static int make_seed(run *r, vd_err *err)
{
    char iso[PATH_MAX];
    snprintf(r->tmpdir, sizeof(r->tmpdir), "/tmp/vdesk-seed-XXXXXX");
    if (step(r, "seed", err) < 0)
        return -1;
    if (!mkdtemp(r->tmpdir)) {
        r->tmpdir[0] = '\0';
        return vd_err_set(err, "cannot create a temporary directory: %s", strerror(errno));
    }
    snprintf(iso, sizeof(iso), "%s/seed.iso", r->tmpdir);
    if (seed_files(r, err) < 0 || make_iso(r, iso, err) < 0 || put_seed(r, iso, err) < 0)
        return -1;
    say(r, "seed: volume %s of pool %s (%s), cloud-init NoCloud, label cidata: user-data (%s), "
        "meta-data (instance-id iid-%s, local-hostname %s), network-config", r->seed_vol, r->p->pool,
        r->seed, r->p->user_data[0] ? r->p->user_data : "empty #cloud-config", r->uuid, r->name);
    return 0;
}

/* The console log beside the overlay, where the pool keeps the desktop. */
static int define(run *r, vd_err *err)
{
    char console[PATH_MAX + 32], dir[PATH_MAX], notes[1024];
    char *xml;
    if (step(r, "define", err) < 0)
        return -1;
    snprintf(dir, sizeof(dir), "%s", r->overlay);
    snprintf(console, sizeof(console), "%s/%s-console.log", dirname(dir), r->name);
    if (vd_bootstrap_domain_xml(r->p, r->conf, r->name, r->uuid, r->overlay, r->seed, console, &xml,
                                notes, sizeof(notes), err) < 0)
        return -1;
    int rc = vd_hv_dom_define(r->hv, xml, err);
    free(xml);
    if (rc < 0)
        return -1;
    r->defined = 1;
    say(r, "define: domain %s (uuid %s) on %s: %d MiB, %d vCPU%s%s%s, console %s%s%s", r->name, r->uuid,
        vd_hv_uri(r->hv), r->p->memory_mib, r->p->vcpus, r->p->vcpus > 1 ? "s" : "",
        r->p->cpus[0] ? " pinned to " : "", r->p->cpus, console, notes[0] ? "; " : "", notes);
    return 0;
}

static int register_desktop(run *r, vd_err *err)
{
    if (step(r, "conf", err) < 0)
        return -1;
    if (vd_conf_offers(r->conf, r->name)) {
        say(r, "conf: [node %s] of %s offers %s already", r->conf->node, r->conf->path, r->name);
        return 0;
    }
    if (vd_conf_add_desktop(r->o->conf_path, r->o->node, r->name, &r->conf_old, &r->conf_oldlen, err) < 0 ||
        slurp(r->o->conf_path, &r->conf_new, &r->conf_newlen, err) < 0)
        return -1;
    /* Proof that the file is still what every vdesk program reads. */
    vd_err why;
    why.msg[0] = '\0';
    if (vd_conf_load(r->o->conf_path, r->o->node, r->conf, &why) < 0 || !vd_conf_offers(r->conf, r->name))
        return vd_err_set(err, "%s with %s added to desktops = of [node %s] is refused: %s",
                          r->o->conf_path, r->name, r->o->node, why.msg);
    say(r, "conf: %s added to desktops = of [node %s] in %s", r->name, r->conf->node, r->conf->path);
    return 0;
}

static int boot(run *r, vd_err *err)
{
    vd_report rep;
    if (step(r, "boot", err) < 0)
        return -1;
    /* Read as vd_conf_find does, with the node's current selection. */
    if (vd_conf_find(r->o->conf_path, r->o->node, r->conf, err) != 0)
        return -1;
    if (vd_select(r->conf, r->name, &rep, err) < 0)
        return vd_err_prefix(err, "boot");
    say(r, "boot: %s", rep.outcome);
    return 0;
}

/* --- undo ------------------------------------------------------------------ */

static void undo_one(const run *r, int rc, const char *what, const vd_err *why, vd_err *err)
{
    if (rc == 0) {
        say(r, "undo: %s", what);
        return;
    }
    size_t n = strlen(err->msg);
    snprintf(err->msg + n, sizeof(err->msg) - n, "; and could not undo (%s): %.200s", what, why->msg);
}

static void undo(run *r, vd_err *err)
{
    vd_err why;
    char what[PATH_MAX + 64];
    if (r->conf_old) {
        /* Only the file as bootstrap left it goes back: an edit made since
         * (an admin, another bootstrap) is not undone with it. */
        char *now = NULL;
        size_t nowlen = 0;
        int same = slurp(r->o->conf_path, &now, &nowlen, &why) == 0 && r->conf_new &&
                   nowlen == r->conf_newlen && !memcmp(now, r->conf_new, nowlen);
        free(now);
        snprintf(what, sizeof(what), "%s restored", r->o->conf_path);
        if (same)
            undo_one(r, vd_conf_file_put(r->o->conf_path, r->conf_old, r->conf_oldlen, &why), what, &why, err);
        else
            undo_one(r, vd_err_set(&why, "it changed since bootstrap added %s to desktops =: take %s out "
                                   "of desktops = of [node %s] by hand", r->name, r->name, r->o->node),
                     what, &why, err);
    }
    if (r->defined) {
        snprintf(what, sizeof(what), "domain %s undefined", r->name);
        undo_one(r, vd_hv_dom_purge(r->hv, r->name, &why), what, &why, err);
    }
    if (r->made_seed) {
        snprintf(what, sizeof(what), "volume %s deleted", r->seed_vol);
        undo_one(r, vd_hv_vol_delete(r->hv, r->p->pool, r->seed_vol, &why), what, &why, err);
    }
    if (r->made_overlay) {
        snprintf(what, sizeof(what), "volume %s deleted", r->overlay_vol);
        undo_one(r, vd_hv_vol_delete(r->hv, r->p->pool, r->overlay_vol, &why), what, &why, err);
    }
}

/* --- before anything is made ---------------------------------------------- */

/* An existing domain NAME: the same profile's is done already. */
static int existing(run *r, int *done, vd_err *err)
{
    vd_dom_state s;
    char *meta = NULL, *prof = NULL;
    *done = 0;
    if (vd_hv_dom_state(r->hv, r->name, &s, err) < 0)
        return -1;
    if (s == VD_DOM_MISSING)
        return 0;
    if (vd_hv_dom_metadata(r->hv, r->name, VD_BOOTSTRAP_NS, &meta, err) < 0)
        return -1;
    xmlDocPtr doc = meta ? xmlReadMemory(meta, (int)strlen(meta), "metadata.xml", NULL, XML_PARSE_NONET) : NULL;
    xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
    prof = root ? (char *)xmlGetProp(root, BAD_CAST "profile") : NULL;
    int same = prof && !strcmp(prof, r->p->name);
    int rc = 0;
    if (!prof)
        rc = vd_err_set(err, "domain %s exists on %s and was not made by vdeskctl bootstrap: choose "
                        "another name", r->name, vd_hv_uri(r->hv));
    else if (!same)
        rc = vd_err_set(err, "domain %s exists on %s, made from profile %s, not %s: choose another "
                        "name (or undefine it first)", r->name, vd_hv_uri(r->hv), prof, r->p->name);
    else {
        *done = 1;
        say(r, "desktop %s exists (made from profile %s, %s): nothing changed%s", r->name, prof,
            vd_dom_state_name(s), vd_conf_offers(r->conf, r->name) ? "" :
            "; it is not in desktops = of the node: add it there to boot it");
    }
    xmlFree(prof);
    xmlFreeDoc(doc);
    free(meta);
    return rc;
}

/* Volumes of those names without the domain: someone else's. */
static int volumes_free(run *r, vd_err *err)
{
    const char *vols[] = { r->overlay_vol, r->seed_vol };
    for (int i = 0; i < 2; i++) {
        char path[PATH_MAX];
        int exists;
        if (vd_hv_vol_path(r->hv, r->p->pool, vols[i], path, sizeof(path), &exists, err) < 0)
            return -1;
        if (exists)
            return vd_err_set(err, "pool %s already has a volume %s (%s) but there is no domain %s: "
                              "it is not bootstrap's to reuse; delete it or choose another name",
                              r->p->pool, vols[i], path, r->name);
    }
    return 0;
}

static void collect(void *ctx, int problem, const char *line)
{
    vd_err *first = ctx;
    if (problem && !first->msg[0])
        snprintf(first->msg, sizeof(first->msg), "%s", line);
}

static int refuse_early(run *r, vd_err *err)
{
    const vd_profile *p = r->p;
    if (!vd_profile_name_ok(r->name))
        return vd_err_set(err, "desktop name '%s': letters, digits, '-', '_', '.', not starting with "
                          "'.', at most %d characters (as domain = in vdesk.conf)", r->name, VD_PROFILE_NAME_MAX);
    if (!strcmp(r->name, vd_conf_default_domain(r->conf)))
        return vd_err_set(err, "%s is node %s's own desktop (domain = in %s): choose another name",
                          r->name, r->conf->node, r->conf->path);
    /* A migrating desktop is found by its name on every node. */
    const vd_peer *home = vd_conf_home_of(r->conf, r->name);
    if (home)
        return vd_err_set(err, "%s is node %s's desktop (domain = in %s): choose another name",
                          r->name, home->name, r->conf->path);
    if (p->uri[0] && strcmp(p->uri, r->conf->uri))
        return vd_err_set(err, "%s: uri = %s is not node %s's (%s): vdesk boots and evicts desktops "
                          "on the node's libvirt; remove uri = or make it the node's",
                          p->chain[p->from[VD_PK_URI].file < 0 ? 0 : p->from[VD_PK_URI].file], p->uri,
                          r->conf->node, r->conf->uri);
    vd_err first = { "" };
    vd_err cerr;
    int problems = vd_profile_check(p, r->conf, 1, r->o->topology, r->o->timeout_ms, collect, &first, &cerr);
    if (problems < 0)
        return vd_err_set(err, "%s", cerr.msg);
    if (problems > 0)
        return vd_err_set(err, "%s (%d problem%s: vdeskctl profile check --live %s lists them)", first.msg,
                          problems, problems > 1 ? "s" : "", p->name);
    return 0;
}

static int uuid_new(char *buf, size_t size, vd_err *err)
{
    FILE *f = fopen("/proc/sys/kernel/random/uuid", "r");
    int ok = f && fgets(buf, (int)size, f);
    if (f)
        fclose(f);
    if (!ok)
        return vd_err_set(err, "cannot read a UUID from /proc/sys/kernel/random/uuid");
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int steps(run *r, vd_err *err)
{
    int done;
    if (refuse_early(r, err) < 0 || vd_hv_open(r->conf->uri, &r->hv, err) < 0 || existing(r, &done, err) < 0)
        return -1;
    if (done)
        return 0;
    if (volumes_free(r, err) < 0 || uuid_new(r->uuid, sizeof(r->uuid), err) < 0)
        return -1;
    if (make_overlay(r, err) < 0 || make_seed(r, err) < 0 || define(r, err) < 0 ||
        register_desktop(r, err) < 0 || boot(r, err) < 0) {
        undo(r, err);
        return -1;
    }
    return 0;
}

int vd_bootstrap(const vd_profile *p, const char *name, const vd_bootstrap_opts *o, vd_err *err)
{
    run *r = calloc(1, sizeof(*r));
    vd_conf *conf = malloc(sizeof(*conf));
    if (!r || !conf) {
        free(r);
        free(conf);
        return vd_err_set(err, "out of memory");
    }
    *r = (run){ .p = p, .name = name, .o = o, .conf = conf };
    snprintf(r->overlay_vol, sizeof(r->overlay_vol), "%.64s.qcow2", name);
    snprintf(r->seed_vol, sizeof(r->seed_vol), "%.64s-seed.iso", name);
    int rc = vd_conf_load(o->conf_path, o->node, conf, err);
    if (rc == 0)
        rc = steps(r, err);
    if (r->tmpdir[0] && strcmp(r->tmpdir, "/tmp/vdesk-seed-XXXXXX"))
        nftw(r->tmpdir, rm_one, 4, FTW_DEPTH | FTW_PHYS);
    vd_hv_close(r->hv);
    free(r->conf_old);
    free(r->conf_new);
    free(r);
    free(conf);
    return rc;
}
