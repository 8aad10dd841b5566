/* Ensemble combination rules on hand-made probability rows, the hard-vote tie
 * rule, MC statistics, and temperature fitting on synthetic logits with a
 * known temperature. */
#include "fixgrid/eval.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#define EPS 1e-6

Test(ensemble, names)
{
    const char *want[] = {"sv", "hv", "up", "ud", "us"};
    cr_assert_eq(FG_ENS_COUNT, 5);
    for (int i = 0; i < FG_ENS_COUNT; i++) {
        cr_expect_str_eq(fg_ens_name((fg_ens_kind)i), want[i]);
        fg_ens_kind k;
        cr_assert_eq(fg_ens_parse(want[i], &k), FG_OK);
        cr_expect_eq((int)k, i);
    }
    fg_ens_kind k;
    cr_expect_eq(fg_ens_parse("avg", &k), FG_ERR_NOTFOUND);
}

/* Rows (k = 3):                      soft average         hard vote
 *  0: f0 (.6 .3 .1) f1 (.2 .5 .3)   (.4 .4 .2) -> 0      split: .6 > .5 -> f0 says 0
 *  1: f0 (.4 .35 .25) f1 (.1 .8 .1) (.25 .575 .175) -> 1 split: .8 > .4 -> f1 says 1
 *  2: f0 (.5 .5 0) f1 (.5 0 .5)     (.5 .25 .25) -> 0    f0 votes 0 (first max), f1 votes 0: agree
 *  3: f0 (.7 .2 .1) f1 (.1 .2 .7)   (.4 .2 .4) -> 0      split, tie .7 = .7 -> f1 says 2
 *  4: f0 (.2 .7 .1) f1 (.3 .6 .1)   agree on 1 */
static const float P0[15] = {.6f, .3f, .1f, .4f, .35f, .25f, .5f, .5f,
                             0.f, .7f, .2f, .1f, .2f,  .7f,  .1f};
static const float P1[15] = {.2f, .5f, .3f, .1f, .8f, .1f, .5f, 0.f,
                             .5f, .1f, .2f, .7f, .3f, .6f, .1f};

Test(ensemble, soft_vote)
{
    float out[15];
    fg_ens_soft(P0, P1, 5, 3, out);
    const float want[15] = {.4f,  .4f, .2f, .25f, .575f, .175f, .5f, .25f,
                            .25f, .4f, .2f, .4f,  .25f,  .65f,  .1f};
    for (int i = 0; i < 15; i++)
        cr_expect_float_eq(out[i], want[i], EPS, "entry %d", i);
}

Test(ensemble, hard_vote_and_ties)
{
    int pred[5];
    fg_ens_hard(P0, P1, 5, 3, pred);
    const int want[5] = {0, 1, 0, 2, 1};
    for (int i = 0; i < 5; i++)
        cr_expect_eq(pred[i], want[i], "row %d: %d", i, pred[i]);
    /* swapping the models moves the exact tie of row 3 to the other side */
    fg_ens_hard(P1, P0, 5, 3, pred);
    cr_expect_eq(pred[3], 0);
    cr_expect_eq(pred[0], 0);
    cr_expect_eq(pred[1], 1);
}

Test(ensemble, mc_stats_and_weights)
{
    /* S = 2 samples of n = 1 row, k = 2: (.2 .8) and (.6 .4)
     * mean (.4 .6); per-class population variance .04 and .04; u = .08 */
    const float s[4] = {.2f, .8f, .6f, .4f};
    float mean[2], u[1];
    fg_ens_mc_stats(s, 2, 1, 2, mean, u);
    cr_expect_float_eq(mean[0], .4f, EPS);
    cr_expect_float_eq(mean[1], .6f, EPS);
    cr_expect_float_eq(u[0], .08f, EPS);
    /* weights: u0 = .08, u1 = .02 -> w0 = .02/.1 = .2, w1 = .8 */
    const float m0[2] = {.4f, .6f}, m1[2] = {.9f, .1f}, u0[1] = {.08f}, u1[1] = {.02f};
    float out[2];
    fg_ens_weighted(m0, u0, m1, u1, 1, 2, out);
    cr_expect_float_eq(out[0], .2f * .4f + .8f * .9f, EPS);
    cr_expect_float_eq(out[1], .2f * .6f + .8f * .1f, EPS);
    /* both certain (u = 0): floors make the weights equal, i.e. soft voting */
    const float z[1] = {0.f};
    fg_ens_weighted(m0, z, m1, z, 1, 2, out);
    cr_expect_float_eq(out[0], .65f, EPS);
    /* a constant sampler has no spread */
    const float c[6] = {.3f, .7f, .3f, .7f, .3f, .7f};
    fg_ens_mc_stats(c, 3, 1, 2, mean, u);
    cr_expect_float_eq(u[0], 0.f, 1e-7);
}

/* Logits z* with labels drawn from softmax(z*), then scaled by T_true: the
 * NLL of softmax(z / T) is minimised, in expectation, at T = T_true. */
static void synth(fg_rng *r, int n, int k, float T_true, float *logits, int *y)
{
    for (int i = 0; i < n; i++) {
        double p[16], s = 0.0;
        float *z = logits + (size_t)i * k;
        for (int c = 0; c < k; c++) {
            z[c] = 2.0f * fg_rng_normal(r);
            p[c] = exp(z[c]);
            s += p[c];
        }
        double u = fg_rng_uniform_d(r) * s, acc = 0.0;
        y[i] = k - 1;
        for (int c = 0; c < k; c++) {
            acc += p[c];
            if (u < acc) {
                y[i] = c;
                break;
            }
        }
        for (int c = 0; c < k; c++)
            z[c] *= T_true;
    }
}

Test(ensemble, temperature_recovers_known_value)
{
    enum { N = 4000, K = 5 };
    float *z = malloc(sizeof(float) * N * K);
    int *y = malloc(sizeof(int) * N);
    fg_rng r;
    const float temps[3] = {0.5f, 1.0f, 3.0f};
    for (int t = 0; t < 3; t++) {
        fg_rng_seed(&r, 100 + (uint64_t)t);
        synth(&r, N, K, temps[t], z, y);
        float T;
        cr_assert_eq(fg_ens_fit_temperature(z, y, N, K, &T), FG_OK);
        cr_expect(fabsf(T - temps[t]) < 0.06f * temps[t], "T_true %g fitted %g", temps[t], T);
        /* it is the minimiser, to the search's precision */
        double f = fg_ens_nll(z, y, N, K, T);
        cr_expect(f <= fg_ens_nll(z, y, N, K, T * 1.01) + 1e-12);
        cr_expect(f <= fg_ens_nll(z, y, N, K, T / 1.01) + 1e-12);
    }
    /* NLL by hand: logits (0, ln 3) label 1, T = 1: -log(3/4) */
    const float z2[2] = {0.f, (float)log(3.0)};
    const int y2[1] = {1};
    cr_expect_float_eq(fg_ens_nll(z2, y2, 1, 2, 1.0), -log(0.75), 1e-7);
    /* errors */
    float T;
    const int bad[1] = {2};
    cr_expect_eq(fg_ens_fit_temperature(z2, bad, 1, 2, &T), FG_ERR_ARG);
    const float nan2[2] = {NAN, 0.f};
    cr_expect_eq(fg_ens_fit_temperature(nan2, y2, 1, 2, &T), FG_ERR_NUMERIC);
    free(z);
    free(y);
}
