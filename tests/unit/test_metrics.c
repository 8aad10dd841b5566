/* Prediction-vector metrics on hand-computed cases, their zero denominators,
 * the study's identity ACC1 = ACC0 + RR (100 - ACC0)/100 - NFR on random
 * vectors, and the ASR pool rule. */
#include "fixgrid/eval.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#define EPS 1e-9

/* Ten samples, labels 0..2:
 *   i     0 1 2 3 4 5 6 7 8 9
 *   y     0 1 2 0 1 2 0 1 2 0
 *   f0    0 1 2 0 1 0 1 2 0 0   right at 0,1,2,3,4,9 (6) -> ACC0 60, errors at 5,6,7,8
 *   f1    0 1 1 0 1 2 0 2 0 0   right at 0,1,3,4,5,6,9 (7) -> ACC1 70
 * repaired (f0 wrong, f1 right): 5, 6         -> RR  = 2/4 x 100 = 50
 * broken (f0 right, f1 wrong): 2               -> NFR = 1/10 x 100 = 10
 * kept (both right): 0,1,3,4,9 = 5 of 6        -> BC  = 83.33..
 * ⇑ACC = (70 - 60)/60 x 100 = 16.66..
 * identity: 60 + 50 x 40/100 - 10 = 70. */
static const int Y[10] = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0};
static const int P0[10] = {0, 1, 2, 0, 1, 0, 1, 2, 0, 0};
static const int P1[10] = {0, 1, 1, 0, 1, 2, 0, 2, 0, 0};

Test(metrics, hand_case)
{
    cr_expect_float_eq(fg_eval_acc(P0, Y, 10), 60.0, EPS);
    cr_expect_float_eq(fg_eval_acc(P1, Y, 10), 70.0, EPS);
    cr_expect_float_eq(fg_eval_rr(P0, P1, Y, 10), 50.0, EPS);
    cr_expect_float_eq(fg_eval_nfr(P0, P1, Y, 10), 10.0, EPS);
    cr_expect_float_eq(fg_eval_bc(P0, P1, Y, 10), 500.0 / 6.0, EPS);
    cr_expect_float_eq(fg_eval_up_acc(60.0, 70.0), 100.0 / 6.0, EPS);
    fg_eval_cmp c;
    fg_eval_compare(P0, P1, Y, 10, &c);
    cr_expect_eq(c.n, 10);
    cr_expect_eq(c.n_correct0, 6);
    cr_expect_eq(c.n_correct1, 7);
    cr_expect_eq(c.n_repaired, 2);
    cr_expect_eq(c.n_broken, 1);
    cr_expect_float_eq(c.up_acc, 100.0 / 6.0, EPS);
    /* swapping the roles: f1 -> f0 repairs sample 2 of its 3 errors (2, 7, 8) */
    cr_expect_float_eq(fg_eval_rr(P1, P0, Y, 10), 100.0 / 3.0, EPS);
    cr_expect_float_eq(fg_eval_nfr(P1, P0, Y, 10), 20.0, EPS); /* 5 and 6 break */
}

Test(metrics, zero_denominators)
{
    /* empty test split */
    cr_expect_eq(fg_eval_acc(P0, Y, 0), 0.0);
    cr_expect_eq(fg_eval_nfr(P0, P1, Y, 0), 0.0);
    cr_expect_eq(fg_eval_rr(P0, P1, Y, 0), 0.0);
    cr_expect_eq(fg_eval_bc(P0, P1, Y, 0), 100.0);
    /* f0 perfect: RR has nothing to repair -> 0 */
    cr_expect_eq(fg_eval_rr(Y, P1, Y, 10), 0.0);
    cr_expect_float_eq(fg_eval_nfr(Y, P1, Y, 10), 30.0, EPS);
    /* f0 always wrong: BC vacuous -> 100, RR counts f1's hits */
    int wrong[10];
    for (int i = 0; i < 10; i++)
        wrong[i] = (Y[i] + 1) % 3;
    cr_expect_eq(fg_eval_bc(wrong, P1, Y, 10), 100.0);
    cr_expect_float_eq(fg_eval_rr(wrong, P1, Y, 10), 70.0, EPS);
    /* relative changes from a zero base */
    cr_expect_eq(fg_eval_up_acc(0.0, 50.0), 0.0);
    cr_expect_eq(fg_eval_up_asr(0.0, 10.0), 0.0);
    cr_expect_eq(fg_eval_up_aaod(0.0, 0.1), 0.0);
}

Test(metrics, relative_lower_is_better)
{
    /* ⇑ASR = (ASR0 - ASR1)/ASR0 x 100: 80 -> 20 is +75, 50 -> 60 is -20 */
    cr_expect_float_eq(fg_eval_up_asr(80.0, 20.0), 75.0, EPS);
    cr_expect_float_eq(fg_eval_up_asr(50.0, 60.0), -20.0, EPS);
    /* the study's CIFAR-10S original AAOD 0.3188 vs AP's 0.3164: +0.75 % */
    cr_expect_float_eq(fg_eval_up_aaod(0.3188, 0.3164), 100.0 * 0.0024 / 0.3188, 1e-12);
    /* ⇑ACC: HUDD on CIFAR-10S 65.54 -> 68.82 is +5.00 % relative */
    cr_expect_float_eq(fg_eval_up_acc(65.54, 68.82), 100.0 * 3.28 / 65.54, 1e-9);
}

