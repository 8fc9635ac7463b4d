/* SPDX-License-Identifier: MIT */
/*
 * Profiles (lib/profile) and bootstrapping (lib/bootstrap): the strict
 * parser, inheritance and its loops, the checks outside the file (base
 * image, cloud-init's own schema check), the domain XML read back with
 * libxml2's XPath, vdesk.conf's desktops = rewritten byte for byte, and
 * vdeskctl bootstrap itself on libvirt's test driver (test:///default, its
 * pool default-pool): made, idempotent, refused for another profile, and
 * every step undone when a later one fails. The test driver takes no
 * volume upload: the seed goes through the seed_put seam, which checks the
 * image xorriso made (ISO 9660, label cidata, the NoCloud files).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bootstrap.h"
#include "child.h"
#include "hv.h"
#include "profile.h"

#define URI "test:///default"
#define POOL "default-pool"

typedef struct fixture {
    char dir[64];        /* profiles, images, vdesk.conf, state */
    char conf[128];
    vd_hv *hv;           /* keeps the test driver's state alive */
    vd_profile *p;
    const char *fail_step;
    const char *node;    /* n2 (no PCI addresses): the engine can start desktops */
    int seeds;           /* seed images seen by seed_put */
    char seed_text[4096];
} fixture;

static void put(const fixture *f, const char *file, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", f->dir, file);
    FILE *o = fopen(path, "w");
    assert_non_null(o);
    assert_true(fputs(text, o) >= 0);
    assert_int_equal(fclose(o), 0);
}

static char *slurp(const char *path)
{
    FILE *in = fopen(path, "r");
    assert_non_null(in);
    char *buf = calloc(1, 65536);
    assert_non_null(buf);
    size_t n = fread(buf, 1, 65535, in);
    buf[n] = '\0';
    fclose(in);
    return buf;
}

#define CONF_TEXT \
    "# the bed's vdesk.conf\n" \
    "[vdesk]\n" \
    "state_dir = %s/state\n" \
    "profile_dir = %s\n" \
    "\n" \
    "[node n1]\n" \
    "uri = " URI "\n" \
    "domain = test   ; the test driver's own domain\n" \
    "device = gpu ua-gpu0 0000:65:00.0\n" \
    "device = ib ua-ib0\n" \
    "[node n2]\n" \
    "uri = " URI "\n" \
    "domain = test\n" \
    "device = gpu ua-gpu0\n"

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    vd_err err;
    if (!f || !(f->p = malloc(sizeof(*f->p))))
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/vdesk-profile-XXXXXX");
    if (!mkdtemp(f->dir) || vd_hv_open(URI, &f->hv, &err) < 0)
        return -1;
    snprintf(f->conf, sizeof(f->conf), "%s/vdesk.conf", f->dir);
    f->node = "n2";
    char text[1024];
    snprintf(text, sizeof(text), CONF_TEXT, f->dir, f->dir);
    put(f, "vdesk.conf", text);
    /* A qcow2 header: magic, version 3, the virtual size (16 MiB) at byte 24. */
    unsigned char h[512] = { 'Q', 'F', 'I', 0xfb, 0, 0, 0, 3 };
    h[28] = 0x01;
    char path[128];
    snprintf(path, sizeof(path), "%s/base.qcow2", f->dir);
    FILE *o = fopen(path, "w");
    if (!o || fwrite(h, 1, sizeof(h), o) != sizeof(h) || fclose(o) != 0)
        return -1;
    char base[512];
    snprintf(base, sizeof(base), "[profile]\ndescription = the base\nbase_image = %s\nmemory = 512\n"
             "pool = " POOL "\ndomain_type = qemu\ndisplay = vnc\n", path);
    put(f, "base.profile", base);
    *state = f;
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    fixture *f = *state;
    vd_hv_close(f->hv);
    nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f->p);
    free(f);
    return 0;
}

static void load_ok(fixture *f, const char *name)
{
    vd_err err;
    if (vd_profile_load(f->dir, name, f->p, &err) < 0)
        fail_msg("%s", err.msg);
}

