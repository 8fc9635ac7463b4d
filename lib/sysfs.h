/* SPDX-License-Identifier: MIT */
/*
 * sysfs.h - the two ways vdesk reads sysfs (and /proc): one-line attribute
 * files, and links whose last component names the object (a driver, an
 * IOMMU group, a PCI function).
 */
#ifndef VDESK_SYSFS_H
#define VDESK_SYSFS_H

#include <stddef.h>

/* The first line of `path`, without its newline. Returns 0, or -1 when the
 * file cannot be read (buf is then ""). */
int vd_sysfs_line(const char *path, char *buf, size_t size);

/* The last component of the target of link `path` ("../../drivers/nvidia"
 * gives "nvidia"). Returns 0, or -1 when `path` is no link or the name does
 * not fit (out is then ""). */
int vd_sysfs_link_name(const char *path, char *out, size_t size);

#endif
