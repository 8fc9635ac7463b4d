/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"

/* Writes `text` to a temporary file; returns its path (static buffer). */
static const char *conf_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/vdesk-test-conf-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* Loads `text` as a whole-file check; it must fail with `msg` in the
 * message, after the file's name. */
static void assert_refused(const char *text, const char *msg)
{
    vd_conf c;
    vd_err err = { "" };
    const char *p = conf_file(text);
    int rc = vd_conf_load(p, NULL, &c, &err);
    unlink(p);
    if (rc != -1)
        fail_msg("accepted: %s", text);
    if (!strstr(err.msg, msg))
        fail_msg("expected '%s' in '%s' for: %s", msg, err.msg, text);
    assert_int_equal(strncmp(err.msg, p, strlen(p)), 0);   /* names the file */
}

/* Loads `text` for node n1; it must succeed. */
static void load_ok(const char *text, vd_conf *c)
{
    vd_err err = { "" };
    const char *p = conf_file(text);
    int rc = vd_conf_load(p, "n1", c, &err);
    unlink(p);
    if (rc)
        fail_msg("refused: %s\nfor: %s", err.msg, text);
}

static const char *good =
    "[vdesk]\n"
    "state_dir = /var/lib/vdesk/%n\n"
    "policy = shutdown,save\n"
    "timeout_unplug = 7\n"
    "nvidia_persistence = manage\n"
    "\n"
    "[node n1]\n"
    "uri = qemu:///system\n"
    "domain = desk-n1\n"
    "desktop_cores = 0-1,8\n"
    "device = gpu ua-gpu0 0000:65:00.0\n"
    "device = ib ua-ib0\n"
    "[node n2]\n"
    "uri = qemu:///system\n"
    "domain = desk-n2\n";

static void good_file_for_a_node(void **state)
{
    (void)state;
    vd_conf c;
    vd_err err = { "" };
    const char *p = conf_file(good);
    int rc = vd_conf_load(p, "n1", &c, &err);
    unlink(p);
    if (rc)
        fail_msg("%s", err.msg);
    assert_string_equal(c.state_dir, "/var/lib/vdesk/n1");
    assert_string_equal(c.snapshot_dir, "/var/lib/vdesk/n1/snapshots");
    assert_int_equal(c.npolicy, 2);
    assert_int_equal(c.policy[0], VD_MODE_SHUTDOWN);
    assert_int_equal(c.policy[1], VD_MODE_SAVE);
    assert_int_equal(c.timeout_unplug, 7);
    assert_int_equal(c.timeout_save, 600);   /* default */
    assert_int_equal(c.nvidia_persistence, VD_PERSIST_MANAGE);
    assert_string_equal(c.proc_root, "/proc");   /* default */
    assert_string_equal(c.domain, "desk-n1");
    assert_string_equal(c.desktop_cores, "0-1,8");
    assert_int_equal(c.ndevices, 2);
    assert_int_equal(c.devices[0].role, VD_ROLE_GPU);
    assert_string_equal(c.devices[0].pci, "0000:65:00.0");
    assert_string_equal(c.devices[1].alias, "ua-ib0");
    assert_string_equal(c.devices[1].pci, "");
    assert_string_equal(c.profile_dir, VD_SYSCONFDIR "/vdesk/profiles");   /* default */
}

/* profile_dir: where vdeskctl profile and bootstrap look; an absolute path. */
static void profile_dir_is_an_absolute_path(void **state)
{
    (void)state;
    vd_conf c;
    load_ok("[vdesk]\nprofile_dir = /srv/vdesk/profiles\n[node n1]\nuri = test:///default\n"
            "domain = d\n", &c);
    assert_string_equal(c.profile_dir, "/srv/vdesk/profiles");
    assert_refused("[vdesk]\nprofile_dir = profiles\n", ":2: bad value 'profile_dir = profiles': "
                   "must be an absolute path");
    assert_refused("[vdesk]\nprofile_dir = /a\nprofile_dir = /b\n", ":3: key 'profile_dir' given twice");
}

static void whole_file_check_without_node(void **state)
{
    (void)state;
    vd_conf c;
    vd_err err;
    const char *p = conf_file(good);
    assert_int_equal(vd_conf_load(p, NULL, &c, &err), 0);
    assert_int_equal(vd_conf_load(p, "n9", &c, &err), -1);
    unlink(p);
    assert_non_null(strstr(err.msg, "no [node n9] section (nodes in the file: n1, n2)"));
}

