/* SPDX-License-Identifier: MIT */
#include "hv.h"
#include "cpulist.h"

#include <errno.h>
#include <fcntl.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define KEEPALIVE_S 5
#define KEEPALIVE_COUNT 5

struct vd_hv {
    virConnectPtr conn;
    char *uri;
    vd_hv_caps caps;   /* what its driver can do, once caps_known */
    int caps_known;
};

static const char *lv_msg(void)
{
    const char *m = virGetLastErrorMessage();
    return m ? m : "unknown libvirt error";
}

/* libvirt allows one event loop implementation per process, registered
 * before the first connection; pthread_once keeps that a property of the
 * process rather than of whichever caller came first. */
static pthread_once_t event_once = PTHREAD_ONCE_INIT;
static int event_rc;

static void event_register(void)
{
    event_rc = virEventRegisterDefaultImpl();
}

/* libvirt's default error handler prints every error on stderr; vdesk
 * reports errors itself, once, with context. */
static void lv_quiet(void *opaque, virErrorPtr e)
{
    (void)opaque;
    (void)e;
}

int vd_hv_open(const char *uri, vd_hv **out, vd_err *err)
{
    pthread_once(&event_once, event_register);
    if (event_rc < 0)
        return vd_err_set(err, "libvirt: cannot register the event loop: %s", lv_msg());
    virSetErrorFunc(NULL, lv_quiet);

    virConnectPtr conn = virConnectOpen(uri);
    if (!conn)
        return vd_err_set(err, "libvirt: cannot connect to %s: %s (is the libvirt daemon running?)",
                          uri ? uri : "the default URI", lv_msg());
    vd_hv *hv = calloc(1, sizeof(*hv));
    char *real = virConnectGetURI(conn);
    if (!hv || !real) {
        free(hv);
        free(real);
        virConnectClose(conn);
        return vd_err_set(err, "libvirt: out of memory after connecting to %s", uri ? uri : "default");
    }
    /* A hung (not dead) daemon must not hang a prolog: with keepalive, a
     * call waiting on a daemon that stopped answering fails after about
     * KEEPALIVE_S * (KEEPALIVE_COUNT + 1) s. Local drivers have no keepalive. */
    if (virConnectSetKeepAlive(conn, KEEPALIVE_S, KEEPALIVE_COUNT) < 0)
        virResetLastError();
    hv->conn = conn;
    hv->uri = real;
    *out = hv;
    return 0;
}

void vd_hv_close(vd_hv *hv)
{
    if (!hv)
        return;
    virConnectClose(hv->conn);
    free(hv->uri);
    free(hv);
}

const char *vd_hv_uri(const vd_hv *hv)
{
    return hv->uri;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static virDomainPtr dom_get(vd_hv *hv, const char *name, vd_err *err)
{
    virDomainPtr d = virDomainLookupByName(hv->conn, name);
    if (!d)
        vd_err_set(err, "VM %s: not found on %s: %s", name, hv->uri, lv_msg());
    return d;
}

int vd_hv_dom_create(vd_hv *hv, const char *xml, vd_err *err)
{
    virDomainPtr d = virDomainDefineXML(hv->conn, xml);
    if (!d)
        return vd_err_set(err, "libvirt %s: cannot define domain: %s", hv->uri, lv_msg());
    int rc = 0;
    /* libvirt's last error belongs to the thread and is reset by the next
     * libvirt call: read it before asking for anything else (the name). */
    if (virDomainCreate(d) < 0) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", lv_msg());
        rc = vd_err_set(err, "VM %s: cannot start: %s", virDomainGetName(d), msg);
    }
    virDomainFree(d);
    return rc;
}

/* --- deadlines (hv.h) --- */

typedef enum guard_act { GUARD_ABORT_JOB, GUARD_DESTROY } guard_act;

/* A watchdog for one call. It lives on the heap: a watchdog stuck on a
 * daemon that hangs is left behind (abandoned) and frees itself. */
typedef struct guard {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* done, finished */
    struct timespec deadline;   /* CLOCK_MONOTONIC */
    char *uri, *dom;
    guard_act act;
    int done, finished, acted, abandoned;
} guard;

#define GUARD_JOIN_S 10   /* the longest a watchdog's own action is waited for */

static void guard_free(guard *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g->uri);
    free(g->dom);
    free(g);
}

/* Acts from a connection of its own; 1 if the action was taken. */
static int guard_fire(const guard *g)
{
    virConnectPtr c = virConnectOpen(g->uri);
    if (!c)
        return 0;
    if (virConnectSetKeepAlive(c, KEEPALIVE_S, KEEPALIVE_COUNT) < 0)
        virResetLastError();
    virDomainPtr d = virDomainLookupByName(c, g->dom);
    int acted = 0;
    if (d) {
        acted = (g->act == GUARD_ABORT_JOB ? virDomainAbortJob(d) : virDomainDestroy(d)) == 0;
        virDomainFree(d);
    }
    virConnectClose(c);
    return acted;
}

static void *guard_main(void *arg)
{
    guard *g = arg;
    int rc = 0;
    pthread_mutex_lock(&g->mu);
    while (!g->done && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&g->cv, &g->mu, &g->deadline);
    int fire = !g->done;
    pthread_mutex_unlock(&g->mu);
    int acted = fire ? guard_fire(g) : 0;
    pthread_mutex_lock(&g->mu);
    g->acted = acted;
    g->finished = 1;
    int abandoned = g->abandoned;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (abandoned)
        guard_free(g);
    return NULL;
}

static void deadline_in(struct timespec *t, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, t);
    t->tv_sec += ms / 1000;
    t->tv_nsec += (long)(ms % 1000) * 1000000;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

/* Arms a watchdog for one call: *out NULL when timeout_ms <= 0. */
static int guard_start(guard **out, const vd_hv *hv, const char *dom, int timeout_ms, guard_act act,
                       vd_err *err)
{
    *out = NULL;
    if (timeout_ms <= 0)
        return 0;
    guard *g = calloc(1, sizeof(*g));
    pthread_condattr_t ca;
    if (!g || !(g->uri = strdup(hv->uri)) || !(g->dom = strdup(dom))) {
        if (g) {
            free(g->uri);
            free(g);
        }
        return vd_err_set(err, "VM %s: out of memory arming the call's deadline", dom);
    }
    deadline_in(&g->deadline, timeout_ms);
    g->act = act;
    int rc = pthread_condattr_init(&ca);
    if (rc == 0) {
        rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) || pthread_cond_init(&g->cv, &ca) ||
             pthread_mutex_init(&g->mu, NULL) || pthread_create(&g->thread, NULL, guard_main, g);
        pthread_condattr_destroy(&ca);
    }
    if (rc) {
        free(g->uri);
        free(g->dom);
        free(g);
        return vd_err_set(err, "VM %s: cannot start the thread that enforces the call's deadline "
                          "(out of threads or memory?)", dom);
    }
    *out = g;
    return 0;
}

/* Disarms the watchdog; returns whether it acted (or may have: one stuck
 * on a hung daemon is left behind, and the caller reads the VM's state
 * again rather than trust the call). */
static int guard_stop(guard *g)
{
    if (!g)
        return 0;
    struct timespec until;
    int rc = 0;
    deadline_in(&until, GUARD_JOIN_S * 1000);
    pthread_mutex_lock(&g->mu);
    g->done = 1;
    pthread_cond_broadcast(&g->cv);
    while (!g->finished && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&g->cv, &g->mu, &until);
    if (!g->finished) {
        g->abandoned = 1;
        pthread_mutex_unlock(&g->mu);
        pthread_detach(g->thread);
        return 1;
    }
    int acted = g->acted;
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->thread, NULL);
    guard_free(g);
    return acted;
}

static int call_create(virDomainPtr d, const char *unused)
{
    (void)unused;
    return virDomainCreate(d);
}

/* --- save files: the fastest form the platform has --------------------
 *
 * Plain virDomainSave streams RAM through libvirt's iohelper and the page
 * cache, at a fifth of what the disk takes (docs/benchmarks.md). Writing
 * around the page cache (BYPASS_CACHE) is in every libvirt vdesk supports;
 * libvirt >= 11.2 with QEMU >= 9 also writes the "sparse" (mapped-ram)
 * format, RAM pages at fixed offsets, in parallel channels. Which one is
 * chosen at build time from libvirt's headers; at run time only what the
 * save file's directory and the QEMU allow. */

#define SAVE_CHANNELS 4   /* QEMU threads writing RAM; more gain nothing on one disk */

/* Whether directory `dir` (its first `len` bytes) takes O_DIRECT, as
 * BYPASS_CACHE needs: one aligned block written, as libvirt and QEMU will
 * (some file systems open O_DIRECT files and then fail the writes). */
static int dir_direct_io(const char *dir, int len)
{
    char probe[PATH_MAX];
    if (snprintf(probe, sizeof(probe), "%.*s/.vdesk-direct-io.%ld", len, dir, (long)getpid()) >=
        (int)sizeof(probe))
        return 0;
    if (unlink(probe) < 0 && errno != ENOENT)
        return 0;
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_DIRECT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return 0;
    void *block = NULL;
    int ok = posix_memalign(&block, 4096, 4096) == 0;
    if (ok) {
        memset(block, 0, 4096);
        ok = pwrite(fd, block, 4096, 0) == 4096;
    }
    free(block);
    ok = close(fd) == 0 && ok;
    return unlink(probe) == 0 && ok;
}

static int dir_takes_direct_io(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? dir_direct_io(path, (int)(slash - path)) : dir_direct_io(".", 1);
}

/* Errors that mean "this libvirt or QEMU does not do that form" (libvirt's
 * test driver has no BYPASS_CACHE, a QEMU < 9 no mapped-ram): the next
 * form is tried. A save or restore that failed under way is not. */
