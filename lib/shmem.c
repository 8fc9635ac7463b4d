/* SPDX-License-Identifier: MIT */
/*
 * shmem.c - shared memory regions between desktop VMs of one host
 * (shmem.h; docs/design.md, "Shared memory").
 */
#include "shmem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include "journal.h"
#include "statedir.h"

#define REG_DIR "shmem"
#define REG_MAX_BYTES 4096   /* a region's file is a few dozen bytes */
#define LOCK_WAIT_S 60

/* --- names, sizes, roles ------------------------------------------------- */

static int name_char(char c)
{
    return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '-' ||
           c == '_';
}

int vd_shmem_name_check(const char *name, vd_err *err)
{
    size_t len = strlen(name);
    if (len == 0 || len > VD_SHMEM_NAME_MAX)
        return vd_err_set(err, "region name '%.60s': give 1 to %d characters", name, VD_SHMEM_NAME_MAX);
    if (name[0] == '-' || name[0] == '_')
        return vd_err_set(err, "region name '%s': start it with a letter or digit", name);
    for (const char *p = name; *p; p++)
        if (!name_char(*p))
            return vd_err_set(err, "region name '%.60s': use only letters, digits, '-' and '_' (it "
                              "becomes a file in /dev/shm and a libvirt alias)", name);
    return 0;
}

static int power_of_two(unsigned long long v)
{
    return v && !(v & (v - 1));
}

/* The multiplier of a binary unit suffix ("", K, KiB, M, ...); 0: none. */
static unsigned long long unit_of(const char *s)
{
    static const struct { const char *name; unsigned long long mul; } units[] = {
        { "", 1 }, { "B", 1 }, { "K", 1ULL << 10 }, { "KiB", 1ULL << 10 }, { "M", 1ULL << 20 },
        { "MiB", 1ULL << 20 }, { "G", 1ULL << 30 }, { "GiB", 1ULL << 30 },
    };
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (!strcasecmp(s, units[i].name))
            return units[i].mul;
    return 0;
}

int vd_shmem_size_parse(const char *text, unsigned long long *bytes, vd_err *err)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    unsigned long long mul = unit_of(end);
    if (text[0] < '0' || text[0] > '9' || errno || !mul)
        return vd_err_set(err, "size '%.40s': give bytes or a number with K, M or G (binary), e.g. 1M", text);
    if (v > VD_SHMEM_MAX_SIZE / mul || v * mul > VD_SHMEM_MAX_SIZE || v * mul < VD_SHMEM_MIN)
        return vd_err_set(err, "size '%.40s': give 1M to 64G", text);
    if (!power_of_two(v * mul))
        return vd_err_set(err, "size '%.40s' (%llu bytes) is not a power of two, which QEMU's ivshmem "
                          "requires: give e.g. 1M, 2M, 4M", text, v * mul);
    *bytes = v * mul;
    return 0;
}

