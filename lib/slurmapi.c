/* SPDX-License-Identifier: MIT */
#include "slurmapi.h"

#include <ctype.h>
#include <errno.h>
#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Slurm 23.11 made hostlist_t the struct (before, a pointer to it);
 * slurm_hostlist_create returns a pointer in both. Errors: libslurm sets
 * errno in every version; slurm_get_errno(), which returned it, is gone
 * from 24.11. */
#if SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(23, 11, 0)
typedef hostlist_t *vd_hostlist;
#else
typedef hostlist_t vd_hostlist;
#endif

/* libslurm exits the process (after retrying for a minute) when it finds
 * no slurm.conf, so vdesk looks first: $SLURM_CONF, the packaged default,
 * or the copy slurmd keeps in configless mode. slurm_init() itself reads
 * the file once per process; calling it again is harmless. */
int vd_slurm_init(vd_err *err)
{
    const char *env = getenv("SLURM_CONF");
    const char *paths[] = { env && *env ? env : "/etc/slurm/slurm.conf", "/run/slurm/conf/slurm.conf" };
    for (size_t i = 0; i < (env && *env ? 1 : 2); i++)
        if (access(paths[i], R_OK) == 0) {
            slurm_init(paths[i]);
            return 0;
        }
    return vd_err_set(err, "no slurm.conf to reach slurmctld with (%s%s); set SLURM_CONF", paths[0],
                      env && *env ? "" : " or /run/slurm/conf/slurm.conf");
}

/* --- the AdminComment's vdesk records (format: slurmapi.h) -------------- */

#define SEP " | "
#define SEP_LEN 3
#define NODE_NAME_MAX 255

typedef struct seg {
    const char *s;
    size_t full;     /* its length as read */
    size_t len;      /* as it will be written: below full, it ends in "..." */
    size_t prefix;   /* length of "vdesk[NODE] "; 0: the site's text */
    size_t min;      /* the shortest it may become; full for the site's text */
    int dropped;
} seg;

/* vdesk's format needs node names without these; Slurm's have none. */
static int node_ok(const char *s, size_t len)
{
    if (len == 0 || len > NODE_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (strchr("[]|", s[i]) || isspace((unsigned char)s[i]) || iscntrl((unsigned char)s[i]))
            return 0;
    return 1;
}

/* The length of "vdesk[NODE] " that starts s, or 0: not a vdesk record. */
static size_t vdesk_prefix(const char *s, size_t len)
{
    if (len < 6 || memcmp(s, "vdesk[", 6) != 0)
        return 0;
    const char *close = memchr(s + 6, ']', len - 6);
    if (!close || (size_t)(close - s) + 1 >= len || close[1] != ' ' ||
        !node_ok(s + 6, (size_t)(close - s) - 6))
        return 0;
    return (size_t)(close - s) + 2;
}

static void add_seg(seg *v, size_t *n, const char *s, size_t len)
{
    size_t prefix = vdesk_prefix(s, len);
    size_t min = prefix && prefix + 3 < len ? prefix + 3 : len;
    v[(*n)++] = (seg){ .s = s, .full = len, .len = len, .prefix = prefix, .min = min };
}

static size_t count_segs(const char *s)
{
    size_t n = 1;
    for (const char *p = s; (p = strstr(p, SEP)); p += SEP_LEN)
        n++;
    return n;
}

/* The separator that ends the segment at p: the last of overlapping
 * matches, so that text ending in " |" (the site's) stays with its segment
 * and the record after it still starts with "vdesk[" (found by fuzzing:
 * "site |" made the next merge duplicate the node's record). */
static const char *next_sep(const char *p)
{
    const char *q = strstr(p, SEP);
    while (q && !strncmp(q + SEP_LEN - 1, SEP, SEP_LEN))
        q += SEP_LEN - 1;
    return q;
}

static void split(const char *old, seg *v, size_t *n)
{
    *n = 0;
    for (const char *p = old; *old;) {
        const char *q = next_sep(p);
        add_seg(v, n, p, q ? (size_t)(q - p) : strlen(p));
        if (!q)
            return;
        p = q + SEP_LEN;
    }
}

/* The operation a record is of: its first word ("evict" in "evict:
 * asked=save ..."), as a length. */
static size_t op_len(const char *rec, size_t len)
{
    size_t n = 0;
    while (n < len && rec[n] != ' ' && rec[n] != ':')
        n++;
    return n;
}

static int op_known(const char *op, size_t len)
{
    static const char *const ops[] = { "evict", "restore", "recover" };
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strlen(ops[i]) == len && !memcmp(op, ops[i], len))
            return 1;
    return 0;
}

