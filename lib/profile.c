/* SPDX-License-Identifier: MIT */
#include "profile.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "child.h"
#include "cpulist.h"
#include "topo.h"

#define NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
#define DIGITS "0123456789"
#define SUFFIX ".profile"

/* --- values ------------------------------------------------------------ */

typedef int (*psetter)(vd_profile *p, const char *v, char *why, size_t whylen);

static int copy_str(char *dst, size_t size, const char *v)
{
    size_t len = strlen(v);
    if (len >= size)
        return -1;
    memcpy(dst, v, len + 1);
    return 0;
}

/* Digits only, as in vdesk.conf: no sign, blank or leading zero. */
static int parse_uint(const char *v, long lo, long hi, int *out)
{
    if (!*v || strspn(v, DIGITS) != strlen(v) || (v[0] == '0' && v[1]) || strlen(v) > 9)
        return -1;
    long n = strtol(v, NULL, 10);
    if (n < lo || n > hi)
        return -1;
    *out = (int)n;
    return 0;
}

int vd_profile_name_ok(const char *name)
{
    size_t n = strlen(name);
    return n >= 1 && n <= VD_PROFILE_NAME_MAX && name[0] != '.' && strspn(name, NAME_CHARS) == n;
}

static int set_inherit(vd_profile *p, const char *v, char *why, size_t whylen)
{
    if (vd_profile_name_ok(v))
        return copy_str(p->inherit, sizeof(p->inherit), v);
    snprintf(why, whylen, "must be the name of another profile of the directory (its file NAME"
             SUFFIX "): letters, digits, '-', '_', '.', not starting with '.', at most %d characters",
             VD_PROFILE_NAME_MAX);
    return -1;
}

static int set_description(vd_profile *p, const char *v, char *why, size_t whylen)
{
    if (copy_str(p->description, sizeof(p->description), v) == 0)
        return 0;
    snprintf(why, whylen, "at most %zu characters", sizeof(p->description) - 1);
    return -1;
}

static int set_path(char *field, const char *v, char *why, size_t whylen)
{
    if (v[0] == '/' && copy_str(field, PATH_MAX, v) == 0)
        return 0;
    snprintf(why, whylen, "must be an absolute path (starting with '/')");
    return -1;
}

static int set_base_image(vd_profile *p, const char *v, char *why, size_t whylen)
{
    return set_path(p->base_image, v, why, whylen);
}

static int set_kernel(vd_profile *p, const char *v, char *why, size_t whylen)
{
    return set_path(p->kernel, v, why, whylen);
}

static int set_initrd(vd_profile *p, const char *v, char *why, size_t whylen)
{
    return set_path(p->initrd, v, why, whylen);
}

#define MEMORY_MIN 64
#define MEMORY_MAX 4194304   /* 4 TiB */
#define VCPUS_MAX 512

static int set_memory(vd_profile *p, const char *v, char *why, size_t whylen)
{
    if (parse_uint(v, MEMORY_MIN, MEMORY_MAX, &p->memory_mib) == 0)
        return 0;
    snprintf(why, whylen, "must be the desktop's memory in MiB, a whole number from %d to %d "
             "(decimal digits only)", MEMORY_MIN, MEMORY_MAX);
    return -1;
}

static int set_vcpus(vd_profile *p, const char *v, char *why, size_t whylen)
{
    if (parse_uint(v, 1, VCPUS_MAX, &p->vcpus) == 0)
        return 0;
    snprintf(why, whylen, "must be a whole number of vCPUs from 1 to %d", VCPUS_MAX);
    return -1;
}

static int set_cpus(vd_profile *p, const char *v, char *why, size_t whylen)
{
    char detail[160];
    if (vd_cpulist_check(v, detail, sizeof(detail)) == 0 && copy_str(p->cpus, sizeof(p->cpus), v) == 0)
        return 0;
    snprintf(why, whylen, "must be the host CPUs the vCPUs are pinned to, a CPU list such as "
             "2-3,10-11 (whole cores; decimal CPU numbers and ranges LO-HI, separated by commas)%s%s",
             strlen(v) >= sizeof(p->cpus) ? ": too long" : ": ", strlen(v) >= sizeof(p->cpus) ? "" : detail);
    return -1;
}