static int refusal(int code)
{
    return code == VIR_ERR_OPERATION_UNSUPPORTED || code == VIR_ERR_ARGUMENT_UNSUPPORTED ||
           code == VIR_ERR_NO_SUPPORT || code == VIR_ERR_INVALID_ARG;
}

/* The error code of the calling thread's last libvirt failure, or 0. */
static int lv_code(void)
{
    virErrorPtr e = virGetLastError();
    return e ? e->code : 0;
}

#if LIBVIR_CHECK_VERSION(11, 2, 0)
/* The typed parameters of a parallel save or restore of `path`. */
static int save_params(const char *path, int sparse, virTypedParameterPtr *p, int *n)
{
    int max = 0;
    *p = NULL;
    *n = 0;
    if (virTypedParamsAddString(p, n, &max, VIR_DOMAIN_SAVE_PARAM_FILE, path) < 0 ||
        (sparse && virTypedParamsAddString(p, n, &max, VIR_DOMAIN_SAVE_PARAM_IMAGE_FORMAT, "sparse") < 0) ||
        virTypedParamsAddInt(p, n, &max, VIR_DOMAIN_SAVE_PARAM_PARALLEL_CHANNELS, SAVE_CHANNELS) < 0) {
        virTypedParamsFree(*p, *n);
        return -1;
    }
    return 0;
}

static int save_sparse(virDomainPtr d, const char *path)
{
    virTypedParameterPtr p;
    int n, r = -1;
    if (save_params(path, 1, &p, &n) == 0) {
        r = virDomainSaveParams(d, p, n, VIR_DOMAIN_SAVE_BYPASS_CACHE);
        virTypedParamsFree(p, n);
    }
    return r;
}

static int restore_sparse(virConnectPtr c, const char *path, unsigned flags)
{
    virTypedParameterPtr p;
    int n, r = -1;
    if (save_params(path, 0, &p, &n) == 0) {
        r = virDomainRestoreParams(c, p, n, flags | VIR_DOMAIN_SAVE_BYPASS_CACHE);
        virTypedParamsFree(p, n);
    }
    return r;
}
#endif

static int save_bypass(virDomainPtr d, const char *path)
{
    return virDomainSaveFlags(d, path, NULL, VIR_DOMAIN_SAVE_BYPASS_CACHE);
}

static int save_plain(virDomainPtr d, const char *path)
{
    return virDomainSaveFlags(d, path, NULL, 0);
}

static int restore_plain(virConnectPtr c, const char *path, unsigned flags)
{
    return virDomainRestoreFlags(c, path, NULL, flags);
}

/* The forms, fastest first; `direct`: needs O_DIRECT in the directory.
 * A raw image is read through the page cache whichever way it was
 * written: read cold, that is as fast as with bypass or faster (make
 * bench, Debian 12: 508 against 481 MiB/s at 4 GiB). */
typedef struct save_form {
    int direct, sparse;
    int (*save)(virDomainPtr d, const char *path);
    int (*restore)(virConnectPtr c, const char *path, unsigned flags);   /* NULL: as the next */
} save_form;

static const save_form save_forms[] = {
#if LIBVIR_CHECK_VERSION(11, 2, 0)
    { 1, 1, save_sparse, restore_sparse },
#endif
    { 1, 0, save_bypass, NULL },
    { 0, 0, save_plain, restore_plain },
};

#define SAVE_FORMS ((int)(sizeof(save_forms) / sizeof(save_forms[0])))
#define SPARSE_FORMAT 6   /* libvirt's QEMU_SAVE_FORMAT_SPARSE */

/* Whether `path` is a sparse (mapped-ram) image: libvirt's header is the
 * magic "LibvirtQemudSave", then uint32 version, data_len, was_running and
 * format, in the host's byte order. Such an image is read the way it was
 * written, with bypass: QEMU 10.0 crashes on mixing the two. */
static int image_sparse(const char *path)
{
    unsigned char h[32];
    uint32_t format = 0;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = pread(fd, h, sizeof(h), 0);
    if (close(fd) < 0 || n != (ssize_t)sizeof(h) || memcmp(h, "LibvirtQemudSave", 16) != 0)
        return 0;
    memcpy(&format, h + 28, sizeof(format));
    return format == SPARSE_FORMAT;
}

const char *vd_hv_save_form(const char *dir)
{
    if (!dir_direct_io(dir, (int)strlen(dir)))
        return "raw, through the page cache (the directory does not take O_DIRECT: about a "
               "third of the speed)";
#if LIBVIR_CHECK_VERSION(11, 2, 0)
    return "sparse (mapped-ram), 4 parallel channels, bypassing the page cache, where QEMU "
           "has mapped-ram (>= 9)";
#else
    return "raw, bypassing the page cache (libvirt < 11.2 has no faster form)";
#endif
}

/* call(d, arg) on `dom` under a watchdog for timeout_ms: 0, -1 when
 * libvirt failed (err says how, *code its error code; `what` names the
 * call), or 1 when the watchdog acted (the caller says what that means). */
static int dom_call_within(vd_hv *hv, const char *dom, int timeout_ms, guard_act act,
                           int (*call)(virDomainPtr, const char *), const char *arg,
                           const char *what, int *code, vd_err *err)
{
    virDomainPtr d = dom_get(hv, dom, err);
    guard *g;
    *code = 0;
    if (!d)
        return -1;
    if (guard_start(&g, hv, dom, timeout_ms, act, err) < 0) {
        virDomainFree(d);
        return -1;
    }
    int rc = 0;
    if (call(d, arg) < 0) {
        *code = lv_code();
        rc = vd_err_set(err, "VM %s: cannot %s: %s", dom, what, lv_msg());
    }
    if (guard_stop(g))
        rc = 1;
    virDomainFree(d);
    return rc;
}

/* What is left of timeout_ms since `start`: 0 for no deadline, -1 when
 * it has passed. */
static int ms_left(int timeout_ms, long long start)
{
    if (timeout_ms <= 0)
        return 0;
    long long left = start + timeout_ms - now_ms();
    return left > 0 ? (int)left : -1;
}

int vd_hv_dom_start(vd_hv *hv, const char *name, int timeout_ms, vd_err *err)
{
    int code;
    int rc = dom_call_within(hv, name, timeout_ms, GUARD_DESTROY, call_create, NULL, "start", &code, err);
    if (rc > 0)
        return vd_err_set(err, "VM %s: not started within %d s (timeout_restore): stopped again; "
                          "its disk is as it was", name, timeout_ms / 1000);
    return rc;
}

const char *vd_dom_state_name(vd_dom_state state)
{
    switch (state) {
    case VD_DOM_MISSING: return "missing";
    case VD_DOM_RUNNING: return "running";
    case VD_DOM_PAUSED: return "paused";
    case VD_DOM_SHUTOFF: return "shutoff";
    case VD_DOM_PMSUSPENDED: return "pmsuspended";
    case VD_DOM_CRASHED: return "crashed";
    case VD_DOM_OTHER: return "other";
    }
    return "invalid";
}

static vd_dom_state state_from_libvirt(int s)
{
    switch (s) {
    case VIR_DOMAIN_RUNNING: return VD_DOM_RUNNING;
    case VIR_DOMAIN_BLOCKED: return VD_DOM_RUNNING;   /* running, waiting on a resource */
    case VIR_DOMAIN_PAUSED: return VD_DOM_PAUSED;
    case VIR_DOMAIN_SHUTDOWN: return VD_DOM_RUNNING;  /* still running; busy (dom_busy) */
    case VIR_DOMAIN_SHUTOFF: return VD_DOM_SHUTOFF;
    case VIR_DOMAIN_PMSUSPENDED: return VD_DOM_PMSUSPENDED;
    case VIR_DOMAIN_CRASHED: return VD_DOM_CRASHED;
    default: return VD_DOM_OTHER;
    }
}

int vd_hv_dom_state(vd_hv *hv, const char *name, vd_dom_state *state, vd_err *err)
{
    vd_dom_info info;
    if (vd_hv_dom_info(hv, name, &info, err) < 0)
        return -1;
    *state = info.state;
    return 0;
}

/* What a domain in state s/reason is passing through, or NULL. Starting
 * up and shutting down always pass; the others (paused for a save, a
 * migration, ...) only while a libvirt job runs: a restore leaves the VM
 * "paused (migration)" for good when asked to restore it paused. */
static const char *passing_state(int s, int reason, int *always)
{
    *always = 1;
    if (s == VIR_DOMAIN_SHUTDOWN)
        return "shutting down";
    if (s == VIR_DOMAIN_NOSTATE)
        return "in no state yet";
    if (s != VIR_DOMAIN_PAUSED)
        return NULL;
    switch (reason) {
    case VIR_DOMAIN_PAUSED_SHUTTING_DOWN: return "paused (shutting down)";
    case VIR_DOMAIN_PAUSED_STARTING_UP: return "paused (starting up)";
    default: break;
    }
    *always = 0;
    switch (reason) {
    case VIR_DOMAIN_PAUSED_MIGRATION: return "paused (migrating)";
    case VIR_DOMAIN_PAUSED_SAVE: return "paused (saving)";
    case VIR_DOMAIN_PAUSED_DUMP: return "paused (dumping)";
    case VIR_DOMAIN_PAUSED_SNAPSHOT: return "paused (snapshot)";
    case VIR_DOMAIN_PAUSED_POSTCOPY: return "paused (post-copy migration)";
    default: return NULL;
    }
}

/* Whether a libvirt job runs on d: 1, 0, or -1 when the daemon does not
 * say (the test driver has no job information; the target of a migration
 * gives none for the incoming one). */
static int job_active(virDomainPtr d)
{
    virDomainJobInfo info;
    if (virDomainGetJobInfo(d, &info) < 0) {
        virResetLastError();
        return -1;
    }
    return info.type != VIR_DOMAIN_JOB_NONE;
}

