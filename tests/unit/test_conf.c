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
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        vd_conf c;
        vd_err err = { "" };
        const char *p = conf_file(cases[i].text);
        int rc = vd_conf_load(p, NULL, &c, &err);
        unlink(p);
        if (rc != -1)
            fail_msg("case %zu was accepted: %s", i, cases[i].text);
        if (!strstr(err.msg, cases[i].msg))
            fail_msg("case %zu: expected '%s' in '%s'", i, cases[i].msg, err.msg);
        assert_int_equal(strncmp(err.msg, p, strlen(p)), 0);   /* names the file */
    }
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_file_for_a_node),
        cmocka_unit_test(whole_file_check_without_node),
        cmocka_unit_test(bad_files_name_line_and_cause),
        cmocka_unit_test(missing_file_says_what_to_do),
        cmocka_unit_test(conf_path_honours_env),
    };
    return cmocka_run_group_tests_name("conf", tests, NULL, NULL);
}
