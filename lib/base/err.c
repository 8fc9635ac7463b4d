/* SPDX-License-Identifier: MIT */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int vd_err_set(vd_err *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return -1;
}

int vd_err_prefix(vd_err *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    char prefix[sizeof(err->msg)];
    char old[sizeof(err->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    int n = snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
    if (n >= (int)sizeof(err->msg))   /* say so rather than cut silently */
        memcpy(err->msg + sizeof(err->msg) - 4, "...", 4);
    return -1;
}

void vd_err_clear(vd_err *err)
{
    if (err)
        err->msg[0] = '\0';
}
