/* SPDX-License-Identifier: MIT */
/*
 * libnvidia-ml.so.1 for machines without the NVIDIA driver: the few NVML
 * calls vdesk makes, answered the way NVML answers them when
 * nvidia-persistenced runs, that is by asking the daemon. Here the daemon
 * is tests/sysfs/nvpd-emu.c, reached on the socket named by
 * $VDESK_NVPD_SOCKET. Only tests load it (LD_LIBRARY_PATH).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum { OK = 0, ERR_UNINITIALIZED = 1, ERR_INVALID_ARGUMENT = 2, ERR_NOT_SUPPORTED = 3,
       ERR_NOT_FOUND = 6, ERR_UNKNOWN = 999 };

typedef struct nvml_device {
    char bdf[32];
} *nvml_device;

/* NVML's exported names are its ABI; they are not vdesk's to rename. */
int nvmlInit_v2(void);
int nvmlShutdown(void);
const char *nvmlErrorString(int r);
int nvmlDeviceGetHandleByPciBusId_v2(const char *bdf, nvml_device *dev);
int nvmlDeviceSetPersistenceMode(nvml_device dev, int mode);

static struct nvml_device devices[16];

int nvmlInit_v2(void)
{
    return OK;
}

int nvmlShutdown(void)
{
    return OK;
}

const char *nvmlErrorString(int r)
{
    switch (r) {
    case OK: return "Success";
    case ERR_INVALID_ARGUMENT: return "Invalid Argument";
    case ERR_NOT_SUPPORTED: return "Not Supported";
    case ERR_NOT_FOUND: return "Not Found";
    default: return "Unknown Error";
    }
}

int nvmlDeviceGetHandleByPciBusId_v2(const char *bdf, nvml_device *dev)
{
    for (size_t i = 0; i < sizeof(devices) / sizeof(devices[0]); i++)
        if (!devices[i].bdf[0] || !strcmp(devices[i].bdf, bdf)) {
            snprintf(devices[i].bdf, sizeof(devices[i].bdf), "%s", bdf);
            *dev = &devices[i];
            return OK;
        }
    return ERR_NOT_FOUND;
}

/* One request to the daemon: "BDF MODE\n", answered with an NVML code. */
int nvmlDeviceSetPersistenceMode(nvml_device dev, int mode)
{
    const char *path = getenv("VDESK_NVPD_SOCKET");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (!path || strlen(path) >= sizeof(sa.sun_path))
        return ERR_NOT_SUPPORTED;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (fd >= 0)
            close(fd);
        return ERR_UNKNOWN;
    }
    char req[64], reply[16] = "";
    int n = snprintf(req, sizeof(req), "%s %d\n", dev->bdf, mode);
    int rc = ERR_UNKNOWN;
    if (write(fd, req, (size_t)n) == n && read(fd, reply, sizeof(reply) - 1) > 0)
        rc = atoi(reply);
    close(fd);
    return rc;
}