int vd_hv_dom_info(vd_hv *hv, const char *name, vd_dom_info *info, vd_err *err)
{
    memset(info, 0, sizeof(*info));
    virDomainPtr d = virDomainLookupByName(hv->conn, name);
    if (!d) {
        virErrorPtr e = virGetLastError();
        if (e && e->code == VIR_ERR_NO_DOMAIN) {
            info->state = VD_DOM_MISSING;
            snprintf(info->what, sizeof(info->what), "missing");
            return 0;
        }
        return vd_err_set(err, "VM %s: cannot look up on %s: %s", name, hv->uri, lv_msg());
    }
    int s, reason, rc = 0;
    int got = virDomainGetState(d, &s, &reason, 0);
    if (got < 0 && lv_code() == VIR_ERR_NO_DOMAIN) {
        /* gone between the lookup and now: a migration out that ended */
        info->state = VD_DOM_MISSING;
        snprintf(info->what, sizeof(info->what), "missing");
    } else if (got < 0) {
        rc = vd_err_set(err, "VM %s: cannot read state: %s", name, lv_msg());
    } else {
        int always;
        const char *passing = passing_state(s, reason, &always);
        int job = s != VIR_DOMAIN_SHUTOFF ? job_active(d) : 0;
        /* A migration arriving here: paused for it, and no job shown. */
        if (job < 0)
            job = s == VIR_DOMAIN_PAUSED && reason == VIR_DOMAIN_PAUSED_MIGRATION;
        info->state = state_from_libvirt(s);
        info->reason = reason;
        info->restored = s == VIR_DOMAIN_RUNNING && reason == VIR_DOMAIN_RUNNING_RESTORED;
        info->save_canceled = s == VIR_DOMAIN_RUNNING && reason == VIR_DOMAIN_RUNNING_SAVE_CANCELED;
        info->busy = (passing && always) || job;
        if (passing && (always || job))
            snprintf(info->what, sizeof(info->what), "%s", passing);
        else
            snprintf(info->what, sizeof(info->what), "%s%s", vd_dom_state_name(info->state),
                     job ? " (libvirt job running)" : "");
    }
    virDomainFree(d);
    return rc;
}

int vd_hv_alive(vd_hv *hv)
{
    return virConnectIsAlive(hv->conn) == 1;
}

int vd_hv_dom_shutdown(vd_hv *hv, const char *name, int timeout_ms, vd_err *err)
{
    virDomainPtr d = dom_get(hv, name, err);
    if (!d)
        return -1;
    int rc = 0, s = VIR_DOMAIN_RUNNING, reason;
    vd_hv_caps caps;
    /* The method that works on this driver (vd_hv_caps): QEMU's default
     * (the ACPI power button, or the guest agent if the VM has one); LXC's
     * default returns 0 and does nothing, its signal works. */
    if (vd_hv_caps_get(hv, &caps, err) < 0)
        rc = -1;
    else if (virDomainShutdownFlags(d, caps.shutdown_flags) < 0)
        rc = vd_err_set(err, "VM %s: cannot ask the guest to shut down (%s): %s", name,
                        caps.shutdown_how, lv_msg());
    long long deadline = now_ms() + timeout_ms;
    while (rc == 0 && s != VIR_DOMAIN_SHUTOFF) {
        if (virDomainGetState(d, &s, &reason, 0) < 0)
            rc = vd_err_set(err, "VM %s: cannot read state: %s", name, lv_msg());
        else if (s != VIR_DOMAIN_SHUTOFF && now_ms() >= deadline)
            rc = vd_err_set(err, "VM %s: still running %d ms after %s (the guest ignores it or "
                            "is busy)", name, timeout_ms, caps.shutdown_how);
        else if (s != VIR_DOMAIN_SHUTOFF)
            nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000000 }, NULL);
    }
    virDomainFree(d);
    return rc;
}

int vd_hv_dom_purge(vd_hv *hv, const char *name, vd_err *err)
{
    virDomainPtr d = dom_get(hv, name, err);
    if (!d)
        return -1;
    int s, reason, rc = 0;
    if (virDomainGetState(d, &s, &reason, 0) == 0 && s != VIR_DOMAIN_SHUTOFF &&
        virDomainDestroy(d) < 0)
        rc = vd_err_set(err, "VM %s: cannot destroy: %s", name, lv_msg());
    if (rc == 0 && virDomainHasManagedSaveImage(d, 0) == 1 &&
        virDomainManagedSaveRemove(d, 0) < 0)
        rc = vd_err_set(err, "VM %s: cannot remove its managed save: %s", name, lv_msg());
    /* Drivers without managed save or snapshots (LXC) refuse the flags
     * that remove them: there is nothing of either to remove there. */
    if (rc == 0 && virDomainIsPersistent(d) == 1 &&
        virDomainUndefineFlags(d, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                                  VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA) < 0 &&
        (lv_code() != VIR_ERR_INVALID_ARG || virDomainUndefineFlags(d, 0) < 0))
        rc = vd_err_set(err, "VM %s: cannot undefine: %s", name, lv_msg());
    virDomainFree(d);
    return rc;
}

int vd_hv_dom_list(vd_hv *hv, char ***names, int *count, vd_err *err)
{
    virDomainPtr *doms = NULL;
    int n = virConnectListAllDomains(hv->conn, &doms, 0);
    if (n < 0)
        return vd_err_set(err, "libvirt %s: cannot list domains: %s", hv->uri, lv_msg());
    char **out = calloc((size_t)n + 1, sizeof(*out));
    int rc = out ? 0 : vd_err_set(err, "out of memory listing domains");
    for (int i = 0; i < n; i++) {
        if (rc == 0 && !(out[i] = strdup(virDomainGetName(doms[i]))))
            rc = vd_err_set(err, "out of memory listing domains");
        virDomainFree(doms[i]);
    }
    free(doms);
    if (rc < 0) {
        vd_hv_names_free(out, n);
        return -1;
    }
    *names = out;
    *count = n;
    return 0;
}

void vd_hv_names_free(char **names, int count)
{
    if (!names)
        return;
    for (int i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

/* User aliases are "ua-" plus letters, digits, '-' and '_' (libvirt's own
 * rule); checking that also keeps the XPath below free of quoting. */
static int alias_check(const char *alias, vd_err *err)
{
    if (strncmp(alias, "ua-", 3) != 0 || !alias[3])
        return vd_err_set(err, "device alias '%s': must start with 'ua-' (a libvirt user alias)", alias);
    for (const char *p = alias; *p; p++)
        if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') ||
              ('0' <= *p && *p <= '9') || *p == '-' || *p == '_'))
            return vd_err_set(err, "device alias '%s': only letters, digits, '-' and '_' are allowed", alias);
    return 0;
}

/* One XPath query on a domain XML document: parse, evaluate, free. */
typedef struct xml_query {
    xmlDocPtr doc;
    xmlXPathContextPtr ctx;
    xmlXPathObjectPtr res;
} xml_query;

static void xq_close(xml_query *q)
{
    xmlXPathFreeObject(q->res);
    xmlXPathFreeContext(q->ctx);
    xmlFreeDoc(q->doc);
}

static int xq_open(xml_query *q, const char *xml, const char *expr, vd_err *err)
{
    memset(q, 0, sizeof(*q));
    q->doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
                           XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!q->doc)
        return vd_err_set(err, "libvirt returned domain XML that does not parse");
    q->ctx = xmlXPathNewContext(q->doc);
    q->res = q->ctx ? xmlXPathEvalExpression(BAD_CAST expr, q->ctx) : NULL;
    if (!q->res) {
        xq_close(q);
        return vd_err_set(err, "cannot evaluate %s on the domain XML", expr);
    }
    return 0;
}

static int xq_count(const xml_query *q)
{
    return q->res->nodesetval ? q->res->nodesetval->nodeNr : 0;
}

/* --- what the driver can do (hv.h, vd_hv_caps) ----------------------------
 *
 * One row per libvirt driver, from libvirt's API support matrix
 * (libvirt.org/hvsupport.html) and its driver pages, and tried here for
 * QEMU, LXC and the test driver (docs/design.md, "Hypervisors"). */
static const struct driver_row {
    const char *type, *also;   /* virConnectGetType's answers for it */
    const char *driver;        /* libvirt's name for it, for messages */
    unsigned can;
    unsigned shutdown_flags;
    const char *shutdown_how;
} drivers[] = {
    { "QEMU", NULL, "qemu", VD_CAN_ALL, 0, "the ACPI power button (or the guest agent)" },
    /* A container is paused by the freezer cgroup. It has no memory image
     * to save or send, no PCI passthrough, a directory for a disk and no
     * vCPUs to pin. Its default shutdown method (/run/initctl) does nothing
     * without a SysV init: SIGTERM to its init does, if the init traps it
     * (an init in a PID namespace ignores signals it has no handler for). */
    { "LXC", NULL, "lxc", VD_CAN_SUSPEND | VD_CAN_SHUTDOWN, VIR_DOMAIN_SHUTDOWN_SIGNAL,
      "SIGTERM to the container's init" },
    /* Xen through libxl: save, managed save, migration (v3, peer to peer),
     * device attach/detach; no snapshots or block jobs, and vCPU pinning
     * only (QEMU's device model runs in dom0: no emulator threads here). */
    { "Xen", "xenlight", "libxl", VD_CAN_ALL & ~(VD_CAN_SNAPSHOT | VD_CAN_PIN), 0,
      "the guest's shutdown request (PV control or ACPI)" },
    /* libvirt's in-process test driver: states, save and managed save, but
     * no migration, no device hotplug, no disk snapshots. */
    { "TEST", NULL, "test", VD_CAN_ALL & ~(VD_CAN_MIGRATE | VD_CAN_HOTPLUG | VD_CAN_SNAPSHOT), 0,
      "a shutdown request" },
};

/* A driver vdesk does not know: it tries every mode, and libvirt's own
 * refusals move the chain on. */