/* Prolog= is cluster-wide: a node without a section has no desktop, which
 * the prolog must tell from a broken file (it drained the node before). */
static void node_without_a_section_has_no_desktop(void **state)
{
    (void)state;
    vd_conf c;
    vd_err err;
    const char *p = conf_file(good);
    assert_int_equal(vd_conf_find(p, "n9", &c, &err), VD_CONF_NO_DESKTOP);
    assert_non_null(strstr(err.msg, "no [node n9] section"));
    assert_string_equal(c.node, "n9");
    assert_string_equal(c.domain, "");
    assert_int_equal(vd_conf_find(p, "n1", &c, &err), 0);
    unlink(p);
    assert_int_equal(vd_conf_find(p, "n9", &c, &err), -1);   /* gone: an error, not "no desktop" */
}

/* Each bad file is refused with a message naming the line and the cause. */
static void bad_files_name_line_and_cause(void **state)
{
    (void)state;
    static const struct { const char *text, *msg; } cases[] = {
        { "[vdesk]\ncolour = blue\n", ":2: unknown key 'colour' in [vdesk] (keys: state_dir" },
        { "[nod n1]\nuri = qemu:///system\n", ":2: unknown section [nod n1]" },
        { "[vdesk]\nstate_dir = var/lib\n", ":2: bad value 'state_dir = var/lib': must be an absolute path" },
        { "[vdesk]\nsnapshots_keep = 0\n", "from 1 to 100" },
        { "[vdesk]\nnvidia_persistence = off\n", ":2: bad value 'nvidia_persistence = off': must be refuse or manage" },
        { "[vdesk]\nproc_root = proc\n", "must be an absolute path" },
        { "[vdesk]\ntimeout_save = 1h\n", ":2: bad value 'timeout_save = 1h': must be whole seconds" },
        { "[vdesk]\npolicy = save,auto\n", "(not auto or shrink)" },
        { "[vdesk]\npolicy = save,,shutdown\n", "has an empty item" },
        { "[vdesk]\npolicy = save\npolicy = save\n", ":3: key 'policy' given twice in [vdesk]" },
        { "[node n1]\nuri = qemu:///system\ndomain = d\ndesktop_cores = lots\n", "must be a CPU list" },
        { "[node n1]\nuri = qemu:///system\ndomain = d\ndevice = gpu gpu0\n", "alias 'gpu0' must be a libvirt user alias" },
        { "[node n1]\nuri = qemu:///system\ndomain = d\ndevice = fpga ua-f\n", "role 'fpga' is not one of gpu, ib, other" },
        { "[node n1]\nuri = qemu:///system\ndomain = d\ndevice = gpu ua-g 65:00.0\n", "PCI address '65:00.0'" },
        { "[node n1]\nuri = qemu:///system\ndomain = d\ndevice = gpu ua-g\ndevice = ib ua-g\n", "alias ua-g is listed twice" },
        { "[node n1]\nuri = nonsense\ndomain = d\n", "must be a libvirt URI" },
        { "[node n1]\nuri = qemu:///system\n", "[node n1] needs both uri = and domain =" },
        { "[vdesk\n", ":1: syntax error" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_refused(cases[i].text, cases[i].msg);
}

/* A second header for a section would merge two sections into one, or let
 * the second silently override the first: both are refused at the repeat. */
static void repeated_section_is_refused(void **state)
{
    (void)state;
    assert_refused("[vdesk]\nstate_dir = /a\n[node n1]\nuri = qemu:///system\ndomain = d\n"
                   "[vdesk]\nstate_dir = /b\n",
                   ":6: section [vdesk] is repeated (first at line 1)");
    assert_refused("[node n1]\nuri = qemu:///system\ndomain = d\n"
                   "[node n2]\nuri = qemu:///system\ndomain = e\n"
                   "[node n1]\nuri = qemu:///session\ndomain = d\n",
                   ":7: section [node n1] is repeated (first at line 1)");
    /* Even an empty repeat: it shows a copy-and-paste mistake. */
    assert_refused("[vdesk]\n[node n1]\nuri = qemu:///system\ndomain = d\n[vdesk]\n",
                   ":5: section [vdesk] is repeated (first at line 1)");
}

/* A node section's missing keys are reported at its header, whether the
 * section is empty, followed by another, or the last in the file. */
static void incomplete_node_section_names_its_header(void **state)
{
    (void)state;
    assert_refused("[node n1]\n[node n2]\nuri = qemu:///system\ndomain = d\n",
                   ":1: [node n1] needs both uri = and domain = (missing: uri, domain)");
    assert_refused("[vdesk]\nsnapshots_keep = 3\n[node n1]\n",
                   ":3: [node n1] needs both uri = and domain = (missing: uri, domain)");
    assert_refused("[vdesk]\nsnapshots_keep = 3\n[node n1]\ndomain = d\n",
                   ":3: [node n1] needs both uri = and domain = (missing: uri)");
    assert_refused("[node n1]\nuri = qemu:///system\n\n[vdesk]\ntimeout_save = 5\n",
                   ":1: [node n1] needs both uri = and domain = (missing: domain)");
    assert_refused("[nod n1]\n", ":1: unknown section [nod n1]");
}

/* inih keeps the previous section after a header without ']' and reports
 * the header's line with whatever the next key's error is; vdesk names the
 * header itself. */
static void unclosed_section_header_is_reported_on_its_line(void **state)
{
    (void)state;
    assert_refused("[vdesk]\ntimeout_save = 5\n[node n1\nuri = qemu:///system\ndomain = d\n",
                   ":3: syntax error: bad section header '[node n1' (missing ']')");
    assert_refused("[vdesk]\n[node n1 ; a comment]\nuri = qemu:///system\n",
                   ":2: syntax error: bad section header '[node n1' (missing ']')");
    assert_refused("[vdesk]\nstate_dir\n", ":2: syntax error: 'state_dir' is not KEY = VALUE");
    assert_refused("timeout_save = 5\n", ":1: key 'timeout_save' comes before any section");
    assert_refused("[vdesk] extra\n", ":1: syntax error: text after ']' in '[vdesk] extra'");
}

/* '#' after a value starts a comment, as ';' does (inih knows only ';'):
 * a space or tab before it, so values such as URIs keep their '#'. */
static void inline_comments_after_values(void **state)
{
    (void)state;
    vd_conf c;
    load_ok("[vdesk]   # site-wide\n"
            "timeout_save = 60    # seconds\n"
            "timeout_restore = 70\t; seconds\n"
            "  policy = save  # indented keys are fine\n"
            "[node n1] ; this node\n"
            "uri = qemu+ssh://h/system?x#y # fragment kept\n"
            "domain = desk-n1 # the desktop\n"
            "desktop_cores = 0-1 # two cores\n"
            "device = gpu ua-gpu0 0000:65:00.0 # first GPU\n", &c);
    assert_int_equal(c.timeout_save, 60);
    assert_int_equal(c.timeout_restore, 70);
    assert_int_equal(c.npolicy, 1);
    assert_string_equal(c.uri, "qemu+ssh://h/system?x#y");
    assert_string_equal(c.domain, "desk-n1");
    assert_string_equal(c.desktop_cores, "0-1");
    assert_string_equal(c.devices[0].pci, "0000:65:00.0");
}

/* Only the kernel's own spelling of a PCI address names a sysfs directory. */
static void pci_address_must_be_canonical(void **state)
{
    (void)state;
    static const char *bad[] = {
        "0x00:01:00.0", "-001:01:00.0", "+001:01:00.0", "0000:0A:00.0",
        "0000:00:20.0", "0000:00:00.8", "00000:01:00.0", "0000:01:00", "0000-01-00.0",
        "000g:01:00.0", "0000:01:1f.a",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text), "[node n1]\nuri = qemu:///system\ndomain = d\n"
                 "device = gpu ua-g %s\n", bad[i]);
        char msg[128];
        snprintf(msg, sizeof(msg), ":4: bad value 'device = gpu ua-g %s", bad[i]);
        assert_refused(text, msg);
        assert_refused(text, "must be in the kernel's canonical form DDDD:BB:DD.F");
    }
    vd_conf c;
    load_ok("[node n1]\nuri = qemu:///system\ndomain = d\n"
            "device = gpu ua-g0 ffff:ff:1f.7\ndevice = gpu ua-g1 0000:0a:00.0\n", &c);
    assert_string_equal(c.devices[0].pci, "ffff:ff:1f.7");
    assert_string_equal(c.devices[1].pci, "0000:0a:00.0");
}

