/* SPDX-License-Identifier: MIT */
/*
 * lib/hv against libvirt's own test driver (test:///default), which runs
 * inside the process: states, start/shutdown, purge and the error paths.
 * Hotplug is not supported by that driver; the test bed (tests/integration/
 * t_bed.sh) covers it on real QEMU guests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hv.h"

#define TEST_URI "test:///default"

/* Asserts success and shows vdesk's own message when it is not. */
#define OK(call) do { if ((call) != 0) fail_msg("%s: %s", #call, err.msg); } while (0)

static int hv_setup(void **state)
{
    vd_err err;
    vd_hv *hv = NULL;
    if (vd_hv_open(TEST_URI, &hv, &err) < 0) {
        print_error("%s\n", err.msg);
        return -1;
    }
    *state = hv;
    return 0;
}

static int hv_teardown(void **state)
{
    vd_hv_close(*state);
    return 0;
}

static void open_reports_uri(void **state)
{
    assert_string_equal(vd_hv_uri(*state), TEST_URI);
}

static void open_bad_uri_names_it(void **state)
{
    (void)state;
    vd_err err;
    vd_hv *hv = NULL;
    const char *uri = "qemu:///system?socket=/nonexistent/vdesk-sock";
    assert_int_equal(vd_hv_open(uri, &hv, &err), -1);
    assert_null(hv);
    assert_non_null(strstr(err.msg, uri));
    assert_non_null(strstr(err.msg, "is the libvirt daemon running?"));
}

static void state_of_running_and_missing(void **state)
{
    vd_err err;
    vd_dom_state s = VD_DOM_OTHER;
    OK(vd_hv_dom_state(*state, "test", &s, &err));
    assert_int_equal(s, VD_DOM_RUNNING);
    assert_string_equal(vd_dom_state_name(s), "running");
    OK(vd_hv_dom_state(*state, "no-such-vm", &s, &err));
    assert_int_equal(s, VD_DOM_MISSING);
}

static const char *dom_xml =
    "<domain type='test'><name>vd-unit</name><memory>65536</memory>"
    "<os><type>hvm</type></os></domain>";

static void create_shutdown_start_purge(void **state)
{
    vd_err err;
    vd_dom_state s;
    OK(vd_hv_dom_create(*state, dom_xml, &err));
    OK(vd_hv_dom_state(*state, "vd-unit", &s, &err));
    assert_int_equal(s, VD_DOM_RUNNING);
    OK(vd_hv_dom_shutdown(*state, "vd-unit", 1000, &err));
    OK(vd_hv_dom_state(*state, "vd-unit", &s, &err));
    assert_int_equal(s, VD_DOM_SHUTOFF);
    OK(vd_hv_dom_start(*state, "vd-unit", 0, &err));
    OK(vd_hv_dom_purge(*state, "vd-unit", &err));
    OK(vd_hv_dom_state(*state, "vd-unit", &s, &err));
    assert_int_equal(s, VD_DOM_MISSING);
}

static void list_has_test_domain(void **state)
{
    vd_err err;
    char **names = NULL;
    int n = 0, found = 0;
    OK(vd_hv_dom_list(*state, &names, &n, &err));
    for (int i = 0; i < n; i++)
        found |= strcmp(names[i], "test") == 0;
    vd_hv_names_free(names, n);
    assert_true(found);
}

static void missing_vm_errors_name_it(void **state)
{
    vd_err err;
    assert_int_equal(vd_hv_dom_start(*state, "ghost", 0, &err), -1);
    assert_non_null(strstr(err.msg, "VM ghost: not found"));
    assert_int_equal(vd_hv_dev_detach(*state, "ghost", "ua-gpu0", 100, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "VM ghost"));
}

static void bad_alias_refused_before_libvirt(void **state)
{
    vd_err err;
    int present;
    assert_int_equal(vd_hv_dev_present(*state, "test", "gpu0", &present, &err), -1);
    assert_non_null(strstr(err.msg, "must start with 'ua-'"));
    assert_int_equal(vd_hv_dev_present(*state, "test", "ua-x']|//*['", &present, &err), -1);
    assert_non_null(strstr(err.msg, "only letters, digits"));
}

