/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "journal.h"
#include "statedir.h"

/* Counts the fsyncs lib/journal makes: the test program's fsync takes the
 * place of libc's for the whole program, and asks the kernel itself. */
static int fsyncs;

int fsync(int fd)
{
    fsyncs++;
    return (int)syscall(SYS_fsync, fd);
}

static int dir_setup(void **state)
{
    static char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/vdesk-test-journal-XXXXXX");
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

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static void read_file(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Loads TEXT as the journal: it must fail, naming the file and `what`. */
static void assert_refused(const char *dir, const char *text, const char *what)
{
    char path[PATH_MAX];
    vd_journal j;
    vd_err err = { "" };
    snprintf(path, sizeof(path), "%s/journal.json", dir);
    write_file(dir, "journal.json", text);
    if (vd_journal_load(dir, &j, &err) != -1)
        fail_msg("journal %.120s was accepted", text);
    if (!strstr(err.msg, path) || !strstr(err.msg, what) || !strstr(err.msg, "vdeskctl recover"))
        fail_msg("journal %.120s: message '%s' lacks '%s', the path or the fix", text, err.msg, what);
    assert_int_equal(j.ndevs, 0);
}

static void missing_journal_is_present(void **state)
{
    vd_journal j;
    vd_err err;
    assert_int_equal(vd_journal_load(*state, &j, &err), 0);
    assert_int_equal(j.phase, VD_PRESENT);
    assert_int_equal(j.njobs, 0);
}

static void save_and_load_round_trip(void **state)
{
    vd_journal j = { .phase = VD_EVICTED, .pinned = 1, .since_ms = 42 };
    vd_err err = { "" };
    snprintf(j.used, sizeof(j.used), "save");
    snprintf(j.step, sizeof(j.step), "unplug ua-gpu0");
    snprintf(j.save_file, sizeof(j.save_file), "/var/lib/vdesk/desk.save");
    snprintf(j.where, sizeof(j.where), "n3");
    assert_int_equal(vd_journal_add_job(&j, 7, &err), 0);
    assert_int_equal(vd_journal_add_job(&j, 9, &err), 0);
    assert_int_equal(vd_journal_add_job(&j, 7, &err), 0);   /* once only */
    snprintf(j.devs[0].alias, sizeof(j.devs[0].alias), "ua-gpu0");
    j.devs[0].xml = strdup("<hostdev mode='subsystem'>\n  <alias name=\"ua-gpu0\"/>\n</hostdev>");
    j.ndevs = 1;
    if (vd_journal_save(*state, &j, &err))
        fail_msg("%s", err.msg);

    vd_journal k;
    assert_int_equal(vd_journal_load(*state, &k, &err), 0);
    assert_int_equal(k.phase, VD_EVICTED);
    assert_string_equal(k.used, "save");
    assert_string_equal(k.step, "unplug ua-gpu0");
    assert_string_equal(k.save_file, "/var/lib/vdesk/desk.save");
    assert_int_equal(k.pinned, 1);
    assert_string_equal(k.where, "n3");
    assert_int_equal(k.since_ms, 42);
    assert_int_equal(k.njobs, 2);
    assert_true(vd_journal_has_job(&k, 9));
    assert_int_equal(k.ndevs, 1);
    assert_string_equal(k.devs[0].xml, j.devs[0].xml);
    vd_journal_drop_job(&k, 7);
    assert_false(vd_journal_has_job(&k, 7));
    assert_int_equal(k.njobs, 1);
    vd_journal_clear(&j);
    vd_journal_clear(&k);

    /* No temporary file is left beside the journal. */
    char tmp[128];
    snprintf(tmp, sizeof(tmp), "%s/.journal.json.tmp", (char *)*state);
    assert_int_not_equal(access(tmp, F_OK), 0);
}

static void corrupt_journal_says_what_to_do(void **state)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/journal.json", (char *)*state);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"version\": 1, \"phase\": \"sideways\"", f);
    fclose(f);
    vd_journal j;
    vd_err err;
    assert_int_equal(vd_journal_load(*state, &j, &err), -1);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "vdeskctl recover"));
}