/* The domain name becomes part of the save file's path STATE_DIR/DOMAIN.save. */
static void domain_must_be_a_safe_name(void **state)
{
    (void)state;
    static const char *bad[] = {
        "../../../etc/cron.d/x", "a/b", ".hidden", "..", "desk n1", "desk$", "dësk",
        "a12345678901234567890123456789012345678901234567890123456789012345",   /* 65 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text), "[node n1]\nuri = qemu:///system\ndomain = %s\n", bad[i]);
        assert_refused(text, ":3: bad value 'domain = ");
        assert_refused(text, "letters, digits, '-', '_', '.'");
    }
    vd_conf c;
    load_ok("[node n1]\nuri = qemu:///system\n"
            "domain = A_desk-1.2345678901234567890123456789012345678901234567890123456\n", &c);
    assert_int_equal(strlen(c.domain), 64);
}

/* hwloc would allocate a bitmap up to the highest CPU named, and read 010
 * and 0x10 its own way: only plain decimal CPUs below VD_MAX_CPUS pass. */
static void desktop_cores_is_a_bounded_decimal_cpulist(void **state)
{
    (void)state;
    static const char *bad[] = {
        "-2", "4294967294", "0-4294967294", "010", "0x10", "4096", "0-4096", "3-1", "1,,2",
        ",1", "1,", "1-", "-", "1-2-3", "+1", "1 2", "0-1,4294967295", "99999999999999999999",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text), "[node n1]\nuri = qemu:///system\ndomain = d\n"
                 "desktop_cores = %s\n", bad[i]);
        assert_refused(text, ":4: bad value 'desktop_cores = ");
        assert_refused(text, "must be a CPU list such as 0-1,8-9");
    }
    assert_refused("[node n1]\nuri = qemu:///system\ndomain = d\ndesktop_cores = 0-4294967294\n",
                   "below VD_MAX_CPUS (4096)");
    assert_refused("[node n1]\nuri = qemu:///system\ndomain = d\ndesktop_cores = 3-1\n",
                   "range 3-1");
    vd_conf c;
    load_ok("[node n1]\nuri = qemu:///system\ndomain = d\ndesktop_cores = 0,4095,10-20,7-7\n", &c);
    assert_string_equal(c.desktop_cores, "0,4095,10-20,7-7");
}

