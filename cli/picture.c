/* SPDX-License-Identifier: MIT */
/*
 * picture.c - `vdeskctl report --svg FILE`: the accounting database as a
 * picture, for people who would rather look than read. Two panels:
 *   - one line per node over the period: green while the desktop was not
 *     evicted, a block in the mode's colour for each run of a job it was
 *     evicted for, a red mark where an eviction failed; at the right the
 *     node's share of the period not evicted and its evictions;
 *   - GPU-hours per user.
 * The figures come from the same views as the tables (report_view), so
 * picture and tables never disagree. The SVG is made by libxml2's writer
 * (names from the database are untrusted: it escapes them) in memory,
 * then replaces FILE whole (vd_file_replace).
 */
#include <libxml/xmlwriter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "report.h"
#include "statedir.h"

#define WIDTH 960
#define LEFT 120           /* node and user names */
#define RIGHT 260          /* each line's summary */
#define ROW 22
#define GAP 8
#define MAX_USERS 20

static const struct { const char *mode, *colour; } MODES[] = {
    { "suspend", "#f2c14e" }, { "save", "#5b8def" }, { "shutdown", "#8c8c8c" },
    { "shrink", "#b58ad9" }, { "migrate", "#3fb5bb" },
};
#define HOME_COLOUR "#9ad5a5"
#define FAILED_COLOUR "#d93b3b"
#define OTHER_COLOUR "#c8c8c8"

/* The writer and whether any of its calls failed: drawing goes on to the
 * end, and the file is kept only when none did. */
typedef struct pic {
    xmlTextWriterPtr w;
    int bad;
    long long t0, t1;      /* the period drawn */
} pic;

static void check(pic *p, int rc)
{
    if (rc < 0)
        p->bad = 1;
}

static void start(pic *p, const char *name) { check(p, xmlTextWriterStartElement(p->w, BAD_CAST name)); }
static void end(pic *p) { check(p, xmlTextWriterEndElement(p->w)); }
static void attr(pic *p, const char *name, const char *value)
{
    check(p, xmlTextWriterWriteAttribute(p->w, BAD_CAST name, BAD_CAST value));
}
static void num(pic *p, const char *name, double v)
{
    check(p, xmlTextWriterWriteFormatAttribute(p->w, BAD_CAST name, "%.1f", v));
}

/* s as valid UTF-8 in buf: names come from the database, and the labels
 * are cut at a byte count; an invalid or cut sequence becomes '?', which
 * keeps the SVG well-formed. */
static const char *utf8_clean(const char *s, char *buf, size_t size)
{
    size_t o = 0;
    const unsigned char *u = (const unsigned char *)s;
    while (*u && o + 1 < size) {
        int n = *u < 0x80 ? 1 : (*u & 0xe0) == 0xc0 && *u >= 0xc2 ? 2 : (*u & 0xf0) == 0xe0 ? 3
                : (*u & 0xf8) == 0xf0 && *u <= 0xf4 ? 4 : 0;
        int ok = n > 0;
        for (int i = 1; ok && i < n; i++)
            ok = (u[i] & 0xc0) == 0x80;
        if (!ok || o + (size_t)n >= size) {
            buf[o++] = '?';
            u++;
            continue;
        }
        /* A control character would make the XML invalid too. */
        if (n == 1 && *u < 0x20 && *u != '\t') {
            buf[o++] = ' ';
        } else {
            memcpy(buf + o, u, (size_t)n);
            o += (size_t)n;
        }
        u += n;
    }
    buf[o] = '\0';
    return buf;
}

static void rect(pic *p, double x, double y, double w, double h, const char *fill, const char *cls,
                 const char *title)
{
    start(p, "rect");
    attr(p, "class", cls);
    num(p, "x", x);
    num(p, "y", y);
    num(p, "width", w < 1 ? 1 : w);
    num(p, "height", h);
    attr(p, "fill", fill);
    char clean[512];
    if (title)
        check(p, xmlTextWriterWriteElement(p->w, BAD_CAST "title", BAD_CAST utf8_clean(title, clean, sizeof(clean))));
    end(p);
}