/* Whether segment g holds what node's record `rec` replaces: node's record
 * of the same operation, or any of node's when either is not one of
 * vdesk's operations. */
static int seg_same_slot(const seg *g, const char *node, size_t nlen, const char *rec)
{
    if (g->prefix != nlen + 8 || memcmp(g->s + 6, node, nlen) != 0)
        return 0;
    const char *old = g->s + g->prefix;
    size_t olen = op_len(old, g->full - g->prefix), rlen = op_len(rec, strlen(rec));
    if (!op_known(old, olen) || !op_known(rec, rlen))
        return 1;
    return olen == rlen && !memcmp(old, rec, rlen);
}

/* Removes what node's new record replaces. Returns the count left. */
static size_t drop_node(seg *v, size_t n, const char *node, const char *record)
{
    size_t k = 0, nlen = strlen(node);
    for (size_t i = 0; i < n; i++)
        if (!seg_same_slot(&v[i], node, nlen, record))
            v[k++] = v[i];
    return k;
}

/* "vdesk[NODE] RECORD", with what would split it on the next read ('|',
 * line breaks) made harmless. */
static char *new_record(const char *node, const char *record)
{
    size_t size = strlen(node) + strlen(record) + 9;
    char *s = malloc(size);
    if (!s)
        return NULL;
    int n = snprintf(s, size, "vdesk[%s] ", node);
    for (const char *c = record; *c; c++)
        s[n++] = *c == '|' ? '/' : iscntrl((unsigned char)*c) ? ' ' : *c;
    s[n] = '\0';
    return s;
}

static size_t total_len(const seg *v, size_t n, int site_only)
{
    size_t t = 0, k = 0;
    for (size_t i = 0; i < n; i++)
        if (!v[i].dropped && !(site_only && v[i].prefix)) {
            t += v[i].len;
            k++;
        }
    return k ? t + SEP_LEN * (k - 1) : 0;
}

static void shorten(seg *g, size_t *over)
{
    size_t by = g->len - g->min < *over ? g->len - g->min : *over;
    g->len -= by;
    *over -= by;
}

/* Oldest vdesk records shortened first, then dropped, then the newest
 * (the last) shortened; the site's text never. */
static int fit(seg *v, size_t n, size_t cap)
{
    size_t t = total_len(v, n, 0);
    size_t over = t > cap ? t - cap : 0;
    for (size_t i = 0; i + 1 < n && over; i++)
        if (v[i].prefix)
            shorten(&v[i], &over);
    for (size_t i = 0; i + 1 < n && over; i++)
        if (v[i].prefix) {
            v[i].dropped = 1;
            over -= v[i].len + SEP_LEN < over ? v[i].len + SEP_LEN : over;
        }
    if (over)
        shorten(&v[n - 1], &over);
    return over ? -1 : 0;
}

static size_t put_seg(const seg *g, char *out)
{
    if (g->len == g->full) {
        memcpy(out, g->s, g->len);
        return g->len;
    }
    /* Cut between characters, not inside a UTF-8 one. */
    size_t cut = g->len - 3;
    while (cut > g->prefix && ((unsigned char)g->s[cut] & 0xc0) == 0x80)
        cut--;
    memcpy(out, g->s, cut);
    memcpy(out + cut, "...", 3);
    return cut + 3;
}

static void render(const seg *v, size_t n, char *out)
{
    size_t at = 0;
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        if (v[i].dropped)
            continue;
        if (!first) {
            memcpy(out + at, SEP, SEP_LEN);
            at += SEP_LEN;
        }
        first = 0;
        at += put_seg(&v[i], out + at);
    }
    out[at] = '\0';
}

