/* SPDX-License-Identifier: MIT */
#include "conf.h"

#include <errno.h>
#include <stdarg.h>
#include <hwloc.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Parser state: what the handler needs besides the result. */
struct parse {
    vd_conf *conf;
    const char *want_node;
    int node_found;
    char nodes[512];     /* node sections seen, for messages */
    char section[128];   /* current section, to reset per-section keys */
    unsigned seen;       /* bit per key in the current section */
    vd_conf scratch;     /* values of another node's section, checked and dropped */
    char msg[sizeof(((vd_err *)0)->msg)];
};

static int fail(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Keeps the first message; returns 0, inih's "error on this line". */
static int fail(struct parse *p, const char *fmt, ...)
{
    if (!p->msg[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
        va_end(ap);
    }
    return 0;
}

static int parse_int(const char *v, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi)
        return -1;
    *out = (int)n;
    return 0;
}

static int copy_str(char *dst, size_t size, const char *v)
{
    if (strlen(v) >= size)
        return -1;
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

static int parse_abs_path(char *dst, size_t size, const char *v)
{
    return v[0] == '/' ? copy_str(dst, size, v) : -1;
}

static int parse_cpulist(const char *v, char *dst, size_t size)
{
    hwloc_bitmap_t b = hwloc_bitmap_alloc();
    int rc = -1;
    if (b && hwloc_bitmap_list_sscanf(b, v) == 0 && !hwloc_bitmap_iszero(b) &&
        hwloc_bitmap_weight(b) > 0)   /* weight -1: infinite */
        rc = copy_str(dst, size, v);
    hwloc_bitmap_free(b);
    return rc;
}

static int valid_pci(const char *s)
{
    unsigned d, b, s2, f;
    char tail;
    return strlen(s) == 12 && sscanf(s, "%4x:%2x:%2x.%1x%c", &d, &b, &s2, &f, &tail) == 4 &&
           s2 < 32 && f < 8;
}

static int parse_device(const char *v, vd_device *dev, char *why, size_t whylen)
{
    char role[16] = "", alias[64] = "", pci[16] = "", extra[2] = "";
    int n = sscanf(v, "%15s %63s %15s %1s", role, alias, pci, extra);
    if (n < 2 || n > 3) {
        snprintf(why, whylen, "expected ROLE ALIAS [PCI]");
        return -1;
    }
    if (!strcmp(role, "gpu"))
        dev->role = VD_ROLE_GPU;
    else if (!strcmp(role, "ib"))
        dev->role = VD_ROLE_IB;
    else if (!strcmp(role, "other"))
        dev->role = VD_ROLE_OTHER;
    else {
        snprintf(why, whylen, "role '%s' is not one of gpu, ib, other", role);
        return -1;
    }
    if (strncmp(alias, "ua-", 3) != 0 || strspn(alias, "abcdefghijklmnopqrstuvwxyz"
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != strlen(alias) || !alias[3]) {
        snprintf(why, whylen, "alias '%s' must be a libvirt user alias: 'ua-' and letters, digits, '-', '_'", alias);
        return -1;
    }
    if (n == 3 && !valid_pci(pci)) {
        snprintf(why, whylen, "PCI address '%s' must look like 0000:65:00.0", pci);
        return -1;
    }
    memcpy(dev->alias, alias, sizeof(dev->alias));
    memcpy(dev->pci, pci, sizeof(dev->pci));
    return 0;
}

static int parse_policy(const char *v, vd_conf *c, char *why, size_t whylen)
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
        vd_mode_parse(t, &c->policy[c->npolicy++], &err);
    }
    return 0;
}

enum { K_STATE_DIR, K_SNAPSHOT_DIR, K_KEEP, K_POLICY, K_T_UNPLUG, K_T_SAVE, K_T_SHUTDOWN,
       K_T_RESTORE, K_SYSFS, K_DEVROOT, K_PROCROOT, K_PERSIST, K_URI, K_DOMAIN, K_CORES, K_DEVICE };

static const char *site_keys[] = {
    [K_STATE_DIR] = "state_dir", [K_SNAPSHOT_DIR] = "snapshot_dir", [K_KEEP] = "snapshots_keep",
    [K_POLICY] = "policy", [K_T_UNPLUG] = "timeout_unplug", [K_T_SAVE] = "timeout_save",
    [K_T_SHUTDOWN] = "timeout_shutdown", [K_T_RESTORE] = "timeout_restore",
    [K_SYSFS] = "sysfs_root", [K_DEVROOT] = "dev_root", [K_PROCROOT] = "proc_root",
    [K_PERSIST] = "nvidia_persistence",
};
static const char *node_keys[] = {
    [K_URI] = "uri", [K_DOMAIN] = "domain", [K_CORES] = "desktop_cores", [K_DEVICE] = "device",
};

static int key_index(const char **keys, int lo, int hi, const char *name)
{
    for (int i = lo; i <= hi; i++)
        if (keys[i] && !strcmp(keys[i], name))
            return i;
    return -1;
}

/* Applies one site key; `why` explains a bad value. */
static int site_value(vd_conf *c, int k, const char *v, char *why, size_t whylen)
{
    int *timeouts[] = { [K_T_UNPLUG] = &c->timeout_unplug, [K_T_SAVE] = &c->timeout_save,
                        [K_T_SHUTDOWN] = &c->timeout_shutdown, [K_T_RESTORE] = &c->timeout_restore };
    switch (k) {
    case K_STATE_DIR:
    case K_SNAPSHOT_DIR:
    case K_SYSFS:
    case K_DEVROOT:
    case K_PROCROOT:
        if (parse_abs_path(k == K_STATE_DIR ? c->state_dir : k == K_SNAPSHOT_DIR ? c->snapshot_dir
                           : k == K_SYSFS ? c->sysfs_root : k == K_DEVROOT ? c->dev_root
                           : c->proc_root, PATH_MAX, v) == 0)
            return 0;
        snprintf(why, whylen, "must be an absolute path");
        return -1;
    case K_PERSIST:
        if (!strcmp(v, "refuse") || !strcmp(v, "manage")) {
            c->nvidia_persistence = !strcmp(v, "manage") ? VD_PERSIST_MANAGE : VD_PERSIST_REFUSE;
            return 0;
        }
        snprintf(why, whylen, "must be refuse or manage");
        return -1;
    case K_KEEP:
        if (parse_int(v, 1, 100, &c->snapshots_keep) == 0)
            return 0;
        snprintf(why, whylen, "must be a whole number from 1 to 100");
        return -1;
    case K_POLICY:
        return parse_policy(v, c, why, whylen);
    default:
        if (parse_int(v, 1, 86400, timeouts[k]) == 0)
            return 0;
        snprintf(why, whylen, "must be whole seconds from 1 to 86400");
        return -1;
    }
}

static int node_value(vd_conf *c, int k, const char *v, char *why, size_t whylen)
{
    switch (k) {
    case K_URI:
        if (copy_str(c->uri, sizeof(c->uri), v) == 0 && strstr(v, "://"))
            return 0;
        snprintf(why, whylen, "must be a libvirt URI such as qemu:///system");
        return -1;
    case K_DOMAIN:
        if (*v && copy_str(c->domain, sizeof(c->domain), v) == 0)
            return 0;
        snprintf(why, whylen, "must be the desktop VM's libvirt domain name");
        return -1;
    case K_CORES:
        if (parse_cpulist(v, c->desktop_cores, sizeof(c->desktop_cores)) == 0)
            return 0;
        snprintf(why, whylen, "must be a CPU list such as 0-1,8-9");
        return -1;
    default:
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
}

static void node_section_start(struct parse *p, const char *node)
{
    size_t len = strlen(p->nodes);
    snprintf(p->nodes + len, sizeof(p->nodes) - len, "%s%s", len ? ", " : "", node);
    if (p->want_node && !strcmp(node, p->want_node))
        p->node_found = 1;
}

static int node_incomplete(const struct parse *p)
{
    unsigned need = (1u << K_URI) | (1u << K_DOMAIN);
    return !strncmp(p->section, "node ", 5) && (p->seen & need) != need;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct parse *p = user;
    char why[sizeof(((vd_err *)0)->msg)] = "";
    int is_node = !strncmp(section, "node ", 5) && section[5];
    if (strcmp(section, p->section) != 0) {
        if (node_incomplete(p))
            return fail(p, "[%s] needs both uri = and domain = (before [%s])", p->section, section);
        snprintf(p->section, sizeof(p->section), "%s", section);
        p->seen = 0;
        memset(&p->scratch, 0, sizeof(p->scratch));
        if (is_node)
            node_section_start(p, section + 5);
    }
    if (!is_node && strcmp(section, "vdesk") != 0)
        return fail(p, "unknown section [%s] (sections: [vdesk], [node NAME])", section);
    int k = is_node ? key_index(node_keys, K_URI, K_DEVICE, name)
                    : key_index(site_keys, K_STATE_DIR, K_PERSIST, name);
    if (k < 0)
        return is_node ? fail(p, "unknown key '%s' in [%s] (keys: uri, domain, desktop_cores, "
                                 "device)", name, section)
                       : fail(p, "unknown key '%s' in [vdesk] (keys: state_dir, snapshot_dir, "
                                 "snapshots_keep, policy, timeout_unplug, timeout_save, "
                                 "timeout_shutdown, timeout_restore, sysfs_root, dev_root, proc_root, "
                                 "nvidia_persistence)", name);
    if (k != K_DEVICE && (p->seen & (1u << k)))
        return fail(p, "key '%s' given twice in [%s]", name, section);
    p->seen |= 1u << k;

    vd_conf *c = p->conf;
    if (is_node && !(p->want_node && !strcmp(section + 5, p->want_node)))
        c = &p->scratch;
    int rc = is_node ? node_value(c, k, value, why, sizeof(why))
                     : site_value(c, k, value, why, sizeof(why));
    if (rc < 0) {
        char kv[300];
        snprintf(kv, sizeof(kv), "%s = %s", name, value);
        return fail(p, "bad value '%s': %s", kv, why);
    }
    return 1;
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
    snprintf(c->state_dir, sizeof(c->state_dir), "/var/lib/vdesk");
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
    c->nvidia_persistence = VD_PERSIST_REFUSE;
}

static int parse_file(const char *path, const char *node, vd_conf *conf, struct parse *p,
                      vd_err *err)
{
    int line = ini_parse(path, handler, p);
    if (line == -1)
        return vd_err_set(err, "%s: cannot open: %s (set VDESK_CONF or create it; see vdesk.conf(5))",
                          path, strerror(errno));
    if (line == -2)
        return vd_err_set(err, "%s: out of memory while parsing", path);
    if (line > 0)
        return vd_err_set(err, "%s:%d: %s", path, line,
                          p->msg[0] ? p->msg : "syntax error (expected [section] or key = value)");
    if (!conf->snapshot_dir[0])
        snprintf(conf->snapshot_dir, sizeof(conf->snapshot_dir), "%.*s/snapshots",
                 (int)sizeof(conf->snapshot_dir) - 16, conf->state_dir);
    if (node && (expand_node(conf->state_dir, sizeof(conf->state_dir), node) < 0 ||
                 expand_node(conf->snapshot_dir, sizeof(conf->snapshot_dir), node) < 0))
        return vd_err_set(err, "%s: state_dir or snapshot_dir too long with %%n expanded", path);
    if (node_incomplete(p))
        return vd_err_set(err, "%s: [%s] needs both uri = and domain =", path, p->section);
    if (node && !p->node_found)
        return vd_err_set(err, "%s: no [node %s] section (nodes in the file: %s)", path, node,
                          p->nodes[0] ? p->nodes : "none");
    return 0;
}

int vd_conf_load(const char *path, const char *node, vd_conf *conf, vd_err *err)
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
    free(p);
    return rc;
}