static const struct driver_row unknown_driver = {
    "", NULL, "unknown", VD_CAN_ALL, 0, "libvirt's default shutdown method"
};

static const struct can_word {
    unsigned can;
    const char *name, *lack;
} can_words[] = {
    { VD_CAN_SUSPEND, "suspend", "it cannot pause a running domain" },
    { VD_CAN_SAVE, "save", "no save and restore of a domain's memory" },
    { VD_CAN_MANAGED_SAVE, "managed-save", "no managed save" },
    { VD_CAN_MIGRATE, "migrate", "no live migration" },
    { VD_CAN_HOTPLUG, "hotplug", "no hot-unplug of devices" },
    { VD_CAN_SNAPSHOT, "snapshot", "no external disk snapshots" },
    { VD_CAN_SHUTDOWN, "shutdown", "no clean shutdown" },
    { VD_CAN_PIN, "pin", "no pinning of a running domain to host CPUs" },
};
#define CAN_WORDS (sizeof(can_words) / sizeof(can_words[0]))

static const struct can_word *can_word(unsigned can)
{
    for (size_t i = 0; i < CAN_WORDS; i++)
        if (can_words[i].can == can)
            return &can_words[i];
    return NULL;
}

const char *vd_hv_can_name(unsigned can)
{
    const struct can_word *w = can_word(can);
    return w ? w->name : "?";
}

void vd_hv_caps_for_type(const char *type, vd_hv_caps *caps)
{
    const struct driver_row *r = &unknown_driver;
    for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++)
        if (!strcasecmp(type, drivers[i].type) || (drivers[i].also && !strcasecmp(type, drivers[i].also)))
            r = &drivers[i];
    memset(caps, 0, sizeof(*caps));
    snprintf(caps->type, sizeof(caps->type), "%s", type);
    caps->driver = r->driver;
    caps->can = r->can;
    caps->shutdown_flags = r->shutdown_flags;
    caps->shutdown_how = r->shutdown_how;
}

int vd_hv_caps_need(const vd_hv_caps *caps, unsigned need, const char *what, vd_err *err)
{
    for (size_t i = 0; i < CAN_WORDS; i++)
        if ((need & can_words[i].can) && !(caps->can & can_words[i].can))
            return vd_err_set(err, "%s: not supported by libvirt's %s driver (%s)", what, caps->driver,
                              can_words[i].lack);
    return 0;
}

/* Test hook (docs/design.md): VDESK_TEST_DRIVER_LACKS="save,migrate"
 * takes those capabilities away, so that the refusals run on the test
 * driver; an unknown name is ignored. */
static void caps_test_lacks(vd_hv_caps *caps)
{
    const char *lacks = getenv("VDESK_TEST_DRIVER_LACKS");
    for (const char *s = lacks; s && *s;) {
        size_t len = strcspn(s, ",");
        for (size_t i = 0; i < CAN_WORDS; i++)
            if (strlen(can_words[i].name) == len && !strncmp(s, can_words[i].name, len))
                caps->can &= ~can_words[i].can;
        s += len + (s[len] == ',');
    }
}

/* Whether the daemon advertises migration (<migration_features> in its
 * capabilities: libvirt leaves it out where the driver, or the build of
 * its hypervisor, cannot migrate). 1 yes, 0 no, -1 it does not say. */
static int caps_advertise_migration(vd_hv *hv)
{
    char *xml = virConnectGetCapabilities(hv->conn);
    xml_query q;
    vd_err why;
    if (!xml) {
        virResetLastError();
        return -1;
    }
    int rc = xq_open(&q, xml, "/capabilities/host/migration_features", &why);
    free(xml);
    if (rc < 0)
        return -1;
    rc = xq_count(&q) > 0;
    xq_close(&q);
    return rc;
}

int vd_hv_caps_get(vd_hv *hv, vd_hv_caps *caps, vd_err *err)
{
    if (!hv->caps_known) {
        const char *type = virConnectGetType(hv->conn);
        if (!type)
            return vd_err_set(err, "libvirt %s: cannot tell which driver it is: %s", hv->uri, lv_msg());
        vd_hv_caps_for_type(type, &hv->caps);
        /* The table says what the driver can do at best; a daemon that
         * does not say (an error) keeps the table's word. */
        if ((hv->caps.can & VD_CAN_MIGRATE) && caps_advertise_migration(hv) == 0)
            hv->caps.can &= ~VD_CAN_MIGRATE;
        caps_test_lacks(&hv->caps);
        hv->caps_known = 1;
    }
    *caps = hv->caps;
    return 0;
}

int vd_hv_pci_backends(vd_hv *hv, char *buf, size_t size, vd_err *err)
{
    buf[0] = '\0';
    char *xml = virConnectGetDomainCapabilities(hv->conn, NULL, NULL, NULL, NULL, 0);
    if (!xml)
        return vd_err_set(err, "libvirt %s: no domain capabilities: %s", hv->uri, lv_msg());
    xml_query q;
    int rc = xq_open(&q, xml, "/domainCapabilities/devices/hostdev[@supported='yes']"
                              "/enum[@name='pciBackend']/value", err);
    free(xml);
    if (rc < 0)
        return -1;
    for (int i = 0; i < xq_count(&q); i++) {
        xmlChar *v = xmlNodeGetContent(q.res->nodesetval->nodeTab[i]);
        size_t len = strlen(buf);
        if (v)
            snprintf(buf + len, size - len, "%s%s", len ? "," : "", (const char *)v);
        xmlFree(v);
    }
    xq_close(&q);
    return 0;
}

/* Finds the device with `alias` in `dom_xml`; *xml is NULL if it is absent. */
static int xml_find_device(const char *dom_xml, const char *alias, char **xml, vd_err *err)
{
    char expr[256];
    xml_query q;
    *xml = NULL;
    snprintf(expr, sizeof(expr), "/domain/devices/*[alias/@name='%s']", alias);
    if (xq_open(&q, dom_xml, expr, err) < 0)
        return -1;
    int rc = 0;
    if (xq_count(&q) > 0) {
        xmlBufferPtr buf = xmlBufferCreate();
        if (!buf || xmlNodeDump(buf, q.doc, q.res->nodesetval->nodeTab[0], 0, 0) < 0 ||
            !(*xml = strdup((const char *)xmlBufferContent(buf))))
            rc = vd_err_set(err, "cannot serialise device %s", alias);
        xmlBufferFree(buf);
    }
    xq_close(&q);
    return rc;
}

static int live_device(vd_hv *hv, const char *dom, const char *alias, char **xml, vd_err *err)
{
    if (alias_check(alias, err) < 0)
        return -1;
    virDomainPtr d = dom_get(hv, dom, err);
    if (!d)
        return -1;
    char *dom_xml = virDomainGetXMLDesc(d, 0);
    virDomainFree(d);
    if (!dom_xml)
        return vd_err_set(err, "VM %s: cannot read its live XML: %s", dom, lv_msg());
    int rc = xml_find_device(dom_xml, alias, xml, err);
    free(dom_xml);
    if (rc < 0)
        return vd_err_prefix(err, "VM %s", dom);
    return 0;
}

int vd_hv_dev_present(vd_hv *hv, const char *dom, const char *alias, int *present, vd_err *err)
{
    char *xml = NULL;
    if (live_device(hv, dom, alias, &xml, err) < 0)
        return -1;
    *present = xml != NULL;
    free(xml);
    return 0;
}

int vd_hv_dev_xml(vd_hv *hv, const char *dom, const char *alias, char **xml, vd_err *err)
{
    if (live_device(hv, dom, alias, xml, err) < 0)
        return -1;
    if (!*xml)
        return vd_err_set(err, "VM %s: no device with alias %s in its live XML", dom, alias);
    return 0;
}

struct removal {
    const char *alias;
    int removed;
};

static void on_device_removed(virConnectPtr conn, virDomainPtr d, const char *alias, void *opaque)
{
    (void)conn;
    (void)d;
    struct removal *r = opaque;
    if (strcmp(alias, r->alias) == 0)
        r->removed = 1;
}

/* A periodic timer so that virEventRunDefaultImpl returns often enough for
 * the deadline to be checked even when no event arrives. */
static void on_tick(int timer, void *opaque)
{
    (void)timer;
    (void)opaque;
}


static int wait_removed(vd_hv *hv, const char *dom, const char *alias, struct removal *r,
                        int timeout_ms, vd_err *err)
{
    int tick = virEventAddTimeout(50, on_tick, NULL, NULL);
    if (tick < 0)
        return vd_err_set(err, "libvirt: cannot add an event-loop timer: %s", lv_msg());
    long long deadline = now_ms() + timeout_ms;
    int rc = 0, present = 1;
    while (!r->removed && rc == 0) {
        if (virEventRunDefaultImpl() < 0)
            rc = vd_err_set(err, "libvirt: event loop failed: %s", lv_msg());
        else if (!vd_hv_alive(hv))
            rc = vd_err_set(err, "VM %s: the connection to %s closed while waiting for device %s "
                            "to be released (the libvirt daemon stopped?)", dom, hv->uri, alias);
        else if (now_ms() >= deadline)
            break;
    }
    virEventRemoveTimeout(tick);
    if (rc < 0 || r->removed)
        return rc;
    /* No event in time: the live XML is the other proof the reference allows. */
    if (vd_hv_dev_present(hv, dom, alias, &present, err) < 0)
        return -1;
    if (present)
        return vd_err_set(err, "VM %s: device %s was not released by the guest within %d ms "
                          "(the guest may be using it; stop what uses it in the guest, or "
                          "let the policy fall back to another mode)", dom, alias, timeout_ms);
    return 0;
}