/* Merges into v, which has room for one more segment than old has. */
static int merge(const char *old, const char *node, const char *record, const char *rec, seg *v,
                 char *out, size_t cap, vd_err *err)
{
    size_t n;
    split(old, v, &n);
    n = drop_node(v, n, node, record);
    add_seg(v, &n, rec, strlen(rec));
    if (v[n - 1].len > VD_ADMIN_RECORD_MAX)
        v[n - 1].len = VD_ADMIN_RECORD_MAX;
    if (fit(v, n, cap) < 0)
        return vd_err_set(err, "node %s: no room for its vdesk record in the job's AdminComment: "
                          "the site's text there takes %zu of the %zu characters vdesk lets it "
                          "grow to; shorten that text", node, total_len(v, n, 1), cap);
    render(v, n, out);
    return 0;
}

int vd_admin_comment_merge(const char *old, const char *node, const char *record,
                           char *out, size_t size, vd_err *err)
{
    if (!node_ok(node, strlen(node)))
        return vd_err_set(err, "'%s' is not a node name vdesk can keep a record under in an "
                          "AdminComment (empty, over %d characters, or with '[', ']', '|' or "
                          "a space)", node, NODE_NAME_MAX);
    if (size == 0)
        return vd_err_set(err, "node %s: no room for its vdesk record (0 bytes given)", node);
    old = old ? old : "";
    size_t cap = size - 1 < VD_ADMIN_COMMENT_MAX ? size - 1 : VD_ADMIN_COMMENT_MAX;
    char *rec = new_record(node, record ? record : "");
    seg *v = malloc((count_segs(old) + 1) * sizeof(*v));
    int rc = rec && v ? merge(old, node, record ? record : "", rec, v, out, cap, err)
                      : vd_err_set(err, "node %s: out of memory merging its vdesk record into "
                                   "the AdminComment", node);
    free(v);
    free(rec);
    return rc;
}

int vd_admin_comment_has(const char *comment, const char *node, const char *record)
{
    if (!comment || !*comment)
        return 0;
    seg *v = malloc(count_segs(comment) * sizeof(*v));
    if (!v)
        return 0;
    size_t n, nlen = strlen(node);
    int found = 0;
    split(comment, v, &n);
    for (size_t i = 0; i < n && !found; i++)
        found = seg_same_slot(&v[i], node, nlen, record);
    free(v);
    return found;
}

int vd_admin_comment_each(const char *comment, vd_admin_record_fn fn, void *arg, vd_err *err)
{
    if (!comment || !*comment)
        return 0;
    seg *v = malloc(count_segs(comment) * sizeof(*v));
    if (!v)
        return vd_err_set(err, "out of memory reading the vdesk records of an AdminComment");
    size_t n;
    split(comment, v, &n);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (!v[i].prefix)
            continue;
        char node[NODE_NAME_MAX + 1];
        size_t nlen = v[i].prefix - 8;
        memcpy(node, v[i].s + 6, nlen);
        node[nlen] = '\0';
        rc = fn(node, v[i].s + v[i].prefix, v[i].full - v[i].prefix, arg, err);
    }
    free(v);
    return rc;
}

/* --- the job's AdminComment through slurmctld --------------------------- */

/* A copy of the job's AdminComment in *comment (NULL: it has none). */
/* The job's AdminComment (NULL: none) and how many nodes it has. */
static int comment_read(unsigned job, char **comment, unsigned *nodes, vd_err *err)
{
    job_info_msg_t *resp = NULL;
    int found = 0, rc = 0;
    *comment = NULL;
    if (slurm_load_job(&resp, job, SHOW_ALL) != SLURM_SUCCESS)
        return vd_err_set(err, "job %u: cannot read its AdminComment: %s", job, slurm_strerror(errno));
    for (uint32_t i = 0; resp && i < resp->record_count && !found; i++) {
        const slurm_job_info_t *j = &resp->job_array[i];
        found = j->job_id == job;
        if (found && nodes)
            *nodes = j->num_nodes;
        if (found && j->admin_comment && !(*comment = strdup(j->admin_comment)))
            rc = vd_err_set(err, "job %u: out of memory reading its AdminComment", job);
    }
    slurm_free_job_info_msg(resp);
    /* Without the job's record its comment is unknown: writing ours would
     * wipe the site's text. */
    if (!found)
        return vd_err_set(err, "job %u: slurmctld sent no record of it; its AdminComment is "
                          "left as it is", job);
    return rc;
}

