/* The evaluation pieces that depend on the architecture, run on the small zoo
 * networks with random weights: PGD keeps every point in the eps-ball and the
 * bounds and leaves the model as it found it; MC dropout finds the last dense
 * layer's input (a cut in sequential and residual networks alike) and
 * changes the output; the soft-vote attack runs through two different
 * architectures' gradients. */
#include "fixgrid/eval.h"
#include "fixgrid/zoo.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { N = 6 };

static fg_model *build(const char *name, uint64_t seed)
{
    fg_model *m = NULL;
    cr_assert_eq(fg_zoo_build(name, &m), FG_OK, "%s", fg_errmsg());
    fg_rng r;
    fg_rng_seed(&r, seed);
    fg_model_init_params(m, &r);
    return m;
}

static float *inputs(const fg_model *m, uint64_t seed)
{
    size_t d = fg_shape_size(fg_model_input_shape(m));
    float *x = malloc(sizeof(float) * N * d);
    fg_rng r;
    fg_rng_seed(&r, seed);
    for (size_t i = 0; i < N * d; i++)
        x[i] = fg_rng_uniform(&r);
    return x;
}

static void attack_and_dropout(const char *name)
{
    fg_model *a = build(name, 1), *b = build(name, 2);
    size_t d = fg_shape_size(fg_model_input_shape(a));
    float *x = inputs(a, 3), *adv = malloc(sizeof(float) * N * d);
    int y[N];
    fg_model_predict(a, x, N, N, y, NULL);
    size_t np = fg_model_n_params(a);
    float *before = malloc(sizeof(float) * np);
    memcpy(before, fg_model_params(a), sizeof(float) * np);

    fg_pgd_cfg cfg;
    fg_pgd_defaults(&cfg, 0.1f);
    cfg.steps = 5; /* a smoke run: the fixture test checks the steps themselves */
    cfg.batch = 4;
    cr_assert_eq(fg_pgd_bounds(x, N * d, &cfg.lo, &cfg.hi), FG_OK);
    fg_rng r;
    fg_rng_seed(&r, 4);
    fg_model *ms[2] = {a, b};
    for (int nm = 1; nm <= 2; nm++) {
        double asr;
        int succ[N];
        cr_assert_eq(fg_eval_asr(ms, nm, &cfg, x, y, N, &r, &asr, succ, adv), FG_OK, "%s: %s", name,
                     fg_errmsg());
        cr_expect(asr >= 0.0 && asr <= 100.0);
        for (size_t i = 0; i < N * d; i++) {
            cr_assert(fabsf(adv[i] - x[i]) <= cfg.eps * (1 + 1e-6f), "%s: left the ball", name);
            cr_assert(adv[i] >= cfg.lo && adv[i] <= cfg.hi, "%s: out of bounds", name);
        }
    }
    cr_expect(memcmp(before, fg_model_params(a), sizeof(float) * np) == 0);

    fg_ens_cfg ec;
    fg_ens_defaults(&ec);
    ec.dropout_passes = 4;
    ec.batch = 4;
    float p[N * 10], sv[N * 10];
    int pred[N];
    int nodes = fg_model_n_nodes(a);
    cr_assert_eq(fg_ens_predict(FG_ENS_DROPOUT, a, b, &ec, x, N, &r, p, pred), FG_OK, "%s: %s",
                 name, fg_errmsg());
    cr_assert_eq(fg_ens_predict(FG_ENS_SOFT, a, b, &ec, x, N, &r, sv, pred), FG_OK);
    double diff = 0.0;
    for (int i = 0; i < N * 10; i++)
        diff += fabsf(p[i] - sv[i]);
    cr_expect_gt(diff, 1e-6, "%s: MC dropout did not change the output", name);
    cr_expect_eq(fg_model_n_nodes(a), nodes);
    free(before);
    free(x);
    free(adv);
    fg_model_free(a);
    fg_model_free(b);
}

Test(eval_zoo, lenet5)
{
    attack_and_dropout("lenet5");
}
Test(eval_zoo, mlp)
{
    attack_and_dropout("mlp");
}
Test(eval_zoo, vgg_small)
{
    attack_and_dropout("vgg-small");
}
Test(eval_zoo, resnet_small)
{
    attack_and_dropout("resnet-small");
}

/* Soft vote across two architectures with the same input shape. */
Test(eval_zoo, soft_vote_mixed_architectures)
{
    fg_model *a = build("lenet5", 5), *b = build("mlp", 6);
    size_t d = fg_shape_size(fg_model_input_shape(a));
    float *x = inputs(a, 7), *adv = malloc(sizeof(float) * N * d);
    int y[N];
    fg_model *ms[2] = {a, b};
    cr_assert_eq(fg_eval_target_predict(ms, 2, x, N, 3, y), FG_OK);
    fg_pgd_cfg cfg;
    fg_pgd_defaults(&cfg, 0.3f);
    cfg.steps = 10;
    fg_pgd_bounds(x, N * d, &cfg.lo, &cfg.hi);
    fg_rng r;
    fg_rng_seed(&r, 8);
    double asr;
    cr_assert_eq(fg_eval_asr(ms, 2, &cfg, x, y, N, &r, &asr, NULL, adv), FG_OK, "%s", fg_errmsg());
    /* the attack raises the soft-vote loss on average */
    double l0 = 0.0, l1 = 0.0;
    float pa[10], pb[10];
    for (int i = 0; i < N; i++) {
        fg_model_predict(a, x + i * d, 1, 1, NULL, pa);
        fg_model_predict(b, x + i * d, 1, 1, NULL, pb);
        l0 -= log(0.5 * (pa[y[i]] + pb[y[i]]));
        fg_model_predict(a, adv + i * d, 1, 1, NULL, pa);
        fg_model_predict(b, adv + i * d, 1, 1, NULL, pb);
        l1 -= log(0.5 * (pa[y[i]] + pb[y[i]]));
    }
    cr_expect_gt(l1, l0, "loss before %g after %g", l0, l1);
    free(x);
    free(adv);
    fg_model_free(a);
    fg_model_free(b);
}
