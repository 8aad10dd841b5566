/* Losses: values against hand-computed cases, gradients against central
 * differences in double, and the softmax/argmax helpers. */
#include "fixgrid/nn.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

typedef float (*loss_fn)(const float *z, const void *t, int n, int k, float *d, float T);

static float ce_fn(const float *z, const void *t, int n, int k, float *d, float T)
{
    return fg_loss_ce(z, t, n, k, d);
}
static float soft_fn(const float *z, const void *t, int n, int k, float *d, float T)
{
    return fg_loss_soft_ce(z, t, n, k, d);
}
static float kl_fn(const float *z, const void *t, int n, int k, float *d, float T)
{
    return fg_loss_kl(z, t, n, k, T, d);
}

Test(loss, ce_hand_computed)
{
    /* logits (0, ln 3) -> softmax (1/4, 3/4); label 1 -> loss ln(4/3) */
    const float z[2] = {0.0f, logf(3.0f)};
    const int y[1] = {1};
    float d[2];
    float l = fg_loss_ce(z, y, 1, 2, d);
    cr_expect_float_eq(l, logf(4.0f / 3.0f), 1e-6f);
    cr_expect_float_eq(d[0], 0.25f, 1e-6f);
    cr_expect_float_eq(d[1], -0.25f, 1e-6f);
    /* mean over the batch: a second, uniform row adds ln 2 */
    const float z2[4] = {0.0f, logf(3.0f), 5.0f, 5.0f};
    const int y2[2] = {1, 0};
    float d2[4];
    float l2 = fg_loss_ce(z2, y2, 2, 2, d2);
    cr_expect_float_eq(l2, 0.5f * (logf(4.0f / 3.0f) + logf(2.0f)), 1e-6f);
    cr_expect_float_eq(d2[0], 0.125f, 1e-6f); /* (1/4 - 0) / 2 */
    cr_expect_float_eq(d2[2], -0.25f, 1e-6f); /* (1/2 - 1) / 2 */
}

Test(loss, ce_large_logits_stable)
{
    const float z[3] = {1000.0f, 0.0f, -1000.0f};
    const int y[1] = {0};
    float d[3];
    float l = fg_loss_ce(z, y, 1, 3, d);
    cr_expect(isfinite(l) && l >= 0.0f && l < 1e-6f);
    for (int j = 0; j < 3; j++)
        cr_expect(isfinite(d[j]));
}

Test(loss, soft_ce_hand_computed)
{
    /* softmax (1/4, 3/4), targets (1/2, 1/2): -(ln(1/4) + ln(3/4)) / 2 */
    const float z[2] = {0.0f, logf(3.0f)};
    const float t[2] = {0.5f, 0.5f};
    float d[2];
    float l = fg_loss_soft_ce(z, t, 1, 2, d);
    cr_expect_float_eq(l, -0.5f * (logf(0.25f) + logf(0.75f)), 1e-6f);
    cr_expect_float_eq(d[0], 0.25f - 0.5f, 1e-6f);
    cr_expect_float_eq(d[1], 0.75f - 0.5f, 1e-6f);
    /* one-hot targets reduce to the integer-label loss */
    const float oh[2] = {0.0f, 1.0f};
    const int y[1] = {1};
    cr_expect_float_eq(fg_loss_soft_ce(z, oh, 1, 2, NULL), fg_loss_ce(z, y, 1, 2, NULL), 1e-6f);
}

Test(loss, kl_hand_computed)
{
    /* T = 2: softmax(z / 2) with z = (0, 2 ln 3) is (1/4, 3/4); target
     * (1/2, 1/2): KL = 1/2 ln 2 + 1/2 ln(2/3); times T^2 = 4 */
    const float z[2] = {0.0f, 2.0f * logf(3.0f)};
    const float t[2] = {0.5f, 0.5f};
    float d[2];
    float l = fg_loss_kl(z, t, 1, 2, 2.0f, d);
    cr_expect_float_eq(l, 4.0f * 0.5f * (logf(2.0f) + logf(2.0f / 3.0f)), 1e-5f);
    cr_expect_float_eq(d[0], 2.0f * (0.25f - 0.5f), 1e-6f);
    /* KL of a distribution with itself is zero, gradient too */
    const float p[2] = {0.25f, 0.75f};
    cr_expect_float_eq(fg_loss_kl(z, p, 1, 2, 2.0f, d), 0.0f, 1e-6f);
    cr_expect_float_eq(d[1], 0.0f, 1e-6f);
}

static void fd_check(loss_fn f, const void *t, int n, int k, float T)
{
    fg_rng r;
    fg_rng_seed(&r, 99);
    float *z = malloc(sizeof(float) * n * k), *d = malloc(sizeof(float) * n * k);
    for (int i = 0; i < n * k; i++)
        z[i] = 4.0f * fg_rng_uniform(&r) - 2.0f;
    f(z, t, n, k, d, T);
    double dn = 0, nn = 0;
    for (int i = 0; i < n * k; i++) {
        float keep = z[i], h = 1e-2f;
        z[i] = keep + h;
        double lp = f(z, t, n, k, NULL, T);
        z[i] = keep - h;
        double lm = f(z, t, n, k, NULL, T);
        z[i] = keep;
        double num = (lp - lm) / (2.0 * h);
        dn += (num - d[i]) * (num - d[i]);
        nn += num * num;
    }
    cr_expect(sqrt(dn / nn) < 2e-3, "loss gradient off: rel %.3e", sqrt(dn / nn));
    free(z);
    free(d);
}

Test(loss, gradients_match_finite_differences)
{
    enum { N = 4, K = 5 };
    int y[N] = {0, 3, 4, 1};
    float t[N * K];
    fg_rng r;
    fg_rng_seed(&r, 5);
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int j = 0; j < K; j++)
            s += t[i * K + j] = fg_rng_uniform(&r) + 0.05f;
        for (int j = 0; j < K; j++)
            t[i * K + j] = (float)(t[i * K + j] / s);
    }
    fd_check(ce_fn, y, N, K, 1.0f);
    fd_check(soft_fn, t, N, K, 1.0f);
    fd_check(kl_fn, t, N, K, 1.0f);
    fd_check(kl_fn, t, N, K, 3.0f);
}

Test(loss, softmax_and_argmax)
{
    const float z[6] = {1, 3, 2, -1, -1, -5};
    float p[6];
    int a[2];
    fg_softmax(z, p, 2, 3);
    for (int i = 0; i < 2; i++) {
        double s = p[3 * i] + p[3 * i + 1] + p[3 * i + 2];
        cr_expect(fabs(s - 1.0) < 1e-6);
    }
    cr_expect_float_eq(p[1] / p[2], expf(1.0f), 1e-5f);
    fg_argmax(z, 2, 3, a);
    cr_expect_eq(a[0], 1);
    cr_expect_eq(a[1], 0); /* ties go to the first, as torch.argmax */
}
