/* SPDX-License-Identifier: MIT */
#include "conf.h"
#include "cpulist.h"
#include "pci.h"
#include "statedir.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

const char *vd_conf_path(void)
{
    const char *p = getenv("VDESK_CONF");
    return p && *p ? p : VD_CONF_DEFAULT;
}

const char *vd_node_name(char *buf, size_t size)
{
    const char *n = getenv("SLURMD_NODENAME");
    if (n && *n) {
        snprintf(buf, size, "%s", n);
        return buf;
    }
    if (gethostname(buf, size) < 0)
        snprintf(buf, size, "localhost");
    buf[size - 1] = '\0';
    buf[strcspn(buf, ".")] = '\0';
    return buf;
}

const char *vd_role_name(vd_role role)
{
    static const char *names[] = { "gpu", "ib", "other" };
    return role <= VD_ROLE_OTHER ? names[role] : "invalid";
}

/* A libvirt domain name also names the save file STATE_DIR/DOMAIN.save, so
 * it must not be able to leave STATE_DIR. */
#define DOMAIN_MAX 64
#define DOMAIN_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
#define DIGITS "0123456789"
#define MAX_KEYS 32   /* bits of struct parse's `seen` */
#define SECTION_MAX 128

_Static_assert(DOMAIN_MAX < sizeof(((vd_conf *)0)->domain), "domain field too small");

enum section_kind { SEC_NONE, SEC_SITE, SEC_NODE, SEC_UNKNOWN };

struct section_seen {
    char name[SECTION_MAX];
    int line;
};

/* Parser state. The reader (read_line) sees every line before inih does:
 * it counts lines, reads section headers and strips comments, because
 * inih calls the handler only for keys and reports only a line number. */
struct parse {
    vd_conf *conf;
    const char *want_node;
    FILE *file;
    char *buf;                 /* getline's */
    size_t bufsize;
    int line;                  /* the line inih is working on */
    char section[SECTION_MAX]; /* the current section, uncut (inih cuts at 49) */
    enum section_kind kind;
    int section_line;
    int wanted;                /* the current section is want_node's */
    unsigned seen;             /* bit per key of the current section */
    int key_line[MAX_KEYS];
    struct section_seen *sections;
    size_t nsections, capsections;
    int node_found;
    int grace_line;            /* where min_shutdown_grace is, 0: not given */
    vd_conf scratch;           /* values of another node's section, checked and dropped */
    int msg_line;
    char msg[sizeof(((vd_err *)0)->msg)];
};

