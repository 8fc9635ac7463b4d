/* SPDX-License-Identifier: MIT */
/* lib/shmem: names, sizes, the device XML, members read from domain XML,
 * and the registry read as untrusted input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmem.h"

static int dir_setup(void **state)
{
    static char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/vdesk-test-shmem-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    *state = dir;
    return 0;
}

static int dir_teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", (char *)*state);
    return system(cmd) == 0 ? 0 : -1;
}

static void put(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/shmem", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/shmem/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static void names_are_checked(void **state)
{
    (void)state;
    vd_err err;
    assert_int_equal(vd_shmem_name_check("grp-1_a", &err), 0);
    assert_int_equal(vd_shmem_name_check("A", &err), 0);
    const char *bad[] = { "", "../x", "a/b", "a.b", "-a", "_a", "a b", "a\n", "ä",
                          "0123456789012345678901234567890123456789012345678" /* 49 */ };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(vd_shmem_name_check(bad[i], &err), -1);
        assert_non_null(strstr(err.msg, "region name"));
    }
    assert_int_equal(vd_shmem_name_check("012345678901234567890123456789012345678901234567", &err), 0);
}

static void sizes_are_powers_of_two_in_range(void **state)
{
    (void)state;
    unsigned long long b = 0;
    vd_err err;
    assert_int_equal(vd_shmem_size_parse("1M", &b, &err), 0);
    assert_int_equal(b, 1ULL << 20);
    assert_int_equal(vd_shmem_size_parse("1048576", &b, &err), 0);
    assert_int_equal(b, 1048576);
    /* Powers of two below 1 MiB: libvirt refuses them. */
    assert_int_equal(vd_shmem_size_parse("4096", &b, &err), -1);
    assert_int_equal(vd_shmem_size_parse("512K", &b, &err), -1);
    assert_int_equal(vd_shmem_size_parse("2GiB", &b, &err), 0);
    assert_int_equal(b, 2ULL << 30);
    assert_int_equal(vd_shmem_size_parse("1024k", &b, &err), 0);
    assert_int_equal(b, 1ULL << 20);
    assert_int_equal(vd_shmem_size_parse("3M", &b, &err), -1);
    assert_non_null(strstr(err.msg, "not a power of two, which QEMU's ivshmem requires"));
    const char *bad[] = { "", "M", "-1M", "1X", "1 M", "2048", "128G", "99999999999999999999G",
                          "18446744073709551616", " 1M", "0" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(vd_shmem_size_parse(bad[i], &b, &err), -1);
    char buf[32];
    assert_string_equal(vd_shmem_size_str(1ULL << 20, buf, sizeof(buf)), "1 MiB");
    assert_string_equal(vd_shmem_size_str(3, buf, sizeof(buf)), "3 B");
    assert_string_equal(vd_shmem_size_str(1536ULL << 10, buf, sizeof(buf)), "1536 KiB");
}

static void roles_and_aliases(void **state)
{
    (void)state;
    vd_shmem_role r;
    vd_err err;
    char a[80];
    assert_int_equal(vd_shmem_role_parse("master", &r, &err), 0);
    assert_int_equal(r, VD_SHMEM_MASTER);
    assert_int_equal(vd_shmem_role_parse("peer", &r, &err), 0);
    assert_int_equal(r, VD_SHMEM_PEER);
    assert_int_equal(vd_shmem_role_parse("Master", &r, &err), -1);
    assert_string_equal(vd_shmem_alias("grp", a, sizeof(a)), "ua-shm-grp");
    assert_true(vd_shmem_is_alias("ua-shm-grp"));
    assert_false(vd_shmem_is_alias("ua-shm-"));
    assert_false(vd_shmem_is_alias("ua-gpu0"));
    assert_false(vd_shmem_is_alias("ua-shm-a.b"));
}

/* The XML built for a device, put into a domain as libvirt would show it,
 * reads back as the same member. */
static void device_xml_round_trip(void **state)
{
    (void)state;
    vd_shmem r = { .name = "grp", .size = 1ULL << 20 };
    vd_shmem_member m[4];
    int n = -1;
    char *xml = NULL, dom[1024];
    vd_err err;
    assert_int_equal(vd_shmem_dev_xml(&r, VD_SHMEM_PEER, &xml, &err), 0);
    assert_non_null(strstr(xml, "<shmem name=\"grp\" role=\"peer\">"));
    assert_non_null(strstr(xml, "<model type=\"ivshmem-plain\"/>"));
    assert_non_null(strstr(xml, "<size unit=\"KiB\">1024</size>"));
    assert_non_null(strstr(xml, "<alias name=\"ua-shm-grp\"/>"));
    snprintf(dom, sizeof(dom), "<domain><devices>%s</devices></domain>", xml);
    free(xml);
    assert_int_equal(vd_shmem_in_xml(dom, "desk", 1, m, 4, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(m[0].name, "grp");
    assert_string_equal(m[0].desktop, "desk");
    assert_int_equal(m[0].role, VD_SHMEM_PEER);
    assert_int_equal(m[0].size, 1ULL << 20);
    assert_true(m[0].live);
    assert_false(m[0].defined);
    /* Nothing else gets in: a bad name or size is refused before any XML. */
    vd_shmem bad = { .name = "a'b", .size = 1ULL << 20 };
    assert_int_equal(vd_shmem_dev_xml(&bad, VD_SHMEM_MASTER, &xml, &err), -1);
    assert_null(xml);
    vd_shmem odd = { .name = "ok", .size = 3 << 20 };
    assert_int_equal(vd_shmem_dev_xml(&odd, VD_SHMEM_MASTER, &xml, &err), -1);
}

/* Domain XML as libvirt writes it, and what it may hold otherwise. */
static void members_from_domain_xml(void **state)
{
    (void)state;
    vd_shmem_member m[4];
    int n = -1;
    vd_err err;
    const char *dom =
        "<domain type='qemu'><name>d</name><devices>"
        "<shmem name='a' role='master'><model type='ivshmem-plain'/><size unit='M'>4</size></shmem>"
        "<shmem name='b'><model type='ivshmem-plain'/><size unit='M'>1</size></shmem>"
        "<shmem name='c.d' role='peer'><size unit='M'>1</size></shmem>"      /* not vdesk's */
        "<shmem role='peer'><size unit='M'>1</size></shmem>"                  /* no name */
        "<shmem name='e' role='peer'><size unit='parsec'>1</size></shmem>"    /* bad unit */
        "<shmem name='f' role='peer'><size unit='G'>99999999999999999999</size></shmem>"
        "</devices></domain>";
    assert_int_equal(vd_shmem_in_xml(dom, "d", 0, m, 4, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(m[0].name, "a");
    assert_int_equal(m[0].role, VD_SHMEM_MASTER);
    assert_int_equal(m[0].size, 4ULL << 20);
    assert_true(m[0].defined);
    /* No role: QEMU's default, which migrates like a master. */
    assert_string_equal(m[1].name, "b");
    assert_int_equal(m[1].role, VD_SHMEM_MASTER);
    assert_int_equal(vd_shmem_in_xml("<domain><devices><shmem", "d", 0, m, 4, &n, &err), -1);
    assert_non_null(strstr(err.msg, "VM d: its XML does not parse"));
    assert_int_equal(vd_shmem_in_xml("<domain/>", "d", 0, m, 4, &n, &err), 0);
    assert_int_equal(n, 0);
    /* More devices than room: an error, not an overflow. */
    assert_int_equal(vd_shmem_in_xml(dom, "d", 0, m, 1, &n, &err), -1);
}

static void registry_text_is_untrusted(void **state)
{
    (void)state;
    vd_shmem r;
    vd_err err;
    const char *good = "{ \"name\": \"grp\", \"size\": 1048576 }\n";
    assert_int_equal(vd_shmem_parse("p", "grp", good, strlen(good), &r, &err), 0);
    assert_string_equal(r.name, "grp");
    assert_int_equal(r.size, 1048576);
    const char *bad[] = {
        "", "[]", "null", "{}", "{ \"name\": \"grp\" }", "{ \"size\": 1048576 }",
        "{ \"name\": \"other\", \"size\": 1048576 }",       /* not this file's region */
        "{ \"name\": \"grp\", \"size\": 1000000 }",         /* not a power of two */
        "{ \"name\": \"grp\", \"size\": -1048576 }",
        "{ \"name\": \"grp\", \"size\": \"1048576\" }",
        "{ \"name\": \"grp\", \"size\": 1048576.0 }",
        "{ \"name\": \"grp\", \"size\": 9223372036854775807 }",
        "{ \"name\": \"grp\", \"size\": 99999999999999999999999 }",
        "{ \"name\": [\"grp\"], \"size\": 1048576 }",
        "{ \"name\": \"grp\", \"size\": 1048576 } {}",      /* more after the object */
        "{ \"name\": \"grp\", \"size\": 1048576",           /* cut short */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(vd_shmem_parse("p", "grp", bad[i], strlen(bad[i]), &r, &err), -1);
        assert_non_null(strstr(err.msg, "p: "));
    }
    const char nul[] = "{ \"name\": \"grp\",\0 \"size\": 1048576 }";
    assert_int_equal(vd_shmem_parse("p", "grp", nul, sizeof(nul) - 1, &r, &err), -1);
    /* A valid file for a name that is not: refused all the same. */
    const char *dots = "{ \"name\": \"../x\", \"size\": 1048576 }";
    assert_int_equal(vd_shmem_parse("p", "../x", dots, strlen(dots), &r, &err), -1);
}

static void registry_files_are_untrusted(void **state)
{
    const char *dir = *state;
    char path[PATH_MAX], skipped[1024];
    vd_shmem r, list[VD_SHMEM_MAX];
    int n = -1;
    vd_err err;
    assert_int_equal(vd_shmem_load(dir, "none", &r, &err), -1);
    assert_non_null(strstr(err.msg, "unknown region 'none': create it first with 'vdeskctl shmem create none SIZE'"));
    put(dir, "good.json", "{ \"name\": \"good\", \"size\": 1048576 }\n");
    put(dir, "wrong.json", "{ \"name\": \"good\", \"size\": 1048576 }\n");
    put(dir, "big.json", "");
    snprintf(path, sizeof(path), "%s/shmem/big.json", dir);
    assert_int_equal(truncate(path, 1 << 20), 0);
    snprintf(path, sizeof(path), "%s/shmem/link.json", dir);
    assert_int_equal(symlink("good.json", path), 0);
    snprintf(path, sizeof(path), "%s/shmem/fifo.json", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(vd_shmem_load(dir, "good", &r, &err), 0);
    assert_int_equal(r.size, 1048576);
    assert_int_equal(vd_shmem_load(dir, "link", &r, &err), -1);
    assert_non_null(strstr(err.msg, "link.json"));
    assert_int_equal(vd_shmem_load(dir, "fifo", &r, &err), -1);   /* and no hang */
    assert_int_equal(vd_shmem_load(dir, "big", &r, &err), -1);
    assert_int_equal(vd_shmem_load(dir, "wrong", &r, &err), -1);
    assert_int_equal(vd_shmem_load(dir, "../shmem/good", &r, &err), -1);
    assert_int_equal(vd_shmem_list(dir, list, &n, skipped, sizeof(skipped), &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].name, "good");
    assert_true(skipped[0] != '\0');
}

static void create_writes_the_registry_once(void **state)
{
    const char *dir = *state;
    vd_conf *c = calloc(1, sizeof(*c));
    vd_shmem r;
    char name[64];
    vd_err err;
    assert_non_null(c);
    vd_conf_defaults(c);
    snprintf(c->state_dir, sizeof(c->state_dir), "%s", dir);
    snprintf(name, sizeof(name), "vdunit-%d", (int)getpid());
    assert_int_equal(vd_shmem_create(c, name, "3M", &err), -1);
    assert_int_equal(vd_shmem_load(dir, name, &r, &err), -1);
    assert_int_equal(vd_shmem_create(c, name, "2M", &err), 0);
    assert_int_equal(vd_shmem_load(dir, name, &r, &err), 0);
    assert_int_equal(r.size, 2ULL << 20);
    assert_int_equal(vd_shmem_create(c, name, "2M", &err), -1);
    assert_non_null(strstr(err.msg, "exists already"));
    free(c);
}

/* A journal's device XML for a region is rebuilt, never attached as is. */
static void journal_device_xml_is_rebuilt_or_refused(void **state)
{
    (void)state;
    char *out = NULL;
    vd_err err;
    const char *good = "<shmem name='grp' role='peer'><model type='ivshmem-plain'/>"
                       "<size unit='M'>2</size><alias name='ua-shm-grp'/><evil/></shmem>";
    assert_int_equal(vd_shmem_dev_xml_clean("ua-shm-grp", good, &out, &err), 0);
    assert_non_null(strstr(out, "role=\"peer\""));
    assert_non_null(strstr(out, "<size unit=\"KiB\">2048</size>"));
    assert_null(strstr(out, "evil"));
    free(out);
    const char *bad[] = {
        "<disk type='file'><source file='/etc/shadow'/></disk>",
        "<shmem name='other' role='peer'><model type='ivshmem-plain'/><size unit='M'>2</size></shmem>",
        "<shmem name='grp'><model type='ivshmem-doorbell'/><server path='/tmp/x'/><size unit='M'>2</size></shmem>",
        "<shmem name='grp'><model type='ivshmem-plain'/><size unit='M'>3</size></shmem>",
        "<shmem name='grp'><model type='ivshmem-plain'/><size unit='K'>4</size></shmem>",
        "<shmem name='../grp'><model type='ivshmem-plain'/><size unit='M'>2</size></shmem>",
        "not xml", "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        out = NULL;
        assert_int_equal(vd_shmem_dev_xml_clean("ua-shm-grp", bad[i], &out, &err), -1);
        assert_null(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_are_checked),
        cmocka_unit_test(sizes_are_powers_of_two_in_range),
        cmocka_unit_test(journal_device_xml_is_rebuilt_or_refused),
        cmocka_unit_test(roles_and_aliases),
        cmocka_unit_test(device_xml_round_trip),
        cmocka_unit_test(members_from_domain_xml),
        cmocka_unit_test(registry_text_is_untrusted),
        cmocka_unit_test_setup_teardown(registry_files_are_untrusted, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(create_writes_the_registry_once, dir_setup, dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