const char *vd_shmem_size_str(unsigned long long bytes, char *buf, size_t size)
{
    static const char *names[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    int i = 0;
    while (i < 4 && bytes >= 1024 && bytes % 1024 == 0) {
        bytes /= 1024;
        i++;
    }
    snprintf(buf, size, "%llu %s", bytes, names[i]);
    return buf;
}

int vd_shmem_role_parse(const char *text, vd_shmem_role *role, vd_err *err)
{
    if (!strcmp(text, "master"))
        *role = VD_SHMEM_MASTER;
    else if (!strcmp(text, "peer"))
        *role = VD_SHMEM_PEER;
    else
        return vd_err_set(err, "role '%.40s': give master or peer", text);
    return 0;
}

const char *vd_shmem_role_name(vd_shmem_role role)
{
    return role == VD_SHMEM_MASTER ? "master" : "peer";
}

const char *vd_shmem_alias(const char *name, char *buf, size_t size)
{
    snprintf(buf, size, VD_SHMEM_ALIAS_PREFIX "%s", name);
    return buf;
}

int vd_shmem_is_alias(const char *alias)
{
    size_t n = strlen(VD_SHMEM_ALIAS_PREFIX);
    return !strncmp(alias, VD_SHMEM_ALIAS_PREFIX, n) && vd_shmem_name_check(alias + n, NULL) == 0;
}

/* --- XML ------------------------------------------------------------------ */

int vd_shmem_dev_xml(const vd_shmem *r, vd_shmem_role role, char **xml, vd_err *err)
{
    char alias[80], kib[32];
    *xml = NULL;
    if (vd_shmem_name_check(r->name, err) < 0)
        return -1;
    if (!power_of_two(r->size) || r->size < VD_SHMEM_MIN || r->size > VD_SHMEM_MAX_SIZE)
        return vd_err_set(err, "region %s: size %llu is not a power of two from 1 MiB to 64 GiB", r->name,
                          r->size);
    snprintf(kib, sizeof(kib), "%llu", r->size >> 10);
    xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
    xmlNodePtr n = doc ? xmlNewNode(NULL, BAD_CAST "shmem") : NULL;
    xmlBufferPtr buf = xmlBufferCreate();
    int ok = n && buf;
    if (ok) {
        xmlDocSetRootElement(doc, n);
        xmlNodePtr model = xmlNewChild(n, NULL, BAD_CAST "model", NULL);
        xmlNodePtr sz = xmlNewTextChild(n, NULL, BAD_CAST "size", BAD_CAST kib);
        xmlNodePtr al = xmlNewChild(n, NULL, BAD_CAST "alias", NULL);
        ok = xmlNewProp(n, BAD_CAST "name", BAD_CAST r->name) &&
             xmlNewProp(n, BAD_CAST "role", BAD_CAST vd_shmem_role_name(role)) && model &&
             xmlNewProp(model, BAD_CAST "type", BAD_CAST "ivshmem-plain") && sz &&
             xmlNewProp(sz, BAD_CAST "unit", BAD_CAST "KiB") && al &&
             xmlNewProp(al, BAD_CAST "name", BAD_CAST vd_shmem_alias(r->name, alias, sizeof(alias))) &&
             xmlNodeDump(buf, doc, n, 0, 0) > 0 && (*xml = strdup((const char *)xmlBufferContent(buf)));
    }
    xmlBufferFree(buf);
    xmlFreeDoc(doc);
    return ok ? 0 : vd_err_set(err, "region %s: out of memory building its device XML", r->name);
}

/* The bytes of a <size unit='U'>N</size> as libvirt writes it. */
static int xml_size(xmlNodePtr s, unsigned long long *bytes)
{
    xmlChar *unit = xmlGetProp(s, BAD_CAST "unit");
    xmlChar *text = xmlNodeGetContent(s);
    unsigned long long mul = unit_of(unit ? (const char *)unit : "");
    char *end = NULL;
    errno = 0;
    unsigned long long v = text ? strtoull((const char *)text, &end, 10) : 0;
    int ok = text && mul && end != (char *)text && !*end && !errno && v <= ULLONG_MAX / mul;
    *bytes = ok ? v * mul : 0;
    xmlFree(unit);
    xmlFree(text);
    return ok ? 0 : -1;
}

static int xml_member(xmlNodePtr e, const char *desktop, int live, vd_shmem_member *m);

/* What a journal says a region's device was is only a hint: read back as
 * name, size and role, checked, and built again (a journal is untrusted). */
int vd_shmem_dev_xml_clean(const char *alias, const char *xml, char **out, vd_err *err)
{
    *out = NULL;
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "journal", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
    vd_shmem_member m;
    int ok = root && !xmlStrcmp(root->name, BAD_CAST "shmem") && xml_member(root, "", 0, &m) == 0 &&
             vd_shmem_is_alias(alias) && !strcmp(m.name, alias + strlen(VD_SHMEM_ALIAS_PREFIX));
    for (xmlNodePtr c = ok ? root->children : NULL; c; c = c->next) {
        xmlChar *type = c->type == XML_ELEMENT_NODE ? xmlGetProp(c, BAD_CAST "type") : NULL;
        if (c->type == XML_ELEMENT_NODE && (!xmlStrcmp(c->name, BAD_CAST "server") ||
            (!xmlStrcmp(c->name, BAD_CAST "model") && (!type || xmlStrcmp(type, BAD_CAST "ivshmem-plain")))))
            ok = 0;
        xmlFree(type);
    }
    xmlFreeDoc(doc);
    if (!ok)
        return vd_err_set(err, "the journal's device %s is not the ivshmem-plain device of region %s that vdesk "
                          "attaches: not plugged back (attach it again with 'vdeskctl shmem attach')", alias,
                          alias + strlen(VD_SHMEM_ALIAS_PREFIX));
    vd_shmem r = { .size = m.size };
    snprintf(r.name, sizeof(r.name), "%s", m.name);
    return vd_shmem_dev_xml(&r, m.role, out, err);
}

/* One <shmem> element into m; -1: not one a member can be read from. */
static int xml_member(xmlNodePtr e, const char *desktop, int live, vd_shmem_member *m)
{
    memset(m, 0, sizeof(*m));
    xmlChar *name = xmlGetProp(e, BAD_CAST "name");
    xmlChar *role = xmlGetProp(e, BAD_CAST "role");
    int rc = name && vd_shmem_name_check((const char *)name, NULL) == 0 ? 0 : -1;
    if (rc == 0) {
        snprintf(m->name, sizeof(m->name), "%s", (const char *)name);
        snprintf(m->desktop, sizeof(m->desktop), "%s", desktop);
        /* No role: QEMU's default, which migrates the region as a master does. */
        m->role = role && !xmlStrcmp(role, BAD_CAST "peer") ? VD_SHMEM_PEER : VD_SHMEM_MASTER;
        m->live = live;
        m->defined = !live;
        for (xmlNodePtr c = e->children; c; c = c->next)
            if (c->type == XML_ELEMENT_NODE && !xmlStrcmp(c->name, BAD_CAST "size") &&
                xml_size(c, &m->size) < 0)
                rc = -1;
    }
    xmlFree(name);
    xmlFree(role);
    return rc;
}

int vd_shmem_in_xml(const char *xml, const char *desktop, int live, vd_shmem_member *out, int max,
                    int *n, vd_err *err)
{
    *n = 0;
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc)
        return vd_err_set(err, "VM %s: its XML does not parse", desktop);
    xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
    xmlXPathObjectPtr res = ctx ? xmlXPathEvalExpression(BAD_CAST "/domain/devices/shmem", ctx) : NULL;
    int rc = res ? 0 : vd_err_set(err, "VM %s: cannot look for <shmem> in its XML", desktop);
    int count = res && res->nodesetval ? res->nodesetval->nodeNr : 0;
    for (int i = 0; i < count && rc == 0; i++) {
        if (*n == max)
            rc = vd_err_set(err, "VM %s: more than %d shared memory devices", desktop, max);
        else if (xml_member(res->nodesetval->nodeTab[i], desktop, live, &out[*n]) == 0)
            (*n)++;
        /* (a <shmem> vdesk cannot name, e.g. with a '.' in it, is not one of its regions) */
    }
    xmlXPathFreeObject(res);
    xmlXPathFreeContext(ctx);
    xmlFreeDoc(doc);
    return rc;
}