static int role_of(const char *s, size_t len)
{
    static const char *names[] = { [VD_ROLE_GPU] = "gpu", [VD_ROLE_IB] = "ib", [VD_ROLE_OTHER] = "other" };
    for (int r = VD_ROLE_GPU; r <= VD_ROLE_OTHER; r++)
        if (strlen(names[r]) == len && !strncmp(s, names[r], len))
            return r;
    return -1;
}

/* devices = gpu, ib: roles, each once; "none" passes nothing through. */
static int set_devices(vd_profile *p, const char *v, char *why, size_t whylen)
{
    p->devices = 0;
    if (!strcmp(v, "none"))
        return 0;
    for (const char *s = v;;) {
        s += strspn(s, " \t");
        size_t len = strcspn(s, ", \t");
        int r = role_of(s, len);
        const char *next = s + len + strspn(s + len, " \t");
        if (r < 0 || (p->devices & (1u << r)) || (*next && *next != ',')) {
            snprintf(why, whylen, "must be 'none' or a comma-separated list of the roles of the "
                     "node's device = lines (gpu, ib, other), each once");
            return -1;
        }
        p->devices |= 1u << r;
        if (!*next)
            return 0;
        s = next + 1;
    }
}

static int set_display(vd_profile *p, const char *v, char *why, size_t whylen)
{
    static const char *names[] = { [VD_DISPLAY_NONE] = "none", [VD_DISPLAY_SPICE] = "spice",
                                   [VD_DISPLAY_VNC] = "vnc" };
    for (int d = VD_DISPLAY_NONE; d <= VD_DISPLAY_VNC; d++)
        if (!strcmp(v, names[d])) {
            p->display = (vd_profile_display)d;
            return 0;
        }
    snprintf(why, whylen, "must be spice, vnc or none");
    return -1;
}

static int set_network(vd_profile *p, const char *v, char *why, size_t whylen)
{
    const char *name = NULL;
    p->net = VD_NET_NONE;
    p->net_name[0] = '\0';
    if (!strcmp(v, "none"))
        return 0;
    if (!strncmp(v, "network:", 8)) {
        p->net = VD_NET_NETWORK;
        name = v + 8;
    } else if (!strncmp(v, "bridge:", 7)) {
        p->net = VD_NET_BRIDGE;
        name = v + 7;
    }
    if (name && *name && strspn(name, NAME_CHARS) == strlen(name) &&
        copy_str(p->net_name, sizeof(p->net_name), name) == 0)
        return 0;
    snprintf(why, whylen, "must be none, network:NAME (a libvirt network) or bridge:NAME (a host "
             "bridge); NAME: letters, digits, '-', '_', '.', at most %zu characters",
             sizeof(p->net_name) - 1);
    return -1;
}

/* A relative user_data is the profile directory's file, so that a
 * profile and its user-data travel together. */
static int set_user_data(vd_profile *p, const char *v, char *why, size_t whylen)
{
    int n = v[0] == '/' ? snprintf(p->user_data, sizeof(p->user_data), "%s", v)
                        : snprintf(p->user_data, sizeof(p->user_data), "%s/%s", p->dir, v);
    if (*v && n > 0 && (size_t)n < sizeof(p->user_data))
        return 0;
    snprintf(why, whylen, "must be the path of a cloud-init user-data file, absolute or relative "
             "to the profile directory %s", p->dir);
    return -1;
}

static int set_uri(vd_profile *p, const char *v, char *why, size_t whylen)
{
    if (strstr(v, "://") && !strpbrk(v, " \t") && copy_str(p->uri, sizeof(p->uri), v) == 0)
        return 0;
    snprintf(why, whylen, "must be a libvirt URI such as qemu:///system (default: the node's uri)");
    return -1;
}

static int set_pool(vd_profile *p, const char *v, char *why, size_t whylen)
{
    if (*v && strspn(v, NAME_CHARS) == strlen(v) && copy_str(p->pool, sizeof(p->pool), v) == 0)
        return 0;
    snprintf(why, whylen, "must be the name of a libvirt storage pool (letters, digits, '-', '_', "
             "'.', at most %zu characters)", sizeof(p->pool) - 1);
    return -1;
}