static int fail_at(struct parse *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Keeps the first message, the one the reader stops at; returns 0, inih's
 * "error on this line". */
static int fail_at(struct parse *p, int line, const char *fmt, ...)
{
    if (!p->msg[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
        va_end(ap);
        p->msg_line = line;
    }
    return 0;
}

#define fail(p, ...) fail_at((p), (p)->line, __VA_ARGS__)

/* Digits only: strtol alone takes blanks and a sign, and a leading zero
 * reads as octal to some people (and to strtol with base 0). */
static int parse_uint(const char *v, int lo, int hi, int *out)
{
    if (!*v || strspn(v, DIGITS) != strlen(v) || (v[0] == '0' && v[1]))
        return -1;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < lo || n > hi)
        return -1;
    *out = (int)n;
    return 0;
}

static int copy_str(char *dst, size_t size, const char *v)
{
    size_t len = strlen(v);
    if (len >= size)
        return -1;
    memcpy(dst, v, len + 1);
    return 0;
}

/* The kernel's spelling, DDDD:BB:DD.F in lower case: the address names a
 * directory under /sys/bus/pci/devices, and is compared as a string. */
static int valid_pci(const char *s)
{
    static const char form[] = "xxxx:xx:dx.f";   /* d: device's high digit, 0 or 1 */
    if (strlen(s) != sizeof(form) - 1)
        return 0;
    for (size_t i = 0; form[i]; i++) {
        int ok = form[i] == 'x' ? isdigit((unsigned char)s[i]) || (s[i] >= 'a' && s[i] <= 'f')
               : form[i] == 'd' ? s[i] == '0' || s[i] == '1'
               : form[i] == 'f' ? s[i] >= '0' && s[i] <= '7'
               : s[i] == form[i];
        if (!ok)
            return 0;
    }
    return 1;
}

static int parse_role(const char *role, vd_role *out)
{
    static const char *names[] = { [VD_ROLE_GPU] = "gpu", [VD_ROLE_IB] = "ib", [VD_ROLE_OTHER] = "other" };
    for (int r = VD_ROLE_GPU; r <= VD_ROLE_OTHER; r++)
        if (!strcmp(role, names[r])) {
            *out = (vd_role)r;
            return 0;
        }
    return -1;
}

static int parse_device(const char *v, vd_device *dev, char *why, size_t whylen)
{
    char role[16] = "", alias[64] = "", pci[16] = "", extra[2] = "";
    int n = sscanf(v, "%15s %63s %15s %1s", role, alias, pci, extra);
    if (n < 2 || n > 3) {
        snprintf(why, whylen, "expected ROLE ALIAS [PCI]");
        return -1;
    }
    if (parse_role(role, &dev->role) < 0) {
        snprintf(why, whylen, "role '%s' is not one of gpu, ib, other", role);
        return -1;
    }
    if (strncmp(alias, "ua-", 3) != 0 || strspn(alias, "abcdefghijklmnopqrstuvwxyz"
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != strlen(alias) || !alias[3]) {
        snprintf(why, whylen, "alias '%s' must be a libvirt user alias: 'ua-' and letters, digits, '-', '_'", alias);
        return -1;
    }
    if (n == 3 && !valid_pci(pci)) {
        snprintf(why, whylen, "PCI address '%s' must be in the kernel's canonical form DDDD:BB:DD.F "
                 "(lower-case hex: 4-digit domain, 2-digit bus, device 00-1f, function 0-7), "
                 "e.g. 0000:65:00.0 as in /sys/bus/pci/devices", pci);
        return -1;
    }
    memcpy(dev->alias, alias, sizeof(dev->alias));
    memcpy(dev->pci, pci, sizeof(dev->pci));
    return 0;
}

/* Setters of the keys that are neither paths nor numbers. */

static int set_policy(vd_conf *c, const char *v, char *why, size_t whylen)
{
    vd_mode_set set;
    vd_err err;
    if (vd_mode_set_parse(v, &set, &err) < 0) {
        snprintf(why, whylen, "%s", err.msg);
        return -1;
    }
    if (set & (VD_MODE_BIT(VD_MODE_AUTO) | VD_MODE_BIT(VD_MODE_SHRINK))) {
        snprintf(why, whylen, "the chain may name suspend, save, migrate, shutdown (not auto or shrink)");
        return -1;
    }
    /* vd_mode_set_parse checked the names; keep their order. */
    char copy[128];
    snprintf(copy, sizeof(copy), "%s", v);
    c->npolicy = 0;
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (c->npolicy == VD_MAX_POLICY) {
            snprintf(why, whylen, "at most %d modes", VD_MAX_POLICY);
            return -1;
        }
        if (vd_mode_parse(t, &c->policy[c->npolicy++], &err) < 0) {
            snprintf(why, whylen, "%s", err.msg);
            return -1;
        }
    }
    return 0;
}

static int set_allow(vd_conf *c, const char *v, char *why, size_t whylen)
{
    vd_err err;
    if (vd_mode_set_parse(v, &c->allow, &err) == 0)
        return 0;
    snprintf(why, whylen, "%s", err.msg);
    return -1;
}

/* value: the first of two words, 0 or 1. */
static int set_choice(int *field, const char *v, const char *w0, const char *w1, char *why,
                      size_t whylen)
{
    if (!strcmp(v, w0) || !strcmp(v, w1)) {
        *field = !strcmp(v, w1);
        return 0;
    }
    snprintf(why, whylen, "must be %s or %s", w0, w1);
    return -1;
}

static int set_persistence(vd_conf *c, const char *v, char *why, size_t whylen)
{
    int manage;
    if (set_choice(&manage, v, "refuse", "manage", why, whylen) < 0)
        return -1;
    c->nvidia_persistence = manage ? VD_PERSIST_MANAGE : VD_PERSIST_REFUSE;
    return 0;
}

/* Which display devices count as gres GPUs: a server's BMC VGA does not
 * (it would shift every gres index). */
static int set_gpu_vendors(vd_conf *c, const char *v, char *why, size_t whylen)
{
    vd_err err;
    if (vd_pci_gpu_vendors_check(v, &err) == 0 && copy_str(c->gpu_vendors, sizeof(c->gpu_vendors), v) == 0)
        return 0;
    snprintf(why, whylen, "%s", err.msg);
    return -1;
}

static int set_on_destroy(vd_conf *c, const char *v, char *why, size_t whylen)
{
    return set_choice(&c->destroy_drains, v, "record", "drain", why, whylen);
}

static int set_feature(vd_conf *c, const char *v, char *why, size_t whylen)
{
    size_t n = strlen(v);
    if (n >= 1 && n < sizeof(c->migrate_feature) && strspn(v, DOMAIN_CHARS) == n) {
        memcpy(c->migrate_feature, v, n + 1);
        return 0;
    }
    snprintf(why, whylen, "must be one Slurm node feature: letters, digits, '-', '_', '.', at most "
             "%zu characters", sizeof(c->migrate_feature) - 1);
    return -1;
}

static int set_unsafe(vd_conf *c, const char *v, char *why, size_t whylen)
{
    return set_choice(&c->migrate_unsafe, v, "no", "yes", why, whylen);
}

static int set_migrate_uri(vd_conf *c, const char *v, char *why, size_t whylen)
{
    if (strstr(v, "://") && copy_str(c->migrate_uri, sizeof(c->migrate_uri), v) == 0)
        return 0;
    snprintf(why, whylen, "must be the libvirt URI peers reach this node's daemon at, such as "
             "qemu+tls://n1/system (shorter than %zu)", sizeof(c->migrate_uri));
    return -1;
}

static int set_migrate_address(vd_conf *c, const char *v, char *why, size_t whylen)
{
    if (!strncmp(v, "tcp://", 6) && v[6] && !strpbrk(v, " \t") &&
        copy_str(c->migrate_address, sizeof(c->migrate_address), v) == 0)
        return 0;
    snprintf(why, whylen, "must be tcp://HOST or tcp://HOST:PORT, the address QEMU sends the "
             "memory to (shorter than %zu)", sizeof(c->migrate_address));
    return -1;
}

static int set_uri(vd_conf *c, const char *v, char *why, size_t whylen)
{
    if (strstr(v, "://") && copy_str(c->uri, sizeof(c->uri), v) == 0)
        return 0;
    snprintf(why, whylen, "must be a libvirt URI such as qemu:///system");
    return -1;
}

static int set_domain(vd_conf *c, const char *v, char *why, size_t whylen)
{
    size_t n = strlen(v);
    if (n >= 1 && n <= DOMAIN_MAX && v[0] != '.' && strspn(v, DOMAIN_CHARS) == n) {
        memcpy(c->domain, v, n + 1);
        return 0;
    }
    snprintf(why, whylen, "must be the desktop VM's libvirt domain name: letters, digits, '-', '_', "
             "'.', not starting with '.', at most %d characters (it also names the save file "
             "STATE_DIR/DOMAIN.save)", DOMAIN_MAX);
    return -1;
}

/* desktops = NAME, NAME: the other desktops the node may boot, one at a
 * time (vdeskctl select). */
static int set_desktops(vd_conf *c, const char *v, char *why, size_t whylen)
{
    char list[VD_MAX_DESKTOPS * (DOMAIN_MAX + 2) + 1];
    if (copy_str(list, sizeof(list), v) < 0) {
        snprintf(why, whylen, "at most %d names", VD_MAX_DESKTOPS);
        return -1;
    }
    c->ndesktops = 0;
    char *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ' || *t == '\t')
            t++;
        size_t n = strcspn(t, " \t");
        if (t[n + strspn(t + n, " \t")] != '\0')
            n = 0;   /* a blank inside a name */
        t[n] = '\0';
        int dup = 0;
        for (int i = 0; i < c->ndesktops; i++)
            dup |= !strcmp(c->desktops[i], t);
        if (n < 1 || n > DOMAIN_MAX || t[0] == '.' || strspn(t, DOMAIN_CHARS) != n || dup ||
            c->ndesktops == VD_MAX_DESKTOPS) {
            snprintf(why, whylen, "must be a comma-separated list of at most %d libvirt domain "
                     "names, each once (letters, digits, '-', '_', '.', not starting with '.', "
                     "at most %d characters)", VD_MAX_DESKTOPS, DOMAIN_MAX);
            return -1;
        }
        memcpy(c->desktops[c->ndesktops++], t, n + 1);
    }
    if (c->ndesktops)
        return 0;
    snprintf(why, whylen, "must name at least one desktop (or leave the key out)");
    return -1;
}

