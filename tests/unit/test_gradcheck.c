/* Gradient checks for every layer kind, walked from the registry: each kind
 * has one or more small models in which it is the checked layer; every
 * parameter and every input element is checked by central differences
 * (gradcheck.h). A negative control shows the check rejects a gradient that
 * is off by 1%. */
#include "gradcheck.h"

#include <criterion/criterion.h>
#include <stdio.h>

typedef struct {
    const char *desc;
    fg_mode mode;
    int n;
    int node; /* node whose output the loss reads; 0 means the output node */
} gc_case;

#define MAX_CASES 3
/* Indexed by kind, so a kind added to FG_LAYER_LIST without cases fails
 * gradcheck.registry_covered. */
static const gc_case cases[FG_LAYER_COUNT][MAX_CASES] = {
    [FG_LAYER_INPUT] = {{"input c=2 h=3 w=3; flatten", FG_MODE_TRAIN, 2, .node = -1}},
    [FG_LAYER_DENSE] = {{"input c=2 h=3 w=3; dense out=4", FG_MODE_TRAIN, 3},
                        {"input c=5 h=1 w=1; dense out=3 bias=0", FG_MODE_TRAIN, 2}},
    [FG_LAYER_CONV] = {{"input c=2 h=5 w=5; conv out=3 k=3 s=2 p=1", FG_MODE_TRAIN, 2},
                       {"input c=2 h=5 w=4; conv out=2 k=3", FG_MODE_TRAIN, 2},
                       {"input c=3 h=4 w=4; conv out=2 k=2 s=1 p=2 bias=0", FG_MODE_TRAIN, 2}},
    [FG_LAYER_MAXPOOL] = {{"input c=2 h=5 w=5; maxpool k=3 s=2 p=1", FG_MODE_TRAIN, 2},
                          {"input c=2 h=6 w=6; maxpool k=2", FG_MODE_TRAIN, 2}},
    [FG_LAYER_AVGPOOL] = {{"input c=2 h=5 w=5; avgpool k=2 s=1", FG_MODE_TRAIN, 2},
                          {"input c=2 h=6 w=6; avgpool k=3", FG_MODE_TRAIN, 2}},
    [FG_LAYER_GAP] = {{"input c=3 h=3 w=3; gap", FG_MODE_TRAIN, 2}},
    [FG_LAYER_RELU] = {{"input c=2 h=3 w=3; relu", FG_MODE_TRAIN, 3}},
    [FG_LAYER_BN] = {{"input c=3 h=2 w=2; bn", FG_MODE_TRAIN, 3},
                     {"input c=3 h=2 w=2; bn eps=0.01", FG_MODE_EVAL, 3},
                     {"input c=4 h=1 w=1; bn", FG_MODE_TRAIN, 5}},
    [FG_LAYER_ADD] = {{"input c=2 h=3 w=3 name=x; conv out=2 k=1 name=a; add in=x,a", FG_MODE_TRAIN,
                       2},
                      {"input c=2 h=2 w=2 name=x; add in=x,x", FG_MODE_TRAIN, 2}},
    [FG_LAYER_CONCAT] = {{"input c=2 h=3 w=3 name=x; conv out=3 k=1 name=a; concat in=a,x",
                          FG_MODE_TRAIN, 2}},
    [FG_LAYER_FLATTEN] = {{"input c=2 h=3 w=3; flatten; dense out=2", FG_MODE_TRAIN, 2}},
    [FG_LAYER_DROPOUT] = {{"input c=2 h=3 w=3; dropout p=0.3", FG_MODE_TRAIN, 3},
                          {"input c=2 h=3 w=3; dropout p=0.3", FG_MODE_EVAL, 3}},
    [FG_LAYER_SCALE] = {{"input c=3 h=2 w=2; scale", FG_MODE_TRAIN, 2}},
    /* random parameters put the support g of some samples strictly between 0
     * and 1 (gamma 0.5 widens the soft boundary), so every branch is checked */
    [FG_LAYER_PATCH] = {{"input c=3 h=1 w=1 name=x; dense out=2 name=y; patch rows=2 gamma=0.5 in=x,y",
                         FG_MODE_EVAL, 4},
                        {"input c=2 h=2 w=1 name=x; flatten name=f; dense out=3 name=y; patch rows=3 gamma=2 in=f,y",
                         FG_MODE_EVAL, 3}},
};

