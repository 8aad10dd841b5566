/* The disk filling up during ledger appends: the append that does not fit
 * fails with a line naming the ledger and the cause, the partial line it left
 * is cut off (no torn ledger: every line on disk is a whole record), and
 * appends succeed again once space is freed, with every record before and
 * after intact. On a 64 KiB tmpfs when this runs as root, otherwise (or with
 * FG_TEST_NO_MOUNT=1) a file size limit (RLIMIT_FSIZE) stands in. */
#include "fixgrid/grid.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];
static int mounted;

/* Mount a tmpfs of `size` at dir in a mount namespace of this test process
 * alone, so the mount goes away with the process even when an assertion
 * ends the test early; 0 when that is not allowed here (not root). */
static int mount_private_tmpfs(const char *where, const char *size)
{
    if (geteuid() != 0 || unshare(CLONE_NEWNS) != 0) return 0;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return 0;
    char opts[32];
    snprintf(opts, sizeof opts, "size=%s", size);
    return mount("tmpfs", where, "tmpfs", 0, opts) == 0;
}

static void setup(void)
{
    snprintf(dir, sizeof dir, FG_BINARY_DIR "/test-ledger-full.%ld", (long)getpid());
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(fg_mkdirs(dir), FG_OK);
}

static void teardown(void)
{
    if (mounted && umount(dir) == 0) mounted = 0;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) cr_log_warn("could not remove %s", dir);
}

static char *record(int i)
{
    static char pad[1001];
    memset(pad, 'x', 1000);
    fg_record_buf b = {0};
    char key[32];
    snprintf(key, sizeof key, "job%04d", i);
    fg_record_begin(&b, key, "fix");
    fg_record_int(&b, "seed", i);
    fg_record_str(&b, "note", pad); /* ~1 KiB a line: a line straddles the limit */
    return fg_record_take(&b);
}

/* 1 when every byte of the file belongs to a whole line */
static int ends_clean(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    cr_assert_eq(fg_file_read(path, &text, &len), FG_OK);
    int ok = len == 0 || text[len - 1] == '\n';
    free(text);
    return ok;
}

Test(ledger_full, append_on_a_full_disk_keeps_the_ledger_whole, .init = setup, .fini = teardown)
{
    const char *no = getenv("FG_TEST_NO_MOUNT");
    struct rlimit old;
    if (!(no && !strcmp(no, "1")) && mount_private_tmpfs(dir, "64k")) {
        mounted = 1;
    } else {
        cr_log_info("RLIMIT_FSIZE stands in for a full disk");
        signal(SIGXFSZ, SIG_IGN); /* write() then fails with EFBIG, as fixgrid's main sets */
        getrlimit(RLIMIT_FSIZE, &old);
        struct rlimit lim = {.rlim_cur = 40 * 1024 + 500, .rlim_max = old.rlim_max};
        cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    }
    char filler[300], path[300];
    snprintf(filler, sizeof filler, "%s/filler", dir);
    snprintf(path, sizeof path, "%s/ledger.tsv", dir);
    if (mounted) {
        /* 24 KiB taken: the ledger gets the other 40 */
        FILE *f = fopen(filler, "wb");
        static char block[4096];
        for (int i = 0; i < 6; i++)
            cr_assert_eq(fwrite(block, 1, sizeof block, f), sizeof block);
        fclose(f);
    }
    fg_ledger *l = NULL;
    cr_assert_eq(fg_ledger_open(dir, &l), FG_OK, "%s", fg_errmsg());
    int ok = 0, rc = FG_OK;
    for (int i = 0; i < 200 && rc == FG_OK; i++) {
        char *r = record(i);
        rc = fg_ledger_append(l, r);
        free(r);
        if (rc == FG_OK) ok++;
    }
    cr_assert_eq(rc, FG_ERR_IO, "the disk never filled");
    cr_assert(ok > 10 && ok < 60, "%d appends fit", ok);
    cr_assert(strstr(fg_errmsg(), "ledger.tsv: append failed") &&
                  (strstr(fg_errmsg(), strerror(ENOSPC)) || strstr(fg_errmsg(), strerror(EFBIG))),
              "unclear: %s", fg_errmsg());
    cr_assert(ends_clean(path), "a partial line was left in the ledger");
    /* a second failing append leaves it whole too */
    char *r = record(999);
    cr_assert_eq(fg_ledger_append(l, r), FG_ERR_IO);
    free(r);
    cr_assert(ends_clean(path));
    fg_ledger *back = NULL;
    cr_assert_eq(fg_ledger_read(dir, &back), FG_OK);
    cr_assert_eq(fg_ledger_count(back), ok);
    cr_assert_eq(fg_ledger_n_corrupt(back), 0);
    cr_assert_eq(fg_ledger_torn(back), 0);
    fg_ledger_close(back);

    /* space freed: the same ledger handle resumes, nothing lost */
    if (mounted)
        cr_assert_eq(unlink(filler), 0);
    else
        cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    for (int i = ok; i < ok + 5; i++) {
        r = record(i);
        cr_assert_eq(fg_ledger_append(l, r), FG_OK, "%s", fg_errmsg());
        free(r);
    }
    fg_ledger_close(l);
    cr_assert_eq(fg_ledger_read(dir, &back), FG_OK);
    cr_assert_eq(fg_ledger_count(back), ok + 5);
    cr_assert_eq(fg_ledger_n_corrupt(back), 0, "a record was glued onto a fragment");
    for (int i = 0; i < ok + 5; i++) {
        char key[32];
        snprintf(key, sizeof key, "job%04d", i);
        cr_assert_not_null(fg_ledger_get(back, key), "%s lost", key);
    }
    fg_ledger_close(back);
}