static int set_cores(vd_conf *c, const char *v, char *why, size_t whylen)
{
    char detail[160];
    if (vd_cpulist_check(v, detail, sizeof(detail)) == 0) {
        if (copy_str(c->desktop_cores, sizeof(c->desktop_cores), v) == 0)
            return 0;
        snprintf(detail, sizeof(detail), "longer than %zu characters", sizeof(c->desktop_cores) - 1);
    }
    snprintf(why, whylen, "must be a CPU list such as 0-1,8-9: %s; allowed: decimal CPU numbers "
             "below %d and ranges LO-HI with LO <= HI, separated by commas", detail, VD_MAX_CPUS);
    return -1;
}

static int set_device(vd_conf *c, const char *v, char *why, size_t whylen)
{
    if (c->ndevices == VD_MAX_DEVICES) {
        snprintf(why, whylen, "at most %d devices", VD_MAX_DEVICES);
        return -1;
    }
    if (parse_device(v, &c->devices[c->ndevices], why, whylen) < 0)
        return -1;
    for (int i = 0; i < c->ndevices; i++)
        if (!strcmp(c->devices[i].alias, c->devices[c->ndevices].alias)) {
            snprintf(why, whylen, "alias %s is listed twice", c->devices[i].alias);
            return -1;
        }
    c->ndevices++;
    return 0;
}

typedef int (*setter)(vd_conf *c, const char *v, char *why, size_t whylen);

enum key_type { T_PATH, T_SECONDS, T_NUMBER, T_SET };