static int comment_write(unsigned job, const char *text, vd_err *err)
{
    job_desc_msg_t desc;
    slurm_init_job_desc_msg(&desc);
    desc.job_id = job;
    desc.admin_comment = (char *)text;
    if (slurm_update_job(&desc) != SLURM_SUCCESS)
        return vd_err_set(err, "job %u: cannot set its AdminComment: %s", job, slurm_strerror(errno));
    return 0;
}

static int comment_put(unsigned job, const char *node, const char *text, unsigned *nodes,
                       vd_err *err)
{
    char *old, merged[VD_ADMIN_COMMENT_MAX + 1];
    if (comment_read(job, &old, nodes, err) < 0)
        return -1;
    int rc = vd_admin_comment_merge(old, node, text, merged, sizeof(merged), err);
    free(old);
    if (rc < 0)
        return vd_err_prefix(err, "job %u", job);
    return comment_write(job, merged, err);
}

/* Reads the comment back after a pause: another node's prolog that read
 * before our write and wrote after it has dropped our record. */
static int record_kept(unsigned job, const char *node, const char *text, int attempt)
{
    unsigned seed = (unsigned)getpid() ^ (unsigned)time(NULL) ^ (unsigned)attempt;
    long ms = 50 + rand_r(&seed) % 150;
    nanosleep(&(struct timespec){ .tv_nsec = ms * 1000000 }, NULL);
    char *now = NULL;
    if (comment_read(job, &now, NULL, NULL) < 0)
        return 1;   /* the write went through; nothing better to go on */
    int kept = vd_admin_comment_has(now, node, text);
    free(now);
    return kept;
}

int vd_slurm_job_comment(unsigned job, const char *node, const char *text, vd_err *err)
{
    if (vd_slurm_init(err) < 0)
        return vd_err_prefix(err, "job %u", job);
    for (int attempt = 1; attempt <= 3; attempt++) {
        unsigned nodes = 1;
        if (comment_put(job, node, text, &nodes, err) < 0)
            return -1;
        /* Only the other nodes' prologs write at the same moment: a job on
         * one node needs no second look (and no pause in its prolog). */
        if (nodes <= 1 || record_kept(job, node, text, attempt))
            return 0;
    }
    return vd_err_set(err, "job %u: node %s's vdesk record keeps disappearing from the AdminComment "
                      "(another tool rewriting it at the same time?)", job, node);
}

int vd_slurm_node_drain(const char *node, const char *reason, vd_err *err)
{
    if (vd_slurm_init(err) < 0)
        return vd_err_prefix(err, "node %s: cannot drain it (reason '%s')", node, reason);
    update_node_msg_t msg;
    slurm_init_update_node_msg(&msg);
    msg.node_names = (char *)node;
    msg.node_state = NODE_STATE_DRAIN;
    msg.reason = (char *)reason;
    msg.reason_uid = getuid();
    if (slurm_update_node(&msg) != SLURM_SUCCESS)
        return vd_err_set(err, "node %s: cannot drain it (reason '%s'): %s", node, reason,
                          slurm_strerror(errno));
    return 0;
}

int vd_slurm_node_comment(const char *node, const char *state, vd_err *err)
{
    node_info_msg_t *resp = NULL;
    char merged[VD_ADMIN_COMMENT_MAX + 1];
    if (vd_slurm_init(err) < 0)
        return vd_err_prefix(err, "node %s: cannot set its Comment", node);
    if (slurm_load_node_single(&resp, (char *)node, SHOW_ALL) != SLURM_SUCCESS)
        return vd_err_set(err, "node %s: cannot read its Comment: %s", node, slurm_strerror(errno));
    int rc = !resp || resp->record_count < 1
             ? vd_err_set(err, "node %s: slurmctld does not know it", node)
             : vd_admin_comment_merge(resp->node_array[0].comment, node, state, merged,
                                      sizeof(merged), err);
    slurm_free_node_info_msg(resp);
    if (rc < 0)
        return vd_err_prefix(err, "node %s: Comment", node);
    update_node_msg_t msg;
    slurm_init_update_node_msg(&msg);
    msg.node_names = (char *)node;
    msg.comment = merged;
    if (slurm_update_node(&msg) != SLURM_SUCCESS)
        return vd_err_set(err, "node %s: cannot set its Comment: %s", node, slurm_strerror(errno));
    return 0;
}