static void text(pic *p, double x, double y, const char *anchor, const char *cls, const char *s)
{
    start(p, "text");
    num(p, "x", x);
    num(p, "y", y);
    attr(p, "text-anchor", anchor);
    attr(p, "class", cls);
    char clean[512];
    check(p, xmlTextWriterWriteString(p->w, BAD_CAST utf8_clean(s, clean, sizeof(clean))));
    end(p);
}

static double xpos(const pic *p, long long t)
{
    double span = p->t1 > p->t0 ? (double)(p->t1 - p->t0) : 1;
    double f = (double)(t - p->t0) / span;
    f = f < 0 ? 0 : f > 1 ? 1 : f;
    return LEFT + f * (WIDTH - LEFT - RIGHT);
}

/* t in local time: WHEN_FULL "2026-01-01 09:00", WHEN_ZONE the same with
 * the zone, WHEN_AXIS "01-01 09:00", WHEN_HOUR "09:00". */
enum { WHEN_FULL, WHEN_ZONE, WHEN_AXIS, WHEN_HOUR };
static void when(long long t, int form, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;
    size_t n = 0;
    if (localtime_r(&tt, &tm)) {
        switch (form) {
        case WHEN_FULL: n = strftime(buf, size, "%Y-%m-%d %H:%M", &tm); break;
        case WHEN_ZONE: n = strftime(buf, size, "%Y-%m-%d %H:%M %Z", &tm); break;
        case WHEN_AXIS: n = strftime(buf, size, "%m-%d %H:%M", &tm); break;
        default: n = strftime(buf, size, "%H:%M", &tm); break;
        }
    }
    if (n == 0)
        snprintf(buf, size, "%lld", t);
}

static const char *str(json_object *row, const char *key)
{
    json_object *v = json_object_object_get(row, key);
    return v ? json_object_get_string(v) : "";
}
static long long int64(json_object *row, const char *key)
{
    return json_object_get_int64(json_object_object_get(row, key));
}

static const char *colour(const char *mode)
{
    for (size_t i = 0; i < sizeof(MODES) / sizeof(*MODES); i++)
        if (!strcmp(MODES[i].mode, mode))
            return MODES[i].colour;
    return OTHER_COLOUR;
}

/* The blocks of one node's line: each eviction, in the run's span. */
static void node_blocks(pic *p, json_object *evictions, const char *node, double y)
{
    char title[512], a[32], b[32];
    for (size_t i = 0; i < json_object_array_length(evictions); i++) {
        json_object *e = json_object_array_get_idx(evictions, i);
        if (strcmp(str(e, "node"), node))
            continue;
        long long s = int64(e, "start"), t = int64(e, "stop");
        when(s, WHEN_FULL, a, sizeof(a));
        when(t, WHEN_FULL, b, sizeof(b));
        if (int64(e, "failed")) {
            snprintf(title, sizeof(title), "%s: the eviction for job %s failed (%s)", node, str(e, "job"), a);
            rect(p, xpos(p, s) - 1, y - 3, 3, ROW + 6, FAILED_COLOUR, "failed", title);
        } else if (int64(e, "evicted")) {
            snprintf(title, sizeof(title), "%s: %s for job %s, %s to %s", node, str(e, "used"), str(e, "job"), a, b);
            rect(p, xpos(p, s), y, xpos(p, t) - xpos(p, s), ROW, colour(str(e, "used")), "evicted", title);
        }
    }
}