struct key {
    const char *name;
    enum key_type type;
    size_t off;      /* T_PATH (char[PATH_MAX]), T_SECONDS, T_NUMBER (int) */
    int lo, hi;      /* T_SECONDS, T_NUMBER */
    setter set;      /* T_SET */
    int repeat;      /* may be given more than once */
};

#define PATH_KEY(n, f) { n, T_PATH, offsetof(vd_conf, f), 0, 0, NULL, 0 }
#define INT_KEY(n, t, f, lo, hi) { n, t, offsetof(vd_conf, f), lo, hi, NULL, 0 }
#define SET_KEY(n, fn, rep) { n, T_SET, 0, 0, 0, fn, rep }

enum { S_GRACE = 14 };

static const struct key site_keys[] = {
    PATH_KEY("state_dir", state_dir),
    PATH_KEY("snapshot_dir", snapshot_dir),
    INT_KEY("snapshots_keep", T_NUMBER, snapshots_keep, 1, 100),
    SET_KEY("policy", set_policy, 0),
    INT_KEY("timeout_unplug", T_SECONDS, timeout_unplug, 1, 86400),
    INT_KEY("timeout_save", T_SECONDS, timeout_save, 1, 86400),
    INT_KEY("timeout_shutdown", T_SECONDS, timeout_shutdown, 1, 86400),
    INT_KEY("timeout_restore", T_SECONDS, timeout_restore, 1, 86400),
    PATH_KEY("sysfs_root", sysfs_root),
    PATH_KEY("dev_root", dev_root),
    PATH_KEY("proc_root", proc_root),
    SET_KEY("nvidia_persistence", set_persistence, 0),
    SET_KEY("allow", set_allow, 0),
    INT_KEY("max_timeout", T_SECONDS, max_timeout, 1, 86400),
    [S_GRACE] = INT_KEY("min_shutdown_grace", T_SECONDS, min_shutdown_grace, 0, 86400),
    SET_KEY("on_destroy", set_on_destroy, 0),
    SET_KEY("gpu_vendors", set_gpu_vendors, 0),
    SET_KEY("migrate_feature", set_feature, 0),
    INT_KEY("migrate_downtime", T_NUMBER, migrate_downtime, 1, 60000),
    INT_KEY("migrate_bandwidth", T_NUMBER, migrate_bandwidth, 0, 1000000),
    INT_KEY("timeout_migrate", T_SECONDS, timeout_migrate, 1, 86400),
    SET_KEY("migrate_unsafe", set_unsafe, 0),
    PATH_KEY("profile_dir", profile_dir),
    INT_KEY("snapshots_keep_days", T_NUMBER, snapshots_keep_days, 0, 3650),
    PATH_KEY("accounting_db", accounting_db),
};

enum { N_URI, N_DOMAIN };

static const struct key node_keys[] = {
    [N_URI] = SET_KEY("uri", set_uri, 0),
    [N_DOMAIN] = SET_KEY("domain", set_domain, 0),
    SET_KEY("desktops", set_desktops, 0),
    SET_KEY("desktop_cores", set_cores, 0),
    SET_KEY("device", set_device, 1),
    SET_KEY("migrate_uri", set_migrate_uri, 0),
    SET_KEY("migrate_address", set_migrate_address, 0),
    INT_KEY("desktop_slots", T_NUMBER, desktop_slots, 1, 64),
};

#define NKEYS(t) (sizeof(t) / sizeof((t)[0]))
_Static_assert(NKEYS(site_keys) <= MAX_KEYS && NKEYS(node_keys) <= MAX_KEYS, "too many keys");

/* Applies one value; `why` says what is allowed when it is bad. */
static int apply(vd_conf *c, const struct key *k, const char *v, char *why, size_t whylen)
{
    void *field = (char *)c + k->off;
    switch (k->type) {
    case T_PATH:
        if (v[0] == '/' && copy_str(field, PATH_MAX, v) == 0)
            return 0;
        snprintf(why, whylen, "must be an absolute path (starting with '/', shorter than %d)", PATH_MAX);
        return -1;
    case T_SECONDS:
    case T_NUMBER:
        if (parse_uint(v, k->lo, k->hi, field) == 0)
            return 0;
        snprintf(why, whylen, "must be %s from %d to %d (decimal digits only)",
                 k->type == T_SECONDS ? "whole seconds" : "a whole number", k->lo, k->hi);
        return -1;
    default:
        return k->set(c, v, why, whylen);
    }
}