/* --- the registry ---------------------------------------------------------- */

static int reg_dir(const char *state_dir, char *buf, size_t size, vd_err *err)
{
    if (snprintf(buf, size, "%s/" REG_DIR, state_dir) >= (int)size)
        return vd_err_set(err, "%s: path too long for its shmem directory", state_dir);
    return 0;
}

static int reg_path(const char *state_dir, const char *name, char *buf, size_t size, vd_err *err)
{
    if (snprintf(buf, size, "%s/" REG_DIR "/%s.json", state_dir, name) >= (int)size)
        return vd_err_set(err, "%s: path too long for region %s", state_dir, name);
    return 0;
}

#define REG_FIX " (vdeskctl shmem writes these files: remove it, and create the region again)"

int vd_shmem_parse(const char *path, const char *name, const char *text, size_t len, vd_shmem *r,
                   vd_err *err)
{
    memset(r, 0, sizeof(*r));
    if (len == 0 || memchr(text, '\0', len))
        return vd_err_set(err, "%s: empty or not text" REG_FIX, path);
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return vd_err_set(err, "%s: out of memory reading it", path);
    /* The NUL counts, as in json_tokener_parse: it ends a number at the end. */
    json_object *o = json_tokener_parse_ex(tok, text, (int)len + 1);
    enum json_tokener_error e = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    json_object *jn = NULL, *js = NULL;
    int rc = 0;
    while (end < len && strchr(" \t\r\n", text[end]))
        end++;
    if (e != json_tokener_success || !json_object_is_type(o, json_type_object) || end < len)
        rc = vd_err_set(err, "%s: not one JSON object" REG_FIX, path);
    else if (!json_object_object_get_ex(o, "name", &jn) || !json_object_is_type(jn, json_type_string) ||
             strcmp(json_object_get_string(jn), name) != 0)
        rc = vd_err_set(err, "%s: \"name\" is not the string \"%s\"" REG_FIX, path, name);
    else if (!json_object_object_get_ex(o, "size", &js) || !json_object_is_type(js, json_type_int) ||
             json_object_get_int64(js) < (int64_t)VD_SHMEM_MIN ||
             json_object_get_int64(js) > (int64_t)VD_SHMEM_MAX_SIZE ||
             !power_of_two((unsigned long long)json_object_get_int64(js)))
        rc = vd_err_set(err, "%s: \"size\" is not a power of two from 1048576 to %llu" REG_FIX, path,
                        VD_SHMEM_MAX_SIZE);
    if (rc == 0 && vd_shmem_name_check(name, err) < 0)
        rc = vd_err_prefix(err, "%s", path);
    if (rc == 0) {
        snprintf(r->name, sizeof(r->name), "%s", name);
        r->size = (unsigned long long)json_object_get_int64(js);
    }
    json_object_put(o);
    return rc;
}