/* --- gres strings -------------------------------------------------------- */

/* Longer gpu items than this are none Slurm writes for 64 GPUs. */
#define ITEM_MAX 512

/* Calls fn on each item of a gres list: commas inside parentheses
 * ("IDX:0,2") belong to the item. */
static void gres_items(const char *list, void (*fn)(const char *item, size_t len, vd_slurm_gpus *g),
                       vd_slurm_gpus *g)
{
    const char *start = list;
    int depth = 0;
    for (const char *c = list; list; c++) {
        if (*c == '(')
            depth++;
        else if (*c == ')')
            depth--;
        if (*c == '\0' || (*c == ',' && depth == 0)) {
            fn(start, (size_t)(c - start), g);
            start = c + 1;
        }
        if (*c == '\0')
            break;
    }
}

/* Copies a "gpu:..." item into buf; 0 for other items, -1 (bad) for one
 * too long. */
static int gpu_item(const char *item, size_t len, char *buf, vd_slurm_gpus *g)
{
    if (len < 4 || strncmp(item, "gpu:", 4) != 0)
        return 0;
    if (len >= ITEM_MAX) {
        g->bad = 1;
        return -1;
    }
    memcpy(buf, item, len);
    buf[len] = '\0';
    return 1;
}

/* A count: decimal digits only, at most VD_SLURM_GPUS_MAX. */
static int parse_count(const char *s, long *out)
{
    char *end;
    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    *out = strtol(s, &end, 10);
    return *end || errno || *out > VD_SLURM_GPUS_MAX ? -1 : 0;
}

/* "gpu[:TYPE]:COUNT[(...)]": the count after the last colon before '('. */
static void add_configured(const char *item, size_t len, vd_slurm_gpus *g)
{
    char buf[ITEM_MAX];
    long n;
    if (gpu_item(item, len, buf, g) <= 0)
        return;
    buf[strcspn(buf, "(")] = '\0';
    if (parse_count(strrchr(buf, ':') + 1, &n) < 0) {
        g->bad = 1;
        return;
    }
    if (g->configured + n > VD_SLURM_GPUS_MAX) {
        g->bad = 1;
        n = VD_SLURM_GPUS_MAX - g->configured;
    }
    g->configured += (int)n;
}

/* "A" or "A-B": decimal numbers that fit, A <= B. */
static int parse_range(const char *t, long long *lo, long long *hi)
{
    char *end;
    errno = 0;
    *lo = *hi = strtoll(t, &end, 10);
    if (end != t && *end == '-') {
        t = end + 1;
        *hi = strtoll(t, &end, 10);
    }
    return end == t || *end || errno || *lo > *hi ? -1 : 0;
}

/* Sets the bits of a range that are within 0-63: never more than 64, and
 * no shift by a negative amount or by 64 or more. */
static void add_range(const char *t, vd_slurm_gpus *g)
{
    long long lo, hi;
    if (!strcmp(t, "N/A"))
        return;   /* the item holds no GPU */
    if (parse_range(t, &lo, &hi) < 0) {
        g->bad = 1;
        return;
    }
    if (lo < 0 || hi > 63)
        g->bad = 1;
    for (long long i = lo < 0 ? 0 : lo; i <= hi && i < 64; i++)
        g->used |= 1ULL << i;
}

/* "gpu:a100:2(IDX:0,2-3)": the indices, as ranges. */
static void add_used(const char *item, size_t len, vd_slurm_gpus *g)
{
    char buf[ITEM_MAX];
    if (gpu_item(item, len, buf, g) <= 0)
        return;
    char *idx = strstr(buf, "(IDX:");
    if (!idx)
        return;
    idx += 5;
    idx[strcspn(idx, ")")] = '\0';
    char *save = NULL;
    for (char *t = strtok_r(idx, ",", &save); t; t = strtok_r(NULL, ",", &save))
        add_range(t, g);
}

void vd_slurm_gpus_parse(const char *gres, const char *gres_used, vd_slurm_gpus *g)
{
    memset(g, 0, sizeof(*g));
    if (gres)
        gres_items(gres, add_configured, g);
    if (gres_used)
        gres_items(gres_used, add_used, g);
}

