/* Each OpenBLAS path against its naive twin: sgemm in all four transpose
 * combinations (with alpha and beta), and the im2col convolution forward and
 * backward (stride, padding, odd shapes, batches that span workspace chunks)
 * against direct loops. */
#include "fixgrid/nn.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

static void fill(float *p, size_t n, fg_rng *r)
{
    for (size_t i = 0; i < n; i++)
        p[i] = 2.0f * fg_rng_uniform(r) - 1.0f;
}

static double max_rel_diff(const float *a, const float *b, size_t n)
{
    double amax = 0, d = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(a[i]) > amax) amax = fabs(a[i]);
        if (fabs((double)a[i] - b[i]) > d) d = fabs((double)a[i] - b[i]);
    }
    return d / (amax > 0 ? amax : 1);
}

Test(kernels, gemm_all_transposes)
{
    fg_rng r;
    fg_rng_seed(&r, 7);
    const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 9, 33}, {64, 10, 84}, {6, 300, 25}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
        float *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * N);
        fill(A, (size_t)M * K, &r);
        fill(B, (size_t)K * N, &r);
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                const float betas[] = {0.0f, 1.0f, 0.5f};
                for (int bi = 0; bi < 3; bi++) {
                    fill(C1, (size_t)M * N, &r);
                    for (int i = 0; i < M * N; i++)
                        C2[i] = C1[i];
                    fg_gemm(ta, tb, M, N, K, 0.75f, A, B, betas[bi], C1);
                    fg_gemm_naive(ta, tb, M, N, K, 0.75f, A, B, betas[bi], C2);
                    double d = max_rel_diff(C2, C1, (size_t)M * N);
                    cr_expect(d < 1e-5, "gemm %dx%dx%d ta=%d tb=%d beta=%g: diff %.3e", M, N, K, ta,
                              tb, (double)betas[bi], d);
                }
            }
        free(A);
        free(B);
        free(C1);
        free(C2);
    }
}

/* The naive reference itself against a hand-computed case: 1 x 1 x 3 x 3
 * input, one 2x2 kernel, no padding. */
Test(kernels, conv_naive_hand_computed)
{
    const float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    const float w[4] = {1, 0, 0, -1}, b[1] = {0.5f};
    float y[4];
    fg_conv2d_naive_forward(x, 1, 1, 3, 3, w, b, 1, 2, 1, 0, y);
    /* x[i][j] - x[i+1][j+1] = -4 everywhere, plus the bias */
    for (int i = 0; i < 4; i++)
        cr_expect_float_eq(y[i], -3.5f, 1e-6f);
}

static void conv_case(int n, int c, int h, int w, int oc, int k, int s, int p)
{
    fg_rng r;
    fg_rng_seed(&r, (uint64_t)(n * 1000 + c * 100 + k * 10 + s + p));
    int oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
    size_t nx = (size_t)n * c * h * w, ny = (size_t)n * oc * oh * ow, nw = (size_t)oc * c * k * k;
    float *x = malloc(sizeof(float) * nx), *wt = malloc(sizeof(float) * nw);
    float *b = malloc(sizeof(float) * oc), *y1 = malloc(sizeof(float) * ny);
    float *y2 = malloc(sizeof(float) * ny), *dy = malloc(sizeof(float) * ny);
    float *dx1 = calloc(nx, sizeof(float)), *dx2 = calloc(nx, sizeof(float));
    float *dw1 = calloc(nw, sizeof(float)), *dw2 = calloc(nw, sizeof(float));
    float *db1 = calloc((size_t)oc, sizeof(float)), *db2 = calloc((size_t)oc, sizeof(float));
    float *work = malloc(sizeof(float) * fg_conv2d_work_floats(n, c, h, w, oc, k, s, p));
    fill(x, nx, &r);
    fill(wt, nw, &r);
    fill(b, (size_t)oc, &r);
    fill(dy, ny, &r);
    /* backward accumulates: start both from the same non-zero values */
    fill(dx1, nx, &r);
    for (size_t i = 0; i < nx; i++)
        dx2[i] = dx1[i];
    fg_conv2d_forward(x, n, c, h, w, wt, b, oc, k, s, p, y1, work);
    fg_conv2d_naive_forward(x, n, c, h, w, wt, b, oc, k, s, p, y2);
    cr_expect(max_rel_diff(y2, y1, ny) < 1e-5, "forward n%d c%d %dx%d oc%d k%d s%d p%d", n, c, h, w,
              oc, k, s, p);
    fg_conv2d_backward(x, n, c, h, w, wt, oc, k, s, p, dy, dx1, dw1, db1, work);
    fg_conv2d_naive_backward(x, n, c, h, w, wt, oc, k, s, p, dy, dx2, dw2, db2);
    cr_expect(max_rel_diff(dx2, dx1, nx) < 1e-5, "dx n%d c%d k%d s%d p%d", n, c, k, s, p);
    cr_expect(max_rel_diff(dw2, dw1, nw) < 1e-5, "dw n%d c%d k%d s%d p%d", n, c, k, s, p);
    cr_expect(max_rel_diff(db2, db1, (size_t)oc) < 1e-5, "db n%d c%d k%d s%d p%d", n, c, k, s, p);
    free(x), free(wt), free(b), free(y1), free(y2), free(dy), free(dx1), free(dx2);
    free(dw1), free(dw2), free(db1), free(db2), free(work);
}

Test(kernels, conv_blas_vs_naive)
{
    conv_case(3, 1, 28, 28, 6, 5, 1, 0); /* LeNet first layer */
    conv_case(2, 6, 8, 8, 16, 3, 1, 0);
    conv_case(2, 3, 7, 9, 4, 3, 2, 1); /* stride, padding, non-square */
    conv_case(2, 2, 5, 5, 3, 1, 1, 0); /* 1x1 */
    conv_case(1, 2, 4, 4, 2, 3, 3, 2); /* stride > 1 with wide padding */
    conv_case(1, 1, 2, 2, 1, 4, 1, 1); /* kernel larger than the image */
}

/* A batch whose im2col exceeds one workspace chunk is lowered in pieces;
 * the result must not depend on it. */
Test(kernels, conv_chunked_batch)
{
    conv_case(40, 16, 32, 32, 16, 3, 1, 1);
}
