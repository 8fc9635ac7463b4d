/* SPDX-License-Identifier: MIT */
/*
 * nvidia.h - what vdesk needs of the NVIDIA driver before it unbinds a GPU:
 * the GPU's device minor (so that the holders of /dev/nvidiaN can be found)
 * and its persistence mode.
 *
 * The minor comes from PROC/driver/nvidia/gpus/BDF/information, which the
 * driver writes while it has the GPU (libnvidia-container reads the same).
 *
 * Persistence goes through NVML (libnvidia-ml.so.1, which comes with the
 * driver, not with Debian): it is loaded with dlopen, in a child process
 * that exits before the unbind, because NVML itself holds the GPU open
 * while it is loaded. When nvidia-persistenced runs, NVML asks it to let go
 * of the GPU, which is what makes the unbind possible.
 */
#ifndef VDESK_NVIDIA_H
#define VDESK_NVIDIA_H

#include <stddef.h>

#include "err.h"

/* What to do with a GPU that nvidia-persistenced holds open (vdesk.conf's
 * nvidia_persistence): refuse to unbind it and name the daemon, or switch
 * persistence off for that GPU before it goes to the desktop and on again
 * when it comes back to the host. */
typedef enum vd_persistence { VD_PERSIST_REFUSE, VD_PERSIST_MANAGE } vd_persistence;

/* The NVML library vdesk loads. */
#define VD_NVML_LIBRARY "libnvidia-ml.so.1"

/* The device minor N of /dev/nvidiaN for the GPU at `bdf`, read under
 * `proc` ("/proc"). Fails when the driver does not have the GPU. */
int vd_nvidia_minor(const char *proc, const char *bdf, int *minor, vd_err *err);

/* Sets the GPU's persistence mode through NVML, in a child process that
 * must answer within timeout_ms. */
int vd_nvidia_persistence_set(const char *bdf, int on, int timeout_ms, vd_err *err);

/* The process name (comm, 15 characters) of nvidia-persistenced. */
#define VD_NVIDIA_PERSISTENCED_COMM "nvidia-persiste"

#endif
