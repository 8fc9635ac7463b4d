/* SPDX-License-Identifier: MIT */
/*
 * vdesk.so - the SPANK plugin: --vdesk options, checked at submit time and
 * passed to the node side.
 *
 * It is loaded by every srun, sbatch, salloc and slurmstepd, on login nodes
 * too, so it stays tiny: no libvirt, no hwloc, no verbs, no config file. The
 * node side (Prolog=/Epilog= programs) does the work.
 *
 * Where the values go:
 *   sbatch/salloc/srun (new allocation): spank_job_control_setenv() puts
 *       VDESK_MODE and VDESK_TIMEOUT in the job's control environment; the
 *       Prolog/Epilog programs see SPANK_VDESK_MODE and SPANK_VDESK_TIMEOUT.
 *       VDESK_JOB_MODE/VDESK_JOB_TIMEOUT go into the job's own environment,
 *       so that an srun inside the job knows what the job was submitted with.
 *   job_prolog/job_epilog (slurmd): spank_option_getopt() returns the user's
 *       value; the plugin logs the job's mode in slurmd's log.
 *   srun inside an existing allocation: passes the job's own values on
 *       again (never others); an explicit --vdesk that differs is refused.
 *
 * Admin policy comes from plugstack.conf arguments (see vdesk(1)):
 *   default=MODE  allow=MODE[,MODE...]  max_timeout=SECONDS
 * An unknown or malformed argument makes the plugin refuse to load.
 */
#include <errno.h>
#include <slurm/spank.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "mode.h"

SPANK_PLUGIN(vdesk, 1);

#define TIMEOUT_CAP 86400L

/* Plugin state: one copy per process that loads the plugin. */
static struct {
    vd_mode default_mode;
    vd_mode_set allowed;
    long max_timeout;
    int user_mode_set;
    vd_mode user_mode;
    long user_timeout; /* 0: not given */
    char mode_usage[512];
    char timeout_usage[256];
} cfg = {
    .default_mode = VD_MODE_AUTO,
    .allowed = VD_MODE_SET_ALL,
    .max_timeout = 3600,
};

static int opt_mode(int val, const char *optarg, int remote);
static int opt_timeout(int val, const char *optarg, int remote);

enum { OPT_MODE, OPT_TIMEOUT };

static struct spank_option options[] = {
    [OPT_MODE] = { "vdesk", "MODE", cfg.mode_usage, 1, OPT_MODE, opt_mode },
    [OPT_TIMEOUT] = { "vdesk-timeout", "SECONDS", cfg.timeout_usage, 1, OPT_TIMEOUT, opt_timeout },
};

static int parse_seconds(const char *s, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_arg(const char *arg)
{
    vd_err err;
    const char *eq = strchr(arg, '=');
    size_t klen = eq ? (size_t)(eq - arg) : 0;
    const char *val = eq ? eq + 1 : NULL;

    if (klen == 7 && !strncmp(arg, "default", 7)) {
        if (vd_mode_parse(val, &cfg.default_mode, &err) == 0)
            return 0;
    } else if (klen == 5 && !strncmp(arg, "allow", 5)) {
        if (vd_mode_set_parse(val, &cfg.allowed, &err) == 0)
            return 0;
    } else if (klen == 11 && !strncmp(arg, "max_timeout", 11)) {
        if (parse_seconds(val, TIMEOUT_CAP, &cfg.max_timeout) == 0)
            return 0;
        vd_err_set(&err, "must be whole seconds from 1 to %ld", TIMEOUT_CAP);
    } else {
        slurm_error("vdesk: plugstack.conf: unknown argument '%s' "
                    "(known: default=MODE, allow=MODE[,MODE...], max_timeout=SECONDS)", arg);
        return -1;
    }
    slurm_error("vdesk: plugstack.conf: bad argument '%s': %s", arg, err.msg);
    return -1;
}

static int parse_args(int ac, char **av)
{
    for (int i = 0; i < ac; i++)
        if (parse_arg(av[i]) < 0)
            return -1;
    if (!(cfg.allowed & VD_MODE_BIT(cfg.default_mode))) {
        slurm_error("vdesk: plugstack.conf: default=%s is not in allow= "
                    "(add it to allow=, or choose another default)", vd_mode_name(cfg.default_mode));
        return -1;
    }
    return 0;
}

static void build_usage(void)
{
    char allowed[128];
    vd_mode_set_format(cfg.allowed, allowed, sizeof(allowed));
    snprintf(cfg.mode_usage, sizeof(cfg.mode_usage),
             "What to do with the desktop VM on the job's nodes: %s (default: %s). "
             "See vdesk(1).", allowed, vd_mode_name(cfg.default_mode));
    snprintf(cfg.timeout_usage, sizeof(cfg.timeout_usage),
             "Give up evicting the desktop VM after SECONDS and fall back to the next "
             "step of the site's policy (at most %ld).", cfg.max_timeout);
}

static int opt_mode(int val, const char *optarg, int remote)
{
    (void)val;
    if (remote)
        return 0;
    vd_err err;
    vd_mode m;
    char allowed[128];   /* formatted for errors only: this runs in every srun */
    if (!optarg || vd_mode_parse(optarg, &m, &err) < 0) {
        vd_mode_set_format(cfg.allowed, allowed, sizeof(allowed));
        slurm_error("vdesk: --vdesk=%s: unknown mode (allowed here: %s)", optarg ? optarg : "", allowed);
        return -1;
    }
    if (!(cfg.allowed & VD_MODE_BIT(m))) {
        vd_mode_set_format(cfg.allowed, allowed, sizeof(allowed));
        slurm_error("vdesk: --vdesk=%s is not allowed on this cluster (allowed here: %s)", optarg, allowed);
        return -1;
    }
    cfg.user_mode = m;
    cfg.user_mode_set = 1;
    return 0;
}

static int opt_timeout(int val, const char *optarg, int remote)
{
    (void)val;
    if (remote)
        return 0;
    if (!optarg || parse_seconds(optarg, cfg.max_timeout, &cfg.user_timeout) < 0) {
        slurm_error("vdesk: --vdesk-timeout=%s: must be whole seconds from 1 to %ld",
                    optarg ? optarg : "", cfg.max_timeout);
        return -1;
    }
    return 0;
}

int slurm_spank_init(spank_t sp, int ac, char **av)
{
    if (parse_args(ac, av) < 0)
        return -1;
    build_usage();
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
        if (spank_option_register(sp, &options[i]) != ESPANK_SUCCESS) {
            slurm_error("vdesk: cannot register option --%s", options[i].name);
            return -1;
        }
    }
    return 0;
}