static void absent_device_is_reported(void **state)
{
    vd_err err;
    int present = 1;
    char *xml = NULL;
    OK(vd_hv_dev_present(*state, "test", "ua-gpu0", &present, &err));
    assert_int_equal(present, 0);
    assert_int_equal(vd_hv_dev_xml(*state, "test", "ua-gpu0", &xml, &err), -1);
    assert_null(xml);
    assert_non_null(strstr(err.msg, "no device with alias ua-gpu0"));
}

/* Calls with a deadline that they meet: the watchdog is disarmed and
 * leaves the VM alone. The restored VM says where it came from. */
static void bounded_calls_that_finish_in_time(void **state)
{
    vd_err err;
    vd_dom_info st;
    char path[] = "/tmp/vdesk-hv-save-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    OK(vd_hv_dom_create(*state, dom_xml, &err));
    OK(vd_hv_dom_save(*state, "vd-unit", path, 5000, &err));
    OK(vd_hv_dom_info(*state, "vd-unit", &st, &err));
    assert_int_equal(st.state, VD_DOM_SHUTOFF);
    assert_false(st.busy);
    OK(vd_hv_dom_restore(*state, "vd-unit", path, 5000, &err));
    OK(vd_hv_dom_info(*state, "vd-unit", &st, &err));
    assert_int_equal(st.state, VD_DOM_RUNNING);
    assert_true(st.restored);
    assert_string_equal(st.what, "running");
    OK(vd_hv_dom_destroy(*state, "vd-unit", &err));
    OK(vd_hv_dom_start(*state, "vd-unit", 5000, &err));
    OK(vd_hv_dom_info(*state, "vd-unit", &st, &err));
    assert_int_equal(st.state, VD_DOM_RUNNING);
    assert_false(st.restored);
    OK(vd_hv_dom_purge(*state, "vd-unit", &err));
    unlink(path);
}

/* A paused VM is not busy; one libvirt is saving is (the reason says). */
static void paused_by_vdesk_is_not_busy(void **state)
{
    vd_err err;
    vd_dom_info st;
    OK(vd_hv_dom_suspend(*state, "test", &err));
    OK(vd_hv_dom_info(*state, "test", &st, &err));
    assert_int_equal(st.state, VD_DOM_PAUSED);
    assert_false(st.busy);
    OK(vd_hv_dom_resume(*state, "test", &err));
    OK(vd_hv_dom_info(*state, "no-such-vm", &st, &err));
    assert_int_equal(st.state, VD_DOM_MISSING);
}

/* --- what the driver can do (vd_hv_caps) --- */

static void caps_of_the_test_driver(void **state)
{
    vd_err err;
    vd_hv_caps c;
    OK(vd_hv_caps_get(*state, &c, &err));
    assert_string_equal(c.type, "TEST");
    assert_string_equal(c.driver, "test");
    unsigned want = VD_CAN_SUSPEND | VD_CAN_SAVE | VD_CAN_MANAGED_SAVE | VD_CAN_SHUTDOWN;
    assert_int_equal(c.can & want, want);
    assert_int_equal(c.can & (VD_CAN_MIGRATE | VD_CAN_HOTPLUG | VD_CAN_SNAPSHOT), 0);
    assert_int_equal(vd_hv_caps_need(&c, VD_CAN_SAVE | VD_CAN_SUSPEND, "save", &err), 0);
    assert_int_equal(vd_hv_caps_need(&c, VD_CAN_MIGRATE, "migrate", &err), -1);
    assert_string_equal(err.msg, "migrate: not supported by libvirt's test driver (no live migration)");
}