/* The file's text, if it is a regular file of a region's size reached
 * without a link: 1 read, 0 none, -1 refused. */
static int reg_read(const char *path, char *buf, size_t size, size_t *len, vd_err *err)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return errno == ENOENT ? 0 : vd_state_open_failed(path, err);
    struct stat st;
    int rc = 1;
    ssize_t got = 0;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size >= (off_t)size)
        rc = vd_err_set(err, "%s: not a regular file of a region's size (less than %d bytes)" REG_FIX, path,
                        REG_MAX_BYTES);
    else if ((got = read(fd, buf, (size_t)st.st_size)) != st.st_size)
        rc = vd_err_set(err, "%s: cannot read: %s", path, got < 0 ? strerror(errno) : "short read");
    close(fd);
    *len = rc == 1 ? (size_t)got : 0;
    buf[*len] = '\0';
    return rc;
}

int vd_shmem_load(const char *state_dir, const char *name, vd_shmem *r, vd_err *err)
{
    char path[PATH_MAX], text[REG_MAX_BYTES];
    size_t len;
    if (vd_shmem_name_check(name, err) < 0 || reg_path(state_dir, name, path, sizeof(path), err) < 0)
        return -1;
    int rc = reg_read(path, text, sizeof(text), &len, err);
    if (rc == 0)
        return vd_err_set(err, "unknown region '%s': create it first with 'vdeskctl shmem create %s SIZE' "
                          "('vdeskctl shmem list' shows the regions)", name, name);
    return rc < 0 ? -1 : vd_shmem_parse(path, name, text, len, r, err);
}

static int reg_store(const char *state_dir, const vd_shmem *r, vd_err *err)
{
    char dir[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX + 64];
    if (reg_dir(state_dir, dir, sizeof(dir), err) < 0 || reg_path(state_dir, r->name, path, sizeof(path), err) < 0)
        return -1;
    if (vd_mkdirs(dir, err) < 0 || vd_state_dir_check(dir, err) < 0)
        return -1;
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, r->name);
    if (unlink(tmp) < 0 && errno != ENOENT)
        return vd_err_set(err, "%s: cannot remove the stale one: %s", tmp, strerror(errno));
    json_object *o = json_object_new_object();
    int ok = o && !json_object_object_add(o, "name", json_object_new_string(r->name)) &&
             !json_object_object_add(o, "size", json_object_new_int64((int64_t)r->size));
    const char *text = ok ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_SPACED) : NULL;
    int fd = text ? vd_state_open(tmp, O_WRONLY | O_CREAT | O_EXCL, err)
                  : vd_err_set(err, "%s: out of memory writing it", path);
    int rc = fd < 0 ? -1 : 0;
    if (rc == 0 && vd_state_write_line(fd, text) < 0)
        rc = vd_err_set(err, "%s: cannot write: %s", tmp, strerror(errno));
    json_object_put(o);
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = vd_err_set(err, "%s: close: %s", tmp, strerror(errno));
    if (rc == 0 && (rename(tmp, path) < 0 || vd_state_fsync_dir(dir) < 0))
        rc = vd_err_set(err, "%s: cannot write: %s", path, strerror(errno));
    if (rc < 0)
        unlink(tmp);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const vd_shmem *)a)->name, ((const vd_shmem *)b)->name);
}