/* Profile `name` with `text` must be refused with `msg` after FILE:LINE. */
static void refused(fixture *f, const char *text, const char *where, const char *msg)
{
    vd_err err = { "" };
    char want[256];
    put(f, "bad.profile", text);
    if (vd_profile_load(f->dir, "bad", f->p, &err) == 0)
        fail_msg("accepted: %s", text);
    snprintf(want, sizeof(want), "%s/%s", f->dir, where);
    if (strncmp(err.msg, want, strlen(want)) || !strstr(err.msg, msg))
        fail_msg("expected '%s...%s' in '%s'", want, msg, err.msg);
}

/* --- parsing and inheritance ------------------------------------------- */

static void inherit_chain_resolves_key_by_key(void **state)
{
    fixture *f = *state;
    char where[256], want[256];
    put(f, "gpu.profile", "[profile]\ninherit = base\ndevices = gpu, ib\nmemory = 4096\n");
    put(f, "course.profile", "; a course\n[profile]\ninherit = gpu   # the GPU one\ndescription = "
        "Course\nvcpus = 4\ncpus = 2-3\nuser_data = course.yaml\nnetwork = bridge:br0\n");
    load_ok(f, "course");
    assert_int_equal(f->p->nchain, 3);
    assert_string_equal(f->p->inherit, "gpu");
    assert_int_equal(f->p->memory_mib, 4096);          /* gpu's, over base's 512 */
    assert_int_equal(f->p->vcpus, 4);
    assert_int_equal(f->p->devices, (1u << VD_ROLE_GPU) | (1u << VD_ROLE_IB));
    assert_int_equal(f->p->display, VD_DISPLAY_VNC);   /* base's */
    assert_int_equal(f->p->net, VD_NET_BRIDGE);
    assert_string_equal(f->p->net_name, "br0");
    assert_string_equal(f->p->pool, POOL);
    snprintf(want, sizeof(want), "%s/course.yaml", f->dir);
    assert_string_equal(f->p->user_data, want);        /* relative: the profile directory's */
    snprintf(want, sizeof(want), "%s/gpu.profile:4", f->dir);
    assert_string_equal(vd_profile_origin(f->p, VD_PK_MEMORY, where, sizeof(where)), want);
    snprintf(want, sizeof(want), "%s/base.profile:3", f->dir);
    assert_string_equal(vd_profile_origin(f->p, VD_PK_BASE_IMAGE, where, sizeof(where)), want);
    assert_string_equal(vd_profile_origin(f->p, VD_PK_URI, where, sizeof(where)), "default");
    assert_string_equal(f->p->raw[VD_PK_POOL], POOL);
    char **names;
    int n;
    vd_err err;
    if (vd_profile_list(f->dir, &names, &n, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(n, 3);
    assert_string_equal(names[0], "base");
    assert_string_equal(names[2], "gpu");
    vd_profile_names_free(names, n);
}

static void inheritance_loops_and_depth_are_refused(void **state)
{
    fixture *f = *state;
    put(f, "a.profile", "[profile]\ninherit = b\n");
    put(f, "b.profile", "[profile]\n\ninherit = a\n");
    refused(f, "[profile]\ninherit = a\n", "b.profile:3", "inherit = a makes a loop: a -> b -> a");
    refused(f, "[profile]\ninherit = bad\n", "bad.profile:2", "makes a loop: bad -> bad");
    refused(f, "[profile]\ninherit = nope\n", "bad.profile:2", "inherit = nope: no such profile");
    /* l0 -> l1 -> ... -> l8: nine files. */
    for (int i = 0; i < 9; i++) {
        char file[32], text[64];
        snprintf(file, sizeof(file), "l%d.profile", i);
        if (i < 8)
            snprintf(text, sizeof(text), "[profile]\ninherit = l%d\n", i + 1);
        else
            snprintf(text, sizeof(text), "[profile]\n");
        put(f, file, text);
    }
    refused(f, "[profile]\ninherit = l1\n", "l7.profile:2", "more than 8 profiles in one chain");
}

static void bad_files_name_line_and_fix(void **state)
{
    fixture *f = *state;
    refused(f, "[profile]\nbase_image = /x\nfoo = 1\n", "bad.profile:3", "unknown key 'foo' in [profile] (keys: inherit,");
    refused(f, "[profile]\nmemory = 1024\nmemory = 2048\n", "bad.profile:3", "key 'memory' given twice (first at line 2)");
    refused(f, "memory = 1\n[profile]\n", "bad.profile:1", "comes before [profile]");
    refused(f, "[profile]\n[vdesk]\n", "bad.profile:2", "unknown section [vdesk]: a profile has one section");
    refused(f, "[profile]\nmemory = 0x100\n", "bad.profile:2", "bad value 'memory = 0x100': must be the desktop's memory in MiB");
    refused(f, "[profile]\nvcpus = 0\n", "bad.profile:2", "from 1 to 512");
    refused(f, "[profile]\ncpus = 3-1\n", "bad.profile:2", "range 3-1 goes down");
    refused(f, "[profile]\ndevices = gpu, gpu\n", "bad.profile:2", "gpu, ib, other), each once");
    refused(f, "[profile]\ndisplay = sdl\n", "bad.profile:2", "must be spice, vnc or none");
    refused(f, "[profile]\nnetwork = default\n", "bad.profile:2", "none, network:NAME");
    refused(f, "[profile]\nbase_image = images/a.qcow2\n", "bad.profile:2", "must be an absolute path");
    refused(f, "[profile]\ndomain_type = xen\n", "bad.profile:2", "must be kvm");
    refused(f, "[profile]\nuri = system\n", "bad.profile:2", "libvirt URI");
    refused(f, "[profile]\njust words\n", "bad.profile:2", "syntax error");
    refused(f, "[profile]\ninherit = base\ninitrd = /boot/initrd\n", "bad.profile:3",
            "initrd is set but kernel is not");
    refused(f, "[profile]\nmemory = 1024\n", "bad.profile", "no base_image in the profile; add base_image =");
}

typedef struct said {
    int problems, notes;
    char text[4096];
} said;

static void collect(void *ctx, int problem, const char *line)
{
    said *s = ctx;
    s->problems += problem;
    s->notes += !problem;
    size_t n = strlen(s->text);
    snprintf(s->text + n, sizeof(s->text) - n, "%s%s\n", problem ? "(!) " : "ok ", line);
}

static said check(fixture *f, const char *name, const vd_conf *conf)
{
    said s = { 0, 0, "" };
    vd_err err;
    load_ok(f, name);
    int n = vd_profile_check(f->p, conf, 0, NULL, 30000, collect, &s, &err);
    assert_int_equal(n, s.problems);
    return s;
}

static void check_finds_a_missing_base_image(void **state)
{
    fixture *f = *state;
    put(f, "gone.profile", "[profile]\ninherit = base\n\nbase_image = /nonexistent/x.qcow2\n");
    said s = check(f, "gone", NULL);
    assert_int_equal(s.problems, 1);
    char want[256];
    snprintf(want, sizeof(want), "(!) %s/gone.profile:4: base_image = /nonexistent/x.qcow2: "
             "/nonexistent/x.qcow2: No such file or directory; give the path of", f->dir);
    if (!strstr(s.text, want))
        fail_msg("expected '%s' in:\n%s", want, s.text);
    s = check(f, "base", NULL);
    assert_int_equal(s.problems, 0);
    assert_non_null(strstr(s.text, "a qcow2 image of 16 MiB"));
}

/* cloud-init's own schema: a list expected, a number given. Without
 * cloud-init the check says it did not check and how to install it. */
static void check_runs_cloud_init_on_the_user_data(void **state)
{
    fixture *f = *state;
    char prog[256];
    put(f, "bad.yaml", "#cloud-config\npackages:\n  - vim\nruncmd: 5\n");
    put(f, "good.yaml", "#cloud-config\nruncmd:\n  - [echo, hello]\n");
    put(f, "ud.profile", "[profile]\ninherit = base\nuser_data = bad.yaml\n");
    put(f, "ok.profile", "[profile]\ninherit = base\nuser_data = good.yaml\n");
    said s = check(f, "ud", NULL);
    if (vd_child_which("cloud-init", prog, sizeof(prog)) < 0) {
        assert_int_equal(s.problems, 0);
        assert_non_null(strstr(s.text, "was not schema-checked: cloud-init is not installed; install "
                               "Debian's cloud-init package (apt-get install cloud-init)"));
        return;
    }
    char want[512];
    snprintf(want, sizeof(want), "(!) %s/ud.profile:3: user_data = bad.yaml: %s/bad.yaml:4: "
             "cloud-init's schema refuses it: ", f->dir, f->dir);
    if (s.problems != 1 || !strstr(s.text, want) || !strstr(s.text, "runcmd: 5 is not of type 'array'"))
        fail_msg("expected '%s' and cloud-init's message in:\n%s", want, s.text);
    s = check(f, "ok", NULL);
    if (s.problems)
        fail_msg("%s", s.text);
    assert_non_null(strstr(s.text, "valid for cloud-init's schema"));
}

static void check_notes_devices_the_node_lacks(void **state)
{
    fixture *f = *state;
    vd_conf conf;
    vd_err err;
    if (vd_conf_load(f->conf, "n1", &conf, &err) < 0)
        fail_msg("%s", err.msg);
    put(f, "dev.profile", "[profile]\ninherit = base\ndevices = gpu,ib,other\n");
    said s = check(f, "dev", &conf);
    assert_int_equal(s.problems, 0);
    assert_non_null(strstr(s.text, "ib device ua-ib0 has no PCI address"));
    assert_non_null(strstr(s.text, "node n1 has no other device"));
    assert_null(strstr(s.text, "ua-gpu0"));
}

/* --- the domain XML, read back ------------------------------------------ */

static char *xp(xmlDocPtr doc, const char *expr)
{
    xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
    assert_non_null(ctx);
    assert_int_equal(xmlXPathRegisterNs(ctx, BAD_CAST "v", BAD_CAST VD_BOOTSTRAP_NS), 0);
    xmlXPathObjectPtr o = xmlXPathEvalExpression(BAD_CAST expr, ctx);
    assert_non_null(o);
    xmlChar *s = xmlXPathCastToString(o);
    char *out = strdup((const char *)s);
    xmlFree(s);
    xmlXPathFreeObject(o);
    xmlXPathFreeContext(ctx);
    return out;
}

static void assert_xp(xmlDocPtr doc, const char *expr, const char *want)
{
    char *got = xp(doc, expr);
    if (strcmp(got, want))
        fail_msg("%s: expected '%s', got '%s'", expr, want, got);
    free(got);
}

static void domain_xml_has_what_the_profile_says(void **state)
{
    fixture *f = *state;
    vd_conf conf;
    vd_err err;
    char *xml, notes[512];
    if (vd_conf_load(f->conf, "n1", &conf, &err) < 0)
        fail_msg("%s", err.msg);
    put(f, "x.profile", "[profile]\ninherit = base\nvcpus = 2\ncpus = 2-3\ndevices = gpu, ib\n"
        "display = spice\nnetwork = network:default\nkernel = /boot/vmlinuz\ninitrd = /boot/initrd\n"
        "cmdline = console=ttyS0 quiet\ndescription = a <test> & more\n");
    load_ok(f, "x");
    if (vd_bootstrap_domain_xml(f->p, &conf, "proj-x", "6a2c2b4e-0d6e-4f43-9a47-3e1f2b0c9d11",
                                "/pool/proj-x.qcow2", "/pool/proj-x-seed.iso", "/pool/proj-x-console.log",
                                &xml, notes, sizeof(notes), &err) < 0)
        fail_msg("%s", err.msg);
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "d.xml", NULL, XML_PARSE_NONET);
    assert_non_null(doc);
    assert_xp(doc, "string(/domain/@type)", "qemu");
    assert_xp(doc, "string(/domain/name)", "proj-x");
    assert_xp(doc, "string(/domain/uuid)", "6a2c2b4e-0d6e-4f43-9a47-3e1f2b0c9d11");
    assert_xp(doc, "string(/domain/description)", "a <test> & more");
    assert_xp(doc, "string(/domain/metadata/v:bootstrap/@profile)", "x");
    assert_xp(doc, "concat(/domain/memory, /domain/memory/@unit)", "512MiB");
    assert_xp(doc, "string(/domain/vcpu)", "2");
    assert_xp(doc, "count(/domain/cputune/vcpupin[@cpuset='2-3'])", "2");
    assert_xp(doc, "string(/domain/cputune/emulatorpin/@cpuset)", "2-3");
    assert_xp(doc, "string(/domain/os/kernel)", "/boot/vmlinuz");
    assert_xp(doc, "string(/domain/os/cmdline)", "console=ttyS0 quiet");
    assert_xp(doc, "string(/domain/devices/disk[target/@dev='vda']/source/@file)", "/pool/proj-x.qcow2");
    assert_xp(doc, "string(/domain/devices/disk[target/@dev='vda']/driver/@type)", "qcow2");
    assert_xp(doc, "count(/domain/devices/disk[target/@dev='vdb']/readonly)", "1");
    assert_xp(doc, "string(/domain/devices/disk[target/@dev='vdb']/source/@file)", "/pool/proj-x-seed.iso");
    assert_xp(doc, "count(/domain/devices/hostdev)", "1");
    assert_xp(doc, "string(/domain/devices/hostdev[alias/@name='ua-gpu0']/source/address/@bus)", "0x65");
    assert_xp(doc, "string(/domain/devices/hostdev/@managed)", "no");
    assert_non_null(strstr(notes, "ib device ua-ib0 skipped: no PCI address"));
    assert_xp(doc, "string(/domain/devices/graphics/@type)", "spice");
    assert_xp(doc, "string(/domain/devices/graphics/@autoport)", "yes");
    assert_xp(doc, "string(/domain/devices/graphics/listen/@address)", "127.0.0.1");
    assert_xp(doc, "string(/domain/devices/video/model/@type)", "qxl");
    assert_xp(doc, "string(/domain/devices/interface[@type='network']/source/@network)", "default");
    assert_xp(doc, "string(/domain/devices/serial[@type='file']/source/@path)", "/pool/proj-x-console.log");
    xmlFreeDoc(doc);
    free(xml);
}

/* --- vdesk.conf ------------------------------------------------------------ */

static void conf_rewrite_keeps_every_other_byte(void **state)
{
    fixture *f = *state;
    char *old, *now;
    size_t oldlen;
    vd_err err;
    const char *text = "[vdesk]\n# keep me ; and me\n[node n1]\nuri = " URI "\ndomain = test\n"
                       "desktops = a,b   # two\n[node n2]\nuri = " URI "\ndomain = d2\n[node n3]\n"
                       "uri = " URI "\ndomain = d3";
    put(f, "c.conf", text);
    char path[128];
    snprintf(path, sizeof(path), "%s/c.conf", f->dir);
    chmod(path, 0640);
    if (vd_conf_add_desktop(path, "n1", "proj-x", &old, &oldlen, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(oldlen, strlen(text));
    assert_memory_equal(old, text, oldlen);
    free(old);
    now = slurp(path);
    assert_non_null(strstr(now, "\ndesktops = a,b, proj-x   # two\n[node n2]"));
    free(now);
    /* No desktops = yet; the section header is the file's last line. */
    if (vd_conf_add_desktop(path, "n2", "proj-y", &old, &oldlen, &err) < 0)
        fail_msg("%s", err.msg);
    free(old);
    if (vd_conf_add_desktop(path, "n3", "proj-z", &old, &oldlen, &err) < 0)
        fail_msg("%s", err.msg);
    free(old);
    now = slurp(path);
    assert_string_equal(now, "[vdesk]\n# keep me ; and me\n[node n1]\nuri = " URI "\ndomain = test\n"
                        "desktops = a,b, proj-x   # two\n[node n2]\ndesktops = proj-y\nuri = " URI
                        "\ndomain = d2\n[node n3]\ndesktops = proj-z\nuri = " URI "\ndomain = d3");
    free(now);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    assert_int_equal(vd_conf_add_desktop(path, "n9", "x", &old, &oldlen, &err), -1);
    assert_non_null(strstr(err.msg, "no [node n9] section"));
}

/* Review finding: the rewrite replaced a link to a shared vdesk.conf with
 * a file of its own, and root's umask cut the mode users read it by. */
static void conf_rewrite_follows_a_link_and_keeps_the_mode(void **state)
{
    fixture *f = *state;
    char *old;
    size_t oldlen;
    vd_err err;
    char shared[128], link[128];
    put(f, "shared.conf", "[node n1]\nuri = " URI "\ndomain = test\n");
    snprintf(shared, sizeof(shared), "%s/shared.conf", f->dir);
    snprintf(link, sizeof(link), "%s/linked.conf", f->dir);
    assert_int_equal(chmod(shared, 0644), 0);
    assert_int_equal(symlink(shared, link), 0);
    mode_t mask = umask(077);
    int rc = vd_conf_add_desktop(link, "n1", "proj-x", &old, &oldlen, &err);
    umask(mask);
    if (rc < 0)
        fail_msg("%s", err.msg);
    free(old);
    struct stat st;
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(stat(shared, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    char *now = slurp(shared);
    assert_non_null(strstr(now, "desktops = proj-x\n"));
    free(now);
}

/* --- bootstrap on the test driver ------------------------------------------ */

/* The seed as xorriso made it: ISO 9660 ("CD001" at 0x8001), volume id
 * cidata at 0x8028, the NoCloud files' contents inside. */
static int seed_put(void *ctx, vd_hv *hv, const char *pool, const char *vol, const char *file, vd_err *err)
{
    fixture *f = ctx;
    (void)hv;
    (void)pool;
    (void)vol;
    FILE *in = fopen(file, "r");
    static char img[1 << 20];
    size_t n = in ? fread(img, 1, sizeof(img), in) : 0;
    if (in)
        fclose(in);
    if (n < 0x8030 || memcmp(img + 0x8001, "CD001", 5) || memcmp(img + 0x8028, "cidata", 6))
        return vd_err_set(err, "%s: not an ISO 9660 image labelled cidata", file);
    const char *want[] = { "instance-id: iid-", "local-hostname: proj-x", "version: 2", "#cloud-config" };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!memmem(img, n, want[i], strlen(want[i])))
            return vd_err_set(err, "%s: no '%s' in the seed", file, want[i]);
    const char *iid = memmem(img, n, "instance-id: ", 13);
    snprintf(f->seed_text, sizeof(f->seed_text), "%.*s", (int)strcspn(iid, "\n"), iid);
    f->seeds++;
    return 0;
}

static int before_step(void *ctx, const char *step, vd_err *err)
{
    fixture *f = ctx;
    if (f->fail_step && !strcmp(step, f->fail_step))
        return vd_err_set(err, "injected failure");
    return 0;
}

static int bootstrap(fixture *f, const char *profile, vd_err *err)
{
    vd_bootstrap_opts o = { .conf_path = f->conf, .node = f->node, .timeout_ms = 30000, .ctx = f,
                            .seed_put = seed_put, .before_step = before_step };
    load_ok(f, profile);
    return vd_bootstrap(f->p, "proj-x", &o, err);
}

static int vol_exists(fixture *f, const char *vol)
{
    char path[256];
    int exists = -1;
    vd_err err;
    if (vd_hv_vol_path(f->hv, POOL, vol, path, sizeof(path), &exists, &err) < 0)
        fail_msg("%s", err.msg);
    return exists;
}

static vd_dom_state state_of(fixture *f, const char *dom)
{
    vd_dom_state s;
    vd_err err;
    if (vd_hv_dom_state(f->hv, dom, &s, &err) < 0)
        fail_msg("%s", err.msg);
    return s;
}

static void bootstrap_makes_registers_and_boots(void **state)
{
    fixture *f = *state;
    vd_err err;
    char *before = slurp(f->conf);
    put(f, "good.yaml", "#cloud-config\nruncmd:\n  - [echo, hello]\n");
    put(f, "proj.profile", "[profile]\ninherit = base\nuser_data = good.yaml\ndevices = gpu\n");
    if (bootstrap(f, "proj", &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(f->seeds, 1);
    assert_int_equal(state_of(f, "proj-x"), VD_DOM_RUNNING);
    assert_int_equal(state_of(f, "test"), VD_DOM_SHUTOFF);   /* kept in its managed save */
    assert_int_equal(vol_exists(f, "proj-x.qcow2"), 1);
    assert_int_equal(vol_exists(f, "proj-x-seed.iso"), 1);
    char *xml;
    if (vd_hv_dom_xml(f->hv, "proj-x", 1, &xml, &err) < 0)
        fail_msg("%s", err.msg);
    char iid[128];
    snprintf(iid, sizeof(iid), "%.60s", f->seed_text + strlen("instance-id: iid-"));
    assert_non_null(strstr(xml, iid));          /* the instance-id is the domain's UUID */
    assert_null(strstr(xml, "ua-gpu0"));        /* n2's GPU has no PCI address: skipped */
    free(xml);
    /* vdesk.conf: one line changed, read back by the parser. */
    char *after = slurp(f->conf);
    assert_non_null(strstr(after, "[node n2]\ndesktops = proj-x\nuri = "));
    vd_conf conf;
    if (vd_conf_load(f->conf, "n2", &conf, &err) < 0)
        fail_msg("%s", err.msg);
    assert_true(vd_conf_offers(&conf, "proj-x"));
    assert_string_equal(conf.domain, "proj-x");   /* selected */
    /* Again: nothing changes. */
    if (bootstrap(f, "proj", &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(f->seeds, 1);
    char *again = slurp(f->conf);
    assert_string_equal(again, after);
    /* Another profile for the same name: refused, nothing touched. */
    put(f, "other.profile", "[profile]\ninherit = base\n");
    assert_int_equal(bootstrap(f, "other", &err), -1);
    assert_non_null(strstr(err.msg, "domain proj-x exists on test:///default, made from profile proj, not other"));
    free(again);
    again = slurp(f->conf);
    assert_string_equal(again, after);
    assert_string_not_equal(before, after);
    free(before);
    free(after);
    free(again);
}

/* Each step fails in turn: what the earlier ones made is gone again. */
static void bootstrap_undoes_every_step_on_failure(void **state)
{
    fixture *f = *state;
    static const char *steps[] = { "overlay", "seed", "define", "conf", "boot" };
    char *before = slurp(f->conf);
    vd_err err;
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        f->fail_step = steps[i];
        err.msg[0] = '\0';
        assert_int_equal(bootstrap(f, "base", &err), -1);
        char want[64];
        snprintf(want, sizeof(want), "step %s: injected failure", steps[i]);
        if (!strstr(err.msg, want) || strstr(err.msg, "could not undo"))
            fail_msg("step %s: %s", steps[i], err.msg);
        assert_int_equal(state_of(f, "proj-x"), VD_DOM_MISSING);
        assert_int_equal(vol_exists(f, "proj-x.qcow2"), 0);
        assert_int_equal(vol_exists(f, "proj-x-seed.iso"), 0);
        assert_int_equal(state_of(f, "test"), VD_DOM_RUNNING);
        char *now = slurp(f->conf);
        assert_string_equal(now, before);
        free(now);
    }
    /* And then it works. */
    f->fail_step = NULL;
    if (bootstrap(f, "base", &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(state_of(f, "proj-x"), VD_DOM_RUNNING);
    free(before);
}

/* n1's GPU has a PCI address this machine lacks: the engine cannot start
 * the new desktop (nor bring the old one back), and bootstrap takes back
 * what it made. */
static void bootstrap_undoes_a_boot_that_fails(void **state)
{
    fixture *f = *state;
    vd_err err;
    char *before = slurp(f->conf);
    put(f, "gpu.profile", "[profile]\ninherit = base\ndevices = gpu\n");
    f->node = "n1";
    assert_int_equal(bootstrap(f, "gpu", &err), -1);
    if (!strstr(err.msg, "boot: proj-x did not start") || strstr(err.msg, "could not undo"))
        fail_msg("%s", err.msg);
    assert_int_equal(state_of(f, "proj-x"), VD_DOM_MISSING);
    assert_int_equal(vol_exists(f, "proj-x.qcow2"), 0);
    assert_int_equal(vol_exists(f, "proj-x-seed.iso"), 0);
    char *now = slurp(f->conf);
    assert_string_equal(now, before);
    free(now);
    free(before);
}

static void bootstrap_refuses_before_making_anything(void **state)
{
    fixture *f = *state;
    vd_err err;
    vd_bootstrap_opts o = { .conf_path = f->conf, .node = "n1", .timeout_ms = 30000, .ctx = f,
                            .seed_put = seed_put };
    put(f, "gone.profile", "[profile]\ninherit = base\nbase_image = /nonexistent.qcow2\n");
    load_ok(f, "gone");
    assert_int_equal(vd_bootstrap(f->p, "proj-x", &o, &err), -1);
    assert_non_null(strstr(err.msg, "gone.profile:3: base_image = /nonexistent.qcow2"));
    load_ok(f, "base");
    assert_int_equal(vd_bootstrap(f->p, "test", &o, &err), -1);
    assert_non_null(strstr(err.msg, "is node n1's own desktop"));
    assert_int_equal(vd_bootstrap(f->p, "../x", &o, &err), -1);
    assert_non_null(strstr(err.msg, "desktop name '../x'"));
    put(f, "uri.profile", "[profile]\ninherit = base\nuri = qemu:///system\n");
    load_ok(f, "uri");
    assert_int_equal(vd_bootstrap(f->p, "proj-x", &o, &err), -1);
    assert_non_null(strstr(err.msg, "uri = qemu:///system is not node n1's"));
    /* Someone else's volume of that name. */
    char path[256];
    if (vd_hv_vol_create(f->hv, POOL, "<volume><name>proj-x.qcow2</name><capacity>1024</capacity></volume>",
                         path, sizeof(path), &err) < 0)
        fail_msg("%s", err.msg);
    load_ok(f, "base");
    assert_int_equal(vd_bootstrap(f->p, "proj-x", &o, &err), -1);
    assert_non_null(strstr(err.msg, "already has a volume proj-x.qcow2"));
    assert_int_equal(vol_exists(f, "proj-x.qcow2"), 1);   /* not ours: kept */
    assert_int_equal(state_of(f, "proj-x"), VD_DOM_MISSING);
}

static void image_probe_reads_format_and_size(void **state)
{
    fixture *f = *state;
    const char *fmt;
    unsigned long long bytes;
    vd_err err;
    char path[128];
    snprintf(path, sizeof(path), "%s/base.qcow2", f->dir);
    if (vd_image_probe(path, &fmt, &bytes, &err) < 0)
        fail_msg("%s", err.msg);
    assert_string_equal(fmt, "qcow2");
    assert_int_equal(bytes, 16ull << 20);
    put(f, "raw.img", "0123456789");
    snprintf(path, sizeof(path), "%s/raw.img", f->dir);
    if (vd_image_probe(path, &fmt, &bytes, &err) < 0)
        fail_msg("%s", err.msg);
    assert_string_equal(fmt, "raw");
    assert_int_equal(bytes, 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(inherit_chain_resolves_key_by_key, setup, teardown),
        cmocka_unit_test_setup_teardown(inheritance_loops_and_depth_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_files_name_line_and_fix, setup, teardown),
        cmocka_unit_test_setup_teardown(check_finds_a_missing_base_image, setup, teardown),
        cmocka_unit_test_setup_teardown(check_runs_cloud_init_on_the_user_data, setup, teardown),
        cmocka_unit_test_setup_teardown(check_notes_devices_the_node_lacks, setup, teardown),
        cmocka_unit_test_setup_teardown(domain_xml_has_what_the_profile_says, setup, teardown),
        cmocka_unit_test_setup_teardown(conf_rewrite_keeps_every_other_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(conf_rewrite_follows_a_link_and_keeps_the_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(image_probe_reads_format_and_size, setup, teardown),
        cmocka_unit_test_setup_teardown(bootstrap_refuses_before_making_anything, setup, teardown),
        cmocka_unit_test_setup_teardown(bootstrap_makes_registers_and_boots, setup, teardown),
        cmocka_unit_test_setup_teardown(bootstrap_undoes_every_step_on_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(bootstrap_undoes_a_boot_that_fails, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
