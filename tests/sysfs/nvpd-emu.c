/* SPDX-License-Identifier: MIT */
/*
 * nvidia-persistenced for the sysfs emulator (built under that name, so
 * that its process name is the real daemon's):
 *
 *   nvidia-persistenced SOCKET DEVROOT PROCROOT
 *
 * Like the real daemon in persistence mode, it holds /dev/nvidiaN open for
 * every GPU the driver lists (PROCROOT/driver/nvidia/gpus), which blocks
 * their unbind. On SOCKET it takes "BDF 0" (close that GPU, as NVML's
 * nvmlDeviceSetPersistenceMode makes the real daemon do) and "BDF 1" (open
 * it again), answers "0" or an NVML error code, and logs each request on
 * stdout. SIGTERM ends it.
 */
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_GPU 16

typedef struct gpu {
    char bdf[16];
    int fd;
} gpu;

typedef struct daemon_state {
    const char *dev, *proc;
    gpu gpus[MAX_GPU];
    int n;
} daemon_state;

static int minor_of(const daemon_state *d, const char *bdf)
{
    char path[PATH_MAX], line[256];
    int minor = -1;
    snprintf(path, sizeof(path), "%s/driver/nvidia/gpus/%s/information", d->proc, bdf);
    FILE *f = fopen(path, "re");
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "Device Minor: %d", &minor) == 1)
            break;
    if (f)
        fclose(f);
    return minor;
}

static int gpu_open(const daemon_state *d, gpu *g)
{
    char path[PATH_MAX];
    int minor = minor_of(d, g->bdf);
    if (minor < 0)
        return 6;   /* NVML_ERROR_NOT_FOUND: not on the driver */
    snprintf(path, sizeof(path), "%s/nvidia%d", d->dev, minor);
    if (g->fd < 0)
        g->fd = open(path, O_RDWR | O_CLOEXEC);
    return g->fd < 0 ? 999 : 0;
}

static void gpus_take(daemon_state *d)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/driver/nvidia/gpus", d->proc);
    DIR *dir = opendir(path);
    struct dirent *e;
    while (dir && (e = readdir(dir)) && d->n < MAX_GPU) {
        if (e->d_name[0] == '.')
            continue;
        gpu *g = &d->gpus[d->n++];
        snprintf(g->bdf, sizeof(g->bdf), "%.12s", e->d_name);
        g->fd = -1;
        gpu_open(d, g);
    }
    if (dir)
        closedir(dir);
}

static int request(daemon_state *d, const char *bdf, int mode)
{
    gpu *g = NULL;
    for (int i = 0; i < d->n && !g; i++)
        if (!strcmp(d->gpus[i].bdf, bdf))
            g = &d->gpus[i];
    if (!g && d->n < MAX_GPU) {   /* a GPU that came to the driver later */
        g = &d->gpus[d->n++];
        snprintf(g->bdf, sizeof(g->bdf), "%.12s", bdf);
        g->fd = -1;
    }
    if (!g)
        return 999;
    if (mode)
        return gpu_open(d, g);
    if (g->fd >= 0)
        close(g->fd);
    g->fd = -1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: nvidia-persistenced SOCKET DEVROOT PROCROOT\n");
        return 2;
    }
    daemon_state d = { .dev = argv[2], .proc = argv[3] };
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
    unlink(argv[1]);
    int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 8) < 0) {
        perror(argv[1]);
        return 1;
    }
    gpus_take(&d);
    printf("ready %d\n", d.n);
    fflush(stdout);
    for (;;) {
        int c = accept(ls, NULL, NULL);
        if (c < 0)
            continue;
        char req[64] = "", bdf[32];
        int mode, rc = 2;   /* NVML_ERROR_INVALID_ARGUMENT */
        if (read(c, req, sizeof(req) - 1) > 0 && sscanf(req, "%31s %d", bdf, &mode) == 2)
            rc = request(&d, bdf, mode);
        printf("%s %d -> %d\n", bdf, mode, rc);
        fflush(stdout);
        char reply[16];
        int n = snprintf(reply, sizeof(reply), "%d\n", rc);
        if (write(c, reply, (size_t)n) != n)
            perror("reply");
        close(c);
    }
}
