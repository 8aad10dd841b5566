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

/* ---------------- ensembles run on networks ---------------- */

#define DESC "input c=1 h=2 w=2; dense out=8 name=fc1; relu; dense out=3 name=fc2"
enum { NX = 20, DX = 4, KX = 3 };

typedef struct {
    fg_model *f0, *f1;
    float x[NX * DX];
    fg_ens_cfg cfg;
} pair;

/* f0 random; f1 = f0 with every parameter moved by up to +-0.3. */
static void pair_open(pair *p)
{
    fg_rng r;
    fg_rng_seed(&r, 42);
    cr_assert_eq(fg_model_parse(DESC, "test", &p->f0), FG_OK, "%s", fg_errmsg());
    fg_model_init_params(p->f0, &r);
    p->f1 = fg_model_clone(p->f0);
    float *w = fg_model_params(p->f1);
    for (size_t i = 0; i < fg_model_n_params(p->f1); i++)
        w[i] += 0.6f * (fg_rng_uniform(&r) - 0.5f);
    for (int i = 0; i < NX * DX; i++)
        p->x[i] = 2.0f * fg_rng_normal(&r);
    fg_ens_defaults(&p->cfg);
    p->cfg.batch = 7; /* NX = 20: batches of 7, 7, 6 */
}

static void pair_close(pair *p)
{
    fg_model_free(p->f0);
    fg_model_free(p->f1);
}

static void logits_of(fg_model *m, const float *x, float *z)
{
    fg_model_set_mode(m, FG_MODE_EVAL);
    fg_model_reserve(m, NX);
    memcpy(z, fg_model_forward(m, x, NX), sizeof(float) * NX * KX);
}

static void expect_rows_close(const float *a, const float *b, float tol, const char *what)
{
    for (int i = 0; i < NX * KX; i++)
        cr_expect_float_eq(a[i], b[i], tol, "%s: entry %d: %g vs %g", what, i, a[i], b[i]);
}

Test(ensemble, models_deterministic_kinds)
{
    pair p;
    pair_open(&p);
    float p0[NX * KX], p1[NX * KX], want[NX * KX], got[NX * KX], z0[NX * KX], z1[NX * KX];
    int pred[NX], hv[NX];
    fg_model_predict(p.f0, p.x, NX, 5, NULL, p0);
    fg_model_predict(p.f1, p.x, NX, 5, NULL, p1);
    /* sv = average of the members' softmax */
    cr_assert_eq(fg_ens_predict(FG_ENS_SOFT, p.f0, p.f1, &p.cfg, p.x, NX, NULL, got, pred), FG_OK,
                 "%s", fg_errmsg());
    fg_ens_soft(p0, p1, NX, KX, want);
    expect_rows_close(got, want, 1e-6f, "sv");
    int am[NX];
    fg_argmax(want, NX, KX, am);
    for (int i = 0; i < NX; i++)
        cr_expect_eq(pred[i], am[i]);
    /* hv = the rule on the same rows; probs are the chosen member's row */
    cr_assert_eq(fg_ens_predict(FG_ENS_HARD, p.f0, p.f1, &p.cfg, p.x, NX, NULL, got, pred), FG_OK);
    fg_ens_hard(p0, p1, NX, KX, hv);
    int split = 0;
    for (int i = 0; i < NX; i++) {
        cr_expect_eq(pred[i], hv[i], "hv row %d", i);
        int a0, a1;
        fg_argmax(p0 + i * KX, 1, KX, &a0);
        fg_argmax(p1 + i * KX, 1, KX, &a1);
        split += a0 != a1;
    }
    cr_expect_gt(split, 0, "the pair should disagree somewhere for the test to bite");
    /* us with T = 1 is sv; with T0 = 2, T1 = 0.5 the average of scaled softmaxes */
    cr_assert_eq(fg_ens_predict(FG_ENS_TEMP, p.f0, p.f1, &p.cfg, p.x, NX, NULL, got, pred), FG_OK);
    fg_ens_soft(p0, p1, NX, KX, want);
    expect_rows_close(got, want, 1e-6f, "us T=1");
    logits_of(p.f0, p.x, z0);
    logits_of(p.f1, p.x, z1);
    for (int i = 0; i < NX * KX; i++) {
        z0[i] /= 2.0f;
        z1[i] /= 0.5f;
    }
    fg_softmax(z0, z0, NX, KX);
    fg_softmax(z1, z1, NX, KX);
    fg_ens_soft(z0, z1, NX, KX, want);
    p.cfg.t0 = 2.0f;
    p.cfg.t1 = 0.5f;
    cr_assert_eq(fg_ens_predict(FG_ENS_TEMP, p.f0, p.f1, &p.cfg, p.x, NX, NULL, got, pred), FG_OK);
    expect_rows_close(got, want, 1e-6f, "us T=2,0.5");
    p.cfg.t0 = 0.0f;
    cr_expect_eq(fg_ens_predict(FG_ENS_TEMP, p.f0, p.f1, &p.cfg, p.x, NX, NULL, got, pred),
                 FG_ERR_ARG);
    pair_close(&p);
}

