/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topo.h"

#define OK(call) do { if ((call) != 0) fail_msg("%s: %s", #call, err.msg); } while (0)

/* The emulator's server: 2 packages of 16 cores with 2 threads; the OS
 * numbers PUs 0-31 in package 0 (thread siblings N and N+1 in synthetic
 * order). */
static const char *server = "synthetic:pack:2 core:16 pu:2";

static void sizes(void **state)
{
    (void)state;
    vd_topo *t;
    vd_err err;
    int cores, pus;
    OK(vd_topo_open(server, &t, &err));
    vd_topo_size(t, &cores, &pus);
    assert_int_equal(cores, 32);
    assert_int_equal(pus, 64);
    vd_topo_close(t);
}

static void desktop_goes_to_the_package_without_devices(void **state)
{
    (void)state;
    vd_topo *t;
    vd_err err;
    char dos[128], dslurm[128], job[128];
    const char *devs[] = { "0-31" };   /* a GPU and an HCA on package 0 */
    OK(vd_topo_open(server, &t, &err));
    OK(vd_topo_split(t, devs, 1, 2, dos, dslurm, job, sizeof(dos), &err));
    assert_string_equal(dos, "60-63");      /* the last two cores of package 1, both threads */
    assert_string_equal(dslurm, "60-63");
    assert_string_equal(job, "0-59");
    vd_topo_close(t);
}

static void devices_on_both_packages_leave_the_non_local_cores(void **state)
{
    (void)state;
    vd_topo *t;
    vd_err err;
    char dos[128], dslurm[128], job[128];
    /* One GPU local to the first half of each package's cores. */
    const char *devs[] = { "0-15", "32-47" };
    OK(vd_topo_open(server, &t, &err));
    OK(vd_topo_split(t, devs, 2, 3, dos, dslurm, job, sizeof(dos), &err));
    /* Whole cores, none local to a device: ties go to the highest. */
    assert_string_equal(dos, "58-63");
    assert_string_equal(job, "0-57");
    vd_topo_close(t);
}

static void no_devices_takes_the_highest_cores(void **state)
{
    (void)state;
    vd_topo *t;
    vd_err err;
    char dos[128], dslurm[128], job[128];
    OK(vd_topo_open("synthetic:pack:1 core:8 pu:2", &t, &err));
    OK(vd_topo_split(t, NULL, 0, 1, dos, dslurm, job, sizeof(dos), &err));
    assert_string_equal(dos, "14-15");
    assert_string_equal(job, "0-13");
    vd_topo_close(t);
}

static void cores_of_a_device(void **state)
{
    (void)state;
    vd_topo *t;
    vd_err err;
    char out[128];
    OK(vd_topo_open(server, &t, &err));
    OK(vd_topo_cores_of(t, "32-63", out, sizeof(out), &err));
    assert_string_equal(out, "16-31");
    OK(vd_topo_cores_of(t, "1", out, sizeof(out), &err));
    assert_string_equal(out, "0");
    assert_int_equal(vd_topo_cores_of(t, "lots", out, sizeof(out), &err), -1);
    assert_non_null(strstr(err.msg, "'lots' is not a CPU list"));
    vd_topo_close(t);
}

static void bad_requests_are_refused(void **state)
{
    (void)state;
    vd_topo *t;
    vd_err err;
    char a[64], b[64], c[64];
    assert_int_equal(vd_topo_open("synthetic:nonsense", &t, &err), -1);
    assert_non_null(strstr(err.msg, "cannot load the topology of synthetic:nonsense"));
    OK(vd_topo_open("synthetic:pack:1 core:4 pu:1", &t, &err));
    assert_int_equal(vd_topo_split(t, NULL, 0, 4, a, b, c, sizeof(a), &err), -1);
    assert_non_null(strstr(err.msg, "1 to 3 of the node's 4 cores"));
    vd_topo_close(t);
}

static void pci_locality_from_an_xml_topology(void **state)
{
    (void)state;
    vd_topo *t;
    vd_err err;
    char path[512], out[128];
    const char *src = getenv("VDESK_SRC");
    snprintf(path, sizeof(path), "%s/tests/sysfs/server.xml", src && *src ? src : ".");
    OK(vd_topo_open(path, &t, &err));
    OK(vd_topo_pci_cpus(t, "0000:ca:00.0", out, sizeof(out), &err));
    assert_string_equal(out, "16-31,48-63");   /* package 1, as sysfs says */
    OK(vd_topo_pci_cpus(t, "0000:17:00.0", out, sizeof(out), &err));
    assert_string_equal(out, "0-15,32-47");
    assert_int_equal(vd_topo_pci_cpus(t, "0000:99:00.0", out, sizeof(out), &err), 1);
    vd_topo_close(t);
    /* A synthetic topology has no PCI objects. */
    OK(vd_topo_open(server, &t, &err));
    assert_int_equal(vd_topo_pci_cpus(t, "0000:ca:00.0", out, sizeof(out), &err), 1);
    vd_topo_close(t);
}

static void this_machine_loads(void **state)
{
    (void)state;
    vd_topo *t;
    vd_err err;
    int cores, pus;
    OK(vd_topo_open(NULL, &t, &err));
    vd_topo_size(t, &cores, &pus);
    assert_true(cores >= 1 && pus >= cores);
    vd_topo_close(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sizes),
        cmocka_unit_test(desktop_goes_to_the_package_without_devices),
        cmocka_unit_test(devices_on_both_packages_leave_the_non_local_cores),
        cmocka_unit_test(no_devices_takes_the_highest_cores),
        cmocka_unit_test(cores_of_a_device),
        cmocka_unit_test(bad_requests_are_refused),
        cmocka_unit_test(pci_locality_from_an_xml_topology),
        cmocka_unit_test(this_machine_loads),
    };
    return cmocka_run_group_tests_name("topo", tests, NULL, NULL);
}
