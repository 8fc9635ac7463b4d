/* SPDX-License-Identifier: MIT */
#include "mode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    const char *help;
} modes[VD_MODE_COUNT] = {
    [VD_MODE_SUSPEND] = { "suspend", "pause the desktop VM in place (frees CPU only)" },
    [VD_MODE_SAVE] = { "save", "unplug its devices, save its RAM to disk, stop it" },
    [VD_MODE_MIGRATE] = { "migrate", "unplug its devices, live-migrate it to an idle node" },
    [VD_MODE_SHUTDOWN] = { "shutdown", "shut it down cleanly (its disk keeps the state)" },
    [VD_MODE_SHRINK] = { "shrink", "keep it running on the desktop cores, without the job's GPUs" },
    [VD_MODE_AUTO] = { "auto", "the site's policy (for example migrate, else save, else shutdown)" },
};

const char *vd_mode_name(vd_mode mode)
{
    return mode < VD_MODE_COUNT ? modes[mode].name : "invalid";
}

const char *vd_mode_help(vd_mode mode)
{
    return mode < VD_MODE_COUNT ? modes[mode].help : "";
}

void vd_mode_set_format(vd_mode_set set, char *buf, unsigned size)
{
    unsigned used = 0;
    if (size == 0)
        return;
    buf[0] = '\0';
    for (int m = 0; m < VD_MODE_COUNT; m++) {
        if (!(set & VD_MODE_BIT(m)))
            continue;
        int n = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", modes[m].name);
        if (n < 0 || (unsigned)n >= size - used) {
            buf[used] = '\0';   /* whole names only */
            return;
        }
        used += (unsigned)n;
    }
}

int vd_mode_parse(const char *s, vd_mode *mode, vd_err *err)
{
    for (int m = 0; m < VD_MODE_COUNT; m++) {
        if (strcmp(s, modes[m].name) == 0) {
            *mode = (vd_mode)m;
            return 0;
        }
    }
    char all[128];
    vd_mode_set_format(VD_MODE_SET_ALL, all, sizeof(all));
    return vd_err_set(err, "unknown mode '%s' (modes: %s)", s, all);
}

int vd_mode_set_parse(const char *s, vd_mode_set *set, vd_err *err)
{
    char *copy = strdup(s);
    if (!copy)
        return vd_err_set(err, "out of memory");
    vd_mode_set out = 0;
    int rc = 0;
    char *save = NULL;
    if (!*s || s[strlen(s) - 1] == ',' || s[0] == ',' || strstr(s, ",,"))
        rc = vd_err_set(err, "mode list '%s' has an empty item", s);
    for (char *tok = strtok_r(copy, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
        vd_mode m;
        if (vd_mode_parse(tok, &m, err) < 0)
            rc = -1;
        else if (out & VD_MODE_BIT(m))
            rc = vd_err_set(err, "mode list '%s' names '%s' twice", s, tok);
        else
            out |= VD_MODE_BIT(m);
    }
    free(copy);
    if (rc == 0)
        *set = out;
    return rc;
}