static void expect_distributions(const float *q)
{
    for (int i = 0; i < NX; i++) {
        float s = 0.0f;
        for (int c = 0; c < KX; c++) {
            cr_expect(q[i * KX + c] >= 0.0f);
            s += q[i * KX + c];
        }
        cr_expect_float_eq(s, 1.0f, 1e-5f, "row %d sums to %g", i, s);
    }
}

Test(ensemble, models_perturbation)
{
    pair p;
    pair_open(&p);
    float a[NX * KX], b[NX * KX], sv[NX * KX];
    int pred[NX];
    fg_rng r;
    fg_ens_predict(FG_ENS_SOFT, p.f0, p.f1, &p.cfg, p.x, NX, NULL, sv, pred);
    /* no noise: every sample is the clean output, u = 0, equal weights = sv */
    p.cfg.noise_sigma = 0.0f;
    fg_rng_seed(&r, 1);
    cr_assert_eq(fg_ens_predict(FG_ENS_PERTURB, p.f0, p.f1, &p.cfg, p.x, NX, &r, a, pred), FG_OK);
    expect_rows_close(a, sv, 1e-5f, "up sigma=0");
    /* with noise: valid rows, reproducible from the seed, moved by the noise */
    p.cfg.noise_sigma = 0.5f;
    fg_rng_seed(&r, 2);
    cr_assert_eq(fg_ens_predict(FG_ENS_PERTURB, p.f0, p.f1, &p.cfg, p.x, NX, &r, a, pred), FG_OK);
    expect_distributions(a);
    fg_rng_seed(&r, 2);
    fg_ens_predict(FG_ENS_PERTURB, p.f0, p.f1, &p.cfg, p.x, NX, &r, b, pred);
    cr_expect(memcmp(a, b, sizeof a) == 0);
    double diff = 0.0;
    for (int i = 0; i < NX * KX; i++)
        diff += fabsf(a[i] - sv[i]);
    cr_expect_gt(diff, 1e-3);
    cr_expect_eq(fg_ens_predict(FG_ENS_PERTURB, p.f0, p.f1, &p.cfg, p.x, NX, NULL, a, pred),
                 FG_ERR_ARG);
    pair_close(&p);
}

Test(ensemble, models_mc_dropout)
{
    pair p;
    pair_open(&p);
    float a[NX * KX], b[NX * KX], sv[NX * KX];
    int pred[NX];
    fg_rng r;
    size_t np = fg_model_n_params(p.f0);
    float *before = malloc(sizeof(float) * np);
    memcpy(before, fg_model_params(p.f0), sizeof(float) * np);
    int nodes = fg_model_n_nodes(p.f0);
    fg_mode mode = fg_model_mode(p.f0);
    fg_ens_predict(FG_ENS_SOFT, p.f0, p.f1, &p.cfg, p.x, NX, NULL, sv, pred);
    fg_rng_seed(&r, 3);
    cr_assert_eq(fg_ens_predict(FG_ENS_DROPOUT, p.f0, p.f1, &p.cfg, p.x, NX, &r, a, pred), FG_OK,
                 "%s", fg_errmsg());
    expect_distributions(a);
    double diff = 0.0;
    for (int i = 0; i < NX * KX; i++)
        diff += fabsf(a[i] - sv[i]);
    cr_expect_gt(diff, 1e-3, "dropout at the default rate must change the output");
    fg_rng_seed(&r, 3);
    fg_ens_predict(FG_ENS_DROPOUT, p.f0, p.f1, &p.cfg, p.x, NX, &r, b, pred);
    cr_expect(memcmp(a, b, sizeof a) == 0, "same seed, same passes");
    /* the originals are untouched: same graph, same parameters, same mode */
    cr_expect_eq(fg_model_n_nodes(p.f0), nodes);
    cr_expect(memcmp(before, fg_model_params(p.f0), sizeof(float) * np) == 0);
    cr_expect_eq(fg_model_mode(p.f0), mode);
    /* a vanishing rate drops nothing: every pass is the clean output = sv */
    p.cfg.dropout_p = 1e-7f;
    cr_assert_eq(fg_ens_predict(FG_ENS_DROPOUT, p.f0, p.f1, &p.cfg, p.x, NX, &r, a, pred), FG_OK);
    expect_rows_close(a, sv, 1e-5f, "ud p~0");
    /* a network whose output is not a dense layer cannot take the dropout */
    fg_model *g0 = NULL;
    cr_assert_eq(fg_model_parse("input c=1 h=2 w=2; dense out=3; relu", "test", &g0), FG_OK);
    fg_model_init_params(g0, &r);
    cr_expect_eq(fg_ens_predict(FG_ENS_DROPOUT, g0, g0, &p.cfg, p.x, NX, &r, a, pred),
                 FG_ERR_UNSUPPORTED);
    fg_model_free(g0);
    free(before);
    pair_close(&p);
}