int vd_hv_dev_detach(vd_hv *hv, const char *dom, const char *alias, int timeout_ms,
                     int *by_event, vd_err *err)
{
    if (alias_check(alias, err) < 0)
        return -1;
    virDomainPtr d = dom_get(hv, dom, err);
    if (!d)
        return -1;
    struct removal r = { .alias = alias, .removed = 0 };
    int cb = virConnectDomainEventRegisterAny(hv->conn, d, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
                                              VIR_DOMAIN_EVENT_CALLBACK(on_device_removed), &r, NULL);
    int rc = 0;
    if (cb < 0)
        rc = vd_err_set(err, "VM %s: cannot watch for device removal: %s", dom, lv_msg());
    else if (virDomainDetachDeviceAlias(d, alias, VIR_DOMAIN_AFFECT_LIVE) < 0)
        rc = vd_err_set(err, "VM %s: cannot unplug device %s: %s", dom, alias, lv_msg());
    else
        rc = wait_removed(hv, dom, alias, &r, timeout_ms, err);
    if (cb >= 0)
        virConnectDomainEventDeregisterAny(hv->conn, cb);
    virDomainFree(d);
    if (rc == 0 && by_event)
        *by_event = r.removed;
    return rc;
}

int vd_hv_dev_wait_gone(vd_hv *hv, const char *dom, const char *alias, int timeout_ms,
                        int *present, vd_err *err)
{
    if (vd_hv_dev_present(hv, dom, alias, present, err) < 0 || !*present)
        return *present ? -1 : 0;
    virDomainPtr d = dom_get(hv, dom, err);
    if (!d)
        return -1;
    struct removal r = { .alias = alias, .removed = 0 };
    int cb = virConnectDomainEventRegisterAny(hv->conn, d, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
                                              VIR_DOMAIN_EVENT_CALLBACK(on_device_removed), &r, NULL);
    virDomainFree(d);
    if (cb < 0)
        return vd_err_set(err, "VM %s: cannot watch for device removal: %s", dom, lv_msg());
    vd_err why;
    int rc = wait_removed(hv, dom, alias, &r, timeout_ms, &why);
    virConnectDomainEventDeregisterAny(hv->conn, cb);
    if (rc < 0 && !vd_hv_alive(hv))
        return vd_err_set(err, "%s", why.msg);
    /* Still there after the wait: no removal was pending, or the guest keeps it. */
    *present = rc < 0;
    return 0;
}

int vd_hv_dev_xml_inactive(vd_hv *hv, const char *dom, const char *alias, char **xml, vd_err *err)
{
    if (alias_check(alias, err) < 0)
        return -1;
    char *dom_xml_text = NULL;
    if (vd_hv_dom_xml(hv, dom, 1, &dom_xml_text, err) < 0)
        return -1;
    int rc = xml_find_device(dom_xml_text, alias, xml, err);
    free(dom_xml_text);
    if (rc == 0 && !*xml)
        rc = vd_err_set(err, "VM %s: no device with alias %s in its definition", dom, alias);
    return rc;
}

int vd_hv_dev_defined(vd_hv *hv, const char *dom, const char *alias, int *defined, vd_err *err)
{
    if (alias_check(alias, err) < 0)
        return -1;
    char *dom_xml_text = NULL, *dev = NULL;
    if (vd_hv_dom_xml(hv, dom, 1, &dom_xml_text, err) < 0)
        return -1;
    int rc = xml_find_device(dom_xml_text, alias, &dev, err);
    free(dom_xml_text);
    *defined = dev != NULL;
    free(dev);
    return rc;
}

/* An attribute of node `n`, copied into buf ("" when absent). */
static void xml_attr_copy(xmlNodePtr n, const char *name, char *buf, size_t size)
{
    xmlChar *v = xmlGetProp(n, BAD_CAST name);
    snprintf(buf, size, "%s", v ? (const char *)v : "");
    xmlFree(v);
}

int vd_hv_dom_display(vd_hv *hv, const char *dom, vd_display *d, vd_err *err)
{
    char *text = NULL, port[16];
    xml_query q;
    memset(d, 0, sizeof(*d));
    d->port = -1;
    if (vd_hv_dom_xml(hv, dom, 0, &text, err) < 0)
        return -1;
    int rc = xq_open(&q, text, "/domain/devices/graphics[@type='spice' or @type='vnc']", err);
    free(text);
    if (rc < 0)
        return -1;
    if (xq_count(&q) > 0) {
        xmlNodePtr g = q.res->nodesetval->nodeTab[0];
        char *end;
        xml_attr_copy(g, "type", d->type, sizeof(d->type));
        xml_attr_copy(g, "port", port, sizeof(port));
        xml_attr_copy(g, "listen", d->listen, sizeof(d->listen));
        long v = strtol(port, &end, 10);
        d->port = port[0] && !*end && v > 0 && v < 65536 ? (int)v : -1;
    }
    xq_close(&q);
    return 0;
}

/* An attribute of the query's first node as a number ("0x01" or "1"). */
static long xq_attr_num(const xml_query *q, const char *name)
{
    xmlChar *v = xmlGetProp(q->res->nodesetval->nodeTab[0], BAD_CAST name);
    char *end = NULL;
    long n = v ? strtol((const char *)v, &end, 0) : -1;
    if (!v || end == (char *)v || *end)
        n = -1;
    xmlFree(v);
    return n;
}

int vd_hv_hostdev_pci(const char *dev_xml, char *bdf, size_t size, vd_err *err)
{
    xml_query q;
    bdf[0] = '\0';
    if (xq_open(&q, dev_xml, "/hostdev[@type='pci']/source/address", err) < 0)
        return -1;
    if (xq_count(&q) > 0) {
        long dom = xq_attr_num(&q, "domain"), bus = xq_attr_num(&q, "bus");
        long slot = xq_attr_num(&q, "slot"), fn = xq_attr_num(&q, "function");
        if (dom < 0 || bus < 0 || slot < 0 || fn < 0 || dom > 0xffff || bus > 0xff || slot > 0x1f ||
            fn > 7) {
            xq_close(&q);
            return vd_err_set(err, "a <hostdev> source address that is not a PCI address");
        }
        snprintf(bdf, size, "%04lx:%02lx:%02lx.%lx", dom, bus, slot, fn);
    }
    xq_close(&q);
    return 0;
}

/* Attaches device `alias` (xml) as flags say, then checks that it is
 * where they put it (the live XML, the definition): libvirt may return
 * before QEMU has it, or accept one QEMU then drops. `what` names the call
 * in errors ("plug device X back in"). */
static int dev_attach(vd_hv *hv, const char *dom, const char *alias, const char *xml, unsigned flags,
                      const char *what, vd_err *err)
{
    if (alias_check(alias, err) < 0)
        return -1;
    virDomainPtr d = dom_get(hv, dom, err);
    if (!d)
        return -1;
    int rc = virDomainAttachDeviceFlags(d, xml, flags) < 0
             ? vd_err_set(err, "VM %s: cannot %s: %s", dom, what, lv_msg()) : 0;
    virDomainFree(d);
    int present = 1, defined = 1;
    if (rc == 0 && (((flags & VIR_DOMAIN_AFFECT_LIVE) && vd_hv_dev_present(hv, dom, alias, &present, err) < 0) ||
                    ((flags & VIR_DOMAIN_AFFECT_CONFIG) && vd_hv_dev_defined(hv, dom, alias, &defined, err) < 0)))
        return -1;
    if (rc == 0 && (!present || !defined))
        return vd_err_set(err, "VM %s: could %s, but the device is not in its %s", dom, what,
                          present ? "definition" : "live XML");
    return rc;
}

int vd_hv_dev_attach(vd_hv *hv, const char *dom, const char *alias, const char *xml,
                     vd_err *err)
{
    char what[160];
    snprintf(what, sizeof(what), "plug device %s back in", alias);
    return dev_attach(hv, dom, alias, xml, VIR_DOMAIN_AFFECT_LIVE, what, err);
}

int vd_hv_dev_add(vd_hv *hv, const char *dom, const char *alias, const char *xml, int live,
                  vd_err *err)
{
    char what[160];
    snprintf(what, sizeof(what), "add device %s%s", alias,
             live ? " (live and to its definition)" : " to its definition");
    return dev_attach(hv, dom, alias, xml, VIR_DOMAIN_AFFECT_CONFIG | (live ? VIR_DOMAIN_AFFECT_LIVE : 0),
                      what, err);
}

int vd_hv_dev_undefine(vd_hv *hv, const char *dom, const char *alias, vd_err *err)
{
    if (alias_check(alias, err) < 0)
        return -1;
    virDomainPtr d = dom_get(hv, dom, err);
    if (!d)
        return -1;
    int rc = 0;
    if (virDomainDetachDeviceAlias(d, alias, VIR_DOMAIN_AFFECT_CONFIG) < 0)
        rc = vd_err_set(err, "VM %s: cannot remove device %s from its definition: %s", dom, alias, lv_msg());
    virDomainFree(d);
    return rc;
}

/* --- what the engine does to a desktop VM ------------------------------ */

/* Runs one libvirt call on a looked-up domain; `what` names it in errors. */
#define DOM_CALL(hv, name, err, what, call)                                      \
    do {                                                                         \
        virDomainPtr d = dom_get(hv, name, err);                                 \
        if (!d)                                                                  \
            return -1;                                                           \
        int rc_ = (call) < 0 ? vd_err_set(err, "VM %s: cannot %s: %s", name, what, lv_msg()) : 0; \
        virDomainFree(d);                                                        \
        return rc_;                                                              \
    } while (0)

int vd_hv_dom_suspend(vd_hv *hv, const char *dom, vd_err *err)
{
    DOM_CALL(hv, dom, err, "pause it", virDomainSuspend(d));
}

int vd_hv_dom_resume(vd_hv *hv, const char *dom, vd_err *err)
{
    DOM_CALL(hv, dom, err, "resume it", virDomainResume(d));
}

int vd_hv_dom_wakeup(vd_hv *hv, const char *dom, vd_err *err)
{
    DOM_CALL(hv, dom, err, "wake it up", virDomainPMWakeup(d, 0));
}