int vd_shmem_list(const char *state_dir, vd_shmem *out, int *n, char *skipped, size_t size, vd_err *err)
{
    char dir[PATH_MAX];
    *n = 0;
    if (skipped && size)
        skipped[0] = '\0';
    if (reg_dir(state_dir, dir, sizeof(dir), err) < 0)
        return -1;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : vd_err_set(err, "%s: cannot list: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) && *n < VD_SHMEM_MAX) {
        char name[VD_SHMEM_NAME_MAX + 8];
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 6 || len - 5 > VD_SHMEM_NAME_MAX || strcmp(e->d_name + len - 5, ".json"))
            continue;
        snprintf(name, sizeof(name), "%.*s", (int)(len - 5), e->d_name);
        vd_err why;
        if (vd_shmem_load(state_dir, name, &out[*n], &why) == 0)
            (*n)++;
        else if (skipped && size && !skipped[0])
            snprintf(skipped, size, "%s", why.msg);
    }
    closedir(d);
    qsort(out, (size_t)*n, sizeof(*out), by_name);
    return 0;
}

/* --- members, from libvirt ---------------------------------------------- */

/* Adds m to the listing, merging it with the same desktop's entry for the
 * same region from its other XML (live or defined). */
static int member_add(vd_shmem_member *out, int max, int *n, const vd_shmem_member *m, vd_err *err)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp(out[i].name, m->name) && !strcmp(out[i].desktop, m->desktop)) {
            out[i].live |= m->live;
            out[i].defined |= m->defined;
            if (m->live)   /* the running VM's role and size are the ones in force */
                out[i].role = m->role, out[i].size = m->size;
            return 0;
        }
    if (*n == max)
        return vd_err_set(err, "more than %d shared memory devices on this host", max);
    out[(*n)++] = *m;
    return 0;
}

static int members_of(vd_hv *hv, const char *dom, int live, const char *name, vd_shmem_member *out, int max,
                      int *n, vd_err *err)
{
    char *xml = NULL;
    vd_shmem_member found[VD_SHMEM_MAX];
    int nf = 0;
    if (vd_hv_dom_xml(hv, dom, !live, &xml, err) < 0)
        return -1;
    int rc = vd_shmem_in_xml(xml, dom, live, found, VD_SHMEM_MAX, &nf, err);
    free(xml);
    for (int i = 0; i < nf && rc == 0; i++)
        if (!name || !strcmp(found[i].name, name))
            rc = member_add(out, max, n, &found[i], err);
    return rc;
}

static int running(vd_dom_state s)
{
    return s == VD_DOM_RUNNING || s == VD_DOM_PAUSED;
}

static int by_region_desktop(const void *a, const void *b)
{
    const vd_shmem_member *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->desktop, y->desktop);
}

int vd_shmem_members(vd_hv *hv, const char *name, vd_shmem_member *out, int max, int *n, vd_err *err)
{
    char **doms = NULL;
    int nd = 0, rc = 0;
    *n = 0;
    if (vd_hv_dom_list(hv, &doms, &nd, err) < 0)
        return -1;
    for (int i = 0; i < nd && rc == 0; i++) {
        vd_dom_state s;
        if (vd_hv_dom_state(hv, doms[i], &s, err) < 0)
            rc = -1;
        else if (running(s) && members_of(hv, doms[i], 1, name, out, max, n, err) < 0)
            rc = -1;
        else if (members_of(hv, doms[i], 0, name, out, max, n, err) < 0)
            rc = -1;
    }
    vd_hv_names_free(doms, nd);
    if (rc == 0)
        qsort(out, (size_t)*n, sizeof(*out), by_region_desktop);
    return rc;
}

