/* CSV loader: quoting, one-hot levels, missing-cell rows, label/group maps,
 * ragged rows and unknown columns; standardisation fitted on one set. */
#include "fixgrid/data.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64], path[128];

static void setup(void)
{
    strcpy(dir, "/tmp/fg_csv_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.csv", dir);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(csv, .init = setup, .fini = teardown);

static void write_text(const char *text)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static int label_rich(const char *cell, void *user)
{
    (void)user;
    if (strcmp(cell, "high") == 0) return 1;
    if (strcmp(cell, "low") == 0) return 0;
    return -1;
}

static int group_white(const char *cell, void *user)
{
    (void)user;
    return strcmp(cell, "White") == 0 ? 0 : 1;
}

static const char *const cats[] = {"COLOUR", "ETH", NULL};
static const char *const drops[] = {"NOTE", NULL};

static fg_csv_spec spec(void)
{
    return (fg_csv_spec){.label_col = "INC",
                         .group_col = "ETH",
                         .categorical = cats,
                         .drop = drops,
                         .label_fn = label_rich,
                         .group_fn = group_white,
                         .n_classes = 2,
                         .n_groups = 2};
}

Test(csv, quoting_onehot_and_dropped_rows)
{
    /* Row 4 misses AGE (dropped, counted); row 5 misses only the ignored NOTE
     * column (kept). Quoted fields hold a comma, a doubled quote and a
     * newline. CRLF line ends on one row. */
    write_text("\"INC\",\"AGE\",\"COLOUR\",\"ETH\",\"NOTE\"\n"
               "\"high\",30,\"red, dark\",\"White\",\"say \"\"hi\"\"\"\r\n"
               "low,2.5e1,blue,\"Black\",\"two\nlines\"\n"
               "low,,blue,White,x\n"
               "\n"
               "high,40,\"red, dark\",Asian,\n");
    fg_csv_spec s = spec();
    fg_dataset d;
    int dropped = -1;
    cr_assert_eq(fg_csv_load(path, &s, &d, &dropped), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(dropped, 1);
    cr_assert_eq(d.n, 3);
    /* AGE (1) + COLOUR levels {blue, "red, dark"} (2) + ETH levels
     * {Asian, Black, White} (3) */
    cr_assert_eq(d.c, 6);
    cr_assert_eq(d.h, 1);
    cr_assert_eq(d.w, 1);
    float want[3][6] = {{30, 0, 1, 0, 0, 1}, {25, 1, 0, 0, 1, 0}, {40, 0, 1, 1, 0, 0}};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 6; j++)
            cr_assert_float_eq(d.x[i * 6 + j], want[i][j], 1e-6, "%d %d", i, j);
    int want_y[] = {1, 0, 1}, want_g[] = {0, 1, 1};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(d.y[i], want_y[i]);
        cr_assert_eq(d.group[i], want_g[i]);
    }
    cr_assert_eq(d.n_classes, 2);
    cr_assert_eq(d.n_groups, 2);
    fg_dataset_free(&d);
}

Test(csv, ragged_row_names_line_and_counts)
{
    write_text("INC,AGE,COLOUR,ETH,NOTE\n"
               "high,30,red,White,a\n"
               "\"low\",\"multi\nline\",red,White,b\n"
               "low,31,red,White\n");
    fg_csv_spec s = spec();
    fg_dataset d;
    cr_assert_neq(fg_csv_load(path, &s, &d, NULL), FG_OK);
    char want[256];
    snprintf(want, sizeof want, "%s:5: expected 5 fields, got 4", path);
    cr_assert_str_eq(fg_errmsg(), want);
}

Test(csv, unknown_column_is_named)
{
    write_text("INC,AGE,COLOUR,ETH\nhigh,30,red,White\n");
    fg_csv_spec s = spec(); /* lists NOTE as dropped */
    fg_dataset d;
    cr_assert_neq(fg_csv_load(path, &s, &d, NULL), FG_OK);
    cr_assert_not_null(strstr(fg_errmsg(), "no column 'NOTE'"), "%s", fg_errmsg());
    cr_assert_not_null(strstr(fg_errmsg(), path));
    s.drop = NULL;
    s.label_col = "INCOME";
    cr_assert_neq(fg_csv_load(path, &s, &d, NULL), FG_OK);
    cr_assert_not_null(strstr(fg_errmsg(), ":1: no column 'INCOME' (label column)"), "%s",
                       fg_errmsg());
}

