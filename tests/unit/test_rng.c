/* RNG distributions: Gamma, Beta and Dirichlet against their moments and, where
 * the CDF is closed-form, a Kolmogorov-Smirnov test. Fixed seeds make every check
 * deterministic; the tolerances are ~5 standard errors of the estimate, and the
 * KS critical value is the 0.1% one, so a sampler off by a few percent in shape
 * fails (the negative control checks that the KS statistic sees a wrong shape). */
#include "fixgrid/util.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#define N 200000

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void moments(const double *x, int n, double *mean, double *var)
{
    double m = 0, v = 0;
    for (int i = 0; i < n; i++) m += x[i];
    m /= n;
    for (int i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
    *mean = m, *var = v / (n - 1);
}

/* sup |F_n - F| over the sorted sample */
static double ks(double *x, int n, double (*cdf)(double, double), double p)
{
    qsort(x, (size_t)n, sizeof *x, cmp_d);
    double d = 0;
    for (int i = 0; i < n; i++) {
        double f = cdf(x[i], p);
        double a = fabs((i + 1.0) / n - f), b = fabs(f - (double)i / n);
        if (a > d) d = a;
        if (b > d) d = b;
    }
    return d;
}
static const double ks_crit = 1.95 / 447.2136; /* 0.1% level, 1.95 / sqrt(N) */

static double gamma2_cdf(double x, double unused) { (void)unused; return 1 - exp(-x) * (1 + x); }
static double beta22_cdf(double x, double unused) { (void)unused; return 3 * x * x - 2 * x * x * x; }
/* Beta(a, 1): F(x) = x^a */
static double beta_a1_cdf(double x, double a) { return pow(x, a); }

Test(rng, gamma_moments_for_small_and_large_shapes)
{
    static const double shapes[] = {0.2, 0.7, 1.0, 2.5, 9.0};
    double *x = malloc(sizeof(double) * N);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        fg_rng r;
        fg_rng_seed(&r, 11 + s);
        double k = shapes[s], m, v;
        for (int i = 0; i < N; i++) {
            x[i] = fg_rng_gamma(&r, k);
            cr_assert(x[i] >= 0 && isfinite(x[i]));
        }
        moments(x, N, &m, &v);
        /* Gamma(k): mean k, variance k; se(mean) = sqrt(k/N), se(var) ~ k*sqrt((2+6/k)/N) */
        cr_assert(fabs(m - k) < 5 * sqrt(k / N), "shape %g: mean %g", k, m);
        cr_assert(fabs(v - k) < 5 * k * sqrt((2 + 6 / k) / N), "shape %g: var %g", k, v);
    }
    free(x);
}

Test(rng, gamma_shape2_passes_ks)
{
    double *x = malloc(sizeof(double) * N);
    fg_rng r;
    fg_rng_seed(&r, 5);
    for (int i = 0; i < N; i++) x[i] = fg_rng_gamma(&r, 2.0);
    double d = ks(x, N, gamma2_cdf, 0);
    cr_assert(d < ks_crit, "KS %g >= %g", d, ks_crit);
    /* negative control: Gamma(2.1) draws are rejected by the same test */
    for (int i = 0; i < N; i++) x[i] = fg_rng_gamma(&r, 2.1);
    cr_assert(ks(x, N, gamma2_cdf, 0) > ks_crit, "the KS test cannot tell shape 2.1 from 2");
    free(x);
    cr_assert(isnan(fg_rng_gamma(&r, 0)) && isnan(fg_rng_gamma(&r, -1)));
}

Test(rng, beta_cdf_and_moments)
{
    double *x = malloc(sizeof(double) * N);
    fg_rng r;
    fg_rng_seed(&r, 7);
    for (int i = 0; i < N; i++) x[i] = fg_rng_beta(&r, 2, 2);
    cr_assert(ks(x, N, beta22_cdf, 0) < ks_crit);
    /* mixup's Beta(0.2, 0.2): U-shaped, mean 1/2, variance ab/((a+b)^2 (a+b+1)) = 0.178571 */
    double m, v;
    for (int i = 0; i < N; i++) {
        x[i] = fg_rng_beta(&r, 0.2, 0.2);
        cr_assert(x[i] >= 0 && x[i] <= 1);
    }
    moments(x, N, &m, &v);
    cr_assert(fabs(m - 0.5) < 5 * sqrt(0.178571 / N), "mean %g", m);
    cr_assert(fabs(v - 0.178571) < 0.003, "var %g", v);
    /* Beta(0.3, 1) has CDF x^0.3: exercises the shape < 1 boost through a closed form */
    for (int i = 0; i < N; i++) x[i] = fg_rng_beta(&r, 0.3, 1);
    cr_assert(ks(x, N, beta_a1_cdf, 0.3) < ks_crit);
    free(x);
}

Test(rng, dirichlet_sums_to_one_with_the_right_marginals)
{
    const double alpha[3] = {0.5, 1.0, 3.5};
    const double a0 = 5.0;
    double *x = malloc(sizeof(double) * N), out[3];
    double sum[3] = {0}, sq[3] = {0};
    fg_rng r;
    fg_rng_seed(&r, 3);
    for (int i = 0; i < N; i++) {
        fg_rng_dirichlet(&r, alpha, 3, out);
        cr_assert(fabs(out[0] + out[1] + out[2] - 1) < 1e-12);
        for (int j = 0; j < 3; j++) sum[j] += out[j], sq[j] += out[j] * out[j];
        x[i] = out[1]; /* marginal of component 1: Beta(1, 4), CDF 1 - (1-x)^4 */
        x[i] = 1 - x[i]; /* 1 - X ~ Beta(4, 1): CDF x^4 */
    }
    for (int j = 0; j < 3; j++) {
        double m = sum[j] / N, v = sq[j] / N - m * m;
        double em = alpha[j] / a0, ev = em * (1 - em) / (a0 + 1);
        cr_assert(fabs(m - em) < 5 * sqrt(ev / N), "component %d mean %g vs %g", j, m, em);
        cr_assert(fabs(v - ev) < 0.05 * ev + 1e-4, "component %d var %g vs %g", j, v, ev);
    }
    cr_assert(ks(x, N, beta_a1_cdf, 4.0) < ks_crit);
    free(x);
}

Test(rng, draws_are_reproducible_from_the_seed)
{
    fg_rng a, b;
    fg_rng_seed_key(&a, 42, "job"), fg_rng_seed_key(&b, 42, "job");
    for (int i = 0; i < 100; i++) cr_assert_eq(fg_rng_beta(&a, 0.4, 0.4), fg_rng_beta(&b, 0.4, 0.4));
}