static void unwritable_state_dir_is_an_error(void **state)
{
    (void)state;
    vd_journal j = { .phase = VD_EVICTING };
    vd_err err;
    assert_int_equal(vd_journal_save("/proc/vdesk-no-such-dir", &j, &err), -1);
    assert_non_null(strstr(err.msg, "/proc/vdesk-no-such-dir"));
}

static void lock_is_exclusive_and_times_out(void **state)
{
    int a = -1, b = -1;
    vd_err err;
    assert_int_equal(vd_lock_take(*state, 1, &a, &err), 0);
    /* flock locks belong to open file descriptions: a second open conflicts. */
    assert_int_equal(vd_lock_take(*state, 0, &b, &err), -1);
    assert_non_null(strstr(err.msg, "another vdesk operation holds the node's lock"));
    vd_lock_release(a);
    assert_int_equal(vd_lock_take(*state, 0, &b, &err), 0);
    vd_lock_release(b);
}

/* vdeskctl status shows who holds the lock (issue 10 item 5): before, a
 * live prolog looked like an interrupted operation. */
static void lock_holder_is_named_while_held(void **state)
{
    int a = -1;
    char who[300], want[64];
    vd_err err;
    assert_int_equal(vd_lock_holder(*state, who, sizeof(who)), 0);   /* never taken */
    assert_int_equal(vd_lock_take(*state, 1, &a, &err), 0);
    vd_lock_note(a, "evict for job 12\n\033[2J");
    assert_int_equal(vd_lock_holder(*state, who, sizeof(who)), 1);
    snprintf(want, sizeof(want), "pid %ld, evict for job 12", (long)getpid());
    assert_non_null(strstr(who, want));
    assert_non_null(strstr(who, ", since "));
    assert_null(strchr(who, '\033'));   /* what the file says is shown printable only */
    vd_lock_release(a);
    assert_int_equal(vd_lock_holder(*state, who, sizeof(who)), 0);   /* released: free again */
    assert_int_equal(vd_lock_take(*state, 0, &a, &err), 0);          /* and the holder check took nothing */
    vd_lock_release(a);
}

static void records_are_appended(void **state)
{
    vd_err err;
    assert_int_equal(vd_record_append(*state, "{\"a\":1}", &err), 0);
    assert_int_equal(vd_record_append(*state, "{\"a\":2}", &err), 0);
    char path[128], buf[64] = "";
    snprintf(path, sizeof(path), "%s/records.jsonl", (char *)*state);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_string_equal(buf, "{\"a\":1}\n{\"a\":2}\n");
}

#define HEAD "{\"version\":1,\"phase\":\"evicted\","

/* Each value of the wrong type or out of range: json-c asserted on some of
 * them, aborting every reader; now the load fails and says which value. */