Test(metrics, identity_on_random_vectors)
{
    fg_rng r;
    enum { N = 257 };
    int y[N], p0[N], p1[N];
    for (uint64_t seed = 0; seed < 500; seed++) {
        fg_rng_seed(&r, seed);
        int k = 2 + (int)fg_rng_below(&r, 9);
        /* vary the accuracies: some seeds near-perfect, some near-random */
        double a0 = fg_rng_uniform_d(&r), a1 = fg_rng_uniform_d(&r);
        int n = 1 + (int)fg_rng_below(&r, N);
        for (int i = 0; i < n; i++) {
            y[i] = (int)fg_rng_below(&r, (uint64_t)k);
            p0[i] = fg_rng_uniform_d(&r) < a0 ? y[i] : (int)fg_rng_below(&r, (uint64_t)k);
            p1[i] = fg_rng_uniform_d(&r) < a1 ? y[i] : (int)fg_rng_below(&r, (uint64_t)k);
        }
        double acc0 = fg_eval_acc(p0, y, n), acc1 = fg_eval_acc(p1, y, n);
        double rr = fg_eval_rr(p0, p1, y, n), nfr = fg_eval_nfr(p0, p1, y, n);
        cr_assert_float_eq(acc1, acc0 + rr * (100.0 - acc0) / 100.0 - nfr, 1e-9,
                           "seed %llu: acc0 %g acc1 %g rr %g nfr %g", (unsigned long long)seed,
                           acc0, acc1, rr, nfr);
        /* BC and NFR measure the same flips from two sides */
        double bc = fg_eval_bc(p0, p1, y, n);
        cr_assert_float_eq(nfr, (100.0 - bc) * acc0 / 100.0, 1e-9, "seed %llu",
                           (unsigned long long)seed);
    }
}

Test(metrics, majority_rate)
{
    double r;
    /* Y holds 0 four times, 1 and 2 three times each */
    cr_assert_eq(fg_eval_majority_rate(Y, 10, 3, &r), FG_OK);
    cr_expect_float_eq(r, 40.0, EPS);
    cr_assert_eq(fg_eval_majority_rate(Y, 0, 3, &r), FG_OK);
    cr_expect_eq(r, 0.0);
    int bad[3] = {0, 3, 1};
    cr_expect_eq(fg_eval_majority_rate(bad, 3, 3, &r), FG_ERR_ARG);
}

/* Pool: samples every model gets right. With y = Y, f0 = P0, f1 = P1 and a
 * second fixed model f2 = Y except sample 4, the qualifying indices are
 * {0,1,3,4,9} minus 4 = {0, 1, 3, 9}. */
Test(metrics, pool_rule)
{
    int p2[10];
    for (int i = 0; i < 10; i++)
        p2[i] = Y[i];
    p2[4] = 0;
    const int *preds[3] = {P0, P1, p2};
    int idx[10], n_pool, n_q;
    fg_rng r;
    fg_rng_seed(&r, 7);
    cr_assert_eq(fg_eval_pool(Y, 10, preds, 3, 500, &r, idx, &n_pool, &n_q), FG_OK);
    cr_assert_eq(n_pool, 4);
    cr_expect_eq(n_q, 4);
    int want[4] = {0, 1, 3, 9};
    for (int i = 0; i < 4; i++)
        cr_expect_eq(idx[i], want[i]);
    /* fewer than qualify: a sorted subset of size 2 */
    cr_assert_eq(fg_eval_pool(Y, 10, preds, 3, 2, &r, idx, &n_pool, &n_q), FG_OK);
    cr_assert_eq(n_pool, 2);
    cr_expect_eq(n_q, 4);
    cr_expect_lt(idx[0], idx[1]);
    for (int i = 0; i < 2; i++)
        cr_expect(idx[i] == 0 || idx[i] == 1 || idx[i] == 3 || idx[i] == 9);
    cr_expect_eq(fg_eval_pool(Y, 10, preds, 0, 2, &r, idx, &n_pool, &n_q), FG_ERR_ARG);
}

/* The draw is uniform without replacement: over many seeds each of 20
 * qualifying samples is chosen about 5/20 of the time, never twice. */
Test(metrics, pool_draw_uniform)
{
    enum { N = 20, DRAW = 5, TRIALS = 4000 };
    int y[N], hits[N] = {0}, idx[N], n_pool;
    for (int i = 0; i < N; i++)
        y[i] = i % 3;
    const int *preds[1] = {y};
    fg_rng r;
    fg_rng_seed(&r, 11);
    for (int t = 0; t < TRIALS; t++) {
        cr_assert_eq(fg_eval_pool(y, N, preds, 1, DRAW, &r, idx, &n_pool, NULL), FG_OK);
        cr_assert_eq(n_pool, DRAW);
        for (int i = 0; i < DRAW; i++) {
            if (i) cr_assert_lt(idx[i - 1], idx[i]); /* sorted, hence distinct */
            hits[idx[i]]++;
        }
    }
    /* expected 1000 each; binomial sd ~27, allow 5 sd */
    for (int i = 0; i < N; i++)
        cr_expect(fabs(hits[i] - 1000.0) < 140.0, "sample %d: %d", i, hits[i]);
    /* same seed, same pool */
    int a[DRAW], b[DRAW];
    fg_rng_seed(&r, 3);
    fg_eval_pool(y, N, preds, 1, DRAW, &r, a, &n_pool, NULL);
    fg_rng_seed(&r, 3);
    fg_eval_pool(y, N, preds, 1, DRAW, &r, b, &n_pool, NULL);
    for (int i = 0; i < DRAW; i++)
        cr_expect_eq(a[i], b[i]);
}
