/* The ledger: append + reopen, a torn last line (SIGKILL mid-write) ignored
 * and truncated away on the next append, a corrupt line skipped, the last
 * record of a key wins, and a real SIGKILL of a writer loses nothing written. */
#include "fixtures/experiments/grid_toy.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];
static char path[128];

static void teardown(void)
{
    toy_rmtree(dir);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/fg-ledger-XXXXXX");
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/ledger.tsv", dir);
}

static char *slurp(void)
{
    char *d = NULL;
    cr_assert_eq(fg_file_read(path, &d, NULL), FG_OK);
    return d;
}

static void append_raw(const char *text)
{
    FILE *f = fopen(path, "a");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

Test(ledger, append_and_reopen, .init = setup, .fini = teardown)
{
    fg_ledger *l;
    cr_assert_eq(fg_ledger_open(dir, &l), FG_OK);
    cr_expect_eq(fg_ledger_count(l), 0);
    cr_assert_eq(fg_ledger_append(l, "key=a\tkind=fix\tacc=90"), FG_OK);
    cr_assert_eq(fg_ledger_append(l, "key=b\tkind=fix\tacc=91"), FG_OK);
    cr_expect(fg_ledger_has(l, "a") && fg_ledger_has(l, "b") && !fg_ledger_has(l, "c"));
    fg_ledger_close(l);

    char *d = slurp();
    char crc[17];
    fg_hash_hex(fg_hash64("key=a\tkind=fix\tacc=90", strlen("key=a\tkind=fix\tacc=90")), crc);
    char want[128];
    snprintf(want, sizeof want, "key=a\tkind=fix\tacc=90\tcrc=%s\n", crc);
    cr_expect(!strncmp(d, want, strlen(want)), "first line: %s", d);
    free(d);

    cr_assert_eq(fg_ledger_read(dir, &l), FG_OK);
    cr_expect_eq(fg_ledger_count(l), 2);
    cr_expect_str_eq(fg_ledger_record(l, 0), "key=a\tkind=fix\tacc=90", "crc stripped");
    cr_expect_str_eq(fg_ledger_get(l, "b"), "key=b\tkind=fix\tacc=91");
    cr_expect_eq(fg_ledger_n_corrupt(l), 0);
    cr_expect_eq(fg_ledger_append(l, "key=c\tkind=fix"), FG_ERR_ARG, "read-only");
    fg_ledger_close(l);
}

Test(ledger, rejects_bad_records, .init = setup, .fini = teardown)
{
    fg_ledger *l;
    cr_assert_eq(fg_ledger_open(dir, &l), FG_OK);
    cr_expect_eq(fg_ledger_append(l, "kind=fix\tacc=1"), FG_ERR_ARG, "no key");
    cr_expect_eq(fg_ledger_append(l, "key=a\tacc=1"), FG_ERR_ARG, "no kind");
    cr_expect_eq(fg_ledger_append(l, "key=a\tkind=fix\nkey=b\tkind=fix"), FG_ERR_ARG, "two lines");
    cr_expect_eq(fg_ledger_count(l), 0);
    fg_ledger_close(l);
}

Test(ledger, torn_line_ignored_then_truncated, .init = setup, .fini = teardown)
{
    fg_ledger *l;
    cr_assert_eq(fg_ledger_open(dir, &l), FG_OK);
    cr_assert_eq(fg_ledger_append(l, "key=a\tkind=fix"), FG_OK);
    fg_ledger_close(l);
    append_raw("key=b\tkind=fix\tacc=9"); /* killed before the crc and newline */

    cr_assert_eq(fg_ledger_open(dir, &l), FG_OK);
    cr_expect_eq(fg_ledger_torn(l), 1);
    cr_expect_eq(fg_ledger_count(l), 1);
    cr_expect(!fg_ledger_has(l, "b"));
    cr_expect_eq(fg_ledger_n_corrupt(l), 0, "a torn tail is not corruption");
    cr_assert_eq(fg_ledger_append(l, "key=c\tkind=fix"), FG_OK);
    cr_expect_eq(fg_ledger_torn(l), 0);
    fg_ledger_close(l);

    char *d = slurp();
    cr_expect(strstr(d, "key=b") == NULL, "torn tail truncated: %s", d);
    cr_expect(strstr(d, "\nkey=c\tkind=fix\tcrc=") != NULL, "clean line after the last good one");
    free(d);
    cr_assert_eq(fg_ledger_read(dir, &l), FG_OK);
    cr_expect_eq(fg_ledger_count(l), 2);
    cr_expect_eq(fg_ledger_torn(l), 0);
    fg_ledger_close(l);
}

Test(ledger, torn_crc_field, .init = setup, .fini = teardown)
{
    /* a line cut inside its crc field, newline missing */
    fg_ledger *l;
    cr_assert_eq(fg_ledger_open(dir, &l), FG_OK);
    cr_assert_eq(fg_ledger_append(l, "key=a\tkind=fix"), FG_OK);
    fg_ledger_close(l);
    append_raw("key=b\tkind=fix\tcrc=12ab");
    cr_assert_eq(fg_ledger_read(dir, &l), FG_OK);
    cr_expect_eq(fg_ledger_count(l), 1);
    cr_expect_eq(fg_ledger_torn(l), 1);
    fg_ledger_close(l);
}

Test(ledger, corrupt_line_skipped, .init = setup, .fini = teardown)
{
    fg_ledger *l;
    cr_assert_eq(fg_ledger_open(dir, &l), FG_OK);
    cr_assert_eq(fg_ledger_append(l, "key=a\tkind=fix\tacc=90.5"), FG_OK);
    cr_assert_eq(fg_ledger_append(l, "key=b\tkind=fix\tacc=80"), FG_OK);
    fg_ledger_close(l);
    /* flip one digit of record a's value: its checksum no longer matches */
    char *d = slurp();
    char *p = strstr(d, "acc=90.5");
    cr_assert(p);
    p[5] = '1';
    cr_assert_eq(fg_file_write_atomic(path, d, strlen(d)), FG_OK);
    free(d);
    append_raw("no checksum at all\n");
    append_raw("key=x\tkind=fix\tcrc=zzzzzzzzzzzzzzzz\n");

    cr_assert_eq(fg_ledger_read(dir, &l), FG_OK);
    cr_expect_eq(fg_ledger_n_corrupt(l), 3);
    cr_expect_eq(fg_ledger_count(l), 1);
    cr_expect(!fg_ledger_has(l, "a"), "corrupt record not trusted");
    cr_expect_str_eq(fg_ledger_get(l, "b"), "key=b\tkind=fix\tacc=80");
    fg_ledger_close(l);
}

Test(ledger, duplicate_key_last_wins, .init = setup, .fini = teardown)
{
    fg_ledger *l;
    cr_assert_eq(fg_ledger_open(dir, &l), FG_OK);
    cr_assert_eq(fg_ledger_append(l, "key=a\tkind=fix\toutcome=FAILURE"), FG_OK);
    cr_assert_eq(fg_ledger_append(l, "key=b\tkind=fix\toutcome=OK"), FG_OK);
    cr_assert_eq(fg_ledger_append(l, "key=a\tkind=fix\toutcome=OK"), FG_OK);
    cr_expect_eq(fg_ledger_count(l), 2);
    cr_expect_str_eq(fg_ledger_get(l, "a"), "key=a\tkind=fix\toutcome=OK");
    fg_ledger_close(l);
    cr_assert_eq(fg_ledger_read(dir, &l), FG_OK);
    cr_expect_eq(fg_ledger_count(l), 2);
    cr_expect_str_eq(fg_ledger_get(l, "a"), "key=a\tkind=fix\toutcome=OK");
    cr_expect_str_eq(fg_ledger_record(l, 0), "key=b\tkind=fix\toutcome=OK", "order of last lines");
    cr_expect_str_eq(fg_ledger_record(l, 1), "key=a\tkind=fix\toutcome=OK");
    fg_ledger_close(l);
}

Test(ledger, read_missing_is_notfound)
{
    fg_ledger *l = (fg_ledger *)1;
    cr_expect_eq(fg_ledger_read("/tmp/fg-no-such-dir-xyz", &l), FG_ERR_NOTFOUND);
    cr_expect_null(l);
    cr_expect(!fg_file_exists("/tmp/fg-no-such-dir-xyz"), "read-only open creates nothing");
}

Test(ledger, sigkilled_writer_keeps_every_finished_append, .init = setup, .fini = teardown)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        fg_ledger *l;
        if (fg_ledger_open(dir, &l)) _exit(1);
        char rec[128];
        for (int i = 0;; i++) {
            snprintf(rec, sizeof rec, "key=k%d\tkind=fix\tpad=%0*d", i, 60, i);
            if (fg_ledger_append(l, rec)) _exit(1);
        }
    }
    usleep(200000);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFSIGNALED(st), "writer was killed, not failed");
    fg_ledger *l;
    cr_assert_eq(fg_ledger_open(dir, &l), FG_OK);
    int n = fg_ledger_count(l);
    cr_expect_gt(n, 0);
    cr_expect_eq(fg_ledger_n_corrupt(l), 0);
    for (int i = 0; i < n; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        cr_expect(fg_ledger_has(l, key), "%s present: appends are in order", key);
    }
    cr_assert_eq(fg_ledger_append(l, "key=after\tkind=fix"), FG_OK);
    fg_ledger_close(l);
    cr_assert_eq(fg_ledger_read(dir, &l), FG_OK);
    cr_expect_eq(fg_ledger_count(l), n + 1);
    cr_expect_eq(fg_ledger_n_corrupt(l), 0);
    fg_ledger_close(l);
}
