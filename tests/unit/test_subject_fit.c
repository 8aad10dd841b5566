/* Subject data against its architecture (issue 15): data of the wrong shape
 * for the model's input, labels beyond its classes and degenerate data
 * (no rows, one class, empty splits, a train split under one batch) are
 * input errors naming the data file, the subject file, the key and both
 * sides. Before these checks each of them trained: out-of-bounds reads in
 * the training loop (ASan: heap-buffer-overflow in fg_train_epoch and
 * fg_loss_ce) or a NaN loss. A fitting subject still loads (the control). */
#include "fixgrid/subject.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/fg_fit_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    setenv("FIXGRID_HOME", FG_SOURCE_DIR, 1);
    setenv("FG_TEST_ROOT", dir, 1);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(fit, .init = setup, .fini = teardown);

static const char *path_of(const char *name)
{
    static char path[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", dir, name);
    return path[k];
}

static void write_text(const char *name, const char *text)
{
    FILE *f = fopen(path_of(name), "wb");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* IDX images n x side x side (pixel = (i + k) % 256) and labels label(i). */
static void write_idx(const char *img, const char *lab, int n, int side, int (*label)(int))
{
    FILE *f = fopen(path_of(img), "wb");
    cr_assert_not_null(f);
    unsigned char h[16] = {0, 0, 8, 3, 0, 0, (unsigned char)(n >> 8), (unsigned char)n,
                           0, 0, 0, (unsigned char)side, 0, 0, 0, (unsigned char)side};
    fwrite(h, 1, 16, f);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < side * side; k++)
            fputc((i + k) % 256, f);
    fclose(f);
    f = fopen(path_of(lab), "wb");
    cr_assert_not_null(f);
    unsigned char g[8] = {0, 0, 8, 1, 0, 0, (unsigned char)(n >> 8), (unsigned char)n};
    fwrite(g, 1, 8, f);
    for (int i = 0; i < n; i++)
        fputc(label(i), f);
    fclose(f);
}

static int ten_classes(int i)
{
    return i % 10;
}
static int beyond_ten(int i)
{
    return i == 37 ? 12 : i % 10;
}
static int one_class(int i)
{
    (void)i;
    return 3;
}

/* An IDX subject "s" with the given arch, split sizes and batch. */
static const char *idx_subject(const char *arch, const char *sizes, int batch)
{
    char y[1024];
    snprintf(y, sizeof y,
             "name: s\nrole: none\n"
             "dataset: {kind: idx, root_env: FG_TEST_ROOT, root: /nonexistent, get: make it,\n"
             "          train: [ti, tl], test: [si, sl]}\n"
             "split: {seed: 3, sizes: %s}\n"
             "arch: %s\nrecipe: {optim: sgd, lr: 0.1, epochs: 1, batch: %d}\n"
             "epsilon: 0.1\nepsilon_calibrated: false\n",
             sizes, arch, batch);
    write_text("s.yaml", y);
    return path_of("s.yaml");
}

/* A CSV subject "c" over tab.csv (label Y, positive "hi"), one pool. */
static const char *csv_subject(const char *arch, const char *fractions, int batch)
{
    char y[1024];
    snprintf(y, sizeof y,
             "name: c\nrole: none\n"
             "dataset: {kind: csv, root_env: FG_TEST_ROOT, root: /x, get: g, train: [tab.csv]}\n"
             "label: {column: Y, positive: [hi]}\n"
             "split: {seed: 1, fractions: %s}\n"
             "arch: %s\nrecipe: {optim: adam, lr: 0.001, epochs: 1, batch: %d}\n"
             "epsilon: 0.07\nepsilon_calibrated: false\n",
             fractions, arch, batch);
    write_text("c.yaml", y);
    return path_of("c.yaml");
}

/* rows of "Y,A,B" with label hi/lo by row parity (or all lo) */
static void write_table(int rows, int all_lo)
{
    char *csv = malloc(64 * (size_t)rows + 64);
    strcpy(csv, "Y,A,B\n");
    for (int i = 0; i < rows; i++) {
        char row[64];
        snprintf(row, sizeof row, "%s,%d,%d.5\n", all_lo || i % 2 ? "lo" : "hi", i, i % 7);
        strcat(csv, row);
    }
    write_text("tab.csv", csv);
    free(csv);
}

/* fg_subject_data fails with status and a message holding every needle. */
static void expect_data_error(const char *yaml_path, int status, const char *const *needles)
{
    fg_subject s;
    cr_assert_eq(fg_subject_load(yaml_path, &s), FG_OK, "%s", fg_errmsg());
    fg_dataset d[FG_SPLIT_COUNT];
    int rc = fg_subject_data(&s, d);
    cr_assert_eq(rc, status, "status %d, want %d: %s", rc, status, fg_errmsg());
    for (const char *const *n = needles; *n; n++)
        cr_assert_not_null(strstr(fg_errmsg(), *n), "want '%s' in '%s'", *n, fg_errmsg());
    for (int i = 0; i < FG_SPLIT_COUNT; i++)
        cr_assert_null(d[i].x);
}

Test(fit, fitting_idx_subject_loads)
{
    write_idx("ti", "tl", 120, 28, ten_classes);
    write_idx("si", "sl", 40, 28, ten_classes);
    fg_subject s;
    cr_assert_eq(fg_subject_load(idx_subject("tiny", "[100, 20, 20, 20]", 16), &s), FG_OK, "%s",
                 fg_errmsg());
    fg_dataset d[FG_SPLIT_COUNT];
    cr_assert_eq(fg_subject_data(&s, d), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(d[0].n, 100);
    cr_assert_eq(d[0].c * d[0].h * d[0].w, 784);
    for (int i = 0; i < FG_SPLIT_COUNT; i++)
        fg_dataset_free(&d[i]);
}

Test(fit, image_shape_differs_from_the_model_input)
{
    write_idx("ti", "tl", 120, 20, ten_classes);
    write_idx("si", "sl", 40, 20, ten_classes);
    const char *y = idx_subject("tiny", "[100, 20, 20, 20]", 16);
    const char *needles[] = {y, "arch: tiny takes inputs of 1x28x28 = 784 values", path_of("ti"),
                             "dataset.train", "1x20x20 = 400", NULL};
    expect_data_error(y, FG_ERR_SHAPE, needles);
}

Test(fit, image_data_for_a_table_model)
{
    write_idx("ti", "tl", 120, 28, ten_classes);
    write_idx("si", "sl", 40, 28, ten_classes);
    const char *y = idx_subject("income-mlp", "[100, 20, 20, 20]", 16);
    const char *needles[] = {y, "income-mlp takes inputs of 75x1x1 = 75 values", "1x28x28 = 784",
                             NULL};
    expect_data_error(y, FG_ERR_SHAPE, needles);
}

Test(fit, csv_with_too_few_feature_columns)
{
    write_table(40, 0);
    const char *y = csv_subject("income-mlp", "[0.5, 0.25, 0.125, 0.125]", 4);
    const char *needles[] = {y, "income-mlp takes inputs of 75x1x1 = 75 values", path_of("tab.csv"),
                             "dataset.train", "2x1x1 = 2 feature columns", NULL};
    expect_data_error(y, FG_ERR_SHAPE, needles);
}

Test(fit, label_beyond_the_model_classes)
{
    write_idx("ti", "tl", 120, 28, beyond_ten);
    write_idx("si", "sl", 40, 28, ten_classes);
    const char *y = idx_subject("tiny", "[100, 20, 20, 20]", 16);
    const char *needles[] = {path_of("tl"), "sample 37 has label 12", "tiny has 10 classes",
                             "dataset.train", y, NULL};
    expect_data_error(y, FG_ERR_ARG, needles);
}

Test(fit, label_beyond_the_classes_in_the_test_pool)
{
    write_idx("ti", "tl", 120, 28, ten_classes);
    write_idx("si", "sl", 40, 28, beyond_ten);
    const char *y = idx_subject("tiny", "[100, 20, 20, 20]", 16);
    const char *needles[] = {path_of("sl"), "label 12", "dataset.test", NULL};
    expect_data_error(y, FG_ERR_ARG, needles);
}

Test(fit, one_class_labels)
{
    write_idx("ti", "tl", 120, 28, one_class);
    write_idx("si", "sl", 40, 28, ten_classes);
    const char *y = idx_subject("tiny", "[100, 20, 20, 20]", 16);
    const char *needles[] = {path_of("tl"), "every one of its 120 samples has label 3",
                             "dataset.train", NULL};
    expect_data_error(y, FG_ERR_ARG, needles);
}

Test(fit, csv_label_column_with_one_class)
{
    write_table(40, 1);
    const char *y = csv_subject("m", "[0.5, 0.25, 0.125, 0.125]", 4);
    const char *needles[] = {path_of("tab.csv"), "has label 0", "label.column and label.positive",
                             y, NULL};
    expect_data_error(y, FG_ERR_ARG, needles);
}

Test(fit, csv_header_without_rows)
{
    write_text("tab.csv", "Y,A,B\n");
    const char *y = csv_subject("income-mlp", "[0.5, 0.25, 0.125, 0.125]", 4);
    const char *needles[] = {path_of("tab.csv"), "no data rows", "dataset.train", y, NULL};
    expect_data_error(y, FG_ERR_ARG, needles);
}

Test(fit, csv_every_row_dropped)
{
    write_text("tab.csv", "Y,A,B\nhi,,1\nlo,2,\n");
    const char *y = csv_subject("m", "[0.5, 0.25, 0.125, 0.125]", 4);
    const char *needles[] = {path_of("tab.csv"), "no data rows", NULL};
    expect_data_error(y, FG_ERR_ARG, needles);
}

Test(fit, empty_split)
{
    write_idx("ti", "tl", 120, 28, ten_classes);
    write_idx("si", "sl", 40, 28, ten_classes);
    const char *y = idx_subject("tiny", "[100, 20, 0, 20]", 16);
    const char *needles[] = {y, "split.sizes: the repair split comes out empty", NULL};
    expect_data_error(y, FG_ERR_ARG, needles);
}

Test(fit, fractions_leave_a_split_empty)
{
    write_table(6, 0);
    const char *y = csv_subject("m", "[0.8, 0.1, 0.05, 0.05]", 2);
    const char *needles[] = {y, "split.fractions: the", "split comes out empty", NULL};
    expect_data_error(y, FG_ERR_ARG, needles);
}

Test(fit, train_split_smaller_than_a_batch)
{
    write_idx("ti", "tl", 120, 28, ten_classes);
    write_idx("si", "sl", 40, 28, ten_classes);
    const char *y = idx_subject("tiny", "[30, 20, 20, 20]", 64);
    const char *needles[] = {y, "split.sizes: the train split has 30 rows, fewer than one batch",
                             "recipe.batch 64", NULL};
    expect_data_error(y, FG_ERR_ARG, needles);
}