int vd_hv_dom_destroy(vd_hv *hv, const char *dom, vd_err *err)
{
    DOM_CALL(hv, dom, err, "stop it", virDomainDestroy(d));
}

/* Each form is tried under a watchdog of its own, for what is left of
 * the deadline, and only while the ones before were refused outright. */
int vd_hv_dom_save(vd_hv *hv, const char *dom, const char *path, int timeout_ms, vd_err *err)
{
    int direct = dir_takes_direct_io(path), rc = -1, code = 0, left = 0, tried = 0;
    long long start = now_ms();
    for (int i = 0; i < SAVE_FORMS && (!tried || (rc < 0 && refusal(code))); i++) {
        if (save_forms[i].direct && !direct)
            continue;
        tried = 1;
        if ((left = ms_left(timeout_ms, start)) < 0) {
            rc = 1;
            break;
        }
        rc = dom_call_within(hv, dom, left, GUARD_ABORT_JOB, save_forms[i].save, path,
                             "save its memory to the save file", &code, err);
    }
    if (rc > 0)
        return vd_err_set(err, "VM %s: saving took over %d s (timeout_save): aborted, the VM runs "
                          "on; raise timeout_save if the disk is slow", dom, timeout_ms / 1000);
    return rc;
}

/* One restore of `path` in form f with `flags` under a watchdog for
 * left ms: as dom_call_within. */
static int restore_within(vd_hv *hv, const char *dom, const save_form *f, const char *path,
                          unsigned flags, int left, int *code, vd_err *err)
{
    guard *g;
    *code = 0;
    if (guard_start(&g, hv, dom, left, GUARD_DESTROY, err) < 0)
        return -1;
    int rc = 0;
    if (f->restore(hv->conn, path, flags) < 0) {
        *code = lv_code();
        rc = vd_err_set(err, "libvirt %s: cannot restore the VM from %s: %s", hv->uri, path, lv_msg());
    }
    return guard_stop(g) ? 1 : rc;
}

/* A sparse image in parallel with bypass, as it was written (QEMU 10.0
 * crashes on mixing the two), a raw one plainly. Paused first; a driver
 * that cannot (libvirt's test driver) refuses the flag, and the forms are
 * tried again without it. */
int vd_hv_dom_restore(vd_hv *hv, const char *dom, const char *path, int timeout_ms, vd_err *err)
{
    static const unsigned flags[] = { VIR_DOMAIN_SAVE_PAUSED, 0 };
    int sparse = image_sparse(path), rc = -1, code = 0, left = 0, tried = 0;
    long long start = now_ms();
    for (int k = 0; k < 2 && (k == 0 || (rc < 0 && refusal(code))); k++)
        for (int i = 0; i < SAVE_FORMS && (!tried || (rc < 0 && refusal(code))); i++) {
            const save_form *f = &save_forms[i];
            if (!f->restore || (f->sparse && !sparse))
                continue;
            tried = 1;
            if ((left = ms_left(timeout_ms, start)) < 0) {
                rc = 1;
                break;
            }
            rc = restore_within(hv, dom, f, path, flags[k], left, &code, err);
        }
    if (rc > 0)
        return vd_err_set(err, "VM %s: restoring took over %d s (timeout_restore): stopped; %s is kept",
                          dom, timeout_ms / 1000, path);
    return rc;
}

/* The XPath value `expr` (a string) in `xml`, or "" (caller frees). */
static int xml_eval(const char *xml, const char *expr, char **out, vd_err *err)
{
    xml_query q;
    if (xq_open(&q, xml, expr, err) < 0)
        return -1;
    xmlChar *str = xmlXPathCastToString(q.res);
    int rc = str && (*out = strdup((const char *)str)) ? 0 : vd_err_set(err, "cannot evaluate %s", expr);
    xmlFree(str);
    xq_close(&q);
    return rc;
}

static char *dom_xml(vd_hv *hv, const char *dom, unsigned flags, vd_err *err)
{
    virDomainPtr d = dom_get(hv, dom, err);
    if (!d)
        return NULL;
    char *xml = virDomainGetXMLDesc(d, flags);
    virDomainFree(d);
    if (!xml)
        vd_err_set(err, "VM %s: cannot read its XML: %s", dom, lv_msg());
    return xml;
}

int vd_hv_dom_xml(vd_hv *hv, const char *dom, int inactive, char **xml, vd_err *err)
{
    *xml = dom_xml(hv, dom, inactive ? VIR_DOMAIN_XML_INACTIVE : 0, err);
    return *xml ? 0 : -1;
}

#define FIRST_DISK "/domain/devices/disk[@device='disk'][1]"

int vd_hv_disk_snapshot(vd_hv *hv, const char *dom, const char *dir, const char *tag,
                        char *frozen, size_t frozen_size, vd_err *err)
{
    char *xml = dom_xml(hv, dom, 0, err);
    char *target = NULL, *source = NULL;
    if (!xml)
        return -1;
    int rc = xml_eval(xml, "string(" FIRST_DISK "/target/@dev)", &target, err);
    if (rc == 0)
        rc = xml_eval(xml, "string(" FIRST_DISK "/source/@file)", &source, err);
    free(xml);
    if (rc == 0 && (!*target || !*source))
        rc = vd_err_set(err, "VM %s: its first disk is not a file: vdesk snapshots file-backed disks only", dom);
    char snap[2048];
    if (rc == 0 && snprintf(snap, sizeof(snap),
                            "<domainsnapshot><name>vdesk-%s</name><disks>"
                            "<disk name='%s' snapshot='external'><driver type='qcow2'/>"
                            "<source file='%s/%s-%s.qcow2'/></disk></disks></domainsnapshot>",
                            tag, target, dir, dom, tag) >= (int)sizeof(snap))
        rc = vd_err_set(err, "VM %s: snapshot path too long", dom);
    if (rc == 0) {
        virDomainPtr d = dom_get(hv, dom, err);
        virDomainSnapshotPtr sp = d ? virDomainSnapshotCreateXML(d, snap,
            VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA |
            VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC) : NULL;
        if (d && !sp)
            rc = vd_err_set(err, "VM %s: cannot create the disk snapshot in %s: %s", dom, dir, lv_msg());
        else if (!d)
            rc = -1;
        if (sp)
            virDomainSnapshotFree(sp);
        if (d)
            virDomainFree(d);
    }
    if (rc == 0)
        snprintf(frozen, frozen_size, "%s", source);
    free(target);
    free(source);
    return rc;
}

/* Sets the first disk's source file in an inactive definition. */
static int xml_set_first_disk(const char *xml, const char *file, char **out, vd_err *err)
{
    xml_query q;
    if (xq_open(&q, xml, FIRST_DISK, err) < 0)
        return -1;
    int rc = -1;
    if (xq_count(&q) > 0) {
        xmlNodePtr disk = q.res->nodesetval->nodeTab[0];
        for (xmlNodePtr c = disk->children, next; c; c = next) {
            next = c->next;
            if (c->type != XML_ELEMENT_NODE)
                continue;
            if (!xmlStrcmp(c->name, BAD_CAST "source") && xmlSetProp(c, BAD_CAST "file", BAD_CAST file))
                rc = 0;
            /* libvirt finds the backing chain of the new source by itself. */
            if (!xmlStrcmp(c->name, BAD_CAST "backingStore")) {
                xmlUnlinkNode(c);
                xmlFreeNode(c);
            }
        }
    }
    xmlChar *buf = NULL;
    int len = 0;
    if (rc == 0) {
        xmlDocDumpMemory(q.doc, &buf, &len);
        if (!buf || !(*out = strdup((const char *)buf)))
            rc = -1;
    }
    if (rc < 0)
        vd_err_set(err, "cannot point the first disk at %s in the domain XML", file);
    xmlFree(buf);
    xq_close(&q);
    return rc;
}

int vd_hv_disk_revert(vd_hv *hv, const char *dom, const char *frozen, const char *dir,
                      const char *tag, vd_err *err)
{
    char *xml = dom_xml(hv, dom, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE, err);
    char *edited = NULL;
    if (!xml)
        return -1;
    int rc = xml_set_first_disk(xml, frozen, &edited, err);
    if (rc == 0) {
        virDomainPtr d = virDomainDefineXML(hv->conn, edited);
        if (!d)
            rc = vd_err_set(err, "VM %s: cannot redefine it on snapshot %s: %s", dom, frozen, lv_msg());
        else
            virDomainFree(d);
    }
    free(edited);
    char ignored[PATH_MAX];
    if (rc == 0 && vd_hv_disk_snapshot(hv, dom, dir, tag, ignored, sizeof(ignored), err) < 0) {
        /* Defined on the frozen layer itself, the next start would write
         * into it: the definition goes back to what it was. */
        virDomainPtr d = virDomainDefineXML(hv->conn, xml);
        if (d)
            virDomainFree(d);
        else
            vd_err_prefix(err, "VM %s stays defined on %s, which its next start would write into; "
                          "define it again on its former disk before starting it (%s)", dom, frozen, lv_msg());
        rc = -1;
    }
    free(xml);
    return rc;
}

/* A libvirt CPU map for `cpulist` (NULL: every host CPU). */
static int cpumap_make(vd_hv *hv, const char *cpulist, unsigned char **map, int *maplen,
                       vd_err *err)
{
    int ncpus = virNodeGetCPUMap(hv->conn, NULL, NULL, 0);
    if (ncpus <= 0)
        return vd_err_set(err, "libvirt %s: cannot count host CPUs: %s", hv->uri, lv_msg());
    return vd_cpulist_map(cpulist, ncpus, map, maplen, err);
}

/* The I/O threads do the desktop's disk work: a shrunk desktop's stay on
 * its cores too. A driver without I/O threads (LXC, say) has none to pin. */