static int set_domain_type(vd_profile *p, const char *v, char *why, size_t whylen)
{
    if (!strcmp(v, "kvm") || !strcmp(v, "qemu"))
        return copy_str(p->domain_type, sizeof(p->domain_type), v);
    snprintf(why, whylen, "must be kvm (hardware virtualization) or qemu (software emulation)");
    return -1;
}

static int set_cmdline(vd_profile *p, const char *v, char *why, size_t whylen)
{
    (void)why;
    (void)whylen;
    return copy_str(p->cmdline, sizeof(p->cmdline), v);   /* the reader bounds the line */
}

static const struct pkey {
    const char *name;
    psetter set;
    const char *def;     /* the default, as written in a file; NULL: none */
} keys[VD_PK_COUNT] = {
    [VD_PK_INHERIT] = { "inherit", set_inherit, NULL },
    [VD_PK_DESCRIPTION] = { "description", set_description, NULL },
    [VD_PK_BASE_IMAGE] = { "base_image", set_base_image, NULL },
    [VD_PK_MEMORY] = { "memory", set_memory, "2048" },
    [VD_PK_VCPUS] = { "vcpus", set_vcpus, "2" },
    [VD_PK_CPUS] = { "cpus", set_cpus, NULL },
    [VD_PK_DEVICES] = { "devices", set_devices, "none" },
    [VD_PK_DISPLAY] = { "display", set_display, "spice" },
    [VD_PK_NETWORK] = { "network", set_network, "none" },
    [VD_PK_USER_DATA] = { "user_data", set_user_data, NULL },
    [VD_PK_URI] = { "uri", set_uri, NULL },
    [VD_PK_POOL] = { "pool", set_pool, "default" },
    [VD_PK_DOMAIN_TYPE] = { "domain_type", set_domain_type, "kvm" },
    [VD_PK_KERNEL] = { "kernel", set_kernel, NULL },
    [VD_PK_INITRD] = { "initrd", set_initrd, NULL },
    [VD_PK_CMDLINE] = { "cmdline", set_cmdline, NULL },
};

const char *vd_profile_key_name(vd_pkey key)
{
    return key < VD_PK_COUNT ? keys[key].name : "invalid";
}

/* --- one file ---------------------------------------------------------- */

/* What one file says: its values as written and their lines. */
typedef struct layer {
    char raw[VD_PK_COUNT][VD_PROFILE_VALUE_MAX];
    int line[VD_PK_COUNT];   /* 0: not set */
} layer;

/* The reader's state (see conf.c: it sees each line before inih does,
 * counts lines, reads headers and strips comments). */
struct parse {
    FILE *file;
    char *buf;
    size_t bufsize;
    int line;
    int in_section;    /* after [profile] */
    int section_line;
    layer *l;
    vd_profile *scratch;   /* each value is checked by applying it here */
    int msg_line;
    char msg[sizeof(((vd_err *)0)->msg) - PATH_MAX / 8];
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
        p->msg_line = p->line;
    }
    return 0;
}

static void unknown_key(struct parse *p, const char *name)
{
    char list[400] = "";
    size_t used = 0;
    for (int k = 0; k < VD_PK_COUNT; k++) {
        int w = snprintf(list + used, sizeof(list) - used, "%s%s", k ? ", " : "", keys[k].name);
        if (w < 0 || (size_t)w >= sizeof(list) - used)
            break;
        used += (size_t)w;
    }
    fail(p, "unknown key '%s' in [profile] (keys: %s); see vdesk-profile(5)", name, list);
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct parse *p = user;
    (void)section;   /* the reader's view is the one that counts */
    if (!p->in_section)
        return fail(p, "key '%s' comes before [profile]; start the file with a [profile] line", name);
    int k = 0;
    while (k < VD_PK_COUNT && strcmp(keys[k].name, name))
        k++;
    if (k == VD_PK_COUNT) {
        unknown_key(p, name);
        return 0;
    }
    if (p->l->line[k])
        return fail(p, "key '%s' given twice (first at line %d); keep one", name, p->l->line[k]);
    char why[600];
    if (keys[k].set(p->scratch, value, why, sizeof(why)) < 0)
        return fail(p, "bad value '%s = %.200s': %s", name, value, why);
    p->l->line[k] = p->line;
    snprintf(p->l->raw[k], sizeof(p->l->raw[k]), "%s", value);
    return 1;
}

