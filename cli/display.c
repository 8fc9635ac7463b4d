/* SPDX-License-Identifier: MIT */
/*
 * display.c - `vdeskctl display`: where the student's screen is now.
 *
 * The passed-through GPU drives the monitor only while the desktop has it;
 * while a job has the GPU (shrink, migrate) the desktop's emulated display
 * (SPICE or VNC) is what the workstation's kiosk viewer shows. That display
 * moves with the desktop: this finds the node whose daemon runs it, and the
 * port libvirt chose there.
 */
#include "display.h"

#include <libxml/uri.h>
#include <stdio.h>
#include <string.h>

#include "hv.h"

typedef struct found {
    const char *dom;
    const char *node;   /* where it runs */
    vd_display d;
    vd_dom_state state;
} found;

/* Whether `dom` runs (or is paused: the viewer shows its last picture)
 * under `uri`; *f filled when it does. */
static int runs_at(const char *uri, const char *dom, const char *node, found *f)
{
    vd_hv *hv = NULL;
    vd_err err;
    vd_dom_state s = VD_DOM_MISSING;
    int rc = 0;
    if (vd_hv_open(uri, &hv, &err) < 0)
        return 0;   /* a daemon down here or there: the desktop is not there */
    if (vd_hv_dom_state(hv, dom, &s, &err) == 0 && (s == VD_DOM_RUNNING || s == VD_DOM_PAUSED) &&
        vd_hv_dom_display(hv, dom, &f->d, &err) == 0) {
        f->dom = dom;
        f->node = node;
        f->state = s;
        rc = 1;
    }
    vd_hv_close(hv);
    return rc;
}

/* The home desktop may be at a peer; the others a node offers never leave. */
static int desktop_locate(const vd_conf *c, const char *dom, found *f)
{
    if (runs_at(c->uri, dom, c->node, f))
        return 1;
    if (strcmp(dom, vd_conf_default_domain(c)) != 0 || !c->migrate_uri[0])
        return 0;
    for (int i = 0; i < c->npeers; i++) {
        const vd_peer *p = &c->peers[i];
        if (strcmp(p->name, c->node) != 0 && p->migrate_uri[0] && runs_at(p->migrate_uri, dom, p->name, f))
            return 1;
    }
    return 0;
}

/* The host of a libvirt URI ("qemu+tls://n3-adm/system": n3-adm), parsed by
 * libxml2; `fallback` when it has none. */
static void uri_host(const char *uri, const char *fallback, char *buf, size_t size)
{
    xmlURIPtr u = xmlParseURI(uri);
    snprintf(buf, size, "%s", u && u->server && u->server[0] ? u->server : fallback);
    xmlFreeURI(u);
}

/* The host a viewer on this node connects to: the address the display
 * listens on, unless that is "any" or loopback of another node: then the
 * host this node reaches that node's daemon at (its migrate_uri). */
static void display_host(const vd_conf *c, const found *f, char *buf, size_t size)
{
    const char *l = f->d.listen;
    int any = !l[0] || !strcmp(l, "0.0.0.0") || !strcmp(l, "::");
    const vd_peer *p = vd_conf_peer(c, f->node);
    if (!strcmp(f->node, c->node))
        snprintf(buf, size, "%s", any ? "127.0.0.1" : l);
    else if (any || !strncmp(l, "127.", 4) || !strcmp(l, "::1"))
        uri_host(p ? p->migrate_uri : "", f->node, buf, size);
    else
        snprintf(buf, size, "%s", l);
}

int cmd_display(const vd_conf *c)
{
    found f = { .dom = NULL };
    int hit = desktop_locate(c, c->domain, &f);
    for (int i = 0; !hit && i < c->ndesktops; i++)
        hit = strcmp(c->desktops[i], c->domain) && desktop_locate(c, c->desktops[i], &f);
    if (!hit && strcmp(c->domain, vd_conf_default_domain(c)))
        hit = desktop_locate(c, vd_conf_default_domain(c), &f);
    if (!hit) {
        fprintf(stderr, "vdeskctl display: desktop %s of node %s does not run now (saved, off or "
                "moving for a job: 'vdeskctl status' says which)\n", c->domain, c->node);
        return DISPLAY_AWAY;
    }
    if (!f.d.type[0]) {
        fprintf(stderr, "vdeskctl display: desktop %s has no emulated display: add <graphics "
                "type='spice' autoport='yes' listen='127.0.0.1'/> and a <video> device to its "
                "definition (admin.md, \"The student's screen\")\n", f.dom);
        return DISPLAY_NONE;
    }
    if (f.d.port < 0) {
        fprintf(stderr, "vdeskctl display: desktop %s on %s has a %s display without a plain port "
                "(TLS only, or not listening yet)\n", f.dom, f.node, f.d.type);
        return DISPLAY_AWAY;
    }
    char host[256];
    display_host(c, &f, host, sizeof(host));
    printf("%s://%s:%d\n", f.d.type, host, f.d.port);
    return 0;
}
