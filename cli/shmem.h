/* SPDX-License-Identifier: MIT */
/* shmem.h - `vdeskctl shmem create | attach | detach | list | destroy`
 * (lib/shmem.h; docs/admin.md, "Shared memory between desktops"). */
#ifndef VDESK_CLI_SHMEM_H
#define VDESK_CLI_SHMEM_H

#include "conf.h"

/* argv[0] is "shmem"; `role` is --role's value (NULL: peer). Returns the
 * exit status: 0 done, 1 refused or failed (the message says why and the
 * fix), 2 a usage error. */
int cmd_shmem(const vd_conf *conf, const char *role, int argc, char **argv);

#endif