/* Whether hl (a job's nodes) holds node, at which position. */
static int node_at(const char *nodes, const char *node)
{
    vd_hostlist hl = slurm_hostlist_create(nodes);
    int at = hl ? slurm_hostlist_find(hl, node) : -1;
    if (hl)
        slurm_hostlist_destroy(hl);
    return at;
}

/* The gres indices the running jobs on `node` hold: each job's detail
 * for that node ("gpu:1(IDX:0)"), which slurmctld keeps even when the
 * node's own gres_used has no indices (Slurm 22.05 without typed GPUs). */
static int jobs_gpus(const char *node, vd_slurm_gpus *g, vd_err *err)
{
    job_info_msg_t *jobs = NULL;
    int rc = 0;
    if (slurm_load_jobs(0, &jobs, SHOW_ALL | SHOW_DETAIL) != SLURM_SUCCESS)
        return vd_err_set(err, "node %s: cannot list its jobs: %s", node, slurm_strerror(errno));
    for (uint32_t i = 0; i < jobs->record_count && rc == 0; i++) {
        const slurm_job_info_t *j = &jobs->job_array[i];
        if ((j->job_state & JOB_STATE_BASE) != JOB_RUNNING || !j->nodes || !j->gres_detail_cnt)
            continue;
        int at = node_at(j->nodes, node);
        if (at < 0 || (uint32_t)at >= j->gres_detail_cnt)
            continue;
        gres_items(j->gres_detail_str[at], add_used, g);
        if (g->bad)
            rc = vd_err_set(err, "node %s: job %u's gres detail '%s' is malformed (an index "
                            "outside 0-63?): its GPUs are unknown; see 'scontrol -d show job %u'",
                            node, j->job_id, j->gres_detail_str[at], j->job_id);
    }
    slurm_free_job_info_msg(jobs);
    return rc;
}

int vd_slurm_node_gpus(const char *node, vd_slurm_gpus *g, vd_err *err)
{
    node_info_msg_t *resp = NULL;
    if (vd_slurm_init(err) < 0)
        return vd_err_prefix(err, "node %s: cannot ask slurmctld", node);
    if (slurm_load_node_single(&resp, (char *)node, SHOW_ALL | SHOW_DETAIL) != SLURM_SUCCESS)
        return vd_err_set(err, "node %s: cannot ask slurmctld: %s", node, slurm_strerror(errno));
    if (!resp || resp->record_count < 1) {
        slurm_free_node_info_msg(resp);
        return vd_err_set(err, "node %s: slurmctld does not know it", node);
    }
    const node_info_t *n = &resp->node_array[0];
    vd_slurm_gpus_parse(n->gres, n->gres_used, g);
    int rc = g->bad ? vd_err_set(err, "node %s: slurmctld's gres strings for it are malformed "
                                 "(Gres '%s', GresUsed '%s': a count that is not a number or over "
                                 "%d GPUs, or an index outside 0-63): its GPUs are unknown; check "
                                 "its Gres= in slurm.conf and gres.conf", node,
                                 n->gres ? n->gres : "", n->gres_used ? n->gres_used : "",
                                 VD_SLURM_GPUS_MAX) : 0;
    slurm_free_node_info_msg(resp);
    return rc < 0 ? -1 : jobs_gpus(node, g, err);
}

int vd_slurm_prolog_timeout(int *seconds, vd_err *err)
{
    slurm_conf_t *cf = NULL;
    *seconds = 0;
    if (vd_slurm_init(err) < 0)
        return vd_err_prefix(err, "cannot read PrologEpilogTimeout");
    if (slurm_load_ctl_conf((time_t)0, &cf) != SLURM_SUCCESS || !cf)
        return vd_err_set(err, "cannot read PrologEpilogTimeout from slurmctld: %s",
                          slurm_strerror(errno));
    if (cf->prolog_epilog_timeout != NO_VAL16)
        *seconds = cf->prolog_epilog_timeout;
    slurm_free_ctl_conf(cf);
    return 0;
}

int vd_slurm_cluster_name(char *buf, size_t size, vd_err *err)
{
    slurm_conf_t *cf = NULL;
    buf[0] = '\0';
    if (vd_slurm_init(err) < 0)
        return vd_err_prefix(err, "cannot read ClusterName");
    if (slurm_load_ctl_conf((time_t)0, &cf) != SLURM_SUCCESS || !cf)
        return vd_err_set(err, "cannot read ClusterName from slurmctld: %s", slurm_strerror(errno));
    snprintf(buf, size, "%s", cf->cluster_name ? cf->cluster_name : "");
    slurm_free_ctl_conf(cf);
    return 0;
}