int vd_shmem_of_desktop(vd_hv *hv, const char *dom, vd_shmem_member *out, int max, int *n, vd_err *err)
{
    vd_dom_state s;
    *n = 0;
    if (vd_hv_dom_state(hv, dom, &s, err) < 0)
        return -1;
    if (s == VD_DOM_MISSING)
        return 0;
    return members_of(hv, dom, running(s), NULL, out, max, n, err);
}

/* --- vdeskctl shmem -------------------------------------------------------- */

/* The node's lock (statedir.h) and its libvirt: what every change holds. */
typedef struct session {
    vd_hv *hv;
    int lock;
    int owner_lock;   /* the lock of the node whose desktop it is, if another (not_away) */
} session;

static int session_open(const vd_conf *conf, session *s, vd_err *err)
{
    s->hv = NULL;
    s->lock = s->owner_lock = -1;
    if (vd_lock_take(conf->state_dir, LOCK_WAIT_S, &s->lock, err) < 0)
        return -1;
    vd_lock_note(s->lock, "vdeskctl shmem");
    if (vd_hv_open(conf->uri, &s->hv, err) < 0) {
        vd_lock_release(s->lock);
        return -1;
    }
    return 0;
}

static void session_close(session *s)
{
    vd_hv_close(s->hv);
    if (s->owner_lock >= 0)
        vd_lock_release(s->owner_lock);
    vd_lock_release(s->lock);
}

/* Under the node's lock: a region of that name neither in the registry nor
 * in /dev/shm (another program's region would be mapped into the desktops). */
static int create_locked(const vd_conf *conf, const vd_shmem *r, vd_err *err)
{
    vd_shmem old;
    char dev[PATH_MAX];
    struct stat st;
    if (vd_shmem_load(conf->state_dir, r->name, &old, NULL) == 0)
        return vd_err_set(err, "region %s exists already: destroy it first, or choose another name", r->name);
    snprintf(dev, sizeof(dev), VD_SHMEM_DEV_DIR "/%s", r->name);
    if (lstat(dev, &st) == 0)
        return vd_err_set(err, "region %s: %s exists already (another program's shared memory?): choose "
                          "another name, or remove that file if nothing uses it", r->name, dev);
    return reg_store(conf->state_dir, r, err);
}

int vd_shmem_create(const vd_conf *conf, const char *name, const char *size, vd_err *err)
{
    vd_shmem r;
    int lock;
    if (vd_shmem_name_check(name, err) < 0 || vd_shmem_size_parse(size, &r.size, err) < 0)
        return -1;
    snprintf(r.name, sizeof(r.name), "%s", name);
    if (vd_lock_take(conf->state_dir, LOCK_WAIT_S, &lock, err) < 0)
        return -1;
    int rc = create_locked(conf, &r, err);
    vd_lock_release(lock);
    return rc;
}

/* The region's members, `desktop`'s entry among them in *mine (NULL if
 * not one), and a master other than `desktop` in *master. */
static int group_read(vd_hv *hv, const char *name, const char *desktop, vd_shmem_member *m, int *n,
                      const vd_shmem_member **mine, const vd_shmem_member **master, vd_err *err)
{
    *mine = *master = NULL;
    if (vd_shmem_members(hv, name, m, VD_SHMEM_MAX, n, err) < 0)
        return -1;
    for (int i = 0; i < *n; i++) {
        if (!strcmp(m[i].desktop, desktop))
            *mine = &m[i];
        else if (m[i].role == VD_SHMEM_MASTER)
            *master = &m[i];
    }
    return 0;
}

static int journal_away(const char *state_dir, const char *desktop, const char *node, vd_err *err)
{
    vd_journal j;
    if (vd_journal_load(state_dir, &j, err) < 0)
        return -1;
    int away = j.phase != VD_PRESENT;
    vd_journal_clear(&j);
    if (away)
        return vd_err_set(err, "desktop %s is away for a job on node %s ('vdeskctl --node %s status'): attach "
                          "or detach once it is back", desktop, node, node);
    return 0;
}