static int unknown_key(struct parse *p, const struct key *keys, size_t n, const char *name)
{
    char list[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < n && used < sizeof(list); i++) {
        int w = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", keys[i].name);
        used += w > 0 ? (size_t)w : 0;
    }
    return fail(p, "unknown key '%s' in [%s] (keys: %s)", name, p->section, list);
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct parse *p = user;
    (void)section;   /* the reader's copy is uncut */
    if (p->kind == SEC_NONE)
        return fail(p, "key '%s' comes before any section; put it under [vdesk] or [node NAME]", name);
    if (p->kind == SEC_UNKNOWN)
        return fail(p, "unknown section [%s] (sections: [vdesk], [node NAME])", p->section);
    int node = p->kind == SEC_NODE;
    const struct key *keys = node ? node_keys : site_keys;
    size_t n = node ? NKEYS(node_keys) : NKEYS(site_keys);
    size_t k = 0;
    while (k < n && strcmp(keys[k].name, name) != 0)
        k++;
    if (k == n)
        return unknown_key(p, keys, n, name);
    if (!keys[k].repeat && (p->seen & (1u << k)))
        return fail(p, "key '%s' given twice in [%s] (first at line %d); keep one", name,
                    p->section, p->key_line[k]);
    p->seen |= 1u << k;
    p->key_line[k] = p->line;
    if (!node && k == S_GRACE)
        p->grace_line = p->line;

    char why[sizeof(p->msg) - 320];
    if (apply(node && !p->wanted ? &p->scratch : p->conf, &keys[k], value, why, sizeof(why)) < 0)
        return fail(p, "bad value '%s = %.200s': %s", name, value, why);
    return 1;
}

/* A node section's values, as every node sees them. */
static void peer_add(struct parse *p)
{
    const vd_conf *c = p->wanted ? p->conf : &p->scratch;
    if (p->conf->npeers == VD_MAX_NODES) {
        fail_at(p, p->section_line, "more than %d [node NAME] sections", VD_MAX_NODES);
        return;
    }
    vd_peer *peer = &p->conf->peers[p->conf->npeers++];
    snprintf(peer->name, sizeof(peer->name), "%s", p->section + 5);
    snprintf(peer->domain, sizeof(peer->domain), "%s", c->domain);
    snprintf(peer->migrate_uri, sizeof(peer->migrate_uri), "%s", c->migrate_uri);
    snprintf(peer->migrate_address, sizeof(peer->migrate_address), "%s", c->migrate_address);
    peer->desktop_slots = c->desktop_slots ? c->desktop_slots : 2;
    /* A desktop that moves is found by its name: two nodes that migrate
     * may not both call theirs so. (Nodes that do not may, as before.) */
    for (int i = 0; i + 1 < p->conf->npeers && peer->migrate_uri[0]; i++)
        if (p->conf->peers[i].migrate_uri[0] && !strcmp(p->conf->peers[i].domain, peer->domain))
            fail_at(p, p->section_line, "desktop %s is the home desktop of [node %s] already, and "
                    "both nodes migrate: give each node's desktop its own name", peer->domain,
                    p->conf->peers[i].name);
}

/* The end of a section, at the next header or at the end of the file. */
static void section_end(struct parse *p)
{
    unsigned need = (1u << N_URI) | (1u << N_DOMAIN);
    if (p->kind == SEC_UNKNOWN)   /* an empty one: a key would have failed */
        fail_at(p, p->section_line, "unknown section [%s] (sections: [vdesk], [node NAME])", p->section);
    if (p->kind != SEC_NODE)
        return;
    if ((p->seen & need) == need) {
        peer_add(p);
        return;
    }
    const char *missing = !(p->seen & need) ? "uri, domain" : (p->seen & (1u << N_URI)) ? "domain" : "uri";
    fail_at(p, p->section_line, "[%s] needs both uri = and domain = (missing: %s); add %s to this "
            "section", p->section, missing, !strcmp(missing, "uri, domain") ? "them" : "it");
}

/* A repeated section would merge into the first, or a repeated node's
 * values override the first's without a word. */
static void remember_section(struct parse *p)
{
    for (size_t i = 0; i < p->nsections; i++)
        if (!strcmp(p->sections[i].name, p->section)) {
            fail(p, "section [%s] is repeated (first at line %d); give each section once, with "
                 "all of its keys", p->section, p->sections[i].line);
            return;
        }
    if (p->nsections == p->capsections) {
        size_t cap = p->capsections ? 2 * p->capsections : 16;
        struct section_seen *s = realloc(p->sections, cap * sizeof(*s));
        if (!s) {
            fail(p, "out of memory");
            return;
        }
        p->sections = s;
        p->capsections = cap;
    }
    struct section_seen *s = &p->sections[p->nsections++];
    snprintf(s->name, sizeof(s->name), "%s", p->section);
    s->line = p->line;
}

/* Starts section `name` (len chars) at the current line. */
static void section_begin(struct parse *p, const char *name, size_t len)
{
    if (len >= SECTION_MAX) {
        fail(p, "section name '%.*s' is longer than %d characters", (int)len, name, SECTION_MAX - 1);
        return;
    }
    snprintf(p->section, sizeof(p->section), "%.*s", (int)len, name);
    p->section_line = p->line;
    p->seen = 0;
    int node = !strncmp(p->section, "node ", 5) && p->section[5];
    p->kind = node ? SEC_NODE : !strcmp(p->section, "vdesk") ? SEC_SITE : SEC_UNKNOWN;
    p->wanted = node && p->want_node && !strcmp(p->section + 5, p->want_node);
    p->node_found |= p->wanted;
    if (node && strlen(p->section + 5) >= sizeof(p->conf->node)) {
        fail(p, "node name '%s' is longer than %zu characters", p->section + 5, sizeof(p->conf->node) - 1);
        return;
    }
    if (node)
        memset(&p->scratch, 0, sizeof(p->scratch));
    remember_section(p);
}