static double nodes_panel(pic *p, json_object *nodes, json_object *evictions, double y)
{
    char line[320];
    text(p, 16, y, "start", "head", "Where each desktop was: evicted for a job (by mode), or not");
    y += 16;
    size_t n = json_object_array_length(nodes);
    if (n == 0) {
        text(p, LEFT, y + 16, "start", "note", "no evictions in this period");
        return y + 32;
    }
    for (size_t i = 0; i < n; i++, y += ROW + GAP) {
        json_object *row = json_object_array_get_idx(nodes, i);
        const char *node = str(row, "node");
        text(p, LEFT - 8, y + 15, "end", "label", node);
        rect(p, LEFT, y, WIDTH - LEFT - RIGHT, ROW, HOME_COLOUR, "home", NULL);
        node_blocks(p, evictions, node, y);
        snprintf(line, sizeof(line), "%.1f%% not evicted, %lld evictions, %lld failed",
                 json_object_get_double(json_object_object_get(row, "home_pct")), int64(row, "evictions"),
                 int64(row, "failed"));
        text(p, WIDTH - RIGHT + 8, y + 15, "start", "label", line);
    }
    /* The time axis: five ticks, local time. */
    char a[32];
    for (int k = 0; k <= 4; k++) {
        long long t = p->t0 + (p->t1 - p->t0) * k / 4;
        double x = xpos(p, t);
        rect(p, x, y - GAP + 2, 1, 5, "#444444", "tick", NULL);
        when(t, WHEN_AXIS, a, sizeof(a));
        text(p, x, y + 14, k == 0 ? "start" : k == 4 ? "end" : "middle", "axis", a);
    }
    y += 30;
    double x = LEFT;
    for (size_t i = 0; i < sizeof(MODES) / sizeof(*MODES); i++, x += 90) {
        rect(p, x, y - 10, 12, 12, MODES[i].colour, "legend", NULL);
        text(p, x + 16, y, "start", "axis", MODES[i].mode);
    }
    rect(p, x, y - 10, 12, 12, HOME_COLOUR, "legend", NULL);
    text(p, x + 16, y, "start", "axis", "not evicted");
    rect(p, x + 110, y - 10, 3, 12, FAILED_COLOUR, "legend", NULL);
    text(p, x + 118, y, "start", "axis", "failed eviction");
    return y + 34;
}

static double users_panel(pic *p, json_object *users, double y)
{
    char line[320];
    text(p, 16, y, "start", "head", "GPU-hours per user");
    y += 16;
    size_t n = json_object_array_length(users);
    double most = 0;
    for (size_t i = 0; i < n; i++)
        if (json_object_get_double(json_object_object_get(json_object_array_get_idx(users, i), "gpu_hours")) > most)
            most = json_object_get_double(json_object_object_get(json_object_array_get_idx(users, i), "gpu_hours"));
    if (n == 0)
        text(p, LEFT, y + 16, "start", "note", "no jobs in this period");
    for (size_t i = 0; i < n && i < MAX_USERS; i++, y += ROW + GAP) {
        json_object *row = json_object_array_get_idx(users, i);
        double h = json_object_get_double(json_object_object_get(row, "gpu_hours"));
        snprintf(line, sizeof(line), "%s (%s)", str(row, "user"), str(row, "account"));
        text(p, LEFT - 8, y + 15, "end", "label", line);
        double w = most > 0 ? h / most * (WIDTH - LEFT - RIGHT) : 0;
        rect(p, LEFT, y, w, ROW, "#5b8def", "gpu", NULL);
        snprintf(line, sizeof(line), "%.2f GPU-hours", h);
        text(p, LEFT + w + 8 > WIDTH - RIGHT + 8 ? WIDTH - RIGHT + 8 : LEFT + w + 8, y + 15, "start", "label", line);
    }
    if (n > MAX_USERS) {
        snprintf(line, sizeof(line), "and %zu more (vdeskctl report users)", n - MAX_USERS);
        text(p, LEFT, y + 12, "start", "note", line);
        y += 24;
    }
    return y + 8;
}