static int control_setenv(spank_t sp, const char *name, const char *value)
{
    spank_err_t rc = spank_job_control_setenv(sp, name, value, 1);
    if (rc != ESPANK_SUCCESS) {
        slurm_error("vdesk: cannot pass %s=%s to the node side: %s", name, value, spank_strerror(rc));
        return -1;
    }
    return 0;
}

/* Hands the mode to the node side: in the job's control environment for
 * the Prolog/Epilog, and in the job's own environment (VDESK_JOB_*) for the
 * sruns inside it. */
static int pass_mode(spank_t sp, const char *mode, const char *timeout)
{
    if (control_setenv(sp, "VDESK_MODE", mode) < 0 ||
        (timeout && control_setenv(sp, "VDESK_TIMEOUT", timeout) < 0))
        return -1;
    if (setenv("VDESK_JOB_MODE", mode, 1) != 0 ||
        (timeout && setenv("VDESK_JOB_TIMEOUT", timeout, 1) != 0)) {
        slurm_error("vdesk: cannot set VDESK_JOB_MODE: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* srun inside a job (batch script, salloc shell): the job's mode was fixed
 * when it was submitted. Without PrologFlags=Alloc, a salloc job's Prolog
 * runs at its first srun and sees that srun's control environment, so the
 * srun passes the job's own values on again: it never changes them. */
static int nested_srun(spank_t sp)
{
    const char *job_mode = getenv("VDESK_JOB_MODE");
    if (!job_mode) {
        if (cfg.user_mode_set)
            slurm_info("vdesk: --vdesk=%s has no effect inside job %s: a job's desktop mode "
                       "is set when it is submitted", vd_mode_name(cfg.user_mode),
                       getenv("SLURM_JOB_ID"));
        return 0;
    }
    if (cfg.user_mode_set && strcmp(job_mode, vd_mode_name(cfg.user_mode)) != 0) {
        slurm_error("vdesk: --vdesk=%s: job %s already runs with --vdesk=%s; a job's desktop "
                    "mode is set when it is submitted (sbatch/salloc), not per step",
                    vd_mode_name(cfg.user_mode), getenv("SLURM_JOB_ID"), job_mode);
        return -1;
    }
    return pass_mode(sp, job_mode, getenv("VDESK_JOB_TIMEOUT"));
}

int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
    (void)ac;
    (void)av;
    spank_context_t ctx = spank_context();
    if (ctx != S_CTX_LOCAL && ctx != S_CTX_ALLOCATOR)
        return 0;
    if (ctx == S_CTX_LOCAL && getenv("SLURM_JOB_ID"))
        return nested_srun(sp);

    char timeout[32];
    if (cfg.user_timeout)
        snprintf(timeout, sizeof(timeout), "%ld", cfg.user_timeout);
    return pass_mode(sp, vd_mode_name(cfg.user_mode_set ? cfg.user_mode : cfg.default_mode),
                     cfg.user_timeout ? timeout : NULL);
}

/* job_prolog/job_epilog: record in slurmd's log what the job asked for. */
static int log_job(spank_t sp, const char *phase)
{
    uint32_t job = 0;
    char *mode = NULL, *timeout = NULL;
    if (spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS)
        job = 0;
    int given = spank_option_getopt(sp, &options[OPT_MODE], &mode) == ESPANK_SUCCESS && mode;
    if (spank_option_getopt(sp, &options[OPT_TIMEOUT], &timeout) != ESPANK_SUCCESS)
        timeout = NULL;
    slurm_info("vdesk: job %u %s on %s: mode=%s (%s) timeout=%s (vdesk " VD_VERSION ")", job, phase,
               getenv("SLURMD_NODENAME") ? getenv("SLURMD_NODENAME") : "?",
               given ? mode : vd_mode_name(cfg.default_mode), given ? "asked" : "default",
               timeout ? timeout : "config");
    return 0;
}

int slurm_spank_job_prolog(spank_t sp, int ac, char **av)
{
    (void)ac;
    (void)av;
    return log_job(sp, "prolog");
}

int slurm_spank_job_epilog(spank_t sp, int ac, char **av)
{
    (void)ac;
    (void)av;
    return log_job(sp, "epilog");
}