/* A desktop that vdesk keeps away for a job comes back from its save file
 * or another node: a device added now would be missing then, and one added
 * while its prolog unplugs the others would be saved with it. The node
 * whose desktop it is decides: this one, or another node of this host (the
 * test bed's several nodes on one libvirt), whose lock is then held too
 * until the change is done, so that no prolog of it runs meanwhile. */
static int not_away(session *s, const vd_conf *conf, const char *desktop, vd_err *err)
{
    if (!strcmp(conf->domain, desktop))
        return journal_away(conf->state_dir, desktop, conf->node, err);
    for (int i = 0; i < conf->npeers; i++) {
        const vd_peer *p = &conf->peers[i];
        if (!strcmp(p->name, conf->node) || strcmp(p->domain, desktop))
            continue;
        vd_conf *pc = malloc(sizeof(*pc));
        int rc = pc ? vd_conf_find(conf->path, p->name, pc, err) : vd_err_set(err, "out of memory");
        if (rc >= 0 && (rc = vd_lock_take(pc->state_dir, LOCK_WAIT_S, &s->owner_lock, err)) == 0) {
            vd_lock_note(s->owner_lock, "vdeskctl shmem (another node)");
            rc = journal_away(pc->state_dir, desktop, p->name, err);
        }
        free(pc);
        return rc < 0 ? -1 : 0;
    }
    return 0;
}

/* The desktop's state, refusing one that is not there or that would come
 * back from a managed save made without the device. */
static int desktop_state(session *s, const vd_conf *conf, const char *desktop, vd_dom_state *st, vd_err *err)
{
    int has = 0;
    if (not_away(s, conf, desktop, err) < 0 || vd_hv_dom_state(s->hv, desktop, st, err) < 0)
        return -1;
    if (*st == VD_DOM_MISSING)
        return vd_err_set(err, "desktop %s is not defined on %s: give the name of a domain of this host "
                          "(its libvirt must be the one uri = names for node %s)", desktop, conf->uri,
                          conf->node);
    if (!running(*st) && vd_hv_dom_managed_save_has(s->hv, desktop, &has, err) < 0)
        return -1;
    if (has)
        return vd_err_set(err, "desktop %s is in a managed save, which would start without the change: "
                          "start it first (or 'vdeskctl select' it)", desktop);
    return 0;
}

static int attach_checked(session *s, const vd_conf *conf, const vd_shmem *r, const char *desktop,
                          vd_shmem_role role, char *how, size_t size, vd_err *err)
{
    vd_shmem_member m[VD_SHMEM_MAX];
    const vd_shmem_member *mine, *master;
    vd_dom_state st;
    char alias[80], *xml = NULL;
    int n;
    if (desktop_state(s, conf, desktop, &st, err) < 0 ||
        group_read(s->hv, r->name, desktop, m, &n, &mine, &master, err) < 0)
        return -1;
    if (mine)
        return vd_err_set(err, "desktop %s is attached to region %s already (as %s): detach it first to "
                          "change its role", desktop, r->name, vd_shmem_role_name(mine->role));
    if (role == VD_SHMEM_MASTER && master)
        return vd_err_set(err, "region %s has a master already (%s): attach %s with --role peer, or detach "
                          "%s first", r->name, master->desktop, desktop, master->desktop);
    /* An eviction journals every device it unplugs: vdesk.conf's and the
     * regions', VD_MAX_DEVICES in all. */
    vd_shmem_member own[VD_SHMEM_MAX];
    int nown = 0;
    if (vd_shmem_of_desktop(s->hv, desktop, own, VD_SHMEM_MAX, &nown, err) < 0)
        return -1;
    if (conf->ndevices + nown + 1 > VD_MAX_DEVICES)
        return vd_err_set(err, "desktop %s has %d devices in vdesk.conf and %d regions: an eviction keeps at most "
                          "%d in its journal; detach a region first", desktop, conf->ndevices, nown,
                          VD_MAX_DEVICES);
    if (vd_shmem_dev_xml(r, role, &xml, err) < 0)
        return -1;
    int rc = vd_hv_dev_add(s->hv, desktop, vd_shmem_alias(r->name, alias, sizeof(alias)), xml, running(st), err);
    free(xml);
    snprintf(how, size, "%s", running(st) ? "live and in its definition"
                                          : "in its definition (it maps the region at its next start)");
    return rc;
}