static void draw(pic *p, json_object *nodes, json_object *evictions, json_object *users)
{
    size_t nn = json_object_array_length(nodes), nu = json_object_array_length(users);
    nu = nu > MAX_USERS ? MAX_USERS + 1 : nu;
    double height = 100 + (nn ? nn : 1) * (ROW + GAP) + 90 + (nu ? nu : 1) * (ROW + GAP) + 40;
    char a[32], b[32], line[160];
    check(p, xmlTextWriterStartDocument(p->w, NULL, "UTF-8", NULL));
    start(p, "svg");
    attr(p, "xmlns", "http://www.w3.org/2000/svg");
    num(p, "width", WIDTH);
    num(p, "height", height);
    start(p, "style");
    check(p, xmlTextWriterWriteString(p->w, BAD_CAST "text { font-family: sans-serif; fill: #222222 }"
                                      " .title { font-size: 18px; font-weight: bold } .head { font-size: 14px;"
                                      " font-weight: bold } .label { font-size: 12px } .axis { font-size: 11px }"
                                      " .note { font-size: 12px; font-style: italic }"));
    end(p);
    rect(p, 0, 0, WIDTH, height, "#ffffff", "background", NULL);
    text(p, 16, 28, "start", "title", "vdesk: desktops and GPU use");
    when(p->t0, WHEN_FULL, a, sizeof(a));
    when(p->t1, WHEN_ZONE, b, sizeof(b));
    snprintf(line, sizeof(line), "from %s to %s", a, b);
    text(p, 16, 48, "start", "label", line);
    double y = nodes_panel(p, nodes, evictions, 80);
    users_panel(p, users, y + 10);
    end(p);
    check(p, xmlTextWriterEndDocument(p->w));
}

/* The period: as given, else the selected runs' own span. */
static int period(sqlite3 *db, const long long *since, const long long *until, const report_opts *o,
                  const char *path, pic *p)
{
    json_object *span = report_view(db, "span", since, until, o, path);
    if (!span)
        return -1;
    json_object *row = json_object_array_get_idx(span, 0);
    long long now = (long long)time(NULL);
    p->t0 = since ? *since : json_object_object_get(row, "first") ? int64(row, "first") : now;
    p->t1 = until ? *until : json_object_object_get(row, "last") ? int64(row, "last") : now;
    if (p->t1 <= p->t0)
        p->t1 = p->t0 + 3600;
    json_object_put(span);
    return 0;
}

/* Draws the picture in memory and writes it to o->svg. */
static int svg_write(pic *p, json_object *nodes, json_object *evictions, json_object *users, const char *file)
{
    xmlBufferPtr buf = xmlBufferCreate();
    p->w = buf ? xmlNewTextWriterMemory(buf, 0) : NULL;
    if (!p->w) {
        fprintf(stderr, "vdeskctl report: --svg %s: out of memory\n", file);
        xmlBufferFree(buf);
        return 1;
    }
    check(p, xmlTextWriterSetIndent(p->w, 1));
    draw(p, nodes, evictions, users);
    xmlFreeTextWriter(p->w);   /* flushes into buf */
    int rc = 1;
    vd_err werr;
    if (p->bad)
        fprintf(stderr, "vdeskctl report: --svg %s: drawing the picture failed (out of memory?)\n", file);
    else if (vd_file_replace(file, (const char *)xmlBufferContent(buf), (size_t)xmlBufferLength(buf), 0644,
                             (uid_t)-1, (gid_t)-1, &werr) < 0)
        fprintf(stderr, "vdeskctl report: --svg %s: %s (give a file in a directory you may write)\n", file,
                werr.msg);
    else
        rc = 0;
    xmlBufferFree(buf);
    return rc;
}

int report_picture(sqlite3 *db, const long long *since, const long long *until, const report_opts *o,
                   const char *path)
{
    pic p = { 0 };
    json_object *nodes = NULL, *evictions = NULL, *users = NULL;
    int rc = 1;
    if (period(db, since, until, o, path, &p) == 0 && (nodes = report_view(db, "nodes", since, until, o, path)) &&
        (evictions = report_view(db, "evictions", since, until, o, path)) &&
        (users = report_view(db, "users", since, until, o, path)))
        rc = svg_write(&p, nodes, evictions, users, o->svg);
    json_object_put(nodes);
    json_object_put(evictions);
    json_object_put(users);
    return rc;
}