int vd_slurm_hostlist_has(const char *hostlist, const char *node)
{
    return node_at(hostlist, node) >= 0;
}

const char *vd_slurm_state_name(uint32_t state)
{
    static const char *const names[] = { "PENDING", "RUNNING", "SUSPENDED", "COMPLETED",
                                         "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL",
                                         "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY" };
    uint32_t base = state & JOB_STATE_BASE;
    return base < sizeof(names) / sizeof(names[0]) ? names[base] : "UNKNOWN";
}

/* Running, suspended, or completing with its epilog still to run, on
 * `node`: 1 or 0; -1 when its node list cannot be read. */
static int job_on_node(const slurm_job_info_t *j, const char *node)
{
    uint32_t base = j->job_state & JOB_STATE_BASE;
    int active = base == JOB_RUNNING || base == JOB_SUSPENDED || (j->job_state & JOB_COMPLETING);
    if (!active || !j->nodes || !j->nodes[0])
        return 0;
    vd_hostlist hl = slurm_hostlist_create(j->nodes);
    if (!hl)
        return -1;
    int at = slurm_hostlist_find(hl, node);
    slurm_hostlist_destroy(hl);
    return at >= 0;
}

static int details_copy(const slurm_job_info_t *s, vd_slurm_job_details *d)
{
    d->restarts = s->restart_cnt;
    if (s->array_job_id && s->array_task_id != NO_VAL) {
        d->array_job = s->array_job_id;
        d->array_task = s->array_task_id;
    }
    if (s->het_job_id && s->het_job_id != NO_VAL) {
        d->het_job = s->het_job_id;
        d->het_offset = s->het_job_offset;
    }
    if (s->gres_total && !(d->gres_total = strdup(s->gres_total)))
        return -1;
    if (s->admin_comment && !(d->admin_comment = strdup(s->admin_comment)))
        return -1;
    return 0;
}

int vd_slurm_job_details_get(unsigned job, vd_slurm_job_details *d, vd_err *err)
{
    job_info_msg_t *resp = NULL;
    memset(d, 0, sizeof(*d));
    if (vd_slurm_init(err) < 0)
        return vd_err_prefix(err, "job %u: cannot ask slurmctld for its details", job);
    if (slurm_load_job(&resp, job, SHOW_ALL | SHOW_DETAIL) != SLURM_SUCCESS)
        return vd_err_set(err, "job %u: slurmctld: %s", job, slurm_strerror(errno));
    int found = 0, rc = 0;
    for (uint32_t i = 0; resp && i < resp->record_count && !found; i++)
        if (resp->job_array[i].job_id == job) {
            found = 1;
            rc = details_copy(&resp->job_array[i], d);
        }
    slurm_free_job_info_msg(resp);
    if (rc < 0) {
        vd_slurm_job_details_free(d);
        return vd_err_set(err, "job %u: out of memory reading its details", job);
    }
    return found ? 0 : vd_err_set(err, "job %u: slurmctld's answer has no record of it", job);
}

void vd_slurm_job_details_free(vd_slurm_job_details *d)
{
    free(d->gres_total);
    free(d->admin_comment);
    d->gres_total = d->admin_comment = NULL;
}

int vd_slurm_job_holds(unsigned job, const char *node, char *state, size_t size, vd_err *err)
{
    job_info_msg_t *resp = NULL;
    state[0] = '\0';
    if (vd_slurm_init(err) < 0)
        return vd_err_prefix(err, "job %u: cannot ask slurmctld whether it runs", job);
    if (slurm_load_job(&resp, job, SHOW_ALL) != SLURM_SUCCESS) {
        int e = errno;
        if (e == ESLURM_INVALID_JOB_ID) {
            snprintf(state, size, "unknown to Slurm");
            return 0;
        }
        return vd_err_set(err, "job %u: cannot ask slurmctld whether it runs: %s", job,
                          slurm_strerror(e));
    }
    int holds = -1;
    for (uint32_t i = 0; resp && i < resp->record_count; i++) {
        const slurm_job_info_t *j = &resp->job_array[i];
        if (j->job_id != job)
            continue;
        snprintf(state, size, "%s%s", vd_slurm_state_name(j->job_state),
                 j->job_state & JOB_COMPLETING ? "+COMPLETING" : "");
        holds = job_on_node(j, node);
    }
    slurm_free_job_info_msg(resp);
    /* An answer without the job's record, or a node list that cannot be
     * read, says nothing: only "no such job" or a record means gone. */
    if (holds < 0) {
        state[0] = '\0';
        return vd_err_set(err, "job %u: slurmctld's answer has no record of it, or its nodes "
                          "cannot be read", job);
    }
    return holds;
}