/* The node re-checks what a job's SPANK environment asks for. */
static void node_policy_keys(void **state)
{
    (void)state;
    vd_conf c;
    vd_conf_defaults(&c);
    assert_int_equal(c.allow, VD_MODE_SET_ALL);
    assert_int_equal(c.max_timeout, 3600);
    assert_int_equal(c.min_shutdown_grace, 30);
    assert_int_equal(c.destroy_drains, 0);

    load_ok(good, &c);
    assert_int_equal(c.allow, VD_MODE_SET_ALL);
    assert_int_equal(c.max_timeout, 3600);
    assert_int_equal(c.min_shutdown_grace, 30);
    assert_int_equal(c.destroy_drains, 0);

    load_ok("[vdesk]\nallow = save,shutdown,auto\nmax_timeout = 900\n"
            "min_shutdown_grace = 0\non_destroy = drain\n"
            "[node n1]\nuri = qemu:///system\ndomain = d\n", &c);
    assert_int_equal(c.allow, VD_MODE_BIT(VD_MODE_SAVE) | VD_MODE_BIT(VD_MODE_SHUTDOWN) |
                              VD_MODE_BIT(VD_MODE_AUTO));
    assert_int_equal(c.max_timeout, 900);
    assert_int_equal(c.min_shutdown_grace, 0);
    assert_int_equal(c.destroy_drains, 1);

    load_ok("[vdesk]\non_destroy = record\nmin_shutdown_grace = 120\n"
            "[node n1]\nuri = qemu:///system\ndomain = d\n", &c);
    assert_int_equal(c.destroy_drains, 0);
    assert_int_equal(c.min_shutdown_grace, 120);   /* = timeout_shutdown: allowed */

    /* The default grace never exceeds a short shutdown step. */
    load_ok("[vdesk]\ntimeout_shutdown = 10\n[node n1]\nuri = qemu:///system\ndomain = d\n", &c);
    assert_int_equal(c.min_shutdown_grace, 10);
}

