/* SPDX-License-Identifier: MIT */
/* profile.h - `vdeskctl profile list | show | check` and `vdeskctl
 * bootstrap` (see profile.c). */
#ifndef VDESK_CLI_PROFILE_H
#define VDESK_CLI_PROFILE_H

/* vdeskctl profile SUBCOMMAND [PROFILE]: argv[0] is "profile". The
 * profiles are in profile_dir of vdesk.conf `path` (the default one
 * without a readable vdesk.conf); `node`'s section, when it has one, is
 * what check compares devices with; `live` adds the checks against this
 * machine (whole cores). Returns the exit status: 0 fine, 1 a problem
 * (each printed with where it is and its fix), 2 a usage error. */
int cmd_profile(const char *path, const char *node, int live, int argc, char **argv);

/* vdeskctl bootstrap PROFILE NAME (bootstrap.h), printing each step.
 * Returns the exit status. */
int cmd_bootstrap(const char *path, const char *node, const char *profile, const char *name);

#endif
