/* SPDX-License-Identifier: MIT */
/*
 * lib/ib on machines without RDMA hardware: no device, or no verbs at all,
 * is a normal, empty answer; the emulated machines' HCAs (tests/sysfs),
 * which verbs cannot open, are listed from sysfs with their PCI function,
 * ports and SR-IOV VFs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "emu.h"
#include "ib.h"

static void no_hardware_is_an_empty_answer(void **state)
{
    (void)state;
    vd_ib_dev *v = (vd_ib_dev *)1;
    int n = -1, unavailable = -1;
    vd_err err = { "" };
    if (vd_ib_list("/nonexistent", &v, &n, &unavailable, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(n, 0);
    assert_null(v);
    assert_true(unavailable == 0 || unavailable == 1);
}

static void numvfs(const emu *e, const char *pf, int n)
{
    char p[160];
    snprintf(p, sizeof(p), "%s/bus/pci/devices/%s/sriov_numvfs", e->sys, pf);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fprintf(f, "%d\n", n);
    assert_int_equal(fclose(f), 0);
}

static void workstation_hca_and_its_vfs(void **state)
{
    emu *e = *state;
    vd_ib_dev *v = NULL;
    int n = 0, unavailable = 0;
    vd_err err = { "" };
    if (vd_ib_list(e->sys, &v, &n, &unavailable, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].name, "mlx5_0");
    assert_int_equal(v[0].verbs, 0);   /* the kernel has it, verbs cannot open it */
    assert_string_equal(v[0].pci, "0000:02:00.0");
    assert_string_equal(v[0].pf_pci, "");
    assert_int_equal(v[0].totalvfs, 4);
    assert_int_equal(v[0].numvfs, 0);
    assert_true(v[0].node_guid == 0x0c42a10300000004ULL);
    assert_int_equal(v[0].nports, 1);
    assert_string_equal(v[0].ports[0].state, "ACTIVE");
    assert_string_equal(v[0].ports[0].link_layer, "InfiniBand");
    assert_int_equal(v[0].ports[0].lid, 1);
    free(v);

    numvfs(e, "0000:02:00.0", 2);
    assert_int_equal(vd_ib_list(e->sys, &v, &n, &unavailable, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(v[0].numvfs, 2);
    for (int i = 1; i < 3; i++) {
        assert_string_equal(v[i].pf, "mlx5_0");
        assert_string_equal(v[i].pf_pci, "0000:02:00.0");
        assert_string_equal(v[i].ports[0].state, "DOWN");
    }
    assert_string_equal(v[1].pci, "0000:02:00.1");
    assert_string_equal(v[2].pci, "0000:02:00.2");
    free(v);
}

/* A function given to the desktop (vfio-pci) is no RDMA device of the host. */
static void hca_on_vfio_leaves_the_list(void **state)
{
    emu *e = *state;
    vd_ib_dev *v = NULL;
    vd_pci_group before;
    int n = 0, unavailable = 0;
    vd_err err = { "" };
    numvfs(e, "0000:b1:00.0", 1);
    assert_int_equal(vd_ib_list(e->sys, &v, &n, &unavailable, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(v[2].pci, "0000:b1:00.1");
    assert_string_equal(v[2].pf, "mlx5_1");
    free(v);
    if (vd_pci_to_vfio(&e->pci, "0000:b1:00.1", &before, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(vd_ib_list(e->sys, &v, &n, &unavailable, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].pci, "0000:17:00.0");
    assert_string_equal(v[1].pci, "0000:b1:00.0");
    assert_int_equal(v[1].numvfs, 1);   /* the VF exists; the desktop holds it */
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_hardware_is_an_empty_answer),
        cmocka_unit_test_setup_teardown(workstation_hca_and_its_vfs, ws_setup, emu_stop),
        cmocka_unit_test_setup_teardown(hca_on_vfio_leaves_the_list, srv_setup, emu_stop),
    };
    return cmocka_run_group_tests_name("ib", tests, NULL, NULL);
}