/* As in vdesk.conf: a comment is a whole line starting with '#' or ';', or
 * the rest of a line from a blank followed by one. */
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

static void check_line(struct parse *p, const char *text)
{
    if (!*text)
        return;
    if (*text != '[') {
        if (!strpbrk(text, "=:"))
            fail(p, "syntax error: '%s' is not KEY = VALUE or [profile]", text);
        return;
    }
    if (strcmp(text, "[profile]") != 0) {
        fail(p, "unknown section %s: a profile has one section, [profile]", text);
        return;
    }
    if (p->in_section) {
        fail(p, "section [profile] is repeated (first at line %d); give it once, with all of its keys",
             p->section_line);
        return;
    }
    p->in_section = 1;
    p->section_line = p->line;
}

/* inih's ini_reader: one whole line per call. */
static char *read_line(char *str, int num, void *stream)
{
    struct parse *p = stream;
    if (p->msg[0])
        return NULL;
    ssize_t n = getline(&p->buf, &p->bufsize, p->file);
    if (n < 0)
        return NULL;
    p->line++;
    if (memchr(p->buf, '\0', (size_t)n)) {
        fail(p, "a NUL byte in the line: a profile must be a text file");
        return NULL;
    }
    char *text = p->buf;
    if (p->line == 1 && !strncmp(text, "\xEF\xBB\xBF", 3))
        text += 3;
    text = clean_line(text);
    if (strlen(text) + 2 > (size_t)num || strlen(text) >= VD_PROFILE_VALUE_MAX) {
        fail(p, "line longer than %d characters without its comment; shorten it", VD_PROFILE_VALUE_MAX - 1);
        return NULL;
    }
    check_line(p, text);
    if (p->msg[0])
        return NULL;
    snprintf(str, (size_t)num, "%s\n", text);
    return str;
}

/* Reads `path` into `l`, checking each value on `scratch`. */
static int read_layer(const char *path, layer *l, vd_profile *scratch, vd_err *err)
{
    struct parse p = { .l = l, .scratch = scratch };
    p.file = fopen(path, "r");
    if (!p.file)
        return vd_err_set(err, "%s: cannot open: %s", path, strerror(errno));
    int line = ini_parse_stream(read_line, &p, handler, &p);
    int read_errno = ferror(p.file) ? errno : 0;
    free(p.buf);
    fclose(p.file);
    if (read_errno)
        return vd_err_set(err, "%s:%d: cannot read: %s", path, p.line + 1, strerror(read_errno));
    if (line < 0)
        return vd_err_set(err, "%s: out of memory while parsing", path);
    if (!p.msg[0] && line > 0) {
        p.line = line;
        fail(&p, "syntax error (expected [profile] or key = value)");
    }
    if (!p.msg[0] && !p.in_section)
        return vd_err_set(err, "%s: no [profile] section; a profile is a [profile] line and its keys "
                          "(vdesk-profile(5))", path);
    if (p.msg[0])
        return vd_err_set(err, "%s:%d: %s", path, p.msg_line, p.msg);
    return 0;
}

/* --- the chain --------------------------------------------------------- */

static void defaults(vd_profile *p)
{
    vd_err err;
    for (int k = 0; k < VD_PK_COUNT; k++) {
        p->from[k] = (vd_porigin){ .file = -1, .line = 0 };
        if (keys[k].def && keys[k].set(p, keys[k].def, err.msg, sizeof(err.msg)) == 0)
            snprintf(p->raw[k], sizeof(p->raw[k]), "%s", keys[k].def);
    }
}

