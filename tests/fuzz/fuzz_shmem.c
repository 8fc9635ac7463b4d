/* SPDX-License-Identifier: MIT */
/*
 * fuzz_shmem - what lib/shmem reads that it did not write itself: a
 * registry file STATE_DIR/shmem/NAME.json (the input, as region "grp"),
 * a domain's XML from libvirt (the input again), and the words of
 * `vdeskctl shmem` (a size, a region name).
 *
 * A registry file that loads must describe region "grp" with a size QEMU
 * takes, and that region's device XML must read back as the same member:
 * the engine unplugs and plugs back exactly what the XML names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "shmem.h"

static void check_member(const vd_shmem_member *m, const char *what)
{
    if (vd_shmem_name_check(m->name, NULL) < 0 || strcmp(m->desktop, "d") ||
        (m->role != VD_SHMEM_PEER && m->role != VD_SHMEM_MASTER))
        fuzz_fail("%s: member '%s' of '%s', role %d", what, m->name, m->desktop, (int)m->role);
}

/* The device XML of a region that loaded reads back as that region. */
static void check_device(const vd_shmem *r)
{
    char *xml = NULL, *dom;
    vd_shmem_member m[2];
    int n = 0;
    vd_err err = { "" };
    if (vd_shmem_dev_xml(r, VD_SHMEM_PEER, &xml, &err) < 0)
        fuzz_fail("region %s of %llu bytes loaded but has no device XML: %s", r->name, r->size, err.msg);
    size_t len = strlen(xml) + 64;
    if (!(dom = malloc(len)))
        fuzz_fail("out of memory");
    snprintf(dom, len, "<domain><devices>%s</devices></domain>", xml);
    if (vd_shmem_in_xml(dom, "d", 1, m, 2, &n, &err) < 0 || n != 1 || strcmp(m[0].name, r->name) ||
        m[0].size != r->size || m[0].role != VD_SHMEM_PEER)
        fuzz_fail("region %s (%llu bytes): its device XML reads back as %d member(s): %s", r->name, r->size,
                  n, err.msg);
    free(dom);
    free(xml);
}

static void check_registry(const uint8_t *data, size_t size)
{
    char *text = fuzz_str(data, size);
    vd_shmem r;
    vd_err err;
    if (vd_shmem_parse("f", "grp", text, strlen(text), &r, &err) == 0) {
        if (strcmp(r.name, "grp") || r.size < VD_SHMEM_MIN || r.size > VD_SHMEM_MAX_SIZE || (r.size & (r.size - 1)))
            fuzz_fail("loaded region '%s' of %llu bytes", r.name, r.size);
        check_device(&r);
    }
    free(text);
}

static void check_domain(const uint8_t *data, size_t size)
{
    char *xml = fuzz_str(data, size);
    vd_shmem_member m[4];
    int n = -1;
    vd_err err;
    if (vd_shmem_in_xml(xml, "d", 0, m, 4, &n, &err) == 0) {
        if (n < 0 || n > 4)
            fuzz_fail("%d members in room for 4", n);
        for (int i = 0; i < n; i++)
            check_member(&m[i], "domain XML");
    }
    free(xml);
}

static void check_words(const uint8_t *data, size_t size)
{
    char *s = fuzz_str(data, size);
    unsigned long long b = 0;
    char alias[80];
    vd_err err;
    if (vd_shmem_size_parse(s, &b, &err) == 0 && (b < VD_SHMEM_MIN || b > VD_SHMEM_MAX_SIZE || (b & (b - 1))))
        fuzz_fail("size '%s' parsed as %llu", s, b);
    if (vd_shmem_name_check(s, &err) == 0 && !vd_shmem_is_alias(vd_shmem_alias(s, alias, sizeof(alias))))
        fuzz_fail("name '%s' is valid but its alias %s is not a region's", s, alias);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_registry(data, size);
    check_domain(data, size);
    check_words(data, size);
    return 0;
}