static void node_policy_keys_refused(void **state)
{
    (void)state;
    static const struct { const char *text, *msg; } cases[] = {
        { "[vdesk]\nallow = save,bogus\n", ":2: bad value 'allow = save,bogus': unknown mode 'bogus'" },
        { "[vdesk]\nallow =\n", ":2: bad value 'allow = ': mode list '' has an empty item" },
        { "[vdesk]\nmax_timeout = 0\n", ":2: bad value 'max_timeout = 0': must be whole seconds from 1 to 86400" },
        { "[vdesk]\nmax_timeout = 86401\n", "must be whole seconds from 1 to 86400" },
        { "[vdesk]\nmin_shutdown_grace = -1\n", ":2: bad value 'min_shutdown_grace = -1': must be whole seconds from 0 to 86400" },
        { "[vdesk]\non_destroy = halt\n", ":2: bad value 'on_destroy = halt': must be record or drain" },
        { "[vdesk]\ngpu_vendors = 0x10de, nvidia\n", ":2: bad value 'gpu_vendors = 0x10de, nvidia': gpu_vendors '0x10de, nvidia': 'nvidia' is not a PCI vendor id" },
        { "[vdesk]\nmax_timeout = 5\nmax_timeout = 5\n", ":3: key 'max_timeout' given twice in [vdesk]" },
        /* Checked once the whole file is read: the order of keys does not matter. */
        { "[vdesk]\nmin_shutdown_grace = 200\n",
          ":2: min_shutdown_grace = 200 is above timeout_shutdown = 120" },
        { "[vdesk]\nsnapshots_keep = 2\nmin_shutdown_grace = 100\ntimeout_shutdown = 60\n",
          ":3: min_shutdown_grace = 100 is above timeout_shutdown = 60" },
        { "[node n1]\nallow = save\n", ":2: unknown key 'allow' in [node n1]" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_refused(cases[i].text, cases[i].msg);
}

/* Numbers are plain decimal digits: strtol alone takes "+5", " 5", "0x10"
 * (base 0) or "010" (octal to some readers). */
static void numbers_are_strict_decimal(void **state)
{
    (void)state;
    static const struct { const char *text, *msg; } cases[] = {
        { "[vdesk]\ntimeout_save = +5\n", ":2: bad value 'timeout_save = +5': must be whole seconds from 1 to 86400" },
        { "[vdesk]\ntimeout_save = 0x10\n", ":2: bad value 'timeout_save = 0x10'" },
        { "[vdesk]\ntimeout_save = 010\n", ":2: bad value 'timeout_save = 010'" },
        { "[vdesk]\ntimeout_save = 99999999999999999999\n", ":2: bad value 'timeout_save = 99999999999999999999'" },
        { "[vdesk]\ntimeout_save = 5 5\n", ":2: bad value 'timeout_save = 5 5'" },
        { "[vdesk]\ntimeout_unplug = -1\n", ":2: bad value 'timeout_unplug = -1'" },
        { "[vdesk]\ntimeout_restore = 86401\n", ":2: bad value 'timeout_restore = 86401'" },
        { "[vdesk]\ntimeout_shutdown = 0\n", ":2: bad value 'timeout_shutdown = 0'" },
        { "[vdesk]\nsnapshots_keep = 101\n", ":2: bad value 'snapshots_keep = 101': must be a whole number from 1 to 100" },
        { "[vdesk]\nsnapshots_keep = +3\n", ":2: bad value 'snapshots_keep = +3'" },
        { "[vdesk]\nsnapshots_keep = 4294967299\n", ":2: bad value 'snapshots_keep = 4294967299'" },
        { "[vdesk]\nmax_timeout = 1e3\n", ":2: bad value 'max_timeout = 1e3'" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_refused(cases[i].text, cases[i].msg);
    vd_conf c;
    load_ok("[vdesk]\ntimeout_save = 86400\nsnapshots_keep = 100\ntimeout_unplug = 1\n"
            "[node n1]\nuri = qemu:///system\ndomain = d\n", &c);
    assert_int_equal(c.timeout_save, 86400);
    assert_int_equal(c.snapshots_keep, 100);
    assert_int_equal(c.timeout_unplug, 1);
}

static void missing_file_says_what_to_do(void **state)
{
    (void)state;
    vd_conf c;
    vd_err err;
    assert_int_equal(vd_conf_load("/nonexistent/vdesk.conf", "n1", &c, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/vdesk.conf: cannot open"));
    assert_non_null(strstr(err.msg, "set VDESK_CONF"));
}

static void conf_path_honours_env(void **state)
{
    (void)state;
    setenv("VDESK_CONF", "/etc/x.conf", 1);
    assert_string_equal(vd_conf_path(), "/etc/x.conf");
    unsetenv("VDESK_CONF");
    assert_string_equal(vd_conf_path(), VD_CONF_DEFAULT);
}

/* Every node section is in the peer table, with the migration keys and
 * their defaults; bad migration values and a desktop name two migrating
 * nodes share are refused. */
static void peers_and_migration_keys(void **state)
{
    (void)state;
    vd_conf c;
    load_ok("[vdesk]\nmigrate_feature = desk.visitor\nmigrate_downtime = 150\n"
            "migrate_bandwidth = 400\ntimeout_migrate = 20\nmigrate_unsafe = yes\n"
            "[node n1]\nuri = qemu:///system\ndomain = desk-n1\n"
            "migrate_uri = qemu+tls://n1/system\nmigrate_address = tcp://n1-ib:49152\n"
            "[node n2]\nuri = qemu:///system\ndomain = desk-n2\nmigrate_uri = qemu+tls://n2/system\n"
            "desktop_slots = 3\n"
            "[node n3]\nuri = qemu:///system\ndomain = desk-n3\n", &c);
    assert_string_equal(c.migrate_feature, "desk.visitor");
    assert_int_equal(c.migrate_downtime, 150);
    assert_int_equal(c.migrate_bandwidth, 400);
    assert_int_equal(c.timeout_migrate, 20);
    assert_int_equal(c.migrate_unsafe, 1);
    assert_string_equal(c.migrate_uri, "qemu+tls://n1/system");
    assert_int_equal(c.npeers, 3);
    const vd_peer *p = vd_conf_peer(&c, "n2");
    assert_non_null(p);
    assert_string_equal(p->domain, "desk-n2");
    assert_string_equal(p->migrate_uri, "qemu+tls://n2/system");
    assert_string_equal(p->migrate_address, "");
    assert_int_equal(p->desktop_slots, 3);
    assert_int_equal(vd_conf_peer(&c, "n1")->desktop_slots, 2);
    assert_string_equal(vd_conf_peer(&c, "n1")->migrate_address, "tcp://n1-ib:49152");
    assert_string_equal(vd_conf_peer(&c, "n3")->migrate_uri, "");
    assert_ptr_equal(vd_conf_home_of(&c, "desk-n3"), vd_conf_peer(&c, "n3"));
    assert_null(vd_conf_peer(&c, "n4"));
    assert_null(vd_conf_home_of(&c, "desk-n4"));
    /* the defaults */
    load_ok("[node n1]\nuri = qemu:///system\ndomain = d\n", &c);
    assert_string_equal(c.migrate_feature, "vdesk");
    assert_int_equal(c.migrate_downtime, 300);
    assert_int_equal(c.timeout_migrate, 60);
    assert_int_equal(c.migrate_unsafe, 0);
    /* two nodes that do not migrate may still call their desktops alike */
    load_ok("[node n1]\nuri = qemu:///system\ndomain = d\n[node n2]\nuri = qemu:///system\ndomain = d\n", &c);
    assert_refused("[node n1]\nuri = qemu:///system\ndomain = d\nmigrate_uri = qemu+tcp://a/system\n"
                   "[node n2]\nuri = qemu:///system\ndomain = d\nmigrate_uri = qemu+tcp://b/system\n",
                   ":5: desktop d is the home desktop of [node n1] already, and both nodes migrate");
    assert_refused("[node n1]\nuri = qemu:///system\ndomain = d\nmigrate_address = n1-ib\n",
                   "bad value 'migrate_address = n1-ib': must be tcp://HOST");
    assert_refused("[node n1]\nuri = qemu:///system\ndomain = d\nmigrate_uri = n1\n",
                   "bad value 'migrate_uri = n1'");
    assert_refused("[vdesk]\nmigrate_unsafe = maybe\n", "bad value 'migrate_unsafe = maybe'");
    assert_refused("[vdesk]\nmigrate_feature = a,b\n", "must be one Slurm node feature");
    assert_refused("[vdesk]\nmigrate_downtime = 0\n", "bad value 'migrate_downtime = 0'");
    assert_refused("[node n1]\nuri = qemu:///system\ndomain = d\ndesktop_slots = 0\n",
                   "bad value 'desktop_slots = 0'");
}

/* desktops = and the choice vdeskctl select leaves in the state dir. */
static void desktops_and_the_selection(void **state)
{
    (void)state;
    char dir[64], text[512], sel[128];
    vd_conf c;
    vd_err err = { "" };
    snprintf(dir, sizeof(dir), "/tmp/vdesk-test-sel-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(text, sizeof(text), "[vdesk]\nstate_dir = %s\n[node n1]\nuri = qemu:///system\n"
             "domain = desk-n1\ndesktops = proj-a,  proj-b\n", dir);
    load_ok(text, &c);
    assert_int_equal(c.ndesktops, 2);
    assert_string_equal(c.desktops[1], "proj-b");
    assert_string_equal(c.domain, "desk-n1");
    assert_true(vd_conf_offers(&c, "proj-a") && vd_conf_offers(&c, "desk-n1"));
    assert_false(vd_conf_offers(&c, "proj-c"));
    /* Selected: it becomes the desktop, the default stays known. */
    assert_int_equal(vd_conf_selected_write(&c, "proj-b", &err), 0);
    load_ok(text, &c);
    assert_string_equal(c.domain, "proj-b");
    assert_string_equal(vd_conf_default_domain(&c), "desk-n1");
    assert_int_equal(vd_conf_selected_read(dir, sel, sizeof(sel), &err), 1);
    assert_string_equal(sel, "proj-b");
    /* What vdesk.conf does not offer is not written... */
    assert_int_equal(vd_conf_selected_write(&c, "proj-c", &err), -1);
    assert_non_null(strstr(err.msg, "does not offer"));
    /* ...and a choice the file no longer offers stops everything, naming
     * the fix: acting on another desktop than the one running is worse. */
    char path[128];
    snprintf(path, sizeof(path), "%s/selected", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("proj-c\n", fp);
    fclose(fp);
    const char *p = conf_file(text);
    assert_int_equal(vd_conf_load(p, "n1", &c, &err), -1);
    assert_non_null(strstr(err.msg, "no longer offers"));
    assert_non_null(strstr(err.msg, "/selected and run 'vdeskctl boot'"));
    /* Garbage, or a link planted there, is not followed. */
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("../../etc/passwd\nx\n", fp);
    fclose(fp);
    assert_int_equal(vd_conf_load(p, "n1", &c, &err), -1);
    assert_non_null(strstr(err.msg, "not one desktop name"));
    assert_int_equal(unlink(path), 0);
    assert_int_equal(symlink("/etc/hostname", path), 0);
    assert_int_equal(vd_conf_load(p, "n1", &c, &err), -1);
    assert_non_null(strstr(err.msg, "symbolic link"));
    unlink(path);
    unlink(p);
    assert_int_equal(rmdir(dir), 0);
    /* Bad lists. */
    assert_refused("[node n1]\nuri = qemu:///system\ndomain = d\ndesktops = a,a\n", "each once");
    assert_refused("[node n1]\nuri = qemu:///system\ndomain = d\ndesktops = a b\n", "desktops");
    assert_refused("[node n1]\nuri = qemu:///system\ndomain = d\ndesktops = .x\n", "desktops");
    assert_refused("[node n1]\nuri = qemu:///system\ndomain = d\ndesktops = ,\n", "at least one");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_file_for_a_node),
        cmocka_unit_test(profile_dir_is_an_absolute_path),
        cmocka_unit_test(node_without_a_section_has_no_desktop),
        cmocka_unit_test(whole_file_check_without_node),
        cmocka_unit_test(bad_files_name_line_and_cause),
        cmocka_unit_test(repeated_section_is_refused),
        cmocka_unit_test(incomplete_node_section_names_its_header),
        cmocka_unit_test(unclosed_section_header_is_reported_on_its_line),
        cmocka_unit_test(inline_comments_after_values),
        cmocka_unit_test(pci_address_must_be_canonical),
        cmocka_unit_test(domain_must_be_a_safe_name),
        cmocka_unit_test(desktop_cores_is_a_bounded_decimal_cpulist),
        cmocka_unit_test(node_policy_keys),
        cmocka_unit_test(node_policy_keys_refused),
        cmocka_unit_test(numbers_are_strict_decimal),
        cmocka_unit_test(missing_file_says_what_to_do),
        cmocka_unit_test(conf_path_honours_env),
        cmocka_unit_test(peers_and_migration_keys),
        cmocka_unit_test(desktops_and_the_selection),
    };
    return cmocka_run_group_tests_name("conf", tests, NULL, NULL);
}