Test(csv, bad_cells_name_line)
{
    fg_csv_spec s = spec();
    s.drop = NULL;
    fg_dataset d;
    write_text("INC,AGE,COLOUR,ETH\nhigh,30,red,White\nlow,3O,red,White\n");
    cr_assert_neq(fg_csv_load(path, &s, &d, NULL), FG_OK);
    cr_assert_not_null(strstr(fg_errmsg(), ":3: column 'AGE': '3O' is not a number"), "%s",
                       fg_errmsg());
    write_text("INC,AGE,COLOUR,ETH\nmid,30,red,White\n");
    cr_assert_neq(fg_csv_load(path, &s, &d, NULL), FG_OK);
    cr_assert_not_null(strstr(fg_errmsg(), ":2: column 'INC': cannot map label 'mid'"), "%s",
                       fg_errmsg());
    write_text("INC,AGE,COLOUR,ETH\nhigh,\"30,red,White\n");
    cr_assert_neq(fg_csv_load(path, &s, &d, NULL), FG_OK);
    cr_assert_not_null(strstr(fg_errmsg(), ":2: unterminated quoted field"), "%s", fg_errmsg());
}

Test(csv, integer_labels_without_maps)
{
    write_text("y,a,b\n2,1,-1\n0,3,0.5\n");
    fg_csv_spec s = {.label_col = "y"};
    fg_dataset d;
    cr_assert_eq(fg_csv_load(path, &s, &d, NULL), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(d.n, 2);
    cr_assert_eq(d.c, 2);
    cr_assert_eq(d.n_classes, 3);
    cr_assert_null(d.group);
    cr_assert_eq(d.y[0], 2);
    cr_assert_float_eq(d.x[3], 0.5f, 1e-7);
    fg_dataset_free(&d);
}

Test(csv, standardize_fitted_on_train_only)
{
    /* train features: col0 {1, 3} mean 2 sd 1; col1 constant 5 -> sd 1 */
    float tx[] = {1, 5, 3, 5};
    int ty[] = {0, 1};
    fg_dataset train = {.n = 2, .c = 2, .h = 1, .w = 1, .x = tx, .y = ty};
    float mean[2], sd[2];
    fg_dataset_standardize_fit(&train, mean, sd);
    cr_assert_float_eq(mean[0], 2.0f, 1e-6);
    cr_assert_float_eq(sd[0], 1.0f, 1e-6);
    cr_assert_float_eq(mean[1], 5.0f, 1e-6);
    cr_assert_float_eq(sd[1], 1.0f, 1e-6);
    float vx[] = {4, 7};
    fg_dataset valid = {.n = 1, .c = 2, .h = 1, .w = 1, .x = vx, .y = ty};
    fg_dataset_standardize_features(&valid, mean, sd);
    cr_assert_float_eq(vx[0], 2.0f, 1e-6);
    cr_assert_float_eq(vx[1], 2.0f, 1e-6);
    float tx2[] = {2, 6, 4, 10}; /* col0 {2,4}: mean 3 sd 1; col1 {6,10}: mean 8 sd 2 */
    fg_dataset t2 = {.n = 2, .c = 2, .h = 1, .w = 1, .x = tx2, .y = ty};
    fg_dataset_standardize_fit(&t2, mean, sd);
    cr_assert_float_eq(sd[1], 2.0f, 1e-6);
    fg_dataset_standardize_features(&t2, mean, sd);
    cr_assert_float_eq(tx2[0], -1.0f, 1e-6);
    cr_assert_float_eq(tx2[3], 1.0f, 1e-6);
}

Test(csv, crlf_and_no_final_newline)
{
    write_text("y,\"a\"\r\n1,\"2\"\r\n0,3");
    fg_csv_spec s = {.label_col = "y"};
    fg_dataset d;
    cr_assert_eq(fg_csv_load(path, &s, &d, NULL), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(d.n, 2);
    cr_assert_float_eq(d.x[0], 2.0f, 0);
    cr_assert_float_eq(d.x[1], 3.0f, 0);
    fg_dataset_free(&d);
    write_text("");
    cr_assert_neq(fg_csv_load(path, &s, &d, NULL), FG_OK);
    cr_assert_not_null(strstr(fg_errmsg(), ":1: empty file"), "%s", fg_errmsg());
    write_text("y,a\n1,\"2\"x\n");
    cr_assert_neq(fg_csv_load(path, &s, &d, NULL), FG_OK);
    cr_assert_not_null(strstr(fg_errmsg(), ":2: unexpected character 'x'"), "%s", fg_errmsg());
}