/* "[NAME]", after the comment is gone. inih would keep the previous
 * section after a header without ']' and file the next keys under it. */
static void section_header(struct parse *p, const char *text)
{
    const char *close = strchr(text, ']');
    if (!close) {
        fail(p, "syntax error: bad section header '%s' (missing ']'); write [vdesk] or [node NAME]", text);
        return;
    }
    if (close[1]) {
        fail(p, "syntax error: text after ']' in '%s'; start a comment with ' #' or ' ;'", text);
        return;
    }
    section_end(p);
    if (!p->msg[0])
        section_begin(p, text + 1, (size_t)(close - text - 1));
}

/* Blanks around, and a comment: a whole line starting with '#' or ';', or
 * one after a value, after a blank. inih knows only ';' there; '#' is
 * stripped here so both work the same. */
static char *clean_line(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '#' || *s == ';')
        *s = '\0';
    for (size_t i = 1; s[0] && s[i]; i++)
        if ((s[i] == '#' || s[i] == ';') && isspace((unsigned char)s[i - 1])) {
            s[i] = '\0';
            break;
        }
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* The cleaned line must be what inih understands the same way: blank, a
 * section header, or KEY = VALUE (inih also takes KEY: VALUE). The leading
 * blanks are gone, so inih never joins a line to the previous value. */
static void check_line(struct parse *p, const char *text)
{
    if (!*text)
        return;
    if (*text == '[')
        section_header(p, text);
    else if (!strpbrk(text, "=:"))
        fail(p, "syntax error: '%s' is not KEY = VALUE, [vdesk] or [node NAME]", text);
}

/* inih's ini_reader: one line per call, whole, however long. */
static char *read_line(char *str, int num, void *stream)
{
    struct parse *p = stream;
    if (p->msg[0])
        return NULL;   /* stop at the first error: later ones may be its echoes */
    ssize_t n = getline(&p->buf, &p->bufsize, p->file);
    if (n < 0)
        return NULL;   /* the end, or an error the caller finds with ferror */
    p->line++;
    if (memchr(p->buf, '\0', (size_t)n)) {
        fail(p, "a NUL byte in the line: vdesk.conf must be a text file");
        return NULL;
    }
    char *text = p->buf;
    if (p->line == 1 && !strncmp(text, "\xEF\xBB\xBF", 3))
        text += 3;   /* a UTF-8 byte order mark, as inih skips it */
    text = clean_line(text);
    if (strlen(text) + 2 > (size_t)num) {
        fail(p, "line longer than %d characters without its comment; shorten it", num - 2);
        return NULL;
    }
    check_line(p, text);
    if (p->msg[0])
        return NULL;
    snprintf(str, (size_t)num, "%s\n", text);
    return str;
}

static void check_grace(struct parse *p)
{
    vd_conf *c = p->conf;
    if (c->min_shutdown_grace <= c->timeout_shutdown)
        return;
    if (!p->grace_line) {   /* the default must not make a short timeout_shutdown an error */
        c->min_shutdown_grace = c->timeout_shutdown;
        return;
    }
    fail_at(p, p->grace_line, "min_shutdown_grace = %d is above timeout_shutdown = %d: the guest "
            "cannot be promised more than the whole shutdown step; lower min_shutdown_grace or "
            "raise timeout_shutdown", c->min_shutdown_grace, c->timeout_shutdown);
}

static void list_nodes(const struct parse *p, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < p->nsections; i++) {
        if (strncmp(p->sections[i].name, "node ", 5) != 0)
            continue;
        int w = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", p->sections[i].name + 5);
        if (w < 0 || (size_t)w >= size - used) {
            buf[used] = '\0';   /* whole names only */
            return;
        }
        used += (size_t)w;
    }
}

/* "%n" becomes the node name, as in Slurm's SlurmdSpoolDir, so one file
 * serves nodes that share a file system. */
static int expand_node(char *path, size_t size, const char *node)
{
    char out[PATH_MAX];
    size_t o = 0;
    for (const char *p = path; *p; p++) {
        const char *piece = p[0] == '%' && p[1] == 'n' ? node : NULL;
        size_t len = piece ? strlen(piece) : 1;
        if (o + len >= sizeof(out) || o + len >= size)
            return -1;
        memcpy(out + o, piece ? piece : p, len);
        o += len;
        p += piece ? 1 : 0;
    }
    out[o] = '\0';
    memcpy(path, out, o + 1);
    return 0;
}