int vd_shmem_attach(const vd_conf *conf, const char *name, const char *desktop, vd_shmem_role role,
                    char *how, size_t size, vd_err *err)
{
    vd_shmem r;
    session s;
    if (vd_shmem_load(conf->state_dir, name, &r, err) < 0 || session_open(conf, &s, err) < 0)
        return -1;
    int rc = attach_checked(&s, conf, &r, desktop, role, how, size, err);
    session_close(&s);
    return rc;
}

static int detach_checked(session *s, const vd_conf *conf, const char *name, const char *desktop, char *how,
                          size_t size, vd_err *err)
{
    vd_shmem_member m[VD_SHMEM_MAX];
    const vd_shmem_member *mine, *master;
    vd_dom_state st;
    char alias[80];
    int n;
    if (desktop_state(s, conf, desktop, &st, err) < 0 ||
        group_read(s->hv, name, desktop, m, &n, &mine, &master, err) < 0)
        return -1;
    if (!mine)
        return vd_err_set(err, "desktop %s is not attached to region %s ('vdeskctl shmem list' shows its "
                          "members)", desktop, name);
    vd_shmem_alias(name, alias, sizeof(alias));
    /* The guest lets go first: a device it keeps stays in the definition too. */
    if (mine->live && vd_hv_dev_detach(s->hv, desktop, alias, conf->timeout_unplug * 1000, NULL, err) < 0)
        return -1;
    if (mine->defined && vd_hv_dev_undefine(s->hv, desktop, alias, err) < 0)
        return -1;
    snprintf(how, size, "%s", mine->live ? "from the running VM and its definition" : "from its definition");
    return 0;
}

int vd_shmem_detach(const vd_conf *conf, const char *name, const char *desktop, char *how, size_t size,
                    vd_err *err)
{
    session s;
    if (vd_shmem_name_check(name, err) < 0 || session_open(conf, &s, err) < 0)
        return -1;
    int rc = detach_checked(&s, conf, name, desktop, how, size, err);
    session_close(&s);
    return rc;
}

/* The backing file holds the memory: gone with the region. Only a plain
 * file is removed (unlink never follows a link). */
static int backing_remove(const char *name, vd_err *err)
{
    char dev[PATH_MAX];
    struct stat st;
    snprintf(dev, sizeof(dev), VD_SHMEM_DEV_DIR "/%s", name);
    if (lstat(dev, &st) < 0)
        return errno == ENOENT ? 0 : vd_err_set(err, "%s: %s", dev, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return vd_err_set(err, "%s is not a plain file: not removing it; look at what made it", dev);
    if (unlink(dev) < 0)
        return vd_err_set(err, "%s: cannot remove: %s", dev, strerror(errno));
    return 0;
}

static int destroy_checked(session *s, const vd_conf *conf, const vd_shmem *r, vd_err *err)
{
    vd_shmem_member m[VD_SHMEM_MAX];
    char path[PATH_MAX], dir[PATH_MAX], names[512] = "";
    int n;
    if (vd_shmem_members(s->hv, r->name, m, VD_SHMEM_MAX, &n, err) < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names);
        snprintf(names + len, sizeof(names) - len, "%s%s", len ? ", " : "", m[i].desktop);
    }
    if (n)
        return vd_err_set(err, "region %s is attached to %s: detach it first ('vdeskctl shmem detach %s "
                          "DESKTOP' for each)", r->name, names, r->name);
    if (backing_remove(r->name, err) < 0 || reg_path(conf->state_dir, r->name, path, sizeof(path), err) < 0 ||
        reg_dir(conf->state_dir, dir, sizeof(dir), err) < 0)
        return -1;
    if (unlink(path) < 0 || vd_state_fsync_dir(dir) < 0)
        return vd_err_set(err, "%s: cannot remove: %s", path, strerror(errno));
    return 0;
}

int vd_shmem_destroy(const vd_conf *conf, const char *name, vd_err *err)
{
    vd_shmem r;
    session s;
    if (vd_shmem_load(conf->state_dir, name, &r, err) < 0 || session_open(conf, &s, err) < 0)
        return -1;
    int rc = destroy_checked(&s, conf, &r, err);
    session_close(&s);
    return rc;
}