static int iothreads_pin(virDomainPtr d, const char *dom, const char *cpulist, unsigned char *map,
                         int maplen, vd_err *err)
{
    virDomainIOThreadInfoPtr *info = NULL;
    int n = virDomainGetIOThreadInfo(d, &info, VIR_DOMAIN_AFFECT_LIVE), rc = 0;
    if (n < 0) {
        virErrorPtr e = virGetLastError();
        if (e && (e->code == VIR_ERR_NO_SUPPORT || e->code == VIR_ERR_OPERATION_UNSUPPORTED)) {
            virResetLastError();
            return 0;
        }
        return vd_err_set(err, "VM %s: cannot list its I/O threads: %s", dom, lv_msg());
    }
    for (int i = 0; i < n; i++) {
        if (rc == 0 && virDomainPinIOThread(d, info[i]->iothread_id, map, maplen, VIR_DOMAIN_AFFECT_LIVE) < 0)
            rc = vd_err_set(err, "VM %s: cannot pin its I/O thread %u to %s: %s", dom,
                            info[i]->iothread_id, cpulist ? cpulist : "all CPUs", lv_msg());
        virDomainIOThreadInfoFree(info[i]);
    }
    free(info);
    return rc;
}

int vd_hv_dom_pin(vd_hv *hv, const char *dom, const char *cpulist, vd_err *err)
{
    unsigned char *map = NULL;
    int maplen = 0;
    if (cpumap_make(hv, cpulist, &map, &maplen, err) < 0)
        return -1;
    virDomainPtr d = dom_get(hv, dom, err);
    int rc = d ? 0 : -1;
    int nvcpus = d ? virDomainGetVcpusFlags(d, VIR_DOMAIN_AFFECT_LIVE) : -1;
    if (d && nvcpus < 0)
        rc = vd_err_set(err, "VM %s: cannot count its vCPUs: %s", dom, lv_msg());
    for (int v = 0; rc == 0 && v < nvcpus; v++)
        if (virDomainPinVcpuFlags(d, (unsigned)v, map, maplen, VIR_DOMAIN_AFFECT_LIVE) < 0)
            rc = vd_err_set(err, "VM %s: cannot pin vCPU %d to %s: %s", dom, v, cpulist ? cpulist : "all CPUs", lv_msg());
    if (rc == 0 && virDomainPinEmulator(d, map, maplen, VIR_DOMAIN_AFFECT_LIVE) < 0)
        rc = vd_err_set(err, "VM %s: cannot pin its emulator threads to %s: %s", dom, cpulist ? cpulist : "all CPUs", lv_msg());
    if (rc == 0)
        rc = iothreads_pin(d, dom, cpulist, map, maplen, err);
    if (d)
        virDomainFree(d);
    free(map);
    return rc;
}

/* All nodes of `expr` as strings, in document order. */
static int xml_eval_all(const char *xml, const char *expr, char ***out, int *n, vd_err *err)
{
    xml_query q;
    if (xq_open(&q, xml, expr, err) < 0)
        return -1;
    int count = xq_count(&q);
    char **v = calloc((size_t)count + 1, sizeof(*v));
    int rc = v ? 0 : vd_err_set(err, "out of memory");
    for (int i = 0; rc == 0 && i < count; i++) {
        xmlChar *str = xmlNodeGetContent(q.res->nodesetval->nodeTab[i]);
        if (!str || !(v[i] = strdup((const char *)str)))
            rc = vd_err_set(err, "out of memory");
        xmlFree(str);
    }
    xq_close(&q);
    if (rc < 0) {
        vd_hv_names_free(v, count);
        return -1;
    }
    *out = v;
    *n = count;
    return 0;
}

int vd_hv_disk_chain(vd_hv *hv, const char *dom, char ***paths, int *n, vd_err *err)
{
    char *xml = dom_xml(hv, dom, 0, err);
    if (!xml)
        return -1;
    /* Nested <backingStore> elements list the chain top to bottom. */
    int rc = xml_eval_all(xml, FIRST_DISK "//source/@file", paths, n, err);
    free(xml);
    return rc;
}

int vd_hv_disk_commit(vd_hv *hv, const char *dom, const char *top, const char *base,
                      int timeout_ms, vd_err *err)
{
    char *xml = dom_xml(hv, dom, 0, err);
    char *target = NULL;
    if (!xml)
        return -1;
    int rc = xml_eval(xml, "string(" FIRST_DISK "/target/@dev)", &target, err);
    free(xml);
    virDomainPtr d = rc == 0 ? dom_get(hv, dom, err) : NULL;
    if (rc == 0 && !d)
        rc = -1;
    if (rc == 0 && virDomainBlockCommit(d, target, base, top, 0, 0) < 0)
        rc = vd_err_set(err, "VM %s: cannot merge the disk layers from %s down: %s", dom, top, lv_msg());
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        virDomainBlockJobInfo info;
        int job = rc == 0 ? virDomainGetBlockJobInfo(d, target, &info, 0) : 0;
        if (job < 0)
            rc = vd_err_set(err, "VM %s: cannot follow the merge: %s", dom, lv_msg());
        if (job <= 0)
            break;   /* 0: the job is over */
        if (now_ms() >= deadline) {
            rc = vd_err_set(err, "VM %s: merging disk layers took over %d ms; aborted", dom, timeout_ms);
            virDomainBlockJobAbort(d, target, 0);
            break;
        }
        nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000000 }, NULL);
    }
    if (d)
        virDomainFree(d);
    free(target);
    return rc;
}

/* --- live migration (hv.h) --- */

static int migrate_params(const vd_migrate_params *p, virTypedParameterPtr *tp, int *n)
{
    int max = 0;
    *tp = NULL;
    *n = 0;
    if (p->data_uri && p->data_uri[0] &&
        virTypedParamsAddString(tp, n, &max, VIR_MIGRATE_PARAM_URI, p->data_uri) < 0)
        return -1;
    if (p->bandwidth_mib > 0 &&
        virTypedParamsAddULLong(tp, n, &max, VIR_MIGRATE_PARAM_BANDWIDTH,
                                (unsigned long long)p->bandwidth_mib) < 0)
        return -1;
    return 0;
}

static long long job_stat(virTypedParameterPtr tp, int n, const char *name)
{
    unsigned long long v;
    return virTypedParamsGetULLong(tp, n, name, &v) == 1 ? (long long)v : -1;
}

/* The completed job's figures, from the target. Best effort: a migration
 * that worked is not failed for want of its statistics. */
static void migrate_stats_read(const char *dest_uri, const char *dom, vd_migrate_stats *st)
{
    virConnectPtr c = virConnectOpen(dest_uri);
    virDomainPtr d = c ? virDomainLookupByName(c, dom) : NULL;
    virTypedParameterPtr tp = NULL;
    int type = 0, n = 0;
    if (d && virDomainGetJobStats(d, &type, &tp, &n, VIR_DOMAIN_JOB_STATS_COMPLETED) == 0) {
        st->total_ms = job_stat(tp, n, VIR_DOMAIN_JOB_TIME_ELAPSED);
        st->downtime_ms = job_stat(tp, n, VIR_DOMAIN_JOB_DOWNTIME);
        st->data_bytes = job_stat(tp, n, VIR_DOMAIN_JOB_MEMORY_PROCESSED);
        st->iterations = job_stat(tp, n, VIR_DOMAIN_JOB_MEMORY_ITERATION);
        virTypedParamsFree(tp, n);
    }
    virResetLastError();
    if (d)
        virDomainFree(d);
    if (c)
        virConnectClose(c);
}

int vd_hv_dom_migrate(vd_hv *hv, const char *dom, const vd_migrate_params *p, vd_migrate_stats *stats,
                      vd_err *err)
{
    *stats = (vd_migrate_stats){ -1, -1, -1, -1 };
    virDomainPtr d = dom_get(hv, dom, err);
    if (!d)
        return -1;
    virTypedParameterPtr tp = NULL;
    int n = 0, rc = 0;
    guard *g = NULL;
    unsigned flags = VIR_MIGRATE_PEER2PEER | VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE |
                     (p->offline ? VIR_MIGRATE_OFFLINE : VIR_MIGRATE_LIVE) |
                     (p->unsafe ? VIR_MIGRATE_UNSAFE : 0);
    /* Set on the source before the job: QEMU takes it when it decides to
     * stop the guest for the last pass. */
    if (!p->offline && p->downtime_ms > 0 && virDomainMigrateSetMaxDowntime(d, (unsigned long long)p->downtime_ms, 0) < 0)
        rc = vd_err_set(err, "VM %s: cannot set the migration downtime limit to %d ms: %s", dom,
                        p->downtime_ms, lv_msg());
    if (rc == 0 && migrate_params(p, &tp, &n) < 0)
        rc = vd_err_set(err, "VM %s: out of memory building the migration parameters", dom);
    if (rc == 0)
        rc = guard_start(&g, hv, dom, p->timeout_ms, GUARD_ABORT_JOB, err);
    if (rc == 0 && virDomainMigrateToURI3(d, p->dest_uri, tp, (unsigned)n, flags) < 0)
        rc = vd_err_set(err, "VM %s: cannot migrate to %s: %s", dom, p->dest_uri, lv_msg());
    if (guard_stop(g))
        rc = vd_err_set(err, "VM %s: migration to %s took over %d s (timeout_migrate): aborted, the "
                        "VM runs on here", dom, p->dest_uri, p->timeout_ms / 1000);
    virTypedParamsFree(tp, n);
    virDomainFree(d);
    if (rc == 0 && !p->offline)
        migrate_stats_read(p->dest_uri, dom, stats);
    return rc;
}

int vd_hv_dom_memory_kib(vd_hv *hv, const char *dom, unsigned long long *kib, vd_err *err)
{
    virDomainPtr d = dom_get(hv, dom, err);
    if (!d)
        return -1;
    unsigned long m = virDomainGetMaxMemory(d);
    virDomainFree(d);
    if (m == 0)
        return vd_err_set(err, "VM %s: cannot read its memory size: %s", dom, lv_msg());
    *kib = m;
    return 0;
}