void vd_conf_defaults(vd_conf *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->state_dir, sizeof(c->state_dir), VD_LOCALSTATEDIR "/lib/vdesk");
    c->snapshots_keep = 3;
    c->policy[0] = VD_MODE_SAVE;
    c->policy[1] = VD_MODE_SHUTDOWN;
    c->npolicy = 2;
    c->timeout_unplug = 30;
    c->timeout_save = 600;
    c->timeout_shutdown = 120;
    c->timeout_restore = 600;
    snprintf(c->sysfs_root, sizeof(c->sysfs_root), "/sys");
    snprintf(c->dev_root, sizeof(c->dev_root), "/dev");
    snprintf(c->proc_root, sizeof(c->proc_root), "/proc");
    snprintf(c->profile_dir, sizeof(c->profile_dir), VD_SYSCONFDIR "/vdesk/profiles");
    /* Not in state_dir: slurmctld's user writes it, and state_dir is root's alone. */
    snprintf(c->accounting_db, sizeof(c->accounting_db), VD_LOCALSTATEDIR "/lib/vdesk-accounting/accounting.db");
    c->nvidia_persistence = VD_PERSIST_REFUSE;
    c->allow = VD_MODE_SET_ALL;
    c->max_timeout = 3600;
    c->min_shutdown_grace = 30;
    c->destroy_drains = 0;
    snprintf(c->migrate_feature, sizeof(c->migrate_feature), "vdesk");
    c->migrate_downtime = 300;
    c->timeout_migrate = 60;
}

const vd_peer *vd_conf_peer(const vd_conf *conf, const char *name)
{
    for (int i = 0; i < conf->npeers; i++)
        if (!strcmp(conf->peers[i].name, name))
            return &conf->peers[i];
    return NULL;
}

int vd_conf_snapshot_dir_of(const vd_conf *conf, const char *node, char *out, size_t size)
{
    if (snprintf(out, size, "%s", conf->snapshot_tmpl[0] ? conf->snapshot_tmpl : conf->snapshot_dir) >=
        (int)size)
        return -1;
    return expand_node(out, size, node);
}

const vd_peer *vd_conf_home_of(const vd_conf *conf, const char *domain)
{
    for (int i = 0; i < conf->npeers; i++)
        if (!strcmp(conf->peers[i].domain, domain))
            return &conf->peers[i];
    return NULL;
}

/* Reads the whole file; the first error found, with its line, is in
 * p->msg. Returns -1 only when the file cannot be read at all. */
static int read_file(const char *path, struct parse *p, vd_err *err)
{
    p->file = fopen(path, "r");
    if (!p->file)
        return vd_err_set(err, "%s: cannot open: %s (create it, see vdesk.conf(5); the prolog and "
                          "epilog read " VD_CONF_DEFAULT ", and by hand set VDESK_CONF or give "
                          "vdeskctl --conf for another file)", path, strerror(errno));
    int line = ini_parse_stream(read_line, p, handler, p);
    int read_errno = ferror(p->file) ? errno : 0;
    free(p->buf);
    p->buf = NULL;
    if (fclose(p->file) != 0 && !read_errno)
        read_errno = errno;
    p->file = NULL;
    if (read_errno)
        return vd_err_set(err, "%s:%d: cannot read: %s (check the file's permissions and type)", path,
                          p->line + 1, strerror(read_errno));
    if (line < 0)
        return vd_err_set(err, "%s: out of memory while parsing", path);
    if (!p->msg[0])
        section_end(p);   /* the last section's */
    if (!p->msg[0] && line > 0)   /* what inih refused and the reader did not foresee */
        fail_at(p, line, "syntax error (expected [section] or key = value)");
    if (!p->msg[0])
        check_grace(p);
    return 0;
}

static int parse_file(const char *path, const char *node, vd_conf *conf, struct parse *p,
                      vd_err *err)
{
    if (read_file(path, p, err) < 0)
        return -1;
    if (p->msg[0])
        return vd_err_set(err, "%s:%d: %s", path, p->msg_line, p->msg);
    if (!conf->snapshot_dir[0])
        snprintf(conf->snapshot_dir, sizeof(conf->snapshot_dir), "%.*s/snapshots",
                 (int)sizeof(conf->snapshot_dir) - 16, conf->state_dir);
    if (node && !p->node_found) {
        char nodes[512];
        list_nodes(p, nodes, sizeof(nodes));
        vd_err_set(err, "%s: no [node %s] section (nodes in the file: %s)", path, node,
                   nodes[0] ? nodes : "none");
        return VD_CONF_NO_DESKTOP;
    }
    snprintf(conf->snapshot_tmpl, sizeof(conf->snapshot_tmpl), "%s", conf->snapshot_dir);
    if (node && (expand_node(conf->state_dir, sizeof(conf->state_dir), node) < 0 ||
                 expand_node(conf->snapshot_dir, sizeof(conf->snapshot_dir), node) < 0))
        return vd_err_set(err, "%s: state_dir or snapshot_dir too long with %%n expanded (shorten "
                          "them to fit PATH_MAX)", path);
    return 0;
}

