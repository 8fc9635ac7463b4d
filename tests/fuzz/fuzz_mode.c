/* SPDX-License-Identifier: MIT */
/*
 * fuzz_mode - mode names and mode sets (lib/mode.h), as they come from
 * --vdesk=, plugstack.conf's default= and allow= and vdesk.conf's allow =
 * and policy =. The input, up to its first NUL, is the string; its first
 * bytes are also a set to format, valid bits or not.
 *
 * spank/vdesk.c reads its plugstack arguments in static functions (no
 * parser callable apart from the plugin), which hand the values to these.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "mode.h"

/* vd_mode_set_format's promise: into any size, as many whole names as fit. */
static void check_format(vd_mode_set set)
{
    char full[256];
    vd_mode_set_format(set, full, sizeof(full));
    for (unsigned size = 1; size <= strlen(full) + 2; size++) {
        char *buf = malloc(size);   /* exactly size: ASan sees a byte past it */
        if (!buf)
            fuzz_fail("out of memory");
        vd_mode_set_format(set, buf, size);
        size_t len = strlen(buf);
        if (len >= size || strncmp(buf, full, len) != 0 ||
            (len && full[len] != ',' && full[len] != '\0'))
            fuzz_fail("set %#x in %u bytes: '%s', not whole names of '%s'", set, size, buf, full);
        free(buf);
    }
    char untouched = 'x';
    vd_mode_set_format(set, &untouched, 0);
    if (untouched != 'x')
        fuzz_fail("set %#x: format into 0 bytes wrote one", set);
}

/* What vd_mode_set_format writes, with ", " back to ",", parses to the set. */
static void check_round_trip(vd_mode_set set)
{
    char text[256], list[256];
    vd_mode_set back = 0;
    vd_err err = { "" };
    size_t n = 0;
    vd_mode_set_format(set, text, sizeof(text));
    for (const char *c = text; *c; c++)
        if (*c != ' ')
            list[n++] = *c;
    list[n] = '\0';
    if (vd_mode_set_parse(list, &back, &err) < 0 || back != set)
        fuzz_fail("set %#x formats as '%s', which parses back as %#x (%s)", set, text, back,
                  err.msg);
}

static void check_mode(const char *s)
{
    vd_mode m;
    vd_err err;
    if (vd_mode_parse(s, &m, &err) == 0 && strcmp(vd_mode_name(m), s) != 0)
        fuzz_fail("'%s' parsed as mode %d (%s)", s, (int)m, vd_mode_name(m));
}

static void check_set(const char *s)
{
    vd_mode_set set = 0;
    vd_err err;
    if (vd_mode_set_parse(s, &set, &err) < 0)
        return;
    if (!set || (set & ~VD_MODE_SET_ALL))
        fuzz_fail("'%s' parsed as set %#x", s, set);
    check_round_trip(set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_str(data, size);
    vd_mode_set bits = 0;
    for (size_t i = 0; i < size && i < sizeof(bits); i++)
        bits |= (vd_mode_set)data[i] << (8 * i);
    check_mode(s);
    check_set(s);
    check_format(bits);
    free(s);
    return 0;
}