/* Scaling f1's last layer by 3 scales its logits by 3, so its fitted
 * temperature is exactly 3x f0's (to the search's precision). */
Test(ensemble, models_fit_temperatures)
{
    pair p;
    pair_open(&p);
    fg_model_free(p.f1);
    p.f1 = fg_model_clone(p.f0);
    const fg_layer *L = fg_model_node(p.f1, fg_model_find(p.f1, "fc2"));
    float *w = fg_model_params(p.f1);
    for (long i = 0; i < L->n_w; i++)
        w[L->w_off + i] *= 3.0f;
    for (long i = 0; i < L->n_b; i++)
        w[L->b_off + i] *= 3.0f;
    int y[NX];
    fg_rng r;
    fg_rng_seed(&r, 4);
    for (int i = 0; i < NX; i++)
        y[i] = (int)fg_rng_below(&r, KX);
    cr_assert_eq(fg_ens_fit(p.f0, p.f1, p.x, y, NX, &p.cfg), FG_OK, "%s", fg_errmsg());
    float z[NX * KX], t;
    logits_of(p.f0, p.x, z);
    cr_assert_eq(fg_ens_fit_temperature(z, y, NX, KX, &t), FG_OK);
    cr_expect_float_eq(p.cfg.t0, t, 1e-6f);
    cr_expect(fabsf(p.cfg.t1 / p.cfg.t0 - 3.0f) < 3e-3f, "t0 %g t1 %g", p.cfg.t0, p.cfg.t1);
    pair_close(&p);
}

/* Ensemble ASR: the soft-vote attack then the kind's rule. For "sv" it equals
 * attacking the two-model target with fg_eval_asr from the same rng. */
Test(ensemble, models_asr)
{
    pair p;
    pair_open(&p);
    int y[NX];
    fg_model *ms[2] = {p.f0, p.f1};
    cr_assert_eq(fg_eval_target_predict(ms, 2, p.x, NX, 5, y), FG_OK);
    fg_pgd_cfg pgd;
    fg_pgd_defaults(&pgd, 0.5f);
    fg_pgd_bounds(p.x, NX * DX, &pgd.lo, &pgd.hi);
    fg_rng r;
    double a, b;
    float adv[NX * DX];
    fg_rng_seed(&r, 9);
    cr_assert_eq(fg_ens_asr(FG_ENS_SOFT, p.f0, p.f1, &p.cfg, &pgd, p.x, y, NX, &r, &a, adv), FG_OK,
                 "%s", fg_errmsg());
    fg_rng_seed(&r, 9);
    cr_assert_eq(fg_eval_asr(ms, 2, &pgd, p.x, y, NX, &r, &b, NULL, NULL), FG_OK);
    cr_expect_eq(a, b);
    cr_expect(a > 0.0, "eps 0.5 should flip some of the soft vote's predictions");
    /* hv on the same adversarial points */
    int pred[NX];
    cr_assert_eq(fg_ens_predict(FG_ENS_HARD, p.f0, p.f1, &p.cfg, adv, NX, NULL, NULL, pred), FG_OK);
    fg_rng_seed(&r, 9);
    cr_assert_eq(fg_ens_asr(FG_ENS_HARD, p.f0, p.f1, &p.cfg, &pgd, p.x, y, NX, &r, &b, NULL),
                 FG_OK);
    cr_expect_eq(b, fg_eval_success_rate(pred, y, NX));
    pair_close(&p);
}