/* Build the case, randomise parameters and state away from their identity
 * init, and check. */
static void check_case(const gc_case *gc, double perturb, gc_stats *ps, gc_stats *xs)
{
    fg_model *m = NULL;
    int st = fg_model_parse(gc->desc, "case", &m);
    cr_assert_eq(st, FG_OK, "%s: %s", gc->desc, fg_errmsg());
    fg_rng rng;
    fg_rng_seed(&rng, 1234);
    fg_model_init_params(m, &rng);
    float *p = fg_model_params(m);
    for (size_t i = 0; i < fg_model_n_params(m); i++)
        p[i] = 2.0f * fg_rng_uniform(&rng) - 1.0f;
    /* running statistics: any mean, a variance in [0.5, 1.5] */
    float *s = fg_model_state(m);
    for (int i = 0; i < fg_model_n_nodes(m); i++) {
        const fg_layer *L = fg_model_node(m, i);
        for (long j = 0; j < L->n_s; j++)
            s[L->s_off + j] =
                j < L->n_s / 2 ? fg_rng_uniform(&rng) - 0.5f : 0.5f + fg_rng_uniform(&rng);
    }
    fg_model_set_mode(m, gc->mode);
    size_t nx = (size_t)gc->n * fg_shape_size(fg_model_input_shape(m));
    float *x = malloc(sizeof *x * nx);
    gc_distinct_inputs(x, nx, &rng);
    /* node -1 in a case means the input node itself */
    gc_run(m, gc->node < 0 ? 0 : gc->node ? gc->node : -1, gc->n, x, &rng, perturb, ps, xs);
    free(x);
    fg_model_free(m);
}

static void check_kind(fg_layer_kind k)
{
    int ran = 0;
    for (int i = 0; i < MAX_CASES && cases[k][i].desc; i++) {
        gc_stats ps = {0}, xs = {0};
        check_case(&cases[k][i], 1.0, &ps, &xs);
        cr_log_info("%s [%s]: params %zu rel %.2e max %.2e | input %zu rel %.2e max %.2e",
                    fg_layer_kind_name(k), cases[k][i].desc, ps.count, ps.rel, ps.maxerr, xs.count,
                    xs.rel, xs.maxerr);
        if (ps.count)
            cr_expect(gc_pass(&ps), "%s: param grad rel %.3e max %.3e", cases[k][i].desc, ps.rel,
                      ps.maxerr);
        cr_expect(xs.count > 0, "%s: no input gradient checked", cases[k][i].desc);
        cr_expect(gc_pass(&xs), "%s: input grad rel %.3e max %.3e", cases[k][i].desc, xs.rel,
                  xs.maxerr);
        ran++;
    }
    cr_assert(ran > 0, "no gradient-check case for layer kind %s", fg_layer_kind_name(k));
}

Test(gradcheck, registry_covered)
{
    for (int k = 0; k < FG_LAYER_COUNT; k++)
        cr_expect(cases[k][0].desc != NULL, "layer kind %s has no gradient check",
                  fg_layer_kind_name((fg_layer_kind)k));
}

#define FG_X(e, s)                                                                                 \
    Test(gradcheck, e)                                                                             \
    {                                                                                              \
        check_kind(FG_LAYER_##e);                                                                  \
    }
FG_LAYER_LIST(FG_X)
#undef FG_X

/* A gradient 1% off must fail the same check, for parameters and inputs
 * alike, or the tolerance is too loose to mean anything. */
Test(gradcheck, negative_control)
{
    const fg_layer_kind kinds[] = {FG_LAYER_CONV, FG_LAYER_DENSE, FG_LAYER_BN};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        gc_stats ps, xs;
        check_case(&cases[kinds[i]][0], 1.01, &ps, &xs);
        cr_expect(!gc_pass(&ps), "%s: 1%% parameter error passed (rel %.3e)",
                  cases[kinds[i]][0].desc, ps.rel);
        cr_expect(!gc_pass(&xs), "%s: 1%% input error passed (rel %.3e)", cases[kinds[i]][0].desc,
                  xs.rel);
    }
}
