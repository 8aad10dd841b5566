/* Splits: deterministic for a seed, different across seeds, disjoint parts
 * that together hold exactly the requested rows; subset and concat copy rows. */
#include "fixgrid/data.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* Pool of n rows, row i has x = (i, -i) and y = i % 3: x identifies the row. */
static fg_dataset pool(int n)
{
    fg_dataset d = {.n = n, .c = 2, .h = 1, .w = 1, .n_classes = 3};
    d.x = fg_xfloats((size_t)n * 2);
    d.y = fg_xmalloc(sizeof(int) * (size_t)n);
    d.group = fg_xmalloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) {
        d.x[2 * i] = (float)i;
        d.x[2 * i + 1] = (float)-i;
        d.y[i] = i % 3;
        d.group[i] = i % 2;
    }
    d.n_groups = 2;
    return d;
}

Test(split, deterministic_disjoint_and_consistent)
{
    fg_dataset p = pool(100);
    int sizes[4] = {50, 20, 15, 10};
    fg_dataset a[4], b[4], c[4];
    cr_assert_eq(fg_split_sizes(&p, sizes, 4, 7, a), FG_OK);
    cr_assert_eq(fg_split_sizes(&p, sizes, 4, 7, b), FG_OK);
    cr_assert_eq(fg_split_sizes(&p, sizes, 4, 8, c), FG_OK);
    int seen[100] = {0}, same = 1, differs = 0;
    for (int s = 0; s < 4; s++) {
        cr_assert_eq(a[s].n, sizes[s]);
        cr_assert_eq(a[s].c, 2);
        for (int i = 0; i < a[s].n; i++) {
            int row = (int)a[s].x[2 * i];
            cr_assert_float_eq(a[s].x[2 * i + 1], (float)-row, 0);
            cr_assert_eq(a[s].y[i], row % 3);
            cr_assert_eq(a[s].group[i], row % 2);
            seen[row]++;
            same &= a[s].x[2 * i] == b[s].x[2 * i];
            differs |= a[s].x[2 * i] != c[s].x[2 * i];
        }
    }
    int total = 0;
    for (int i = 0; i < 100; i++) {
        cr_assert_leq(seen[i], 1, "row %d in two parts", i);
        total += seen[i];
    }
    cr_assert_eq(total, 95);
    cr_assert(same, "same seed, different split");
    cr_assert(differs, "different seeds, same split");
    /* a shuffle, not the identity order */
    int ordered = 1;
    for (int i = 0; i < 50; i++)
        ordered &= (int)a[0].x[2 * i] == i;
    cr_assert(!ordered);
    for (int s = 0; s < 4; s++) {
        fg_dataset_free(&a[s]);
        fg_dataset_free(&b[s]);
        fg_dataset_free(&c[s]);
    }
    fg_dataset_free(&p);
}

Test(split, oversized_request_fails)
{
    fg_dataset p = pool(10);
    int sizes[2] = {6, 5};
    fg_dataset o[2];
    cr_assert_neq(fg_split_sizes(&p, sizes, 2, 1, o), FG_OK);
    cr_assert_not_null(strstr(fg_errmsg(), "need 11 rows, the pool has 10"), "%s", fg_errmsg());
    fg_dataset_free(&p);
}

Test(split, names)
{
    cr_assert_str_eq(fg_split_name(FG_SPLIT_TRAIN), "train");
    cr_assert_str_eq(fg_split_name(FG_SPLIT_VALID), "valid");
    cr_assert_str_eq(fg_split_name(FG_SPLIT_REPAIR), "repair");
    cr_assert_str_eq(fg_split_name(FG_SPLIT_TEST), "test");
}

Test(split, subset_and_concat)
{
    fg_dataset p = pool(5), s, t;
    int idx[] = {4, 1};
    fg_dataset_subset(&p, idx, 2, &s);
    cr_assert_eq(s.n, 2);
    cr_assert_float_eq(s.x[0], 4.0f, 0);
    cr_assert_eq(s.y[1], 1);
    int idx2[] = {0};
    fg_dataset_subset(&p, idx2, 1, &t);
    cr_assert_eq(fg_dataset_concat(&s, &t), FG_OK);
    cr_assert_eq(s.n, 3);
    cr_assert_float_eq(s.x[4], 0.0f, 0);
    cr_assert_float_eq(s.x[2], 1.0f, 0);
    cr_assert_eq(s.group[2], 0);
    fg_dataset bad = {.n = 1, .c = 3, .h = 1, .w = 1};
    cr_assert_eq(fg_dataset_concat(&s, &bad), FG_ERR_SHAPE);
    fg_dataset_free(&s);
    fg_dataset_free(&t);
    fg_dataset_free(&p);
}