/* "a -> b -> a", the names of the chain from `from` on, and `last`. */
static void chain_words(const vd_profile *p, int from, const char *last, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = from; i < p->nchain; i++) {
        const char *base = strrchr(p->chain[i], '/');
        int w = snprintf(buf + used, size - used, "%.*s -> ", (int)(strlen(base + 1) - strlen(SUFFIX)),
                         base + 1);
        if (w < 0 || (size_t)w >= size - used)
            return;
        used += (size_t)w;
    }
    snprintf(buf + used, size - used, "%s", last);
}

/* Where `name` is in the chain so far, -1 if not. */
static int chain_index(const vd_profile *p, const char *name)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s" SUFFIX, p->dir, name) >= sizeof(path))
        return -1;
    for (int i = 0; i < p->nchain; i++)
        if (!strcmp(p->chain[i], path))
            return i;
    return -1;
}

/* The next file of the chain, named by inherit = of the last one read. */
static int next_link(vd_profile *p, const layer *prev, const char *name, vd_err *err)
{
    const char *by = p->chain[p->nchain - 1];
    int line = prev->line[VD_PK_INHERIT];
    char words[512];
    int at = chain_index(p, name);
    if (at >= 0) {
        chain_words(p, at, name, words, sizeof(words));
        return vd_err_set(err, "%s:%d: inherit = %s makes a loop: %s; remove one of these inherit "
                          "lines", by, line, name, words);
    }
    if (p->nchain == VD_PROFILE_DEPTH) {
        chain_words(p, 0, name, words, sizeof(words));
        return vd_err_set(err, "%s:%d: inherit = %s: more than %d profiles in one chain (%s); "
                          "inherit from fewer levels", by, line, name, VD_PROFILE_DEPTH, words);
    }
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s" SUFFIX, p->dir, name) >= sizeof(path))
        return vd_err_set(err, "%s:%d: inherit = %s: path too long", by, line, name);
    if (access(path, F_OK) < 0)
        return vd_err_set(err, "%s:%d: inherit = %s: no such profile (%s: %s); create it or fix "
                          "the name (vdeskctl profile list)", by, line, name, path, strerror(errno));
    snprintf(p->chain[p->nchain++], sizeof(p->chain[0]), "%s", path);
    return 0;
}

/* Keys that make sense only together, checked on the resolved profile. */
static int check_together(const vd_profile *p, vd_err *err)
{
    char where[PATH_MAX + 16];
    if (!p->base_image[0])
        return vd_err_set(err, "%s: no base_image in the profile%s; add base_image = /path/of/an/image "
                          "(qcow2 or raw) to [profile]", p->chain[0], p->nchain > 1 ? " or those it inherits" : "");
    for (vd_pkey k = VD_PK_INITRD; k <= VD_PK_CMDLINE; k++)
        if (p->raw[k][0] && !p->kernel[0])
            return vd_err_set(err, "%s: %s is set but kernel is not: %s goes with direct kernel boot; "
                              "add kernel = /path or remove %s", vd_profile_origin(p, k, where, sizeof(where)),
                              keys[k].name, keys[k].name, keys[k].name);
    return 0;
}

/* Applies the layers, farthest ancestor first: each key's value is that
 * of the nearest file that sets it. */
static void resolve(vd_profile *p, const layer *layers)
{
    for (int i = p->nchain - 1; i >= 0; i--)
        for (int k = 0; k < VD_PK_COUNT; k++) {
            if (!layers[i].line[k])
                continue;
            char why[16];
            keys[k].set(p, layers[i].raw[k], why, sizeof(why));   /* checked when read */
            snprintf(p->raw[k], sizeof(p->raw[k]), "%s", layers[i].raw[k]);
            p->from[k] = (vd_porigin){ .file = i, .line = layers[i].line[k] };
        }
    /* inherit = is each file's own: the resolved one is the profile's. */
    p->inherit[0] = '\0';
    if (layers[0].line[VD_PK_INHERIT])
        copy_str(p->inherit, sizeof(p->inherit), layers[0].raw[VD_PK_INHERIT]);   /* checked when read */
}

static int load_chain(vd_profile *p, layer *layers, vd_profile *scratch, vd_err *err)
{
    for (int i = 0;; i++) {
        *scratch = *p;
        if (read_layer(p->chain[i], &layers[i], scratch, err) < 0)
            return -1;
        if (!layers[i].line[VD_PK_INHERIT])
            return 0;
        if (next_link(p, &layers[i], layers[i].raw[VD_PK_INHERIT], err) < 0)
            return -1;
    }
}

