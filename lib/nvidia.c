/* SPDX-License-Identifier: MIT */
#include "nvidia.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "child.h"

int vd_nvidia_minor(const char *proc, const char *bdf, int *minor, vd_err *err)
{
    char path[PATH_MAX], line[256];
    snprintf(path, sizeof(path), "%s/driver/nvidia/gpus/%s/information", proc, bdf);
    FILE *f = fopen(path, "re");
    if (!f)
        return vd_err_set(err, "GPU %s: the NVIDIA driver does not list it (%s missing)", bdf, path);
    int found = 0;
    while (!found && fgets(line, sizeof(line), f))
        found = sscanf(line, "Device Minor: %d", minor) == 1;
    fclose(f);
    return found ? 0 : vd_err_set(err, "GPU %s: no 'Device Minor' in %s", bdf, path);
}

/* The few NVML entry points vdesk uses, as nvml.h declares them. The header
 * is not in Debian's main archive and the library is only on nodes with
 * the driver, so they are looked up at run time. */
typedef int nvml_ret;
typedef struct nvml_device *nvml_device;
typedef struct nvml {
    void *so;
    nvml_ret (*init)(void);
    nvml_ret (*shutdown)(void);
    const char *(*error_string)(nvml_ret);
    nvml_ret (*by_pci)(const char *, nvml_device *);
    nvml_ret (*set_persistence)(nvml_device, int);
} nvml;

static int nvml_load(nvml *n, vd_err *err)
{
    n->so = dlopen(VD_NVML_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!n->so)
        return vd_err_set(err, "cannot load %s (%s): is the NVIDIA driver installed?",
                          VD_NVML_LIBRARY, dlerror());
    /* dlsym returns void *; POSIX guarantees it converts to a function. */
    *(void **)&n->init = dlsym(n->so, "nvmlInit_v2");
    *(void **)&n->shutdown = dlsym(n->so, "nvmlShutdown");
    *(void **)&n->error_string = dlsym(n->so, "nvmlErrorString");
    *(void **)&n->by_pci = dlsym(n->so, "nvmlDeviceGetHandleByPciBusId_v2");
    *(void **)&n->set_persistence = dlsym(n->so, "nvmlDeviceSetPersistenceMode");
    if (!n->init || !n->shutdown || !n->error_string || !n->by_pci || !n->set_persistence)
        return vd_err_set(err, "%s lacks an NVML function vdesk needs (driver too old?)",
                          VD_NVML_LIBRARY);
    return 0;
}

typedef struct persist_arg {
    const char *bdf;
    int on;
} persist_arg;

/* Runs in the child: the process exits afterwards, which closes every
 * handle NVML opened. */
static int persistence_child(void *arg, vd_err *err)
{
    const persist_arg *a = arg;
    nvml n = { 0 };
    nvml_device dev;
    nvml_ret r;
    if (nvml_load(&n, err) < 0)
        return -1;
    if ((r = n.init()) != 0)
        return vd_err_set(err, "nvmlInit: %s", n.error_string(r));
    if ((r = n.by_pci(a->bdf, &dev)) != 0 || (r = n.set_persistence(dev, a->on)) != 0) {
        vd_err_set(err, "NVML: %s", n.error_string(r));
        n.shutdown();
        return -1;
    }
    n.shutdown();
    return 0;
}

int vd_nvidia_persistence_set(const char *bdf, int on, int timeout_ms, vd_err *err)
{
    persist_arg a = { .bdf = bdf, .on = on };
    if (vd_child_run(persistence_child, &a, timeout_ms, err) < 0)
        return vd_err_prefix(err, "GPU %s: turning persistence mode %s", bdf, on ? "on" : "off");
    return 0;
}
