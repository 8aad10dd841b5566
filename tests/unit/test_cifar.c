/* CIFAR-10 binary loader: batches written here; a truncated record and a bad
 * label must be reported with the file and the offset. */
#include "fixgrid/data.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { REC = 3073 };
static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/fg_cifar_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(cifar, .init = setup, .fini = teardown);

/* n records: label (first + r) % 10, pixel k = (r + k) % 256. */
static void write_batch(const char *path, int n, int first, size_t cut)
{
    unsigned char *b = malloc((size_t)n * REC);
    for (int r = 0; r < n; r++) {
        b[(size_t)r * REC] = (unsigned char)((first + r) % 10);
        for (int k = 0; k < 3072; k++)
            b[(size_t)r * REC + 1 + k] = (unsigned char)((r + k) % 256);
    }
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fwrite(b, 1, (size_t)n * REC - cut, f);
    fclose(f);
    free(b);
}

Test(cifar, batches_concatenate_in_order)
{
    char a[128], b[128];
    snprintf(a, sizeof a, "%s/data_batch_1.bin", dir);
    snprintf(b, sizeof b, "%s/data_batch_2.bin", dir);
    write_batch(a, 3, 0, 0);
    write_batch(b, 2, 7, 0);
    const char *paths[] = {a, b};
    fg_dataset d;
    cr_assert_eq(fg_cifar_load(paths, 2, &d), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(d.n, 5);
    cr_assert_eq(d.c, 3);
    cr_assert_eq(d.h, 32);
    cr_assert_eq(d.w, 32);
    cr_assert_eq(d.n_classes, 10);
    int want_y[] = {0, 1, 2, 7, 8};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(d.y[i], want_y[i]);
    /* record 1 of batch 2 (row 4): green channel pixel (0,5) is k = 1024 + 5 */
    cr_assert_float_eq(d.x[4 * 3072 + 1024 + 5], (float)((1 + 1024 + 5) % 256) / 255.0f, 1e-7);
    cr_assert_float_eq(d.x[0], 0.0f, 1e-7);
    cr_assert_float_eq(d.x[255], 1.0f, 1e-7);
    fg_dataset_free(&d);
}

Test(cifar, truncated_record_names_file_and_offset)
{
    char a[128];
    snprintf(a, sizeof a, "%s/test_batch.bin", dir);
    write_batch(a, 3, 0, 100);
    const char *paths[] = {a};
    fg_dataset d;
    cr_assert_neq(fg_cifar_load(paths, 1, &d), FG_OK);
    char want[256];
    snprintf(want, sizeof want, "%s: offset %d: truncated record 2", a, 2 * REC);
    cr_assert_not_null(strstr(fg_errmsg(), want), "%s", fg_errmsg());
}

Test(cifar, bad_label_names_offset)
{
    char a[128];
    snprintf(a, sizeof a, "%s/bad.bin", dir);
    write_batch(a, 2, 0, 0);
    FILE *f = fopen(a, "r+b");
    fseek(f, REC, SEEK_SET);
    fputc(12, f);
    fclose(f);
    const char *paths[] = {a};
    fg_dataset d;
    cr_assert_neq(fg_cifar_load(paths, 1, &d), FG_OK);
    char want[256];
    snprintf(want, sizeof want, "%s: offset %d: label 12", a, REC);
    cr_assert_not_null(strstr(fg_errmsg(), want), "%s", fg_errmsg());
}

Test(cifar, missing_batch_names_path)
{
    char a[128];
    snprintf(a, sizeof a, "%s/absent.bin", dir);
    const char *paths[] = {a};
    fg_dataset d;
    cr_assert_neq(fg_cifar_load(paths, 1, &d), FG_OK);
    cr_assert_not_null(strstr(fg_errmsg(), a));
}