int vd_profile_load(const char *dir, const char *name, vd_profile *p, vd_err *err)
{
    memset(p, 0, sizeof(*p));
    if (!vd_profile_name_ok(name))
        return vd_err_set(err, "profile name '%s': letters, digits, '-', '_', '.', not starting "
                          "with '.', at most %d characters", name, VD_PROFILE_NAME_MAX);
    if (copy_str(p->dir, sizeof(p->dir), dir) < 0 || copy_str(p->name, sizeof(p->name), name) < 0 ||
        (size_t)snprintf(p->chain[0], sizeof(p->chain[0]), "%s/%s" SUFFIX, dir, name) >= sizeof(p->chain[0]))
        return vd_err_set(err, "profile directory %s: path too long", dir);
    p->nchain = 1;
    if (access(p->chain[0], F_OK) < 0)
        return vd_err_set(err, "%s: no such profile (%s); 'vdeskctl profile list' lists those of %s "
                          "(profile_dir in vdesk.conf)", p->chain[0], strerror(errno), dir);
    defaults(p);
    layer *layers = calloc(VD_PROFILE_DEPTH, sizeof(*layers));
    vd_profile *scratch = malloc(sizeof(*scratch));
    int rc = layers && scratch ? load_chain(p, layers, scratch, err) : vd_err_set(err, "out of memory");
    if (rc == 0) {
        resolve(p, layers);
        rc = check_together(p, err);
    }
    free(layers);
    free(scratch);
    return rc;
}

const char *vd_profile_origin(const vd_profile *p, vd_pkey key, char *buf, size_t size)
{
    if (key >= VD_PK_COUNT || p->from[key].file < 0)
        snprintf(buf, size, "default");
    else
        snprintf(buf, size, "%s:%d", p->chain[p->from[key].file], p->from[key].line);
    return buf;
}

/* --- the directory ----------------------------------------------------- */

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void vd_profile_names_free(char **names, int count)
{
    for (int i = 0; names && i < count; i++)
        free(names[i]);
    free(names);
}

/* NAME.profile with a valid NAME; anything else in the directory is not a profile. */
static int profile_file(const char *file, size_t *namelen)
{
    size_t n = strlen(file), s = strlen(SUFFIX);
    if (n <= s || strcmp(file + n - s, SUFFIX) != 0 || n - s > VD_PROFILE_NAME_MAX)
        return 0;
    char name[VD_PROFILE_NAME_MAX + 1];
    snprintf(name, sizeof(name), "%.*s", (int)(n - s), file);
    *namelen = n - s;
    return vd_profile_name_ok(name);
}

int vd_profile_list(const char *dir, char ***names, int *count, vd_err *err)
{
    *names = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d)
        return vd_err_set(err, "profile directory %s: %s (create it, or set profile_dir in [vdesk] of "
                          "vdesk.conf)", dir, strerror(errno));
    char **out = NULL;
    int n = 0, cap = 0, rc = 0;
    struct dirent *e;
    size_t len;
    while (rc == 0 && (e = readdir(d))) {
        if (!profile_file(e->d_name, &len))
            continue;
        if (n == cap) {
            char **grown = realloc(out, (size_t)(cap = cap ? 2 * cap : 16) * sizeof(*out));
            if (!grown) {
                rc = vd_err_set(err, "out of memory");
                break;
            }
            out = grown;
        }
        if (!(out[n] = strndup(e->d_name, len)))
            rc = vd_err_set(err, "out of memory");
        else
            n++;
    }
    closedir(d);
    if (rc < 0) {
        vd_profile_names_free(out, n);
        return -1;
    }
    if (n)
        qsort(out, (size_t)n, sizeof(*out), by_name);
    *names = out;
    *count = n;
    return 0;
}

/* --- images ------------------------------------------------------------ */

/* Only what libvirt needs to put an overlay on the image: its format (the
 * backing store's <format>, which libvirt will not guess for safety) and
 * its virtual size (the overlay's capacity). qcow2's header starts with
 * "QFI\xfb", a big-endian version, and holds the size at byte 24. */