int vd_hv_free_memory_kib(vd_hv *hv, unsigned long long *kib, vd_err *err)
{
    unsigned long long b = virNodeGetFreeMemory(hv->conn);
    if (b == 0)
        return vd_err_set(err, "libvirt %s: cannot read the host's free memory: %s", hv->uri, lv_msg());
    *kib = b / 1024;
    return 0;
}

int vd_hv_dom_autostart(vd_hv *hv, const char *dom, int *on, vd_err *err)
{
    DOM_CALL(hv, dom, err, "read its autostart flag", virDomainGetAutostart(d, on));
}

int vd_hv_dom_autostart_set(vd_hv *hv, const char *dom, int on, vd_err *err)
{
    DOM_CALL(hv, dom, err, on ? "turn its autostart on" : "turn its autostart off",
             virDomainSetAutostart(d, on));
}

static int call_managed_save(virDomainPtr d, const char *unused)
{
    (void)unused;
    return virDomainManagedSave(d, 0);
}

int vd_hv_dom_managed_save(vd_hv *hv, const char *dom, int timeout_ms, vd_err *err)
{
    int code;
    int rc = dom_call_within(hv, dom, timeout_ms, GUARD_ABORT_JOB, call_managed_save, NULL,
                             "save it (managed save)", &code, err);
    if (rc > 0)
        return vd_err_set(err, "VM %s: saving took over %d s (timeout_save): aborted, the VM runs "
                          "on; raise timeout_save if the disk is slow", dom, timeout_ms / 1000);
    return rc;
}

int vd_hv_dom_managed_save_has(vd_hv *hv, const char *dom, int *has, vd_err *err)
{
    vd_hv_caps caps;
    *has = 0;
    /* LXC has no such call at all: without managed save there is none. */
    if (vd_hv_caps_get(hv, &caps, err) < 0)
        return -1;
    if (!(caps.can & VD_CAN_MANAGED_SAVE))
        return 0;
    virDomainPtr d = dom_get(hv, dom, err);
    if (!d)
        return -1;
    int rc = virDomainHasManagedSaveImage(d, 0);
    virDomainFree(d);
    if (rc < 0)
        return vd_err_set(err, "VM %s: cannot tell whether it has a managed save: %s", dom, lv_msg());
    *has = rc;
    return 0;
}

int vd_hv_dom_rename(vd_hv *hv, const char *dom, const char *new_name, vd_err *err)
{
    DOM_CALL(hv, dom, err, "rename it", virDomainRename(d, new_name, 0));
}

int vd_hv_dom_arrival_place(vd_hv *hv, const char *dom, int *before, vd_err *err)
{
    virDomainPtr *doms = NULL, d = dom_get(hv, dom, err);
    if (!d)
        return -1;
    unsigned id = virDomainGetID(d);
    virDomainFree(d);
    if (id == (unsigned)-1)
        return vd_err_set(err, "VM %s: not running on %s", dom, hv->uri);
    int n = virConnectListAllDomains(hv->conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
    if (n < 0)
        return vd_err_set(err, "libvirt %s: cannot list its running VMs: %s", hv->uri, lv_msg());
    *before = 0;
    for (int i = 0; i < n; i++) {
        unsigned other = virDomainGetID(doms[i]);
        *before += other != (unsigned)-1 && other < id;
        virDomainFree(doms[i]);
    }
    free(doms);
    return 0;
}

int vd_hv_active_count(vd_hv *hv, int *count, vd_err *err)
{
    int n = virConnectNumOfDomains(hv->conn);
    if (n < 0)
        return vd_err_set(err, "libvirt %s: cannot count its running VMs: %s", hv->uri, lv_msg());
    *count = n;
    return 0;
}

/* --- bootstrapping: definitions and storage volumes (hv.h) --- */

int vd_hv_dom_define(vd_hv *hv, const char *xml, vd_err *err)
{
    virDomainPtr d = virDomainDefineXML(hv->conn, xml);
    if (!d)
        return vd_err_set(err, "libvirt %s: cannot define domain: %s", hv->uri, lv_msg());
    virDomainFree(d);
    return 0;
}

int vd_hv_dom_metadata(vd_hv *hv, const char *dom, const char *ns, char **xml, vd_err *err)
{
    *xml = NULL;
    virDomainPtr d = dom_get(hv, dom, err);
    if (!d)
        return -1;
    int rc = 0;
    *xml = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, ns, VIR_DOMAIN_AFFECT_CONFIG);
    if (!*xml && virGetLastErrorCode() != VIR_ERR_NO_DOMAIN_METADATA)
        rc = vd_err_set(err, "VM %s: cannot read its metadata: %s", dom, lv_msg());
    virDomainFree(d);
    return rc;
}

/* An active pool: volumes of an inactive one cannot be created or used. */
static virStoragePoolPtr pool_get(vd_hv *hv, const char *pool, vd_err *err)
{
    virStoragePoolPtr p = virStoragePoolLookupByName(hv->conn, pool);
    if (!p) {
        vd_err_set(err, "libvirt %s: no storage pool '%s' (%s): define and start one (a directory "
                   "pool, say), or name another with pool = in the profile", hv->uri, pool, lv_msg());
        return NULL;
    }
    if (virStoragePoolIsActive(p) != 1) {
        vd_err_set(err, "libvirt %s: storage pool '%s' is not active: start it (and set it to "
                   "autostart)", hv->uri, pool);
        virStoragePoolFree(p);
        return NULL;
    }
    return p;
}

int vd_hv_vol_path(vd_hv *hv, const char *pool, const char *vol, char *path, size_t size, int *exists,
                   vd_err *err)
{
    *exists = 0;
    virStoragePoolPtr p = pool_get(hv, pool, err);
    if (!p)
        return -1;
    /* A volume made behind libvirt's back (by hand) shows after a refresh;
     * a driver without one (the test driver) has nothing to refresh. */
    if (virStoragePoolRefresh(p, 0) < 0)
        virResetLastError();
    virStorageVolPtr v = virStorageVolLookupByName(p, vol);
    int rc = 0;
    if (v) {
        char *real = virStorageVolGetPath(v);
        *exists = 1;
        if (!real || (size_t)snprintf(path, size, "%s", real) >= size)
            rc = vd_err_set(err, "volume %s of pool %s: no path: %s", vol, pool, lv_msg());
        free(real);
        virStorageVolFree(v);
    } else if (virGetLastErrorCode() != VIR_ERR_NO_STORAGE_VOL) {
        rc = vd_err_set(err, "pool %s: cannot look up volume %s: %s", pool, vol, lv_msg());
    }
    virStoragePoolFree(p);
    return rc;
}

int vd_hv_vol_create(vd_hv *hv, const char *pool, const char *xml, char *path, size_t size, vd_err *err)
{
    virStoragePoolPtr p = pool_get(hv, pool, err);
    if (!p)
        return -1;
    virStorageVolPtr v = virStorageVolCreateXML(p, xml, 0);
    int rc = 0;
    char *real = v ? virStorageVolGetPath(v) : NULL;
    if (!v)
        rc = vd_err_set(err, "pool %s: cannot create a volume: %s", pool, lv_msg());
    else if (!real || (size_t)snprintf(path, size, "%s", real) >= size)
        rc = vd_err_set(err, "pool %s: the new volume has no path: %s", pool, lv_msg());
    free(real);
    if (v)
        virStorageVolFree(v);
    virStoragePoolFree(p);
    return rc;
}

static int read_chunk(virStreamPtr st, char *data, size_t n, void *opaque)
{
    (void)st;
    ssize_t got;
    do
        got = read(*(int *)opaque, data, n);
    while (got < 0 && errno == EINTR);
    return (int)got;
}

int vd_hv_vol_upload(vd_hv *hv, const char *pool, const char *vol, const char *file, vd_err *err)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vd_err_set(err, "%s: cannot open: %s", file, strerror(errno));
    virStoragePoolPtr p = pool_get(hv, pool, err);
    virStorageVolPtr v = p ? virStorageVolLookupByName(p, vol) : NULL;
    virStreamPtr st = v ? virStreamNew(hv->conn, 0) : NULL;
    int rc = 0;
    if (!p)
        rc = -1;
    else if (!v || !st)
        rc = vd_err_set(err, "pool %s: volume %s: %s", pool, vol, lv_msg());
    else if (virStorageVolUpload(v, st, 0, 0, 0) < 0)
        rc = vd_err_set(err, "pool %s: cannot upload %s into volume %s: %s", pool, file, vol, lv_msg());
    else if (virStreamSendAll(st, read_chunk, &fd) < 0 || virStreamFinish(st) < 0) {
        rc = vd_err_set(err, "pool %s: upload of %s into volume %s failed: %s", pool, file, vol, lv_msg());
        virStreamAbort(st);
    }
    if (st)
        virStreamFree(st);
    if (v)
        virStorageVolFree(v);
    if (p)
        virStoragePoolFree(p);
    close(fd);
    return rc;
}

int vd_hv_vol_delete(vd_hv *hv, const char *pool, const char *vol, vd_err *err)
{
    virStoragePoolPtr p = pool_get(hv, pool, err);
    if (!p)
        return -1;
    virStorageVolPtr v = virStorageVolLookupByName(p, vol);
    int rc = 0;
    if (!v && virGetLastErrorCode() != VIR_ERR_NO_STORAGE_VOL)
        rc = vd_err_set(err, "pool %s: cannot look up volume %s: %s", pool, vol, lv_msg());
    else if (v && virStorageVolDelete(v, 0) < 0)
        rc = vd_err_set(err, "pool %s: cannot delete volume %s: %s", pool, vol, lv_msg());
    if (v)
        virStorageVolFree(v);
    virStoragePoolFree(p);
    return rc;
}