static void ill_typed_journals_are_refused(void **state)
{
    static const struct { const char *text, *what; } cases[] = {
        { HEAD "\"jobs\":\"\"}", "\"jobs\" is not an array" },
        { HEAD "\"jobs\":{}}", "\"jobs\" is not an array" },
        { HEAD "\"devices\":\"\"}", "\"devices\" is not an array" },
        { HEAD "\"devices\":7}", "\"devices\" is not an array" },
        { HEAD "\"devices\":[1]}", "devices[0] is not an object" },
        { HEAD "\"devices\":[{\"alias\":\"ua-gpu0\",\"xml\":\"\"},[]]}", "devices[1] is not an object" },
        { HEAD "\"pinned\":\"x\"}", "\"pinned\"" },
        { HEAD "\"pinned\":2}", "\"pinned\"" },
        { HEAD "\"since_ms\":[]}", "\"since_ms\"" },
        { HEAD "\"since_ms\":1.5}", "\"since_ms\"" },
        { HEAD "\"since_ms\":-1}", "\"since_ms\"" },
        { HEAD "\"save_used\":\"yes\"}", "\"save_used\"" },
        { HEAD "\"where\":3}", "\"where\"" },
        { HEAD "\"where\":\"0123456789012345678901234567890123456789012345678901234567890123456789\"}", "\"where\"" },
        { HEAD "\"jobs\":[-1]}", "jobs[0]" },
        { HEAD "\"jobs\":[7,4294967296]}", "jobs[1]" },
        { HEAD "\"jobs\":[\"7\"]}", "jobs[0]" },
        { HEAD "\"jobs\":[null]}", "jobs[0]" },
        { HEAD "\"devices\":[{\"alias\":\"ua-gpu0\",\"xml\":5}]}", "devices[0].xml" },
        { HEAD "\"devices\":[{\"alias\":\"ua-gpu0\"}]}", "devices[0].xml" },
        { HEAD "\"devices\":[{\"alias\":\"gpu0\",\"xml\":\"\"}]}", "devices[0].alias" },
        { HEAD "\"devices\":[{\"alias\":\"ua-\",\"xml\":\"\"}]}", "devices[0].alias" },
        { HEAD "\"devices\":[{\"alias\":\"ua-a b\",\"xml\":\"\"}]}", "devices[0].alias" },
        { HEAD "\"devices\":[{\"alias\":\"ua-x'/><x\",\"xml\":\"\"}]}", "devices[0].alias" },
        { HEAD "\"devices\":[{\"alias\":7,\"xml\":\"\"}]}", "devices[0].alias" },
        { HEAD "\"devices\":[{\"xml\":\"\"}]}", "devices[0].alias" },
        { HEAD "\"devices\":[{\"alias\":\"ua-0123456789012345678901234567890123456789012345678901234567890\","
          "\"xml\":\"\"}]}", "devices[0].alias" },
        { HEAD "\"step\":[]}", "\"step\"" },
        { HEAD "\"step\":\"01234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567\"}", "\"step\"" },
        { HEAD "\"used\":\"a\\u0000b\"}", "\"used\"" },
        { HEAD "\"asked\":5}", "\"asked\"" },
        { HEAD "\"save_file\":true}", "\"save_file\"" },
        { HEAD "\"snapshot\":{}}", "\"snapshot\"" },
        { "{\"version\":\"1\",\"phase\":\"evicted\"}", "\"version\"" },
        { "{\"version\":2,\"phase\":\"evicted\"}", "\"version\"" },
        { "{\"version\":1,\"phase\":5}", "\"phase\"" },
        { "{\"version\":1}", "\"phase\"" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_refused(*state, cases[i].text, cases[i].what);
}

/* A path longer than the journal's field would be cut short, and a cut
 * save file path names another file. */
static void overlong_paths_are_refused(void **state)
{
    char text[PATH_MAX + 128];
    int n = snprintf(text, sizeof(text), HEAD "\"save_file\":\"/");
    memset(text + n, 'a', PATH_MAX);
    snprintf(text + n + PATH_MAX, sizeof(text) - (size_t)n - PATH_MAX, "\"}");
    assert_refused(*state, text, "\"save_file\"");
}

static void write_many(const char *dir, const char *key, const char *item, int count)
{
    size_t size = 64 + (size_t)count * (strlen(item) + 1);
    char *text = malloc(size);
    assert_non_null(text);
    int n = snprintf(text, size, HEAD "\"%s\":[", key);
    for (int i = 0; i < count; i++)
        n += snprintf(text + n, size - (size_t)n, "%s%s", i ? "," : "", item);
    snprintf(text + n, size - (size_t)n, "]}");
    write_file(dir, "journal.json", text);
    free(text);
}

/* More entries than the struct holds: dropping some would forget jobs
 * that hold the node or devices the desktop must get back. */
static void too_many_jobs_or_devices_are_refused(void **state)
{
    vd_journal j;
    vd_err err = { "" };
    write_many(*state, "jobs", "12", VD_MAX_JOBS);
    assert_int_equal(vd_journal_load(*state, &j, &err), 0);
    assert_int_equal(j.njobs, VD_MAX_JOBS);
    write_many(*state, "jobs", "12", VD_MAX_JOBS + 1);
    assert_int_equal(vd_journal_load(*state, &j, &err), -1);
    assert_non_null(strstr(err.msg, "65 jobs, more than the 64"));
    write_many(*state, "devices", "{\"alias\":\"ua-gpu0\",\"xml\":\"<hostdev/>\"}", VD_MAX_DEVICES);
    assert_int_equal(vd_journal_load(*state, &j, &err), 0);
    assert_int_equal(j.ndevs, VD_MAX_DEVICES);
    vd_journal_clear(&j);
    write_many(*state, "devices", "{\"alias\":\"ua-gpu0\",\"xml\":\"<hostdev/>\"}", VD_MAX_DEVICES + 1);
    assert_int_equal(vd_journal_load(*state, &j, &err), -1);
    assert_non_null(strstr(err.msg, "17 devices, more than the 16"));
    assert_int_equal(j.ndevs, 0);
}

static void unparseable_journals_are_refused(void **state)
{
    static const struct { const char *text, *what; } cases[] = {
        { "", "empty" },
        { "{\"version\": 1,", "not JSON" },
        { "\x01\x02garbage", "not JSON" },
        { "{\"version\":1,\"phase\":\"present\"} trailing", "not JSON" },
        { "{\"version\":1,\"phase\":\"present\"}{}", "not JSON" },
        { "[]", "not a JSON object" },
        { "\"journal\"", "not a JSON object" },
        { "null", "not a JSON object" },
        { "12", "not a JSON object" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_refused(*state, cases[i].text, cases[i].what);
    /* Whitespace after the object is what a text editor leaves: fine. */
    vd_journal j;
    vd_err err = { "" };
    write_file(*state, "journal.json", "{\"version\":1,\"phase\":\"present\"}\n\n");
    assert_int_equal(vd_journal_load(*state, &j, &err), 0);
}

static void set_aside_keeps_the_bad_journal(void **state)
{
    char kept[PATH_MAX], text[64], prefix[PATH_MAX];
    vd_journal j;
    vd_err err = { "" };
    write_file(*state, "journal.json", "{\"version\": 1,");
    assert_int_equal(vd_journal_load(*state, &j, &err), -1);
    long long before = vd_now_ms();
    if (vd_journal_set_aside(*state, kept, sizeof(kept), &err) < 0)
        fail_msg("%s", err.msg);
    snprintf(prefix, sizeof(prefix), "%s/journal.json.bad-", (char *)*state);
    assert_memory_equal(kept, prefix, strlen(prefix));
    assert_true(atoll(kept + strlen(prefix)) >= before);
    read_file(kept, text, sizeof(text));
    assert_string_equal(text, "{\"version\": 1,");
    /* The node now reads as present, for the engine to rebuild from. */
    assert_int_equal(vd_journal_load(*state, &j, &err), 0);
    assert_int_equal(j.phase, VD_PRESENT);

    /* Twice within a millisecond: the first one is kept too. */
    char kept2[PATH_MAX];
    write_file(*state, "journal.json", "x");
    assert_int_equal(vd_journal_set_aside(*state, kept, sizeof(kept), &err), 0);
    write_file(*state, "journal.json", "y");
    assert_int_equal(vd_journal_set_aside(*state, kept2, sizeof(kept2), &err), 0);
    assert_string_not_equal(kept, kept2);
    read_file(kept, text, sizeof(text));
    assert_string_equal(text, "x");

    assert_int_equal(vd_journal_set_aside(*state, kept, sizeof(kept), &err), -1);
    assert_non_null(strstr(err.msg, "journal.json"));
    assert_non_null(strstr(err.msg, "No such file"));
}

static void save_used_round_trips(void **state)
{
    vd_journal j = { .phase = VD_RESTORING, .save_used = 1 }, k;
    vd_err err = { "" };
    assert_int_equal(vd_journal_save(*state, &j, &err), 0);
    assert_int_equal(vd_journal_load(*state, &k, &err), 0);
    assert_int_equal(k.save_used, 1);
    char path[PATH_MAX], text[4096];
    snprintf(path, sizeof(path), "%s/journal.json", (char *)*state);
    read_file(path, text, sizeof(text));
    assert_non_null(strstr(text, "\"save_used\":1"));
    assert_non_null(strstr(text, "\"version\":1"));
    /* A journal written before the key existed still reads, as 0. */
    write_file(*state, "journal.json", "{\"version\":1,\"phase\":\"restoring\"}");
    assert_int_equal(vd_journal_load(*state, &k, &err), 0);
    assert_int_equal(k.save_used, 0);
}

/* One write and one fsync per file: the newline travels with the text. */
static void one_fsync_per_file(void **state)
{
    vd_journal j = { .phase = VD_EVICTED };
    vd_err err = { "" };
    char path[PATH_MAX], text[4096];
    fsyncs = 0;
    assert_int_equal(vd_journal_save(*state, &j, &err), 0);
    assert_int_equal(fsyncs, 2);   /* the file, then the directory */
    snprintf(path, sizeof(path), "%s/journal.json", (char *)*state);
    read_file(path, text, sizeof(text));
    assert_string_equal(text + strlen(text) - 2, "}\n");
    fsyncs = 0;
    assert_int_equal(vd_record_append(*state, "{\"a\":1}", &err), 0);
    assert_int_equal(fsyncs, 1);
}

/* vd_file_replace (reports, metrics, vdesk.conf): the mode asked whatever
 * the umask, the owner given when root, synced with its directory, and a
 * link planted where its temporary file goes is removed, not written
 * through. */
static void replaced_file_has_the_mode_and_owner_asked(void **state)
{
    char path[PATH_MAX], tmp[PATH_MAX + 32], victim[PATH_MAX], text[64];
    vd_err err = { "" };
    struct stat st;
    snprintf(path, sizeof(path), "%s/out.txt", (char *)*state);
    snprintf(victim, sizeof(victim), "%s/victim", (char *)*state);
    write_file(*state, "victim", "untouched\n");
    snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", path, (long)getpid());
    assert_int_equal(symlink(victim, tmp), 0);
    mode_t old = umask(077);
    fsyncs = 0;
    int rc = vd_file_replace(path, "new\n", 4, 0644, (uid_t)-1, (gid_t)-1, &err);
    umask(old);
    assert_int_equal(rc, 0);
    assert_int_equal(fsyncs, 2);   /* the file, then the directory */
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    read_file(path, text, sizeof(text));
    assert_string_equal(text, "new\n");
    read_file(victim, text, sizeof(text));
    assert_string_equal(text, "untouched\n");
    assert_int_equal(lstat(tmp, &st), -1);
    if (geteuid() == 0) {
        assert_int_equal(vd_file_replace(path, "x", 1, 0640, 4321, 4322, &err), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_uid, 4321);
        assert_int_equal(st.st_gid, 4322);
        assert_int_equal(st.st_mode & 07777, 0640);
    }
    /* A directory that is not there: the error names the file. */
    snprintf(path, sizeof(path), "%s/no/such/out.txt", (char *)*state);
    assert_int_equal(vd_file_replace(path, "x", 1, 0644, (uid_t)-1, (gid_t)-1, &err), -1);
    assert_non_null(strstr(err.msg, "no/such/out.txt.tmp-"));
}

static void make_link(const char *dir, const char *name, const char *target)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_int_equal(symlink(target, path), 0);
}

/* Someone who could plant a link in the state directory would have root
 * write through it: every file there is opened without following links. */
static void symlinks_in_the_state_dir_are_not_followed(void **state)
{
    char victim[PATH_MAX], text[256];
    vd_journal j = { .phase = VD_EVICTED }, k;
    vd_err err = { "" };
    snprintf(victim, sizeof(victim), "%s/victim", (char *)*state);
    write_file(*state, "victim", "{\"version\":1,\"phase\":\"evicted\"}");

    make_link(*state, "journal.json", victim);
    assert_int_equal(vd_journal_load(*state, &k, &err), -1);
    assert_non_null(strstr(err.msg, "journal.json"));
    assert_non_null(strstr(err.msg, "symbolic link"));

    make_link(*state, ".journal.json.tmp", victim);
    if (vd_journal_save(*state, &j, &err) < 0)
        fail_msg("%s", err.msg);
    read_file(victim, text, sizeof(text));
    assert_string_equal(text, "{\"version\":1,\"phase\":\"evicted\"}");
    struct stat st;
    snprintf(text, sizeof(text), "%s/journal.json", (char *)*state);
    assert_int_equal(lstat(text, &st), 0);
    assert_true(S_ISREG(st.st_mode));

    int fd = -1;
    make_link(*state, "lock", victim);
    assert_int_equal(vd_lock_take(*state, 0, &fd, &err), -1);
    assert_non_null(strstr(err.msg, "/lock"));
    assert_non_null(strstr(err.msg, "symbolic link"));

    make_link(*state, "records.jsonl", victim);
    assert_int_equal(vd_record_append(*state, "{\"a\":1}", &err), -1);
    assert_non_null(strstr(err.msg, "records.jsonl"));
    read_file(victim, text, sizeof(text));
    assert_string_equal(text, "{\"version\":1,\"phase\":\"evicted\"}");
}

static void state_dir_must_be_private(void **state)
{
    char dir[PATH_MAX], link[PATH_MAX];
    vd_err err = { "" };
    vd_journal j = { .phase = VD_EVICTED };
    int fd = -1;

    /* Made when missing, private. */
    snprintf(dir, sizeof(dir), "%s/a/b", (char *)*state);
    assert_int_equal(vd_state_dir_check(dir, &err), 0);
    struct stat st;
    assert_int_equal(lstat(dir, &st), 0);
    assert_int_equal(st.st_mode & 077, 0);

    assert_int_equal(chmod(dir, 0777), 0);
    assert_int_equal(vd_state_dir_check(dir, &err), -1);
    assert_non_null(strstr(err.msg, dir));
    assert_non_null(strstr(err.msg, "mode 0777"));
    assert_non_null(strstr(err.msg, "chmod 0700"));
    assert_int_equal(vd_lock_take(dir, 0, &fd, &err), -1);
    assert_non_null(strstr(err.msg, "chmod 0700"));
    assert_int_equal(vd_journal_save(dir, &j, &err), -1);
    assert_non_null(strstr(err.msg, "chmod 0700"));
    assert_int_equal(chmod(dir, 0720), 0);
    assert_int_equal(vd_state_dir_check(dir, &err), -1);
    assert_int_equal(chmod(dir, 0755), 0);
    assert_int_equal(vd_state_dir_check(dir, &err), 0);

    snprintf(link, sizeof(link), "%s/link", (char *)*state);
    assert_int_equal(symlink(dir, link), 0);
    assert_int_equal(vd_state_dir_check(link, &err), -1);
    assert_non_null(strstr(err.msg, link));
    assert_non_null(strstr(err.msg, "symbolic link"));
    assert_int_equal(vd_lock_take(link, 0, &fd, &err), -1);
    assert_int_equal(vd_journal_save(link, &j, &err), -1);

    write_file(*state, "plain", "");
    snprintf(link, sizeof(link), "%s/plain", (char *)*state);
    assert_int_equal(vd_state_dir_check(link, &err), -1);
    assert_non_null(strstr(err.msg, link));

    if (geteuid() != 0)
        return;   /* only root can give the directory away */
    assert_int_equal(chown(dir, 1, 0), 0);
    assert_int_equal(vd_state_dir_check(dir, &err), -1);
    assert_non_null(strstr(err.msg, "owned by uid 1"));
    assert_non_null(strstr(err.msg, "chown root:root"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(missing_journal_is_present, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(save_and_load_round_trip, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(corrupt_journal_says_what_to_do, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(unwritable_state_dir_is_an_error, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(lock_holder_is_named_while_held, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(lock_is_exclusive_and_times_out, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(records_are_appended, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(ill_typed_journals_are_refused, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(overlong_paths_are_refused, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(too_many_jobs_or_devices_are_refused, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(unparseable_journals_are_refused, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(set_aside_keeps_the_bad_journal, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(save_used_round_trips, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(one_fsync_per_file, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(replaced_file_has_the_mode_and_owner_asked, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(symlinks_in_the_state_dir_are_not_followed, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(state_dir_must_be_private, dir_setup, dir_teardown),
    };
    return cmocka_run_group_tests_name("journal", tests, NULL, NULL);
}
