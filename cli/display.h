/* SPDX-License-Identifier: MIT */
/* display.h - `vdeskctl display` (see display.c). */
#ifndef VDESK_CLI_DISPLAY_H
#define VDESK_CLI_DISPLAY_H

#include "conf.h"

/* Exit statuses besides 0 (printed) and 1 (an error). */
#define DISPLAY_AWAY 3      /* the desktop runs nowhere now: saved, off, moving */
#define DISPLAY_NONE 4      /* it runs without an emulated display */

/* Prints where a viewer finds the desktop's screen now, as
 * spice://HOST:PORT or vnc://HOST:PORT: the selected desktop (or, for a
 * caller who cannot read the state directory, whichever offered desktop
 * runs), at home or on the node it migrated to. The kiosk session
 * (vdesk-kiosk) asks this again each time its viewer loses the screen. */
int cmd_display(const vd_conf *c);

#endif