int vd_image_probe(const char *path, const char **format, unsigned long long *bytes, vd_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vd_err_set(err, "%s: cannot open: %s", path, strerror(errno));
    unsigned char h[32];
    struct stat st;
    ssize_t n = pread(fd, h, sizeof(h), 0);
    int rc = fstat(fd, &st);
    close(fd);
    if (n < 0 || rc < 0)
        return vd_err_set(err, "%s: cannot read: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        return vd_err_set(err, "%s: not a disk image (neither a file nor a block device)", path);
    if (n == (ssize_t)sizeof(h) && !memcmp(h, "QFI\xfb", 4)) {
        unsigned long long size = 0;
        for (int i = 24; i < 32; i++)
            size = size << 8 | h[i];
        *format = "qcow2";
        *bytes = size;
    } else {
        *format = "raw";
        *bytes = (unsigned long long)st.st_size;
    }
    if (*bytes == 0)
        return vd_err_set(err, "%s: an empty image (size 0): nothing to boot from", path);
    return 0;
}

/* --- checks outside the profile ---------------------------------------- */

typedef struct checker {
    const vd_profile *p;
    vd_profile_say say;
    void *ctx;
    int problems;
} checker;

static void report(checker *k, int problem, vd_pkey key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* One line: where the value is (FILE:LINE), the key and what is wrong. */
static void report(checker *k, int problem, vd_pkey key, const char *fmt, ...)
{
    char where[PATH_MAX + 16], what[1024], line[PATH_MAX + 1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(line, sizeof(line), "%s: %s = %s: %s", vd_profile_origin(k->p, key, where, sizeof(where)),
             keys[key].name, k->p->raw[key], what);
    k->problems += problem;
    k->say(k->ctx, problem, line);
}

/* A file vdesk (root) and libvirt will read. */
static int readable(checker *k, vd_pkey key, const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0 || access(path, R_OK) < 0) {
        report(k, 1, key, "%s: %s; give the path of an existing, readable file", path, strerror(errno));
        return 0;
    }
    if (!S_ISREG(st.st_mode) && !(key == VD_PK_BASE_IMAGE && S_ISBLK(st.st_mode))) {
        report(k, 1, key, "%s is not a regular file", path);
        return 0;
    }
    return 1;
}

static void check_files(checker *k)
{
    const vd_profile *p = k->p;
    const char *fmt;
    unsigned long long bytes;
    vd_err err;
    if (readable(k, VD_PK_BASE_IMAGE, p->base_image)) {
        if (vd_image_probe(p->base_image, &fmt, &bytes, &err) < 0)
            report(k, 1, VD_PK_BASE_IMAGE, "%s", err.msg);
        else
            report(k, 0, VD_PK_BASE_IMAGE, "a %s image of %llu MiB", fmt, bytes >> 20);
    }
    if (p->kernel[0])
        readable(k, VD_PK_KERNEL, p->kernel);
    if (p->initrd[0])
        readable(k, VD_PK_INITRD, p->initrd);
}

/* cloud-init names the place of a YAML error "format-lL.cC"; of a schema
 * error, the key path ("runcmd", "users.0"), whose top-level key's line
 * the file shows. Returns the line, 0 if unknown. */
static int cloud_init_line(const char *userdata, const char *msg)
{
    const char *f = strstr(msg, "format-l");
    if (f)
        return atoi(f + 8);
    const char *e = strstr(msg, "schema errors: ");
    if (!e)
        return 0;
    e += strlen("schema errors: ");
    size_t len = strcspn(e, ".:[ ");
    FILE *in = fopen(userdata, "r");
    char buf[1024];
    int line = 0, found = 0;
    while (in && !found && fgets(buf, sizeof(buf), in)) {
        line++;
        found = len && !strncmp(buf, e, len) && buf[len] == ':';
    }
    if (in)
        fclose(in);
    return found ? line : 0;
}

/* The message of cloud-init's output: from its "schema errors:" line (or
 * its last line), on one line. */
static void cloud_init_msg(char *out)
{
    char *m = strstr(out, "Cloud config schema errors:");
    if (!m) {
        size_t n = strlen(out);
        while (n && isspace((unsigned char)out[n - 1]))
            out[--n] = '\0';
        m = strrchr(out, '\n') ? strrchr(out, '\n') + 1 : out;
    }
    memmove(out, m, strlen(m) + 1);
    for (char *c = out; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t')
            *c = ' ';
    size_t n = strlen(out);
    while (n && out[n - 1] == ' ')
        out[--n] = '\0';
}

#define CLOUD_INIT_INSTALL "install Debian's cloud-init package (apt-get install cloud-init) to check it"

static void check_user_data(checker *k, int timeout_ms)
{
    const vd_profile *p = k->p;
    char prog[PATH_MAX], out[4096];
    if (!readable(k, VD_PK_USER_DATA, p->user_data))
        return;
    if (vd_child_which("cloud-init", prog, sizeof(prog)) < 0) {
        report(k, 0, VD_PK_USER_DATA, "%s was not schema-checked: cloud-init is not installed; "
               CLOUD_INIT_INSTALL, p->user_data);
        return;
    }
    char *argv[] = { "cloud-init", "schema", "--config-file", (char *)p->user_data, NULL };
    vd_err err;
    if (vd_child_exec(argv, timeout_ms, out, sizeof(out), &err) == 0) {
        report(k, 0, VD_PK_USER_DATA, "%s: valid for cloud-init's schema", p->user_data);
        return;
    }
    if (!strstr(out, "schema errors") && !strstr(out, "Error")) {
        report(k, 1, VD_PK_USER_DATA, "cloud-init schema --config-file %s failed: %s", p->user_data, err.msg);
        return;
    }
    int line = cloud_init_line(p->user_data, out);
    cloud_init_msg(out);
    char at[32] = "";
    if (line)
        snprintf(at, sizeof(at), ":%d", line);
    report(k, 1, VD_PK_USER_DATA, "%s%s: cloud-init's schema refuses it: %.700s; fix the user-data "
           "(check it with: cloud-init schema --config-file %s)", p->user_data, at, out, p->user_data);
}

static void check_devices(checker *k, const vd_conf *conf)
{
    for (int r = VD_ROLE_GPU; r <= VD_ROLE_OTHER; r++) {
        if (!(k->p->devices & (1u << r)))
            continue;
        int found = 0;
        for (int i = 0; i < conf->ndevices; i++) {
            if (conf->devices[i].role != (vd_role)r)
                continue;
            found++;
            if (!conf->devices[i].pci[0])
                report(k, 0, VD_PK_DEVICES, "node %s's %s device %s has no PCI address in %s: "
                       "bootstrap skips it", conf->node, vd_role_name((vd_role)r), conf->devices[i].alias,
                       conf->path);
        }
        if (!found)
            report(k, 0, VD_PK_DEVICES, "node %s has no %s device (device = lines of [node %s] in %s): "
                   "the desktop gets none", conf->node, vd_role_name((vd_role)r), conf->node, conf->path);
    }
}

static void check_cores(checker *k, const char *topology)
{
    vd_topo *t = NULL;
    vd_err err;
    if (vd_topo_open(topology && *topology ? topology : NULL, &t, &err) < 0) {
        report(k, 1, VD_PK_CPUS, "%s", err.msg);
        return;
    }
    if (vd_topo_whole_cores(t, k->p->cpus, &err) < 0)
        report(k, 1, VD_PK_CPUS, "%s; pin to whole cores (vdeskctl inventory shows them)", err.msg);
    vd_topo_close(t);
}

int vd_profile_check(const vd_profile *p, const vd_conf *conf, int live, const char *topology,
                     int timeout_ms, vd_profile_say say, void *ctx, vd_err *err)
{
    (void)err;
    checker k = { .p = p, .say = say, .ctx = ctx };
    check_files(&k);
    if (p->user_data[0])
        check_user_data(&k, timeout_ms);
    if (conf && conf->node[0])
        check_devices(&k, conf);
    if (live && p->cpus[0])
        check_cores(&k, topology);
    return k.problems;
}