/* One row per driver; a driver not in the table may try everything. */
static void caps_table_rows(void **state)
{
    (void)state;
    vd_hv_caps c;
    vd_err err;
    vd_hv_caps_for_type("LXC", &c);
    assert_string_equal(c.driver, "lxc");
    assert_int_equal(c.can, VD_CAN_SUSPEND | VD_CAN_SHUTDOWN);
    assert_int_not_equal(c.shutdown_flags, 0);   /* the signal: its default does nothing */
    assert_non_null(strstr(c.shutdown_how, "SIGTERM"));
    assert_int_equal(vd_hv_caps_need(&c, VD_CAN_SAVE, "save", &err), -1);
    assert_string_equal(err.msg, "save: not supported by libvirt's lxc driver (no save and restore of "
                        "a domain's memory)");
    vd_hv_caps_for_type("QEMU", &c);
    assert_string_equal(c.driver, "qemu");
    assert_int_equal(c.can, VD_CAN_ALL);
    assert_int_equal(c.shutdown_flags, 0);
    vd_hv_caps_for_type("Xen", &c);
    assert_string_equal(c.driver, "libxl");
    assert_int_equal(c.can & (VD_CAN_SNAPSHOT | VD_CAN_PIN), 0);
    assert_true(c.can & VD_CAN_SAVE && c.can & VD_CAN_MIGRATE && c.can & VD_CAN_HOTPLUG);
    vd_hv_caps_for_type("xenlight", &c);
    assert_string_equal(c.driver, "libxl");
    vd_hv_caps_for_type("VBOX", &c);
    assert_string_equal(c.driver, "unknown");
    assert_string_equal(c.type, "VBOX");
    assert_int_equal(c.can, VD_CAN_ALL);
    assert_string_equal(vd_hv_can_name(VD_CAN_MANAGED_SAVE), "managed-save");
}

/* The test hook takes capabilities away, read once per connection (at
 * its first question). */
static void caps_test_hook_takes_away(void **state)
{
    vd_err err;
    vd_hv *hv = NULL;
    vd_hv_caps c;
    int has = 1;
    OK(vd_hv_dom_create(*state, dom_xml, &err));
    OK(vd_hv_dom_managed_save(*state, "vd-unit", 5000, &err));
    OK(vd_hv_dom_managed_save_has(*state, "vd-unit", &has, &err));
    assert_int_equal(has, 1);
    assert_int_equal(setenv("VDESK_TEST_DRIVER_LACKS", "save,bogus,managed-save", 1), 0);
    int rc = vd_hv_open(TEST_URI, &hv, &err);
    if (rc == 0)
        rc = vd_hv_caps_get(hv, &c, &err);
    unsetenv("VDESK_TEST_DRIVER_LACKS");
    OK(rc);
    assert_int_equal(c.can & (VD_CAN_SAVE | VD_CAN_MANAGED_SAVE), 0);
    assert_true(c.can & VD_CAN_SUSPEND);
    /* Without managed save there is none, and no call is made for it. */
    OK(vd_hv_dom_managed_save_has(hv, "vd-unit", &has, &err));
    assert_int_equal(has, 0);
    vd_hv_close(hv);
    OK(vd_hv_dom_purge(*state, "vd-unit", &err));
}

/* Domain capabilities: a list of PCI backends, or an error naming the
 * daemon (drivers without domain capabilities). */
/* libvirt 9's test driver has no domain capabilities: the error names the
 * daemon and what it lacks. libvirt 11's has them: the answer is a list of
 * backend names (words, comma-separated), nothing else. */
static void pci_backends_answer_or_name_the_daemon(void **state)
{
    vd_err err = { "" };
    char buf[64];
    if (vd_hv_pci_backends(*state, buf, sizeof(buf), &err) < 0) {
        assert_non_null(strstr(err.msg, TEST_URI));
        assert_non_null(strstr(err.msg, "no domain capabilities"));
        return;
    }
    char *save = NULL;
    for (char *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
        assert_int_equal(strspn(t, "abcdefghijklmnopqrstuvwxyz-_0123456789"), strlen(t));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(open_reports_uri),
        cmocka_unit_test(open_bad_uri_names_it),
        cmocka_unit_test(state_of_running_and_missing),
        cmocka_unit_test(create_shutdown_start_purge),
        cmocka_unit_test(list_has_test_domain),
        cmocka_unit_test(missing_vm_errors_name_it),
        cmocka_unit_test(bad_alias_refused_before_libvirt),
        cmocka_unit_test(absent_device_is_reported),
        cmocka_unit_test(bounded_calls_that_finish_in_time),
        cmocka_unit_test(paused_by_vdesk_is_not_busy),
        cmocka_unit_test(caps_of_the_test_driver),
        cmocka_unit_test(caps_table_rows),
        cmocka_unit_test(caps_test_hook_takes_away),
        cmocka_unit_test(pci_backends_answer_or_name_the_daemon),
    };
    return cmocka_run_group_tests_name("hv", tests, hv_setup, hv_teardown);
}
