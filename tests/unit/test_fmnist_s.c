/* Colour-skewed sets (Fashion-MNIST-S, CIFAR-10S): exact per-class colour
 * shares in skewed sets, both versions of every image in evaluation sets,
 * grayscale = three equal channels, colour = a tint of the intensity. */
#include "fixgrid/data.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* n grayscale 2x2 images, class i % 10, pixels in (0, 1]. */
static fg_dataset gray(int n)
{
    fg_dataset d = {.n = n, .c = 1, .h = 2, .w = 2, .n_classes = 10};
    d.x = fg_xfloats((size_t)n * 4);
    d.y = fg_xmalloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) {
        d.y[i] = i % 10;
        for (int k = 0; k < 4; k++)
            d.x[4 * i + k] = (float)((i * 7 + k * 3) % 50 + 1) / 50.0f;
    }
    return d;
}

static int is_gray(const fg_dataset *d, int i)
{
    const float *x = d->x + (size_t)i * 12;
    for (int k = 0; k < 4; k++)
        if (x[k] != x[4 + k] || x[k] != x[8 + k]) return 0;
    return 1;
}

Test(fmnist_s, skewed_shares_are_exact)
{
    fg_dataset g = gray(400); /* 40 per class */
    float share[10];
    fg_cskew_study_shares(10, share);
    cr_assert_float_eq(share[4], 0.95f, 0);
    cr_assert_float_eq(share[5], 0.05f, 0);
    fg_dataset s;
    cr_assert_eq(fg_cskew_skewed(&g, share, 3, &s), FG_OK);
    cr_assert_eq(s.n, 400);
    cr_assert_eq(s.c, 3);
    cr_assert_eq(s.n_groups, 2);
    int colour[10] = {0}, total[10] = {0};
    for (int i = 0; i < s.n; i++) {
        cr_assert_eq(s.y[i], g.y[i]);
        total[s.y[i]]++;
        /* the group tells the truth about the pixels */
        cr_assert_eq(s.group[i] == FG_CSKEW_GRAY, is_gray(&s, i), "image %d", i);
        if (s.group[i] == FG_CSKEW_COLOUR)
            colour[s.y[i]]++;
        else
            for (int k = 0; k < 4; k++)
                cr_assert_float_eq(s.x[12 * i + k], g.x[4 * i + k], 0);
    }
    for (int c = 0; c < 10; c++) {
        cr_assert_eq(total[c], 40);
        cr_assert_eq(colour[c], c < 5 ? 38 : 2, "class %d: %d colour", c,
                     colour[c]); /* 0.95 x 40 */
    }
    /* deterministic; another seed picks other images */
    fg_dataset s2, s3;
    cr_assert_eq(fg_cskew_skewed(&g, share, 3, &s2), FG_OK);
    cr_assert_eq(fg_cskew_skewed(&g, share, 4, &s3), FG_OK);
    cr_assert_eq(memcmp(s.x, s2.x, sizeof(float) * 400 * 12), 0);
    cr_assert_neq(memcmp(s.group, s3.group, sizeof(int) * 400), 0);
    fg_dataset_free(&s);
    fg_dataset_free(&s2);
    fg_dataset_free(&s3);
    fg_dataset_free(&g);
}

Test(fmnist_s, tint_scales_intensity)
{
    fg_dataset g = gray(20);
    fg_dataset b;
    cr_assert_eq(fg_cskew_both(&g, 9, &b), FG_OK);
    cr_assert_eq(b.n, 40);
    int hues_differ = 0;
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(b.group[i], FG_CSKEW_COLOUR);
        cr_assert_eq(b.group[20 + i], FG_CSKEW_GRAY);
        cr_assert_eq(b.y[i], g.y[i]);
        cr_assert_eq(b.y[20 + i], g.y[i]);
        cr_assert(is_gray(&b, 20 + i));
        cr_assert(!is_gray(&b, i), "colour image %d is gray", i);
        /* colour pixel = intensity x tint[c], the same tint over the image,
         * tint in [0,1] with its largest channel 1 (HSV value 1) */
        float tmax = 0;
        for (int c = 0; c < 3; c++) {
            float t = b.x[12 * i + 4 * c] / g.x[4 * i];
            cr_assert(t >= 0 && t <= 1.0f + 1e-6f);
            if (t > tmax) tmax = t;
            for (int k = 1; k < 4; k++)
                cr_assert_float_eq(b.x[12 * i + 4 * c + k], t * g.x[4 * i + k], 1e-6);
            if (i > 0 && fabsf(t - b.x[4 * c] / g.x[0]) > 1e-3f) hues_differ = 1;
        }
        cr_assert_float_eq(tmax, 1.0f, 1e-5);
    }
    cr_assert(hues_differ, "every image got the same tint");
    fg_dataset_free(&b);
    fg_dataset_free(&g);
}

Test(fmnist_s, colour_source_gray_is_luma)
{
    fg_dataset c = {.n = 1, .c = 3, .h = 1, .w = 2, .n_classes = 1};
    float x[6] = {1, 0, 0, 1, 0, 0}; /* R of both pixels 1, 0; G 0, 1 */
    int y[1] = {0};
    c.x = x;
    c.y = y;
    fg_dataset b;
    cr_assert_eq(fg_cskew_both(&c, 1, &b), FG_OK);
    cr_assert_eq(memcmp(b.x, x, sizeof x), 0);
    float want[6] = {0.299f, 0.587f, 0.299f, 0.587f, 0.299f, 0.587f};
    for (int k = 0; k < 6; k++)
        cr_assert_float_eq(b.x[6 + k], want[k], 1e-6);
    fg_dataset_free(&b);
}

Test(fmnist_s, splits_skew_train_valid_double_repair_test)
{
    fg_dataset in[FG_SPLIT_COUNT], out[FG_SPLIT_COUNT];
    int n[FG_SPLIT_COUNT] = {200, 100, 30, 40};
    for (int s = 0; s < FG_SPLIT_COUNT; s++)
        in[s] = gray(n[s]);
    float share[10];
    fg_cskew_study_shares(10, share);
    cr_assert_eq(fg_cskew_splits(in, share, 5, out), FG_OK);
    for (int s = 0; s < FG_SPLIT_COUNT; s++) {
        int both = s == FG_SPLIT_REPAIR || s == FG_SPLIT_TEST;
        cr_assert_eq(out[s].n, both ? 2 * n[s] : n[s]);
        int col_lo = 0, col_hi = 0;
        for (int i = 0; i < out[s].n; i++)
            if (out[s].group[i] == FG_CSKEW_COLOUR) {
                if (out[s].y[i] < 5)
                    col_lo++;
                else
                    col_hi++;
            }
        if (both) {
            cr_assert_eq(col_lo + col_hi, n[s]);
        } else {
            /* n/10 per class: train 20 -> 19 colour (0.95) / 1 (0.05); valid
             * 10 -> ties 9.5 and 0.5 round up to 10 / 1 */
            int per = n[s] / 10;
            cr_assert_eq(col_lo, 5 * (per == 20 ? 19 : 10), "split %d: %d", s, col_lo);
            cr_assert_eq(col_hi, 5 * 1, "split %d: %d", s, col_hi);
        }
    }
    for (int s = 0; s < FG_SPLIT_COUNT; s++) {
        fg_dataset_free(&in[s]);
        fg_dataset_free(&out[s]);
    }
}