const char *vd_conf_default_domain(const vd_conf *conf)
{
    return conf->domain_default[0] ? conf->domain_default : conf->domain;
}

int vd_conf_offers(const vd_conf *conf, const char *name)
{
    if (!strcmp(vd_conf_default_domain(conf), name))
        return 1;
    for (int i = 0; i < conf->ndesktops; i++)
        if (!strcmp(conf->desktops[i], name))
            return 1;
    return 0;
}

#define SELECTED "selected"

int vd_conf_selected_read(const char *state_dir, char *buf, size_t size, vd_err *err)
{
    char path[PATH_MAX];
    struct stat st;
    vd_state_path(path, sizeof(path), state_dir, SELECTED);
    /* Without root (vdeskctl status by a user) the directory is closed:
     * such a caller sees the default desktop, as it sees no journal. */
    if (lstat(path, &st) < 0 && (errno == ENOENT || errno == EACCES))
        return 0;
    /* Whoever can write there chooses what root boots: the directory must
     * be root's alone, as for the journal. */
    if (vd_state_dir_check(state_dir, err) < 0)
        return -1;
    int fd = vd_state_open(path, O_RDONLY, err);
    if (fd < 0)
        return -1;
    char text[DOMAIN_MAX + 3];
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n < 0)
        return vd_err_set(err, "%s: cannot read: %s", path, strerror(errno));
    text[n] = '\0';
    text[strcspn(text, "\n")] = '\0';
    size_t len = strlen(text);
    if (len < 1 || len > DOMAIN_MAX || len >= size || text[0] == '.' ||
        strspn(text, DOMAIN_CHARS) != len || (size_t)n > len + 1)
        return vd_err_set(err, "%s: not one desktop name: run 'vdeskctl select DESKTOP' to choose "
                          "again", path);
    memcpy(buf, text, len + 1);
    return 1;
}

int vd_conf_selected_write(const vd_conf *conf, const char *name, vd_err *err)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    if (!vd_conf_offers(conf, name))
        return vd_err_set(err, "node %s does not offer desktop %s (%s: domain, desktops)",
                          conf->node, name, conf->path);
    if (vd_mkdirs(conf->state_dir, err) < 0 || vd_state_dir_check(conf->state_dir, err) < 0)
        return -1;
    vd_state_path(path, sizeof(path), conf->state_dir, SELECTED);
    vd_state_path(tmp, sizeof(tmp), conf->state_dir, "." SELECTED ".tmp");
    unlink(tmp);
    int fd = vd_state_open(tmp, O_WRONLY | O_CREAT | O_EXCL, err);
    if (fd < 0)
        return -1;
    int rc = vd_state_write_line(fd, name);
    rc = close(fd) < 0 ? -1 : rc;
    if (rc < 0 || rename(tmp, path) < 0 || vd_state_fsync_dir(conf->state_dir) < 0) {
        int e = errno;
        unlink(tmp);
        return vd_err_set(err, "%s: cannot write: %s", path, strerror(e));
    }
    return 0;
}

/* conf->domain becomes the desktop `vdeskctl select` chose. */
static int selection_apply(vd_conf *conf, vd_err *err)
{
    char name[sizeof(conf->domain)];
    snprintf(conf->domain_default, sizeof(conf->domain_default), "%s", conf->domain);
    int rc = vd_conf_selected_read(conf->state_dir, name, sizeof(name), err);
    if (rc <= 0)
        return rc;
    if (!vd_conf_offers(conf, name))
        return vd_err_set(err, "%s/" SELECTED " chooses desktop %s, which %s no longer offers for "
                          "node %s (domain, desktops): add it back to desktops =, or once %s no longer "
                          "runs (virsh managedsave %s) remove %s/" SELECTED " and run 'vdeskctl boot'",
                          conf->state_dir, name, conf->path, conf->node, name, name, conf->state_dir);
    snprintf(conf->domain, sizeof(conf->domain), "%s", name);
    return 0;
}

int vd_conf_find(const char *path, const char *node, vd_conf *conf, vd_err *err)
{
    vd_conf_defaults(conf);
    snprintf(conf->path, sizeof(conf->path), "%s", path);
    if (node)
        snprintf(conf->node, sizeof(conf->node), "%s", node);
    struct parse *p = calloc(1, sizeof(*p));   /* holds a whole scratch vd_conf */
    if (!p)
        return vd_err_set(err, "out of memory");
    p->conf = conf;
    p->want_node = node;
    int rc = parse_file(path, node, conf, p, err);
    free(p->sections);
    free(p);
    if (rc == 0 && node && selection_apply(conf, err) < 0)
        return -1;
    return rc;
}

int vd_conf_load(const char *path, const char *node, vd_conf *conf, vd_err *err)
{
    int rc = vd_conf_find(path, node, conf, err);
    return rc == VD_CONF_NO_DESKTOP ? -1 : rc;
}
