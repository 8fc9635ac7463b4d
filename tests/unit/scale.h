/* SPDX-License-Identifier: MIT */
/* scale.h - VDESK_TEST_TIME_SCALE (1 to 20, default 1): how much slower
 * than a plain run this one may be (tests/check.sh sets 5 for the
 * valgrind run), for the few unit tests with a time in them. */
#ifndef VDESK_TEST_SCALE_H
#define VDESK_TEST_SCALE_H

#include <stdlib.h>

static inline long test_time_scale(void)
{
    const char *v = getenv("VDESK_TEST_TIME_SCALE");
    long s = v ? strtol(v, NULL, 10) : 1;
    return s < 1 ? 1 : s > 20 ? 20 : s;
}

#endif