/* --- nodes that can take a visiting desktop (migrate) --- */

static int has_feature(const char *features, const char *feature)
{
    size_t n = strlen(feature);
    for (const char *s = features; s && *s;) {
        size_t len = strcspn(s, ",");
        if (len == n && !strncmp(s, feature, n))
            return 1;
        s += len + (s[len] == ',');
    }
    return 0;
}

int vd_slurm_node_takes_visitor(unsigned state, const char *features, const char *feature)
{
    const unsigned busy = NODE_STATE_DRAIN | NODE_STATE_COMPLETING | NODE_STATE_NO_RESPOND |
                          NODE_STATE_RES | NODE_STATE_MAINT | NODE_STATE_FAIL | NODE_STATE_PLANNED |
                          NODE_STATE_REBOOT_REQUESTED | NODE_STATE_POWERED_DOWN |
                          NODE_STATE_POWERING_DOWN | NODE_STATE_POWERING_UP |
                          NODE_STATE_POWER_DOWN | NODE_STATE_POWER_UP;
    return (state & NODE_STATE_BASE) == NODE_STATE_IDLE && !(state & busy) &&
           has_feature(features, feature);
}

int vd_slurm_node_visitable(const char *node, const char *feature)
{
    node_info_msg_t *resp = NULL;
    vd_err err;
    if (vd_slurm_init(&err) < 0 || slurm_load_node_single(&resp, (char *)node, SHOW_ALL) != SLURM_SUCCESS)
        return -1;
    int rc = -1;
    if (resp && resp->record_count == 1) {
        const node_info_t *ni = &resp->node_array[0];
        rc = vd_slurm_node_takes_visitor(ni->node_state, ni->features_act ? ni->features_act
                                                                          : ni->features, feature);
    }
    slurm_free_node_info_msg(resp);
    return rc;
}

void vd_slurm_names_free(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static int name_excluded(vd_hostlist hl, const char *name)
{
    return hl && slurm_hostlist_find(hl, name) >= 0;
}

int vd_slurm_idle_nodes(const char *feature, const char *exclude, char ***names, int *n, vd_err *err)
{
    node_info_msg_t *resp = NULL;
    *names = NULL;
    *n = 0;
    if (vd_slurm_init(err) < 0)
        return vd_err_prefix(err, "cannot list idle nodes");
    if (slurm_load_node((time_t)0, &resp, SHOW_ALL) != SLURM_SUCCESS)
        return vd_err_set(err, "cannot list the nodes: %s", slurm_strerror(errno));
    vd_hostlist hl = exclude && *exclude ? slurm_hostlist_create(exclude) : NULL;
    char **out = calloc(resp->record_count ? resp->record_count : 1, sizeof(*out));
    int rc = out ? 0 : vd_err_set(err, "out of memory listing idle nodes");
    for (uint32_t i = 0; rc == 0 && i < resp->record_count; i++) {
        const node_info_t *ni = &resp->node_array[i];
        if (!ni->name || name_excluded(hl, ni->name) ||
            !vd_slurm_node_takes_visitor(ni->node_state, ni->features_act ? ni->features_act : ni->features,
                                         feature))
            continue;
        if (!(out[*n] = strdup(ni->name)))
            rc = vd_err_set(err, "out of memory listing idle nodes");
        else
            (*n)++;
    }
    if (hl)
        slurm_hostlist_destroy(hl);
    slurm_free_node_info_msg(resp);
    if (rc < 0) {
        vd_slurm_names_free(out, *n);
        *n = 0;
        return -1;
    }
    *names = out;
    return 0;
}
